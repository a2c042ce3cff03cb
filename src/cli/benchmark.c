/* benchmark.c - `minigpt benchmark`: how fast this build trains and
 * generates on this machine, with random weights and random tokens (no
 * corpus, no tokenizer). It measures a training step split into forward,
 * backward and optimizer; prefill and time to first token; batch-1 decode;
 * the backend's matmul peak and the model FLOP utilisation against it;
 * optionally per-op times (--detailed, through the model's gpt_prof_t hook)
 * and memory (--show-memory). Every figure printed is measured here. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "infer/kv.h"
#include "infer/sample.h"
#include "ops/cpu/cpu.h"
#include "ops/ops.h"
#include "util/common.h"
#include "util/sysinfo.h"

#define WARMUP 2
#define DECODE_TOKENS 64
#define REPEAT_SECONDS 1.0 /* prefill, decode: stop repeating after */
#define PEAK_MIN_REPS 5

typedef struct {
    cli_shape_t shape;
    long batch, seq, threads, iterations;
    const char *device, *precision;
    int json, detailed, show_memory, no_fusion;
    int muon; /* --optimizer muon: the step's update is gpt_muon_step */
    int q8;   /* --quantize q8: int8 weights for decoding (prefills of more than 8 tokens stay
                 float32) */
} bench_opts_t;

/* one training configuration's per-op times (--detailed) */
typedef struct {
    const char *label; /* "default", "no_fusion" */
    gpt_prof_t prof;   /* summed over the steps */
    double step_s;     /* wall time of the profiled steps, summed */
    int steps;
} bench_detail_t;

typedef struct {
    double fwd_s, bwd_s, opt_s, best_step_s; /* means over the measured steps */
    float loss;
    double flops; /* model FLOPs of one step */
    int prefill_n, prefill_reps;
    double prefill_s, ttft_s; /* means */
    int decode_n, decode_reps;
    double decode_s;   /* mean time of decode_n tokens */
    double peak_flops; /* best matmul rate, FLOP/s */
    int peak_rows;     /* N of the peak's N x 768 @ 768 x 3072 */
    int peak_reps;
    bench_detail_t detail[2];
    int n_detail;
    size_t kv_bytes;
    size_t q8_bytes; /* int8 weights (--quantize q8), else 0 */
} bench_result_t;

/* Model FLOPs of one training step at (B,T): forward matmuls (qkv, proj,
 * fc, fc2 per layer, the tied classifier) and attention (QK^T and PV over
 * the causal triangle, 2*HS*(t+1) each for query t); backward does two
 * matmuls of the same size per forward one. */
static double step_flops(const gpt_config_t *c, int B, int T) {
    double N = (double)B * T, C = c->dim, V = c->vocab, L = c->layers;
    double F = gpt_ffn_fc_rows(c), H = gpt_ffn_hidden(c); /* fc (F,C), fc2 (C,H) */
    double dense = L * 2.0 * N * C * (3 * C + C + F + H) + 2.0 * N * C * V;
    double attn = L * 2.0 * (double)B * C * T * (T + 1.0); /* QK^T + PV */
    return 3.0 * (dense + attn);
}

/* One training step: times of forward, backward and optimizer (zero grad
 * included) are added to t[0..2]; the backend is synchronized before each
 * clock read. */
static float train_step(gpt_model_t *m, const int32_t *x, const int32_t *y, int B, int T, int muon,
                        double t[3]) {
    const ops_backend_t *ops = m->ops;
    ops->synchronize();
    double t0 = mg_now();
    float loss = gpt_forward(m, x, y, B, T);
    ops->synchronize();
    double t1 = mg_now();
    gpt_backward(m);
    ops->synchronize();
    double t2 = mg_now();
    if (muon)
        gpt_muon_step(m, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 2e-3f, 0.95f);
    else
        gpt_adamw_step(m, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f);
    gpt_zero_grad(m);
    ops->synchronize();
    double t3 = mg_now();
    t[0] += t1 - t0;
    t[1] += t2 - t1;
    t[2] += t3 - t2;
    return loss;
}

