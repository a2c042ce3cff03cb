/* test_infer.c - KV-cache inference against the training forward pass,
 * batched decoding against one sequence at a time, and the sampling rules. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infer/kv.h"
#include "infer/sample.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

#include "unit/variants.h" /* the block variants every model check runs on (with zero-init
                              * the weights are still perturbed, so every path carries signal) */

/* Logits from prefill + one-token steps equal the full forward's, at every
 * position, with the fused kernels and without: the cache changes the
 * cost, not the result. kv_feed_greedy's next token is the argmax of the
 * same logits. A third cache takes the prompt in two calls (3 rows, then 2
 * after them: RoPE's positions of a cached call) and the rest through
 * kv_feed_batch beside another sequence at other positions. For every
 * architecture option. */
static void check_kv_matches_forward(const gpt_config_t *arch, const char *name, float sharp) {
    char err[MG_ERR_LEN];
    gpt_config_t cfg = *arch;
    cfg.vocab = 50;
    cfg.ctx = 12;
    cfg.dim = 16;
    cfg.layers = 2;
    cfg.heads = 4;
    int T = 12;
    printf("  kv cache against the full forward: %s\n", name);
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 3, err), 0);
    mg_rng_t rng;
    mg_rng_seed(&rng, 9);
    /* sharper logits, and LayerNorm gains and biases that differ per layer */
    for (size_t i = 0; i < m->num_floats; i++)
        m->weights[i] = sharp * m->weights[i] + 0.3f * mg_rng_normal(&rng);
    assert_int_equal(gpt_alloc_training(m, 1, T, err), 0);
    int32_t tok[12], other[12];
    for (int i = 0; i < T; i++) {
        tok[i] = (int32_t)mg_rng_below(&rng, cfg.vocab);
        other[i] = (int32_t)mg_rng_below(&rng, cfg.vocab);
    }
    gpt_forward(m, tok, NULL, 1, T);
    for (int no_fusion = 0; no_fusion < 2; no_fusion++) {
        m->no_fusion = no_fusion;
        kv_state_t *kv = kv_create(m, err), *kg = kv_create(m, err), *kc = kv_create(m, err),
                   *ko = kv_create(m, err);
        assert_non_null(kv);
        assert_non_null(kg);
        assert_non_null(kc);
        assert_non_null(ko);
        int32_t next = -1;
        double worst_kv = 0.0, worst_kc = 0.0;
        assert_int_equal(kv_feed(kv, tok, 5, err), 0); /* prefill 5 */
        assert_int_equal(kv_feed_greedy(kg, tok, 5, &next, err), 0);
        assert_int_equal(kv_feed(kc, tok, 3, err), 0); /* 3, then 2 after them */
        assert_int_equal(kv_feed(kc, tok + 3, 2, err), 0);
        assert_int_equal(kv_feed(ko, other, 2, err), 0); /* a batch-mate at positions 2.. */
        for (int t = 4; t < T; t++) {
            const float *full = m->a.logits + (size_t)t * cfg.vocab;
            for (int v = 0; v < cfg.vocab; v++) { /* float32 sums in another order */
                double tol = 1.0 + fabs(full[v]);
                worst_kv = fmax(worst_kv, fabs(full[v] - kv->host_logits[v]) / tol);
                worst_kc = fmax(worst_kc, fabs(full[v] - kc->host_logits[v]) / tol);
            }
            assert_int_equal(next, sample_argmax(full, cfg.vocab));
            if (t + 1 < T) {
                assert_int_equal(kv_feed(kv, &tok[t + 1], 1, err), 0);
                assert_int_equal(kv_feed_greedy(kg, &tok[t + 1], 1, &next, err), 0);
                kv_state_t *pair[2] = {ko, kc};
                int32_t step[2] = {other[ko->pos], tok[t + 1]};
                assert_int_equal(kv_feed_batch(pair, step, 2, err), 0);
            }
        }
        printf("    %s: worst error %.1e one at a time, %.1e in chunks and batches\n",
               no_fusion ? "unfused" : "fused", worst_kv, worst_kc);
        assert_true(worst_kv < 1e-4);
        assert_true(worst_kc < 1e-4);
        /* the context is full now: one more token is an error, not a crash */
        assert_int_equal(kv_feed(kv, tok, 1, err), -1);
        assert_non_null(strstr(err, "context"));
        kv_free(kv);
        kv_free(kg);
        kv_free(kc);
        kv_free(ko);
    }
    m->no_fusion = 0;
    gpt_free(m);
}

