/* pretok.h - GPT-2 pre-tokenization: splits text into the pieces that BPE
 * merges never cross, with the GPT-2 regex (PCRE2, Unicode classes):
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Bytes the regex cannot cover (invalid UTF-8) become one pre-token each, so
 * the pieces always tile the input exactly. */
#ifndef MG_PRETOK_H
#define MG_PRETOK_H

#include <stddef.h>

typedef struct pretok pretok_t; /* compiled pattern; shareable between threads */

pretok_t *pretok_new(char *err);
/* For tests: use_jit = 0 forces PCRE2's interpreter; window > 0 limits how
 * far past its start a match may look before retrying with more (0 = the
 * default: all of the text with JIT, 64 bytes without). Results never change. */
pretok_t *pretok_new_ex(int use_jit, size_t window, char *err);
void pretok_free(pretok_t *p);

/* Receives each pre-token in order. Returns 0 to go on; anything else stops
 * the split (the callback reports its own error through its ctx). */
typedef int (*pretok_fn)(void *ctx, const char *s, size_t n);

/* Splits text[0..len) and calls fn for each piece. Returns 0, or -1 when the
 * callback stopped it (err untouched) or matching failed (err set). */
int pretok_split(const pretok_t *p, const char *text, size_t len, pretok_fn fn, void *ctx,
                 char *err);

/* The first position >= pos (or len) at which the text can be cut into two
 * halves that pre-tokenize exactly like the whole: just after a lone '\n'
 * between two printable ASCII characters. Used to split work across threads. */
size_t pretok_cut(const char *text, size_t len, size_t pos);

/* Cuts text into pieces of about `target` bytes at pretok_cut positions.
 * *bounds (mg_malloc'd, caller frees) gets n+1 offsets, first 0, last len;
 * returns n (>= 1), or 0 when out of memory. */
size_t pretok_chunks(const char *text, size_t len, size_t target, size_t **bounds);

#endif
