/* test_gradcheck.c - every backward kernel, and the whole model, checked
 * against central finite differences of a scalar loss computed in double.
 *
 * For a kernel out = f(inputs), the scalar is L = sum(out * R) with a fixed
 * random R, so dL/dout = R is what the backward kernel receives. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "ops/ops.h"
#include "util/common.h"

#define MAX_IN 4

typedef struct gc_case gc_case_t;
struct gc_case {
    const char *name;
    int n_in;
    float *in[MAX_IN];   /* inputs that get gradients */
    float *grad[MAX_IN]; /* analytic gradients, filled by bwd */
    size_t in_n[MAX_IN];
    float *out, *R;
    size_t out_n;
    void (*fwd)(gc_case_t *);
    void (*bwd)(gc_case_t *); /* from dout = R */
    int dims[8];
    float *aux[4];
    int32_t *ids;
};

static mg_rng_t rng;
static const ops_backend_t *ops;

static float *rand_buf(size_t n, float scale) {
    float *p = mg_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = mg_rng_normal(&rng) * scale;
    return p;
}

static double loss_of(gc_case_t *c) {
    c->fwd(c);
    double s = 0.0;
    for (size_t i = 0; i < c->out_n; i++)
        s += (double)c->out[i] * c->R[i];
    return s;
}

/* Compares analytic and numeric gradients of every input element; the
 * error measure is |a - n| / max(|a| + |n|, floor). Returns the worst. */
static double run_check(gc_case_t *c, float eps) {
    for (int k = 0; k < c->n_in; k++)
        memset(c->grad[k], 0, c->in_n[k] * sizeof(float));
    c->fwd(c);
    c->bwd(c);
    double worst = 0.0;
    for (int k = 0; k < c->n_in; k++) {
        for (size_t i = 0; i < c->in_n[k]; i++) {
            float keep = c->in[k][i];
            c->in[k][i] = keep + eps;
            double lp = loss_of(c);
            c->in[k][i] = keep - eps;
            double lm = loss_of(c);
            c->in[k][i] = keep;
            double num = (lp - lm) / (2.0 * eps), ana = c->grad[k][i];
            double err = fabs(ana - num) / fmax(fabs(ana) + fabs(num), 1e-2);
            if (err > worst) worst = err;
        }
    }
    return worst;
}

static void free_case(gc_case_t *c) {
    for (int k = 0; k < c->n_in; k++) {
        mg_free(c->in[k]);
        mg_free(c->grad[k]);
    }
    for (int k = 0; k < 4; k++)
        mg_free(c->aux[k]);
    mg_free(c->out);
    mg_free(c->R);
    mg_free(c->ids);
}

static void setup_case(gc_case_t *c, int n_in, const size_t *sizes, size_t out_n) {
    c->n_in = n_in;
    for (int k = 0; k < n_in; k++) {
        c->in_n[k] = sizes[k];
        c->in[k] = rand_buf(sizes[k], 1.0f);
        c->grad[k] = mg_calloc(sizes[k], sizeof(float));
    }
    c->out_n = out_n;
    c->out = mg_calloc(out_n, sizeof(float));
    c->R = rand_buf(out_n, 1.0f);
}

/* ---- layernorm: inputs x (N,C), w (C), b (C) ---- */
static void ln_fwd(gc_case_t *c) {
    ops->layernorm_forward(c->out, c->aux[0], c->aux[1], c->in[0], c->in[1], c->in[2], c->dims[0],
                           c->dims[1]);
}
static void ln_bwd(gc_case_t *c) {
    ops->layernorm_backward(c->grad[0], c->grad[1], c->grad[2], c->R, c->in[0], c->in[1], c->aux[0],
                            c->aux[1], c->dims[0], c->dims[1]);
}
static void test_layernorm(void **state) {
    (void)state;
    int N = 6, C = 16;
    gc_case_t c = {.name = "layernorm", .fwd = ln_fwd, .bwd = ln_bwd, .dims = {N, C}};
    size_t sz[] = {(size_t)N * C, C, C};
    setup_case(&c, 3, sz, (size_t)N * C);
    c.aux[0] = mg_calloc(N, sizeof(float));
    c.aux[1] = mg_calloc(N, sizeof(float));
    double worst = run_check(&c, 1e-2f);
    printf("  layernorm worst rel err %.2e\n", worst);
    assert_true(worst < 1e-2);
    free_case(&c);
}

