/* gpt.h - the GPT-2 model: configuration, presets, the parameter table, and
 * the training forward/backward pass over the ops API.
 *
 * Architecture (the GPT-2 block, every option at 0): token + learned position
 * embeddings; n_layers pre-LayerNorm blocks x = x + attn(ln1(x));
 * x = x + mlp(ln2(x)) with causal multi-head self-attention and a 4x MLP with
 * tanh-GELU; a final LayerNorm; the LM head is tied to the token embedding.
 * The options (gpt_config_t) swap in rotary positions on q and k, RMSNorm,
 * RMS-normalised q and k, a relu(x)^2 or SwiGLU MLP, an untied head and
 * zero-initialised projections. */
#ifndef MG_GPT_H
#define MG_GPT_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"

typedef struct {
    int vocab;  /* vocabulary size V */
    int ctx;    /* context length (max positions) */
    int dim;    /* channels C */
    int layers; /* L */
    int heads;  /* NH, dim % heads == 0 */
    /* architecture options; 0 everywhere is the GPT-2 block (old checkpoints, presets) */
    int pos;     /* GPT_POS_LEARNED, GPT_POS_ROPE (rotary, theta 10000, NeoX pairs (i, i+HS/2)) */
    int norm;    /* GPT_NORM_LAYER, GPT_NORM_RMS (gain only, no bias, eps 1e-5) */
    int qk_norm; /* 0/1: RMS-normalise q and k per head (no weights, eps 1e-5) before RoPE */
    int untie_head; /* 0/1: a separate "lm_head.weight" (V,C) after ln_f in the table */
    int zero_init;  /* 0/1: attn.proj.weight, mlp.proj.weight (and lm_head.weight) start at 0 */
    int mlp;        /* GPT_MLP_GELU (0, GPT-2), GPT_MLP_RELU2, GPT_MLP_SWIGLU */
    int ffn;        /* MLP hidden size H: 0 = the default (gpt_ffn_default), which
                     * gpt_create resolves into m->cfg.ffn */
} gpt_config_t;
enum { GPT_POS_LEARNED = 0, GPT_POS_ROPE = 1 };
enum { GPT_NORM_LAYER = 0, GPT_NORM_RMS = 1 };

/* The MLP of each block, h (n,H) from x (n,C):
 *   GELU:   h = gelu(fc(x)),           fc (H,C), hidden H = 4C by default
 *   RELU2:  h = relu(fc(x))^2,         fc (H,C), H = 4C by default
 *   SWIGLU: [g | u] = fc(x), h = silu(g) * u,  fc (2H,C) rows 0..H-1 the
 *           gate g, H..2H-1 the up projection u; H by default the multiple
 *           of 32 nearest 8C/3 (at least 32): about the parameters of 4C
 * then proj (C,H) back to the residual stream. */
enum { GPT_MLP_GELU = 0, GPT_MLP_RELU2 = 1, GPT_MLP_SWIGLU = 2, GPT_MLP_COUNT };
/* "gelu", "relu2", "swiglu" ("?" out of range) */
const char *gpt_mlp_name(int mlp);
/* GPT_MLP_* of a name, or -1 */
int gpt_mlp_from_name(const char *name);
/* The default hidden size of an MLP kind at width dim (see above). */
int gpt_ffn_default(int mlp, int dim);
/* H: cfg->ffn, or the default when it is 0. */
int gpt_ffn_hidden(const gpt_config_t *cfg);
/* Columns of the fc output: H, or 2H for SwiGLU (gate and up). */
int gpt_ffn_fc_rows(const gpt_config_t *cfg);

/* Fills cfg from a preset name (micro, tiny, mini, small, gpt2); -1 if unknown. */
int gpt_preset(const char *name, gpt_config_t *cfg, char *err);
const char *gpt_preset_names(void); /* "micro, tiny, mini, small, gpt2" */
/* Checks ranges (positive, dim % heads, sizes that fit in memory maths, the
 * options' values; rope needs an even head size; a known mlp, ffn 0 or in
 * [1, 1048576]). */
int gpt_config_check(const gpt_config_t *cfg, char *err);
/* Can ops run this config? -1 with one line naming the option (e.g. "the
 * cuda backend has no rotary position embeddings (--pos rope); use --device
 * cpu") when a kernel the option needs is NULL. gpt_create calls it. */
int gpt_backend_check(const gpt_config_t *cfg, const ops_backend_t *ops, char *err);
/* Whether the model is GPT-2's block (what the Hugging Face and GGUF
 * exports write); -1 with one line naming the option that made it another,
 * format ("Hugging Face GPT-2", "GGUF") saying which export refuses. */
int gpt_gpt2_check(const gpt_config_t *cfg, const char *format, char *err);

/* One row of the parameter table. The table drives allocation, checkpoint
 * tensor names, AdamW (decay) and the gradient checks. */
