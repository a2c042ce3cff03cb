/* logits_dump.c - a checkpoint's logits and greedy continuation, for the
 * comparisons of tests/interop.sh with an independent PyTorch GPT-2.
 * usage: logits_dump CKPT OUT.bin GREEDY id...
 *   OUT.bin gets float32 logits [n ids][vocab] (each position after feeding
 *   the ids one by one); stdout gets GREEDY more ids, chosen by argmax
 *   (the KV cache's own greedy path), space-separated. */
#include <stdio.h>
#include <stdlib.h>

#include "io/checkpoint.h"
#include "infer/kv.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

int main(int argc, char **argv) {
    char err[MG_ERR_LEN];
    if (argc < 5) {
        fprintf(stderr, "usage: logits_dump CKPT OUT.bin GREEDY id...\n");
        return 2;
    }
    ops_cpu_set_threads(0);
    ckpt_t *ck = ckpt_load(argv[1], ops_cpu(), err);
    kv_state_t *kv = ck ? kv_create(ck->model, err) : NULL;
    FILE *f = kv ? fopen(argv[2], "wb") : NULL;
    if (!f) {
        fprintf(stderr, "logits_dump: %s\n", kv ? "cannot write the output" : err);
        return 1;
    }
    int V = ck->model->cfg.vocab, greedy = atoi(argv[3]);
    for (int i = 4; i < argc; i++) {
        int32_t id = (int32_t)atoi(argv[i]);
        if (kv_feed(kv, &id, 1, err) != 0) {
            fprintf(stderr, "logits_dump: %s\n", err);
            return 1;
        }
        fwrite(kv->host_logits, sizeof(float), (size_t)V, f);
    }
    fclose(f);
    kv_reset(kv);
    int n = argc - 4;
    int32_t *ids = mg_malloc((size_t)n * sizeof *ids), next;
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)atoi(argv[4 + i]);
    int32_t *feed = ids;
    for (int g = 0; g < greedy; g++) {
        if (kv_feed_greedy(kv, feed, g ? 1 : n, &next, err) != 0) {
            fprintf(stderr, "logits_dump: %s\n", err);
            return 1;
        }
        printf(g ? " %d" : "%d", next);
        ids[0] = next;
        feed = ids;
    }
    printf("\n");
    mg_free(ids);
    kv_free(kv);
    ckpt_free(ck);
    return 0;
}