/* ---- rmsnorm: inputs x (N,C), w (C) ---- */
static void rms_fwd(gc_case_t *c) {
    ops->rmsnorm_forward(c->out, c->aux[0], c->in[0], c->in[1], c->dims[0], c->dims[1]);
}
static void rms_bwd(gc_case_t *c) {
    ops->rmsnorm_backward(c->grad[0], c->grad[1], c->R, c->in[0], c->in[1], c->aux[0], c->dims[0],
                          c->dims[1]);
}
static void test_rmsnorm(void **state) {
    (void)state;
    int N = 6, C = 16;
    gc_case_t c = {.name = "rmsnorm", .fwd = rms_fwd, .bwd = rms_bwd, .dims = {N, C}};
    size_t sz[] = {(size_t)N * C, C};
    setup_case(&c, 2, sz, (size_t)N * C);
    c.aux[0] = mg_calloc(N, sizeof(float));
    double worst = run_check(&c, 1e-2f);
    printf("  rmsnorm worst rel err %.2e\n", worst);
    assert_true(worst < 1e-2);
    free_case(&c);
}

/* ---- qk-norm and RoPE in place on qkv (n,3C): dims n, T, pos0, C, NH, rope, qk_norm ---- */
static void qk_fwd(gc_case_t *c) {
    const int *d = c->dims;
    memcpy(c->out, c->in[0], c->in_n[0] * sizeof(float));
    ops->qk_forward(c->out, c->aux[0], d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
}
static void qk_bwd(gc_case_t *c) {
    const int *d = c->dims;
    memcpy(c->grad[0], c->R, c->in_n[0] * sizeof(float));
    ops->qk_backward(c->grad[0], c->out, c->aux[0], d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
}
static void test_qk(void **state) {
    (void)state;
    /* rope alone, qk-norm alone, both; positions pos0 + i % T reach 13 */
    const int modes[3][2] = {{1, 0}, {0, 1}, {1, 1}};
    for (int k = 0; k < 3; k++) {
        int n = 6, T = 3, pos0 = 11, C = 16, NH = 2;
        gc_case_t c = {.name = "qk",
                       .fwd = qk_fwd,
                       .bwd = qk_bwd,
                       .dims = {n, T, pos0, C, NH, modes[k][0], modes[k][1]}};
        size_t sz[] = {(size_t)n * 3 * C};
        setup_case(&c, 1, sz, (size_t)n * 3 * C);
        c.aux[0] = mg_calloc((size_t)n * 2 * NH, sizeof(float));
        double worst = run_check(&c, 1e-2f);
        printf("  qk (rope %d, qk-norm %d) worst rel err %.2e\n", modes[k][0], modes[k][1], worst);
        assert_true(worst < 1e-2);
        free_case(&c);
    }
}

/* ---- matmul: x (N,C), w (OC,C), bias (OC) ---- */
static void mm_fwd(gc_case_t *c) {
    ops->matmul_forward(c->out, c->in[0], c->in[1], c->in[2], c->dims[0], c->dims[1], c->dims[2]);
}
static void mm_bwd(gc_case_t *c) {
    ops->matmul_backward(c->grad[0], c->grad[1], c->grad[2], c->R, c->in[0], c->in[1], c->dims[0],
                         c->dims[1], c->dims[2]);
}
static void test_matmul(void **state) {
    (void)state;
    int N = 5, C = 7, OC = 9;
    gc_case_t c = {.name = "matmul", .fwd = mm_fwd, .bwd = mm_bwd, .dims = {N, C, OC}};
    size_t sz[] = {(size_t)N * C, (size_t)OC * C, OC};
    setup_case(&c, 3, sz, (size_t)N * OC);
    double worst = run_check(&c, 1e-2f);
    printf("  matmul worst rel err %.2e\n", worst);
    assert_true(worst < 1e-2);
    free_case(&c);
}

/* ---- attention: qkv (B,T,3C) ---- */
static void at_fwd(gc_case_t *c) {
    ops->attention_forward(c->out, c->aux[0], c->in[0], c->dims[0], c->dims[1], c->dims[2],
                           c->dims[3]);
}
static void at_bwd(gc_case_t *c) {
    ops->attention_backward(c->grad[0], c->R, c->in[0], c->out, c->aux[0], c->dims[0], c->dims[1],
                            c->dims[2], c->dims[3]);
}
static void test_attention(void **state) {
    (void)state;
    int B = 2, T = 5, C = 8, NH = 2;
    gc_case_t c = {.name = "attention", .fwd = at_fwd, .bwd = at_bwd, .dims = {B, T, C, NH}};
    size_t sz[] = {(size_t)B * T * 3 * C};
    setup_case(&c, 1, sz, (size_t)B * T * C);
    c.aux[0] = mg_calloc(ops->attention_state_floats(B, NH, T), sizeof(float));
    double worst = run_check(&c, 1e-2f);
    printf("  attention worst rel err %.2e\n", worst);
    assert_true(worst < 1e-2);
    free_case(&c);
}

/* The KV-cache attention must equal the batch attention row by row. */
/* The KV-cache attention (a prefill, then one row at a time) against the
 * training kernel: T = 150 spans three of its 64-key tiles, and scores of
 * scale 3 move the running maximum from tile to tile. */
static void test_attention_cached_matches(void **state) {
    (void)state;
    const int Ts[] = {7, 150};
    for (int c = 0; c < 2; c++) {
        int T = Ts[c], C = 8, NH = 2, pre = T / 2;
        float *qkv = rand_buf((size_t)T * 3 * C, 3.0f);
        float *att = mg_calloc(ops->attention_state_floats(1, NH, T), sizeof(float));
        float *full = mg_calloc((size_t)T * C, sizeof(float)),
              *inc = mg_calloc((size_t)T * C, sizeof(float));
        float *kc = mg_calloc((size_t)T * C, sizeof(float)),
              *vc = mg_calloc((size_t)T * C, sizeof(float));
        ops->attention_forward(full, att, qkv, 1, T, C, NH);
        ops->attention_cached(inc, kc, vc, qkv, pre, 0, C, NH);
        for (int t = pre; t < T; t++)
            ops->attention_cached(inc + (size_t)t * C, kc, vc, qkv + (size_t)t * 3 * C, 1, t, C,
                                  NH);
        for (int i = 0; i < T * C; i++)
            assert_float_equal(full[i], inc[i], 1e-5);
        mg_free(qkv);
        mg_free(att);
        mg_free(full);
        mg_free(inc);
        mg_free(kc);
        mg_free(vc);
    }
}

/* ---- gelu ---- */
static void ge_fwd(gc_case_t *c) { ops->gelu_forward(c->out, c->in[0], c->in_n[0]); }
static void ge_bwd(gc_case_t *c) { ops->gelu_backward(c->grad[0], c->in[0], c->R, c->in_n[0]); }
static void test_gelu(void **state) {
    (void)state;
    gc_case_t c = {.name = "gelu", .fwd = ge_fwd, .bwd = ge_bwd};
    size_t sz[] = {64};
    setup_case(&c, 1, sz, 64);
    double worst = run_check(&c, 1e-3f);
    printf("  gelu worst rel err %.2e\n", worst);
    assert_true(worst < 1e-2);
    free_case(&c);
}

/* ---- softmax cross-entropy: logits (N,V); out = losses ---- */
static void xe_fwd(gc_case_t *c) {
    ops->xent_forward_backward(c->out, NULL, c->in[0], c->ids, c->dims[0], c->dims[1], 1.0f);
}
static void xe_bwd(gc_case_t *c) {
    /* the kernel's gradient is for dloss = 1 per row; weigh rows by R */
    int N = c->dims[0], V = c->dims[1];
    ops->xent_forward_backward(c->aux[0], c->grad[0], c->in[0], c->ids, N, V, 1.0f);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < V; i++)
            c->grad[0][(size_t)n * V + i] *= c->R[n];
}
static void test_xent(void **state) {
    (void)state;
    int N = 4, V = 11;
    gc_case_t c = {.name = "xent", .fwd = xe_fwd, .bwd = xe_bwd, .dims = {N, V}};
    size_t sz[] = {(size_t)N * V};
    setup_case(&c, 1, sz, N);
    c.aux[0] = mg_calloc(N, sizeof(float));
    c.ids = mg_malloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++)
        c.ids[n] = (int32_t)mg_rng_below(&rng, V);
    double worst = run_check(&c, 1e-2f);
    printf("  xent worst rel err %.2e\n", worst);
    assert_true(worst < 1e-2);
    free_case(&c);
}

