/* bpe_hash.h - the two open-addressing hash maps the tokenizer needs:
 * byte strings -> int64 (word counts, encode cache, vocab lookup) and
 * (left, right) id pairs -> int32 (merge ranks, training pair table).
 * Both live in one flat array each, so they cost one counted allocation. */
#ifndef MG_BPE_HASH_H
#define MG_BPE_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t bpe_hash_bytes(const unsigned char *p, size_t n);

/* Keys are not copied: an entry stores the key's offset from a base pointer
 * that the caller passes to every call, so the bytes may live in a buffer
 * that is reallocated (the base moves, offsets stay valid). */
typedef struct {
    size_t off;
    uint32_t len;
    uint32_t tag; /* 0 = empty slot, else high hash bits | 1 */
    int64_t val;
} bpe_strmap_entry_t;

typedef struct {
    bpe_strmap_entry_t *e;
    size_t cap; /* power of two */
    size_t n;
} bpe_strmap_t;

int bpe_strmap_init(bpe_strmap_t *m, size_t expected);
void bpe_strmap_free(bpe_strmap_t *m);
/* Looks key up; the key need not lie inside base. NULL if absent. */
int64_t *bpe_strmap_find(const bpe_strmap_t *m, const unsigned char *base, const unsigned char *key,
                         size_t len);
/* Finds or inserts key, which must lie inside base (its offset is stored).
 * A new entry gets val 0 and *is_new = 1. NULL when out of memory. */
int64_t *bpe_strmap_put(bpe_strmap_t *m, const unsigned char *base, const unsigned char *key,
                        size_t len, int *is_new);

typedef struct {
    uint64_t *keys; /* 0 = empty; bpe_pair_key is never 0 (GPT-2 has id 0 in merges) */
    int32_t *vals;
    size_t cap;
    size_t n;
} bpe_pairmap_t;

int bpe_pairmap_init(bpe_pairmap_t *m, size_t expected);
void bpe_pairmap_free(bpe_pairmap_t *m);
static inline uint64_t bpe_pair_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)(left + 1) << 32) | (uint32_t)(right + 1);
}
/* -1 if absent. */
int32_t bpe_pairmap_get(const bpe_pairmap_t *m, uint64_t key);
/* Finds or inserts key (new entries get val -1). NULL when out of memory. */
int32_t *bpe_pairmap_put(bpe_pairmap_t *m, uint64_t key);

#endif
