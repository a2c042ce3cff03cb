/* trainer.c - the training run in three parts: set-up (checks, data,
 * model, the --out folder), one step (next batch, forward, backward,
 * update, log, evaluation and checkpoints) and finish (final model and
 * tokenizer). Time budgets and graceful stops live in the step. */
#define _DEFAULT_SOURCE /* realpath */
#include "train/trainer.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "tokenizer/bpe.h"
#include "train/data.h"
#include "train/eval.h"
#include "train/outdir.h"
#include "util/atomic.h"
#include "util/common.h"

typedef struct {
    train_opts_t o; /* a copy; the hyperparameters in use are st.hp */
    gpt_model_t *model;
    bpe_t *tok;
    data_split_t split;
    data_loader_t loader;
    int32_t *x, *y;
    train_state_t st;
    double t_start; /* wall clock at start of this process's run */
    double t_prev;  /* seconds of training before a resume */
    double t_loop;  /* wall clock when the first step began */
    double budget;  /* --minutes in seconds (INFINITY: a step budget) */
    long first;     /* the step this process started at */
    float last_loss;
    double val_bpb;
    int lock; /* the --out folder's lock (-1: not taken) */
    char log_path[4096];
    FILE *log; /* train_log.jsonl */
} run_t;

static void emit(const run_t *r, train_event_t e) {
    if (r->o.on_event) r->o.on_event(r->o.ctx, &e);
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

/* Validation loss (nats per token) and bits per byte over eval_batches
 * steps' worth of windows (batch x grad_accum each), spread evenly through
 * the validation tokens (the same windows every time). */
static float evaluate(run_t *r, double *bpb) {
    int B = r->model->B, T = r->model->T;
    size_t windows = (r->split.n_val - 1) / T;
    *bpb = NAN;
    if (windows == 0) return NAN;
    size_t total = MG_MIN((size_t)r->st.hp.eval_batches * B * r->st.hp.grad_accum, windows);
    eval_sum_t sum = {0};
    size_t done = 0;
    while (done < total) {
        int nb = (int)MG_MIN((size_t)B, total - done);
        for (int b = 0; b < nb; b++) {
            size_t w = (done + b) * windows / total;
            const int32_t *src = r->split.val + w * T;
            memcpy(r->x + (size_t)b * T, src, T * sizeof(int32_t));
            memcpy(r->y + (size_t)b * T, src + 1, T * sizeof(int32_t));
        }
        gpt_forward(r->model, r->x, r->y, nb, T);
        eval_accumulate(r->model->host_losses, r->tok, r->y, nb, T, 0, &sum);
        done += nb;
    }
    *bpb = eval_bpb(&sum);
    return (float)eval_loss(&sum);
}

/* One JSON line per step in out_dir/train_log.jsonl (the plot's input). */
static void log_step(run_t *r, float loss, float lr, double tok_s, int with_val, double bpb) {
    if (!r->log) return;
    fprintf(r->log,
            "{\"step\":%ld,\"tokens\":%lld,\"epoch\":%d,\"train_loss\":%.6f,\"lr\":%.6g,\"tok_per_"
            "s\":%.1f",
            r->st.step, r->st.tokens_seen, r->loader.epoch, loss, lr, tok_s);
    if (with_val && isfinite(r->st.val_loss))
        fprintf(r->log, ",\"val_loss\":%.6f,\"val_bpb\":%.6f", r->st.val_loss, bpb);
    fprintf(r->log, "}\n");
    fflush(r->log);
}

/* Writes out_dir/name (weights) and its .optim sibling (resume state).
 * The state goes first: a crash between the two leaves a new state next
 * to an old model, which resume detects by the step numbers. */
static int save(run_t *r, const char *name, char *err) {
    char path[4096];
    int rc = -1;
    snprintf(path, sizeof path, "%s/%s", r->o.out_dir, name);
    char *spath = state_path(path);
    if (!spath) return mg_fail(err, "out of memory");
    r->st.epoch = r->loader.epoch;
    r->st.cursor = r->loader.cursor;
    r->st.epoch_rng = r->loader.epoch_rng;
    r->st.seconds = r->t_prev + (mg_now() - r->t_start);
    ckpt_meta_t meta = {
        .step = r->st.step,
        .epoch = r->st.epoch,
        .train_loss = r->last_loss,
        .val_loss = r->st.val_loss,
        .val_bpb = r->val_bpb,
        .tokens_seen = r->st.tokens_seen,
        .lr = train_lr(&r->st.hp, MG_MAX(0, r->st.step - 1), r->st.warmup, r->st.total_steps),
        .seconds = r->st.seconds,
        .tokens_per_second = r->st.tokens_seen / MG_MAX(1e-9, r->st.seconds),
    };
    if (state_save(spath, r->model, &r->st, err) || ckpt_save(path, r->model, r->tok, &meta, err))
        goto done;
    emit(r,
         (train_event_t){.kind = TE_SAVE, .msg = path, .step = r->st.step, .epoch = r->st.epoch});
    rc = 0;
done:
    mg_free(spath);
    return rc;
}

/* --keep K: delete all but the K newest checkpoint_step_N files (and their
 * state), and what killed runs left (see outdir_clean_stale); best, final
 * and epoch checkpoints are never touched. */
static void prune(run_t *r) {
    if (r->o.keep <= 0) return;
    outdir_clean_stale(r->o.out_dir);
    DIR *d = opendir(r->o.out_dir);
    if (!d) return;
    long steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096) {
        long s;
        char tail[32];
        if (sscanf(e->d_name, "checkpoint_step_%ld.%31s", &s, tail) == 2 &&
            strcmp(tail, "safetensors") == 0)
            steps[n++] = s;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int k = 0; k < n; k++)
            newer += steps[k] > steps[i];
        if (newer < r->o.keep) continue;
        char path[4096], *sp;
        snprintf(path, sizeof path, "%s/checkpoint_step_%ld.safetensors", r->o.out_dir, steps[i]);
        unlink(path);
        if ((sp = state_path(path))) unlink(sp);
        mg_free(sp);
    }
}

