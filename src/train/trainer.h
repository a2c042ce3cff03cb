/* trainer.h - the training run: tokenizer, split, loop, evaluation and
 * checkpoints. It reports progress through events; it never prints. */
#ifndef MG_TRAINER_H
#define MG_TRAINER_H

#include <stdint.h>

#include "model/gpt.h"

typedef enum { TE_INFO, TE_STEP, TE_EVAL, TE_EPOCH, TE_SAVE } train_event_kind_t;

typedef struct {
    train_event_kind_t kind;
    const char *msg; /* TE_INFO: a line of text; TE_SAVE: the path */
    long step, total_steps;
    int epoch;
    float loss;     /* TE_STEP: this step's loss; TE_EPOCH: mean over the epoch */
    float val_loss; /* TE_EVAL, TE_EPOCH (NAN if none) */
    float lr, grad_norm;
    double tok_per_s, elapsed_s, eta_s;
} train_event_t;

typedef struct {
    const char *data_path;
    const char *out_dir;
    gpt_config_t cfg; /* cfg.vocab is the tokenizer's target size */
    int batch;
    float lr, min_lr_ratio, wd, beta1, beta2, eps, clip;
    int warmup;
    /* budget: the first non-zero of steps, epochs, minutes */
    long steps;
    int epochs;
    double minutes;
    uint64_t seed;
    int eval_every, eval_batches;
    int val_every; /* every val_every-th chunk of the stream is validation */
    const ops_backend_t *ops;
    void (*on_event)(void *ctx, const train_event_t *e);
    void *ctx;
} train_opts_t;

/* Defaults for everything but the data path and the config. */
void train_defaults(train_opts_t *o);
/* The learning rate at a step: linear warm-up, then cosine decay to
 * lr * min_lr_ratio at total. */
float train_lr(const train_opts_t *o, long step, long warmup, long total);
int train_run(const train_opts_t *o, char *err);

#endif
