/* cpu_attention.c - causal multi-head self-attention, forward and backward,
 * in two kernels, plus the KV-cache variant used for generation.
 *
 * "full": per (batch, head), BLAS sgemm over strided views of qkv (no
 * copies) into the whole (T,T) probability matrix, which is kept for the
 * backward pass: state B*NH*T*T floats.
 *
 * "flash": the scores are never materialised beyond a tile. The forward
 * pass walks (batch, head, query block) in parallel; for each query block
 * it visits the key blocks at or below the diagonal (blocks above it are
 * skipped: causality), computes one BLK x BLK tile of scores with sgemm,
 * and keeps a running max and sum per row (online softmax), rescaling the
 * output rows it accumulates in place. It keeps only one log-sum-exp per
 * row: state B*NH*T floats. The backward pass takes D = rowsum(dout * out)
 * per row, then for each tile at or below the diagonal recomputes the
 * probabilities P = exp(S - lse), dP = dout V^T and dS = P (dP - D), and
 * accumulates dV += P^T dout, dQ += dS K, dK += dS^T Q (five sgemm per
 * tile; two tiles of scratch per thread). It runs in parallel over
 * (batch, head), each thread owning its head's dQ, dK and dV.
 *
 * Which one runs is decided per T (attention_uses_flash): both kernels do
 * the same maths, and the state size (cpu_attention_state_floats) follows
 * the same choice. Measured (bench/bench_kernels.c attention, 2 threads,
 * OpenBLAS SkylakeX kernels, docs/kernel-fusion.md): at T = 64 the (T,T)
 * kernel is faster (fwd 0.21 vs 0.25 ms, bwd 0.26 vs 0.38 at B8 C256 NH4):
 * one sgemm per head beats several small tile calls when the whole matrix
 * is about one tile anyway; at T = 128 they tie; from T = 256 the flash
 * kernel wins (it skips the masked tiles, which the full sgemm computes):
 * 1.15x at T 256, 1.3-1.8x at T 512-1024, and keeps 4-1000x less state.
 * With OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE=Haswell) the flash
 * forward still wins from T 256, its backward (five 64x64 sgemm per tile)
 * only at T 1024, and at T 128 the full kernel is 1.25x faster. Hence
 * flash from CPU_FLASH_MIN_T = 128, for the memory and the AVX-512 case.
 * BLAS (OpenMP build) runs single-threaded inside our parallel regions. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"

/* ---------------------------------------------------------------------
 * kernel choice */

static int forced = -1; /* -1: by T; CPU_ATTN_FULL or CPU_ATTN_FLASH */

void cpu_attention_set_kernel(int kernel) { forced = kernel; }

static int attention_uses_flash(int T) {
    if (forced < 0) {
        const char *e = getenv("MINIGPT_ATTENTION");
        forced = e && strcmp(e, "flash") == 0  ? CPU_ATTN_FLASH
                 : e && strcmp(e, "full") == 0 ? CPU_ATTN_FULL
                                               : CPU_ATTN_AUTO;
    }
    if (forced == CPU_ATTN_FLASH) return 1;
    if (forced == CPU_ATTN_FULL) return 0;
    return T >= CPU_FLASH_MIN_T;
}

/* Monotone in T (the model carves layer l's state at l * state(B,NH,T)
 * out of L * state(B',NH,T') with B <= B', T <= T'): below the switch the
 * full kernel's T*T; above it the flash kernel's T, but never less than
 * what a shorter T (run by the full kernel) needs. */
size_t cpu_attention_state_floats(int B, int NH, int T) {
    size_t bh = (size_t)B * NH, t = (size_t)T;
    if (!attention_uses_flash(T)) return bh * t * t;
    size_t below =
        forced == CPU_ATTN_FLASH ? 0 : (size_t)(CPU_FLASH_MIN_T - 1) * (CPU_FLASH_MIN_T - 1);
    return bh * (t > below ? t : below);
}