/* Reads and encodes the corpus, then splits the token stream. The
 * tokenizer is trained here unless it came with a resumed checkpoint. */
static int prepare_data(run_t *r, gpt_config_t *cfg, char *err) {
    const train_opts_t *o = &r->o;
    size_t len, n = 0;
    int32_t *ids = NULL;
    char *text = mg_read_file(o->data_path, &len, err);
    if (!text) return -1;
    if (len == 0) {
        mg_free(text);
        return mg_fail(err, "data file '%s' is empty", o->data_path);
    }
    /* a resumed run continues on its corpus: the data position and the
     * split are meaningless on another */
    train_corpus_t seen;
    train_corpus_fingerprint(text, len, &seen);
    if (o->resume && r->st.has_corpus &&
        (seen.bytes != r->st.corpus.bytes || seen.hash != r->st.corpus.hash)) {
        mg_fail(err,
                "cannot resume: '%s' was trained on another corpus (%lld bytes, hash %016llx) than "
                "'%s' "
                "(%lld bytes, hash %016llx); to train it on new data use --init-from",
                o->resume, r->st.corpus.bytes, (unsigned long long)r->st.corpus.hash, o->data_path,
                seen.bytes, (unsigned long long)seen.hash);
        goto fail;
    }
    if (o->resume && !r->st.has_corpus)
        info(r,
             "note: '%s' was saved without a corpus fingerprint (an older version): '%s' is taken "
             "to be its corpus",
             o->resume, o->data_path);
    r->st.corpus = seen;
    r->st.has_corpus = 1;
    double t0 = mg_now();
    if (!r->tok && !(r->tok = bpe_train(text, len, cfg->vocab, err))) goto fail;
    double t1 = mg_now();
    if (bpe_encode(r->tok, text, len, &ids, &n, err) != 0) goto fail;
    double t2 = mg_now();
    if (!r->model) cfg->vocab = bpe_vocab_size(r->tok);
    info(r,
         "tokenizer: %d tokens (%d merges)%s in %.2f s; %zu bytes -> %zu tokens "
         "(%.2f bytes/token) in %.2f s (%.1f MB/s)",
         bpe_vocab_size(r->tok), bpe_num_merges(r->tok),
         r->model ? " from the checkpoint" : " trained", t1 - t0, len, n, (double)len / n, t2 - t1,
         len / 1e6 / (t2 - t1));
    /* chunks of 8 windows: fine enough to sample every author, coarse
     * enough that few windows straddle a train/validation border */
    size_t chunk = 8 * ((size_t)cfg->ctx + 1);
    if (data_split(ids, n, chunk, r->st.hp.val_every, &r->split, err) != 0) goto fail;
    if (r->split.n_val < (size_t)cfg->ctx + 1) {
        /* too small for a validation window at that chunk size: use
         * chunks of one window */
        data_split_free(&r->split);
        chunk = (size_t)cfg->ctx + 1;
        if (data_split(ids, n, chunk, r->st.hp.val_every, &r->split, err) != 0) goto fail;
    }
    if (r->split.n_train < (size_t)cfg->ctx + 1 || r->split.n_val < (size_t)cfg->ctx + 1) {
        mg_fail(err, "data file '%s' is too small: %zu tokens for a context of %d", o->data_path, n,
                cfg->ctx);
        goto fail;
    }
    info(r, "data: %zu train tokens, %zu validation tokens (every %d-th chunk of %zu)",
         r->split.n_train, r->split.n_val, r->st.hp.val_every, chunk);
    mg_free(text);
    mg_free(ids);
    return 0;
fail:
    mg_free(text);
    mg_free(ids);
    return -1;
}

