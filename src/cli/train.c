/* train.c - `minigpt train`: flags to train_opts_t, and progress display
 * (a progress bar on a terminal, plain log lines otherwise). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
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
#include "web/dashboard.h"

static const char usage[] =
    "usage: minigpt train [options]\n"
    "  --data FILE        training text (default data/corpus_pt_br.txt)\n"
    "  --out DIR          where checkpoints go (default models/)\n"
    "  --steps N | --epochs N | --minutes M\n"
    "                     training budget (default --minutes 5)\n"
    "  --preset NAME      micro, tiny (default), mini, small, gpt2\n"
    "  --layers N --heads N --dim N --ctx N --vocab N\n"
    "                     override the preset's shape (vocab: tokenizer size)\n"
    "  --batch B          sequences per micro-batch (default 8, or what fits memory)\n"
    "  --grad-accum K     micro-batches per optimizer step: a step of K x B\n"
    "                     sequences in the memory of B (default 1)\n"
    "  --lr LR            peak learning rate (default 2e-3 x 256/dim, at most 3e-3;\n"
    "                     on a GPU also times sqrt(batch/8), at most 4e-3)\n"
    "  --warmup N         warm-up steps (default 100, at most a tenth of the run)\n"
    "  --weight-decay W   AdamW decay on matrices (default 0.1)\n"
    "  --eval-every N     validation every N steps (default 100; 0: epochs only)\n"
    "  --eval-batches N   steps' worth of sequences per validation (default 10)\n"
    "  --seed S           seed for weights and data order (default 1337)\n"
    "  --threads N        CPU threads (default: all cores)\n"
    CLI_DEVICE_HELP
    "  --save-every N     also save checkpoint_step_N every N steps\n"
    "  --keep K           keep only the K newest step checkpoints\n"
    "  --resume FILE      continue a run from a checkpoint (and its .optim file);\n"
    "                     shape and hyperparameters come from the checkpoint\n"
    "  --init-from FILE   fine-tune: start from a checkpoint's weights and tokenizer\n"
    "                     on --data, with a new optimizer and schedule\n"
    "  --log-every N      a log line every N steps when not on a terminal (10)\n"
    "  --save-tokens FILE write the train/validation token streams (safetensors),\n"
    "                     for reference trainers (bench/bench_recipe.sh)\n"
    "  --dashboard [PORT] a live page of the run on http://127.0.0.1:PORT/ (default\n"
    "                     8090; 0: any free port, printed): losses, learning rate,\n"
    "                     speed, ETA and a sample at each evaluation\n"
    "Ctrl-C (SIGINT) or SIGTERM: finish the step, save a checkpoint, exit 0.\n";

/* set by SIGINT/SIGTERM; the trainer checks it after each step */
static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
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

