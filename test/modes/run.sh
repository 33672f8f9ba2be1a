#!/usr/bin/env bash
# Beyond CRIU: --on-demand, --record-ws / --prefetch, parent chains.
# Each case restores a mkckpt checkpoint with lp-restore (which verifies every page
# against the images) and asserts on the daemon's exit code and --stats-file.
set -u
B=${B:-build}
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/lp-modes.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
pass=0 fail=0

stat() { python3 -c "import json,sys; print(json.load(open('$1'))['$2'])"; }

# run NAME DAEMON_ARGS -- RESTORE_ARGS: daemon + restore double; sets $drc $rrc $st
run() {
	local name=$1; shift
	local dargs=() rargs=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do dargs+=("$1"); shift; done
	shift
	rargs=("$@")
	st="$work/$name.json"
	start_daemon "$img" "$name" --stats-file "$st" "${dargs[@]}"
	timeout 60 "$B/lp-restore" -D "$img" -q "${rargs[@]}" >"$work/$name.out" 2>&1
	rrc=$?
	stop_daemon
}

# start_daemon DIR NAME ARGS...: start it and wait for its readiness byte (--status-fd)
start_daemon() {
	local dir=$1 name=$2; shift 2
	rm -f "$work/$name.ready"
	"$B/lazypages" daemon -D "$dir" -o "$work/$name.log" -v3 "$@" --status-fd 3 3>"$work/$name.ready" &
	dpid=$!
	for _ in $(seq 200); do [ -s "$work/$name.ready" ] && return 0; sleep 0.05; done
	echo "daemon $name did not become ready"
}

# stop_daemon: wait up to 30 s for it to finish by itself, then kill it; sets $drc
stop_daemon() {
	timeout 30 tail --pid=$dpid -f /dev/null || kill -KILL $dpid 2>/dev/null
	wait $dpid
	drc=$?
}

check() { # check NAME CONDITION-DESCRIPTION COMMAND...
	local name=$1 what=$2; shift 2
	if "$@"; then pass=$((pass + 1)); echo "PASS $name: $what"
	else fail=$((fail + 1)); echo "FAIL $name: $what"; tail -3 "$work/$name.out" "$work/$name.log" 2>/dev/null | sed 's/^/    /'; fi
}

img="$work/img"
"$B/mkckpt" -D "$img" -S 32M -n 6 -q || exit 1
lazy=$("$B/lazypages" show --json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["lazy_pages"])')

# --on-demand: processes exit early: no background fill, daemon notices the exit.
run ondemand-exit --on-demand -- --no-verify
check ondemand-exit "daemon exit 0, restore exit 0" test $drc -eq 0 -a $rrc -eq 0
check ondemand-exit "nothing filled in the background" test "$(stat "$st" pages_filled)" -eq 0
check ondemand-exit "the exit was seen" test "$(stat "$st" exited)" -eq 1
check ondemand-exit "every lazy page left with the exited process" test "$(stat "$st" pages_orphaned)" -eq "$lazy"

# --on-demand with everything touched: all by faults, then exit.
run ondemand-all --on-demand --record-ws "$work/ws" -- --touch-fraction 0.3 --order rand --seed 3
check ondemand-all "daemon exit 0, memory verified" test $drc -eq 0 -a $rrc -eq 0
check ondemand-all "every lazy page came by a fault" test "$(stat "$st" pages_faulted)" -eq "$lazy" -a "$(stat "$st" pages_filled)" -eq 0
check ondemand-all "a working set was recorded" test "$(grep -vc '^#' "$work/ws")" -gt 0

# --prefetch: the recorded pages go in first, the rest by faults and fill.
run prefetch --prefetch "$work/ws" -- --touch-fraction 0.3 --order rand --seed 3
check prefetch "daemon exit 0, memory verified" test $drc -eq 0 -a $rrc -eq 0
check prefetch "pages were prefetched" test "$(stat "$st" pages_prefetched)" -gt 0
check prefetch "every page accounted for" test $(( $(stat "$st" pages_faulted) + $(stat "$st" pages_filled) )) -eq "$lazy"

# A broken working-set file is refused with a message naming the line.
printf '1 zz\n' >"$work/bad.ws"
"$B/lazypages" daemon -D "$img" --prefetch "$work/bad.ws" 2>"$work/bad.err"; rc=$?
check prefetch-bad "bad file: exit 1 naming file:line" test $rc -eq 1 -a -n "$(grep "bad.ws:1" "$work/bad.err")"

# One checkpoint, several restores at once from one daemon (--restores N).
mimg="$work/many"
"$B/mkckpt" -D "$mimg" -S 8M -p 2 -z 1 -q || exit 1
start_daemon "$mimg" many --restores 3 --stats-file "$work/many.json"
for k in 1 2 3; do timeout 60 "$B/lp-restore" -D "$mimg" -q >"$work/many.$k.out" 2>&1 & done
rcs=0
for j in $(jobs -p | grep -v "^$dpid$"); do wait "$j" || rcs=$((rcs + 1)); done
stop_daemon
check many "three concurrent restores verified, daemon exit 0" test $rcs -eq 0 -a $drc -eq 0
check many "one stats file per restore" test -s "$work/many.json.1" -a -s "$work/many.json.2" -a -s "$work/many.json.3"
# ... and one of them failing makes the daemon fail.
start_daemon "$mimg" many-fail --restores 2
timeout 60 "$B/lp-restore" -D "$mimg" -q >"$work/many-fail.1.out" 2>&1
timeout 60 "$B/lp-restore" -D "$mimg" -q --no-finish --timeout 5 >"$work/many-fail.2.out" 2>&1
stop_daemon
check many-fail "a restore that never finishes: daemon exit 1" test $drc -eq 1

# Pre-copy + post-copy: DIR/parent holds the older pages (PE_PARENT in DIR).
pimg="$work/parent-ckpt"
"$B/lp-crashtest" write-parent "$pimg" || exit 1
for mode in restore-parent restore-parent-eager; do
	start_daemon "$pimg" "$mode" --stats-file "$work/$mode.json"
	timeout 60 "$B/lp-crashtest" "$mode" "$pimg" >"$work/$mode.out" 2>&1
	rrc=$?
	stop_daemon
	check "$mode" "parent chain: daemon exit 0, every page right" test $rrc -eq 0 -a $drc -eq 0
done
check restore-parent-eager "pages restore filled (and the process changed) answer EEXIST" \
	test "$(stat "$work/restore-parent-eager.json" eexist)" -gt 0

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
