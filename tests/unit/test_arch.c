/* test_arch.c - the architecture options (model/gpt.h): their parameter
 * tables, initialisation, model_config keys (old files read as GPT-2), the
 * refusal of a backend that lacks their kernels, and the fused RMSNorm
 * against the unfused one. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/checkpoint.h"
#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

static gpt_config_t micro(void) {
    return (gpt_config_t){.vocab = 40, .ctx = 8, .dim = 16, .layers = 2, .heads = 2};
}

/* rope: no position table; rmsnorm: no norm biases; untied: lm_head.weight
 * last; gpt_param_count agrees with the table */
static void test_tables(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t c = micro();
    c.pos = GPT_POS_ROPE;
    c.norm = GPT_NORM_RMS;
    c.untie_head = 1;
    gpt_model_t *m = gpt_create(&c, ops_cpu(), err);
    assert_non_null(m);
    assert_null(gpt_find_param(m, "position_embedding.weight"));
    assert_null(gpt_find_param(m, "transformer.layers.0.ln1.bias"));
    assert_null(gpt_find_param(m, "transformer.layers.1.ln2.bias"));
    assert_null(gpt_find_param(m, "ln_f.bias"));
    assert_non_null(gpt_find_param(m, "ln_f.weight"));
    assert_string_equal(m->params[m->n_params - 1].name, "lm_head.weight");
    assert_int_equal(m->params[m->n_params - 1].shape[0], c.vocab);
    assert_null(m->w.wpe);
    assert_null(m->w.lnfb);
    assert_ptr_not_equal(m->w.head, m->w.wte);
    assert_int_equal(gpt_param_count(&c), m->num_floats);
    gpt_free(m);
    gpt_config_t g = micro(); /* GPT-2: the head is the embedding */
    m = gpt_create(&g, ops_cpu(), err);
    assert_non_null(m);
    assert_ptr_equal(m->w.head, m->w.wte);
    assert_int_equal(gpt_param_count(&g), m->num_floats);
    assert_int_equal(m->n_params, 2 + 12 * g.layers + 2);
    gpt_free(m);
    /* rope wants an even head size */
    g.pos = GPT_POS_ROPE;
    g.heads = 16; /* head size 1 */
    assert_null(gpt_create(&g, ops_cpu(), err));
    assert_non_null(strstr(err, "--pos rope"));
}

/* zero_init: the residual projections and the untied head start at 0, the
 * rest as GPT-2's; RMSNorm gains start at 1 */
static void test_zero_init(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t c = micro();
    c.zero_init = 1;
    c.untie_head = 1;
    c.norm = GPT_NORM_RMS;
    gpt_model_t *m = gpt_create(&c, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 5, err), 0);
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        int zero = strstr(p->name, "proj.weight") || strcmp(p->name, "lm_head.weight") == 0;
        double sum = 0.0;
        for (size_t j = 0; j < p->numel; j++)
            sum += fabs(m->weights[p->offset + j]);
        if (zero)
            assert_true(sum == 0.0);
        else if (p->ndim == 2)
            assert_true(sum > 0.0);
    }
    assert_true(m->w.layer[0].ln1w[0] == 1.0f && m->w.lnfw[3] == 1.0f);
    gpt_free(m);
}

/* model_config: written with the options, read back; absent keys (an old
 * checkpoint) are the GPT-2 block; a bad value is one line naming the key */
static void test_config_json(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t c = micro(), r;
    c.pos = GPT_POS_ROPE;
    c.norm = GPT_NORM_RMS;
    c.qk_norm = 1;
    c.untie_head = 1;
    c.zero_init = 1;
    c.ffn = gpt_ffn_hidden(&c); /* model_config records the resolved hidden size */
    char *j = ckpt_config_to_json(&c);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"pos\":\"rope\""));
    assert_non_null(strstr(j, "\"tie_head\":false"));
    assert_int_equal(ckpt_config_from_json(j, &r, err), 0);
    assert_memory_equal(&c, &r, sizeof c);
    mg_free(j);
    const char *old = "{\"architecture\":\"gpt2\",\"vocab_size\":40,\"context_length\":8,"
                      "\"d_model\":16,\"n_layers\":2,\"n_heads\":2}";
    memset(&r, 0xff, sizeof r);
    assert_int_equal(ckpt_config_from_json(old, &r, err), 0);
    gpt_config_t g = micro();
    assert_memory_equal(&g, &r, sizeof g);
    const char *bad[][2] = {
        {"{\"architecture\":\"gpt2\",\"vocab_size\":40,\"context_length\":8,\"d_model\":16,"
         "\"n_layers\":2,\"n_heads\":2,\"pos\":\"alibi\"}",
         "'pos'"},
        {"{\"architecture\":\"gpt2\",\"vocab_size\":40,\"context_length\":8,\"d_model\":16,"
         "\"n_layers\":2,\"n_heads\":2,\"norm\":1}",
         "'norm'"},
        {"{\"architecture\":\"gpt2\",\"vocab_size\":40,\"context_length\":8,\"d_model\":16,"
         "\"n_layers\":2,\"n_heads\":2,\"tie_head\":\"no\"}",
         "'tie_head'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ckpt_config_from_json(bad[i][0], &r, err), -1);
        assert_non_null(strstr(err, bad[i][1]));
        assert_null(strchr(err, '\n'));
    }
}

