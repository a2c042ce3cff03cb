/* tokenize.c - `minigpt tokenize`: a text's token ids (and pieces) under a
 * checkpoint's tokenizer, for any length of text (the context does not
 * bound it). Only the tokenizer is read, not the weights. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "util/utf8.h"
#include "io/safetensors.h"
#include "util/common.h"

cJSON *cli_token_piece_json(const bpe_t *t, int id) {
    size_t len = 0;
    const unsigned char *b = bpe_token_bytes(t, id, &len);
    if (!b) len = 0;
    if (utf8_valid(b, len)) {
        char *s = mg_malloc(len + 1);
        if (!s) return NULL;
        if (len) memcpy(s, b, len);
        s[len] = 0;
        cJSON *j = cJSON_CreateString(s);
        mg_free(s);
        return j;
    }
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < len; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(b[i]));
    return arr;
}

/* standard input, whole */
static char *read_stdin(size_t *len, char *err) {
    mg_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        mg_buf_put(&b, chunk, n);
    if (ferror(stdin) || b.oom) {
        mg_free(b.data);
        mg_fail(err, "tokenize: cannot read standard input");
        return NULL;
    }
    if (!b.data) mg_buf_put(&b, "", 0);
    *len = b.len;
    return b.data;
}

static bpe_t *open_tokenizer(const char *ckpt, const char *json, char *err) {
    if (json) return bpe_load(json, err);
    st_file_t *f = st_open(ckpt, err);
    if (!f) return NULL;
    const char *t = st_meta(f, "tokenizer");
    bpe_t *tok = t ? bpe_from_json(t, strlen(t), err) : NULL;
    if (!t) mg_fail(err, "%s: no tokenizer in its metadata", ckpt);
    st_close(f);
    return tok;
}

int cli_tokenize(const cli_args_t *a, char *err) {
    const char *ckpt = a->checkpoint, *json = a->tokenizer, *file = a->file;
    int ids_only = a->ids, as_json = a->json, rc = CLI_ERR;
    int npos = a->n_positional;
    if (ids_only && as_json)
        return mg_fail(err, "tokenize: --ids and --json exclude each other"), CLI_USAGE;
    if (ckpt && json)
        return mg_fail(err, "tokenize: --checkpoint and --tokenizer exclude each other"), CLI_USAGE;
    if (npos > 1) return mg_fail(err, "tokenize: one TEXT at most (quote it)"), CLI_USAGE;
    if (npos == 1 && file) return mg_fail(err, "tokenize: TEXT or --file, not both"), CLI_USAGE;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n = 0;
    bpe_t *tok = open_tokenizer(ckpt ? ckpt : cli_default_checkpoint("models"), json, err);
    if (!tok) return CLI_ERR;
    if (npos == 1) {
        text = mg_strdup(a->positional[0]);
        len = text ? strlen(text) : 0;
        if (!text) mg_fail(err, "out of memory");
    } else {
        text = file ? mg_read_file(file, &len, err) : read_stdin(&len, err);
    }
    if (!text ||
        bpe_encode_ex(tok, text, len, a->special ? BPE_ENCODE_SPECIAL : 0, &ids, &n, err) != 0)
        goto done;
    if (ids_only) {
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    } else {
        cJSON *arr = as_json ? cJSON_CreateArray() : NULL;
        for (size_t i = 0; i < n; i++) {
            cJSON *piece = cli_token_piece_json(tok, ids[i]);
            if (as_json) {
                cJSON *t = cJSON_CreateObject();
                cJSON_AddNumberToObject(t, "id", ids[i]);
                cJSON_AddItemToObject(t, "piece", piece);
                cJSON_AddItemToArray(arr, t);
                continue;
            }
            char *p = piece ? cJSON_PrintUnformatted(piece) : NULL;
            cJSON_Delete(piece);
            if (!p) {
                mg_fail(err, "out of memory");
                goto done;
            }
            printf("%d\t%s\n", ids[i], p);
            cJSON_free(p);
        }
        if (as_json) {
            char *p = cJSON_PrintUnformatted(arr);
            cJSON_Delete(arr);
            if (!p) {
                mg_fail(err, "out of memory");
                goto done;
            }
            printf("%s\n", p);
            cJSON_free(p);
        } else {
            fprintf(stderr, "%zu tokens\n", n);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mg_fail(err, "tokenize: cannot write the output");
        goto done;
    }
    rc = CLI_OK;
done:
    mg_free(text);
    mg_free(ids);
    bpe_free(tok);
    return rc;
}
