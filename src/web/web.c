/* web.c - the routing of the browser app's requests (see web.h). */
#define _POSIX_C_SOURCE 200809L
#include "web/web.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/common.h"
#include "web/assets.h"
#include "web/http.h"

struct web {
    const ckpt_t *ck;
    kv_state_t
        *kv; /* the explain endpoint's own cache, made at its first request: never the server's */
    pthread_mutex_t
        kv_lock; /* held by an explain request, should a server answer several at once */
    char name[256];
    char *runs_dir;
};

web_t *web_open(const ckpt_t *ck, const char *model_name, const char *runs_dir, char *err) {
    web_t *w = mg_calloc(1, sizeof *w);
    if (!w) {
        mg_fail(err, "out of memory");
        return NULL;
    }
    w->ck = ck;
    pthread_mutex_init(&w->kv_lock, NULL);
    snprintf(w->name, sizeof w->name, "%s", model_name);
    if (runs_dir && access(runs_dir, R_OK | X_OK) != 0) {
        mg_fail(err, "serve: cannot read --runs folder '%s'", runs_dir);
        goto fail;
    }
    if (runs_dir && !(w->runs_dir = mg_strdup(runs_dir))) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    return w;
fail:
    web_close(w);
    return NULL;
}

void web_close(web_t *w) {
    if (!w) return;
    kv_free(w->kv);
    pthread_mutex_destroy(&w->kv_lock);
    mg_free(w->runs_dir);
    mg_free(w);
}

/* GET /v1/app: what the app can show on this server */
static cJSON *app_info(const web_t *w) {
    const gpt_config_t *g = &w->ck->model->cfg;
    cJSON *j = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(j, "mode", "serve");
    cJSON_AddStringToObject(m, "id", w->name);
    cJSON_AddNumberToObject(m, "layers", g->layers);
    cJSON_AddNumberToObject(m, "heads", g->heads);
    cJSON_AddNumberToObject(m, "dim", g->dim);
    cJSON_AddNumberToObject(m, "context_length", g->ctx);
    cJSON_AddNumberToObject(m, "vocab_size", g->vocab);
    cJSON_AddNumberToObject(m, "parameters", (double)w->ck->model->num_floats);
    cJSON_AddBoolToObject(j, "runs", w->runs_dir != NULL);
    return j;
}

unsigned web_route(web_t *w, struct MHD_Connection *c, const char *url, const char *method,
                   const char *body, size_t len, int body_bad, enum MHD_Result *ret) {
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0,
        post = strcmp(method, "POST") == 0;
    char err[MG_ERR_LEN];
    unsigned st = MHD_HTTP_OK;
    if (strcmp(url, "/v1/explain") == 0) {
        if (!post) {
            st = MHD_HTTP_METHOD_NOT_ALLOWED;
            *ret = web_send_error(c, st, "use POST", "POST");
        } else if (body_bad) {
            st = MHD_HTTP_CONTENT_TOO_LARGE;
            *ret = web_send_error(c, st, "the body is too large", NULL);
        } else {
            pthread_mutex_lock(&w->kv_lock);
            if (!w->kv) w->kv = kv_create(w->ck->model, err);
            cJSON *j = w->kv ? web_explain(w->kv, w->ck->tok, body, len, &st, err) : NULL;
            if (!w->kv) st = MHD_HTTP_INTERNAL_SERVER_ERROR;
            pthread_mutex_unlock(&w->kv_lock);
            if (j) st = MHD_HTTP_OK;
            *ret = j ? web_send_json(c, st, j) : web_send_error(c, st, err, NULL);
        }
        return st;
    }
    if (strcmp(url, "/v1/app") == 0 || strcmp(url, "/v1/runs") == 0) {
        if (!get) {
            st = MHD_HTTP_METHOD_NOT_ALLOWED;
            *ret = web_send_error(c, st, "use GET", "GET");
        } else if (url[4] == 'a') {
            *ret = web_send_json(c, st, app_info(w));
        } else if (!w->runs_dir) {
            st = MHD_HTTP_NOT_FOUND;
            *ret = web_send_error(c, st, "no runs: start the server with --runs DIR", NULL);
        } else {
            cJSON *j = web_runs(w->runs_dir, err);
            if (!j) st = MHD_HTTP_INTERNAL_SERVER_ERROR;
            *ret = j ? web_send_json(c, st, j) : web_send_error(c, st, err, NULL);
        }
        return st;
    }
    if (get && strncmp(url, "/v1/", 4) != 0 && web_send_asset(c, url, ret) == 0) return st;
    return 0;
}

int web_is_asset(const char *url) {
    const char *type;
    return strncmp(url, "/v1/", 4) != 0 && web_asset_find(url, &type) != NULL;
}
