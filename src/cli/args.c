/* args.c - the option table of every command (cli_rows[]), its parser,
 * and the help and Markdown printed from it. See args.h for how to add an
 * option or a command. */
#define _POSIX_C_SOURCE 200809L
#include "cli/args.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/common.h"

const cli_command_t cli_commands[CLI_N_CMDS] = {
    [CLI_TRAIN] = {"train", "train a GPT on a text file (tokenizer included)",
                   "minigpt train [options]",
                   "Ctrl-C (SIGINT) or SIGTERM: finish the step, save a checkpoint, exit 0;\n"
                   "a second one: stop at once (exit 130), the last checkpoint intact.\n",
                   0},
    [CLI_GENERATE] = {"generate", "generate text from a checkpoint",
                      "minigpt generate --prompt TEXT [options]", NULL, 0},
    [CLI_EVAL] =
        {"eval", "loss, perplexity and bits per byte of a checkpoint on a text",
         "minigpt eval --data FILE [options]",
         "Every token but the first is scored once, with at least T/2 tokens of context.\n"
         "Bits per byte = total nats / total bytes / ln 2: comparable across vocabularies.\n",
         0},
    [CLI_PLOT] = {"plot", "draw a run's loss curve (SVG) from its train_log.jsonl",
                  "minigpt plot LOG [--out FILE.svg]",
                  "LOG is a run's train_log.jsonl (written by minigpt train). Draws train and\n"
                  "validation loss against tokens seen; prints a sparkline.\n",
                  1},
    [CLI_LIST] = {"list", "list the checkpoints of a directory, best first",
                  "minigpt list [options]",
                  "Checkpoints are sorted best first: lowest validation loss (training\n"
                  "loss where there is none); unreadable files are listed last.\n",
                  0},
    [CLI_LOAD] = {"load", "choose and load a checkpoint (best, latest, search, menu)",
                  "minigpt load [options]",
                  "Without --prompt, prints what was loaded; then, in --mode auto on a\n"
                  "terminal, starts the chat on it (see 'minigpt chat --help'). The generation\n"
                  "options need --prompt, except --educational and --show-tensors.\n",
                  0},
    [CLI_CHAT] = {"chat", "talk with a checkpoint (REPL on a terminal; --educational explains)",
                  "minigpt chat [options]",
                  "On a terminal: a prompt with line editing and history; Ctrl-C stops an\n"
                  "answer, Ctrl-D leaves. Otherwise each input line is one turn. Type /help\n"
                  "for the slash commands.\n",
                  0},
    [CLI_SERVE] = {"serve",
                   "serve a checkpoint over HTTP (OpenAI's completions and chat API, tokenize)",
                   "minigpt serve [options]",
                   "The generation options are the defaults of the requests' fields.\n"
                   "Endpoints (docs/server.md): GET /health, /v1/models, /v1/models/ID, /metrics;\n"
                   "POST /v1/completions, /v1/chat/completions (OpenAI's API), /tokenize,\n"
                   "/detokenize (llama.cpp's). One log line per request on stdout.\n"
                   "Ctrl-C or SIGTERM: stop taking requests, let the running ones finish (up to\n"
                   "--shutdown-timeout), exit 0.\n",
                   0},
    [CLI_BENCHMARK] =
        {"benchmark", "training and generation speed, MFU, per-op times, memory (random weights)",
         "minigpt benchmark [options]",
         "Weights and tokens are random. FLOPs count the matmuls of forward and\n"
         "backward (backward = 2x forward), the tied classifier included, and\n"
         "attention's QK^T and PV over the causal triangle; MFU divides the step's\n"
         "FLOP rate by the best rate of one large matmul (2048x768 @ 768x3072, 32768\n"
         "rows on a GPU) on the same backend (best of 5 to 20 runs).\n",
         0},
    [CLI_CONVERT] =
        {"convert",
         "Hugging Face GPT-2 in (--from-hf) and out (--to-hf); GGUF for llama.cpp (--to-gguf)",
         "minigpt convert --from-hf DIR --out FILE.safetensors\n"
         "       minigpt convert --checkpoint FILE --to-hf OUTDIR\n"
         "       minigpt convert --checkpoint FILE --to-gguf OUT.gguf [--type f32|f16|q8_0]",
         "See docs/interop.md: converting gpt2 and a Portuguese GPT-2, and running a\n"
         "minigpt model in llama.cpp, LM Studio and Ollama.\n",
         0},
    [CLI_TOKENIZE] =
        {"tokenize", "a text's token ids and pieces (any length)",
         "minigpt tokenize [options] [TEXT]",
         "The text is TEXT, else --file, else standard input. Default output: one token\n"
         "per line, its id, a tab, its piece as a JSON string (or, when its bytes are not\n"
         "UTF-8 on their own, the list of its bytes); then the count on stderr.\n",
         1},
};

#define F(field) offsetof(cli_args_t, field)
#define C(cmd) (1u << (cmd))
#define GEN (C(CLI_GENERATE) | C(CLI_LOAD) | C(CLI_CHAT) | C(CLI_SERVE))
#define HW                                                                                         \
    (C(CLI_TRAIN) | C(CLI_GENERATE) | C(CLI_EVAL) | C(CLI_LOAD) | C(CLI_CHAT) | C(CLI_SERVE) |     \
     C(CLI_BENCHMARK))