/* ---- embedding: wte (V,C), wpe (T,C) ---- */
static void em_fwd(gc_case_t *c) {
    ops->embed_forward(c->out, c->ids, c->in[0], c->in[1], c->dims[0], c->dims[1], c->dims[2], 0);
}
static void em_bwd(gc_case_t *c) {
    ops->embed_backward(c->grad[0], c->grad[1], c->R, c->ids, c->dims[0], c->dims[1], c->dims[2]);
}
static void test_embed(void **state) {
    (void)state;
    int B = 2, T = 4, C = 3, V = 5;
    gc_case_t c = {.name = "embed", .fwd = em_fwd, .bwd = em_bwd, .dims = {B, T, C}};
    size_t sz[] = {(size_t)V * C, (size_t)T * C};
    setup_case(&c, 2, sz, (size_t)B * T * C);
    c.ids = mg_malloc((size_t)B * T * sizeof(int32_t));
    for (int i = 0; i < B * T; i++)
        c.ids[i] = i % 3; /* repeated ids: gradients must add up */
    double worst = run_check(&c, 1e-2f);
    printf("  embed worst rel err %.2e\n", worst);
    assert_true(worst < 1e-3);
    free_case(&c);
}

/* ---- the whole model: a few elements of every parameter tensor ---- */
/* A two-layer model (vocab 13, dim 8, context 6) with training buffers
 * for (B,6), weights larger than GPT-2's 0.02 so every path carries
 * signal, and B x 6 random tokens and targets. */
