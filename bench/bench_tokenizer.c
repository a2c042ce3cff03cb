/* bench_tokenizer.c - times BPE training (8192 merges) and encoding on the
 * bundled corpus, and checks that decoding gives the corpus back.
 * Usage: bench_tokenizer [corpus] [vocab_size] [tokenizer.json to write] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tokenizer/bpe.h"
#include "util/common.h"

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "data/corpus_pt_br.txt";
    int vocab = argc > 2 ? atoi(argv[2]) : BPE_FIRST_MERGE + 8192;
    const char *out = argc > 3 ? argv[3] : NULL;
    char err[MG_ERR_LEN];
    size_t len;
    char *text = mg_read_file(path, &len, err);
    if (!text) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("corpus: %s, %.2f MB, threads: %d\n", path, len / 1e6, threads);

    double t0 = mg_now();
    bpe_t *t = bpe_train(text, len, vocab, err);
    double t1 = mg_now();
    if (!t) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    printf("train: %d merges (vocab %d) in %.2f s, peak memory %.1f MB\n", bpe_num_merges(t),
           bpe_vocab_size(t), t1 - t0, mg_mem_peak() / 1e6);
    if (out && bpe_save(t, out, err) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }

    int32_t *ids;
    size_t n;
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double e0 = mg_now();
        if (bpe_encode(t, text, len, &ids, &n, err) < 0) {
            fprintf(stderr, "bench: %s\n", err);
            return 1;
        }
        double e1 = mg_now();
        best = MG_MIN(best, e1 - e0);
        if (rep < 2) mg_free(ids);
    }
    printf("encode: %zu tokens, %.3f bytes/token, best of 3: %.3f s = %.1f MB/s\n", n,
           (double)len / n, best, len / 1e6 / best);

    char *back;
    size_t blen;
    if (bpe_decode(t, ids, n, &back, &blen, err) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    int ok = blen == len && memcmp(back, text, len) == 0;
    printf("round trip on the whole corpus: %s\n", ok ? "ok" : "MISMATCH");
    mg_free(back);
    mg_free(ids);
    bpe_free(t);
    mg_free(text);
    return ok ? 0 : 1;
}
