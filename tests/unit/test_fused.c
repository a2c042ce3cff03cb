/* test_fused.c - the CPU backend's faster kernels against plain references:
 *   - flash attention (forward and backward) against a textbook reference
 *     written here, at several T (1, tile boundaries, T not a multiple of
 *     the tile) and against finite differences;
 *   - each fused kernel (residual add + LayerNorm, matmul + bias + GELU,
 *     GELU backward + bias gradient, AdamW + clipping) against the unfused
 *     sequence of ops it replaces (tight tolerance) and against finite
 *     differences; softmax cross-entropy against a double reference;
 *   - the N = 1 matrix-vector path against the sgemm one;
 *   - the whole model with fusion on against fusion off, and with the flash
 *     attention against the (T,T) one.
 * The comparison helper is itself shown to reject a perturbed buffer, so a
 * wrong kernel makes these tests fail. Runs on 2 threads so the parallel
 * partitions and reductions are exercised. */
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
#include "ops/cpu/cpu_kernels.h"
#include "ops/ops.h"
#include "util/common.h"

static mg_rng_t rng;
static const ops_backend_t *ops;

static float *randn(size_t n, float scale) {
    float *p = mg_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = mg_rng_normal(&rng) * scale;
    return p;
}
static float *dup(const float *x, size_t n) {
    float *p = mg_malloc(n * sizeof(float));
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* max |a - b| / max |b|: the error relative to the reference's scale */
static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return e / s;
}
static void expect_close(const char *what, const float *a, const float *ref, size_t n, double tol) {
    double e = rel_err(a, ref, n);
    if (e > tol) printf("  FAIL %s: rel err %.3e > %.1e\n", what, e, tol);
    assert_true(e <= tol);
}

/* ---------------------------------------------------------------------
 * reference attention: plain loops in double, the (T,T) matrix per head */

static void ref_attention(float *out, float *dqkv, const float *qkv, const float *dout, int B,
                          int T, int C, int NH) {
    int HS = C / NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)HS);
    double *P = mg_malloc((size_t)T * T * sizeof(double)),
           *dS = mg_malloc((size_t)T * T * sizeof(double));
    if (dqkv) memset(dqkv, 0, (size_t)B * T * C3 * sizeof(float));
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3 + h * HS;
#define Q(t, j) base[(size_t)(t)*C3 + (j)]
#define K(t, j) base[(size_t)(t)*C3 + C + (j)]
#define V(t, j) base[(size_t)(t)*C3 + 2 * C + (j)]
            for (int t = 0; t < T; t++) {
                double mx = -INFINITY, sum = 0.0;
                for (int s = 0; s <= t; s++) {
                    double d = 0.0;
                    for (int j = 0; j < HS; j++)
                        d += (double)Q(t, j) * K(s, j);
                    P[(size_t)t * T + s] = d * scale;
                    mx = fmax(mx, d * scale);
                }
                for (int s = 0; s <= t; s++)
                    sum += (P[(size_t)t * T + s] = exp(P[(size_t)t * T + s] - mx));
                for (int s = 0; s <= t; s++)
                    P[(size_t)t * T + s] /= sum;
                for (int j = 0; j < HS; j++) {
                    double o = 0.0;
                    for (int s = 0; s <= t; s++)
                        o += P[(size_t)t * T + s] * V(s, j);
                    if (out) out[((size_t)b * T + t) * C + h * HS + j] = (float)o;
                }
            }
            if (!dqkv) continue;
            float *dbase = dqkv + (size_t)b * T * C3 + h * HS;
            const float *dO = dout + (size_t)b * T * C + h * HS;
            for (int t = 0; t < T; t++) {
                double dot = 0.0;
                for (int s = 0; s <= t; s++) {
                    double dp = 0.0;
                    for (int j = 0; j < HS; j++)
                        dp += (double)dO[(size_t)t * C + j] * V(s, j);
                    dS[(size_t)t * T + s] = dp;
                    dot += dp * P[(size_t)t * T + s];
                }
                for (int s = 0; s <= t; s++) {
                    double p = P[(size_t)t * T + s], ds = p * (dS[(size_t)t * T + s] - dot);
                    for (int j = 0; j < HS; j++) {
                        dbase[(size_t)t * C3 + j] += (float)(ds * scale * K(s, j));     /* dq */
                        dbase[(size_t)s * C3 + C + j] += (float)(ds * scale * Q(t, j)); /* dk */
                        dbase[(size_t)s * C3 + 2 * C + j] +=
                            (float)(p * dO[(size_t)t * C + j]); /* dv */
                    }
                }
            }
