/* cpu_matmul.c - linear layers through BLAS sgemm, transposes folded into
 * the call (no copies). */
#include <cblas.h>

#include "ops/cpu/cpu_kernels.h"

/* x (N,C) @ w^T (C,OC) + bias -> out (N,OC) */
void cpu_matmul_forward(float *out, const float *x, const float *w, const float *bias, int N, int C,
                        int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, 0.0f, out,
                OC);
    if (!bias) return;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        for (int i = 0; i < OC; i++) o[i] += bias[i];
    }
}

void cpu_matmul_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                         const float *w, int N, int C, int OC) {
    /* dx (N,C) = dout (N,OC) @ w (OC,C) */
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C,
                    0.0f, dx, C);
    /* dw (OC,C) += dout^T (OC,N) @ x (N,C) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, x, C, 1.0f, dw,
                C);
    if (!dbias) return;
    /* column sums: each thread owns a block of columns and walks the rows,
     * so reads stay contiguous and no two threads write the same value */
#pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < OC; o0 += 64) {
        int o1 = o0 + 64 < OC ? o0 + 64 : OC;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int o = o0; o < o1; o++) dbias[o] += d[o];
        }
    }
}
