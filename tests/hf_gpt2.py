"""hf_gpt2.py - Hugging Face GPT-2 folders and an independent PyTorch GPT-2
for tests/interop.sh (transformers is not installed: the layout is written
here from its documented format, the model from GPT-2's definition).

  make OUT TOKDIR [--layers L --embd C --heads H --positions P --seed S
                   --style bare|prefixed --dtype f32|f16|bf16 --tokenizer json|vocab]
      a GPT-2 folder with random weights: config.json, model.safetensors with
      HF's names and Conv1D (in, out) layout, the tokenizer from TOKDIR.
      bare: "h.0.attn.c_attn.weight" + attn.bias/masked_bias buffers, as
      openai-community/gpt2 ships; prefixed: "transformer.h.0..." with a
      tied lm_head.weight, as save_pretrained writes.
  logits DIR OUT.npy GREEDY id...
      the reference logits [n, vocab] (float64, position by position) and
      GREEDY argmax ids after the prompt, printed space-separated.
  decode DIR id...
      the bytes of GPT-2 ids, through DIR/vocab.json.
  compare A.npy B.bin TOL
      max |a - b| over the logits (B: float32 raw from logits_dump); exit 1
      above TOL."""

import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_reader  # noqa: E402


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> (dtype string, np.ndarray)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dt, a) in tensors.items():
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make(a):
    os.makedirs(a.out, exist_ok=True)
    vocab = json.load(open(os.path.join(a.tokdir, "vocab.json")))
    V, C, L, H, P = len(vocab), a.embd, a.layers, a.heads, a.positions
    g = np.random.default_rng(a.seed)
    # large enough weights that the logits are far apart (no near ties in argmax)
    k = a.scale
    w = lambda *s, std=0.08: (g.standard_normal(s) * std * k).astype(np.float32)  # noqa: E731
    t = {"wte.weight": w(V, C, std=0.3), "wpe.weight": w(P, C, std=0.1)}
    for i in range(L):
        p = f"h.{i}."
        t[p + "ln_1.weight"] = 1 + w(C, std=0.1)
        t[p + "ln_1.bias"] = w(C)
        t[p + "attn.c_attn.weight"] = w(C, 3 * C)
        t[p + "attn.c_attn.bias"] = w(3 * C)
        t[p + "attn.c_proj.weight"] = w(C, C)
        t[p + "attn.c_proj.bias"] = w(C)
        t[p + "ln_2.weight"] = 1 + w(C, std=0.1)
        t[p + "ln_2.bias"] = w(C)
        t[p + "mlp.c_fc.weight"] = w(C, 4 * C)
        t[p + "mlp.c_fc.bias"] = w(4 * C)
        t[p + "mlp.c_proj.weight"] = w(4 * C, C)
        t[p + "mlp.c_proj.bias"] = w(C)
    t["ln_f.weight"] = 1 + w(C, std=0.1)
    t["ln_f.bias"] = w(C)
    dt = {"f32": ("F32", np.float32), "f16": ("F16", np.float16), "bf16": ("BF16", None)}[a.dtype]

    def enc(x):
        if a.dtype == "bf16":  # round to nearest even, kept as the top 16 bits
            u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
            u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
            return ("BF16", u.astype(np.uint16))
        return (dt[0], x.astype(dt[1]))

    out = {}
    for k, v in t.items():
        out[("transformer." + k) if a.style == "prefixed" else k] = enc(v)
    if a.style == "bare":
        for i in range(L):
            out[f"h.{i}.attn.bias"] = ("F32", np.tril(np.ones((P, P), np.float32)).reshape(1, 1, P, P))
            out[f"h.{i}.attn.masked_bias"] = ("F32", np.array(-1e4, np.float32))
    else:
        out["lm_head.weight"] = enc(t["wte.weight"])
    write_safetensors(os.path.join(a.out, "model.safetensors"), out, {"format": "pt"})
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": V,
           "n_positions": P, "n_ctx": P, "n_embd": C, "n_layer": L, "n_head": H, "n_inner": None,
           "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05, "bos_token_id": V - 1,
           "eos_token_id": V - 1, "_name_or_path": "random-gpt2-for-tests"}
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    names = ["tokenizer.json"] if a.tokenizer == "json" else ["vocab.json", "merges.txt"]
    for n in names:
        shutil.copy(os.path.join(a.tokdir, n), os.path.join(a.out, n))


def load_model(d):
    """config + float64 weights from a HF GPT-2 folder, by HF's names."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    t, _ = st_reader.load(os.path.join(d, "model.safetensors"))
    w = {}
    for k, v in t.items():
        k = k[len("transformer."):] if k.startswith("transformer.") else k
        w[k] = torch.tensor(np.asarray(v, dtype=np.float64))
    return cfg, w


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def forward(cfg, w, ids):
    """GPT-2 (Radford et al. 2019) with HF's Conv1D: y = x @ W + b, W (in, out)."""
    C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    T = len(ids)
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], eps)  # noqa: E731
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(L):
        p = f"h.{i}."
        h = ln(x, p + "ln_1")
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (z.view(T, H, C // H).transpose(0, 1) for z in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(C // H)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = ln(x, p + "ln_2")
        h = gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    return ln(x, "ln_f") @ w["wte.weight"].T


def logits(a):
    cfg, w = load_model(a.dir)
    ids = [int(i) for i in a.ids]
    with torch.no_grad():
        np.save(a.out, forward(cfg, w, ids).numpy())
        seq = list(ids)
        for _ in range(a.greedy):
            seq.append(int(forward(cfg, w, seq)[-1].argmax()))
    print(" ".join(str(i) for i in seq[len(ids):]))


def decode(a):
    """GPT-2 ids -> text through vocab.json and the byte-to-unicode table."""
    vocab = json.load(open(os.path.join(a.dir, "vocab.json")))
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:] + [256 + n for n in range(256 - len(bs))]
    bs += [b for b in range(256) if b not in bs]
    unmap = {chr(c): b for b, c in zip(bs, cs)}
    inv = {i: t for t, i in vocab.items()}
    out = bytes(unmap[ch] for i in a.ids for ch in inv[int(i)])
    sys.stdout.buffer.write(out)


def compare(a):
    ref = np.load(a.ref)
    got = np.fromfile(a.got, dtype=np.float32).reshape(ref.shape)
    d = float(np.abs(ref - got).max())
    print(f"max |logit difference| {d:.3g} (tolerance {a.tol:g}, logits up to {np.abs(ref).max():.3g})")
    sys.exit(0 if d <= a.tol else 1)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("tokdir")
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--embd", type=int, default=64)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--positions", type=int, default=128)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--scale", type=float, default=1.0, help="weights x this (larger: livelier text)")
    m.add_argument("--style", choices=["bare", "prefixed"], default="bare")
    m.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    m.add_argument("--tokenizer", choices=["json", "vocab"], default="json")
    lg = sub.add_parser("logits")
    lg.add_argument("dir")
    lg.add_argument("out")
    lg.add_argument("greedy", type=int)
    lg.add_argument("ids", nargs="+")
    d = sub.add_parser("decode")
    d.add_argument("dir")
    d.add_argument("ids", nargs="+")
    c = sub.add_parser("compare")
    c.add_argument("ref")
    c.add_argument("got")
    c.add_argument("tol", type=float)
    a = ap.parse_args()
    {"make": make, "logits": logits, "decode": decode, "compare": compare}[a.cmd](a)


if __name__ == "__main__":
    main()
