/* bench_kernels.c - CPU kernel timings for docs/kernel-fusion.md: the (T,T)
 * vs flash attention, fused vs unfused LayerNorm+residual, bias+GELU,
 * AdamW+clipping, softmax cross-entropy, the N=1 matmul (decode), where
 * the time of a GPT-2 124M decode step goes, op by op (step), and Muon's
 * Newton-Schulz and update per layer at the presets' widths (muon).
 *
 *   make -j2 minigpt && gcc -O3 -march=native -fopenmp -Isrc \
 *     -I/usr/include/x86_64-linux-gnu/openblas-openmp bench/bench_kernels.c build/libminigpt.a \
 *     -L/usr/lib/x86_64-linux-gnu/openblas-openmp
 * -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp \ -lopenblas -lpcre2-8 -lcjson -ledit -lm -o
 * build/bench_kernels build/bench_kernels [attention|fused|decode|step|muon|all] [threads]
 *
 * Each figure is the best of 15 runs (ms per call): the machine this was
 * written on is a shared 2-core VM, and the minimum is the least disturbed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "infer/kv.h"
#include "model/gpt.h"
#include "ops/cpu/cpu.h"
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
    for (size_t i = 0; i < n; i++)
        p[i] = s * ((float)rand() / RAND_MAX - 0.5f);
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
            for (int i_ = 0; i_ < (inner); i_++) {                                                 \
                body;                                                                              \
            }                                                                                      \
            ts_[r_] = (now() - t0_) * 1e3 / (inner);                                               \
        }                                                                                          \
        qsort(ts_, REPS, sizeof(double), cmpd);                                                    \
        result = ts_[0];                                                                           \
    } while (0)

static void bench_attention(void) {
    const ops_backend_t *ops = ops_cpu();
    (void)ops;
    struct {
        int B, T, C, NH;
        const char *what;
    } sh[] = {
        {8, 64, 256, 4, "mini, T 64"},
        {8, 128, 256, 4, "mini, T 128"},
        {8, 256, 256, 4, "mini (B8 T256 C256 NH4)"},
        {4, 512, 512, 8, "small (B4 T512 C512 NH8)"},
        {1, 1024, 768, 12, "gpt2 (B1 T1024 C768 NH12)"},
        {2, 1024, 768, 12, "gpt2 (B2 T1024 C768 NH12)"},
    };
    printf("attention, ms per call (fwd, bwd, state MB per layer)\n");
    printf("%-28s %9s %9s %8s | %9s %9s %8s\n", "shape", "full fwd", "full bwd", "state",
           "flash fwd", "flash bwd", "state");
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
        free(qkv);
        free(out);
        free(dout);
        free(dqkv);
        free(att);
        free(lse);
    }
}

/* the cross-entropy as it was before (3 passes, 2 exps per logit), for comparison */
static void xent_before(float *losses, float *dlogits, const float *logits, const int32_t *targets,
                        int N, int V, float dloss) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float mx = l[0];
        for (int i = 1; i < V; i++)
            mx = l[i] > mx ? l[i] : mx;
        float sum = 0.0f;
        for (int i = 0; i < V; i++)
            sum += cpu_expf(l[i] - mx);
        float lse = mx + logf(sum);
        int y = targets[n];
        losses[n] = lse - l[y];
        float *d = dlogits + (size_t)n * V;
        for (int i = 0; i < V; i++)
            d[i] = cpu_expf(l[i] - lse) * dloss;
        d[y] -= dloss;
    }
}