void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    if (attention_uses_flash(T))
        cpu_attention_flash_forward(out, att, qkv, B, T, C, NH);
    else
        cpu_attention_full_forward(out, att, qkv, B, T, C, NH);
}

void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *att, int B, int T, int C, int NH) {
    if (attention_uses_flash(T))
        cpu_attention_flash_backward(dqkv, dout, qkv, out, att, B, T, C, NH);
    else
        cpu_attention_full_backward(dqkv, dout, qkv, att, B, T, C, NH);
}

/* ---------------------------------------------------------------------
 * full (T,T) kernel */

/* Row t of A holds scores over keys 0..T-1; keep 0..t, softmax them and
 * zero the future so that A @ V is causal. */
static void causal_softmax_rows(float *A, int T) {
    for (int t = 0; t < T; t++) {
        float *r = A + (size_t)t * T;
        float mx = r[0];
#pragma omp simd reduction(max : mx)
        for (int s = 1; s <= t; s++)
            mx = r[s] > mx ? r[s] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int s = 0; s <= t; s++) {
            r[s] = cpu_expf(r[s] - mx);
            sum += r[s];
        }
        float inv = 1.0f / sum;
        for (int s = 0; s <= t; s++)
            r[s] *= inv;
        for (int s = t + 1; s < T; s++)
            r[s] = 0.0f;
    }
}

void cpu_attention_full_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                                int NH) {
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

void cpu_attention_full_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, 1.0f, dO, C, v, C3, 0.0f,
                        dA, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, 1.0f, A, T, dO, C, 0.0f,
                        dv, C3);
            /* softmax backward, in place: dS = A * (dA - rowsum(A * dA));
             * A is zero above the diagonal, so dS is causal too */
            for (int t = 0; t < T; t++) {
                const float *a = A + (size_t)t * T;
                float *d = dA + (size_t)t * T;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int s = 0; s <= t; s++)
                    dot += a[s] * d[s];
                for (int s = 0; s <= t; s++)
                    d[s] = a[s] * (d[s] - dot);
                for (int s = t + 1; s < T; s++)
                    d[s] = 0.0f;
            }
            /* dQ = scale * dS @ K;  dK = scale * dS^T @ Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, scale, dA, T, k, C3,
                        0.0f, dq, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, scale, dA, T, q, C3,
                        0.0f, dk, C3);
        }
    }
}

/* ---------------------------------------------------------------------
 * flash kernel: tiles of BLK queries x BLK keys */

#define BLK CPU_FLASH_BLOCK

