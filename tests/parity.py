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


def rms(x, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rope(x, T):
    """Rotary position embedding on (B, NH, T, HS), GPT-NeoX's rotate-half
    pairs (i, i + HS/2), theta 10000; angles in float64 as minigpt's."""
    HS = x.size(-1)
    inv = 10000.0 ** (-torch.arange(0, HS, 2, dtype=torch.float64) / HS)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos().float(), ang.sin().float()
    cos, sin = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
    x1, x2 = x[..., : HS // 2], x[..., HS // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def forward(p, cfg, tokens):
    """The model written directly over the checkpoint's tensors: GPT-2, or
    the architecture options model_config names (pos, norm, qk_norm,
    tie_head; zero_init changes only the starting weights)."""
    B, T = tokens.shape
    C, NH, L = cfg["d_model"], cfg["n_heads"], cfg["n_layers"]
    use_rope = cfg.get("pos", "learned") == "rope"
    use_rms = cfg.get("norm", "layernorm") == "rmsnorm"
    qk_norm = cfg.get("qk_norm", False)

    def norm(x, w, b):
        return rms(x) * w if use_rms else F.layer_norm(x, (C,), w, b, 1e-5)

    x = p["token_embedding.weight"][tokens]
    if not use_rope:
        x = x + p["position_embedding.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        q = lambda n: p.get(f"transformer.layers.{l}.{n}")  # noqa: E731
        h = norm(x, q("ln1.weight"), q("ln1.bias"))
        qkv = F.linear(h, q("attn.qkv.weight"), q("attn.qkv.bias"))
        qq, kk, vv = qkv.split(C, dim=2)
        qq, kk, vv = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (qq, kk, vv))
        if qk_norm:
            qq, kk = rms(qq), rms(kk)
        if use_rope:
            qq, kk = rope(qq, T), rope(kk, T)
        att = (qq @ kk.transpose(-2, -1)) / math.sqrt(C // NH)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ vv).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, q("attn.proj.weight"), q("attn.proj.bias"))
        h = norm(x, q("ln2.weight"), q("ln2.bias"))
        h = F.gelu(F.linear(h, q("mlp.fc.weight"), q("mlp.fc.bias")), approximate="tanh")
        x = x + F.linear(h, q("mlp.proj.weight"), q("mlp.proj.bias"))
    x = norm(x, p["ln_f.weight"], p.get("ln_f.bias"))
    head = p["token_embedding.weight"] if cfg.get("tie_head", True) else p["lm_head.weight"]
    return x @ head.T


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
    arch = {k: cfg[k] for k in ("pos", "norm", "qk_norm", "tie_head", "zero_init") if k in cfg}
    print(f"parity: {arch or 'GPT-2 (no option keys)'}")
    print(f"parity: {len(p)} tensors, loss ours {float(dump['loss'][0]):.6f} torch {loss.item():.6f}")
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
