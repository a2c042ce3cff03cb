/* cpu_matmul.c - linear layers through BLAS sgemm, transposes folded into
 * the call (no copies); one row (N = 1, decoding) as a matrix-vector
 * product; the fused matmul + bias + GELU. */
#include <cblas.h>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"

/* out (OC) = w (OC,C) @ x (C) + bias: decoding is bound by reading the
 * weights, once per token. BLAS sgemv (threaded over output rows by
 * OpenBLAS) reads them once, at about 100 GB/s from cache here; sgemm with
 * M = 1 is 3-12x slower (it packs the weights), and an OpenMP loop over
 * rows with vectorised dot products (bench/bench_kernels.c decode) measured
 * the same as sgemv or up to 2x slower, so sgemv it is. */
void cpu_matvec(float *out, const float *x, const float *w, const float *bias, int C, int OC) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, x, 1, 0.0f, out, 1);
    if (bias)
        for (int o = 0; o < OC; o++) out[o] += bias[o];
}

void cpu_matmul_forward(float *out, const float *x, const float *w, const float *bias, int N, int C,
                        int OC) {
    if (N == 1) {
        cpu_matvec(out, x, w, bias, C, OC);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, 0.0f, out,
                OC);
    if (bias) cpu_bias_add(out, bias, N, OC);
}

void cpu_bias_add(float *out, const float *bias, int N, int OC) {
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
    if (dbias) cpu_bias_backward(dbias, dout, N, OC);
}

void cpu_bias_backward(float *dbias, const float *dout, int N, int OC) {
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

/* Fused: pre = x @ w^T + bias and out = GELU(pre) in one pass after the
 * sgemm, instead of a bias pass over pre and a GELU pass reading it again. */
void cpu_matmul_bias_gelu_forward(float *pre, float *out, const float *x, const float *w,
                                  const float *bias, int N, int C, int OC) {
    if (N == 1)
        cpu_matvec(pre, x, w, NULL, C, OC);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, 0.0f, pre,
                    OC);
    cpu_bias_gelu(pre, out, bias, N, OC);
}

void cpu_bias_gelu(float *pre, float *out, const float *bias, int N, int OC) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *p = pre + (size_t)n * OC, *o = out + (size_t)n * OC;
#pragma omp simd
        for (int i = 0; i < OC; i++) {
            float v = p[i] + bias[i];
            p[i] = v;
            o[i] = cpu_gelu(v);
        }
    }
}
