/* web_explain.c - POST /v1/explain: one prompt through the model with the
 * educational mode's tracer (explain.h), as JSON for the app's inside
 * view. The same hook and the same sampler as `generate --educational`,
 * so that the page and the terminal never disagree.
 * Request: {"prompt": str, "extra_ids": [ids appended after the prompt's
 * tokens (the app's "next token" steps)], "temperature", "top_k", "top_p",
 * "seed"}. Answer (see web/inside.js, its one reader):
 *   model {layers, heads, dim, context_length, vocab_size}
 *   tokens [{id, text, pos}], n_prompt: how many came from the prompt
 *   merges [{pre, left, right, merged, rank}]: the BPE merges, in order
 *   attention {rows, cols, maps}: maps[layer][head] = rows*cols weights
 *   layers [{attn_ms, mlp_ms, attn {mean,std,min,max}, mlp {...}}],
 *   embedding, final_ln (stats), prefill_ms
 *   logits [V] of the next token, top [{id, text}] by logit (64)
 *   sample {temperature, top_k, top_p, seed, id, text, kept}: the draw
 *   sample_token makes with those settings, and the size of its cut */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain/explain.h"
#include "infer/generate.h"
#include "util/common.h"
#include "web/web.h"

enum { MAX_TOKENS = 64, N_TOP = 64 }; /* the maps grow with the square of the tokens */

typedef struct {
    explain_t ex;
    cJSON *merges;
    const bpe_t *tok;
    const char *last_pre;
    float *logits; /* V, copied at the draw */
    int V;
} trace_t;

static cJSON *token_text(const bpe_t *tok, int id) {
    char s[96];
    explain_token_str(tok, id, s, sizeof s);
    return cJSON_CreateString(s);
}

static void on_merge(void *ctx, const char *pre, size_t len, int left, int right, int merged) {
    trace_t *t = ctx;
    cJSON *m = cJSON_CreateObject();
    if (!m) return;
    char *p = mg_malloc(len + 1);
    if (p) {
        memcpy(p, pre, len);
        p[len] = 0;
        cJSON_AddStringToObject(m, "pre", p);
        mg_free(p);
    }
    cJSON_AddItemToObject(m, "left", token_text(t->tok, left));
    cJSON_AddItemToObject(m, "right", token_text(t->tok, right));
    cJSON_AddItemToObject(m, "merged", token_text(t->tok, merged));
    cJSON_AddNumberToObject(m, "id", merged);
    cJSON_AddNumberToObject(m, "rank", merged - BPE_FIRST_MERGE);
    cJSON_AddItemToArray(t->merges, m);
}

static void on_token(void *ctx, int id, const float *logits) {
    trace_t *t = ctx;
    explain_on_token(&t->ex, id, logits);
    if (t->ex.n_sampled == 1) memcpy(t->logits, logits, (size_t)t->V * sizeof(float));
}

/* n floats as a JSON array with `digits` significant digits (cJSON would
 * print 17: three times the bytes for the maps and logits) */
static cJSON *float_array(const float *x, size_t n, int digits) {
    mg_buf_t b = {0};
    char num[32];
    mg_buf_put(&b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        int k = isfinite(x[i])
                    ? snprintf(num, sizeof num, "%s%.*g", i ? "," : "", digits, x[i])
                    : snprintf(num, sizeof num, "%s%s", i ? "," : "", x[i] > 0 ? "1e38" : "-1e38");
        mg_buf_put(&b, num, (size_t)k);
    }
    mg_buf_put(&b, "]", 1);
    cJSON *j = b.oom ? NULL : cJSON_CreateRaw(b.data);
    mg_free(b.data);
    return j;
}

static cJSON *stats_json(const explain_stats_t *s) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "mean", s->mean);
    cJSON_AddNumberToObject(j, "std", s->std);
    cJSON_AddNumberToObject(j, "min", s->min);
    cJSON_AddNumberToObject(j, "max", s->max);
    return j;
}

static const float *top_logits;
static int by_logit(const void *a, const void *b) {
    float x = top_logits[*(const int *)a], y = top_logits[*(const int *)b];
    return x > y ? -1 : x < y ? 1 : *(const int *)a - *(const int *)b;
}

/* An optional number field within [lo, hi] (absent/null: *out unchanged). */
static int field(const cJSON *req, const char *key, double lo, double hi, int whole, double *out,
                 char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi || (whole && v->valuedouble != floor(v->valuedouble)))
        return mg_fail(err, "'%s' must be a %s from %g to %g", key,
                       whole ? "whole number" : "number", lo, hi);
    *out = v->valuedouble;
    return 0;
}

