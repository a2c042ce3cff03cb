/* serve.h - minigpt's HTTP server (`minigpt serve`), in parts with one job
 * each:
 *   sched.c    the slots: one KV cache each, a bounded queue in front, one
 *              worker thread that prefills new prompts and runs the decode
 *              steps of all active slots as one kv_feed_batch
 *   http.c     libmicrohttpd plumbing: bodies, deadlines, connection
 *              limits, the API key, the request log, the routes
 *   head.c     screens a connection's first request head before
 *              libmicrohttpd parses it (a malformed Content-Length)
 *   api.c      the endpoints: OpenAI completions, chat, models; tokenize
 *   metrics.c  counters and the Prometheus text of GET /metrics
 * Threads: libmicrohttpd runs one thread per connection (its handlers may
 * block waiting for their request's tokens); the worker alone touches the
 * model. Everything the two share is under serve_sched_t.mu. */
#ifndef MG_SERVE_H
#define MG_SERVE_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "cli/cli.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "util/common.h"

/* The limits, each a flag of `minigpt serve` (defaults in cli/serve.c). */
typedef struct {
    int parallel;              /* slots (KV caches); 0: what fits memory */
    int queue;                 /* requests waiting for a slot before 503 */
    unsigned max_conn;         /* open connections; beyond, new ones wait in the listen queue */
    unsigned per_client;       /* open connections per client address */
    unsigned header_timeout;   /* s from a connection's start (or its last answer) to its headers */
    unsigned body_timeout;     /* s from the headers to the end of the body */
    unsigned shutdown_timeout; /* s SIGTERM lets running requests finish before cancelling them */
    size_t max_body;           /* bytes of a request body; beyond, 413 */
    const char *api_key;       /* NULL: none */
} serve_config_t;

/* ---- metrics.c ---- */
typedef struct {
    pthread_mutex_t mu;
    long status[600]; /* requests answered, by HTTP status */
    long long tokens_in, tokens_out;
    long completions; /* generations ended */
    double tick[10];  /* generated tokens in each of the last 10 whole seconds */
    long tick_sec[10];
} serve_metrics_t;
void metrics_init(serve_metrics_t *m);
void metrics_free(serve_metrics_t *m);
void metrics_request(serve_metrics_t *m, unsigned status);
/* n tokens generated now (the tokens/s gauge: over the last 10 s) */
void metrics_generated(serve_metrics_t *m, int n);
void metrics_done(serve_metrics_t *m, int prompt_tokens, int new_tokens);

/* ---- sched.c ---- */
enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* One generation: built by the HTTP side, run by the worker. */
typedef struct serve_job {
    /* set before sched_submit, then read-only */
    int32_t *ids; /* the prompt (n ids), owned */
    int n;
    cJSON *req;    /* the request, owned: go.stop points into it */
    gen_opts_t go; /* sampling, max_tokens, stop; sched_submit sets the rest */
    mg_rng_t rng;  /* the request's own random stream (seeded by its seed) */
    long seed;     /* < 0: drawn by sched_submit */
    long number;   /* set by sched_submit: the request's ordinal, for its id */
    /* under the scheduler's mu */
    int state;  /* JOB_* */
    int cancel; /* set by the HTTP side: the client left, free the slot */
    int failed; /* DONE with the error in err */
    char err[MG_ERR_LEN];
    mg_buf_t text;     /* generated text not yet taken by the HTTP side */
    gen_stats_t st;    /* final once DONE */
    pthread_cond_t cv; /* signalled on new text and at DONE */
    int refs;          /* the HTTP side and (queued or running) the worker */
    struct serve_sched *s;
    struct serve_job *next_q; /* the queue's link */
} serve_job_t;

typedef struct {
    kv_state_t *kv;
    serve_job_t *job; /* NULL: free */
    gen_t g;
    int fresh; /* admitted, not yet prefilled */
    int ended; /* the generation is over (or failed): released at the next lock */
} serve_slot_t;

typedef struct serve_sched {
    pthread_mutex_t mu;
    pthread_cond_t work; /* the worker waits on it for requests */
    const ckpt_t *ck;
    serve_metrics_t *metrics;
    serve_slot_t *slots;
    int n_slots, n_active, queue_max, n_queued;
    int threads; /* --threads, for the worker's OpenMP */
    serve_job_t *q_head, *q_tail;
    int stopping;
    volatile sig_atomic_t abort; /* set after the shutdown grace: running generations end */
    long started;                /* jobs begun, for ids and seeds */
    pthread_t thread;
    int running;
} serve_sched_t;

