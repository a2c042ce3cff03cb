/* sched.c - the server's slots and continuous batching. A slot is a KV
 * cache; a request waits in a bounded queue until one is free. The worker
 * thread loops: admit queued jobs into free slots, prefill the new prompts
 * (one kv_feed each, as they arrive), sample each active slot's next token
 * from its own logits with its own random stream (gen_next, caller_feeds),
 * then feed all those tokens in one kv_feed_batch: one matrix product per
 * weight for every sequence. A request's text is the text it gets alone. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ops/cpu/cpu.h"
#include "serve/serve.h"
#include "util/sysinfo.h"

enum { SLOTS_MAX_DEFAULT = 16 };

/* the worker's on_text: the text goes to the job, under the lock */
static void on_text(void *ctx, const char *bytes, size_t n) {
    serve_job_t *j = ctx;
    pthread_mutex_lock(&j->s->mu);
    mg_buf_put(&j->text, bytes, n);
    pthread_mutex_unlock(&j->s->mu);
}

static void job_free(serve_job_t *j) {
    pthread_cond_destroy(&j->cv);
    cJSON_Delete(j->req);
    mg_free(j->ids);
    mg_free(j->text.data);
    mg_free(j);
}

/* under mu */
static void unref(serve_job_t *j) {
    if (--j->refs == 0) job_free(j);
}

serve_job_t *sched_job_new(serve_sched_t *s, cJSON *req) {
    serve_job_t *j = mg_calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_cond_init(&j->cv, NULL);
    j->s = s;
    j->req = req;
    j->refs = 1;
    return j;
}

void sched_release(serve_sched_t *s, serve_job_t *j) {
    if (!j) return;
    pthread_mutex_lock(&s->mu);
    if (j->state != JOB_DONE && j->refs > 1) {
        j->cancel = 1; /* the worker frees its slot (or drops it from the queue) */
        pthread_cond_signal(&s->work);
    }
    unref(j);
    pthread_mutex_unlock(&s->mu);
}

/* under mu: j is over; the worker's reference goes */
static void job_done(serve_sched_t *s, serve_job_t *j, const char *err) {
    j->state = JOB_DONE;
    if (err) {
        j->failed = 1;
        if (err != j->err) snprintf(j->err, sizeof j->err, "%s", err);
    } else {
        metrics_done(s->metrics, j->st.prompt_tokens, j->st.new_tokens);
    }
    pthread_cond_broadcast(&j->cv);
    unref(j);
}

