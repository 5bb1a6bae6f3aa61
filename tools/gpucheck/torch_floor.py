#!/usr/bin/env python3
"""How far float32 rounding alone moves AlexNet's gradients, in PyTorch.

One training step of a model (our spec as a PyTorch module, PyTorch's
default initialisation) in float32 and in float64, from the same weights
and batch, and the relative difference (max|a - b| / max|b|) of every
gradient. No GPU needed. It is the floor any float32 implementation is
held to by an end-to-end comparison on that batch:

  --input pixels      normalised uint8 pixels (256 values per channel), as
                      the pipeline delivers: activations meet exact ties,
                      where the gradient is undefined and rounding picks
  --input continuous  uniform floats in [-2, 2): no exact ties, though
                      near ties still flip under rounding on some batches

  go run ./tools/gpucheck spec --model alexnet-owt > /tmp/owt.json
  python3 tools/gpucheck/torch_floor.py --spec /tmp/owt.json --input pixels
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True, help="gpucheck spec's JSON")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--input", choices=["pixels", "continuous"], default="pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    with open(a.spec) as f:
        spec = json.load(f)
    torch.manual_seed(a.seed)
    base = torch_model.build(spec, fixed_dropout=True).train()  # no masks: dropout is the identity
    c, h, w = spec["input"]
    if a.input == "pixels":
        mean = torch.tensor([124.0, 116.0, 104.0]).view(1, 3, 1, 1)
        std = torch.tensor([58.0, 57.0, 57.0]).view(1, 3, 1, 1)
        light = torch.randn(a.batch, 3, 1, 1) * 7  # the PCA lighting offsets
        x = (torch.randint(0, 256, (a.batch, c, h, w)).float() + light - mean) / std
    else:
        x = torch.rand(a.batch, c, h, w) * 4 - 2
    y = torch.randint(0, spec["classes"], (a.batch,))

    def grads(dtype):
        m = torch_model.build(spec, fixed_dropout=True).train()
        m.load_state_dict(base.state_dict())
        m = m.to(dtype)
        F.cross_entropy(m(x.to(dtype)), y).backward()
        return {n: p.grad.double() for n, p in m.named_parameters()}

    g32, g64 = grads(torch.float32), grads(torch.float64)
    worst, where = 0.0, ""
    for n, ref in g64.items():
        rel = ((g32[n] - ref).abs().max() / ref.abs().max()).item()
        print("%-16s float32 vs float64 %.2e" % (n, rel))
        if rel > worst:
            worst, where = rel, n
    print(json.dumps({"kind": "floor", "model": spec["name"], "input": a.input, "batch": a.batch,
                      "worst": worst, "where": where, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
