"""PyTorch CPU peer for bench/engine-native.ts: the same matmul, conv and training step.

Reads a JSON spec (argv[1]) naming a raw float32 file with the initial weights, inputs and
targets (tfjs layouts: NHWC, conv filters HWIO), converts layouts, measures matmul/conv GFLOP/s,
then serves training steps one per request (scripts/bench/lockstep.py): the bench alternates
them with its own and compares the losses, to check both sides train the same network.
"""
import json
import sys
import time

import math
import os
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lockstep import serve  # noqa: E402

spec = json.loads(sys.argv[1])
torch.manual_seed(0)
seconds = spec["seconds"]


def rate(fn, flops):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return flops * n / (time.perf_counter() - t0) / 1e9


out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
with torch.no_grad():
    n = spec["matmul"]
    a = torch.randn(n, n)
    out["matmul_gflops"] = rate(lambda: a @ a, 2 * n**3)
    b, h, w, ci, co, k = spec["conv"]
    x = torch.randn(b, ci, h, w)
    f = torch.randn(co, ci, k, k)
    out["conv_gflops"] = rate(lambda: F.conv2d(x, f, padding=k // 2), 2 * b * h * w * ci * co * k * k)

with open(spec["file"], "rb") as fh:
    raw = torch.frombuffer(bytearray(fh.read()), dtype=torch.float32)
T = {}
for name, (off, shape) in spec["tensors"].items():
    T[name] = raw[off : off + math.prod(shape)].reshape(shape).clone()
hwio = lambda t: t.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
params = {k: torch.nn.Parameter(hwio(v) if v.dim() == 4 else v.clone()) for k, v in T.items() if k not in ("x", "y")}
x = T["x"].permute(0, 3, 1, 2).contiguous()
y = T["y"].permute(0, 3, 1, 2).contiguous()
heads_dim = params["wq"].shape[0]


def loss_fn():
    p = params
    h = F.silu(F.conv2d(x, p["w1"], padding=1))
    h = F.conv2d(h, p["w2"], stride=2, padding=1)
    h = F.silu(F.group_norm(h, spec["groups"], weight=p["g"], eps=1e-5))
    bsz, c, hh, ww = h.shape
    t = h.flatten(2).transpose(1, 2)
    att = torch.softmax((t @ p["wq"]) @ (t @ p["wk"]).transpose(1, 2) / heads_dim**0.5, dim=-1)
    t = t + (att @ (t @ p["wv"])) @ p["wo"]
    h = t.transpose(1, 2).reshape(bsz, c, hh, ww)
    o = F.conv2d(F.interpolate(h, scale_factor=2, mode="nearest"), p["w3"])
    return torch.mean((o - y) ** 2)


opt = torch.optim.Adam(params.values(), lr=spec["lr"])


def step():
    opt.zero_grad(set_to_none=True)
    l = loss_fn()
    l.backward()
    opt.step()
    return l.item()


# Steps on request, alternating with the bench's own (scripts/bench/lockstep.py).
serve(step, out)
