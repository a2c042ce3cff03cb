/* utf8.h - UTF-8, in one place: validation (checkpoint headers, token
 * bytes), character lengths (the explain mode's grids) and streaming text
 * out without ever splitting a character. */
#ifndef MG_UTF8_H
#define MG_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (n >= 1 bytes available), or 0
 * if invalid: overlong forms, surrogates and code points past U+10FFFF are
 * invalid. */
size_t utf8_seq(const unsigned char *s, size_t n);
/* Bytes of the character that byte c starts, for text known to be valid
 * UTF-8 (1 to 4); a byte that starts none counts as one, so that a walk
 * over text always advances. */
size_t utf8_char_len(unsigned char c);
/* Of the n pending bytes, how many can be emitted now: everything except a
 * trailing, still-incomplete (but so far valid) multi-byte sequence.
 * Invalid bytes are emitted as they come: they will never complete. */
size_t utf8_complete_prefix(const unsigned char *s, size_t n);
/* 1 if the n bytes are valid UTF-8. */
int utf8_valid(const unsigned char *s, size_t n);
/* Copies s to out replacing each byte that is not part of a valid sequence
 * with U+FFFD, as decoders with errors="replace" do. out holds 3n bytes.
 * Returns the bytes written. */
size_t utf8_repair(const unsigned char *s, size_t n, unsigned char *out);

#endif
