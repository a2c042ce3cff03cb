/* state.c - save and load the optimizer/data/schedule state for resume. */
#include "train/state.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/safetensors.h"

char *state_path(const char *ckpt) {
    size_t n = strlen(ckpt);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    size_t base = n >= e && strcmp(ckpt + n - e, ext) == 0 ? n - e : n;
    char *p = mg_malloc(base + strlen(".optim.safetensors") + 1);
    if (!p) return NULL;
    memcpy(p, ckpt, base);
    strcpy(p + base, ".optim.safetensors");
    return p;
}

int state_save(const char *path, const gpt_model_t *m, const train_state_t *s, char *err) {
    int rc = -1;
    float *mm = mg_malloc(m->num_floats * sizeof(float));
    float *vv = mg_malloc(m->num_floats * sizeof(float));
    st_writer_t *w = st_writer_new();
    cJSON *j = cJSON_CreateObject();
    char *json = NULL, rng[80];
    if (!mm || !vv || !w || !j) {
        mg_fail(err, "out of memory saving '%s'", path);
        goto done;
    }
    m->ops->download(mm, m->m, m->num_floats * sizeof(float));
    m->ops->download(vv, m->v, m->num_floats * sizeof(float));
    int64_t shape[1] = {(int64_t)m->num_floats};
    /* u64 values as strings: JSON numbers are doubles and lose bits */
    snprintf(rng, sizeof rng, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             s->epoch_rng.s[0], s->epoch_rng.s[1], s->epoch_rng.s[2], s->epoch_rng.s[3]);
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, s->seed);
    cJSON_AddNumberToObject(j, "adam_t", m->adam_t);
    cJSON_AddNumberToObject(j, "step", (double)s->step);
    cJSON_AddNumberToObject(j, "total_steps", (double)s->total_steps);
    cJSON_AddNumberToObject(j, "warmup", (double)s->warmup);
    cJSON_AddNumberToObject(j, "epoch", s->epoch);
    cJSON_AddNumberToObject(j, "cursor", (double)s->cursor);
    cJSON_AddStringToObject(j, "epoch_rng", rng);
    cJSON_AddNumberToObject(j, "tokens_seen", (double)s->tokens_seen);
    cJSON_AddNumberToObject(j, "best_val", isfinite(s->best_val) ? s->best_val : 1e308);
    cJSON_AddNumberToObject(j, "val_loss", isfinite(s->val_loss) ? s->val_loss : -1);
    cJSON_AddNumberToObject(j, "epoch_loss_sum", s->epoch_loss_sum);
    cJSON_AddNumberToObject(j, "epoch_steps", (double)s->epoch_steps);
    cJSON_AddNumberToObject(j, "seconds", s->seconds);
    cJSON_AddNumberToObject(j, "batch", s->batch);
    cJSON_AddNumberToObject(j, "grad_accum", s->grad_accum);
    cJSON_AddNumberToObject(j, "eval_every", s->eval_every);
    cJSON_AddNumberToObject(j, "eval_batches", s->eval_batches);
    cJSON_AddNumberToObject(j, "val_every", s->val_every);
    cJSON_AddNumberToObject(j, "lr", s->lr);
    cJSON_AddNumberToObject(j, "min_lr_ratio", s->min_lr_ratio);
    cJSON_AddNumberToObject(j, "weight_decay", s->wd);
    cJSON_AddNumberToObject(j, "beta1", s->beta1);
    cJSON_AddNumberToObject(j, "beta2", s->beta2);
    cJSON_AddNumberToObject(j, "eps", s->eps);
    cJSON_AddNumberToObject(j, "clip", s->clip);
    cJSON_AddStringToObject(j, "seed", seed);
    char *printed = cJSON_PrintUnformatted(j);
    json = printed ? mg_strdup(printed) : NULL;
    cJSON_free(printed);
    if (!json) {
        mg_fail(err, "out of memory saving '%s'", path);
        goto done;
    }
    if (st_writer_add(w, "adam.m", ST_F32, 1, shape, mm, err) ||
        st_writer_add(w, "adam.v", ST_F32, 1, shape, vv, err) ||
        st_writer_meta(w, "training_state", json, err) ||
        st_writer_meta(w, "format", "minigpt-optim-1", err))
        goto done;
    rc = st_writer_save(w, path, err);
done:
    cJSON_Delete(j);
    st_writer_free(w);
    mg_free(json);
    mg_free(mm);
    mg_free(vv);
    return rc;
}

/* a JSON number that must be finite and within [lo, hi] */
static int num(const cJSON *j, const char *k, double lo, double hi, double *out, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return mg_fail(err, "training_state: '%s' missing or out of range", k);
    *out = v->valuedouble;
    return 0;
}