#undef Q
#undef K
#undef V
        }
    }
    mg_free(P);
    mg_free(dS);
}

/* flash and full, forward and backward, against the reference */
static void check_attention_shape(int B, int T, int C, int NH) {
    size_t N = (size_t)B * T;
    float *qkv = randn(N * 3 * C, 1.5f), *dout = randn(N * C, 1.0f);
    float *ref_out = mg_calloc(N * C, sizeof(float)),
          *ref_dqkv = mg_calloc(N * 3 * C, sizeof(float));
    float *out = mg_calloc(N * C, sizeof(float)), *dqkv = mg_calloc(N * 3 * C, sizeof(float));
    float *lse = mg_calloc((size_t)B * NH * T, sizeof(float));
    float *att = mg_calloc((size_t)B * NH * T * T, sizeof(float));
    ref_attention(ref_out, ref_dqkv, qkv, dout, B, T, C, NH);
    char what[96];

    for (size_t i = 0; i < N * 3 * C; i++)
        dqkv[i] = NAN; /* backward must overwrite all of dqkv */
    cpu_attention_flash_forward(out, lse, qkv, B, T, C, NH);
    cpu_attention_flash_backward(dqkv, dout, qkv, out, lse, B, T, C, NH);
    snprintf(what, sizeof what, "flash forward B%d T%d C%d NH%d", B, T, C, NH);
    expect_close(what, out, ref_out, N * C, 2e-5);
    snprintf(what, sizeof what, "flash backward B%d T%d C%d NH%d", B, T, C, NH);
    expect_close(what, dqkv, ref_dqkv, N * 3 * C, 5e-5);
    /* the LSE is what the forward saw: log sum_s exp(q.k_s * scale) */
    for (int t = 0; t<T; t += T> 7 ? T / 7 : 1) {
        int HS = C / NH;
        double mx = -INFINITY, sum = 0.0, sc[4096];
        for (int s = 0; s <= t; s++) {
            double d = 0.0;
            for (int j = 0; j < HS; j++)
                d += (double)qkv[(size_t)t * 3 * C + j] * qkv[(size_t)s * 3 * C + C + j];
            sc[s] = d / sqrt((double)HS);
            mx = fmax(mx, sc[s]);
        }
        for (int s = 0; s <= t; s++)
            sum += exp(sc[s] - mx);
        assert_float_equal(lse[t], mx + log(sum), 1e-4 * fmax(1.0, fabs(mx)));
    }

    memset(out, 0, N * C * sizeof(float));
    cpu_attention_full_forward(out, att, qkv, B, T, C, NH);
    cpu_attention_full_backward(dqkv, dout, qkv, att, B, T, C, NH);
    snprintf(what, sizeof what, "full forward B%d T%d", B, T);
    expect_close(what, out, ref_out, N * C, 2e-5);
    snprintf(what, sizeof what, "full backward B%d T%d", B, T);
    expect_close(what, dqkv, ref_dqkv, N * 3 * C, 5e-5);
    mg_free(qkv);
    mg_free(dout);
    mg_free(ref_out);
    mg_free(ref_dqkv);
    mg_free(out);
    mg_free(dqkv);
    mg_free(lse);
    mg_free(att);
}

static void test_flash_matches_reference(void **state) {
    (void)state;
    int BLK = CPU_FLASH_BLOCK;
    int Ts[] = {1, 2, 7, BLK - 1, BLK, BLK + 1, 2 * BLK + 3, 3 * BLK};
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++)
        check_attention_shape(2, Ts[i], 32, 2);
    check_attention_shape(1, 150, 128, 2); /* head size 64, as GPT-2 */
    check_attention_shape(3, 97, 48, 3);   /* head size 16, odd batch and head counts */
    printf("  flash and full attention match the reference at T = 1 .. %d\n", 3 * BLK);
}

