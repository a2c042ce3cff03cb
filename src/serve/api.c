/* api.c - the server's endpoints: POST /v1/completions and
 * /v1/chat/completions (OpenAI's shapes, streamed as server-sent events or
 * not), GET /v1/models[/{id}], GET /health, POST /tokenize and /detokenize
 * (llama.cpp's shapes). Bodies are checked strictly: unknown fields,
 * duplicate keys and NUL characters are refused with 400. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/chat_template.h"
#include "util/utf8.h"
#include "serve/serve.h"

/* ---- request bodies ---- */

static int by_name(const void *a, const void *b) {
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* -1 with err if an object anywhere in j has a key twice */
static int duplicate_keys(const cJSON *j, char *err) {
    if (!cJSON_IsObject(j) && !cJSON_IsArray(j)) return 0;
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (duplicate_keys(it, err)) return -1;
        n++;
    }
    if (!cJSON_IsObject(j) || n < 2) return 0;
    const cJSON **v = mg_malloc((size_t)n * sizeof *v);
    if (!v) return mg_fail(err, "out of memory");
    n = 0;
    cJSON_ArrayForEach(it, j) v[n++] = it;
    qsort(v, (size_t)n, sizeof *v, by_name);
    int rc = 0;
    for (int i = 1; i < n && !rc; i++)
        if (!strcmp(v[i]->string, v[i - 1]->string))
            rc = mg_fail(err, "duplicate key '%s'", v[i]->string);
    mg_free(v);
    return rc;
}

/* -1 with err if obj has a key outside allowed (NULL-terminated) */
static int unknown_fields(const cJSON *obj, const char *const *allowed, const char *where,
                          char *err) {
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(it->string, allowed[i]);
        if (!ok) return mg_fail(err, "unknown field '%s'%s", it->string, where);
    }
    return 0;
}

/* The body as a JSON object, or NULL with err: a NUL (raw or \u0000,
 * which C strings would cut the text at) or malformed JSON or a key twice */
