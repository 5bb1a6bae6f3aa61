#!/usr/bin/python3
"""Reference for `just bench-train-cpu`: PyTorch training the same network
on the CPU, on the same terms as ours. The model is our spec (`gpucheck
spec` JSON, built by tools/gpucheck/torch_model.py: the same layers,
groups, LRN, pooling and dropout), the batch is random normal data with
random labels, the step is mean cross-entropy, backward and SGD with
momentum 0.9 and weight decay 5e-4, on --threads intra-op threads. One
warm-up step, then --steps timed ones.

Prints one JSON line: images, seconds and CPU seconds over the timed steps,
torch's version and the CPU backends it was built with.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gpucheck"))
import torch_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True, help="`gpucheck spec` JSON of the model")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with open(a.spec) as f:
        spec = json.load(f)
    model = torch_model.build(spec).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    lossf = nn.CrossEntropyLoss()
    x = torch.randn(a.batch, *spec["input"])
    y = torch.randint(0, spec["classes"], (a.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(a.steps):
        loss = step()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    if loss != loss:
        sys.exit("torch_train_cpu: the loss is NaN")
    print(json.dumps({"images": a.batch * a.steps, "seconds": dt, "cpu_seconds": cpu, "threads": a.threads,
                      "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
                      "blas": loaded_blas()}))


def loaded_blas():
    """The BLAS library this process mapped (Debian's torch links the generic
    libblas.so.3, which the alternatives system points at one implementation)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in os.path.basename(path).lower():
                libs.add(os.path.realpath(path))
    return ", ".join(sorted(libs)) or "none mapped"


if __name__ == "__main__":
    main()
