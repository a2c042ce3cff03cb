/* bpe.h - byte-level BPE tokenizer: train, encode, decode, tokenizer.json.
 *
 * Two layouts. minigpt's own (what bpe_train makes): 0 <PAD>, 1 <UNK>,
 * 2 <BOS>, 3 <EOS>, 4..259 the 256 raw bytes (id = 4 + byte), then one id
 * per merge in the order learned (id = 260 + merge index). Any other
 * byte-level BPE vocabulary (GPT-2's: 50,257 ids, the bytes in the order of
 * its byte-to-unicode table, one special token <|endoftext|> = 50256) is
 * read from a tokenizer.json or vocab.json + merges.txt as it is, with the
 * added tokens it declares. Text is split into pre-tokens with the GPT-2
 * regex (PCRE2, Unicode classes) before merges are applied, exactly as the
 * Hugging Face `tokenizers` ByteLevel BPE does, so the ids are the same.
 * Bytes that are not valid UTF-8 are never lost: decode(encode(x)) == x for
 * every byte string (each invalid byte is a pre-token of its own; Hugging
 * Face cannot take such input at all).
 * Special tokens: the text "<EOS>" or "<|endoftext|>" in the input is plain
 * text (bytes) unless the caller passes BPE_ENCODE_SPECIAL, which matches
 * the added tokens as Hugging Face does (leftmost, longest). minigpt's
 * tokenizer.json therefore keeps its four specials out of added_tokens, so
 * that Hugging Face's `tokenizers` gives the same ids.
 * A bpe_t never changes after creation: any number of threads may encode and
 * decode with it at once. */
#ifndef MG_BPE_H
#define MG_BPE_H

#include <stddef.h>
#include <stdint.h>

/* minigpt's layout (bpe_train, bpe_is_minigpt) */
enum { BPE_PAD = 0, BPE_UNK = 1, BPE_BOS = 2, BPE_EOS = 3, BPE_BYTE0 = 4, BPE_FIRST_MERGE = 260 };
/* bpe_token_kind: a normal token (bytes), a special added token (control:
 * no text when decoded), or a non-special added token (its text). */
enum { BPE_TOKEN_NORMAL = 0, BPE_TOKEN_SPECIAL = 1, BPE_TOKEN_ADDED = 2 };
/* bpe_encode_ex flags: match the added tokens' text (default: plain text).
 * This is the flag a server's /tokenize passes for "parse special tokens". */
enum { BPE_ENCODE_SPECIAL = 1 };

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
/* The merge that produced id: its two parts (-1, -1 if no merge makes id). */
void bpe_merge_pair(const bpe_t *t, int id, int *left, int *right);
/* Merge number `rank` (0 = applied first): its parts; -1, -1 out of range. */
void bpe_merge_at(const bpe_t *t, int rank, int *left, int *right);
/* The rank (0 = applied first) of the merge that makes id, or -1. */
int bpe_merge_rank(const bpe_t *t, int id);
/* 1 for minigpt's own layout (ids above), 0 for any other vocabulary. */
int bpe_is_minigpt(const bpe_t *t);
/* The end-of-text id that ends generation: <EOS> (3) in minigpt's layout;
 * otherwise the added special token named <|endoftext|>, </s>, <eos> or
 * <|end_of_text|>, else the only special token; -1 when there is none. */
int bpe_eot_id(const bpe_t *t);
/* BPE_TOKEN_* of id (NORMAL for ids out of range). */
int bpe_token_kind(const bpe_t *t, int id);
/* The id of the token made of the single byte b. */
int bpe_byte_id(const bpe_t *t, unsigned char b);
/* The token's string as tokenizer.json, vocab.json and GGUF write it: the
 * bytes through GPT-2's byte-to-unicode table (" " -> "Ġ"), or an added
 * token's own text. mg_malloc'd, NUL-terminated; NULL if out of range/memory. */
char *bpe_token_str(const bpe_t *t, int id);

/* Encodes len bytes. *ids is allocated with mg_malloc (caller frees);
 * *n gets the count. Returns 0, or -1 with err set. Inputs of 1 MB or more
 * are split at safe newlines and encoded by OpenMP threads; the ids are
 * identical to a single-threaded encoding. */
int bpe_encode(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n, char *err);
/* bpe_encode with flags (BPE_ENCODE_SPECIAL). */
int bpe_encode_ex(const bpe_t *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                  size_t *n, char *err);
/* Same, reporting every merge applied, in order, to fn (NULL: none).
 * Single-threaded and uncached, so every merge is reported. */
int bpe_encode_traced(const bpe_t *t, const char *text, size_t len, int32_t **ids, size_t *n,
                      bpe_trace_fn fn, void *ctx, char *err);

/* The raw bytes of one token (special tokens give their text, e.g. "<EOS>").
 * The pointer stays valid while t lives. NULL for an id out of range. */
const unsigned char *bpe_token_bytes(const bpe_t *t, int id, size_t *len);

/* Decodes ids into bytes; *out is NUL-terminated, allocated with mg_malloc.
 * Special tokens decode to nothing (non-special added tokens to their
 * text). Out-of-range ids are an error. */
int bpe_decode(const bpe_t *t, const int32_t *ids, size_t n, char **out, size_t *len, char *err);

/* tokenizer.json (Hugging Face format): to text (mg_malloc'd, NUL-terminated)
 * and back. bpe_from_json validates everything it reads (vocab/merges
 * consistency, ids, sizes) and never trusts the input. */
char *bpe_to_json(const bpe_t *t, size_t *len, char *err);
bpe_t *bpe_from_json(const char *json, size_t len, char *err);
/* GPT-2's original files: vocab.json ({"token": id}) and merges.txt (an
 * optional "#version" line, then "left right" per line). A vocab entry
 * <|endoftext|> becomes the special token. Validated like bpe_from_json. */
bpe_t *bpe_from_vocab_merges(const char *vocab_json, size_t vlen, const char *merges_txt,
                             size_t mlen, char *err);
/* tokenizer_config.json for Hugging Face loaders (transformers'
 * AutoTokenizer, tokenizers.js): the special tokens by role,
 * model_max_length, clean_up_tokenization_spaces false (decoding gives the
 * text back as is) and, for minigpt's layout, split_special_tokens true
 * ("<EOS>" in a text is text, as here). mg_malloc'd; NULL when out of memory. */
char *bpe_config_json(const bpe_t *t, int model_max_length, char *err);
/* bpe_to_json written to path atomically (util/atomic.h). */
int bpe_save(const bpe_t *t, const char *path, char *err);
bpe_t *bpe_load(const char *path, char *err);

#endif