#define SHAPE (C(CLI_TRAIN) | C(CLI_BENCHMARK))
/* the architecture options' default: what the preset says (gpt.c) */
#define PRESET_ARCH "the preset's: tiny's recipe, GPT-2's block for the others"
#define CKPT_DEFAULT "models/best_model.safetensors, else models/mini_gpt.safetensors"
#define I24 16777216.0 /* 2^24 */

/* The order of the rows is the order of --help. */
const cli_row_t cli_rows[] = {
    /* what to read and write */
    {"checkpoint", "-m", "FILE", CLI_T_STR, F(checkpoint),
     C(CLI_GENERATE) | C(CLI_EVAL) | C(CLI_CHAT) | C(CLI_SERVE) | C(CLI_TOKENIZE),
     .def_doc = CKPT_DEFAULT, .help = "the model to load"},
    {"checkpoint", "-m", "FILE", CLI_T_STR, F(checkpoint), C(CLI_CONVERT),
     .help = "the minigpt checkpoint to export (with --to-hf or --to-gguf)"},
    {"checkpoint", "-m", "FILE", CLI_T_STR, F(checkpoint), C(CLI_LOAD),
     .help = "this file, instead of choosing one from --dir"},
    {"dir", NULL, "DIR", CLI_T_STR, F(dir), C(CLI_LIST) | C(CLI_LOAD), .def = "models",
     .help = "the directory of checkpoints"},
    {"mode", NULL, NULL, CLI_T_CHOICE, F(mode), C(CLI_LOAD), .choices = "auto|interactive",
     .def = "auto",
     .help =
         "auto: choose by --filter; interactive: from a numbered menu on the terminal (q quits)"},
    {"filter", NULL, NULL, CLI_T_CHOICE, F(filter), C(CLI_LOAD), .choices = "best|latest",
     .def = "best",
     .help = "best: lowest validation loss (training loss where there is none); latest: newest "
             "by creation time, then step (--mode auto)"},
    {"search", NULL, "TEXT", CLI_T_STR, F(search), C(CLI_LOAD),
     .help = "only files whose name or metadata contains TEXT (case-insensitive; the tokenizer "
             "is not searched)"},
    {"filter-max-loss", NULL, "X", CLI_T_FLOAT, F(filter_max_loss), C(CLI_LOAD), .min = 0,
     .max = 1e30, .help = "only files whose loss (validation, else training) is <= X"},
    {"filter-min-step", NULL, "N", CLI_T_INT, F(filter_min_step), C(CLI_LOAD), .min = 0,
     .max = 1125899906842624.0, .help = "only files saved at step N or later"},
    {"show-metadata", NULL, NULL, CLI_T_FLAG, F(show_metadata), C(CLI_LOAD),
     .help = "print config, training metadata, performance metrics, timestamp, tokenizer "
             "summary, tensor count and bytes"},
    {"data", NULL, "FILE", CLI_T_STR, F(data), C(CLI_TRAIN), .def = "data/corpus_pt_br.txt",
     .help = "training text"},
    {"data", NULL, "FILE", CLI_T_STR, F(data), C(CLI_EVAL), .help = "text to score (required)"},
    {"out", NULL, "DIR", CLI_T_STR, F(out), C(CLI_TRAIN), .def_doc = "models",
     .help = "where checkpoints go; a folder holding another run is refused (see --overwrite)"},
    {"dashboard", NULL, "PORT", CLI_T_INT, F(dashboard), C(CLI_TRAIN), .min = 0, .max = 65535,
     .def = "-1", .implicit = "8090", .def_doc = "none; PORT 8090 when not given",
     .help =
         "a live page of the run on http://127.0.0.1:PORT/ (0: any free port, printed): losses, "
         "learning rate, speed, ETA and a sample at each evaluation"},
    {"overwrite", NULL, NULL, CLI_T_FLAG, F(overwrite), C(CLI_TRAIN),
     .help = "replace the run in --out (its files are removed)"},
    {"out", NULL, "FILE.safetensors", CLI_T_STR, F(out), C(CLI_CONVERT),
     .help = "the minigpt checkpoint to write (with --from-hf)"},
    {"from-hf", NULL, "DIR", CLI_T_STR, F(from_hf), C(CLI_CONVERT),
     .help = "a Hugging Face GPT-2 folder: config.json, model.safetensors, tokenizer.json (or "
             "vocab.json + merges.txt)"},
    {"to-hf", NULL, "OUTDIR", CLI_T_STR, F(to_hf), C(CLI_CONVERT),
     .help = "export --checkpoint as a folder transformers loads (must not exist, or be empty)"},
    {"to-gguf", NULL, "FILE", CLI_T_STR, F(to_gguf), C(CLI_CONVERT),
     .help = "export --checkpoint as GGUF v3 for llama.cpp, LM Studio, Ollama"},
    {"type", NULL, "T", CLI_T_CHOICE, F(gguf_type), C(CLI_CONVERT), .choices = "f32|f16|q8_0",
     .def_doc = "f32", .help = "GGUF weights: f32 (exact), f16 or q8_0"},
    {"out", NULL, "FILE.svg", CLI_T_STR, F(out), C(CLI_PLOT),
     .def_doc = "loss_curve.svg beside LOG", .help = "the picture"},
    /* generation */
    {"prompt", "-p", "TEXT", CLI_T_STR, F(prompt), C(CLI_GENERATE) | C(CLI_LOAD),
     .help = "the text to continue (load: generate once from the file chosen, exactly as "
             "generate does)"},
    {"prompt-file", NULL, "F", CLI_T_STR, F(prompt_file), C(CLI_GENERATE),
     .help = "the prompt is the text of file F (instead of --prompt)"},
    {"max-tokens", "-n", "N", CLI_T_INT, F(max_tokens), C(CLI_GENERATE) | C(CLI_LOAD), .min = 0,
     .max = I24, .def = "200", .group = CLI_GROUP_GEN,
     .help = "tokens to generate (0: only the prompt and the stats line)"},
    {"max-tokens", "-n", "N", CLI_T_INT, F(max_tokens), C(CLI_CHAT) | C(CLI_SERVE), .min = 1,
     .max = I24, .def = "200", .group = CLI_GROUP_GEN, .help = "tokens per answer"},
    {"temperature", "--temp", "T", CLI_T_FLOAT, F(temperature), GEN, .min = 0, .max = 100,
     .def = "0.8", .group = CLI_GROUP_GEN, .help = "0 is greedy"},
    {"top-k", NULL, "K", CLI_T_INT, F(top_k), GEN, .min = 0, .max = I24, .def = "0",
     .group = CLI_GROUP_GEN, .help = "keep the K most likely tokens (0: off)"},
    {"top-p", NULL, "P", CLI_T_FLOAT, F(top_p), GEN, .min = 1e-6, .max = 1, .def = "0.95",
     .group = CLI_GROUP_GEN, .help = "keep the smallest set of tokens with probability >= P"},
    {"seed", "-s", "S", CLI_T_INT, F(seed), GEN, .min = 0, .max = 9007199254740991.0, .def = "-1",
     .def_doc = "from the clock, printed in the stats line", .group = CLI_GROUP_GEN,
     .help = "sampling seed (below 2^53, as JSON numbers keep it)"},
    {"repeat-penalty", NULL, "P", CLI_T_FLOAT, F(repeat_penalty), GEN, .min = 0.01, .max = 100,
     .def = "1", .group = CLI_GROUP_GEN,
     .help = "divide the logits of the ids among the last N tokens by P (1: off)"},
    {"repeat-last-n", NULL, "N", CLI_T_INT, F(repeat_last_n), GEN, .min = 1, .max = 1048576,
     .def = "64", .group = CLI_GROUP_GEN,
     .help = "the window of --repeat-penalty, prompt included"},
    {"stop", NULL, "STR", CLI_T_LIST, F(stop), GEN, .group = CLI_GROUP_GEN,
     .help = "end once the new text contains STR (generate prints it); up to 4, the first met "
             "ends it (\"\\n\" is not unescaped: use $'\\n' in a shell)"},
    {"quantize", NULL, NULL, CLI_T_CHOICE, F(quantize), GEN, .choices = "q8|none", .def = "none",
     .group = CLI_GROUP_GEN,
     .help = "q8: int8 weights in the matrix products (CPU, which --device auto then picks): 4x "
             "fewer bytes read per token"},
    {"quantize", NULL, NULL, CLI_T_CHOICE, F(quantize), C(CLI_EVAL), .choices = "q8|none",
     .def = "none", .help = "q8: --incremental with int8 weights (CPU)"},
    {"quantize", NULL, NULL, CLI_T_CHOICE, F(quantize), C(CLI_BENCHMARK), .choices = "q8|none",
     .def = "none", .help = "q8: int8 weights for decoding (CPU, which --device auto then picks)"},
    {"show-tokens", NULL, NULL, CLI_T_FLAG, F(show_tokens), C(CLI_GENERATE) | C(CLI_LOAD),
     .group = CLI_GROUP_GEN, .help = "print the prompt's tokens and ids first"},
    {"educational", NULL, NULL, CLI_T_FLAG, F(educational),
     C(CLI_GENERATE) | C(CLI_LOAD) | C(CLI_CHAT),
     .help = "explain each step with the run's own numbers: tokenization, embeddings, layers and "
             "their times, an attention heatmap, the candidates of each token, a summary"},
    {"show-tensors", NULL, NULL, CLI_T_FLAG, F(show_tensors),
     C(CLI_GENERATE) | C(CLI_LOAD) | C(CLI_CHAT),
     .help = "with --educational: activation stats after each sublayer"},
    /* training */
    {"steps", NULL, "N", CLI_T_INT, F(steps), C(CLI_TRAIN), .min = 1, .max = 1099511627776.0,
     .help = "training budget in optimizer steps (one of --steps, --epochs, --minutes; default "
             "--minutes 5)"},
    {"epochs", NULL, "N", CLI_T_INT, F(epochs), C(CLI_TRAIN), .min = 1, .max = 1048576,
     .help = "training budget in passes over the data"},
    {"minutes", NULL, "M", CLI_T_FLOAT, F(minutes), C(CLI_TRAIN), .min = 0.01, .max = 1e6,
     .help = "training budget in minutes"},
    {"preset", NULL, "NAME", CLI_T_STR, F(preset), C(CLI_TRAIN), .def_doc = "tiny",
     .help = "the model's shape: micro, tiny, mini, small, gpt2"},
    {"preset", NULL, "NAME", CLI_T_STR, F(preset), C(CLI_BENCHMARK), .def_doc = "mini",
     .help = "the model's shape: micro, tiny, mini, small, gpt2"},
    {"layers", NULL, "N", CLI_T_INT, F(layers), SHAPE, .min = 1, .max = 256,
     .help = "override the preset's layers"},
    {"heads", NULL, "N", CLI_T_INT, F(heads), SHAPE, .min = 1, .max = 16384,
     .help = "override the preset's heads"},
    {"dim", NULL, "N", CLI_T_INT, F(dim), SHAPE, .min = 1, .max = 16384,
     .help = "override the preset's width"},
    {"ctx", "-c", "N", CLI_T_INT, F(ctx), SHAPE, .min = 1, .max = 65536,
     .help = "override the preset's context length"},
    {"mlp", NULL, NULL, CLI_T_CHOICE, F(mlp), SHAPE, .choices = "gelu|relu2|swiglu",
     .def_doc = PRESET_ARCH,
     .help = "the MLP: GPT-2's 4x GELU; relu(x)^2, 4x; or SwiGLU, silu(gate) * up with a hidden "
             "size of the multiple of 32 nearest 8/3 x dim (about the same parameters)"},
    {"ctx", "-c", "T", CLI_T_INT, F(ctx), C(CLI_EVAL), .min = 2, .max = 65536,
     .def_doc = "the model's context", .help = "window length"},
    {"vocab", NULL, "N", CLI_T_INT, F(vocab), C(CLI_TRAIN), .min = 260, .max = 1048576,
     .help = "override the preset's vocabulary: the tokenizer's size"},
    {"vocab", NULL, "N", CLI_T_INT, F(vocab), C(CLI_BENCHMARK), .min = 2, .max = 1048576,
     .help = "override the preset's vocabulary"},
    {"pos", NULL, NULL, CLI_T_CHOICE, F(pos), SHAPE, .choices = "learned|rope",
     .def_doc = PRESET_ARCH,
     .help = "position embeddings: a learned table, or rotary on q and k (no table)"},
    {"norm", NULL, NULL, CLI_T_CHOICE, F(norm), SHAPE, .choices = "layernorm|rmsnorm",
     .def_doc = PRESET_ARCH, .help = "ln1, ln2 and ln_f: LayerNorm, or RMSNorm (a gain, no bias)"},
    {"qk-norm", NULL, NULL, CLI_T_CHOICE, F(qk_norm), SHAPE, .choices = "on|off", .implicit = "on",
     .def_doc = PRESET_ARCH,
     .help = "RMS-normalise q and k per head (no weights) before attention"},
    {"untie-head", NULL, NULL, CLI_T_CHOICE, F(untie_head), SHAPE, .choices = "on|off",
     .implicit = "on", .def_doc = PRESET_ARCH,
     .help = "a separate output matrix lm_head.weight instead of the token embedding"},
    {"zero-init", NULL, NULL, CLI_T_CHOICE, F(zero_init), SHAPE, .choices = "on|off",
     .implicit = "on", .def_doc = PRESET_ARCH,
     .help = "start attn.proj, mlp.proj (and an untied head) at zero"},
    {"batch", NULL, "B", CLI_T_INT, F(batch), C(CLI_TRAIN), .min = 1, .max = 65536,
     .def_doc = "8, or what fits memory", .help = "sequences per micro-batch"},
    {"batch", NULL, "B", CLI_T_INT, F(batch), C(CLI_EVAL), .min = 1, .max = 4096, .def = "8",
     .help = "windows per forward pass"},
    {"batch", NULL, "B", CLI_T_INT, F(batch), C(CLI_BENCHMARK), .min = 1, .max = 65536, .def = "8",
     .help = "sequences per training step"},
    {"grad-accum", NULL, "K", CLI_T_INT, F(grad_accum), C(CLI_TRAIN), .min = 1, .max = 65536,
     .def_doc = "1",
     .help = "micro-batches per optimizer step: a step of K x B sequences in the memory of B"},
    {"lr", NULL, "LR", CLI_T_FLOAT, F(lr), C(CLI_TRAIN), .min = 1e-9, .max = 10,
     .def_doc =
         "2e-3 x 256/dim, at most 3e-3, x2 with Muon (its other tensors); on a GPU also times "
         "sqrt(batch/8), at most 4e-3",
     .help = "peak learning rate (linear warm-up, then cosine decay to 10%)"},
    {"warmup", NULL, "N", CLI_T_INT, F(warmup), C(CLI_TRAIN), .min = 1, .max = 2147483647.0,
     .def_doc = "100, at most a tenth of the run", .help = "warm-up steps"},
    {"weight-decay", NULL, "W", CLI_T_FLOAT, F(weight_decay), C(CLI_TRAIN), .min = 0, .max = 10,
     .def_doc = "0.1", .help = "AdamW decay on matrices only"},
    {"optimizer", NULL, NULL, CLI_T_CHOICE, F(optimizer), C(CLI_TRAIN), .choices = "adamw|muon",
     .def_doc = "muon; adamw for --zero 1 and on a backend without Muon",
     .help = "muon: Muon (momentum + Newton-Schulz orthogonalisation) for the layers' weight "
             "matrices, AdamW at --lr for embeddings, biases and norms (CPU only)"},
    {"optimizer", NULL, NULL, CLI_T_CHOICE, F(optimizer), C(CLI_BENCHMARK), .choices = "adamw|muon",
     .def = "adamw", .help = "the update timed in each training step (train --optimizer)"},
    {"muon-lr", NULL, "LR", CLI_T_FLOAT, F(muon_lr), C(CLI_TRAIN), .min = 1e-9, .max = 10,
     .def = "0.005",
     .help = "Muon's peak learning rate (the same warm-up and cosine decay as --lr)"},
    {"muon-momentum", NULL, "M", CLI_T_FLOAT, F(muon_momentum), C(CLI_TRAIN), .min = 0,
     .max = 0.999, .def = "0.95", .help = "Muon's Nesterov momentum"},
    {"eval-every", NULL, "N", CLI_T_INT, F(eval_every), C(CLI_TRAIN), .min = 0, .max = 2147483647.0,
     .def_doc = "100", .help = "validation every N steps (0: at epoch ends only)"},
    {"eval-batches", NULL, "N", CLI_T_INT, F(eval_batches), C(CLI_TRAIN), .min = 1, .max = 1048576,
     .def_doc = "10", .help = "steps' worth of sequences (B x K each) per validation"},
    {"seed", "-s", "S", CLI_T_INT, F(seed), C(CLI_TRAIN), .min = 0, .max = 9007199254740991.0,
     .def_doc = "1337", .help = "seed for weights and data order"},
    {"save-every", NULL, "N", CLI_T_INT, F(save_every), C(CLI_TRAIN), .min = 1,
     .max = 1099511627776.0, .help = "also save checkpoint_step_N every N steps"},
    {"zero", NULL, "STAGE", CLI_T_INT, F(zero), C(CLI_TRAIN), .min = 0, .max = 1, .def_doc = "0",
     .help = "under mpirun: 1 shards the AdamW moments across the processes (ZeRO-1; "
             "docs/distributed.md)"},
    {"keep", NULL, "K", CLI_T_INT, F(keep), C(CLI_TRAIN), .min = 1, .max = 1048576,
     .help = "keep only the K newest step checkpoints (best, final and epoch files are never "
             "deleted)"},
    {"resume", NULL, "FILE", CLI_T_STR, F(resume), C(CLI_TRAIN),
     .help = "continue a run from a checkpoint (and its .optim file); shape and hyperparameters "
             "come from the checkpoint"},
    {"init-from", NULL, "FILE", CLI_T_STR, F(init_from), C(CLI_TRAIN),
     .help = "fine-tune: start from a checkpoint's weights and tokenizer on --data, with a new "
             "optimizer and schedule"},
    {"log-every", NULL, "N", CLI_T_INT, F(log_every), C(CLI_TRAIN), .min = 1,
     .max = 1099511627776.0, .def = "10",
     .help = "a log line every N steps when not on a terminal"},
    {"save-tokens", NULL, "FILE", CLI_T_STR, F(save_tokens), C(CLI_TRAIN),
     .help = "write the train/validation token streams (safetensors), for reference trainers "
             "(bench/bench_recipe.sh)"},
    /* eval, list, serve, benchmark */
    {"incremental", NULL, NULL, CLI_T_FLAG, F(incremental), C(CLI_EVAL),
     .help = "score through the KV cache one token at a time, as generation runs (the same "
             "windows and scores)"},
    {"json", NULL, NULL, CLI_T_FLAG, F(json), C(CLI_LIST),
     .help = "a JSON array instead of the table"},
    {"json", NULL, NULL, CLI_T_FLAG, F(json), C(CLI_BENCHMARK),
     .help = "one JSON object on stdout instead of the text report"},
    {"host", NULL, "ADDR", CLI_T_STR, F(host), C(CLI_SERVE), .def = "127.0.0.1",
     .help = "IPv4 or IPv6 address to listen on, or localhost"},
    {"port", NULL, "N", CLI_T_INT, F(port), C(CLI_SERVE), .min = 0, .max = 65535, .def = "8080",
     .help = "TCP port (0: any free port, printed)"},
    {"parallel", "-np", "N", CLI_T_INT, F(parallel), C(CLI_SERVE), .min = 1, .max = 256,
     .def_doc = "what fits a quarter of the free memory, 2 to 16",
     .help = "slots: requests generated at once, batched into one forward pass per token"},
    {"queue", NULL, "N", CLI_T_INT, F(queue), C(CLI_SERVE), .min = 0, .max = 1048576, .def = "64",
     .help = "requests waiting for a slot before 503 + Retry-After"},
    {"runs", NULL, "DIR", CLI_T_STR, F(runs), C(CLI_SERVE),
     .help =
         "the app's training view shows the runs under DIR (their train_log.jsonl) on one chart"},
    {"api-key", NULL, "KEY", CLI_T_STR, F(api_key), C(CLI_SERVE),
     .help = "require 'Authorization: Bearer KEY' on every endpoint but /health"},
    {"max-connections", NULL, "N", CLI_T_INT, F(max_conn), C(CLI_SERVE), .min = 1, .max = 65536,
     .def = "1024", .help = "open connections; more wait to be accepted"},
    {"max-connections-per-client", NULL, "N", CLI_T_INT, F(per_client), C(CLI_SERVE), .min = 1,
     .max = 65536, .def = "512", .help = "open connections per client address; more are refused"},
    {"header-timeout", NULL, "S", CLI_T_INT, F(header_timeout), C(CLI_SERVE), .min = 1, .max = 3600,
     .def = "10",
     .help = "a request's headers must be in within S s of the connection's start or "
             "its previous answer; trickled bytes do not extend it"},
    {"body-timeout", NULL, "S", CLI_T_INT, F(body_timeout), C(CLI_SERVE), .min = 1, .max = 3600,
     .def = "30", .help = "a request's body must be in within S s of its headers"},
    {"max-body", NULL, "BYTES", CLI_T_INT, F(max_body), C(CLI_SERVE), .min = 1, .max = 1073741824.0,
     .def = "1048576", .help = "request bodies past this get 413"},
    {"shutdown-timeout", NULL, "S", CLI_T_INT, F(shutdown_timeout), C(CLI_SERVE), .min = 0,
     .max = 3600, .def = "10", .help = "on SIGTERM, running requests get S s to finish"},
    {"tokenizer", NULL, "FILE", CLI_T_STR, F(tokenizer), C(CLI_TOKENIZE),
     .help = "a tokenizer.json instead of a checkpoint's"},
    {"file", NULL, "F", CLI_T_STR, F(file), C(CLI_TOKENIZE), .help = "the text is file F"},
    {"ids", NULL, NULL, CLI_T_FLAG, F(ids), C(CLI_TOKENIZE),
     .help = "only the ids, on one line, separated by spaces"},
    {"json", NULL, NULL, CLI_T_FLAG, F(json), C(CLI_TOKENIZE),
     .help = "a JSON list of {\"id\", \"piece\"} (as POST /tokenize gives)"},
    {"special", NULL, NULL, CLI_T_FLAG, F(special), C(CLI_TOKENIZE),
     .help = "match special tokens' text (<EOS>, <|endoftext|>); default: plain text"},
    {"seq", NULL, "T", CLI_T_INT, F(seq), C(CLI_BENCHMARK), .min = 1, .max = 65536,
     .def_doc = "the model's context", .help = "tokens per sequence"},
    {"iterations", NULL, "N", CLI_T_INT, F(iterations), C(CLI_BENCHMARK), .min = 1, .max = 1000000,
     .def = "10",
     .help = "measured training steps, after 2 warm-up; prefill and decode repeat up to N times, "
             "~1 s each"},
    {"detailed", NULL, NULL, CLI_T_FLAG, F(detailed), C(CLI_BENCHMARK),
     .help = "per-op times of a training step (synchronized around each op), with fused kernels "
             "and again with --no-fusion"},
    {"show-memory", NULL, NULL, CLI_T_FLAG, F(show_memory), C(CLI_BENCHMARK),
     .help = "parameters, gradients, optimizer, activations, KV cache, backend allocations and "
             "the process's peak RSS"},
    {"no-fusion", NULL, NULL, CLI_T_FLAG, F(no_fusion), C(CLI_BENCHMARK),
     .help = "run the unfused kernels everywhere"},
    /* hardware */
    {"threads", "-t", "N", CLI_T_INT, F(threads), HW, .min = 1, .max = 1024, .def_doc = "all cores",
     .group = CLI_GROUP_GEN, .help = "CPU threads"},
    {"device", NULL, NULL, CLI_T_CHOICE, F(device), HW, .choices = "auto|cpu|cuda", .def = "auto",
     .group = CLI_GROUP_GEN, .help = "auto: the GPU when usable, else the CPU"},
    {"precision", NULL, NULL, CLI_T_CHOICE, F(precision), HW, .choices = "bf16|fp32",
     .def_doc = "bf16 on a GPU", .group = CLI_GROUP_GEN,
     .help = "the GPU's matmuls: bf16, or fp32 (exact)"},
};
const int cli_n_rows = (int)(sizeof cli_rows / sizeof cli_rows[0]);
_Static_assert(sizeof cli_rows / sizeof cli_rows[0] <= CLI_MAX_ROWS, "raise CLI_MAX_ROWS");

