#!/usr/bin/env bash
# Fetches the parts of NVIDIA's stack that work without a GPU, so a CPU
# machine can test what would otherwise wait for one (docs/cuda-bindings.md,
# "Before any GPU"):
#
#   - NVRTC 11.8 (libnvrtc.so.11.2 and its builtins): compiles kernels.cu
#     for sm_80 and sm_90 exactly as the backend does on a GPU machine;
#   - ptxas 11.8: assembles that PTX for the real chips and reports each
#     kernel's registers and shared memory;
#   - the 535 driver's libcuda.so.1: every symbol pkg/cuda binds must exist
#     in it, and cuInit's failure must come back as a clear error.
#
# They come from Debian bookworm's non-free component through a private apt
# configuration under the cache folder: nothing is installed, no system file
# changes, and root is not needed. The packages are unpacked (dpkg -x) into
# $ALEXNET_CUDA_CPU (default .cache/cuda-cpu, git-ignored): about 107 MB kept
# (a 104 MB download, 4 s here).
#
# Prints the two variables to export; exits 0 with a message (and prints
# nothing to export) when the packages cannot be had, so callers skip.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${ALEXNET_CUDA_CPU:-.cache/cuda-cpu}
ROOT=$DIR/root
LIB=$ROOT/usr/lib/x86_64-linux-gnu
PTXAS=$ROOT/usr/bin/ptxas
PKGS=(libnvrtc11.2 libnvrtc-builtins11.8 libcuda1 nvidia-cuda-toolkit)

emit() {
	echo "ALEXNET_CUDA_LIB=$(realpath "$LIB"):$(realpath "$LIB/nvidia/current")"
	echo "ALEXNET_PTXAS=$(realpath "$PTXAS")"
}
if [[ -x $PTXAS && -e $LIB/libnvrtc.so.11.2 && -e $LIB/nvidia/current/libcuda.so.1 ]]; then
	emit
	exit 0
fi
give_up() {
	echo "cuda-cpu-libs: $*; the tests that need NVRTC, ptxas or libcuda will skip" >&2
	exit 0
}
[[ $(uname -m) == x86_64 ]] || give_up "only x86_64 packages are fetched"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || give_up "not a Debian system (apt-get, dpkg)"
[[ -r /usr/share/keyrings/debian-archive-keyring.gpg ]] || give_up "no Debian archive keyring"

mkdir -p "$DIR"/{apt/lists/partial,apt/cache/archives/partial,debs}
A=$(realpath "$DIR/apt")
cat >"$A/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm non-free
EOF
: >"$A/status"
APT=(-o "Dir::Etc::SourceList=$A/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$A/lists"
	-o "Dir::State::status=$A/status" -o "Dir::Cache=$A/cache" -o "Debug::NoLocking=1"
	-o "APT::Sandbox::User=$(id -un)" -o "Acquire::Retries=2")
echo "cuda-cpu-libs: fetching ${PKGS[*]} from Debian bookworm non-free into $DIR" >&2
timeout 300 apt-get "${APT[@]}" -qq update >&2 || give_up "apt-get update of bookworm non-free failed"
(cd "$DIR/debs" && timeout 600 apt-get "${APT[@]}" -qq download "${PKGS[@]}" >&2) || give_up "apt-get download failed"
rm -rf "$ROOT.tmp"
for d in "$DIR"/debs/*.deb; do dpkg -x "$d" "$ROOT.tmp"; done
# Keep what the tests use; the toolkit's other 2 GB of tools are not needed.
mkdir -p "$ROOT.keep/usr/bin" "$ROOT.keep/usr/lib/x86_64-linux-gnu/nvidia"
cp -a "$ROOT.tmp/usr/bin/ptxas" "$ROOT.keep/usr/bin/"
cp -a "$ROOT.tmp"/usr/lib/x86_64-linux-gnu/libnvrtc* "$ROOT.keep/usr/lib/x86_64-linux-gnu/"
cp -a "$ROOT.tmp/usr/lib/x86_64-linux-gnu/nvidia/current" "$ROOT.keep/usr/lib/x86_64-linux-gnu/nvidia/"
rm -rf "$ROOT" "$ROOT.tmp" "$DIR/debs"
mv "$ROOT.keep" "$ROOT"
emit
