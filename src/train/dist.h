/* dist.h - data-parallel training over MPI: what the trainer calls to
 * share a run between processes started by mpirun (one world, one process
 * per rank). Built with MPI when the Makefile finds Open MPI (MG_MPI);
 * without it, or run without mpirun, every function is the one-process
 * case (world 1, rank 0, collectives that do nothing).
 *
 * The protocol, in the trainer's order: dist_init (MPI_Init, only under
 * mpirun), dist_agree after each set-up phase (a failure on any rank
 * becomes every rank's, with the failing rank's message), dist_check
 * (the run's settings hashed and compared, before anything is written),
 * dist_bcast_tokenizer, then per step dist_allreduce_grads (or the
 * dist_zero_* functions under --zero 1), dist_sum, dist_step_sync, and
 * dist_finalize at the end. Every rank must make the same calls in the
 * same order: all of them are collective. */
#ifndef MG_DIST_H
#define MG_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "model/gpt.h"
#include "tokenizer/bpe.h"

/* Initialises MPI when this process was started by mpirun (Open MPI's or
 * PMIx's variables in the environment); otherwise nothing (world 1).
 * Errors are returned, not aborted on (MPI_ERRORS_RETURN). Call it after
 * anything that re-executes the process (ops_cpu_select_kernels). */
int dist_init(char *err);
/* MPI_Finalize after a run that ended well on every rank. A rank that
 * returns an error exits without it, and Open MPI then ends the job. */
void dist_finalize(void);
int dist_rank(void);        /* 0..world-1 */
int dist_world(void);       /* ranks in the run; 1 without mpirun */
int dist_local_world(void); /* ranks on this machine (for --threads) */
int dist_available(void);   /* 1 if built with MPI */
/* 1 on a rank other than 0 whose error rank 0 also has (and prints):
 * main.c then prints nothing, so that a failure reads as one line. */
int dist_quiet(void);

/* Every rank passes its own rc (0 ok, else failed with err set). Returns 0
 * if all succeeded; else -1 on every rank, err holding the lowest failing
 * rank's message ("rank N: ..." when N > 0). */
int dist_agree(int rc, char *err);
/* One of the run's settings, hashed: n values of what (a name for the
 * message, "model shape"). dist_check compares each on every rank with
 * rank 0's and fails with the first that differs. */
typedef struct {
    const char *what;
    uint64_t hash;
} dist_setting_t;
int dist_check(const dist_setting_t *s, int n, char *err);
/* FNV-1a of bytes, chained from h (start with DIST_HASH0). */
#define DIST_HASH0 0xcbf29ce484222325ull
uint64_t dist_hash(uint64_t h, const void *p, size_t n);
/* The hash of this program's file (/proc/self/exe): ranks must run the
 * same binary. */
int dist_binary_hash(uint64_t *h, char *err);

/* *tok is rank 0's (trained there); the others receive a copy through its
 * JSON (*tok NULL on entry there; owned by the caller after). */
int dist_bcast_tokenizer(bpe_t **tok, char *err);

/* In-place sums over ranks (every rank gets the result). */
int dist_sum_floats(float *x, size_t n, char *err);
int dist_sum_doubles(double *x, size_t n, char *err);
/* The gradient (num_floats, host memory) summed over ranks, in place: one
 * MPI_Allreduce after backward. Seconds spent in it added to *secs. */
int dist_allreduce_grads(gpt_model_t *m, double *secs, char *err);
/* The step's decisions that must be the same on every rank: *stop (a
 * signal seen by any rank) and t[0..n) (rank 0's clocks, for time
 * budgets), n <= 8. */
int dist_step_sync(int *stop, double *t, int n, char *err);

/* --zero 1: AdamW moments sharded across ranks. dist_zero_init takes this
 * rank's contiguous shard of m->m and m->v (in the parameter order) into
 * buffers of its own and frees the model's full ones (m->m = m->v = NULL).
 * dist_zero_step replaces gpt_adamw_step: gradients reduce-scattered
 * (summed), the global norm from the shards' squares, clipping, AdamW on
 * this rank's shard, weights all-gathered; returns the norm (NAN on an MPI
 * error, with err set). dist_zero_gather puts full moments back into
 * m->m/m->v on rank 0 for a checkpoint, dist_zero_release frees them
 * again. Bytes of moments per rank: dist_zero_bytes. */
int dist_zero_init(gpt_model_t *m, char *err);
float dist_zero_step(gpt_model_t *m, float lr, float beta1, float beta2, float eps, float wd,
                     float clip, double *secs, char *err);
int dist_zero_gather(gpt_model_t *m, char *err);
void dist_zero_release(gpt_model_t *m);
size_t dist_zero_bytes(void);
void dist_zero_free(void);

#endif
