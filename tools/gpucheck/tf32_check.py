"""Checks torch_model.set_tf32 and tf32_settings against stand-ins for
torch's two TF32 APIs, without torch: `python3 tf32_check.py` prints OK
or fails. gpucheck's Go tests run it (TestTorchTF32API).

The stand-in for torch 2.9 on raises on any touch of the legacy
allow_tf32 flags, as a mix of the APIs can raise in torch itself.
"""

import os
import sys
import types


class Legacy:
    """A backend of torch before 2.9: an unknown attribute raises
    AssertionError, as torch.backends.cuda.matmul does (not
    AttributeError, so hasattr does not catch it)."""

    def __init__(self):
        self.allow_tf32 = None

    def __getattr__(self, name):
        raise AssertionError("Unknown attribute " + name)


class Guarded:
    """A backend of the new API: fp32_precision, and a legacy flag that
    must not be touched."""

    def __init__(self, **sub):
        object.__setattr__(self, "fp32_precision", "none")
        for k, v in sub.items():
            object.__setattr__(self, k, v)

    def __getattribute__(self, name):
        if name == "allow_tf32":
            raise RuntimeError("mix of the legacy and new APIs")
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        if name == "allow_tf32":
            raise RuntimeError("mix of the legacy and new APIs")
        if name == "fp32_precision" and value not in ("ieee", "tf32", "bf16", "none"):
            raise ValueError(value)
        object.__setattr__(self, name, value)


def stub(new):
    torch = types.ModuleType("torch")
    nn = types.ModuleType("torch.nn")
    nn.Module = object
    torch.nn = nn
    if new:
        cudnn = Guarded(conv=Guarded(), rnn=Guarded())
        matmul = Guarded()
    else:
        cudnn, matmul = Legacy(), Legacy()
    torch.backends = types.SimpleNamespace(cuda=types.SimpleNamespace(matmul=matmul), cudnn=cudnn)
    torch.get_float32_matmul_precision = lambda: "highest"
    return torch


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    for new in (False, True):
        torch = stub(new)
        sys.modules["torch"], sys.modules["torch.nn"] = torch, torch.nn
        sys.modules.pop("torch_model", None)
        import torch_model
        for on in (True, False):
            api = torch_model.set_tf32(on)
            got = torch_model.tf32_settings()
            b = torch.backends
            if new:
                want = "tf32" if on else "ieee"
                assert api == "fp32_precision", api
                assert (b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision) == (want,) * 3
                assert got == {"matmul_fp32_precision": want, "cudnn_conv_fp32_precision": want}, got
            else:
                assert api == "allow_tf32", api
                assert (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32) == (on, on)
                assert got == {"matmul_allow_tf32": on, "cudnn_allow_tf32": on, "float32_matmul_precision": "highest"}, got
    print("OK")


if __name__ == "__main__":
    main()
