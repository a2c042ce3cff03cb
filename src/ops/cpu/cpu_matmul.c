/* cpu_matmul.c - linear layers through BLAS sgemm, transposes folded into
 * the call (no copies); one row (N = 1, decoding) through a hand-written
 * matrix-vector product that streams the weights once; the fused matmul +
 * bias + GELU. */
#include <cblas.h>
#include <omp.h>
#include <string.h>
#if defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"

/* One row: out (OC) = w (OC,C) @ x (C). Decoding reads every weight once
 * per token (GPT-2 124M: 497 MB for 0.25 GFLOP), so this is a question of
 * memory bandwidth, not arithmetic: BLAS sgemv streamed the GPT-2 weights
 * at 40-44 GB/s here, this loop at 55-57 GB/s, about what a plain summing
 * loop reads with 2 threads (bench/bench_kernels.c decode and step).
 * What makes the difference is MATVEC_ROWS rows in flight at once: eight
 * independent streams of weights keep more cache-line reads outstanding
 * than one or four (4 rows: 42 GB/s; 12 or 16: no better than 8), and each
 * load of x feeds eight products. Software prefetch measured slower (44-45
 * GB/s), so there is none.
 * The vector is a GCC/Clang vector type of 8 floats where the target
 * (-march) has AVX, else 4 (SSE2, the x86-64 baseline, or NEON), so one
 * loop builds everywhere and eight accumulators always fit in the
 * registers. 16 floats (AVX-512) measured no faster from memory and 10-30 %
 * slower from cache on this Zen 4, which splits them in two anyway. */
#if defined(__AVX__)
#define MATVEC_VW 8
#else
#define MATVEC_VW 4
#endif
#define MATVEC_ROWS 8
typedef float matvec_vec_t __attribute__((vector_size(MATVEC_VW * sizeof(float))));
/* acc + a * b, fused where the target has FMA (ISO C mode does not
 * contract a * b + c by itself): half the arithmetic, which counts when the
 * weights come from cache (small models) rather than from memory */
#if defined(__AVX__) && defined(__FMA__)
#define MATVEC_FMA(a, b, acc) _mm256_fmadd_ps(a, b, acc)
#else
#define MATVEC_FMA(a, b, acc) ((acc) + (a) * (b))
#endif

