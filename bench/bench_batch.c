/* bench_batch.c - decoding tokens/s of n sequences stepped together
 * (kv_feed_batch: one product per weight for all n) against the same n
 * sequences fed one at a time (kv_feed), on a preset with random weights.
 *
 *   make -j2 CUDA=0 minigpt && gcc -O3 -march=native -fopenmp -Isrc \
 *     -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/bench_batch.c build/libminigpt.a \
 *     -L/usr/lib/x86_64-linux-gnu/openblas-openmp
 * -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp \ -lopenblas -lpcre2-8 -lcjson -ledit
 * -lmicrohttpd -lm -o build/bench_batch build/bench_batch [preset] [threads] [int8]
 *
 * Each sequence first takes a 16-token prompt, then 64 decoding steps; each
 * figure is the best of 5 runs (a shared machine: the least disturbed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/kv.h"
#include "model/gpt.h"
#include "ops/ops.h"
#include "util/common.h"

#define PROMPT 16
#define STEPS 64
#define RUNS 5
#define MAXN 8

/* tokens/s of STEPS steps of n sequences, batched or one at a time */
static double run(kv_state_t **kv, int n, int batched, int V, char *err) {
    double best = 0.0;
    for (int r = 0; r < RUNS; r++) {
        int32_t prompt[PROMPT], next[MAXN];
        for (int i = 0; i < n; i++) {
            kv_reset(kv[i]);
            for (int t = 0; t < PROMPT; t++)
                prompt[t] = (int32_t)((t * 31 + i * 7) % V);
            if (kv_feed(kv[i], prompt, PROMPT, err) != 0) return -1.0;
            next[i] = (int32_t)((i * 13) % V);
        }
        double t0 = mg_now();
        for (int s = 0; s < STEPS; s++) {
            if (batched) {
                if (kv_feed_batch(kv, next, n, err) != 0) return -1.0;
            } else {
                for (int i = 0; i < n; i++)
                    if (kv_feed(kv[i], &next[i], 1, err) != 0) return -1.0;
            }
            for (int i = 0; i < n; i++)
                next[i] = (next[i] * 17 + 5) % V;
        }
        double tps = n * STEPS / (mg_now() - t0);
        if (tps > best) best = tps;
    }
    return best;
}

int main(int argc, char **argv) {
    char err[MG_ERR_LEN];
    const char *preset = argc > 1 ? argv[1] : "tiny";
    int threads = argc > 2 ? atoi(argv[2]) : 0, q8 = argc > 3 && strcmp(argv[3], "int8") == 0;
    const ops_backend_t *ops = ops_select("cpu", NULL, threads, NULL, err);
    gpt_config_t cfg;
    gpt_model_t *m = NULL;
    kv_state_t *kv[MAXN] = {0};
    int rc = 1;
    if (!ops || gpt_preset(preset, &cfg, err) != 0) goto done;
    if (!(m = gpt_create(&cfg, ops, err)) || gpt_init_weights(m, 1, err) != 0) goto done;
    for (int i = 0; i < MAXN; i++)
        if (!(kv[i] = kv_create(m, err)) || (q8 && kv_quantize(kv[i], err) != 0)) goto done;
    printf("%s (%zu parameters), %s weights: decoding tokens/s, best of %d runs of %d steps\n",
           preset, m->num_floats, q8 ? "int8" : "float32", RUNS, STEPS);
    printf("  n   one at a time   batched   speed-up\n");
    for (int n = 1; n <= MAXN; n *= 2) {
        double one = run(kv, n, 0, cfg.vocab, err), bat = run(kv, n, 1, cfg.vocab, err);
        if (one < 0 || bat < 0) goto done;
        printf("%3d   %13.0f   %7.0f   %7.2fx\n", n, one, bat, bat / one);
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "bench_batch: %s\n", err);
    for (int i = 0; i < MAXN; i++)
        kv_free(kv[i]);
    gpt_free(m);
    return rc;
}
