/* test_explain.c - the educational mode's helpers: the heatmap's exact
 * characters, activation stats on known data, and the attention weights
 * traced from a real (tiny, seeded) model: rows sum to 1, causal, and equal
 * to what the model itself used (its attention output is reproduced). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "explain/explain.h"
#include "infer/kv.h"
#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

static void heatmap_ascii(void **state) {
    (void)state;
    /* max 1.0; levels round(w * 9): 0->' ', 0.12->'.'(1), 0.5->'+'(5 = 4.5 rounds up),
     * 0.78->'#'(7), 1->'@'(9) */
    const float w[6] = {1.0f, 0.0f, 0.0f, 0.12f, 0.5f, 0.78f};
    char *s = explain_heatmap(w, 2, 3, 0, NULL, 0);
    assert_non_null(s);
    assert_string_equal(s, "@  \n.+#\n");
    mg_free(s);
    /* scaled to the largest weight: halving everything changes nothing */
    const float h[6] = {0.5f, 0.0f, 0.0f, 0.06f, 0.25f, 0.39f};
    s = explain_heatmap(h, 2, 3, 0, NULL, 0);
    assert_string_equal(s, "@  \n.+#\n");
    mg_free(s);
}

static void heatmap_unicode_labels(void **state) {
    (void)state;
    /* 5 levels: round(w * 4): 0 ' ', 0.25 '░', 0.5 '▒', 0.75 '▓', 1 '█' */
    const float w[5] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f};
    const char *labels[1] = {"ab"};
    char *s = explain_heatmap(w, 1, 5, 1, labels, 4);
    assert_string_equal(s, "ab   | ░▒▓█|\n");
    mg_free(s);
    /* labels are padded by characters: "é" is two bytes, one column */
    const char *acc[1] = {"é"};
    s = explain_heatmap(w, 1, 5, 0, acc, 3);
    assert_string_equal(s, "é   | :+#@|\n");
    mg_free(s);
    /* a label of 3-byte characters filling its width: the buffer once held
     * label_w bytes per label, and this wrote past it */
    const char *euros[2] = {"€€€€€€€€", "€"};
    const float one[2] = {1.0f, 1.0f};
    size_t before = mg_mem_current();
    s = explain_heatmap(one, 2, 1, 1, euros, 8);
    assert_string_equal(s, "€€€€€€€€ |█|\n€        |█|\n");
    assert_true(mg_mem_current() - before >= strlen(s) + 1); /* the bytes it asked for */
    mg_free(s);
}

static void stats_known(void **state) {
    (void)state;
    const float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    explain_stats_t st;
    explain_stats(x, 4, &st);
    assert_true(fabs(st.mean - 2.5) < 1e-12);
    assert_true(fabs(st.std - sqrt(1.25)) < 1e-12); /* population std */
    assert_true(st.min == 1.0 && st.max == 4.0);
    const float y[3] = {-2.0f, -2.0f, -2.0f};
    explain_stats(y, 3, &st);
    assert_true(st.mean == -2.0 && st.std == 0.0 && st.min == -2.0 && st.max == -2.0);
}

static void cut_size(void **state) {
    (void)state;
    const float logits[4] = {0.0f, logf(2.0f), logf(3.0f), logf(4.0f)}; /* p = .1 .2 .3 .4 */
    float scratch[8];
    sample_opts_t o = {1.0f, 0, 1.0f};
    assert_int_equal(explain_cut_size(logits, 4, &o, scratch), 4);
    o.top_p = 0.65f; /* .4 + .3 = .7 >= .65 */
    assert_int_equal(explain_cut_size(logits, 4, &o, scratch), 2);
    o.top_p = 1.0f;
    o.top_k = 3;
    assert_int_equal(explain_cut_size(logits, 4, &o, scratch), 3);
    o.temperature = 0.0f;
    assert_int_equal(explain_cut_size(logits, 4, &o, scratch), 1);
}

/* captured by the kv hook at layer 0's "attn" stage */
typedef struct {
    int rows, pos0, C;
    float *qkv, *keys, *vals, *atty;
} cap_t;