static int measure_training(gpt_model_t *m, const int32_t *x, const int32_t *y, int B, int T,
                            int iters, int muon, bench_result_t *r, char *err) {
    double t[3] = {0};
    for (int i = 0; i < WARMUP; i++)
        train_step(m, x, y, B, T, muon, t);
    memset(t, 0, sizeof t);
    r->best_step_s = INFINITY;
    for (int i = 0; i < iters; i++) {
        double before = t[0] + t[1] + t[2];
        r->loss = train_step(m, x, y, B, T, muon, t);
        r->best_step_s = fmin(r->best_step_s, t[0] + t[1] + t[2] - before);
    }
    if (!isfinite(r->loss))
        return mg_fail(err, "benchmark: the training loss is not finite (%g)", r->loss);
    r->fwd_s = t[0] / iters;
    r->bwd_s = t[1] / iters;
    r->opt_s = t[2] / iters;
    r->flops = step_flops(&m->cfg, B, T);
    return 0;
}

/* --detailed: the same steps with the profiling hook on, once per label */
static void measure_detail(gpt_model_t *m, const int32_t *x, const int32_t *y, int B, int T,
                           int iters, int muon, bench_detail_t *d) {
    double t[3] = {0};
    train_step(m, x, y, B, T, muon, t); /* warm-up in this mode, not profiled */
    memset(&d->prof, 0, sizeof d->prof);
    m->prof = &d->prof;
    memset(t, 0, sizeof t);
    for (int i = 0; i < iters; i++)
        train_step(m, x, y, B, T, muon, t);
    m->prof = NULL;
    d->step_s = t[0] + t[1] + t[2];
    d->steps = iters;
}

/* Prefill of a full-context prompt (then the first token, greedy) and
 * batch-1 decode of up to DECODE_TOKENS tokens one at a time, greedy. */
static int measure_inference(gpt_model_t *m, mg_rng_t *rng, int iters, int q8, bench_result_t *r,
                             char *err) {
    const ops_backend_t *ops = m->ops;
    const gpt_config_t *c = &m->cfg;
    int P = c->ctx, rc = -1;
    int32_t *prompt = mg_malloc((size_t)P * sizeof(int32_t));
    kv_state_t *kv = kv_create(m, err);
    if (!prompt || !kv) {
        if (!prompt) mg_fail(err, "out of memory");
        goto done;
    }
    if (q8 && kv_quantize(kv, err)) goto done;
    r->kv_bytes = kv->block_bytes;
    r->q8_bytes = kv->q8_bytes;
    for (int i = 0; i < P; i++)
        prompt[i] = (int32_t)mg_rng_below(rng, (uint32_t)c->vocab);
    /* prefill: one warm-up, then repeats */
    kv_reset(kv);
    if (kv_feed(kv, prompt, P, err)) goto done;
    double feed_s = 0, ttft_s = 0, start = mg_now();
    int reps = 0;
    while (reps < iters && (reps == 0 || mg_now() - start < REPEAT_SECONDS)) {
        kv_reset(kv);
        ops->synchronize();
        double t0 = mg_now();
        if (kv_feed(kv, prompt, P, err)) goto done;
        ops->synchronize();
        double t1 = mg_now();
        volatile int first = sample_argmax(kv->host_logits, c->vocab);
        (void)first;
        double t2 = mg_now();
        feed_s += t1 - t0;
        ttft_s += t2 - t0;
        reps++;
    }
    r->prefill_n = P;
    r->prefill_reps = reps;
    r->prefill_s = feed_s / reps;
    r->ttft_s = ttft_s / reps;
    /* decode: one prompt token, then D tokens fed one at a time */
    int D = MG_MIN(DECODE_TOKENS, c->ctx - 1);
    r->decode_n = D;
    if (D < 1) { /* a context of 1 has no room to decode */
        rc = 0;
        goto done;
    }
    double dec_s = 0;
    start = mg_now();
    reps = 0;
    for (int round = -1; round < iters; round++) { /* round -1: a short warm-up */
        if (round > 0 && mg_now() - start >= REPEAT_SECONDS) break;
        kv_reset(kv);
        int32_t next;
        if (kv_feed_greedy(kv, prompt, 1, &next, err)) goto done;
        ops->synchronize();
        double t0 = mg_now();
        for (int i = 0; i < (round < 0 ? MG_MIN(D, 8) : D); i++)
            if (kv_feed_greedy(kv, &next, 1, &next, err)) goto done;
        ops->synchronize();
        if (round < 0) {
            start = mg_now();
            continue;
        }
        dec_s += mg_now() - t0;
        reps++;
    }
    r->decode_reps = reps;
    r->decode_s = dec_s / reps;
    rc = 0;
done:
    kv_free(kv);
    mg_free(prompt);
    return rc;
}

