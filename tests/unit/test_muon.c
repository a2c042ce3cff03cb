/* test_muon.c - the Muon optimizer (ops.h muon_update, cpu_muon.c, and
 * gpt_muon_step):
 *   - Newton-Schulz: the result's singular values lie in the quintic's
 *     known band [0.68, 1.135] (checked as [0.675, 1.135]) for random wide and tall matrices (whose
 *     normalised singular values are above 0.01), its singular vectors are
 *     the input's (O^T O commutes with G^T G), and it equals a plain
 *     double-precision loop of the same iteration (transposed when rows >
 *     cols, as modded-nanogpt writes it);
 *   - the update (momentum, Nesterov, blocks, scale, decay) against a
 *     reference built from that loop, over two steps;
 *   - the model step: every tensor but the hidden matrices moves exactly as
 *     gpt_adamw_step moves it (one step from the same gradients); a backend without the slot is
 * refused in one line naming the option. The comparisons are shown to reject a perturbed buffer.
 * Runs on 2 threads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/ops.h"
#include "util/common.h"

static mg_rng_t rng;

static float *randn(size_t n, float scale) {
    float *p = mg_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = mg_rng_normal(&rng) * scale;
    return p;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const double *b, size_t n) {
    double e = 0.0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return e / s;
}

/* The reference: modded-nanogpt's zeropower_via_newtonschulz5 as plain
 * loops in double. x (R,C) in place: normalise, transpose when R > C, 5 x
 * (A = X X^T; B = b A + c A A; X = a X + B X), transpose back. */
static void ref_ns(double *x, int R, int C) {
    int tall = R > C, m = tall ? C : R, n = tall ? R : C;
    double *X = malloc(sizeof(double) * m * n), *A = malloc(sizeof(double) * m * m),
           *B = malloc(sizeof(double) * m * m), *Y = malloc(sizeof(double) * m * n);
    double sq = 0.0;
    for (int i = 0; i < R * C; i++)
        sq += x[i] * x[i];
    double s = 1.0 / (sqrt(sq) + 1e-7);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) /* X (m,n) */
            X[tall ? j * n + i : i * n + j] = x[i * C + j] * s;
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                double t = 0.0;
                for (int l = 0; l < n; l++)
                    t += X[i * n + l] * X[j * n + l];
                A[i * m + j] = t;
            }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
                double t = 0.0;
                for (int l = 0; l < m; l++)
                    t += A[i * m + l] * A[l * m + j];
                B[i * m + j] = -4.7750 * A[i * m + j] + 2.0315 * t;
            }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double t = 0.0;
                for (int l = 0; l < m; l++)
                    t += B[i * m + l] * X[l * n + j];
                Y[i * n + j] = 3.4445 * X[i * n + j] + t;
            }
        memcpy(X, Y, sizeof(double) * m * n);
    }
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
            x[i * C + j] = X[tall ? j * n + i : i * n + j];
    free(X);
    free(A);
    free(B);
    free(Y);
}

/* eigenvalues of the symmetric a (m,m) (destroyed) by cyclic Jacobi */
static void jacobi_eig(double *a, int m, double *eig) {
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++)
                off += a[p * m + q] * a[p * m + q];
        if (off < 1e-22) break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                double apq = a[p * m + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < m; k++) { /* columns p, q */
                    double akp = a[k * m + p], akq = a[k * m + q];
                    a[k * m + p] = c * akp - s * akq;
                    a[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) { /* rows p, q */
                    double apk = a[p * m + k], aqk = a[q * m + k];
                    a[p * m + k] = c * apk - s * aqk;
                    a[q * m + k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < m; i++)
        eig[i] = a[i * m + i];
}

/* singular values of x (R,C): sqrt of the eigenvalues of the short side's
 * Gram matrix; min and max into lo, hi */
static void sv_range(const float *x, int R, int C, double *lo, double *hi) {
    int wide = R <= C, m = wide ? R : C;
    double *g = malloc(sizeof(double) * m * m), *eig = malloc(sizeof(double) * m);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double t = 0.0;
            if (wide)
                for (int l = 0; l < C; l++)
                    t += (double)x[i * C + l] * x[j * C + l];
            else
                for (int l = 0; l < R; l++)
                    t += (double)x[l * C + i] * x[l * C + j];
            g[i * m + j] = t;
        }
    jacobi_eig(g, m, eig);
    *lo = INFINITY;
    *hi = 0.0;
    for (int i = 0; i < m; i++) {
        double s = sqrt(fmax(eig[i], 0.0));
        *lo = fmin(*lo, s);
        *hi = fmax(*hi, s);
    }
    free(g);
    free(eig);
}

