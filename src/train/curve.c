/* curve.c - loss curves: JSONL in, SVG or sparkline out. */
#include "train/curve.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "util/common.h"

static int push(curve_point_t **v, size_t *n, size_t *cap, double x, double y) {
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        curve_point_t *p = mg_realloc(*v, nc * sizeof *p);
        if (!p) return -1;
        *v = p;
        *cap = nc;
    }
    (*v)[(*n)++] = (curve_point_t){x, y};
    return 0;
}

int curve_load(const char *path, curve_t *c, char *err) {
    memset(c, 0, sizeof *c);
    c->last_bpb = NAN;
    FILE *f = mg_fopen_regular(path, err); /* a FIFO or a directory: one line */
    if (!f) return -1;
    char line[4096];
    size_t cap_t = 0, cap_v = 0, lineno = 0;
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '\n') continue;
        cJSON *j = cJSON_Parse(line);
        const cJSON *tk = cJSON_GetObjectItemCaseSensitive(j, "tokens");
        const cJSON *tl = cJSON_GetObjectItemCaseSensitive(j, "train_loss");
        const cJSON *vl = cJSON_GetObjectItemCaseSensitive(j, "val_loss");
        const cJSON *vb = cJSON_GetObjectItemCaseSensitive(j, "val_bpb");
        if (!cJSON_IsNumber(tk) || !cJSON_IsNumber(tl)) {
            cJSON_Delete(j);
            mg_fail(err, "%s:%zu: not a training log line (needs tokens and train_loss)", path,
                    lineno);
            goto done;
        }
        /* JSON has no infinities, but 1e999 parses as one: a trainer never
         * logs a non-finite loss (it stops first), so such a line is bad */
        if (!isfinite(tk->valuedouble) || !isfinite(tl->valuedouble) ||
            (cJSON_IsNumber(vl) && !isfinite(vl->valuedouble))) {
            cJSON_Delete(j);
            mg_fail(err, "%s:%zu: tokens or a loss is not a finite number", path, lineno);
            goto done;
        }
        if (tk->valuedouble < 0) {
            cJSON_Delete(j);
            mg_fail(err, "%s:%zu: tokens is negative", path, lineno);
            goto done;
        }
        int bad = push(&c->train, &c->n_train, &cap_t, tk->valuedouble, tl->valuedouble);
        if (!bad && cJSON_IsNumber(vl))
            bad = push(&c->val, &c->n_val, &cap_v, tk->valuedouble, vl->valuedouble);
        if (cJSON_IsNumber(vb)) c->last_bpb = vb->valuedouble;
        cJSON_Delete(j);
        if (bad) {
            mg_fail(err, "out of memory reading '%s'", path);
            goto done;
        }
    }
    if (c->n_train == 0) {
        mg_fail(err, "'%s' has no training steps", path);
        goto done;
    }
    rc = 0;
done:
    fclose(f);
    if (rc) curve_free(c);
    return rc;
}

void curve_free(curve_t *c) {
    mg_free(c->train);
    mg_free(c->val);
    memset(c, 0, sizeof *c);
}

/* Losses are drawn clamped to +-CURVE_MAX: a finite loss can still be
 * 1e308, and the span of two such (1e308 - -1e308) overflows to infinity,
 * which would put "nan" coordinates into the SVG. No real loss comes near;
 * the sparkline's sums of clamped losses stay finite too. */
#define CURVE_MAX 1e290
static double clamp_loss(double v) { return fmax(-CURVE_MAX, fmin(CURVE_MAX, v)); }

/* a "nice" tick step (1, 2 or 5 x 10^k) giving about n ticks over span */
static double tick_step(double span, int n) {
    double raw = span / n, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void polyline(FILE *f, const curve_point_t *p, size_t n, double x0, double x1, double y0,
                     double y1, const char *style) {
    fprintf(f, "<polyline fill=\"none\" %s points=\"", style);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.1f,%.1f ", 70 + (p[i].tokens - x0) / (x1 - x0) * 560,
                30 + (y1 - clamp_loss(p[i].loss)) / (y1 - y0) * 340);
    fprintf(f, "\"/>\n");
}