typedef struct {
    char name[64];
    int ndim;
    int64_t shape[2];
    size_t offset; /* in floats, into the parameter buffer */
    size_t numel;
    int decay; /* weight decay applies (matrices only) */
    /* a hidden matrix (a layer's attn.qkv, attn.proj, mlp.fc, mlp.proj
     * weight): train --optimizer muon updates it with Muon, everything
     * else (embeddings, biases, gains) with AdamW */
    int hidden;
    /* equal row blocks Muon orthogonalises separately: 3 for
     * attn.qkv.weight (q, k, v), else 1 */
    int blocks;
} gpt_param_t;

/* Pointers to one layer's tensors, into a parameter-shaped buffer. */
typedef struct {
    float *ln1w, *ln1b;   /* (C); the biases are NULL with RMSNorm */
    float *qkvw, *qkvb;   /* (3C,C) (3C) */
    float *projw, *projb; /* (C,C) (C) */
    float *ln2w, *ln2b;   /* (C) */
    float *fcw, *fcb;     /* (F,C) (F), F = gpt_ffn_fc_rows: H, or 2H (SwiGLU) */
    float *fc2w, *fc2b;   /* (C,H) (C) */
} gpt_layer_t;

/* A parameter-shaped view: used for the weights and for the gradients. */
typedef struct {
    float *wte;         /* (V,C) */
    float *wpe;         /* (ctx,C); NULL with rotary positions */
    gpt_layer_t *layer; /* L entries */
    float *lnfw, *lnfb; /* (C); lnfb NULL with RMSNorm */
    float *head;        /* (V,C) the classifier: wte when tied, else lm_head.weight */
} gpt_view_t;

/* Activations of one training forward pass at (B,T), kept for backward. */
typedef struct {
    float *encoded; /* (B,T,C) */
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv;     /* (L,B,T,3C), q and k after qk-norm and RoPE when those are on */
    float *qk_rstd; /* (L,B,T,2NH) qk-norm's 1/rms of each head's q, then k (empty when off) */
    float *att;     /* (L, ops->attention_state_floats(B,NH,T)) */
    float *atty;    /* (L,B,T,C) */
    float *res2;    /* (L,B,T,C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch;      /* (L,B,T,F) fc output, F = gpt_ffn_fc_rows */
    float *fch_gelu; /* (L,B,T,H) after the activation */
    float *res3;     /* (L,B,T,C) residual after the MLP */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits; /* (B,T,V); holds dlogits after backward */
    float *losses; /* (B,T) */
    /* backward scratch, reused layer after layer */
    float *dres, *dc, *d3c;
    float *d4c;                /* (B,T,F) */
    float *dh;                 /* (B,T,H) SwiGLU only: the gradient of h (elsewhere d4c holds it) */
    int32_t *tokens, *targets; /* (B,T) on the backend */
} gpt_acts_t;

/* Optional per-op timing of a training step (minigpt benchmark --detailed).
 * When gpt_model_t.prof is set, gpt_forward, gpt_backward, gpt_zero_grad and
 * gpt_adamw_step synchronize the backend around each op and add its wall
 * time to seconds[phase][op]; NULL (the default) costs one branch per op. */
typedef enum {
    GPT_OP_EMBED,      /* token + position embedding (and the token upload) */
    GPT_OP_LAYERNORM,  /* ln1, ln2, ln_f (LayerNorm or RMSNorm) */
    GPT_OP_QKV,        /* matmul (N,C) -> (N,3C) */
    GPT_OP_ATTN_PROJ,  /* matmul (N,C) -> (N,C) */
    GPT_OP_FC,         /* matmul (N,C) -> (N,F) */
    GPT_OP_FC2,        /* matmul (N,H) -> (N,C) */
    GPT_OP_ATTENTION,  /* causal self-attention (with qk-norm and RoPE on q and k) */
    GPT_OP_GELU,       /* the MLP's activation (GELU, relu^2 or SwiGLU) */
    GPT_OP_RESIDUAL,   /* residual adds (and zeroing the residual gradient) */
    GPT_OP_CLASSIFIER, /* LM head matmul (N,C) -> (N,V) */
    GPT_OP_XENT,       /* softmax + cross-entropy (and the loss download) */
    GPT_OP_ADAMW,      /* zero grad, gradient norm, AdamW */
    GPT_OP_MUON,       /* Muon's update of the hidden matrices (momentum, Newton-Schulz) */
    GPT_OP_COUNT
} gpt_op_t;
enum { GPT_PHASE_FORWARD, GPT_PHASE_BACKWARD, GPT_PHASE_OPTIMIZER, GPT_PHASE_COUNT };
typedef struct {
    double seconds[GPT_PHASE_COUNT][GPT_OP_COUNT];
} gpt_prof_t;
const char *gpt_op_name(gpt_op_t op); /* "qkv matmul", ... */

