/* explain.c - the educational mode's tracing and rendering (see explain.h).
 * The hook reads activations with the backend's download, as any caller of
 * the ops API must, so it works unchanged on a non-host backend. */
#include "explain/explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"
#include "util/common.h"

void explain_stats(const float *x, size_t n, explain_stats_t *st) {
    double sum = 0.0, sq = 0.0, mn = n ? x[0] : 0.0, mx = mn;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    double mean = n ? sum / (double)n : 0.0;
    for (size_t i = 0; i < n; i++)
        sq += (x[i] - mean) * (x[i] - mean);
    *st = (explain_stats_t){mean, n ? sqrt(sq / (double)n) : 0.0, mn, mx};
}

/* the i-th shade of a UTF-8 shade string (each shade is one code point) */
static size_t shade_at(const char *shades, int i, const char **at) {
    const unsigned char *p = (const unsigned char *)shades;
    for (;;) {
        size_t len = utf8_char_len(*p);
        if (i-- == 0) {
            *at = (const char *)p;
            return len;
        }
        p += len;
    }
}

char *explain_heatmap(const float *w, int rows, int cols, int unicode, const char *const *labels,
                      int label_w) {
    const char *shades = unicode ? EXPLAIN_SHADES_UNICODE : EXPLAIN_SHADES_ASCII;
    int levels = unicode ? 5 : 10;
    float mx = 0.0f;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        mx = w[i] > mx ? w[i] : mx;
    /* a shade and a label character take up to 4 bytes each */
    size_t cap = (size_t)rows * ((size_t)cols * 4 + (size_t)label_w * 4 + 8) + 1, len = 0;
    char *s = mg_malloc(cap);
    if (!s) return NULL;
    for (int r = 0; r < rows; r++) {
        if (labels) { /* padded by characters, not bytes, so the grid lines up */
            int w = 0;
            for (const unsigned char *p = (const unsigned char *)labels[r]; *p && w < label_w;
                 w++) {
                size_t n = utf8_char_len(*p);
                while (n-- && *p)
                    s[len++] = (char)*p++;
            }
            while (w++ < label_w)
                s[len++] = ' ';
            s[len++] = ' ';
            s[len++] = '|';
        }
        for (int c = 0; c < cols; c++) {
            float v = mx > 0.0f ? w[(size_t)r * cols + c] / mx : 0.0f;
            int lv = (int)floorf(v * (float)(levels - 1) + 0.5f);
            lv = lv < 0 ? 0 : lv >= levels ? levels - 1 : lv;
            const char *at;
            size_t n = shade_at(shades, lv, &at);
            memcpy(s + len, at, n);
            len += n;
        }
        if (labels) s[len++] = '|';
        s[len++] = '\n';
    }
    s[len] = 0;
    return s;
}

void explain_attention_weights(const float *qkv, const float *keys, int n, int pos0, int C, int NH,
                               int h, float *out) {
    int HS = C / NH, len = pos0 + n;
    float scale = 1.0f / sqrtf((float)HS);
    for (int i = 0; i < n; i++) {
        const float *q = qkv + (size_t)i * 3 * C + (size_t)h * HS;
        float *o = out + (size_t)i * len;
        int last = pos0 + i;
        double mx = -INFINITY, sum = 0.0;
        for (int s = 0; s < len; s++) {
            if (s > last) {
                o[s] = 0.0f; /* causal: a token never sees the future */
                continue;
            }
            const float *k = keys + (size_t)s * C + (size_t)h * HS;
            double dot = 0.0;
            for (int j = 0; j < HS; j++)
                dot += (double)q[j] * k[j];
            o[s] = (float)(dot * scale);
            mx = o[s] > mx ? o[s] : mx;
        }
        for (int s = 0; s <= last; s++) {
            o[s] = (float)exp(o[s] - mx);
            sum += o[s];
        }
        for (int s = 0; s <= last; s++)
            o[s] = (float)(o[s] / sum);
    }
}

static const float *cut_probs;
static int cut_desc(const void *a, const void *b) {
    float x = cut_probs[*(const int *)a], y = cut_probs[*(const int *)b];
    return x > y ? -1 : x < y ? 1 : *(const int *)a - *(const int *)b;
}

