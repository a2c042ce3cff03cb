/* test_train.c - the data split and loader, the learning-rate schedule and
 * the sliding-window evaluation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ops/cpu/cpu.h"
#include "tokenizer/bpe.h"
#include "train/data.h"
#include "train/eval.h"
#include "train/trainer.h"
#include "util/common.h"

static void test_split_and_loader(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    int32_t ids[100];
    for (int i = 0; i < 100; i++)
        ids[i] = i;
    data_split_t s;
    assert_int_equal(data_split(ids, 100, 10, 5, &s, err), 0);
    /* chunks 4 and 9 (ids 40..49, 90..99) are validation */
    assert_int_equal(s.n_val, 20);
    assert_int_equal(s.n_train, 80);
    assert_int_equal(s.val[0], 40);
    assert_int_equal(s.val[10], 90);
    assert_int_equal(s.train[40], 50);
    data_loader_t l;
    assert_int_equal(data_loader_init(&l, s.train, s.n_train, 2, 7, 11, err), 0);
    /* (80-1)/7 = 11 windows -> 5 batches per epoch */
    assert_int_equal(data_loader_steps_per_epoch(&l), 5);
    int32_t x[14], y[14];
    int seen[11] = {0};
    for (int step = 0; step < 5; step++) {
        int wrapped = data_loader_next(&l, x, y);
        assert_int_equal(wrapped, step == 4);
        for (int b = 0; b < 2; b++) {
            /* windows start at multiples of T within the train stream, and
             * targets are the inputs shifted by one */
            int start = -1;
            for (int k = 0; k < 80; k++)
                if (s.train[k] == x[b * 7]) start = k;
            assert_int_equal(start % 7, 0);
            for (int t = 0; t < 7; t++) {
                assert_int_equal(x[b * 7 + t], s.train[start + t]);
                assert_int_equal(y[b * 7 + t], s.train[start + t + 1]);
            }
            seen[start / 7]++;
        }
    }
    int distinct = 0;
    for (int i = 0; i < 11; i++)
        distinct += seen[i] == 1;
    assert_int_equal(distinct, 10); /* each window at most once per epoch */
    data_loader_free(&l);
    data_split_free(&s);
}

static void test_lr_schedule(void **state) {
    (void)state;
    train_opts_t o;
    train_defaults(&o);
    o.hp.lr = 1.0f;
    o.hp.min_lr_ratio = 0.1f;
    assert_float_equal(train_lr(&o.hp, 0, 10, 110), 0.1f, 1e-6);
    assert_float_equal(train_lr(&o.hp, 9, 10, 110), 1.0f, 1e-6);
    assert_float_equal(train_lr(&o.hp, 10, 10, 110), 1.0f, 1e-6);
    assert_float_equal(train_lr(&o.hp, 60, 10, 110), 0.55f, 1e-6); /* cosine midpoint */
    assert_float_equal(train_lr(&o.hp, 110, 10, 110), 0.1f, 1e-6);
}

/* The sliding-window evaluation scores every token but the first exactly
 * once, counts the bytes of exactly those tokens, and on a text that fits
 * one window equals a plain forward pass. */
static void test_eval_sliding_window(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    const char *text = "O Brasil é um país de dimensões continentais; a ação do tempo.";
    bpe_t *tok = bpe_train(text, strlen(text), 300, err);
    assert_non_null(tok);
    gpt_config_t cfg = {.vocab = 300, .ctx = 8, .dim = 16, .layers = 1, .heads = 2};
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 5, err), 0);
    assert_int_equal(gpt_alloc_training(m, 3, 8, err), 0);
    int32_t ids[40];
    mg_rng_t rng;
    mg_rng_seed(&rng, 4);
    for (int i = 0; i < 40; i++)
        ids[i] = BPE_BYTE0 + (int32_t)mg_rng_below(&rng, 200);
    size_t lens[] = {2, 8, 9, 10, 17, 23, 40};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = lens[k];
        eval_sum_t s;
        assert_int_equal(eval_tokens(m, tok, ids, n, 3, 8, &s, err), 0);
        assert_int_equal(s.tokens, (long long)n - 1);
        long long bytes = 0;
        for (size_t i = 1; i < n; i++) {
            size_t len;
            bpe_token_bytes(tok, ids[i], &len);
            bytes += (long long)len;
        }
        assert_int_equal(s.bytes, bytes);
        if (n - 1 <= 8) { /* one window: the mean loss of a single forward */
            float loss = gpt_forward(m, ids, ids + 1, 1, (int)n - 1);
            assert_float_equal(eval_loss(&s), loss, 1e-5);
        }
        assert_float_equal(eval_bpb(&s), s.nats / s.bytes / log(2.0), 1e-12);
    }
    gpt_free(m);
    bpe_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_loader),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_eval_sliding_window),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
