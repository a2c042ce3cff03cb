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
#include "train/dist.h"
#include "train/trainer.h"
#include "util/common.h"
#include "util/sysinfo.h"
#include "web/dashboard.h"

/* set by SIGINT/SIGTERM; the trainer checks it after each step. A second
 * signal cannot wait for a step that may take minutes: it ends the process
 * here (the one exit outside main.c), which leaves every checkpoint intact
 * (they are written atomically) and, at worst, a temp file that the next
 * run in the folder removes. Only async-signal-safe calls. */
static volatile sig_atomic_t stop_requested;
static int signal_quiet; /* under mpirun, ranks other than 0 say nothing */
static void say(const char *msg, size_t n) {
    ssize_t w = write(STDERR_FILENO, msg, n);
    (void)w;
}
static void on_signal(int sig) {
    static const char first[] =
        "\nminigpt train: stopping after this step (a checkpoint is saved); "
        "signal again to stop at once\n";
    static const char second[] =
        "\nminigpt train: stopped at once, without saving this step; the last "
        "checkpoint is intact\n";
    if (stop_requested) {
        if (!signal_quiet) say(second, sizeof second - 1);
        _exit(128 + sig);
    }
    stop_requested = 1;
    if (!signal_quiet) say(first, sizeof first - 1);
}

