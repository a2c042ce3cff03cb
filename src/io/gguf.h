/* gguf.h - a minigpt checkpoint as a GGUF v3 file for llama.cpp (and the
 * tools built on it: LM Studio, Ollama), with llama.cpp's `gpt2`
 * architecture: its tensor names (token_embd, position_embd,
 * blk.N.attn_qkv, ...; no output.weight: the head is tied), hyperparameters
 * (gpt2.*) and tokenizer metadata (tokenizer.ggml.model "gpt2", pre
 * "gpt-2", tokens, token types, merges, special ids). minigpt's (out, in)
 * matrices are ggml's [in, out] as they are: no transposition.
 *
 * Types: f32 (exact); f16 (matrices in float16, vectors f32); q8_0
 * (matrices whose rows are a multiple of 32 in blocks of 32 int8 values
 * with one float16 scale, the rest as f16/f32). Written atomically. */
#ifndef MG_GGUF_H
#define MG_GGUF_H

#include "io/checkpoint.h"

typedef enum { GGUF_OUT_F32, GGUF_OUT_F16, GGUF_OUT_Q8_0 } gguf_out_type_t;

/* "f32", "f16", "q8_0" -> *type; -1 if none of them. */
int gguf_type_from_name(const char *name, gguf_out_type_t *type);

/* Writes ck to path (atomically). -1 with err. */
int gguf_write(const ckpt_t *ck, const char *path, gguf_out_type_t type, char *err);

#endif