static cJSON *answer(trace_t *t, kv_state_t *kv, const int32_t *ids, int n, int n_prompt,
                     const gen_stats_t *st, double seed) {
    const gpt_config_t *g = &kv->model->cfg;
    explain_t *e = &t->ex;
    cJSON *j = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddNumberToObject(m, "layers", g->layers);
    cJSON_AddNumberToObject(m, "heads", g->heads);
    cJSON_AddNumberToObject(m, "dim", g->dim);
    cJSON_AddNumberToObject(m, "context_length", g->ctx);
    cJSON_AddNumberToObject(m, "vocab_size", g->vocab);
    cJSON *toks = cJSON_AddArrayToObject(j, "tokens");
    for (int i = 0; i < n; i++) {
        cJSON *k = cJSON_CreateObject();
        cJSON_AddNumberToObject(k, "id", ids[i]);
        cJSON_AddItemToObject(k, "text", token_text(t->tok, ids[i]));
        cJSON_AddNumberToObject(k, "pos", i);
        cJSON_AddItemToArray(toks, k);
    }
    cJSON_AddNumberToObject(j, "n_prompt", n_prompt);
    cJSON_AddItemToObject(j, "merges", t->merges);
    t->merges = NULL;
    cJSON *att = cJSON_AddObjectToObject(j, "attention"),
          *maps = cJSON_AddArrayToObject(att, "maps");
    cJSON_AddNumberToObject(att, "rows", n);
    cJSON_AddNumberToObject(att, "cols", n);
    size_t map = (size_t)n * n;
    for (int l = 0; l < e->layers; l++) {
        cJSON *heads = cJSON_CreateArray();
        for (int h = 0; h < g->heads; h++)
            cJSON_AddItemToArray(
                heads, float_array(e->att_all + ((size_t)l * g->heads + h) * map, map, 4));
        cJSON_AddItemToArray(maps, heads);
    }
    cJSON *layers = cJSON_AddArrayToObject(j, "layers");
    for (int l = 0; l < e->layers; l++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "attn_ms", e->attn_s[l] * 1e3);
        cJSON_AddNumberToObject(o, "mlp_ms", e->mlp_s[l] * 1e3);
        cJSON_AddItemToObject(o, "attn", stats_json(&e->attn_st[l]));
        cJSON_AddItemToObject(o, "mlp", stats_json(&e->mlp_st[l]));
        cJSON_AddItemToArray(layers, o);
    }
    cJSON_AddItemToObject(j, "embedding", stats_json(&e->embed_st));
    cJSON_AddItemToObject(j, "final_ln", stats_json(&e->lnf_st));
    cJSON_AddNumberToObject(j, "prefill_ms", st->prefill_s * 1e3);
    cJSON_AddItemToObject(j, "logits", float_array(t->logits, (size_t)t->V, 6));
    int *idx = mg_malloc((size_t)t->V * sizeof *idx);
    if (idx) {
        for (int i = 0; i < t->V; i++)
            idx[i] = i;
        top_logits = t->logits;
        qsort(idx, (size_t)t->V, sizeof *idx, by_logit);
        cJSON *top = cJSON_AddArrayToObject(j, "top");
        for (int i = 0; i < N_TOP && i < t->V; i++) {
            cJSON *k = cJSON_CreateObject();
            cJSON_AddNumberToObject(k, "id", idx[i]);
            cJSON_AddItemToObject(k, "text", token_text(t->tok, idx[i]));
            cJSON_AddItemToArray(top, k);
        }
        mg_free(idx);
    }
    cJSON *s = cJSON_AddObjectToObject(j, "sample");
    /* the floats as the request gave them (0.8, not 0.800000011920929) */
    cJSON_AddNumberToObject(s, "temperature", round(e->sample.temperature * 1e6) / 1e6);
    cJSON_AddNumberToObject(s, "top_k", e->sample.top_k);
    cJSON_AddNumberToObject(s, "top_p", round(e->sample.top_p * 1e6) / 1e6);
    cJSON_AddNumberToObject(s, "seed", seed);
    cJSON_AddNumberToObject(s, "id", e->last_id);
    cJSON_AddItemToObject(s, "text", token_text(t->tok, e->last_id));
    cJSON_AddNumberToObject(s, "kept", e->last_kept);
    return j;
}

