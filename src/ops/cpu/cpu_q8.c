/* cpu_q8.c - int8 weights for inference (llama.cpp's Q8_0 layout): each
 * row of w (OC,C) is cut into blocks of 32 along C, stored as 32 int8 q
 * and one float scale s = max|w| / 127, so that w ~ s * q. A decoding step
 * is bound by the bytes of weights it reads (docs/kernel-fusion.md): one
 * byte a weight instead of four. Products dequantize in registers and
 * accumulate in float32. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"
#include "util/common.h"

#define Q8_BLOCK 32

typedef struct {
    int OC, C;
    int8_t *q; /* (OC,C) */
    float *s;  /* (OC, C/32) */
} cpu_q8_t;

void *cpu_q8_make(const float *w, int OC, int C) {
    if (OC < 1 || C < Q8_BLOCK || C % Q8_BLOCK) return NULL;
    cpu_q8_t *t = mg_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->OC = OC;
    t->C = C;
    t->q = mg_malloc((size_t)OC * C);
    t->s = mg_malloc((size_t)OC * (C / Q8_BLOCK) * sizeof(float));
    if (!t->q || !t->s) {
        cpu_q8_free(t);
        return NULL;
    }
#pragma omp parallel for schedule(static)
    for (long b = 0; b < (long)OC * (C / Q8_BLOCK); b++) {
        const float *src = w + b * Q8_BLOCK;
        float amax = 0.0f;
        for (int j = 0; j < Q8_BLOCK; j++)
            amax = fmaxf(amax, fabsf(src[j]));
        float s = amax / 127.0f, inv = s > 0.0f ? 1.0f / s : 0.0f;
        t->s[b] = s;
        for (int j = 0; j < Q8_BLOCK; j++)
            t->q[b * Q8_BLOCK + j] = (int8_t)lrintf(src[j] * inv);
    }
    return t;
}

void cpu_q8_free(void *wq) {
    cpu_q8_t *t = wq;
    if (!t) return;
    mg_free(t->q);
    mg_free(t->s);
    mg_free(t);
}

size_t cpu_q8_bytes(const void *wq) {
    const cpu_q8_t *t = wq;
    return (size_t)t->OC * t->C + (size_t)t->OC * (t->C / Q8_BLOCK) * sizeof(float);
}

/* q (C int8) . x (C floats), blocks of 32 each scaled by s[b] */
static inline float q8_dot(const int8_t *q, const float *s, const float *x, int C) {
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < C / Q8_BLOCK; b++, q += Q8_BLOCK, x += Q8_BLOCK) {
        /* four groups of 8: int8 -> int32 -> float, times x */
        __m256 blk = _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q))),
            _mm256_loadu_ps(x));
        for (int g = 8; g < Q8_BLOCK; g += 8)
            blk = _mm256_fmadd_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + g)))),
                _mm256_loadu_ps(x + g), blk);
        acc = _mm256_fmadd_ps(blk, _mm256_set1_ps(s[b]), acc);
    }
    /* the eight lanes, summed as a tree */
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
#else
    float acc = 0.0f;
    for (int b = 0; b < C / Q8_BLOCK; b++) {
        float blk = 0.0f;
        for (int j = 0; j < Q8_BLOCK; j++)
            blk += (float)q[b * Q8_BLOCK + j] * x[b * Q8_BLOCK + j];
        acc += blk * s[b];
    }
    return acc;
#endif
}

/* out (N,OC) = x (N,C) @ dequant(wq)^T + bias (may be NULL). Threads take
 * contiguous ranges of output rows, and each weight row is read once for
 * all N input rows (it stays in cache between them). */
void cpu_q8_matmul_forward(float *out, const float *x, const void *wq, const float *bias, int N,
                           int C, int OC) {
    const cpu_q8_t *t = wq;
    int nb = C / Q8_BLOCK;
#pragma omp parallel if ((size_t)OC * C >= 65536)
    {
        int id = omp_get_thread_num(), nt = omp_get_num_threads();
        int o0 = (int)((long)OC * id / nt), o1 = (int)((long)OC * (id + 1) / nt);
        for (int o = o0; o < o1; o++) {
            const int8_t *q = t->q + (size_t)o * C;
            const float *s = t->s + (size_t)o * nb;
            float b = bias ? bias[o] : 0.0f;
            for (int n = 0; n < N; n++)
                out[(size_t)n * OC + o] = q8_dot(q, s, x + (size_t)n * C, C) + b;
        }
    }
}
