/* test_cuda.c - the CUDA backend against the CPU backend: each kernel on
 * random inputs, then the whole model (logits, loss, every gradient, 20
 * AdamW steps) at float32 and bf16, and greedy decoding. Without a usable
 * GPU every test reports itself skipped, by name. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "infer/kv.h"
#include "infer/sample.h"
#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "ops/ops.h"
#include "util/common.h"

static const ops_backend_t *cpu, *gpu;
static char why[MG_ERR_LEN];
static mg_rng_t rng;

static int setup(void **state) {
    (void)state;
    cpu = ops_cpu();
    ops_cpu_set_threads(0);
    gpu = ops_select("cuda", "fp32", 0, NULL, why);
    if (!gpu)
        printf("CUDA tests skipped: %s\n", why);
    else
        printf("GPU: %s\n", gpu->describe());
    mg_rng_seed(&rng, 2024);
    return 0;
}
#define NEED_GPU()                                                                                 \
    do {                                                                                           \
        if (!gpu) skip();                                                                          \
    } while (0)

/* ---- host/device buffers: the same data on both backends ---- */
typedef struct {
    size_t n;
    float *c, *g; /* cpu buffer, gpu buffer */
} pair_t;

static pair_t pair_rand(size_t n, float scale) {
    pair_t p = {n, cpu->alloc(n * sizeof(float)), gpu->alloc(n * sizeof(float))};
    for (size_t i = 0; i < n; i++)
        p.c[i] = mg_rng_normal(&rng) * scale;
    gpu->upload(p.g, p.c, n * sizeof(float));
    return p;
}
static pair_t pair_zero(size_t n) {
    return (pair_t){n, cpu->alloc(n * sizeof(float)), gpu->alloc(n * sizeof(float))};
}
/* NaN in the GPU copy: an element the kernel fails to write shows up */
static void poison(pair_t *p) {
    float *h = mg_malloc(p->n * sizeof(float));
    for (size_t i = 0; i < p->n; i++)
        h[i] = NAN;
    gpu->upload(p->g, h, p->n * sizeof(float));
    mg_free(h);
}
static void pair_free(pair_t *p) {
    cpu->free(p->c);
    gpu->free(p->g);
}

/* ||gpu - cpu|| / ||cpu|| over the first n floats; NaN fails any bound */
static double rel_err_n(const float *c, const float *g_dev, size_t n) {
    float *h = mg_malloc(n * sizeof(float));
    gpu->download(h, g_dev, n * sizeof(float));
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)h[i] - c[i];
        num += d * d;
        den += (double)c[i] * c[i];
    }
    mg_free(h);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
static double rel_err(const pair_t *p) { return rel_err_n(p->c, p->g, p->n); }

#define CHECK(what, err, tol)                                                                      \
    do {                                                                                           \
        double e_ = (err);                                                                         \
        printf("  %-32s rel err %.2e\n", what, e_);                                                \
        assert_true(e_ < (tol));                                                                   \
    } while (0)

