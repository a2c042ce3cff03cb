/* convert.c - `minigpt convert`: bring a Hugging Face GPT-2 in (--from-hf)
 * and take a checkpoint out (--to-hf, --to-gguf). The work is in
 * src/io/hf.c and src/io/gguf.c. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "io/gguf.h"
#include "io/hf.h"
#include "util/common.h"

static const char usage[] =
    "usage: minigpt convert --from-hf DIR --out FILE.safetensors\n"
    "       minigpt convert --checkpoint FILE --to-hf OUTDIR\n"
    "       minigpt convert --checkpoint FILE --to-gguf OUT.gguf [--type f32|f16|q8_0]\n"
    "  --from-hf DIR      a Hugging Face GPT-2 folder: config.json, model.safetensors,\n"
    "                     tokenizer.json (or vocab.json + merges.txt)\n"
    "  --out FILE         the minigpt checkpoint to write (with --from-hf)\n"
    "  --checkpoint FILE  the minigpt checkpoint to export\n"
    "  --to-hf OUTDIR     a folder transformers loads (must not exist, or be empty)\n"
    "  --to-gguf FILE     a GGUF v3 file for llama.cpp, LM Studio, Ollama\n"
    "  --type T           GGUF weights: f32 (default, exact), f16 or q8_0\n";

int cli_convert(int argc, char **argv, char *err) {
    static const struct option opts[] = {
        {"from-hf", required_argument, 0, 'f'}, {"out", required_argument, 0, 'o'},
        {"checkpoint", required_argument, 0, 'c'}, {"to-hf", required_argument, 0, 'H'},
        {"to-gguf", required_argument, 0, 'g'}, {"type", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    const char *from = NULL, *out = NULL, *ckpt = NULL, *to_hf = NULL, *to_gguf = NULL, *type = NULL;
    gguf_out_type_t gt = GGUF_OUT_F32;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': from = optarg; break;
        case 'o': out = optarg; break;
        case 'c': ckpt = optarg; break;
        case 'H': to_hf = optarg; break;
        case 'g': to_gguf = optarg; break;
        case 't': type = optarg; break;
        case 'h': fputs(usage, stdout); return CLI_OK;
        default: return cli_bad_option("convert", c, argv, err);
        }
    }
    if (optind < argc) {
        mg_fail(err, "convert: unexpected argument '%s'", argv[optind]);
        return CLI_USAGE;
    }
    if (type && gguf_type_from_name(type, &gt)) {
        mg_fail(err, "convert: --type '%s' is not f32, f16 or q8_0", type);
        return CLI_USAGE;
    }
    int modes = !!from + !!to_hf + !!to_gguf;
    if (modes != 1 || (from && (!out || ckpt)) || (!from && (!ckpt || out)) || (type && !to_gguf)) {
        mg_fail(err, "convert: give --from-hf DIR --out FILE, or --checkpoint FILE with one of "
                     "--to-hf DIR, --to-gguf FILE (see 'minigpt convert --help')");
        return CLI_USAGE;
    }
    if (from) return hf_import(from, out, err) ? CLI_ERR : CLI_OK;
    if (to_hf) return hf_export(ckpt, to_hf, err) ? CLI_ERR : CLI_OK;
    ops_cpu_set_threads(0);
    ckpt_t *ck = ckpt_load(ckpt, ops_cpu(), err);
    if (!ck) return CLI_ERR;
    int rc = gguf_write(ck, to_gguf, gt, err) ? CLI_ERR : CLI_OK;
    ckpt_free(ck);
    return rc;
}