/* finite differences through the flash kernels (T crosses a tile edge) */
static void test_flash_gradcheck(void **state) {
    (void)state;
    int B = 1, T = CPU_FLASH_BLOCK + 5, C = 8, NH = 2;
    size_t N = (size_t)B * T, nin = N * 3 * C;
    float *qkv = randn(nin, 1.0f), *R = randn(N * C, 1.0f), *out = mg_calloc(N * C, sizeof(float));
    float *lse = mg_calloc((size_t)B * NH * T, sizeof(float)),
          *dqkv = mg_calloc(nin, sizeof(float));
    cpu_attention_flash_forward(out, lse, qkv, B, T, C, NH);
    cpu_attention_flash_backward(dqkv, R, qkv, out, lse, B, T, C, NH);
    double worst = 0.0;
    float eps = 1e-2f;
    for (size_t i = 0; i < nin; i += 3) { /* every third input */
        double l[2];
        float keep = qkv[i];
        for (int k = 0; k < 2; k++) {
            qkv[i] = keep + (k ? -eps : eps);
            cpu_attention_flash_forward(out, lse, qkv, B, T, C, NH);
            double s = 0.0;
            for (size_t j = 0; j < N * C; j++)
                s += (double)out[j] * R[j];
            l[k] = s;
        }
        qkv[i] = keep;
        double num = (l[0] - l[1]) / (2.0 * eps), ana = dqkv[i];
        worst = fmax(worst, fabs(ana - num) / fmax(fabs(ana) + fabs(num), 1e-2));
    }
    printf("  flash attention T=%d vs finite differences: worst rel err %.2e\n", T, worst);
    assert_true(worst < 1e-2);
    mg_free(qkv);
    mg_free(R);
    mg_free(out);
    mg_free(lse);
    mg_free(dqkv);
}

/* the state size follows the kernel choice and never shrinks as T grows
 * (the model carves layer l's state at l * state(B,NH,T)) */
static void test_attention_state_monotone(void **state) {
    (void)state;
    size_t prev = 0;
    for (int T = 1; T <= 2 * CPU_FLASH_MIN_T; T++) {
        size_t s = cpu_attention_state_floats(2, 3, T);
        assert_true(s >= prev);
        assert_true(s >= (size_t)2 * 3 * T); /* at least the flash kernel's LSE */
        if (T < CPU_FLASH_MIN_T) assert_true(s >= (size_t)2 * 3 * T * T);
        prev = s;
    }
    assert_true(cpu_attention_state_floats(1, 1, 4 * CPU_FLASH_MIN_T) <
                (size_t)4 * CPU_FLASH_MIN_T * 4 * CPU_FLASH_MIN_T / 8);
}

/* The worst relative error between grads[k] and central differences (step
 * eps) of L = sum(out[j] * dout[j], j < nl) over every element of ins[k],
 * k < 3, where forward(ctx) recomputes out. The floor of 5e-2 on the
 * denominator covers the float rounding of L over eps. */
static double fd_worst(float *const ins[3], float *const grads[3], const size_t lens[3], float eps,
                       void (*forward)(void *ctx), void *ctx, const float *out, const float *dout,
                       size_t nl) {
    double worst = 0.0;
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < lens[k]; i++) {
            float keep = ins[k][i];
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                ins[k][i] = keep + (sgn ? -eps : eps);
                forward(ctx);
                double s = 0.0;
                for (size_t j = 0; j < nl; j++)
                    s += (double)out[j] * dout[j];
                l[sgn] = s;
            }
            ins[k][i] = keep;
            double num = (l[0] - l[1]) / (2.0 * eps), ana = grads[k][i];
            worst = fmax(worst, fabs(ana - num) / fmax(fabs(ana) + fabs(num), 5e-2));
        }
    return worst;
}

/* ---------------------------------------------------------------------
 * residual add + LayerNorm */

typedef struct {
    float *a, *b, *w, *bias, *res, *out;
    int N, C;
} ln_args_t;
static void ln_forward(void *ctx) {
    ln_args_t *p = ctx;
    ops->residual_layernorm_forward(p->res, p->out, NULL, NULL, p->a, p->b, p->w, p->bias, p->N,
                                    p->C);
}

