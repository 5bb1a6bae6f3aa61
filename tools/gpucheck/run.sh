#!/usr/bin/env bash
# The GPU check, on the GPU machine, in one go. scripts/gpu-check.sh
# (`just gpu-check`) builds everything into gpu/ on the development machine
# and copies this script there; on the GPU machine, from the repository
# root:
#
#     bash gpu/run.sh
#
# No Go is needed there: the binaries are prebuilt (CGO_ENABLED=0) and load
# CUDA at run time; PyTorch comes from whichever python3 imports torch.
# Every step has a timeout and the whole run a soft budget (GPUCHECK_BUDGET
# seconds, default 450): a step that fails, times out or is skipped leaves
# "failed: …", "timed out: …" or "skipped: …" in the table, and never
# stops the run. The last thing printed is the machine facts (for
# docs/gpu-machine.md) and the one results table.
#
# The order is the issue's priorities: our speed and PyTorch's (tf32),
# pkg/cuda's tests (no network code), the cross-checks against the CPU and
# the PyTorch oracle, the other test binaries, the real pipeline, and last
# what is least needed. Timeouts are a few times each step's expected
# length, and after one step that builds the network hangs the others get
# 45 s, so one hang in code that has never run on a GPU cannot spend the
# budget of the steps after it.
#
# A rerun after a fix need not repeat everything: GPUCHECK_ONLY is an
# extended regular expression matched against the start of step names
# (cudnn-graph, bench-alexnet-tf32, bench-alexnet-tf32-legacy, torch-bench-tf32,
# cuda-test, gpu-test, layer-check, feed-test, ingest, pipeline-alexnet,
# train-cuda, learn-cuda, crosscheck, crosscheck-paper-dropout, crosscheck-notransforms, crosscheck-det,
# export-alexnet, oracle-alexnet, oracle-alexnet-tf32, pipeline-cpu, …; a
# name ends with `$` to match it alone), and only the steps it matches run. A step that another
# needs runs too: ingest for the shard readers, export for the oracle.
# Example: GPUCHECK_ONLY='crosscheck|oracle'.
set -uo pipefail
cd "$(dirname "$0")/.."
# No core files from a step killed at its timeout: the disk is 64 GiB.
ulimit -c 0 2>/dev/null
G=gpu
R=$G/results
# The work folder (unpacked binaries, shards, exports: hundreds of MB) is
# outside gpu/, so that a dry run stopped on the development machine
# cannot leave it there to push the next carry past its 64 MiB.
W=$(mktemp -d "${TMPDIR:-/tmp}/gpucheck.XXXXXX") || { echo "cannot make a work folder"; exit 1; }
trap 'rm -rf "$W"; [[ -n ${SMI_PID:-} ]] && kill "$SMI_PID" 2>/dev/null' EXIT
BUDGET=${GPUCHECK_BUDGET:-450}
# A step may overrun the budget by at most GRACE seconds (its timeout is
# cut to fit), so the whole run ends inside the device call's limit
# (timeout_s 540 for the default budget, 260 for a budget of 200).
GRACE=${GPUCHECK_GRACE:-20}
ONLY=${GPUCHECK_ONLY:-}
# Every step's name. A GPUCHECK_ONLY that grep cannot read, or with a part
# that names no step (a typo), would skip steps without a word, or all of
# them, and spend the machine's start for nothing: it is refused before
# any work. (TestRunScriptStepNames keeps this list in step with the
# steps below.)
STEPS="cudnn-graph torch-bench-tf32 unload-test cuda-test cuda-bench gpu-test feed-test layer-check crosscheck"
STEPS+=" crosscheck-paper-dropout crosscheck-notransforms tree ingest train-cuda learn-cuda crosscheck-det torch-bench-fp32 pipeline-cpu"
for m in alexnet-owt alexnet; do
	STEPS+=" bench-$m-tf32 bench-$m-tf32-retry bench-$m-tf32-legacy bench-$m-tf32-notransforms export-$m oracle-$m"
	STEPS+=" export-$m-tf32 oracle-$m-tf32 pipeline-$m bench-$m-fp32 bench-$m-tf32-det"
