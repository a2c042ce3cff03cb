/* dashboard.c - the training dashboard's server (see dashboard.h). One
 * thread per connection (libmicrohttpd's): a page's event stream blocks
 * on a condition variable until the trainer publishes, instead of polling. */
#define _POSIX_C_SOURCE 200809L
#include "web/dashboard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "infer/generate.h"
#include "util/common.h"
#include "web/http.h"

#define SAMPLE_PROMPT "O Brasil é" /* the corpus is Portuguese */
enum { SAMPLE_TOKENS = 48, PING_S = 10 };

struct dash {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **events; /* every event so far as "data: {...}\n\n" (owned) */
    size_t n, cap;
    int ended, oom;
    int clients; /* streams open: dash_stop lets them read "end" first */
};

/* one page's stream: the next event and the bytes of it already sent */
typedef struct {
    dash_t *d;
    size_t next, off;
} client_t;

static void publish(dash_t *d, cJSON *j) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    size_t len = s ? strlen(s) : 0;
    char *ev = s ? mg_malloc(len + 9) : NULL;
    if (ev) snprintf(ev, len + 9, "data: %s\n\n", s);
    cJSON_free(s);
    pthread_mutex_lock(&d->mu);
    if (ev && d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        char **e = mg_realloc(d->events, cap * sizeof *e);
        if (e) {
            d->events = e;
            d->cap = cap;
        }
    }
    if (ev && d->n < d->cap)
        d->events[d->n++] = ev;
    else {
        d->oom = 1; /* the pages miss this event; training goes on */
        mg_free(ev);
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    client_t *cl = cls;
    dash_t *d = cl->d;
    (void)pos;
    pthread_mutex_lock(&d->mu);
    if (cl->next == d->n && !d->ended) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += PING_S;
        while (cl->next == d->n && !d->ended)
            if (pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT) break;
    }
    ssize_t n;
    if (cl->next < d->n) {
        const char *ev = d->events[cl->next];
        size_t left = strlen(ev) - cl->off;
        n = (ssize_t)MG_MIN(left, max);
        memcpy(buf, ev + cl->off, (size_t)n);
        cl->off += (size_t)n;
        if (cl->off == strlen(ev)) {
            cl->next++;
            cl->off = 0;
        }
    } else if (d->ended) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else { /* a comment line keeps proxies and the browser from timing out */
        static const char ping[] = ": ping\n\n";
        n = (ssize_t)MG_MIN(sizeof ping - 1, max);
        memcpy(buf, ping, (size_t)n);
    }
    pthread_mutex_unlock(&d->mu);
    return n;
}

static void sse_free(void *cls) {
    client_t *cl = cls;
    pthread_mutex_lock(&cl->d->mu);
    cl->d->clients--;
    pthread_cond_broadcast(&cl->d->cv);
    pthread_mutex_unlock(&cl->d->mu);
    mg_free(cl);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    dash_t *d = cls;
    (void)version, (void)upload;
    if (!*con_cls) { /* the first call, headers only */
        *con_cls = d;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* nothing here takes a body */
        return MHD_YES;
    }
    enum MHD_Result ret;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return web_send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET", "GET");
    if (strcmp(url, "/v1/app") == 0) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "mode", "train");
        return web_send_json(c, MHD_HTTP_OK, j);
    }
    if (strcmp(url, "/v1/train/events") == 0) {
        client_t *cl = mg_calloc(1, sizeof *cl);
        if (!cl) return MHD_NO;
        cl->d = d;
        pthread_mutex_lock(&d->mu);
        d->clients++;
        pthread_mutex_unlock(&d->mu);
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, cl, sse_free);
        if (!r) {
            sse_free(cl);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strncmp(url, "/v1/", 4) != 0 && web_send_asset(c, url, &ret) == 0) return ret;
    return web_send_error(c, MHD_HTTP_NOT_FOUND, "no such page (GET /, GET /v1/train/events)",
                          NULL);
}