static cJSON *parse_body(const mg_buf_t *b, char *err) {
    if (memchr(b->data, 0, b->len)) {
        mg_fail(err, "the body contains a NUL byte");
        return NULL;
    }
    for (size_t i = 0; i + 1 < b->len; i++) { /* escapes go in pairs: "\\u0000" is text */
        if (b->data[i] != '\\') continue;
        if (b->data[i + 1] == 'u' && i + 5 < b->len && !strncmp(b->data + i + 2, "0000", 4)) {
            mg_fail(err, "strings may not contain NUL (\\u0000)");
            return NULL;
        }
        i++;
    }
    cJSON *j = cJSON_ParseWithLength(b->data, b->len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        mg_fail(err, "the body must be a JSON object");
        return NULL;
    }
    if (duplicate_keys(j, err)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* An optional number field within [lo, hi]: 0 (absent or set), -1 (err set). */
static int field_num(const cJSON *req, const char *key, double lo, double hi, double *out,
                     char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return mg_fail(err, "'%s' must be a number from %.17g to %.17g", key, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int field_int(const cJSON *req, const char *key, double lo, double hi, long *out,
                     char *err) {
    double d = (double)*out;
    if (field_num(req, key, lo, hi, &d, err)) return -1;
    if (d != floor(d)) return mg_fail(err, "'%s' must be a whole number", key);
    *out = (long)d;
    return 0;
}

static const char *const completion_fields[] = {"model",
                                                "prompt",
                                                "max_tokens",
                                                "temperature",
                                                "top_p",
                                                "top_k",
                                                "seed",
                                                "stop",
                                                "stream",
                                                "stream_options",
                                                "n",
                                                "repeat_penalty",
                                                "repeat_last_n",
                                                "user",
                                                "echo",
                                                "logprobs",
                                                "suffix",
                                                "best_of",
                                                "logit_bias",
                                                "presence_penalty",
                                                "frequency_penalty",
                                                NULL};
static const char *const chat_fields[] = {"model",
                                          "messages",
                                          "max_tokens",
                                          "max_completion_tokens",
                                          "temperature",
                                          "top_p",
                                          "top_k",
                                          "seed",
                                          "stop",
                                          "stream",
                                          "stream_options",
                                          "n",
                                          "repeat_penalty",
                                          "repeat_last_n",
                                          "user",
                                          "logprobs",
                                          "top_logprobs",
                                          "logit_bias",
                                          "presence_penalty",
                                          "frequency_penalty",
                                          NULL};

/* The generation settings of a request (either endpoint) over the server's
 * defaults; -1 with err for a malformed field or one asking for what is
 * not supported. */
static int parse_settings(const cJSON *req, int chat, cli_gen_opts_t *o, int *streamed,
                          int *usage_chunk, char *err) {
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(req, "stream");
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream))
        return mg_fail(err, "'stream' must be true or false");
    *streamed = cJSON_IsTrue(stream);
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    *usage_chunk = 0;
    if (so && !cJSON_IsNull(so)) {
        static const char *const so_fields[] = {"include_usage", NULL};
        if (!cJSON_IsObject(so)) return mg_fail(err, "'stream_options' must be an object");
        if (unknown_fields(so, so_fields, " in 'stream_options'", err)) return -1;
        *usage_chunk = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    }
    long n = 1;
    if (field_int(req, "n", 1, 1, &n, err))
        return mg_fail(err, "'n' must be 1: one completion per request");
    if (field_int(req, "max_tokens", 0, 1 << 24, &o->max_tokens, err) ||
        (chat && field_int(req, "max_completion_tokens", 0, 1 << 24, &o->max_tokens, err)) ||
        field_num(req, "temperature", 0, 100, &o->temperature, err) ||
        field_num(req, "top_p", 0, 1, &o->top_p, err) ||
        field_int(req, "top_k", 0, 1 << 24, &o->top_k, err) ||
        field_int(req, "seed", -1, 9007199254740991.0, &o->seed, err) || /* -1: drawn */
        field_num(req, "repeat_penalty", 0.01, 100, &o->repeat_penalty, err) ||
        field_int(req, "repeat_last_n", 1, 1 << 20, &o->repeat_last_n, err))
        return -1;
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(req, "stop"), *item;
    if (stop && !cJSON_IsNull(stop)) {
        int k = 0;
        if (cJSON_IsString(stop)) {
            o->stop[k++] = stop->valuestring;
        } else if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop) <= GEN_MAX_STOPS) {
            cJSON_ArrayForEach(item, stop) o->stop[k++] =
                cJSON_IsString(item) ? item->valuestring : "";
        } else {
            return mg_fail(err, "'stop' must be a string or a list of up to 4");
        }
        for (int i = 0; i < k; i++)
            if (!*o->stop[i]) return mg_fail(err, "'stop' strings must be non-empty strings");
        for (int i = k; i < GEN_MAX_STOPS; i++)
            o->stop[i] = NULL;
    }
    /* fields of the API whose meaning this server does not give: refused
     * rather than ignored, so that a client never reads a wrong answer */
    static const char *const unsupported[] = {"echo",
                                              "logprobs",
                                              "suffix",
                                              "best_of",
                                              "logit_bias",
                                              "presence_penalty",
                                              "frequency_penalty",
                                              "top_logprobs"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, unsupported[i]);
        const char *k = unsupported[i];
        int neutral = !v || cJSON_IsNull(v) || cJSON_IsFalse(v) ||
                      (cJSON_IsObject(v) && !v->child) || (cJSON_IsString(v) && !*v->valuestring) ||
                      (cJSON_IsNumber(v) && v->valuedouble == (strcmp(k, "best_of") ? 0 : 1) &&
                       strcmp(k, "logprobs"));
        if (!neutral) return mg_fail(err, "'%s' is not supported", k);
    }
    return 0;
}

/* One message's content: a string, or a list of {"type":"text","text"} parts */
static int put_content(mg_buf_t *b, const cJSON *content, char *err) {
    if (cJSON_IsString(content)) {
        mg_buf_put(b, content->valuestring, strlen(content->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(content))
        return mg_fail(err, "a message's 'content' must be a string or a list of text parts");
    const cJSON *part;
    static const char *const part_fields[] = {"type", "text", NULL};
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
            !cJSON_IsString(text))
            return mg_fail(err, "content parts must be {\"type\": \"text\", \"text\": ...}");
        if (unknown_fields(part, part_fields, " in a content part", err)) return -1;
        mg_buf_put(b, text->valuestring, strlen(text->valuestring));
    }
    return 0;
}

