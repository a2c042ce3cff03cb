/* dist.c - data-parallel training over MPI (see dist.h): start-up,
 * agreement on errors and settings, the tokenizer's broadcast, gradient
 * sums and the ZeRO-1 sharded AdamW. Without MG_MPI (Open MPI not found at
 * build time) it is the one-process case. */
#define _POSIX_C_SOURCE 200809L
#include "train/dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/common.h"

#ifdef MG_MPI
#include <mpi.h>
#endif

static int rank_, world_ = 1, local_ = 1, quiet_;
#ifdef MG_MPI
static int active_; /* MPI_Init done */
#endif

/* started by mpirun (Open MPI's launcher, or any PMIx one: srun --mpi=pmix) */
static int launched(void) { return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK"); }

int dist_available(void) {
#ifdef MG_MPI
    return 1;
#else
    return 0;
#endif
}

int dist_rank(void) { return rank_; }
int dist_quiet(void) { return quiet_; }
int dist_world(void) { return world_; }
int dist_local_world(void) { return local_; }

uint64_t dist_hash(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int dist_binary_hash(uint64_t *h, char *err) {
    size_t len;
    char *exe = mg_read_file("/proc/self/exe", &len, err);
    if (!exe) return -1;
    *h = dist_hash(DIST_HASH0, exe, len);
    mg_free(exe);
    return 0;
}

#ifdef MG_MPI

/* MPI's error (the code's text) as the caller's one line */
static int mpi_fail(char *err, int code, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, msg, &n) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", code);
    return mg_fail(err, "MPI %s failed on rank %d: %s (another rank may have died)", what, rank_,
                   msg);
}
#define MPI_TRY(call, what)                                                                        \
    do {                                                                                           \
        int mpi_rc_ = (call);                                                                      \
        if (mpi_rc_ != MPI_SUCCESS) return mpi_fail(err, mpi_rc_, what);                           \
    } while (0)

/* MPI counts are ints: big buffers go in pieces */
#define PIECE ((size_t)1 << 30)

int dist_init(char *err) {
    if (!launched()) return 0;
    int rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS) return mg_fail(err, "MPI_Init failed (code %d)", rc);
    active_ = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_size(local, &local_);
        MPI_Comm_free(&local);
    }
    return 0;
}

void dist_finalize(void) {
    dist_zero_free();
    if (active_) MPI_Finalize();
    active_ = 0;
}

int dist_agree(int rc, char *err) {
    if (!active_) return rc ? -1 : 0;
    int mine = rc ? rank_ : world_, first = world_;
    MPI_TRY(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "agreement");
    if (first == world_) return 0;
    quiet_ = rank_ != 0;
    char msg[MG_ERR_LEN];
    if (rank_ == first) snprintf(msg, sizeof msg, "%s", err);
    MPI_TRY(MPI_Bcast(msg, MG_ERR_LEN, MPI_CHAR, first, MPI_COMM_WORLD), "agreement");
    msg[MG_ERR_LEN - 1] = 0;
    if (first == 0) return mg_fail(err, "%s", msg);
    return mg_fail(err, "rank %d: %s", first, msg);
}

int dist_check(const dist_setting_t *s, int n, char *err) {
    if (!active_) return 0;
    uint64_t mine[32], root[32];
    if (n > 32) return mg_fail(err, "dist_check: too many settings");
    for (int i = 0; i < n; i++)
        mine[i] = root[i] = s[i].hash;
    MPI_TRY(MPI_Bcast(root, n, MPI_UINT64_T, 0, MPI_COMM_WORLD), "settings check");
    /* each rank's first difference from rank 0 (n: none), then the lowest rank's */
    int diff = n;
    for (int i = 0; i < n && diff == n; i++)
        if (mine[i] != root[i]) diff = i;
    int key = diff < n ? rank_ * 64 + diff : world_ * 64, low = 0;
    MPI_TRY(MPI_Allreduce(&key, &low, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "settings check");
    if (low == world_ * 64) return 0;
    quiet_ = rank_ != 0;
    return mg_fail(err,
                   "rank %d and rank 0 were started with different %s: every rank needs the "
                   "same binary, flags and data",
                   low / 64, s[low % 64].what);
}

int dist_bcast_tokenizer(bpe_t **tok, char *err) {
    if (!active_) return 0;
    size_t len = 0;
    char *json = NULL;
    int rc = 0;
    if (rank_ == 0 && !(json = bpe_to_json(*tok, &len, err))) rc = -1;
    if (dist_agree(rc, err)) goto fail;
    unsigned long long n = len;
    MPI_TRY(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD), "tokenizer broadcast");
    if (rank_ != 0 && !(json = mg_malloc(n + 1))) rc = mg_fail(err, "out of memory");
    if (dist_agree(rc, err)) goto fail;
    for (size_t off = 0; off < n; off += PIECE) {
        int part = (int)MG_MIN(PIECE, n - off);
        int mrc = MPI_Bcast(json + off, part, MPI_CHAR, 0, MPI_COMM_WORLD);
        if (mrc != MPI_SUCCESS) {
            mpi_fail(err, mrc, "tokenizer broadcast");
            goto fail;
        }
    }
    if (rank_ != 0) {
        json[n] = 0;
        if (!(*tok = bpe_from_json(json, n, err))) rc = -1;
    }
    mg_free(json);
    return dist_agree(rc, err);
fail:
    mg_free(json);
    return -1;
}

