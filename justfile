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
    go build -o bin/ ./ingest ./tools/shardtool ./tools/mkdemo ./tools/bench/benchingest

# gofmt and go vet.
lint:
    @out=$(gofmt -l $(git ls-files '*.go' | grep -v '^$')); if [ -n "$out" ]; then echo "gofmt needed:"; echo "$out"; exit 1; fi
    go vet ./...

# Lint and run every test (tests needing the ImageNet sample, PIL or Fashion-MNIST skip when absent).
test: lint
    go test -count=1 ./...

# Fuzz every parser of outside bytes (every Fuzz* test in the repo) for FUZZTIME each.
fuzz FUZZTIME="30s":
    #!/usr/bin/env bash
    set -euo pipefail
    for pkg in $(go list ./...); do
      for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
        echo "== $pkg $f"
        go test "$pkg" -run '^$' -fuzz "^$f\$" -fuzztime {{FUZZTIME}} -fuzzminimizetime 1s
      done
    done

# Fashion-MNIST as an ILSVRC2012 tree, ingested into shards, then inspected.
demo: setup build
    bin/mkdemo --out demo/fashion-mnist
    bin/ingest --size 32 --shard-size 4096 --out demo/shards demo/fashion-mnist
    bin/shardtool verify demo/shards
    bin/shardtool inspect demo/shards
    bin/shardtool grid demo/shards --n 64 --tile 64 --out demo/grid.png

# Ingest speed per core against PIL + zstd (same core, interleaved), decode-only ceiling, all cores.
bench-ingest *ARGS: setup build
    bin/benchingest {{ARGS}}
