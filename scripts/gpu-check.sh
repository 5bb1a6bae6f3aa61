#!/usr/bin/env bash
# Prepares the GPU check (`just gpu-check`): builds, on this machine and
# with CGO_ENABLED=0, everything the GPU machine runs, into gpu/
# (git-ignored), which must stay under the device tool's 64 MiB carry
# limit:
#
#   gpu/bin.tar.xz   train, ingest, gpucheck, benchpipeline, and the test
#                    binaries of pkg/cuda and pkg/nn/gpu, stripped and
#                    compressed
#   gpu/images/      a handful of ImageNet sample JPEGs (for ingest there)
#   gpu/fmnist/      a Fashion-MNIST subset's shards, with gpu/learn-args and
#                    gpu/learn-cpu.json: the CPU's training on them, which
#                    the GPU repeats
#   gpu/run.sh       the driver (tools/gpucheck/run.sh)
#   gpu/torch_*.py   the PyTorch baseline and oracle (tools/gpucheck), and
#                    the DataLoader reference of bench-pipeline
#
# Then, on the GPU machine, from the repository root: bash gpu/run.sh
# (see docs/gpu-check.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
G=gpu
IMAGES=${GPUCHECK_IMAGES:-48}
SAMPLE=${GPUCHECK_SAMPLE:-../shared/data/imagenet-sample}
LIMIT=$((64 << 20))

rm -rf "$G"
mkdir -p "$G/stage" "$G/images"
echo "gpu-check: building into $G/ (CGO_ENABLED=0)"
flags=(-trimpath -ldflags=-s\ -w)
go build "${flags[@]}" -o "$G/stage/" ./train ./ingest ./tools/gpucheck ./tools/bench/benchpipeline
go test -c "${flags[@]}" -o "$G/stage/cuda.test" ./pkg/cuda
go test -c "${flags[@]}" -o "$G/stage/gpu.test" ./pkg/nn/gpu
go test -c "${flags[@]}" -o "$G/stage/feed.test" ./pkg/feed
ls -l "$G/stage" | tail -n +2 | awk '{printf "  %-10s %6.1f MiB\n", $9, $5/1048576}'
# Learning: a Fashion-MNIST subset as shards (12 MB), and this build's own
# CPU training on it, which the GPU machine repeats with --device cuda
# (the learn-cuda step): the table sets the two test errors side by side.
# One list of flags, in gpu/learn-args, serves both runs.
FM=${GPUCHECK_FMNIST:-/usr/share/datasets/fashion-mnist}
LEARN="--model small-fc --crop 32 --epochs 3 --batch 128 --lr 0.01 --weight-decay 5e-5 --lighting 0 --log-every 0 --seed 1"
if compgen -G "$FM/train-images-idx3-ubyte*" >/dev/null; then
	tmp=$(mktemp -d)
	go build "${flags[@]}" -o "$tmp/" ./tools/mkdemo
	"$tmp/mkdemo" --src "$FM" --out "$tmp/fm" --train 12000 --val 5000 >/dev/null
	"$G/stage/ingest" --size 32 --quiet --out "$G/fmnist" "$tmp/fm" >/dev/null
	echo "$LEARN" >"$G/learn-args"
	echo "gpu-check: the CPU's run for learn-cuda (12,000 Fashion-MNIST images, 3 epochs: about a minute)"
	# shellcheck disable=SC2086 # LEARN is a list of flags
	if ! "$G/stage/train" --device cpu --shards "$G/fmnist" $LEARN --out "$tmp/run" --json >"$G/learn-cpu.json" 2>"$tmp/train.log"; then
		tail -n 5 "$tmp/train.log" >&2
		rm -rf "$tmp"
		echo "gpu-check: the CPU's training run failed" >&2
		exit 1
	fi
	rm -rf "$tmp"
else
	echo "gpu-check: warning: no Fashion-MNIST in $FM (bash scripts/setup.sh); the learn-cuda step will be skipped on the GPU machine"
fi
tar -C "$G/stage" -cf - . | xz -6 -T0 >"$G/bin.tar.xz"
rm -rf "$G/stage"
# What was built, for run.log and the machine facts: a run must never
# measure stale binaries without saying so.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Untracked files count too: a new test file is in the binaries as well.
if ! git diff --quiet HEAD 2>/dev/null || [[ -n $(git ls-files --others --exclude-standard 2>/dev/null) ]]; then
	commit+="+uncommitted changes"
fi
echo "$commit, built $(date -u +%Y-%m-%dT%H:%MZ)" >"$G/BUILD"

cp tools/gpucheck/run.sh tools/gpucheck/torch_bench.py tools/gpucheck/torch_oracle.py tools/gpucheck/torch_model.py \
	tools/bench/torch_loader.py "$G/"
if [[ -d $SAMPLE ]]; then
	# The first IMAGES by name: the same set every time (sed, not head,
	# which can close the pipe early and fail it under pipefail).
	find "$SAMPLE" -maxdepth 1 -name 'n*.JPEG' | sort | sed -n "1,${IMAGES}p" | xargs -r cp -t "$G/images/"
else
	echo "gpu-check: warning: no $SAMPLE; the real-pipeline step will be skipped on the GPU machine"
	rmdir "$G/images"
fi

# The carry is gpu/ plus the working tree that travels with it: tracked
# files and untracked ones git does not ignore. Summed in one awk, since
# xargs may split the list and du -c totals each part alone.
size=$(( $(du -sb "$G" | cut -f1) + $( { git ls-files -z; git ls-files -z --others --exclude-standard; } |
	xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }') ))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
nimg=0
[[ -d $G/images ]] && nimg=$(ls $G/images | wc -l)
echo "gpu-check: $G and the working tree are $(mib "$size") MiB (bin.tar.xz $(mib "$(stat -c %s $G/bin.tar.xz)") MiB, $nimg images); the carry limit is 64 MiB"
if ((size > LIMIT)); then
	echo "gpu-check: over 64 MiB with the working tree: lower GPUCHECK_IMAGES, or leave out the learning run's 12 MB (GPUCHECK_FMNIST=none)" >&2
	exit 1
fi
cat <<EOF
gpu-check: ready. On the GPU machine, from the repository root (device tool: carry ["gpu"], timeout_s 540):
  bash gpu/run.sh
EOF