/* The chat's prompt: each message through the template, then the start
 * of the assistant's answer (chat_template.h), leaving out the first skip
 * messages that are not system messages (the oldest turns, when the whole
 * conversation does not fit the context). *droppable: how many could be
 * left out (all but the last of them). */
static int chat_prompt(const serve_t *s, const cJSON *req, int skip, mg_buf_t *b, int *droppable,
                       char *err) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages"), *m;
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) < 1)
        return mg_fail(err, "'messages' must be a non-empty list");
    static const char *const msg_fields[] = {"role", "content", "name", NULL};
    int turn = 0;
    *droppable = 0;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            return mg_fail(err, "each message must be an object with a 'role' and a 'content'");
        if (unknown_fields(m, msg_fields, " in a message", err)) return -1;
        const char *r = role->valuestring;
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") &&
            strcmp(r, "developer"))
            return mg_fail(err, "unknown role '%s' (system, developer, user, assistant)", r);
        if (!strcmp(r, "developer")) r = "system"; /* OpenAI's new name for it */
        if (strcmp(r, "system") && turn++ < skip) continue;
        chat_template_open(b, s->tmpl, r);
        if (put_content(b, cJSON_GetObjectItemCaseSensitive(m, "content"), err)) return -1;
        chat_template_close(b, s->tmpl, r);
    }
    chat_template_open(b, s->tmpl, "assistant");
    *droppable = MG_MAX(0, turn - 1);
    return b->oom ? mg_fail(err, "out of memory") : 0;
}

/* ---- responses ---- */

typedef struct {
    serve_req_t *r; /* gone once the request completes: stream_free may come later */
    serve_t *s;
    serve_job_t *j;
    int chat, usage_chunk;
    char id[48];
    long created;
    size_t hold;  /* stream: bytes held back, in case a stop string starts there */
    mg_buf_t out; /* stream: event bytes not yet handed over, from sent on */
    size_t sent;
    int phase; /* stream: 0 role chunk due (chat), 1 text, 2 [DONE] due, 3 over */
} answer_t;

static const char *finish_reason(const gen_stats_t *st) {
    return st->stop == GEN_STOP_EOS || st->stop == GEN_STOP_STRING ? "stop" : "length";
}

/* OpenAI's answer ends before its stop string: the length of the text up
 * to the first stop string in it (all of it when none) */
static size_t stop_cut(const serve_job_t *j) {
    size_t cut = j->text.len;
    if (j->st.stop != GEN_STOP_STRING || !j->text.data) return cut;
    for (int k = 0; k < GEN_MAX_STOPS && j->go.stop[k]; k++) {
        const char *at = strstr(j->text.data, j->go.stop[k]);
        if (at && (size_t)(at - j->text.data) < cut) cut = (size_t)(at - j->text.data);
    }
    return cut;
}

static void add_usage(cJSON *res, const gen_stats_t *st) {
    cJSON *usage = cJSON_AddObjectToObject(res, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", st->prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", st->new_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", st->prompt_tokens + st->new_tokens);
}

/* The response object, or a streamed chunk (final: with finish_reason,
 * usage, the seed and llama.cpp's timings; text NULL: the chat's first
 * chunk, with the role) */
static cJSON *answer_json(const answer_t *a, const char *text, int streamed, int final) {
    const serve_job_t *j = a->j;
    const gen_stats_t *st = &j->st;
    cJSON *res = cJSON_CreateObject(), *choice = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "id", a->id);
    cJSON_AddStringToObject(res, "object",
                            !a->chat   ? "text_completion"
                            : streamed ? "chat.completion.chunk"
                                       : "chat.completion");
    cJSON_AddNumberToObject(res, "created", (double)a->created);
    cJSON_AddStringToObject(res, "model", a->s->name);
    cJSON_AddNumberToObject(choice, "index", 0);
    if (!a->chat) {
        cJSON_AddStringToObject(choice, "text", text ? text : "");
    } else {
        cJSON *msg = cJSON_AddObjectToObject(choice, streamed ? "delta" : "message");
        if (!streamed || !text) cJSON_AddStringToObject(msg, "role", "assistant");
        if (!streamed || (text && *text) || !final)
            cJSON_AddStringToObject(msg, "content", text ? text : "");
    }
    cJSON_AddNullToObject(choice, "logprobs");
    if (final)
        cJSON_AddStringToObject(choice, "finish_reason", finish_reason(st));
    else
        cJSON_AddNullToObject(choice, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(res, "choices"), choice);
    if (!final) return res;
    add_usage(res, st);
    /* beyond OpenAI's fields: the seed, an integer below 2^53 written as
     * one (cJSON would print a double), and llama.cpp's timings */
    char seed[32];
    snprintf(seed, sizeof seed, "%ld", j->seed);
    cJSON_AddRawToObject(res, "seed", seed);
    cJSON *tm = cJSON_AddObjectToObject(res, "timings");
    cJSON_AddNumberToObject(tm, "prompt_ms", st->prefill_s * 1e3);
    cJSON_AddNumberToObject(tm, "predicted_ms", st->decode_s * 1e3);
    cJSON_AddNumberToObject(tm, "predicted_per_second",
                            st->decode_s > 0 ? st->new_tokens / st->decode_s : 0);
    return res;
}

