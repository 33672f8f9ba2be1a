#!/usr/bin/env bash
# The stress test as the suite runs it (docs/kernel.md, "Stress test"): lp-stress drives the
# real daemon ($B/lazypages) on the real kernel.
#   1. a short run with every storm (madvise, fork, signals): must PASS (exit 0);
#   2. the self-test, the daemon with --inject-bug dontwake: the watchdog must catch the lost
#      wakeups (exit 2). A self-test that passes means the watchdog is blind.
# Usage: kernel/stress/run.sh [ROUNDS]   (default 20)
#   B: build dir (default build); LAZYPAGES: the daemon binary (default $B/lazypages);
#   OUT: where the logs of a failed run are kept (default test/out)
# Exit: 0 both as expected, 77 userfaultfd not available here, 1 otherwise.
set -u
B=${B:-build}
ROUNDS=${1:-20}
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/test/out}
LAZYPAGES=${LAZYPAGES:-$B/lazypages}
for f in "$B/lp-stress" "$LAZYPAGES"; do
	[ -x "$f" ] || { echo "$f is missing: run make (B=$B)"; exit 1; }
done
work=$(mktemp -d /tmp/lp-stress-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work
fail=0

echo "== stress: -t 4 -n 4096 -r $ROUNDS -m -f -s (expect PASS)"
timeout 600 "$B/lp-stress" -t 4 -n 4096 -r "$ROUNDS" -m -f -s -w 1000 -T 60 "$LAZYPAGES"
rc=$?
if [ $rc -eq 77 ]; then
	echo "userfaultfd with criu's features is not available to this user"
	exit 77
fi
if [ $rc -ne 0 ]; then
	echo "FAIL: the stress run ended with exit $rc, expected 0 (2: watchdog, 3: wrong data or a broken invariant)"
	fail=1
fi

echo "== self-test: -b -t 4 -n 4096 -r 10 (expect the watchdog to fire: exit 2)"
timeout 300 "$B/lp-stress" -b -t 4 -n 4096 -r 10 -w 300 -T 60 "$LAZYPAGES"
rc=$?
if [ $rc -ne 2 ]; then
	echo "FAIL: the self-test ended with exit $rc, expected 2: the watchdog did not catch the injected lost wakeups"
	fail=1
fi

if [ $fail -ne 0 ] && ls -d "$work"/lp-stress.* >/dev/null 2>&1; then
	# Keep the daemon logs and stats of the failed rounds, not the checkpoints.
	rm -rf "$work"/lp-stress.*/img "$OUT/stress.kept"
	mkdir -p "$OUT/stress.kept" && mv "$work"/lp-stress.* "$OUT/stress.kept/" &&
		echo "daemon logs and stats of the failed rounds: $OUT/stress.kept"
fi
[ $fail -eq 0 ] && echo "stress: PASS, self-test caught the injected bug"
exit $fail
