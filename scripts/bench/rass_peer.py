"""Peer for `npm run bench -- rass`: the same RASS training step in diffusers + peft on torch CPU.

One step: VAE encode (posterior mean x scaling factor; the encoder's down_blocks.1 output
tapped by a forward hook), UNet at the configured timestep (1) with the SCR adapter merged
(PeftModel.from_pretrained + merge_and_unload) and a new Seg LoRA (peft, same rank and
targets) with conv_in trainable, its blocks tapped by forward hooks; a 1x1 Conv2d projection
per tap, projections of equal stride summed, missing head strides made by 2x2 average pooling
of the next finer level (as experiments/rass/features.ts); the Mask2Former head and criterion
of scripts/fixtures/heads/bench_peer.py (the PyTorch port of ours, reused as is) with the
head config our side ran; backward; gradient clipping by the global norm; AdamW with the
backbone lr multiplier; poly schedule with warmup (LambdaLR). Data: the LQ images, labels and
prompt contexts our side wrote (same batches). Gradients are enabled for the whole step; the
only no_grad blocks are the reused criterion's Hungarian matching and uncertainty point
selection, which are not differentiable on our side either (their costs are read back to JS).

argv: PRIOR_DIR SCR_ADAPTER_DIR DATA_FILE SPEC_JSON THREADS
Serves steps one per request (scripts/bench/lockstep.py), cycling through the batches in order,
alternating with ours: each reply has the step's seconds, process CPU seconds and loss.
"""
import json
import os
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lockstep import serve  # noqa: E402


def linear_sum_assignment(cost):
    """Minimum-cost assignment (Hungarian algorithm with potentials), scipy's result format:
    (row indices ascending, their columns). The backbones venv has no scipy; the matrices here
    are queries x classes present (16 x <= 9), so pure Python costs microseconds per call."""
    import numpy as np
    c = np.asarray(cost, dtype=float)
    flip = c.shape[0] > c.shape[1]
    if flip:
        c = c.T
    a = c.tolist()
    n, m = c.shape
    inf = float('inf')
    u, v, p, way = [0.0] * (n + 1), [0.0] * (m + 1), [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = a[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = sorted((b, a_) if flip else (a_, b) for a_, b in ((p[j] - 1, j - 1) for j in range(1, m + 1) if p[j]))
    return np.array([r for r, _ in pairs], dtype=np.int64), np.array([k for _, k in pairs], dtype=np.int64)


try:
    import scipy.optimize  # noqa: F401  (bench_peer imports it; use it where installed)
except ImportError:
    shim = types.ModuleType('scipy.optimize')
    shim.linear_sum_assignment = linear_sum_assignment
    sys.modules['scipy'] = types.ModuleType('scipy')
    sys.modules['scipy'].optimize = shim
    sys.modules['scipy.optimize'] = shim
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'heads'))
from bench_peer import Head, criterion  # noqa: E402


class Projector(nn.Module):
    """1x1 projection per tap, sum per stride, pooled levels for the head strides no tap has."""

    def __init__(self, taps, dim, head_strides):
        super().__init__()
        self.taps, self.head_strides = taps, sorted(head_strides)
        self.proj = nn.ModuleList([nn.Conv2d(t['channels'], dim, 1) for t in taps])

    def forward(self, feats):
        by = {}
        for t, p in zip(self.taps, self.proj):
            y = p(feats[t['name']])
            by[t['stride']] = by[t['stride']] + y if t['stride'] in by else y
        out = []
        for s in self.head_strides:
            if s not in by:
                finer = max(k for k in by if k < s)
                f, k = by[finer], finer
                while k < s:
                    f, k = F.avg_pool2d(f, 2), k * 2
                by[s] = f
            out.append(by[s])
        return out


def main():
    prior, adapter, data_file, spec_file, threads = sys.argv[1:6]
    threads = int(threads)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    torch.manual_seed(0)
    with open(spec_file) as f:
        spec = json.load(f)
    data = load_file(data_file)
    vae = AutoencoderKL.from_pretrained(prior, subfolder='vae')
    unet = UNet2DConditionModel.from_pretrained(prior, subfolder='unet')
    vae.requires_grad_(False)
    unet.requires_grad_(False)
    unet = PeftModel.from_pretrained(unet, adapter).merge_and_unload()
    lora = spec['seg_lora']
    model = get_peft_model(unet, LoraConfig(r=lora['r'], lora_alpha=lora['alpha'], target_modules=lora['target_modules'], init_lora_weights='gaussian'))
    base = model.base_model.model
    base.conv_in.requires_grad_(True)
    store = {}

    def hook(name):
        def fn(_m, _inp, out):
            store[name] = out[0] if isinstance(out, tuple) else out
        return fn

    for name in spec['features']:
        root, sub = name.split('.', 1)
        (vae if root == 'vae' else base).get_submodule(sub).register_forward_hook(hook(name))
    head_cfg = spec['head']
    projector = Projector(spec['taps'], spec['projection_dim'], head_cfg.get('inStrides', [4, 8, 16, 32]))
    head = Head(head_cfg)
    backbone = [p for p in model.parameters() if p.requires_grad]
    rest = list(projector.parameters()) + list(head.parameters())
    o = spec['optimizer']
    opt = torch.optim.AdamW([{'params': backbone, 'lr': o['lr'] * spec['backbone_lr_mult']}, {'params': rest, 'lr': o['lr']}], lr=o['lr'], weight_decay=o['weight_decay'], betas=tuple(o.get('betas', (0.9, 0.999))), eps=o.get('eps', 1e-8))
    s, total = spec['schedule'], spec['steps']

    def factor(step):
        f = (1 - min(step, total) / total) ** s.get('power', 0.9) if s['type'] == 'poly' else 1.0
        w = s.get('warmup_iters', 0)
        return f * (1 - (1 - step / w) * (1 - s.get('warmup_ratio', 0.001))) if step < w else f

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    params = backbone + rest
    sf = vae.config.scaling_factor
    C, P = head_cfg['numClasses'], spec['num_points']
    batches = spec['batches']
    nxt = [0]

    def step():
        i = nxt[0] % batches
        nxt[0] += 1
        lq = data[f'lq.{i}'].permute(0, 3, 1, 2).contiguous()
        ctx = data[f'context.{i}']
        label = data[f'label.{i}'].long()
        store.clear()
        z = vae.encode(lq).latent_dist.mean * sf
        model(z, torch.full((lq.shape[0],), spec['timestep']), encoder_hidden_states=ctx)
        loss = criterion(head(projector(store)), label, C, P)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, spec['clip_grad_norm'])
        opt.step()
        sched.step()
        return loss.item()

    # steps on the same batches in order, one per request, in turn with ours (scripts/bench/lockstep.py)
    serve(step, {'threads': torch.get_num_threads(), 'torch': torch.__version__, 'trainable': sum(p.numel() for p in params)})


if __name__ == '__main__':
    main()
