#!/usr/bin/env python3
"""dist_model.py - the paper half of bench/bench_dist.sh: step time and
scaling efficiency of data-parallel training from a ring-allreduce cost
model, fed with measured figures (docs/distributed.md explains it).

  t_allreduce(p) = 2 (p-1) alpha + 2 (p-1)/p * S / bw      (ring, S bytes)
  t_step = t_compute + max(0, t_allreduce - overlap * t_compute)
  efficiency = t_compute / t_step   (weak scaling: per-rank batch fixed)

t_compute comes from a FLOP rate: 6 N flops per token (forward + backward),
at a rank's achieved rate. --cpu-flops is measured on this machine by
bench_dist.sh (tokens/s x 6 N); --gpu-flops is an assumption (stated).
overlap: the share of compute that communication can hide behind (0: one
allreduce after backward, as minigpt does; 2/3: buckets sent during
backward, which is 2/3 of a step's flops).
Usage: dist_model.py --cpu-flops F [--gpu-flops F] [--alpha-us A]"""
import argparse

ap = argparse.ArgumentParser()
ap.add_argument("--cpu-flops", type=float, required=True, help="measured flop/s of one rank (CPU)")
ap.add_argument("--gpu-flops", type=float, default=300e12 * 0.4,
                help="assumed flop/s of one GPU rank (H100 bf16 at 40%% MFU)")
ap.add_argument("--alpha-us", type=float, default=10.0, help="per-message latency, microseconds")
a = ap.parse_args()

models = {  # parameters, tokens per rank per step (batch 8 x context)
    "small": (29676544, 8 * 512),
    "gpt2-124M": (124439808, 8 * 1024),
}
links = {"25 Gb/s": 25e9 / 8, "400 Gb/s": 400e9 / 8}
ranks = [8, 64, 512]


def allreduce(p, nbytes, bw):
    return 2 * (p - 1) * a.alpha_us * 1e-6 + 2 * (p - 1) / p * nbytes / bw


print("| model | rank | link | p | compute s | allreduce s | step s (no overlap) | eff. | "
      "step s (overlap 2/3) | eff. | AdamW moments/rank, ZeRO-1 |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name, (n, tokens) in models.items():
    grad_bytes = 4 * n
    for rank_kind, flops in (("CPU (measured)", a.cpu_flops), ("GPU (assumed)", a.gpu_flops)):
        t_c = 6 * n * tokens / flops
        for link, bw in links.items():
            for p in ranks:
                t_ar = allreduce(p, grad_bytes, bw)
                t0 = t_c + t_ar
                t1 = t_c + max(0.0, t_ar - 2 / 3 * t_c)
                print("| %s | %s | %s | %d | %.3g | %.3g | %.3g | %.0f%% | %.3g | %.0f%% | "
                      "%.0f MB (of %.0f) |"
                      % (name, rank_kind, link, p, t_c, t_ar, t0, 100 * t_c / t0, t1,
                         100 * t_c / t1, 8 * n / p / 1e6, 8 * n / 1e6))