/* The best rate of one large matmul_forward on this backend (after one
 * warm-up call): at least PEAK_MIN_REPS runs, then more up to max(iters,
 * 20) runs or 2 * REPEAT_SECONDS, so that a busy moment does not lower the
 * peak that MFU divides by. */
static int measure_peak(const ops_backend_t *ops, mg_rng_t *rng, int iters, bench_result_t *r,
                        char *err) {
    /* a GPU needs many more rows than a CPU to be busy: a GPT-2 step's */
    size_t used, hi, capacity;
    ops->memory(&used, &hi, &capacity);
    const int N = capacity ? 32768 : 2048, C = 768, OC = 3072;
    r->peak_rows = N;
    size_t nx = (size_t)N * C, nw = (size_t)OC * C;
    int rc = -1;
    float *host = mg_malloc(MG_MAX(nx, nw) * sizeof(float));
    float *x = ops->alloc(nx * sizeof(float)), *w = ops->alloc(nw * sizeof(float));
    float *b = ops->alloc((size_t)OC * sizeof(float)),
          *out = ops->alloc((size_t)N * OC * sizeof(float));
    if (!host || !x || !w || !b || !out) {
        mg_fail(err, "out of memory for the matmul peak (%d x %d x %d)", N, C, OC);
        goto done;
    }
    for (size_t i = 0; i < nx; i++)
        host[i] = mg_rng_normal(rng);
    ops->upload(x, host, nx * sizeof(float));
    for (size_t i = 0; i < nw; i++)
        host[i] = 0.02f * mg_rng_normal(rng);
    ops->upload(w, host, nw * sizeof(float));
    ops->matmul_forward(out, x, w, b, N, C, OC);
    ops->synchronize();
    double best = INFINITY, start = mg_now();
    int reps = 0;
    while (reps < PEAK_MIN_REPS ||
           (reps < MG_MAX(iters, 20) && mg_now() - start < 2 * REPEAT_SECONDS)) {
        ops->synchronize();
        double t0 = mg_now();
        ops->matmul_forward(out, x, w, b, N, C, OC);
        ops->synchronize();
        best = fmin(best, mg_now() - t0);
        reps++;
    }
    r->peak_flops = 2.0 * N * C * OC / best;
    r->peak_reps = reps;
    rc = 0;
done:
    if (out) ops->free(out);
    if (b) ops->free(b);
    if (w) ops->free(w);
    if (x) ops->free(x);
    mg_free(host);
    return rc;
}

static double detail_sum(const bench_detail_t *d) {
    double s = 0;
    for (int p = 0; p < GPT_PHASE_COUNT; p++)
        for (int o = 0; o < GPT_OP_COUNT; o++)
            s += d->prof.seconds[p][o];
    return s;
}

static double op_total(const bench_detail_t *d, int op) {
    double s = 0;
    for (int p = 0; p < GPT_PHASE_COUNT; p++)
        s += d->prof.seconds[p][op];
    return s;
}

