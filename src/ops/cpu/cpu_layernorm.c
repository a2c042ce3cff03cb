/* cpu_layernorm.c - LayerNorm forward and backward over the last dim, and
 * the fused residual-add + LayerNorm. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"

#define LN_EPS 1e-5f

/* o = (x - m) * rstd * w + b for one row of mean m; mean and rstd (each
 * may be NULL) get m and rstd for the backward pass */
static void norm_row(float *o, const float *xr, float m, const float *w, const float *b, int C,
                     float *mean, float *rstd) {
    float var = 0.0f;
    for (int i = 0; i < C; i++) {
        float d = xr[i] - m;
        var += d * d;
    }
    float s = 1.0f / sqrtf(var / C + LN_EPS);
    for (int i = 0; i < C; i++)
        o[i] = (xr[i] - m) * s * w[i] + b[i];
    if (mean) *mean = m;
    if (rstd) *rstd = s;
}

void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                           const float *b, int N, int C) {
    /* one row (decoding): no thread team, which costs more than the row */
#pragma omp parallel for schedule(static) if (N > 1)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++)
            m += xr[i];
        norm_row(o, xr, m / C, w, b, C, mean ? mean + n : NULL, rstd ? rstd + n : NULL);
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

/* Fused: res = a + b and LayerNorm(res) in one pass per row (the row stays
 * in L1 between the add, the statistics and the normalisation), instead of
 * an add pass over (N,C) and then the LayerNorm reading res back. */
void cpu_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                    const float *a, const float *b, const float *w,
                                    const float *bias, int N, int C) {
#pragma omp parallel for schedule(static) if (N > 1)
    for (int n = 0; n < N; n++) {
        const float *ar = a + (size_t)n * C, *br = b + (size_t)n * C;
        float *xr = res + (size_t)n * C, *o = out + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) {
            float v = ar[i] + br[i];
            xr[i] = v;
            m += v;
        }
        norm_row(o, xr, m / C, w, bias, C, mean ? mean + n : NULL, rstd ? rstd + n : NULL);
    }
}

/* Fused: the LayerNorm backward with dw and db summed in the same pass
 * over dout and x (per-thread partial sums, added in thread order), instead
 * of a second, column-blocked pass that reads dout and x again. */
void cpu_residual_layernorm_backward(float *dx, float *dw, float *db, const float *dout,
                                     const float *x, const float *w, const float *mean,
                                     const float *rstd, int N, int C) {
    int nt = omp_get_max_threads();
    float *part = cpu_scratch((size_t)nt * 2 * C);
    if (!part) return;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), tn = omp_get_num_threads();
        float *pw = part + (size_t)id * 2 * C, *pb = pw + C;
        memset(pw, 0, 2 * C * sizeof(float));
        int n0 = (int)((long)N * id / tn), n1 = (int)((long)N * (id + 1) / tn);
        for (int n = n0; n < n1; n++) {
            const float *d = dout + (size_t)n * C, *xr = x + (size_t)n * C;
            float *dxr = dx + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float gm = 0.0f, gxm = 0.0f;
            for (int i = 0; i < C; i++) {
                float xhat = (xr[i] - m) * s, g = d[i] * w[i];
                gm += g;
                gxm += g * xhat;
                pw[i] += d[i] * xhat;
                pb[i] += d[i];
            }
            gm /= C;
            gxm /= C;
            for (int i = 0; i < C; i++) {
                float xhat = (xr[i] - m) * s;
                dxr[i] += s * (d[i] * w[i] - gm - xhat * gxm);
            }
        }
#pragma omp barrier
        int c0 = (int)((long)C * id / tn), c1 = (int)((long)C * (id + 1) / tn);
        for (int t = 0; t < tn; t++) {
            const float *qw = part + (size_t)t * 2 * C, *qb = qw + C;
            for (int i = c0; i < c1; i++) {
                dw[i] += qw[i];
                db[i] += qb[i];
            }
        }
    }
}
