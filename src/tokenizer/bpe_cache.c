/* bpe_cache.c - pre-token cache: open-addressing slot table (linear
 * probing, load <= 1/2) over a dense, append-only entry array. */
#include "tokenizer/bpe_cache.h"

#include <string.h>

#include "tokenizer/bpe_hash.h"
#include "util/common.h"

_Static_assert(sizeof(bpe_cache_entry_t) == 32, "two entries per cache line");

#define IDX_BITS 24
#define IDX_MASK ((1u << IDX_BITS) - 1)

int bpe_cache_init(bpe_cache_t *c, size_t max_entries) {
    memset(c, 0, sizeof *c);
    c->max_entries = MG_MIN(max_entries, (size_t)IDX_MASK - 1);
    c->cap = 2048;
    c->ecap = 512;
    c->slot = mg_calloc(c->cap, sizeof *c->slot);
    c->e = mg_malloc(c->ecap * sizeof *c->e);
    if (!c->slot || !c->e) {
        bpe_cache_free(c);
        return -1;
    }
    return 0;
}

void bpe_cache_free(bpe_cache_t *c) {
    mg_free(c->slot);
    mg_free(c->e);
    memset(c, 0, sizeof *c);
}

static uint32_t tag_of(uint64_t h) { return (uint32_t)(h >> 56) << IDX_BITS; }

size_t bpe_cache_get(const bpe_cache_t *c, const unsigned char *key, size_t len, int32_t *dst) {
    if (!c->cap || len > BPE_CACHE_KEY) return 0;
    uint64_t h = bpe_hash_bytes(key, len);
    uint32_t tag = tag_of(h);
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint32_t s = c->slot[i];
        if (!s) return 0;
        if ((s & ~IDX_MASK) != tag) continue;
        const bpe_cache_entry_t *e = &c->e[(s & IDX_MASK) - 1];
        if (e->klen == len && memcmp(e->key, key, len) == 0) {
            memcpy(dst, e->ids, e->nids * sizeof *dst);
            return e->nids;
        }
    }
}

static void place(uint32_t *slot, size_t cap, uint64_t h, uint32_t v) {
    size_t i = (size_t)h & (cap - 1);
    while (slot[i])
        i = (i + 1) & (cap - 1);
    slot[i] = (v & IDX_MASK) | tag_of(h);
}

static int grow_slots(bpe_cache_t *c) {
    size_t ncap = c->cap * 2;
    uint32_t *ns = mg_calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t k = 0; k < c->n; k++)
        place(ns, ncap, bpe_hash_bytes(c->e[k].key, c->e[k].klen), (uint32_t)k + 1);
    mg_free(c->slot);
    c->slot = ns;
    c->cap = ncap;
    return 0;
}

void bpe_cache_put(bpe_cache_t *c, const unsigned char *key, size_t len, const int32_t *ids,
                   size_t n) {
    if (!c->cap || len > BPE_CACHE_KEY || n > BPE_CACHE_IDS || n == 0) return;
    if (c->n >= c->max_entries) return; /* full: just stop adding */
    if ((c->n + 1) * 2 > c->cap && grow_slots(c) < 0) return;
    if (c->n == c->ecap) {
        bpe_cache_entry_t *ne = mg_realloc(c->e, c->ecap * 2 * sizeof *ne);
        if (!ne) return;
        c->e = ne;
        c->ecap *= 2;
    }
    bpe_cache_entry_t *e = &c->e[c->n];
    memset(e, 0, sizeof *e);
    e->klen = (uint8_t)len;
    e->nids = (uint8_t)n;
    memcpy(e->key, key, len);
    memcpy(e->ids, ids, n * sizeof *ids);
    c->n++;
    place(c->slot, c->cap, bpe_hash_bytes(key, len), (uint32_t)c->n);
}
