/* bpe.h - byte-level BPE tokenizer: train, encode, decode, tokenizer.json.
 *
 * Id layout (fixed): 0 <PAD>, 1 <UNK>, 2 <BOS>, 3 <EOS>, 4..259 the 256 raw
 * bytes (id = 4 + byte), then one id per merge in the order learned
 * (id = 260 + merge index). Text is split into pre-tokens with the GPT-2
 * regex (PCRE2, Unicode classes) before merges are applied, exactly as the
 * Hugging Face `tokenizers` ByteLevel BPE does, so a tokenizer.json written
 * here encodes identically there. Bytes that are not valid UTF-8 are never
 * lost: decode(encode(x)) == x for every byte string (each invalid byte is a
 * pre-token of its own; Hugging Face cannot take such input at all).
 * One deliberate difference: the text "<EOS>" etc. in the input is encoded
 * as plain bytes, never as the special id (Hugging Face would match it), so
 * that the round trip above holds; specials are added by the caller.
 * A bpe_t never changes after creation: any number of threads may encode and
 * decode with it at once. */
#ifndef MG_BPE_H
#define MG_BPE_H

#include <stddef.h>
#include <stdint.h>

enum { BPE_PAD = 0, BPE_UNK = 1, BPE_BOS = 2, BPE_EOS = 3, BPE_BYTE0 = 4, BPE_FIRST_MERGE = 260 };

typedef struct bpe bpe_t; /* opaque; owned by whoever created it, freed with bpe_free */

/* One applied merge, reported to a trace callback during encoding (used by
 * the educational mode): the pair (left, right) became `merged`. */
typedef void (*bpe_trace_fn)(void *ctx, const char *pretoken, size_t len, int left, int right,
                             int merged);

/* Learns merges from text until the vocabulary has vocab_size ids
 * (260 <= vocab_size <= 2^20). Stops early, with a smaller vocabulary, once
 * no adjacent pair occurs at least twice (check bpe_vocab_size). Merges never
 * cross pre-token boundaries. Deterministic, whatever the thread count: most
 * frequent pair first, ties broken by the smaller (left, right) ids. */
bpe_t *bpe_train(const char *text, size_t len, int vocab_size, char *err);
void bpe_free(bpe_t *t);

int bpe_vocab_size(const bpe_t *t);
int bpe_num_merges(const bpe_t *t);
/* The merge that produced id (id >= BPE_FIRST_MERGE): its two parts. */
void bpe_merge_pair(const bpe_t *t, int id, int *left, int *right);

/* Encodes len bytes. *ids is allocated with mg_malloc (caller frees);
 * *n gets the count. Returns 0, or -1 with err set. Inputs of 1 MB or more
 * are split at safe newlines and encoded by OpenMP threads; the ids are
 * identical to a single-threaded encoding. */
int bpe_encode(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n, char *err);
/* Same, reporting every merge applied, in order, to fn (NULL: none).
 * Single-threaded and uncached, so every merge is reported. */
int bpe_encode_traced(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n,
                      bpe_trace_fn fn, void *ctx, char *err);

/* The raw bytes of one token (special tokens give their text, e.g. "<EOS>").
 * The pointer stays valid while t lives. NULL for an id out of range. */
const unsigned char *bpe_token_bytes(const bpe_t *t, int id, size_t *len);

/* Decodes ids into bytes; *out is NUL-terminated, allocated with mg_malloc.
 * Special tokens decode to nothing. Out-of-range ids are an error. */
int bpe_decode(const bpe_t *t, const int32_t *ids, size_t n, char **out, size_t *len, char *err);

/* tokenizer.json (Hugging Face format): to text (mg_malloc'd, NUL-terminated)
 * and back. bpe_from_json validates everything it reads (vocab/merges
 * consistency, ids, sizes) and never trusts the input. */
char *bpe_to_json(const bpe_t *t, size_t *len, char *err);
bpe_t *bpe_from_json(const char *json, size_t len, char *err);
int bpe_save(const bpe_t *t, const char *path, char *err);
bpe_t *bpe_load(const char *path, char *err);

#endif
