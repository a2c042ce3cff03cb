/* web.h - the browser app of `minigpt serve`: the page and its files
 * (embedded from web/), and the JSON endpoints only the app needs:
 *   GET  /, /app.js, ...  the app (no network needed: nothing external)
 *   GET  /v1/app          what this server offers the app (model, runs)
 *   POST /v1/explain      one prompt traced through the model (explain.h)
 *   GET  /v1/runs         the training logs under --runs DIR
 * The HTTP server owns the connection, body and access rules (binding,
 * API key, limits, CORS) and calls web_route for what it does not answer
 * itself. web_route may be called from several threads at once: the
 * explain endpoint's KV cache is behind a lock. */
#ifndef MG_WEB_H
#define MG_WEB_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "infer/kv.h"
#include "io/checkpoint.h"

typedef struct web web_t;

/* ck is borrowed (it must outlive the web_t); model_name is copied;
 * runs_dir (NULL: none) is where `serve --runs DIR` looks for runs.
 * The explain endpoint makes a KV cache of its own at its first request.
 * NULL with err (an unreadable runs_dir). */
web_t *web_open(const ckpt_t *ck, const char *model_name, const char *runs_dir, char *err);
void web_close(web_t *w);

/* Answers the request when it is one of the app's (its HTTP status, for
 * the log; *ret set), else 0 (the caller answers: 404 or its own endpoint). body is the whole
 * upload (len bytes, NUL-terminated; NULL when none); body_bad: it was refused (too big, out of
 * memory), and the app's POSTs answer 413 then. */
unsigned web_route(web_t *w, struct MHD_Connection *c, const char *url, const char *method,
                   const char *body, size_t len, int body_bad, enum MHD_Result *ret);
/* Whether url is one of the app's files (served without the API key: the
 * page asks for the key and sends it with its API calls). */
int web_is_asset(const char *url);

/* --- parts of web.c, shared with its other files --- */

/* POST /v1/explain (web_explain.c): the request body as JSON -> the
 * trace as JSON, or NULL with err (*status: 400 or 500). */
cJSON *web_explain(kv_state_t *kv, const bpe_t *tok, const char *body, size_t len, unsigned *status,
                   char *err);
/* GET /v1/runs (web_runs.c): {"runs": [{"name", "steps", "points": [...]}]}
 * from dir's train_log.jsonl and its subfolders'; NULL with err. */
cJSON *web_runs(const char *dir, char *err);

#endif
