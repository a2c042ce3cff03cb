/* serve.c - `minigpt serve`: a checkpoint behind HTTP (libmicrohttpd), with
 * the OpenAI completions API that llama.cpp's server also speaks:
 *   GET  /health          {"status":"ok", ...}
 *   GET  /v1/models       the one model served
 *   POST /v1/completions  {"prompt": ..., "max_tokens": ..., ...} -> text
 * Requests are answered one at a time: libmicrohttpd's internal polling
 * thread runs them in turn, and they share one KV cache, reset for each; a
 * streamed completion holds it until its end (others get 503 meanwhile). */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "infer/generate.h"
#include "util/common.h"
#include "web/web.h"

static const char usage[] =
    "usage: minigpt serve [options]\n"
    "  --checkpoint FILE  model to serve (default models/best_model.safetensors,\n"
    "                     else models/mini_gpt.safetensors)\n"
    "  --host ADDR        IPv4 address to listen on (default 127.0.0.1)\n"
    "  --port N           TCP port (default 8080; 0: any free port, printed)\n"
    "  --max-tokens N --temperature T --top-k K --top-p P --repeat-penalty P\n"
    "  --repeat-last-n N --stop STR --quantize q8\n"
    "                     defaults for the requests' fields (as in generate)\n"
    "  --threads N        CPU threads (default: all cores)\n"
    "  --runs DIR         the app's training view compares the runs in DIR (its\n"
    "                     train_log.jsonl and its subfolders')\n"
    CLI_DEVICE_HELP
    "Endpoints: GET /health, GET /v1/models, POST /v1/completions with a JSON body:\n"
    "  prompt (string, required), max_tokens, temperature, top_p, top_k, seed,\n"
    "  stop (a string or a list of up to 4; the text ends before it), repeat_penalty,\n"
    "  repeat_last_n, stream (true: server-sent events as the tokens come); n > 1,\n"
    "  echo, logprobs, suffix, best_of, logit_bias and the presence and frequency\n"
    "  penalties are refused. Ctrl-C or SIGTERM stops the server.\n";

enum { MAX_BODY = 1 << 20 }; /* request bodies past this get 413 */

typedef struct {
    const ckpt_t *ck;
    kv_state_t *kv;
    char name[256]; /* the model's id: its file name */
    cli_gen_opts_t defaults;
    long served;   /* completions sent whole */
    long accepted; /* completions begun: their ids and default seeds */
    void *busy; /* the streamed completion in progress, NULL when none */
    web_t *web; /* the browser app: /, its files, /v1/explain, /v1/runs */
} server_t;

/* one request's body, gathered as libmicrohttpd hands it over */
typedef struct {
    char *data;
    size_t len;
    int too_big, oom;
} body_t;

static void on_text(void *ctx, const char *bytes, size_t n) { mg_buf_put(ctx, bytes, n); }

/* header (NULL: none) is one more "Name", value pair for the response */
static enum MHD_Result send_json_h(struct MHD_Connection *c, unsigned status, cJSON *j, const char *header,
                                   const char *value) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) return MHD_NO; /* out of memory: drop the connection */
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_COPY);
    cJSON_free(s);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (header) MHD_add_response_header(r, header, value);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j) {
    return send_json_h(c, status, j, NULL, NULL);
}

/* the OpenAI error shape: {"error": {"message": ..., "type": ...}}, with
 * the header a 405 (Allow) or a 503 (Retry-After) should carry */
static enum MHD_Result send_error_h(struct MHD_Connection *c, unsigned status, const char *msg,
                                    const char *header, const char *value) {
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", status >= 500 ? "server_error" : "invalid_request_error");
    return send_json_h(c, status, j, header, value);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    return send_error_h(c, status, msg, NULL, NULL);
}

