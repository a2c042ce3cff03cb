/* state.h - what a checkpoint needs beyond the weights to resume training
 * exactly: AdamW moments and step count, data-loader position and RNG, the
 * schedule, and the run's hyperparameters.
 *
 * Stored beside the checkpoint X.safetensors as X.optim.safetensors:
 * tensors "adam.m" and "adam.v" (F32, one flat vector each, in the
 * parameter table's order) and a "training_state" JSON in __metadata__. */
#ifndef MG_STATE_H
#define MG_STATE_H

#include "model/gpt.h"
#include "util/common.h"

typedef struct {
    long step;        /* steps done */
    long total_steps; /* the schedule's length */
    long warmup;
    int epoch;        /* completed epochs */
    size_t cursor;    /* windows used in this epoch */
    mg_rng_t epoch_rng;
    long long tokens_seen;
    double best_val, val_loss;
    double epoch_loss_sum;
    long epoch_steps;
    double seconds;
    /* hyperparameters of the run, restored on resume */
    int batch, grad_accum, eval_every, eval_batches, val_every;
    double lr, min_lr_ratio, wd, beta1, beta2, eps, clip;
    uint64_t seed;
} train_state_t;

/* "dir/name.safetensors" -> "dir/name.optim.safetensors" (caller frees) */
char *state_path(const char *checkpoint_path);
int state_save(const char *path, const gpt_model_t *m, const train_state_t *s, char *err);
/* Reads the state and the AdamW moments into m (m->m, m->v, m->adam_t);
 * m must have been set up with gpt_alloc_training. */
int state_load(const char *path, gpt_model_t *m, train_state_t *s, char *err);

#endif
