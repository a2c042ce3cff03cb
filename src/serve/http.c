/* http.c - the server's HTTP side over libmicrohttpd: one thread per
 * connection; request bodies gathered (up to max_body); deadlines that
 * trickled bytes do not extend (a watchdog shuts down a connection whose
 * headers or body are late); the API key; the routes; one log line per
 * request (method, path, status, tokens, ms) with its metrics; the
 * acceptor, which screens each connection's first request head (head.c). */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"
#include "web/http.h"
#include "web/web.h"

/* An open connection (handed to libmicrohttpd), for the watchdog:
 * deadline 0 while its request is being answered (a generation may take
 * long), else when it must have sent its headers (or its body) by. */
typedef struct serve_conn {
    int fd;
    double deadline;
    int shut;
    struct sockaddr_storage addr; /* the client's, for --max-connections-per-client */
    struct serve_conn *prev, *next;
} serve_conn_t;

static void set_deadline(serve_t *s, serve_conn_t *k, double seconds) {
    if (!k) return;
    pthread_mutex_lock(&s->conns_mu);
    k->deadline = seconds > 0 ? mg_now() + seconds : 0;
    pthread_mutex_unlock(&s->conns_mu);
}

static void *watchdog(void *arg) {
    serve_t *s = arg;
    while (!s->stop_watch) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        double now = mg_now();
        pthread_mutex_lock(&s->conns_mu);
        for (serve_conn_t *k = s->conns; k; k = k->next)
            if (k->deadline > 0 && now > k->deadline && !k->shut) {
                shutdown(k->fd, SHUT_RDWR); /* its thread sees the end and closes it */
                k->shut = 1;
            }
        pthread_mutex_unlock(&s->conns_mu);
    }
    return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe) {
    serve_t *s = cls;
    serve_conn_t *k = *socket_ctx;
    pthread_mutex_lock(&s->conns_mu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && (k = mg_calloc(1, sizeof *k))) {
            k->fd = ci->connect_fd;
            const union MHD_ConnectionInfo *ai =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            if (ai && ai->client_addr) {
                int v6 = ai->client_addr->sa_family == AF_INET6;
                memcpy(&k->addr, ai->client_addr,
                       v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
            }
            k->deadline = mg_now() + s->cfg.header_timeout;
            k->next = s->conns;
            if (s->conns) s->conns->prev = k;
            s->conns = k;
            *socket_ctx = k;
        }
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        s->n_conns--; /* counted by the acceptor */
    }
    if (toe != MHD_CONNECTION_NOTIFY_STARTED && k) {
        if (k->prev)
            k->prev->next = k->next;
        else
            s->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        mg_free(k);
        *socket_ctx = NULL;
    }
    pthread_mutex_unlock(&s->conns_mu);
}

