/* load.c - `minigpt load`: choose a checkpoint (given, the best or latest
 * of a directory after filters, or from a menu), load it fully (every
 * tensor validated), then show it or generate from it like `generate`. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/catalog.h"
#include "io/checkpoint.h"
#include "util/common.h"

enum { MODE_AUTO, MODE_INTERACTIVE };

typedef struct {
    const char *checkpoint, *dir, *prompt;
    int mode, filter_given, show_meta, gen_flags;
    catalog_pick_t pick;
    catalog_filter_t f;
    const char *max_loss_arg, *min_step_arg; /* as typed, for messages */
    cli_gen_opts_t gen;
} load_args_t;

/* "--search X --filter-min-step N" for the filters that are on; with
 * only_dead, just those that on their own match no candidate. */
static void describe_filters(const catalog_t *c, const load_args_t *a, int need_ok, int only_dead,
                             char *buf, size_t n) {
    catalog_filter_t one[3] = {CATALOG_NO_FILTER, CATALOG_NO_FILTER, CATALOG_NO_FILTER};
    one[0].search = a->f.search;
    one[1].max_loss = a->f.max_loss;
    one[2].min_step = a->f.min_step;
    const int on[3] = {a->f.search != NULL, !isnan(a->f.max_loss), a->f.min_step >= 0};
    const char *flag[3] = {"--search", "--filter-max-loss", "--filter-min-step"};
    const char *val[3] = {a->f.search, a->max_loss_arg, a->min_step_arg};
    size_t len = 0;
    buf[0] = 0;
    for (int k = 0; k < 3; k++) {
        if (!on[k]) continue;
        int hits = 0;
        for (int i = 0; i < c->n; i++)
            hits += (!need_ok || c->e[i].ok) && catalog_match(&c->e[i], &one[k]);
        if (only_dead && hits) continue;
        int w = snprintf(buf + len, n - len, "%s%s '%s'", len ? " " : "", flag[k], val[k]);
        if (w < 0 || (size_t)w >= n - len) break;
        len += (size_t)w;
    }
}

/* The one-line reason when nothing can be chosen. */
static void no_match(const catalog_t *c, const load_args_t *a, int need_ok, char *err) {
    char which[MG_ERR_LEN];
    describe_filters(c, a, need_ok, 1, which, sizeof which);
    if (!which[0]) describe_filters(c, a, need_ok, 0, which, sizeof which);
    if (a->checkpoint)
        mg_fail(err, "load: checkpoint '%s' does not match %s", a->checkpoint, which);
    else if (c->n == 0)
        mg_fail(err, "load: no checkpoints in %s", c->dir);
    else if (which[0])
        mg_fail(err, "load: no checkpoint in %s matches %s", c->dir, which);
    else
        mg_fail(err, "load: no readable checkpoint in %s (see 'minigpt list --dir %s')", c->dir,
                c->dir);
}

/* Reads a choice from the terminal: the row index, -1 to quit (q or end of
 * input). Bad answers ask again. */
static int ask(int n) {
    char line[64];
    for (;;) {
        printf("load which checkpoint? [1-%d, q to quit]: ", n);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) {
            printf("\n");
            return -1;
        }
        char *s = line, *end;
        while (isspace((unsigned char)*s))
            s++;
        for (end = s + strlen(s); end > s && isspace((unsigned char)end[-1]);)
            *--end = 0;
        if (strcmp(s, "q") == 0 || strcmp(s, "quit") == 0) return -1;
        long v;
        if (*s && cli_int("choice", s, 1, n, &v, NULL) == 0) return (int)v - 1;
        printf("'%s' is not a number from 1 to %d\n", s, n);
    }
}

