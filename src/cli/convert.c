/* convert.c - `minigpt convert`: bring a Hugging Face GPT-2 in (--from-hf)
 * and take a checkpoint out (--to-hf, --to-gguf). The work is in
 * src/io/hf.c and src/io/gguf.c. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "io/gguf.h"
#include "io/hf.h"
#include "ops/cpu/cpu.h"
#include "util/common.h"

int cli_convert(const cli_args_t *a, char *err) {
    const char *from = a->from_hf, *out = a->out, *ckpt = a->checkpoint, *to_hf = a->to_hf;
    const char *to_gguf = a->to_gguf, *type = a->gguf_type;
    gguf_out_type_t gt = GGUF_OUT_F32;
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