/* --save-tokens: the split streams plus token byte lengths (for bits per
 * byte), so that another trainer sees exactly the same data. */
static int save_tokens(run_t *r, char *err) {
    int V = bpe_vocab_size(r->tok), rc = -1;
    int32_t *bytes = mg_malloc((size_t)V * sizeof(int32_t));
    st_writer_t *w = st_writer_new();
    if (!bytes || !w) {
        mg_fail(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < V; i++) {
        size_t len = 0;
        bpe_token_bytes(r->tok, i, &len);
        bytes[i] = bpe_token_kind(r->tok, i) == BPE_TOKEN_SPECIAL ? 0 : (int32_t)len;
    }
    int64_t nt[1] = {(int64_t)r->split.n_train}, nv[1] = {(int64_t)r->split.n_val}, nb[1] = {V};
    if (st_writer_add(w, "train", ST_I32, 1, nt, r->split.train, err) ||
        st_writer_add(w, "val", ST_I32, 1, nv, r->split.val, err) ||
        st_writer_add(w, "token_bytes", ST_I32, 1, nb, bytes, err) ||
        st_writer_save(w, r->o.save_tokens, err))
        goto done;
    info(r, "token streams written to %s", r->o.save_tokens);
    rc = 0;
done:
    st_writer_free(w);
    mg_free(bytes);
    return rc;
}

/* The model and tokenizer of a checkpoint become the run's (--resume,
 * --init-from); its metadata stays in *meta. */
static int load_model(run_t *r, const char *path, gpt_config_t *cfg, ckpt_meta_t *meta, char *err) {
    ckpt_t *ck = ckpt_load(path, r->o.ops, err);
    if (!ck) return -1;
    r->model = ck->model;
    r->tok = ck->tok;
    ck->model = NULL;
    ck->tok = NULL;
    *meta = ck->meta;
    ckpt_free(ck);
    *cfg = r->model->cfg;
    return 0;
}

/* --resume: model and tokenizer from the checkpoint, hyperparameters and
 * position from its state file. */
static int load_resume(run_t *r, gpt_config_t *cfg, char *err) {
    ckpt_meta_t meta;
    if (load_model(r, r->o.resume, cfg, &meta, err) != 0) return -1;
    long ck_step = meta.step;
    char *sp = state_path(r->o.resume);
    if (!sp) return mg_fail(err, "out of memory");
    /* state_load fills the optimizer buffers, which gpt_alloc_training
     * creates (activations are resized once the batch is known) */
    train_state_t peek;
    int rc = -1;
    if (access(sp, R_OK) != 0) {
        mg_fail(err, "cannot resume: no optimizer state '%s' beside the checkpoint", sp);
        goto done;
    }
    if (gpt_alloc_training(r->model, 1, cfg->ctx, err) || state_load(sp, r->model, &peek, err))
        goto done;
    if (peek.step != ck_step) {
        mg_fail(err, "cannot resume: optimizer state is from step %ld but the model from step %ld",
                peek.step, ck_step);
        goto done;
    }
    r->st = peek;
    r->t_prev = peek.seconds;
    rc = 0;
done:
    mg_free(sp);
    return rc;
}

/* Whether path (a checkpoint) lies in the directory dir. */
static int in_dir(const char *path, const char *dir) {
    char parent[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    return realpath(mg_parent_dir(path, parent, sizeof parent), a) && realpath(dir, b) &&
           strcmp(a, b) == 0;
}

/* The --out rules that need no data: a folder that exists is locked for
 * this run (and proven writable) at once, and must not hold another run
 * unless --overwrite, or --resume from a checkpoint in it. Nothing of it
 * is changed here. */
static int check_out(run_t *r, char *err) {
    const char *dir = r->o.out_dir;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT) return 0; /* created once the data is known to be good */
        return mg_fail(err, "cannot use the output directory '%s': %s", dir, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) return mg_fail(err, "the output '%s' is not a directory", dir);
    if (outdir_lock(dir, &r->lock, err)) return -1;
    char found[256];
    if (r->o.overwrite || (r->o.resume && in_dir(r->o.resume, dir)) ||
        !outdir_find_run(dir, found, sizeof found))
        return 0;
    return mg_fail(
        err,
        "'%s' holds another run (%s): continue it with --resume, fine-tune it with "
        "--init-from and a new --out, train into a new --out, or replace it with --overwrite",
        dir, found);
}

/* The --out folder, once everything else has been checked: created and
 * locked if new, cleared of killed runs' leftovers (and of the previous
 * run with --overwrite), and the log started (a resumed run keeps the
 * entries up to its step). */
static int open_out(run_t *r, char *err) {
    const char *dir = r->o.out_dir;
    if (r->lock < 0) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return mg_fail(err, "cannot create output directory '%s': %s", dir, strerror(errno));
        if (outdir_lock(dir, &r->lock, err)) return -1;
    }
    outdir_clean_stale(dir);
    int same_run = r->o.resume && in_dir(r->o.resume, dir);
    if (r->o.overwrite && !same_run && outdir_clear_run(dir, err)) return -1;
    snprintf(r->log_path, sizeof r->log_path, "%s/train_log.jsonl", dir);
    if (outdir_log_keep(r->log_path, same_run ? r->st.step : -1, err)) return -1;
    if (!(r->log = fopen(r->log_path, "a")))
        return mg_fail(err, "cannot write '%s': %s", r->log_path, strerror(errno));
    return 0;
}

