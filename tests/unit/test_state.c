/* test_state.c - the resume state's field table: every field survives a
 * save and load exactly (u64 seeds and RNG words included), states written
 * before grad_accum and the corpus fingerprint still load (grad_accum 1, no
 * fingerprint; world_size: 1), and an out-of-range field is refused; plus the outdir
 * helpers' names (temp files of a pid, run files). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/safetensors.h"
#include "ops/cpu/cpu.h"
#include "ops/ops.h"
#include "train/outdir.h"
#include "train/state.h"
#include "util/atomic.h"
#include "util/common.h"

static gpt_model_t *model(void) {
    char err[MG_ERR_LEN];
    gpt_config_t cfg = {.vocab = 13, .ctx = 6, .dim = 8, .layers = 1, .heads = 2};
    gpt_model_t *m = gpt_create(&cfg, ops_cpu(), err);
    assert_non_null(m);
    assert_int_equal(gpt_alloc_training(m, 1, cfg.ctx, err), 0);
    return m;
}

static train_state_t sample(void) {
    train_state_t s = {
        .step = 123456789,
        .total_steps = 987654321,
        .warmup = 77,
        .epoch = 3,
        .cursor = 4242,
        .epoch_rng = {{0x0123456789abcdefull, 0xfedcba9876543210ull, 1, UINT64_MAX}},
        .tokens_seen = 1234567890123ll,
        .best_val = 2.5,
        .val_loss = 2.75,
        .epoch_loss_sum = -1.25,
        .epoch_steps = 11,
        .seconds = 3.5,
        .hp = {.batch = 6,
               .grad_accum = 3,
               .lr = 2e-3f,
               .min_lr_ratio = 0.1f,
               .wd = 0.05f,
               .beta1 = 0.9f,
               .beta2 = 0.95f,
               .eps = 1e-8f,
               .clip = 1.0f,
               .seed = 0xfedcba9876543210ull,
               .eval_every = 50,
               .eval_batches = 4,
               .val_every = 10,
               .optimizer = TRAIN_OPT_MUON,
               .muon_lr = 0.03f,
               .muon_momentum = 0.9f},
        .corpus = {.bytes = 60000, .hash = 0x8000000000000001ull},
        .has_corpus = 1,
        .world_size = 4,
    };
    return s;
}

static void test_roundtrip(void **st) {
    (void)st;
    char err[MG_ERR_LEN], path[64];
    snprintf(path, sizeof path, "/tmp/test_state_%ld.optim.safetensors", (long)getpid());
    gpt_model_t *m = model();
    m->adam_t = 41;
    train_state_t s = sample(), r;
    assert_int_equal(state_save(path, m, &s, err), 0);
    m->adam_t = 0;
    assert_int_equal(state_load(path, m, &r, err), 0);
    assert_int_equal(m->adam_t, 41);
    assert_int_equal(r.step, s.step);
    assert_int_equal(r.total_steps, s.total_steps);
    assert_int_equal(r.warmup, s.warmup);
    assert_int_equal(r.epoch, s.epoch);
    assert_int_equal(r.cursor, s.cursor);
    assert_memory_equal(&r.epoch_rng, &s.epoch_rng, sizeof s.epoch_rng);
    assert_int_equal(r.tokens_seen, s.tokens_seen);
    assert_true(r.best_val == s.best_val && r.val_loss == s.val_loss);
    assert_true(r.epoch_loss_sum == s.epoch_loss_sum && r.seconds == s.seconds);
    assert_int_equal(r.epoch_steps, s.epoch_steps);
    const train_hparams_t *a = &r.hp, *b = &s.hp; /* field by field: the struct has padding */
    assert_true(a->batch == b->batch && a->grad_accum == b->grad_accum &&
                a->eval_every == b->eval_every && a->eval_batches == b->eval_batches &&
                a->val_every == b->val_every && a->seed == b->seed);
    assert_true(a->lr == b->lr && a->min_lr_ratio == b->min_lr_ratio && a->wd == b->wd &&
                a->beta1 == b->beta1 && a->beta2 == b->beta2 && a->eps == b->eps &&
                a->clip == b->clip);
    assert_true(a->optimizer == TRAIN_OPT_MUON && a->muon_lr == b->muon_lr &&
                a->muon_momentum == b->muon_momentum);
    assert_int_equal(r.has_corpus, 1);
    assert_int_equal(r.corpus.bytes, s.corpus.bytes);
    assert_true(r.corpus.hash == s.corpus.hash);
    assert_int_equal(r.world_size, 4);
    /* none yet: INFINITY and NAN come back as such */
    s.best_val = INFINITY;
    s.val_loss = NAN;
    assert_int_equal(state_save(path, m, &s, err), 0);
    assert_int_equal(state_load(path, m, &r, err), 0);
    assert_true(isinf(r.best_val) && isnan(r.val_loss));
    unlink(path);
    gpt_free(m);
}