static void test_residual_layernorm(void **state) {
    (void)state;
    int N = 37, C = 48;
    size_t n = (size_t)N * C;
    float *a = randn(n, 1.0f), *b = randn(n, 1.0f), *w = randn(C, 1.0f), *bias = randn(C, 1.0f);
    /* unfused: res = a + b; out = ln(res) */
    float *res_u = mg_calloc(n, sizeof(float)), *out_u = mg_calloc(n, sizeof(float));
    float *mean_u = mg_calloc(N, sizeof(float)), *rstd_u = mg_calloc(N, sizeof(float));
    ops->add(res_u, a, b, n);
    ops->layernorm_forward(out_u, mean_u, rstd_u, res_u, w, bias, N, C);
    /* fused, in place as the model runs it (res aliases a) */
    float *res_f = dup(a, n), *out_f = mg_calloc(n, sizeof(float));
    float *mean_f = mg_calloc(N, sizeof(float)), *rstd_f = mg_calloc(N, sizeof(float));
    ops->residual_layernorm_forward(res_f, out_f, mean_f, rstd_f, res_f, b, w, bias, N, C);
    expect_close("residual+ln res", res_f, res_u, n, 0.0);
    expect_close("residual+ln out", out_f, out_u, n, 1e-6);
    expect_close("residual+ln mean", mean_f, mean_u, N, 1e-6);
    expect_close("residual+ln rstd", rstd_f, rstd_u, N, 1e-6);

    /* backward: both accumulate into non-zero dx, dw, db */
    float *dout = randn(n, 1.0f), *dx0 = randn(n, 1.0f), *dw0 = randn(C, 1.0f),
          *db0 = randn(C, 1.0f);
    float *dx_u = dup(dx0, n), *dw_u = dup(dw0, C), *db_u = dup(db0, C);
    float *dx_f = dup(dx0, n), *dw_f = dup(dw0, C), *db_f = dup(db0, C);
    ops->layernorm_backward(dx_u, dw_u, db_u, dout, res_u, w, mean_u, rstd_u, N, C);
    ops->residual_layernorm_backward(dx_f, dw_f, db_f, dout, res_u, w, mean_u, rstd_u, N, C);
    expect_close("residual+ln dx", dx_f, dx_u, n, 1e-6);
    expect_close("residual+ln dw", dw_f, dw_u, C, 1e-5);
    expect_close("residual+ln db", db_f, db_u, C, 1e-5);

    /* finite differences of L = sum(out * dout) over the first Nf rows
     * (few terms: float rounding stays under the differences) through the
     * fused forward, with respect to a (= d res), w and bias */
    int Nf = 2;
    size_t nf = (size_t)Nf * C;
    memset(dx_f, 0, n * sizeof(float));
    memset(dw_f, 0, C * sizeof(float));
    memset(db_f, 0, C * sizeof(float));
    ops->residual_layernorm_backward(dx_f, dw_f, db_f, dout, res_u, w, mean_u, rstd_u, Nf, C);
    float *ins[3] = {a, w, bias}, *grads[3] = {dx_f, dw_f, db_f};
    size_t lens[3] = {nf, (size_t)C, (size_t)C};
    ln_args_t args = {a, b, w, bias, res_f, out_f, Nf, C};
    double worst = fd_worst(ins, grads, lens, 1e-2f, ln_forward, &args, out_f, dout, nf);
    printf("  residual+layernorm: matches add+layernorm; finite differences worst rel err %.2e\n",
           worst);
    assert_true(worst < 1e-2);
    float *bufs[] = {a,      b,    w,   bias, res_u, out_u, mean_u, rstd_u, res_f, out_f, mean_f,
                     rstd_f, dout, dx0, dw0,  db0,   dx_u,  dw_u,   db_u,   dx_f,  dw_f,  db_f};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        mg_free(bufs[i]);
}

/* ---------------------------------------------------------------------
 * matmul + bias + GELU, GELU backward + bias gradient */

typedef struct {
    float *x, *w, *bias, *pre, *out;
    int N, C, OC;
} gelu_args_t;
static void gelu_forward(void *ctx) {
    gelu_args_t *p = ctx;
    ops->matmul_bias_gelu_forward(p->pre, p->out, p->x, p->w, p->bias, p->N, p->C, p->OC);
}

