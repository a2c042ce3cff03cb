/* catalog.c - scan a directory of checkpoints and describe each from its
 * safetensors header, for `minigpt list` and `minigpt load`. */
#define _DEFAULT_SOURCE /* timegm, struct stat's st_mtim */
#include "io/catalog.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "io/checkpoint.h"

double catalog_loss(const catalog_entry_t *e) {
    if (!e->ok) return NAN;
    return isfinite(e->val_loss) ? e->val_loss : e->train_loss;
}

void catalog_shape(const gpt_config_t *g, char *buf, size_t n) {
    /* what differs from GPT-2's block is named: "... relu2:512 rope rmsnorm qk-norm untied" */
    char mlp[48] = "";
    if (g->mlp != GPT_MLP_GELU)
        snprintf(mlp, sizeof mlp, " %s:%d", gpt_mlp_name(g->mlp), gpt_ffn_hidden(g));
    snprintf(buf, n, "L%d H%d d%d ctx%d V%d%s%s%s%s%s", g->layers, g->heads, g->dim, g->ctx,
             g->vocab, mlp, g->pos == GPT_POS_ROPE ? " rope" : "",
             g->norm == GPT_NORM_RMS ? " rmsnorm" : "", g->qk_norm ? " qk-norm" : "",
             g->untie_head ? " untied" : "");
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Optimizer state and half-written temporary files are not checkpoints. */
static int is_checkpoint_name(const char *name) {
    return ends_with(name, ".safetensors") && !ends_with(name, ".optim.safetensors") &&
           !strstr(name, ".tmp.");
}

/* ASCII case folding is enough: flags and metadata keys are ASCII, and
 * folding UTF-8 properly would need a Unicode table for little gain. */
static int contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *h = hay; *h; h++)
        if (strncasecmp(h, needle, n) == 0) return 1;
    return n == 0;
}

static double num_or_nan(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

/* "YYYY-MM-DDTHH:MM:SSZ" as written by ckpt_save; 0 if it is not that. */
static time_t parse_stamp(const char *s) {
    struct tm tm = {0};
    char z = 0;
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &z, &n) != 7 ||
        z != 'Z' || s[n] || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? 0 : t;
}

/* Tokenizer summary from tokenizer.json's "model" object. The text is
 * parsed (not counted by hand) so that escaped quotes cannot fool us. */
static void read_tokenizer(catalog_entry_t *e, const char *json) {
    cJSON *j = cJSON_Parse(json);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    snprintf(e->tok_type, sizeof e->tok_type, "%s",
             cJSON_IsString(type) ? type->valuestring : "unknown");
    e->tok_vocab = cJSON_IsObject(vocab) ? cJSON_GetArraySize(vocab) : -1;
    e->tok_merges = cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : -1;
    cJSON_Delete(j);
}

static void read_training(catalog_entry_t *e, const char *json) {
    cJSON *t = json ? cJSON_Parse(json) : NULL;
    double step = num_or_nan(t, "step"), epoch = num_or_nan(t, "epoch");
    e->step = isfinite(step) && fabs(step) < 1e15 ? (long)step : 0;
    e->epoch = isfinite(epoch) && fabs(epoch) < 1e9 ? (int)epoch : 0;
    e->train_loss = num_or_nan(t, "train_loss");
    e->val_loss = num_or_nan(t, "val_loss");
    cJSON_Delete(t);
}

/* Fills e (path and name already set) from the file's header. Failures
 * are recorded in e->why, never returned: an unreadable file is an entry. */
static void entry_read(catalog_entry_t *e, const char *search) {
    char why[MG_ERR_LEN];
    struct stat sb;
    st_file_t *f = NULL;
    e->train_loss = e->val_loss = NAN;
    if (stat(e->path, &sb) != 0) {
        mg_fail(e->why, "cannot stat '%s': %s", e->path, strerror(errno));
        goto done;
    }
    e->size = (long long)sb.st_size;
    e->mtime_ns = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    f = st_open(e->path, e->why);
    if (!f) goto done;
    const char *cj = st_meta(f, "model_config"), *tj = st_meta(f, "tokenizer");
    if (!cj || !tj) {
        mg_fail(e->why, "'%s': no %s in the metadata (not a minigpt checkpoint)", e->path,
                cj ? "tokenizer" : "model_config");
        goto done;
    }
    if (ckpt_config_from_json(cj, &e->cfg, why) != 0) {
        mg_fail(e->why, "'%s': %s", e->path, why);
        goto done;
    }
    e->params = (long long)gpt_param_count(&e->cfg);
    read_tokenizer(e, tj);
    read_training(e, st_meta(f, "training_metadata"));
    const char *stamp = st_meta(f, "creation_timestamp");
    e->created = stamp ? parse_stamp(stamp) : 0;
    if (!e->created) {
        e->created = sb.st_mtim.tv_sec;
        e->created_from_mtime = 1;
    }
    e->n_tensors = f->n_tensors;
    for (int i = 0; i < f->n_tensors; i++)
        e->tensor_bytes += (long long)f->tensors[i].nbytes;
    /* the tokenizer is left out of the searched metadata: its vocabulary
     * contains nearly every short string, so every file would match */
    for (int i = 0; search && !e->meta_hit && i < f->n_meta; i++)
        e->meta_hit =
            strcmp(f->meta[i].key, "tokenizer") != 0 && contains_ci(f->meta[i].value, search);
    e->ok = 1;
done:
    st_close(f);
}

static void entry_free(catalog_entry_t *e) {
    mg_free(e->path);
    mg_free(e->name);
}

void catalog_free(catalog_t *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++)
        entry_free(&c->e[i]);
    mg_free(c->e);
    mg_free(c->dir);
    mg_free(c);
}