typedef struct {
    size_t params, grads, optim, acts, kv, in_use, peak, capacity, rss_now, rss_peak;
} bench_mem_t;

static void measure_memory(const gpt_model_t *m, const bench_result_t *r, int B, int T,
                           bench_mem_t *mem) {
    size_t pbytes = m->num_floats * sizeof(float);
    mem->params = pbytes;
    mem->grads = pbytes;
    mem->optim = 2 * pbytes;
    mem->acts = gpt_training_bytes(&m->cfg, m->ops, B, T) - 4 * pbytes;
    mem->kv = r->kv_bytes;
    m->ops->memory(&mem->in_use, &mem->peak, &mem->capacity);
    mem->rss_now = mg_rss_now();
    mem->rss_peak = mg_rss_peak();
}

static void print_text(const bench_opts_t *o, const gpt_model_t *m, const char *precision, int B,
                       int T, const bench_result_t *r, const bench_mem_t *mem) {
    const gpt_config_t *c = &m->cfg;
    double step = r->fwd_s + r->bwd_s + r->opt_s, tokens = (double)B * T;
    printf("minigpt benchmark: %s (%d layers, %d heads, dim %d, context %d, vocab %d, %s MLP of "
           "%d), %zu parameters\n",
           o->shape.preset ? o->shape.preset : "mini", c->layers, c->heads, c->dim, c->ctx,
           c->vocab, gpt_mlp_name(c->mlp), c->ffn, m->num_floats);
    if (c->pos || c->norm || c->qk_norm || c->untie_head || c->zero_init) /* gpt.h's options */
        printf("architecture:%s%s%s%s%s\n", c->pos == GPT_POS_ROPE ? " --pos rope" : "",
               c->norm == GPT_NORM_RMS ? " --norm rmsnorm" : "", c->qk_norm ? " --qk-norm" : "",
               c->untie_head ? " --untie-head" : "", c->zero_init ? " --zero-init" : "");
    printf("backend: %s: %s; %s%s%s\n", m->ops->name, m->ops->describe(), precision,
           o->no_fusion ? "; --no-fusion" : "", o->muon ? "; --optimizer muon" : "");
    printf("training: batch %d x %d tokens, %ld steps after %d warm-up\n", B, T, o->iterations,
           WARMUP);
    printf("  step        %9.2f ms  %10.0f tok/s  (best %.2f ms)\n", step * 1e3, tokens / step,
           r->best_step_s * 1e3);
    printf("  forward     %9.2f ms  %10.0f tok/s\n", r->fwd_s * 1e3, tokens / r->fwd_s);
    printf("  backward    %9.2f ms  %10.0f tok/s\n", r->bwd_s * 1e3, tokens / r->bwd_s);
    printf("  optimizer   %9.2f ms  (%s, clipping, zero grad)\n", r->opt_s * 1e3,
           o->muon ? "Muon on the hidden matrices, AdamW on the rest" : "AdamW");
    printf("  loss        %9.4f    (random tokens: about ln %d = %.4f)\n", r->loss, c->vocab,
           log((double)c->vocab));
    if (r->q8_bytes)
        printf("inference (batch 1, KV cache; decoding with int8 weights, %.1f MB):\n",
               r->q8_bytes / 1e6);
    else
        printf("inference (batch 1, KV cache):\n");
    printf("  prefill     %9.2f ms  %10.0f tok/s  (%d-token prompt, mean of %d)\n",
           r->prefill_s * 1e3, r->prefill_n / r->prefill_s, r->prefill_n, r->prefill_reps);
    printf("  first token %9.2f ms  (prefill + greedy pick)\n", r->ttft_s * 1e3);
    if (r->decode_n > 0)
        printf("  decode      %9.3f ms/token %7.0f tok/s  (%d tokens one at a time, greedy, mean "
               "of %d)\n",
               r->decode_s / r->decode_n * 1e3, r->decode_n / r->decode_s, r->decode_n,
               r->decode_reps);
    printf("utilisation:\n");
    printf("  matmul peak %9.1f GFLOP/s (%dx768 @ 768x3072, best of %d)\n", r->peak_flops / 1e9,
           r->peak_rows, r->peak_reps);
    printf("  model FLOPs %9.3f GFLOP per step -> %.1f GFLOP/s\n", r->flops / 1e9,
           r->flops / step / 1e9);
    printf("  MFU         %9.1f %% of the matmul peak\n", 100.0 * r->flops / step / r->peak_flops);
    if (r->n_detail) {
        const bench_detail_t *d0 = &r->detail[0];
        printf(
            "per-op times of a training step (ms, mean of %d steps, synchronized around each op)\n"
            "  %s kernels%s:\n",
            d0->steps, o->no_fusion ? "unfused" : "default",
            r->n_detail > 1 ? ", last column: total with --no-fusion" : "");
        printf("  %-18s %9s %9s %9s %9s %6s", "op", "forward", "backward", "optimizer", "total",
               "share");
        for (int k = 1; k < r->n_detail; k++)
            printf(" %11s", "no-fusion");
        printf("\n");
        double sum0 = detail_sum(d0);
        for (int op = 0; op < GPT_OP_COUNT; op++) {
            const double *s[GPT_PHASE_COUNT];
            for (int p = 0; p < GPT_PHASE_COUNT; p++)
                s[p] = d0->prof.seconds[p];
            double tot = op_total(d0, op) / d0->steps;
            printf("  %-18s %9.3f %9.3f %9.3f %9.3f %5.1f%%", gpt_op_name((gpt_op_t)op),
                   s[0][op] / d0->steps * 1e3, s[1][op] / d0->steps * 1e3,
                   s[2][op] / d0->steps * 1e3, tot * 1e3,
                   sum0 > 0 ? 100.0 * op_total(d0, op) / sum0 : 0.0);
            for (int k = 1; k < r->n_detail; k++)
                printf(" %11.3f", op_total(&r->detail[k], op) / r->detail[k].steps * 1e3);
            printf("\n");
        }
        printf("  %-18s %39.3f %6s", "sum of ops", sum0 / d0->steps * 1e3, "");
        for (int k = 1; k < r->n_detail; k++)
            printf(" %11.3f", detail_sum(&r->detail[k]) / r->detail[k].steps * 1e3);
        printf("\n  %-18s %39.3f %6s", "profiled step", d0->step_s / d0->steps * 1e3, "");
        for (int k = 1; k < r->n_detail; k++)
            printf(" %11.3f", r->detail[k].step_s / r->detail[k].steps * 1e3);
        printf("\n  (a fused kernel counts under one of the ops it fuses, e.g. residual add +\n"
               "  LayerNorm under layernorm, fc matmul + GELU under fc matmul)\n");
        if (c->mlp != GPT_MLP_GELU)
            printf("  (gelu: the MLP's activation, here %s)\n", gpt_mlp_name(c->mlp));
    }
    if (mem) {
        printf("memory:\n");
        printf("  parameters      %10.1f MB  (%zu floats)\n", mem->params / 1e6, m->num_floats);
        printf("  gradients       %10.1f MB\n", mem->grads / 1e6);
        printf("  optimizer state %10.1f MB  (AdamW m and v)\n", mem->optim / 1e6);
        printf("  activations     %10.1f MB  (batch %d x %d, with backward scratch)\n",
               mem->acts / 1e6, B, T);
        printf("  KV cache        %10.1f MB  (context %d, batch 1, with scratch)\n", mem->kv / 1e6,
               c->ctx);
        printf("  backend         %10.1f MB in use, %.1f MB peak", mem->in_use / 1e6,
               mem->peak / 1e6);
        if (mem->capacity) printf(", %.1f MB capacity", mem->capacity / 1e6);
        printf("\n  process RSS     %10.1f MB now, %.1f MB peak\n", mem->rss_now / 1e6,
               mem->rss_peak / 1e6);
    }
}

