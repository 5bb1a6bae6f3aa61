#!/usr/bin/python3
"""Reference for `just bench-pipeline`: the same augmented batches produced
the way most PyTorch users produce them, with torch.utils.data.DataLoader
over JPEG files decoded by PIL.

Each item is what our pipeline delivers: a random CROP x CROP crop of the
image's SIZE x SIZE centre (shorter side resized to SIZE, bilinear, as
ingest does), flipped with probability 1/2, as HWC uint8, with its label
and its PCA lighting offset drawn as augment.LightingOffset does
(eigvec . (alpha * sqrt(eigval)), alpha ~ N(0, 0.1)), collated into uint8
batches of BATCH. The transforms are written out with PIL calls, exactly
what torchvision's Resize/CenterCrop/RandomCrop/RandomHorizontalFlip and
PILToTensor do on PIL images (without torchvision, whose Debian package
pulls in ffmpeg); the output stays uint8, the cheapest form for PyTorch.

Modes:
  resized   the JPEGs re-encoded once at SIZE x SIZE, quality 90 (the usual
            "resized ImageNet" preparation, untimed): like for like with our
            shards, which hold the same SIZE x SIZE pixels (losslessly).
  original  the original JPEGs, resized every time they are read (the
            torchvision ImageNet example's way).

--workers 0 runs everything in the main process (the best PyTorch can do
on one core: no inter-process copies); --workers N starts N loader
processes. --cpus pins this process (and so its workers) to those CPUs.

Prints one JSON line: images and seconds over the timed batches (after
--warmup batches, at least two per worker: the workers' start-up and the
DataLoader's first prefetch wave), and the CPU seconds of this process and
its workers over the same span.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from PIL import Image
import PIL


def resize_centre(im, size):
    w, h = im.size
    if w < h:
        nw, nh = size, max(size, round(h * size / w))
    else:
        nw, nh = max(size, round(w * size / h)), size
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    if (left, top, nw, nh) != (0, 0, size, size):
        im = im.crop((left, top, left + size, top + size))
    return im


class Items(torch.utils.data.Dataset):
    def __init__(self, files, labels, length, size, crop, eigval, eigvec, resize):
        self.files, self.labels, self.length = files, labels, length
        self.size, self.crop, self.resize = size, crop, resize
        self.scale = [math.sqrt(max(v, 0.0)) for v in eigval]
        self.eigvec = eigvec

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        j = i % len(self.files)
        with Image.open(self.files[j]) as im:
            im = im.convert("RGB")
            if self.resize:
                im = resize_centre(im, self.size)
            w, h = im.size
            x, y = random.randint(0, w - self.crop), random.randint(0, h - self.crop)
            im = im.crop((x, y, x + self.crop, y + self.crop))
            if random.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            px = torch.from_numpy(np.asarray(im).copy())
        s = [random.gauss(0.0, 0.1) * self.scale[k] for k in range(3)]
        off = torch.tensor([sum(self.eigvec[c][k] * s[k] for k in range(3)) for c in range(3)], dtype=torch.float32)
        return px, self.labels[j], off


def cpu_seconds(pid):
    """utime + stime of a live process, from /proc (its children excluded)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare(files, cache, size):
    """Re-encodes each file at size x size, quality 90, into cache (once)."""
    os.makedirs(cache, exist_ok=True)
    out = []
    for f in files:
        dst = os.path.join(cache, os.path.basename(f))
        if not os.path.exists(dst):
            with Image.open(f) as im:
                tmp = dst + ".tmp"
                resize_centre(im.convert("RGB"), size).save(tmp, "JPEG", quality=90)
                os.replace(tmp, dst)
        out.append(dst)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, help="folder of <wnid>_<name>.JPEG files")
    ap.add_argument("--mode", choices=["resized", "original"], default="resized")
    ap.add_argument("--cache", help="folder for the resized JPEGs (mode resized)")
    ap.add_argument("--meta", help="the shards' meta.json, for the PCA eigenvalues and eigenvectors")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--cpus", help="comma-separated CPUs to run on")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    if a.cpus:
        os.sched_setaffinity(0, {int(c) for c in a.cpus.split(",")})
    # Collation is a torch.stack of uint8 tensors: one thread, as in a worker.
    torch.set_num_threads(1)
    files = sorted(os.path.join(a.images, f) for f in os.listdir(a.images) if f.endswith(".JPEG"))
    if not files:
        sys.exit(f"torch_loader: no .JPEG files in {a.images}")
    wnids = sorted({os.path.basename(f).split("_")[0] for f in files})
    labels = [wnids.index(os.path.basename(f).split("_")[0]) for f in files]
    eigval, eigvec = [1.0, 1.0, 1.0], [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    if a.meta:
        with open(a.meta) as f:
            st = json.load(f).get("stats") or {}
        eigval, eigvec = st.get("pca_eigval", eigval), st.get("pca_eigvec", eigvec)
    if a.mode == "resized":
        if not a.cache:
            sys.exit("torch_loader: --mode resized needs --cache")
        files = prepare(files, a.cache, a.size)

    random.seed(a.seed)
    torch.manual_seed(a.seed)
    # With workers, iter() sends out prefetch_factor (2) batches per worker
    # at once, and the first wave all finish together: timing from inside
    # it would count finished batches as free. Warm up past it.
    warmup = max(a.warmup, 2 * a.workers)
    n = (warmup + a.batches) * a.batch
    ds = Items(files, labels, n, a.size, a.crop, eigval, eigvec, resize=a.mode == "original")
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         drop_last=True)
    it = iter(loader)
    pids = [w.pid for w in getattr(it, "_workers", [])]
    images = 0
    for b in range(warmup + a.batches):
        if b == warmup:
            t0, c0 = time.perf_counter(), time.process_time() + sum(cpu_seconds(p) for p in pids)
        px, lab, off = next(it)
        if px.shape != (a.batch, a.crop, a.crop, 3) or px.dtype != torch.uint8 or off.shape != (a.batch, 3):
            sys.exit(f"torch_loader: unexpected batch {tuple(px.shape)} {px.dtype}, offsets {tuple(off.shape)}")
        if b >= warmup:
            images += px.shape[0]
    dt = time.perf_counter() - t0
    cpu = time.process_time() + sum(cpu_seconds(p) for p in pids) - c0
    del it
    print(json.dumps({"mode": a.mode, "workers": a.workers, "images": images, "seconds": dt, "cpu_seconds": cpu,
                      "torch": torch.__version__, "pil": PIL.__version__}))


if __name__ == "__main__":
    main()
