/* bench_kernels.c - CPU kernel timings for docs/kernel-fusion.md: the (T,T)
 * vs flash attention, fused vs unfused LayerNorm+residual, bias+GELU,
 * AdamW+clipping, softmax cross-entropy, and the N=1 matmul (decode).
 *
 *   make -j2 minigpt && gcc -O3 -march=native -fopenmp -Isrc \
 *     -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/bench_kernels.c build/libminigpt.a \
 *     -L/usr/lib/x86_64-linux-gnu/openblas-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp \
 *     -lopenblas -lpcre2-8 -lcjson -ledit -lm -o build/bench_kernels
 *   build/bench_kernels [attention|fused|decode|all] [threads]
 *
 * Each figure is the best of 15 runs (ms per call): the machine this was
 * written on is a shared 2-core VM, and the minimum is the least disturbed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "model/gpt.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"
#include "ops/ops.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static float *rnd(size_t n, float s) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = s * ((float)rand() / RAND_MAX - 0.5f);
    return p;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
#define REPS 15
/* best (least disturbed) ms of REPS runs of `body` (each repeated `inner` times) */
#define TIME(result, inner, body)                                                                  \
    do {                                                                                           \
        double ts_[REPS];                                                                          \
        body; /* warm-up */                                                                        \
        for (int r_ = 0; r_ < REPS; r_++) {                                                        \
            double t0_ = now();                                                                    \
            for (int i_ = 0; i_ < (inner); i_++) { body; }                                        \
            ts_[r_] = (now() - t0_) * 1e3 / (inner);                                               \
        }                                                                                          \
        qsort(ts_, REPS, sizeof(double), cmpd);                                                    \
        result = ts_[0];                                                                    \
    } while (0)

static void bench_attention(void) {
    const ops_backend_t *ops = ops_cpu();
    (void)ops;
    struct { int B, T, C, NH; const char *what; } sh[] = {
        {8, 64, 256, 4, "mini, T 64"},     {8, 128, 256, 4, "mini, T 128"},
        {8, 256, 256, 4, "mini (B8 T256 C256 NH4)"}, {4, 512, 512, 8, "small (B4 T512 C512 NH8)"},
        {1, 1024, 768, 12, "gpt2 (B1 T1024 C768 NH12)"}, {2, 1024, 768, 12, "gpt2 (B2 T1024 C768 NH12)"},
    };
    printf("attention, ms per call (fwd, bwd, state MB per layer)\n");
    printf("%-28s %9s %9s %8s | %9s %9s %8s\n", "shape", "full fwd", "full bwd", "state", "flash fwd",
           "flash bwd", "state");
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int B = sh[s].B, T = sh[s].T, C = sh[s].C, NH = sh[s].NH;
        size_t N = (size_t)B * T;
        float *qkv = rnd(N * 3 * C, 2.0f), *out = rnd(N * C, 1), *dout = rnd(N * C, 1);
        float *dqkv = rnd(N * 3 * C, 1);
        size_t full_n = (size_t)B * NH * T * T, flash_n = (size_t)B * NH * T;
        float *att = calloc(full_n, sizeof(float)), *lse = calloc(flash_n, sizeof(float));
        int inner = T >= 1024 ? 1 : 3;
        double ff, fb, lf, lb;
        TIME(ff, inner, cpu_attention_full_forward(out, att, qkv, B, T, C, NH));
        TIME(fb, inner, cpu_attention_full_backward(dqkv, dout, qkv, att, B, T, C, NH));
        TIME(lf, inner, cpu_attention_flash_forward(out, lse, qkv, B, T, C, NH));
        TIME(lb, inner, cpu_attention_flash_backward(dqkv, dout, qkv, out, lse, B, T, C, NH));
        printf("%-28s %9.2f %9.2f %8.2f | %9.2f %9.2f %8.3f\n", sh[s].what, ff, fb,
               full_n * 4.0 / 1e6, lf, lb, flash_n * 4.0 / 1e6);
        free(qkv); free(out); free(dout); free(dqkv); free(att); free(lse);
    }
}

/* the cross-entropy as it was before (3 passes, 2 exps per logit), for comparison */
static void xent_before(float *losses, float *dlogits, const float *logits, const int32_t *targets,
                        int N, int V, float dloss) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float mx = l[0];
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        float sum = 0.0f;
        for (int i = 0; i < V; i++) sum += cpu_expf(l[i] - mx);
        float lse = mx + logf(sum);
        int y = targets[n];
        losses[n] = lse - l[y];
        float *d = dlogits + (size_t)n * V;
        for (int i = 0; i < V; i++) d[i] = cpu_expf(l[i] - lse) * dloss;
        d[y] -= dloss;
    }
}

