#!/usr/bin/python3
"""Reference for `just bench-ingest`: the ingest job scripted the way a user
would with PIL and python-zstandard. Shorter side to SIZE with bilinear,
centre crop SIZE x SIZE, zstd level 3 of the raw pixels, appended to one
file. Prints one JSON line: images, seconds (the loop only, not start-up).

usage: pil_ingest.py OUT_FILE SIZE FILE...
"""
import json
import sys
import time

import zstandard
from PIL import Image


def main():
    out_path, size, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    cctx = zstandard.ZstdCompressor(level=3)
    n = 0
    t0 = time.perf_counter()
    with open(out_path, "wb") as out:
        for f in files:
            with Image.open(f) as im:
                im = im.convert("RGB")
                w, h = im.size
                if w < h:
                    nw, nh = size, max(size, round(h * size / w))
                else:
                    nw, nh = max(size, round(w * size / h)), size
                im = im.resize((nw, nh), Image.BILINEAR)
                left, top = (nw - size) // 2, (nh - size) // 2
                im = im.crop((left, top, left + size, top + size))
                data = cctx.compress(im.tobytes())
                out.write(len(data).to_bytes(4, "little"))
                out.write(data)
                n += 1
    dt = time.perf_counter() - t0
    print(json.dumps({"images": n, "seconds": dt}))


if __name__ == "__main__":
    main()