/* Creates the slots (parallel 0: as many as fit a quarter of the available
 * memory, from 2 to 16) and starts the worker. -1 with err. */
int sched_start(serve_sched_t *s, const ckpt_t *ck, const cli_gen_opts_t *o, int parallel,
                int queue_max, serve_metrics_t *m, char *err);
/* New job (refs 1, the caller's), owning req; NULL when out of memory. */
serve_job_t *sched_job_new(serve_sched_t *s, cJSON *req);
/* Queues j (the worker takes a reference). 0, -1 when the queue is full,
 * -2 when the server is stopping. */
int sched_submit(serve_sched_t *s, serve_job_t *j);
/* Drops the caller's reference (also cancels j when still running). */
void sched_release(serve_sched_t *s, serve_job_t *j);
/* Stops taking jobs, fails the queued ones, lets the running ones finish
 * for up to grace seconds then ends them, and stops the worker; frees all. */
void sched_stop(serve_sched_t *s, unsigned grace);

/* ---- the server as a whole ---- */
typedef struct {
    const ckpt_t *ck;
    const char *path;
    const char *tmpl; /* the chat template */
    char name[256];   /* the model's id: its file name */
    long created;     /* the checkpoint file's mtime */
    cli_gen_opts_t defaults;
    serve_config_t cfg;
    serve_sched_t sched;
    serve_metrics_t metrics;
    struct web *web;          /* the browser app (src/web/) */
    pthread_mutex_t conns_mu; /* the open connections, for their deadlines */
    struct serve_conn *conns;
    int n_conns;                   /* accepted and not yet closed (pending ones too) */
    struct serve_pending *pending; /* the acceptor's: accepted, head being screened (max_conn) */
    int n_pending;
    struct pollfd *pfds; /* the acceptor's poll set (max_conn + 1) */
    int listen_fd;
    pthread_t watchdog, accept_thread;
    int watching, accepting;
    volatile int stop_watch, stop_accept;
    struct MHD_Daemon *daemon;
} serve_t;

/* ---- http.c ---- */
/* One request, from its headers to its answer's end. */
typedef struct {
    serve_t *s;
    struct serve_conn *conn;
    mg_buf_t body;
    unsigned status; /* answered, for the log and the metrics */
    int tokens_in, tokens_out;
    double t0;
    char method[16], path[128];
    int fd; /* the client's socket: polled to see it leave */
} serve_req_t;

/* Starts listening (host: a name or an IPv4/IPv6 literal) and the
 * connection watchdog; the port bound is left in *bound. -1 with err. */
int http_start(serve_t *s, const char *host, unsigned port, unsigned *bound, char *err);
/* Stops accepting (closes the listen socket); what is open goes on. */
void http_quiesce(serve_t *s);
/* Closes everything (http_quiesce first if not done). */
void http_stop(serve_t *s);
/* Responses: a JSON body (j is consumed), the OpenAI error shape. header:
 * one more "Name", value pair (NULL: none). */
enum MHD_Result http_json(serve_req_t *r, struct MHD_Connection *c, unsigned status, cJSON *j,
                          const char *header, const char *value);
enum MHD_Result http_error(serve_req_t *r, struct MHD_Connection *c, unsigned status,
                           const char *msg);
enum MHD_Result http_error_h(serve_req_t *r, struct MHD_Connection *c, unsigned status,
                             const char *msg, const char *code, const char *header,
                             const char *value);
/* 1 if the client has closed its end of the connection */
int http_client_gone(int fd);

/* ---- head.c ---- */
/* Screens a request head buf[0..n): 0 while its empty line has not come;
 * -1 if a Content-Length is not a plain non-negative decimal (signs,
 * spaces inside or after it, over 64 bits) or several disagree; else 1. */
int http_head_check(const char *buf, size_t n);

/* ---- api.c ---- */
/* The endpoints behind the routes; body is NUL-terminated. */
enum MHD_Result api_completion(serve_req_t *r, struct MHD_Connection *c, int chat);
enum MHD_Result api_models(serve_req_t *r, struct MHD_Connection *c, const char *id);
enum MHD_Result api_health(serve_req_t *r, struct MHD_Connection *c);
enum MHD_Result api_tokenize(serve_req_t *r, struct MHD_Connection *c);
enum MHD_Result api_detokenize(serve_req_t *r, struct MHD_Connection *c);
enum MHD_Result api_metrics(serve_req_t *r, struct MHD_Connection *c);

#endif
