#!/usr/bin/python3
"""torch_recipe.py - the PyTorch side of bench/bench_recipe.sh: trains a
reference GPT on minigpt's own token streams (`minigpt train --save-tokens
FILE`) with minigpt's recipe (batches of random windows at multiples of the
context, shuffled per epoch; linear warm-up then cosine decay to 10%; AdamW
0.9/0.95, decay on matrices; clipping at 1.0) for a wall-clock budget sized
like minigpt's (from the speed of the steps so far), then reports validation
loss and bits per byte on the same windows minigpt evaluates.

The model is the GPT-2 block of bench/torch_gpt.py (same table, same
initialisation, same forward as tests/parity.py) or any mix of the "modern
recipe" variants of RECIPE-AGREEMENT (issue 17):
  --pos rope            rotary embeddings (theta 10000, NeoX rotate-half pairs
                        (i, i+HS/2)), no learned position table
  --norm rmsnorm        RMS norm with a gain, no bias, eps 1e-5
  --qk-norm             RMS norm of q and k per head (no weights, eps 1e-5),
                        before RoPE
  --mlp relu2|swiglu    relu(x)^2 (hidden 4C), or silu(gate)*up with
                        fc (2H,C) = [gate; up], H the multiple of 32 nearest 8C/3
  --untie-head          a separate lm_head (V,C)
  --zero-init           attn/mlp proj (and an untied head) start at 0
  --optimizer muon      Muon (Nesterov momentum, 5 quintic Newton-Schulz
                        steps) for each layer's qkv/proj/fc/proj matrices,
                        AdamW for the rest; both on the same schedule
Every linear layer keeps its bias, as minigpt's does.

--like CHECKPOINT takes the shape and the variants from a minigpt checkpoint's
model_config (the run bench_recipe.sh just made); variant flags given as well
must agree with it. --selftest checks Newton-Schulz against an SVD, RoPE
against a complex-number rotation, and the GPT-2 forward against
tests/parity.py, then exits.

torch.compile does not exist in this PyTorch (Debian's 1.13.1; it came with
2.0), and TorchScript cannot fuse on the CPU here (its NNC fuser needs LLVM,
which Debian's build lacks: "LLVM Backend not found"; a torch.jit.trace of
the loss without fusion measured no faster). So the steps run eagerly, with
by hand what a compiler would do that matters at this size: the classifier
and its cross-entropy fused (HeadLoss), and freed memory kept in the process
(keep_heap).
"""
import argparse
import ctypes
import json
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

EPS = 1e-5
ROPE_THETA = 10000.0
NS_COEFFS = (3.4445, -4.7750, 2.0315)
# model_config keys of RECIPE-AGREEMENT -> (our option, default, allowed values)
CONFIG_KEYS = {"pos": ("pos", "learned", ("learned", "rope")),
               "norm": ("norm", "layernorm", ("layernorm", "rmsnorm")),
               "qk_norm": ("qk_norm", False, (False, True)),
               "mlp": ("mlp", "gelu", ("gelu", "relu2", "swiglu")),
               "tie_head": ("untie_head", True, (False, True)),
               "zero_init": ("zero_init", False, (False, True))}