static void bench_fused(void) {
    const ops_backend_t *o = ops_cpu();
    struct { int N, C, V; const char *what; } sh[] = {
        {2048, 256, 4096, "mini: N=B*T=8x256, C 256, V 4096"},
        {2048, 768, 50257, "gpt2: N=2x1024, C 768, V 50257"},
    };
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int N = sh[s].N, C = sh[s].C, C4 = 4 * C, V = sh[s].V;
        size_t n = (size_t)N * C, n4 = (size_t)N * C4;
        printf("\n%s: ms per call, unfused -> fused\n", sh[s].what);
        float *a = rnd(n, 2), *b = rnd(n, 2), *res = rnd(n, 1), *out = rnd(n, 1), *w = rnd(C, 1),
              *bias = rnd(C4, 1), *mean = rnd(N, 1), *rstd = rnd(N, 1), *dout = rnd(n, 1),
              *dx = rnd(n, 1), *dw = rnd(C, 1), *db = rnd(C, 1);
        double u, f;
        TIME(u, 5, { o->add(res, a, b, n); o->layernorm_forward(out, mean, rstd, res, w, bias, N, C); });
        TIME(f, 5, o->residual_layernorm_forward(res, out, mean, rstd, a, b, w, bias, N, C));
        printf("  %-44s %8.3f -> %8.3f\n", "residual add + layernorm forward", u, f);
        TIME(u, 5, o->layernorm_backward(dx, dw, db, dout, res, w, mean, rstd, N, C));
        TIME(f, 5, o->residual_layernorm_backward(dx, dw, db, dout, res, w, mean, rstd, N, C));
        printf("  %-44s %8.3f -> %8.3f\n", "layernorm backward (dx, dw, db)", u, f);
        float *x = rnd(n, 1), *W = rnd((size_t)C4 * C, 0.05f), *pre = rnd(n4, 1), *g = rnd(n4, 1),
              *d4 = rnd(n4, 1), *dbias = rnd(C4, 1);
        /* the passes around the fc sgemm (the sgemm itself is the same either way) */
        TIME(u, 5, { cpu_bias_add(pre, bias, N, C4); o->gelu_forward(g, pre, n4); });
        TIME(f, 5, cpu_bias_gelu(pre, g, bias, N, C4));
        printf("  %-44s %8.3f -> %8.3f\n", "fc bias add + gelu forward (after the sgemm)", u, f);
        TIME(u, 5, { o->gelu_backward(d4, pre, g, n4); cpu_bias_backward(dbias, d4, N, C4); });
        TIME(f, 5, o->gelu_bias_backward(d4, dbias, pre, g, N, C4));
        printf("  %-44s %8.3f -> %8.3f\n", "gelu backward + fc bias gradient", u, f);
        double mm;
        TIME(mm, 2, o->matmul_forward(pre, x, W, NULL, N, C, C4));
        printf("  %-44s %8.3f\n", "(for scale: the fc sgemm forward)", mm);
        /* cross-entropy over (N,V), in place as in training */
        int Nx = V > 10000 ? 512 : N;
        float *logits = rnd((size_t)Nx * V, 8), *dl = rnd((size_t)Nx * V, 1), *losses = rnd(Nx, 1);
        int32_t *tg = malloc(Nx * sizeof(int32_t));
        for (int i = 0; i < Nx; i++) tg[i] = i % V;
        TIME(u, 3, xent_before(losses, dl, logits, tg, Nx, V, 1.0f / Nx));
        TIME(f, 3, o->xent_forward_backward(losses, dl, logits, tg, Nx, V, 1.0f / Nx));
        printf("  %-44s %8.3f -> %8.3f   (N %d)\n", "softmax + cross-entropy + gradient", u, f, Nx);
        free(logits); free(dl); free(losses); free(tg);
        free(a); free(b); free(res); free(out); free(w); free(bias); free(mean); free(rstd);
        free(dout); free(dx); free(dw); free(db); free(x); free(W); free(pre); free(g); free(d4);
        free(dbias);
    }
    /* AdamW over a model's whole parameter table */
    const char *presets[] = {"mini", "gpt2"};
    for (int k = 0; k < 2; k++) {
        char err[256];
        gpt_config_t cfg;
        gpt_preset(presets[k], &cfg, err);
        gpt_model_t *m = gpt_create(&cfg, o, err);
        size_t n = m->num_floats;
        float *g = rnd(n, 0.01f), *mm = calloc(n, 4), *vv = calloc(n, 4);
        ops_segment_t *seg = malloc(m->n_params * sizeof *seg);
        for (int i = 0; i < m->n_params; i++)
            seg[i] = (ops_segment_t){m->params[i].offset, m->params[i].numel, m->params[i].decay};
        double u, f;
        int t = 1;
        TIME(u, 1, {
            float norm = (float)sqrt(o->sq_norm(g, n));
            float sc = norm > 1.0f ? 1.0f / norm : 1.0f;
            for (int i = 0; i < m->n_params; i++)
                o->adamw(m->weights + seg[i].offset, g + seg[i].offset, mm + seg[i].offset,
                         vv + seg[i].offset, seg[i].numel, 1e-3f, 0.9f, 0.95f, 1e-8f,
                         seg[i].decay ? 0.1f : 0.0f, sc, t);
        });
        TIME(f, 1, o->adamw_clip(m->weights, g, mm, vv, seg, m->n_params, 1e-3f, 0.9f, 0.95f, 1e-8f,
                                 0.1f, 1.0f, t));
        printf("\n%s (%zu parameters, %d tensors): norm + clipping + AdamW %8.3f -> %8.3f ms\n",
               presets[k], n, m->n_params, u, f);
        free(g); free(mm); free(vv); free(seg);
        gpt_free(m);
    }
}

