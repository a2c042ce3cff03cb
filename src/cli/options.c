/* options.c - parsing helpers shared by the subcommands. */
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
    if (v < min || v > max) return mg_fail(err, "--%s: %ld is out of range [%ld, %ld]", flag, v, min, max);
    *out = v;
    return 0;
}

int cli_float(const char *flag, const char *s, double min, double max, double *out, char *err) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return mg_fail(err, "--%s: '%s' is not a number", flag, s);
    if (v < min || v > max) return mg_fail(err, "--%s: %g is out of range [%g, %g]", flag, v, min, max);
    *out = v;
    return 0;
}

int cli_bad_option(const char *cmd, int c, char **argv, char *err) {
    const char *arg = argv[optind - 1];
    if (c == ':')
        mg_fail(err, "%s: option '%s' needs a value (see 'minigpt %s --help')", cmd, arg, cmd);
    else
        mg_fail(err, "%s: unknown option '%s' (see 'minigpt %s --help')", cmd, arg, cmd);
    return CLI_USAGE;
}

int cli_device_flag(int c, const char *arg, const char **device, const char **precision, char *err) {
    if (c == CLI_OPT_DEVICE) {
        if (strcmp(arg, "auto") && strcmp(arg, "cpu") && strcmp(arg, "cuda"))
            return mg_fail(err, "--device: '%s' is not one of auto, cpu, cuda", arg);
        *device = arg;
        return 1;
    }
    if (c == CLI_OPT_PRECISION) {
        if (strcmp(arg, "fp32") && strcmp(arg, "bf16"))
            return mg_fail(err, "--precision: '%s' is not one of fp32, bf16", arg);
        *precision = arg;
        return 1;
    }
    return 0;
}

const ops_backend_t *cli_backend(const char *device, const char *precision, long threads, char *err) {
    char note[MG_ERR_LEN];
    const ops_backend_t *ops = ops_select(device, precision, (int)threads, note, err);
    if (ops && strcmp(ops->name, "cpu") != 0) fprintf(stderr, "device: %s, %s\n", ops->name, ops->describe());
    return ops;
}

int cli_shape(const cli_shape_t *s, gpt_config_t *cfg, char *err) {
    if (gpt_preset(s->preset ? s->preset : "mini", cfg, err) != 0) return -1;
    if (s->layers) cfg->layers = (int)s->layers;
    if (s->heads) cfg->heads = (int)s->heads;
    if (s->dim) cfg->dim = (int)s->dim;
    if (s->ctx) cfg->ctx = (int)s->ctx;
    if (s->vocab) cfg->vocab = (int)s->vocab;
    return gpt_config_check(cfg, err);
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