static void test_bias_gelu(void **state) {
    (void)state;
    int N = 19, C = 24, OC = 40;
    float *x = randn((size_t)N * C, 1.0f), *w = randn((size_t)OC * C, 0.3f),
          *bias = randn(OC, 1.0f);
    size_t n = (size_t)N * OC;
    float *pre_u = mg_calloc(n, sizeof(float)), *out_u = mg_calloc(n, sizeof(float));
    float *pre_f = mg_calloc(n, sizeof(float)), *out_f = mg_calloc(n, sizeof(float));
    ops->matmul_forward(pre_u, x, w, bias, N, C, OC);
    ops->gelu_forward(out_u, pre_u, n);
    ops->matmul_bias_gelu_forward(pre_f, out_f, x, w, bias, N, C, OC);
    expect_close("matmul+bias+gelu pre", pre_f, pre_u, n, 1e-6);
    expect_close("matmul+bias+gelu out", out_f, out_u, n, 1e-6);

    /* backward vs gelu_backward + the bias column sums of matmul_backward */
    float *dout = randn(n, 1.0f), *db0 = randn(OC, 1.0f);
    float *d_u = mg_calloc(n, sizeof(float)), *db_u = dup(db0, OC), *d_f = dup(dout, n),
          *db_f = dup(db0, OC);
    ops->gelu_backward(d_u, pre_u, dout, n);
    for (int r = 0; r < N; r++)
        for (int o = 0; o < OC; o++)
            db_u[o] += d_u[(size_t)r * OC + o];
    ops->gelu_bias_backward(d_f, db_f, pre_u, d_f, N, OC); /* in place, as the model runs it */
    expect_close("gelu+bias backward dpre", d_f, d_u, n, 1e-6);
    expect_close("gelu+bias backward dbias", db_f, db_u, OC, 1e-5);

    /* finite differences of L = sum(gelu(x w^T + b) * dout) over the first
     * Nf rows, wrt x, w, b, through the fused forward and backward */
    int Nf = 2;
    size_t nf = (size_t)Nf * OC;
    float *dx = mg_calloc((size_t)N * C, sizeof(float)),
          *dw = mg_calloc((size_t)OC * C, sizeof(float));
    float *db = mg_calloc(OC, sizeof(float)), *dpre = mg_calloc(n, sizeof(float));
    ops->matmul_bias_gelu_forward(pre_f, out_f, x, w, bias, Nf, C, OC);
    ops->gelu_bias_backward(dpre, db, pre_f, dout, Nf, OC);
    ops->matmul_backward(dx, dw, NULL, dpre, x, w, Nf, C, OC);
    float *ins[3] = {x, w, bias}, *grads[3] = {dx, dw, db};
    size_t lens[3] = {(size_t)Nf * C, (size_t)OC * C, (size_t)OC};
    gelu_args_t args = {x, w, bias, pre_f, out_f, Nf, C, OC};
    double worst = fd_worst(ins, grads, lens, 3e-3f, gelu_forward, &args, out_f, dout, nf);
    printf("  matmul+bias+gelu: matches the unfused ops; finite differences worst rel err %.2e\n",
           worst);
    assert_true(worst < 1e-2);
    float *bufs[] = {x,   w,    bias, pre_u, out_u, pre_f, out_f, dout, db0,
                     d_u, db_u, d_f,  db_f,  dx,    dw,    db,    dpre};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        mg_free(bufs[i]);
}

/* ---------------------------------------------------------------------
 * AdamW + clipping in one call vs sq_norm + adamw per tensor */

static void test_adamw_clip(void **state) {
    (void)state;
    ops_segment_t seg[] = {
        {0, 1000, 1}, {1000, 7, 0}, {1007, 333, 1}, {1340, 1, 0}, {1341, 4099, 1}};
    int nseg = 5;
    size_t n = 5440;
    float *p_u = randn(n, 1.0f), *m_u = mg_calloc(n, sizeof(float)),
          *v_u = mg_calloc(n, sizeof(float));
    float *p_f = dup(p_u, n), *m_f = mg_calloc(n, sizeof(float)),
          *v_f = mg_calloc(n, sizeof(float));
    for (int t = 1; t <= 6; t++) {
        float *g = randn(n, t % 2 ? 0.1f : 0.001f); /* clipping on odd steps only */
        float clip = 1.0f, lr = 1e-2f, wd = 0.1f;
        float norm_u = (float)sqrt(ops->sq_norm(g, n));
        float scale = norm_u > clip ? clip / norm_u : 1.0f;
        for (int s = 0; s < nseg; s++)
            ops->adamw(p_u + seg[s].offset, g + seg[s].offset, m_u + seg[s].offset,
                       v_u + seg[s].offset, seg[s].numel, lr, 0.9f, 0.95f, 1e-8f,
                       seg[s].decay ? wd : 0.0f, scale, t);
        float norm_f =
            ops->adamw_clip(p_f, g, m_f, v_f, seg, nseg, lr, 0.9f, 0.95f, 1e-8f, wd, clip, t);
        assert_float_equal(norm_f, norm_u, 1e-6 * norm_u);
        expect_close("adamw_clip p", p_f, p_u, n, 1e-6);
        expect_close("adamw_clip m", m_f, m_u, n, 1e-6);
        expect_close("adamw_clip v", v_f, v_u, n, 1e-5);
        mg_free(g);
    }
    mg_free(p_u);
    mg_free(m_u);
    mg_free(v_u);
    mg_free(p_f);
    mg_free(m_f);
    mg_free(v_f);
}

/* ---------------------------------------------------------------------
 * softmax cross-entropy against a double reference (logits in place) */

