/* bpe_internal.h - the tokenizer's private layout, shared by the files of
 * src/tokenizer/ (training, encoding, JSON) and by nobody else.
 *
 * Any byte-level BPE vocabulary fits: each id is either a normal token
 * (its bytes; the 256 single-byte tokens may sit at any ids) or an added
 * token (text matched as a whole, only when the caller asks). Merge r joins
 * (left[r], right[r]) into result[r]; lower ranks apply first. minigpt's
 * own layout is the special case detected by bpe_build_general (`minigpt`). */
#ifndef MG_BPE_INTERNAL_H
#define MG_BPE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/bpe.h"
#include "tokenizer/bpe_hash.h"
#include "tokenizer/pretok.h"

#define BPE_MAX_VOCAB (1 << 20) /* sanity cap for training and loading */

/* kind[id] */
enum { BPE_KIND_NORMAL = 0, BPE_KIND_SPECIAL = 1, BPE_KIND_ADDED = 2 };
/* per added token, as tokenizer.json's added_tokens says */
enum { BPE_ADDED_NORMALIZED = 1 };

struct bpe {
    int vocab_size;
    int num_merges;
    int32_t *left, *right, *result; /* [num_merges]: merge r joins left+right into result */
    int32_t *rank_of;               /* [vocab_size]: the merge producing id, or -1 */
    size_t *tok_off;                /* [vocab_size]: offset of each token's bytes */
    uint32_t *tok_len;              /* [vocab_size] */
    unsigned char *bytes;           /* all token bytes (added tokens: their text) */
    uint8_t *kind;                  /* [vocab_size] BPE_KIND_* */
    int n_added;
    int32_t *added;       /* [n_added] ids of added tokens, in added_tokens order */
    uint8_t *added_flags; /* [n_added] BPE_ADDED_* */
    int32_t byte_id[256]; /* the token of each single byte */
    int minigpt;          /* 1: minigpt's fixed layout (specials 0..3, bytes 4..259, merges 260+) */
    int eot;              /* end-of-text id, or -1 */
    bpe_pairmap_t ranks;  /* (left, right) -> merge rank */
    pretok_t *pretok;
};

/* The text of minigpt's special tokens, indexed by id 0..3. */
extern const char *const bpe_special_names[4];

/* What bpe_build_general needs; the arrays are borrowed (copied). */
typedef struct {
    int n;               /* vocab size */
    const size_t *off;   /* [n] offsets of token bytes into bytes */
    const uint32_t *len; /* [n] */
    const unsigned char *bytes;
    const uint8_t *kind; /* [n] BPE_KIND_* */
    int n_added;
    const int32_t *added;       /* [n_added] ids, each of kind SPECIAL or ADDED */
    const uint8_t *added_flags; /* [n_added] or NULL */
    int num_merges;
    const int32_t *left, *right, *result; /* [num_merges] */
} bpe_spec_t;

/* Builds any byte-level tokenizer: checks every merge (ids in range, normal
 * tokens, result spells left+right, no repeated pair) and that each of the
 * 256 single bytes is exactly one normal token. (The JSON reader also
 * refuses two normal tokens with the same bytes.) */
bpe_t *bpe_build_general(const bpe_spec_t *s, char *err);

/* minigpt's layout from its merge list (training): bpe_build_general on
 * the fixed ids. */
bpe_t *bpe_build(const int32_t *left, const int32_t *right, int num_merges, char *err);

#endif