/* Chooses an entry of c: its index, -1 with err set, or -2 to quit. */
static int choose(const catalog_t *c, const load_args_t *a, char *err) {
    if (a->mode == MODE_AUTO) {
        if (a->checkpoint && c->n == 1 && !c->e[0].ok) /* say why the file is unusable */
            return mg_fail(err, "load: %s", c->e[0].why);
        int i = catalog_pick(c, &a->f, a->pick);
        if (i < 0) no_match(c, a, 1, err);
        return i;
    }
    int *rows = mg_malloc((size_t)(c->n + 1) * sizeof *rows), n = 0, pick = -1;
    if (!rows) return mg_fail(err, "load: out of memory");
    for (int i = 0; i < c->n; i++)
        if (catalog_match(&c->e[i], &a->f)) rows[n++] = i;
    if (n == 0) {
        no_match(c, a, 0, err);
        goto done;
    }
    cli_catalog_table(c, rows, n, 1);
    int r = ask(n);
    pick = r < 0 ? -2 : rows[r];
done:
    mg_free(rows);
    return pick;
}

static void print_num(const char *label, double v, const char *fmt) {
    printf("  %-18s ", label);
    if (isfinite(v))
        printf(fmt, v);
    else
        printf("-");
    printf("\n");
}

static void show_metadata(const ckpt_t *ck, const catalog_entry_t *e) {
    const gpt_config_t *g = &ck->model->cfg;
    const ckpt_meta_t *m = &ck->meta;
    printf("config:\n");
    printf("  %-18s %d\n  %-18s %d\n  %-18s %d\n  %-18s %d\n  %-18s %d\n  %-18s %lld\n", "n_layers",
           g->layers, "n_heads", g->heads, "d_model", g->dim, "context_length", g->ctx,
           "vocab_size", g->vocab, "parameters", (long long)gpt_param_count(g));
    /* the architecture options, as model_config keeps them */
    printf("  %-18s %s\n  %-18s %s\n  %-18s %s\n  %-18s %s\n  %-18s %s\n", "pos",
           g->pos == GPT_POS_ROPE ? "rope" : "learned", "norm",
           g->norm == GPT_NORM_RMS ? "rmsnorm" : "layernorm", "qk_norm",
           g->qk_norm ? "true" : "false", "tie_head", g->untie_head ? "false" : "true", "zero_init",
           g->zero_init ? "true" : "false");
    printf("  %-18s %s\n  %-18s %d\n", "mlp", gpt_mlp_name(g->mlp), "ffn_hidden", g->ffn);
    printf("training metadata:\n");
    printf("  %-18s %ld\n  %-18s %d\n", "step", m->step, "epoch", m->epoch);
    print_num("train_loss", m->train_loss, "%.4f");
    print_num("val_loss", m->val_loss, "%.4f");
    printf("  %-18s %lld\n", "tokens_seen", m->tokens_seen);
    print_num("lr", m->lr, "%.3g");
    print_num("seconds", m->seconds, "%.1f");
    printf("  %-18s %s\n", "optimizer", m->optimizer[0] ? m->optimizer : "-");
    printf("performance metrics:\n");
    print_num("tokens_per_second", m->tokens_per_second, "%.0f");
    printf("timestamp:\n  %-18s %s\n", "created", ck->created);
    if (ck->source) printf("source:\n  %s\n", ck->source);
    printf("tokenizer:\n  %-18s %s\n  %-18s %d\n  %-18s %d\n", "type", e->tok_type, "vocab_size",
           bpe_vocab_size(ck->tok), "merges", bpe_num_merges(ck->tok));
    printf("tensors:\n  %-18s %d\n  %-18s %lld\n", "count", ck->file->n_tensors, "bytes",
           e->tensor_bytes);
}

static void show_loaded(const ckpt_t *ck, const char *path) {
    char shape[96];
    catalog_shape(&ck->model->cfg, shape, sizeof shape);
    printf("loaded %s\n", path);
    printf("  %-8s %s, %lld parameters\n", "shape", shape,
           (long long)gpt_param_count(&ck->model->cfg));
    printf("  %-8s %ld (epoch %d)\n", "step", ck->meta.step, ck->meta.epoch);
    printf("  %-8s ", "loss");
    if (isfinite(ck->meta.val_loss)) printf("val %.4f, ", ck->meta.val_loss);
    if (isfinite(ck->meta.train_loss))
        printf("train %.4f\n", ck->meta.train_loss);
    else
        printf("train -\n");
    printf("  %-8s %s\n", "created", ck->created);
}

/* The parsed options into a, and the checks between them; CLI_OK to go
 * on, or CLI_USAGE with err set. */