static void bench_fused(void) {
    const ops_backend_t *o = ops_cpu();
    struct {
        int N, C, V;
        const char *what;
    } sh[] = {
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
        TIME(u, 5, {
            o->add(res, a, b, n);
            o->layernorm_forward(out, mean, rstd, res, w, bias, N, C);
        });
        TIME(f, 5, o->residual_layernorm_forward(res, out, mean, rstd, a, b, w, bias, N, C));
        printf("  %-44s %8.3f -> %8.3f\n", "residual add + layernorm forward", u, f);
        TIME(u, 5, o->layernorm_backward(dx, dw, db, dout, res, w, mean, rstd, N, C));
        TIME(f, 5, o->residual_layernorm_backward(dx, dw, db, dout, res, w, mean, rstd, N, C));
        printf("  %-44s %8.3f -> %8.3f\n", "layernorm backward (dx, dw, db)", u, f);
        float *x = rnd(n, 1), *W = rnd((size_t)C4 * C, 0.05f), *pre = rnd(n4, 1), *g = rnd(n4, 1),
              *d4 = rnd(n4, 1), *dbias = rnd(C4, 1);
        /* the passes around the fc sgemm (the sgemm itself is the same either way) */
        TIME(u, 5, {
            cpu_bias_add(pre, bias, N, C4);
            o->gelu_forward(g, pre, n4);
        });
        TIME(f, 5, cpu_bias_gelu(pre, g, bias, N, C4));
        printf("  %-44s %8.3f -> %8.3f\n", "fc bias add + gelu forward (after the sgemm)", u, f);
        TIME(u, 5, {
            o->gelu_backward(d4, pre, g, n4);
            cpu_bias_backward(dbias, d4, N, C4);
        });
        TIME(f, 5, o->gelu_bias_backward(d4, dbias, pre, g, N, C4));
        printf("  %-44s %8.3f -> %8.3f\n", "gelu backward + fc bias gradient", u, f);
        double mm;
        TIME(mm, 2, o->matmul_forward(pre, x, W, NULL, N, C, C4));
        printf("  %-44s %8.3f\n", "(for scale: the fc sgemm forward)", mm);
        /* cross-entropy over (N,V), in place as in training */
        int Nx = V > 10000 ? 512 : N;
        float *logits = rnd((size_t)Nx * V, 8), *dl = rnd((size_t)Nx * V, 1), *losses = rnd(Nx, 1);
        int32_t *tg = malloc(Nx * sizeof(int32_t));
        for (int i = 0; i < Nx; i++)
            tg[i] = i % V;
        TIME(u, 3, xent_before(losses, dl, logits, tg, Nx, V, 1.0f / Nx));
        TIME(f, 3, o->xent_forward_backward(losses, dl, logits, tg, Nx, V, 1.0f / Nx));
        printf("  %-44s %8.3f -> %8.3f   (N %d)\n", "softmax + cross-entropy + gradient", u, f, Nx);
        free(logits);
        free(dl);
        free(losses);
        free(tg);
        free(a);
        free(b);
        free(res);
        free(out);
        free(w);
        free(bias);
        free(mean);
        free(rstd);
        free(dout);
        free(dx);
        free(dw);
        free(db);
        free(x);
        free(W);
        free(pre);
        free(g);
        free(d4);
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
        TIME(f, 1,
             o->adamw_clip(m->weights, g, mm, vv, seg, m->n_params, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                           1.0f, t));
        printf("\n%s (%zu parameters, %d tensors): norm + clipping + AdamW %8.3f -> %8.3f ms\n",
               presets[k], n, m->n_params, u, f);
        free(g);
        free(mm);
        free(vv);
        free(seg);
        gpt_free(m);
    }
}

/* decoding: one row through the linear layers, N = 1: BLAS sgemv against
 * the kernel (cpu_matvec), on one matrix called again and again (in cache
 * when it fits) and on fresh copies of it, one after another through 512
 * MB (streamed from memory, as in a real decode step). The weights are the
 * backend's allocation, 64-byte aligned, as the model's are. */