/* A backend whose new slots are NULL (the CUDA plugin's table) refuses each
 * option that needs them in one line naming it, and still builds the GPT-2
 * block and the options that need nothing new. */
static void test_backend_refuses(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    ops_backend_t fake = *ops_cpu();
    fake.name = "fake";
    fake.rmsnorm_forward = NULL;
    fake.rmsnorm_backward = NULL;
    fake.residual_rmsnorm_forward = NULL;
    fake.qk_forward = NULL;
    fake.qk_backward = NULL;
    const struct {
        gpt_config_t c;
        const char *option;
    } refused[] = {
        {{.pos = GPT_POS_ROPE}, "--pos rope"},
        {{.norm = GPT_NORM_RMS}, "--norm rmsnorm"},
        {{.qk_norm = 1}, "--qk-norm"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        gpt_config_t c = refused[i].c, base = micro();
        c.vocab = base.vocab, c.ctx = base.ctx, c.dim = base.dim, c.layers = base.layers;
        c.heads = base.heads;
        err[0] = 0;
        assert_null(gpt_create(&c, &fake, err));
        printf("  %s\n", err);
        assert_non_null(strstr(err, refused[i].option));
        assert_non_null(strstr(err, "the fake backend has no"));
        assert_null(strchr(err, '\n'));
    }
    gpt_config_t ok = micro();
    ok.untie_head = 1;
    ok.zero_init = 1;
    gpt_model_t *m = gpt_create(&ok, &fake, err);
    assert_non_null(m);
    gpt_free(m);
}

/* The fused residual + RMSNorm gives what add + rmsnorm_forward give, and a
 * backend without the fused kernel runs the model unfused to the same loss. */
static void test_rmsnorm_fused(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    const ops_backend_t *ops = ops_cpu();
    int N = 5, C = 24;
    mg_rng_t rng;
    mg_rng_seed(&rng, 3);
    float a[120], b[120], w[24], res1[120], res2[120], o1[120], o2[120], r1[5], r2[5];
    for (int i = 0; i < N * C; i++)
        a[i] = mg_rng_normal(&rng), b[i] = mg_rng_normal(&rng);
    for (int i = 0; i < C; i++)
        w[i] = 1.0f + 0.3f * mg_rng_normal(&rng);
    ops->residual_rmsnorm_forward(res1, o1, r1, a, b, w, N, C);
    ops->add(res2, a, b, (size_t)N * C);
    ops->rmsnorm_forward(o2, r2, res2, w, N, C);
    assert_memory_equal(res1, res2, sizeof res1);
    for (int i = 0; i < N * C; i++)
        assert_float_equal(o1[i], o2[i], 1e-6);
    for (int i = 0; i < N; i++)
        assert_float_equal(r1[i], r2[i], 1e-6);

    ops_backend_t nofuse = *ops;
    nofuse.residual_rmsnorm_forward = NULL;
    gpt_config_t c = micro();
    c.norm = GPT_NORM_RMS;
    c.pos = GPT_POS_ROPE;
    gpt_model_t *m1 = gpt_create(&c, ops, err), *m2 = gpt_create(&c, &nofuse, err);
    assert_non_null(m1);
    assert_non_null(m2);
    assert_int_equal(gpt_init_weights(m1, 2, err), 0);
    assert_int_equal(gpt_init_weights(m2, 2, err), 0);
    assert_int_equal(gpt_alloc_training(m1, 2, 8, err), 0);
    assert_int_equal(gpt_alloc_training(m2, 2, 8, err), 0);
    int32_t tok[16], tgt[16];
    for (int i = 0; i < 16; i++)
        tok[i] = (int32_t)mg_rng_below(&rng, 40), tgt[i] = (int32_t)mg_rng_below(&rng, 40);
    float l1 = gpt_forward(m1, tok, tgt, 2, 8), l2 = gpt_forward(m2, tok, tgt, 2, 8);
    assert_float_equal(l1, l2, 1e-5);
    gpt_free(m1);
    gpt_free(m2);
}

int main(void) {
    ops_cpu_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),        cmocka_unit_test(test_zero_init),
        cmocka_unit_test(test_config_json),   cmocka_unit_test(test_backend_refuses),
        cmocka_unit_test(test_rmsnorm_fused),
    };
    return cmocka_run_group_tests_name("arch", tests, NULL, NULL);
}
