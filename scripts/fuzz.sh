#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 30s).
#
# A target fails on a real finding: go test exits non-zero and the input
# that failed is written under the package's testdata/fuzz/<target>/. Go
# 1.26's fuzz coordinator also fails a target with a bare "context deadline
# exceeded" and nothing written when -fuzztime ends while a worker is
# mid-exec (golang/go#75804, fixed in Go 1.27): such a run is retried once,
# and counted as a flake, not a failure, when the retry passes or ends the
# same way again with nothing written.
set -uo pipefail
FUZZTIME=${1:-30s}
pass=0 fail=0 flake=0
failed=() stalled=()
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $f"
		corpus="$dir/testdata/fuzz/$f"
		for try in 1 2; do
			before=$(ls "$corpus" 2>/dev/null | sort)
			out=$(go test "$pkg" -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 1s 2>&1)
			rc=$?
			after=$(ls "$corpus" 2>/dev/null | sort)
			printf '%s\n' "$out" | tail -n 3
			if ((rc == 0)); then
				((try == 1)) && pass=$((pass + 1)) || flake=$((flake + 1))
				break
			fi
			written=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | grep -v '^$' || true)
			if [[ -z $written ]] && grep -q 'context deadline exceeded' <<<"$out"; then
				# The same ending follows a worker stuck on one slow input
				# (a quadratic loop, say) past -fuzztime: its status lines
				# then show 0 execs a second before the end. Said, so that
				# a slow input is not taken for the race. (The last status
				# line, printed as the run stops, often says 0/sec.)
				if grep '^fuzz: elapsed' <<<"$out" | sed '$d' | grep -q '(0/sec)'; then
					echo "   (a worker made no progress for a while before the end: (0/sec) above; a slow input, the race or a loaded machine)"
					stalled+=("$pkg $f")
				fi
				if ((try == 1)); then
					echo "   (Go's fuzz coordinator race, golang/go#75804: nothing written; retrying once)"
					continue
				fi
				echo "   (the race again, nothing written: counted as a flake)"
				flake=$((flake + 1))
				break
			fi
			printf '%s\n' "$out" | tail -n 30
			[[ -n $written ]] && echo "   failing input: $corpus/$written"
			fail=$((fail + 1))
			failed+=("$pkg $f")
			break
		done
	done
done
echo "fuzz: $pass passed, $flake flaked (Go's coordinator race, nothing found), $fail failed"
for t in "${failed[@]}"; do
	echo "  FAILED: $t"
done
# A target stalled in both tries is named once.
while read -r t; do
	[[ -n $t ]] && echo "  stalled before a flake (look for a slow input): $t"
done < <(printf '%s\n' "${stalled[@]}" | sort -u)
((fail == 0))