static void bench_decode(void) {
    struct {
        int C, OC;
        const char *what;
    } sh[] = {
        {256, 768, "mini qkv 256->768"},   {256, 1024, "mini fc 256->1024"},
        {1024, 256, "mini fc2 1024->256"}, {256, 4096, "mini head 256->4096"},
        {768, 2304, "gpt2 qkv 768->2304"}, {768, 3072, "gpt2 fc 768->3072"},
        {3072, 768, "gpt2 fc2 3072->768"}, {768, 50257, "gpt2 head 768->50257"},
    };
    const ops_backend_t *o = ops_cpu();
    size_t arena_n = (size_t)128 << 20; /* 512 MB */
    float *arena = o->alloc(arena_n * sizeof(float));
    for (size_t i = 0; i < arena_n; i++)
        arena[i] = 0.1f * ((float)(i % 1021) / 1021 - 0.5f);
    printf("\nN=1 matmul (decode), ms per call: in cache: sgemv | matvec; from memory: sgemv | "
           "matvec\n");
    for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
        int C = sh[s].C, OC = sh[s].OC;
        size_t wn = (size_t)OC * C, copies = arena_n / wn, k = 0;
        float *x = rnd(C, 1), *out = rnd(OC, 1), *bias = rnd(OC, 1), *w = arena;
        double hb, hm, cb, cm;
        int inner = OC > 10000 ? 5 : 50, cold = (int)(copies < 50 ? copies : 50);
        TIME(hb, inner,
             cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, x, 1, 0.0f, out, 1));
        TIME(hm, inner, cpu_matvec(out, x, w, bias, C, OC));
        TIME(cb, cold, {
            k = (k + 1) % copies;
            cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, arena + k * wn, C, x, 1, 0.0f,
                        out, 1);
        });
        TIME(cm, cold, {
            k = (k + 1) % copies;
            cpu_matvec(out, x, arena + k * wn, bias, C, OC);
        });
        double mb = wn * 4.0 / 1e6;
        printf("  %-22s %5.1f MB %8.4f %8.4f | %8.4f %8.4f   (from memory: %.1f | %.1f GB/s)\n",
               sh[s].what, mb, hb, hm, cb, cm, mb / cb, mb / cm);
        free(x);
        free(out);
        free(bias);
    }
    o->free(arena);
}

/* step: GPT-2 124M decoding through the real kv_feed, on a copy of the CPU
 * backend whose entries time each call (the matmuls told apart by shape):
 * ms per token for each op of a decode step, and the weight bandwidth of
 * the matmuls (their weights are read once per token). */
enum { ST_EMBED, ST_LN, ST_QKV, ST_PROJ, ST_FC, ST_FC2, ST_HEAD, ST_ATTN, ST_GELU, ST_ADD, ST_N };
static const char *st_name[ST_N] = {"embedding",         "layernorm (+ residual)", "qkv matvec",
                                    "proj matvec",       "fc matvec (+ GELU)",     "fc2 matvec",
                                    "classifier matvec", "attention (cached)",     "gelu",
                                    "residual add"};
static double st_s[ST_N], st_bytes[ST_N];
static int st_C;
#define ST_TIME(op, call)                                                                          \
    do {                                                                                           \
        double t0_ = now();                                                                        \
        call;                                                                                      \
        st_s[op] += now() - t0_;                                                                   \
    } while (0)
static void st_embed(float *out, const int32_t *tok, const float *wte, const float *wpe, int B,
                     int T, int C, int pos0) {
    ST_TIME(ST_EMBED, cpu_embed_forward(out, tok, wte, wpe, B, T, C, pos0));
}
static void st_ln(float *out, float *mean, float *rstd, const float *x, const float *w,
                  const float *b, int N, int C) {
    ST_TIME(ST_LN, cpu_layernorm_forward(out, mean, rstd, x, w, b, N, C));
}
static void st_res_ln(float *res, float *out, float *mean, float *rstd, const float *a,
                      const float *b, const float *w, const float *bias, int N, int C) {
    ST_TIME(ST_LN, cpu_residual_layernorm_forward(res, out, mean, rstd, a, b, w, bias, N, C));
}
static void st_matmul(float *out, const float *x, const float *w, const float *bias, int N, int C,
                      int OC) {
    int op = OC == 3 * st_C   ? ST_QKV
             : OC == 4 * st_C ? ST_FC
             : C == 4 * st_C  ? ST_FC2
             : OC == st_C     ? ST_PROJ
                              : ST_HEAD;
    ST_TIME(op, cpu_matmul_forward(out, x, w, bias, N, C, OC));
    st_bytes[op] += (double)OC * C * sizeof(float);
}
static void st_fc_gelu(float *pre, float *out, const float *x, const float *w, const float *bias,
                       int N, int C, int OC) {
    ST_TIME(ST_FC, cpu_matmul_bias_gelu_forward(pre, out, x, w, bias, N, C, OC));
    st_bytes[ST_FC] += (double)OC * C * sizeof(float);
}
static void st_attn(float *out, float *kcache, float *vcache, const float *qkv, int n, int pos0,
                    int C, int NH) {
    ST_TIME(ST_ATTN, cpu_attention_cached(out, kcache, vcache, qkv, n, pos0, C, NH));
}
static void st_gelu(float *out, const float *x, size_t n) {
    ST_TIME(ST_GELU, cpu_gelu_forward(out, x, n));
}
static void st_add(float *out, const float *a, const float *b, size_t n) {
    ST_TIME(ST_ADD, cpu_add(out, a, b, n));
}

