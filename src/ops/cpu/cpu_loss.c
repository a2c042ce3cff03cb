/* cpu_loss.c - softmax cross-entropy and its gradient in one pass per row:
 * the max, then exp(l - max) computed once per element (written straight
 * into dlogits when a gradient is wanted, and summed), then one scaling
 * pass over the row, which is still in L1/L2. With no gradient asked for,
 * nothing is written but the loss. */
#include <math.h>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"

void cpu_xent_forward_backward(float *losses, float *dlogits, const float *logits,
                               const int32_t *targets, int N, int V, float dloss) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        int y = targets[n];
        float mx = l[0];
#pragma omp simd reduction(max : mx)
        for (int i = 0; i < V; i++)
            mx = l[i] > mx ? l[i] : mx;
        float ly = l[y], sum = 0.0f; /* l[y] before dlogits (which may alias) overwrites it */
        if (!dlogits) {
#pragma omp simd reduction(+ : sum)
            for (int i = 0; i < V; i++)
                sum += cpu_expf(l[i] - mx);
            losses[n] = mx + logf(sum) - ly;
            continue;
        }
        float *d = dlogits + (size_t)n * V;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < V; i++) {
            float e = cpu_expf(l[i] - mx);
            d[i] = e;
            sum += e;
        }
        losses[n] = mx + logf(sum) - ly;
        float k = dloss / sum;
#pragma omp simd
        for (int i = 0; i < V; i++)
            d[i] *= k;
        d[y] -= dloss;
    }
}