int sched_submit(serve_sched_t *s, serve_job_t *j) {
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->stopping)
        rc = -2;
    else if (s->n_queued >= s->queue_max + (s->n_slots - s->n_active))
        rc = -1;
    else {
        long k = j->number = ++s->started;
        if (j->seed < 0) { /* drawn: below 2^53, so that it survives JSON in any language */
            uint64_t x =
                (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)k * 0xBF58476D1CE4E5B9ull;
            x ^= x >> 31;
            j->seed = (long)(x & ((1ull << 53) - 1));
        }
        mg_rng_seed(&j->rng, (uint64_t)j->seed);
        j->go.rng = &j->rng;
        j->go.on_text = on_text;
        j->go.ctx = j;
        j->go.caller_feeds = 1;
        j->go.interrupt = &s->abort;
        j->state = JOB_QUEUED;
        j->refs++;
        if (s->q_tail)
            s->q_tail->next_q = j;
        else
            s->q_head = j;
        s->q_tail = j;
        s->n_queued++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* under mu: queued jobs into free slots; cancelled ones leave the queue */
static void admit(serve_sched_t *s) {
    serve_job_t **pp = &s->q_head, *prev = NULL;
    while (*pp) {
        serve_job_t *j = *pp;
        int slot = -1;
        if (!j->cancel) {
            for (int i = 0; i < s->n_slots && slot < 0; i++)
                if (!s->slots[i].job) slot = i;
            if (slot < 0) break; /* in order: the head waits for a slot */
        }
        *pp = j->next_q;
        if (s->q_tail == j) s->q_tail = prev;
        j->next_q = NULL;
        s->n_queued--;
        if (j->cancel) {
            j->st.stop = GEN_STOP_INTERRUPTED;
            job_done(s, j, NULL);
            continue;
        }
        serve_slot_t *sl = &s->slots[slot];
        sl->job = j;
        sl->fresh = 1;
        sl->ended = 0;
        j->state = JOB_RUNNING;
        s->n_active++;
    }
}

/* under mu: slots whose generation is over (or whose client left) free */
static void retire(serve_sched_t *s) {
    for (int i = 0; i < s->n_slots; i++) {
        serve_slot_t *sl = &s->slots[i];
        serve_job_t *j = sl->job;
        if (!j || sl->fresh || (!sl->ended && !j->cancel)) continue;
        gen_end(&sl->g);
        if (!sl->ended) j->st.stop = GEN_STOP_INTERRUPTED;
        job_done(s, j, j->err[0] ? j->err : NULL);
        sl->job = NULL;
        s->n_active--;
    }
}

/* One round without the lock: prefills, one token sampled per slot, one
 * batched feed. Only the worker touches slots' g and kv. */
static void step(serve_sched_t *s) {
    int n = s->n_slots, k = 0;
    kv_state_t *seqs[n > 0 ? n : 1];
    int32_t toks[n > 0 ? n : 1];
    int idx[n > 0 ? n : 1];
    for (int i = 0; i < n; i++) {
        serve_slot_t *sl = &s->slots[i];
        serve_job_t *j = sl->job;
        if (!j || sl->ended) continue;
        if (sl->fresh) {
            kv_reset(sl->kv);
            int r = gen_begin(&sl->g, sl->kv, s->ck->tok, j->ids, j->n, &j->go, &j->st, j->err);
            sl->fresh = 0;
            if (r != 0) {
                sl->ended = 1;
                continue;
            }
        }
        int r = gen_next(&sl->g, j->err);
        if (r <= 0) {
            sl->ended = 1;
            continue;
        }
        seqs[k] = sl->kv;
        toks[k] = sl->g.next;
        idx[k++] = i;
    }
    if (k == 0) return;
    char err[MG_ERR_LEN];
    if (kv_feed_batch(seqs, toks, k, err) != 0)
        for (int b = 0; b < k; b++) {
            s->slots[idx[b]].ended = 1;
            snprintf(s->slots[idx[b]].job->err, MG_ERR_LEN, "%s", err);
        }
    metrics_generated(s->metrics, k);
}

static void *worker(void *arg) {
    serve_sched_t *s = arg;
    /* OpenMP's thread count and the FTZ/DAZ bits are per thread: this one
     * computes, so it gets the settings the CLI's own thread gets (and
     * the same numbers as `generate`) */
    ops_cpu_set_threads(s->threads);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        retire(s);
        admit(s);
        for (int i = 0; i < s->n_slots; i++) /* new text, or the end, for the waiting handlers */
            if (s->slots[i].job) pthread_cond_broadcast(&s->slots[i].job->cv);
        if (s->n_active == 0) {
            if (s->stopping) break;
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        step(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sched_start(serve_sched_t *s, const ckpt_t *ck, const cli_gen_opts_t *o, int parallel,
                int queue_max, serve_metrics_t *m, char *err) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    s->ck = ck;
    s->metrics = m;
    s->queue_max = queue_max;
    s->threads = (int)o->threads;
    kv_state_t *first = cli_kv_create(ck, o, err); /* with the int8 weights when asked */
    if (!first) return -1;
    if (parallel <= 0) { /* what fits a quarter of the available memory */
        mg_sysinfo_t si;
        mg_sysinfo(&si);
        size_t per = first->block_bytes + 3 * (size_t)ck->model->cfg.vocab * sizeof(float);
        size_t fit = si.mem_available / 4 / (per ? per : 1);
        parallel = (int)MG_MAX(2, MG_MIN(fit, (size_t)SLOTS_MAX_DEFAULT));
    }
    s->slots = mg_calloc((size_t)parallel, sizeof *s->slots);
    if (!s->slots) {
        kv_free(first);
        return mg_fail(err, "out of memory");
    }
    s->slots[0].kv = first;
    s->n_slots = parallel;
    for (int i = 1; i < parallel; i++) {
        if (!(s->slots[i].kv = kv_create(ck->model, err))) goto fail;
        /* the int8 weights are shared: borrowed from slot 0 (dropped before kv_free) */
        s->slots[i].kv->q8 = first->q8;
        s->slots[i].kv->q8_bytes = first->q8_bytes;
    }
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        mg_fail(err, "cannot start the scheduler's thread");
        goto fail;
    }
    s->running = 1;
    return 0;
fail:
    sched_stop(s, 0);
    return -1;
}

void sched_stop(serve_sched_t *s, unsigned grace) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    while (s->q_head) { /* the queued ones: refused */
        serve_job_t *j = s->q_head;
        s->q_head = j->next_q;
        s->n_queued--;
        job_done(s, j, "the server is shutting down");
    }
    s->q_tail = NULL;
    pthread_cond_signal(&s->work);
    double until = mg_now() + grace;
    while (s->running && s->n_active > 0 && mg_now() < until) {
        pthread_mutex_unlock(&s->mu);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&s->mu);
    }
    s->abort = 1; /* what still runs ends at its next token */
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    if (s->running) pthread_join(s->thread, NULL);
    s->running = 0;
    for (int i = 0; i < s->n_slots; i++) {
        if (!s->slots[i].kv) continue;
        if (i > 0) s->slots[i].kv->q8 = NULL;
        kv_free(s->slots[i].kv);
    }
    mg_free(s->slots);
    s->slots = NULL;
    s->n_slots = 0;
}
