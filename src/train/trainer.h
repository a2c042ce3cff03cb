/* trainer.h - the training run: tokenizer, split, loop, evaluation and
 * checkpoints. It reports progress through events; it never prints. */
#ifndef MG_TRAINER_H
#define MG_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "model/gpt.h"
#include "train/state.h"
#include "util/sysinfo.h"
#include "tokenizer/bpe.h"

typedef enum { TE_INFO, TE_STEP, TE_EVAL, TE_EPOCH, TE_SAVE } train_event_kind_t;

typedef struct {
    train_event_kind_t kind;
    const char *msg; /* TE_INFO: a line of text; TE_SAVE: the path */
    long step, total_steps;
    int epoch;
    float loss;     /* TE_STEP: this step's loss; TE_EPOCH: mean over the epoch */
    float val_loss; /* TE_EVAL, TE_EPOCH (NAN if none) */
    double val_bpb; /* validation bits per byte, with val_loss */
    float lr, grad_norm;
    double tok_per_s, elapsed_s, eta_s;
    /* TE_EVAL: the model being trained and its tokenizer, to sample from
     * (the live dashboard); read-only, valid during the call only */
    gpt_model_t *model;
    const bpe_t *tok;
} train_event_t;

typedef struct {
    const char *data_path;
    const char *out_dir;
    gpt_config_t cfg;   /* cfg.vocab is the tokenizer's target size */
    train_hparams_t hp; /* saved with each checkpoint; --resume restores them */
    int optimizer_set;  /* hp.optimizer was asked for: a resume of another one is refused */
    int warmup;         /* asked for; the run uses at most a tenth of its steps */
    /* budget: the first non-zero of steps, epochs, minutes */
    long steps;
    int epochs;
    double minutes;
    const char *resume; /* continue from this checkpoint and its .optim file */
    /* fine-tune: start from this checkpoint's weights and tokenizer (cfg
     * must be its config), with a new optimizer, schedule and data */
    const char *init_from;
    /* out_dir may hold another run (its files are removed at start);
     * otherwise such a folder is refused, unless resume's checkpoint is in it */
    int overwrite;
    long save_every; /* also save checkpoint_step_N every N steps (0: off) */
    int keep;        /* keep only the K newest step checkpoints (0: all) */
    /* under mpirun (train/dist.h): 1 shards the AdamW moments across the
     * ranks (ZeRO stage 1); 0: every rank holds them all */
    int zero;
    /* write the train/validation token streams and each token's byte
     * length here (safetensors), for reference trainers on the same data */
    const char *save_tokens;
    /* set asynchronously (a signal handler): finish the step, save, stop */
    volatile sig_atomic_t *stop;
    const ops_backend_t *ops;
    void (*on_event)(void *ctx, const train_event_t *e);
    void *ctx;
} train_opts_t;

/* Defaults for everything but the data path and the config. */
void train_defaults(train_opts_t *o);
/* The warm-up of a run of total steps: the asked one, at most a tenth. */
long train_warmup(long asked, long total);
/* The learning rate at a step: linear warm-up, then cosine decay to
 * lr * min_lr_ratio at total. */
float train_lr(const train_hparams_t *hp, long step, long warmup, long total);

/* The hardware-adaptive defaults (train/defaults.c). */
/* CPU threads: the asked number, or (0) every core. */
long train_threads(long asked, const mg_sysinfo_t *sys);
typedef struct {
    int gpu;                        /* the backend has its own memory */
    size_t capacity;                /* the memory sized against: the GPU's, or available RAM */
    const char *batch_why, *lr_why; /* "" or how the value was chosen */
} train_fit_t;
/* Sizes what the user did not set for o->ops and the machine: the batch
 * (the largest up to the default whose training memory fits half the
 * available RAM; on a GPU, up to 8x the default in 80% of its memory) and
 * the learning rate (scaled as 1/width, and on a GPU by sqrt of the batch
 * ratio). A resumed run keeps its saved values: nothing changes. */
void train_fit(train_opts_t *o, const mg_sysinfo_t *sys, int batch_set, int lr_set,
               train_fit_t *fit);

/* Trains; every checkpoint it writes is X.safetensors (weights, tokenizer,
 * metadata) plus X.optim.safetensors (see train/state.h). With o->resume,
 * the model, tokenizer, optimizer, data position, schedule and
 * hyperparameters come from the checkpoint, and the losses continue
 * bit-identically (same thread count). Nothing in out_dir is changed
 * before the data, checkpoints and memory have been checked. */
int train_run(const train_opts_t *o, char *err);

#endif
