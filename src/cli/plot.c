/* plot.c - `minigpt plot LOG --out FILE.svg`: the loss curve of a run. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "train/curve.h"
#include "util/common.h"

int cli_plot(const cli_args_t *a, char *err) {
    if (a->n_positional != 1) {
        mg_fail(err, "plot: give exactly one LOG file (see 'minigpt plot --help')");
        return CLI_USAGE;
    }
    return cli_plot_log(a->positional[0], a->out, err) ? CLI_ERR : CLI_OK;
}

int cli_plot_log(const char *log, const char *out, char *err) {
    char path[4096], spark[3 * 60 + 1];
    if (!out) {
        const char *slash = strrchr(log, '/');
        snprintf(path, sizeof path, "%.*sloss_curve.svg", slash ? (int)(slash - log + 1) : 0, log);
        out = path;
    }
    struct stat a, b;
    if (stat(log, &a) == 0 && stat(out, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return mg_fail(err, "plot: '%s' is the log itself; give another --out", out);
    curve_t cv;
    if (curve_load(log, &cv, err)) return -1;
    int rc = curve_svg(&cv, "minigpt: loss against tokens seen", out, err);
    if (rc == 0) {
        curve_sparkline(&cv, 60, spark);
        printf("loss %s %.3f -> %.3f", spark, cv.train[0].loss, cv.train[cv.n_train - 1].loss);
        if (cv.n_val) printf(" (val %.3f)", cv.val[cv.n_val - 1].loss);
        printf("\nplot: %s\n", out);
    }
    curve_free(&cv);
    return rc;
}
