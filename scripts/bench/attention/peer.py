"""PyTorch CPU peer for bench/attention.ts: scaled_dot_product_attention forward + backward.

argv[1]: JSON {"threads": T, "iters": N, "cases": [[B, H, Nq, Nk, d], ...]}. Prints one JSON
line: per case the median seconds of one forward + backward (gradients of q, k, v for
sum(out * dout)), on random normal inputs in PyTorch's [B, H, N, d] layout.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
torch.set_num_interop_threads(spec["threads"])
torch.manual_seed(0)
out = []
for b, h, nq, nk, d in spec["cases"]:
    q = torch.randn(b, h, nq, d, requires_grad=True)
    k = torch.randn(b, h, nk, d, requires_grad=True)
    v = torch.randn(b, h, nk, d, requires_grad=True)
    dout = torch.randn(b, h, nq, d)

    def step():
        q.grad = k.grad = v.grad = None
        F.scaled_dot_product_attention(q, k, v).backward(dout)

    step()
    times = []
    for _ in range(spec["iters"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    out.append(statistics.median(times))
print(json.dumps({"step_s": out, "torch": torch.__version__}))