/* ||(O^T O)(G^T G) - (G^T G)(O^T O)|| / (||O^T O|| ||G^T G||) on the short
 * side: small when O has G's singular vectors */
static double commutator(const float *o, const float *g, int R, int C) {
    int wide = R <= C, m = wide ? R : C;
    double *P = calloc((size_t)m * m, sizeof(double)), *Q = calloc((size_t)m * m, sizeof(double));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            for (int l = 0; l < (wide ? C : R); l++) {
                size_t a = wide ? (size_t)i * C + l : (size_t)l * C + i;
                size_t b = wide ? (size_t)j * C + l : (size_t)l * C + j;
                P[i * m + j] += (double)o[a] * o[b];
                Q[i * m + j] += (double)g[a] * g[b];
            }
    double num = 0.0, np = 0.0, nq = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double pq = 0.0, qp = 0.0;
            for (int l = 0; l < m; l++) {
                pq += P[i * m + l] * Q[l * m + j];
                qp += Q[i * m + l] * P[l * m + j];
            }
            num += (pq - qp) * (pq - qp);
            np += P[i * m + j] * P[i * m + j];
            nq += Q[i * m + j] * Q[i * m + j];
        }
    free(P);
    free(Q);
    return sqrt(num) / sqrt(np * nq);
}

static const int shapes[][2] = {{32, 96}, {96, 32}, {128, 32}, {40, 72}};

static void test_ns_band_and_reference(void **state) {
    (void)state;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int R = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)R * C;
        float *g = randn(n, 0.3f), *x = mg_malloc(n * sizeof(float));
        float *work = mg_malloc(cpu_muon_ns_work_floats(R, C) * sizeof(float));
        double *ref = malloc(n * sizeof(double));
        memcpy(x, g, n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            ref[i] = g[i];
        cpu_muon_orthogonalize(x, R, C, work);
        ref_ns(ref, R, C);
        double lo, hi, e = rel_err(x, ref, n), comm = commutator(x, g, R, C);
        sv_range(x, R, C, &lo, &hi);
        printf("  NS5 (%d,%d): singular values [%.4f, %.4f], vs reference %.2e, commutator %.2e\n",
               R, C, lo, hi, e, comm);
        assert_true(lo >= 0.675 && hi <= 1.135);
        assert_true(e < 1e-5);
        assert_true(comm < 1e-4);
        /* the checks can fail: one element off by 1% of the scale */
        x[7] += 0.01f;
        assert_false(rel_err(x, ref, n) < 1e-5);
        mg_free(g);
        mg_free(x);
        mg_free(work);
        free(ref);
    }
}

/* two muon_update steps on a (rows,cols) matrix of `blocks` row blocks
 * against the reference: buf = mu buf + s g; u = s g + mu buf; O = NS(u)
 * per block; p -= lr (sqrt(max(1, R/cols)) O + wd p) */
static void check_update(int rows, int cols, int blocks) {
    const ops_backend_t *ops = ops_cpu();
    size_t n = (size_t)rows * cols, bn = n / blocks;
    int R = rows / blocks;
    float lr = 0.02f, mu = 0.95f, wd = 0.1f, gs = 0.7f;
    float *p = randn(n, 0.02f), *buf = mg_calloc(n, sizeof(float));
    float *scratch = mg_malloc(ops->muon_scratch_floats(rows, cols, blocks) * sizeof(float));
    double *rp = malloc(n * sizeof(double)), *rb = calloc(n, sizeof(double)),
           *u = malloc(bn * sizeof(double));
    for (size_t i = 0; i < n; i++)
        rp[i] = p[i];
    double scale = sqrt(fmax(1.0, (double)R / cols));
    for (int step = 0; step < 2; step++) {
        float *g = randn(n, 1.0f);
        ops->muon_update(p, g, buf, rows, cols, blocks, lr, mu, wd, gs, scratch);
        for (int k = 0; k < blocks; k++) {
            for (size_t i = 0; i < bn; i++) {
                size_t j = k * bn + i;
                double gi = (double)g[j] * gs;
                rb[j] = mu * rb[j] + gi;
                u[i] = gi + mu * rb[j];
            }
            ref_ns(u, R, cols);
            for (size_t i = 0; i < bn; i++) {
                size_t j = k * bn + i;
                rp[j] -= lr * (scale * u[i] + wd * rp[j]);
            }
        }
        mg_free(g);
    }
    double e = rel_err(p, rp, n), eb = rel_err(buf, rb, n);
    printf("  muon_update (%d,%d) in %d blocks: weights %.2e, momentum %.2e\n", rows, cols, blocks,
           e, eb);
    assert_true(e < 1e-5);
    assert_true(eb < 1e-6);
    mg_free(p);
    mg_free(buf);
    mg_free(scratch);
    free(rp);
    free(rb);
    free(u);
}

