/* kv.h - incremental inference with a KV cache (batch 1): feeding n tokens
 * costs work for those n only; earlier positions are read from the cache. */
#ifndef MG_KV_H
#define MG_KV_H

#include <stdint.h>

#include "model/gpt.h"

typedef struct {
    gpt_model_t *model;   /* borrowed */
    int pos;              /* tokens already in the cache */
    float *kcache, *vcache; /* (L, ctx, C) on the backend */
    float *x, *tmp, *ln, *qkv, *atty, *fch, *fchg; /* per-position scratch */
    float *logits;        /* (V) on the backend */
    int32_t *tok;         /* (ctx) on the backend */
    float *host_logits;   /* (V) logits after the last fed token */
    void *block;          /* the backend allocation behind all of the above */
} kv_state_t;

/* Allocates cache and scratch for the model's full context. */
kv_state_t *kv_create(gpt_model_t *m, char *err);
void kv_free(kv_state_t *s);
void kv_reset(kv_state_t *s);
/* Runs n tokens at positions pos..pos+n-1 and leaves the logits of the
 * last one in s->host_logits. -1 if the context would overflow. */
int kv_feed(kv_state_t *s, const int32_t *tokens, int n, char *err);

#endif