/* the alternative to sgemv measured for N = 1: OpenMP over output rows,
 * four rows at a time, vectorised dot products */
static void omp_matvec(float *out, const float *x, const float *w, const float *bias, int C, int OC) {
    /* four rows at a time: each load of x feeds four FMAs */
    int OC4 = OC / 4 * 4;
#pragma omp parallel
    {
#pragma omp for schedule(static) nowait
        for (int o = 0; o < OC4; o += 4) {
            const float *w0 = w + (size_t)o * C, *w1 = w0 + C, *w2 = w1 + C, *w3 = w2 + C;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
            for (int i = 0; i < C; i++) {
                a0 += w0[i] * x[i];
                a1 += w1[i] * x[i];
                a2 += w2[i] * x[i];
                a3 += w3[i] * x[i];
            }
            out[o] = bias ? a0 + bias[o] : a0;
            out[o + 1] = bias ? a1 + bias[o + 1] : a1;
            out[o + 2] = bias ? a2 + bias[o + 2] : a2;
            out[o + 3] = bias ? a3 + bias[o + 3] : a3;
        }
#pragma omp for schedule(static)
        for (int o = OC4; o < OC; o++) {
            const float *wr = w + (size_t)o * C;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int i = 0; i < C; i++) acc += wr[i] * x[i];
            out[o] = bias ? acc + bias[o] : acc;
        }
    }
}

/* decoding: one row through the linear layers, N = 1 */
static void bench_decode(void) {
    struct { int C, OC; const char *what; } sh[] = {
        {256, 768, "mini qkv 256->768"},    {256, 1024, "mini fc 256->1024"},
        {1024, 256, "mini fc2 1024->256"},  {256, 4096, "mini head 256->4096"},
        {768, 2304, "gpt2 qkv 768->2304"},  {768, 3072, "gpt2 fc 768->3072"},
        {3072, 768, "gpt2 fc2 3072->768"},  {768, 50257, "gpt2 head 768->50257"},
    };
    printf("\nN=1 matmul (decode), ms per call: sgemm M=1 | sgemv | OpenMP matvec\n");
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int C = sh[s].C, OC = sh[s].OC;
        float *x = rnd(C, 1), *w = rnd((size_t)OC * C, 0.1f), *out = rnd(OC, 1), *bias = rnd(OC, 1);
        double a, b, c;
        int inner = OC > 10000 ? 5 : 50;
        TIME(a, inner, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, OC, C, 1.0f, x, C, w, C, 0.0f, out, OC));
        TIME(b, inner, cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, x, 1, 0.0f, out, 1));
        TIME(c, inner, omp_matvec(out, x, w, bias, C, OC));
        printf("  %-24s %8.4f %8.4f %8.4f   (weights %.1f MB: %.1f GB/s by the matvec)\n", sh[s].what, a,
               b, c, OC * (double)C * 4 / 1e6, OC * (double)C * 4 / 1e6 / c);
        free(x); free(w); free(out); free(bias);
    }
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    ops_cpu_set_threads(argc > 2 ? atoi(argv[2]) : 0);
    printf("%s, %d threads\n", ops_cpu()->describe(), ops_cpu_threads());
    if (!strcmp(what, "attention") || !strcmp(what, "all")) bench_attention();
    if (!strcmp(what, "fused") || !strcmp(what, "all")) bench_fused();
    if (!strcmp(what, "decode") || !strcmp(what, "all")) bench_decode();
    return 0;
}
