#!/usr/bin/env bash
# Test runner: runs every test listed in test/TESTS (one command per line, run from the
# repository root with $B set to the build dir). Exit 0 = pass, 77 = skip, else fail.
# Prints one line per test and ends with "N passed, N failed[, N skipped]".
set -u
B=${1:-build}
export B
cd "$(dirname "$0")/.."
ROOT=$PWD
export ROOT
OUT=${TEST_OUT:-$ROOT/test/out}
mkdir -p "$OUT"
filter=${TESTS_FILTER:-}
pass=0 fail=0 skip=0 failed=()
while IFS= read -r line; do
	case "$line" in ''|'#'*) continue ;; esac
	name=${line%%:*}
	cmd=${line#*:}
	if [ -n "$filter" ] && ! [[ $name =~ $filter ]]; then continue; fi
	log="$OUT/$name.log"
	start=$(date +%s%N)
	( eval "$cmd" ) >"$log" 2>&1 </dev/null
	rc=$?
	ms=$(( ($(date +%s%N) - start) / 1000000 )); t="$((ms / 1000)).$((ms % 1000 / 100))"
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1)); echo "PASS $name (${t}s)"
	elif [ $rc -eq 77 ]; then
		skip=$((skip + 1)); echo "SKIP $name: $(tail -n 1 "$log")"
	else
		fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name (exit $rc, ${t}s), last lines of $log:"
		tail -n 25 "$log" | sed 's/^/    /'
	fi
done < test/TESTS
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
if [ $skip -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ $fail -eq 0 ] && [ $pass -gt 0 ]
