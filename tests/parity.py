#!/usr/bin/python3
"""parity.py - minigpt against a PyTorch reference model of our own.

Loads the checkpoint written by build/tools/parity_dump (through our strict
safetensors reader, tests/st_reader.py), rebuilds the model in PyTorch, and
compares logits, loss, every gradient and the losses of 10 AdamW steps with
minigpt's numbers (dump.safetensors); when the dump has them (parity_dump
--muon), also the losses of 10 Muon steps and the weights after them,
against a PyTorch Muon written here. Exit 0 when all match within float32
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
        x = x + F.linear(mlp(F.linear(h, q("mlp.fc.weight"), q("mlp.fc.bias")), cfg),
                         q("mlp.proj.weight"), q("mlp.proj.bias"))
    x = norm(x, p["ln_f.weight"], p.get("ln_f.bias"))
    head = p["token_embedding.weight"] if cfg.get("tie_head", True) else p["lm_head.weight"]
    return x @ head.T


def newton_schulz5(G):
    """Keller Jordan's zeropower_via_newtonschulz5 (modded-nanogpt), in float32."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G / (G.norm() + 1e-7)
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.T
    for _ in range(5):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if tall else X


def muon_blocks(name, cfg):
    """Muon's row blocks of a hidden matrix (0: not one): a layer's qkv is
    q, k, v (3); swiglu's fc is gate, up (2); proj and the other fc 1."""
    if not name.startswith("transformer.layers.") or not name.endswith(".weight"):
        return 0
    if name.endswith("attn.qkv.weight"):
        return 3
    if name.endswith("mlp.fc.weight"):
        return 2 if cfg.get("mlp") == "swiglu" else 1
    return 1 if name.endswith(("attn.proj.weight", "mlp.proj.weight")) else 0


def muon_steps(weights, cfg, tokens, targets, steps, lr=0.02, momentum=0.95, wd=0.1):
    """Muon on the hidden matrices: buf = mu buf + g; u = g + mu buf
    (Nesterov); per row block O = NS5(u); p <- p (1 - lr wd) - lr
    sqrt(max(1, rows/cols)) O (rows of the block). AdamW (lr 1e-2) on the
    rest; global-norm clipping at 1.0 first. Returns losses and weights."""
    q = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    hidden = {k: muon_blocks(k, cfg) for k in q if muon_blocks(k, cfg)}
    rest = [t for k, t in q.items() if k not in hidden]
    opt = torch.optim.AdamW(
        [{"params": [t for t in rest if t.dim() == 2], "weight_decay": 0.1},
         {"params": [t for t in rest if t.dim() < 2], "weight_decay": 0.0}],
        lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    bufs = {k: torch.zeros_like(q[k]) for k in hidden}
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        for k in hidden:
            q[k].grad = None
        out = forward(q, cfg, tokens)
        l = F.cross_entropy(out.view(-1, out.size(-1)), targets.view(-1))
        l.backward()
        torch.nn.utils.clip_grad_norm_(list(q.values()), 1.0)
        opt.step()
        with torch.no_grad():
            for k, nb in hidden.items():
                p, g, buf = q[k], q[k].grad, bufs[k]
                buf.mul_(momentum).add_(g)
                u = g + momentum * buf
                for pb, ub in zip(p.chunk(nb, 0), u.chunk(nb, 0)):
                    o = newton_schulz5(ub)
                    pb.mul_(1 - lr * wd).add_(o, alpha=-lr * max(1.0, pb.size(0) / pb.size(1)) ** 0.5)
        losses.append(l.item())
    return losses, q


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

    if "muon_losses" in dump:
        mlosses, mq = muon_steps(weights, cfg, tokens, targets, len(dump["muon_losses"]))
        print("  muon losses ours  ", " ".join(f"{x:.5f}" for x in dump["muon_losses"]))
        print("  muon losses torch ", " ".join(f"{x:.5f}" for x in mlosses))
        close("muon_losses (10 steps)", dump["muon_losses"], torch.tensor(mlosses), 1e-4, 1e-5, failures)
        for name, t in mq.items():
            # 10 steps of AdamW on tiny gradients amplify rounding: the biases differ by 2.6e-5
            # of 0.23 here; a wrong momentum (0.9) is off by 2e-3 to 7e-3
            close("muon.final." + name, dump["final." + name], t, 1e-3, 5e-4, failures)

    if failures:
        print(f"parity: {len(failures)} mismatches: {', '.join(failures[:5])}")
        return 1
    print("parity: all match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