static void test_kv_matches_forward(void **state) {
    (void)state;
    /* the options' weights 4x sharper, not 10x: rotary scores at 10x turn
     * float32 rounding into 2e-4 (at 4x: 5e-6, as GPT-2's) */
    for (int v = 0; v < N_VARIANTS; v++)
        check_kv_matches_forward(&variants[v].arch, variants[v].name, v == 0 ? 10.0f : 4.0f);
}

/* kv_feed_batch against kv_feed: n sequences (different prompts and
 * lengths, so different positions) stepped together give each sequence the
 * logits it gets fed alone, bit for bit (the CPU's matmul_rows_forward
 * computes each row as the one-row product does), for 30 greedy steps,
 * with float32 and int8 weights, fused kernels and not. The model is wide
 * enough (fc: 512 x 128) for the products to run on several threads, and
 * the vocabulary (605) leaves a partial block of rows in the classifier. */
static void check_kv_batch_matches_single(const gpt_config_t *arch) {
    char err[MG_ERR_LEN];
    gpt_config_t cfg = *arch;
    cfg.vocab = 605;
    cfg.ctx = 64;
    cfg.dim = 128;
    cfg.layers = 2;
    cfg.heads = 4;
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 7, err), 0);
    mg_rng_t rng;
    mg_rng_seed(&rng, 21);
    for (size_t i = 0; i < m->num_floats; i++)
        m->weights[i] = 5.0f * m->weights[i] + 0.2f * mg_rng_normal(&rng);
    int sizes[] = {1, 2, 5};
    for (int q8 = 0; q8 < 2; q8++)
        for (int no_fusion = 0; no_fusion < 2; no_fusion++)
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                int n = sizes[k];
                m->no_fusion = no_fusion;
                kv_state_t *bat[5], *one[5];
                int32_t next[5];
                for (int i = 0; i < n; i++) {
                    bat[i] = kv_create(m, err);
                    one[i] = kv_create(m, err);
                    assert_non_null(bat[i]);
                    assert_non_null(one[i]);
                    if (q8) {
                        assert_int_equal(kv_quantize(bat[i], err), 0);
                        assert_int_equal(kv_quantize(one[i], err), 0);
                    }
                    int32_t prompt[16];
                    int len = 1 + 3 * i; /* positions 1, 4, 7, 10, 13 */
                    for (int t = 0; t < len; t++)
                        prompt[t] = (int32_t)mg_rng_below(&rng, cfg.vocab);
                    assert_int_equal(kv_feed(bat[i], prompt, len, err), 0);
                    assert_int_equal(kv_feed(one[i], prompt, len, err), 0);
                    next[i] = sample_argmax(one[i]->host_logits, cfg.vocab);
                }
                for (int step = 0; step < 30; step++) {
                    assert_int_equal(kv_feed_batch(bat, next, n, err), 0);
                    for (int i = 0; i < n; i++) {
                        assert_int_equal(kv_feed(one[i], &next[i], 1, err), 0);
                        assert_int_equal(bat[i]->pos, one[i]->pos);
                        assert_memory_equal(bat[i]->host_logits, one[i]->host_logits,
                                            (size_t)cfg.vocab * sizeof(float));
                        next[i] = sample_argmax(one[i]->host_logits, cfg.vocab);
                    }
                }
                for (int i = 0; i < n; i++) {
                    kv_free(bat[i]);
                    kv_free(one[i]);
                }
            }
    m->no_fusion = 0;
    gpt_free(m);
}