void cpu_attention_flash_forward(float *out, float *lse, const float *qkv, int B, int T, int C,
                                 int NH) {
    int HS = C / NH, C3 = 3 * C, nqb = (T + BLK - 1) / BLK;
    float scale = 1.0f / sqrtf((float)HS);
    /* per thread: one score tile and the running max and sum of its rows */
    size_t per = (size_t)BLK * BLK + 2 * BLK;
    float *scratch = cpu_scratch((size_t)omp_get_max_threads() * per);
    if (!scratch) return;
#pragma omp parallel for collapse(3) schedule(dynamic)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int qb = 0; qb < nqb; qb++) {
                float *S = scratch + (size_t)omp_get_thread_num() * per;
                float *mx = S + BLK * BLK, *sum = mx + BLK;
                int q0 = qb * BLK, nq = T - q0 < BLK ? T - q0 : BLK;
                const float *base = qkv + (size_t)b * T * C3 + h * HS;
                const float *q = base + (size_t)q0 * C3;
                /* the output rows of this block accumulate in place */
                float *o = out + ((size_t)b * T + q0) * C + h * HS;
                for (int r = 0; r < nq; r++) {
                    mx[r] = -INFINITY;
                    sum[r] = 0.0f;
                    memset(o + (size_t)r * C, 0, HS * sizeof(float));
                }
                for (int k0 = 0; k0 < q0 + nq; k0 += BLK) { /* causal: keys <= the last query */
                    int nk = T - k0 < BLK ? T - k0 : BLK;
                    const float *k = base + C + (size_t)k0 * C3,
                                *v = base + 2 * C + (size_t)k0 * C3;
                    /* S (nq,nk) = scale * Q K^T */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, HS, scale, q, C3,
                                k, C3, 0.0f, S, BLK);
                    for (int r = 0; r < nq; r++) {
                        float *s = S + (size_t)r * BLK;
                        int lim = q0 + r - k0 + 1; /* keys k0..q0+r are visible */
                        if (lim > nk) lim = nk;
                        float m = mx[r];
#pragma omp simd reduction(max : m)
                        for (int j = 0; j < lim; j++)
                            m = s[j] > m ? s[j] : m;
                        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                        for (int j = 0; j < lim; j++) {
                            s[j] = cpu_expf(s[j] - m);
                            acc += s[j];
                        }
                        for (int j = lim; j < nk; j++)
                            s[j] = 0.0f;
                        if (m != mx[r]) { /* a new max: rescale what is accumulated */
                            float alpha = mx[r] == -INFINITY ? 0.0f : cpu_expf(mx[r] - m);
                            float *orow = o + (size_t)r * C;
                            for (int j = 0; j < HS; j++)
                                orow[j] *= alpha;
                            sum[r] *= alpha;
                            mx[r] = m;
                        }
                        sum[r] += acc;
                    }
                    /* O (nq,HS) += P (nq,nk) V (nk,HS) */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, HS, nk, 1.0f, S, BLK,
                                v, C3, 1.0f, o, C);
                }
                float *l = lse + ((size_t)b * NH + h) * T + q0;
                for (int r = 0; r < nq; r++) {
                    float inv = 1.0f / sum[r], *orow = o + (size_t)r * C;
                    for (int j = 0; j < HS; j++)
                        orow[j] *= inv;
                    l[r] = mx[r] + logf(sum[r]);
                }
            }
        }
    }
}

void cpu_attention_flash_backward(float *dqkv, const float *dout, const float *qkv,
                                  const float *out, const float *lse, int B, int T, int C, int NH) {
    int HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    /* per thread: the P and dP tiles, and D over the rows */
    size_t per = 2 * (size_t)BLK * BLK + T;
    float *scratch = cpu_scratch((size_t)omp_get_max_threads() * per);
    if (!scratch) return;
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float *P = scratch + (size_t)omp_get_thread_num() * per;
            float *dP = P + (size_t)BLK * BLK, *D = dP + (size_t)BLK * BLK;
            size_t base = (size_t)b * T * C3 + h * HS;
            const float *Q = qkv + base, *K = Q + C, *V = Q + 2 * C;
            float *dQ = dqkv + base, *dK = dQ + C, *dV = dQ + 2 * C;
            const float *dO = dout + (size_t)b * T * C + h * HS,
                        *O = out + (size_t)b * T * C + h * HS;
            const float *L = lse + ((size_t)b * NH + h) * T;
            /* D = rowsum(dO * O); dK, dV accumulate from zero */
            for (int t = 0; t < T; t++) {
                const float *x = dO + (size_t)t * C, *y = O + (size_t)t * C;
                float d = 0.0f;
#pragma omp simd reduction(+ : d)
                for (int j = 0; j < HS; j++)
                    d += x[j] * y[j];
                D[t] = d;
                memset(dK + (size_t)t * C3, 0, HS * sizeof(float));
                memset(dV + (size_t)t * C3, 0, HS * sizeof(float));
            }
            for (int q0 = 0; q0 < T; q0 += BLK) {
                int nq = T - q0 < BLK ? T - q0 : BLK;
                const float *q = Q + (size_t)q0 * C3, *dOq = dO + (size_t)q0 * C;
                float *dq = dQ + (size_t)q0 * C3;
                for (int k0 = 0; k0 < q0 + nq;
                     k0 += BLK) { /* causal: key blocks up to the diagonal */
                    int nk = T - k0 < BLK ? T - k0 : BLK;
                    const float *k = K + (size_t)k0 * C3, *v = V + (size_t)k0 * C3;
                    /* P = exp(scale Q K^T - lse);  dP = dO V^T */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, HS, scale, q, C3,
                                k, C3, 0.0f, P, BLK);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, HS, 1.0f, dOq, C,
                                v, C3, 0.0f, dP, BLK);
                    for (int r = 0; r < nq; r++) {
                        float *p = P + (size_t)r * BLK, *dp = dP + (size_t)r * BLK;
                        int lim = q0 + r - k0 + 1;
                        if (lim > nk) lim = nk;
                        float l = L[q0 + r], d = D[q0 + r];
                        /* dS = P * (dP - D), in place of dP; zero in the future */
                        for (int j = 0; j < lim; j++) {
                            p[j] = cpu_expf(p[j] - l);
                            dp[j] = p[j] * (dp[j] - d);
                        }
                        for (int j = lim; j < nk; j++)
                            p[j] = dp[j] = 0.0f;
                    }
                    /* dV_k += P^T dO_q;  dQ_q += scale dS K_k;  dK_k += scale dS^T Q_q */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, nq, 1.0f, P, BLK,
                                dOq, C, 1.0f, dV + (size_t)k0 * C3, C3);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, HS, nk, scale, dP,
                                BLK, k, C3, k0 ? 1.0f : 0.0f, dq, C3);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, nq, scale, dP, BLK,
                                q, C3, 1.0f, dK + (size_t)k0 * C3, C3);
                }
            }
        }
    }
}

