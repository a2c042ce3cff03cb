/* parity_dump.c - writes what tests/parity.py compares against PyTorch:
 *   DIR/model.safetensors  a real checkpoint (tiny model, random weights)
 *   DIR/dump.safetensors   tokens, targets, logits, loss, every gradient,
 *                          and the losses of 10 AdamW steps; with --muon also
 *                          the losses of 10 Muon steps from the same start
 *                          and the weights after them (final.NAME).
 * usage: parity_dump DIR [--perturb] [--pos rope] [--norm rmsnorm] [--qk-norm] [--untie-head]
 *                        [--zero-init] [--mlp gelu|relu2|swiglu] [--muon [--muon-momentum M]]
 * --perturb adds 1e-5 (under 1% of the largest) to one gradient element, to prove the test can
 * fail; --muon-momentum other than 0.95 (which parity.py assumes) proves the Muon comparison
 * can; the other flags are train's architecture options (model/gpt.h), which the checkpoint's
 * model_config records for parity.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

#define STEPS 10

int main(int argc, char **argv) {
    char err[MG_ERR_LEN], path[4096];
    gpt_config_t cfg = {.vocab = 300, .ctx = 16, .dim = 32, .layers = 2, .heads = 4};
    int perturb = 0, muon = 0, usage = argc < 2;
    float muon_momentum = 0.95f;
    for (int i = 2; i < argc && !usage; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--perturb") == 0)
            perturb = 1;
        else if (strcmp(a, "--muon") == 0)
            muon = 1;
        else if (strcmp(a, "--muon-momentum") == 0 && *next)
            muon_momentum = strtof(next, NULL), i++;
        else if (strcmp(a, "--mlp") == 0 && (cfg.mlp = gpt_mlp_from_name(next)) >= 0)
            i++;
        else if (strcmp(a, "--pos") == 0 && strcmp(next, "rope") == 0)
            cfg.pos = GPT_POS_ROPE, i++;
        else if (strcmp(a, "--norm") == 0 && strcmp(next, "rmsnorm") == 0)
            cfg.norm = GPT_NORM_RMS, i++;
        else if (strcmp(a, "--qk-norm") == 0)
            cfg.qk_norm = 1;
        else if (strcmp(a, "--untie-head") == 0)
            cfg.untie_head = 1;
        else if (strcmp(a, "--zero-init") == 0)
            cfg.zero_init = 1;
        else
            usage = 1;
    }
    if (usage) {
        fprintf(stderr, "usage: parity_dump DIR [--perturb] [--pos rope] [--norm rmsnorm] "
                        "[--qk-norm] [--untie-head] [--zero-init] [--mlp gelu|relu2|swiglu] "
                        "[--muon [--muon-momentum M]]\n");
        return 2;
    }
    const char *text = "O Brasil é um país de dimensões continentais. A ação do tempo, a razão.";
    int B = 3, T = 16;
    const ops_backend_t *ops = ops_cpu();
    bpe_t *tok = bpe_train(text, strlen(text), 300, err);
    gpt_model_t *m = tok ? gpt_create(&cfg, ops, err) : NULL;
    if (!m || gpt_init_weights(m, 42, err) || gpt_alloc_training(m, B, T, err)) goto fail;
    /* give biases and norms non-trivial values so their gradients matter */
    mg_rng_t rng;
    mg_rng_seed(&rng, 7);
    for (int i = 0; i < m->n_params; i++) {
        const gpt_param_t *p = &m->params[i];
        if (p->ndim == 1)
            for (size_t j = 0; j < p->numel; j++)
                m->weights[p->offset + j] += 0.1f * mg_rng_normal(&rng);
    }
    ckpt_meta_t meta = {.val_loss = 0, .train_loss = 0};
    snprintf(path, sizeof path, "%s/model.safetensors", argv[1]);
    if (ckpt_save(path, m, tok, &meta, err)) goto fail;

    int32_t tokens[48], targets[48];
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int32_t)mg_rng_below(&rng, cfg.vocab);
        targets[i] = (int32_t)mg_rng_below(&rng, cfg.vocab);
    }
    gpt_zero_grad(m);
    float loss = gpt_forward(m, tokens, targets, B, T);
    /* the logits buffer now holds dlogits: recompute logits without targets */
    float *logits = mg_malloc((size_t)B * T * cfg.vocab * sizeof(float));
    float *grads = mg_malloc(m->num_floats * sizeof(float));
    gpt_forward(m, tokens, NULL, B, T);
    memcpy(logits, m->a.logits, (size_t)B * T * cfg.vocab * sizeof(float));
    gpt_forward(m, tokens, targets, B, T);
    gpt_backward(m);
    memcpy(grads, m->grads, m->num_floats * sizeof(float));
    if (perturb)
        grads[gpt_find_param(m, "transformer.layers.1.mlp.fc.weight")->offset + 5] += 1e-5f;

    /* the start of the AdamW and Muon runs */
    float *start = mg_malloc(m->num_floats * sizeof(float));
    memcpy(start, m->weights, m->num_floats * sizeof(float));
    float losses[STEPS], muon_losses[STEPS];
    for (int s = 0; s < STEPS; s++) {
        gpt_zero_grad(m);
        losses[s] = gpt_forward(m, tokens, targets, B, T);
        gpt_backward(m);
        gpt_adamw_step(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
    }

    /* 10 Muon steps (lr 0.02, momentum 0.95) on the hidden matrices, AdamW
     * on the rest as above, from the same start with fresh moments */
    float *final = mg_malloc(m->num_floats * sizeof(float));
    if (muon) {
        memcpy(m->weights, start, m->num_floats * sizeof(float));
        memset(m->m, 0, m->num_floats * sizeof(float));
        memset(m->v, 0, m->num_floats * sizeof(float));
        m->adam_t = 0;
        if (gpt_alloc_muon(m, err)) goto fail;
        for (int s = 0; s < STEPS; s++) {
            gpt_zero_grad(m);
            muon_losses[s] = gpt_forward(m, tokens, targets, B, T);
            gpt_backward(m);
            gpt_muon_step(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 0.02f, muon_momentum);
        }
        memcpy(final, m->weights, m->num_floats * sizeof(float));
    }

    st_writer_t *w = st_writer_new();
    int64_t s_bt[] = {B, T}, s_btv[] = {B, T, cfg.vocab}, s_one[] = {1}, s_steps[] = {STEPS};
    int bad = st_writer_add(w, "tokens", ST_I32, 2, s_bt, tokens, err) ||
              st_writer_add(w, "targets", ST_I32, 2, s_bt, targets, err) ||
              st_writer_add(w, "logits", ST_F32, 3, s_btv, logits, err) ||
              st_writer_add(w, "loss", ST_F32, 1, s_one, &loss, err) ||
              st_writer_add(w, "adamw_losses", ST_F32, 1, s_steps, losses, err) ||
              (muon && st_writer_add(w, "muon_losses", ST_F32, 1, s_steps, muon_losses, err));
    static char names[512][80], finals[512][80];
    for (int i = 0; i < m->n_params && !bad; i++) {
        const gpt_param_t *p = &m->params[i];
        snprintf(names[i], sizeof names[i], "grad.%s", p->name);
        bad = st_writer_add(w, names[i], ST_F32, p->ndim, p->shape, grads + p->offset, err);
        snprintf(finals[i], sizeof finals[i], "final.%s", p->name);
        if (muon && !bad)
            bad = st_writer_add(w, finals[i], ST_F32, p->ndim, p->shape, final + p->offset, err);
    }
    snprintf(path, sizeof path, "%s/dump.safetensors", argv[1]);
    if (!bad) bad = st_writer_save(w, path, err);
    st_writer_free(w);
    mg_free(logits);
    mg_free(grads);
    mg_free(start);
    mg_free(final);
    gpt_free(m);
    bpe_free(tok);
    if (bad) goto fail_msg;
    return 0;
fail:
    gpt_free(m);
    bpe_free(tok);
fail_msg:
    fprintf(stderr, "parity_dump: %s\n", err);
    return 1;
}