static void test_pointwise_and_rows(void **state) {
    (void)state;
    NEED_GPU();
    int N = 77, C = 96, V = 1000;
    pair_t x = pair_rand((size_t)N * C, 1.0f), y = pair_zero((size_t)N * C),
           y2 = pair_rand((size_t)N * C, 1.0f);
    cpu->gelu_forward(y.c, x.c, y.n);
    gpu->gelu_forward(y.g, x.g, y.n);
    CHECK("gelu forward", rel_err(&y), 1e-5);
    cpu->gelu_backward(y.c, x.c, y2.c, y.n);
    gpu->gelu_backward(y.g, x.g, y2.g, y.n);
    CHECK("gelu backward", rel_err(&y), 1e-5);
    cpu->add(y.c, x.c, y2.c, y.n);
    gpu->add(y.g, x.g, y2.g, y.n);
    CHECK("add", rel_err(&y), 1e-6);
    /* fused: residual add + layernorm out of place, with its statistics
     * (the plain LayerNorm: test_layernorm_widths) */
    pair_t w = pair_rand(C, 1.0f), b = pair_rand(C, 1.0f), mean = pair_zero(N), rstd = pair_zero(N);
    pair_t db = pair_rand(C, 1.0f);
    pair_t res = pair_zero(y.n);
    cpu->residual_layernorm_forward(res.c, y.c, mean.c, rstd.c, x.c, y2.c, w.c, b.c, N, C);
    gpu->residual_layernorm_forward(res.g, y.g, mean.g, rstd.g, x.g, y2.g, w.g, b.g, N, C);
    CHECK("fused residual+layernorm: res", rel_err(&res), 1e-6);
    CHECK("fused residual+layernorm: out", rel_err(&y), 1e-5);
    CHECK("fused residual+layernorm: rstd", rel_err(&rstd), 1e-5);
    /* fused: GELU backward + bias gradient */
    cpu->gelu_bias_backward(res.c, db.c, x.c, y2.c, N, C);
    gpu->gelu_bias_backward(res.g, db.g, x.g, y2.g, N, C);
    CHECK("fused gelu+bias backward: dpre", rel_err(&res), 1e-5);
    CHECK("fused gelu+bias backward: dbias", rel_err(&db), 1e-5);
    pair_free(&res);
    /* softmax cross-entropy, in place as the model calls it */
    pair_t logits = pair_rand((size_t)N * V, 3.0f), losses = pair_zero(N);
    int32_t *tc = cpu->alloc(N * sizeof(int32_t)), *tg = gpu->alloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++)
        tc[i] = (int32_t)mg_rng_below(&rng, V);
    gpu->upload(tg, tc, N * sizeof(int32_t));
    cpu->xent_forward_backward(losses.c, logits.c, logits.c, tc, N, V, 1.0f / N);
    gpu->xent_forward_backward(losses.g, logits.g, logits.g, tg, N, V, 1.0f / N);
    CHECK("cross-entropy losses", rel_err(&losses), 1e-5);
    CHECK("cross-entropy dlogits", rel_err(&logits), 1e-5);
    /* embedding, with repeated tokens (atomics on the same rows) */
    int B = 7, T = 11;
    pair_t wte = pair_rand((size_t)V * C, 1.0f), wpe = pair_rand((size_t)T * C, 1.0f),
           emb = pair_zero((size_t)B * T * C);
    for (int i = 0; i < B * T; i++)
        tc[i] = (int32_t)mg_rng_below(&rng, 5);
    gpu->upload(tg, tc, B * T * sizeof(int32_t));
    cpu->embed_forward(emb.c, tc, wte.c, wpe.c, B, T, C, 0);
    gpu->embed_forward(emb.g, tg, wte.g, wpe.g, B, T, C, 0);
    CHECK("embedding forward", rel_err(&emb), 1e-6);
    pair_t demb = pair_rand(emb.n, 1.0f);
    cpu->embed_backward(wte.c, wpe.c, demb.c, tc, B, T, C);
    gpu->embed_backward(wte.g, wpe.g, demb.g, tg, B, T, C);
    CHECK("embedding backward dwte (+=)", rel_err(&wte), 1e-5);
    CHECK("embedding backward dwpe (+=)", rel_err(&wpe), 1e-5);
    /* AdamW and the squared norm */
    pair_t p = pair_rand(1001, 1.0f), g = pair_rand(1001, 1.0f), m = pair_rand(1001, 0.1f),
           v = pair_zero(1001);
    for (int i = 0; i < 1001; i++)
        v.c[i] = fabsf(m.c[i]);
    gpu->upload(v.g, v.c, 1001 * sizeof(float));
    double nc = cpu->sq_norm(g.c, g.n), ng = gpu->sq_norm(g.g, g.n);
    CHECK("squared norm", fabs(nc - ng) / nc, 1e-9);
    for (int t = 1; t <= 3; t++) {
        cpu->adamw(p.c, g.c, m.c, v.c, p.n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
        gpu->adamw(p.g, g.g, m.g, v.g, p.n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
    }
    CHECK("adamw parameters", rel_err(&p), 1e-6);
    /* argmax (greedy decoding) with ties: the first index wins, as on the host */
    int32_t *best = gpu->alloc(sizeof(int32_t)), got = -1;
    for (int k = 0; k < 3; k++) {
        int n = k == 0 ? 1 : k == 1 ? 1000 : 50257;
        for (int i = 0; i < n; i++)
            logits.c[i] = (float)mg_rng_below(&rng, k == 2 ? 40 : 7);
        gpu->upload(logits.g, logits.c, n * sizeof(float));
        gpu->argmax(best, logits.g, n);
        gpu->download(&got, best, sizeof got);
        printf("  argmax of %d (ties): %d, host %d\n", n, got, sample_argmax(logits.c, n));
        assert_int_equal(got, sample_argmax(logits.c, n));
    }
    gpu->free(best);
    CHECK("adamw second moment", rel_err(&v), 1e-6);
    pair_t *all[] = {&x,      &y,   &y2,  &w,   &b,    &mean, &rstd, &db, &logits,
                     &losses, &wte, &wpe, &emb, &demb, &p,    &g,    &m,  &v};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        pair_free(all[i]);
    cpu->free(tc);
    gpu->free(tg);
}

/* LayerNorm forward, backward (accumulating) and the residual-fused
 * forward at widths of each register kernel and of the wide path; the
 * residual one also in place (res aliasing a), as decoding calls it */
static void test_layernorm_widths(void **state) {
    (void)state;
    NEED_GPU();
    int shapes[][2] = {{77, 96}, {33, 500}, {41, 768}, {9, 1024}, {5, 1100}};
    for (int k = 0; k < 5; k++) {
        int N = shapes[k][0], C = shapes[k][1];
        printf(" N %d, C %d\n", N, C);
        pair_t x = pair_rand((size_t)N * C, 1.0f), y = pair_zero(x.n), g = pair_rand(x.n, 1.0f);
        pair_t w = pair_rand(C, 1.0f), b = pair_rand(C, 1.0f), mean = pair_zero(N),
               rstd = pair_zero(N);
        poison(&y);
        cpu->layernorm_forward(y.c, mean.c, rstd.c, x.c, w.c, b.c, N, C);
        gpu->layernorm_forward(y.g, mean.g, rstd.g, x.g, w.g, b.g, N, C);
        CHECK("  layernorm forward", rel_err(&y), 1e-5);
        CHECK("  layernorm mean", rel_err(&mean), 1e-5);
        CHECK("  layernorm rstd", rel_err(&rstd), 1e-5);
        pair_t dx = pair_rand(x.n, 1.0f), dw = pair_rand(C, 1.0f), db = pair_rand(C, 1.0f);
        cpu->layernorm_backward(dx.c, dw.c, db.c, g.c, x.c, w.c, mean.c, rstd.c, N, C);
        gpu->layernorm_backward(dx.g, dw.g, db.g, g.g, x.g, w.g, mean.g, rstd.g, N, C);
        CHECK("  layernorm backward dx (+=)", rel_err(&dx), 1e-5);
        CHECK("  layernorm backward dw (+=)", rel_err(&dw), 1e-5);
        CHECK("  layernorm backward db (+=)", rel_err(&db), 1e-5);
        poison(&y);
        cpu->residual_layernorm_forward(x.c, y.c, NULL, NULL, x.c, g.c, w.c, b.c, N, C);
        gpu->residual_layernorm_forward(x.g, y.g, NULL, NULL, x.g, g.g, w.g, b.g, N, C);
        CHECK("  residual+layernorm in place: res", rel_err(&x), 1e-6);
        CHECK("  residual+layernorm in place: out", rel_err(&y), 1e-5);
        pair_t *all[] = {&x, &y, &g, &w, &b, &mean, &rstd, &dx, &dw, &db};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            pair_free(all[i]);
    }
}

/* bf16 copies of activations (cuda_shadow.cu): a LayerNorm leaves one of
 * its output for the next matmul; anything else that writes that buffer
 * (an upload, an in-place add) must retire it, or the matmul would read
 * the old values. At bf16, against the CPU in float32. */
static void test_shadow_copies(void **state) {
    (void)state;
    NEED_GPU();
    const ops_backend_t *g16 = ops_select("cuda", "bf16", 0, NULL, why);
    assert_non_null(g16);
    int N = 256, C = 64, OC = 96; /* enough rows for the bf16 path */
    pair_t x = pair_rand((size_t)N * C, 1.0f), y = pair_zero(x.n), z = pair_rand(x.n, 1.0f);
    pair_t lw = pair_rand(C, 1.0f), lb = pair_rand(C, 1.0f), w = pair_rand((size_t)OC * C, 0.1f);
    pair_t bias = pair_rand(OC, 1.0f), out = pair_zero((size_t)N * OC);
    pair_t dout = pair_rand(out.n, 1.0f), dx = pair_zero(x.n), dw = pair_zero(w.n);
    cpu->layernorm_forward(y.c, NULL, NULL, x.c, lw.c, lb.c, N, C);
    g16->layernorm_forward(y.g, NULL, NULL, x.g, lw.g, lb.g, N, C);
    cpu->matmul_forward(out.c, y.c, w.c, bias.c, N, C, OC);
    g16->matmul_forward(out.g, y.g, w.g, bias.g, N, C, OC);
    CHECK("matmul of a LayerNorm's output (its copy)", rel_err(&out), 2e-2);
    g16->matmul_backward(dx.g, dw.g, NULL, dout.g, y.g, w.g, N, C, OC);
    cpu->matmul_backward(dx.c, dw.c, NULL, dout.c, y.c, w.c, N, C, OC);
    CHECK("  ... backward dw (x from its copy)", rel_err(&dw), 2e-2);
    /* new contents by upload: the copy is stale */
    g16->upload(y.g, z.c, z.n * sizeof(float));
    memcpy(y.c, z.c, z.n * sizeof(float));
    cpu->matmul_forward(out.c, y.c, w.c, bias.c, N, C, OC);
    g16->matmul_forward(out.g, y.g, w.g, bias.g, N, C, OC);
    CHECK("after an upload over it", rel_err(&out), 2e-2);
    /* new contents by an in-place add after a fresh copy */
    cpu->layernorm_forward(y.c, NULL, NULL, x.c, lw.c, lb.c, N, C);
    g16->layernorm_forward(y.g, NULL, NULL, x.g, lw.g, lb.g, N, C);
    cpu->add(y.c, y.c, z.c, y.n);
    g16->add(y.g, y.g, z.g, y.n);
    cpu->matmul_forward(out.c, y.c, w.c, bias.c, N, C, OC);
    g16->matmul_forward(out.g, y.g, w.g, bias.g, N, C, OC);
    CHECK("after an in-place add", rel_err(&out), 2e-2);
    pair_t *all[] = {&x, &y, &z, &lw, &lb, &w, &bias, &out, &dout, &dx, &dw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        pair_free(all[i]);
    gpu = ops_select("cuda", "fp32", 0, NULL, why); /* the precision is the backend's */
}

/* A producer's bf16 copy of buf (N,C) must be exactly what the matmul's
 * own conversion makes: the matmul runs on the copy, then again after an
 * upload of the same values retires it (so it converts); the two outputs
 * must be equal bit for bit. */
static void check_copy(const ops_backend_t *g, const char *what, float *buf, int N, int C) {
    int OC = 64;
    size_t bytes = (size_t)N * C * sizeof(float), obytes = (size_t)N * OC * sizeof(float);
    float *host = mg_malloc(bytes), *h1 = mg_malloc(obytes), *h2 = mg_malloc(obytes);
    pair_t w = pair_rand((size_t)OC * C, 0.1f);
    float *o1 = g->alloc(obytes), *o2 = g->alloc(obytes);
    g->download(host, buf, bytes);
    g->matmul_forward(o1, buf, w.g, NULL, N, C, OC);
    g->upload(buf, host, bytes);
    g->matmul_forward(o2, buf, w.g, NULL, N, C, OC);
    g->download(h1, o1, obytes);
    g->download(h2, o2, obytes);
    int same = memcmp(h1, h2, obytes) == 0;
    printf("  copy of the %-28s %s\n", what, same ? "= conversion" : "DIFFERS");
    assert_true(same);
    g->free(o1);
    g->free(o2);
    pair_free(&w);
    mg_free(host);
    mg_free(h1);
    mg_free(h2);
}

/* every producer of a copy (at bf16, rows enough for the bf16 matmul) */
static void test_copies_match_conversion(void **state) {
    (void)state;
    NEED_GPU();
    const ops_backend_t *g = ops_select("cuda", "bf16", 0, NULL, why);
    assert_non_null(g);
    int B = 2, T = 128, C = 128, NH = 2, N = B * T, V = 512;
    pair_t x = pair_rand((size_t)N * C, 1.0f), z = pair_rand(x.n, 1.0f), y = pair_zero(x.n),
           res = pair_zero(x.n);
    pair_t lw = pair_rand(C, 1.0f), lb = pair_rand(C, 1.0f), mean = pair_zero(N),
           rstd = pair_zero(N);
    pair_t dw = pair_zero(C), db = pair_zero(C), dx = pair_rand(x.n, 1.0f);
    g->layernorm_forward(y.g, mean.g, rstd.g, x.g, lw.g, lb.g, N, C);
    check_copy(g, "LayerNorm output", y.g, N, C);
    g->residual_layernorm_forward(res.g, y.g, mean.g, rstd.g, x.g, z.g, lw.g, lb.g, N, C);
    check_copy(g, "residual LayerNorm output", y.g, N, C);
    g->layernorm_backward(dx.g, dw.g, db.g, z.g, res.g, lw.g, mean.g, rstd.g, N, C);
    check_copy(g, "LayerNorm backward dx", dx.g, N, C);
    pair_t fw = pair_rand((size_t)4 * C * C, 0.1f), fb = pair_rand(4 * C, 0.1f);
    pair_t pre = pair_zero((size_t)N * 4 * C), act = pair_zero(pre.n), g4 = pair_rand(pre.n, 1.0f),
           db4 = pair_zero(4 * C);
    g->matmul_bias_gelu_forward(pre.g, act.g, y.g, fw.g, fb.g, N, C, 4 * C);
    check_copy(g, "GELU output", act.g, N, 4 * C);
    g->gelu_bias_backward(g4.g, db4.g, pre.g, g4.g, N, 4 * C);
    check_copy(g, "GELU backward dpre", g4.g, N, 4 * C);
    pair_t logits = pair_rand((size_t)N * V, 3.0f), losses = pair_zero(N);
    int32_t *tc = cpu->alloc(N * sizeof(int32_t)), *tg = g->alloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++)
        tc[i] = (int32_t)mg_rng_below(&rng, V);
    g->upload(tg, tc, N * sizeof(int32_t));
    g->xent_forward_backward(losses.g, logits.g, logits.g, tg, N, V, 1.0f / N);
    check_copy(g, "loss gradient", logits.g, N, V);
    pair_t qkv = pair_rand((size_t)N * 3 * C, 1.0f), out = pair_zero(x.n), dqkv = pair_zero(qkv.n);
    float *att = g->alloc(g->attention_state_floats(B, NH, T) * sizeof(float));
    g->attention_forward(out.g, att, qkv.g, B, T, C, NH);
    check_copy(g, "attention output", out.g, N, C);
    g->attention_backward(dqkv.g, z.g, qkv.g, out.g, att, B, T, C, NH);
    check_copy(g, "attention backward dqkv", dqkv.g, N, 3 * C);
    g->free(att);
    cpu->free(tc);
    g->free(tg);
    pair_t *all[] = {&x,  &z,  &y,   &res, &lw, &lb,  &mean,   &rstd,   &dw,  &db,  &dx,
                     &fw, &fb, &pre, &act, &g4, &db4, &logits, &losses, &qkv, &out, &dqkv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        pair_free(all[i]);
    gpu = ops_select("cuda", "fp32", 0, NULL, why); /* the precision is the backend's */
}

static void test_matmul(void **state) {
    (void)state;
    NEED_GPU();
    /* one row (the decoding GEMV: a short row, a row of the unrolled loop
     * plus its tail, a long row) and many */
    int shapes[][3] = {{1, 64, 200}, {1, 520, 77}, {1, 3072, 768}, {37, 96, 288}, {300, 128, 512}};
    for (int s = 0; s < 5; s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        pair_t x = pair_rand((size_t)N * C, 1.0f), w = pair_rand((size_t)OC * C, 0.1f),
               b = pair_rand(OC, 1.0f);
        pair_t out = pair_zero((size_t)N * OC), dout = pair_rand(out.n, 1.0f), dx = pair_zero(x.n);
        pair_t dw = pair_rand(w.n, 1.0f), db = pair_rand(OC, 1.0f);
        cpu->matmul_forward(out.c, x.c, w.c, b.c, N, C, OC);
        gpu->matmul_forward(out.g, x.g, w.g, b.g, N, C, OC);
        char what[64];
        snprintf(what, sizeof what, "matmul %dx%dx%d forward", N, C, OC);
        CHECK(what, rel_err(&out), 1e-5);
        cpu->matmul_forward(out.c, x.c, w.c, NULL, N, C, OC);
        gpu->matmul_forward(out.g, x.g, w.g, NULL, N, C, OC);
        CHECK("  ... without bias", rel_err(&out), 1e-5);
        cpu->matmul_backward(dx.c, dw.c, db.c, dout.c, x.c, w.c, N, C, OC);
        gpu->matmul_backward(dx.g, dw.g, db.g, dout.g, x.g, w.g, N, C, OC);
        CHECK("  ... backward dx", rel_err(&dx), 1e-5);
        CHECK("  ... backward dw (+=)", rel_err(&dw), 1e-5);
        CHECK("  ... backward dbias (+=)", rel_err(&db), 1e-5);
        pair_t act = pair_zero(out.n);
        poison(&out);
        poison(&act);
        cpu->matmul_bias_gelu_forward(out.c, act.c, x.c, w.c, b.c, N, C, OC);
        gpu->matmul_bias_gelu_forward(out.g, act.g, x.g, w.g, b.g, N, C, OC);
        CHECK("  ... fused bias+GELU: pre", rel_err(&out), 1e-5);
        CHECK("  ... fused bias+GELU: out", rel_err(&act), 1e-5);
        pair_t *all[] = {&x, &w, &b, &out, &dout, &dx, &dw, &db, &act};
        for (size_t i = 0; i < 9; i++)
            pair_free(all[i]);
    }
}

/* flash-style attention vs the CPU's (T,T) attention, at sizes around the
 * kernels' tiles (32 and 64 keys, 64 and 128 rows) and several head sizes;
 * fp32 runs the float32 kernels, bf16 the tensor-core ones */
static void check_attention(const char *precision, double tol_fwd, double tol_bwd) {
    gpu = ops_select("cuda", precision, 0, NULL, why);
    assert_non_null(gpu);
    printf(" precision %s\n", precision);
    int cases[][4] = {{1, 1, 64, 1},   {2, 31, 64, 2},  {2, 129, 128, 2},
                      {1, 300, 96, 3}, {2, 200, 64, 4}, {1, 70, 256, 2}};
    for (int k = 0; k < 6; k++) {
        int B = cases[k][0], T = cases[k][1], C = cases[k][2], NH = cases[k][3];
        pair_t qkv = pair_rand((size_t)B * T * 3 * C, 1.0f), out = pair_zero((size_t)B * T * C);
        float *attc = cpu->alloc(cpu->attention_state_floats(B, NH, T) * sizeof(float));
        float *attg = gpu->alloc(gpu->attention_state_floats(B, NH, T) * sizeof(float));
        poison(&out);
        cpu->attention_forward(out.c, attc, qkv.c, B, T, C, NH);
        gpu->attention_forward(out.g, attg, qkv.g, B, T, C, NH);
        char what[64];
        snprintf(what, sizeof what, "attention B%d T%d C%d NH%d fwd", B, T, C, NH);
        CHECK(what, rel_err(&out), tol_fwd);
        pair_t dout = pair_rand(out.n, 1.0f), dqkv = pair_zero(qkv.n);
        poison(&dqkv);
        cpu->attention_backward(dqkv.c, dout.c, qkv.c, out.c, attc, B, T, C, NH);
        gpu->attention_backward(dqkv.g, dout.g, qkv.g, out.g, attg, B, T, C, NH);
        CHECK("  ... backward dqkv", rel_err(&dqkv), tol_bwd);
        /* the cached (decoding) path: prefill T-1 rows then one */
        pair_t kc = pair_zero((size_t)T * C), vc = pair_zero((size_t)T * C),
               o2 = pair_zero((size_t)T * C);
        int pre = T > 1 ? T - 1 : 1;
        for (int step = 0; step < 2 && (step == 0 || pre < T); step++) {
            int n = step == 0 ? pre : 1, pos0 = step == 0 ? 0 : pre;
            cpu->attention_cached(o2.c + (size_t)pos0 * C, kc.c, vc.c, qkv.c + (size_t)pos0 * 3 * C,
                                  n, pos0, C, NH);
            gpu->attention_cached(o2.g + (size_t)pos0 * C, kc.g, vc.g, qkv.g + (size_t)pos0 * 3 * C,
                                  n, pos0, C, NH);
        }
        CHECK("  ... cached (prefill + 1)", rel_err(&o2), 1e-5); /* float32 in both precisions */
        pair_t *all[] = {&qkv, &out, &dout, &dqkv, &kc, &vc, &o2};
        for (size_t i = 0; i < 7; i++)
            pair_free(all[i]);
        cpu->free(attc);
        gpu->free(attg);
    }
    gpu = ops_select("cuda", "fp32", 0, NULL, why);
}

static void test_attention(void **state) {
    (void)state;
    NEED_GPU();
    check_attention("fp32", 1e-5, 1e-4);
    check_attention("bf16", 3e-2, 6e-2);
}

/* ---- the whole model ---- */
static const gpt_config_t cfg = {.vocab = 300, .ctx = 160, .dim = 128, .layers = 2, .heads = 2};
enum { B = 3, T = 150 };

static void batch(int32_t *tok, int32_t *tgt) {
    for (int i = 0; i < B * T; i++) { /* a learnable pattern: next = f(current) */
        tok[i] = (int32_t)((i * 7 + (i / T) * 13) % cfg.vocab);
        tgt[i] = (int32_t)((tok[i] * 7 + 3) % cfg.vocab);
    }
}

static gpt_model_t *model_on(const ops_backend_t *ops) {
    char err[MG_ERR_LEN];
    gpt_model_t *m = gpt_create(&cfg, ops, err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 7, err), 0);
    assert_int_equal(gpt_alloc_training(m, B, T, err), 0);
    return m;
}

static void compare_models(const char *precision, double tol_logits, double tol_grad,
                           double tol_loss) {
    gpu = ops_select("cuda", precision, 0, NULL, why);
    assert_non_null(gpu);
    printf(" precision %s\n", precision);
    gpt_model_t *mc = model_on(cpu), *mg = model_on(gpu);
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    size_t NV = (size_t)B * T * cfg.vocab;
    gpt_forward(mc, tok, NULL, B, T);
    gpt_forward(mg, tok, NULL, B, T);
    CHECK("logits", rel_err_n(mc->a.logits, mg->a.logits, NV), tol_logits);
    float lc = gpt_forward(mc, tok, tgt, B, T), lg = gpt_forward(mg, tok, tgt, B, T);
    printf("  loss cpu %.6f gpu %.6f\n", lc, lg);
    assert_true(fabsf(lc - lg) < tol_loss);
    gpt_zero_grad(mc);
    gpt_zero_grad(mg);
    gpt_backward(mc);
    gpt_backward(mg);
    double worst = 0.0;
    const char *worst_name = "";
    for (int i = 0; i < mc->n_params; i++) {
        const gpt_param_t *p = &mc->params[i];
        double e = rel_err_n(mc->grads + p->offset, mg->grads + p->offset, p->numel);
        if (!(e <= worst)) worst = e, worst_name = p->name; /* NaN is worst */
    }
    printf("  every gradient: worst %s\n", worst_name);
    CHECK("gradients (worst tensor)", worst, tol_grad);
    double max_diff = 0.0;
    for (int step = 0; step < 20; step++) {
        lc = gpt_forward(mc, tok, tgt, B, T);
        lg = gpt_forward(mg, tok, tgt, B, T);
        gpt_zero_grad(mc);
        gpt_zero_grad(mg);
        gpt_backward(mc);
        gpt_backward(mg);
        gpt_adamw_step(mc, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
        gpt_adamw_step(mg, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
        if (step % 5 == 0 || step == 19)
            printf("  step %2d loss cpu %.5f gpu %.5f\n", step, lc, lg);
        max_diff = fmax(max_diff, fabs(lc - lg) / lc); /* relative: the loss falls 10x */
        assert_false(isnan(lg));
    }
    assert_true(lc < 5.0f); /* it learned the pattern (ln 300 = 5.7 at the start) */
    CHECK("20 AdamW steps: max rel loss diff", max_diff, tol_loss);
    gpt_free(mc);
    gpt_free(mg);
    gpu = ops_select("cuda", "fp32", 0, NULL, why);
}

static void test_model_fp32(void **state) {
    (void)state;
    NEED_GPU();
    compare_models("fp32", 1e-4, 1e-3, 1e-4);
}

static void test_model_bf16(void **state) {
    (void)state;
    NEED_GPU();
    compare_models("bf16", 2e-2, 5e-2, 6e-2); /* bf16 rounding, compounded over 20 steps */
}

/* The GPU's draw (ops sample) against the host's (sample_token_u) on the
 * same logits and uniform numbers: temperature alone, top-k, top-p and
 * both, on 1000 and 50257 tokens. Float rounding (expf, sums in another
 * order) may move a draw that falls within an ulp of a boundary, so the
 * check is that at least 99% of the draws agree; a wrong cut, order or
 * walk agrees far less. A cut that keeps more candidates than the GPU
 * sorts answers -1 (wide nuclei of these random logits): not compared. */
static void test_sampling(void **state) {
    (void)state;
    NEED_GPU();
    const struct {
        float temp;
        int k;
        float p;
    } opts[] = {
        {0.8f, 0, 1.0f}, {1.0f, 40, 1.0f}, {0.8f, 0, 0.9f}, {1.2f, 5, 0.5f}, {1.5f, 0, 0.95f}};
    int sizes[] = {1000, 50257};
    float *scratch = mg_malloc(2 * 50257 * sizeof(float));
    int32_t *pick = gpu->alloc(sizeof(int32_t));
    pair_t x = pair_zero(50257);
    int draws = 0, same = 0, host = 0;
    for (size_t oi = 0; oi < sizeof opts / sizeof opts[0]; oi++)
        for (int si = 0; si < 2; si++) {
            int V = sizes[si];
            sample_opts_t o = {
                .temperature = opts[oi].temp, .top_k = opts[oi].k, .top_p = opts[oi].p};
            for (int rep = 0; rep < 3; rep++) {
                for (int i = 0; i < V; i++)
                    x.c[i] = 3.0f * mg_rng_normal(&rng);
                gpu->upload(x.g, x.c, V * sizeof(float));
                for (int d = 0; d < 40; d++) {
                    float u = mg_rng_float(&rng);
                    int32_t got = -2;
                    gpu->sample(pick, x.g, V, o.temperature, o.top_k, o.top_p, u);
                    gpu->download(&got, pick, sizeof got);
                    int want = sample_token_u(x.c, V, &o, u, scratch, NULL, 0);
                    if (got == -1 && (o.top_k > 0 || o.top_p < 1.0f)) {
                        host++;
                        continue;
                    }
                    assert_true(got >= 0 && got < V);
                    draws++;
                    same += got == want;
                }
            }
        }
    printf("  GPU draws equal to the host's: %d of %d (%d left to the host)\n", same, draws, host);
    assert_true(draws >= 600);
    assert_true(same >= draws * 99 / 100);
    /* equal logits: top-p 0.99 keeps 49,755 candidates, beyond the GPU's sort */
    for (int i = 0; i < 50257; i++)
        x.c[i] = 0.0f;
    gpu->upload(x.g, x.c, 50257 * sizeof(float));
    int32_t got = 0;
    gpu->sample(pick, x.g, 50257, 1.0f, 0, 0.99f, 0.5f);
    gpu->download(&got, pick, sizeof got);
    assert_int_equal(got, -1);
    pair_free(&x);
    gpu->free(pick);
    mg_free(scratch);
}

/* temperature 0: both backends pick the same tokens, from the same
 * (trained, so not near-uniform) weights */
static void test_greedy_decoding(void **state) {
    (void)state;
    NEED_GPU();
    char err[MG_ERR_LEN];
    gpt_model_t *mc = model_on(cpu), *mg = model_on(gpu);
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    for (int step = 0; step < 30; step++) {
        gpt_forward(mc, tok, tgt, B, T);
        gpt_zero_grad(mc);
        gpt_backward(mc);
        gpt_adamw_step(mc, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
    }
    float *w = mg_malloc(mc->num_floats * sizeof(float));
    cpu->download(w, mc->weights, mc->num_floats * sizeof(float));
    gpu->upload(mg->weights, w, mc->num_floats * sizeof(float));
    mg_free(w);
    /* kd: the device's own argmax, only the id crossing back */
    kv_state_t *kc = kv_create(mc, err), *kg = kv_create(mg, err), *kd = kv_create(mg, err);
    assert_non_null(kc);
    assert_non_null(kg);
    assert_non_null(kd);
    int32_t prompt[5] = {1, 8, 59, 116, 200}, ac = 0, ag = 0, ad = -1;
    assert_int_equal(kv_feed(kc, prompt, 5, err), 0);
    assert_int_equal(kv_feed(kg, prompt, 5, err), 0);
    assert_int_equal(kv_feed_greedy(kd, prompt, 5, &ad, err), 0);
    int same = 0;
    for (int i = 0; i < 60; i++) {
        ac = ag = 0;
        for (int v = 0; v < cfg.vocab; v++) {
            if (kc->host_logits[v] > kc->host_logits[ac]) ac = v;
            if (kg->host_logits[v] > kg->host_logits[ag]) ag = v;
        }
        if (ac != ag || ad != ag) break;
        same++;
        assert_int_equal(kv_feed(kc, &ac, 1, err), 0);
        assert_int_equal(kv_feed(kg, &ag, 1, err), 0);
        assert_int_equal(kv_feed_greedy(kd, &ad, 1, &ad, err), 0);
    }
    printf("  greedy decoding: %d of 60 tokens identical\n", same);
    assert_int_equal(same, 60);
    /* sampling (temperature 0.8, top-k 40) with the same uniform numbers:
     * the CPU draws on the host, the GPU on the device */
    sample_opts_t so = {.temperature = 0.8f, .top_k = 40, .top_p = 1.0f};
    mg_rng_t ru;
    mg_rng_seed(&ru, 77);
    kv_reset(kc);
    kv_reset(kd);
    float u = mg_rng_float(&ru);
    assert_int_equal(kv_feed_next(kc, prompt, 5, &so, u, &ac, err), 0);
    assert_int_equal(kv_feed_next(kd, prompt, 5, &so, u, &ad, err), 0);
    same = 0;
    for (int i = 0; i < 40 && ac == ad; i++) {
        same++;
        u = mg_rng_float(&ru);
        assert_int_equal(kv_feed_next(kc, &ac, 1, &so, u, &ac, err), 0);
        assert_int_equal(kv_feed_next(kd, &ad, 1, &so, u, &ad, err), 0);
    }
    printf("  sampled decoding: %d of 40 tokens identical\n", same);
    assert_int_equal(same, 40);
    kv_free(kc);
    kv_free(kg);
    kv_free(kd);
    gpt_free(mc);
    gpt_free(mg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pointwise_and_rows),
        cmocka_unit_test(test_layernorm_widths),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_shadow_copies),
        cmocka_unit_test(test_copies_match_conversion),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_model_fp32),
        cmocka_unit_test(test_model_bf16),
        cmocka_unit_test(test_greedy_decoding),
        cmocka_unit_test(test_sampling),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
