#!/usr/bin/env bash
# Crash survival: SIGKILL the daemon's serving process at random points of a lazy
# restore, many times; every page must still verify and the daemon must end with 0.
# Usage: test/crash/run.sh [--control] [ROUNDS]   (B: build dir)
#   --control: the same with --no-supervise (criu lazy-pages behaviour): memory must be
#              found corrupted, proving the test can fail.
set -u
B=${B:-build}
control=0
[ "${1:-}" = --control ] && { control=1; shift; }
ROUNDS=${1:-8}
extra=
[ $control -eq 1 ] && extra=--no-supervise
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/lp-crash.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
"$B/lp-crashtest" write "$work/img" || { echo "cannot write the checkpoint"; exit 1; }
total=0 failed=0
for r in $(seq 1 "$ROUNDS"); do
	log="$work/daemon.$r.log"
	rm -f "$work/img/lazy-pages.socket"
	"$B/lazypages" daemon $extra -D "$work/img" -o "$log" -v3 --stats-file "$work/stats.$r.json" --status-fd 3 3>"$work/ready.$r" &
	sup=$!
	for _ in $(seq 100); do [ -s "$work/ready.$r" ] && break; sleep 0.05; done
	timeout 120 "$B/lp-crashtest" restore "$work/img" >"$work/restore.$r.out" 2>&1 &
	rp=$!
	kills=0
	while kill -0 $rp 2>/dev/null && [ $kills -lt 6 ]; do
		sleep "0.0$((RANDOM % 6 + 2))"
		[ -e "$work/img/FORKING" ] && continue # see lp-crashtest.c
		grep -q '^summary:' "$log" 2>/dev/null && break # the server is ending normally
		# The serving process the supervisor last started (it logs each one), and only
		# while it is the supervisor's child: any other child, such as LeakSanitizer's
		# tracer at the supervisor's exit (make SAN=1), is not ours to kill (that hangs
		# the supervisor).
		if [ $control -eq 1 ]; then
			srv=$sup
		else
			srv=$(sed -n 's/.*supervisor: serving process \([0-9]*\) started$/\1/p' "$log" | tail -n 1)
			[ -n "$srv" ] && [ "$(awk '/^PPid:/ { print $2 }' "/proc/$srv/status" 2>/dev/null)" = "$sup" ] || srv=
		fi
		[ -n "$srv" ] && kill -KILL "$srv" 2>/dev/null && kills=$((kills + 1))
	done
	wait $rp; rrc=$?
	if timeout 60 tail --pid=$sup -f /dev/null; then
		wait $sup; drc=$?
	else
		echo "round $r: the daemon (pid $sup) is still running 60 s after the restore ended"
		kill -KILL $sup; wait $sup; drc=124
	fi
	restarts=$(grep -c "died (Killed)" "$log")
	total=$((total + kills))
	echo "round $r: $kills kills, $restarts restarts, restored process exit $rrc, daemon exit $drc"
	# A kill can land on a server that is already exiting normally: no restart then.
	if [ $rrc -ne 0 ] || [ $drc -ne 0 ] || { [ $kills -gt 0 ] && [ "$restarts" -lt 1 ]; } ||
		[ "$restarts" -gt "$kills" ]; then
		failed=$((failed + 1))
		sed 's/^/    /' "$work/restore.$r.out" | tail -5
		grep -i "error" "$log" | head -5 | sed 's/^/    /'
	fi
done
echo "$total kills in $ROUNDS rounds, $failed failed rounds"
if [ $control -eq 1 ]; then
	# Without the supervisor, the first kill ends the restore with zero pages.
	[ $failed -eq "$ROUNDS" ] && { echo "control: every round corrupted, as expected"; exit 0; }
	echo "control: some round survived without a supervisor: the test cannot tell"; exit 1
fi
[ $total -gt 0 ] || { echo "no kill landed: the test did not test anything"; exit 1; }
[ $failed -eq 0 ]