/* Appends an entry for path and reads it; -1 only when out of memory. */
static int catalog_add(catalog_t *c, const char *path, const char *name, const char *search,
                       int *cap, char *err) {
    if (c->n == *cap) {
        int ncap = *cap ? *cap * 2 : 16;
        catalog_entry_t *ne = mg_realloc(c->e, (size_t)ncap * sizeof *ne);
        if (!ne) return mg_fail(err, "out of memory");
        c->e = ne;
        *cap = ncap;
    }
    catalog_entry_t *e = &c->e[c->n];
    memset(e, 0, sizeof *e);
    e->path = mg_strdup(path);
    e->name = mg_strdup(name);
    c->n++; /* counted now so that catalog_free releases what was copied */
    if (!e->path || !e->name) return mg_fail(err, "out of memory");
    entry_read(e, search);
    return 0;
}

static int cmp_entry(const void *pa, const void *pb) {
    const catalog_entry_t *a = pa, *b = pb;
    if (a->ok != b->ok) return b->ok - a->ok;
    if (a->ok) {
        double la = catalog_loss(a), lb = catalog_loss(b);
        int ha = isfinite(la), hb = isfinite(lb);
        if (ha != hb) return hb - ha;
        if (ha && la != lb) return la < lb ? -1 : 1;
        if (a->step != b->step) return a->step > b->step ? -1 : 1;
    }
    return strcmp(a->name, b->name);
}

static void finish(catalog_t *c) {
    if (c->n > 1) qsort(c->e, (size_t)c->n, sizeof *c->e, cmp_entry);
    if (c->n > 0 && isfinite(catalog_loss(&c->e[0]))) c->e[0].best = 1;
}

catalog_t *catalog_scan(const char *dir, const char *search, char *err) {
    char *path = NULL;
    int cap = 0;
    catalog_t *c = mg_calloc(1, sizeof *c);
    DIR *d = opendir(dir);
    if (!d) {
        mg_fail(err, "cannot open directory '%s': %s", dir, strerror(errno));
        goto fail;
    }
    if (!c || !(c->dir = mg_strdup(dir))) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    size_t dlen = strlen(dir);
    const char *sep = dlen && dir[dlen - 1] == '/' ? "" : "/";
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!is_checkpoint_name(de->d_name)) continue;
        size_t n = dlen + strlen(de->d_name) + 2;
        path = mg_malloc(n);
        if (!path) {
            mg_fail(err, "out of memory");
            goto fail;
        }
        snprintf(path, n, "%s%s%s", dir, sep, de->d_name);
        if (catalog_add(c, path, de->d_name, search, &cap, err) != 0) goto fail;
        mg_free(path);
        path = NULL;
        errno = 0;
    }
    if (errno) {
        mg_fail(err, "cannot read directory '%s': %s", dir, strerror(errno));
        goto fail;
    }
    closedir(d);
    finish(c);
    return c;
fail:
    mg_free(path);
    if (d) closedir(d);
    catalog_free(c);
    return NULL;
}

catalog_t *catalog_file(const char *path, const char *search, char *err) {
    int cap = 0;
    catalog_t *c = mg_calloc(1, sizeof *c);
    const char *slash = strrchr(path, '/');
    if (!c) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    /* the directory part, for messages ("." for a bare name) */
    c->dir = slash ? mg_malloc((size_t)(slash - path) + 2) : mg_strdup(".");
    if (!c->dir) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    if (slash) snprintf(c->dir, (size_t)(slash - path) + 2, "%.*s", (int)(slash - path), path);
    if (slash && !c->dir[0]) strcpy(c->dir, "/");
    if (catalog_add(c, path, slash ? slash + 1 : path, search, &cap, err) != 0) goto fail;
    finish(c);
    return c;
fail:
    catalog_free(c);
    return NULL;
}

int catalog_match(const catalog_entry_t *e, const catalog_filter_t *f) {
    if (f->search) {
        if (!contains_ci(e->name, f->search) && !e->meta_hit) return 0;
    }
    if (!isnan(f->max_loss)) {
        double l = catalog_loss(e);
        if (!isfinite(l) || l > f->max_loss) return 0;
    }
    if (f->min_step >= 0 && (!e->ok || e->step < f->min_step)) return 0;
    return 1;
}

/* Whether path names a run's final model (mini_gpt.safetensors), which the
 * trainer writes last of a step's files. */
static int final_model(const char *path) {
    const char *slash = strrchr(path, '/');
    return strcmp(slash ? slash + 1 : path, "mini_gpt.safetensors") == 0;
}

/* a newer than b: creation time, then step, then file mtime, then the
 * final model: the files of one step are written within milliseconds, and
 * file systems keep mtimes in ticks of a few (4 ms here), so two of them
 * can carry the same one */
static int newer(const catalog_entry_t *a, const catalog_entry_t *b) {
    if (a->created != b->created) return a->created > b->created;
    if (a->step != b->step) return a->step > b->step;
    if (a->mtime_ns != b->mtime_ns) return a->mtime_ns > b->mtime_ns;
    return final_model(a->path) && !final_model(b->path);
}

int catalog_pick(const catalog_t *c, const catalog_filter_t *f, catalog_pick_t how) {
    int pick = -1;
    for (int i = 0; i < c->n; i++) {
        const catalog_entry_t *e = &c->e[i];
        if (!e->ok || !catalog_match(e, f)) continue;
        if (how == CATALOG_BEST) return i; /* the catalog is sorted best first */
        if (pick < 0 || newer(e, &c->e[pick])) pick = i;
    }
    return pick;
}
