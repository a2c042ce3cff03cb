/* cpu_rmsnorm.c - RMSNorm (gain only, no mean, no bias) forward and
 * backward over the last dim, and the fused residual-add + RMSNorm. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"

#define RMS_EPS 1e-5f

/* o = x * rstd * w for one row; rstd (may be NULL) keeps 1/rms */
static void rms_row(float *o, const float *xr, const float *w, int C, float *rstd) {
    float ss = 0.0f;
    for (int i = 0; i < C; i++)
        ss += xr[i] * xr[i];
    float s = 1.0f / sqrtf(ss / C + RMS_EPS);
    for (int i = 0; i < C; i++)
        o[i] = xr[i] * s * w[i];
    if (rstd) *rstd = s;
}

void cpu_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C) {
#pragma omp parallel for schedule(static) if (N > 1)
    for (int n = 0; n < N; n++)
        rms_row(out + (size_t)n * C, x + (size_t)n * C, w, C, rstd ? rstd + n : NULL);
}

void cpu_residual_rmsnorm_forward(float *res, float *out, float *rstd, const float *a,
                                  const float *b, const float *w, int N, int C) {
#pragma omp parallel for schedule(static) if (N > 1)
    for (int n = 0; n < N; n++) {
        const float *ar = a + (size_t)n * C, *br = b + (size_t)n * C;
        float *xr = res + (size_t)n * C;
        for (int i = 0; i < C; i++)
            xr[i] = ar[i] + br[i];
        rms_row(out + (size_t)n * C, xr, w, C, rstd ? rstd + n : NULL);
    }
}

/* With xhat = x * rstd and g = dout * w:  dx = rstd * (g - xhat * mean(g * xhat)),
 * dw = sum_n dout * xhat. dw is summed per thread in the same pass (rows
 * split evenly, partial sums added in thread order: deterministic for a
 * given thread count). */
void cpu_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int N, int C) {
    int nt = omp_get_max_threads();
    float *part = cpu_scratch((size_t)nt * C);
    if (!part) return;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), tn = omp_get_num_threads();
        float *pw = part + (size_t)id * C;
        memset(pw, 0, (size_t)C * sizeof(float));
        int n0 = (int)((long)N * id / tn), n1 = (int)((long)N * (id + 1) / tn);
        for (int n = n0; n < n1; n++) {
            const float *d = dout + (size_t)n * C, *xr = x + (size_t)n * C;
            float *dxr = dx + (size_t)n * C;
            float s = rstd[n], gxm = 0.0f;
            for (int i = 0; i < C; i++) {
                float xhat = xr[i] * s;
                gxm += d[i] * w[i] * xhat;
                pw[i] += d[i] * xhat;
            }
            gxm /= C;
            for (int i = 0; i < C; i++)
                dxr[i] += s * (d[i] * w[i] - xr[i] * s * gxm);
        }
#pragma omp barrier
        int c0 = (int)((long)C * id / tn), c1 = (int)((long)C * (id + 1) / tn);
        for (int t = 0; t < tn; t++) {
            const float *q = part + (size_t)t * C;
            for (int i = c0; i < c1; i++)
                dw[i] += q[i];
        }
    }
}