int curve_svg(const curve_t *c, const char *title, const char *path, char *err) {
    /* an existing FIFO would block fopen until a reader came */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return mg_fail(err, "cannot write '%s': not a regular file", path);
    FILE *f = fopen(path, "w");
    if (!f) return mg_fail(err, "cannot write '%s': %s", path, strerror(errno));
    /* the data range, over both curves */
    double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
    for (size_t i = 0; i < c->n_train; i++) {
        x1 = fmax(x1, c->train[i].tokens);
        y0 = fmin(y0, clamp_loss(c->train[i].loss));
        y1 = fmax(y1, clamp_loss(c->train[i].loss));
    }
    for (size_t i = 0; i < c->n_val; i++) {
        y0 = fmin(y0, clamp_loss(c->val[i].loss));
        y1 = fmax(y1, clamp_loss(c->val[i].loss));
    }
    /* a flat curve gets a band around it: a span too small for its
     * magnitude would give ticks that y += ys cannot step through, and a
     * subnormal one (5e-324) a tick step that underflows to 0 */
    double span = y1 - y0, mag = fmax(fabs(y0), fabs(y1));
    if (!(span > mag * 1e-6) || span < 1e-200) span = fmax(mag * 1e-3, 1e-3);
    double ys = tick_step(span, 6), xs = tick_step(x1 - x0, 6);
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;
    if (y1 - y0 < ys) y1 = y0 + ys;
    int ny = (int)lround((y1 - y0) / ys), nx = (int)floor((x1 - x0) / xs + 1e-9);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"660\" height=\"430\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"660\" height=\"430\" fill=\"white\"/>\n"
            "<text x=\"350\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n",
            title);
    for (int i = 0; i <= ny; i++) {
        double y = y0 + i * ys, py = 30 + (y1 - y) / (y1 - y0) * 340;
        fprintf(f,
                "<line x1=\"70\" x2=\"630\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"64\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                py, py, py + 4, y);
    }
    for (int i = 0; i <= nx; i++) {
        double x = x0 + i * xs, px = 70 + (x - x0) / (x1 - x0) * 560;
        fprintf(f,
                "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"30\" y2=\"370\" stroke=\"#eee\"/>"
                "<text x=\"%.1f\" y=\"386\" text-anchor=\"middle\">%g</text>\n",
                px, px, px,
                x >= 1e6   ? x / 1e6
                : x >= 1e3 ? x / 1e3
                           : x);
    }
    fprintf(
        f,
        "<rect x=\"70\" y=\"30\" width=\"560\" height=\"340\" fill=\"none\" stroke=\"black\"/>\n"
        "<text x=\"350\" y=\"410\" text-anchor=\"middle\">tokens seen%s</text>\n"
        "<text x=\"18\" y=\"200\" text-anchor=\"middle\" transform=\"rotate(-90 18 200)\">"
        "loss (nats per token)</text>\n",
        x1 >= 1e6   ? " (millions)"
        : x1 >= 1e3 ? " (thousands)"
                    : "");
    polyline(f, c->train, c->n_train, x0, x1, y0, y1, "stroke=\"#4a90d9\" stroke-width=\"1\"");
    polyline(f, c->val, c->n_val, x0, x1, y0, y1, "stroke=\"#d9534f\" stroke-width=\"2.5\"");
    for (size_t i = 0; i < c->n_val; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d9534f\"/>\n",
                70 + (c->val[i].tokens - x0) / (x1 - x0) * 560,
                30 + (y1 - clamp_loss(c->val[i].loss)) / (y1 - y0) * 340);
    fprintf(
        f,
        "<line x1=\"470\" x2=\"495\" y1=\"48\" y2=\"48\" stroke=\"#4a90d9\"/>"
        "<text x=\"500\" y=\"52\">train loss</text>\n"
        "<line x1=\"470\" x2=\"495\" y1=\"66\" y2=\"66\" stroke=\"#d9534f\" stroke-width=\"2.5\"/>"
        "<text x=\"500\" y=\"70\">validation loss</text>\n");
    if (isfinite(c->last_bpb))
        fprintf(f, "<text x=\"470\" y=\"88\">last val: %.3f bits/byte</text>\n", c->last_bpb);
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return mg_fail(err, "cannot write '%s'", path);
    return 0;
}

void curve_sparkline(const curve_t *c, int width, char *buf) {
    static const char *bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    double v[512], lo = INFINITY, hi = -INFINITY;
    int w = (int)MG_MIN((size_t)MG_MIN(width, 512), c->n_train);
    for (int i = 0; i < w; i++) {
        size_t a = c->n_train * i / w, b = c->n_train * (i + 1) / w;
        double s = 0; /* clamped terms: the sum stays finite */
        for (size_t k = a; k < b; k++)
            s += clamp_loss(c->train[k].loss);
        v[i] = s / (double)(b - a);
        lo = fmin(lo, v[i]);
        hi = fmax(hi, v[i]);
    }
    buf[0] = 0;
    for (int i = 0; i < w; i++) {
        int k = hi > lo ? (int)((v[i] - lo) / (hi - lo) * 7.0 + 0.5) : 0;
        k = k < 0 ? 0 : k > 7 ? 7 : k;
        strcat(buf, bars[k]);
    }
}
