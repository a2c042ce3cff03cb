#!/usr/bin/python3
"""torch_bench.py - the PyTorch reference of bench/bench_cpu.sh: the GPT-2 of
bench/torch_gpt.py on random tokens, measured the way `minigpt benchmark`
measures itself, and printed as one JSON object:

  train    tokens/s of full steps (forward, cross-entropy, backward, clipping
           at 1.0, AdamW with decay on matrices), after warm-up steps
  prefill  one full-context prompt through a KV-cache forward (batch 1)
  decode   batch 1, one token at a time with the KV cache, greedy, up to 64
           tokens after a one-token prompt
  blas     the BLAS library this process actually loaded (/proc/self/maps)

With --int8 1: no training; prefill and decode run every linear layer and
the classifier through PyTorch's dynamic int8 quantization
(torch.ops.quantized.linear_dynamic, weights quantized per output row).

usage: torch_bench.py --dim 256 --layers 4 --heads 4 --vocab 4096 --ctx 256
                      --batch 8 --iterations 10 --threads 2 [--int8 1]
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt import adamw, forward, init_params  # noqa: E402

WARMUP = 2
DECODE_TOKENS = 64
REPEAT_SECONDS = 1.0


def loaded_blas():
    """Paths of the BLAS/OpenBLAS libraries mapped into this process."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            name = os.path.basename(path)
            if path.startswith("/") and ("blas" in name or "mkl" in name):
                libs.add(path)
    return sorted(libs)


def train(p, cfg, a):
    opt = adamw(p, 1e-4)
    x = torch.randint(0, a.vocab, (a.batch, a.seq))
    y = torch.randint(0, a.vocab, (a.batch, a.seq))
    times = []
    for step in range(WARMUP + a.iterations):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(p, cfg, x).view(-1, a.vocab), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(p.values()), 1.0)
        opt.step()
        if step >= WARMUP:
            times.append(time.perf_counter() - t0)
    step_s = sum(times) / len(times)
    return {"step_ms": step_s * 1e3, "best_step_ms": min(times) * 1e3,
            "tokens_per_s": a.batch * a.seq / step_s, "loss": loss.item()}


class KVModel:
    """The same forward as torch_gpt.forward, batch 1, with a KV cache."""

    def __init__(self, p, a):
        self.p, self.a = p, a
        self.packed = {}  # --int8: name -> prepacked int8 weight
        if a.int8:
            names = [k for k in p if k.endswith(".weight") and p[k].dim() == 2 and "embedding" not in k]
            for k in names + ["token_embedding.weight"]:
                w = p[k].detach()
                b = p.get(k[:-len("weight")] + "bias") if k != "token_embedding.weight" else None
                s = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
                wq = torch.quantize_per_channel(w, s, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
                self.packed[k] = torch.ops.quantized.linear_prepack(wq, None if b is None else b.detach())
        hs = a.dim // a.heads
        self.k = torch.zeros(a.layers, a.heads, a.ctx, hs)
        self.v = torch.zeros(a.layers, a.heads, a.ctx, hs)
        self.pos = 0

    def linear(self, x, name, bias=True):
        if self.packed:
            return torch.ops.quantized.linear_dynamic(x, self.packed[name])
        return F.linear(x, self.p[name], self.p[name[:-len("weight")] + "bias"] if bias else None)

    def feed(self, tok):
        """tok: (n,) ids at positions pos..pos+n-1 -> logits of the last one."""
        p, a = self.p, self.a
        n, C, NH, pos = tok.numel(), a.dim, a.heads, self.pos
        HS = C // NH
        x = p["token_embedding.weight"][tok] + p["position_embedding.weight"][pos:pos + n]
        mask = None
        if n > 1:  # query i (position pos+i) sees keys 0..pos+i
            mask = torch.ones(n, pos + n, dtype=torch.bool).tril(diagonal=pos)
        for l in range(a.layers):
            q = lambda s: p[f"transformer.layers.{l}.{s}"]  # noqa: E731
            h = F.layer_norm(x, (C,), q("ln1.weight"), q("ln1.bias"), 1e-5)
            pre = f"transformer.layers.{l}."
            qq, kk, vv = self.linear(h, pre + "attn.qkv.weight").split(C, dim=1)
            qq, kk, vv = (t.view(n, NH, HS).transpose(0, 1) for t in (qq, kk, vv))
            self.k[l, :, pos:pos + n] = kk
            self.v[l, :, pos:pos + n] = vv
            att = (qq @ self.k[l, :, :pos + n].transpose(-2, -1)) / math.sqrt(HS)
            if mask is not None:
                att = att.masked_fill(~mask, float("-inf"))
            y = (att.softmax(dim=-1) @ self.v[l, :, :pos + n]).transpose(0, 1).reshape(n, C)
            x = x + self.linear(y, pre + "attn.proj.weight")
            h = F.layer_norm(x, (C,), q("ln2.weight"), q("ln2.bias"), 1e-5)
            h = F.gelu(self.linear(h, pre + "mlp.fc.weight"), approximate="tanh")
            x = x + self.linear(h, pre + "mlp.proj.weight")
        self.pos += n
        x = F.layer_norm(x[-1:], (C,), p["ln_f.weight"], p["ln_f.bias"], 1e-5)
        return self.linear(x, "token_embedding.weight", bias=False)[0]


def repeat(fn, n):
    """Mean seconds of fn() over up to n runs and about REPEAT_SECONDS."""
    times, start = [], time.perf_counter()
    while len(times) < n and (not times or time.perf_counter() - start < REPEAT_SECONDS):
        times.append(fn())
    return sum(times) / len(times)


def inference(p, a):
    kv = KVModel(p, a)
    prompt = torch.randint(0, a.vocab, (a.ctx,))

    def prefill():
        kv.pos = 0
        t0 = time.perf_counter()
        kv.feed(prompt).argmax()
        return time.perf_counter() - t0

    D = min(DECODE_TOKENS, a.ctx - 1)

    def decode(d=D):
        kv.pos = 0
        logits = kv.feed(prompt[:1])
        t0 = time.perf_counter()
        for _ in range(d):
            logits = kv.feed(logits.argmax().view(1))
        return time.perf_counter() - t0

    with torch.inference_mode():
        prefill()
        pre = repeat(prefill, a.iterations)
        out = {"prefill": {"tokens": a.ctx, "ms": pre * 1e3, "tokens_per_s": a.ctx / pre}}
        if D > 0:
            decode(min(D, 8))
            dec = repeat(decode, a.iterations)
            out["decode"] = {"tokens": D, "ms_per_token": dec / D * 1e3, "tokens_per_s": D / dec}
    return out


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(dim=256, layers=4, heads=4, vocab=4096, ctx=256, batch=8, seq=0,
                     iterations=10, threads=2, int8=0).items():
        ap.add_argument("--" + k, type=int, default=v)
    a = ap.parse_args()
    a.seq = a.seq or a.ctx
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    p = init_params(a.dim, a.layers, a.vocab, a.ctx)
    cfg = {"d_model": a.dim, "n_heads": a.heads, "n_layers": a.layers}
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if not a.int8:
        out["train"] = train(p, cfg, a)
    else:
        out["quantized_engine"] = torch.backends.quantized.engine
    out.update(inference(p, a))
    out["blas"] = loaded_blas()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