static gpt_model_t *small_model_cfg(const gpt_config_t *arch, uint64_t seed, int B, int32_t *tok,
                                    int32_t *tgt) {
    char err[MG_ERR_LEN];
    gpt_config_t cfg = *arch;
    cfg.vocab = 13;
    cfg.ctx = 6;
    cfg.dim = 8;
    cfg.layers = 2;
    cfg.heads = 2;
    gpt_model_t *m = gpt_create(&cfg, ops, err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, seed, err), 0);
    assert_int_equal(gpt_alloc_training(m, B, cfg.ctx, err), 0);
    for (size_t i = 0; i < m->num_floats; i++)
        m->weights[i] += mg_rng_normal(&rng) * 0.3f;
    for (int i = 0; i < B * cfg.ctx; i++) {
        tok[i] = (int32_t)mg_rng_below(&rng, cfg.vocab);
        tgt[i] = (int32_t)mg_rng_below(&rng, cfg.vocab);
    }
    return m;
}

/* The architecture options, one at a time and all together (with zero_init
 * the weights are still perturbed by small_model, so every path carries
 * signal). */
static const struct {
    const char *name;
    gpt_config_t cfg;
} variants[] = {
    {"gpt2", {0}},
    {"rope", {.pos = GPT_POS_ROPE}},
    {"rmsnorm", {.norm = GPT_NORM_RMS}},
    {"qk-norm", {.qk_norm = 1}},
    {"untied head", {.untie_head = 1}},
    {"zero init", {.zero_init = 1, .untie_head = 1}},
    {"all",
     {.pos = GPT_POS_ROPE, .norm = GPT_NORM_RMS, .qk_norm = 1, .untie_head = 1, .zero_init = 1}},
};
#define N_VARIANTS (int)(sizeof variants / sizeof variants[0])

/* (loss(w_i + h) - loss(w_i - h)) / 2h */
static double central(gpt_model_t *m, size_t i, float h, const int32_t *tok, const int32_t *tgt,
                      int B, int T) {
    float keep = m->weights[i];
    m->weights[i] = keep + h;
    double lp = gpt_forward(m, tok, tgt, B, T);
    m->weights[i] = keep - h;
    double lm = gpt_forward(m, tok, tgt, B, T);
    m->weights[i] = keep;
    return (lp - lm) / (2.0 * h);
}