int explain_cut_size(const float *logits, int V, const sample_opts_t *o, float *scratch) {
    if (o->temperature <= 0.0f) return 1;
    float *p = scratch, mx = logits[0];
    int *idx = (int *)(scratch + V);
    for (int i = 1; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < V; i++)
        sum += p[i] = expf((logits[i] - mx) / o->temperature);
    for (int i = 0; i < V; i++) {
        p[i] = (float)(p[i] / sum);
        idx[i] = i;
    }
    cut_probs = p;
    qsort(idx, (size_t)V, sizeof *idx, cut_desc);
    int n = V;
    if (o->top_k > 0 && o->top_k < n) n = o->top_k;
    if (o->top_p < 1.0f) {
        float acc = 0.0f;
        for (int i = 0; i < n; i++) {
            acc += p[idx[i]];
            if (acc >= o->top_p) return i + 1;
        }
    }
    return n;
}

void explain_token_str(const bpe_t *tok, int id, char *out, size_t cap) {
    size_t len, o = 0;
    const unsigned char *b = bpe_token_bytes(tok, id, &len);
    if (!b) len = 0;
    /* a token can be part of a character (a merge of one byte of "é"):
     * show such bytes as \xNN rather than as a broken character */
    int whole = utf8_valid(b, len);
    for (size_t k = 0; k < len && o + 5 < cap; k++) {
        if (b[k] == '\n')
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (b[k] == '"' || b[k] == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", b[k]);
        else if (b[k] < 0x20 || (b[k] >= 0x80 && !whole))
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b[k]);
        else if (b[k] < 0x80)
            out[o++] = (char)b[k];
        else { /* a whole character, or none of it when it does not fit */
            size_t n = utf8_char_len(b[k]);
            if (o + n + 1 > cap) break;
            memcpy(out + o, b + k, n);
            o += n;
            k += n - 1;
        }
    }
    out[o < cap ? o : cap - 1] = 0;
}

/* --- tokenization --- */

typedef struct {
    FILE *out;
    const bpe_t *tok;
    const char *last_pre; /* the pre-token of the previous merge line */
    size_t last_len;
    int n_merges;
} tok_trace_t;

static void on_merge(void *ctx, const char *pre, size_t len, int left, int right, int merged) {
    tok_trace_t *t = ctx;
    char a[64], b[64], m[128];
    if (t->last_pre != pre || t->last_len != len)
        fprintf(t->out, "  pre-token \"%.*s\":\n", (int)len, pre);
    t->last_pre = pre;
    t->last_len = len;
    explain_token_str(t->tok, left, a, sizeof a);
    explain_token_str(t->tok, right, b, sizeof b);
    explain_token_str(t->tok, merged, m, sizeof m);
    fprintf(t->out, "    merge %3d: \"%s\" + \"%s\" -> \"%s\" (id %d, rank %d)\n", ++t->n_merges, a,
            b, m, merged, bpe_merge_rank(t->tok, merged));
}

int explain_tokenize(FILE *out, const bpe_t *tok, const char *text, size_t len, int32_t **ids,
                     size_t *n, char *err) {
    tok_trace_t t = {.out = out, .tok = tok};
    fprintf(out, "== tokenization ==\n");
    fprintf(out,
            "text: %zu bytes, split by the GPT-2 regex into pre-tokens; each starts as\n"
            "bytes (%s) and the learned merges are applied by rank:\n",
            len, bpe_is_minigpt(tok) ? "ids 4..259" : "one id per byte");
    if (bpe_encode_traced(tok, text, len, ids, n, on_merge, &t, err) != 0) return -1;
    if (t.n_merges == 0) fprintf(out, "  (no merge applies: every token is a single byte)\n");
    fprintf(out, "merges applied: %d; %zu bytes -> %zu tokens\n", t.n_merges, len, *n);
    fprintf(out, "ids:");
    for (size_t i = 0; i < *n; i++) {
        char s[64];
        explain_token_str(tok, (*ids)[i], s, sizeof s);
        fprintf(out, " %d\"%s\"", (*ids)[i], s);
    }
    fprintf(out, "\n");
    return 0;
}

