#!/usr/bin/python3
"""Independent reader for ALXSHARD shards (version 1/2), written only from FORMAT.md.

It is the format's second implementation: nothing in it came from the Go
reader, so where the two agree on real shards, FORMAT.md says enough to
read them (pkg/ingest's TestIndependentReader runs it on every codec).

Usage: read_shards.py DIR [--dump OUTDIR] [--digests]   (DIR holds *.shard and meta.json)
Checks header, every record (length, fields, CRC-32C), end marker, index,
trailer (index CRC, whole-file CRC), meta.json (checksum, listing), and
decodes every record's pixels (zstd, grad-zstd, grad-huff).
With --dump, writes OUTDIR/<split>/<name>.npy (H,W,3 uint8) plus records.json.
With --digests, prints "DIGEST <split> <id> <label> <sha256 of the pixels>" per record.
Exits 1 when it finds a problem (a missing or unreadable meta.json too), 2 on a usage mistake.
"""
import hashlib, json, os, re, struct, sys
import numpy as np
import zstandard

# ---------------------------------------------------------------- CRC-32C
def _make_table():
    poly = 0x82F63B78  # reflected Castagnoli
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t.append(c)
    return t
_T = _make_table()

def crc32c_update(crc, data):
    """crc is the *finalised* CRC so far (0 for none), like Go's crc32.Update."""
    c = crc ^ 0xFFFFFFFF
    t = _T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

def crc32c(data):
    return crc32c_update(0, data)

assert crc32c(b"123456789") == 0xE3069283  # standard check value

class FormatError(Exception):
    pass

def need(cond, msg):
    if not cond:
        raise FormatError(msg)

# ---------------------------------------------------------------- bitstreams
class BackBits:
    """zstd backward bitstream: read from the end; the last byte's highest set
    bit is a marker. Reads past the start give zero bits (counted)."""
    def __init__(self, data):
        need(len(data) > 0, "empty backward bitstream")
        need(data[-1] != 0, "backward bitstream: last byte has no marker bit")
        self.v = int.from_bytes(data, "little")
        self.pos = self.v.bit_length() - 1  # bits available below the marker
        self.total = self.pos

    def read(self, n):
        if n == 0:
            return 0
        p = self.pos - n
        if p >= 0:
            r = (self.v >> p) & ((1 << n) - 1)
        else:
            r = (self.v << -p) & ((1 << n) - 1)
        self.pos = p
        return r

    def peek(self, n):
        p = self.pos - n
        if p >= 0:
            return (self.v >> p) & ((1 << n) - 1)
        return (self.v << -p) & ((1 << n) - 1)

    def overflowed(self):
        return self.pos < 0

# ---------------------------------------------------------------- FSE (for huffman weights)
def fse_read_ncount(data, max_log):
    v = int.from_bytes(data, "little")
    nbits_total = len(data) * 8
    bc = 0
    def bits(n):
        return (v >> bc) & ((1 << n) - 1)
    acc = bits(4) + 5
    bc += 4
    need(acc <= max_log, f"FSE accuracy log {acc} > {max_log}")
    remaining = (1 << acc) + 1
    threshold = 1 << acc
    nb = acc + 1
    probs = []
    while remaining > 1:
        need(bc <= nbits_total, "FSE table description runs past its bytes")
        mx = (2 * threshold - 1) - remaining
        low = bits(nb - 1)
        if low < mx:
            cnt = low
            bc += nb - 1
        else:
            cnt = bits(nb)
            if cnt >= threshold:
                cnt -= mx
            bc += nb
        prob = cnt - 1
        probs.append(prob)
        remaining -= abs(prob)
        if prob == 0:
            while True:
                rep = bits(2)
                bc += 2
                probs.extend([0] * rep)
                if rep != 3:
                    break
        while remaining < threshold and threshold > 1:
            nb -= 1
            threshold >>= 1
    need(remaining == 1, "FSE probabilities do not sum to the table size")
    need(bc <= nbits_total, "FSE table description runs past its bytes")
    return acc, probs, (bc + 7) // 8