static void check_model(const gpt_config_t *cfg, const char *name, int no_fusion) {
    int B = 2, T = 6;
    int32_t tok[12], tgt[12];
    gpt_model_t *m = small_model_cfg(cfg, 7, B, tok, tgt);
    m->no_fusion = no_fusion;
    gpt_zero_grad(m);
    gpt_forward(m, tok, tgt, B, T);
    gpt_backward(m);
    double worst = 0.0;
    for (int p = 0; p < m->n_params; p++) {
        const gpt_param_t *pp = &m->params[p];
        double worst_p = 0.0;
        for (int k = 0; k < 4; k++) {
            size_t i = pp->offset + mg_rng_below(&rng, (uint32_t)pp->numel);
            double num = central(m, i, 1e-2f, tok, tgt, B, T), ana = m->grads[i];
            /* the floor: the float32 loss's rounding and the step's
             * curvature leave ~5e-5 of noise in num (qk-norm's gradients
             * of ~1e-3 meet it), so smaller gradients count absolutely */
            double e = fabs(ana - num) / fmax(fabs(ana) + fabs(num), 3e-3);
            worst_p = fmax(worst_p, e);
        }
        if (worst_p > 2e-2) printf("  %s: rel err %.2e\n", pp->name, worst_p);
        worst = fmax(worst, worst_p);
    }
    printf("  whole model, %s%s (%d tensors) worst rel err %.2e\n", name,
           no_fusion ? ", unfused" : "", m->n_params, worst);
    assert_true(worst < 2e-2);
    gpt_free(m);
}

static void test_model(void **state) {
    (void)state;
    for (int v = 0; v < N_VARIANTS; v++)
        for (int no_fusion = 0; no_fusion < 2; no_fusion++) /* fused and unfused norms */
            check_model(&variants[v].cfg, variants[v].name, no_fusion);
}

/* Gradient accumulation: two micro-batches of 2 rows at grad_scale 1/2
 * give the gradient of one batch of 4 (fused and unfused kernels). */
static void check_accumulation(const gpt_config_t *cfg) {
    int B = 4, T = 6;
    int32_t tok[24], tgt[24];
    gpt_model_t *m = small_model_cfg(cfg, 11, B, tok, tgt);
    float *full = malloc(m->num_floats * sizeof(float));
    assert_non_null(full);
    for (int fused = 0; fused < 2; fused++) {
        m->no_fusion = !fused;
        m->grad_scale = 1.0f;
        gpt_zero_grad(m);
        float loss_full = gpt_forward(m, tok, tgt, B, T);
        gpt_backward(m);
        memcpy(full, m->grads, m->num_floats * sizeof(float));
        m->grad_scale = 0.5f;
        gpt_zero_grad(m);
        float loss_acc = 0.5f * gpt_forward(m, tok, tgt, 2, T);
        gpt_backward(m);
        loss_acc += 0.5f * gpt_forward(m, tok + 2 * T, tgt + 2 * T, 2, T);
        gpt_backward(m);
        double diff = 0.0, scale = 0.0;
        for (size_t i = 0; i < m->num_floats; i++) {
            diff = fmax(diff, fabs((double)m->grads[i] - full[i]));
            scale = fmax(scale, fabs((double)full[i]));
        }
        printf("  %s: loss %.6f vs %.6f, worst gradient difference %.2e of %.2e\n",
               fused ? "fused" : "unfused", loss_acc, loss_full, diff, scale);
        assert_true(scale > 1e-3);
        assert_true(fabs(loss_acc - loss_full) < 1e-5 * fabs(loss_full));
        assert_true(diff < 1e-5 * scale);
    }
    free(full);
    gpt_free(m);
}

static void test_accumulation(void **state) {
    (void)state;
    for (int v = 0; v < N_VARIANTS; v++)
        check_accumulation(&variants[v].cfg);
}

int main(void) {
    mg_rng_seed(&rng, 1234);
    ops = ops_cpu();
    ops_cpu_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),    cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_attention),    cmocka_unit_test(test_attention_cached_matches),
        cmocka_unit_test(test_gelu),         cmocka_unit_test(test_xent),
        cmocka_unit_test(test_embed),        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_qk),           cmocka_unit_test(test_model),
        cmocka_unit_test(test_accumulation),
    };
    return cmocka_run_group_tests_name("gradcheck", tests, NULL, NULL);
}
