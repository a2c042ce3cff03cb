/* utf8.c - UTF-8 validation, character lengths and the boundary helpers of
 * streaming output. */
#include "util/utf8.h"

/* length of the sequence a lead byte announces; 0 if not a lead byte */
static int seq_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

size_t utf8_complete_prefix(const unsigned char *s, size_t n) {
    /* a sequence is at most 4 bytes: only the last 3 can be incomplete */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        int len = seq_len(c);
        if (len > (int)back) return n - back; /* lead byte waiting for more */
        return n;
    }
    return n;
}

size_t utf8_char_len(unsigned char c) {
    int len = seq_len(c);
    return len ? (size_t)len : 1;
}

size_t utf8_seq(const unsigned char *s, size_t n) {
    int len = seq_len(s[0]);
    if (len == 0 || (size_t)len > n) return 0;
    for (int k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    /* overlongs, surrogates, beyond U+10FFFF */
    if (len == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;
    if (len == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0;
    if (len == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;
    if (len == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0;
    return (size_t)len;
}

int utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(s + i, n - i);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

size_t utf8_repair(const unsigned char *s, size_t n, unsigned char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(s + i, n - i);
        if (len) {
            for (size_t k = 0; k < len; k++)
                out[o++] = s[i + k];
            i += len;
        } else {
            out[o++] = 0xEF, out[o++] = 0xBF, out[o++] = 0xBD;
            i++;
        }
    }
    return o;
}
