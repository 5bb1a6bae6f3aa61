#!/usr/bin/env python3
"""PyTorch's training speed on the GPU check's terms: batch 128, synthetic
data already on the device, cudnn.benchmark, 20 warm-up and 50 timed
steps between CUDA events, SGD with momentum and weight decay, mean
cross-entropy. Models:

  torchvision   torchvision.models.alexnet() (one tower, 64-192-384-256-256)
  alexnet       our paper net from `gpucheck spec` (2 groups, LRN)
  alexnet-owt   our one-tower net from `gpucheck spec` (torchvision's layers)

Each result is one JSON line appended to --json.

  python3 torch_bench.py --specs gpu/results --models torchvision,alexnet --precisions tf32,fp32 --json out.jsonl
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model  # noqa: E402


def set_precision(p):
    tf32 = p == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def make(name, specs_dir):
    if name == "torchvision":
        import torchvision
        return torchvision.models.alexnet(num_classes=1000)
    with open(os.path.join(specs_dir, "spec-%s.json" % name)) as f:
        return torch_model.build(json.load(f))


def bench(model, batch, warmup, steps):
    dev = torch.device("cuda")
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    lossf = nn.CrossEntropyLoss()
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.randn(batch, 3, 224, 224, device=dev, generator=g)
    y = torch.randint(0, 1000, (batch,), device=dev, generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        loss = step()
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end)
    return {
        "img_s": batch * steps / (ms / 1000.0),
        "step_ms": ms / steps,
        "loss": float(loss.item()),
        "max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
        "max_reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="torchvision,alexnet-owt,alexnet")
    ap.add_argument("--precisions", default="tf32,fp32")
    ap.add_argument("--specs", default="gpu/results", help="folder with spec-<model>.json from `gpucheck spec`")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    for prec in a.precisions.split(","):
        for name in a.models.split(","):
            set_precision(prec)
            t0 = time.time()
            try:
                r = bench(make(name, a.specs), a.batch, a.warmup, a.steps)
            except Exception as e:  # one model failing must not lose the others
                print("torch_bench %s %s: %s" % (name, prec, e), flush=True)
                continue
            r.update(kind="torch_bench", model=name, precision=prec, batch=a.batch, steps=a.steps,
                     torch=torch.__version__, seconds=time.time() - t0)
            print("torch_bench %s %s batch %d: %.0f img/s (%.2f ms/step), max reserved %.0f MiB" %
                  (name, prec, a.batch, r["img_s"], r["step_ms"], r["max_reserved_mib"]), flush=True)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(r) + "\n")
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