/* the GPT-2 block, each MLP, and every option at once */
static void test_kv_batch_matches_single(void **state) {
    (void)state;
    for (int v = 0; v < N_VARIANTS; v++)
        if (v == 0 || variants[v].arch.mlp || v == N_VARIANTS - 1)
            check_kv_batch_matches_single(&variants[v].arch);
}

/* kv_feed_batch refuses a full context, a token out of range, a state given
 * twice and a mix of int8 and float32 states, and then changes nothing. */
static void test_kv_batch_errors(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 50, .ctx = 8, .dim = 32, .layers = 1, .heads = 2};
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 3, err), 0);
    kv_state_t *a = kv_create(m, err), *b = kv_create(m, err);
    assert_non_null(a);
    assert_non_null(b);
    int32_t fill[8] = {1, 2, 3, 4, 5, 6, 7, 8}, two[2] = {1, 2};
    assert_int_equal(kv_feed(a, fill, 3, err), 0);
    assert_int_equal(kv_feed(b, fill, 8, err), 0); /* b is full */
    float first = a->host_logits[0];
    kv_state_t *ab[2] = {a, b}, *aa[2] = {a, a};
    assert_int_equal(kv_feed_batch(ab, two, 2, err), -1);
    assert_non_null(strstr(err, "context full"));
    assert_int_equal(a->pos, 3);
    assert_true(a->host_logits[0] == first);
    kv_reset(b);
    int32_t bad[2] = {1, 50};
    assert_int_equal(kv_feed_batch(ab, bad, 2, err), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(kv_feed_batch(aa, two, 2, err), -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(kv_quantize(b, err), 0);
    assert_int_equal(kv_feed_batch(ab, two, 2, err), -1);
    assert_non_null(strstr(err, "int8"));
    assert_int_equal(a->pos, 3);
    assert_int_equal(b->pos, 0);
    kv_free(a);
    kv_free(b);
    gpt_free(m);
}

/* The reference draw: sort the whole vocabulary, cut to top-k, then to
 * the smallest prefix with mass >= top_p, draw with one uniform number. */
static const float *ref_p;
static int ref_cmp(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (ref_p[i] != ref_p[j]) return ref_p[i] > ref_p[j] ? -1 : 1;
    return i - j;
}
static int ref_sample(const float *logits, int V, const sample_opts_t *o, mg_rng_t *rng) {
    static float p[5000];
    static int idx[5000];
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    double sum = 0.0;
    for (int i = 0; i < V; i++)
        sum += p[i] = expf((logits[i] - logits[best]) / o->temperature);
    for (int i = 0; i < V; i++)
        p[i] = (float)(p[i] / sum), idx[i] = i;
    ref_p = p;
    qsort(idx, V, sizeof *idx, ref_cmp);
    int n = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    float acc = 0.0f, mass = 0.0f;
    for (int i = 0; i < n && o->top_p < 1.0f; i++)
        if ((acc += p[idx[i]]) >= o->top_p) {
            n = i + 1;
            break;
        }
    for (int i = 0; i < n; i++)
        mass += p[idx[i]];
    float r = mg_rng_float(rng) * mass;
    acc = 0.0f;
    for (int i = 0; i < n; i++)
        if (r < (acc += p[idx[i]])) return idx[i];
    return idx[n - 1];
}

/* sample_token sorts only the prefix that holds the cut: it must draw
 * exactly the tokens a full sort draws, on peaked and on flat logits */
static void test_sampling_matches_full_sort(void **state) {
    (void)state;
    enum { V = 5000 };
    static float logits[V], scratch[2 * V];
    mg_rng_t data, r1, r2;
    mg_rng_seed(&data, 5);
    sample_opts_t opts[] = {{0.8f, 0, 0.95f}, {1.0f, 40, 1.0f}, {1.3f, 50, 0.9f}, {0.5f, 0, 0.5f}};
    int draws = 0;
    for (int trial = 0; trial < 40; trial++) {
        float spread = trial % 2 ? 8.0f : 0.5f; /* peaked, then nearly flat */
        for (int i = 0; i < V; i++)
            logits[i] = mg_rng_normal(&data) * spread;
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
            mg_rng_seed(&r1, (uint64_t)trial * 31 + k);
            mg_rng_seed(&r2, (uint64_t)trial * 31 + k);
            for (int d = 0; d < 5; d++, draws++)
                assert_int_equal(sample_token(logits, V, &opts[k], &r1, scratch, NULL, 0),
                                 ref_sample(logits, V, &opts[k], &r2));
        }
    }
    printf("  %d draws identical to the full-sort reference\n", draws);
}