static void bench_step(void) {
    char err[256];
    gpt_config_t cfg;
    gpt_preset("gpt2", &cfg, err);
    cfg.ctx = 64; /* as bench/bench_cpu.sh: 63 tokens decoded after one */
    st_C = cfg.dim;
    ops_backend_t timed = *ops_cpu();
    timed.embed_forward = st_embed;
    timed.layernorm_forward = st_ln;
    timed.residual_layernorm_forward = st_res_ln;
    timed.matmul_forward = st_matmul;
    timed.matmul_bias_gelu_forward = st_fc_gelu;
    timed.attention_cached = st_attn;
    timed.gelu_forward = st_gelu;
    timed.add = st_add;
    gpt_model_t *m = gpt_create(&cfg, &timed, err);
    kv_state_t *kv = m && gpt_init_weights(m, 1, err) == 0 ? kv_create(m, err) : NULL;
    if (!kv) {
        printf("step: %s\n", err);
        gpt_free(m);
        return;
    }
    int D = cfg.ctx - 1, rounds = 10, tokens = 0;
    double best = 1e30, total = 0.0;
    for (int r = -1; r < rounds; r++) { /* round -1: warm-up, not counted */
        int32_t tok = 0;
        kv_reset(kv);
        kv_feed(kv, &tok, 1, err);
        if (r == 0) {
            memset(st_s, 0, sizeof st_s);
            memset(st_bytes, 0, sizeof st_bytes);
        }
        double t0 = now();
        for (int i = 0; i < D; i++) {
            tok = (tok * 31 + 7) % cfg.vocab;
            kv_feed(kv, &tok, 1, err);
        }
        double t = now() - t0;
        if (r < 0) continue;
        best = t < best ? t : best;
        total += t;
        tokens += D;
    }
    /* the prompt token of each round is in st_s too: scale to decoded tokens */
    double per = 1e3 / (tokens + rounds), sum = 0.0;
    printf("\nGPT-2 124M decode step (ctx %d, %d rounds of %d tokens): ms per token\n", cfg.ctx,
           rounds, D);
    for (int op = 0; op < ST_N; op++) {
        sum += st_s[op] * per;
        printf("  %-24s %7.3f", st_name[op], st_s[op] * per);
        if (st_bytes[op] > 0)
            printf("   %6.1f MB at %5.1f GB/s", st_bytes[op] / (tokens + rounds) / 1e6,
                   st_bytes[op] / st_s[op] / 1e9);
        printf("\n");
    }
    printf("  %-24s %7.3f\n  step (mean, best round) %7.3f %7.3f ms = %.1f / %.1f tok/s\n",
           "sum of ops", sum, total * 1e3 / tokens, best * 1e3 / D, tokens / total, D / best);
    /* the same matvecs back to back, nothing between: the bandwidth the
     * step would reach if the other ops cost nothing */
    double mv_best = 1e30, mv_bytes = 0.0;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (int l = 0; l < cfg.layers; l++) {
            const gpt_layer_t *w = &m->w.layer[l];
            cpu_matvec(kv->qkv, kv->ln, w->qkvw, w->qkvb, cfg.dim, 3 * cfg.dim);
            cpu_matvec(kv->tmp, kv->atty, w->projw, w->projb, cfg.dim, cfg.dim);
            cpu_matvec(kv->fch, kv->ln, w->fcw, w->fcb, cfg.dim, 4 * cfg.dim);
            cpu_matvec(kv->tmp, kv->fchg, w->fc2w, w->fc2b, 4 * cfg.dim, cfg.dim);
        }
        cpu_matvec(kv->logits, kv->ln, m->w.wte, NULL, cfg.dim, cfg.vocab);
        double t = now() - t0;
        mv_best = t < mv_best ? t : mv_best;
    }
    for (int op = ST_QKV; op <= ST_HEAD; op++)
        mv_bytes += st_bytes[op] / (tokens + rounds);
    printf("  matvecs alone, back to back (best of %d): %.3f ms = %.1f GB/s\n", rounds,
           mv_best * 1e3, mv_bytes / mv_best / 1e9);
    kv_free(kv);
    gpt_free(m);
}

