#!/usr/bin/python3
"""torch_recipe.py - the PyTorch side of bench/bench_recipe.sh: trains the
reference GPT (bench/torch_gpt.py) on minigpt's own token streams
(`minigpt train --save-tokens FILE`) with minigpt's recipe (batches of
random windows at multiples of the context, shuffled per epoch; linear
warm-up then cosine decay to 10%; AdamW 0.9/0.95, decay 0.1 on matrices;
clipping at 1.0) for a wall-clock budget sized like minigpt's (from the
speed of the steps so far), then reports validation loss and bits per byte
on the same windows minigpt evaluates.
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests"))
import st_reader  # noqa: E402
from torch_gpt import adamw, forward, init_params  # noqa: E402


def lr_at(step, lr, warmup, total, min_ratio=0.1):
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= total:
        return lr * min_ratio
    prog = (step - warmup) / max(1, total - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * prog)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--lr", type=float, default=1e-3)
    for k, v in dict(dim=256, layers=4, heads=4, ctx=256, batch=8, warmup=50, eval_batches=10, threads=2, seed=1337).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    a = ap.parse_args()
    t_start = time.perf_counter()
    torch.set_num_threads(a.threads)
    t, _ = st_reader.load(a.tokens)
    train, val, nbytes = (torch.from_numpy(t[k].astype(np.int64)) for k in ("train", "val", "token_bytes"))
    V, T, B = len(nbytes), a.ctx, a.batch
    p = init_params(a.dim, a.layers, V, T, a.seed)
    cfg = {"d_model": a.dim, "n_heads": a.heads, "n_layers": a.layers}
    opt = adamw(p, a.lr)
    rng = np.random.default_rng(a.seed)
    windows = (len(train) - 1) // T
    order, cursor = rng.permutation(windows), 0
    budget = a.minutes * 60
    total, warmup, step, t_loop, tokens = 10**12, a.warmup, 0, time.perf_counter(), 0
    while step < total and time.perf_counter() - t_start < budget:
        if cursor + B > windows:
            order, cursor = rng.permutation(windows), 0
        starts = torch.from_numpy(order[cursor:cursor + B] * T)
        cursor += B
        idx = starts[:, None] + torch.arange(T + 1)[None, :]
        xy = train[idx]
        lr = lr_at(step, a.lr, warmup, total)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(p, cfg, xy[:, :-1]).reshape(-1, V), xy[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(p.values()), 1.0)
        opt.step()
        step += 1
        tokens += B * T
        done = step
        if done >= 5 and done % 5 == 0:  # size the schedule like minigpt does
            per = (time.perf_counter() - t_loop) / done * 1.05
            left = budget - (time.perf_counter() - t_start)
            total = max(step + 1, step + int(left / per))
            warmup = min(a.warmup, max(1, total // 10))
    # validation: minigpt's windows, spread evenly through the stream
    vw = (len(val) - 1) // T
    n = min(a.eval_batches * B, vw)
    nats, nb = 0.0, 0
    with torch.no_grad():
        for i0 in range(0, n, B):
            ws = [(i * vw // n) * T for i in range(i0, min(n, i0 + B))]
            idx = torch.tensor(ws)[:, None] + torch.arange(T + 1)[None, :]
            xy = val[idx]
            out = forward(p, cfg, xy[:, :-1])
            nats += F.cross_entropy(out.reshape(-1, V), xy[:, 1:].reshape(-1), reduction="sum").item()
            nb += int(nbytes[xy[:, 1:]].sum())
    ntok = n * T
    print(f"torch {torch.__version__}: {step} steps, {tokens} tokens in {time.perf_counter() - t_start:.0f} s; "
          f"val loss {nats / ntok:.4f}, val bpb {nats / nb / math.log(2):.4f}")


if __name__ == "__main__":
    main()
