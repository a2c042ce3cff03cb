/* defaults.c - the trainer's defaults: fixed ones, the learning-rate
 * schedule, and those that adapt to the hardware (threads, batch, lr). */
#include <math.h>
#include <string.h>

#include "train/trainer.h"
#include "util/common.h"

/* --lr's default multiplier when Muon trains the hidden matrices */
#define TRAIN_MUON_ADAM_LR_SCALE 2.0f

void train_defaults(train_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->out_dir = "models";
    o->hp = (train_hparams_t){
        .batch = 8,
        .grad_accum = 1,
        .lr = 2e-3f,
        .min_lr_ratio = 0.1f,
        .wd = 0.1f,
        .beta1 = 0.9f,
        .beta2 = 0.95f,
        .eps = 1e-8f,
        .clip = 1.0f,
        .seed = 1337,
        .eval_every = 100,
        .eval_batches = 10,
        .val_every = 10,
        .optimizer = TRAIN_OPT_ADAMW,
        .muon_lr = 0.005f, /* measured on tiny: docs/training-recipe.md */
        .muon_momentum = 0.95f,
    };
    o->warmup = 100;
}

long train_warmup(long asked, long total) { return MG_MIN(asked, MG_MAX(1, total / 10)); }

float train_lr(const train_hparams_t *hp, long step, long warmup, long total) {
    if (step < warmup) return hp->lr * (float)(step + 1) / (float)warmup;
    if (step >= total) return hp->lr * hp->min_lr_ratio;
    double progress = (double)(step - warmup) / (double)MG_MAX(1, total - warmup);
    double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return hp->lr * (float)(hp->min_lr_ratio + (1.0 - hp->min_lr_ratio) * cosine);
}

long train_threads(long asked, const mg_sysinfo_t *sys) { return asked ? asked : sys->cores; }

void train_fit(train_opts_t *o, const mg_sysinfo_t *sys, int batch_set, int lr_set,
               train_fit_t *fit) {
    size_t used, peak, capacity;
    o->ops->memory(&used, &peak, &capacity);
    fit->gpu = capacity > 0;
    fit->capacity = fit->gpu ? capacity : sys->mem_available;
    fit->batch_why = fit->lr_why = "";
    if (o->resume) return;
    size_t budget = fit->gpu ? capacity / 10 * 8 : sys->mem_available / 2;
    /* the default learning rate scales as 1/width (Adam's updates per
     * weight grow with it): 2e-3 was best at dim 256, 3e-3 at 128 to 192
     * (docs/training-recipe.md), and GPT-2 124M gets 6.7e-4, near its
     * published 6e-4 */
    if (!lr_set && o->cfg.dim != 256) {
        o->hp.lr = fminf(3e-3f, o->hp.lr * 256.0f / o->cfg.dim);
        fit->lr_why = " scaled to the width";
    }
    /* with Muon, --lr drives only the embeddings, the head, gains and
     * biases, which learned best at twice AdamW's rate for the whole model
     * (tiny: 6e-3 against 3e-3, docs/training-recipe.md) */
    if (!lr_set && o->hp.optimizer == TRAIN_OPT_MUON) {
        o->hp.lr *= TRAIN_MUON_ADAM_LR_SCALE;
        fit->lr_why = *fit->lr_why ? " scaled to the width, x2 for Muon's other tensors"
                                   : " x2 for Muon's other tensors";
    }
    if (batch_set || !budget) return;
    /* a GPU needs many rows to be busy: grow the batch while it fits, and
     * scale the learning rate by the square root of the batch ratio (as
     * for Adam), capped */
    int base = o->hp.batch;
    if (fit->gpu)
        while (o->hp.batch < 8 * base &&
               gpt_training_bytes(&o->cfg, o->ops, 2 * o->hp.batch, o->cfg.ctx) <= budget)
            o->hp.batch *= 2;
    while (o->hp.batch > 1 && gpt_training_bytes(&o->cfg, o->ops, o->hp.batch, o->cfg.ctx) > budget)
        o->hp.batch /= 2;
    fit->batch_why = fit->gpu ? " chosen for the GPU's memory" : " chosen to fit memory";
    if (fit->gpu && !lr_set && o->hp.batch > base) {
        o->hp.lr = fminf(o->hp.lr * sqrtf((float)o->hp.batch / base), 4e-3f);
        fit->lr_why = *fit->lr_why ? " scaled to the width and the batch" : " scaled to the batch";
    }
}