/* An optional number field within [lo, hi]: 0 (absent or set), -1 (err set). */
static int field_num(const cJSON *req, const char *key, double lo, double hi, double *out, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return mg_fail(err, "'%s' must be a number from %g to %g", key, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int field_int(const cJSON *req, const char *key, double lo, double hi, long *out, char *err) {
    double d = (double)*out;
    if (field_num(req, key, lo, hi, &d, err)) return -1;
    if (d != floor(d)) return mg_fail(err, "'%s' must be a whole number", key);
    *out = (long)d;
    return 0;
}

/* The request's settings over the server's defaults, and whether it asks
 * for a stream; -1 with err for a field that is malformed or asks for
 * what is not supported. */
static int parse_request(const cJSON *req, cli_gen_opts_t *o, const char **prompt, int *streamed, char *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
    if (!cJSON_IsString(p) || !*p->valuestring)
        return mg_fail(err, "'prompt' must be a non-empty string (or a list of one)");
    *prompt = p->valuestring;
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(req, "stream");
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream)) return mg_fail(err, "'stream' must be true or false");
    *streamed = cJSON_IsTrue(stream);
    long n = 1;
    if (field_int(req, "n", 1, 1, &n, err)) return mg_fail(err, "'n' must be 1: one completion per request");
    if (field_int(req, "max_tokens", 0, 1 << 24, &o->max_tokens, err) ||
        field_num(req, "temperature", 0, 100, &o->temperature, err) ||
        field_num(req, "top_p", 0, 1, &o->top_p, err) ||
        field_int(req, "top_k", 0, 1 << 24, &o->top_k, err) ||
        field_int(req, "seed", -1, 9007199254740991.0, &o->seed, err) || /* -1: random */
        field_num(req, "repeat_penalty", 0.01, 100, &o->repeat_penalty, err) ||
        field_int(req, "repeat_last_n", 1, 1 << 20, &o->repeat_last_n, err))
        return -1;
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(req, "stop"), *item;
    if (stop && !cJSON_IsNull(stop)) {
        int k = 0;
        if (cJSON_IsString(stop)) {
            o->stop[k++] = stop->valuestring;
        } else if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop) <= GEN_MAX_STOPS) {
            cJSON_ArrayForEach(item, stop) o->stop[k++] = cJSON_IsString(item) ? item->valuestring : "";
        } else {
            return mg_fail(err, "'stop' must be a string or a list of up to 4");
        }
        for (int i = 0; i < k; i++)
            if (!*o->stop[i]) return mg_fail(err, "'stop' strings must be non-empty strings");
        for (int i = k; i < GEN_MAX_STOPS; i++) o->stop[i] = NULL;
    }
    /* fields of the API whose meaning this server does not give: refused
     * rather than ignored, so that a client never reads a wrong answer */
    static const char *unsupported[] = {"echo", "logprobs", "suffix", "best_of", "logit_bias",
                                        "presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, unsupported[i]);
        const char *k = unsupported[i];
        int neutral = !v || cJSON_IsNull(v) || cJSON_IsFalse(v) || (cJSON_IsObject(v) && !v->child) ||
                      (cJSON_IsString(v) && !*v->valuestring) ||
                      (cJSON_IsNumber(v) && v->valuedouble == (strcmp(k, "best_of") ? 0 : 1) && strcmp(k, "logprobs"));
        if (!neutral) return mg_fail(err, "'%s' is not supported", k);
    }
    return 0;
}

/* One completion, from the parsed request to the last byte sent: built
 * by complete(), run to its end there, or (stream) a token at a time by
 * stream_read as the client takes the events. */
typedef struct {
    server_t *s;
    cJSON *req; /* kept: o.stop points into it */
    cli_gen_opts_t o;
    int32_t *ids;
    int n, stream;
    long seed;
    char id[48];
    mg_rng_t rng;
    gen_opts_t go;
    gen_stats_t st;
    gen_t g;
    mg_buf_t text; /* generated text not yet sent */
    mg_buf_t out;  /* stream: event bytes not yet handed over, from `sent` on */
    size_t sent;
    int ended;   /* stream: 1 when the final event is queued, 2 after [DONE] */
    size_t hold; /* stream: bytes held back, in case a stop string starts there */
} job_t;

/* OpenAI's answer ends before its stop string: the length of the text up
 * to the first stop string in it (all of it when none, or when the
 * generation ended for another reason) */
static size_t stop_cut(const job_t *j) {
    size_t cut = j->text.len;
    if (j->st.stop != GEN_STOP_STRING || !j->text.data) return cut;
    for (int k = 0; k < GEN_MAX_STOPS && j->o.stop[k]; k++) {
        const char *at = strstr(j->text.data, j->o.stop[k]);
        if (at && (size_t)(at - j->text.data) < cut) cut = (size_t)(at - j->text.data);
    }
    return cut;
}

static void job_free(job_t *j) {
    if (!j) return;
    gen_end(&j->g);
    if (j->s->busy == j) j->s->busy = NULL;
    cJSON_Delete(j->req);
    mg_free(j->ids);
    mg_free(j->text.data);
    mg_free(j->out.data);
    mg_free(j);
}

/* The response object (final: with usage, seed and timings) or a streamed
 * chunk of it: the text so far, and finish_reason once it has ended. */