static int sum(void *x, size_t n, MPI_Datatype t, size_t size, char *err) {
    if (!active_ || world_ == 1) return 0;
    for (size_t off = 0; off < n; off += PIECE)
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, (char *)x + off * size, (int)MG_MIN(PIECE, n - off), t,
                              MPI_SUM, MPI_COMM_WORLD),
                "allreduce");
    return 0;
}
int dist_sum_floats(float *x, size_t n, char *err) { return sum(x, n, MPI_FLOAT, 4, err); }
int dist_sum_doubles(double *x, size_t n, char *err) { return sum(x, n, MPI_DOUBLE, 8, err); }

int dist_allreduce_grads(gpt_model_t *m, double *secs, char *err) {
    double t0 = mg_now();
    int rc = dist_sum_floats(m->grads, m->num_floats, err);
    *secs += mg_now() - t0;
    return rc;
}

int dist_step_sync(int *stop, double *t, int n, char *err) {
    if (!active_) return 0;
    /* one max: any rank's stop, rank 0's clocks (the others send -1e308) */
    double v[9] = {*stop};
    if (n > 8) return mg_fail(err, "dist_step_sync: too many clocks");
    for (int i = 0; i < n; i++)
        v[1 + i] = rank_ == 0 ? t[i] : -1e308;
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, v, 1 + n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD),
            "step sync");
    *stop = v[0] > 0;
    for (int i = 0; i < n; i++)
        t[i] = v[1 + i];
    return 0;
}

/* ---- ZeRO-1 ---- */

/* this rank's shard [lo, lo + counts[rank_]) of the parameter vector, and
 * its AdamW moments (host memory) */
static int *counts, *displs;
static float *zm, *zv;
static size_t lo, n_shard;

size_t dist_zero_bytes(void) { return 2 * n_shard * sizeof(float); }

void dist_zero_free(void) {
    mg_free(counts);
    mg_free(displs);
    mg_free(zm);
    mg_free(zv);
    counts = displs = NULL;
    zm = zv = NULL;
    n_shard = 0;
}

int dist_zero_init(gpt_model_t *m, char *err) {
    if (m->num_floats > (size_t)INT32_MAX)
        return mg_fail(err, "--zero: %zu parameters do not fit MPI's int counts", m->num_floats);
    counts = mg_malloc(world_ * sizeof(int));
    displs = mg_malloc(world_ * sizeof(int));
    if (!counts || !displs) return mg_fail(err, "out of memory");
    size_t per = m->num_floats / world_, extra = m->num_floats % world_, at = 0;
    for (int r = 0; r < world_; r++) {
        counts[r] = (int)(per + ((size_t)r < extra));
        displs[r] = (int)at;
        at += counts[r];
    }
    lo = displs[rank_];
    n_shard = counts[rank_];
    /* the moments so far (zeros, or a resumed run's), one at a time so
     * that at most one full moment and one shard are held together */
    if (!(zm = mg_malloc(MG_MAX(n_shard, 1) * sizeof(float)))) return mg_fail(err, "out of memory");
    memcpy(zm, m->m + lo, n_shard * sizeof(float));
    m->ops->free(m->m);
    m->m = NULL;
    if (!(zv = mg_malloc(MG_MAX(n_shard, 1) * sizeof(float)))) return mg_fail(err, "out of memory");
    memcpy(zv, m->v + lo, n_shard * sizeof(float));
    m->ops->free(m->v);
    m->v = NULL;
    return 0;
}