int cli_train(int argc, char **argv, char *err) {
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},   {"out", required_argument, 0, 'o'},
        {"steps", required_argument, 0, 's'},  {"epochs", required_argument, 0, 'e'},
        {"minutes", required_argument, 0, 'm'}, {"preset", required_argument, 0, 'p'},
        {"layers", required_argument, 0, 'L'}, {"heads", required_argument, 0, 'H'},
        {"dim", required_argument, 0, 'D'},    {"ctx", required_argument, 0, 'T'},
        {"vocab", required_argument, 0, 'V'},  {"batch", required_argument, 0, 'b'},
        {"lr", required_argument, 0, 'l'},     {"warmup", required_argument, 0, 'w'},
        {"weight-decay", required_argument, 0, 'W'}, {"eval-every", required_argument, 0, 'E'},
        {"eval-batches", required_argument, 0, 'B'}, {"seed", required_argument, 0, 'S'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {"save-every", required_argument, 0, 'Y'}, {"keep", required_argument, 0, 'K'},
        {"resume", required_argument, 0, 'R'}, {"log-every", required_argument, 0, 'G'},
        {"save-tokens", required_argument, 0, 'X'}, {"grad-accum", required_argument, 0, 'A'},
        {"init-from", required_argument, 0, 'I'}, {"dashboard", optional_argument, 0, 'Z'},
        CLI_DEVICE_OPTIONS,
        {0, 0, 0, 0},
    };
    train_opts_t o;
    train_defaults(&o);
    o.data_path = "data/corpus_pt_br.txt";
    cli_shape_t shape = {0};
    long n, threads = 0, log_every = 10, dashboard_port = -1;
    int batch_set = 0, lr_set = 0, accum_set = 0;
    const char *device = NULL, *precision = NULL;
    double f;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd': o.data_path = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 's': bad = cli_int("steps", optarg, 1, 1L << 40, &o.steps, err); break;
        case 'e': bad = cli_int("epochs", optarg, 1, 1 << 20, &n, err); o.epochs = (int)n; break;
        case 'm': bad = cli_float("minutes", optarg, 0.01, 1e6, &o.minutes, err); break;
        case 'p': shape.preset = optarg; break;
        case 'L': bad = cli_int("layers", optarg, 1, 256, &shape.layers, err); break;
        case 'H': bad = cli_int("heads", optarg, 1, 1 << 14, &shape.heads, err); break;
        case 'D': bad = cli_int("dim", optarg, 1, 1 << 14, &shape.dim, err); break;
        case 'T': bad = cli_int("ctx", optarg, 1, 1 << 16, &shape.ctx, err); break;
        case 'V': bad = cli_int("vocab", optarg, 260, 1 << 20, &shape.vocab, err); break;
        case 'b': bad = cli_int("batch", optarg, 1, 1 << 16, &n, err); o.batch = (int)n; batch_set = 1; break;
        case 'A': bad = cli_int("grad-accum", optarg, 1, 1 << 16, &n, err); o.grad_accum = (int)n; accum_set = 1; break;
        case 'l': bad = cli_float("lr", optarg, 1e-9, 10, &f, err); o.lr = (float)f; lr_set = 1; break;
        case 'w': bad = cli_int("warmup", optarg, 1, INT_MAX, &n, err); o.warmup = (int)n; break;
        case 'W': bad = cli_float("weight-decay", optarg, 0, 10, &f, err); o.wd = (float)f; break;
        case 'E': bad = cli_int("eval-every", optarg, 0, INT_MAX, &n, err); o.eval_every = (int)n; break;
        case 'B': bad = cli_int("eval-batches", optarg, 1, 1 << 20, &n, err); o.eval_batches = (int)n; break;
        case 'S': bad = cli_int("seed", optarg, 0, 1L << 62, &n, err); o.seed = (uint64_t)n; break;
        case 't': bad = cli_int("threads", optarg, 1, 1024, &threads, err); break;
        case 'Y': bad = cli_int("save-every", optarg, 1, 1L << 40, &o.save_every, err); break;
        case 'K': bad = cli_int("keep", optarg, 1, 1 << 20, &n, err); o.keep = (int)n; break;
        case 'R': o.resume = optarg; break;
        case 'I': o.init_from = optarg; break;
        case 'X': o.save_tokens = optarg; break;
        case 'Z': /* --dashboard, --dashboard=PORT or --dashboard PORT */
            if (!optarg && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9') optarg = argv[optind++];
            dashboard_port = 8090;
            if (optarg) bad = cli_int("dashboard", optarg, 0, 65535, &dashboard_port, err);
            break;
        case 'G': bad = cli_int("log-every", optarg, 1, 1L << 40, &log_every, err); break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default:
            if ((bad = cli_device_flag(c, optarg, &device, &precision, err)) > 0) continue;
            if (bad == 0) return cli_bad_option("train", c, argv, err);
        }
        if (bad) return CLI_USAGE;
    }
    if (optind < argc) {
        mg_fail(err, "train: unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
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
    if (dashboard_port >= 0) {
        if (!(view.dash = dash_start("127.0.0.1", (int)dashboard_port, err))) return CLI_ERR;
        printf("dashboard: http://127.0.0.1:%d/\n", dash_port(view.dash));
        fflush(stdout);
    }
    int trained = train_run(&o, err);
    dash_stop(view.dash);
    if (trained != 0) return CLI_ERR;
    char log[4096];
    snprintf(log, sizeof log, "%s/train_log.jsonl", o.out_dir);
    return cli_plot_log(log, NULL, err) ? CLI_ERR : CLI_OK;
}
