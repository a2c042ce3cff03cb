/* curve.h - the loss curve of a run: read from train_log.jsonl, drawn as
 * an SVG picture (train and validation loss against tokens seen) or as a
 * one-line Unicode sparkline for the terminal. */
#ifndef MG_CURVE_H
#define MG_CURVE_H

#include <stddef.h>

typedef struct {
    double tokens, loss;
} curve_point_t;

typedef struct {
    curve_point_t *train, *val; /* owned */
    size_t n_train, n_val;
    double last_bpb; /* validation bits per byte of the last evaluation */
} curve_t;

/* Reads a train_log.jsonl; lines that are not JSON objects with the
 * fields are an error (with the line number). Later lines for a step
 * already seen (a resumed run) replace nothing: points stay in file order. */
int curve_load(const char *path, curve_t *c, char *err);
void curve_free(curve_t *c);
/* Writes an SVG (atomically not needed: a picture, rewritten each run). */
int curve_svg(const curve_t *c, const char *title, const char *path, char *err);
/* A sparkline of the training loss in `width` cells of ▁▂▃▄▅▆▇█ (UTF-8
 * into buf of at least 3*width+1 bytes), each cell the mean of its span. */
void curve_sparkline(const curve_t *c, int width, char *buf);

#endif
