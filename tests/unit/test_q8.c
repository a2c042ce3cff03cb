/* test_q8.c - int8 weights (ops.h q8_*, src/ops/cpu/cpu_q8.c, kv_quantize):
 *   - quantization: |q| <= 127, each weight within half a step (s/2) of
 *     s * q, an all-zero block stays zero;
 *   - the product against a double-precision reference over the same
 *     dequantized weights (tight), and against float32 weights within the
 *     bound the rounding allows (sum_j |x_j| s_j / 2 per output);
 *   - widths that are not a multiple of 32 are refused;
 *   - a model decoding through the KV cache with int8 weights stays close
 *     to float32 (logits, and greedy tokens), on 2 threads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "infer/kv.h"
#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/ops.h"
#include "util/common.h"

static mg_rng_t rng;
static const ops_backend_t *ops;

/* the layout of cpu_q8.c, read back to check it */
typedef struct {
    int OC, C;
    int8_t *q;
    float *s;
} q8_view_t;

static void test_quantize_and_product(void **state) {
    (void)state;
    const int OC = 37, C = 96, N = 3;
    float *w = mg_malloc((size_t)OC * C * sizeof(float)),
          *x = mg_malloc((size_t)N * C * sizeof(float));
    float bias[37], out[3 * 37], ref32[3 * 37];
    for (int i = 0; i < OC * C; i++)
        w[i] = mg_rng_normal(&rng) * (i % 7 == 0 ? 3.0f : 0.5f);
    for (int i = 0; i < C; i++)
        w[5 * C + i] = 0.0f; /* row 5: all zero */
    for (int i = 0; i < N * C; i++)
        x[i] = mg_rng_normal(&rng);
    for (int o = 0; o < OC; o++)
        bias[o] = mg_rng_normal(&rng);
    const q8_view_t *q = ops->q8_make(w, OC, C);
    assert_non_null(q);
    assert_int_equal(ops->q8_bytes(q), (size_t)OC * C + (size_t)OC * (C / 32) * sizeof(float));
    double worst_step = 0.0;
    for (int o = 0; o < OC; o++)
        for (int j = 0; j < C; j++) {
            float s = q->s[o * (C / 32) + j / 32];
            int8_t v = q->q[o * C + j];
            assert_true(v != -128); /* |q| <= 127 */
            double e = fabs(w[o * C + j] - (double)s * v);
            assert_true(e <= 0.5 * s * (1 + 1e-5) + 1e-30);
            worst_step = fmax(worst_step, s > 0 ? e / s : 0.0);
        }
    assert_float_equal(q->s[5 * (C / 32)], 0.0f, 0.0f);
    printf("  worst rounding: %.3f of a step\n", worst_step);
    for (int rows = 1; rows <= N; rows += N - 1) {
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *b = with_bias ? bias : NULL;
            ops->q8_matmul_forward(out, x, q, b, rows, C, OC);
            ops->matmul_forward(ref32, x, w, b, rows, C, OC);
            double worst = 0.0, worst_bound = 0.0;
            for (int n = 0; n < rows; n++)
                for (int o = 0; o < OC; o++) {
                    double ref = b ? b[o] : 0.0, bound = 0.0;
                    for (int j = 0; j < C; j++) {
                        float s = q->s[o * (C / 32) + j / 32];
                        ref += (double)s * q->q[o * C + j] * x[n * C + j];
                        bound += fabs(x[n * C + j]) * s * 0.5;
                    }
                    double got = out[n * OC + o];
                    worst = fmax(worst, fabs(got - ref) / (1.0 + fabs(ref)));
                    /* against float32 weights: within the rounding's bound */
                    assert_true(fabs(got - ref32[n * OC + o]) <= bound * 1.001 + 1e-4);
                    worst_bound =
                        fmax(worst_bound, fabs(got - ref32[n * OC + o]) / fmax(bound, 1e-9));
                }
            printf(
                "  %d row(s)%s: %.1e from the dequantized reference, %.2f of the rounding bound\n",
                rows, b ? ", bias" : "", worst, worst_bound);
            assert_true(worst < 1e-5);
        }
    }
    ops->q8_free((void *)q);
    assert_null(ops->q8_make(w, OC, 48)); /* 48 is not a multiple of 32 */
    mg_free(w);
    mg_free(x);
}

/* A small model decoding with int8 weights: logits near float32's, and
 * the same greedy tokens on most steps. */
static void test_kv_q8(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 300, .ctx = 40, .dim = 64, .layers = 2, .heads = 4};
    gpt_model_t *m = gpt_create(&cfg, ops, err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 5, err), 0);
    for (size_t i = 0; i < m->num_floats; i++)
        m->weights[i] *= 2.0f; /* logits spread out */
    kv_state_t *a = kv_create(m, err), *b = kv_create(m, err);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(kv_quantize(b, err), 0);
    assert_true(b->q8_bytes > 0);
    int32_t tok[40];
    for (int i = 0; i < 40; i++)
        tok[i] = (int32_t)mg_rng_below(&rng, cfg.vocab);
    double num = 0.0, den = 0.0;
    int same = 0, steps = 0;
    for (int t = 0; t < 40; t++) { /* one token at a time: the int8 path */
        assert_int_equal(kv_feed(a, &tok[t], 1, err), 0);
        assert_int_equal(kv_feed(b, &tok[t], 1, err), 0);
        for (int v = 0; v < cfg.vocab; v++) {
            double d = a->host_logits[v] - b->host_logits[v];
            num += d * d;
            den += (double)a->host_logits[v] * a->host_logits[v];
        }
        same +=
            sample_argmax(a->host_logits, cfg.vocab) == sample_argmax(b->host_logits, cfg.vocab);
        steps++;
    }
    double rel = sqrt(num / den);
    printf("  logits: relative RMS difference %.2e; greedy token equal on %d of %d steps\n", rel,
           same, steps);
    assert_true(rel > 0.0 && rel < 2e-2); /* > 0: the int8 path did run */
    assert_true(same >= steps * 9 / 10);
    kv_free(a);
    kv_free(b);
    gpt_free(m);
    /* a width that is not a multiple of 32 is refused with a reason */
    gpt_config_t odd = {.vocab = 300, .ctx = 8, .dim = 48, .layers = 1, .heads = 4};
    m = gpt_create(&odd, ops, err);
    kv_state_t *k = kv_create(m, err);
    assert_int_equal(kv_quantize(k, err), -1);
    assert_non_null(strstr(err, "multiple of 32"));
    kv_free(k);
    gpt_free(m);
}

int main(void) {
    mg_rng_seed(&rng, 77);
    ops = ops_cpu();
    ops_cpu_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_and_product),
        cmocka_unit_test(test_kv_q8),
    };
    return cmocka_run_group_tests_name("q8", tests, NULL, NULL);
}