void explain_embeddings(FILE *out, const kv_state_t *kv, const bpe_t *tok, int id, int pos) {
    const gpt_model_t *m = kv->model;
    int C = m->cfg.dim, rope = m->w.wpe == NULL;
    float te[4], pe[4] = {0};
    int k = MG_MIN(4, C);
    m->ops->download(te, m->w.wte + (size_t)id * C, (size_t)k * sizeof(float));
    if (!rope) m->ops->download(pe, m->w.wpe + (size_t)pos * C, (size_t)k * sizeof(float));
    char s[64];
    explain_token_str(tok, id, s, sizeof s);
    fprintf(out, "== embeddings ==\n");
    if (rope)
        fprintf(out,
                "token embedding table %d x %d (vocab x dim), no position table: rotary position\n"
                "embeddings (--pos rope) turn each head's q and k by angles of the position\n"
                "inside attention\n",
                m->cfg.vocab, C);
    else
        fprintf(out,
                "token embedding table %d x %d (vocab x dim), position table %d x %d (context x "
                "dim)\n",
                m->cfg.vocab, C, m->cfg.ctx, C);
    fprintf(out, "token \"%s\" (id %d) at position %d, first %d of %d values:\n", s, id, pos, k, C);
    fprintf(out, "  token row    ");
    for (int i = 0; i < k; i++)
        fprintf(out, " %+.4f", te[i]);
    if (!rope) {
        fprintf(out, "\n  + position   ");
        for (int i = 0; i < k; i++)
            fprintf(out, " %+.4f", pe[i]);
    }
    fprintf(out, "\n  = input x    ");
    for (int i = 0; i < k; i++)
        fprintf(out, " %+.4f", te[i] + pe[i]);
    fprintf(out, "\n");
}

/* --- the kv hook --- */

/* head weights over the prefill, from this layer's q (s->qkv) and the K
 * cache that attention_cached just filled: the drawn head into e->att, or
 * (record_all) every head into its slot of e->att_all */
static void capture_attention(explain_t *e, const kv_state_t *s, int layer, int rows) {
    const gpt_model_t *m = s->model;
    int C = m->cfg.dim, NH = m->cfg.heads, len = s->pos + rows;
    size_t map = (size_t)rows * len;
    float *qkv = mg_malloc((size_t)rows * 3 * C * sizeof(float));
    float *keys = mg_malloc((size_t)len * C * sizeof(float));
    float *att = layer == e->att_layer ? mg_malloc(map * sizeof(float)) : NULL;
    if (!qkv || !keys || (layer == e->att_layer && !att)) {
        mg_fail(e->err, "out of memory for the attention map");
        goto done;
    }
    m->ops->download(qkv, s->qkv, (size_t)rows * 3 * C * sizeof(float));
    m->ops->download(keys, s->kcache + (size_t)layer * m->cfg.ctx * C,
                     (size_t)len * C * sizeof(float));
    if (att) {
        explain_attention_weights(qkv, keys, rows, s->pos, C, NH, e->att_head, att);
        mg_free(e->att);
        e->att = att;
        att = NULL;
        e->att_rows = rows;
        e->att_cols = len;
    }
    if (e->record_all && e->att_all)
        for (int h = 0; h < NH; h++)
            explain_attention_weights(qkv, keys, rows, s->pos, C, NH, h,
                                      e->att_all + ((size_t)layer * NH + h) * map);
done:
    mg_free(qkv);
    mg_free(keys);
    mg_free(att);
}

/* stats of a backend tensor of n floats into *st (zeros when out of memory) */
static void record_stats(explain_t *e, const kv_state_t *kv, const float *t, size_t n,
                         explain_stats_t *st) {
    float *h = mg_malloc(n * sizeof(float));
    *st = (explain_stats_t){0};
    if (!h) {
        mg_fail(e->err, "out of memory for tensor stats");
        return;
    }
    kv->model->ops->download(h, t, n * sizeof(float));
    explain_stats(h, n, st);
    mg_free(h);
}

