/* cpu_mlp.c - the MLP activations besides GELU (ops.h, --mlp): relu(x)^2
 * and SwiGLU, forward and backward, and their fused forms (bias and
 * activation in one pass after the sgemm; activation backward with the bias
 * gradient). Every row is computed by the same element loop whatever N and
 * the thread count, so a row's result never depends on its batch-mates. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"

static inline float cpu_sigmoid(float g) { return 1.0f / (1.0f + cpu_expf(-g)); }

/* One row: out = act(pre). relu2: pre, out (OC); SwiGLU: pre (OC) =
 * [gate | up], out (OC/2). */
static inline void act_row(const float *pre, float *out, int OC, int act) {
    if (act == OPS_MLP_RELU2) {
#pragma omp simd
        for (int i = 0; i < OC; i++) {
            float r = pre[i] > 0.0f ? pre[i] : 0.0f;
            out[i] = r * r;
        }
    } else {
        int H = OC / 2;
        const float *g = pre, *u = pre + H;
#pragma omp simd
        for (int i = 0; i < H; i++)
            out[i] = g[i] * cpu_sigmoid(g[i]) * u[i];
    }
}

static inline int out_cols(int OC, int act) { return act == OPS_MLP_SWIGLU ? OC / 2 : OC; }

void cpu_mlp_act_forward(float *out, const float *pre, int N, int OC, int act) {
    int O = out_cols(OC, act);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        act_row(pre + (size_t)n * OC, out + (size_t)n * O, OC, act);
}

/* One row of the backward: dpre (OC) from pre (OC) and dout (out's width);
 * acc (OC, may be NULL) += dpre. For relu2, dpre may alias dout (each
 * element is read before it is written). */
static inline void act_back_row(float *dpre, float *acc, const float *pre, const float *dout,
                                int OC, int act) {
    if (act == CPU_ACT_GELU) { /* cpu_gelu_bias_backward: acc is never NULL there */
#pragma omp simd
        for (int i = 0; i < OC; i++) {
            float g = dout[i] * cpu_gelu_grad(pre[i]);
            dpre[i] = g;
            acc[i] += g;
        }
    } else if (act == OPS_MLP_RELU2) {
#pragma omp simd
        for (int i = 0; i < OC; i++) {
            float d = pre[i] > 0.0f ? 2.0f * pre[i] * dout[i] : 0.0f;
            dpre[i] = d;
            if (acc) acc[i] += d;
        }
    } else {
        /* h = silu(g) u: dg = dh u silu'(g), du = dh silu(g), with
         * silu'(g) = s (1 + g (1 - s)), s = sigmoid(g) */
        int H = OC / 2;
        const float *g = pre, *u = pre + H;
        float *dg = dpre, *du = dpre + H;
#pragma omp simd
        for (int i = 0; i < H; i++) {
            float s = cpu_sigmoid(g[i]), dh = dout[i];
            float a = dh * u[i] * s * (1.0f + g[i] * (1.0f - s)), b = dh * g[i] * s;
            dg[i] = a;
            du[i] = b;
            if (acc) {
                acc[i] += a;
                acc[H + i] += b;
            }
        }
    }
}

void cpu_mlp_act_backward(float *dpre, const float *pre, const float *dout, int N, int OC,
                          int act) {
    int O = out_cols(OC, act);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        act_back_row(dpre + (size_t)n * OC, NULL, pre + (size_t)n * OC, dout + (size_t)n * O, OC,
                     act);
}

/* Fused: the backward and the bias gradient in one pass over (N,OC). Each
 * thread sums its rows into its own OC floats; the partial sums are added in
 * thread order (deterministic for a given thread count). GELU's
 * (cpu_gelu_bias_backward) is this with act CPU_ACT_GELU. */
void cpu_mlp_act_bias_backward(float *dpre, float *dbias, const float *pre, const float *dout,
                               int N, int OC, int act) {
    int nt = omp_get_max_threads(), O = out_cols(OC, act);
    float *part = cpu_scratch((size_t)nt * OC);
    if (!part) return;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), tn = omp_get_num_threads();
        float *acc = part + (size_t)id * OC;
        memset(acc, 0, OC * sizeof(float));
        int n0 = (int)((long)N * id / tn), n1 = (int)((long)N * (id + 1) / tn);
        for (int n = n0; n < n1; n++)
            act_back_row(dpre + (size_t)n * OC, acc, pre + (size_t)n * OC, dout + (size_t)n * O, OC,
                         act);
#pragma omp barrier
        int o0 = (int)((long)OC * id / tn), o1 = (int)((long)OC * (id + 1) / tn);
        for (int t = 0; t < tn; t++) {
            const float *pt = part + (size_t)t * OC;
            for (int i = o0; i < o1; i++)
                dbias[i] += pt[i];
        }
    }
}

/* Fused: pre = x @ w^T + bias, out = act(pre): the bias add and the
 * activation in one pass per row after the sgemm, instead of a bias pass
 * and an activation pass reading pre again. One row (decoding) goes through
 * the matrix-vector product that matmul_rows_forward uses, then the same
 * row loop, so that it equals the batched rows bit for bit. */
void cpu_matmul_bias_act_forward(float *pre, float *out, const float *x, const float *w,
                                 const float *bias, int N, int C, int OC, int act) {
    if (N == 1) {
        cpu_matvec(pre, x, w, bias, C, OC);
        act_row(pre, out, OC, act);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, 0.0f, pre, OC);
    int O = out_cols(OC, act);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *p = pre + (size_t)n * OC;
        if (bias) {
#pragma omp simd
            for (int i = 0; i < OC; i++)
                p[i] += bias[i];
        }
        act_row(p, out + (size_t)n * O, OC, act);
    }
}
