/* tok_encode.c - minigpt's tokenizer from the command line, for the
 * comparisons of tests/interop.sh against Hugging Face's tokenizers.
 * usage: tok_encode [--special] [--bench] TOKENIZER.json [MERGES.txt] < TEXT
 *   one file: a tokenizer.json; two: GPT-2's vocab.json and merges.txt.
 *   Prints the ids of stdin on one line (space-separated); --special
 *   matches the added tokens (BPE_ENCODE_SPECIAL); --bench prints
 *   "bytes seconds MB/s" of the encoding instead (best of 3). */
#include <stdio.h>
#include <string.h>

#include "tokenizer/bpe.h"
#include "util/common.h"

static char *read_stdin(size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = mg_malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) {
            char *b = mg_realloc(buf, cap *= 2);
            if (!b) mg_free(buf);
            buf = b;
        }
    }
    *n = len;
    return buf;
}

int main(int argc, char **argv) {
    char err[MG_ERR_LEN];
    unsigned flags = 0;
    int bench = 0, a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
        if (strcmp(argv[a], "--special") == 0)
            flags |= BPE_ENCODE_SPECIAL;
        else if (strcmp(argv[a], "--bench") == 0)
            bench = 1;
        else
            break;
    }
    if (argc - a < 1 || argc - a > 2) {
        fprintf(stderr,
                "usage: tok_encode [--special] [--bench] TOKENIZER.json [MERGES.txt] < TEXT\n");
        return 2;
    }
    bpe_t *t = NULL;
    if (argc - a == 1) {
        t = bpe_load(argv[a], err);
    } else {
        size_t vl, ml;
        char *v = mg_read_file(argv[a], &vl, err),
             *m = v ? mg_read_file(argv[a + 1], &ml, err) : NULL;
        if (m) t = bpe_from_vocab_merges(v, vl, m, ml, err);
        mg_free(v);
        mg_free(m);
    }
    if (!t) {
        fprintf(stderr, "tok_encode: %s\n", err);
        return 1;
    }
    size_t n, k;
    char *text = read_stdin(&n);
    int32_t *ids = NULL;
    double best = 1e30;
    for (int rep = 0; rep < (bench ? 3 : 1); rep++) {
        mg_free(ids);
        double t0 = mg_now();
        if (!text || bpe_encode_ex(t, text, n, flags, &ids, &k, err) != 0) {
            fprintf(stderr, "tok_encode: %s\n", text ? err : "out of memory");
            return 1;
        }
        best = MG_MIN(best, mg_now() - t0);
    }
    if (bench) {
        printf("%zu %.4f %.2f\n", n, best, n / best / 1e6);
    } else {
        for (size_t i = 0; i < k; i++)
            printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    mg_free(ids);
    mg_free(text);
    bpe_free(t);
    return 0;
}
