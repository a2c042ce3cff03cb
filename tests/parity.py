#!/usr/bin/python3
"""parity.py - minigpt against a PyTorch reference model of our own.

Loads the checkpoint written by build/tools/parity_dump (through our strict
safetensors reader, tests/st_reader.py), rebuilds the model in PyTorch, and
compares logits, loss, every gradient and the losses of 10 AdamW steps with
minigpt's numbers (dump.safetensors). Exit 0 when all match within float32
tolerance, 1 otherwise.

usage: parity.py DIR
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_reader  # noqa: E402

torch.set_num_threads(1)


def mlp(pre, cfg):
    """The MLP's activation (model_config "mlp", GELU when absent): SwiGLU's fc
    output is [gate | up], H = ffn_hidden columns each."""
    kind = cfg.get("mlp", "gelu")
    if kind == "gelu":
        return F.gelu(pre, approximate="tanh")
    if kind == "relu2":
        return F.relu(pre).square()
    if kind == "swiglu":
        gate, up = pre.split(cfg["ffn_hidden"], dim=-1)
        return F.silu(gate) * up
    raise ValueError(f"unknown mlp {kind!r}")


def forward(p, cfg, tokens):
    """GPT-2 forward pass written directly over the checkpoint's tensors."""
    B, T = tokens.shape
    C, NH, L = cfg["d_model"], cfg["n_heads"], cfg["n_layers"]
    x = p["token_embedding.weight"][tokens] + p["position_embedding.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        q = lambda n: p[f"transformer.layers.{l}.{n}"]  # noqa: E731
        h = F.layer_norm(x, (C,), q("ln1.weight"), q("ln1.bias"), 1e-5)
        qkv = F.linear(h, q("attn.qkv.weight"), q("attn.qkv.bias"))
        qq, kk, vv = qkv.split(C, dim=2)
        qq, kk, vv = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (qq, kk, vv))
        att = (qq @ kk.transpose(-2, -1)) / math.sqrt(C // NH)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ vv).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, q("attn.proj.weight"), q("attn.proj.bias"))
        h = F.layer_norm(x, (C,), q("ln2.weight"), q("ln2.bias"), 1e-5)
        x = x + F.linear(mlp(F.linear(h, q("mlp.fc.weight"), q("mlp.fc.bias")), cfg),
                         q("mlp.proj.weight"), q("mlp.proj.bias"))
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], 1e-5)
    return x @ p["token_embedding.weight"].T


def close(name, ours, ref, rtol, atol, failures):
    """|ours - ref| <= rtol * |ref| + atol * max|ref| elementwise: the
    absolute floor scales with the tensor, so small gradients are checked
    as strictly as large ones."""
    ours, ref = torch.as_tensor(ours).float(), ref.detach().float()
    err = (ours - ref).abs()
    scale = ref.abs().max().item()
    bound = rtol * ref.abs() + atol * scale
    ok = bool((err <= bound).all())
    print(f"  {'ok  ' if ok else 'FAIL'} {name:48s} max|ref| {scale:.2e}  max err {err.max().item():.2e}")
    if not ok:
        failures.append(name)


def main():
    d = sys.argv[1]
    weights, meta = st_reader.load(os.path.join(d, "model.safetensors"))
    dump, _ = st_reader.load(os.path.join(d, "dump.safetensors"))
    cfg = json.loads(meta["model_config"])
    p = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    tokens = torch.tensor(dump["tokens"]).long()
    targets = torch.tensor(dump["targets"]).long()
    failures = []

    logits = forward(p, cfg, tokens)
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
    loss.backward()
    print(f"parity: {cfg.get('mlp', 'gelu')} MLP of {cfg.get('ffn_hidden', 4 * cfg['d_model'])}, {len(p)} tensors, loss ours {float(dump['loss'][0]):.6f} torch {loss.item():.6f}")
    close("logits", dump["logits"], logits, 1e-4, 1e-5, failures)
    close("loss", dump["loss"], loss.reshape(1), 1e-5, 1e-6, failures)
    for name, t in p.items():
        close("grad." + name, dump["grad." + name], t.grad, 1e-3, 1e-4, failures)

    # 10 AdamW steps, decay on matrices only, global-norm clipping at 1.0
    q = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    groups = [
        {"params": [t for t in q.values() if t.dim() == 2], "weight_decay": 0.1},
        {"params": [t for t in q.values() if t.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    losses = []
    for _ in range(len(dump["adamw_losses"])):
        opt.zero_grad()
        out = forward(q, cfg, tokens)
        l = F.cross_entropy(out.view(-1, out.size(-1)), targets.view(-1))
        l.backward()
        torch.nn.utils.clip_grad_norm_(list(q.values()), 1.0)
        opt.step()
        losses.append(l.item())
    print("  adamw losses ours ", " ".join(f"{x:.5f}" for x in dump["adamw_losses"]))
    print("  adamw losses torch", " ".join(f"{x:.5f}" for x in losses))
    close("adamw_losses (10 steps)", dump["adamw_losses"], torch.tensor(losses), 1e-4, 1e-5, failures)

    if failures:
        print(f"parity: {len(failures)} mismatches: {', '.join(failures[:5])}")
        return 1
    print("parity: all match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