static void test_xent_reference(void **state) {
    (void)state;
    int N = 9, V = 1001;
    float *logits = randn((size_t)N * V, 3.0f), *d = dup(logits, (size_t)N * V);
    float *losses = mg_calloc(N, sizeof(float)), *losses2 = mg_calloc(N, sizeof(float));
    float *ref = mg_calloc((size_t)N * V, sizeof(float)), *ref_l = mg_calloc(N, sizeof(float));
    int32_t tg[9];
    for (int i = 0; i < N; i++)
        tg[i] = (int32_t)mg_rng_below(&rng, V);
    logits[3 * V + tg[3]] = 40.0f; /* a confident row */
    d[3 * V + tg[3]] = 40.0f;
    float dloss = 1.0f / N;
    for (int r = 0; r < N; r++) {
        const float *l = logits + (size_t)r * V;
        double mx = -INFINITY, s = 0.0;
        for (int i = 0; i < V; i++)
            mx = fmax(mx, l[i]);
        for (int i = 0; i < V; i++)
            s += exp(l[i] - mx);
        double lse = mx + log(s);
        ref_l[r] = (float)(lse - l[tg[r]]);
        for (int i = 0; i < V; i++)
            ref[(size_t)r * V + i] = (float)((exp(l[i] - lse) - (i == tg[r])) * dloss);
    }
    ops->xent_forward_backward(losses2, NULL, logits, tg, N, V, dloss);
    ops->xent_forward_backward(losses, d, d, tg, N, V, dloss); /* dlogits aliases logits */
    expect_close("xent losses (no gradient)", losses2, ref_l, N, 1e-5);
    expect_close("xent losses", losses, ref_l, N, 1e-5);
    expect_close("xent dlogits", d, ref, (size_t)N * V, 1e-5);
    mg_free(logits);
    mg_free(d);
    mg_free(losses);
    mg_free(losses2);
    mg_free(ref);
    mg_free(ref_l);
}

/* ---------------------------------------------------------------------
 * N = 1 (decoding): the matrix-vector kernel (cpu_matmul.c: blocks of 8
 * rows, vectors of 4 or 8 floats, one range of row blocks per thread,
 * serial below 65536 weights) gives what the sgemm path and a double-precision
 * reference give, with and without the bias, and with the fused GELU; and
 * matmul_rows_forward gives each of several rows exactly what it gives alone.
 * The shapes cover C below, at and off the vector width (odd C: every row
 * is unaligned), OC below one block, not a multiple of 8 (a partial last
 * block) and blocks that do not split evenly over the 2 threads, both
 * sides of the serial threshold, and the GPT-2 shapes. */

static void check_matvec(int C, int OC) {
    char what[96];
    int N = 3; /* N > 1: matmul_forward takes the sgemm path */
    float *x = randn((size_t)N * C, 1.0f), *w = randn((size_t)OC * C, 0.1f),
          *bias = randn(OC, 1.0f);
    float *all = mg_calloc((size_t)N * OC, sizeof(float)),
          *all_g = mg_calloc((size_t)N * OC, sizeof(float));
    float *row = mg_calloc(OC, sizeof(float)), *pre = mg_calloc(OC, sizeof(float)),
          *ref = mg_calloc(OC, sizeof(float));
    /* matmul_rows_forward (batched decoding): every row bit-identical to
     * that row alone, with GELU and without, with a bias and without (N = 3:
     * a pair of rows and a single one) */
    float *rows = mg_calloc((size_t)N * OC, sizeof(float)),
          *rows_g = mg_calloc((size_t)N * OC, sizeof(float));
    float *rows_nb = mg_calloc((size_t)N * OC, sizeof(float));
    ops->matmul_rows_forward(rows, rows_g, x, w, bias, N, C, OC);
    ops->matmul_rows_forward(rows_nb, NULL, x, w, NULL, N, C, OC);
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * C;
        ops->matmul_forward(row, xr, w, NULL, 1, C, OC);
        assert_memory_equal(rows_nb + (size_t)r * OC, row, (size_t)OC * sizeof(float));
        ops->matmul_bias_gelu_forward(pre, row, xr, w, bias, 1, C, OC);
        assert_memory_equal(rows + (size_t)r * OC, pre, (size_t)OC * sizeof(float));
        assert_memory_equal(rows_g + (size_t)r * OC, row, (size_t)OC * sizeof(float));
        ops->matmul_forward(row, xr, w, bias, 1, C, OC);
        assert_memory_equal(rows + (size_t)r * OC, row, (size_t)OC * sizeof(float));
    }
    mg_free(rows);
    mg_free(rows_g);
    mg_free(rows_nb);
    ops->matmul_forward(all, x, w, bias, N, C, OC);
    ops->matmul_bias_gelu_forward(all, all_g, x, w, bias, N, C, OC);
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * C, *sg = all + (size_t)r * OC;
        for (int o = 0; o < OC; o++) {
            double d = bias[o];
            for (int i = 0; i < C; i++)
                d += (double)w[(size_t)o * C + i] * xr[i];
            ref[o] = (float)d;
        }
        snprintf(what, sizeof what, "matvec C %d OC %d row %d vs double", C, OC, r);
        ops->matmul_forward(row, xr, w, bias, 1, C, OC);
        expect_close(what, row, ref, OC, 2e-6);
        snprintf(what, sizeof what, "matvec C %d OC %d row %d vs sgemm", C, OC, r);
        expect_close(what, row, sg, OC, 2e-6);
        snprintf(what, sizeof what, "matvec C %d OC %d row %d, no bias", C, OC, r);
        ops->matmul_forward(row, xr, w, NULL, 1, C, OC);
        for (int o = 0; o < OC; o++)
            row[o] += bias[o];
        expect_close(what, row, ref, OC, 2e-6);
        snprintf(what, sizeof what, "matvec+gelu C %d OC %d row %d", C, OC, r);
        ops->matmul_bias_gelu_forward(pre, row, xr, w, bias, 1, C, OC);
        expect_close(what, pre, ref, OC, 2e-6);
        expect_close(what, row, all_g + (size_t)r * OC, OC, 2e-6);
    }
    mg_free(x);
    mg_free(w);
    mg_free(bias);
    mg_free(all);
    mg_free(all_g);
    mg_free(row);
    mg_free(pre);
    mg_free(ref);
}

