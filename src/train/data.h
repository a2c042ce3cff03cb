/* data.h - the token stream: train/validation split and batch loading. */
#ifndef MG_DATA_H
#define MG_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "util/common.h"

/* The split: the stream is cut into chunks of `chunk` tokens and every
 * `every`-th chunk (indices every-1, 2*every-1, ...) is validation. The
 * bundled corpus is ordered by author, so a tail split would validate on
 * one author only; interleaved chunks sample the whole corpus.
 * Deterministic, no RNG. */
typedef struct {
    int32_t *train, *val; /* owned (mg_malloc) */
    size_t n_train, n_val;
} data_split_t;

int data_split(const int32_t *ids, size_t n, size_t chunk, int every, data_split_t *out, char *err);
void data_split_free(data_split_t *s);

/* Batches of B windows of T+1 tokens (inputs and next-token targets).
 * Windows start at multiples of T; an epoch is floor(windows / B) batches
 * drawn in an order shuffled by the seeded RNG (B > windows wraps around); the state (epoch,
 * cursor, rng) is small so a checkpoint can carry it. */
typedef struct {
    const int32_t *tokens; /* borrowed */
    size_t n;
    int B, T;
    size_t n_windows;
    uint32_t *order; /* owned */
    size_t cursor;
    int epoch;          /* completed epochs */
    mg_rng_t rng;       /* advances with each shuffle */
    mg_rng_t epoch_rng; /* rng as it was before this epoch's shuffle */
} data_loader_t;

int data_loader_init(data_loader_t *l, const int32_t *tokens, size_t n, int B, int T, uint64_t seed,
                     char *err);
void data_loader_free(data_loader_t *l);
/* Fills x and y (B*T each). Returns 1 when this batch completed an epoch. */
int data_loader_next(data_loader_t *l, int32_t *x, int32_t *y);
size_t data_loader_steps_per_epoch(const data_loader_t *l);
/* Puts the loader back where a saved run was: same epoch, same shuffle
 * (replayed from epoch_rng), same cursor. */
int data_loader_restore(data_loader_t *l, int epoch, size_t cursor, const mg_rng_t *epoch_rng,
                        char *err);

#endif
