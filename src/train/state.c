/* state.c - save and load the optimizer/data/schedule state for resume:
 * every JSON field of training_state comes from one table. */
#include "train/state.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
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

void train_corpus_fingerprint(const char *text, size_t len, train_corpus_t *c) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
    c->bytes = (long long)len;
    c->hash = h;
}

typedef enum {
    F_INT,
    F_LONG,
    F_LLONG,
    F_SIZE,
    F_FLOAT,
    F_DOUBLE,
    F_BEST, /* double; none yet (INFINITY) is saved as 1e308 */
    F_LAST, /* double; none yet (NAN) is saved as -1 */
    F_U64,  /* decimal string: JSON numbers are doubles and lose bits */
    F_RNG,  /* mg_rng_t as 64 hex digits */
} field_type_t;

typedef struct {
    const char *name;
    field_type_t type;
    double lo, hi; /* the accepted range of numbers on load */
    size_t offset; /* in train_state_t */
    int optional;  /* may be absent (older states): see the defaults in state_load */
} field_t;

#define BIG 9e15
#define S(m) offsetof(train_state_t, m)
/* in the order written; adam_t (the model's) comes first */
static const field_t fields[] = {
    {"step", F_LONG, 0, BIG, S(step), 0},
    {"total_steps", F_LONG, 1, BIG, S(total_steps), 0},
    {"warmup", F_LONG, 1, BIG, S(warmup), 0},
    {"epoch", F_INT, 0, 2e9, S(epoch), 0},
    {"cursor", F_SIZE, 0, BIG, S(cursor), 0},
    {"epoch_rng", F_RNG, 0, 0, S(epoch_rng), 0},
    {"tokens_seen", F_LLONG, 0, BIG, S(tokens_seen), 0},
    {"best_val", F_BEST, -1, 1e308, S(best_val), 0},
    {"val_loss", F_LAST, -1, 1e308, S(val_loss), 0},
    {"epoch_loss_sum", F_DOUBLE, -1e308, 1e308, S(epoch_loss_sum), 0},
    {"epoch_steps", F_LONG, 0, BIG, S(epoch_steps), 0},
    {"seconds", F_DOUBLE, 0, 1e308, S(seconds), 0},
    {"batch", F_INT, 1, 1 << 16, S(hp.batch), 0},
    {"grad_accum", F_INT, 1, 1 << 16, S(hp.grad_accum), 1}, /* absent before accumulation: 1 */
    {"eval_every", F_INT, 0, BIG, S(hp.eval_every), 0},
    {"eval_batches", F_INT, 1, 1 << 20, S(hp.eval_batches), 0},
    {"val_every", F_INT, 2, 1 << 20, S(hp.val_every), 0},
    {"lr", F_FLOAT, 0, 10, S(hp.lr), 0},
    {"min_lr_ratio", F_FLOAT, 0, 1, S(hp.min_lr_ratio), 0},
    {"weight_decay", F_FLOAT, 0, 10, S(hp.wd), 0},
    {"beta1", F_FLOAT, 0, 1, S(hp.beta1), 0},
    {"beta2", F_FLOAT, 0, 1, S(hp.beta2), 0},
    {"eps", F_FLOAT, 0, 1, S(hp.eps), 0},
    {"clip", F_FLOAT, 0, 1e9, S(hp.clip), 0},
    {"seed", F_U64, 0, 0, S(hp.seed), 0},
    /* absent before Muon: AdamW (0); 1 is Muon, whose momentum buffers are
     * adam.m's entries of the hidden matrices */
    {"optimizer", F_INT, 0, 1, S(hp.optimizer), 1},
    {"muon_lr", F_FLOAT, 0, 10, S(hp.muon_lr), 1},
    {"muon_momentum", F_FLOAT, 0, 1, S(hp.muon_momentum), 1},
    /* absent before fingerprints: has_corpus stays 0 */
    {"corpus_bytes", F_LLONG, 0, BIG, S(corpus.bytes), 1},
    {"corpus_hash", F_U64, 0, 0, S(corpus.hash), 1},
    /* absent before data-parallel training: one process */
    {"world_size", F_INT, 0, 1 << 24, S(world_size), 1},
};
#undef S
#define N_FIELDS (int)(sizeof fields / sizeof fields[0])

const char *train_optimizer_name(int optimizer) {
    return optimizer == TRAIN_OPT_MUON ? "muon" : "adamw";
}

static int is_corpus(const field_t *f) { return strncmp(f->name, "corpus_", 7) == 0; }