static void print_stats(explain_t *e, const kv_state_t *kv, const char *what, const float *t,
                        int rows, int cols) {
    explain_stats_t st;
    record_stats(e, kv, t, (size_t)rows * cols, &st);
    fprintf(e->out, "    %-12s shape (%d, %d)  mean %+.4f  std %.4f  min %+.4f  max %+.4f\n", what,
            rows, cols, st.mean, st.std, st.min, st.max);
}

/* The MLP's shapes and activation, "64->256, GELU, proj 256->64" (SwiGLU:
 * "64->2x160, SwiGLU, proj 160->64"), from the model's config. */
static const char *mlp_act(const gpt_config_t *g) {
    static const char *act[GPT_MLP_COUNT] = {"GELU", "relu^2", "SwiGLU"};
    return act[g->mlp];
}
static const char *mlp_text(const gpt_config_t *g, char *buf, size_t n) {
    snprintf(buf, n, "%d->%s%d, %s, proj %d->%d", g->dim, g->mlp == GPT_MLP_SWIGLU ? "2x" : "",
             g->ffn, mlp_act(g), g->ffn, g->dim);
    return buf;
}

static void hook(void *ctx, const kv_state_t *s, int layer, const char *stage, const float *t,
                 int rows, int cols, double seconds) {
    explain_t *e = ctx;
    if (!e->in_prefill) return; /* decode steps: timed by gen_run as a whole */
    int print = e->out != NULL;
    if (strcmp(stage, "embed") == 0) {
        e->prefill_rows = rows;
        e->prefill_pos0 = s->pos;
        if (e->record_all) {
            const gpt_config_t *g = &s->model->cfg;
            mg_free(e->att_all);
            e->att_all =
                mg_calloc((size_t)e->layers * g->heads * rows * (s->pos + rows), sizeof(float));
            if (!e->att_all) mg_fail(e->err, "out of memory for the attention maps");
            record_stats(e, s, t, (size_t)rows * cols, &e->embed_st);
        }
        if (print) {
            fprintf(e->out, "== layers (prefill of %d tokens at positions %d..%d) ==\n", rows,
                    s->pos, s->pos + rows - 1);
            if (e->show_tensors) print_stats(e, s, "embedding", t, rows, cols);
        }
    } else if (strcmp(stage, "attn") == 0 && layer < EXPLAIN_MAX_LAYERS) {
        e->attn_s[layer] = seconds;
        if (layer == e->att_layer || e->record_all) capture_attention(e, s, layer, rows);
        if (e->record_all) record_stats(e, s, t, (size_t)rows * cols, &e->attn_st[layer]);
        if (print) {
            const gpt_config_t *g = &s->model->cfg;
            fprintf(e->out,
                    "  layer %d: attention (ln1%s, qkv matmul,%s%s %d heads, proj, +residual) "
                    "%.3f ms\n",
                    layer, g->norm == GPT_NORM_RMS ? " RMSNorm" : "", g->qk_norm ? " qk-norm," : "",
                    g->pos == GPT_POS_ROPE ? " RoPE," : "", g->heads, seconds * 1e3);
            if (e->show_tensors) print_stats(e, s, "after attn", t, rows, cols);
        }
    } else if (strcmp(stage, "mlp") == 0 && layer < EXPLAIN_MAX_LAYERS) {
        e->mlp_s[layer] = seconds;
        if (e->record_all) record_stats(e, s, t, (size_t)rows * cols, &e->mlp_st[layer]);
        if (print) {
            char mlp[96];
            fprintf(e->out, "  layer %d: MLP (ln2, fc %s, +residual) %.3f ms\n", layer,
                    mlp_text(&s->model->cfg, mlp, sizeof mlp), seconds * 1e3);
            if (e->show_tensors) print_stats(e, s, "after mlp", t, rows, cols);
        }
    } else if (strcmp(stage, "ln_f") == 0) {
        e->in_prefill = 0;
        if (e->record_all) record_stats(e, s, t, (size_t)rows * cols, &e->lnf_st);
        if (print && e->show_tensors) print_stats(e, s, "final ln", t, rows, cols);
        if (print && e->att) {
            int n = e->att_rows, show = MG_MIN(n, 32), off = n - show;
            int cols0 = e->att_cols - show; /* draw the last `show` rows and columns */
            const char **labels = mg_calloc((size_t)show, sizeof *labels);
            char(*lab)[24] = mg_malloc((size_t)show * sizeof *lab);
            float *w = mg_malloc((size_t)show * show * sizeof(float));
            if (labels && lab && w) {
                for (int r = 0; r < show; r++) {
                    int pos = e->prefill_pos0 + off + r;
                    int id = e->ids ? e->ids[off + r] : 0;
                    char tk[16];
                    explain_token_str(e->tok, id, tk, sizeof tk);
                    snprintf(lab[r], sizeof lab[r], "%3d %s", pos, tk);
                    labels[r] = lab[r];
                    memcpy(w + (size_t)r * show, e->att + (size_t)(off + r) * e->att_cols + cols0,
                           (size_t)show * sizeof(float));
                }
                char *map = explain_heatmap(w, show, show, e->unicode, labels, 14);
                fprintf(e->out, "== attention heatmap: layer %d, head %d ==\n", e->att_layer,
                        e->att_head);
                fprintf(e->out,
                        "row = a token (query), column = an earlier token it attends to "
                        "(key), darker = more weight (%s; scaled to the largest weight)\n",
                        e->unicode ? "\" \" to \"█\"" : "\" \" to \"@\"");
                if (show < n) fprintf(e->out, "(the last %d of %d tokens)\n", show, n);
                if (map) fputs(map, e->out);
                mg_free(map);
                /* the strongest key of the last row, as words */
                const float *last = e->att + (size_t)(n - 1) * e->att_cols;
                int best = 0;
                for (int c = 1; c < e->att_cols; c++)
                    if (last[c] > last[best]) best = c;
                fprintf(e->out,
                        "the last token puts %.0f%% of this head's attention on position %d\n",
                        100.0 * last[best], best);
            }
            mg_free(labels);
            mg_free(lab);
            mg_free(w);
        }
    }
}

