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


def new_tf32_api():
    """Whether this torch has the per-backend fp32_precision settings
    (2.9 on), which replace the allow_tf32 flags. The two APIs must not be
    mixed there: a read through one of what the other set can raise
    "you have used mix of the legacy and new APIs"."""
    b = torch.backends
    # Not hasattr: older torch's cuda.matmul raises AssertionError
    # ("Unknown attribute"), which hasattr lets through.
    try:
        b.cuda.matmul.fp32_precision
        b.cudnn.conv.fp32_precision
        return True
    except Exception:
        return False


def set_tf32(on):
    """TF32 on or off for cuBLAS matmuls and cuDNN convolutions, through
    the API this torch has; returns which one it used."""
    b = torch.backends
    if new_tf32_api():
        p = "tf32" if on else "ieee"
        b.cuda.matmul.fp32_precision = p
        b.cudnn.conv.fp32_precision = p
        # cuDNN-wide reads (no operator named) raise when conv and rnn
        # differ, so rnn follows conv although no layer here is one.
        if hasattr(b.cudnn, "rnn"):
            b.cudnn.rnn.fp32_precision = p
        return "fp32_precision"
    b.cuda.matmul.allow_tf32 = on
    b.cudnn.allow_tf32 = on
    return "allow_tf32"


def tf32_settings():
    """The TF32 switches as torch reports them, so a record shows what ran,
    read through the API set_tf32 used (reading the other can raise)."""
    out = {}
    if new_tf32_api():
        names = (("matmul_fp32_precision", lambda: torch.backends.cuda.matmul.fp32_precision),
                 ("cudnn_conv_fp32_precision", lambda: torch.backends.cudnn.conv.fp32_precision))
    else:
        names = (("matmul_allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
                 ("cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                 ("float32_matmul_precision", torch.get_float32_matmul_precision))
    for name, get in names:
        try:
            out[name] = get()
        except Exception as e:  # a record must not fail for a flag's sake
            out[name] = "unreadable: %s" % e
    return out