/* Muon (cpu_muon.c): Newton-Schulz alone on a square (C,C) and a tall
 * (4C,C) matrix, and the whole update of one layer's four hidden matrices
 * (qkv in 3 blocks, proj, fc, fc2), against AdamW on the same floats. */
static void bench_muon(void) {
    printf("muon: Newton-Schulz (5 steps) and one layer's update, best of %d, ms\n", REPS);
    int widths[] = {128, 256, 768}; /* tiny, mini, gpt2 */
    for (int w = 0; w < 3; w++) {
        int C = widths[w];
        size_t n = (size_t)4 * C * C;
        float *x = rnd(n, 1.0f), *g = rnd(n, 1.0f), *buf = calloc(n, sizeof(float));
        float *p = rnd(n, 0.02f), *v = calloc(n, sizeof(float));
        float *work = malloc(cpu_muon_scratch_floats(4 * C, C, 1) * sizeof(float));
        double sq, tall, layer, adam;
        /* flops of one NS5 on (R,C'), m = min, k = max: 5 (3 m^2 k + 2 m^3) (the Gram
         * matrix by ssyrk, half an sgemm) */
        double c3 = (double)C * C * C, f_sq = 5.0 * 5.0 * c3, f_tall = 5.0 * 14.0 * c3;
        TIME(sq, 1, cpu_muon_orthogonalize(x, C, C, work));
        TIME(tall, 1, cpu_muon_orthogonalize(x, 4 * C, C, work));
        TIME(layer, 1, {
            cpu_muon_update(p, g, buf, 3 * C, C, 3, 0.02f, 0.95f, 0.1f, 1.0f, work);
            cpu_muon_update(p, g, buf, C, C, 1, 0.02f, 0.95f, 0.1f, 1.0f, work);
            cpu_muon_update(p, g, buf, 4 * C, C, 1, 0.02f, 0.95f, 0.1f, 1.0f, work);
            cpu_muon_update(p, g, buf, C, 4 * C, 1, 0.02f, 0.95f, 0.1f, 1.0f, work);
        });
        TIME(adam, 1, {
            cpu_adamw(p, g, buf, v, (size_t)3 * C * C, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 2);
            cpu_adamw(p, g, buf, v, (size_t)C * C, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 2);
            cpu_adamw(p, g, buf, v, (size_t)4 * C * C, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 2);
            cpu_adamw(p, g, buf, v, (size_t)4 * C * C, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 2);
        });
        printf("  C %4d: NS (C,C) %8.3f ms (%5.1f GFLOP/s)  NS (4C,C) %8.3f ms (%5.1f GFLOP/s)\n"
               "          one layer: Muon %8.3f ms, AdamW %6.3f ms on the same %zu floats\n",
               C, sq, f_sq / sq / 1e6, tall, f_tall / tall / 1e6, layer, adam, (size_t)12 * C * C);
        free(x);
        free(g);
        free(buf);
        free(p);
        free(v);
        free(work);
    }
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    ops_cpu_set_threads(argc > 2 ? atoi(argv[2]) : 0);
    printf("%s, %d threads\n", ops_cpu()->describe(), ops_cpu_threads());
    if (!strcmp(what, "attention") || !strcmp(what, "all")) bench_attention();
    if (!strcmp(what, "fused") || !strcmp(what, "all")) bench_fused();
    if (!strcmp(what, "decode") || !strcmp(what, "all")) bench_decode();
    if (!strcmp(what, "step") || !strcmp(what, "all")) bench_step();
    if (!strcmp(what, "muon") || !strcmp(what, "all")) bench_muon();
    return 0;
}