/* The penalty applies once per distinct id, dividing positive logits and
 * multiplying negative ones. */
static void test_repeat_penalty(void **state) {
    (void)state;
    float logits[5] = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
    int32_t recent[4] = {1, 0, 1, 0};
    sample_repeat_penalty(logits, 5, recent, 4, 2.0f);
    const float want[5] = {1.0f, -4.0f, 1.0f, 0.5f, 3.0f};
    for (int i = 0; i < 5; i++)
        assert_float_equal(logits[i], want[i], 0.0f);
}

static void test_sampling(void **state) {
    (void)state;
    float logits[5] = {1.0f, 3.0f, 2.9f, -1.0f, 0.0f}, scratch[10];
    mg_rng_t rng;
    mg_rng_seed(&rng, 1);
    sample_opts_t greedy = {0.0f, 0, 1.0f}, topk1 = {1.0f, 1, 1.0f}, topp = {1.0f, 0, 0.01f};
    sample_opts_t topk2 = {1.0f, 2, 1.0f}, plain = {1.0f, 0, 1.0f};
    assert_int_equal(sample_token(logits, 5, &greedy, &rng, scratch, NULL, 0), 1);
    /* NaN logits (a broken model): a valid id, not a read before the
     * candidates (top-p once kept none and returned idx[-1]) */
    const float nans[5] = {NAN, NAN, NAN, NAN, NAN};
    assert_int_equal(sample_token_u(nans, 5, &topp, 0.5f, scratch, NULL, 0), 0);
    assert_int_equal(sample_token_u(nans, 5, &plain, 0.5f, scratch, NULL, 0), 0);
    int counts[5] = {0};
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(sample_token(logits, 5, &topk1, &rng, scratch, NULL, 0), 1);
        assert_int_equal(sample_token(logits, 5, &topp, &rng, scratch, NULL, 0), 1);
        int k = sample_token(logits, 5, &topk2, &rng, scratch, NULL, 0);
        assert_true(k == 1 || k == 2);
        counts[sample_token(logits, 5, &plain, &rng, scratch, NULL, 0)]++;
    }
    /* p(1) = e^3 / sum = 0.458...; within 4 sigma of 2000 draws */
    double p1 = exp(3.0) / (exp(1) + exp(3) + exp(2.9) + exp(-1) + exp(0));
    assert_true(fabs(counts[1] / 2000.0 - p1) < 4 * sqrt(p1 * (1 - p1) / 2000));
    /* asking for candidates does not change the draw */
    mg_rng_t r1, r2;
    mg_rng_seed(&r1, 77);
    mg_rng_seed(&r2, 77);
    sample_cand_t cc[2];
    for (int i = 0; i < 200; i++)
        assert_int_equal(sample_token(logits, 5, &plain, &r1, scratch, NULL, 0),
                         sample_token(logits, 5, &plain, &r2, scratch, cc, 2));
    sample_cand_t c[3];
    sample_token(logits, 5, &plain, &rng, scratch, c, 3);
    assert_int_equal(c[0].id, 1);
    assert_int_equal(c[1].id, 2);
    assert_int_equal(c[2].id, 0);
    assert_float_equal(c[0].prob, p1, 1e-5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_matches_forward),
        cmocka_unit_test(test_kv_batch_matches_single),
        cmocka_unit_test(test_kv_batch_errors),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_sampling_matches_full_sort),
    };
    return cmocka_run_group_tests_name("infer", tests, NULL, NULL);
}
