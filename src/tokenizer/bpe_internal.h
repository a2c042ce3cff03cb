/* bpe_internal.h - the tokenizer's private layout, shared by the files of
 * src/tokenizer/ (training, encoding, JSON) and by nobody else. */
#ifndef MG_BPE_INTERNAL_H
#define MG_BPE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/bpe.h"
#include "tokenizer/bpe_hash.h"
#include "tokenizer/pretok.h"

#define BPE_MAX_VOCAB (1 << 20) /* sanity cap for training and loading */

struct bpe {
    int vocab_size;
    int num_merges;
    int32_t *left, *right; /* [num_merges]: parts of merge i (id 260 + i) */
    size_t *tok_off;       /* [vocab_size]: offset of each token's bytes */
    uint32_t *tok_len;     /* [vocab_size] */
    unsigned char *bytes;  /* all token bytes, back to back */
    bpe_pairmap_t ranks;   /* (left, right) -> merge index */
    pretok_t *pretok;
};

/* The text of the special tokens, indexed by id 0..3. */
extern const char *const bpe_special_names[4];

/* Builds a tokenizer from its merge list. Checks that every part is an
 * earlier non-special id and that no pair repeats; token bytes follow. */
bpe_t *bpe_build(const int32_t *left, const int32_t *right, int num_merges, char *err);

#endif
