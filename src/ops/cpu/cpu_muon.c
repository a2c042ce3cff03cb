/* cpu_muon.c - Muon's update of one hidden matrix (ops.h, muon_update):
 * Nesterov momentum, then the quintic Newton-Schulz iteration that
 * replaces each row block of the update by about its nearest
 * semi-orthogonal matrix, through BLAS sgemm (as Keller Jordan's Muon in
 * modded-nanogpt, in float32). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "ops/cpu/cpu_kernels.h"

/* the quintic's coefficients (modded-nanogpt): chosen to grow small
 * singular values fast, at the price of leaving them in about [0.68, 1.13]
 * rather than at 1 */
#define NS_A 3.4445f
#define NS_B (-4.7750f)
#define NS_C 2.0315f
#define NS_STEPS 5

size_t cpu_muon_ns_work_floats(int R, int C) {
    size_t m = (size_t)(R < C ? R : C);
    return (size_t)R * C + 2 * m * m;
}

/* x (R,C) <- NS5(x / (||x||_F + 1e-7)) in place; work: cpu_muon_ns_work_floats.
 * With m = min(R,C), A (m,m) is the Gram matrix of the short side: X X^T
 * when R <= C, X^T X otherwise; then the step X = a X + B X (or X B, the
 * transposed form of working on X^T: B is symmetric) with B = b A + c A A.
 * A is symmetric: ssyrk computes its upper triangle (half the flops of an
 * sgemm), mirrored below. Per step 3 m^2 max(R,C) + 2 m^3 flops. */
void cpu_muon_orthogonalize(float *x, int R, int C, float *work) {
    int wide = R <= C, m = wide ? R : C;
    size_t n = (size_t)R * C;
    float *A = work, *Bm = A + (size_t)m * m, *Y = Bm + (size_t)m * m;
    float s = (float)(1.0 / (sqrt(cpu_sq_norm(x, n)) + 1e-7));
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
    for (int k = 0; k < NS_STEPS; k++) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, wide ? CblasNoTrans : CblasTrans, m, wide ? C : R,
                    1.0f, x, C, 0.0f, A, m);
        /* the lower triangle mirrored, and B = b A (then + c A A) */
#pragma omp parallel for schedule(static)
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < i; j++)
                A[(size_t)i * m + j] = A[(size_t)j * m + i];
            for (int j = 0; j < m; j++)
                Bm[(size_t)i * m + j] = NS_B * A[(size_t)i * m + j];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, NS_C, A, m, A, m, 1.0f, Bm,
                    m);
        /* Y = B X (R,C) or X B */
        if (wide)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, C, R, 1.0f, Bm, m, x, C, 0.0f,
                        Y, C);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, C, C, 1.0f, x, C, Bm, m, 0.0f,
                        Y, C);
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            x[i] = NS_A * x[i] + Y[i];
    }
}

size_t cpu_muon_scratch_floats(int rows, int cols, int blocks) {
    int R = rows / blocks;
    return (size_t)R * cols + cpu_muon_ns_work_floats(R, cols);
}

/* Block by block (R = rows/blocks rows each): the momentum pass writes
 * buf and the Nesterov update u into scratch, Newton-Schulz
 * orthogonalises u, and the last pass applies it with the decoupled
 * decay, as cpu_adamw does: p -= lr * (scale * O + wd * p). */
void cpu_muon_update(float *p, const float *g, float *buf, int rows, int cols, int blocks, float lr,
                     float momentum, float wd, float grad_scale, float *scratch) {
    int R = rows / blocks;
    size_t n = (size_t)R * cols;
    float *u = scratch, *work = scratch + n;
    float scale = sqrtf(fmaxf(1.0f, (float)R / (float)cols));
    for (int k = 0; k < blocks; k++) {
        float *pk = p + k * n, *bk = buf + k * n;
        const float *gk = g + k * n;
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            float gi = gk[i] * grad_scale, b = momentum * bk[i] + gi;
            bk[i] = b;
            u[i] = gi + momentum * b;
        }
        cpu_muon_orthogonalize(u, R, cols, work);
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            pk[i] -= lr * (scale * u[i] + wd * pk[i]);
    }
}