static void grab(void *ctx, const kv_state_t *s, int layer, const char *stage, const float *t,
                 int rows, int cols, double seconds) {
    (void)t;
    (void)cols;
    (void)seconds;
    cap_t *c = ctx;
    if (layer != 0 || strcmp(stage, "attn") != 0) return;
    const gpt_model_t *m = s->model;
    int C = m->cfg.dim, len = s->pos + rows;
    c->rows = rows;
    c->pos0 = s->pos;
    c->C = C;
    c->qkv = mg_malloc((size_t)rows * 3 * C * sizeof(float));
    c->keys = mg_malloc((size_t)len * C * sizeof(float));
    c->vals = mg_malloc((size_t)len * C * sizeof(float));
    c->atty = mg_malloc((size_t)rows * C * sizeof(float));
    m->ops->download(c->qkv, s->qkv, (size_t)rows * 3 * C * sizeof(float));
    m->ops->download(c->keys, s->kcache, (size_t)len * C * sizeof(float));
    m->ops->download(c->vals, s->vcache, (size_t)len * C * sizeof(float));
    m->ops->download(c->atty, s->atty, (size_t)rows * C * sizeof(float));
}

static void attention_from_model(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 20, .ctx = 8, .dim = 8, .layers = 1, .heads = 2};
    ops_cpu_set_threads(1);
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 7, err), 0);
    kv_state_t *kv = kv_create(m, err);
    assert_non_null(kv);
    cap_t cap = {0};
    kv->trace = grab;
    kv->trace_ctx = &cap;
    const int32_t toks[6] = {3, 17, 5, 5, 11, 0};
    assert_int_equal(kv_feed(kv, toks, 6, err), 0);
    assert_int_equal(cap.rows, 6);
    int n = 6, C = 8, HS = 4;
    for (int h = 0; h < 2; h++) {
        float w[36];
        explain_attention_weights(cap.qkv, cap.keys, n, 0, C, 2, h, w);
        for (int i = 0; i < n; i++) {
            double sum = 0.0;
            for (int s = 0; s < n; s++) {
                if (s > i)
                    assert_true(w[i * n + s] == 0.0f); /* causal */
                else
                    assert_true(w[i * n + s] > 0.0f);
                sum += w[i * n + s];
            }
            assert_true(fabs(sum - 1.0) < 1e-5);
            /* the weights are the model's: sum_s w * v reproduces its output */
            for (int j = 0; j < HS; j++) {
                double o = 0.0;
                for (int s = 0; s <= i; s++)
                    o += w[i * n + s] * cap.vals[s * C + h * HS + j];
                assert_true(fabs(o - cap.atty[i * C + h * HS + j]) < 1e-5);
            }
        }
        assert_true(w[0] == 1.0f); /* the first token can only see itself */
    }
    /* a NULL hook gives the very same logits */
    float with[20];
    memcpy(with, kv->host_logits, sizeof with);
    kv->trace = NULL;
    kv_reset(kv);
    assert_int_equal(kv_feed(kv, toks, 6, err), 0);
    assert_memory_equal(with, kv->host_logits, sizeof with);
    mg_free(cap.qkv);
    mg_free(cap.keys);
    mg_free(cap.vals);
    mg_free(cap.atty);
    kv_free(kv);
    gpt_free(m);
}

/* the web view's record_all (POST /v1/explain): every head of every layer,
 * the drawn one bit-identical to the terminal's map, rows summing to 1,
 * and each sublayer's stats */
static void record_all_heads(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 20, .ctx = 8, .dim = 8, .layers = 2, .heads = 2};
    ops_cpu_set_threads(1);
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 7, err), 0);
    kv_state_t *kv = kv_create(m, err);
    assert_non_null(kv);
    explain_t e;
    assert_int_equal(explain_init(&e, kv, NULL, NULL, 0, 0, err), 0);
    e.record_all = 1;
    e.att_layer = 1;
    e.att_head = 1;
    const int32_t toks[6] = {3, 17, 5, 5, 11, 0};
    explain_begin(&e, toks, 6);
    assert_int_equal(kv_feed(kv, toks, 6, err), 0);
    assert_non_null(e.att_all);
    assert_non_null(e.att);
    const size_t map = 36;
    assert_memory_equal(e.att_all + (1 * 2 + 1) * map, e.att, map * sizeof(float));
    for (int lh = 0; lh < 4; lh++)
        for (int i = 0; i < 6; i++) {
            double sum = 0.0;
            for (int s = 0; s < 6; s++)
                sum += e.att_all[lh * map + (size_t)i * 6 + s];
            assert_true(fabs(sum - 1.0) < 1e-5);
        }
    /* the heads differ: each slot holds its own head */
    assert_true(memcmp(e.att_all, e.att_all + map, map * sizeof(float)) != 0);
    assert_true(e.embed_st.std > 0 && e.attn_st[0].std > 0 && e.mlp_st[1].std > 0 &&
                e.lnf_st.std > 0);
    assert_int_equal(e.err[0], 0);
    explain_free(&e);
    kv_free(kv);
    gpt_free(m);
}