/* Set-up: checks, checkpoint, data, model and memory, then the --out
 * folder, then the schedule. */
static int run_setup(run_t *r, char *err) {
    r->st.best_val = INFINITY;
    r->st.val_loss = NAN;
    r->st.hp = r->o.hp;
    r->val_bpb = NAN;
    r->budget = INFINITY;
    gpt_config_t cfg = r->o.cfg;
    if (!r->o.resume && !r->o.init_from) {
        if (gpt_config_check(&cfg, err) != 0) return -1;
        if (cfg.vocab < BPE_FIRST_MERGE)
            return mg_fail(err, "vocab %d is too small: the byte-level tokenizer needs at least %d",
                           cfg.vocab, BPE_FIRST_MERGE);
    }
    r->t_start = mg_now();
    if (check_out(r, err)) return -1;
    if (r->o.resume && load_resume(r, &cfg, err) != 0) return -1;
    if (r->o.init_from) {
        ckpt_meta_t meta;
        if (load_model(r, r->o.init_from, &cfg, &meta, err) != 0) return -1;
        char val[48] = "";
        if (isfinite(meta.val_loss)) snprintf(val, sizeof val, ", val loss %.4f", meta.val_loss);
        info(r,
             "fine-tuning %s (step %ld%s): its weights and tokenizer, a new optimizer and "
             "schedule",
             r->o.init_from, meta.step, val);
    }
    if (prepare_data(r, &cfg, err) != 0) return -1;
    const train_hparams_t *hp = &r->st.hp;
    int B = hp->batch, T = cfg.ctx, K = hp->grad_accum;
    if (!r->model) {
        r->model = gpt_create(&cfg, r->o.ops, err);
        if (!r->model || gpt_init_weights(r->model, hp->seed, err)) return -1;
    }
    if (gpt_alloc_training(r->model, B, T, err)) return -1;
    /* the loader hands out a step's K x B windows at once, so that epochs
     * end on step boundaries and the windows are those of --batch K*B */
    if (data_loader_init(&r->loader, r->split.train, r->split.n_train, K * B, T, hp->seed ^ 0x5eed,
                         err))
        return -1;
    r->x = mg_malloc((size_t)K * B * T * sizeof(int32_t));
    r->y = mg_malloc((size_t)K * B * T * sizeof(int32_t));
    if (!r->x || !r->y) return mg_fail(err, "out of memory");
    long per_epoch = (long)data_loader_steps_per_epoch(&r->loader);
    if (r->o.resume) {
        if (data_loader_restore(&r->loader, r->st.epoch, r->st.cursor, &r->st.epoch_rng, err))
            return -1;
        if (r->o.steps > 0) r->st.total_steps = r->o.steps; /* a longer (or shorter) schedule */
        if (r->st.step >= r->st.total_steps)
            return mg_fail(err,
                           "'%s' is at step %ld, the end of its schedule: give --steps N with N > "
                           "%ld to train on",
                           r->o.resume, r->st.step, r->st.step);
    } else {
        r->st.total_steps = r->o.steps > 0    ? r->o.steps
                            : r->o.epochs > 0 ? (long)r->o.epochs * per_epoch
                                              : LONG_MAX;
        if (r->o.steps <= 0 && r->o.epochs <= 0) r->budget = r->o.minutes * 60.0;
        r->st.warmup = train_warmup(r->o.warmup, r->st.total_steps);
    }
    /* everything is checked: now the folder may change */
    if (open_out(r, err)) return -1;
    if (r->o.save_tokens && save_tokens(r, err) != 0) return -1;
    if (r->o.resume)
        info(r, "resuming %s at step %ld of %ld (epoch %d), with its batch %d, lr %.2e, warmup %ld",
             r->o.resume, r->st.step, r->st.total_steps, r->st.epoch, B, hp->lr, r->st.warmup);
    else if (isfinite(r->budget))
        info(r,
             "schedule: warmup %ld steps (--warmup %d, at most a tenth of the run, set once the "
             "speed is known), then cosine decay of lr %.2e",
             r->st.warmup, r->o.warmup, hp->lr);
    else
        info(r,
             "schedule: warmup %ld steps (--warmup %d, at most a tenth of the run), then cosine "
             "decay of lr %.2e over %ld steps",
             r->st.warmup, r->o.warmup, hp->lr, r->st.total_steps);
    char accum[64] = "";
    if (K > 1) snprintf(accum, sizeof accum, " x %d micro-batches (%d sequences a step)", K, K * B);
    info(r,
         "model: %zu parameters (%d layers, %d heads, dim %d, context %d, vocab %d), %s MLP of "
         "%d; batch %d x %d%s; %ld steps per epoch",
         r->model->num_floats, cfg.layers, cfg.heads, cfg.dim, cfg.ctx, cfg.vocab,
         gpt_mlp_name(r->model->cfg.mlp), r->model->cfg.ffn, B, T, accum, per_epoch);
    /* K micro-batches, each adding 1/K of its mean loss's gradient: one
     * step of K*B sequences in the memory of B */
    r->model->grad_scale = 1.0f / K;
    r->t_loop = mg_now();
    r->first = r->st.step;
    return 0;
}

