/* state.h - what a checkpoint needs beyond the weights to resume training
 * exactly: AdamW moments (and Muon's momentum buffers, in adam.m) and step count, data-loader
 * position and RNG, the schedule, the run's hyperparameters and its corpus's fingerprint.
 *
 * Stored beside the checkpoint X.safetensors as X.optim.safetensors:
 * tensors "adam.m" and "adam.v" (F32, one flat vector each, in the
 * parameter table's order) and a "training_state" JSON in __metadata__,
 * whose fields are those of one table in state.c (name, type, range,
 * offset). */
#ifndef MG_STATE_H
#define MG_STATE_H

#include "model/gpt.h"
#include "util/common.h"

/* The run's hyperparameters: set by the flags (train_opts_t), saved with
 * every checkpoint (train_state_t) and restored as a whole on resume. */
typedef struct {
    int batch;      /* sequences per micro-batch */
    int grad_accum; /* micro-batches per optimizer step (1: none) */
    float lr, min_lr_ratio, wd, beta1, beta2, eps, clip;
    uint64_t seed;
    int eval_every, eval_batches;
    int val_every; /* every val_every-th chunk of the stream is validation */
    /* --optimizer: TRAIN_OPT_ADAMW (everything AdamW at lr) or TRAIN_OPT_MUON
     * (the hidden matrices Muon at muon_lr with momentum muon_momentum, the
     * rest AdamW at lr; both lrs follow the same schedule) */
    int optimizer;
    float muon_lr, muon_momentum;
} train_hparams_t;

enum { TRAIN_OPT_ADAMW = 0, TRAIN_OPT_MUON = 1 };
/* "adamw", "muon" */
const char *train_optimizer_name(int optimizer);

/* What identifies a corpus: its size and a 64-bit FNV-1a hash of its bytes. */
typedef struct {
    long long bytes;
    uint64_t hash;
} train_corpus_t;

void train_corpus_fingerprint(const char *text, size_t len, train_corpus_t *c);

typedef struct {
    long step;        /* steps done */
    long total_steps; /* the schedule's length */
    long warmup;      /* warm-up steps in use (at most a tenth of the run) */
    int epoch;        /* completed epochs */
    size_t cursor;    /* windows used in this epoch */
    mg_rng_t epoch_rng;
    long long tokens_seen;
    double best_val, val_loss; /* INFINITY / NAN when none yet */
    double epoch_loss_sum;
    long epoch_steps;
    double seconds;
    train_hparams_t hp;
    train_corpus_t corpus;
    int has_corpus; /* 0: a state written before fingerprints were saved */
    int world_size; /* processes that trained it (mpirun -np; 1 without) */
} train_state_t;

/* "dir/name.safetensors" -> "dir/name.optim.safetensors" (caller frees) */
char *state_path(const char *checkpoint_path);
int state_save(const char *path, const gpt_model_t *m, const train_state_t *s, char *err);
/* Reads the state and the AdamW moments into m (m->m, m->v, m->adam_t);
 * m must have been set up with gpt_alloc_training. */
int state_load(const char *path, gpt_model_t *m, train_state_t *s, char *err);

#endif
