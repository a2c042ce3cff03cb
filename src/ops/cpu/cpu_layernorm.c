/* cpu_layernorm.c - LayerNorm forward and backward over the last dim. */
#include <math.h>

#include "ops/cpu/cpu_kernels.h"

#define LN_EPS 1e-5f

void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                           const float *b, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += xr[i];
        m /= C;
        float var = 0.0f;
        for (int i = 0; i < C; i++) {
            float d = xr[i] - m;
            var += d * d;
        }
        float s = 1.0f / sqrtf(var / C + LN_EPS);
        for (int i = 0; i < C; i++) o[i] = (xr[i] - m) * s * w[i] + b[i];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = s;
    }
}

/* With xhat = (x - mean) * rstd and g = dout * w:
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). */
void cpu_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                            const float *w, const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C, *xr = x + (size_t)n * C;
        float *dxr = dx + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float gm = 0.0f, gxm = 0.0f;
        for (int i = 0; i < C; i++) {
            float g = d[i] * w[i];
            gm += g;
            gxm += g * (xr[i] - m) * s;
        }
        gm /= C;
        gxm /= C;
        for (int i = 0; i < C; i++) {
            float xhat = (xr[i] - m) * s;
            dxr[i] += s * (d[i] * w[i] - gm - xhat * gxm);
        }
    }
    /* parameter gradients: parallel over channels so no two threads write
     * the same element */
#pragma omp parallel for schedule(static)
    for (int i0 = 0; i0 < C; i0 += 16) {
        int i1 = i0 + 16 < C ? i0 + 16 : C;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * C, *xr = x + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int i = i0; i < i1; i++) {
                dw[i] += d[i] * (xr[i] - m) * s;
                db[i] += d[i];
            }
        }
    }
}