static cJSON *detail_json(const bench_detail_t *d) {
    cJSON *j = cJSON_CreateObject(), *ops = cJSON_AddObjectToObject(j, "ops");
    for (int op = 0; op < GPT_OP_COUNT; op++) {
        cJSON *o = cJSON_AddObjectToObject(ops, gpt_op_name((gpt_op_t)op));
        cJSON_AddNumberToObject(o, "forward_ms",
                                d->prof.seconds[GPT_PHASE_FORWARD][op] / d->steps * 1e3);
        cJSON_AddNumberToObject(o, "backward_ms",
                                d->prof.seconds[GPT_PHASE_BACKWARD][op] / d->steps * 1e3);
        cJSON_AddNumberToObject(o, "optimizer_ms",
                                d->prof.seconds[GPT_PHASE_OPTIMIZER][op] / d->steps * 1e3);
        cJSON_AddNumberToObject(o, "total_ms", op_total(d, op) / d->steps * 1e3);
    }
    cJSON_AddNumberToObject(j, "ops_sum_ms", detail_sum(d) / d->steps * 1e3);
    cJSON_AddNumberToObject(j, "step_ms", d->step_s / d->steps * 1e3);
    cJSON_AddNumberToObject(j, "steps", d->steps);
    return j;
}

static int print_json(const bench_opts_t *o, const gpt_model_t *m, const char *precision,
                      const char *note, int B, int T, const bench_result_t *r,
                      const bench_mem_t *mem, char *err) {
    const gpt_config_t *c = &m->cfg;
    double step = r->fwd_s + r->bwd_s + r->opt_s, tokens = (double)B * T;
    cJSON *j = cJSON_CreateObject();
    if (!j) return mg_fail(err, "out of memory");
    cJSON *mo = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(mo, "preset", o->shape.preset ? o->shape.preset : "mini");
    cJSON_AddNumberToObject(mo, "layers", c->layers);
    cJSON_AddNumberToObject(mo, "heads", c->heads);
    cJSON_AddNumberToObject(mo, "dim", c->dim);
    cJSON_AddNumberToObject(mo, "ctx", c->ctx);
    cJSON_AddNumberToObject(mo, "vocab", c->vocab);
    cJSON_AddStringToObject(mo, "mlp", gpt_mlp_name(c->mlp));
    cJSON_AddNumberToObject(mo, "ffn_hidden", c->ffn);
    cJSON_AddNumberToObject(mo, "params", (double)m->num_floats);
    /* the architecture options, as model_config names them */
    cJSON_AddStringToObject(mo, "pos", c->pos == GPT_POS_ROPE ? "rope" : "learned");
    cJSON_AddStringToObject(mo, "norm", c->norm == GPT_NORM_RMS ? "rmsnorm" : "layernorm");
    cJSON_AddBoolToObject(mo, "qk_norm", c->qk_norm);
    cJSON_AddBoolToObject(mo, "tie_head", !c->untie_head);
    cJSON_AddBoolToObject(mo, "zero_init", c->zero_init);
    cJSON_AddStringToObject(j, "backend", m->ops->name);
    cJSON_AddStringToObject(j, "device", m->ops->describe());
    cJSON_AddStringToObject(j, "precision", precision);
    if (note[0]) cJSON_AddStringToObject(j, "note", note);
    cJSON_AddNumberToObject(j, "threads", ops_cpu_threads());
    cJSON_AddBoolToObject(j, "no_fusion", o->no_fusion);
    cJSON_AddStringToObject(j, "optimizer", o->muon ? "muon" : "adamw");
    cJSON_AddNumberToObject(j, "batch", B);
    cJSON_AddNumberToObject(j, "seq", T);
    cJSON_AddNumberToObject(j, "iterations", (double)o->iterations);
    cJSON *t = cJSON_AddObjectToObject(j, "train");
    cJSON_AddNumberToObject(t, "step_ms", step * 1e3);
    cJSON_AddNumberToObject(t, "best_step_ms", r->best_step_s * 1e3);
    cJSON_AddNumberToObject(t, "forward_ms", r->fwd_s * 1e3);
    cJSON_AddNumberToObject(t, "backward_ms", r->bwd_s * 1e3);
    cJSON_AddNumberToObject(t, "optimizer_ms", r->opt_s * 1e3);
    cJSON_AddNumberToObject(t, "tokens_per_s", tokens / step);
    cJSON_AddNumberToObject(t, "forward_tokens_per_s", tokens / r->fwd_s);
    cJSON_AddNumberToObject(t, "backward_tokens_per_s", tokens / r->bwd_s);
    cJSON_AddNumberToObject(t, "loss", r->loss);
    cJSON_AddNumberToObject(t, "flops_per_step", r->flops);
    cJSON_AddNumberToObject(t, "gflops", r->flops / step / 1e9);
    cJSON_AddStringToObject(j, "decode_weights", r->q8_bytes ? "int8" : "float32");
    cJSON *p = cJSON_AddObjectToObject(j, "prefill");
    cJSON_AddNumberToObject(p, "tokens", r->prefill_n);
    cJSON_AddNumberToObject(p, "ms", r->prefill_s * 1e3);
    cJSON_AddNumberToObject(p, "tokens_per_s", r->prefill_n / r->prefill_s);
    cJSON_AddNumberToObject(p, "ttft_ms", r->ttft_s * 1e3);
    if (r->decode_n > 0) {
        cJSON *d = cJSON_AddObjectToObject(j, "decode");
        cJSON_AddNumberToObject(d, "tokens", r->decode_n);
        cJSON_AddNumberToObject(d, "ms_per_token", r->decode_s / r->decode_n * 1e3);
        cJSON_AddNumberToObject(d, "tokens_per_s", r->decode_n / r->decode_s);
    }
    cJSON *k = cJSON_AddObjectToObject(j, "matmul_peak");
    char shape[32];
    snprintf(shape, sizeof shape, "%dx768x3072", r->peak_rows);
    cJSON_AddStringToObject(k, "shape", shape);
    cJSON_AddNumberToObject(k, "gflops", r->peak_flops / 1e9);
    cJSON_AddNumberToObject(j, "mfu", r->flops / step / r->peak_flops);
    if (r->n_detail) {
        cJSON *d = cJSON_AddObjectToObject(j, "detailed");
        for (int i = 0; i < r->n_detail; i++)
            cJSON_AddItemToObject(d, r->detail[i].label, detail_json(&r->detail[i]));
    }
    if (mem) {
        cJSON *x = cJSON_AddObjectToObject(j, "memory");
        cJSON_AddNumberToObject(x, "parameters_bytes", (double)mem->params);
        cJSON_AddNumberToObject(x, "gradients_bytes", (double)mem->grads);
        cJSON_AddNumberToObject(x, "optimizer_bytes", (double)mem->optim);
        cJSON_AddNumberToObject(x, "activations_bytes", (double)mem->acts);
        cJSON_AddNumberToObject(x, "kv_cache_bytes", (double)mem->kv);
        cJSON_AddNumberToObject(x, "backend_in_use_bytes", (double)mem->in_use);
        cJSON_AddNumberToObject(x, "backend_peak_bytes", (double)mem->peak);
        cJSON_AddNumberToObject(x, "backend_capacity_bytes", (double)mem->capacity);
        cJSON_AddNumberToObject(x, "rss_bytes", (double)mem->rss_now);
        cJSON_AddNumberToObject(x, "rss_peak_bytes", (double)mem->rss_peak);
    }
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s) return mg_fail(err, "out of memory");
    printf("%s\n", s);
    cJSON_free(s);
    return 0;
}

