/* cpu_pointwise.c - embeddings, GELU and residual adds: the element-wise
 * kernels. GELU uses 0.5 x (1 + tanh(u)) = x * sigmoid(2u), so it needs
 * one vectorisable exp and no tanhf. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"

void cpu_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B,
                       int T, int C, int pos0) {
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float *e = wte + (size_t)tok[bt] * C;
        float *o = out + (size_t)bt * C;
        if (!wpe) { /* rotary positions: the token alone */
            memcpy(o, e, (size_t)C * sizeof(float));
            continue;
        }
        const float *p = wpe + (size_t)(pos0 + t) * C;
        for (int i = 0; i < C; i++)
            o[i] = e[i] + p[i];
    }
}

void cpu_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B,
                        int T, int C) {
    /* Serial over rows: two rows may share a token id, and a fixed order
     * keeps the sum bit-identical from run to run. */
    for (int bt = 0; bt < B * T; bt++) {
        const float *d = dout + (size_t)bt * C;
        float *e = dwte + (size_t)tok[bt] * C;
        for (int i = 0; i < C; i++)
            e[i] += d[i];
        if (!dwpe) continue; /* rotary positions: no position table */
        float *p = dwpe + (size_t)(bt % T) * C;
        for (int i = 0; i < C; i++)
            p[i] += d[i];
    }
}

void cpu_gelu_forward(float *out, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = cpu_gelu(x[i]);
}

void cpu_gelu_backward(float *dx, const float *x, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dx[i] = dout[i] * cpu_gelu_grad(x[i]);
}

/* Fused: the GELU backward and the bias gradient of the matmul before it
 * in one pass over (N,OC), instead of gelu_backward then a column-sum pass
 * in matmul_backward. Each thread sums its rows into its own OC floats;
 * the partial sums are added in thread order (deterministic for a given
 * thread count). */
void cpu_gelu_bias_backward(float *dpre, float *dbias, const float *pre, const float *dout, int N,
                            int OC) {
    cpu_mlp_act_bias_backward(dpre, dbias, pre, dout, N, OC, CPU_ACT_GELU);
}

void cpu_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}
