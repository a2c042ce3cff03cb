/* cpu_math.h - an expf that the compiler can vectorise (libm's cannot be,
 * without -ffast-math), for softmax, cross-entropy and GELU, and the GELU
 * built on it. Check with -fopt-info-vec that the loops using them are
 * vectorised (a floorf here was enough to stop that).
 * Cody-Waite range reduction and the Cephes polynomial: within 2 ulp of
 * expf over the range softmax and GELU use. Inputs below -87.3 give about
 * 1e-38 (not 0), inputs above 88.3 give about 2e38 (not inf). */
#ifndef MG_CPU_MATH_H
#define MG_CPU_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float cpu_expf(float x) {
    x = x < -87.3f ? -87.3f : x > 88.3f ? 88.3f : x;
    /* n = round(x / ln2), so that x = n ln2 + r with |r| <= ln2 / 2: adding
     * and subtracting 1.5 * 2^23 rounds to nearest and, unlike floorf
     * (which GCC vectorises only with -fno-trapping-math), vectorises */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* GELU, tanh approximation, as 0.5 x (1 + tanh u) = x * sigmoid(2u): one
 * vectorisable exp and no tanhf. */
#define CPU_GELU_K 0.7978845608028654f /* sqrt(2/pi) */
static inline float cpu_gelu(float v) {
    float u = CPU_GELU_K * (v + 0.044715f * v * v * v);
    return v / (1.0f + cpu_expf(-2.0f * u));
}
/* d gelu / dv */
static inline float cpu_gelu_grad(float v) {
    float u = CPU_GELU_K * (v + 0.044715f * v * v * v);
    float s = 1.0f / (1.0f + cpu_expf(-2.0f * u)); /* (1 + tanh u) / 2 */
    float sech2 = 4.0f * s * (1.0f - s);           /* 1 - tanh^2 u */
    return s + 0.5f * v * sech2 * CPU_GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
}

#endif
