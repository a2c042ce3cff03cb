/* parity_dump.c - writes what tests/parity.py compares against PyTorch:
 *   DIR/model.safetensors  a real checkpoint (tiny model, random weights)
 *   DIR/dump.safetensors   tokens, targets, logits, loss, every gradient,
 *                          and the losses of 10 AdamW steps.
 * usage: parity_dump DIR [--perturb] [--mlp gelu|relu2|swiglu]
 * --perturb adds 1e-5 (under 1% of the largest) to one gradient element, to prove the test can
 * fail; --mlp builds the model with that MLP (model/gpt.h). */
#include <stdio.h>
#include <string.h>

#include "io/checkpoint.h"
#include "model/gpt.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

#define STEPS 10

int main(int argc, char **argv) {
    char err[MG_ERR_LEN], path[4096];
    gpt_config_t cfg = {.vocab = 300, .ctx = 16, .dim = 32, .layers = 2, .heads = 4};
    int perturb = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--perturb") == 0)
            perturb = 1;
        else if (strcmp(argv[i], "--mlp") == 0 && i + 1 < argc &&
                 (cfg.mlp = gpt_mlp_from_name(argv[i + 1])) >= 0)
            i++;
        else
            argc = 0; /* usage */
    }
    if (argc < 2) {
        fprintf(stderr, "usage: parity_dump DIR [--perturb] [--mlp gelu|relu2|swiglu]\n");
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

    float losses[STEPS];
    for (int s = 0; s < STEPS; s++) {
        gpt_zero_grad(m);
        losses[s] = gpt_forward(m, tokens, targets, B, T);
        gpt_backward(m);
        gpt_adamw_step(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
    }

    st_writer_t *w = st_writer_new();
    int64_t s_bt[] = {B, T}, s_btv[] = {B, T, cfg.vocab}, s_one[] = {1}, s_steps[] = {STEPS};
    int bad = st_writer_add(w, "tokens", ST_I32, 2, s_bt, tokens, err) ||
              st_writer_add(w, "targets", ST_I32, 2, s_bt, targets, err) ||
              st_writer_add(w, "logits", ST_F32, 3, s_btv, logits, err) ||
              st_writer_add(w, "loss", ST_F32, 1, s_one, &loss, err) ||
              st_writer_add(w, "adamw_losses", ST_F32, 1, s_steps, losses, err);
    static char names[512][80];
    for (int i = 0; i < m->n_params && !bad; i++) {
        const gpt_param_t *p = &m->params[i];
        snprintf(names[i], sizeof names[i], "grad.%s", p->name);
        bad = st_writer_add(w, names[i], ST_F32, p->ndim, p->shape, grads + p->offset, err);
    }
    snprintf(path, sizeof path, "%s/dump.safetensors", argv[1]);
    if (!bad) bad = st_writer_save(w, path, err);
    st_writer_free(w);
    mg_free(logits);
    mg_free(grads);
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