static void test_matvec(void **state) {
    (void)state;
    static const int shapes[][2] = {
        {1, 1},     {3, 5},     {16, 8},     {17, 9},     {31, 7},
        {200, 333}, {255, 257}, {257, 255},  {771, 85},   {64, 1025},
        {1000, 67}, {3077, 43}, {768, 2304}, {3072, 768}, {768, 50257},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_matvec(shapes[i][0], shapes[i][1]);
}

/* ---------------------------------------------------------------------
 * whole model: fusion on vs off, flash vs full attention */

typedef struct {
    float loss, norm;
    float *grads, *weights;
} run_t;

static run_t train_step(int no_fusion, int kernel) {
    char err[MG_ERR_LEN];
    cpu_attention_set_kernel(kernel);
    gpt_config_t cfg = {.vocab = 50, .ctx = 80, .dim = 32, .layers = 2, .heads = 4};
    int B = 2, T = 77; /* more than one flash tile, not a multiple of it */
    gpt_model_t *m = gpt_create(&cfg, ops, err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 11, err), 0);
    assert_int_equal(gpt_alloc_training(m, B, T, err), 0);
    m->no_fusion = no_fusion;
    mg_rng_t r;
    mg_rng_seed(&r, 5);
    for (size_t i = 0; i < m->num_floats; i++)
        m->weights[i] += mg_rng_normal(&r) * 0.2f;
    int32_t tok[154], tgt[154];
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)mg_rng_below(&r, cfg.vocab);
        tgt[i] = (int32_t)mg_rng_below(&r, cfg.vocab);
    }
    run_t out;
    gpt_zero_grad(m);
    (void)err;
    out.loss = gpt_forward(m, tok, tgt, B, T);
    gpt_backward(m);
    out.grads = dup(m->grads, m->num_floats);
    out.norm = gpt_adamw_step(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f); /* clipping active */
    out.weights = dup(m->weights, m->num_floats);
    gpt_free(m);
    cpu_attention_set_kernel(CPU_ATTN_AUTO);
    return out;
}

