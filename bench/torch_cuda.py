"""torch_cuda.py - the PyTorch reference for bench/bench_cuda.sh: a GPT-2
of the same shape as minigpt's (pre-LayerNorm, tanh-GELU, tied head),
random tokens, on the GPU.

  train:  bf16 autocast, fused AdamW (clipping at 1.0), eager or
          torch.compile; prints tokens/s of the measured steps.
  decode: batch-1 greedy decoding with a KV cache, eager, float32 weights.
Prints one JSON object per measurement on stdout."""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fc2 = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def attn(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        if cache is not None:  # decoding: append to this layer's cache
            if cache[0] is not None:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] > 1)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln1(x), cache)
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, ctx, C, L, NH):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(ctx, C)
        self.blocks = nn.ModuleList(Block(C, NH) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if n.endswith(("proj.weight", "fc2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, pos0=0, caches=None):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(pos0, pos0 + T, device=idx.device))
        for i, b in enumerate(self.blocks):
            x = b(x, caches[i] if caches is not None else None)
        return self.ln_f(x) @ self.wte.weight.t()


def train(a, model):
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    step_model = torch.compile(model) if a.compile else model
    x = torch.randint(0, a.vocab, (a.batch, a.seq + 1), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = step_model(x[:, :-1])
            loss = F.cross_entropy(logits.float().view(-1, a.vocab), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.time()
    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    warm = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    for _ in range(a.steps):
        loss = step()
    torch.cuda.synchronize()
    dt = time.time() - t0
    return {"what": "train", "mode": "torch.compile" if a.compile else "eager",
            "tok_per_s": a.batch * a.seq * a.steps / dt, "ms_per_step": 1000 * dt / a.steps,
            "loss": loss.item(), "warmup_s": warm,
            "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30}


@torch.no_grad()
def decode(a, model):
    model.eval()
    out = {}
    for n in (a.decode_tokens // 4, a.decode_tokens):  # the first run warms up
        caches = [[None, None] for _ in model.blocks]
        idx = torch.randint(0, a.vocab, (1, 16), device="cuda")
        logits = model(idx, 0, caches)
        tok = logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        t0 = time.time()
        for i in range(n):
            logits = model(tok, 16 + i, caches)
            tok = logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        out = {"what": "decode", "mode": "eager, KV cache, fp32", "tok_per_s": n / (time.time() - t0),
               "tokens": n}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["train", "decode"], default="train")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--ctx", type=int, default=1024)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--decode-tokens", type=int, default=200)
    a = p.parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    model = GPT(a.vocab, a.ctx, a.dim, a.layers, a.heads).cuda()
    r = train(a, model) if a.mode == "train" else decode(a, model)
    r.update(device=torch.cuda.get_device_name(), torch=torch.__version__)
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
