#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Lazy restore end to end: mkckpt writes a checkpoint, `lazypages daemon` serves it, and
# lp-restore (the `criu restore --lazy-pages` double) restores it and verifies every page.
#
#   test/lazy/run.sh [SCENARIO...]      default: every scenario but "big"; "all": all of them
#   test/lazy/run.sh --list
#
# For each scenario: start the daemon with --status-fd on a FIFO and wait for its NUL byte;
# run lp-restore; require lp-restore to exit 0 (every page verified), the daemon to exit 0
# on its own, and its --stats-file JSON to add up: lazy_pages equals the checkpoint's lazy
# page count, lazy_pages + fork_pages = faulted + filled + dropped + orphaned, bytes =
# installed pages * 4096, and without events or forks: nothing dropped, orphaned or
# inherited, faulted + filled = lazy_pages, zero-filled pages <= never-dumped pages.
#
# Environment: B (build dir, default build), KEEP=1 keeps the scenario directories,
# DAEMON_ARGS extra daemon options, LAZY_TIMEOUT lp-restore's watchdog (default 120 s).
# Exit 0 pass, 1 fail, 77 skip.
set -u
B=${B:-build}
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
LP=$B/lazypages
MK=$B/mkckpt
LR=$B/lp-restore
TMO=${LAZY_TIMEOUT:-120}

ALL_SCENARIOS="single threads procs zombies many-vmas v42 img-v1 background no-spin events-dontneed
events-mremap events-munmap events-grow events-all fork fork-quiet fork-storm signals
register-first register-delay early-fill late-fill keep-socket workdir stress no-finish big"
DEFAULT_SCENARIOS=${ALL_SCENARIOS% big}

# scenario NAME: sets MK_ARGS, LR_ARGS, STRICT (no events/forks: exact accounting),
# EXPECT_DAEMON (exit status the daemon must have), BG (lp-restore waits for the daemon),
# D_ARGS (daemon options), EARLY (1: some pages must go in before the finish word, 0: none),
# SPIN (0: no fill thread may spin for random faults).
scenario() {
	MK_ARGS=() LR_ARGS=() STRICT=1 EXPECT_DAEMON=0 BG=0 EXPECT_LOG= WORK= D_ARGS=() EARLY= SPIN=
	case $1 in
	single) MK_ARGS=(--procs 1 --threads 1) LR_ARGS=(--threads 1 --order seq) ;;
	threads) MK_ARGS=(--threads 4 --size 32M)
		LR_ARGS=(--order mix --write-fraction 0.5 --modify-fraction 0.2) ;;
	procs) MK_ARGS=(--procs 4 --zombies 1 --threads 2 --size 16M) LR_ARGS=(--shuffle) ;;
	zombies) MK_ARGS=(--procs 2 --zombies 4) LR_ARGS=(--shuffle --seed 3) ;;
	many-vmas) MK_ARGS=(--layout many --size 4M --shared 2 --locked 2) LR_ARGS=(--threads 2) ;;
	v42) MK_ARGS=(--encoding v42 --procs 2) LR_ARGS=(--threads 2) ;;
	img-v1) MK_ARGS=(--img-version 1 --encoding both) LR_ARGS=() ;;
	background) MK_ARGS=(--size 64M --procs 2) LR_ARGS=(--touch-fraction 0.05 --threads 2) BG=1 ;;
	# random faults while the fill runs, and --busy-poll 0: no fill thread spins for them
	no-spin) MK_ARGS=(--size 128M) LR_ARGS=(--touch-fraction 0.3 --threads 2 --order rand) BG=1
		D_ARGS=(--busy-poll 0) SPIN=0 ;;
	# Big enough that the daemon is still filling while the events and forks happen.
	events-dontneed) MK_ARGS=(--size 128M) LR_ARGS=(--events dontneed --event-count 8 --threads 2) STRICT=0 ;;
	events-mremap) MK_ARGS=(--size 128M) LR_ARGS=(--events mremap --event-count 8 --threads 2) STRICT=0 ;;
	events-munmap) MK_ARGS=(--size 128M) LR_ARGS=(--events munmap --event-count 8 --threads 2) STRICT=0 ;;
	events-grow) MK_ARGS=(--size 128M) LR_ARGS=(--events grow --event-count 8 --threads 2) STRICT=0 ;;
	events-all) MK_ARGS=(--size 64M --procs 2 --threads 3)
		LR_ARGS=(--events all --event-count 4 --touch-fraction 0.5) STRICT=0 ;;
	fork) MK_ARGS=(--size 128M) LR_ARGS=(--fork 4 --threads 2) STRICT=0 ;;
	fork-quiet) MK_ARGS=(--size 128M) LR_ARGS=(--fork 4 --threads 1 --touch-fraction 0) STRICT=0 ;;
	fork-storm) MK_ARGS=(--size 128M) LR_ARGS=(--fork-storm 200 --threads 2) STRICT=0 ;;
	signals) MK_ARGS=(--size 64M --threads 4) LR_ARGS=(--signals) ;;
	register-first) MK_ARGS=(--procs 2) LR_ARGS=(--register-first) ;;
	register-delay) MK_ARGS=(--procs 2) LR_ARGS=(--register-delay 100 --shuffle) ;;
	# Restore still busy after registering: with --fill-early the fill starts meanwhile.
	early-fill) MK_ARGS=(--procs 2 --size 64M) LR_ARGS=(--register-delay 50 --finish-delay 300
		--touch-fraction 0.2 --shuffle) D_ARGS=(--fill-early) EARLY=1 ;;
	late-fill) MK_ARGS=(--procs 2 --size 64M) LR_ARGS=(--register-delay 50 --finish-delay 300
		--touch-fraction 0.2 --shuffle) EARLY=0 ;;
	keep-socket) MK_ARGS=(--procs 2) LR_ARGS=(--keep-socket) ;;
	workdir) MK_ARGS=(--procs 2 --zombies 1) LR_ARGS=() WORK=work ;;
	stress) MK_ARGS=(--size 64M --procs 3 --zombies 1 --threads 3)
		LR_ARGS=(--events all --fork 3 --fork-storm 50 --signals --touch-fraction 0.5
			--write-fraction 0.5 --shuffle) STRICT=0 ;;
	no-finish) MK_ARGS=(--procs 2 --zombies 1) LR_ARGS=(--no-finish --no-verify) EXPECT_DAEMON=1
		EXPECT_LOG='closed the connection before it finished' ;;
	big) MK_ARGS=(--layout one --size 1G --holes 0.05 --nonlazy 0.02) LR_ARGS=(--threads 2) ;;
	*) return 1 ;;
	esac
	return 0
}