static void put(cJSON *j, const field_t *f, const train_state_t *s) {
    const char *p = (const char *)s + f->offset;
    char txt[80];
    double d = 0;
    switch (f->type) {
    case F_INT: d = *(const int *)p; break;
    case F_LONG: d = (double)*(const long *)p; break;
    case F_LLONG: d = (double)*(const long long *)p; break;
    case F_SIZE: d = (double)*(const size_t *)p; break;
    case F_FLOAT: d = *(const float *)p; break;
    case F_DOUBLE: d = *(const double *)p; break;
    case F_BEST: d = isfinite(*(const double *)p) ? *(const double *)p : 1e308; break;
    case F_LAST: d = isfinite(*(const double *)p) ? *(const double *)p : -1; break;
    case F_U64:
        snprintf(txt, sizeof txt, "%" PRIu64, *(const uint64_t *)p);
        cJSON_AddStringToObject(j, f->name, txt);
        return;
    case F_RNG: {
        const uint64_t *w = ((const mg_rng_t *)p)->s;
        snprintf(txt, sizeof txt, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, w[0],
                 w[1], w[2], w[3]);
        cJSON_AddStringToObject(j, f->name, txt);
        return;
    }
    }
    cJSON_AddNumberToObject(j, f->name, d);
}

/* reads one present field into s; a reason in why on failure */
static int get(const cJSON *v, const field_t *f, train_state_t *s, char *why) {
    char *p = (char *)s + f->offset;
    if (f->type == F_U64 || f->type == F_RNG) {
        size_t want = f->type == F_RNG ? 64 : 0;
        const char *t = cJSON_IsString(v) ? v->valuestring : NULL;
        if (!t || !*t || (want && strlen(t) != want) ||
            (!want && strspn(t, "0123456789") != strlen(t)))
            return mg_fail(why, "training_state: bad %s", f->name);
        if (f->type == F_U64) {
            *(uint64_t *)p = strtoull(t, NULL, 10);
            return 0;
        }
        for (int i = 0; i < 4; i++) {
            char part[17], *end;
            memcpy(part, t + 16 * i, 16);
            part[16] = 0;
            ((mg_rng_t *)p)->s[i] = strtoull(part, &end, 16);
            if (*end) return mg_fail(why, "training_state: bad %s", f->name);
        }
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < f->lo ||
        v->valuedouble > f->hi)
        return mg_fail(why, "training_state: '%s' missing or out of range", f->name);
    double d = v->valuedouble;
    switch (f->type) {
    case F_INT: *(int *)p = (int)d; break;
    case F_LONG: *(long *)p = (long)d; break;
    case F_LLONG: *(long long *)p = (long long)d; break;
    case F_SIZE: *(size_t *)p = (size_t)d; break;
    case F_FLOAT: *(float *)p = (float)d; break;
    case F_DOUBLE: *(double *)p = d; break;
    case F_BEST: *(double *)p = d >= 1e308 ? INFINITY : d; break;
    case F_LAST: *(double *)p = d < 0 ? NAN : d; break;
    default: break;
    }
    return 0;
}

int state_save(const char *path, const gpt_model_t *m, const train_state_t *s, char *err) {
    int rc = -1;
    float *mm = mg_malloc(m->num_floats * sizeof(float));
    float *vv = mg_malloc(m->num_floats * sizeof(float));
    st_writer_t *w = st_writer_new();
    cJSON *j = cJSON_CreateObject();
    char *json = NULL;
    if (!mm || !vv || !w || !j) {
        mg_fail(err, "out of memory saving '%s'", path);
        goto done;
    }
    m->ops->download(mm, m->m, m->num_floats * sizeof(float));
    m->ops->download(vv, m->v, m->num_floats * sizeof(float));
    int64_t shape[1] = {(int64_t)m->num_floats};
    cJSON_AddNumberToObject(j, "adam_t", m->adam_t);
    for (int i = 0; i < N_FIELDS; i++)
        if (s->has_corpus || !is_corpus(&fields[i])) put(j, &fields[i], s);
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
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "adam_t");
    if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) || t->valuedouble < 0 ||
        t->valuedouble > 2e9) {
        mg_fail(why, "training_state: 'adam_t' missing or out of range");
        goto fail;
    }
    memset(s, 0, sizeof *s);
    s->hp.grad_accum = 1;
    s->world_size = 1;
    int corpus_fields = 0;
    for (int i = 0; i < N_FIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, fields[i].name);
        if (!v && fields[i].optional) continue;
        if (get(v, &fields[i], s, why)) goto fail;
        corpus_fields += is_corpus(&fields[i]);
    }
    s->has_corpus = corpus_fields == 2;
    s->world_size = s->world_size < 1 ? 1 : s->world_size;
    m->adam_t = (int)t->valuedouble;
    m->ops->upload(m->m, tm->data, tm->nbytes);
    m->ops->upload(m->v, tv->data, tv->nbytes);
    rc = 0;
fail:
    if (rc < 0) mg_fail(err, "%s: %s", path, why);
    cJSON_Delete(j);
    st_close(f);
    return rc;
}
