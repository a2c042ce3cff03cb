/* cpu_loss.c - softmax cross-entropy and its gradient in one pass per row. */
#include <math.h>

#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_math.h"

void cpu_xent_forward_backward(float *losses, float *dlogits, const float *logits,
                               const int32_t *targets, int N, int V, float dloss) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float mx = l[0];
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        float sum = 0.0f;
        for (int i = 0; i < V; i++) sum += cpu_expf(l[i] - mx);
        float lse = mx + logf(sum);
        int y = targets[n];
        losses[n] = lse - l[y];
        if (!dlogits) continue;
        /* dlogits may alias logits: l[i] is read before d[i] is written */
        float *d = dlogits + (size_t)n * V;
        for (int i = 0; i < V; i++) d[i] = cpu_expf(l[i] - lse) * dloss;
        d[y] -= dloss;
    }
}