int http_client_gone(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (fd < 0 || poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return 1;
    char ch;
    return (p.revents & POLLIN) && recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

enum MHD_Result http_json(serve_req_t *r, struct MHD_Connection *c, unsigned status, cJSON *j,
                          const char *header, const char *value) {
    struct MHD_Response *resp = web_json_response(j);
    if (!resp) return MHD_NO; /* out of memory: drop the connection */
    if (header) MHD_add_response_header(resp, header, value);
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* OpenAI's error shape: {"error": {"message", "type", "param", "code"}} */
enum MHD_Result http_error_h(serve_req_t *r, struct MHD_Connection *c, unsigned status,
                             const char *msg, const char *code, const char *header,
                             const char *value) {
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type",
                            status >= 500   ? "server_error"
                            : status == 401 ? "authentication_error"
                                            : "invalid_request_error");
    cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    return http_json(r, c, status, j, header, value);
}

enum MHD_Result http_error(serve_req_t *r, struct MHD_Connection *c, unsigned status,
                           const char *msg) {
    return http_error_h(r, c, status, msg, NULL, NULL, NULL);
}

/* constant-time: the key's bytes do not show in the answer's timing */
static int key_ok(const char *got, const char *want) {
    size_t n = strlen(want), m = got ? strlen(got) : 0;
    unsigned char d = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(want[i] ^ (i < m ? got[i] : 0));
    return d == 0;
}

/* What a request may answer before its body: a wrong key, a body too big */
static enum MHD_Result early(serve_req_t *r, struct MHD_Connection *c, const char *url,
                             int *answered) {
    serve_t *s = r->s;
    *answered = 1;
    int get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    if (s->cfg.api_key && strcmp(url, "/health") != 0 && !(get && web_is_asset(url))) {
        const char *auth =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth || strncmp(auth, "Bearer ", 7) != 0 || !key_ok(auth + 7, s->cfg.api_key))
            return http_error_h(r, c, MHD_HTTP_UNAUTHORIZED,
                                auth ? "Incorrect API key provided"
                                     : "Missing API key: send 'Authorization: Bearer KEY'",
                                "invalid_api_key", MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || *end || cl[0] == '-')
            return http_error(r, c, MHD_HTTP_BAD_REQUEST, "malformed Content-Length");
        if (n > s->cfg.max_body) {
            char msg[96];
            snprintf(msg, sizeof msg, "the body is over %zu bytes", s->cfg.max_body);
            return http_error(r, c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
        }
    }
    *answered = 0;
    return MHD_YES;
}

static enum MHD_Result route(serve_req_t *r, struct MHD_Connection *c, const char *url) {
    const char *m = r->method;
    int get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST");
    static const char models[] = "/v1/models/";
    if (!strcmp(url, "/health") || !strcmp(url, "/v1/models") || !strcmp(url, "/metrics") ||
        !strncmp(url, models, sizeof models - 1)) {
        if (!get)
            return http_error_h(r, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET", NULL,
                                MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        if (url[1] == 'h') return api_health(r, c);
        if (url[1] == 'm') return api_metrics(r, c);
        return api_models(r, c, url[sizeof models - 2] == '/' ? url + sizeof models - 1 : NULL);
    }
    static const char *posts[] = {"/v1/completions", "/v1/chat/completions", "/tokenize",
                                  "/detokenize"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(url, posts[i])) continue;
        if (!post)
            return http_error_h(r, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST", NULL,
                                MHD_HTTP_HEADER_ALLOW, "POST");
        if (r->body.oom) return http_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        if (i < 2) return api_completion(r, c, i == 1);
        return i == 2 ? api_tokenize(r, c) : api_detokenize(r, c);
    }
    enum MHD_Result ret;
    unsigned st = web_route(r->s->web, c, url, m, r->body.data, r->body.len, r->body.oom, &ret);
    if (st) {
        r->status = st;
        return ret;
    }
    return http_error_h(
        r, c, MHD_HTTP_NOT_FOUND,
        "no such endpoint (GET /health, /v1/models, /metrics, the app at /; POST "
        "/v1/completions, /v1/chat/completions, /tokenize, /detokenize, /v1/explain)",
        NULL, NULL, NULL);
}

/* libmicrohttpd calls this first when the headers are in (set up; answer
 * early if the key or the size says no), then with each piece of the
 * body, then once more with none: answer then. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    serve_t *s = cls;
    serve_req_t *r = *con_cls;
    (void)version;
    if (!r) {
        if (!(r = mg_calloc(1, sizeof *r))) return MHD_NO;
        *con_cls = r;
        r->s = s;
        r->t0 = mg_now();
        r->fd = -1;
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", url);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->conn = ci ? ci->socket_context : NULL;
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) r->fd = ci->connect_fd;
        set_deadline(s, r->conn, s->cfg.body_timeout);
        int answered;
        enum MHD_Result ret = early(r, c, url, &answered);
        return answered ? ret : MHD_YES;
    }
    if (r->status) { /* answered early: the rest of the body is not read */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->body.len + n > s->cfg.max_body) {
            char msg[96];
            snprintf(msg, sizeof msg, "the body is over %zu bytes", s->cfg.max_body);
            return http_error(r, c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
        }
        mg_buf_put(&r->body, upload,
                   n); /* grows geometrically: bytes trickled one by one stay cheap */
        return MHD_YES;
    }
    set_deadline(s, r->conn, 0);
    if (!r->body.data) mg_buf_put(&r->body, "", 0);
    return route(r, c, url);
}

/* The request's line in the log and its count in the metrics */
static void log_request(serve_t *s, const serve_req_t *r, unsigned status) {
    metrics_request(&s->metrics, status);
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    flockfile(stdout);
    printf("%s %s %s %u tokens %d+%d %.1f ms\n", stamp, r->method, r->path, status, r->tokens_in,
           r->tokens_out, (mg_now() - r->t0) * 1e3);
    fflush(stdout);
    funlockfile(stdout);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    serve_t *s = cls;
    serve_req_t *r = *con_cls;
    (void)c;
    if (!r) return;
    unsigned status = r->status ? r->status : 499; /* 499: the client left before an answer */
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK && status < 400) status = 499;
    log_request(s, r, status);
    set_deadline(s, r->conn, s->cfg.header_timeout); /* keep-alive: the next request's headers */
    mg_free(r->body.data);
    mg_free(r);
    *con_cls = NULL;
}

