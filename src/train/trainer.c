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
#include "train/dist.h"
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
    /* data parallel (train/dist.h): this process's rank of W; rank 0 alone
     * writes files and reports. comm_s: seconds in gradient communication */
    int rank, W;
    double comm_s, step_s;
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

/* Validation loss (nats per token, in *val) and bits per byte over
 * eval_batches steps' worth of windows (batch x grad_accum x ranks each),
 * spread evenly through the validation tokens (the same windows every
 * time). Under mpirun each rank scores every W-th batch of B windows and
 * the sums are added. */
static int evaluate(run_t *r, float *val, double *bpb, char *err) {
    int B = r->model->B, T = r->model->T;
    size_t windows = (r->split.n_val - 1) / T;
    *bpb = NAN;
    *val = NAN;
    if (windows == 0) return 0;
    size_t total = MG_MIN((size_t)r->st.hp.eval_batches * B * r->st.hp.grad_accum * r->W, windows);
    eval_sum_t sum = {0};
    size_t done = 0;
    for (long i = 0; done < total; i++) {
        int nb = (int)MG_MIN((size_t)B, total - done);
        if (i % r->W != r->rank) {
            done += nb;
            continue;
        }
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
    double all[3] = {sum.nats, (double)sum.tokens, (double)sum.bytes};
    if (dist_sum_doubles(all, 3, err)) return -1;
    sum = (eval_sum_t){all[0], (long long)all[1], (long long)all[2]};
    *bpb = eval_bpb(&sum);
    *val = (float)eval_loss(&sum);
    return 0;
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
static int save_files(run_t *r, const char *name, char *err) {
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
    snprintf(meta.optimizer, sizeof meta.optimizer, "%s", train_optimizer_name(r->st.hp.optimizer));
    if (state_save(spath, r->model, &r->st, err) || ckpt_save(path, r->model, r->tok, &meta, err))
        goto done;
    emit(r,
         (train_event_t){.kind = TE_SAVE, .msg = path, .step = r->st.step, .epoch = r->st.epoch});
    rc = 0;
done:
    mg_free(spath);
    return rc;
}

/* save_files on rank 0, called on every rank (under --zero 1 the moments
 * are gathered there first); a failure is every rank's. */
static int save(run_t *r, const char *name, char *err) {
    int rc = 0;
    if (r->o.zero && dist_zero_gather(r->model, err)) return -1;
    if (r->rank == 0) rc = save_files(r, name, err);
    if (r->o.zero) dist_zero_release(r->model);
    return dist_agree(rc, err);
}

/* --keep K: delete all but the K newest checkpoint_step_N files (and their
 * state), and what killed runs left (see outdir_clean_stale); best, final
 * and epoch checkpoints are never touched. */
static void prune(run_t *r) {
    if (r->o.keep <= 0 || r->rank != 0) return;
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

/* Under mpirun: the run's settings hashed and compared with rank 0's
 * (before anything is written), so that ranks started with other flags,
 * data or binaries stop at once instead of training apart. */
#define HASH(h, x) (h = dist_hash(h, &(x), sizeof(x)))
static int check_settings(run_t *r, const gpt_config_t *cfg, char *err) {
    if (r->W == 1) return 0;
    const train_opts_t *o = &r->o;
    const train_hparams_t *hp = &r->st.hp;
    dist_setting_t s[] = {
        {"binary (minigpt file)", DIST_HASH0},
        {"model shape (--preset, --layers, --heads, --dim, --context, --vocab)", DIST_HASH0},
        {"hyperparameters (--batch, --grad-accum, --lr, --seed, ...)", DIST_HASH0},
        {"schedule (--steps, --epochs, --minutes, --warmup, --save-every, "
         "--keep, --zero)",
         DIST_HASH0},
        {"checkpoint (--resume, --init-from)", DIST_HASH0},
        {"corpus (--data)", DIST_HASH0}};
    if (dist_agree(dist_binary_hash(&s[0].hash, err), err)) return -1;
    HASH(s[1].hash, cfg->vocab), HASH(s[1].hash, cfg->ctx), HASH(s[1].hash, cfg->dim);
    HASH(s[1].hash, cfg->layers), HASH(s[1].hash, cfg->heads);
    HASH(s[2].hash, hp->batch), HASH(s[2].hash, hp->grad_accum), HASH(s[2].hash, hp->lr);
    HASH(s[2].hash, hp->min_lr_ratio), HASH(s[2].hash, hp->wd), HASH(s[2].hash, hp->beta1);
    HASH(s[2].hash, hp->beta2), HASH(s[2].hash, hp->eps), HASH(s[2].hash, hp->clip);
    HASH(s[2].hash, hp->seed), HASH(s[2].hash, hp->eval_every);
    HASH(s[2].hash, hp->eval_batches), HASH(s[2].hash, hp->val_every);
    HASH(s[3].hash, o->steps), HASH(s[3].hash, o->epochs), HASH(s[3].hash, o->minutes);
    HASH(s[3].hash, o->warmup), HASH(s[3].hash, o->save_every), HASH(s[3].hash, o->keep);
    HASH(s[3].hash, o->zero);
    const char *from = o->resume ? o->resume : o->init_from ? o->init_from : "";
    s[4].hash = dist_hash(s[4].hash, from, strlen(from) + 1);
    HASH(s[5].hash, r->st.corpus.bytes), HASH(s[5].hash, r->st.corpus.hash);
    return dist_check(s, (int)(sizeof s / sizeof s[0]), err);
}
#undef HASH

/* Reads and encodes the corpus, then splits the token stream. The
 * tokenizer is trained here (on rank 0, then sent to the others) unless
 * it came with a resumed checkpoint. */
static int prepare_data(run_t *r, gpt_config_t *cfg, char *err) {
    const train_opts_t *o = &r->o;
    size_t len = 0, n = 0;
    int32_t *ids = NULL;
    int rc = 0;
    char *text = mg_read_file(o->data_path, &len, err);
    train_corpus_t seen = {0};
    if (!text)
        rc = -1;
    else if (len == 0)
        rc = mg_fail(err, "data file '%s' is empty", o->data_path);
    else
        train_corpus_fingerprint(text, len, &seen);
    /* a resumed run continues on its corpus: the data position and the
     * split are meaningless on another */
    if (!rc && o->resume && r->st.has_corpus &&
        (seen.bytes != r->st.corpus.bytes || seen.hash != r->st.corpus.hash)) {
        rc = mg_fail(
            err,
            "cannot resume: '%s' was trained on another corpus (%lld bytes, hash %016llx) than "
            "'%s' "
            "(%lld bytes, hash %016llx); to train it on new data use --init-from",
            o->resume, r->st.corpus.bytes, (unsigned long long)r->st.corpus.hash, o->data_path,
            seen.bytes, (unsigned long long)seen.hash);
    }
    int had_corpus = r->st.has_corpus;
    r->st.corpus = seen;
    r->st.has_corpus = 1;
    if (dist_agree(rc, err) || check_settings(r, cfg, err)) goto fail;
    if (o->resume && !had_corpus)
        info(r,
             "note: '%s' was saved without a corpus fingerprint (an older version): '%s' is taken "
             "to be its corpus",
             o->resume, o->data_path);
    double t0 = mg_now();
    if (!r->tok) {
        if (r->rank == 0 && !(r->tok = bpe_train(text, len, cfg->vocab, err))) rc = -1;
        if (dist_agree(rc, err) || dist_bcast_tokenizer(&r->tok, err)) goto fail;
    }
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
    /* the moments in m and v are those of the saved optimizer: a resume
     * continues with it, and refuses to switch */
    if (r->o.optimizer_set && r->o.hp.optimizer != peek.hp.optimizer) {
        mg_fail(err,
                "cannot resume: '%s' was trained with --optimizer %s and continues with it (drop "
                "--optimizer %s, or start a new run with --init-from)",
                r->o.resume, train_optimizer_name(peek.hp.optimizer),
                train_optimizer_name(r->o.hp.optimizer));
        goto done;
    }
    if (peek.hp.optimizer == TRAIN_OPT_MUON && gpt_muon_check(r->o.ops, err)) goto done;
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
    if (r->rank != 0) return 0; /* rank 0 writes the run's files */
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
    if (r->rank != 0) return 0;
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
    r->st.world_size = r->W;
    gpt_config_t cfg = r->o.cfg;
    /* every rank runs each phase; dist_agree makes a failure on one rank
     * every rank's (with its message) before the next collective step */
    int rc = 0;
    if (!r->o.resume && !r->o.init_from) {
        /* a backend without the options' kernels: refused before the tokenizer is trained */
        if (gpt_config_check(&cfg, err) != 0 || gpt_backend_check(&cfg, r->o.ops, err) != 0)
            rc = -1;
        else if (cfg.vocab < BPE_FIRST_MERGE)
            rc = mg_fail(err, "vocab %d is too small: the byte-level tokenizer needs at least %d",
                         cfg.vocab, BPE_FIRST_MERGE);
    }
    r->t_start = mg_now();
    if (!rc && r->st.hp.optimizer == TRAIN_OPT_MUON) rc = gpt_muon_check(r->o.ops, err);
    if (!rc && r->st.hp.optimizer == TRAIN_OPT_MUON && r->o.zero)
        rc = mg_fail(err, "--zero 1 shards AdamW's moments; Muon is not sharded: add --optimizer "
                          "adamw, or leave out --zero");
    if (!rc) rc = check_out(r, err);
    if (!rc && r->o.resume) rc = load_resume(r, &cfg, err);
    if (!rc && r->o.resume && r->st.world_size != r->W)
        rc = mg_fail(err,
                     "cannot resume: '%s' was trained by %d process(es) and this run has %d; "
                     "start it with mpirun -np %d (its batch and data order depend on it)",
                     r->o.resume, r->st.world_size, r->W, r->st.world_size);
    ckpt_meta_t meta = {0};
    if (!rc && r->o.init_from) rc = load_model(r, r->o.init_from, &cfg, &meta, err);
    if (dist_agree(rc, err)) return -1;
    if (r->o.init_from) {
        char val[48] = "";
        if (isfinite(meta.val_loss)) snprintf(val, sizeof val, ", val loss %.4f", meta.val_loss);
        info(r,
             "fine-tuning %s (step %ld%s): its weights and tokenizer, a new optimizer and "
             "schedule",
             r->o.init_from, meta.step, val);
    }
    if (prepare_data(r, &cfg, err) != 0) return -1;
    const train_hparams_t *hp = &r->st.hp;
    int B = hp->batch, T = cfg.ctx, K = hp->grad_accum, W = r->W;
    if (!r->model) {
        r->model = gpt_create(&cfg, r->o.ops, err);
        if (!r->model || gpt_init_weights(r->model, hp->seed, err)) rc = -1;
    }
    if (!rc && gpt_alloc_training(r->model, B, T, err)) rc = -1;
    if (!rc && hp->optimizer == TRAIN_OPT_MUON && gpt_alloc_muon(r->model, err)) rc = -1;
    /* the loader hands out a step's W x K x B windows at once, so that
     * epochs end on step boundaries and the windows are those of --batch
     * W*K*B; rank i takes the i-th K*B of them */
    if (!rc && data_loader_init(&r->loader, r->split.train, r->split.n_train, W * K * B, T,
                                hp->seed ^ 0x5eed, err))
        rc = -1;
    if (!rc) {
        r->x = mg_malloc((size_t)W * K * B * T * sizeof(int32_t));
        r->y = mg_malloc((size_t)W * K * B * T * sizeof(int32_t));
        if (!r->x || !r->y) rc = mg_fail(err, "out of memory");
    }
    if (!rc && r->o.zero) rc = dist_zero_init(r->model, err);
    if (dist_agree(rc, err)) return -1;
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
    rc = open_out(r, err);
    if (!rc && r->o.save_tokens && r->rank == 0) rc = save_tokens(r, err);
    if (dist_agree(rc, err)) return -1;
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
    const gpt_config_t *mc = &r->model->cfg;
    info(r,
         "model: %zu parameters (%d layers, %d heads, dim %d, context %d, vocab %d), %s MLP of "
         "%d, %s positions, %s%s%s%s; batch %d x %d%s; %ld steps per epoch",
         r->model->num_floats, cfg.layers, cfg.heads, cfg.dim, cfg.ctx, cfg.vocab,
         gpt_mlp_name(mc->mlp), mc->ffn, mc->pos == GPT_POS_ROPE ? "rotary" : "learned",
         mc->norm == GPT_NORM_RMS ? "RMSNorm" : "LayerNorm", mc->qk_norm ? ", qk-norm" : "",
         mc->untie_head ? ", untied head" : ", tied head", mc->zero_init ? ", zero-init" : "", B, T,
         accum, per_epoch);
    if (hp->optimizer == TRAIN_OPT_MUON)
        info(r,
             "optimizer: Muon on the hidden matrices (lr %.2e, momentum %.2f, Nesterov, "
             "Newton-Schulz 5 steps), AdamW on the rest (lr %.2e)",
             hp->muon_lr, hp->muon_momentum, hp->lr);
    else
        info(r, "optimizer: AdamW (lr %.2e, betas %.2f %.3f, weight decay %.2f)", hp->lr, hp->beta1,
             hp->beta2, hp->wd);
    if (W > 1) {
        size_t moments = 2 * r->model->num_floats * sizeof(float);
        char zero[160] = "";
        if (r->o.zero)
            snprintf(zero, sizeof zero,
                     "; --zero 1: AdamW moments sharded, %.1f MB per rank instead of %.1f MB "
                     "(%.1f MB saved per rank)",
                     dist_zero_bytes() / 1e6, moments / 1e6, (moments - dist_zero_bytes()) / 1e6);
        info(r,
             "data parallel: %d ranks x batch %d x grad-accum %d = global batch %d sequences "
             "(%lld tokens) a step; gradients summed by one MPI allreduce after backward%s",
             W, B, K, W * K * B, (long long)W * K * B * T, zero);
    }
    /* K micro-batches on each of W ranks, each adding 1/(K W) of its mean
     * loss's gradient, summed over ranks: one step of W*K*B sequences */
    r->model->grad_scale = 1.0f / ((float)K * W);
    r->t_loop = mg_now();
    r->first = r->st.step;
    return 0;
}

enum { STEP_NEXT, STEP_END, STEP_STOPPED };

/* under mpirun: the gradient communication's share of the steps */
static void comm_report(const run_t *r) {
    if (r->W > 1 && r->step_s > 0)
        info(r, "data parallel: gradient communication %.2f s of %.2f s of steps (%.1f%%)",
             r->comm_s, r->step_s, 100.0 * r->comm_s / r->step_s);
}

/* After a step: the time budget, events, evaluation (and best model), the
 * log, and checkpoints. STEP_NEXT, STEP_END (the schedule or the time is
 * done), STEP_STOPPED (a stop was asked: saved), or -1. */
static int after_step(run_t *r, int wrapped, float loss, float lr, float norm, double ts,
                      char *err) {
    const train_hparams_t *hp = &r->st.hp;
    long long step_tokens = (long long)r->W * hp->grad_accum * hp->batch * r->model->T;
    /* what decides the schedule and stops is rank 0's clock and any
     * rank's signal, so that every rank takes the same decisions */
    double now = mg_now(), clock[2] = {now - r->t_start, now - r->t_loop};
    int stopping = r->o.stop && *r->o.stop;
    if (dist_step_sync(&stopping, clock, 2, err)) return -1;
    double since_start = clock[0], elapsed = clock[1];
    r->step_s = elapsed;
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
        double left = r->budget - since_start;
        r->st.total_steps = MG_MAX(step + 2, step + 1 + (long)(left / per_step));
        r->st.warmup = train_warmup(r->o.warmup, r->st.total_steps);
        if (done_here == 5)
            info(r, "time budget %.1f min: %.3f s/step -> about %ld steps (warmup %ld)",
                 r->o.minutes, per_step, r->st.total_steps, r->st.warmup);
    }
    int last = r->st.step == r->st.total_steps || (isfinite(r->budget) && since_start > r->budget);
    long total = r->st.total_steps == LONG_MAX ? 0 : r->st.total_steps;
    emit(r, (train_event_t){.kind = TE_STEP,
                            .step = r->st.step,
                            .total_steps = total,
                            .epoch = r->loader.epoch,
                            .loss = loss,
                            .lr = lr,
                            .grad_norm = norm,
                            .tok_per_s = (double)step_tokens / (now - ts),
                            .elapsed_s = since_start,
                            .eta_s = total ? elapsed / done_here * (total - r->st.step) : 0});
    if (!isfinite(loss))
        return mg_fail(err, "loss became %f at step %ld (try a lower --lr)", loss, r->st.step);
    int do_eval = wrapped || last || (hp->eval_every > 0 && r->st.step % hp->eval_every == 0);
    if (do_eval) {
        float val;
        if (evaluate(r, &val, &r->val_bpb, err)) return -1;
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
            comm_report(r);
            info(r, "stopped at step %ld; continue with: %sminigpt train --resume %s/%s",
                 r->st.step, r->W > 1 ? "mpirun -np N " : "", r->o.out_dir, name);
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
    /* this rank's share of the step's windows */
    const int32_t *x = r->x + (size_t)r->rank * K * B * T, *y = r->y + (size_t)r->rank * K * B * T;
    float loss = 0.0f, norm;
    gpt_zero_grad(r->model);
    for (int k = 0; k < K; k++) {
        loss += gpt_forward(r->model, x + (size_t)k * B * T, y + (size_t)k * B * T, B, T) / K;
        gpt_backward(r->model);
    }
    if (r->W > 1) { /* the mean loss over ranks; the gradient's sum (each is 1/W of a mean) */
        loss /= r->W;
        if (dist_sum_floats(&loss, 1, err)) return -1;
    }
    if (r->o.zero) { /* AdamW only: run_setup refuses Muon with --zero */
        norm = dist_zero_step(r->model, lr, hp->beta1, hp->beta2, hp->eps, hp->wd, hp->clip,
                              &r->comm_s, err);
        if (isnan(norm)) return -1;
    } else if (dist_allreduce_grads(r->model, &r->comm_s, err)) {
        return -1;
    } else if (hp->optimizer == TRAIN_OPT_MUON) {
        /* Muon's lr follows the same schedule: its peak in place of lr's */
        train_hparams_t muon = *hp;
        muon.lr = hp->muon_lr;
        float muon_lr = train_lr(&muon, r->st.step, r->st.warmup, r->st.total_steps);
        norm = gpt_muon_step(r->model, lr, hp->beta1, hp->beta2, hp->eps, hp->wd, hp->clip, muon_lr,
                             hp->muon_momentum);
    } else {
        norm = gpt_adamw_step(r->model, lr, hp->beta1, hp->beta2, hp->eps, hp->wd, hp->clip);
    }
    return after_step(r, wrapped, loss, lr, norm, ts, err);
}

/* Finish: the final model, the tokenizer beside it, and the log checked. */
static int run_finish(run_t *r, char *err) {
    if (save(r, "mini_gpt.safetensors", err)) return -1;
    comm_report(r);
    if (r->rank != 0) return 0;
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
    run_t r = {.o = *opts, .lock = -1, .rank = dist_rank(), .W = dist_world()};
    int rc = run_setup(&r, err);
    while (rc == STEP_NEXT)
        rc = run_step(&r, err);
    if (rc == STEP_END) rc = dist_agree(run_finish(&r, err), err);
    if (rc == STEP_STOPPED) rc = 0;
    if (r.log) fclose(r.log);
    outdir_unlock(r.lock);
    mg_free(r.x);
    mg_free(r.y);
    data_loader_free(&r.loader);
    data_split_free(&r.split);
    gpt_free(r.model);
    bpe_free(r.tok);
    dist_zero_free();
    return rc;
}