int explain_init(explain_t *e, kv_state_t *kv, const bpe_t *tok, FILE *out, int unicode,
                 int show_tensors, char *err) {
    memset(e, 0, sizeof *e);
    e->out = out;
    e->unicode = unicode;
    e->show_tensors = show_tensors;
    e->tok = tok;
    e->layers = MG_MIN(kv->model->cfg.layers, EXPLAIN_MAX_LAYERS);
    e->att_layer = 0;
    e->att_head = 0;
    e->V = kv->model->cfg.vocab;
    e->scratch = mg_malloc(2 * (size_t)e->V * sizeof(float));
    if (!e->scratch) return mg_fail(err, "out of memory");
    kv->trace = hook;
    kv->trace_ctx = e;
    return 0;
}

void explain_free(explain_t *e) {
    mg_free(e->scratch);
    mg_free(e->att);
    mg_free(e->att_all);
    e->scratch = NULL;
    e->att = NULL;
    e->att_all = NULL;
}

void explain_begin(explain_t *e, const int32_t *ids, int n) {
    (void)n;
    e->ids = ids;
    e->in_prefill = 1;
    e->n_sampled = 0;
}

void explain_on_token(explain_t *e, int id, const float *logits) {
    e->last_id = id;
    e->last_kept = explain_cut_size(logits, e->V, &e->sample, e->scratch);
    e->n_sampled++;
    if (!e->out) return;
    if (e->n_sampled == 1) {
        fprintf(e->out, "== sampling ==\n");
        if (e->sample.temperature <= 0.0f)
            fprintf(e->out, "temperature 0: greedy, the most likely token is always taken\n");
        else
            fprintf(e->out,
                    "probabilities = softmax(logits / %.2f); cut to top-k %d%s, top-p %.2f; "
                    "then one is drawn at random\n",
                    e->sample.temperature, e->sample.top_k, e->sample.top_k ? "" : " (off)",
                    e->sample.top_p);
    }
    char s[64];
    fprintf(e->out, "  token %3d:", e->n_sampled);
    for (int i = 0; i < EXPLAIN_NCANDS && i < e->V; i++) {
        explain_token_str(e->tok, e->last_cands[i].id, s, sizeof s);
        fprintf(e->out, " \"%s\" %.3f", s, e->last_cands[i].prob);
    }
    explain_token_str(e->tok, id, s, sizeof s);
    int rank = -1;
    for (int i = 0; i < EXPLAIN_NCANDS; i++)
        if (e->last_cands[i].id == id) rank = i + 1;
    fprintf(e->out, "  -> \"%s\" (", s);
    if (rank > 0)
        fprintf(e->out, "candidate #%d", rank);
    else
        fprintf(e->out, "outside the top %d", EXPLAIN_NCANDS);
    fprintf(e->out, ", drawn from %d kept of %d)\n", e->last_kept, e->V);
}