def fse_build(acc, probs):
    size = 1 << acc
    sym = [0] * size
    high = size - 1
    nxt = {}
    for s, p in enumerate(probs):
        if p == -1:
            sym[high] = s
            high -= 1
            nxt[s] = 1
        elif p > 0:
            nxt[s] = p
    pos = 0
    step = (size >> 1) + (size >> 3) + 3
    mask = size - 1
    for s, p in enumerate(probs):
        for _ in range(max(p, 0)):
            sym[pos] = s
            pos = (pos + step) & mask
            while pos > high:
                pos = (pos + step) & mask
    need(pos == 0, "FSE spread did not end at position 0")
    table = []
    for st in range(size):
        s = sym[st]
        ns = nxt[s]
        nxt[s] += 1
        nbits = acc - (ns.bit_length() - 1)
        base = (ns << nbits) - size
        table.append((s, nbits, base))
    return table

def fse_decode_weights(data):
    acc, probs, hdr = fse_read_ncount(data, 6)
    table = fse_build(acc, probs)
    br = BackBits(data[hdr:])
    s1 = br.read(acc)
    s2 = br.read(acc)
    out = []
    while True:
        need(len(out) <= 255, "too many huffman weights")
        sy, nb, base = table[s1]
        out.append(sy)
        s1 = base + br.read(nb)
        if br.overflowed():
            out.append(table[s2][0])
            break
        sy, nb, base = table[s2]
        out.append(sy)
        s2 = base + br.read(nb)
        if br.overflowed():
            out.append(table[s1][0])
            break
    return out

