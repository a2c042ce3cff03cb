/* web_runs.c - GET /v1/runs: the training runs under `serve --runs DIR`
 * (DIR's own train_log.jsonl and each direct subfolder's), for the app's
 * chart that compares them. Each run: {"name", "steps", "points": [{step,
 * tokens, train_loss, lr, tok_per_s, val_loss?, val_bpb?}]}; the training
 * points are thinned to at most MAX_POINTS, evaluations are all kept. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/common.h"
#include "web/web.h"

enum { MAX_POINTS = 500, MAX_RUNS = 64, MAX_LINE = 1 << 16 };

static const char *const fields[] = {"step",      "tokens",   "train_loss", "lr",
                                     "tok_per_s", "val_loss", "val_bpb"};

/* One run's points, or NULL when path cannot be read (not a run). A line
 * that is not a JSON object is an error: err set, NULL. */
static cJSON *load_run(const char *path, const char *name, char *err) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    cJSON *run = cJSON_CreateObject(), *all = cJSON_CreateArray();
    char *line = mg_malloc(MAX_LINE);
    long lines = 0;
    if (!run || !all || !line) {
        mg_fail(err, "out of memory");
        goto fail;
    }
    while (fgets(line, MAX_LINE, f)) {
        lines++;
        if (line[0] == '\n') continue;
        cJSON *j = cJSON_Parse(line), *p = cJSON_CreateObject();
        if (!cJSON_IsObject(j) || !p) {
            mg_fail(err, "%s line %ld is not a JSON object", path, lines);
            cJSON_Delete(j);
            cJSON_Delete(p);
            goto fail;
        }
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, fields[i]);
            if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(p, fields[i], v->valuedouble);
        }
        cJSON_Delete(j);
        cJSON_AddItemToArray(all, p);
    }
    int n = cJSON_GetArraySize(all), stride = n / MAX_POINTS + 1, i = 0;
    cJSON *pts = cJSON_AddArrayToObject(run, "points"), *p = all->child;
    while (p) { /* move every stride-th point, the last, and every evaluation */
        cJSON *next = p->next;
        if (i % stride == 0 || !next || cJSON_GetObjectItemCaseSensitive(p, "val_loss"))
            cJSON_AddItemToArray(pts, cJSON_DetachItemViaPointer(all, p));
        p = next;
        i++;
    }
    cJSON_AddStringToObject(run, "name", name);
    cJSON_AddNumberToObject(run, "steps", n);
    cJSON_Delete(all);
    mg_free(line);
    fclose(f);
    return run;
fail:
    cJSON_Delete(run);
    cJSON_Delete(all);
    mg_free(line);
    fclose(f);
    return NULL;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

cJSON *web_runs(const char *dir, char *err) {
    char path[4096], *names[MAX_RUNS];
    int n = 0;
    err[0] = 0;
    cJSON *j = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(j, "runs"), *r;
    DIR *d = opendir(dir);
    if (!d) {
        mg_fail(err, "cannot read --runs '%s'", dir);
        cJSON_Delete(j);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/train_log.jsonl", dir);
    const char *base = strrchr(dir, '/');
    if ((r = load_run(path, base && base[1] ? base + 1 : dir, err))) cJSON_AddItemToArray(runs, r);
    struct dirent *de;
    while (!err[0] && n < MAX_RUNS && (de = readdir(d))) {
        struct stat sb;
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/train_log.jsonl", dir, de->d_name);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (names[n] = mg_strdup(de->d_name))) n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s/train_log.jsonl", dir, names[i]);
        if (!err[0] && (r = load_run(path, names[i], err))) cJSON_AddItemToArray(runs, r);
        mg_free(names[i]);
    }
    if (err[0]) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}