def ffn_hidden(a):
    """MLP hidden width: --ffn, else 4C, or for SwiGLU the multiple of 32
    nearest 8C/3 (halves round up), at least 32."""
    if getattr(a, "ffn", 0):
        return a.ffn
    return 4 * a.dim if a.mlp != "swiglu" else max(32, (8 * a.dim + 48) // 96 * 32)


def init_params(a, V, seed):
    """minigpt's table and initialisation: N(0, 0.02) matrices, residual
    projections scaled by 1/sqrt(2L) (zero with --zero-init), norm gains 1,
    biases 0. The GPT-2 case is bench/torch_gpt.py's table, drawn in the
    same order."""
    g = torch.Generator().manual_seed(seed)
    C, H = a.dim, ffn_hidden(a)
    ln = [("weight", (C,))] + ([("bias", (C,))] if a.norm == "layernorm" else [])
    fc_rows = 2 * H if a.mlp == "swiglu" else H
    shapes = {"token_embedding.weight": (V, C)}
    if a.pos == "learned":
        shapes["position_embedding.weight"] = (a.ctx, C)
    for l in range(a.layers):
        rows = [("ln1." + n, s) for n, s in ln]
        rows += [("attn.qkv.weight", (3 * C, C)), ("attn.qkv.bias", (3 * C,)),
                 ("attn.proj.weight", (C, C)), ("attn.proj.bias", (C,))]
        rows += [("ln2." + n, s) for n, s in ln]
        rows += [("mlp.fc.weight", (fc_rows, C)), ("mlp.fc.bias", (fc_rows,)),
                 ("mlp.proj.weight", (C, H)), ("mlp.proj.bias", (C,))]
        for n, s in rows:
            shapes[f"transformer.layers.{l}.{n}"] = s
    for n, s in ln:
        shapes["ln_f." + n] = s
    if a.untie_head:
        shapes["lm_head.weight"] = (V, C)
    p = {}
    for k, s in shapes.items():
        if len(s) == 2:
            zero = a.zero_init and (k.endswith("proj.weight") or k == "lm_head.weight")
            std = 0.02 / math.sqrt(2 * a.layers) if k.endswith("proj.weight") else 0.02
            t = torch.zeros(s) if zero else torch.randn(s, generator=g) * std
        else:
            t = torch.ones(s) if ("ln" in k and k.endswith(".weight")) else torch.zeros(s)
        p[k] = t.requires_grad_()
    return p


def keep_heap():
    """Keep freed memory in the process: glibc hands blocks over 32 MB (the
    (N,V) logits: 64 MB at batch 8 x 256, vocab 8192) back to the kernel on
    free, and every step then page-faults them in again (measured: about
    half the step under load). minigpt allocates its buffers once."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-4, 0)  # M_MMAP_MAX: no mmap'd blocks
    libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: never shrink the heap


def rms_norm(x, w=None):
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)
    return x if w is None else x * w


def rope_tables(T, hs):
    """cos, sin (T, hs/2): angle t * theta^(-2i/hs) of pair (i, i + hs/2)."""
    inv = ROPE_THETA ** (-torch.arange(0, hs // 2, dtype=torch.float64) * 2 / hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def rope(x, cos, sin):
    """Rotate x (..., T, hs) in NeoX rotate-half pairs (i, i + hs/2)."""
    h = x.size(-1) // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def hidden(p, a, tokens, tabs):
    """The final normed states (B, T, C) of the model `a` describes; tabs:
    (causal mask, rope cos, sin)."""
    B, T = tokens.shape
    C, NH = a.dim, a.heads
    HS, H = C // NH, ffn_hidden(a)
    mask, cos, sin = tabs

    def norm(x, name):
        if a.norm == "rmsnorm":
            return rms_norm(x, p[name + ".weight"])
        return F.layer_norm(x, (C,), p[name + ".weight"], p[name + ".bias"], EPS)

    x = p["token_embedding.weight"][tokens]
    if a.pos == "learned":
        x = x + p["position_embedding.weight"][:T]
    for l in range(a.layers):
        pre = f"transformer.layers.{l}."
        q = lambda n: p[pre + n]  # noqa: E731
        h = norm(x, pre + "ln1")
        qkv = F.linear(h, q("attn.qkv.weight"), q("attn.qkv.bias"))
        qq, kk, vv = (t.view(B, T, NH, HS).transpose(1, 2) for t in qkv.split(C, dim=2))
        if a.qk_norm:
            qq, kk = rms_norm(qq), rms_norm(kk)
        if a.pos == "rope":
            qq, kk = rope(qq, cos[:T], sin[:T]), rope(kk, cos[:T], sin[:T])
        att = (qq @ kk.transpose(-2, -1)) / math.sqrt(HS)
        att = att.masked_fill(mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ vv).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, q("attn.proj.weight"), q("attn.proj.bias"))
        h = F.linear(norm(x, pre + "ln2"), q("mlp.fc.weight"), q("mlp.fc.bias"))
        if a.mlp == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif a.mlp == "relu2":
            h = F.relu(h).square()
        else:
            gate, up = h.split(H, dim=-1)
            h = F.silu(gate) * up
        x = x + F.linear(h, q("mlp.proj.weight"), q("mlp.proj.bias"))
    return norm(x, "ln_f")


def head(p, a):
    return p["lm_head.weight" if a.untie_head else "token_embedding.weight"]


def forward(p, a, tokens, tabs):
    """Logits (B, T, V)."""
    return hidden(p, a, tokens, tabs) @ head(p, a).T


class HeadLoss(torch.autograd.Function):
    """Mean cross-entropy of the logits x @ w^T (x (N,C), w (V,C)) against
    targets y (N,), fused as a compiler would: the backward turns the saved
    logits into softmax - onehot in place, so no (N,V) log-softmax, one-hot
    or gradient tensor is made besides the logits (F.cross_entropy makes
    three)."""

    @staticmethod
    def forward(ctx, x, w, y):
        logits = x @ w.T
        lse = torch.logsumexp(logits, dim=1)
        loss = (lse - logits.gather(1, y[:, None]).squeeze(1)).mean()
        ctx.save_for_backward(x, w, y, logits, lse)
        return loss

    @staticmethod
    def backward(ctx, g):
        x, w, y, logits, lse = ctx.saved_tensors
        d = logits.sub_(lse[:, None]).exp_()  # softmax, in the logits' buffer
        d[torch.arange(len(y)), y] -= 1
        d.mul_(g / len(y))
        return d @ w, d.T @ x, None


def train_loss(p, a, xy, tabs):
    """The mean next-token loss of windows xy (B, T+1)."""
    h = hidden(p, a, xy[:, :-1], tabs)
    return HeadLoss.apply(h.reshape(-1, h.size(-1)), head(p, a), xy[:, 1:].reshape(-1))


def make_tables(a):
    mask = ~torch.tril(torch.ones(a.ctx, a.ctx, dtype=torch.bool))  # True above the diagonal
    cos, sin = rope_tables(a.ctx, a.dim // a.heads)
    return mask, cos, sin


def newton_schulz(g, steps=5):
    """The orthogonal factor U V^T of g = U S V^T, approximately: 5 steps of
    the quintic X <- aX + (bA + cA^2)X, A = X X^T, on g / (||g||_F + 1e-7),
    wide side along the rows (transposed when rows > cols)."""
    a, b, c = NS_COEFFS
    x = g / (g.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * (s @ s)) @ x
    return x.T if tall else x


def muon_blocks(name, mlp):
    """How many equal row blocks Muon orthogonalises separately: q, k, v of
    attn.qkv.weight; gate and up of a SwiGLU mlp.fc.weight."""
    if name.endswith("attn.qkv.weight"):
        return 3
    return 2 if name.endswith("mlp.fc.weight") and mlp == "swiglu" else 1


class Muon:
    """buf = mu*buf + g; u = g + mu*buf (Nesterov); per row block O =
    NewtonSchulz(u_block); p = p*(1 - lr*wd) - lr*sqrt(max(1, rows/cols))*O
    with the block's rows and cols."""

    def __init__(self, params, lr, momentum, wd):
        self.params = params  # list of (tensor, blocks)
        self.lr, self.momentum, self.wd = lr, momentum, wd
        self.bufs = [torch.zeros_like(t) for t, _ in params]

    @torch.no_grad()
    def step(self):
        mu = self.momentum
        for (t, blocks), buf in zip(self.params, self.bufs):
            buf.mul_(mu).add_(t.grad)
            u = t.grad.add(buf, alpha=mu)
            rows, cols = t.size(0) // blocks, t.size(1)
            o = torch.cat([newton_schulz(ub) for ub in u.split(rows, dim=0)])
            t.mul_(1 - self.lr * self.wd).add_(o, alpha=-self.lr * max(1.0, rows / cols) ** 0.5)


def optimizers(p, a, variant):
    """(AdamW over everything Muon does not take, Muon or None)."""
    muon_names = []
    if variant == "muon":
        muon_names = [k for k in p if k.startswith("transformer.layers.") and p[k].dim() == 2]
    rest = [k for k in p if k not in muon_names]
    adam = torch.optim.AdamW([{"params": [p[k] for k in rest if p[k].dim() == 2], "weight_decay": a.weight_decay},
                              {"params": [p[k] for k in rest if p[k].dim() < 2], "weight_decay": 0.0}],
                             lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    if not muon_names:
        return adam, None
    return adam, Muon([(p[k], muon_blocks(k, a.mlp)) for k in muon_names], a.muon_lr, a.muon_momentum, a.weight_decay)


def lr_at(step, lr, warmup, total, min_ratio=0.1):
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= total:
        return lr * min_ratio
    prog = (step - warmup) / max(1, total - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * prog)))


