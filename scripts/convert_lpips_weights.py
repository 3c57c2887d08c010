"""Convert the official LPIPS PyTorch weights to the safetensors file `metric/lpips` reads.

LPIPS = a torchvision backbone + per-layer "lin" weights. Give both .pth files:
  --lin       the lpips package's weights/v0.1/<net>.pth (keys lin<k>.model.1.weight)
  --backbone  torchvision's ImageNet weights for the net (alexnet-owt-7be5be79.pth,
              vgg16-397923af.pth or squeezenet1_1-b8a52dc0.pth; keys features.<i>.*)
  --net       alex | vgg | squeeze
  --out       the .safetensors file to write (then set `weights: <that path>` in the metric config)
Only the backbone layers LPIPS taps are kept; tensors are stored as float32 under the same names.
Run: python3 scripts/convert_lpips_weights.py --net alex --lin alex.pth --backbone alexnet-owt-7be5be79.pth --out lpips-alex.safetensors
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

# last torchvision `features` index LPIPS uses, and how many lin layers
LAST_FEATURE = {"alex": 11, "vgg": 29, "squeeze": 12}
N_LIN = {"alex": 5, "vgg": 5, "squeeze": 7}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", required=True, choices=sorted(LAST_FEATURE))
    ap.add_argument("--lin", required=True)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    lin = torch.load(a.lin, map_location="cpu", weights_only=True)
    bb = torch.load(a.backbone, map_location="cpu", weights_only=True)
    out = {}
    for k, v in bb.items():
        m = re.match(r"features\.(\d+)\.", k)
        if m and int(m.group(1)) <= LAST_FEATURE[a.net]:
            out[k] = v.float().contiguous()
    for k in range(N_LIN[a.net]):
        name = f"lin{k}.model.1.weight"
        if name not in lin:
            sys.exit(f"{a.lin}: no {name}; is it the lpips weights file for net '{a.net}'?")
        out[name] = lin[name].float().contiguous()
    if not any(k.startswith("features.") for k in out):
        sys.exit(f"{a.backbone}: no features.<i>.* tensors; is it torchvision's {a.net} state dict?")
    save_file(out, a.out, metadata={"format": "rass-lpips-v0.1", "net": a.net})
    print(f"wrote {a.out}: {len(out)} tensors")


main()
