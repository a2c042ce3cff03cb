/* cpu_rope.c - what --qk-norm and --pos rope do to q and k before the
 * attention (ops.h, qk_forward): an RMS normalisation of each head, then the
 * rotary position embedding, and their backward. */
#include <math.h>
#include <omp.h>

#include "ops/cpu/cpu_kernels.h"

#define QK_EPS 1e-5f

/* cos and sin (half each) of position p's angles p * 10000^(-2j/HS), in
 * double so that large positions keep their precision */
static void rope_angles(float *cs, float *sn, int p, int HS) {
    int half = HS / 2;
    for (int j = 0; j < half; j++) {
        double a = p * pow(10000.0, -2.0 * j / HS);
        cs[j] = (float)cos(a);
        sn[j] = (float)sin(a);
    }
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
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++) {
        float cs[half > 0 ? half : 1], sn[half > 0 ? half : 1];
        if (rope) rope_angles(cs, sn, pos0 + i % T, HS);
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
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++) {
        float cs[half > 0 ? half : 1], sn[half > 0 ? half : 1];
        if (rope) rope_angles(cs, sn, pos0 + i % T, HS);
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
