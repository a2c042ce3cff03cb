/* kv_batch_standin.c - STAND-IN for kv_feed_batch (kv.h): one kv_feed per
 * sequence, so the server's slot scheduler builds and its tests run before
 * the real batched step lands. The integrator replaces this file with the
 * real implementation from branch `model` (src/infer/kv.c), which runs each
 * weight's matrix product once for all n rows. Same contract: the inputs
 * are checked first, so on an error nothing is changed. */
#include "infer/kv.h"

#include "util/common.h"

int kv_feed_batch(kv_state_t *const *seqs, const int32_t *tokens, int n, char *err) {
    for (int i = 0; i < n; i++) {
        const gpt_config_t *c = &seqs[i]->model->cfg;
        if (seqs[i]->pos + 1 > c->ctx)
            return mg_fail(err, "context full: %d + 1 tokens exceed %d", seqs[i]->pos, c->ctx);
        if (tokens[i] < 0 || tokens[i] >= c->vocab) return mg_fail(err, "token id %d out of range", tokens[i]);
    }
    for (int i = 0; i < n; i++)
        if (kv_feed(seqs[i], &tokens[i], 1, err) != 0) return -1;
    return 0;
}