int state_load(const char *path, gpt_model_t *m, train_state_t *s, char *err) {
    int rc = -1;
    char why[MG_ERR_LEN];
    cJSON *j = NULL;
    st_file_t *f = st_open(path, why);
    if (!f) goto fail;
    const char *json = st_meta(f, "training_state");
    const st_tensor_t *tm = st_find(f, "adam.m"), *tv = st_find(f, "adam.v");
    if (!json || !tm || !tv) {
        mg_fail(why, "not a minigpt optimizer state (needs adam.m, adam.v, training_state)");
        goto fail;
    }
    if (tm->dtype != ST_F32 || tv->dtype != ST_F32 || tm->nbytes != m->num_floats * sizeof(float) ||
        tv->nbytes != m->num_floats * sizeof(float)) {
        mg_fail(why, "optimizer state is for a model of another size");
        goto fail;
    }
    j = cJSON_Parse(json);
    if (!cJSON_IsObject(j)) {
        mg_fail(why, "training_state is not a JSON object");
        goto fail;
    }
    double d[23] = {0};
    const double big = 9e15;
    if (num(j, "adam_t", 0, 2e9, &d[0], why) || num(j, "step", 0, big, &d[1], why) ||
        num(j, "total_steps", 1, big, &d[2], why) || num(j, "warmup", 1, big, &d[3], why) ||
        num(j, "epoch", 0, 2e9, &d[4], why) || num(j, "cursor", 0, big, &d[5], why) ||
        num(j, "tokens_seen", 0, big, &d[6], why) || num(j, "best_val", -1, 1e308, &d[7], why) ||
        num(j, "val_loss", -1, 1e308, &d[8], why) || num(j, "epoch_loss_sum", -1e308, 1e308, &d[9], why) ||
        num(j, "epoch_steps", 0, big, &d[10], why) || num(j, "seconds", 0, 1e308, &d[11], why) ||
        num(j, "batch", 1, 1 << 16, &d[12], why) || num(j, "eval_every", 0, big, &d[13], why) ||
        num(j, "eval_batches", 1, 1 << 20, &d[14], why) || num(j, "val_every", 2, 1 << 20, &d[15], why) ||
        num(j, "lr", 0, 10, &d[16], why) || num(j, "min_lr_ratio", 0, 1, &d[17], why) ||
        num(j, "weight_decay", 0, 10, &d[18], why) || num(j, "beta1", 0, 1, &d[19], why) ||
        num(j, "beta2", 0, 1, &d[20], why) || num(j, "eps", 0, 1, &d[21], why) ||
        num(j, "clip", 0, 1e9, &d[22], why))
        goto fail;
    /* absent from states written before gradient accumulation: 1 */
    double accum = 1;
    if (cJSON_GetObjectItemCaseSensitive(j, "grad_accum") && num(j, "grad_accum", 1, 1 << 16, &accum, why))
        goto fail;
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "epoch_rng");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (!cJSON_IsString(rng) || strlen(rng->valuestring) != 64 || !cJSON_IsString(seed)) {
        mg_fail(why, "training_state: bad epoch_rng or seed");
        goto fail;
    }
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, rng->valuestring + 16 * i, 16);
        part[16] = 0;
        char *end;
        s->epoch_rng.s[i] = strtoull(part, &end, 16);
        if (*end) {
            mg_fail(why, "training_state: bad epoch_rng");
            goto fail;
        }
    }
    s->seed = strtoull(seed->valuestring, NULL, 10);
    m->adam_t = (int)d[0];
    s->step = (long)d[1];
    s->total_steps = (long)d[2];
    s->warmup = (long)d[3];
    s->epoch = (int)d[4];
    s->cursor = (size_t)d[5];
    s->tokens_seen = (long long)d[6];
    s->best_val = d[7] >= 1e308 ? INFINITY : d[7];
    s->val_loss = d[8] < 0 ? NAN : d[8];
    s->epoch_loss_sum = d[9];
    s->epoch_steps = (long)d[10];
    s->seconds = d[11];
    s->batch = (int)d[12];
    s->grad_accum = (int)accum;
    s->eval_every = (int)d[13];
    s->eval_batches = (int)d[14];
    s->val_every = (int)d[15];
    s->lr = d[16];
    s->min_lr_ratio = d[17];
    s->wd = d[18];
    s->beta1 = d[19];
    s->beta2 = d[20];
    s->eps = d[21];
    s->clip = d[22];
    m->ops->upload(m->m, tm->data, tm->nbytes);
    m->ops->upload(m->v, tv->data, tv->nbytes);
    rc = 0;
fail:
    if (rc < 0) mg_fail(err, "%s: %s", path, why);
    cJSON_Delete(j);
    st_close(f);
    return rc;
}
