/* train.c - `minigpt train`: options to train_opts_t, and progress display
 * (a progress bar on a terminal, plain log lines otherwise). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/catalog.h"
#include "ops/ops.h"
#include "train/trainer.h"
#include "util/common.h"
#include "util/sysinfo.h"

/* set by SIGINT/SIGTERM; the trainer checks it after each step */
static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

typedef struct {
    int tty;
    long log_every;
} view_t;

static void fmt_time(double s, char *buf, size_t n) {
    if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static void on_event(void *ctx, const train_event_t *e) {
    view_t *v = ctx;
    char eta[32], el[32];
    switch (e->kind) {
    case TE_INFO:
        printf("%s\n", e->msg);
        break;
    case TE_STEP:
        fmt_time(e->eta_s, eta, sizeof eta);
        fmt_time(e->elapsed_s, el, sizeof el);
        char pos[48]; /* the total is unknown until a time budget is sized */
        if (e->total_steps)
            snprintf(pos, sizeof pos, "%ld/%ld", e->step, e->total_steps);
        else
            snprintf(pos, sizeof pos, "%ld/?", e->step);
        if (v->tty) {
            char bar[21] = "....................";
            int fill = e->total_steps ? (int)(20.0 * e->step / e->total_steps) : 0;
            for (int i = 0; i < fill && i < 20; i++) bar[i] = '#';
            fprintf(stderr, "\r\033[Kstep %s [%s] loss %.4f lr %.2e %.0f tok/s  %s elapsed, ETA %s", pos,
                    bar, e->loss, e->lr, e->tok_per_s, el, e->total_steps ? eta : "?");
            fflush(stderr);
        } else if (e->step == 1 || e->step % v->log_every == 0 || e->step == e->total_steps) {
            printf("step %s loss %.4f lr %.2e grad-norm %.3f %.0f tok/s elapsed %s ETA %s\n", pos,
                   e->loss, e->lr, e->grad_norm, e->tok_per_s, el, e->total_steps ? eta : "?");
        }
        break;
    case TE_EVAL:
        if (v->tty) fprintf(stderr, "\r\033[K");
        printf("step %ld: val loss %.4f, val bpb %.4f\n", e->step, e->val_loss, e->val_bpb);
        break;
    case TE_EPOCH:
        if (v->tty) fprintf(stderr, "\r\033[K");
        printf("epoch %d: train loss %.4f, val loss %.4f, val bpb %.4f, %.0f tok/s\n", e->epoch,
               e->loss, e->val_loss, e->val_bpb, e->tok_per_s);
        break;
    case TE_SAVE:
        if (v->tty) fprintf(stderr, "\r\033[K");
        printf("saved %s (step %ld)\n", e->msg, e->step);
        break;
    }
    fflush(stdout);
}

/* --init-from, --resume: the checkpoint's shape, read from its header (the
 * weights are loaded by the trainer), so that the batch is sized for it. */
static int init_config(const char *path, gpt_config_t *cfg, char *err) {
    catalog_t *c = catalog_file(path, err);
    if (!c) return -1;
    int rc = 0;
    if (c->e[0].ok)
        *cfg = c->e[0].cfg;
    else
        rc = mg_fail(err, "train: cannot use the checkpoint '%s': %s", path, c->e[0].why);
    catalog_free(c);
    return rc;
}

/* Whether the shape flags ask for another shape than the checkpoint's. A
 * preset's vocabulary is a target that a small corpus may not reach, so
 * only an explicit --vocab is compared with the tokenizer's size. */
static int shape_conflict(const cli_shape_t *s, const gpt_config_t *ck, const char *path, char *err) {
    gpt_config_t want = *ck;
    if (s->preset && gpt_preset(s->preset, &want, err) != 0) return -1;
    if (s->layers) want.layers = (int)s->layers;
    if (s->heads) want.heads = (int)s->heads;
    if (s->dim) want.dim = (int)s->dim;
    if (s->ctx) want.ctx = (int)s->ctx;
    want.vocab = s->vocab ? (int)s->vocab : ck->vocab;
    if (want.layers == ck->layers && want.heads == ck->heads && want.dim == ck->dim &&
        want.ctx == ck->ctx && want.vocab == ck->vocab)
        return 0;
    char have[64], asked[64];
    catalog_shape(ck, have, sizeof have);
    catalog_shape(&want, asked, sizeof asked);
    return mg_fail(err, "train: '%s' is %s, the shape flags ask for %s; a checkpoint keeps its shape",
                   path, have, asked);
}

int cli_train(const cli_args_t *a, char *err) {
    train_opts_t o;
    train_defaults(&o);
    /* the trainer's defaults stay where they are not given */
    o.data_path = a->data;
    if (a->out) o.out_dir = a->out;
    o.steps = a->steps;
    o.epochs = (int)a->epochs;
    o.minutes = a->minutes;
    cli_shape_t shape = {a->preset, a->layers, a->heads, a->dim, a->ctx, a->vocab};
    int batch_set = cli_args_given(a, &a->batch), lr_set = cli_args_given(a, &a->lr);
    int accum_set = cli_args_given(a, &a->grad_accum);
    if (batch_set) o.batch = (int)a->batch;
    if (accum_set) o.grad_accum = (int)a->grad_accum;
    if (lr_set) o.lr = (float)a->lr;
    if (cli_args_given(a, &a->warmup)) o.warmup = (int)a->warmup;
    if (cli_args_given(a, &a->weight_decay)) o.wd = (float)a->weight_decay;
    if (cli_args_given(a, &a->eval_every)) o.eval_every = (int)a->eval_every;
    if (cli_args_given(a, &a->eval_batches)) o.eval_batches = (int)a->eval_batches;
    if (cli_args_given(a, &a->seed)) o.seed = (uint64_t)a->seed;
    if (a->save_every) o.save_every = a->save_every;
    if (a->keep) o.keep = (int)a->keep;
    o.resume = a->resume;
    o.init_from = a->init_from;
    o.save_tokens = a->save_tokens;
    long threads = a->threads, log_every = a->log_every;
    const char *device = a->device, *precision = a->precision;
    if ((o.steps > 0) + (o.epochs > 0) + (o.minutes > 0) > 1) {
        mg_fail(err, "train: give only one of --steps, --epochs, --minutes");
        return CLI_USAGE;
    }
    if (o.resume && accum_set) {
        mg_fail(err, "train: --resume keeps the saved run's --grad-accum");
        return CLI_USAGE;
    }
    if (o.resume && (o.epochs || o.minutes)) {
        mg_fail(err, "train: --resume continues the saved schedule; only --steps may change it");
        return CLI_USAGE;
    }
    if (!o.steps && !o.epochs && !o.minutes) o.minutes = 5;
    if (o.init_from && o.resume) {
        mg_fail(err, "train: give only one of --resume, --init-from");
        return CLI_USAGE;
    }
    if (o.init_from || o.resume) {
        /* the checkpoint's shape; shape flags may repeat it (the command
         * that started the run, with --resume added), not change it */
        const char *from = o.init_from ? o.init_from : o.resume;
        if (init_config(from, &o.cfg, err) != 0) return CLI_ERR;
        if (shape_conflict(&shape, &o.cfg, from, err)) return CLI_USAGE;
    } else {
        if (!shape.preset) shape.preset = "tiny";
        if (cli_shape(&shape, &o.cfg, err) != 0) return CLI_USAGE;
    }
    if (access(o.data_path, R_OK) != 0) {
        mg_fail(err, "train: cannot read data file '%s'", o.data_path);
        return CLI_ERR;
    }
    /* hardware-adaptive defaults. CPU: every core, and the largest batch
     * up to the default whose training memory fits in half the available
     * RAM. GPU: the largest batch up to 8x the default that fits in 80% of
     * its memory (a GPU needs many rows to be busy), with the learning rate
     * scaled by the square root of the batch ratio (as for Adam), capped. */
    mg_sysinfo_t sys;
    mg_sysinfo(&sys);
    if (!threads) threads = sys.cores;
    if (!(o.ops = cli_backend(device, precision, threads, err))) return CLI_ERR;
    size_t used, peak, capacity;
    o.ops->memory(&used, &peak, &capacity);
    int gpu = capacity > 0;
    size_t budget = gpu ? capacity / 10 * 8 : sys.mem_available / 2;
    const char *why = "", *lr_why = "";
    /* the default learning rate scales as 1/width (Adam's updates per
     * weight grow with it): 2e-3 was best at dim 256, 3e-3 at 128 to 192
     * (docs/training-recipe.md), and GPT-2 124M gets 6.7e-4, near its
     * published 6e-4 */
    if (!lr_set && !o.resume && o.cfg.dim != 256) {
        o.lr = fminf(3e-3f, o.lr * 256.0f / o.cfg.dim);
        lr_why = " scaled to the width";
    }
    if (!batch_set && !o.resume && budget) {
        int base = o.batch;
        if (gpu)
            while (o.batch < 8 * base && gpt_training_bytes(&o.cfg, o.ops, 2 * o.batch, o.cfg.ctx) <= budget)
                o.batch *= 2;
        while (o.batch > 1 && gpt_training_bytes(&o.cfg, o.ops, o.batch, o.cfg.ctx) > budget) o.batch /= 2;
        why = gpu ? " chosen for the GPU's memory" : " chosen to fit memory";
        if (gpu && !lr_set && o.batch > base) {
            o.lr = fminf(o.lr * sqrtf((float)o.batch / base), 4e-3f);
            lr_why = *lr_why ? " scaled to the width and the batch" : " scaled to the batch";
        }
    }
    view_t view = {.tty = isatty(STDERR_FILENO), .log_every = log_every};
    o.on_event = on_event;
    o.ctx = &view;
    o.stop = &stop_requested;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("minigpt train: %s on %s, backend %s: %s\n",
           o.resume ? o.resume : o.init_from ? o.init_from : shape.preset, o.data_path, o.ops->name,
           o.ops->describe());
    printf("settings: %ld threads of %d cores (--threads), batch %d (--batch)%s, lr %.2e (--lr)%s, "
           "warmup %d (--warmup), %.0f MB for training of %.0f MB available%s\n",
           threads, sys.cores, o.batch, why, o.lr, lr_why, o.warmup,
           gpt_training_bytes(&o.cfg, o.ops, o.batch, o.cfg.ctx) / 1e6,
           (gpu ? capacity : sys.mem_available) / 1e6, gpu ? " on the GPU" : "");
    if (train_run(&o, err) != 0) return CLI_ERR;
    char log[4096];
    snprintf(log, sizeof log, "%s/train_log.jsonl", o.out_dir);
    return cli_plot_log(log, NULL, err) ? CLI_ERR : CLI_OK;
}
