/* hf_config.c - Hugging Face GPT-2 config.json -> gpt_config_t, refusing
 * what minigpt cannot run the same way. On its own (cJSON only) so that
 * tests/fuzz/fuzz_hf_config.c can hammer it. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/hf.h"
#include "util/common.h"

/* ---- config.json ---- */

static int cfg_int(const cJSON *o, const char *key, const char *alt, int *out, char *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v && alt) v = cJSON_GetObjectItemCaseSensitive(o, alt);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 1e9) ||
        v->valuedouble != floor(v->valuedouble))
        return mg_fail(err, "config.json: '%s' is missing or not a positive integer", key);
    *out = (int)v->valuedouble;
    return 0;
}

static int is_true(const cJSON *o, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

int hf_config_parse(const char *json, size_t len, gpt_config_t *cfg, char *err) {
    int rc = -1;
    char sh[40];
    cJSON *j = json && len ? cJSON_ParseWithLength(json, len) : NULL;
    if (!cJSON_IsObject(j)) {
        mg_fail(err, "config.json: not a JSON object");
        goto done;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (!cJSON_IsString(mt) || strcmp(mt->valuestring, "gpt2") != 0) {
        snprintf(sh, sizeof sh, "%s", cJSON_IsString(mt) ? mt->valuestring : "(none)");
        for (char *c = sh; *c; c++)
            if (*c < 0x20 || *c > 0x7e) *c = '?';
        mg_fail(err, "config.json: model_type '%s' is not supported (only GPT-2: \"gpt2\")", sh);
        goto done;
    }
    if (cfg_int(j, "n_layer", NULL, &cfg->layers, err) ||
        cfg_int(j, "n_embd", NULL, &cfg->dim, err) ||
        cfg_int(j, "n_head", NULL, &cfg->heads, err) ||
        cfg_int(j, "n_positions", "n_ctx", &cfg->ctx, err) ||
        cfg_int(j, "vocab_size", NULL, &cfg->vocab, err))
        goto done;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_epsilon");
    if (eps && (!cJSON_IsNumber(eps) || fabs(eps->valuedouble - 1e-5) > 1e-12)) {
        mg_fail(
            err,
            "config.json: layer_norm_epsilon %g is not supported (minigpt's LayerNorm uses 1e-5)",
            cJSON_IsNumber(eps) ? eps->valuedouble : NAN);
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "activation_function");
    if (act && !(cJSON_IsString(act) && (strcmp(act->valuestring, "gelu_new") == 0 ||
                                         strcmp(act->valuestring, "gelu_pytorch_tanh") == 0))) {
        mg_fail(err, "config.json: activation_function is not supported (minigpt's MLP uses "
                     "tanh-GELU, gelu_new)");
        goto done;
    }
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(j, "n_inner");
    if (inner && !cJSON_IsNull(inner) &&
        !(cJSON_IsNumber(inner) && inner->valuedouble == 4.0 * cfg->dim)) {
        mg_fail(err, "config.json: n_inner must be 4 x n_embd (%d)", 4 * cfg->dim);
        goto done;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(j, "scale_attn_weights");
    if (cJSON_IsFalse(tie) || cJSON_IsFalse(scale) ||
        is_true(j, "scale_attn_by_inverse_layer_idx") || is_true(j, "add_cross_attention")) {
        mg_fail(err, "config.json: untied embeddings, unscaled or layer-scaled attention and "
                     "cross-attention are not supported");
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}
