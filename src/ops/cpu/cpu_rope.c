/* cpu_rope.c - what --qk-norm and --pos rope do to q and k before the
 * attention (ops.h, qk_forward): an RMS normalisation of each head, then the
 * rotary position embedding, and their backward. */
#include <math.h>
#include <omp.h>

#include "ops/cpu/cpu_kernels.h"

#define QK_EPS 1e-5f

/* The cos and sin of the angles p * 10000^(-2j/HS), j < HS/2, of the np
 * positions pos0..pos0+np-1 into cs, sn (np, HS/2): computed once per call
 * (rows that share a position share them), in double so that large
 * positions keep their precision. */
static void rope_table(float *cs, float *sn, int pos0, int np, int HS) {
    int half = HS / 2;
    double inv[half > 0 ? half : 1];
    for (int j = 0; j < half; j++)
        inv[j] = pow(10000.0, -2.0 * j / HS);
#pragma omp parallel for schedule(static) if (np > 1)
    for (int p = 0; p < np; p++)
        for (int j = 0; j < half; j++) {
            double a = (double)(pos0 + p) * inv[j];
            cs[(size_t)p * half + j] = (float)cos(a);
            sn[(size_t)p * half + j] = (float)sin(a);
        }
}

/* the table of rows (n rows, row i at position pos0 + i % T) in the CPU
 * scratch buffer: cs, sn point to position 0's entries; NULL if out of
 * memory (the kernel then does nothing: the caller's model is unusable
 * anyway) */
static float *rope_rows(int n, int T, int pos0, int HS, float **cs, float **sn) {
    int np = n < T ? n : T, half = HS / 2;
    float *t = cpu_scratch(2 * (size_t)np * half + 1);
    if (!t) return NULL;
    *cs = t;
    *sn = t + (size_t)np * half;
    rope_table(*cs, *sn, pos0, np, HS);
    return t;
}

/* turns x's pairs (j, j + HS/2) by +angle (dir 1) or -angle (dir -1) */
static void rotate(float *x, const float *cs, const float *sn, int half, float dir) {
    for (int j = 0; j < half; j++) {
        float a = x[j], b = x[j + half], s = dir * sn[j];
        x[j] = a * cs[j] - b * s;
        x[j + half] = b * cs[j] + a * s;
    }
}

void cpu_qk_forward(float *qkv, float *rstd, int n, int T, int pos0, int C, int NH, int rope,
                    int qk_norm) {
    int HS = C / NH, half = HS / 2;
    float *cs0 = NULL, *sn0 = NULL;
    if (rope && !rope_rows(n, T, pos0, HS, &cs0, &sn0)) return;
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++) {
        const float *cs = cs0 ? cs0 + (size_t)(i % T) * half : NULL,
                    *sn = sn0 ? sn0 + (size_t)(i % T) * half : NULL;
        for (int h = 0; h < 2 * NH; h++) { /* q's heads, then k's */
            float *x = qkv + (size_t)i * 3 * C + (size_t)h * HS;
            if (qk_norm) {
                float ss = 0.0f;
                for (int j = 0; j < HS; j++)
                    ss += x[j] * x[j];
                float s = 1.0f / sqrtf(ss / HS + QK_EPS);
                for (int j = 0; j < HS; j++)
                    x[j] *= s;
                if (rstd) rstd[(size_t)i * 2 * NH + h] = s;
            }
            if (rope) rotate(x, cs, sn, half, 1.0f);
        }
    }
}

/* The rotation is orthogonal, so with y the normalised head before it and
 * z = R y after it (what qkv holds), dz the incoming gradient:
 *   dy = R^T dz;  dx = rstd * (dy - y * mean(dy * y)) = rstd * R^T (dz - z * mean(dz * z)),
 * which needs neither y nor a second rotation. */
void cpu_qk_backward(float *dqkv, const float *qkv, const float *rstd, int n, int T, int pos0,
                     int C, int NH, int rope, int qk_norm) {
    int HS = C / NH, half = HS / 2;
    float *cs0 = NULL, *sn0 = NULL;
    if (rope && !rope_rows(n, T, pos0, HS, &cs0, &sn0)) return;
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++) {
        const float *cs = cs0 ? cs0 + (size_t)(i % T) * half : NULL,
                    *sn = sn0 ? sn0 + (size_t)(i % T) * half : NULL;
        for (int h = 0; h < 2 * NH; h++) {
            float *d = dqkv + (size_t)i * 3 * C + (size_t)h * HS;
            const float *z = qkv + (size_t)i * 3 * C + (size_t)h * HS;
            if (qk_norm) {
                float dot = 0.0f;
                for (int j = 0; j < HS; j++)
                    dot += d[j] * z[j];
                dot /= HS;
                float s = rstd[(size_t)i * 2 * NH + h];
                for (int j = 0; j < HS; j++)
                    d[j] = s * (d[j] - z[j] * dot);
            }
            if (rope) rotate(d, cs, sn, half, -1.0f);
        }
    }
}