/* an unaligned load (rows of odd C are not vector-aligned) */
static inline matvec_vec_t matvec_load(const float *p) {
    matvec_vec_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One row's result from its accumulator: the lanes summed as a tree
 * (halves added, log2 VW steps, not a chain of VW dependent adds), then
 * the C % VW columns from i on, then the bias (may be NULL). */
static inline float matvec_finish(matvec_vec_t acc, const float *x, const float *wr,
                                  const float *bias, int i, int C) {
    float t[MATVEC_VW];
    memcpy(t, &acc, sizeof t);
    for (int h = MATVEC_VW / 2; h > 0; h /= 2)
        for (int k = 0; k < h; k++)
            t[k] += t[k + h];
    float s = t[0];
    for (int j = i; j < C; j++)
        s += wr[j] * x[j];
    return bias ? s + *bias : s;
}

/* For the R (<= MATVEC_ROWS) rows at w: out[r] = w[r,:] . x + bias[r]
 * (bias may be NULL). R is a constant at both call sites, so the
 * accumulators stay in registers. Each row's result is finished and
 * stored on its own: eight scalar stores read back as one vector (a bias
 * pass over the block) stall on store forwarding, which cost 3x in cache. */
static inline void matvec_block(float *out, const float *x, const float *w, const float *bias,
                                int C, int R) {
    matvec_vec_t acc[MATVEC_ROWS] = {0};
    int i = 0;
    for (; i + MATVEC_VW <= C; i += MATVEC_VW) {
        matvec_vec_t xv = matvec_load(x + i);
        for (int r = 0; r < R; r++)
            acc[r] = MATVEC_FMA(matvec_load(w + (size_t)r * C + i), xv, acc[r]);
    }
    for (int r = 0; r < R; r++)
        out[r] = matvec_finish(acc[r], x, w + (size_t)r * C, bias ? bias + r : NULL, i, C);
}

/* matvec_block for two rows of x at once (batched decoding): each load of
 * w feeds two products, and every result is the one matvec_block gives
 * for its row of x alone (the same products, summed in the same order). */
static inline void matvec_block2(float *out0, float *out1, const float *x0, const float *x1,
                                 const float *w, const float *bias, int C) {
    matvec_vec_t acc0[MATVEC_ROWS] = {0}, acc1[MATVEC_ROWS] = {0};
    int i = 0;
    for (; i + MATVEC_VW <= C; i += MATVEC_VW) {
        matvec_vec_t xv0 = matvec_load(x0 + i), xv1 = matvec_load(x1 + i);
        for (int r = 0; r < MATVEC_ROWS; r++) {
            matvec_vec_t wv = matvec_load(w + (size_t)r * C + i);
            acc0[r] = MATVEC_FMA(wv, xv0, acc0[r]);
            acc1[r] = MATVEC_FMA(wv, xv1, acc1[r]);
        }
    }
    for (int r = 0; r < MATVEC_ROWS; r++) {
        out0[r] = matvec_finish(acc0[r], x0, w + (size_t)r * C, bias ? bias + r : NULL, i, C);
        out1[r] = matvec_finish(acc1[r], x1, w + (size_t)r * C, bias ? bias + r : NULL, i, C);
    }
}

/* pre (N,OC) = x (N,C) @ w (OC,C)^T + bias (may be NULL), row after row of x
 * for each block of w; when out is not NULL, also out = GELU(pre), each
 * thread over its own rows while they are in its cache (a vectorised pass:
 * GELU row by row inside the blocks is scalar). Each thread takes one
 * contiguous range of row blocks, so it streams one part of w from start
 * to end once, whatever N (a block of 8 rows of w stays in L1 for the N
 * rows of x); below 64K weights a second thread costs more than it saves.
 * Every row of pre is the same function of its row of x whatever N and the
 * threads: batched decoding gives each sequence what it gets alone. */
static void matvec(float *pre, float *out, const float *x, const float *w, const float *bias, int N,
                   int C, int OC) {
    int blocks = (OC + MATVEC_ROWS - 1) / MATVEC_ROWS;
#pragma omp parallel if ((size_t)OC * C >= 65536)
    {
        int id = omp_get_thread_num(), nt = omp_get_num_threads();
        int b0 = (int)((long)blocks * id / nt), b1 = (int)((long)blocks * (id + 1) / nt);
        for (int b = b0; b < b1; b++) {
            int o = b * MATVEC_ROWS, R = OC - o < MATVEC_ROWS ? OC - o : MATVEC_ROWS;
            const float *wb = w + (size_t)o * C, *bb = bias ? bias + o : NULL;
            int n = 0;
            if (R == MATVEC_ROWS) /* rows of x in pairs */
                for (; n + 1 < N; n += 2)
                    matvec_block2(pre + (size_t)n * OC + o, pre + (size_t)(n + 1) * OC + o,
                                  x + (size_t)n * C, x + (size_t)(n + 1) * C, wb, bb, C);
            for (; n < N; n++) {
                const float *xn = x + (size_t)n * C;
                float *pn = pre + (size_t)n * OC;
                if (R == MATVEC_ROWS)
                    matvec_block(pn + o, xn, wb, bb, C, MATVEC_ROWS);
                else /* the last, partial block, a row at a time */
                    for (int r = 0; r < R; r++)
                        matvec_block(pn + o + r, xn, wb + (size_t)r * C, bb ? bb + r : NULL, C, 1);
            }
        }
        if (out) {
            int o0 = b0 * MATVEC_ROWS, o1 = b1 * MATVEC_ROWS < OC ? b1 * MATVEC_ROWS : OC;
            for (int n = 0; n < N; n++) {
                const float *pn = pre + (size_t)n * OC;
                float *on = out + (size_t)n * OC;
#pragma omp simd
                for (int o = o0; o < o1; o++)
                    on[o] = cpu_gelu(pn[o]);
            }
        }
    }
}

void cpu_matmul_rows_forward(float *pre, float *out, const float *x, const float *w,
                             const float *bias, int N, int C, int OC) {
    matvec(pre, out, x, w, bias, N, C, OC);
}

void cpu_matvec(float *out, const float *x, const float *w, const float *bias, int C, int OC) {
    matvec(out, NULL, x, w, bias, 1, C, OC);
}

void cpu_matmul_forward(float *out, const float *x, const float *w, const float *bias, int N, int C,
                        int OC) {
    if (N == 1) {
        cpu_matvec(out, x, w, bias, C, OC);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, 0.0f, out, OC);
    if (bias) cpu_bias_add(out, bias, N, OC);
}

void cpu_bias_add(float *out, const float *bias, int N, int OC) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * OC;
        for (int i = 0; i < OC; i++)
            o[i] += bias[i];
    }
}

void cpu_matmul_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                         const float *w, int N, int C, int OC) {
    /* dx (N,C) = dout (N,OC) @ w (OC,C) */
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 0.0f,
                    dx, C);
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
            for (int o = o0; o < o1; o++)
                dbias[o] += d[o];
        }
    }
}

/* Fused: pre = x @ w^T + bias and out = GELU(pre) in one pass after the
 * sgemm, instead of a bias pass over pre and a GELU pass reading it again;
 * for one row, in the matrix-vector product itself. */
void cpu_matmul_bias_gelu_forward(float *pre, float *out, const float *x, const float *w,
                                  const float *bias, int N, int C, int OC) {
    if (N == 1) {
        matvec(pre, out, x, w, bias, 1, C, OC);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, x, C, w, C, 0.0f, pre, OC);
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
