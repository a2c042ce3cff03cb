/* bpe_hash.c - open-addressing hash maps (linear probing, power-of-two
 * capacity, load factor <= 1/2) for byte strings and id pairs. */
#include "tokenizer/bpe_hash.h"

#include <string.h>

#include "util/common.h"

static uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

/* Eight bytes per step; pre-tokens are short, so speed comes from not
 * looping per byte, and quality from the final avalanche. */
uint64_t bpe_hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xbf58476d1ce4e5b9ULL);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = (h ^ fmix64(k)) * 0x94d049bb133111ebULL;
        h = (h << 29) | (h >> 35);
        p += 8;
        n -= 8;
    }
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++)
        k |= (uint64_t)p[i] << (8 * i);
    return fmix64(h ^ k ^ (k >> 7) * 0x2545f4914f6cdd1dULL);
}

static size_t cap_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 && cap < ((size_t)1 << 62))
        cap <<= 1;
    return cap;
}

int bpe_strmap_init(bpe_strmap_t *m, size_t expected) {
    m->cap = cap_for(expected);
    m->n = 0;
    m->e = mg_calloc(m->cap, sizeof *m->e);
    return m->e ? 0 : -1;
}

void bpe_strmap_free(bpe_strmap_t *m) {
    mg_free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

static uint32_t tag_of(uint64_t h) { return (uint32_t)(h >> 32) | 1u; }

int64_t *bpe_strmap_find(const bpe_strmap_t *m, const unsigned char *base, const unsigned char *key,
                         size_t len) {
    uint64_t h = bpe_hash_bytes(key, len);
    uint32_t tag = tag_of(h);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        bpe_strmap_entry_t *e = &m->e[i];
        if (!e->tag) return NULL;
        if (e->tag == tag && e->len == len && memcmp(base + e->off, key, len) == 0) return &e->val;
    }
}

static int strmap_grow(bpe_strmap_t *m, const unsigned char *base) {
    size_t ncap = m->cap * 2;
    bpe_strmap_entry_t *ne = mg_calloc(ncap, sizeof *ne);
    if (!ne) return -1;
    /* The hash is recomputed from the stored bytes: cheaper in memory than
     * keeping all 64 bits per entry, and growth is rare. */
    for (size_t i = 0; i < m->cap; i++) {
        bpe_strmap_entry_t *e = &m->e[i];
        if (!e->tag) continue;
        uint64_t h = bpe_hash_bytes(base + e->off, e->len);
        size_t j = (size_t)h & (ncap - 1);
        while (ne[j].tag)
            j = (j + 1) & (ncap - 1);
        ne[j] = *e;
    }
    mg_free(m->e);
    m->e = ne;
    m->cap = ncap;
    return 0;
}

int64_t *bpe_strmap_put(bpe_strmap_t *m, const unsigned char *base, const unsigned char *key,
                        size_t len, int *is_new) {
    if (len > UINT32_MAX) return NULL;
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m, base) < 0) return NULL;
    uint64_t h = bpe_hash_bytes(key, len);
    uint32_t tag = tag_of(h);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        bpe_strmap_entry_t *e = &m->e[i];
        if (!e->tag) {
            e->tag = tag;
            e->off = (size_t)(key - base);
            e->len = (uint32_t)len;
            e->val = 0;
            m->n++;
            if (is_new) *is_new = 1;
            return &e->val;
        }
        if (e->tag == tag && e->len == len && memcmp(base + e->off, key, len) == 0) {
            if (is_new) *is_new = 0;
            return &e->val;
        }
    }
}

int bpe_pairmap_init(bpe_pairmap_t *m, size_t expected) {
    m->cap = cap_for(expected);
    m->n = 0;
    m->keys = mg_calloc(m->cap, sizeof *m->keys);
    m->vals = mg_malloc(m->cap * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        bpe_pairmap_free(m);
        return -1;
    }
    return 0;
}

void bpe_pairmap_free(bpe_pairmap_t *m) {
    mg_free(m->keys);
    mg_free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

int32_t bpe_pairmap_get(const bpe_pairmap_t *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)fmix64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return m->vals[i];
        if (!m->keys[i]) return -1;
    }
}

static int pairmap_grow(bpe_pairmap_t *m) {
    size_t ncap = m->cap * 2;
    uint64_t *nk = mg_calloc(ncap, sizeof *nk);
    int32_t *nv = mg_malloc(ncap * sizeof *nv);
    if (!nk || !nv) {
        mg_free(nk);
        mg_free(nv);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = (size_t)fmix64(m->keys[i]) & (ncap - 1);
        while (nk[j])
            j = (j + 1) & (ncap - 1);
        nk[j] = m->keys[i];
        nv[j] = m->vals[i];
    }
    mg_free(m->keys);
    mg_free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    return 0;
}

int32_t *bpe_pairmap_put(bpe_pairmap_t *m, uint64_t key) {
    if ((m->n + 1) * 2 > m->cap && pairmap_grow(m) < 0) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)fmix64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return &m->vals[i];
        if (!m->keys[i]) {
            m->keys[i] = key;
            m->vals[i] = -1;
            m->n++;
            return &m->vals[i];
        }
    }
}