enum { STEP_NEXT, STEP_END, STEP_STOPPED };

/* After a step: the time budget, events, evaluation (and best model), the
 * log, and checkpoints. STEP_NEXT, STEP_END (the schedule or the time is
 * done), STEP_STOPPED (a stop was asked: saved), or -1. */
static int after_step(run_t *r, int wrapped, float loss, float lr, float norm, double ts,
                      char *err) {
    const train_hparams_t *hp = &r->st.hp;
    long long step_tokens = (long long)hp->grad_accum * hp->batch * r->model->T;
    double now = mg_now(), elapsed = now - r->t_loop;
    long step = r->st.step, done_here = step + 1 - r->first;
    r->st.step = step + 1;
    r->st.tokens_seen += step_tokens;
    r->st.epoch_loss_sum += loss;
    r->st.epoch_steps++;
    r->last_loss = loss;
    /* time budget: size the schedule from the measured speed, and again
     * every 5 steps, as the speed settles or the machine's load changes,
     * so that the decay ends when the time does */
    if (isfinite(r->budget) && done_here >= 5 && done_here % 5 == 0) {
        double per_step = elapsed / done_here * 1.05; /* 5% for evaluations */
        double left = r->budget - (now - r->t_start);
        r->st.total_steps = MG_MAX(step + 2, step + 1 + (long)(left / per_step));
        r->st.warmup = train_warmup(r->o.warmup, r->st.total_steps);
        if (done_here == 5)
            info(r, "time budget %.1f min: %.3f s/step -> about %ld steps (warmup %ld)",
                 r->o.minutes, per_step, r->st.total_steps, r->st.warmup);
    }
    int stopping = r->o.stop && *r->o.stop;
    int last =
        r->st.step == r->st.total_steps || (isfinite(r->budget) && now - r->t_start > r->budget);
    long total = r->st.total_steps == LONG_MAX ? 0 : r->st.total_steps;
    emit(r, (train_event_t){.kind = TE_STEP,
                            .step = r->st.step,
                            .total_steps = total,
                            .epoch = r->loader.epoch,
                            .loss = loss,
                            .lr = lr,
                            .grad_norm = norm,
                            .tok_per_s = (double)step_tokens / (now - ts),
                            .elapsed_s = now - r->t_start,
                            .eta_s = total ? elapsed / done_here * (total - r->st.step) : 0});
    if (!isfinite(loss))
        return mg_fail(err, "loss became %f at step %ld (try a lower --lr)", loss, r->st.step);
    int do_eval = wrapped || last || (hp->eval_every > 0 && r->st.step % hp->eval_every == 0);
    if (do_eval) {
        float val = evaluate(r, &r->val_bpb);
        r->st.val_loss = val;
        emit(r, (train_event_t){.kind = TE_EVAL,
                                .step = r->st.step,
                                .epoch = r->loader.epoch,
                                .loss = loss,
                                .val_loss = val,
                                .val_bpb = r->val_bpb,
                                .model = r->model,
                                .tok = r->tok});
        if (val < r->st.best_val) {
            r->st.best_val = val;
            if (save(r, "best_model.safetensors", err)) return -1;
        }
    }
    log_step(r, loss, lr, (double)step_tokens / (now - ts), do_eval, r->val_bpb);
    if (wrapped) {
        emit(r, (train_event_t){.kind = TE_EPOCH,
                                .step = r->st.step,
                                .epoch = r->loader.epoch,
                                .loss = (float)(r->st.epoch_loss_sum / r->st.epoch_steps),
                                .val_loss = (float)r->st.val_loss,
                                .val_bpb = r->val_bpb,
                                .tok_per_s = (double)step_tokens * done_here / elapsed});
        r->st.epoch_loss_sum = 0.0;
        r->st.epoch_steps = 0;
        char name[64];
        snprintf(name, sizeof name, "checkpoint_epoch_%d.safetensors", r->loader.epoch);
        if (save(r, name, err)) return -1;
    }
    if ((r->o.save_every > 0 && r->st.step % r->o.save_every == 0 && !last) ||
        (stopping && !last)) {
        char name[64];
        snprintf(name, sizeof name, "checkpoint_step_%ld.safetensors", r->st.step);
        if (save(r, name, err)) return -1;
        prune(r);
        if (stopping) {
            info(r, "stopped at step %ld; continue with: minigpt train --resume %s/%s", r->st.step,
                 r->o.out_dir, name);
            return STEP_STOPPED;
        }
    }
    return last ? STEP_END : STEP_NEXT;
}