if [ "${1:-}" = --list ]; then
	echo $ALL_SCENARIOS
	exit 0
fi
if [ $# -eq 0 ]; then
	set -- $DEFAULT_SCENARIOS
elif [ "$1" = all ]; then
	set -- $ALL_SCENARIOS
fi

for p in "$LP" "$MK" "$LR"; do
	[ -x "$p" ] || { echo "FAIL: $p not built"; exit 1; }
done
if ! "$LP" daemon --help >/dev/null 2>&1; then
	echo "$LP has no daemon sub-command"
	exit 77
fi
command -v python3 >/dev/null || { echo "python3 missing (stats checks)"; exit 77; }

top=$(mktemp -d "${TMPDIR:-/tmp}/lp-lazy.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$top"' EXIT
fails=0 passed=0 skipped=0 failed=()

# check_stats DAEMON-JSON MKCKPT-INFO LP-RESTORE-JSON STRICT: the daemon's accounting.
check_stats() {
	python3 - "$@" <<'EOF'
import json, sys
dj, info, lj, strict, early, spin = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5], sys.argv[6]
d = json.load(open(dj))
lr = json.load(open(lj))
ck = {}
for line in open(info):
    f = line.split()
    if len(f) == 2:
        ck[f[0]] = int(f[1])
errs = []
def want(cond, msg):
    if not cond:
        errs.append(msg)
want(d["processes"] == ck["procs"], f"processes {d['processes']} != {ck['procs']} live processes in pstree")
want(d["zombies"] == ck["zombies"], f"zombies {d['zombies']} != {ck['zombies']}")
want(d["lazy_pages"] == ck["lazy_pages"], f"lazy_pages {d['lazy_pages']} != {ck['lazy_pages']} PE_LAZY pages in the checkpoint")
want(d["lazy_pages"] == lr["lazy_pages"], f"lazy_pages {d['lazy_pages']} != {lr['lazy_pages']} lazy pages lp-restore saw")
inst = d["pages_faulted"] + d["pages_filled"]
acc = inst + d["pages_dropped"] + d["pages_orphaned"]
want(d["lazy_pages"] + d["fork_pages"] == acc,
     f"lazy_pages {d['lazy_pages']} + fork_pages {d['fork_pages']} != faulted {d['pages_faulted']} + filled {d['pages_filled']} + dropped {d['pages_dropped']} + orphaned {d['pages_orphaned']} = {acc}")
want(d["pages_filled_before_finish"] <= d["pages_filled"],
     f"pages_filled_before_finish {d['pages_filled_before_finish']} > pages_filled {d['pages_filled']}")
if early == "1":
    want(d["pages_filled_before_finish"] > 0, "no page went in before the finish word")
elif early == "0":
    want(d["pages_filled_before_finish"] == 0,
         f"{d['pages_filled_before_finish']} pages went in before the finish word without --fill-early")
# Fill threads go to nice 19 for random faults and come back: never back more often.
nd, nr = d["fill_priority_drops"], d["fill_priority_raises"]
want(0 <= nd - nr <= 8, f"fill threads went to nice 19 {nd} times but came back {nr} times")
# One worker at most keeps its CPU awake for random faults, and never longer than the run.
want(0 <= d["fill_standby_seconds"] <= d["seconds_total"],
     f"fill_standby_seconds {d['fill_standby_seconds']} not within 0..seconds_total {d['seconds_total']}")
if spin == "0":
    want(d["fill_standby_seconds"] == 0,
         f"a fill thread spun for {d['fill_standby_seconds']} s with --busy-poll 0")
want(d["bytes"] == inst * 4096, f"bytes {d['bytes']} != {inst} installed pages * 4096")
# The fault-lane and fill-chunk timings: counted, and their quantiles ordered.
want(d["fault_messages"] == 0 or d["fault_waits"] > 0, f"{d['fault_messages']} fault messages but fault_waits {d['fault_waits']}")
for h in ("fault_wait", "fill_chunk"):
    n = d["fault_waits" if h == "fault_wait" else "fill_chunks"]
    q = [d[f"{h}_p50_us"], d[f"{h}_p99_us"], d[f"{h}_max_us"]]
    want((n == 0 and q == [-1, -1, -1]) or (n > 0 and 0 <= q[0] <= q[1] <= q[2]),
         f"{h}: {n} samples, p50/p99/max {q}")
# Time sums: a loop thread's waits fit in its lifetime; copies add up to more than 0 s
# exactly when there were chunks; CPU fits in the CPUs for the daemon's lifetime.
import os
life = d["seconds_total"] + 0.05
want(0 <= d["fault_wait_seconds"] <= life, f"fault_wait_seconds {d['fault_wait_seconds']} outside 0..{life}")
want((d["fill_chunks"] == 0) == (d["fill_copy_seconds"] == 0),
     f"fill_copy_seconds {d['fill_copy_seconds']} for {d['fill_chunks']} chunks")
want(d["fill_copy_seconds"] <= life * 256, f"fill_copy_seconds {d['fill_copy_seconds']} > {life} s * 256 threads")
cpu = d["cpu_user_seconds"] + d["cpu_system_seconds"]
want(0 < cpu <= life * os.cpu_count() + 0.5, f"CPU {cpu} s outside 0..{life} s * {os.cpu_count()} CPUs")
want(d["wakeups_resolved_by_fill"] <= d["fault_waits"],
     f"wakeups_resolved_by_fill {d['wakeups_resolved_by_fill']} > fault_waits {d['fault_waits']}")
if strict:
    want(d["fork_pages"] == 0 and d["forks"] == 0, f"forks {d['forks']} / fork_pages {d['fork_pages']} without forks")
    want(d["pages_dropped"] == 0, f"pages_dropped {d['pages_dropped']} without events")
    want(d["pages_orphaned"] == 0, f"pages_orphaned {d['pages_orphaned']}: processes exited with pages left")
    want(inst == d["lazy_pages"], f"faulted + filled = {inst} != lazy_pages {d['lazy_pages']}")
    want(all(v == 0 for v in d["events"].values()), f"events {d['events']} without events")
    want(d["pages_zero"] <= ck["hole_pages"], f"pages_zero {d['pages_zero']} > {ck['hole_pages']} never-dumped pages")
print(f"  daemon: {d['lazy_pages']} lazy, {d['pages_faulted']} faulted, {d['pages_filled']} filled, "
      f"({d['pages_filled_before_finish']} before finish), {d['pages_zero']} zero, {d['pages_dropped']} dropped, {d['pages_orphaned']} orphaned, "
      f"{d['fork_pages']} fork pages, {d['eexist']} EEXIST, {d['fault_messages']} fault msgs, "
      f"events {d['events']}, forks {d['forks']}, {d['seconds_total']:.2f} s")
for e in errs:
    print("  stats: " + e)
sys.exit(1 if errs else 0)
EOF
}

run_one() {
	local name=$1 dir=$top/$1 dpid x lrc drc t0 t1 ms wdir why=""
	scenario "$name" || { echo "FAIL $name: unknown scenario (see --list)"; return 1; }
	mkdir -p "$dir"
	: >"$dir/stats.out"
	if ! "$MK" -D "$dir/img" --seed "${SEED:-1}" "${MK_ARGS[@]}" >"$dir/mkckpt.out" 2>&1; then
		echo "FAIL $name: mkckpt ${MK_ARGS[*]}"; sed 's/^/    /' "$dir/mkckpt.out"; return 1
	fi
	mkfifo "$dir/status"
	wdir=$dir/img
	if [ -n "$WORK" ]; then
		wdir=$dir/$WORK
		mkdir -p "$wdir"
		LR_ARGS+=(-W "$wdir")
	fi
	exec 8<>"$dir/status"
	# shellcheck disable=SC2086
	"$LP" daemon -D "$dir/img" -W "$wdir" --status-fd 3 --stats-file "$dir/daemon.json" ${DAEMON_ARGS:-} \
		"${D_ARGS[@]}" 3>"$dir/status" 2>"$dir/daemon.log" &
	dpid=$!
	if ! IFS= read -r -t 20 -d '' -n 1 x <&8 || [ -n "$x" ]; then
		exec 8<&-
		kill -9 $dpid 2>/dev/null; wait $dpid 2>/dev/null
		echo "FAIL $name: the daemon did not signal readiness on --status-fd"
		tail -n 20 "$dir/daemon.log" | sed 's/^/    daemon: /'
		return 1
	fi
	exec 8<&-
	[ "$BG" = 1 ] && LR_ARGS+=(--daemon-pid $dpid)
	t0=$(date +%s%N)
	"$LR" -D "$dir/img" --timeout "$TMO" --seed "${SEED:-1}" --stats-file "$dir/lp-restore.json" \
		"${LR_ARGS[@]}" >"$dir/lp-restore.out" 2>&1
	lrc=$?
	# The daemon exits on its own once every page is delivered.
	for _ in $(seq 1 300); do kill -0 $dpid 2>/dev/null || break; sleep 0.1; done
	if kill -0 $dpid 2>/dev/null; then
		kill -9 $dpid; wait $dpid 2>/dev/null
		drc=timeout
	else
		wait $dpid; drc=$?
	fi
	t1=$(date +%s%N)
	if [ $lrc -eq 77 ]; then
		echo "SKIP $name: $(tail -n 1 "$dir/lp-restore.out")"
		return 77
	fi
	if [ "$EXPECT_DAEMON" = 0 ]; then
		[ $lrc -eq 0 ] || why="lp-restore exit $lrc"
		[ "$drc" = 0 ] || why="${why:+$why, }daemon exit $drc"
		if [ -z "$why" ]; then
			check_stats "$dir/daemon.json" "$dir/img/mkckpt.info" "$dir/lp-restore.json" \
				"$STRICT" "$EARLY" "$SPIN" >"$dir/stats.out" 2>&1 || why="stats do not add up"
		fi
	else
		[ $lrc -eq 0 ] || why="lp-restore exit $lrc"
		[ "$drc" = "$EXPECT_DAEMON" ] || why="${why:+$why, }daemon exit $drc, expected $EXPECT_DAEMON"
		if [ -n "$EXPECT_LOG" ] && ! grep -q "$EXPECT_LOG" "$dir/daemon.log"; then
			why="${why:+$why, }daemon log lacks '$EXPECT_LOG'"
		fi
	fi
	ms=$(((t1 - t0) / 1000000))
	if [ -z "$why" ]; then
		echo "PASS $name ($((ms / 1000)).$((ms % 1000 / 100)) s): $(tail -n 1 "$dir/lp-restore.out" | sed 's/^lp-restore: //' | cut -c1-150)"
		cat "$dir/stats.out"
		return 0
	fi
	echo "FAIL $name: $why (mkckpt ${MK_ARGS[*]}; lp-restore ${LR_ARGS[*]}; dir $dir)"
	cat "$dir/stats.out"
	grep -E 'MISMATCH|TIMEOUT|stuck|failed|error|Error' "$dir/lp-restore.out" | head -n 8 | sed 's/^/    lp-restore: /'
	tail -n 3 "$dir/lp-restore.out" | sed 's/^/    lp-restore: /'
	grep -E 'Error|Warn' "$dir/daemon.log" | head -n 5 | sed 's/^/    daemon: /'
	tail -n 4 "$dir/daemon.log" | sed 's/^/    daemon: /'
	return 1
}

for s in "$@"; do
	run_one "$s"
	case $? in
	0) passed=$((passed + 1)) ;;
	77) skipped=$((skipped + 1)) ;;
	*) fails=$((fails + 1)); failed+=("$s") ;;
	esac
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$passed passed, $fails failed, $skipped skipped"
if [ $fails -eq 0 ] && [ $passed -eq 0 ] && [ $skipped -gt 0 ]; then
	echo "userfaultfd unavailable: every scenario skipped"
	exit 77
fi
[ $fails -eq 0 ]