static void test_update_reference(void **state) {
    (void)state;
    check_update(96, 32, 3);  /* qkv: three square blocks */
    check_update(128, 32, 1); /* fc: tall, scale 2 */
    check_update(32, 128, 1); /* proj: wide */
}

/* gpt_muon_step against gpt_adamw_step (unfused: per-tensor adamw, the
 * same kernel) from the same weights and gradients */
static void test_model_step(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    const ops_backend_t *ops = ops_cpu();
    gpt_config_t cfg = {.vocab = 64, .ctx = 8, .dim = 16, .layers = 2, .heads = 2};
    gpt_model_t *a = gpt_create(&cfg, ops, err), *b = gpt_create(&cfg, ops, err);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(gpt_init_weights(a, 3, err), 0);
    assert_int_equal(gpt_init_weights(b, 3, err), 0);
    assert_int_equal(gpt_alloc_training(a, 2, 8, err), 0);
    assert_int_equal(gpt_alloc_training(b, 2, 8, err), 0);
    assert_int_equal(gpt_alloc_muon(b, err), 0);
    int32_t tok[16], tgt[16];
    for (int i = 0; i < 16; i++) {
        tok[i] = (int32_t)mg_rng_below(&rng, 64);
        tgt[i] = (int32_t)mg_rng_below(&rng, 64);
    }
    int hidden = 0, blocks3 = 0;
    for (int i = 0; i < a->n_params; i++) {
        hidden += a->params[i].hidden;
        blocks3 += a->params[i].blocks == 3;
    }
    assert_int_equal(hidden, 4 * cfg.layers);
    assert_int_equal(blocks3, cfg.layers);
    assert_int_equal(gpt_find_param(a, "transformer.layers.0.attn.qkv.weight")->blocks, 3);
    assert_false(gpt_find_param(a, "token_embedding.weight")->hidden);
    /* one step (after it the hidden weights differ, and so do all gradients) */
    gpt_zero_grad(a);
    gpt_zero_grad(b);
    gpt_forward(a, tok, tgt, 2, 8);
    gpt_backward(a);
    gpt_forward(b, tok, tgt, 2, 8);
    gpt_backward(b);
    a->no_fusion = 1; /* the per-tensor adamw kernel, which gpt_muon_step runs */
    float na = gpt_adamw_step(a, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f);
    float nb = gpt_muon_step(b, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 0.02f, 0.95f);
    assert_true(na == nb); /* same gradients, same norm (and clipped at 0.5) */
    for (int i = 0; i < a->n_params; i++) {
        const gpt_param_t *p = &a->params[i];
        int same =
            memcmp(a->weights + p->offset, b->weights + p->offset, p->numel * sizeof(float)) == 0;
        if (p->hidden)
            assert_false(same);
        else if (!same)
            fail_msg("%s moved differently under --optimizer muon", p->name);
    }
    gpt_free(a);
    gpt_free(b);
}

static void test_backend_without_muon(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    ops_backend_t none = *ops_cpu();
    none.name = "cuda";
    none.muon_update = NULL;
    assert_int_equal(gpt_muon_check(&none, err), -1);
    assert_non_null(strstr(err, "--optimizer muon"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(gpt_muon_check(ops_cpu(), err), 0);
}

int main(void) {
    const char *seed = getenv("TEST_SEED");
    mg_rng_seed(&rng, seed ? strtoull(seed, NULL, 10) : 1717);
    ops_cpu_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ns_band_and_reference),
        cmocka_unit_test(test_update_reference),
        cmocka_unit_test(test_model_step),
        cmocka_unit_test(test_backend_without_muon),
    };
    return cmocka_run_group_tests_name("muon", tests, NULL, NULL);
}