/* one server-sent event: "data: <json>\n\n" */
static void put_event(answer_t *a, cJSON *chunk) {
    char *txt = chunk ? cJSON_PrintUnformatted(chunk) : NULL;
    cJSON_Delete(chunk);
    if (!txt) {
        a->out.oom = 1;
        return;
    }
    mg_buf_put(&a->out, "data: ", 6);
    mg_buf_put(&a->out, txt, strlen(txt));
    mg_buf_put(&a->out, "\n\n", 2);
    cJSON_free(txt);
}

/* Waits (under mu) until the job has text to hand over or is over, while
 * the client is still there; 0 ok, -1 the client left (job cancelled). */
static int wait_job(answer_t *a, int whole, size_t need) {
    serve_job_t *j = a->j;
    serve_sched_t *s = &a->s->sched;
    while (j->state != JOB_DONE && (whole || j->text.len <= need)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&j->cv, &s->mu, &ts);
        if (j->state != JOB_DONE && http_client_gone(a->r->fd)) {
            j->cancel = 1; /* its slot is freed at the worker's next step */
            pthread_cond_signal(&s->work);
            return -1;
        }
    }
    return 0;
}

static void answer_free(answer_t *a) {
    if (!a) return;
    sched_release(&a->s->sched, a->j);
    mg_free(a->out.data);
    mg_free(a);
}

