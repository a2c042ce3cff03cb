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

#include "unit/variants.h" /* the block variants every model check runs on (with zero-init
                              * the weights are still perturbed, so every path carries signal) */

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

/* ---- the MLP activations besides GELU: pre (N,OC) -> out (N,OC) for
 * relu^2, (N,OC/2) for SwiGLU; unfused and fused (with the bias
 * gradient, checked against the column sums of dpre) ---- */
static void act_fwd(gc_case_t *c) {
    ops->mlp_act_forward(c->out, c->in[0], c->dims[0], c->dims[1], c->dims[2]);
}
static void act_bwd(gc_case_t *c) {
    ops->mlp_act_backward(c->grad[0], c->in[0], c->R, c->dims[0], c->dims[1], c->dims[2]);
}
static void act_check(int act, const char *name) {
    int N = 6, OC = 24;
    gc_case_t c = {.name = name, .fwd = act_fwd, .bwd = act_bwd, .dims = {N, OC, act}};
    size_t sz[] = {(size_t)N * OC};
    setup_case(&c, 1, sz, (size_t)N * (act == OPS_MLP_SWIGLU ? OC / 2 : OC));
    /* relu^2 has a kink at 0 (its derivative is continuous there): keep
     * the inputs out of the differences' reach */
    for (size_t i = 0; i < sz[0]; i++)
        if (fabsf(c.in[0][i]) < 1e-2f) c.in[0][i] = 0.5f;
    double worst = run_check(&c, 1e-3f);
    printf("  %s worst rel err %.2e\n", name, worst);
    assert_true(worst < 1e-2);
    /* the fused form: the same dpre, and dbias += its column sums */
    float *dpre = mg_calloc(sz[0], sizeof(float)), *dbias = mg_calloc(OC, sizeof(float));
    ops->mlp_act_bias_backward(dpre, dbias, c.in[0], c.R, N, OC, act);
    for (int o = 0; o < OC; o++) {
        double sum = 0.0;
        for (int n = 0; n < N; n++) {
            assert_float_equal(dpre[(size_t)n * OC + o], c.grad[0][(size_t)n * OC + o], 1e-6);
            sum += dpre[(size_t)n * OC + o];
        }
        assert_float_equal(dbias[o], sum, 1e-5);
    }
    mg_free(dpre);
    mg_free(dbias);
    free_case(&c);
}
static void test_relu2(void **state) {
    (void)state;
    act_check(OPS_MLP_RELU2, "relu2");
}
static void test_swiglu(void **state) {
    (void)state;
    act_check(OPS_MLP_SWIGLU, "swiglu");
}

/* The fused product + bias + activation against matmul_forward and
 * mlp_act_forward: the same pre and out (N = 1 bit for bit: decoding). */
