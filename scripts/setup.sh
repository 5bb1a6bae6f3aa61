#!/usr/bin/env bash
# Installs the Debian packages the project uses at run time and in its
# reference benchmarks. Idempotent: a fast no-op when all are present.
# Without root it prints the command to run instead.
#
#   setup.sh          what the commands, tests and demo use
#   setup.sh torch    also python3-torch, the reference of bench-pipeline
#                     (PyTorch's DataLoader; libtorch and its libraries, a large install)
set -euo pipefail
pkgs=(
  libturbojpeg0        # JPEG decoding at native speed (pure-Go fallback without it)
  libopenblas0         # SGEMM for the CPU trainer (gonum fallback without it)
  python3-pil          # reference for bench-ingest and the resize-accuracy test
  python3-zstandard    # reference for bench-ingest; the independent shard reader
  python3-numpy        # the independent shard reader (shards/testdata/read_shards.py)
  dataset-fashion-mnist  # the demo's and the learning tests' real dataset
)
for group in "$@"; do
  case "$group" in
    # bench-pipeline's DataLoader and bench-train-cpu's references (the GPU
    # oracle test on the CPU too); jemalloc with purging off is their best
    # allocator: on glibc's malloc they lose time to page faults.
    torch) pkgs+=(python3-torch libjemalloc2) ;;
    *) echo "setup: unknown group $group (known: torch)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present (${pkgs[*]})" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup: not a Debian system; please install the equivalents of: ${missing[*]}" >&2
  echo "setup: everything still builds and tests without them (pure-Go fallbacks; tests that need them skip)" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