static cJSON *job_json(const job_t *j, const char *text, int final) {
    const gen_stats_t *st = &j->st;
    cJSON *res = cJSON_CreateObject(), *choice = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "id", j->id);
    cJSON_AddStringToObject(res, "object", "text_completion");
    cJSON_AddNumberToObject(res, "created", (double)time(NULL));
    cJSON_AddStringToObject(res, "model", j->s->name);
    cJSON_AddNumberToObject(choice, "index", 0);
    cJSON_AddStringToObject(choice, "text", text);
    cJSON_AddNullToObject(choice, "logprobs");
    if (final)
        cJSON_AddStringToObject(choice, "finish_reason",
                                st->stop == GEN_STOP_EOS || st->stop == GEN_STOP_STRING ? "stop" : "length");
    else
        cJSON_AddNullToObject(choice, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(res, "choices"), choice);
    if (!final) return res;
    cJSON *usage = cJSON_AddObjectToObject(res, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", st->prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", st->new_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", st->prompt_tokens + st->new_tokens);
    /* beyond OpenAI's fields: the seed (to repeat a draw) and llama.cpp's timings */
    cJSON_AddNumberToObject(res, "seed", (double)j->seed);
    cJSON *tm = cJSON_AddObjectToObject(res, "timings");
    cJSON_AddNumberToObject(tm, "prompt_ms", st->prefill_s * 1e3);
    cJSON_AddNumberToObject(tm, "predicted_ms", st->decode_s * 1e3);
    cJSON_AddNumberToObject(tm, "predicted_per_second", st->decode_s > 0 ? st->new_tokens / st->decode_s : 0);
    return res;
}

static void job_log(const job_t *j) {
    printf("POST /v1/completions%s: %d prompt tokens, %d new in %.3f s (%s)\n",
           j->stream ? " (stream)" : "", j->st.prompt_tokens, j->st.new_tokens,
           j->st.prefill_s + j->st.decode_s, gen_stop_name(j->st.stop));
    fflush(stdout);
}

/* one server-sent event: "data: <json>\n\n" */
static void put_event(job_t *j, cJSON *chunk) {
    char *s = chunk ? cJSON_PrintUnformatted(chunk) : NULL;
    cJSON_Delete(chunk);
    if (!s) {
        j->out.oom = 1;
        return;
    }
    mg_buf_put(&j->out, "data: ", 6);
    mg_buf_put(&j->out, s, strlen(s));
    mg_buf_put(&j->out, "\n\n", 2);
    cJSON_free(s);
}

