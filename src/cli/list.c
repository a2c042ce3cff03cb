/* list.c - `minigpt list`: the checkpoints of a directory, best first, as
 * a table or as JSON; the table is also load's interactive menu. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "io/catalog.h"
#include "util/common.h"

static void fmt_size(long long b, char *buf, size_t n) {
    static const char *unit[] = {"kB", "MB", "GB", "TB"};
    if (b < 1000) {
        snprintf(buf, n, "%lld B", b);
        return;
    }
    double v = (double)b / 1000;
    int u = 0;
    while (v >= 999.95 && u < 3) {
        v /= 1000;
        u++;
    }
    snprintf(buf, n, "%.1f %s", v, unit[u]);
}

static void fmt_time(time_t t, const char *fmt, char *buf, size_t n) {
    struct tm utc;
    gmtime_r(&t, &utc);
    strftime(buf, n, fmt, &utc);
}

static void fmt_loss(const catalog_entry_t *e, char *buf, size_t n) {
    if (isfinite(e->val_loss))
        snprintf(buf, n, "%.4f", e->val_loss);
    else if (isfinite(e->train_loss))
        snprintf(buf, n, "%.4f (train)", e->train_loss);
    else
        snprintf(buf, n, "-");
}

/* The reason without a leading "'PATH': ", which the row already names. */
static const char *short_reason(const catalog_entry_t *e) {
    size_t n = strlen(e->path);
    if (e->why[0] == '\'' && strncmp(e->why + 1, e->path, n) == 0 &&
        strncmp(e->why + 1 + n, "': ", 3) == 0)
        return e->why + n + 4;
    return e->why;
}

/* names and reasons are shown through mg_printable: a file name is
 * anyone's text, and may hold escape sequences or newlines */
#define SHOWN_LEN (4 * MG_ERR_LEN + 1)

void cli_catalog_table(const catalog_t *c, const int *rows, int n, int numbered) {
    int wname = 4, wnum = numbered ? snprintf(NULL, 0, "%d", n) + 2 : 0, any_best = 0;
    char name[SHOWN_LEN], why[SHOWN_LEN];
    for (int r = 0; r < n; r++) {
        const catalog_entry_t *e = &c->e[rows ? rows[r] : r];
        wname = MG_MAX(wname, (int)strlen(mg_printable(e->name, name, sizeof name)));
        any_best |= e->best;
    }
    printf("%*s  %-*s  %-14s %8s %5s %9s  %-19s  %s\n", wnum, "", wname, "name", "loss", "step",
           "epoch", "size", "created (UTC)", "shape");
    for (int r = 0; r < n; r++) {
        const catalog_entry_t *e = &c->e[rows ? rows[r] : r];
        char num[24] = "";
        if (numbered) snprintf(num, sizeof num, "%d)", r + 1);
        printf("%*s%c %-*s  ", wnum, num, e->best ? '*' : ' ', wname,
               mg_printable(e->name, name, sizeof name));
        if (!e->ok) {
            printf("unreadable: %s\n", mg_printable(short_reason(e), why, sizeof why));
            continue;
        }
        char loss[32], size[32], created[32], shape[96];
        fmt_loss(e, loss, sizeof loss);
        fmt_size(e->size, size, sizeof size);
        fmt_time(e->created, "%Y-%m-%d %H:%M:%S", created, sizeof created);
        catalog_shape(&e->cfg, shape, sizeof shape);
        printf("%-14s %8ld %5d %9s  %-19s  %s\n", loss, e->step, e->epoch, size, created, shape);
    }
    if (any_best)
        printf("marked *: the best, lowest validation loss (training loss where there is none)\n");
}

/* NAN (not measured) is null, as in the checkpoint's own metadata */
static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *entry_json(const catalog_entry_t *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", e->name);
    cJSON_AddStringToObject(o, "path", e->path);
    cJSON_AddBoolToObject(o, "ok", e->ok);
    if (e->ok)
        cJSON_AddNullToObject(o, "error");
    else
        cJSON_AddStringToObject(o, "error", e->why);
    cJSON_AddBoolToObject(o, "best", e->best);
    add_num(o, "loss", catalog_loss(e));
    add_num(o, "val_loss", e->ok ? e->val_loss : NAN);
    add_num(o, "train_loss", e->ok ? e->train_loss : NAN);
    add_num(o, "step", e->ok ? (double)e->step : NAN);
    add_num(o, "epoch", e->ok ? e->epoch : NAN);
    add_num(o, "size_bytes", e->ok ? (double)e->size : NAN);
    if (e->ok) {
        char created[32], shape[96];
        fmt_time(e->created, "%Y-%m-%dT%H:%M:%SZ", created, sizeof created);
        cJSON_AddStringToObject(o, "created", created);
        cJSON_AddStringToObject(o, "created_from",
                                e->created_from_mtime ? "file mtime" : "creation_timestamp");
        catalog_shape(&e->cfg, shape, sizeof shape);
        cJSON_AddStringToObject(o, "shape", shape);
        cJSON *cfg = cJSON_AddObjectToObject(o, "config");
        cJSON_AddNumberToObject(cfg, "n_layers", e->cfg.layers);
        cJSON_AddNumberToObject(cfg, "n_heads", e->cfg.heads);
        cJSON_AddNumberToObject(cfg, "d_model", e->cfg.dim);
        cJSON_AddNumberToObject(cfg, "context_length", e->cfg.ctx);
        cJSON_AddNumberToObject(cfg, "vocab_size", e->cfg.vocab);
        cJSON_AddNumberToObject(o, "params", (double)e->params);
        cJSON *tok = cJSON_AddObjectToObject(o, "tokenizer");
        cJSON_AddStringToObject(tok, "type", e->tok_type);
        add_num(tok, "vocab_size", e->tok_vocab >= 0 ? e->tok_vocab : NAN);
        add_num(tok, "merges", e->tok_merges >= 0 ? e->tok_merges : NAN);
        cJSON_AddNumberToObject(o, "tensors", e->n_tensors);
        cJSON_AddNumberToObject(o, "tensor_bytes", (double)e->tensor_bytes);
    } else {
        const char *keys[] = {"created", "created_from", "shape",   "config",
                              "params",  "tokenizer",    "tensors", "tensor_bytes"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            cJSON_AddNullToObject(o, keys[i]);
    }
    return o;
}

static int print_json(const catalog_t *c, char *err) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < c->n; i++)
        cJSON_AddItemToArray(a, entry_json(&c->e[i]));
    char *s = a ? cJSON_Print(a) : NULL;
    cJSON_Delete(a);
    if (!s) return mg_fail(err, "list: out of memory");
    puts(s);
    cJSON_free(s);
    return 0;
}

int cli_list(const cli_args_t *a, char *err) {
    const char *dir = a->dir;
    int json = a->json;
    char why[MG_ERR_LEN];
    catalog_t *cat = catalog_scan(dir, NULL, why);
    if (!cat) {
        mg_fail(err, "list: %s", why);
        return CLI_ERR;
    }
    int rc = CLI_OK;
    if (json)
        rc = print_json(cat, err) == 0 ? CLI_OK : CLI_ERR;
    else if (cat->n == 0)
        printf("no checkpoints in %s\n", dir);
    else
        cli_catalog_table(cat, NULL, cat->n, 0);
    catalog_free(cat);
    return rc;
}
