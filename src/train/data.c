/* data.c - train/validation split of the token stream and the batch loader. */
#include "train/data.h"

#include <string.h>

int data_split(const int32_t *ids, size_t n, size_t chunk, int every, data_split_t *out,
               char *err) {
    memset(out, 0, sizeof *out);
    if (chunk == 0 || every < 2) return mg_fail(err, "bad split parameters");
    out->train = mg_malloc((n + 1) * sizeof(int32_t));
    out->val = mg_malloc((n + 1) * sizeof(int32_t));
    if (!out->train || !out->val) {
        mg_fail(err, "out of memory splitting %zu tokens", n);
        goto fail;
    }
    for (size_t start = 0, c = 0; start < n; start += chunk, c++) {
        size_t len = MG_MIN(chunk, n - start);
        int is_val = c % (size_t)every == (size_t)every - 1;
        int32_t *dst = is_val ? out->val + out->n_val : out->train + out->n_train;
        memcpy(dst, ids + start, len * sizeof(int32_t));
        if (is_val)
            out->n_val += len;
        else
            out->n_train += len;
    }
    return 0;
fail:
    data_split_free(out);
    return -1;
}

void data_split_free(data_split_t *s) {
    mg_free(s->train);
    mg_free(s->val);
    memset(s, 0, sizeof *s);
}

static void shuffle(data_loader_t *l) {
    l->epoch_rng = l->rng;
    for (size_t i = 0; i < l->n_windows; i++)
        l->order[i] = (uint32_t)i;
    for (size_t i = l->n_windows; i > 1; i--) {
        size_t j = mg_rng_below(&l->rng, (uint32_t)i);
        uint32_t t = l->order[i - 1];
        l->order[i - 1] = l->order[j];
        l->order[j] = t;
    }
}

int data_loader_init(data_loader_t *l, const int32_t *tokens, size_t n, int B, int T, uint64_t seed,
                     char *err) {
    memset(l, 0, sizeof *l);
    if (n < (size_t)T + 1)
        return mg_fail(err, "only %zu tokens: not enough for one window of %d", n, T + 1);
    l->tokens = tokens;
    l->n = n;
    l->B = B;
    l->T = T;
    l->n_windows = (n - 1) / T;
    if (l->n_windows > UINT32_MAX) return mg_fail(err, "data too large");
    l->order = mg_malloc(l->n_windows * sizeof(uint32_t));
    if (!l->order) return mg_fail(err, "out of memory");
    mg_rng_seed(&l->rng, seed);
    shuffle(l);
    return 0;
}

void data_loader_free(data_loader_t *l) {
    mg_free(l->order);
    l->order = NULL;
}

int data_loader_next(data_loader_t *l, int32_t *x, int32_t *y) {
    for (int b = 0; b < l->B; b++) {
        const int32_t *w = l->tokens + (size_t)l->order[l->cursor++ % l->n_windows] * l->T;
        memcpy(x + (size_t)b * l->T, w, l->T * sizeof(int32_t));
        memcpy(y + (size_t)b * l->T, w + 1, l->T * sizeof(int32_t));
    }
    /* an epoch is a whole number of batches: windows left over after the
     * last full batch wait for a later epoch's shuffle */
    if (l->cursor + l->B > l->n_windows) {
        l->cursor = 0;
        l->epoch++;
        shuffle(l);
        return 1;
    }
    return 0;
}

int data_loader_restore(data_loader_t *l, int epoch, size_t cursor, const mg_rng_t *epoch_rng,
                        char *err) {
    if (cursor > l->n_windows)
        return mg_fail(err, "saved data position %zu does not fit %zu windows", cursor,
                       l->n_windows);
    l->rng = *epoch_rng;
    shuffle(l);
    l->epoch = epoch;
    l->cursor = cursor;
    return 0;
}

size_t data_loader_steps_per_epoch(const data_loader_t *l) {
    size_t s = l->n_windows / l->B;
    return s ? s : 1;
}