/* One optimizer step: next batch, forward, zero grad, backward (K
 * micro-batches, each adding 1/K of its gradient), update, then log. */
static int run_step(run_t *r, char *err) {
    const train_hparams_t *hp = &r->st.hp;
    int B = hp->batch, T = r->model->T, K = hp->grad_accum;
    double ts = mg_now();
    float lr = train_lr(hp, r->st.step, r->st.warmup, r->st.total_steps);
    int wrapped = data_loader_next(&r->loader, r->x, r->y);
    float loss = 0.0f;
    gpt_zero_grad(r->model);
    for (int k = 0; k < K; k++) {
        loss += gpt_forward(r->model, r->x + (size_t)k * B * T, r->y + (size_t)k * B * T, B, T) / K;
        gpt_backward(r->model);
    }
    float norm = gpt_adamw_step(r->model, lr, hp->beta1, hp->beta2, hp->eps, hp->wd, hp->clip);
    return after_step(r, wrapped, loss, lr, norm, ts, err);
}

/* Finish: the final model, the tokenizer beside it, and the log checked. */
static int run_finish(run_t *r, char *err) {
    if (save(r, "mini_gpt.safetensors", err)) return -1;
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/tokenizer.json", r->o.out_dir);
    char *json = bpe_to_json(r->tok, &len, err);
    int rc = json ? mg_write_atomic(path, json, len, err) : -1;
    mg_free(json);
    if (rc) return -1;
    /* beside it, what Hugging Face loaders need to take the folder as is */
    char *tc = bpe_config_json(r->tok, r->model->cfg.ctx, err);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", r->o.out_dir);
    rc = tc ? mg_write_atomic(path, tc, strlen(tc), err) : -1;
    mg_free(tc);
    if (rc) return -1;
    if (fflush(r->log) != 0 || ferror(r->log)) /* a full disk, say */
        return mg_fail(err, "cannot write '%s'", r->log_path);
    return 0;
}

int train_run(const train_opts_t *opts, char *err) {
    run_t r = {.o = *opts, .lock = -1};
    int rc = run_setup(&r, err);
    while (rc == STEP_NEXT)
        rc = run_step(&r, err);
    if (rc == STEP_END) rc = run_finish(&r, err);
    if (rc == STEP_STOPPED) rc = 0;
    if (r.log) fclose(r.log);
    outdir_unlock(r.lock);
    mg_free(r.x);
    mg_free(r.y);
    data_loader_free(&r.loader);
    data_split_free(&r.split);
    gpt_free(r.model);
    bpe_free(r.tok);
    return rc;
}