/* libmicrohttpd asks for the next bytes of a streamed answer: waits for
 * text (all of it but the bytes a stop string might start in, cut before a
 * whole character), sends it as a chunk; at the end a final chunk with
 * finish_reason and usage, then "data: [DONE]". */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    answer_t *a = cls;
    serve_job_t *j = a->j;
    serve_sched_t *s = &a->s->sched;
    (void)pos;
    while (a->sent == a->out.len) {
        a->out.len = a->sent = 0;
        if (a->phase == 3) return MHD_CONTENT_READER_END_OF_STREAM;
        if (a->phase == 2) {
            mg_buf_put(&a->out, "data: [DONE]\n\n", 14);
            a->phase = 3;
            continue;
        }
        if (a->phase == 0) {
            if (a->chat) put_event(a, answer_json(a, NULL, 1, 0));
            a->phase = 1;
            continue;
        }
        pthread_mutex_lock(&s->mu);
        char *piece = NULL;
        size_t go = 0;
        int done = 0, failed = 0;
        size_t need = a->hold;
        for (;;) {
            if (wait_job(a, 0, need)) {
                pthread_mutex_unlock(&s->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            done = j->state == JOB_DONE;
            failed = j->failed;
            go = done ? stop_cut(j) : j->text.len - a->hold;
            while (!done && go > 0 && (j->text.data[go] & 0xC0) == 0x80)
                go--;
            if (go > 0 || done) break;
            need = j->text.len; /* only a partial character past the hold: wait for more */
        }
        if (go > 0 && (piece = mg_malloc(go + 1))) {
            memcpy(piece, j->text.data, go);
            piece[go] = 0;
            memmove(j->text.data, j->text.data + go, j->text.len - go + 1);
            j->text.len -= go;
        }
        pthread_mutex_unlock(&s->mu);
        if (go > 0 && !piece) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (failed) {
            mg_free(piece);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (piece) put_event(a, answer_json(a, piece, 1, 0));
        mg_free(piece);
        if (done) {
            a->r->tokens_in = j->st.prompt_tokens;
            a->r->tokens_out = j->st.new_tokens;
            cJSON *fin = answer_json(a, "", 1, 1);
            if (a->chat &&
                a->usage_chunk) { /* OpenAI's way: usage in a chunk of its own, no choices */
                cJSON *u = cJSON_Duplicate(fin, 1);
                cJSON_DeleteItemFromObject(fin, "usage");
                put_event(a, fin);
                cJSON_ReplaceItemInObject(u, "choices", cJSON_CreateArray());
                put_event(a, u);
            } else {
                put_event(a, fin);
            }
            a->phase = 2;
        }
        if (a->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = MG_MIN(max, a->out.len - a->sent);
    memcpy(buf, a->out.data + a->sent, n);
    a->sent += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) { answer_free(cls); }

/* POST /v1/completions (chat 0) and /v1/chat/completions (chat 1) */
enum MHD_Result api_completion(serve_req_t *r, struct MHD_Connection *c, int chat) {
    serve_t *s = r->s;
    char err[MG_ERR_LEN];
    cli_gen_opts_t o = s->defaults;
    int streamed = 0, usage_chunk = 0, ctx = s->ck->model->cfg.ctx;
    size_t n = 0;
    mg_buf_t prompt = {0};
    enum MHD_Result ret;
    answer_t *a = mg_calloc(1, sizeof *a);
    cJSON *req = parse_body(&r->body, err);
    if (!a) {
        cJSON_Delete(req);
        return http_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    a->r = r;
    a->s = s;
    a->chat = chat;
    a->created = (long)time(NULL);
    if (!req) {
        ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
        goto done;
    }
    if (!(a->j = sched_job_new(&s->sched, req))) {
        cJSON_Delete(req);
        ret = http_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        goto done;
    }
    serve_job_t *j = a->j;
    if (unknown_fields(req, chat ? chat_fields : completion_fields, "", err) ||
        parse_settings(req, chat, &o, &streamed, &usage_chunk, err)) {
        ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
        goto done;
    }
    a->usage_chunk = usage_chunk;
    if (chat) {
        /* as `minigpt chat` does, the oldest turns give way when the
         * conversation and some answer (up to half the context) do not fit */
        int skip = 0, droppable = 0;
        size_t reserve = (size_t)MG_MIN(o.max_tokens, ctx / 2);
        for (;; skip++) {
            prompt.len = 0;
            if (chat_prompt(s, req, skip, &prompt, &droppable, err)) {
                ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
                goto done;
            }
            if (skip >= droppable || prompt.oom) break;
            size_t k = 0;
            int32_t *ids = NULL;
            if (bpe_encode(s->ck->tok, prompt.data, prompt.len, &ids, &k, err) != 0) {
                ret = http_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, err);
                goto done;
            }
            mg_free(ids);
            if (k + reserve <= (size_t)ctx) break;
        }
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1) p = cJSON_GetArrayItem(p, 0);
        if (!cJSON_IsString(p) || !*p->valuestring) {
            ret = http_error(r, c, MHD_HTTP_BAD_REQUEST,
                             "'prompt' must be a non-empty string (or a list of one)");
            goto done;
        }
        mg_buf_put(&prompt, p->valuestring, strlen(p->valuestring));
    }
    if (prompt.oom) {
        ret = http_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        goto done;
    }
    if (bpe_encode(s->ck->tok, prompt.data, prompt.len, &j->ids, &n, err) != 0) {
        ret = http_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, err);
        goto done;
    }
    r->tokens_in = (int)MG_MIN(n, (size_t)1 << 30);
    if (n > (size_t)ctx || n == 0) {
        snprintf(err, sizeof err,
                 n ? "the prompt is %zu tokens long but the model's context is %d"
                   : "the prompt has no tokens",
                 n, ctx);
        ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
        goto done;
    }
    j->n = (int)n;
    j->seed = o.seed;
    j->go = (gen_opts_t){.sample = {(float)o.temperature, (int)o.top_k, (float)o.top_p},
                         .max_tokens = (int)o.max_tokens,
                         .repeat_penalty = (float)o.repeat_penalty,
                         .repeat_last_n = (int)o.repeat_last_n,
                         .stop = {o.stop[0], o.stop[1], o.stop[2], o.stop[3]}};
    for (int i = 0; i < GEN_MAX_STOPS && o.stop[i]; i++)
        a->hold = MG_MAX(a->hold, strlen(o.stop[i]) - 1);
    int q = sched_submit(&s->sched, j);
    if (q) {
        ret = http_error_h(r, c, MHD_HTTP_SERVICE_UNAVAILABLE,
                           q == -1 ? "every slot is busy and the queue is full; retry"
                                   : "the server is shutting down",
                           NULL, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        goto done;
    }
    snprintf(a->id, sizeof a->id, "%s-%ld", chat ? "chatcmpl" : "cmpl", j->number);
    if (streamed) {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, a, stream_free);
        if (!resp) {
            ret = MHD_NO;
            goto done;
        }
        mg_free(prompt.data);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        r->status = MHD_HTTP_OK;
        ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(
            resp); /* stream_free (at the end, or when the client leaves) frees a */
        return ret;
    }
    pthread_mutex_lock(&s->sched.mu);
    int gone = wait_job(a, 1, 0);
    pthread_mutex_unlock(&s->sched.mu);
    if (gone) {
        ret = MHD_NO; /* nobody to answer */
        goto done;
    }
    if (j->failed) {
        ret = http_error_h(r, c,
                           strstr(j->err, "shutting down") ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                           : MHD_HTTP_INTERNAL_SERVER_ERROR,
                           j->err, NULL, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        goto done;
    }
    r->tokens_out = j->st.new_tokens;
    if (j->text.data) j->text.data[stop_cut(j)] = 0;
    ret = http_json(r, c, MHD_HTTP_OK, answer_json(a, j->text.data ? j->text.data : "", 0, 1), NULL,
                    NULL);
done:
    mg_free(prompt.data);
    answer_free(a);
    return ret;
}

/* ---- the rest ---- */

static cJSON *model_json(const serve_t *s) {
    const gpt_config_t *g = &s->ck->model->cfg;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "minigpt");
    cJSON_AddNumberToObject(m, "context_length", g->ctx);
    cJSON_AddNumberToObject(m, "vocab_size", g->vocab);
    cJSON_AddNumberToObject(m, "n_layers", g->layers);
    cJSON_AddNumberToObject(m, "d_model", g->dim);
    cJSON_AddNumberToObject(m, "parameters", (double)s->ck->model->num_floats);
    return m;
}

enum MHD_Result api_models(serve_req_t *r, struct MHD_Connection *c, const char *id) {
    serve_t *s = r->s;
    if (id) {
        if (strcmp(id, s->name) != 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "The model '%.200s' does not exist (this server has '%s')",
                     id, s->name);
            return http_error_h(r, c, MHD_HTTP_NOT_FOUND, msg, "model_not_found", NULL, NULL);
        }
        return http_json(r, c, MHD_HTTP_OK, model_json(s), NULL, NULL);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "data"), model_json(s));
    return http_json(r, c, MHD_HTTP_OK, j, NULL, NULL);
}