static int takes(const cli_row_t *r, int cmd) { return (r->cmds >> cmd) & 1u; }

int cli_command_find(const char *name) {
    for (int i = 0; i < CLI_N_CMDS; i++)
        if (strcmp(cli_commands[i].name, name) == 0) return i;
    return -1;
}

/* The choice list "a|b|c" as "a, b, c" in buf. */
static const char *choice_list(const char *choices, char *buf, size_t n) {
    size_t k = 0;
    for (const char *p = choices; *p && k + 3 < n; p++) {
        if (*p == '|') {
            buf[k++] = ',';
            buf[k++] = ' ';
        } else
            buf[k++] = *p;
    }
    buf[k] = 0;
    return buf;
}

static int is_choice(const char *choices, const char *v) {
    size_t len = strlen(v);
    for (const char *p = choices; p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, v, n) == 0) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* Stores value v (NULL for a flag) of row r into a; -1 with err set. */
static int store(const cli_row_t *r, const char *v, cli_args_t *a, int check_range, char *err) {
    void *field = (char *)a + r->offset;
    double lo = check_range ? r->min : -INFINITY, hi = check_range ? r->max : INFINITY;
    switch (r->type) {
    case CLI_T_FLAG: *(int *)field = 1; return 0;
    case CLI_T_INT: {
        long x;
        if (cli_int(r->name, v, check_range ? (long)r->min : -1,
                    check_range ? (long)r->max : 1L << 62, &x, err))
            return -1;
        *(long *)field = x;
        return 0;
    }
    case CLI_T_FLOAT: return cli_float(r->name, v, lo, hi, (double *)field, err);
    case CLI_T_STR: *(const char **)field = v; return 0;
    case CLI_T_CHOICE: {
        char list[128];
        if (!is_choice(r->choices, v))
            return mg_fail(err, "--%s: '%s' is not one of %s", r->name, v,
                           choice_list(r->choices, list, sizeof list));
        *(const char **)field = v;
        return 0;
    }
    case CLI_T_LIST: {
        const char **slot = field;
        int k = 0;
        while (k < GEN_MAX_STOPS && slot[k])
            k++;
        if (!*v) return mg_fail(err, "--%s: the string is empty", r->name);
        if (k == GEN_MAX_STOPS)
            return mg_fail(err, "--%s: at most %d strings", r->name, GEN_MAX_STOPS);
        slot[k] = v;
        return 0;
    }
    }
    return mg_fail(err, "--%s: bad option row", r->name);
}