/* Ctrl-C in the chat sets gen_opts_t.interrupt: generation stops between
 * tokens; here the flag is raised from on_token after the third token */
static volatile sig_atomic_t stop_flag;
static int seen;
static void count_and_stop(void *ctx, int id, const float *logits) {
    (void)ctx;
    (void)id;
    (void)logits;
    if (++seen == 3) stop_flag = 1;
}

static void interrupt_stops_generation(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 300, .ctx = 16, .dim = 8, .layers = 1, .heads = 2};
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 3, err), 0);
    bpe_t *tok = bpe_train("abababab cdcdcd", 15, 262, err);
    assert_non_null(tok);
    kv_state_t *kv = kv_create(m, err);
    mg_rng_t rng;
    mg_rng_seed(&rng, 1);
    gen_opts_t go = {.sample = {0.0f, 0, 1.0f},
                     .max_tokens = 10,
                     .rng = &rng,
                     .on_token = count_and_stop,
                     .interrupt = &stop_flag};
    gen_stats_t st;
    const int32_t p[2] = {10, 11};
    assert_int_equal(gen_run(kv, tok, p, 2, &go, &st, err), 0);
    assert_int_equal(st.stop, GEN_STOP_INTERRUPTED);
    assert_int_equal(seen, 3);
    assert_int_equal(st.new_tokens, 3);
    /* without the flag the same run goes to max tokens */
    stop_flag = 0;
    seen = 0;
    go.interrupt = NULL;
    kv_reset(kv);
    assert_int_equal(gen_run(kv, tok, p, 2, &go, &st, err), 0);
    assert_int_equal(st.stop, GEN_STOP_MAX_TOKENS);
    assert_int_equal(seen, 10);
    kv_free(kv);
    bpe_free(tok);
    gpt_free(m);
}

/* The repetition penalty's window covers the history before the prompt
 * (a chat's earlier turns): greedy's first token, once in the history, is
 * not picked; with the history left out, it is. */
static int first_id;
static void note_first(void *ctx, int id, const float *logits) {
    (void)ctx;
    (void)logits;
    if (first_id < 0) first_id = id;
}

static int first_token(kv_state_t *kv, const bpe_t *tok, const int32_t *prompt, int n,
                       const int32_t *history, int n_history, float penalty) {
    char err[MG_ERR_LEN];
    mg_rng_t rng;
    mg_rng_seed(&rng, 1);
    gen_opts_t go = {.sample = {0.0f, 0, 1.0f},
                     .max_tokens = 1,
                     .rng = &rng,
                     .on_token = note_first,
                     .repeat_penalty = penalty,
                     .repeat_last_n = 64,
                     .penalty_history = history,
                     .n_penalty_history = n_history};
    gen_stats_t st;
    first_id = -1;
    kv_reset(kv);
    assert_int_equal(gen_run(kv, tok, prompt, n, &go, &st, err), 0);
    return first_id;
}

static void penalty_covers_history(void **state) {
    (void)state;
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 300, .ctx = 16, .dim = 8, .layers = 1, .heads = 2};
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_init_weights(m, 5, err), 0);
    for (size_t i = 0; i < m->num_floats; i++)
        m->weights[i] *= 20.0f; /* logits of both signs, apart */
    bpe_t *tok = bpe_train("abababab cdcdcd", 15, 262, err);
    kv_state_t *kv = kv_create(m, err);
    assert_non_null(tok);
    assert_non_null(kv);
    const int32_t p[2] = {10, 11};
    int greedy = first_token(kv, tok, p, 2, NULL, 0, 1.0f);
    assert_true(greedy != 10 && greedy != 11);
    const int32_t history[3] = {40, greedy, 41};
    int with = first_token(kv, tok, p, 2, history, 3, 50.0f);
    int without = first_token(kv, tok, p, 2, history, 0, 50.0f);
    printf("  greedy %d; penalized through the history %d; history not given %d\n", greedy, with,
           without);
    assert_int_equal(without, greedy);
    assert_true(with != greedy);
    kv_free(kv);
    bpe_free(tok);
    gpt_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(heatmap_ascii),
        cmocka_unit_test(heatmap_unicode_labels),
        cmocka_unit_test(stats_known),
        cmocka_unit_test(cut_size),
        cmocka_unit_test(attention_from_model),
        cmocka_unit_test(record_all_heads),
        cmocka_unit_test(interrupt_stops_generation),
        cmocka_unit_test(penalty_covers_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
