/* serve.c - `minigpt serve`: the command line of the HTTP server (the
 * server itself is src/serve/: slots and batching, HTTP, the endpoints,
 * metrics). Ctrl-C or SIGTERM: stop taking requests, let the running ones
 * finish (up to --shutdown-timeout, then end them), exit 0. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "infer/chat_template.h"
#include "serve/serve.h"
#include "util/common.h"
#include "web/web.h"
#include "web/web.h"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int cli_serve(const cli_args_t *a, char *err) {
    static serve_t s; /* big; one per process */
    memset(&s, 0, sizeof s);
    s.listen_fd = -1;
    const char *path = a->checkpoint, *host = a->host;
    long port = a->port;
    ckpt_t *ck = NULL;
    int rc = CLI_ERR, blocked = 0, sched = 0;
    sigset_t sigs, old;
    s.cfg = (serve_config_t){.parallel = (int)a->parallel,
                             .queue = (int)a->queue,
                             .max_conn = (int)a->max_conn,
                             .per_client = (int)a->per_client,
                             .header_timeout = (int)a->header_timeout,
                             .body_timeout = (int)a->body_timeout,
                             .shutdown_timeout = (int)a->shutdown_timeout,
                             .max_body = a->max_body,
                             .api_key = a->api_key};
    if (a->api_key && !*a->api_key) {
        mg_fail(err, "--api-key: the key is empty");
        return CLI_USAGE;
    }
    cli_gen_from_args(a, &s.defaults);
    /* SIGINT and SIGTERM wait for sigsuspend in this thread: blocked before
     * any other thread starts (OpenMP's, libmicrohttpd's, the scheduler's),
     * which inherit the mask, so that none of them takes the signal instead */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    blocked = 1;
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-answer is an error return, not a signal */
    if (!path) path = cli_default_checkpoint("models");
    if (!(ck = cli_open_checkpoint(path, &s.defaults, err))) goto done;
    s.ck = ck;
    s.path = path;
    if (!(s.tmpl = chat_template_of(ck, err))) goto done;
    const char *slash = strrchr(path, '/');
    snprintf(s.name, sizeof s.name, "%s", slash ? slash + 1 : path);
    if (!(s.web = web_open(ck, s.name, a->runs, err))) goto done;
    struct stat st;
    s.created = stat(path, &st) == 0 ? (long)st.st_mtime : 0;
    metrics_init(&s.metrics);
    if (sched_start(&s.sched, ck, &s.defaults, s.cfg.parallel, s.cfg.queue, &s.metrics, err))
        goto done;
    sched = 1;
    unsigned bound;
    if (http_start(&s, host, (unsigned)port, &bound, err)) {
        rc = strstr(err, "--host") ? CLI_USAGE : CLI_ERR;
        goto done;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const gpt_config_t *g = &ck->model->cfg;
    int v6 = strchr(host, ':') != NULL;
    printf("minigpt serve: %s (%d layers, dim %d, context %d), %d slots, on http://%s%s%s:%u\n"
           "the app: http://%s%s%s:%u/ ; POST /v1/completions, /v1/chat/completions, /tokenize, "
           "/detokenize; "
           "GET /v1/models, /health, /metrics; Ctrl-C stops\n",
           path, g->layers, g->dim, g->ctx, s.sched.n_slots, v6 ? "[" : "", host, v6 ? "]" : "",
           bound, v6 ? "[" : "", host, v6 ? "]" : "", bound);
    fflush(stdout);
    while (!stop_requested)
        sigsuspend(&old);
    /* no new connections; running requests finish (or are ended), then the rest closes */
    http_quiesce(&s);
    sched_stop(&s.sched, s.cfg.shutdown_timeout);
    sched = 0;
    http_stop(&s);
    printf("minigpt serve: stopped after %ld completion%s\n", s.metrics.completions,
           s.metrics.completions == 1 ? "" : "s");
    rc = CLI_OK;
done:
    if (sched) sched_stop(&s.sched, 0);
    http_stop(&s);
    if (blocked) pthread_sigmask(SIG_SETMASK, &old, NULL);
    metrics_free(&s.metrics);
    web_close(s.web);
    ckpt_free(ck);
    return rc;
}