/* A connection accepted and not yet handed to libmicrohttpd: its head is
 * being screened (http_head_check), by the header deadline. */
typedef struct serve_pending {
    int fd;
    double deadline;
    struct sockaddr_storage addr;
    socklen_t len;
} serve_pending_t;

static int same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family) return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return a->ss_family == AF_INET6 &&
           !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

static void uncount(serve_t *s) {
    pthread_mutex_lock(&s->conns_mu);
    s->n_conns--;
    pthread_mutex_unlock(&s->conns_mu);
}

/* Takes pending connection i out of the list (closing it unless given) */
static void unpend(serve_t *s, int i, int close_it) {
    if (close_it) {
        close(s->pending[i].fd);
        uncount(s);
    }
    s->pending[i] = s->pending[--s->n_pending];
}

/* The answer to a malformed Content-Length: one OpenAI-shaped 400, then
 * the connection closes; logged and counted as any other request. */
static void refuse(serve_t *s, int fd, const char *head /* NUL-terminated */, size_t n) {
    static const char body[] =
        "{\"error\":{\"message\":\"malformed Content-Length: not a plain non-negative "
        "decimal, or several that disagree\",\"type\":\"invalid_request_error\","
        "\"param\":null,\"code\":null}}";
    char msg[512];
    int len = snprintf(
        msg, sizeof msg,
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\n"
        "Content-Length: %zu\r\n\r\n%s",
        sizeof body - 1, body);
    /* a fresh socket's send buffer takes these few hundred bytes at once */
    if (send(fd, msg, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) == len) {
        shutdown(fd, SHUT_WR);
        char sink[4096]; /* bytes left unread would make close() reset the connection, losing the
                            answer */
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
    }
    serve_req_t r = {.s = s, .t0 = mg_now()};
    /* the request line's method and path, for the log (cut to their fields) */
    size_t i = strcspn(head, " \r\n"), m = i < n ? i : n;
    memcpy(r.method, head, m < sizeof r.method ? m : sizeof r.method - 1);
    const char *path = head + (m < n ? m + 1 : n);
    size_t pn = strcspn(path, " \r\n");
    memcpy(r.path, path, pn < sizeof r.path ? pn : sizeof r.path - 1);
    log_request(s, &r, MHD_HTTP_BAD_REQUEST);
}

/* Screens pending connection i, which poll says has news (revents):
 * answers a bad head, hands a good (or too long to screen) one to
 * libmicrohttpd, else waits for more of it. */
