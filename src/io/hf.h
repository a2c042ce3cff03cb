/* hf.h - Hugging Face GPT-2 folders <-> minigpt checkpoints.
 *
 * A folder holds config.json (model_type "gpt2"), model.safetensors
 * (transformer.h.N.* or h.N.* names, Conv1D weights stored (in, out), F32,
 * F16 or BF16) and tokenizer.json or vocab.json + merges.txt. minigpt keeps
 * its matrices (out, in), so the Conv1D weights are transposed both ways.
 * The attention mask buffers (attn.bias, attn.masked_bias) are ignored, an
 * lm_head.weight must equal the tied embedding. Every write is atomic: an
 * export is built in a temporary folder renamed into place at the end. */
#ifndef MG_HF_H
#define MG_HF_H

#include <stddef.h>

#include "model/gpt.h"

/* config.json text -> the model's shape; refuses what minigpt cannot run
 * the same (another model_type, layer_norm_epsilon other than 1e-5, an
 * activation other than tanh-GELU, untied heads, ...). -1 with err.
 * The sizes are positive integers; gpt_config_check judges them. */
int hf_config_parse(const char *json, size_t len, gpt_config_t *cfg, char *err);

/* DIR -> the checkpoint at out (metadata "source" says where from). */
int hf_import(const char *dir, const char *out, char *err);

/* The checkpoint at path -> outdir (must not exist, or be empty):
 * config.json, model.safetensors, tokenizer.json, vocab.json, merges.txt,
 * tokenizer_config.json, generation_config.json. */
int hf_export(const char *path, const char *outdir, char *err);

/* Shared with the GGUF writer: minigpt's parameter name -> GPT-2's
 * (without "transformer."), and whether the matrix is transposed there. */
int hf_param_name(const char *name, char *out, size_t cap, int *transposed);

#endif