# ---------------------------------------------------------------- huffman literals (huff0 Compress4X)
TABLE_KINDS = {}
def huf_read_table(data):
    """Returns (decode_table, max_bits, bytes_used). decode_table[i] = (sym, nbits)
    indexed by the next max_bits bits of the backward stream."""
    need(len(data) >= 1, "huffman table: no header byte")
    h = data[0]
    if h < 128:
        need(1 + h <= len(data), "huffman table: FSE weights past block")
        weights = fse_decode_weights(data[1:1 + h])
        used = 1 + h
        TABLE_KINDS["fse"] = TABLE_KINDS.get("fse", 0) + 1
    else:
        n = h - 127
        nbytes = (n + 1) // 2
        need(1 + nbytes <= len(data), "huffman table: direct weights past block")
        weights = []
        for i in range(n):
            b = data[1 + i // 2]
            weights.append(b >> 4 if i % 2 == 0 else b & 15)
        used = 1 + nbytes
        TABLE_KINDS["direct"] = TABLE_KINDS.get("direct", 0) + 1
    need(all(w <= 12 for w in weights), "huffman weight > 12")
    total = sum((1 << (w - 1)) for w in weights if w > 0)
    need(total > 0, "huffman table: all weights zero")
    max_bits = total.bit_length()  # highbit(total)+1
    rest = (1 << max_bits) - total
    need(rest > 0 and rest & (rest - 1) == 0, "huffman table: implied weight not a power of two")
    weights.append(rest.bit_length())  # log2(rest)+1
    need(max_bits <= 11, f"huffman max code length {max_bits} > 11")
    need(len(weights) <= 256, "huffman table: more than 256 symbols")
    dt = [None] * (1 << max_bits)
    pos = 0
    for w in range(1, max_bits + 1):
        for s, sw in enumerate(weights):
            if sw == w:
                k = 1 << (w - 1)
                nb = max_bits + 1 - w
                for j in range(pos, pos + k):
                    dt[j] = (s, nb)
                pos += k
    need(pos == (1 << max_bits), "huffman table not complete")
    return dt, max_bits, used

def huf_decode_stream(data, n, dt, mb):
    br = BackBits(data)
    out = bytearray(n)
    for i in range(n):
        s, nb = dt[br.peek(mb)]
        out[i] = s
        br.read(nb)
        need(not br.overflowed(), "huffman stream read past its start")
    need(br.pos == 0, f"huffman stream: {br.pos} bits left unread")
    return bytes(out)

def huf_decompress4x(block, size):
    dt, mb, used = huf_read_table(block)
    body = block[used:]
    need(len(body) >= 6 + 4, "huffman 4X: body too short for jump table")
    s1, s2, s3 = struct.unpack_from("<HHH", body, 0)
    s4 = len(body) - 6 - s1 - s2 - s3
    need(s4 > 0 and min(s1, s2, s3) > 0, "huffman 4X: bad jump table")
    seg = (size + 3) // 4
    need(size - 3 * seg >= 0, "huffman 4X: band too small")
    p = 6
    out = b""
    for i, sl in enumerate((s1, s2, s3, s4)):
        n = seg if i < 3 else size - 3 * seg
        out += huf_decode_stream(body[p:p + sl], n, dt, mb)
        p += sl
    return out

# ---------------------------------------------------------------- codecs
CODECS = {0: "zstd", 1: "grad-zstd", 2: "grad-huff"}

def zstd_one_frame(payload, size):
    d = zstandard.ZstdDecompressor().decompressobj()
    out = d.decompress(payload)
    need(d.eof, "zstd: frame not complete")
    need(d.unused_data == b"", "zstd: bytes after the frame")
    need(len(out) == size, f"zstd: content {len(out)} bytes, want {size}")
    return out

def unfilter(planes, w, h):
    """planes: bytes R' G B' each w*h; returns (h,w,3) uint8."""
    a = np.frombuffer(planes, dtype=np.uint8).reshape(3, h, w)
    G = a[1]
    R = (a[0] + G).astype(np.uint8)  # numpy uint8 arithmetic wraps mod 256
    B = (a[2] + G).astype(np.uint8)
    out = np.empty((h, w, 3), np.uint8)
    for c, e in enumerate((R, G, B)):
        d = np.cumsum(e, axis=1, dtype=np.uint8)  # d(x,y)=p(x,y)-p(x,y-1)
        out[:, :, c] = np.cumsum(d, axis=0, dtype=np.uint8)
    return out

BLOCKS = []  # (mode, band bytes, huffman length, distinct values) for checking the encoder's choice
def grad_huff_planes(payload, w, h, stats):
    B = max(1, 65536 // w)
    out = bytearray()
    p = 0
    for plane in range(3):
        y = 0
        while y < h:
            rows = min(B, h - y)
            n = rows * w
            need(p < len(payload), "grad-huff: block past payload")
            mode = payload[p]; p += 1
            if mode == 0:
                need(p + n <= len(payload), "grad-huff: raw block past payload")
                out += payload[p:p + n]; p += n
            elif mode == 1:
                need(p + 1 <= len(payload), "grad-huff: rle block past payload")
                out += bytes([payload[p]]) * n; p += 1
            elif mode == 2:
                need(p + 4 <= len(payload), "grad-huff: length past payload")
                (L,) = struct.unpack_from("<I", payload, p); p += 4
                need(p + L <= len(payload), "grad-huff: huffman block past payload")
                band = huf_decompress4x(payload[p:p + L], n); p += L
                need(len(band) == n, "grad-huff: band size")
                out += band
            else:
                raise FormatError(f"grad-huff: unknown mode {mode}")
            stats[mode] = stats.get(mode, 0) + 1
            BLOCKS.append((mode, n, L if mode == 2 else None, len(set(out[-n:]))))
            y += rows
    need(p == len(payload), f"grad-huff: {len(payload) - p} bytes after last block")
    return bytes(out)

def decode_pixels(codec, payload, w, h, stats):
    n = w * h * 3
    if codec == 0:
        return np.frombuffer(zstd_one_frame(payload, n), np.uint8).reshape(h, w, 3)
    if codec == 1:
        return unfilter(zstd_one_frame(payload, n), w, h)
    if codec == 2:
        return unfilter(grad_huff_planes(payload, w, h, stats), w, h)
    raise FormatError(f"unknown codec {codec}")

# ---------------------------------------------------------------- shard
def read_shard(path, decode=True, stats=None):
    if stats is None:
        stats = {}
    data = open(path, "rb").read()
    need(len(data) >= 16 + 4 + 32, "file too short")
    magic, version, flags, reserved = struct.unpack_from("<8sHHI", data, 0)
    need(magic == b"ALXSHARD", f"bad magic {magic!r}")
    need(version in (1, 2), f"bad version {version}")
    # trailer
    t = len(data) - 32
    idx_off, count, idx_crc, file_crc, emagic = struct.unpack_from("<QQII8s", data, t)
    need(emagic == b"ALXSEND1", f"bad end magic {emagic!r}")
    need(idx_off + 8 * count == t, "index does not end at the trailer")
    need(idx_off >= 16 + 4, "index offset too small")
    index_bytes = data[idx_off:t]
    need(crc32c(index_bytes) == idx_crc, "index CRC mismatch")
    index = list(struct.unpack_from(f"<{count}Q", index_bytes, 0))
    need(data[idx_off - 4:idx_off] == b"\xff\xff\xff\xff", "no end marker before the index")
    # sequential read
    pos = 16
    seen = []
    recs = []
    fcrc = crc32c(data[:16])
    while True:
        (L,) = struct.unpack_from("<I", data, pos)
        if L == 0xFFFFFFFF:
            fcrc = crc32c_update(fcrc, data[pos:pos + 4])
            pos += 4
            break
        need(L <= 1 << 30, "body too long")
        need(L >= 20, "body shorter than its fixed fields")
        need(pos + 4 + L + 4 <= idx_off - 4, "record runs past end marker")
        seen.append(pos)
        body = data[pos + 4:pos + 4 + L]
        (rcrc,) = struct.unpack_from("<I", data, pos + 4 + L)
        need(crc32c(body) == rcrc, f"record {len(seen)-1} CRC mismatch")
        fcrc = crc32c_update(fcrc, data[pos:pos + 4 + L])
        if version == 1:
            fcrc = crc32c_update(fcrc, data[pos + 4 + L:pos + 8 + L])
        codec, ch, w, h, nlen, label, rid = struct.unpack_from("<BBHHHiQ", body, 0)
        need(ch == 3, f"channels {ch}")
        need(w >= 1 and h >= 1, "zero size")
        need(nlen <= 4096 and 20 + nlen <= L, "name length")
        name = body[20:20 + nlen].decode("utf-8", "surrogateescape")  # names are bytes (FORMAT.md)
        payload = body[20 + nlen:]
        rec = dict(offset=pos, codec=codec, w=w, h=h, label=label, id=rid, name=name,
                   payload_len=len(payload))
        if decode:
            rec["pixels"] = decode_pixels(codec, payload, w, h, stats)
        recs.append(rec)
        pos += 4 + L + 4
    need(pos == idx_off, "end marker not immediately before index")
    need(seen == index, f"index {index} != offsets seen {seen}")
    need(len(seen) == count, "count mismatch")
    if count:
        need(index[0] == 16, "first offset not 16")
    # random-access check: spans
    ends = index[1:] + [idx_off - 4]
    for i, (a, b) in enumerate(zip(index, ends)):
        (L,) = struct.unpack_from("<I", data, a)
        need(b - a == 4 + L + 4, f"record {i}: span {b-a} != 8+L {8+L}")
    fcrc = crc32c_update(fcrc, data[idx_off:t + 20])
    need(fcrc == file_crc, f"file CRC mismatch: computed {fcrc:08x}, trailer {file_crc:08x}")
    return dict(version=version, flags=flags, reserved=reserved, count=count,
                file_crc=file_crc, size=len(data), records=recs)

# ---------------------------------------------------------------- meta.json
META_KEYS = {"format_version", "checksum", "ingest", "width", "height", "channels",
             "classes", "splits", "stats", "unfinished"}

def check_meta(d):
    raw = open(os.path.join(d, "meta.json"), "rb").read()
    m = re.search(rb'"checksum": "([0-9a-f]{8})"', raw)
    meta = json.loads(raw)
    if m:
        zeroed = raw[:m.start(1)] + b"00000000" + raw[m.end(1):]
        need(crc32c(zeroed) == int(m.group(1), 16), "meta.json checksum mismatch")
        need(list(meta.keys())[1] == "checksum", "checksum not the second field")
    need(raw.endswith(b"}\n"), "meta.json has no final newline")
    need(isinstance(meta, dict), "meta.json is not a JSON object")
    unknown = set(meta) - META_KEYS
    need(not unknown, f"meta.json unknown fields {unknown}")
    missing = [k for k in ("format_version", "width", "height", "channels") if k not in meta]
    need(not missing, f"meta.json lacks {missing}")
    return meta, bool(m)

USAGE = "usage: read_shards.py DIR [--dump OUTDIR] [--digests]   (DIR holds *.shard and meta.json)"

def main():
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    dump = None
    digests = "--digests" in args
    if digests:
        args.remove("--digests")
    if "--dump" in args:
        i = args.index("--dump")
        if i + 1 >= len(args):
            print(USAGE, file=sys.stderr)
            return 2
        dump = args[i + 1]; del args[i:i + 2]
    if len(args) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    d = args[0]
    try:
        meta, has_ck = check_meta(d)
    except (OSError, ValueError, FormatError) as e:
        print(f"FAIL {os.path.join(d, 'meta.json')}: {e}")
        return 1
    stats = {}
    allrecs = []
    problems = 0
    listed = set()
    # A split a stopped run was replacing is not listed; the note says so.
    for split, note in meta.get("unfinished", {}).items():
        print(f"FAIL {split}: unfinished: {note}"); problems += 1
    for split, sp in meta.get("splits", {}).items():
        try:
            problems += check_split(d, meta, split, sp, stats, allrecs, listed)
        except (KeyError, TypeError, ValueError) as e:
            print(f"FAIL meta.json split {split}: malformed listing ({type(e).__name__}: {e})"); problems += 1
    return finish(d, meta, has_ck, stats, allrecs, listed, problems, dump, digests)

def check_split(d, meta, split, sp, stats, allrecs, listed):
    """Reads one split's shards into allrecs; returns the problems found."""
    problems = 0
    broken = False  # a shard that could not be read: the split's total says nothing more
    classes = meta.get("classes", [])
    n = 0
    ids = []
    for s in sp["shards"]:
        listed.add(s["file"])
        path = os.path.join(d, s["file"])
        try:
            sh = read_shard(path, stats=stats)
            for r in sh["records"]:
                need(r["w"] == meta["width"] and r["h"] == meta["height"],
                     f"record {r['id']}: {r['w']}x{r['h']}, meta.json says {meta['width']}x{meta['height']}")
                need(-1 <= r["label"] < len(classes),
                     f"record {r['id']}: label {r['label']} out of range for {len(classes)} classes")
        except (OSError, FormatError) as e:
            print(f"FAIL {s['file']}: {e}"); problems += 1; broken = True; continue
        ok = (sh["count"] == s["records"] and sh["size"] == s["bytes"]
              and f"{sh['file_crc']:08x}" == s["crc32c"])
        if not ok:
            print(f"FAIL meta listing {s} vs count={sh['count']} size={sh['size']} crc={sh['file_crc']:08x}")
            problems += 1
        if sh["version"] != meta["format_version"]:
            print(f"note {s['file']}: header version {sh['version']} vs meta {meta['format_version']}")
        for r in sh["records"]:
            r["split"] = split; r["file"] = s["file"]
            ids.append(r["id"])
            allrecs.append(r)
        n += sh["count"]
    if not broken and n != sp["records"]:
        print(f"FAIL {split}: {n} records, meta says {sp['records']}"); problems += 1
    if len(set(ids)) != len(ids):
        print(f"FAIL {split}: ids repeat: {sorted(ids)}"); problems += 1
    # ids = position in bytewise-sorted names, of all the split's images:
    # a skipped image leaves a gap, so they rise with the names.
    byname = sorted((r for r in allrecs if r["split"] == split), key=lambda r: r["name"].encode("utf-8", "surrogateescape"))
    seq = [r["id"] for r in byname]
    if any(a >= b for a, b in zip(seq, seq[1:])):
        print(f"FAIL {split}: ids do not follow sorted names"); problems += 1
    return problems

def finish(d, meta, has_ck, stats, allrecs, listed, problems, dump, digests):
    """The summary line, --digests and --dump; the exit status."""
    extra = [f for f in os.listdir(d) if f.endswith(".shard") and f not in listed]
    if extra:
        print(f"note: shards not in meta.json: {extra}")
    codecs = sorted({CODECS.get(r['codec'], r['codec']) for r in allrecs})
    print(f"{d}: {len(allrecs)} records, codecs {codecs}, meta checksum {'ok' if has_ck else 'absent'}, "
          f"grad-huff block modes {dict(sorted(stats.items()))}, huffman tables {TABLE_KINDS}, problems {problems}")
    if digests:
        for r in allrecs:
            print(f"DIGEST {r['split']} {r['id']} {r['label']} {hashlib.sha256(r['pixels'].tobytes()).hexdigest()}")
    if dump:
        for r in allrecs:
            os.makedirs(os.path.join(dump, r["split"]), exist_ok=True)
            np.save(os.path.join(dump, r["split"], r["name"].replace("/", "__") + ".npy"), r["pixels"])
        json.dump([{k: v for k, v in r.items() if k != "pixels"} for r in allrecs],
                  open(os.path.join(dump, "records.json"), "w"), indent=1)
    return 1 if problems else 0

if __name__ == "__main__":
    sys.exit(main())
