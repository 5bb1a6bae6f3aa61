#!/usr/bin/env python3
"""PyTorch as an outside oracle, the way llm.c's test_gpt2 checks itself.

`gpucheck export` wrote, for one model: our initial weights, the
normalised batch and labels, our dropout masks, and what our GPU backend
computed in one training step (logits, loss, every gradient) and after the
paper's SGD update (weights and momenta). This script loads the weights,
batch and masks into a PyTorch module with the same layers, runs the same
step in float32, and prints the difference of every tensor:

  TENSOR OK   logits            maxdiff 1.2e-06  rel 3.1e-07

rel is maxdiff / max|PyTorch's tensor|; a tensor is OK when rel <= --tol.

For a tf32 export it also runs the step in strict float32 and prints, per
gradient, how far ours (TF32) and PyTorch's own TF32 step each are from
that float32 step: TF32 rounds every product's inputs to 10 bits, and a
ReLU or max-pool decision flipped by that rounding moves a gradient by a
whole term, so the float32 distance of PyTorch's TF32 is the floor any
TF32 implementation can be held to on this batch.

  python3 torch_oracle.py gpu/work/oracle-alexnet --json out.jsonl
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model  # noqa: E402


def diff(ours, theirs):
    ours, theirs = ours.double().cpu(), theirs.double().cpu()
    d = (ours - theirs).abs().max().item()
    m = theirs.abs().max().item()
    return d, (d / m if m > 0 else d)


def check(folder, tol, out, device):
    with open(os.path.join(folder, "manifest.json")) as f:
        man = json.load(f)
    t = man["tensors"]

    def read(name):
        return torch_model.read_tensor(folder, t[name])

    torch_model.set_tf32(man["precision"] == "tf32")
    torch.backends.cudnn.benchmark = False
    dev = torch.device(device)
    model = torch_model.build(man["spec"], fixed_dropout=True)
    model.load_state_dict({n: read("param/" + n) for n in man["params"]}, strict=True)
    model = model.to(dev).train()
    for layer in man["spec"]["layers"]:
        if layer["Kind"] == "dropout" and layer["P"] > 0:  # P = 0 has no mask: identity
            getattr(model, layer["Name"]).mask = read("mask/" + layer["Name"]).to(dev)
    x = read("input").to(dev)
    labels = read("labels").to(dev).long()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()

    ref = None  # the same step in strict float32, for a tf32 export
    if man["precision"] == "tf32":
        torch_model.set_tf32(False)
        m32 = torch_model.build(man["spec"], fixed_dropout=True)
        m32.load_state_dict({n: read("param/" + n) for n in man["params"]}, strict=True)
        m32 = m32.to(dev).train()
        for layer in man["spec"]["layers"]:
            if layer["Kind"] == "dropout" and layer["P"] > 0:
                getattr(m32, layer["Name"]).mask = read("mask/" + layer["Name"]).to(dev)
        F.cross_entropy(m32(x), labels).backward()
        ref = {n: p.grad for n, p in m32.named_parameters()}
        torch_model.set_tf32(True)

    rows, ok = [], True

    def report(name, ours, theirs):
        nonlocal ok
        d, rel = diff(ours, theirs)
        good = rel <= tol
        ok = ok and good
        print("TENSOR %-4s %-22s maxdiff %.2e  rel %.2e" % ("OK" if good else "BAD", name, d, rel), flush=True)
        rows.append((name, d, rel))
        return d, rel

    logits_d, logits_rel = report("logits", read("logits"), logits.detach())
    man["loss"] = float(man["loss"])  # a string ("NaN") when ours was not finite
    loss_diff = abs(man["loss"] - loss.item())
    loss_ok = loss_diff <= tol * abs(loss.item())
    ok = ok and loss_ok
    print("LOSS   %-4s ours %.7f  torch %.7f  diff %.2e" % ("OK" if loss_ok else "BAD", man["loss"], loss.item(), loss_diff), flush=True)
    params = dict(model.named_parameters())
    worst_grad, worst_grad_rel = "", 0.0
    floor = {"ours": ("", 0.0), "torch": ("", 0.0)}
    for n in man["params"]:
        _, rel = report("grad " + n, read("grad/" + n), params[n].grad)
        if rel >= worst_grad_rel:
            worst_grad, worst_grad_rel = n, rel
        if ref is not None:
            _, ours32 = diff(read("grad/" + n), ref[n])
            _, torch32 = diff(params[n].grad, ref[n])
            print("FLOOR       %-22s vs float32: ours (tf32) %.2e  PyTorch (tf32) %.2e" % ("grad " + n, ours32, torch32), flush=True)
            if ours32 >= floor["ours"][1]:
                floor["ours"] = (n, ours32)
            if torch32 >= floor["torch"][1]:
                floor["torch"] = (n, torch32)
    # The paper's update from zero momentum, in our kernel's float32 order:
    # v = (m*v - (wd*lr)*w) - lr*g; w = w + v.
    lr = torch.tensor(man["lr"], dtype=torch.float32, device=dev)
    mom = torch.tensor(man["momentum"], dtype=torch.float32, device=dev)
    wdlr = torch.tensor(man["weight_decay"], dtype=torch.float32, device=dev) * lr
    worst_after = 0.0
    with torch.no_grad():
        for n in man["params"]:
            w, g = params[n].detach(), params[n].grad
            v = (mom * torch.zeros_like(w) - wdlr * w) - lr * g
            _, r1 = report("step w " + n, read("after_w/" + n), w + v)
            _, r2 = report("step v " + n, read("after_v/" + n), v)
            worst_after = max(worst_after, r1, r2)
    verdict = "OK" if ok else "FAILED"
    print("oracle %s %s batch %d: %s (tolerance %.0e)" % (man["model"], man["precision"], man["batch"], verdict, tol), flush=True)
    if ref is not None:
        print("oracle %s tf32 floor: worst gradient vs float32: ours %.2e (%s), PyTorch's own TF32 %.2e (%s)" % (
            man["model"], floor["ours"][1], floor["ours"][0], floor["torch"][1], floor["torch"][0]), flush=True)
    if out:
        rec = {"kind": "oracle", "model": man["model"], "precision": man["precision"], "batch": man["batch"],
               "logits_maxdiff": logits_d, "logits_rel": logits_rel, "loss_diff": loss_diff,
               "worst_grad": worst_grad, "worst_grad_rel": worst_grad_rel, "worst_after_rel": worst_after,
               "ok": ok, "torch": torch.__version__, "tf32": torch_model.tf32_settings()}
        if ref is not None:
            rec.update({"ours_vs_fp32": floor["ours"][1], "ours_vs_fp32_where": floor["ours"][0],
                        "torch_vs_fp32": floor["torch"][1], "torch_vs_fp32_where": floor["torch"][0]})
        with open(out, "a") as f:
            f.write(json.dumps(torch_model.json_safe(rec)) + "\n")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--json", default="")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for the tests on a machine without a GPU")
    a = ap.parse_args()
    good = True
    for folder in a.folders:
        try:
            good = check(folder, a.tol, a.json, a.device) and good
        except Exception as e:
            print("oracle %s: %s" % (folder, e), flush=True)
            good = False
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