void explain_summary(FILE *out, const gen_stats_t *st) {
    fprintf(out, "== summary ==\n");
    fprintf(out, "prefill: %d tokens in %.3f ms (%.3f ms per token, all positions at once)\n",
            st->prompt_tokens, st->prefill_s * 1e3,
            st->prompt_tokens ? st->prefill_s * 1e3 / st->prompt_tokens : 0.0);
    fprintf(out, "decode: %d tokens in %.3f ms (%.3f ms per token, one position each, KV cache)\n",
            st->new_tokens, st->decode_s * 1e3,
            st->new_tokens ? st->decode_s * 1e3 / st->new_tokens : 0.0);
    fprintf(out, "speed: %.1f tok/s; stopped: %s\n",
            st->decode_s > 0 ? st->new_tokens / st->decode_s : 0.0, gen_stop_name(st->stop));
}

void explain_walkthrough(FILE *out, const explain_t *e, const kv_state_t *kv,
                         const gen_stats_t *st) {
    const gpt_config_t *c = &kv->model->cfg;
    if (!e || st->prompt_tokens == 0) {
        fprintf(out, "nothing generated yet: type a prompt first\n");
        return;
    }
    double at = 0.0, ml = 0.0;
    for (int l = 0; l < e->layers; l++) {
        at += e->attn_s[l];
        ml += e->mlp_s[l];
    }
    char s[64];
    explain_token_str(e->tok, e->last_id, s, sizeof s);
    fprintf(out,
            "1. tokenize: your text became %d token ids (byte-level BPE, %d-token vocabulary).\n"
            "2. embed: each id picks a row of a %d x %d table; a learned position row is added.\n"
            "3. %d layers, each: LayerNorm -> attention (%d heads of %d) -> +residual ->\n"
            "   LayerNorm -> MLP (%d -> %s%d -> %d, %s) -> +residual.\n"
            "   In the prefill of the last turn: attention %.3f ms, MLP %.3f ms in all layers.\n"
            "4. keys and values of every position stay in the KV cache (%d of %d positions used),\n"
            "   so each new token costs one position's work.\n"
            "5. final LayerNorm, then logits = x . token table^T (tied head): %d scores.\n"
            "6. sample: softmax at temperature %.2f, top-k %d, top-p %.2f; the last token\n"
            "   \"%s\" was drawn from %d kept candidates (top: %.3f).\n"
            "7. %d tokens generated at %.1f tok/s after a %.3f ms prefill; stopped: %s.\n",
            st->prompt_tokens, c->vocab, c->vocab, c->dim, c->layers, c->heads, c->dim / c->heads,
            c->dim, c->mlp == GPT_MLP_SWIGLU ? "2x" : "", c->ffn, c->dim, mlp_act(c), at * 1e3,
            ml * 1e3, kv->pos, c->ctx, c->vocab, e->sample.temperature, e->sample.top_k,
            e->sample.top_p, s, e->last_kept, e->last_cands[0].prob, st->new_tokens,
            st->decode_s > 0 ? st->new_tokens / st->decode_s : 0.0, st->prefill_s * 1e3,
            gen_stop_name(st->stop));
}