/* The row named by token (a long name without its "=value", or an alias)
 * for cmd; *known tells whether any command takes it. */
static const cli_row_t *lookup(int cmd, const char *token, size_t len, int *known) {
    *known = 0;
    for (int i = 0; i < cli_n_rows; i++) {
        const cli_row_t *r = &cli_rows[i];
        int hit = (token[0] == '-' && token[1] == '-' && strlen(r->name) == len - 2 &&
                   strncmp(r->name, token + 2, len - 2) == 0) ||
                  (r->alias && strlen(r->alias) == len && strncmp(r->alias, token, len) == 0);
        if (!hit) continue;
        *known = 1;
        if (takes(r, cmd)) return r;
    }
    return NULL;
}

static int unknown(int cmd, const char *token, size_t len, int known, char *err) {
    const char *name = cli_commands[cmd].name;
    if (!known)
        return mg_fail(err, "%s: unknown option '%.*s' (see 'minigpt %s --help')", name, (int)len,
                       token, name);
    /* misplaced: the same message, naming the commands that take it */
    char which[256] = "";
    size_t k = 0;
    unsigned seen = 0;
    for (int i = 0; i < cli_n_rows; i++) {
        const cli_row_t *r = &cli_rows[i];
        int hit = (strlen(r->name) == len - 2 && strncmp(r->name, token + 2, len - 2) == 0) ||
                  (r->alias && strlen(r->alias) == len && strncmp(r->alias, token, len) == 0);
        for (int c = 0; hit && c < CLI_N_CMDS; c++)
            if (takes(r, c) && !(seen >> c & 1u)) {
                seen |= 1u << c;
                k += (size_t)snprintf(which + k, sizeof which - k, "%s%s", k ? ", " : "",
                                      cli_commands[c].name);
                if (k >= sizeof which) k = sizeof which - 1;
            }
    }
    return mg_fail(err, "%s: unknown option '%.*s' (an option of %s; see 'minigpt %s --help')",
                   name, (int)len, token, which, name);
}

