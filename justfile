# Recipes for building, testing, demonstrating and benchmarking.
# Everything builds with CGO_ENABLED=0: native libraries are loaded at run time.
set shell := ["bash", "-euo", "pipefail", "-c"]
export CGO_ENABLED := "0"

# List the recipes.
default:
    @just --list

# Install the Debian packages the project uses (idempotent; prints what to install without root).
setup:
    @bash scripts/setup.sh

# Build every command into bin/.
build:
    @mkdir -p bin
    go build -o bin/ ./ingest ./train ./tools/shardtool ./tools/mkdemo ./tools/predict ./tools/gpucheck ./tools/bench/benchingest ./tools/bench/benchpipeline ./tools/bench/benchtraincpu ./tools/bench/benchdecodemem ./tools/bench/benchscale

# The Go files are git's where this is a checkout, else found by name,
# outside hidden folders: a release tarball or a ZIP has no .git, and
# gofmt given no file would read stdin and pass without checking.
# gofmt and go vet.
lint:
    @files=$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.*' -not -path './gpu/*'); if [ -z "$files" ]; then echo "lint: no Go files found"; exit 1; fi; out=$(gofmt -l $files); if [ -n "$out" ]; then echo "gofmt needed:"; echo "$out"; exit 1; fi
    go vet ./...

# Lint and run every test (tests needing the ImageNet sample, PIL or Fashion-MNIST skip when absent).
test: lint
    go test -count=1 ./...

# Every test under the race detector (needs cgo and a C compiler; about 8 minutes on 2 cores, so not part of `just test`).
race:
    CGO_ENABLED=1 go test -race -count=1 ./...

# Fuzz every parser of outside bytes (every Fuzz* test in the repo) for FUZZTIME each.
fuzz FUZZTIME="30s":
    bash scripts/fuzz.sh {{FUZZTIME}}

# Fashion-MNIST end to end on the CPU: ILSVRC2012 tree -> shards -> verify -> train the small model -> evaluate -> predict.
demo: setup build
    bin/mkdemo --out demo/fashion-mnist
    bin/ingest --size 32 --shard-size 4096 --out demo/shards demo/fashion-mnist
    bin/shardtool verify demo/shards
    bin/shardtool inspect demo/shards
    bin/shardtool grid demo/shards --n 64 --tile 96 --out demo/grid.png
    bin/train --shards demo/shards --model small --crop 32 --epochs 3 --batch 128 --lr 0.01 --weight-decay 5e-5 --lighting 0 --log-every 100 --overwrite --out runs/demo
    bin/train --shards demo/shards --eval-only --checkpoint runs/demo/checkpoint.ckpt
    bin/predict --checkpoint runs/demo/checkpoint.ckpt --shards demo/shards demo/fashion-mnist/val/ILSVRC2012_val_00000001.JPEG demo/fashion-mnist/val/ILSVRC2012_val_00000002.JPEG
    @echo "demo: plots in runs/demo (loss.png, error.png, conv1-filters.png), contact sheet demo/grid.png"

# The longer recipe: small-fc on full 32x32 records (flips only, light weight decay), evaluated on the official Fashion-MNIST test split (about 30 min on 2 cores).
learn: setup build
    bin/mkdemo --out demo/fashion-mnist
    bin/ingest --size 32 --shard-size 4096 --out demo/shards demo/fashion-mnist
    bin/train --shards demo/shards --model small-fc --crop 32 --epochs 16 --batch 128 --lr 0.01 --weight-decay 5e-5 --schedule step:8 --lighting 0 --log-every 200 --overwrite --out runs/learn
    bin/train --shards demo/shards --eval-only --checkpoint runs/learn/checkpoint.ckpt

# CPU training speed beside PyTorch training the same network on the same cores: img/s for small and small-fc (batch 128, 32 px) and alexnet (batch 32, 224), and GFLOP/s against SGEMM, in the same rounds.
[positional-arguments]
bench-train-cpu *ARGS: build
    @bash scripts/bench-setup.sh torch "$@"
    bin/benchtraincpu "$@"

# Ingest speed per core against PIL + zstd (same core, interleaved), decode-only ceiling, all cores.
[positional-arguments]
bench-ingest *ARGS: build
    @bash scripts/bench-setup.sh "" "$@"
    bin/benchingest "$@"

# Ingest's decode budget: peak RSS and time over huge PNGs under several --decode-memory values, beside the unbounded run.
[positional-arguments]
bench-decode-memory *ARGS: build
    bin/benchdecodemem "$@"

# ImageNet's size without ImageNet: 1,281,000 train and 50,000 val small JPEGs as the official tars and as a tree; ingest of both (byte-identical shards), a resume, verify, a short train and an evaluation, each timed with its peak RSS (about 4 minutes and 6 GB of disk on 2 cores).
[positional-arguments]
bench-scale *ARGS: build
    bin/benchscale "$@"

# Pipeline speed: augmented 224 crops/s on 1 core and all cores beside PyTorch's DataLoader, per-stage breakdown, RSS, entropy-only and memcpy ceilings, batch digest.
[positional-arguments]
bench-pipeline *ARGS: build
    @bash scripts/bench-setup.sh torch "$@"
    bin/benchpipeline "$@"

# Without a GPU: NVRTC compiles kernels.cu for sm_80/sm_90, ptxas assembles it, the real libcuda binds (NVIDIA's GPU-less parts from Debian non-free, into .cache/).
cuda-cpu-check:
    #!/usr/bin/env bash
    set -euo pipefail
    vars=$(bash scripts/cuda-cpu-libs.sh)
    if [ -z "$vars" ]; then echo "cuda-cpu-check: skipped, the libraries could not be fetched"; exit 0; fi
    export $vars
    # With the libraries here, a skip would hide a loading bug: make it fail.
    ALEXNET_REQUIRE_GPU=1 go test -count=1 -v -run '^(TestNVRTCCompile|TestNVRTCKernels|TestInitWithoutDriver)$' ./pkg/cuda ./pkg/nn/gpu \
      | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|nvrtc_test|gpu_test|search_test'
    # On its own, before anything has loaded NVRTC: a refused copy must unload.
    go test -count=1 -v -run '^TestRefusedRealLibraryUnloads$' ./pkg/cuda | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|search_test'

# Build the GPU check into gpu/ (git-ignored); on a GPU machine run `bash gpu/run.sh` (docs/gpu-check.md).
gpu-check:
    bash scripts/gpu-check.sh