typedef struct {
    gpt_config_t cfg;
    const ops_backend_t *ops;
    int n_params;
    gpt_param_t *params; /* the table (host memory) */
    size_t num_floats;   /* total parameters */
    float *weights;      /* backend buffers of num_floats each */
    float *grads;        /* NULL until gpt_alloc_training */
    float *m, *v;        /* AdamW moments, NULL until gpt_alloc_training */
    gpt_view_t w, g;     /* views into weights / grads */
    int B, T;            /* activation capacity (0 until gpt_alloc_training) */
    int cur_B, cur_T;    /* shape of the last gpt_forward */
    gpt_acts_t a;
    float *host_losses; /* (B,T) host copy */
    int adam_t;         /* AdamW steps taken */
    gpt_prof_t *prof;   /* per-op timing, NULL (default): off */
    int no_fusion;      /* 1: run the unfused kernels (benchmark --no-fusion) */
    float grad_scale;   /* gpt_backward adds grad_scale x the gradient of the mean
                         * loss: 1 after gpt_create; 1/K to average K micro-batches */
    /* backend scratch of gpt_muon_step, NULL until gpt_alloc_muon */
    float *muon_scratch;
} gpt_model_t;

/* Creates a model with zeroed weights on the given backend (NULL on error:
 * a bad config, or one the backend cannot run, gpt_backend_check). m->cfg
 * is cfg with ffn resolved (never 0). */
gpt_model_t *gpt_create(const gpt_config_t *cfg, const ops_backend_t *ops, char *err);
void gpt_free(gpt_model_t *m);
/* GPT-2 initialisation: N(0, 0.02), residual projections scaled by
 * 1/sqrt(2L), biases 0, LayerNorm/RMSNorm weights 1; with zero_init the two
 * residual projections and an untied head are 0. Deterministic in seed. */
int gpt_init_weights(gpt_model_t *m, uint64_t seed, char *err);
/* Allocates gradients, optimizer moments and activations for batches of
 * (B,T), T <= ctx. Can be called again with another shape. */
int gpt_alloc_training(gpt_model_t *m, int B, int T, char *err);
/* Only the activations (gpt_alloc_training without gradients and AdamW
 * moments): enough for gpt_forward with targets (evaluation), not for
 * gpt_backward. */
int gpt_alloc_activations(gpt_model_t *m, int B, int T, char *err);
const gpt_param_t *gpt_find_param(const gpt_model_t *m, const char *name);
/* Bytes that training at (B,T) on ops needs: parameters, gradients, AdamW
 * moments and activations (what gpt_create + gpt_alloc_training allocate). */
size_t gpt_training_bytes(const gpt_config_t *cfg, const ops_backend_t *ops, int B, int T);
/* Parameters of a config (without building the model). */
size_t gpt_param_count(const gpt_config_t *cfg);

/* Training pass on host token arrays (B,T), B <= m->B, T <= m->T: forward, then (if targets)
 * the mean cross-entropy loss, which is returned (NAN if no targets). */
float gpt_forward(gpt_model_t *m, const int32_t *tokens, const int32_t *targets, int B, int T);
/* Backward of the last gpt_forward (which needs targets): ACCUMULATES
 * m->grad_scale times the gradients of the mean loss into m->grads, so
 * K micro-batches of (B,T) with grad_scale 1/K give the gradient of one
 * batch of (K*B,T). */
void gpt_backward(gpt_model_t *m);
void gpt_zero_grad(gpt_model_t *m);
/* One AdamW step over all parameters with global-norm clipping at clip
 * (<= 0: none). Returns the gradient norm before clipping. */
float gpt_adamw_step(gpt_model_t *m, float lr, float beta1, float beta2, float eps, float wd,
                     float clip);
/* Muon (train --optimizer muon) needs the backend's muon_update (ops.h):
 * checks that it has one (else one line naming the option) and allocates
 * its scratch. Call after gpt_alloc_training. */
int gpt_alloc_muon(gpt_model_t *m, char *err);
/* The check alone, before a model exists: 0, or -1 with the line in err. */
int gpt_muon_check(const ops_backend_t *ops, char *err);
/* One step with global-norm clipping at clip over all gradients, as
 * gpt_adamw_step, but the hidden matrices (gpt_param_t.hidden) take Muon's
 * update at muon_lr (momentum buffer in m->m; m->v unused for them) with
 * decoupled decay wd; everything else AdamW at lr. Needs gpt_alloc_muon.
 * Returns the gradient norm before clipping. */
float gpt_muon_step(gpt_model_t *m, float lr, float beta1, float beta2, float eps, float wd,
                    float clip, float muon_lr, float muon_momentum);

#endif
