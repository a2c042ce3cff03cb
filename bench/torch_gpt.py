#!/usr/bin/python3
"""torch_gpt.py - the PyTorch side of bench/bench_train.sh: trains the same
GPT-2 shape as minigpt (the forward of tests/parity.py, AdamW with decay on
matrices, clipping at 1.0) on random tokens and prints tokens per second.

usage: torch_gpt.py --dim 256 --layers 4 --heads 4 --vocab 4096 --ctx 256
                    --batch 8 --steps 20 --threads 2
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from parity import forward  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(dim=256, layers=4, heads=4, vocab=4096, ctx=256, batch=8, steps=20, threads=2, warmup=3).items():
        ap.add_argument("--" + k, type=int, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    C, V, T, L = a.dim, a.vocab, a.ctx, a.layers
    shapes = {"token_embedding.weight": (V, C), "position_embedding.weight": (T, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for l in range(L):
        for n, s in [("ln1.weight", (C,)), ("ln1.bias", (C,)), ("attn.qkv.weight", (3 * C, C)), ("attn.qkv.bias", (3 * C,)),
                     ("attn.proj.weight", (C, C)), ("attn.proj.bias", (C,)), ("ln2.weight", (C,)), ("ln2.bias", (C,)),
                     ("mlp.fc.weight", (4 * C, C)), ("mlp.fc.bias", (4 * C,)), ("mlp.proj.weight", (C, 4 * C)), ("mlp.proj.bias", (C,))]:
            shapes[f"transformer.layers.{l}.{n}"] = s
    p = {k: (torch.randn(s) * 0.02 if len(s) == 2 else torch.ones(s) if k.endswith("ln1.weight") or k.endswith("ln2.weight") or k == "ln_f.weight" else torch.zeros(s)).requires_grad_() for k, s in shapes.items()}
    cfg = {"d_model": C, "n_heads": a.heads, "n_layers": L}
    opt = torch.optim.AdamW([{"params": [t for t in p.values() if t.dim() == 2], "weight_decay": 0.1},
                             {"params": [t for t in p.values() if t.dim() < 2], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))
    x = torch.randint(0, V, (a.batch, T))
    y = torch.randint(0, V, (a.batch, T))
    t0 = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = forward(p, cfg, x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, V), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(p.values()), 1.0)
        opt.step()
    dt = time.perf_counter() - t0
    print(f"torch {torch.__version__}: {a.batch * T * a.steps / dt:.0f} tok/s ({dt / a.steps * 1000:.1f} ms/step, {a.threads} threads)")


if __name__ == "__main__":
    main()