typedef struct {
    int tty;
    long log_every;
    dash_t *dash; /* --dashboard, else NULL */
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
    dash_event(v->dash, e);
    switch (e->kind) {
    case TE_INFO: printf("%s\n", e->msg); break;
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
            for (int i = 0; i < fill && i < 20; i++)
                bar[i] = '#';
            fprintf(stderr, "\r\033[Kstep %s [%s] loss %.4f lr %.2e %.0f tok/s  %s elapsed, ETA %s",
                    pos, bar, e->loss, e->lr, e->tok_per_s, el, e->total_steps ? eta : "?");
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
    catalog_t *c = catalog_file(path, NULL, err);
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
static int shape_conflict(const cli_shape_t *s, const gpt_config_t *ck, const char *path,
                          char *err) {
    gpt_config_t want = *ck;
    if (s->preset && gpt_preset(s->preset, &want, err) != 0) return -1;
    if (s->layers) want.layers = (int)s->layers;
    if (s->heads) want.heads = (int)s->heads;
    if (s->dim) want.dim = (int)s->dim;
    if (s->ctx) want.ctx = (int)s->ctx;
    want.vocab = s->vocab ? (int)s->vocab : ck->vocab;
    /* the architecture options likewise: only those given are compared */
    gpt_config_t arch = *ck;
    cli_shape_arch(s, &arch);
    const char *option = NULL;
    if (arch.pos != ck->pos) option = "--pos";
    if (arch.norm != ck->norm) option = "--norm";
    if (arch.qk_norm != ck->qk_norm) option = "--qk-norm";
    if (arch.untie_head != ck->untie_head) option = "--untie-head";
    if (arch.zero_init != ck->zero_init) option = "--zero-init";
    if (arch.mlp != ck->mlp) option = "--mlp";
    if (option)
        return mg_fail(err,
                       "train: '%s' was not trained with the %s given; a checkpoint keeps "
                       "its architecture",
                       path, option);
    if (want.layers == ck->layers && want.heads == ck->heads && want.dim == ck->dim &&
        want.ctx == ck->ctx && want.vocab == ck->vocab && want.mlp == ck->mlp)
        return 0;
    char have[64], asked[64];
    catalog_shape(ck, have, sizeof have);
    catalog_shape(&want, asked, sizeof asked);
    return mg_fail(err,
                   "train: '%s' is %s, the shape flags ask for %s; a checkpoint keeps its shape",
                   path, have, asked);
}

/* loss_curve.svg beside the log (minigpt plot's drawing, atomic). A
 * picture that cannot be drawn (a full disk, say) is a warning: the run and
 * its checkpoints are done. */
static void plot(const char *out_dir) {
    char log[4096], why[MG_ERR_LEN];
    snprintf(log, sizeof log, "%s/train_log.jsonl", out_dir);
    if (cli_plot_log(log, NULL, why))
        fprintf(stderr, "minigpt train: warning: no loss curve: %s\n", why);
}

static int train(const cli_args_t *a, char *err);

/* Under mpirun (train/dist.h) every rank runs this; rank 0 alone prints
 * and writes. MPI is finalised after a run that ended well everywhere; a
 * rank that fails exits without it, and Open MPI ends the others. */
int cli_train(const cli_args_t *a, char *err) {
    if (dist_init(err)) return CLI_ERR;
    int rc = train(a, err);
    if (rc == CLI_OK) dist_finalize();
    return rc;
}

static int train(const cli_args_t *a, char *err) {
    train_opts_t o;
    train_defaults(&o);
    /* the trainer's defaults stay where they are not given */
    o.data_path = a->data;
    if (a->out) o.out_dir = a->out;
    o.steps = a->steps;
    o.epochs = (int)a->epochs;
    o.minutes = a->minutes;
    cli_shape_t shape = cli_shape_of(a);
    int batch_set = cli_args_given(a, &a->batch), lr_set = cli_args_given(a, &a->lr);
    int accum_set = cli_args_given(a, &a->grad_accum);
    if (batch_set) o.hp.batch = (int)a->batch;
    if (accum_set) o.hp.grad_accum = (int)a->grad_accum;
    if (lr_set) o.hp.lr = (float)a->lr;
    if (cli_args_given(a, &a->warmup)) o.warmup = (int)a->warmup;
    if (cli_args_given(a, &a->weight_decay)) o.hp.wd = (float)a->weight_decay;
    o.optimizer_set = a->optimizer != NULL; /* else chosen once the backend is known */
    if (a->optimizer)
        o.hp.optimizer = strcmp(a->optimizer, "muon") == 0 ? TRAIN_OPT_MUON : TRAIN_OPT_ADAMW;
    o.hp.muon_lr = (float)a->muon_lr;
    o.hp.muon_momentum = (float)a->muon_momentum;
    if (cli_args_given(a, &a->eval_every)) o.hp.eval_every = (int)a->eval_every;
    if (cli_args_given(a, &a->eval_batches)) o.hp.eval_batches = (int)a->eval_batches;
    if (cli_args_given(a, &a->seed)) o.hp.seed = (uint64_t)a->seed;
    if (a->save_every) o.save_every = a->save_every;
    if (a->keep) o.keep = (int)a->keep;
    o.zero = (int)a->zero;
    if (o.zero && dist_world() < 2) {
        mg_fail(err, "train: --zero 1 shards the optimizer across processes: run it under "
                     "mpirun -np N with N >= 2");
        return CLI_USAGE;
    }
    o.resume = a->resume;
    o.overwrite = a->overwrite;
    o.init_from = a->init_from;
    o.save_tokens = a->save_tokens;
    long threads = a->threads, log_every = a->log_every, dashboard_port = a->dashboard;
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
    mg_sysinfo_t sys;
    mg_sysinfo(&sys);
    /* under mpirun the ranks of a machine share its memory (the batch is
     * fitted to a share) */
    sys.mem_available /= (size_t)dist_local_world();
    /* under mpirun the ranks of a machine share its cores */
    if (!threads && dist_local_world() > 1) threads = MG_MAX(1, sys.cores / dist_local_world());
    threads = train_threads(threads, &sys);
    if (!(o.ops = cli_backend(device, precision, threads, err))) return CLI_ERR;
    /* the defaults are the preset's recipe where the backend can run it:
     * left to the preset, the architecture falls back to GPT-2's block and
     * the optimizer to AdamW on a backend without their kernels (asked
     * for, they are refused in one line by gpt_create and the trainer) */
    char note[MG_ERR_LEN];
    if (!o.resume && !o.init_from && cli_recipe_fit(&shape, &o.cfg, o.ops, note))
        printf("note: %s\n", note);
    if (!o.optimizer_set)
        o.hp.optimizer = o.ops->muon_update && !a->zero ? TRAIN_OPT_MUON : TRAIN_OPT_ADAMW;
    train_fit_t fit;
    train_fit(&o, &sys, batch_set, lr_set, &fit);
    if (fit.gpu && dist_world() > 1) {
        mg_fail(err, "train: under mpirun only the CPU backend is shared (the GPU path, NCCL, is "
                     "future work): add --device cpu");
        return CLI_USAGE;
    }
    o.stop = &stop_requested;
    signal_quiet = dist_rank() != 0;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* mpirun forwards SIGUSR1 to every rank and lets the job end on its
     * own, where its SIGINT/SIGTERM are followed by SIGKILL after
     * odls_base_sigkill_timeout (1 s): the graceful stop of a distributed
     * run (docs/distributed.md) */
    sigaction(SIGUSR1, &sa, NULL);
    view_t view = {.tty = isatty(STDERR_FILENO), .log_every = log_every};
    if (dist_rank() != 0) /* rank 0 reports; the others train silently */
        return train_run(&o, err) ? CLI_ERR : CLI_OK;
    o.on_event = on_event;
    o.ctx = &view;
    printf("minigpt train: %s on %s, backend %s: %s\n",
           o.resume      ? o.resume
           : o.init_from ? o.init_from
                         : shape.preset,
           o.data_path, o.ops->name, o.ops->describe());
    if (o.resume) /* the saved run's batch and hyperparameters, printed by the trainer */
        printf("settings: %ld threads of %d cores (--threads); batch, lr and schedule from the "
               "checkpoint\n",
               threads, sys.cores);
    else
        printf("settings: %ld threads of %d cores (--threads), batch %d (--batch)%s, lr %.2e "
               "(--lr)%s, "
               "%.0f MB for training of %.0f MB available%s\n",
               threads, sys.cores, o.hp.batch, fit.batch_why, o.hp.lr, fit.lr_why,
               gpt_training_bytes(&o.cfg, o.ops, o.hp.batch, o.cfg.ctx) / 1e6, fit.capacity / 1e6,
               fit.gpu ? " on the GPU" : "");
    if (dashboard_port >= 0) {
        if (!(view.dash = dash_start("127.0.0.1", (int)dashboard_port, err))) return CLI_ERR;
        printf("dashboard: http://127.0.0.1:%d/\n", dash_port(view.dash));
        fflush(stdout);
    }
    int trained = train_run(&o, err);
    dash_stop(view.dash);
    if (trained != 0) return CLI_ERR;
    plot(o.out_dir);
    return CLI_OK;
}
