#!/usr/bin/python3
"""ckpt_edit.py SRC DST EDIT - writes a damaged or altered copy of a minigpt
checkpoint for the bad-input and checkpoint tests: the header is rewritten
(or the whole file rebuilt, for missing/extra tensors) and the data kept."""
import json, struct, sys
src, dst, edit = sys.argv[1:4]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
m = h["__metadata__"]
cfg = json.loads(m["model_config"])
tok = json.loads(m["tokenizer"])
if edit == "infinite-config": m["model_config"] = m["model_config"].replace('"d_model":64', '"d_model":1e999')
elif edit == "fractional-config": cfg["n_layers"] = 2.5; m["model_config"] = json.dumps(cfg)
elif edit == "heads-not-dividing": cfg["n_heads"] = 3; m["model_config"] = json.dumps(cfg)
elif edit in ("missing-tensor", "extra-tensor"):  # a valid file with one tensor fewer / more
    sys.path.insert(0, "tests")
    import st_reader
    t, _ = st_reader.load(src)
    if edit == "missing-tensor": del t["ln_f.bias"]
    else: t["extra.weight"] = t["ln_f.bias"]
    h, data, off = {"__metadata__": m}, b"", 0
    for k, v in t.items():
        raw = v.astype("<f4").tobytes()
        h[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(raw)]}
        data += raw; off += len(raw)
    b, n = b"\0" * 8 + data, 0
elif edit == "wrong-shape": h["ln_f.bias"]["shape"] = [32, 2]
elif edit == "wrong-dtype": h["ln_f.bias"]["dtype"] = "I32"
elif edit == "merge-not-in-vocab": tok["model"]["merges"][0] = "Ġ zzzzzz"; m["tokenizer"] = json.dumps(tok)
elif edit == "vocab-gap": tok["model"]["vocab"].pop(next(iter(k for k, v in tok["model"]["vocab"].items() if v == 300))); m["tokenizer"] = json.dumps(tok)
elif edit == "no-tokenizer": del m["tokenizer"]
elif edit == "offset-out-of-range": h["ln_f.bias"]["data_offsets"] = [10**12, 10**12 + 256]
elif edit == "train-only":  # no validation loss, no timestamp: file mtime
    tm = json.loads(m["training_metadata"])
    tm.update(val_loss=None, train_loss=9.5, step=5)
    m["training_metadata"] = json.dumps(tm)
    del m["creation_timestamp"]
elif edit in ("nan-weight", "inf-weight"):  # header fine, one weight not finite
    at = 8 + n + h["token_embedding.weight"]["data_offsets"][0] + 4 * 3
    b = b[:at] + struct.pack("<f", float("nan" if edit == "nan-weight" else "-inf")) + b[at + 4:]
elif edit == "no-mlp":  # a checkpoint from before --mlp: no "mlp", no "ffn_hidden"
    cfg.pop("mlp", None); cfg.pop("ffn_hidden", None); m["model_config"] = json.dumps(cfg)
elif edit == "unknown-mlp": cfg["mlp"] = "tanh"; m["model_config"] = json.dumps(cfg)
elif edit == "renamed-tensor":  # header fine, model unloadable
    h["zz_renamed.weight"] = h.pop("token_embedding.weight")
else:
    sys.exit("unknown edit " + edit)
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