int cli_benchmark(const cli_args_t *a, char *err) {
    bench_opts_t o = {.shape = cli_shape_of(a),
                      .batch = a->batch,
                      .seq = a->seq,
                      .threads = a->threads,
                      .iterations = a->iterations,
                      .device = a->device,
                      .precision = a->precision,
                      .json = a->json,
                      .detailed = a->detailed,
                      .show_memory = a->show_memory,
                      .no_fusion = a->no_fusion,
                      .muon = strcmp(a->optimizer, "muon") == 0,
                      .q8 = strcmp(a->quantize, "q8") == 0};
    gpt_config_t cfg = {0};
    if (cli_shape(&o.shape, &cfg, err) != 0) return CLI_USAGE;
    if (o.seq > cfg.ctx) {
        mg_fail(err, "benchmark: --seq %ld exceeds the model's context %d (--ctx)", o.seq, cfg.ctx);
        return CLI_USAGE;
    }
    int B = (int)o.batch, T = o.seq ? (int)o.seq : cfg.ctx, iters = (int)o.iterations;

    char note[MG_ERR_LEN] = "";
    o.device = cli_device_q8(o.device, o.q8);
    const ops_backend_t *ops = ops_select(o.device, o.precision, (int)o.threads, note, err);
    if (!ops) return CLI_ERR;
    if (note[0] && !o.json) printf("%s\n", note);
    const char *precision = o.precision                     ? o.precision
                            : strcmp(ops->name, "cpu") == 0 ? "fp32"
                                                            : "default";

    int rc = CLI_ERR;
    gpt_model_t *m = NULL;
    int32_t *x = NULL, *y = NULL;
    bench_result_t r = {0};
    bench_mem_t mem;
    mg_rng_t rng;
    mg_rng_seed(&rng, 1337);
    if (!(m = gpt_create(&cfg, ops, err))) goto fail;
    m->no_fusion = o.no_fusion;
    if (gpt_init_weights(m, 1337, err) || gpt_alloc_training(m, B, T, err) ||
        (o.muon && gpt_alloc_muon(m, err)))
        goto fail;
    size_t n = (size_t)B * T;
    x = mg_malloc(n * sizeof *x);
    y = mg_malloc(n * sizeof *y);
    if (!x || !y) {
        mg_fail(err, "out of memory for %zu tokens", n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        x[i] = (int32_t)mg_rng_below(&rng, (uint32_t)cfg.vocab);
        y[i] = (int32_t)mg_rng_below(&rng, (uint32_t)cfg.vocab);
    }
    if (measure_training(m, x, y, B, T, iters, o.muon, &r, err)) goto fail;
    if (o.detailed) {
        /* with the default kernels, then the unfused path beside it */
        r.detail[r.n_detail].label = o.no_fusion ? "no_fusion" : "default";
        measure_detail(m, x, y, B, T, iters, o.muon, &r.detail[r.n_detail++]);
        if (!o.no_fusion) {
            m->no_fusion = 1;
            r.detail[r.n_detail].label = "no_fusion";
            measure_detail(m, x, y, B, T, iters, o.muon, &r.detail[r.n_detail++]);
            m->no_fusion = 0;
        }
    }
    if (measure_inference(m, &rng, iters, o.q8, &r, err)) goto fail;
    if (measure_peak(ops, &rng, iters, &r, err)) goto fail;
    if (o.show_memory) measure_memory(m, &r, B, T, &mem);
    if (o.json) {
        if (print_json(&o, m, precision, note, B, T, &r, o.show_memory ? &mem : NULL, err))
            goto fail;
    } else {
        print_text(&o, m, precision, B, T, &r, o.show_memory ? &mem : NULL);
    }
    rc = CLI_OK;
fail:
    mg_free(x);
    mg_free(y);
    gpt_free(m);
    return rc;
}
