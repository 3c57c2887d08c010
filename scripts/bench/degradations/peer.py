"""PyTorch CPU peer for `npm run bench -- degradations`.

A torch implementation of the same second-order degradation pipeline as
configs/_base_/degradations/rass-full.yaml (Real-ESRGAN stages at scale 1), written for this
benchmark after BasicSR's behaviour (filter2D with reflect padding, F.interpolate, Gaussian /
Poisson noise, DiffJPEG, final rounding); parameters drawn per image with Python's `random`.
Prints one JSON object: images/s of the full pipeline and ms per op.

Usage: python peer.py '{"n": 8, "size": 512, "reps": 5}'
"""
import json
import math
import random
import sys
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)
random.seed(0)


# ---------------------------------------------------------------- kernels (float64)
def _grid(k):
    ax = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _quad(k, sx, sy, theta, iso):
    xx, yy = _grid(k)
    if iso:
        inv = torch.tensor([[1 / sx**2, 0.0], [0.0, 1 / sx**2]], dtype=torch.float64)
    else:
        c, s = math.cos(theta), math.sin(theta)
        u = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        d = torch.diag(torch.tensor([sx**2, sy**2], dtype=torch.float64))
        inv = torch.linalg.inv(u @ d @ u.T)
    return inv[0, 0] * xx * xx + 2 * inv[0, 1] * xx * yy + inv[1, 1] * yy * yy


def mixed_kernel(k, sig_range):
    kind = random.choices(["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"],
                          [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])[0]
    iso = not kind.endswith("aniso")
    sx = random.uniform(*sig_range)
    sy = sx if iso else random.uniform(*sig_range)
    theta = 0.0 if iso else random.uniform(-math.pi, math.pi)
    q = _quad(k, sx, sy, theta, iso)
    if kind.startswith("generalized"):
        beta = random.uniform(0.5, 1) if random.random() < 0.5 else random.uniform(1, 4)
        ker = torch.exp(-0.5 * q.pow(beta))
    elif kind.startswith("plateau"):
        beta = random.uniform(1, 1) if random.random() < 0.5 else random.uniform(1, 2)
        ker = 1 / (q.pow(beta) + 1)
    else:
        ker = torch.exp(-0.5 * q)
    return ker / ker.sum()


def sinc_kernel(cutoff, k, pad_to=21):
    c = (k - 1) / 2
    ax = torch.arange(k, dtype=torch.float64) - c
    r = torch.sqrt(ax[:, None] ** 2 + ax[None, :] ** 2)
    ker = cutoff * torch.special.bessel_j1(cutoff * r) / (2 * math.pi * r)
    ker[r == 0] = cutoff**2 / (4 * math.pi)
    ker = ker / ker.sum()
    if pad_to > k:
        p = (pad_to - k) // 2
        ker = F.pad(ker, (p, p, p, p))
    return ker


def pad21(ker):
    p = (21 - ker.shape[0]) // 2
    return F.pad(ker, (p, p, p, p)) if p > 0 else ker


def random_kernel(sig_range):
    k = random.choice([7, 9, 11, 13, 15, 17, 19, 21])
    if random.random() < 0.1:
        cutoff = random.uniform(math.pi / 3, math.pi) if k < 13 else random.uniform(math.pi / 5, math.pi)
        return sinc_kernel(cutoff, k)
    return pad21(mixed_kernel(k, sig_range))


# ---------------------------------------------------------------- ops (float32, NCHW)
def filter2d(img, kernel):
    k = kernel.shape[-1]
    b, c, h, w = img.shape
    x = F.pad(img, (k // 2,) * 4, mode="reflect")
    weight = kernel.float().view(1, 1, k, k).repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, groups=c)


def gaussian_noise(img, sigma, gray):
    b, c, h, w = img.shape
    if gray:
        noise = (torch.randn(h, w) * sigma / 255.0).view(1, 1, h, w).expand(b, c, h, w)
    else:
        noise = torch.randn(img.shape) * sigma / 255.0
    return torch.clamp(img + noise, 0, 1)


def poisson_noise(img, scale, gray):
    x = img
    if gray:
        x = (0.2989 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).unsqueeze(1)
    x = torch.clamp((x * 255.0).round(), 0, 255) / 255.0
    vals = 2 ** math.ceil(math.log2(len(torch.unique(x))))
    noise = torch.poisson(x * vals) / vals - x
    return torch.clamp(img + noise * scale, 0, 1)


def random_noise(img, sigma_range, poisson_range):
    gray = random.random() < 0.4
    if random.random() < 0.5:
        return gaussian_noise(img, random.uniform(*sigma_range), gray)
    return poisson_noise(img, random.uniform(*poisson_range), gray)


Y_TABLE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32).T
C_TABLE = torch.full((8, 8), 99.0)
C_TABLE[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=torch.float32).T
_ax = torch.arange(8, dtype=torch.float64)
_cos = torch.cos((2 * _ax[:, None] + 1) * _ax[None, :] * math.pi / 16)  # [x, u]
DCT = (_cos[:, None, :, None] * _cos[None, :, None, :]).float()  # [x, y, u, v]
_alpha = torch.tensor([1 / math.sqrt(2)] + [1.0] * 7, dtype=torch.float64)
ALPHA = torch.outer(_alpha, _alpha).float()
SCALE = (torch.outer(_alpha, _alpha) * 0.25).float()
TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]).T
TO_RGB = torch.tensor([[1.0, 0.0, 1.402], [1, -0.344136, -0.714136], [1, 1.772, 0]]).T


