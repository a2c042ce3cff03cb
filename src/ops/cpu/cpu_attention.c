/* cpu_attention.c - causal multi-head self-attention, forward and backward
 * per (batch, head) with BLAS sgemm over strided views of qkv (no copies),
 * plus the KV-cache variant used for generation. The (batch, head) pairs run
 * in parallel; BLAS (OpenMP build) runs single-threaded inside them. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include <cblas.h>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"

/* Row t of A holds scores over keys 0..T-1; keep 0..t, softmax them and
 * zero the future so that A @ V is causal. */
static void causal_softmax_rows(float *A, int T) {
    for (int t = 0; t < T; t++) {
        float *r = A + (size_t)t * T;
        float mx = r[0];
        for (int s = 1; s <= t; s++) mx = r[s] > mx ? r[s] : mx;
        float sum = 0.0f;
        for (int s = 0; s <= t; s++) {
            r[s] = cpu_expf(r[s] - mx);
            sum += r[s];
        }
        float inv = 1.0f / sum;
        for (int s = 0; s <= t; s++) r[s] *= inv;
        for (int s = t + 1; s < T; s++) r[s] = 0.0f;
    }
}

void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    int HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * HS, *k = q + C, *v = q + 2 * C;
            float *A = att + ((size_t)b * NH + h) * T * T;
            /* A (T,T) = scale * Q (T,HS) @ K^T (HS,T) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, scale, q, C3, k, C3,
                        0.0f, A, T);
            causal_softmax_rows(A, T);
            /* out_h (T,HS) = A (T,T) @ V (T,HS) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, A, T, v, C3,
                        0.0f, out + (size_t)b * T * C + h * HS, C);
        }
    }
}

void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                            int B, int T, int C, int NH) {
    int HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    /* one (T,T) gradient-of-scores buffer per thread */
    float *scratch = cpu_scratch((size_t)omp_get_max_threads() * T * T);
    if (!scratch) return;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *dA = scratch + (size_t)omp_get_thread_num() * T * T;
            size_t base = (size_t)b * T * C3 + h * HS;
            const float *q = qkv + base, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + base, *dk = dq + C, *dv = dq + 2 * C;
            const float *A = att + ((size_t)b * NH + h) * T * T;
            const float *dO = dout + (size_t)b * T * C + h * HS;
            /* dA (T,T) = dO (T,HS) @ V^T;  dV (T,HS) = A^T @ dO */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, 1.0f, dO, C, v, C3,
                        0.0f, dA, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, 1.0f, A, T, dO, C, 0.0f,
                        dv, C3);
            /* softmax backward, in place: dS = A * (dA - rowsum(A * dA));
             * A is zero above the diagonal, so dS is causal too */
            for (int t = 0; t < T; t++) {
                const float *a = A + (size_t)t * T;
                float *d = dA + (size_t)t * T;
                float dot = 0.0f;
                for (int s = 0; s <= t; s++) dot += a[s] * d[s];
                for (int s = 0; s <= t; s++) d[s] = a[s] * (d[s] - dot);
                for (int s = t + 1; s < T; s++) d[s] = 0.0f;
            }
            /* dQ = scale * dS @ K;  dK = scale * dS^T @ Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, scale, dA, T, k, C3,
                        0.0f, dq, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, scale, dA, T, q, C3,
                        0.0f, dk, C3);
        }
    }
}

void cpu_attention_cached(float *out, float *kcache, float *vcache, const float *qkv, int n,
                          int pos0, int C, int NH) {
    int HS = C / NH, C3 = 3 * C, len = pos0 + n;
    float scale = 1.0f / sqrtf((float)HS);
    for (int i = 0; i < n; i++) {
        memcpy(kcache + (size_t)(pos0 + i) * C, qkv + (size_t)i * C3 + C, C * sizeof(float));
        memcpy(vcache + (size_t)(pos0 + i) * C, qkv + (size_t)i * C3 + 2 * C, C * sizeof(float));
    }
    float *scores = cpu_scratch((size_t)n * NH * len);
    if (!scores) return;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < NH; h++) {
            int last = pos0 + i; /* attends to 0..last */
            const float *q = qkv + (size_t)i * C3 + h * HS;
            float *sc = scores + ((size_t)i * NH + h) * len;
            float mx = -INFINITY;
            for (int s = 0; s <= last; s++) {
                const float *k = kcache + (size_t)s * C + h * HS;
                float dot = 0.0f;
                for (int j = 0; j < HS; j++) dot += q[j] * k[j];
                sc[s] = dot * scale;
                mx = sc[s] > mx ? sc[s] : mx;
            }
            float sum = 0.0f;
            for (int s = 0; s <= last; s++) {
                sc[s] = cpu_expf(sc[s] - mx);
                sum += sc[s];
            }
            float *o = out + (size_t)i * C + h * HS;
            for (int j = 0; j < HS; j++) o[j] = 0.0f;
            for (int s = 0; s <= last; s++) {
                const float *v = vcache + (size_t)s * C + h * HS;
                float a = sc[s] / sum;
                for (int j = 0; j < HS; j++) o[j] += a * v[j];
            }
        }
    }
}