enum MHD_Result api_health(serve_req_t *r, struct MHD_Connection *c) {
    serve_t *s = r->s;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddStringToObject(j, "model", s->name);
    pthread_mutex_lock(&s->metrics.mu);
    long served = s->metrics.completions;
    pthread_mutex_unlock(&s->metrics.mu);
    pthread_mutex_lock(&s->sched.mu);
    int busy = s->sched.n_active, slots = s->sched.n_slots, queued = s->sched.n_queued;
    pthread_mutex_unlock(&s->sched.mu);
    cJSON_AddNumberToObject(j, "completions_served", (double)served);
    cJSON_AddNumberToObject(j, "slots_idle", slots - busy);
    cJSON_AddNumberToObject(j, "slots_processing", busy);
    cJSON_AddNumberToObject(j, "queue_length", queued);
    return http_json(r, c, MHD_HTTP_OK, j, NULL, NULL);
}

/* POST /tokenize {"content", "with_pieces"?, "add_special"?, "parse_special"?} -> {"tokens":
 * [...]}; parse_special (default false) matches special tokens' text (<EOS>, <|endoftext|>), as in
 * llama.cpp's server; otherwise that text is plain bytes, as in prompts */
enum MHD_Result api_tokenize(serve_req_t *r, struct MHD_Connection *c) {
    static const char *const fields[] = {"content", "with_pieces", "add_special", "parse_special",
                                         NULL};
    char err[MG_ERR_LEN];
    cJSON *req = parse_body(&r->body, err), *res = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    enum MHD_Result ret;
    if (!req || unknown_fields(req, fields, "", err)) {
        ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
        goto done;
    }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(req, "content");
    const cJSON *pieces = cJSON_GetObjectItemCaseSensitive(req, "with_pieces");
    if (!cJSON_IsString(content)) {
        ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, "'content' must be a string");
        goto done;
    }
    for (int i = 1; fields[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, fields[i]);
        if (v && !cJSON_IsBool(v)) {
            snprintf(err, sizeof err, "'%s' must be true or false", fields[i]);
            ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
            goto done;
        }
    }
    unsigned flags = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "parse_special"))
                         ? BPE_ENCODE_SPECIAL
                         : 0;
    if (bpe_encode_ex(r->s->ck->tok, content->valuestring, strlen(content->valuestring), flags,
                      &ids, &n, err) != 0) {
        ret = http_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, err);
        goto done;
    }
    res = cJSON_CreateObject();
    cJSON *toks = cJSON_AddArrayToObject(res, "tokens");
    for (size_t i = 0; i < n; i++) {
        if (!cJSON_IsTrue(pieces)) {
            cJSON_AddItemToArray(toks, cJSON_CreateNumber(ids[i]));
            continue;
        }
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", ids[i]);
        cJSON_AddItemToObject(t, "piece", cli_token_piece_json(r->s->ck->tok, ids[i]));
        cJSON_AddItemToArray(toks, t);
    }
    r->tokens_in = (int)MG_MIN(n, (size_t)1 << 30);
    ret = http_json(r, c, MHD_HTTP_OK, res, NULL, NULL);
