/* bpe_cache.h - the encoder's memo of pre-token -> ids, probed once per
 * pre-token. Built for memory locality, which dominates its cost: a small
 * slot table (4 bytes per slot, with 8 hash bits so most mismatches never
 * touch an entry) points into a dense array of 32-byte entries that hold the
 * key bytes and ids inline. Entries are appended in first-seen order, so the
 * frequent pre-tokens, seen early, sit together in a few hot cache lines.
 * Only short pre-tokens with short encodings are kept; they are nearly all. */
#ifndef MG_BPE_CACHE_H
#define MG_BPE_CACHE_H

#include <stddef.h>
#include <stdint.h>

enum { BPE_CACHE_KEY = 18, BPE_CACHE_IDS = 3 };

typedef struct {
    uint8_t klen;
    uint8_t nids;
    unsigned char key[BPE_CACHE_KEY];
    int32_t ids[BPE_CACHE_IDS];
} bpe_cache_entry_t;

typedef struct {
    uint32_t *slot; /* 0 = empty, else (hash bits << 24) | (entry index + 1) */
    size_t cap;     /* slots, power of two; 0 = cache disabled */
    bpe_cache_entry_t *e;
    size_t n, ecap, max_entries;
} bpe_cache_t;

/* Starts small and grows up to max_entries (< 2^24), then stops adding. */
int bpe_cache_init(bpe_cache_t *c, size_t max_entries);
void bpe_cache_free(bpe_cache_t *c);
/* Copies the ids of key into dst and returns their count, or 0 if absent. */
size_t bpe_cache_get(const bpe_cache_t *c, const unsigned char *key, size_t len, int32_t *dst);
/* Remembers key -> ids when both fit; silently skips otherwise. The key
 * must be absent (callers put only after a failed get). */
void bpe_cache_put(bpe_cache_t *c, const unsigned char *key, size_t len, const int32_t *ids,
                   size_t n);

#endif
