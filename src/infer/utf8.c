/* utf8.c - UTF-8 boundary helpers for streaming output. */
#include "infer/utf8.h"

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

int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int len = seq_len(s[i]);
        if (len == 0 || i + len > n) return 0;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        /* overlongs and surrogates */
        if (len == 3 && s[i] == 0xE0 && s[i + 1] < 0xA0) return 0;
        if (len == 3 && s[i] == 0xED && s[i + 1] >= 0xA0) return 0;
        if (len == 4 && s[i] == 0xF0 && s[i + 1] < 0x90) return 0;
        if (len == 4 && s[i] == 0xF4 && s[i + 1] >= 0x90) return 0;
        i += len;
    }
    return 1;
}
