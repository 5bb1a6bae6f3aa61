"""Our alexnet.Spec as a PyTorch module, for the GPU check.

`gpucheck spec --model NAME` (or an export's manifest) gives the layer list
with each layer's output shape; build() turns it into an nn.Sequential
with the same parameter names (conv1.weight, fc6.bias, ...) and layouts
(OIHW with I = in/groups, Linear [out, in]), so our weights load as a
state dict. LRN: torch.nn.LocalResponseNorm divides alpha by size, as
cuDNN and our spec do, so our Alpha passes through unchanged.

No numpy: tensors travel as raw little-endian files.
"""

import torch
import torch.nn as nn


class FixedDropout(nn.Module):
    """Dropout with a given mask: y = x * (kept ? float32(1/(1-p)) : 0),
    exactly our kernel's arithmetic, so the oracle sees our units dropped."""

    def __init__(self, p):
        super().__init__()
        self.scale = torch.tensor(1.0 / (1.0 - p), dtype=torch.float32).item()
        self.mask = None

    def forward(self, x):
        if not self.training or self.mask is None:
            return x
        m = self.mask.to(x.device).reshape(x.shape).to(torch.float32) * self.scale
        return x * m


class Net(nn.Module):
    def __init__(self, spec, fixed_dropout=False):
        super().__init__()
        self.names = []
        self.input = list(spec["input"])  # C, H, W
        self.classes = spec["classes"]
        in_c = spec["input"][0]
        prev_shape = spec["input"]
        for layer in spec["layers"]:
            kind, name = layer["Kind"], layer["Name"]
            if kind == "conv":
                m = nn.Conv2d(in_c, layer["Out"], layer["K"], stride=layer["Stride"], padding=layer["Pad"],
                              groups=max(1, layer["Groups"]), bias=True)
                in_c = layer["Out"]
            elif kind == "relu":
                m = nn.ReLU(inplace=True)
            elif kind == "lrn":
                p = layer["LRN"]
                m = nn.LocalResponseNorm(p["Size"], alpha=p["Alpha"], beta=p["Beta"], k=p["K"])
            elif kind == "maxpool":
                m = nn.MaxPool2d(layer["K"], stride=layer["Stride"], padding=layer["Pad"])
            elif kind == "dropout":
                m = FixedDropout(layer["P"]) if fixed_dropout else nn.Dropout(layer["P"])
            elif kind == "flatten":
                m = nn.Flatten(1)
            elif kind == "fc":
                n_in = prev_shape[0] * prev_shape[1] * prev_shape[2]
                m = nn.Linear(n_in, layer["Out"])
            else:
                raise ValueError("layer %s: kind %s" % (name, kind))
            self.add_module(name, m)
            self.names.append(name)
            prev_shape = layer["out_shape"]

    def forward(self, x):
        for name in self.names:
            x = getattr(self, name)(x)
        return x


def build(spec, fixed_dropout=False):
    return Net(spec, fixed_dropout)


def read_tensor(folder, entry):
    """Reads a raw little-endian tensor written by `gpucheck export`."""
    import os
    dtype = {"float32": torch.float32, "int32": torch.int32, "uint8": torch.uint8}[entry["dtype"]]
    with open(os.path.join(folder, entry["file"]), "rb") as f:
        data = bytearray(f.read())
    return torch.frombuffer(data, dtype=dtype).reshape(entry["shape"])


def json_safe(obj):
    """obj with every float that is not finite as the string Go's
    gpu.JSONFloat reads ("NaN", "+Inf", "-Inf"): json.dumps would write a
    bare NaN, which is not JSON, and the results table would drop the very
    record that shows a run went wrong."""
    if isinstance(obj, float) and obj != obj:
        return "NaN"
    if isinstance(obj, float) and obj in (float("inf"), float("-inf")):
        return "+Inf" if obj > 0 else "-Inf"
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def tf32_settings():
    """The TF32 switches as torch reports them, so a record shows what ran
    (the allow_tf32 flags are deprecated from torch 2.9 on)."""
    out = {}
    # torch >= 2.9 also has per-backend fp32_precision settings, which the
    # old flags set: read them where they exist, so the record shows the
    # new API's view too ("tf32" or "ieee"; absent on older torch).
    for name, get in (("matmul_allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
                      ("cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                      ("float32_matmul_precision", torch.get_float32_matmul_precision),
                      ("matmul_fp32_precision", lambda: torch.backends.cuda.matmul.fp32_precision),
                      ("cudnn_conv_fp32_precision", lambda: torch.backends.cudnn.conv.fp32_precision)):
        try:
            out[name] = get()
        except Exception as e:  # a record must not fail for a flag's sake
            if name.endswith("fp32_precision"):
                continue  # an older torch, without the new API
            out[name] = "unreadable: %s" % e
    return out
