/* options.c - helpers shared by the subcommands: strict numbers, the
 * backend, the model shape, the default checkpoint. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/common.h"

int cli_int(const char *flag, const char *s, long min, long max, long *out, char *err) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return mg_fail(err, "--%s: '%s' is not an integer", flag, s);
    if (v < min || v > max)
        return mg_fail(err, "--%s: %ld is out of range [%ld, %ld]", flag, v, min, max);
    *out = v;
    return 0;
}

/* v in buf: whole numbers as integers (20000000, not 2e+07), others %g */
static const char *num(double v, char *buf) {
    if (v == floor(v) && fabs(v) < 1e18)
        snprintf(buf, 32, "%.0f", v);
    else
        snprintf(buf, 32, "%g", v);
    return buf;
}

int cli_float(const char *flag, const char *s, double min, double max, double *out, char *err) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return mg_fail(err, "--%s: '%s' is not a number", flag, s);
    if (v < min || v > max) {
        char a[32], b[32], c[32];
        return mg_fail(err, "--%s: %s is out of range [%s, %s]", flag, num(v, a), num(min, b),
                       num(max, c));
    }
    *out = v;
    return 0;
}

const ops_backend_t *cli_backend(const char *device, const char *precision, long threads,
                                 char *err) {
    char note[MG_ERR_LEN];
    const ops_backend_t *ops = ops_select(device, precision, (int)threads, note, err);
    if (ops && strcmp(ops->name, "cpu") != 0)
        fprintf(stderr, "device: %s, %s\n", ops->name, ops->describe());
    return ops;
}

int cli_shape(const cli_shape_t *s, gpt_config_t *cfg, char *err) {
    if (gpt_preset(s->preset ? s->preset : "mini", cfg, err) != 0) return -1;
    if (s->layers) cfg->layers = (int)s->layers;
    if (s->heads) cfg->heads = (int)s->heads;
    if (s->dim) cfg->dim = (int)s->dim;
    if (s->ctx) cfg->ctx = (int)s->ctx;
    if (s->vocab) cfg->vocab = (int)s->vocab;
    cli_shape_arch(s, cfg);
    return gpt_config_check(cfg, err);
}

/* args.c checked the names; NULL leaves the preset's (or checkpoint's) value */
void cli_shape_arch(const cli_shape_t *s, gpt_config_t *cfg) {
    if (s->pos) cfg->pos = strcmp(s->pos, "rope") == 0 ? GPT_POS_ROPE : GPT_POS_LEARNED;
    if (s->norm) cfg->norm = strcmp(s->norm, "rmsnorm") == 0 ? GPT_NORM_RMS : GPT_NORM_LAYER;
    if (s->qk_norm) cfg->qk_norm = strcmp(s->qk_norm, "on") == 0;
    if (s->untie_head) cfg->untie_head = strcmp(s->untie_head, "on") == 0;
    if (s->zero_init) cfg->zero_init = strcmp(s->zero_init, "on") == 0;
    if (s->mlp) cfg->mlp = gpt_mlp_from_name(s->mlp);
}

int cli_arch_given(const cli_shape_t *s) {
    return s->pos || s->norm || s->qk_norm || s->untie_head || s->zero_init || s->mlp;
}

int cli_recipe_fit(const cli_shape_t *s, gpt_config_t *cfg, const ops_backend_t *ops, char *note) {
    char why[MG_ERR_LEN];
    if (cli_arch_given(s) || gpt_backend_check(cfg, ops, why) == 0) return 0;
    int vocab = cfg->vocab, ctx = cfg->ctx, dim = cfg->dim, layers = cfg->layers;
    int heads = cfg->heads;
    *cfg = (gpt_config_t){.vocab = vocab,
                          .ctx = ctx,
                          .dim = dim,
                          .layers = layers,
                          .heads = heads}; /* every option 0: GPT-2's block */
    snprintf(note, MG_ERR_LEN, "%.400s: the preset's recipe falls back to GPT-2's block", why);
    return 1;
}

cli_shape_t cli_shape_of(const cli_args_t *a) {
    /* the architecture options are NULL unless given: the preset's then
     * (a resumed run compares only what was given with its checkpoint) */
    return (cli_shape_t){a->preset, a->layers, a->heads,   a->dim,        a->ctx,       a->vocab,
                         a->pos,    a->norm,   a->qk_norm, a->untie_head, a->zero_init, a->mlp};
}

const char *cli_default_checkpoint(const char *dir) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/best_model.safetensors", dir);
    if (access(path, R_OK) == 0) return path;
    snprintf(path, sizeof path, "%s/mini_gpt.safetensors", dir);
    return path;
}

const char *cli_device_q8(const char *device, int q8) {
    return q8 && (!device || strcmp(device, "auto") == 0) ? "cpu" : device;
}