/* Whether an optional value's option takes the next word as its value: a
 * number ("--dashboard 8091"), or one of its choices ("--qk-norm off"). */
static int implicit_takes(const cli_row_t *r, const char *w) {
    if (r->type != CLI_T_CHOICE) return w[0] >= '0' && w[0] <= '9';
    size_t n = strlen(w);
    for (const char *c = r->choices; *c;) {
        const char *bar = strchr(c, '|'), *end = bar ? bar : c + strlen(c);
        if ((size_t)(end - c) == n && strncmp(c, w, n) == 0) return 1;
        c = bar ? bar + 1 : end;
    }
    return 0;
}

int cli_args_parse(int cmd, int argc, char **argv, cli_args_t *a, char *err) {
    const char *name = cli_commands[cmd].name;
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    for (int i = 0; i < cli_n_rows; i++)
        if (takes(&cli_rows[i], cmd) && cli_rows[i].def &&
            store(&cli_rows[i], cli_rows[i].def, a, 0, err))
            return -1;
    int options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *t = argv[i];
        if (options_done || t[0] != '-' || t[1] == 0) {
            if (a->n_positional >= cli_commands[cmd].positionals)
                return mg_fail(err, "%s: unexpected argument '%s' (see 'minigpt %s --help')", name,
                               t, name);
            a->positional[a->n_positional++] = t;
            continue;
        }
        if (strcmp(t, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (strcmp(t, "-h") == 0 || strcmp(t, "--help") == 0) {
            a->help = 1;
            return 0;
        }
        const char *eq = t[1] == '-' ? strchr(t, '=') : NULL;
        size_t len = eq ? (size_t)(eq - t) : strlen(t);
        int known;
        const cli_row_t *r = lookup(cmd, t, len, &known);
        if (!r) return unknown(cmd, t, len, known, err);
        const char *v = NULL;
        if (r->type == CLI_T_FLAG) {
            if (eq) return mg_fail(err, "%s: option '--%s' takes no value", name, r->name);
        } else if (eq)
            v = eq + 1;
        else if (r->implicit)
            v = i + 1 < argc && implicit_takes(r, argv[i + 1]) ? argv[++i] : r->implicit;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return mg_fail(err, "%s: option '%s' needs a value (see 'minigpt %s --help')", name, t,
                           name);
        if (store(r, v, a, 1, err)) return -1;
        a->given[r - cli_rows] = 1;
        a->typed[r - cli_rows] = v;
    }
    return 0;
}

/* The row of a's command that fills field, or -1. */
static int row_of(const cli_args_t *a, const void *field) {
    size_t off = (size_t)((const char *)field - (const char *)a);
    for (int i = 0; i < cli_n_rows; i++)
        if (cli_rows[i].offset == off && takes(&cli_rows[i], a->cmd)) return i;
    return -1;
}

int cli_args_given(const cli_args_t *a, const void *field) {
    int i = row_of(a, field);
    return i >= 0 && a->given[i];
}

const char *cli_args_typed(const cli_args_t *a, const void *field) {
    int i = row_of(a, field);
    return i >= 0 && a->typed[i] ? a->typed[i] : "";
}

int cli_args_group_given(const cli_args_t *a, int group) {
    for (int i = 0; i < cli_n_rows; i++)
        if ((cli_rows[i].group & group) && takes(&cli_rows[i], a->cmd) && a->given[i]) return 1;
    return 0;
}

/* "-n, --max-tokens N", "--temperature, --temp T", "--device auto|cpu|cuda"
 * (markdown: "`-n`, `--max-tokens N`") */
static void names(const cli_row_t *r, int md, char *buf, size_t n) {
    const char *q = md ? "`" : "";
    const char *value = r->type == CLI_T_CHOICE ? r->choices : r->value;
    char shrt[48] = "", lng[48] = "";
    if (r->alias && r->alias[1] != '-') snprintf(shrt, sizeof shrt, "%s%s%s, ", q, r->alias, q);
    if (r->alias && r->alias[1] == '-') snprintf(lng, sizeof lng, "%s, %s%s", q, q, r->alias);
    snprintf(buf, n, "%s%s--%s%s%s%s%s%s%s", shrt, q, r->name, lng, value ? " " : "",
             r->implicit ? "[" : "", value ? value : "", r->implicit ? "]" : "", q);
}

/* The help sentence with its default: "tokens to generate (default 200)". */
static void meaning(const cli_row_t *r, char *buf, size_t n) {
    const char *d = r->def_doc ? r->def_doc : r->def;
    if (d)
        snprintf(buf, n, "%s (default: %s)", r->help, d);
    else
        snprintf(buf, n, "%s", r->help);
}

void cli_args_help(FILE *f, int cmd) {
    const cli_command_t *c = &cli_commands[cmd];
    enum { COL = 26, WIDTH = 80 };
    fprintf(f, "usage: %s\n", c->usage);
    for (int i = 0; i < cli_n_rows; i++) {
        const cli_row_t *r = &cli_rows[i];
        if (!takes(r, cmd)) continue;
        char lhs[96], text[1024];
        names(r, 0, lhs, sizeof lhs);
        meaning(r, text, sizeof text);
        int col = fprintf(f, "  %s", lhs);
        if (col + 2 > COL) {
            fprintf(f, "\n");
            col = 0;
        }
        /* words wrapped at WIDTH, continuation lines indented to COL */
        const char *p = text;
        while (*p) {
            fprintf(f, "%*s", COL - col, "");
            col = COL;
            const char *line = p, *cut = NULL;
            for (const char *q = p; *q && q - line <= WIDTH - COL; q++)
                if (*q == ' ') cut = q;
            if (strlen(line) <= (size_t)(WIDTH - COL) || !cut) cut = line + strlen(line);
            fprintf(f, "%.*s\n", (int)(cut - line), line);
            col = 0;
            p = *cut ? cut + 1 : cut;
        }
    }
    fprintf(f, "  -h, --help              this help\n");
    if (c->notes) fputs(c->notes, f);
}

/* s with each | escaped, as a Markdown table cell needs */
static void cell(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
}

void cli_args_markdown(FILE *f, int cmd) {
    fprintf(f, "| flag | meaning (default) |\n| --- | --- |\n");
    for (int i = 0; i < cli_n_rows; i++) {
        const cli_row_t *r = &cli_rows[i];
        if (!takes(r, cmd)) continue;
        char lhs[96], text[1024];
        names(r, 1, lhs, sizeof lhs);
        meaning(r, text, sizeof text);
        fprintf(f, "| ");
        cell(f, lhs);
        fprintf(f, " | ");
        cell(f, text);
        fprintf(f, " |\n");
    }
}
