/* bench_mlp.c - the cost of a training step (forward, backward, AdamW) with
 * each MLP (--mlp gelu, relu2, swiglu), fused kernels and not, on a preset
 * with random weights and tokens. The six models take their steps in turn,
 * one step each per round, so that a shared machine's drift hits them alike;
 * each figure is the median over the rounds of the wall time and of the
 * process's CPU time (all threads; with OMP_WAIT_POLICY=PASSIVE idle
 * threads sleep, so the CPU time is the work, whatever else runs).
 *
 *   make -j2 CUDA=0 minigpt && gcc -std=c11 -O3 -march=native -fopenmp -Isrc \
 *     -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/bench_mlp.c build/libminigpt.a \
 *     -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
 *     -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lpcre2-8 -lcjson \
 *     -ledit -lmicrohttpd -lm -o build/bench_mlp
 *   OMP_WAIT_POLICY=PASSIVE build/bench_mlp [preset] [threads] [rounds] [batch] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

#define NCFG 6
#define MAXR 64

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    ops_cpu_select_kernels(argv); /* the BLAS kernels minigpt itself runs (may restart) */
    const char *preset = argc > 1 ? argv[1] : "tiny";
    int threads = argc > 2 ? atoi(argv[2]) : 2, rounds = argc > 3 ? atoi(argv[3]) : 7;
    int B = argc > 4 ? atoi(argv[4]) : 8;
    char err[MG_ERR_LEN];
    gpt_config_t cfg;
    if (rounds < 1 || rounds > MAXR || gpt_preset(preset, &cfg, err)) {
        fprintf(stderr, "usage: bench_mlp [preset] [threads] [rounds <= %d] [batch]\n", MAXR);
        return 2;
    }
    ops_cpu_set_threads(threads);
    const ops_backend_t *ops = ops_cpu();
    int T = cfg.ctx;
    gpt_model_t *m[NCFG];
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    mg_rng_t rng;
    mg_rng_seed(&rng, 1);
    for (int i = 0; i < B * T; i++) {
        x[i] = (int32_t)mg_rng_below(&rng, (uint32_t)cfg.vocab);
        y[i] = (int32_t)mg_rng_below(&rng, (uint32_t)cfg.vocab);
    }
    for (int k = 0; k < NCFG; k++) { /* k / 2: the MLP; k % 2: unfused */
        gpt_config_t c = cfg;
        c.mlp = k / 2;
        m[k] = gpt_create(&c, ops, err);
        if (!m[k] || gpt_init_weights(m[k], 1, err) || gpt_alloc_training(m[k], B, T, err)) {
            fprintf(stderr, "bench_mlp: %s\n", err);
            return 1;
        }
        m[k]->no_fusion = k % 2;
    }
    static double wall[NCFG][MAXR], cpu[NCFG][MAXR];
    for (int r = -1; r < rounds; r++) /* round -1: warm-up, not counted */
        for (int k = 0; k < NCFG; k++) {
            double w0 = mg_now(), c0 = cpu_now();
            gpt_zero_grad(m[k]);
            gpt_forward(m[k], x, y, B, T);
            gpt_backward(m[k]);
            gpt_adamw_step(m[k], 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
            if (r >= 0) {
                wall[k][r] = mg_now() - w0;
                cpu[k][r] = cpu_now() - c0;
            }
        }
    printf("bench_mlp: %s, batch %d x %d, %d threads, median of %d rounds (ms per step)\n", preset,
           B, T, threads, rounds);
    printf("%-8s %-8s %10s %9s %7s %9s %7s\n", "mlp", "kernels", "params", "wall", "/gelu", "cpu",
           "/gelu");
    double w_gelu[2] = {0}, c_gelu[2] = {0};
    for (int k = 0; k < NCFG; k++) {
        double w = median(wall[k], rounds) * 1e3, c = median(cpu[k], rounds) * 1e3;
        if (k / 2 == 0) {
            w_gelu[k % 2] = w;
            c_gelu[k % 2] = c;
        }
        printf("%-8s %-8s %10zu %9.1f %7.3f %9.1f %7.3f\n", gpt_mlp_name(k / 2),
               k % 2 ? "unfused" : "fused", m[k]->num_floats, w, w / w_gelu[k % 2], c,
               c / c_gelu[k % 2]);
    }
    for (int k = 0; k < NCFG; k++)
        gpt_free(m[k]);
    free(x);
    free(y);
    return 0;
}
