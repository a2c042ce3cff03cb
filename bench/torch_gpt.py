#!/usr/bin/python3
"""torch_gpt.py - the PyTorch reference used by the benchmarks: the same
GPT-2 as minigpt (the forward of tests/parity.py), initialised the same way,
with AdamW (decay on matrices only) and clipping at 1.0.

Run directly, it measures training throughput on random tokens:
usage: torch_gpt.py --dim 256 --layers 4 --heads 4 --vocab 4096 --ctx 256
                    --batch 8 --steps 20 --threads 2
"""
import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from parity import forward  # noqa: E402,F401  (re-exported for bench scripts)


def init_params(dim, layers, vocab, ctx, seed=0):
    """minigpt's table and initialisation: N(0, 0.02) matrices, residual
    projections scaled by 1/sqrt(2L), LayerNorm weights 1, biases 0."""
    g = torch.Generator().manual_seed(seed)
    C = dim
    shapes = {"token_embedding.weight": (vocab, C), "position_embedding.weight": (ctx, C)}
    for l in range(layers):
        for n, s in [("ln1.weight", (C,)), ("ln1.bias", (C,)), ("attn.qkv.weight", (3 * C, C)),
                     ("attn.qkv.bias", (3 * C,)), ("attn.proj.weight", (C, C)), ("attn.proj.bias", (C,)),
                     ("ln2.weight", (C,)), ("ln2.bias", (C,)), ("mlp.fc.weight", (4 * C, C)),
                     ("mlp.fc.bias", (4 * C,)), ("mlp.proj.weight", (C, 4 * C)), ("mlp.proj.bias", (C,))]:
            shapes[f"transformer.layers.{l}.{n}"] = s
    shapes["ln_f.weight"], shapes["ln_f.bias"] = (C,), (C,)
    p = {}
    for k, s in shapes.items():
        if len(s) == 2:
            std = 0.02 / math.sqrt(2 * layers) if k.endswith("proj.weight") else 0.02
            t = torch.randn(s, generator=g) * std
        else:
            t = torch.ones(s) if ("ln" in k and k.endswith(".weight")) else torch.zeros(s)
        p[k] = t.requires_grad_()
    return p


def adamw(p, lr, wd=0.1):
    return torch.optim.AdamW([{"params": [t for t in p.values() if t.dim() == 2], "weight_decay": wd},
                              {"params": [t for t in p.values() if t.dim() < 2], "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(dim=256, layers=4, heads=4, vocab=4096, ctx=256, batch=8, steps=20, threads=2, warmup=3).items():
        ap.add_argument("--" + k, type=int, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    p = init_params(a.dim, a.layers, a.vocab, a.ctx)
    cfg = {"d_model": a.dim, "n_heads": a.heads, "n_layers": a.layers}
    opt = adamw(p, 1e-3)
    x = torch.randint(0, a.vocab, (a.batch, a.ctx))
    y = torch.randint(0, a.vocab, (a.batch, a.ctx))
    t0 = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(p, cfg, x).view(-1, a.vocab), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(p.values()), 1.0)
        opt.step()
    dt = time.perf_counter() - t0
    print(f"torch {torch.__version__}: {a.batch * a.ctx * a.steps / dt:.0f} tok/s "
          f"({dt / a.steps * 1000:.1f} ms/step, {a.threads} threads)")


if __name__ == "__main__":
    main()
