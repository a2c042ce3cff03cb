/* cpu_optim.c - AdamW and the gradient norm for global clipping, and both
 * fused into one call over all parameters. */
#include <math.h>
#include <omp.h>

#include "ops/cpu/cpu_kernels.h"

double cpu_sq_norm(const float *x, size_t n) {
    double s = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
               float beta2, float eps, float wd, float grad_scale, int t) {
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
    }
}

/* Fused: one parallel region for the whole step. Each thread takes the
 * same static slice of the concatenated segments twice: first for its part
 * of the squared norm, then (after a barrier and the sum, in thread order)
 * for the update, so its slice of g is still in cache when it updates. The
 * bias corrections are folded into two constants and the clipping scale into
 * the gradient read: one read of g, p, m, v and one write of p, m, v. */
float cpu_adamw_clip(float *p, const float *g, float *m, float *v, const ops_segment_t *seg,
                     int nseg, float lr, float beta1, float beta2, float eps, float wd, float clip,
                     int t) {
    size_t total = 0;
    for (int s = 0; s < nseg; s++)
        total += seg[s].numel;
    int nt = omp_get_max_threads();
    double part[256];
    if (nt > 256) nt = 256;
    float scale = 1.0f, norm = 0.0f;
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
    /* mhat / (sqrt(vhat) + eps) = (m / bc1) / (sqrt(v) / sqrt(bc2) + eps) */
    float step = lr / bc1, isb2 = 1.0f / sqrtf(bc2), a1 = 1.0f - beta1, a2 = 1.0f - beta2;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), tn = omp_get_num_threads();
        size_t lo = total * id / tn, hi = total * (id + 1) / tn;
        double acc = 0.0;
        size_t base = 0; /* position of segment s in the concatenation */
        for (int s = 0; s < nseg && base < hi; base += seg[s].numel, s++) {
            size_t a = lo > base ? lo - base : 0,
                   b = hi - base < seg[s].numel ? hi - base : seg[s].numel;
            if (a >= b) continue;
            const float *gs = g + seg[s].offset;
#pragma omp simd reduction(+ : acc)
            for (size_t i = a; i < b; i++)
                acc += (double)gs[i] * gs[i];
        }
        part[id] = acc;
#pragma omp barrier
#pragma omp single
        {
            double sq = 0.0;
            for (int k = 0; k < tn; k++)
                sq += part[k];
            norm = (float)sqrt(sq);
            scale = clip > 0.0f && norm > clip ? clip / norm : 1.0f;
        } /* implicit barrier: every thread sees scale */
        base = 0;
        for (int s = 0; s < nseg && base < hi; base += seg[s].numel, s++) {
            size_t a = lo > base ? lo - base : 0,
                   b = hi - base < seg[s].numel ? hi - base : seg[s].numel;
            if (a >= b) continue;
            float *ps = p + seg[s].offset, *ms = m + seg[s].offset, *vs = v + seg[s].offset;
            const float *gs = g + seg[s].offset;
            float decay = seg[s].decay ? lr * wd : 0.0f;
#pragma omp simd
            for (size_t i = a; i < b; i++) {
                float gi = gs[i] * scale;
                float mi = beta1 * ms[i] + a1 * gi, vi = beta2 * vs[i] + a2 * gi * gi;
                ms[i] = mi;
                vs[i] = vi;
                ps[i] -= step * mi / (sqrtf(vi) * isb2 + eps) + decay * ps[i];
            }
        }
    }
    return norm;
}
