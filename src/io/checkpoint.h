/* checkpoint.h - a model, its tokenizer and its training record in one
 * safetensors file.
 *
 * Tensors: the model's parameter table, F32, with its names. __metadata__:
 *   model_config        JSON {"architecture","vocab_size","context_length",
 *                             "d_model","n_layers","n_heads"}
 *   tokenizer           the tokenizer.json text
 *   training_metadata   JSON {"step","epoch","train_loss","val_loss",
 *                             "val_bpb","tokens_seen","lr","seconds"}
 *   performance_metrics JSON {"tokens_per_second"}
 *   creation_timestamp  ISO 8601 UTC
 *   source              (imported models only) JSON {"format","path",...}:
 *                       where the weights came from (minigpt convert)
 * Saving is atomic (see st_writer_save). */
#ifndef MG_CHECKPOINT_H
#define MG_CHECKPOINT_H

#include "io/safetensors.h"
#include "model/gpt.h"
#include "tokenizer/bpe.h"

typedef struct {
    long step;
    int epoch;
    double train_loss, val_loss; /* NAN when not measured */
    double val_bpb;              /* validation bits per byte; NAN when not measured */
    long long tokens_seen;
    double lr, seconds;
    double tokens_per_second;
    char optimizer[16]; /* "adamw", "muon" ("": not recorded, as before Muon) */
} ckpt_meta_t;

int ckpt_save(const char *path, const gpt_model_t *m, const bpe_t *tok, const ckpt_meta_t *meta,
              char *err);
/* ckpt_save with the optional `source` JSON and creation timestamp (NULL:
 * none / now). */
int ckpt_save_ex(const char *path, const gpt_model_t *m, const bpe_t *tok, const ckpt_meta_t *meta,
                 const char *source, const char *created, char *err);

typedef struct {
    gpt_model_t *model; /* weights uploaded to the backend */
    bpe_t *tok;
    ckpt_meta_t meta;
    char created[40];
    const char *source; /* the source metadata (NULL: trained here); in file */
    st_file_t *file;    /* still mapped, for metadata display */
} ckpt_t;

/* Opens, validates (config, every tensor's name/dtype/shape, tokenizer,
 * vocab agreement) and loads a checkpoint. NULL with a one-line reason. */
ckpt_t *ckpt_load(const char *path, const ops_backend_t *ops, char *err);
void ckpt_free(ckpt_t *c);

/* model_config JSON <-> config (validated, integers only). The string from
 * ckpt_config_to_json is mg_malloc'd: the caller frees it with mg_free; NULL
 * when out of memory. */
char *ckpt_config_to_json(const gpt_config_t *cfg);
/* training_metadata and performance_metrics JSON (either may be NULL) to
 * meta; missing or malformed fields read as "not measured". */
void ckpt_meta_from_json(const char *tm, const char *pm, ckpt_meta_t *meta);
int ckpt_config_from_json(const char *json, gpt_config_t *cfg, char *err);

#endif