/* libmicrohttpd asks for the next bytes of a streamed response: tokens are
 * generated until some text is ready (or the end), sent as OpenAI's
 * completion chunks, then a final chunk with finish_reason and usage, then
 * "data: [DONE]". */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    job_t *j = cls;
    (void)pos;
    while (j->sent == j->out.len) {
        j->out.len = j->sent = 0;
        if (j->ended == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        if (j->ended == 1) {
            mg_buf_put(&j->out, "data: [DONE]\n\n", 14);
            j->ended = 2;
        } else {
            char err[MG_ERR_LEN];
            int r;
            /* until some text can go: all of it but the bytes a stop
             * string might start in, cut before a whole character */
            size_t go = 0;
            while ((r = gen_next(&j->g, err)) > 0) {
                go = j->text.len > j->hold ? j->text.len - j->hold : 0;
                while (go > 0 && (j->text.data[go] & 0xC0) == 0x80) go--;
                if (go > 0) break;
            }
            if (r < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
            if (r == 0) go = stop_cut(j); /* the end: everything before a stop string */
            if (go > 0) {
                char keep = j->text.data[go];
                j->text.data[go] = 0;
                put_event(j, job_json(j, j->text.data, 0));
                j->text.data[go] = keep;
                memmove(j->text.data, j->text.data + go, j->text.len - go + 1);
                j->text.len -= go;
            }
            if (r == 0) {
                put_event(j, job_json(j, "", 1));
                j->ended = 1;
                j->s->served++;
                job_log(j);
            }
        }
        if (j->out.oom || j->text.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = MG_MIN(max, j->out.len - j->sent);
    memcpy(buf, j->out.data + j->sent, n);
    j->sent += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) { job_free(cls); }

/* POST /v1/completions */
static enum MHD_Result complete(server_t *s, struct MHD_Connection *c, const body_t *b) {
    char err[MG_ERR_LEN];
    const char *prompt = NULL;
    size_t n = 0;
    int ctx = s->ck->model->cfg.ctx;
    enum MHD_Result ret;
    job_t *j = mg_calloc(1, sizeof *j);
    if (!j) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    j->s = s;
    j->o = s->defaults;
    j->req = cJSON_ParseWithLength(b->data ? b->data : "", b->len);
    if (!cJSON_IsObject(j->req)) {
        ret = send_error(c, MHD_HTTP_BAD_REQUEST, "the body must be a JSON object");
        goto done;
    }
    if (parse_request(j->req, &j->o, &prompt, &j->stream, err)) {
        ret = send_error(c, MHD_HTTP_BAD_REQUEST, err);
        goto done;
    }
    if (s->busy) { /* one KV cache: a streamed completion holds it until its end */
        ret = send_error_h(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy with a streamed completion; retry",
                           MHD_HTTP_HEADER_RETRY_AFTER, "1");
        goto done;
    }
    if (bpe_encode(s->ck->tok, prompt, strlen(prompt), &j->ids, &n, err) != 0) {
        ret = send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, err);
        goto done;
    }
    if (n > (size_t)ctx) {
        snprintf(err, sizeof err, "the prompt is %zu tokens long but the model's context is %d", n, ctx);
        ret = send_error(c, MHD_HTTP_BAD_REQUEST, err);
        goto done;
    }
    j->n = (int)n;
    long k = ++s->accepted;
    j->seed = j->o.seed >= 0 ? j->o.seed : (long)(((uint64_t)time(NULL) ^ ((uint64_t)k * 0x9E3779B97F4A7C15ull)) >> 1);
    snprintf(j->id, sizeof j->id, "cmpl-%ld", k);
    mg_rng_seed(&j->rng, (uint64_t)j->seed);
    j->go = (gen_opts_t){.sample = {(float)j->o.temperature, (int)j->o.top_k, (float)j->o.top_p},
                         .max_tokens = (int)j->o.max_tokens, .rng = &j->rng, .on_text = on_text,
                         .ctx = &j->text, .repeat_penalty = (float)j->o.repeat_penalty,
                         .repeat_last_n = (int)j->o.repeat_last_n,
                         .stop = {j->o.stop[0], j->o.stop[1], j->o.stop[2], j->o.stop[3]}};
    for (int i = 0; i < GEN_MAX_STOPS && j->o.stop[i]; i++) j->hold = MG_MAX(j->hold, strlen(j->o.stop[i]) - 1);
    kv_reset(s->kv);
    if (gen_begin(&j->g, s->kv, s->ck->tok, j->ids, j->n, &j->go, &j->st, err) != 0) {
        ret = send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, err);
        goto done;
    }
    if (j->stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j,
                                                                   stream_free);
        if (!r) {
            ret = MHD_NO;
            goto done;
        }
        s->busy = j; /* stream_free (at the end, or when the client leaves) frees j */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    int r;
    while ((r = gen_next(&j->g, err)) > 0) {}
    if (r < 0 || j->text.oom) {
        ret = send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, j->text.oom ? "out of memory" : err);
        goto done;
    }
    s->served++;
    job_log(j);
    if (j->text.data) j->text.data[stop_cut(j)] = 0;
    ret = send_json(c, MHD_HTTP_OK, job_json(j, j->text.data ? j->text.data : "", 1));
done:
    job_free(j);
    return ret;
}

static enum MHD_Result route(server_t *s, struct MHD_Connection *c, const char *url, const char *method,
                             const body_t *b) {
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0 || strcmp(url, "/v1/models") == 0) {
        if (!get) return send_error_h(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET", MHD_HTTP_HEADER_ALLOW, "GET");
        cJSON *j = cJSON_CreateObject();
        if (url[1] == 'h') {
            cJSON_AddStringToObject(j, "status", "ok");
            cJSON_AddStringToObject(j, "model", s->name);
            cJSON_AddNumberToObject(j, "completions_served", (double)s->served);
            return send_json(c, MHD_HTTP_OK, j);
        }
        const gpt_config_t *g = &s->ck->model->cfg;
        cJSON_AddStringToObject(j, "object", "list");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", s->name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddStringToObject(m, "owned_by", "minigpt");
        cJSON_AddNumberToObject(m, "context_length", g->ctx);
        cJSON_AddNumberToObject(m, "vocab_size", g->vocab);
        cJSON_AddNumberToObject(m, "n_layers", g->layers);
        cJSON_AddNumberToObject(m, "d_model", g->dim);
        cJSON_AddNumberToObject(m, "parameters", (double)s->ck->model->num_floats);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "data"), m);
        return send_json(c, MHD_HTTP_OK, j);
    }
    if (strcmp(url, "/v1/completions") == 0) {
        if (!post) return send_error_h(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST", MHD_HTTP_HEADER_ALLOW, "POST");
        if (b->too_big) return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is over 1 MiB");
        if (b->oom) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return complete(s, c, b);
    }
    enum MHD_Result ret;
    if (web_route(s->web, c, url, method, b->data, b->len, b->too_big || b->oom, &ret)) return ret;
    return send_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint (GET /health, GET /v1/models, POST /v1/completions)");
}