static void test_matmul_bias_act(void **state) {
    (void)state;
    for (int act = OPS_MLP_RELU2; act <= OPS_MLP_SWIGLU; act++)
        for (int N = 1; N <= 7; N += 6) {
            int C = 16, OC = 40, O = act == OPS_MLP_SWIGLU ? OC / 2 : OC;
            float *x = rand_buf((size_t)N * C, 1.0f), *w = rand_buf((size_t)OC * C, 0.5f);
            float *b = rand_buf(OC, 0.5f);
            float *p1 = mg_calloc((size_t)N * OC, 4), *p2 = mg_calloc((size_t)N * OC, 4);
            float *o1 = mg_calloc((size_t)N * O, 4), *o2 = mg_calloc((size_t)N * O, 4);
            ops->matmul_bias_act_forward(p1, o1, x, w, b, N, C, OC, act);
            ops->matmul_forward(p2, x, w, b, N, C, OC);
            ops->mlp_act_forward(o2, p2, N, OC, act);
            for (int i = 0; i < N * O; i++) {
                if (N == 1)
                    assert_memory_equal(&o1[i], &o2[i], sizeof(float));
                else
                    assert_float_equal(o1[i], o2[i], 1e-5 * (1.0 + fabs(o2[i])));
            }
            mg_free(x);
            mg_free(w);
            mg_free(b);
            mg_free(p1);
            mg_free(p2);
            mg_free(o1);
            mg_free(o2);
        }
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
            /* the best of three steps: a large one suffers the curvature
             * (SwiGLU's products have more), a small one the float32
             * rounding of the loss (~5e-5 of noise in num: qk-norm's
             * gradients of ~1e-3 meet it, so smaller gradients count
             * absolutely); a wrong gradient is wrong at every step */
            double e = INFINITY, ana = m->grads[i];
            for (int j = 0; j < 3; j++) {
                double num = central(m, i, (const float[]){1e-2f, 3e-2f, 3e-3f}[j], tok, tgt, B, T);
                e = fmin(e, fabs(ana - num) / fmax(fabs(ana) + fabs(num), 3e-3));
            }
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
            check_model(&variants[v].arch, variants[v].name, no_fusion);
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
        printf("  %s, %s: loss %.6f vs %.6f, worst gradient difference %.2e of %.2e\n",
               gpt_mlp_name(cfg->mlp), fused ? "fused" : "unfused", loss_acc, loss_full, diff,
               scale);
        assert_true(scale > 1e-3);
        assert_true(fabs(loss_acc - loss_full) < 1e-5 * fabs(loss_full));
        assert_true(diff < 1e-5 * scale);
    }
    free(full);
    gpt_free(m);
}

/* SwiGLU's default hidden size: the multiple of 32 nearest 8C/3, at least
 * 32; a backend without the MLP slots refuses the model in one line. */
static void test_mlp_config(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    assert_int_equal(gpt_ffn_default(GPT_MLP_SWIGLU, 128), 352); /* 341.3 */
    assert_int_equal(gpt_ffn_default(GPT_MLP_SWIGLU, 64), 160);  /* 170.7 */
    assert_int_equal(gpt_ffn_default(GPT_MLP_SWIGLU, 768), 2048);
    assert_int_equal(gpt_ffn_default(GPT_MLP_SWIGLU, 8), 32);
    assert_int_equal(gpt_ffn_default(GPT_MLP_RELU2, 64), 256);
    gpt_config_t cfg = {
        .vocab = 13, .ctx = 6, .dim = 64, .layers = 1, .heads = 2, .mlp = GPT_MLP_SWIGLU};
    gpt_model_t *m = gpt_create(&cfg, ops, err);
    assert_non_null(m);
    assert_int_equal(m->cfg.ffn, 160);
    assert_int_equal(gpt_find_param(m, "transformer.layers.0.mlp.fc.weight")->shape[0], 320);
    assert_int_equal(gpt_find_param(m, "transformer.layers.0.mlp.proj.weight")->shape[1], 160);
    assert_int_equal(m->num_floats, gpt_param_count(&cfg));
    gpt_free(m);
    ops_backend_t bare = *ops;
    bare.name = "bare";
    bare.mlp_act_forward = NULL;
    assert_null(gpt_create(&cfg, &bare, err));
    assert_string_equal(err, "the bare backend has no SwiGLU MLP kernels (--mlp swiglu); use "
                             "--device cpu");
    cfg.mlp = GPT_MLP_GELU;
    m = gpt_create(&cfg, &bare, err);
    assert_non_null(m);
    gpt_free(m);
}

static void test_accumulation(void **state) {
    (void)state;
    for (int v = 0; v < N_VARIANTS; v++)
        check_accumulation(&variants[v].arch);
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
        cmocka_unit_test(test_accumulation), cmocka_unit_test(test_relu2),
        cmocka_unit_test(test_swiglu),       cmocka_unit_test(test_matmul_bias_act),
        cmocka_unit_test(test_mlp_config),
    };
    return cmocka_run_group_tests_name("gradcheck", tests, NULL, NULL);
}