done
if [[ -n $ONLY ]]; then
	grep -qE "^($ONLY)" <<<"" 2>/dev/null
	if (( $? == 2 )); then
		echo "GPUCHECK_ONLY='$ONLY' is not an extended regular expression (grep -E)"
		exit 2
	fi
	# Each alternative on its own, where the expression has no group
	# (whose | would not split it).
	parts=("$ONLY")
	[[ $ONLY == *[\(\)]* ]] || IFS='|' read -ra parts <<<"$ONLY"
	for part in "${parts[@]}"; do
		if ! printf '%s\n' $STEPS | grep -qE "^($part)"; then
			echo "GPUCHECK_ONLY='$ONLY': $part names no step (the steps: $STEPS)"
			exit 2
		fi
	done
fi
START=$(date +%s)
rm -rf "$R" "$G/work" # gpu/work: where builds before this one kept it
mkdir -p "$R"
LOG=$R/run.log

elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "== [$(elapsed)s] $*" | tee -a "$LOG"; }
# selected NAME: whether GPUCHECK_ONLY (when set) picks the step.
selected() { [[ -z $ONLY ]] || grep -qE "^($ONLY)" <<<"$1"; }
# forced CMD...: runs CMD (a step another selected step needs) whatever
# GPUCHECK_ONLY says.
forced() {
	local saved=$ONLY rc
	ONLY=""
	"$@"
	rc=$?
	ONLY=$saved
	return $rc
}
# save_out puts the results where the device tool brings them back. It
# returns at most 8 files from $OUT, none deeper than $OUT/a/b/, so the
# results folder (some 35 files) travels as one archive, with the run log
# and the table beside it. It runs after every step: a run killed at the
# device call's limit still returns everything up to its last step.
save_out() {
	# The table as it stands (milliseconds), so a run killed at the call's
	# limit still brings one back (and a run without $OUT has one to show).
	[[ -x ${B:-}/gpucheck ]] && "$B/gpucheck" table --dir "$R" >"$R/table.md" 2>&1
	[[ -n ${OUT:-} && -d ${OUT:-} ]] || return 0
	# Each copy lands under a temporary name and is renamed: a run killed
	# mid-copy leaves the last whole archive, never a torn one.
	if tar -C "$G" -czf "$W/gpu-results.tar.gz" results 2>/dev/null ||
		python3 -c "import tarfile,sys; t=tarfile.open(sys.argv[1],'w:gz'); t.add(sys.argv[2],'results'); t.close()" \
			"$W/gpu-results.tar.gz" "$R" 2>/dev/null; then
		cp -f "$W/gpu-results.tar.gz" "$OUT/.gpu-results.tar.gz.part" && mv -f "$OUT/.gpu-results.tar.gz.part" "$OUT/gpu-results.tar.gz"
	fi
	cp -f "$LOG" "$OUT/.run.log.part" 2>/dev/null && mv -f "$OUT/.run.log.part" "$OUT/run.log"
	[[ -f $R/table.md ]] && cp -f "$R/table.md" "$OUT/.table.md.part" && mv -f "$OUT/.table.md.part" "$OUT/table.md"
	return 0
}
# step NAME TIMEOUT CMD...: runs CMD with its output in $R/NAME.log (and a
# short tail on the terminal), unless the budget is spent or GPUCHECK_ONLY
# leaves it out. The timeout is cut so that the step ends by BUDGET+GRACE.
step() {
	local name=$1 limit=$2 left
	shift 2
	if ! selected "$name"; then
		say "SKIP $name: not in GPUCHECK_ONLY=$ONLY"
		return 98
	fi
	if (( $(elapsed) + 10 > BUDGET )); then
		say "SKIP $name: budget of ${BUDGET}s spent"
		return 99
	fi
	left=$(( BUDGET + GRACE - $(elapsed) ))
	# cut: the budget, not the step's own limit, is what stops it.
	local cut=""
	(( limit > left )) && limit=$left && cut=1
	say "$name (timeout ${limit}s${cut:+, cut to fit the budget})"
	# Our Go binaries get SIGQUIT, not SIGTERM: they then print every
	# goroutine's stack into the step's log, which says where a hang was.
	# Python gets SIGABRT, on which its faulthandler (PYTHONFAULTHANDLER,
	# exported below) prints every thread's traceback. Others (bash, which
	# ignores QUIT) get SIGTERM.
	# A Go binary behind a wrapper that sends its stdout to a file (bash -c
	# '… exec "$@" >"$out"' _ OUT $B/…) is one too.
	local sig=TERM a
	for a in "$@"; do [[ $a == "$B"/* ]] && sig=QUIT && break; done
	[[ -n ${PY:-} && $1 == "$PY" ]] && sig=ABRT
	timeout -s $sig --kill-after=10 "$limit" "$@" >"$R/$name.log" 2>&1
	local rc=$?
	tail -n 4 "$R/$name.log" | sed 's/^/   | /'
	# A Go test binary's own -test.timeout, set inside the step's, fires
	# first: it panics with every goroutine's stack and exits 2. That is
	# a hang all the same, and is told as one (netstep cuts the limits of
	# the steps after it).
	if (( rc == 2 )) && [[ $1 == "$B"/*.test ]] && grep -q '^panic: test timed out' "$R/$name.log"; then
		rc=124
	fi
	if (( rc == 124 || rc == 137 )); then
		if [[ -n $cut ]]; then
			say "TIMEOUT $name: its limit was cut to ${limit}s to end within the ${BUDGET}s budget and ${GRACE}s grace"
		else
			say "TIMEOUT $name"
		fi
	fi
	(( rc != 0 && rc != 124 && rc != 137 )) && say "FAILED $name (exit $rc)"
	save_out
	return $rc
}

# netstep NAME TIMEOUT CMD...: step for commands that build our network
# (bench, crosscheck, export, the pipeline and train steps). They share
# its code, so after one of them hangs the others are likely to: each
# later one gets at most 45 s (a healthy crosscheck or export needs most
# of that), the exports for the oracle are skipped, and the test binaries
# that say where it hangs run at once (diagnose). (A step stopped at a
# limit the budget cut leaves no budget for the steps after it: its
# TIMEOUT line says so, and the skips follow.)
nethung=""
netstep() {
	local name=$1 limit=$2
	shift 2
	if [[ -n $nethung ]] && (( limit > 45 )); then
		say "$name: timeout cut to 45 s, as $nethung hung"
		limit=45
	fi
	step "$name" "$limit" "$@"
	local rc=$?
	(( rc == 124 || rc == 137 )) && [[ -z $nethung ]] && nethung=$name
	return $rc
}

# feedstep NAME TIMEOUT CMD...: netstep for the steps that train through
# pkg/feed (pipeline-*, train-cuda, learn-cuda): they share its copier
# and events, so after one hangs the others would too, each costing its
# whole timeout, and they are skipped.
hung=""
feedstep() {
	if [[ -n $hung ]]; then
		say "SKIP $1: $hung timed out, and it runs the same feed"
		return 99
	fi
	netstep "$@"
	local rc=$?
	(( rc == 124 || rc == 137 )) && hung=$1
	return $rc
}

record_test() { # binary logfile rc
	local p f s verdict=PASS
	(( $3 == 98 )) && return # not selected: nothing ran, nothing to report
	p=$(grep -sc '^--- PASS' "$2")
	f=$(grep -sc '^--- FAIL' "$2")
	s=$(grep -sc '^--- SKIP' "$2")
	(( $3 != 0 )) && verdict=FAIL
	(( $3 == 124 || $3 == 137 )) && verdict=TIMEOUT
	(( $3 == 99 )) && verdict=SKIPPED
	# Every test skipped (no library, say) is not a pass.
	(( $3 == 0 && ${p:-0} + ${f:-0} == 0 )) && verdict=SKIPPED
	printf '{"kind":"test","binary":"%s","verdict":"%s","pass":%d,"fail":%d,"skip":%d,"rc":%d}\n' "$1" "$verdict" "${p:-0}" "${f:-0}" "${s:-0}" "$3" >>$R/tests.jsonl
}

# diagnose runs, once, the test binaries that exercise the network code
# piece by piece (pkg/nn/gpu's, pkg/feed's): where the steps' order puts
# them, or as soon as a step that builds the network has hung, since they
# say where.
diagnosed=""
diagnose() {
	[[ -n $diagnosed ]] && return 0
	diagnosed=1
	[[ -n $nethung ]] && say "diagnosing: $nethung hung, so the network's own tests run now"
	# TestGPUCrossCheck's work is done (and recorded) by `gpucheck crosscheck`.
	step gpu-test 120 $B/gpu.test -test.timeout 110s -test.v -test.run 'GPU|NVRTC' -test.skip 'CrossCheck|LayerCheck'
	record_test gpu.test $R/gpu-test.log $?
	# The feed's bytes on the device: slots poisoned when released, steps held
	# back by a spin kernel, for 1, 2 and 4 buffers (a second or two).
	step feed-test 45 $B/feed.test -test.timeout 40s -test.v -test.run '^TestGPUFeedBytes$'
	record_test feed.test $R/feed-test.log $?
}

# --- binaries -------------------------------------------------------------
# Unpacked into the work folder, which every run starts afresh, so gpu/
# itself keeps only what scripts/gpu-check.sh put there.
B=$W/bin
mkdir -p $B
unpacked=""
tar -xJf $G/bin.tar.xz -C $B 2>/dev/null && unpacked=tar
# Without xz, any Python's tarfile (the torch search below comes later).
for c in python3 python /opt/torch/.venv/bin/python3 /opt/conda/bin/python /usr/bin/python3; do
	[[ -n $unpacked ]] && break
	command -v "$c" >/dev/null 2>&1 || continue
	"$c" -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" $G/bin.tar.xz $B && unpacked=$c
done
[[ -z $unpacked ]] && { echo "cannot unpack $G/bin.tar.xz (no xz, and no Python could)"; exit 1; }
export ALEXNET_REQUIRE_GPU=1
export ALEXNET_PTX_CACHE=$W/ptx-cache
export PYTHONFAULTHANDLER=1

# --- the machine ------------------------------------------------------------
say "nvidia-smi"
timeout -k 5 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit,pcie.link.gen.max --format=csv,noheader \
	| head -1 | tee "$R/nvidia-smi.txt"
timeout -k 5 30 nvidia-smi >"$R/nvidia-smi-full.txt" 2>&1
# Clocks, power and utilisation every 2 s for the whole run, in the
# background: the table's figures can then be read against the clocks
# they ran at, and a reader of NVML keeps the driver initialised between
# the steps' processes (it changes no setting).
if command -v nvidia-smi >/dev/null 2>&1; then
	nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu,memory.used \
		--format=csv -l 2 >"$R/smi.csv" 2>&1 &
	SMI_PID=$!
fi
[[ -f $G/BUILD ]] && say "build: $(cat $G/BUILD)"
# GPUCHECK_PYTHON, when set (even empty: none), skips the search, which
# imports torch with each candidate.
PY=${GPUCHECK_PYTHON-}
PY_CUDA=1 # a Python named by GPUCHECK_PYTHON is taken to see the GPU
if [[ -z ${GPUCHECK_PYTHON+set} ]]; then
	# The first whose torch sees a GPU; failing that, the first with torch
	# at all (its CPU-only torch still runs the oracle's module checks).
	cpu_py=""
	PY_CUDA=""
	for c in python3 python /opt/torch/.venv/bin/python3 /opt/conda/bin/python /usr/local/bin/python3 /usr/bin/python3; do
		command -v "$c" >/dev/null 2>&1 || continue
		timeout -k 5 60 "$c" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" >/dev/null 2>&1
		case $? in
		0) PY=$(command -v "$c"); PY_CUDA=1; break ;;
		3) [[ -z $cpu_py ]] && cpu_py=$(command -v "$c") ;;
		esac
	done
	[[ -z $PY ]] && PY=$cpu_py
fi
say "python with torch: ${PY:-none}"
NVLIBS=""
if [[ -n $PY ]]; then
	NVLIBS=$("$PY" -c "import site,glob; print(':'.join(sorted(d for p in site.getsitepackages()+[site.getusersitepackages()] for d in glob.glob(p+'/nvidia/*/lib'))))" 2>/dev/null)
fi
# Ours loads the same cuBLAS, cuDNN and NVRTC as PyTorch (its wheels'
# folders first), so the comparison is like for like; if they do not all
# load from there, pkg/cuda's own search (toolkit, system) is used.
broken() { grep -q '| \(cuDNN\|cuBLAS\|NVRTC\|CUDA driver\) | \(missing\|unusable\)' "$1"; }
SEARCH="found by pkg/cuda's own search"
if [[ -n $NVLIBS ]]; then
	export ALEXNET_CUDA_LIB=$NVLIBS
	SEARCH="PyTorch's wheels first (ALEXNET_CUDA_LIB=$NVLIBS)"
	timeout -k 5 60 $B/gpucheck probe >"$R/probe.md" 2>&1
	if broken "$R/probe.md"; then
		unset ALEXNET_CUDA_LIB
		SEARCH="found by pkg/cuda's own search (PyTorch's wheels did not all load)"
	fi
fi
[[ -z ${ALEXNET_CUDA_LIB:-} ]] && timeout -k 5 60 $B/gpucheck probe >"$R/probe.md" 2>&1
# The search goes past a copy it refuses (a CUDA major the driver cannot
# run) to the next: then not every library is PyTorch's, and the
# comparison must say so.
if grep -q 'passed over (opened, then refused)' "$R/probe.md"; then
	SEARCH="$SEARCH; some copies were passed over, so not all are PyTorch's: see the probe"
fi
say "libraries: $SEARCH"
cat "$R/probe.md" | head -8
# machine_facts appends the machine record; it is written once the
# libraries are known and again at the end (with the run's length), so a
# run killed at the call's limit still has its facts.
torchinfo=""
machine_facts() {
	local nvcc cpu mem build=""
	nvcc=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)
	if [[ -z $torchinfo && -n $PY ]]; then # once: importing torch takes seconds
		torchinfo=$(timeout -k 5 90 "$PY" -c "
import json, torch
try:
    import torchvision; tv = torchvision.__version__
except Exception:
    tv = ''
print(json.dumps({'torch': torch.__version__, 'torch_cuda': torch.version.cuda or '', 'torch_cudnn': torch.backends.cudnn.version(), 'torchvision': tv}))" 2>/dev/null || echo '{}')
	fi
	[[ -z $torchinfo ]] && torchinfo='{}'
	cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/"//g')
	mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
	[[ -f $G/BUILD ]] && build=$(tr -d '"\\' <"$G/BUILD")
	printf '{"kind":"machine","date":"%s","seconds":%d,"python":"%s","nvcc":"%s","nvidia_libs":"%s","library_search":"%s","cpu":"%s","cores":%d,"mem":"%s","build":"%s","torch_info":%s}\n' \
		"$(date -u +%Y-%m-%dT%H:%MZ)" "$(elapsed)" "${PY:-none}" "${nvcc:-not found}" "$NVLIBS" "$SEARCH" "$cpu" "$(nproc)" "$mem" "$build" "$torchinfo" >>$R/machine.jsonl
}
machine_facts
save_out

# --- cuDNN's graph API, before anything relies on it -------------------------
# The planner times the graph API's engines beside the legacy algorithms
# (pkg/cuda/cudnn_graph.go). Every engine it offers for two shapes runs
# here against a float64 reference first; if that fails or crashes, the
# rest of the run keeps to the legacy algorithms (ALEXNET_CUDNN_GRAPH=0),
# so one mistake there cannot cost the measurements.
step cudnn-graph 90 $B/cuda.test -test.timeout 80s -test.v -test.run '^TestGPUGraphConvolution$'
rc=$?
record_test cuda.test-graph $R/cudnn-graph.log $rc
if (( rc != 0 && rc != 98 && rc != 99 )); then
	export ALEXNET_CUDNN_GRAPH=0
	say "cuDNN graph API: its test did not pass (exit $rc); the rest of the run uses the legacy algorithms only"
fi

# --- ours, synthetic data on the device ------------------------------------
for m in alexnet-owt alexnet; do
	netstep "bench-$m-tf32" 90 $B/gpucheck bench --model $m --precision tf32 --profile-steps 10 --json $R/bench.jsonl
	rc=$?
	if (( rc != 0 && rc != 98 && rc != 99 )) && [[ ${ALEXNET_CUDNN_GRAPH:-} != 0 ]]; then
		# The graph API's engines passed their own test but the net
		# failed: keep the measurements with the legacy algorithms.
		export ALEXNET_CUDNN_GRAPH=0
		say "bench-$m-tf32 failed with cuDNN's graph API on; the rest of the run uses the legacy algorithms only"
		netstep "bench-$m-tf32-retry" 90 $B/gpucheck bench --model $m --precision tf32 --profile-steps 10 --json $R/bench.jsonl
	fi
done
# What the graph API's engines buy: the same bench with the legacy
# algorithms only (its own records file; the table reads the default's).
if [[ ${ALEXNET_CUDNN_GRAPH:-} != 0 ]]; then
	for m in alexnet-owt alexnet; do
		ALEXNET_CUDNN_GRAPH=0 netstep "bench-$m-tf32-legacy" 90 $B/gpucheck bench --model $m --precision tf32 --json $R/bench-legacy.records
	done
fi

# --- PyTorch, the same terms ------------------------------------------------
if [[ -n $PY ]]; then
	for m in alexnet alexnet-owt; do $B/gpucheck spec --model $m >"$R/spec-$m.json"; done
	step torch-bench-tf32 120 "$PY" $G/torch_bench.py --specs $R --models torchvision,alexnet,alexnet-owt --precisions tf32 --profile-steps 10 --json $R/torch.jsonl
fi

# --- the test binaries ------------------------------------------------------
# pkg/cuda's first (no network code): before the steps that build the
# network, so a hang there cannot spend the time they need to say why.
# With a C++ compiler here, TestBindingsAgainstHeaders also checks every
# binding and constant against the wheels' own CUDA 13 and cuDNN headers.
if [[ -n $PY ]]; then
	NVINC=$("$PY" -c "import site,glob; print(':'.join(sorted(d for p in site.getsitepackages()+[site.getusersitepackages()] for d in glob.glob(p+'/nvidia/*/include'))))" 2>/dev/null)
	[[ -n $NVINC ]] && export ALEXNET_CUDA_INCLUDE=$NVINC
fi
# The toolkit's headers after the wheels': the wheels may lack cuda.h, and
# then the driver bindings would go unchecked.
if [[ -f /usr/local/cuda/include/cuda.h ]]; then
	export ALEXNET_CUDA_INCLUDE=${ALEXNET_CUDA_INCLUDE:+$ALEXNET_CUDA_INCLUDE:}/usr/local/cuda/include
fi
# On its own, before anything has loaded them: a copy of cuBLAS, cuDNN,
# NVRTC or libcuda refused by the search (here: every one) must unload,
# with the sub-libraries cuDNN's shim may load when asked its version.
step unload-test 30 $B/cuda.test -test.timeout 25s -test.v -test.run '^TestRefusedRealLibraryUnloads$'
record_test cuda.test-unload $R/unload-test.log $?
# (TestGPUGraphConvolution ran as its own step, cudnn-graph.)
step cuda-test 120 $B/cuda.test -test.timeout 110s -test.v -test.run 'GPU|Probe|NVRTC|Headers' -test.skip GraphConvolution
record_test cuda.test $R/cuda-test.log $?
# Apart: Go runs a binary's benchmarks only when every one of its tests
# passed, and these are the host-overhead figures (launch, context entry).
step cuda-bench 60 $B/cuda.test -test.timeout 50s -test.run '^$' -test.bench GPU -test.benchtime 2000x

# --- the layer check: every layer against float64 --------------------------
# Every layer of a full-size step against float64 on its own GPU inputs
# (TestGPULayerCheck): four networks and their references on the CPU's
# cores (about a minute on 16), in a step of its own so that its time
# cannot cost the other tests theirs, and before the end-to-end checks,
# as it is the one that decides whether the backend is right. It builds
# networks: after a hang in that code it could not finish, so it is
# skipped (the diagnosis runs instead).
if [[ -n $nethung ]]; then
	say "SKIP layer-check: $nethung hung (the check builds four networks)"
else
	ALEXNET_LAYERCHECK_JSON=$R/layercheck.jsonl netstep layer-check 180 $B/gpu.test -test.timeout 170s -test.v -test.run '^TestGPULayerCheck$'
	record_test gpu.test-layers $R/layer-check.log $?
fi

# --- cross-checks: CPU backend, and PyTorch as an outside oracle -------------
# A bench that hung: the tests that say where come before more steps that
# build the network.
[[ -n $nethung ]] && diagnose
netstep crosscheck 180 $B/gpucheck crosscheck --models small,alexnet-owt,alexnet --batch 8 --json $R/crosscheck.jsonl
# train --dropout paper (kept units ×1, evaluation ×0.5: the scale_fwd
# kernel) on small-fc, whose fc layer has dropout.
netstep crosscheck-paper-dropout 60 $B/gpucheck crosscheck --models small-fc --dropout paper --batch 8 --json $R/crosscheck.jsonl
# The same TF32 check with FFT and Winograd refused: how much of TF32's
# error their transforms add (its own records file: the table reads the
# default's).
ALEXNET_CUDNN_TRANSFORMS=0 netstep crosscheck-notransforms 90 $B/gpucheck crosscheck --models alexnet-owt,alexnet --precisions tf32 --batch 8 --json $R/crosscheck-notransforms.records
for m in alexnet-owt alexnet; do
	ALEXNET_CUDNN_TRANSFORMS=0 netstep "bench-$m-tf32-notransforms" 90 $B/gpucheck bench --model $m --precision tf32 --json $R/bench-notransforms.records
done
if [[ -n $PY ]]; then
	# A torch without CUDA still checks our exported step on the CPU.
	odev=cpu
	[[ -n $PY_CUDA ]] && odev=cuda
	for m in alexnet alexnet-owt; do
		if [[ -n $nethung ]]; then
			# An export runs the step that hung.
			for st in export-$m oracle-$m export-$m-tf32 oracle-$m-tf32; do say "SKIP $st: $nethung hung"; done
			continue
		fi
		exp=netstep
		selected "oracle-$m" && exp="forced netstep"
		$exp "export-$m" 90 $B/gpucheck export --model $m --batch 16 --precision fp32 --out $W/oracle-$m &&
			step "oracle-$m" 90 "$PY" $G/torch_oracle.py --device "$odev" --json $R/oracle.jsonl $W/oracle-$m
		# TF32 against PyTorch's TF32, and both against PyTorch's float32
		# step: how far TF32 itself moves the gradients on this batch.
		exp=netstep
		selected "oracle-$m-tf32" && exp="forced netstep"
		$exp "export-$m-tf32" 90 $B/gpucheck export --model $m --batch 16 --precision tf32 --out $W/oracle-$m-tf32 &&
			step "oracle-$m-tf32" 90 "$PY" $G/torch_oracle.py --device "$odev" --tol 1e-2 --json $R/oracle.jsonl $W/oracle-$m-tf32
	done
fi

diagnose

# --- ours, fed by the real pipeline from shards -----------------------------
# A tree of 1000 classes (so fc8 is ImageNet's): the carried JPEGs, copied
# into their own class folders many times over, the rest of the classes
# empty. ingest then writes 256-px shards as it would for ImageNet.
shardsteps=""
for m in alexnet-owt alexnet; do selected "pipeline-$m" && shardsteps+=" pipeline-$m"; done
selected train-cuda && shardsteps+=" train-cuda"
selected pipeline-cpu && shardsteps+=" pipeline-cpu"
if ! compgen -G "$G/images/*.JPEG" >/dev/null; then
	say "SKIP ingest: no JPEGs in $G/images (just gpu-check found no sample)"
elif [[ -n $shardsteps ]] || selected ingest; then
	T=$W/imagenet/train
	# One process (thousands of links and folders: a bash loop forked
	# ~5,000 times, 30-50 s on the development machine); a step like the
	# others, with a timeout and a log. Hard links: ingest only reads them.
	forced step tree 60 "${PY:-python3}" -c '
import os, shutil, sys, glob
g, t, copies, flat = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.makedirs(t, exist_ok=True)
# Every copy again, flat: the reference of pipeline-cpu reads the sources
# of the shards (by name, as many as records), not the originals.
os.makedirs(flat, exist_ok=True)
n = 0
for f in sorted(glob.glob(os.path.join(g, "images", "*.JPEG"))):
    wnid = os.path.basename(f).split("_")[0]
    d = os.path.join(t, wnid)
    os.makedirs(d, exist_ok=True)
    for k in range(1, copies + 1):
        # n_k, not nk: image 1s copy 11 and image 11s copy 1 must differ.
        dst = os.path.join(d, "%s_%d_%d.JPEG" % (wnid, n, k))
        for to in (dst, os.path.join(flat, os.path.basename(dst))):
            try:
                os.link(f, to)
            except OSError:
                shutil.copyfile(f, to)
    n += 1
have = len(os.listdir(t))
for i in range(1, 1000 - have + 1):
    os.makedirs(os.path.join(t, "n9%07d" % i), exist_ok=True)
imgs = sum(len(fs) for _, _, fs in os.walk(t))
print("%d images in %d classes" % (imgs, len(os.listdir(t))))
' "$G" "$T" "${GPUCHECK_COPIES:-60}" "$W/ref-jpegs"
	treed=$?
	if (( treed == 99 )); then
		say "SKIP ingest: budget of ${BUDGET}s spent"
		ingested=1
	elif (( treed != 0 )); then
		# A tree cut short would be ingested as a smaller dataset.
		say "SKIP ingest: the tree step failed"
		ingested=1
	elif [[ -n $shardsteps ]]; then
		forced step ingest 120 $B/ingest --out $W/shards --splits train --quiet $W/imagenet
		ingested=$?
	else
		step ingest 120 $B/ingest --out $W/shards --splits train --quiet $W/imagenet
		ingested=$?
	fi
	if (( ingested == 0 )); then
		for m in alexnet-owt alexnet; do
			feedstep "pipeline-$m" 120 $B/gpucheck pipeline --shards $W/shards --model $m --precision tf32 --steps 500 --json $R/pipeline.jsonl
		done
		# The train command itself: trainer.Train streaming through
		# pkg/feed (its log says "one step ahead" and each line's data wait).
		# Half the paper's rate: 48 images over 1000 classes can throw the
		# first steps' loss up (seen on the CPU at batch 8), and a stop on
		# a loss that is not finite would read as a GPU fault.
		feedstep train-cuda 90 $B/train --device cuda --shards $W/shards --model alexnet-owt --batch 128 --epochs 3 --max-steps 60 \
			--lr 0.005 --log-every 20 --out $W/run
	fi
fi

# --- learning: the CPU's short training (run at build) again on the GPU -----
# The same shards, flags and seed; the table sets the two test errors side
# by side. TF32 and cuDNN's sums take another path than the CPU's, so the
# errors agree within the spread of seeds, not bit for bit.
if [[ -d $G/fmnist && -s $G/learn-args && -s $G/learn-cpu.json ]]; then
	cp -f "$G/learn-cpu.json" "$R/learn-cpu.json"
	read -ra largs <"$G/learn-args"
	feedstep learn-cuda 90 bash -c 'out=$1; shift; exec "$@" >"$out"' _ "$R/learn-cuda.json" \
		$B/train --device cuda --shards $G/fmnist "${largs[@]}" --out $W/learn --json
elif selected learn-cuda; then
	say "SKIP learn-cuda: no Fashion-MNIST shards in $G (just gpu-check found no dataset)"
fi

# train --deterministic's algorithms and pooling against the same CPU figures:
# the paper's model (grouped convolutions, LRN, overlapping pooling)
netstep crosscheck-det 120 $B/gpucheck crosscheck --deterministic --models alexnet --batch 8 --json $R/crosscheck.jsonl

# --- fp32, last: the least needed -----------------------------------------
for m in alexnet-owt alexnet; do
	netstep "bench-$m-fp32" 90 $B/gpucheck bench --model $m --precision fp32 --json $R/bench.jsonl
done
if [[ -n $PY ]]; then
	step torch-bench-fp32 120 "$PY" $G/torch_bench.py --specs $R --models torchvision,alexnet-owt,alexnet --precisions fp32 --json $R/torch.jsonl
fi

# --- what train --deterministic costs: the tf32 bench again, deterministic
# cuDNN algorithms and pooling only (TestGPUDeterministic checks that it
# repeats bit for bit) ----------------------------------------------------
for m in alexnet-owt alexnet; do
	netstep "bench-$m-tf32-det" 90 $B/gpucheck bench --model $m --precision tf32 --deterministic --json $R/bench.jsonl
done

# --- the input pipeline on this machine's cores, beside PyTorch's DataLoader --
# Last, as the least needed: no GPU, just the many cores a GPU machine has
# (the development machine has 2). The shards are the real-pipeline step's.
# It starts only with 120 s of the budget left, so that it cannot push the
# table past the device call's limit.
if [[ -d $W/shards ]] && (( $(elapsed) + 120 <= BUDGET )); then
	refargs=(--reference=false)
	[[ -n $PY ]] && refargs=(--python "$PY" --reference-images $W/ref-jpegs --reference-script $G/torch_loader.py --reference-batches 40)
	step pipeline-cpu 120 bash -c 'out=$1; shift; exec "$@" >"$out"' _ "$R/pipeline-cpu.json" \
		$B/benchpipeline --shards $W/shards --rounds 1 --batches 100 --quality=false --json "${refargs[@]}"
elif [[ -d $W/shards ]]; then
	say "SKIP pipeline-cpu: under 120 s of the ${BUDGET}s budget left"
fi

machine_facts
say "done; logs in $R"
# The device tool brings back what is under $OUT: the logs and results
# (small), not the work folder (shards, exports), which goes (the exit
# trap removes it however the run ends).
[[ -n ${SMI_PID:-} ]] && kill "$SMI_PID" 2>/dev/null
save_out
cat "$R/table.md"