static int parse(const cli_args_t *o, load_args_t *a, char *err) {
    a->checkpoint = o->checkpoint;
    a->dir = o->dir;
    a->prompt = o->prompt;
    a->mode = strcmp(o->mode, "interactive") == 0 ? MODE_INTERACTIVE : MODE_AUTO;
    a->pick = strcmp(o->filter, "latest") == 0 ? CATALOG_LATEST : CATALOG_BEST;
    a->filter_given = cli_args_given(o, &o->filter);
    a->show_meta = o->show_metadata;
    a->f.search = o->search;
    if (cli_args_given(o, &o->filter_max_loss)) a->f.max_loss = o->filter_max_loss;
    if (cli_args_given(o, &o->filter_min_step)) a->f.min_step = o->filter_min_step;
    a->max_loss_arg = cli_args_typed(o, &o->filter_max_loss);
    a->min_step_arg = cli_args_typed(o, &o->filter_min_step);
    /* --educational and --show-tensors also shape the chat */
    a->gen_flags = cli_args_group_given(o, CLI_GROUP_GEN);
    cli_gen_from_args(o, &a->gen);
    if (a->checkpoint && cli_args_given(o, &o->dir)) {
        mg_fail(err, "load: give --checkpoint or --dir, not both");
        return CLI_USAGE;
    }
    if (a->mode == MODE_INTERACTIVE && a->filter_given) {
        mg_fail(err, "load: --filter chooses in --mode auto; --mode interactive asks instead");
        return CLI_USAGE;
    }
    if (a->prompt && !*a->prompt) {
        mg_fail(err, "load: --prompt must not be empty");
        return CLI_USAGE;
    }
    if (!a->prompt && a->gen_flags) {
        mg_fail(err, "load: generation flags (--max-tokens, --seed, ...) need --prompt TEXT");
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_load(const cli_args_t *o, char *err) {
    load_args_t a = {.mode = MODE_AUTO, .pick = CATALOG_BEST, .f = CATALOG_NO_FILTER};
    int rc = parse(o, &a, err);
    if (rc != CLI_OK) return rc;
    if (a.mode == MODE_INTERACTIVE && !isatty(STDIN_FILENO)) {
        mg_fail(err, "load: --mode interactive needs a terminal on stdin (use --mode auto)");
        return CLI_ERR;
    }

    catalog_t *cat = NULL;
    ckpt_t *ck = NULL;
    char why[MG_ERR_LEN];
    rc = CLI_ERR;
    cat = a.checkpoint ? catalog_file(a.checkpoint, a.f.search, why)
                       : catalog_scan(a.dir, a.f.search, why);
    if (!cat) {
        mg_fail(err, "load: %s", why);
        goto done;
    }
    int i = choose(cat, &a, err);
    if (i == -2) rc = CLI_OK; /* quit from the menu */
    if (i < 0) goto done;
    const catalog_entry_t *e = &cat->e[i];
    ck = cli_open_checkpoint(e->path, &a.gen, why);
    if (!ck) {
        mg_fail(err, "load: %s", why);
        goto done;
    }
    if (!a.prompt)
        show_loaded(ck, e->path);
    else if (a.show_meta)
        printf("checkpoint: %s\n", e->path);
    if (a.show_meta) show_metadata(ck, e);
    if (a.prompt) {
        /* stdout stays exactly what `generate` prints; say which file on
         * stderr, after the stats line (or in the one line of an error) */
        fflush(stdout);
        if (cli_run_generation(ck, a.prompt, &a.gen, why) != 0) {
            mg_fail(err, "load: %s: %s", e->path, why);
            goto done;
        }
        fprintf(stderr, "[checkpoint %s]\n", e->path);
    } else if (a.mode == MODE_AUTO && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
        /* only with a person at a terminal: a script's `load` (stdin a pipe
         * that may never close, or after the menu) must still just show
         * the file and exit; `minigpt chat` takes piped turns */
        fflush(stdout);
        if (cli_chat_run(ck, e->path, &a.gen, err) != 0) goto done;
    }
    rc = CLI_OK;
done:
    ckpt_free(ck);
    catalog_free(cat);
    return rc;
}