def _code(plane, table):
    b, h, w = plane.shape
    blocks = plane.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(b, -1, 8, 8)
    d = SCALE * torch.tensordot(blocks - 128, DCT, dims=2)
    q = torch.round(d / table)
    r = 0.25 * torch.tensordot(q * table * ALPHA, DCT.permute(2, 3, 0, 1), dims=2) + 128
    return r.view(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h, w)


def diffjpeg(img, quality):
    factor = 5000.0 / quality / 100 if quality < 50 else (200 - 2 * quality) / 100
    b, c, h, w = img.shape
    ph, pw = (16 - h % 16) % 16, (16 - w % 16) % 16
    x = F.pad(img * 255, (0, pw, 0, ph))
    ycc = torch.tensordot(x.permute(0, 2, 3, 1), TO_YCC, dims=1) + torch.tensor([0.0, 128.0, 128.0])
    y = _code(ycc[..., 0], Y_TABLE * factor)
    sub = F.avg_pool2d(ycc[..., 1:].permute(0, 3, 1, 2), 2)
    cb = _code(sub[:, 0], C_TABLE * factor).repeat_interleave(2, 1).repeat_interleave(2, 2)
    cr = _code(sub[:, 1], C_TABLE * factor).repeat_interleave(2, 1).repeat_interleave(2, 2)
    out = torch.tensordot(torch.stack([y, cb, cr], -1) + torch.tensor([0.0, -128.0, -128.0]), TO_RGB, dims=1)
    out = torch.clamp(out, 0, 255) / 255
    return out.permute(0, 3, 1, 2)[:, :, :h, :w]


def random_resize(img, probs, rng, size_from=None):
    d = random.choices(["up", "down", "keep"], probs)[0]
    s = random.uniform(1, rng[1]) if d == "up" else random.uniform(rng[0], 1) if d == "down" else 1
    mode = random.choice(["area", "bilinear", "bicubic"])
    if size_from is None:
        return F.interpolate(img, scale_factor=s, mode=mode)
    return F.interpolate(img, size=(int(size_from[0] * s), int(size_from[1] * s)), mode=mode)


def pipeline(gt):
    h, w = gt.shape[2:]
    out = filter2d(gt, random_kernel((0.2, 3)))
    out = random_resize(out, [0.2, 0.7, 0.1], (0.15, 1.5))
    out = random_noise(out, (1, 30), (0.05, 3))
    out = diffjpeg(torch.clamp(out, 0, 1), random.uniform(30, 95))
    if random.random() < 0.8:
        out = filter2d(out, random_kernel((0.2, 1.5)))
    out = random_resize(out, [0.3, 0.4, 0.3], (0.3, 1.2), size_from=(h, w))
    out = random_noise(out, (1, 25), (0.05, 2.5))
    sinc = sinc_kernel(random.uniform(math.pi / 3, math.pi), random.choice([7, 9, 11, 13, 15, 17, 19, 21])) if random.random() < 0.8 else None

    def resize_sinc(x):
        x = F.interpolate(x, size=(h, w), mode=random.choice(["area", "bilinear", "bicubic"]))
        return filter2d(x, sinc) if sinc is not None else x

    if random.random() < 0.5:
        out = diffjpeg(torch.clamp(resize_sinc(out), 0, 1), random.uniform(30, 95))
    else:
        out = resize_sinc(diffjpeg(torch.clamp(out, 0, 1), random.uniform(30, 95)))
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


def timed(fn, reps):
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1000


def main():
    cfg = json.loads(sys.argv[1])
    n, size, reps = cfg["n"], cfg["size"], cfg["reps"]
    # the same thread count as our side (more threads than free cores collapses PyTorch's OpenMP)
    if "threads" in cfg:
        torch.set_num_threads(cfg["threads"])
        torch.set_num_interop_threads(cfg["threads"])
    # seeded: the pipeline's parameters (and so its work) are the same in every run
    random.seed(0)
    torch.manual_seed(0)
    imgs = [torch.rand(1, 3, size, size) for _ in range(n)]
    x = imgs[0]
    k21 = mixed_kernel(21, (2, 2))
    ops = {
        "filter2d_k21": timed(lambda: filter2d(x, k21), reps),
        "resize_bicubic_0.5": timed(lambda: F.interpolate(x, scale_factor=0.5, mode="bicubic"), reps),
        "resize_bilinear_up_1.3": timed(lambda: F.interpolate(x, scale_factor=1.3, mode="bilinear"), reps),
        "noise_gaussian": timed(lambda: gaussian_noise(x, 10.0, False), reps),
        "noise_poisson": timed(lambda: poisson_noise(x, 1.0, False), reps),
        "diffjpeg": timed(lambda: diffjpeg(x, 50.0), reps),
    }
    with torch.no_grad():
        pipeline(imgs[0])
        t = time.perf_counter()
        for im in imgs:
            pipeline(im)
        el = time.perf_counter() - t
    print(json.dumps({"images_per_s": n / el, "ops_ms": ops, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
