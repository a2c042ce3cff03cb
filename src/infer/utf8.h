/* utf8.h - streaming text out without ever splitting a UTF-8 character. */
#ifndef MG_UTF8_H
#define MG_UTF8_H

#include <stddef.h>

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
