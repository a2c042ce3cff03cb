/* sgemm_peak.c - one-thread sgemm throughput (2048x768x256, 20 calls): the
 * figure bench/RESULTS.md uses to compare OpenBLAS kernel choices. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now() {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
int main() {
    int M = 2048, N = 768, K = 256;
    float *a = calloc(M * K, 4), *b = calloc(N * K, 4), *c = calloc(M * N, 4);
    for (int i = 0; i < M * K; i++)
        a[i] = (i % 7) * 0.1f;
    for (int i = 0; i < N * K; i++)
        b[i] = (i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    double t = now();
    int R = 20;
    for (int r = 0; r < R; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    t = now() - t;
    printf("%.1f GFLOP/s\n", 2.0 * M * N * K * R / t / 1e9);
}
