#!/usr/bin/env python3
"""PyTorch's training speed on the GPU check's terms: batch 128, synthetic
data already on the device, cudnn.benchmark, 20 warm-up and 50 timed
steps between CUDA events, SGD with momentum and weight decay, mean
cross-entropy. Models:

  torchvision   torchvision.models.alexnet() (one tower, 64-192-384-256-256)
  alexnet       our paper net from `gpucheck spec` (2 groups, LRN)
  alexnet-owt   our one-tower net from `gpucheck spec` (torchvision's layers)

Each result is one JSON line appended to --json. With --profile-steps,
the spec models' results also carry "layers": each module's forward and
backward time, the loss and the update, in the shape of our
`gpucheck bench --profile-steps` (pkg/nn/gpu's LayerTime), so the table
can put the two side by side layer by layer.

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
    torch_model.set_tf32(p == "tf32")
    torch.backends.cudnn.benchmark = True


def make(name, specs_dir):
    if name == "torchvision":
        import torchvision
        return torchvision.models.alexnet(num_classes=1000)
    with open(os.path.join(specs_dir, "spec-%s.json" % name)) as f:
        return torch_model.build(json.load(f))


def bench(model, batch, warmup, steps, profile_steps=0, dev=None):
    dev = dev or torch.device("cuda")
    cuda = dev.type == "cuda"
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    lossf = nn.CrossEntropyLoss()
    g = torch.Generator(device=dev).manual_seed(1)
    x = torch.randn(batch, *getattr(model, "input", [3, 224, 224]), device=dev, generator=g)
    y = torch.randint(0, getattr(model, "classes", 1000), (batch,), device=dev, generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
        return loss

    clock = Clock(cuda)
    for _ in range(warmup):
        step()
    clock.sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = clock.point()
    for _ in range(steps):
        loss = step()
    end = clock.point()
    clock.sync()
    ms = clock.ms(start, end)
    r = {
        "img_s": batch * steps / (ms / 1000.0),
        "step_ms": ms / steps,
        "loss": float(loss.item()),
    }
    if cuda:
        r["max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        r["max_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    if profile_steps > 0 and hasattr(model, "names"):
        r["profile_steps"] = profile_steps
        try:
            r["layers"] = profile(model, x, y, lossf, opt, profile_steps, clock)
        except Exception as e:  # the throughput stands without it
            r["profile_error"] = str(e)
    return r


class Clock:
    """Points on the device's clock: CUDA events on a GPU, the host's
    clock on the CPU (where work is done when a call returns)."""

    def __init__(self, cuda):
        self.cuda = cuda

    def point(self):
        if not self.cuda:
            return time.perf_counter()
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        return e

    def ms(self, a, b):
        return a.elapsed_time(b) if self.cuda else (b - a) * 1000.0

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()


KINDS = [(nn.Conv2d, "conv"), (nn.Linear, "fc"), (nn.ReLU, "relu"), (nn.LocalResponseNorm, "lrn"),
         (nn.MaxPool2d, "maxpool"), (nn.Flatten, "flatten"), (nn.Dropout, "dropout"),
         (torch_model.FixedDropout, "dropout")]


def kind_of(m):
    for cls, k in KINDS:
        if isinstance(m, cls):
            return k
    return type(m).__name__


def profile(model, x, y, lossf, opt, steps, clock):
    """Mean time of each module's forward and backward pass over steps
    synced steps. A point opens each part: a forward pre-hook opens a
    module's forward; a hook on its output's gradient, which autograd
    runs just before that module's backward, opens its backward; the loss
    (forward and backward) opens after the model returns and the update
    once backward returns. Each part lasts until the next point."""
    for m in model.modules():
        # A gradient hook on a tensor that a later ReLU overwrites in
        # place would hang on the wrong autograd node.
        if isinstance(m, nn.ReLU):
            m.inplace = False
    points = []

    def mark(layer, kind, pass_):
        points.append((layer, kind, pass_, clock.point()))

    handles = []
    for name in model.names:
        m = getattr(model, name)
        kind = kind_of(m)

        def pre(mod, inp, name=name, kind=kind):
            mark(name, kind, "forward")

        def post(mod, inp, out, name=name, kind=kind):
            if out.requires_grad:
                out.register_hook(lambda g: mark(name, kind, "backward"))

        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    sums, names = None, None
    try:
        for s in range(steps):
            points.clear()
            opt.zero_grad(set_to_none=True)
            out = model(x)
            mark("loss", "loss", "")
            loss = lossf(out, y)
            loss.backward()
            mark("update", "update", "")
            opt.step()
            mark("end", "", "")
            clock.sync()
            parts = [(p[0], p[1], p[2]) for p in points[:-1]]
            ms = [clock.ms(points[i][3], points[i + 1][3]) for i in range(len(points) - 1)]
            if sums is None:
                names, sums = parts, ms
            elif parts != names:
                raise RuntimeError("profile: step %d had parts %s, step 0 had %s" % (s, parts, names))
            else:
                sums = [a + b for a, b in zip(sums, ms)]
    finally:
        for h in handles:
            h.remove()
    return [{"layer": n[0], "kind": n[1], "pass": n[2], "ms": t / steps} for n, t in zip(names, sums)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="torchvision,alexnet-owt,alexnet")
    ap.add_argument("--precisions", default="tf32,fp32")
    ap.add_argument("--specs", default="gpu/results", help="folder with spec-<model>.json from `gpucheck spec`")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--json", default="")
    ap.add_argument("--profile-steps", type=int, default=0,
                    help="then time each module's forward and backward over this many synced steps (spec models)")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu to check this script without a GPU")
    a = ap.parse_args()
    failed = []
    for prec in a.precisions.split(","):
        for name in a.models.split(","):
            set_precision(prec)
            t0 = time.time()
            try:
                r = bench(make(name, a.specs), a.batch, a.warmup, a.steps, a.profile_steps, torch.device(a.device))
            except Exception as e:  # one model failing must not lose the others
                print("torch_bench %s %s: %s" % (name, prec, e), flush=True)
                failed.append("%s %s" % (name, prec))
                continue
            r.update(kind="torch_bench", model=name, precision=prec, batch=a.batch, steps=a.steps,
                     torch=torch.__version__, seconds=time.time() - t0, tf32=torch_model.tf32_settings())
            print("torch_bench %s %s batch %d: %.0f img/s (%.2f ms/step), max reserved %.0f MiB" %
                  (name, prec, a.batch, r["img_s"], r["step_ms"], r.get("max_reserved_mib", 0)), flush=True)
            if "profile_error" in r:
                print("torch_bench %s %s: profile: %s" % (name, prec, r["profile_error"]), flush=True)
            for p in r.get("layers", []):
                print("  %-12s %-8s %8.3f ms" % (p["layer"], p["pass"], p["ms"]), flush=True)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(torch_model.json_safe(r)) + "\n")
            if a.device == "cuda":
                torch.cuda.empty_cache()
    if failed:
        # run.log's FAILED line, and the table's "failed" cell, need it.
        print("torch_bench: failed: %s" % ", ".join(failed), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