static void screen(serve_t *s, int i, short revents) {
    static char head[16384]; /* the acceptor's alone */
    serve_pending_t *q = &s->pending[i];
    ssize_t got = recv(q->fd, head, sizeof head - 1, MSG_PEEK | MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    head[got > 0 ? got : 0] = '\0'; /* for refuse's string functions */
    int v = got > 0 ? http_head_check(head, (size_t)got) : 0;
    if (v < 0) {
        refuse(s, q->fd, head, (size_t)got);
        unpend(s, i, 1);
        return;
    }
    if (v == 0 &&
        (got <= 0 || (revents & (POLLRDHUP | POLLHUP | POLLERR)))) { /* gone, or ended mid-head */
        unpend(s, i, 1);
        return;
    }
    /* peeked bytes stay queued, so poll would report them again at once:
     * it is to wake only when more than these have come */
    int lowat = v == 0 && (size_t)got < sizeof head - 1 ? (int)got + 1 : 1;
    setsockopt(q->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
    if (lowat > 1) return;
    if (MHD_add_connection(s->daemon, q->fd, (struct sockaddr *)&q->addr, q->len) != MHD_YES)
        uncount(s); /* refused (per-client cap): closed, never started */
    unpend(s, i, 0);
}

/* A new connection, pending its head; closed at once when its client
 * holds --max-connections-per-client already. */
static void take(serve_t *s) {
    serve_pending_t q = {.len = sizeof q.addr};
    q.fd = accept4(s->listen_fd, (struct sockaddr *)&q.addr, &q.len, SOCK_CLOEXEC);
    if (q.fd < 0) return;
    unsigned same = 0;
    for (int i = 0; i < s->n_pending; i++)
        same += (unsigned)same_host(&s->pending[i].addr, &q.addr);
    pthread_mutex_lock(&s->conns_mu);
    for (serve_conn_t *k = s->conns; k; k = k->next)
        same += (unsigned)same_host(&k->addr, &q.addr);
    int ok = same < s->cfg.per_client && s->n_pending < (int)s->cfg.max_conn;
    if (ok) s->n_conns++;
    pthread_mutex_unlock(&s->conns_mu);
    if (!ok) {
        close(q.fd);
        return;
    }
    q.deadline = mg_now() + s->cfg.header_timeout;
    s->pending[s->n_pending++] = q;
}

/* The acceptor: takes connections off the listen queue only while fewer
 * than max_conn are open, so that beyond the limit clients wait in the
 * kernel's queue instead of being reset (libmicrohttpd would close them);
 * holds each until its first request's head is in and screened. One poll
 * over the listen socket and the pending ones: nothing here blocks. */
static void *acceptor(void *arg) {
    serve_t *s = arg;
    while (!s->stop_accept) {
        pthread_mutex_lock(&s->conns_mu);
        int room = s->n_conns < (int)s->cfg.max_conn;
        pthread_mutex_unlock(&s->conns_mu);
        struct pollfd *pf = s->pfds;
        pf[0] = (struct pollfd){.fd = room ? s->listen_fd : -1, .events = POLLIN};
        for (int i = 0; i < s->n_pending; i++)
            pf[i + 1] = (struct pollfd){.fd = s->pending[i].fd, .events = POLLIN | POLLRDHUP};
        /* 100 ms: also notices room made by closed connections, and deadlines */
        int ready = poll(pf, (nfds_t)s->n_pending + 1, 100);
        if (s->stop_accept) break;
        double now = mg_now();
        for (int i = s->n_pending - 1; i >= 0; i--) { /* downwards: unpend moves the last into i */
            if (ready > 0 && pf[i + 1].revents)
                screen(s, i, pf[i + 1].revents);
            else if (now > s->pending[i].deadline)
                unpend(s, i, 1);
        }
        if (ready > 0 && (pf[0].revents & POLLIN)) take(s);
    }
    while (s->n_pending > 0)
        unpend(s, s->n_pending - 1, 1);
    return NULL;
}

int http_start(serve_t *s, const char *host, unsigned port, unsigned *bound, char *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    /* names other than localhost would need a resolver: literals only */
    hints.ai_flags = strcmp(host, "localhost") == 0 ? 0 : AI_NUMERICHOST;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
        return mg_fail(err, "serve: --host '%s' is not an IPv4 or IPv6 address (or localhost)",
                       host);
    struct sockaddr_storage addr;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    int v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6)
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port);
    pthread_mutex_init(&s->conns_mu, NULL);
    s->pending = mg_calloc(s->cfg.max_conn ? s->cfg.max_conn : 1, sizeof *s->pending);
    s->pfds = mg_calloc((size_t)s->cfg.max_conn + 1, sizeof *s->pfds);
    if (!s->pending || !s->pfds) return mg_fail(err, "serve: out of memory");
    s->listen_fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->listen_fd < 0 || setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(s->listen_fd, (struct sockaddr *)&addr,
             v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) ||
        listen(s->listen_fd, 1024))
        return mg_fail(err, "serve: cannot listen on %s port %u: %s", host, port, strerror(errno));
    socklen_t alen = sizeof addr;
    getsockname(s->listen_fd, (struct sockaddr *)&addr, &alen);
    *bound = ntohs(v6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                      : ((struct sockaddr_in *)&addr)->sin_port);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT,
        s->cfg.header_timeout + s->cfg.body_timeout, MHD_OPTION_CONNECTION_LIMIT,
        s->cfg.max_conn + 16, MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->cfg.per_client,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)512 * 1024, MHD_OPTION_END);
    if (!s->daemon) return mg_fail(err, "serve: cannot start the HTTP daemon");
    if (pthread_create(&s->watchdog, NULL, watchdog, s) != 0)
        return mg_fail(err, "serve: cannot start a thread");
    s->watching = 1;
    if (pthread_create(&s->accept_thread, NULL, acceptor, s) != 0)
        return mg_fail(err, "serve: cannot start a thread");
    s->accepting = 1;
    return 0;
}

void http_quiesce(serve_t *s) {
    if (s->accepting) {
        s->stop_accept = 1;
        pthread_join(s->accept_thread, NULL);
        s->accepting = 0;
    }
    if (s->listen_fd >= 0) close(s->listen_fd);
    s->listen_fd = -1;
    mg_free(s->pending);
    mg_free(s->pfds);
    s->pending = NULL;
    s->pfds = NULL;
}

void http_stop(serve_t *s) {
    http_quiesce(s);
    if (s->daemon) MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->watching) {
        s->stop_watch = 1;
        pthread_join(s->watchdog, NULL);
        s->watching = 0;
    }
}