dash_t *dash_start(const char *host, int port, char *err) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        mg_fail(err, "dashboard: '%s' is not an IPv4 address", host);
        return NULL;
    }
    dash_t *d = mg_calloc(1, sizeof *d);
    if (!d) {
        mg_fail(err, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                            (uint16_t)port, NULL, NULL, on_request, d, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, 16u,
                            MHD_OPTION_END);
    if (!d->d) {
        mg_fail(err, "dashboard: cannot listen on %s:%d: %s", host, port,
                strerror(errno ? errno : EADDRINUSE));
        dash_stop(d);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->d, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info ? info->port : port;
    return d;
}

int dash_port(const dash_t *d) { return d->port; }

static void on_text(void *ctx, const char *bytes, size_t n) { mg_buf_put(ctx, bytes, n); }

/* SAMPLE_PROMPT continued by the model in training (mg_malloc'd), NULL
 * when it cannot be made (out of memory): the dashboard then shows none */
static char *sample(gpt_model_t *m, const bpe_t *tok) {
    char err[MG_ERR_LEN];
    int32_t *ids = NULL;
    size_t n = 0;
    mg_buf_t text = {0};
    mg_buf_put(&text, SAMPLE_PROMPT, strlen(SAMPLE_PROMPT));
    kv_state_t *kv = kv_create(m, err);
    if (!kv || bpe_encode(tok, SAMPLE_PROMPT, strlen(SAMPLE_PROMPT), &ids, &n, err) != 0) goto fail;
    mg_rng_t rng;
    mg_rng_seed(&rng, 42);
    gen_opts_t go = {.sample = {0.8f, 40, 0.95f},
                     .max_tokens = SAMPLE_TOKENS,
                     .rng = &rng,
                     .on_text = on_text,
                     .ctx = &text};
    gen_stats_t st;
    int n_in = (int)MG_MIN(n, (size_t)m->cfg.ctx);
    if (gen_run(kv, tok, ids, n_in, &go, &st, err) != 0 || text.oom) goto fail;
    kv_free(kv);
    mg_free(ids);
    return text.data;
fail:
    kv_free(kv);
    mg_free(ids);
    mg_free(text.data);
    return NULL;
}

void dash_event(dash_t *d, const train_event_t *e) {
    if (!d) return;
    cJSON *j = cJSON_CreateObject();
    switch (e->kind) {
    case TE_STEP:
        cJSON_AddStringToObject(j, "type", "step");
        cJSON_AddNumberToObject(j, "step", (double)e->step);
        cJSON_AddNumberToObject(j, "total", (double)e->total_steps);
        cJSON_AddNumberToObject(j, "epoch", e->epoch);
        cJSON_AddNumberToObject(j, "loss", e->loss);
        cJSON_AddNumberToObject(j, "lr", e->lr);
        cJSON_AddNumberToObject(j, "grad_norm", e->grad_norm);
        cJSON_AddNumberToObject(j, "tok_per_s", e->tok_per_s);
        cJSON_AddNumberToObject(j, "elapsed_s", e->elapsed_s);
        cJSON_AddNumberToObject(j, "eta_s", e->eta_s);
        break;
    case TE_EVAL: {
        cJSON_AddStringToObject(j, "type", "eval");
        cJSON_AddNumberToObject(j, "step", (double)e->step);
        cJSON_AddNumberToObject(j, "loss", e->loss);
        cJSON_AddNumberToObject(j, "val_loss", e->val_loss);
        cJSON_AddNumberToObject(j, "val_bpb", e->val_bpb);
        char *s = e->model && e->tok ? sample(e->model, e->tok) : NULL;
        if (s) cJSON_AddStringToObject(j, "sample", s);
        mg_free(s);
        break;
    }
    case TE_INFO:
    case TE_SAVE:
        cJSON_AddStringToObject(j, "type", e->kind == TE_SAVE ? "save" : "info");
        cJSON_AddStringToObject(j, "msg", e->msg ? e->msg : "");
        cJSON_AddNumberToObject(j, "step", (double)e->step);
        break;
    case TE_EPOCH:
        cJSON_AddStringToObject(j, "type", "epoch");
        cJSON_AddNumberToObject(j, "step", (double)e->step);
        cJSON_AddNumberToObject(j, "epoch", e->epoch);
        cJSON_AddNumberToObject(j, "loss", e->loss);
        break;
    }
    publish(d, j);
}

void dash_stop(dash_t *d) {
    if (!d) return;
    if (d->d) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "type", "end");
        publish(d, j);
        pthread_mutex_lock(&d->mu);
        d->ended = 1;
        pthread_cond_broadcast(&d->cv);
        struct timespec until; /* up to 2 s for the pages to take "end" and close */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 2;
        while (d->clients > 0)
            if (pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT) break;
        pthread_mutex_unlock(&d->mu);
        MHD_stop_daemon(d->d);
    }
    for (size_t i = 0; i < d->n; i++)
        mg_free(d->events[i]);
    mg_free(d->events);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    mg_free(d);
}