done:
    cJSON_Delete(req);
    mg_free(ids);
    return ret;
}

/* POST /detokenize {"tokens": [ids]} -> {"content": text} */
enum MHD_Result api_detokenize(serve_req_t *r, struct MHD_Connection *c) {
    static const char *const fields[] = {"tokens", NULL};
    char err[MG_ERR_LEN], *text = NULL;
    cJSON *req = parse_body(&r->body, err);
    int32_t *ids = NULL;
    size_t n = 0, len;
    enum MHD_Result ret;
    if (!req || unknown_fields(req, fields, "", err)) {
        ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
        goto done;
    }
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(req, "tokens"), *t;
    int V = bpe_vocab_size(r->s->ck->tok);
    if (!cJSON_IsArray(toks) ||
        !(ids = mg_malloc(((size_t)cJSON_GetArraySize(toks) + 1) * sizeof *ids))) {
        ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, "'tokens' must be a list of token ids");
        goto done;
    }
    cJSON_ArrayForEach(t, toks) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= V) {
            snprintf(err, sizeof err, "'tokens' must hold whole numbers from 0 to %d", V - 1);
            ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
            goto done;
        }
        ids[n++] = (int32_t)t->valuedouble;
    }
    if (bpe_decode(r->s->ck->tok, ids, n, &text, &len, err) != 0) {
        ret = http_error(r, c, MHD_HTTP_BAD_REQUEST, err);
        goto done;
    }
    /* bytes that are not UTF-8 (a character cut between ids) as U+FFFD */
    unsigned char *fixed = mg_malloc(3 * len + 1);
    if (!fixed) {
        ret = http_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        goto done;
    }
    fixed[utf8_repair((const unsigned char *)text, len, fixed)] = 0;
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "content", (const char *)fixed);
    mg_free(fixed);
    ret = http_json(r, c, MHD_HTTP_OK, res, NULL, NULL);
done:
    cJSON_Delete(req);
    mg_free(ids);
    mg_free(text);
    return ret;
}