/* writes a state whose training_state is json */
static void write_state(const char *path, const gpt_model_t *m, const char *json) {
    char err[MG_ERR_LEN];
    st_writer_t *w = st_writer_new();
    int64_t shape[1] = {(int64_t)m->num_floats};
    float *z = mg_calloc(m->num_floats, sizeof(float));
    assert_int_equal(st_writer_add(w, "adam.m", ST_F32, 1, shape, z, err), 0);
    assert_int_equal(st_writer_add(w, "adam.v", ST_F32, 1, shape, z, err), 0);
    assert_int_equal(st_writer_meta(w, "training_state", json, err), 0);
    assert_int_equal(st_writer_save(w, path, err), 0);
    st_writer_free(w);
    mg_free(z);
}

/* the JSON of a state written before grad_accum and fingerprints */
#define OLD_STATE(lr)                                                                              \
    "{\"adam_t\":6,\"step\":6,\"total_steps\":12,\"warmup\":1,\"epoch\":0,\"cursor\":24,"          \
    "\"epoch_rng\":\"00000000000000010000000000000002000000000000000300000000000000ff\","          \
    "\"tokens_seen\":1536,\"best_val\":5.5,\"val_loss\":5.5,\"epoch_loss_sum\":36.1,"              \
    "\"epoch_steps\":6,\"seconds\":1.5,\"batch\":4,\"eval_every\":6,\"eval_batches\":10,"          \
    "\"val_every\":10,\"lr\":" lr ",\"min_lr_ratio\":0.1,\"weight_decay\":0.1,\"beta1\":0.9,"      \
    "\"beta2\":0.95,\"eps\":1e-08,\"clip\":1,\"seed\":\"1337\"}"

static void test_old_and_bad(void **st) {
    (void)st;
    char err[MG_ERR_LEN], path[64];
    snprintf(path, sizeof path, "/tmp/test_state_old_%ld.optim.safetensors", (long)getpid());
    gpt_model_t *m = model();
    train_state_t r;
    write_state(path, m, OLD_STATE("0.0020000000949949026"));
    assert_int_equal(state_load(path, m, &r, err), 0);
    assert_int_equal(r.hp.grad_accum, 1);
    assert_int_equal(r.has_corpus, 0);
    assert_int_equal(r.world_size, 1);
    assert_true(r.hp.lr == 2e-3f);
    assert_true(r.hp.seed == 1337 && r.epoch_rng.s[3] == 0xff && r.hp.batch == 4);
    assert_int_equal(r.hp.optimizer, TRAIN_OPT_ADAMW); /* before Muon: AdamW */
    write_state(path, m, OLD_STATE("11"));
    assert_int_equal(state_load(path, m, &r, err), -1);
    assert_non_null(strstr(err, "'lr' missing or out of range"));
    unlink(path);
    gpt_free(m);
}

static void test_names(void **st) {
    (void)st;
    assert_int_equal(mg_atomic_tmp_pid("mini_gpt.safetensors.tmp.4242"), 4242);
    assert_int_equal(mg_atomic_tmp_pid("a.tmp.1.tmp.77"), 77);
    assert_int_equal(mg_atomic_tmp_pid("half.tmp.77.safetensors"), 0);
    assert_int_equal(mg_atomic_tmp_pid("x.tmp."), 0);
    assert_true(outdir_is_run_file("checkpoint_step_12.optim.safetensors"));
    assert_true(outdir_is_run_file("train_log.jsonl"));
    assert_false(outdir_is_run_file("tokens.safetensors"));
    assert_false(outdir_is_run_file(".minigpt-train.lock"));
}

int main(void) {
    ops_cpu_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_old_and_bad),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