/* ---------------------------------------------------------------------
 * KV cache (generation) */

/* One query row per (i, h) against keys 0..pos0+i, with an online softmax
 * over tiles of KV_TILE keys (scores on the stack, the output row as the
 * accumulator): no scratch memory, whatever the prompt's length. */
#define KV_TILE 64
void cpu_attention_cached(float *out, float *kcache, float *vcache, const float *qkv, int n,
                          int pos0, int C, int NH) {
    int HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int i = 0; i < n; i++) {
        memcpy(kcache + (size_t)(pos0 + i) * C, qkv + (size_t)i * C3 + C, C * sizeof(float));
        memcpy(vcache + (size_t)(pos0 + i) * C, qkv + (size_t)i * C3 + 2 * C, C * sizeof(float));
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < NH; h++) {
            int keys = pos0 + i + 1; /* attends to 0..pos0+i */
            const float *q = qkv + (size_t)i * C3 + h * HS;
            float *o = out + (size_t)i * C + h * HS;
            float mx = -INFINITY, sum = 0.0f, sc[KV_TILE];
            for (int j = 0; j < HS; j++)
                o[j] = 0.0f;
            for (int s0 = 0; s0 < keys; s0 += KV_TILE) {
                int ns = keys - s0 < KV_TILE ? keys - s0 : KV_TILE;
                float tmax = -INFINITY;
                for (int t = 0; t < ns; t++) {
                    const float *k = kcache + (size_t)(s0 + t) * C + h * HS;
                    float dot = 0.0f;
                    for (int j = 0; j < HS; j++)
                        dot += q[j] * k[j];
                    sc[t] = dot * scale;
                    tmax = sc[t] > tmax ? sc[t] : tmax;
                }
                if (tmax > mx) { /* a new maximum: rescale what came before */
                    float r = cpu_expf(mx - tmax);
                    sum *= r;
                    for (int j = 0; j < HS; j++)
                        o[j] *= r;
                    mx = tmax;
                }
                for (int t = 0; t < ns; t++) {
                    sc[t] = cpu_expf(sc[t] - mx);
                    sum += sc[t];
                }
                for (int t = 0; t < ns; t++) {
                    const float *v = vcache + (size_t)(s0 + t) * C + h * HS;
                    for (int j = 0; j < HS; j++)
                        o[j] += sc[t] * v[j];
                }
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < HS; j++)
                o[j] *= inv;
        }
    }
}