cJSON *web_explain(kv_state_t *kv, const bpe_t *tok, const char *body, size_t len, unsigned *status,
                   char *err) {
    const gpt_config_t *g = &kv->model->cfg;
    trace_t t = {.tok = tok, .V = g->vocab};
    int32_t *ids = NULL;
    size_t n = 0;
    cJSON *res = NULL, *req = cJSON_ParseWithLength(body ? body : "", len);
    *status = 400;
    double temp = 0.8, top_k = 40, top_p = 0.95, seed = 42;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(req, "extra_ids"), *x;
    if (!cJSON_IsObject(req)) {
        mg_fail(err, "the body must be a JSON object");
        goto done;
    }
    if (!cJSON_IsString(p) || !*p->valuestring) {
        mg_fail(err, "'prompt' must be a non-empty string");
        goto done;
    }
    if (extra && !cJSON_IsNull(extra) && !cJSON_IsArray(extra)) {
        mg_fail(err, "'extra_ids' must be a list of token ids");
        goto done;
    }
    if (field(req, "temperature", 0, 100, 0, &temp, err) ||
        field(req, "top_k", 0, 1 << 24, 1, &top_k, err) ||
        field(req, "top_p", 0, 1, 0, &top_p, err) ||
        field(req, "seed", 0, 9007199254740991.0, 1, &seed, err))
        goto done;
    int n_extra = cJSON_GetArraySize(extra);
    t.merges = cJSON_CreateArray();
    t.logits = mg_malloc((size_t)t.V * sizeof(float));
    if (!t.merges || !t.logits) {
        *status = 500;
        mg_fail(err, "out of memory");
        goto done;
    }
    int32_t *pids;
    if (bpe_encode_traced(tok, p->valuestring, strlen(p->valuestring), &pids, &n, on_merge, &t,
                          err) != 0) {
        *status = 500;
        goto done;
    }
    size_t n_prompt = n;
    if (n + (size_t)n_extra > MAX_TOKENS || n + (size_t)n_extra > (size_t)g->ctx) {
        mg_free(pids);
        mg_fail(err, "the inside view takes up to %d tokens; this is %zu",
                MG_MIN(MAX_TOKENS, g->ctx), n + (size_t)n_extra);
        goto done;
    }
    if (!(ids = mg_realloc(pids, (n + (size_t)n_extra + 1) * sizeof *ids))) {
        mg_free(pids);
        *status = 500;
        mg_fail(err, "out of memory");
        goto done;
    }
    cJSON_ArrayForEach(x, extra) {
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 0 ||
            x->valuedouble >= g->vocab) {
            mg_fail(err, "'extra_ids' must be token ids from 0 to %d", g->vocab - 1);
            goto done;
        }
        ids[n++] = (int32_t)x->valuedouble;
    }
    if (explain_init(&t.ex, kv, tok, NULL, 0, 0, err) != 0) {
        *status = 500;
        goto done;
    }
    t.ex.record_all = 1;
    t.ex.sample = (sample_opts_t){(float)temp, (int)top_k, (float)top_p};
    mg_rng_t rng;
    mg_rng_seed(&rng, (uint64_t)seed);
    gen_opts_t go = {.sample = t.ex.sample,
                     .max_tokens = 1,
                     .rng = &rng,
                     .on_token = on_token,
                     .ctx = &t,
                     .cands = t.ex.last_cands,
                     .n_cands = EXPLAIN_NCANDS};
    gen_stats_t st;
    kv_reset(kv);
    explain_begin(&t.ex, ids, (int)n);
    int r = gen_run(kv, tok, ids, (int)n, &go, &st, err);
    kv->trace = NULL;
    if (r == 0 && (t.ex.err[0] || !t.ex.att_all || t.ex.n_sampled != 1)) {
        r = -1;
        mg_fail(err, "%s", t.ex.err[0] ? t.ex.err : "the trace is incomplete");
    }
    if (r != 0) {
        *status = 500;
        explain_free(&t.ex);
        goto done;
    }
    res = answer(&t, kv, ids, (int)n, (int)n_prompt, &st, seed);
    explain_free(&t.ex);
    if (!res) {
        *status = 500;
        mg_fail(err, "out of memory");
    }
done:
    cJSON_Delete(req);
    cJSON_Delete(t.merges);
    mg_free(t.logits);
    mg_free(ids);
    return res;
}
