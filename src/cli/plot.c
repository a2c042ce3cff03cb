/* plot.c - `minigpt plot LOG --out FILE.svg`: the loss curve of a run. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/atomic.h"
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
    /* drawn into a temp file beside out, then renamed over it: a failed or
     * interrupted plot leaves the old picture (an existing non-regular out,
     * a FIFO say, is refused rather than replaced) */
    char tmp[4200];
    if (stat(out, &b) == 0 && !S_ISREG(b.st_mode))
        return mg_fail(err, "cannot write '%s': not a regular file", out);
    if (mg_atomic_tmp(out, tmp, sizeof tmp)) return mg_fail(err, "plot: path too long: '%s'", out);
    curve_t cv;
    if (curve_load(log, &cv, err)) return -1;
    int rc = curve_svg(&cv, "minigpt: loss against tokens seen", tmp, err);
    if (rc) unlink(tmp);
    if (rc == 0) rc = mg_atomic_commit(tmp, out, err);
    if (rc == 0) {
        /* %.3f, but not 300 digits for a (corrupt) loss of 1e300 */
        const char *fmt = "loss %s %.3f -> %.3f", *vfmt = " (val %.3f)";
        double first = cv.train[0].loss, last = cv.train[cv.n_train - 1].loss;
        double val = cv.n_val ? cv.val[cv.n_val - 1].loss : 0;
        if (fmax(fabs(first), fmax(fabs(last), fabs(val))) >= 1e9)
            fmt = "loss %s %.3g -> %.3g", vfmt = " (val %.3g)";
        curve_sparkline(&cv, 60, spark);
        printf(fmt, spark, first, last);
        if (cv.n_val) printf(vfmt, val);
        printf("\nplot: %s\n", out);
    }
    curve_free(&cv);
    return rc;
}