static void test_model_fused_vs_unfused(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 50, .ctx = 80, .dim = 32, .layers = 2, .heads = 4};
    gpt_model_t *m = gpt_create(&cfg, ops, err);
    size_t n = m->num_floats;
    gpt_free(m);
    run_t ref = train_step(1, CPU_ATTN_FULL);
    run_t variants[] = {train_step(0, CPU_ATTN_FULL), train_step(0, CPU_ATTN_FLASH),
                        train_step(1, CPU_ATTN_FLASH)};
    const char *names[] = {"fused", "fused + flash", "unfused + flash"};
    for (int k = 0; k < 3; k++) {
        run_t *v = &variants[k];
        printf(
            "  model %-16s loss %.7f (unfused %.7f), grad norm %.6f (%.6f), grads rel err %.1e\n",
            names[k], v->loss, ref.loss, v->norm, ref.norm, rel_err(v->grads, ref.grads, n));
        assert_float_equal(v->loss, ref.loss, 1e-5 * ref.loss);
        assert_float_equal(v->norm, ref.norm, 1e-4 * ref.norm);
        expect_close(names[k], v->grads, ref.grads, n, 1e-4);
        /* weights after one AdamW step from gradients that differ by
         * rounding: at step 1 the update is about lr * sign(g), so a
         * gradient near zero may move its weight by up to 2 lr either way
         * (test_model_adamw compares the step on identical gradients) */
        expect_close(names[k], v->weights, ref.weights, n, 2 * 1e-2);
        mg_free(v->grads);
        mg_free(v->weights);
    }
    mg_free(ref.grads);
    mg_free(ref.weights);
}

/* gpt_adamw_step through adamw_clip (one call, the table's decay flags)
 * vs sq_norm + adamw per tensor, on the same gradients, clipping on */
static void test_model_adamw(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 50, .ctx = 16, .dim = 32, .layers = 2, .heads = 4};
    gpt_model_t *m = gpt_create(&cfg, ops, err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 3, err), 0);
    assert_int_equal(gpt_alloc_training(m, 1, 16, err), 0);
    size_t n = m->num_floats;
    float *w0 = dup(m->weights, n);
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++)
            m->grads[i] = mg_rng_normal(&rng) * 0.05f;
        float *m0 = dup(m->m, n), *v0 = dup(m->v, n);
        memcpy(w0, m->weights, n * sizeof(float));
        m->no_fusion = 0;
        float norm_f = gpt_adamw_step(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
        float *wf = dup(m->weights, n), *mf = dup(m->m, n), *vf = dup(m->v, n);
        memcpy(m->weights, w0, n * sizeof(float));
        memcpy(m->m, m0, n * sizeof(float));
        memcpy(m->v, v0, n * sizeof(float));
        m->adam_t--;
        m->no_fusion = 1;
        float norm_u = gpt_adamw_step(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
        assert_true(norm_u > 1.0f); /* clipping was active */
        assert_float_equal(norm_f, norm_u, 1e-6 * norm_u);
        expect_close("model adamw weights", wf, m->weights, n, 1e-6);
        expect_close("model adamw m", mf, m->m, n, 1e-6);
        expect_close("model adamw v", vf, m->v, n, 1e-5);
        mg_free(m0);
        mg_free(v0);
        mg_free(wf);
        mg_free(mf);
        mg_free(vf);
    }
    mg_free(w0);
    gpt_free(m);
}

/* the comparison these tests rely on rejects a small perturbation */
static void test_checks_can_fail(void **state) {
    (void)state;
    int B = 1, T = 70, C = 16, NH = 2;
    size_t N = (size_t)B * T;
    float *qkv = randn(N * 3 * C, 1.0f), *ref = mg_calloc(N * C, sizeof(float));
    float *out = mg_calloc(N * C, sizeof(float)), *lse = mg_calloc((size_t)NH * T, sizeof(float));
    ref_attention(ref, NULL, qkv, NULL, B, T, C, NH);
    cpu_attention_flash_forward(out, lse, qkv, B, T, C, NH);
    assert_true(rel_err(out, ref, N * C) <= 2e-5);
    out[N * C - 1] += 1e-3f; /* the last row: the last tile's */
    assert_true(rel_err(out, ref, N * C) > 2e-5);
    mg_free(qkv);
    mg_free(ref);
    mg_free(out);
    mg_free(lse);
}

int main(void) {
    const char *seed = getenv("TEST_SEED");
    mg_rng_seed(&rng, seed ? strtoull(seed, NULL, 10) : 4321);
    ops = ops_cpu();
    ops_cpu_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flash_matches_reference),
        cmocka_unit_test(test_flash_gradcheck),
        cmocka_unit_test(test_attention_state_monotone),
        cmocka_unit_test(test_residual_layernorm),
        cmocka_unit_test(test_bias_gelu),
        cmocka_unit_test(test_adamw_clip),
        cmocka_unit_test(test_xent_reference),
        cmocka_unit_test(test_matvec),
        cmocka_unit_test(test_model_fused_vs_unfused),
        cmocka_unit_test(test_model_adamw),
        cmocka_unit_test(test_checks_can_fail),
    };
    return cmocka_run_group_tests_name("fused", tests, NULL, NULL);
}