def apply_like(a, path):
    """Shape and variants from a minigpt checkpoint's model_config; a variant
    flag also given on the command line must say the same."""
    _, meta = st_reader.load(path)
    cfg = json.loads(meta["model_config"])
    a.dim, a.layers, a.heads, a.ctx = cfg["d_model"], cfg["n_layers"], cfg["n_heads"], cfg["context_length"]
    for key, (opt, default, allowed) in CONFIG_KEYS.items():
        v = cfg.get(key, default)
        if v not in allowed:
            sys.exit(f"torch_recipe.py: {path}: model_config {key} {v!r} is not one of {allowed}")
        if key == "tie_head":
            v = not v
        given = getattr(a, opt)
        if given is not None and given != v:
            flag = "--" + opt.replace("_", "-") + ("" if given is True else f" {given}")
            had = json.dumps(cfg.get(key, default))
            sys.exit(f"torch_recipe.py: {flag} given, but minigpt's checkpoint has {key} {had}"
                     " (does this minigpt know the flag?)")
        setattr(a, opt, v)
    a.ffn = a.ffn or cfg.get("ffn_hidden", 0)


def selftest():
    """Exit 0 when Newton-Schulz, RoPE and the GPT-2 forward check out."""
    torch.manual_seed(0)
    bad = []

    def check(name, ok, detail):
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            bad.append(name)

    # Newton-Schulz against the exact orthogonal factor U V^T
    for shape in [(96, 256), (256, 96), (128, 128 * 3)]:
        g = torch.randn(shape, dtype=torch.float64).float()
        u, s, vt = torch.linalg.svd(g.double(), full_matrices=False)
        exact = (u @ vt).float()
        o = newton_schulz(g)
        sv = torch.linalg.svdvals(o.double())
        rel = ((o - exact).norm() / exact.norm()).item()
        cos = (o * exact).sum().item() / (o.norm() * exact.norm()).item()
        check(f"newton_schulz {shape}", sv.min() >= 0.6 and sv.max() <= 1.2 and cos > 0.97,
              f"singular values in [{sv.min():.3f}, {sv.max():.3f}], cosine to U V^T {cos:.4f}, rel. diff {rel:.3f}")
    # Muon's blocks: q, k, v orthogonalised each on its own (one NS over the
    # whole matrix would leave the 0.1-scaled block near zero)
    C = 64
    grad = torch.cat([torch.randn(C, C) * s for s in (1.0, 10.0, 0.1)])
    w = torch.zeros(3 * C, C, requires_grad=True)
    w.grad = grad
    Muon([(w, 3)], lr=1.0, momentum=0.0, wd=0.0).step()
    norms = [w.detach()[i * C:(i + 1) * C].norm().item() for i in range(3)]
    same = torch.allclose(-w.detach(), torch.cat([newton_schulz(b) for b in grad.split(C)]))
    check("muon qkv blocks", same and max(norms) / min(norms) < 1.2
          and muon_blocks("transformer.layers.3.attn.qkv.weight", "gelu") == 3,
          f"update = NS per block {same}, block norms {', '.join(f'{x:.2f}' for x in norms)}"
          " (gradient blocks scaled 1, 10, 0.1)")
    # RoPE against rotating complex numbers x_i + i x_{i+hs/2} by e^{i t theta^(-2i/hs)}
    B, NH, T, hs = 2, 3, 17, 16
    x = torch.randn(B, NH, T, hs, dtype=torch.float64)
    cos, sin = rope_tables(T, hs)
    ours = rope(x.float(), cos, sin).double()
    z = torch.complex(x[..., :hs // 2], x[..., hs // 2:])
    ref = torch.empty_like(x)
    for t in range(T):
        for i in range(hs // 2):
            r = z[..., t, i] * complex(math.cos(t * 10000.0 ** (-2 * i / hs)), math.sin(t * 10000.0 ** (-2 * i / hs)))
            ref[..., t, i], ref[..., t, i + hs // 2] = r.real, r.imag
    err = (ours - ref).abs().max().item()
    check("rope vs complex rotation", err < 1e-5, f"max error {err:.2e}")
    # the GPT-2 case is tests/parity.py's forward, tensor for tensor
    from torch_gpt import init_params as gpt2_init
    from parity import forward as gpt2_forward
    a = argparse.Namespace(dim=32, layers=2, heads=4, ctx=16, pos="learned", norm="layernorm", qk_norm=False,
                           mlp="gelu", untie_head=False, zero_init=False)
    V = 50
    ours_p, ref_p = init_params(a, V, 7), gpt2_init(32, 2, V, 16, 7)
    same_table = list(ours_p) == list(ref_p) and all(torch.equal(ours_p[k], ref_p[k]) for k in ref_p)
    tok = torch.randint(0, V, (2, 16))
    d = (forward(ours_p, a, tok, make_tables(a)) - gpt2_forward(ref_p, {"d_model": 32, "n_heads": 4, "n_layers": 2},
                                                                 tok)).abs().max().item()
    check("gpt2 block vs tests/parity.py", same_table and d < 1e-6, f"same table {same_table}, max logit diff {d:.1e}")
    # the fused classifier loss against F.cross_entropy: loss and gradients
    x = torch.randn(40, 16, requires_grad=True)
    w = torch.randn(30, 16, requires_grad=True)
    y = torch.randint(0, 30, (40,))
    ref = F.cross_entropy(x @ w.T, y)
    gx, gw = torch.autograd.grad(ref, (x, w))
    ours = HeadLoss.apply(x, w, y)
    ox, ow = torch.autograd.grad(ours, (x, w))
    err = max((ours - ref).abs().item(), (ox - gx).abs().max().item(), (ow - gw).abs().max().item())
    check("fused head loss vs F.cross_entropy", err < 1e-5, f"max error of loss and gradients {err:.1e}")
    print("selftest: " + ("all pass" if not bad else f"{len(bad)} failed: {', '.join(bad)}"))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens")
    ap.add_argument("--minutes", type=float, help="wall-clock budget, schedule sized like minigpt's")
    ap.add_argument("--steps", type=int, help="or a budget of optimizer steps")
    ap.add_argument("--lr", type=float, default=1e-3)
    for k, v in dict(dim=256, layers=4, heads=4, ctx=256, batch=8, warmup=50, eval_batches=10,
                     threads=os.cpu_count() or 2, seed=1337).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--ffn", type=int, default=0, help="MLP hidden width (0: 4C, or about 8C/3 for swiglu)")
    ap.add_argument("--like", metavar="CHECKPOINT", help="shape and variants from a minigpt checkpoint")
    # variants: None = not given (GPT-2 unless --like says otherwise)
    ap.add_argument("--pos", choices=("learned", "rope"))
    ap.add_argument("--norm", choices=("layernorm", "rmsnorm"))
    ap.add_argument("--mlp", choices=("gelu", "relu2", "swiglu"))
    for f in ("qk-norm", "untie-head", "zero-init"):
        ap.add_argument("--" + f, action="store_const", const=True)
    ap.add_argument("--optimizer", choices=("adamw", "muon"), default="adamw")
    ap.add_argument("--muon-lr", type=float, default=0.005)
    ap.add_argument("--muon-momentum", type=float, default=0.95)
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if a.tokens is None or (a.minutes is None) == (a.steps is None):
        ap.error("--tokens and one of --minutes, --steps are required")
    if a.like:
        apply_like(a, a.like)
    for key, (opt, default, _) in CONFIG_KEYS.items():
        if getattr(a, opt) is None:
            setattr(a, opt, (not default) if key == "tie_head" else default)
    if a.dim % a.heads or (a.pos == "rope" and (a.dim // a.heads) % 2):
        ap.error(f"dim {a.dim} must split into {a.heads} heads (of even size for rope)")
    t_start = time.perf_counter()
    keep_heap()
    torch.set_num_threads(a.threads)
    t, _ = st_reader.load(a.tokens)
    train, val, nbytes = (torch.from_numpy(t[k].astype(np.int64)) for k in ("train", "val", "token_bytes"))
    V, T, B = len(nbytes), a.ctx, a.batch
    p = init_params(a, V, a.seed)
    tabs = make_tables(a)
    adam, muon = optimizers(p, a, a.optimizer)
    params = list(p.values())

    rng = np.random.default_rng(a.seed)
    windows = (len(train) - 1) // T
    order, cursor = rng.permutation(windows), 0
    budget = a.minutes * 60 if a.minutes else math.inf
    total = a.steps or 10**12
    warmup = min(a.warmup, max(1, total // 10)) if a.steps else a.warmup
    step, t_loop, tokens, t_first = 0, time.perf_counter(), 0, None
    first_loss = last_loss = float("nan")
    while step < total and time.perf_counter() - t_start < budget:
        if cursor + B > windows:
            order, cursor = rng.permutation(windows), 0
        starts = torch.from_numpy(order[cursor:cursor + B] * T)
        cursor += B
        xy = train[starts[:, None] + torch.arange(T + 1)[None, :]]
        ratio = lr_at(step, 1.0, warmup, total)
        for g in adam.param_groups:
            g["lr"] = a.lr * ratio
        adam.zero_grad(set_to_none=True)
        loss = train_loss(p, a, xy, tabs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        adam.step()
        if muon:
            muon.lr = a.muon_lr * ratio
            muon.step()
        step += 1
        tokens += B * T
        last_loss = loss.item()
        if step == 1:
            first_loss, t_first = last_loss, time.perf_counter()  # step time: from here (no warm-up allocations)
        if not a.steps and step >= 5 and step % 5 == 0:  # size the schedule like minigpt does
            per = (time.perf_counter() - t_loop) / step * 1.05
            left = budget - (time.perf_counter() - t_start)
            total = max(step + 1, step + int(left / per))
            warmup = min(a.warmup, max(1, total // 10))
    per_step = (time.perf_counter() - t_first) / (step - 1) if step > 1 else math.nan
    # validation: minigpt's windows, spread evenly through the stream
    vw = (len(val) - 1) // T
    n = min(a.eval_batches * B, vw)
    nats, nb = 0.0, 0
    with torch.no_grad():
        for i0 in range(0, n, B):
            ws = [(i * vw // n) * T for i in range(i0, min(n, i0 + B))]
            xy = val[torch.tensor(ws)[:, None] + torch.arange(T + 1)[None, :]]
            out = forward(p, a, xy[:, :-1], tabs)
            nats += F.cross_entropy(out.reshape(-1, V), xy[:, 1:].reshape(-1), reduction="sum").item()
            nb += int(nbytes[xy[:, 1:]].sum())
    ntok = n * T
    variant = " ".join(f"{k}={getattr(a, k)}" for k in ("pos", "norm", "qk_norm", "mlp", "untie_head", "zero_init"))
    variant += f" ffn={ffn_hidden(a)} adamw lr={a.lr:g}"
    if muon:
        variant += f" muon lr={a.muon_lr:g} momentum={a.muon_momentum:g}"
    print(f"torch {torch.__version__} [{variant}]: {step} steps, {tokens} tokens in "
          f"{time.perf_counter() - t_start:.0f} s ({per_step * 1000:.0f} ms/step after the first); "
          f"train loss {first_loss:.4f} -> {last_loss:.4f}; "
          f"val loss {nats / ntok:.4f}, val bpb {nats / nb / math.log(2):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
