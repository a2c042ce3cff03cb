/* trainer.c - the training loop. */
#define _POSIX_C_SOURCE 200809L
#include "train/trainer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/checkpoint.h"
#include "tokenizer/bpe.h"
#include "train/data.h"
#include "util/common.h"

void train_defaults(train_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->out_dir = "models";
    o->batch = 8;
    o->lr = 1e-3f;
    o->min_lr_ratio = 0.1f;
    o->wd = 0.1f;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->clip = 1.0f;
    o->warmup = 50;
    o->seed = 1337;
    o->eval_every = 100;
    o->eval_batches = 10;
    o->val_every = 10;
}

float train_lr(const train_opts_t *o, long step, long warmup, long total) {
    if (step < warmup) return o->lr * (float)(step + 1) / (float)warmup;
    if (step >= total) return o->lr * o->min_lr_ratio;
    double progress = (double)(step - warmup) / (double)MG_MAX(1, total - warmup);
    double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return o->lr * (float)(o->min_lr_ratio + (1.0 - o->min_lr_ratio) * cosine);
}

typedef struct {
    const train_opts_t *o;
    gpt_model_t *model;
    bpe_t *tok;
    data_split_t split;
    loader_t loader;
    int32_t *x, *y;
    double t_start;
    float best_val;
    ckpt_meta_t meta;
} run_t;

static void emit(const run_t *r, train_event_t e) {
    if (r->o->on_event) r->o->on_event(r->o->ctx, &e);
}

static void info(const run_t *r, const char *fmt, ...) MG_PRINTF(2, 3);
static void info(const run_t *r, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(r, (train_event_t){.kind = TE_INFO, .msg = line});
}

/* Mean loss over eval_batches batches spread evenly through the
 * validation tokens (the same windows every time). */
static float evaluate(run_t *r) {
    int B = r->model->B, T = r->model->T;
    size_t windows = (r->split.n_val - 1) / T;
    if (windows == 0) return NAN;
    size_t total = MG_MIN((size_t)r->o->eval_batches * B, windows);
    double sum = 0.0;
    size_t done = 0;
    while (done < total) {
        int nb = (int)MG_MIN((size_t)B, total - done);
        for (int b = 0; b < nb; b++) {
            size_t w = (done + b) * windows / total;
            const int32_t *src = r->split.val + w * T;
            memcpy(r->x + (size_t)b * T, src, T * sizeof(int32_t));
            memcpy(r->y + (size_t)b * T, src + 1, T * sizeof(int32_t));
        }
        sum += (double)gpt_forward(r->model, r->x, r->y, nb, T) * nb;
        done += nb;
    }
    return (float)(sum / total);
}

static int save(run_t *r, const char *name, char *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->o->out_dir, name);
    r->meta.seconds = mg_now() - r->t_start;
    if (ckpt_save(path, r->model, r->tok, &r->meta, err) != 0) return -1;
    emit(r, (train_event_t){.kind = TE_SAVE, .msg = path, .step = r->meta.step, .epoch = r->meta.epoch});
    return 0;
}

/* Reads the corpus, trains the tokenizer and splits the token stream. */
static int prepare_data(run_t *r, gpt_config_t *cfg, char *err) {
    const train_opts_t *o = r->o;
    size_t len;
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = mg_read_file(o->data_path, &len, err);
    if (!text) return -1;
    if (len == 0) {
        mg_free(text);
        return mg_fail(err, "data file '%s' is empty", o->data_path);
    }
    double t0 = mg_now();
    r->tok = bpe_train(text, len, cfg->vocab, err);
    if (!r->tok) goto fail;
    double t1 = mg_now();
    if (bpe_encode(r->tok, text, len, &ids, &n, err) != 0) goto fail;
    double t2 = mg_now();
    cfg->vocab = bpe_vocab_size(r->tok);
    info(r, "tokenizer: %d tokens (%d merges) trained in %.2f s; %zu bytes -> %zu tokens "
         "(%.2f bytes/token) in %.2f s (%.1f MB/s)",
         cfg->vocab, bpe_num_merges(r->tok), t1 - t0, len, n, (double)len / n, t2 - t1,
         len / 1e6 / (t2 - t1));
    /* chunks of 8 windows: fine enough to sample every author, coarse
     * enough that few windows straddle a train/validation border */
    size_t chunk = 8 * ((size_t)cfg->ctx + 1);
    if (data_split(ids, n, chunk, o->val_every, &r->split, err) != 0) goto fail;
    if (r->split.n_val < (size_t)cfg->ctx + 1) {
        /* too small to hold a full validation window at this chunk size:
         * fall back to windows of the context itself */
        data_split_free(&r->split);
        if (data_split(ids, n, (size_t)cfg->ctx + 1, o->val_every, &r->split, err) != 0) goto fail;
    }
    if (r->split.n_train < (size_t)cfg->ctx + 1 || r->split.n_val < (size_t)cfg->ctx + 1) {
        mg_fail(err, "data file '%s' is too small: %zu tokens for a context of %d", o->data_path,
                n, cfg->ctx);
        goto fail;
    }
    info(r, "data: %zu train tokens, %zu validation tokens (every %d-th chunk of %zu)",
         r->split.n_train, r->split.n_val, o->val_every, chunk);
    mg_free(text);
    mg_free(ids);
    return 0;
fail:
    mg_free(text);
    mg_free(ids);
    return -1;
}

