"""The paper's initialisation at a small batch, in PyTorch: the README's
reference for the loss climbing over the first steps (train, "Below the
paper's batch of 128").

Our spec as a PyTorch module (tools/gpucheck/torch_model.py), initialised
as `train --init paper|he` does, trained with torch.optim.SGD (momentum
0.9, weight decay 5e-4 on every parameter, as train's defaults) on the
200-image sample: shorter side to 256, centre 256 crop (as ingest), then
random 224 crops and flips, inputs centred (alexnet) or standardised by
the sample's per-channel std (alexnet-owt, or any model under he, as
train does). It prints the loss of each step.

    bin/gpucheck spec --model alexnet --classes 200 > /tmp/spec.json
    python3 tools/bench/torch_init_climb.py --spec /tmp/spec.json --batch 16 --steps 24

Set against `train --shards SHARDS --model alexnet --batch 16
--max-steps 24 --log-every 1` on the sample's shards: not the same
numbers (other random draws), the same shape.
"""

import argparse
import glob
import json
import os
import random
import sys

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpucheck"))
import torch_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True, help="gpucheck spec --classes 200 output")
    ap.add_argument("--sample", default="../shared/data/imagenet-sample", help="folder of <wnid>_<name>.JPEG")
    ap.add_argument("--init", default="paper", choices=["paper", "he"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    spec = json.load(open(a.spec))
    m = torch_model.build(spec)
    for _, mod in m.named_children():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            if a.init == "paper":
                nn.init.normal_(mod.weight, 0, 0.01)
            else:
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
    if a.init == "paper":
        # Each layer's constant bias from the spec (1 in conv2/4/5, fc6/7).
        for layer in spec["layers"]:
            if layer["Kind"] in ("conv", "fc"):
                nn.init.constant_(getattr(m, layer["Name"]).bias, layer.get("BiasInit", 0.0))
    else:
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.zeros_(mod.bias)
    files = sorted(glob.glob(os.path.join(a.sample, "*.JPEG")))
    if not files:
        sys.exit("no JPEGs in %s" % a.sample)
    wnids = sorted({os.path.basename(f).split("_")[0] for f in files})
    if len(wnids) != spec["classes"]:
        sys.exit("%d classes in %s, the spec has %d (gpucheck spec --classes %d)" % (len(wnids), a.sample, spec["classes"], len(wnids)))
    imgs, labels = [], []
    for f in files:
        im = Image.open(f).convert("RGB")
        w, h = im.size
        s = 256 / min(w, h)
        im = im.resize((max(256, round(w * s)), max(256, round(h * s))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - 256) // 2, (h - 256) // 2
        imgs.append(np.asarray(im.crop((left, top, left + 256, top + 256)), dtype=np.float32))
        labels.append(wnids.index(os.path.basename(f).split("_")[0]))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
    x = x - x.mean(dim=(0, 2, 3), keepdim=True)
    if spec["name"] != "alexnet" and spec["name"] != "alexnet-convnet" or a.init == "he":
        x = x / x.std(dim=(0, 2, 3), keepdim=True)
    y = torch.tensor(labels)
    opt = torch.optim.SGD(m.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    m.train()
    losses = []
    while len(losses) < a.steps:
        perm = torch.randperm(len(y))
        for i in range(0, len(y) - a.batch + 1, a.batch):
            idx = perm[i:i + a.batch]
            crops = []
            for j in idx:
                r, c = random.randint(0, 32), random.randint(0, 32)
                crop = x[j, :, r:r + 224, c:c + 224]
                crops.append(crop.flip(2) if random.random() < 0.5 else crop)
            loss = nn.functional.cross_entropy(m(torch.stack(crops)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if len(losses) == a.steps:
                break
    print("%s --init %s --batch %d --seed %d: %s" % (spec["name"], a.init, a.batch, a.seed, " ".join("%.2f" % v for v in losses)))


if __name__ == "__main__":
    main()
