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

static const char usage[] =
    "usage: minigpt serve [options]\n"
    "  --checkpoint FILE  model to serve (default models/best_model.safetensors,\n"
    "                     else models/mini_gpt.safetensors)\n"
    "  --host ADDR        IPv4 or IPv6 address, or localhost (default 127.0.0.1)\n"
    "  --port N           TCP port (default 8080; 0: any free port, printed)\n"
    "  --parallel N       slots: requests generated at once, batched into one forward\n"
    "                     pass per token (default: what fits a quarter of the free\n"
    "                     memory, 2 to 16)\n"
    "  --queue N          requests waiting for a slot before 503 + Retry-After (64)\n"
    "  --api-key KEY      require 'Authorization: Bearer KEY' (all but /health)\n"
    "  --max-connections N             open connections; more wait to be accepted (1024)\n"
    "  --max-connections-per-client N  per client address; more are refused (512)\n"
    "  --header-timeout S a request's headers must be in within S s of the connection's\n"
    "                     start or its previous answer; bytes do not extend it (10)\n"
    "  --body-timeout S   its body within S s of its headers (30)\n"
    "  --max-body BYTES   request bodies past this get 413 (1048576)\n"
    "  --shutdown-timeout S  on SIGTERM, running requests get S s to finish (10)\n"
    "  --max-tokens N --temperature T --top-k K --top-p P --repeat-penalty P\n"
    "  --repeat-last-n N --stop STR --seed S --quantize q8\n"
    "                     defaults for the requests' fields (as in generate)\n"
    "  --threads N        CPU threads (default: all cores)\n"
    CLI_DEVICE_HELP
    "Endpoints (docs/server.md): GET /health, /v1/models, /v1/models/ID, /metrics;\n"
    "POST /v1/completions, /v1/chat/completions (OpenAI's API), /tokenize,\n"
    "/detokenize (llama.cpp's). One log line per request on stdout.\n";

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

enum {
    OPT_PARALLEL = 0x200, OPT_QUEUE, OPT_API_KEY, OPT_MAX_CONN, OPT_PER_CLIENT, OPT_HEADER_TIMEOUT,
    OPT_BODY_TIMEOUT, OPT_MAX_BODY, OPT_SHUTDOWN_TIMEOUT
};

int cli_serve(int argc, char **argv, char *err) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'},
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'o'},
        {"parallel", required_argument, 0, OPT_PARALLEL},
        {"queue", required_argument, 0, OPT_QUEUE},
        {"api-key", required_argument, 0, OPT_API_KEY},
        {"max-connections", required_argument, 0, OPT_MAX_CONN},
        {"max-connections-per-client", required_argument, 0, OPT_PER_CLIENT},
        {"header-timeout", required_argument, 0, OPT_HEADER_TIMEOUT},
        {"body-timeout", required_argument, 0, OPT_BODY_TIMEOUT},
        {"max-body", required_argument, 0, OPT_MAX_BODY},
        {"shutdown-timeout", required_argument, 0, OPT_SHUTDOWN_TIMEOUT},
        CLI_GEN_OPTIONS,
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static serve_t s; /* big; one per process */
    memset(&s, 0, sizeof s);
    s.listen_fd = -1;
    const char *path = NULL, *host = "127.0.0.1";
    long port = 8080, v;
    ckpt_t *ck = NULL;
    int rc = CLI_ERR, c, blocked = 0, sched = 0;
    sigset_t sigs, old;
    s.cfg = (serve_config_t){.parallel = 0, .queue = 64, .max_conn = 1024, .per_client = 512, .header_timeout = 10,
                             .body_timeout = 30, .shutdown_timeout = 10, .max_body = 1 << 20};
    cli_gen_defaults(&s.defaults);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = cli_gen_flag(c, optarg, &s.defaults, err);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'c': path = optarg; break;
        case 'H': host = optarg; break;
        case 'o':
            if (cli_int("port", optarg, 0, 65535, &port, err)) return CLI_USAGE;
            break;
#define NUM(flag, lo, hi, field)                                                                   \
    if (cli_int(flag, optarg, lo, hi, &v, err)) return CLI_USAGE;                                  \
    field = v;                                                                                     \
    break
        case OPT_PARALLEL: NUM("parallel", 1, 256, s.cfg.parallel);
        case OPT_QUEUE: NUM("queue", 0, 1 << 20, s.cfg.queue);
        case OPT_MAX_CONN: NUM("max-connections", 1, 1 << 16, s.cfg.max_conn);
        case OPT_PER_CLIENT: NUM("max-connections-per-client", 1, 1 << 16, s.cfg.per_client);
        case OPT_HEADER_TIMEOUT: NUM("header-timeout", 1, 3600, s.cfg.header_timeout);
        case OPT_BODY_TIMEOUT: NUM("body-timeout", 1, 3600, s.cfg.body_timeout);
        case OPT_MAX_BODY: NUM("max-body", 1, 1L << 30, s.cfg.max_body);
        case OPT_SHUTDOWN_TIMEOUT: NUM("shutdown-timeout", 0, 3600, s.cfg.shutdown_timeout);
#undef NUM
        case OPT_API_KEY:
            if (!*optarg) {
                mg_fail(err, "--api-key: the key is empty");
                return CLI_USAGE;
            }
            s.cfg.api_key = optarg;
            break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_bad_option("serve", c, argv, err);
        }
    }
    if (optind < argc) {
        mg_fail(err, "serve: unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if (s.defaults.show_tokens) {
        mg_fail(err, "serve: --show-tokens is for generate");
        return CLI_USAGE;
    }
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
    ops_cpu_set_threads((int)s.defaults.threads);
    s.ck = ck;
    s.path = path;
    if (!(s.tmpl = chat_template_of(ck, err))) goto done;
    const char *slash = strrchr(path, '/');
    snprintf(s.name, sizeof s.name, "%s", slash ? slash + 1 : path);
    struct stat st;
    s.created = stat(path, &st) == 0 ? (long)st.st_mtime : 0;
    metrics_init(&s.metrics);
    if (sched_start(&s.sched, ck, &s.defaults, s.cfg.parallel, s.cfg.queue, &s.metrics, err)) goto done;
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
           "POST /v1/completions, /v1/chat/completions, /tokenize, /detokenize; GET /v1/models, /health, "
           "/metrics; Ctrl-C stops\n",
           path, g->layers, g->dim, g->ctx, s.sched.n_slots, v6 ? "[" : "", host, v6 ? "]" : "", bound);
    fflush(stdout);
    while (!stop_requested) sigsuspend(&old);
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
    ckpt_free(ck);
    return rc;
}