float dist_zero_step(gpt_model_t *m, float lr, float beta1, float beta2, float eps, float wd,
                     float clip, double *secs, char *err) {
    const ops_backend_t *ops = m->ops;
    double t0 = mg_now();
    int rc = MPI_Reduce_scatter(MPI_IN_PLACE, m->grads, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) goto mpi;
    /* the shard's sum is at the buffer's start: move it to its place */
    memmove(m->grads + lo, m->grads, n_shard * sizeof(float));
    *secs += mg_now() - t0;
    double sq = ops->sq_norm(m->grads + lo, n_shard);
    t0 = mg_now();
    if ((rc = MPI_Allreduce(MPI_IN_PLACE, &sq, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD))) goto mpi;
    *secs += mg_now() - t0;
    float norm = (float)sqrt(sq);
    float scale = clip > 0.0f && norm > clip ? clip / norm : 1.0f;
    m->adam_t++;
    size_t hi = lo + n_shard;
    for (int i = 0; i < m->n_params; i++) { /* each tensor's part in the shard */
        const gpt_param_t *p = &m->params[i];
        size_t a = MG_MAX(p->offset, lo), b = MG_MIN(p->offset + p->numel, hi);
        if (a >= b) continue;
        ops->adamw(m->weights + a, m->grads + a, zm + (a - lo), zv + (a - lo), b - a, lr, beta1,
                   beta2, eps, p->decay ? wd : 0.0f, scale, m->adam_t);
    }
    t0 = mg_now();
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, m->weights, counts, displs, MPI_FLOAT,
                        MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) goto mpi;
    *secs += mg_now() - t0;
    return norm;
mpi:
    mpi_fail(err, rc, "ZeRO step");
    return NAN;
}

int dist_zero_gather(gpt_model_t *m, char *err) {
    size_t bytes = m->num_floats * sizeof(float);
    int rc = 0;
    if (rank_ == 0 && (!(m->m = m->ops->alloc(bytes)) || !(m->v = m->ops->alloc(bytes))))
        rc = mg_fail(err, "out of memory for the optimizer state");
    if (dist_agree(rc, err)) return -1;
    MPI_TRY(MPI_Gatherv(zm, (int)n_shard, MPI_FLOAT, m->m, counts, displs, MPI_FLOAT, 0,
                        MPI_COMM_WORLD),
            "moment gather");
    MPI_TRY(MPI_Gatherv(zv, (int)n_shard, MPI_FLOAT, m->v, counts, displs, MPI_FLOAT, 0,
                        MPI_COMM_WORLD),
            "moment gather");
    return 0;
}

void dist_zero_release(gpt_model_t *m) {
    if (m->m) m->ops->free(m->m);
    if (m->v) m->ops->free(m->v);
    m->m = m->v = NULL;
}

#else /* one process: nothing to share */

int dist_init(char *err) {
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (launched() && n && atoi(n) > 1)
        return mg_fail(err, "this minigpt was built without MPI: install libopenmpi-dev and "
                            "rebuild to train under mpirun");
    return 0;
}
void dist_finalize(void) {}
int dist_agree(int rc, char *err) {
    (void)err;
    return rc ? -1 : 0;
}
int dist_check(const dist_setting_t *s, int n, char *err) {
    (void)s, (void)n, (void)err;
    return 0;
}
int dist_bcast_tokenizer(bpe_t **tok, char *err) {
    (void)tok, (void)err;
    return 0;
}
int dist_sum_floats(float *x, size_t n, char *err) {
    (void)x, (void)n, (void)err;
    return 0;
}
int dist_sum_doubles(double *x, size_t n, char *err) {
    (void)x, (void)n, (void)err;
    return 0;
}
int dist_allreduce_grads(gpt_model_t *m, double *secs, char *err) {
    (void)m, (void)secs, (void)err;
    return 0;
}
int dist_step_sync(int *stop, double *t, int n, char *err) {
    (void)stop, (void)t, (void)n, (void)err;
    return 0;
}
int dist_zero_init(gpt_model_t *m, char *err) {
    (void)m;
    return mg_fail(err, "--zero needs a minigpt built with MPI, run under mpirun");
}
float dist_zero_step(gpt_model_t *m, float lr, float beta1, float beta2, float eps, float wd,
                     float clip, double *secs, char *err) {
    (void)m, (void)lr, (void)beta1, (void)beta2, (void)eps, (void)wd, (void)clip, (void)secs;
    mg_fail(err, "--zero needs MPI");
    return NAN;
}
int dist_zero_gather(gpt_model_t *m, char *err) {
    (void)m, (void)err;
    return 0;
}
void dist_zero_release(gpt_model_t *m) { (void)m; }
size_t dist_zero_bytes(void) { return 0; }
void dist_zero_free(void) {}

#endif
