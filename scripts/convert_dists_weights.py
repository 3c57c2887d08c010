"""Convert DISTS weights to the safetensors file `metric/dists` reads.

DISTS = torchvision's VGG16 (ImageNet weights) + learned alpha/beta. Give:
  --dists     the DISTS-pytorch package's weights.pt (keys alpha, beta)
  --backbone  torchvision's vgg16-397923af.pth (keys features.<i>.*)
  --out       the .safetensors file to write (then set `weights: <that path>` in the metric config)
Run: python3 scripts/convert_dists_weights.py --dists weights.pt --backbone vgg16-397923af.pth --out dists.safetensors
(re-execs itself in the venv from scripts/py-venv.sh with torch and safetensors).
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.dirname(os.path.dirname(__file__)))
REQ = os.path.join(ROOT, "scripts/fixtures/metrics/lpips-requirements.txt")
if os.environ.get("RASS_LPIPS_VENV") != "1":
    venv = subprocess.check_output([os.path.join(ROOT, "scripts/py-venv.sh"), "metrics-lpips", REQ], text=True).strip()
    os.environ["RASS_LPIPS_VENV"] = "1"
    os.execv(os.path.join(venv, "bin/python"), [os.path.join(venv, "bin/python"), __file__, *sys.argv[1:]])

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dists", required=True)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    d = torch.load(a.dists, map_location="cpu", weights_only=True)
    bb = torch.load(a.backbone, map_location="cpu", weights_only=True)
    out = {k: v.float().contiguous() for k, v in bb.items() if re.match(r"features\.(\d+)\.", k) and int(k.split(".")[1]) <= 28}
    for k in ("alpha", "beta"):
        if k not in d:
            sys.exit(f"{a.dists}: no '{k}'; is it DISTS-pytorch's weights.pt?")
        out[k] = d[k].float().contiguous()
    save_file(out, a.out, metadata={"format": "rass-dists", "net": "vgg16"})
    print(f"wrote {a.out}: {len(out)} tensors")


main()