/* libmicrohttpd calls this first with no data (set up the body), then with
 * each piece of the upload, then once more with none: answer then. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls) {
    (void)version;
    body_t *b = *con_cls;
    if (!b) {
        if (!(b = mg_calloc(1, sizeof *b))) return MHD_NO;
        *con_cls = b;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (b->too_big || b->oom) return MHD_YES; /* drain it, answer at the end */
        if (b->len + n > MAX_BODY) {
            b->too_big = 1;
            return MHD_YES;
        }
        char *d = mg_realloc(b->data, b->len + n + 1);
        if (!d) {
            b->oom = 1;
            return MHD_YES;
        }
        memcpy(d + b->len, upload, n);
        b->data = d;
        b->len += n;
        b->data[b->len] = 0;
        return MHD_YES;
    }
    return route(cls, c, url, method, b);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    body_t *b = *con_cls;
    if (b) mg_free(b->data);
    mg_free(b);
    *con_cls = NULL;
}

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int cli_serve(int argc, char **argv, char *err) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'},
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'o'},
        {"runs", required_argument, 0, 'u'},
        CLI_GEN_OPTIONS,
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    server_t s = {0};
    const char *path = NULL, *host = "127.0.0.1", *runs = NULL;
    long port = 8080;
    struct MHD_Daemon *d = NULL;
    ckpt_t *ck = NULL;
    int rc = CLI_ERR, c, blocked = 0;
    sigset_t sigs, old;
    cli_gen_defaults(&s.defaults);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int r = cli_gen_flag(c, optarg, &s.defaults, err);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        switch (c) {
        case 'c': path = optarg; break;
        case 'H': host = optarg; break;
        case 'u': runs = optarg; break;
        case 'o':
            if (cli_int("port", optarg, 0, 65535, &port, err)) return CLI_USAGE;
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
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        mg_fail(err, "serve: --host '%s' is not an IPv4 address", host);
        return CLI_USAGE;
    }
    /* SIGINT and SIGTERM wait for sigsuspend in this thread: blocked before
     * any other thread starts (OpenMP's, libmicrohttpd's), which inherit
     * the mask, so that none of them takes the signal instead */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    blocked = 1;
    if (!path) path = cli_default_checkpoint("models");
    if (!(ck = cli_open_checkpoint(path, &s.defaults, err))) goto done;
    ops_cpu_set_threads((int)s.defaults.threads);
    s.ck = ck;
    if (!(s.kv = cli_kv_create(ck, &s.defaults, err))) goto done;
    const char *slash = strrchr(path, '/');
    snprintf(s.name, sizeof s.name, "%s", slash ? slash + 1 : path);
    if (!(s.web = web_open(ck, s.name, runs, err))) goto done;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, on_request, &s,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                         MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
    if (!d) {
        mg_fail(err, "serve: cannot listen on %s:%ld: %s", host, port, strerror(errno ? errno : EADDRINUSE));
        goto done;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    const gpt_config_t *g = &ck->model->cfg;
    printf("minigpt serve: %s (%d layers, dim %d, context %d) on http://%s:%u\n"
           "the app: http://%s:%u/; POST /v1/completions, GET /v1/models, GET /health; Ctrl-C stops\n",
           path, g->layers, g->dim, g->ctx, host, info ? info->port : (unsigned)port, host,
           info ? info->port : (unsigned)port);
    fflush(stdout);
    while (!stop_requested) sigsuspend(&old);
    printf("minigpt serve: stopped after %ld completion%s\n", s.served, s.served == 1 ? "" : "s");
    rc = CLI_OK;
done:
    if (d) MHD_stop_daemon(d);
    if (blocked) pthread_sigmask(SIG_SETMASK, &old, NULL);
    web_close(s.web);
    kv_free(s.kv);
    ckpt_free(ck);
    return rc;
}