int train_run(const train_opts_t *o, char *err) {
    int rc = -1;
    run_t r = {.o = o, .best_val = INFINITY};
    gpt_config_t cfg = o->cfg;
    int B = o->batch, T = cfg.ctx;
    if (gpt_config_check(&cfg, err) != 0) return -1;
    if (cfg.vocab < BPE_FIRST_MERGE)
        return mg_fail(err, "vocab %d is too small: the byte-level tokenizer needs at least %d",
                       cfg.vocab, BPE_FIRST_MERGE);
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST)
        return mg_fail(err, "cannot create output directory '%s': %s", o->out_dir, strerror(errno));
    r.t_start = mg_now();
    if (prepare_data(&r, &cfg, err) != 0) goto done;
    r.model = gpt_create(&cfg, o->ops, err);
    if (!r.model || gpt_init_weights(r.model, o->seed, err) || gpt_alloc_training(r.model, B, T, err))
        goto done;
    if (loader_init(&r.loader, r.split.train, r.split.n_train, B, T, o->seed ^ 0x5eed, err)) goto done;
    r.x = mg_malloc((size_t)B * T * sizeof(int32_t));
    r.y = mg_malloc((size_t)B * T * sizeof(int32_t));
    if (!r.x || !r.y) {
        mg_fail(err, "out of memory");
        goto done;
    }
    long per_epoch = (long)loader_steps_per_epoch(&r.loader);
    long total = o->steps > 0 ? o->steps : o->epochs > 0 ? (long)o->epochs * per_epoch : LONG_MAX;
    double budget = o->steps > 0 || o->epochs > 0 ? INFINITY : o->minutes * 60.0;
    info(&r, "model: %zu parameters (%d layers, %d heads, dim %d, context %d, vocab %d); "
         "batch %d x %d; %ld steps per epoch",
         r.model->num_floats, cfg.layers, cfg.heads, cfg.dim, cfg.ctx, cfg.vocab, B, T, per_epoch);

    double t_loop = mg_now(), epoch_loss = 0.0;
    long epoch_steps = 0, warmup = MG_MIN((long)o->warmup, MG_MAX(1, total / 10));
    for (long step = 0; step < total; step++) {
        double ts = mg_now();
        int wrapped = loader_next(&r.loader, r.x, r.y);
        float lr = train_lr(o, step, warmup, total);
        gpt_zero_grad(r.model);
        float loss = gpt_forward(r.model, r.x, r.y, B, T);
        gpt_backward(r.model);
        float norm = gpt_adamw_step(r.model, lr, o->beta1, o->beta2, o->eps, o->wd, o->clip);
        double now = mg_now(), elapsed = now - t_loop;
        r.meta.step = step + 1;
        r.meta.tokens_seen += (long long)B * T;
        r.meta.train_loss = loss;
        r.meta.lr = lr;
        r.meta.tokens_per_second = r.meta.tokens_seen / elapsed;
        epoch_loss += loss;
        epoch_steps++;
        /* time budget: fix the schedule's length from the speed of the
         * first steps, then stop at the budget whatever happens */
        if (isfinite(budget) && step == 4) {
            double per_step = elapsed / 5.0 * 1.05; /* 5% for evaluations */
            total = MG_MAX(step + 2, (long)(budget / per_step));
            warmup = MG_MIN((long)o->warmup, MG_MAX(1, total / 10));
            info(&r, "time budget %.1f min: %.3f s/step -> %ld steps", o->minutes, per_step, total);
        }
        int last = step + 1 == total || (isfinite(budget) && now - r.t_start > budget);
        emit(&r, (train_event_t){.kind = TE_STEP, .step = step + 1, .total_steps = total == LONG_MAX ? 0 : total,
                                 .epoch = r.loader.epoch, .loss = loss, .lr = lr, .grad_norm = norm,
                                 .tok_per_s = (double)B * T / (now - ts), .elapsed_s = now - r.t_start,
                                 .eta_s = total == LONG_MAX ? 0 : elapsed / (step + 1) * (total - step - 1)});
        if (!isfinite(loss)) {
            mg_fail(err, "loss became %f at step %ld (try a lower --lr)", loss, step + 1);
            goto done;
        }
        int do_eval = wrapped || last || (o->eval_every > 0 && (step + 1) % o->eval_every == 0);
        if (do_eval) {
            float val = evaluate(&r);
            r.meta.val_loss = val;
            emit(&r, (train_event_t){.kind = TE_EVAL, .step = step + 1, .epoch = r.loader.epoch, .loss = loss, .val_loss = val});
            if (val < r.best_val) {
                r.best_val = val;
                if (save(&r, "best_model.safetensors", err)) goto done;
            }
        }
        if (wrapped) {
            r.meta.epoch = r.loader.epoch;
            emit(&r, (train_event_t){.kind = TE_EPOCH, .step = step + 1, .epoch = r.loader.epoch,
                                     .loss = (float)(epoch_loss / epoch_steps), .val_loss = r.meta.val_loss,
                                     .tok_per_s = r.meta.tokens_per_second});
            char name[64];
            snprintf(name, sizeof name, "checkpoint_epoch_%d.safetensors", r.loader.epoch);
            if (save(&r, name, err)) goto done;
            epoch_loss = 0.0;
            epoch_steps = 0;
        }
        if (last) break;
    }
    r.meta.epoch = r.loader.epoch;
    if (save(&r, "mini_gpt.safetensors", err)) goto done;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", o->out_dir);
    if (bpe_save(r.tok, path, err)) goto done;
    rc = 0;
done:
    mg_free(r.x);
    mg_free(r.y);
    loader_free(&r.loader);
    data_split_free(&r.split);
    gpt_free(r.model);
    bpe_free(r.tok);
    return rc;
}
