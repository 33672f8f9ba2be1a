#!/bin/sh
# Guest side of the VM tier (busybox ash, run by /init from the host share at /mnt).
# /mnt/config sets MODE (test|demo), DAEMON (criu|lazypages) and SCENARIOS.
# Results: one "RESULT name PASS|FAIL seconds details" line per scenario on the console and
# in /mnt/results/summary (ended by "DONE"), each scenario's logs in /mnt/results/NAME/.
#
# A scenario: start the workload (setsid, no tty), `criu dump` it, start the lazy-pages
# daemon and wait for its --status-fd byte through a FIFO, `criu restore --lazy-pages -d`,
# tell the workload it was restored (SIGUSR1: it runs its after-restore actions and
# verifies every page), wait for the daemon to exit 0, see the workload tick on, then
# SIGTERM it: it verifies everything again and prints FINAL ... result=PASS.
# Every criu call and every wait has a time limit: a broken daemon fails, never hangs.

R=/mnt/results
mkdir -p "$R"
. /mnt/config
: "${MODE:=test}" "${DAEMON:=criu}" "${SCENARIOS:=}"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ "${DEBUG:-0}" = 1 ] && set -x

say() { echo "lp-vm: $*"; }

# time in centiseconds since boot
now_cs() {
	read -r u _ </proc/uptime
	echo $((${u%.*} * 100 + 1${u#*.} - 100))
}
secs() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }

# alive PID: exists and is not a zombie
alive() {
	[ -r "/proc/$1/status" ] || return 1
	! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# wait_line REGEX FILE SECONDS [PID]: wait for a line; gives up early once PID is gone.
wait_line() {
	end=$(($(now_cs) + $3 * 100))
	while :; do
		grep -q "$1" "$2" 2>/dev/null && return 0
		if [ -n "${4:-}" ] && ! alive "$4"; then
			grep -q "$1" "$2" 2>/dev/null && return 0
			return 2
		fi
		[ "$(now_cs)" -lt "$end" ] || return 1
		usleep 50000
	done
}

# wait_gone PID SECONDS
wait_gone() {
	end=$(($(now_cs) + $2 * 100))
	while alive "$1"; do
		[ "$(now_cs)" -lt "$end" ] || return 1
		usleep 50000
	done
	return 0
}

children_of() { cat /proc/"$1"/task/*/children 2>/dev/null; }

# kill_tree PID: SIGKILL PID and its descendants (stopped first, so nothing respawns)
kill_tree() {
	kill -STOP "$1" 2>/dev/null
	for c in $(children_of "$1"); do
		kill_tree "$c"
	done
	kill -9 "$1" 2>/dev/null
}

rss_mib() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$1/status" 2>/dev/null; }

last_tick() { grep '^tick ' "$1" 2>/dev/null | tail -n 1 | awk '{ print $2 + 0 }'; }

# wait_tick FILE N SECONDS PID: wait until the workload's tick reaches N
wait_tick() {
	end=$(($(now_cs) + $3 * 100))
	while :; do
		c=$(last_tick "$1")
		[ "${c:-0}" -ge "$2" ] && return 0
		alive "$4" || return 2
		[ "$(now_cs)" -lt "$end" ] || return 1
		usleep 50000
	done
}

# save_logs DEST: copy the scenario's regular files (never a FIFO) to the share
save_logs() {
	mkdir -p "$1"
	for f in "$W"/*; do
		[ -f "$f" ] && cp "$f" "$1/"
	done
}

# fail REASON: record the first failure of the running scenario
fail() {
	[ -n "$REASON" ] || REASON=$*
	say "  $NAME: step failed: $*"
	return 1
}

# start_daemon KIND: start a lazy-pages daemon on $IMG, wait for its readiness byte.
# Sets DPID (the daemon itself) and DJOB (a wrapper that writes "EXITCODE END_CS" to
# $W/daemon.exit when the daemon ends, so its exit time is measured, not polled).
start_daemon() {
	rm -f "$W/status" "$W/daemon.exit" "$W/daemon.pid"
	mkfifo "$W/status"
	case $1 in
	criu) set -- timeout "$DTMO" criu lazy-pages -D "$IMG" --status-fd 9 -o "$W/daemon.log" -v4 ;;
	lazypages)
		[ -x /lp/lazypages ] || { fail "no lazypages binary in the initramfs (build it first)"; return 1; }
		set -- timeout "$DTMO" /lp/lazypages daemon -D "$IMG" --status-fd 9 -o "$W/daemon.log" -v4 \
			--stats-file "$W/stats.json"
		;;
	broken-*) set -- timeout "$DTMO" /lp/broken-daemon "--mode=${1#broken-}" -D "$IMG" --status-fd 9 -o "$W/daemon.log" ;;
	*) fail "unknown daemon $1"; return 1 ;;
	esac
	(
		"$@" 9>"$W/status" >"$W/daemon.out" 2>&1 &
		echo $! >"$W/daemon.pid"
		wait $!
		echo "$? $(now_cs)" >"$W/daemon.exit"
	) &
	DJOB=$!
	b=$(timeout 30 dd if="$W/status" bs=1 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
	rm -f "$W/status"
	n=0
	while [ ! -s "$W/daemon.pid" ] && [ $n -lt 100 ]; do usleep 50000; n=$((n + 1)); done
	DPID=$(cat "$W/daemon.pid" 2>/dev/null)
	[ "$b" = 00 ] || { fail "daemon ($1) did not report ready on --status-fd (read '$b')"; return 1; }
}

# wait_daemon SECONDS: wait for the daemon to end; sets DRC and DEND (centiseconds)
wait_daemon() {
	end=$(($(now_cs) + $1 * 100))
	while [ ! -s "$W/daemon.exit" ]; do
		[ "$(now_cs)" -lt "$end" ] || return 1
		usleep 50000
	done
	read -r DRC DEND <"$W/daemon.exit"
	wait "$DJOB" 2>/dev/null
	return 0
}

# The steps of one scenario; returns non-zero at the first failure (REASON says why).
steps() {
	setsid /lp/workload -m "$MIB" $WOPTS -p "$W/pid" >>"$W/workload.log" 2>&1 </dev/null &
	WJOB=$!
	wait_line '^READY' "$W/workload.log" $((20 + MIB / 8)) "$WJOB" || { fail "workload not READY"; return 1; }
	WPID=$(cat "$W/pid")
	wait_tick "$W/workload.log" 2 20 "$WPID" || { fail "workload does not tick"; return 1; }

	t=$(now_cs)
	timeout "$TMO" criu dump -t "$WPID" -D "$IMG" -o "$W/dump.log" -v4 >"$W/dump.out" 2>&1 ||
		{ fail "criu dump exited $?"; return 1; }
	T_DUMP=$(($(now_cs) - t))
	wait "$WJOB" 2>/dev/null
	wait_gone "$WPID" 10 || { fail "pid $WPID still alive after dump"; return 1; }
	IMGSZ=$(du -sm "$IMG" | awk '{ print $1 }')

	t=$(now_cs)
	start_daemon "$DKIND" || return 1
	T_READY=$(($(now_cs) - t))

	t0=$(now_cs)
	timeout "$TMO" criu restore -D "$IMG" --lazy-pages -d -o "$W/restore.log" -v4 \
		>"$W/restore.out" 2>&1 </dev/null &
	RJOB=$!
	if [ "$KILL" != 0 ]; then
		# Mid-transfer: once the restored workload runs its own code again and an
		# eighth of its memory has arrived (or when restore returns, if sooner).
		while alive "$RJOB"; do
			rss=$(rss_mib "$WPID")
			[ "$(readlink "/proc/$WPID/exe" 2>/dev/null)" = /lp/workload ] &&
				[ "${rss:-0}" -ge $((MIB / 8)) ] && break
			usleep 10000
		done
		rss=$(rss_mib "$WPID")
		case $KILL in
		tree)	# the daemon and every process it started
			kill_tree "$DPID"
			say "  $NAME: killed the daemon (pid $DPID and its children) with ${rss:-?} of $MIB MiB resident"
			;;
		server)	# only the daemon's children (a supervisor may restart them)
			kids=$(children_of "$DPID")
			[ -n "$kids" ] || { fail "daemon pid $DPID has no child process to kill"; return 1; }
			kill -9 $kids
			say "  $NAME: killed the daemon's child process(es) $kids with ${rss:-?} of $MIB MiB resident"
			;;
		esac
	fi
	wait "$RJOB" || { fail "criu restore exited $?"; return 1; }
	T_RESTORE=$(($(now_cs) - t0))
	alive "$WPID" || { fail "restored pid $WPID is not running: $(grep -E '^(CORRUPT|FAIL)' "$W/workload.log" | head -n 1)"; return 1; }
	kill -USR1 "$WPID" 2>/dev/null || { fail "restored pid $WPID died: $(grep -E '^(CORRUPT|FAIL)' "$W/workload.log" | head -n 1)"; return 1; }
	wait_line '^VERIFY' "$W/workload.log" "$VTMO" "$WPID"
	case $? in
	1) fail "no VERIFY from the restored workload within ${VTMO}s (blocked on a page that never came?)"; return 1 ;;
	2) fail "the restored workload died before verifying: $(grep -E '^(CORRUPT|FAIL)' "$W/workload.log" | head -n 1)"; return 1 ;;
	esac
	T_VERIFY=$(($(now_cs) - t0))
	if [ "$KIND_FORK" = 1 ] && ! grep -q '^CHILD .*exit=0' "$W/workload.log"; then
		fail "forked child: $(grep '^CHILD' "$W/workload.log" | tr '\n' ' ')"
		return 1
	fi
	grep -q '^VERIFY.*result=PASS' "$W/workload.log" ||
		{ fail "$(grep -E '^(CORRUPT|VERIFY|FAIL)' "$W/workload.log" | head -n 2 | tr '\n' ' ')"; return 1; }

	wait_daemon "$DTMO" || { fail "daemon still running ${DTMO}s after restore"; return 1; }
	T_DAEMON=$((DEND - t0))
	[ "$DRC" = 0 ] || { fail "daemon exited $DRC"; return 1; }

	n=$(last_tick "$W/workload.log")
	wait_tick "$W/workload.log" $((n + 3)) 20 "$WPID" ||
		{ fail "workload stopped ticking after the daemon left (last tick $n)"; return 1; }
	! grep -q '^CORRUPT' "$W/workload.log" || { fail "$(grep -m1 '^CORRUPT' "$W/workload.log")"; return 1; }
	kill -TERM "$WPID"
	wait_line '^FINAL' "$W/workload.log" "$VTMO" "$WPID" || { fail "no FINAL line after SIGTERM"; return 1; }
	grep -q '^FINAL.*result=PASS' "$W/workload.log" || { fail "$(grep '^FINAL' "$W/workload.log")"; return 1; }
	wait_gone "$WPID" 10 || { fail "workload did not exit after FINAL"; return 1; }
	return 0
}

# scenario NAME DAEMON EXPECT(pass|fail) MIB "WORKLOAD OPTIONS" [KILL]
scenario() {
	NAME=$1 DKIND=$2 EXPECT=$3 MIB=$4 WOPTS=$5 KILL=${6:-0}  # KILL: 0, tree or server
	W=/tmp/s/$NAME IMG=/img/$NAME
	REASON="" WPID="" DPID="" DJOB="" WJOB=""
	T_DUMP=0 T_READY=0 T_RESTORE=0 T_VERIFY=0 T_DAEMON=0 IMGSZ=0
	KIND_FORK=0
	case " $WOPTS " in *" -f "*) KIND_FORK=1 ;; esac
	TMO=$((40 + MIB / 4)) VTMO=$((30 + MIB / 8)) DTMO=$((60 + MIB / 4))
	if [ "$EXPECT" = fail ]; then TMO=20 VTMO=10 DTMO=10; fi
	rm -rf "$W" "$IMG"
	mkdir -p "$W" "$IMG"
	say "=== $NAME: daemon=$DKIND workload='-m $MIB $WOPTS' expect=$EXPECT"
	start=$(now_cs)
	steps
	ok=$?
	# clean up whatever is left, whatever happened
	[ -n "$WPID" ] && alive "$WPID" && kill -9 "$WPID" 2>/dev/null
	[ -n "$DPID" ] && alive "$DPID" && kill -9 "$DPID" 2>/dev/null
	[ -n "$DJOB" ] && wait "$DJOB" 2>/dev/null
	[ -n "$WJOB" ] && wait "$WJOB" 2>/dev/null
	el=$(secs $(($(now_cs) - start)))
	times="dump=$(secs $T_DUMP)s($IMGSZ MiB) daemon-ready=$(secs $T_READY)s restore=$(secs $T_RESTORE)s verified=$(secs $T_VERIFY)s daemon-done=$(secs $T_DAEMON)s"
	if [ "$EXPECT" = pass ]; then
		if [ $ok = 0 ]; then
			line="RESULT $NAME PASS ${el}s $times $(grep '^VERIFY' "$W/workload.log" | head -n 1 | cut -d' ' -f2-3)"
		else
			line="RESULT $NAME FAIL ${el}s $REASON"
		fi
	else
		if [ $ok = 0 ]; then
			line="RESULT $NAME FAIL ${el}s broken daemon went unnoticed: the scenario passed"
		else
			line="RESULT $NAME PASS ${el}s failed as expected: $REASON"
		fi
	fi
	if [ $ok != 0 ]; then
		say "  --- $NAME workload.log (ticks omitted):"
		grep -v '^tick' "$W/workload.log" 2>/dev/null | tail -n 15 | sed 's/^/    /'
		say "  --- last tick: $(last_tick "$W/workload.log")"
		for f in dump.log restore.log daemon.log daemon.out; do
			[ -s "$W/$f" ] || continue
			say "  --- $NAME $f (errors, last lines):"
			grep -E 'Error|error|FAIL|fatal' "$W/$f" | tail -n 8 | sed 's/^/    /'
			tail -n 8 "$W/$f" | sed 's/^/    /'
		done
	fi
	save_logs "$R/$NAME"
	rm -rf "$IMG"
	echo "$line"
	echo "$line" >>"$R/summary"
}

# The scenario table: name daemon expect MiB workload-options [kill mid-transfer: tree|server]
run_named() {
	case $1 in
	single) scenario single "$DAEMON" pass 64 "" ;;
	threads) scenario threads "$DAEMON" pass 64 "-t 4" ;;
	fork) scenario fork "$DAEMON" pass 64 "-f" ;;
	mm) scenario mm "$DAEMON" pass 64 "-x" ;;
	big) scenario big "$DAEMON" pass 512 "-t 2" ;;
	neg-corrupt) scenario neg-corrupt "$DAEMON" fail 32 "-C" ;;
	neg-broken-exit) scenario neg-broken-exit broken-exit fail 32 "" ;;
	neg-broken-hang) scenario neg-broken-hang broken-hang fail 32 "" ;;
	neg-killed) scenario neg-killed "$DAEMON" fail 128 "" tree ;;
	# lazypages only: its supervisor must replace a server killed mid-transfer
	server-killed) scenario server-killed "$DAEMON" pass 128 "" server ;;
	*) echo "RESULT $1 FAIL 0s unknown scenario" | tee -a "$R/summary" ;;
	esac
}

test_main() {
	: >"$R/summary"
	say "criu: $(criu --version | head -n 1); daemon under test: $DAEMON"
	if ! timeout 60 criu check --feature uffd-noncoop >"$R/criu-check.txt" 2>&1; then
		echo "RESULT criu-check FAIL 0s criu check --feature uffd-noncoop: $(tail -n 1 "$R/criu-check.txt")" |
			tee -a "$R/summary"
	fi
	for s in $SCENARIOS; do
		run_named "$s"
	done
	echo DONE >>"$R/summary"
	sync
}

# --- make demo ---------------------------------------------------------------------------
demo_main() {
	NAME=demo W=/tmp/s/demo IMG=/img/demo MIB=${DEMO_MIB:-256} REASON=""
	TMO=120 DTMO=180
	mkdir -p "$W" "$IMG"
	: >"$R/summary"
	echo
	echo "==> 1. start a workload: $MIB MiB of memory, every page holding a checkable pattern"
	setsid /lp/workload -m "$MIB" -p "$W/pid" >>"$W/workload.log" 2>&1 </dev/null &
	WJOB=$!
	wait_line '^READY' "$W/workload.log" 120 "$WJOB" || { demo_end "workload did not start"; return; }
	WPID=$(cat "$W/pid")
	wait_tick "$W/workload.log" 3 20 "$WPID"
	echo "    pid $WPID: $(grep '^READY' "$W/workload.log")"
	echo "    ticking: $(grep '^tick' "$W/workload.log" | tail -n 1)"

	echo "==> 2. checkpoint it with CRIU: criu dump -t $WPID -D $IMG"
	t=$(now_cs)
	timeout "$TMO" criu dump -t "$WPID" -D "$IMG" -o "$W/dump.log" -v4 ||
		{ demo_end "criu dump failed (exit $?)"; return; }
	wait "$WJOB" 2>/dev/null
	echo "    dumped in $(secs $(($(now_cs) - t))) s, images: $(du -sm "$IMG" | awk '{ print $1 }') MiB; the process is gone"

	echo "==> 3. start the lazy-pages daemon: lazypages daemon -D $IMG --status-fd 9 -v4 -o daemon.log --stats-file stats.json"
	start_daemon "$DAEMON" || { demo_end "$REASON"; return; }
	echo "    daemon pid $DPID is listening (status-fd said so)"

	echo "==> 4. restore lazily: criu restore -D $IMG --lazy-pages -d"
	t0=$(now_cs)
	timeout "$TMO" criu restore -D "$IMG" --lazy-pages -d -o "$W/restore.log" -v4 </dev/null ||
		{ demo_end "criu restore failed (exit $?)"; return; }
	echo "    restore returned after $(secs $(($(now_cs) - t0))) s: pid $WPID runs again, its memory arrives on demand"
	kill -USR1 "$WPID"

	echo "==> 5. pages arriving (resident memory of the restored process; new daemon log lines):"
	seen=0
	while :; do
		fin=0
		[ -s "$W/daemon.exit" ] && fin=1
		rss=$(rss_mib "$WPID")
		printf '    +%ss  resident %4s / %s MiB   workload: %s\n' "$(secs $(($(now_cs) - t0)))" \
			"${rss:-?}" "$MIB" "$(grep -E '^(tick|VERIFY|CORRUPT)' "$W/workload.log" | tail -n 1 | cut -c1-60)"
		n=$(wc -l <"$W/daemon.log" 2>/dev/null || echo 0)
		if [ "$n" -gt "$seen" ]; then
			[ $((n - seen)) -le 3 ] || echo "        daemon| ($((n - seen - 3)) more lines, then)"
			sed -n "$((seen + 1)),${n}p" "$W/daemon.log" | tail -n 3 | cut -c1-110 | sed 's/^/        daemon| /'
			seen=$n
		fi
		[ $fin = 1 ] && break
		usleep 250000
	done
	wait_daemon 1
	echo "    daemon exited $DRC, $(secs $((DEND - t0))) s after restore started"
	[ "$DRC" = 0 ] || REASON="daemon exited $DRC"

	echo "==> 6. the daemon's summary:"
	grep -E 'summary' "$W/daemon.log" | sed 's/^/    /' | tail -n 12
	[ -s "$W/stats.json" ] && sed 's/^/    /' "$W/stats.json"
	grep -q summary "$W/daemon.log" || tail -n 5 "$W/daemon.log" | sed 's/^/    /'

	echo "==> 7. verify: the restored process checks every word of every page"
	wait_line '^VERIFY' "$W/workload.log" 120 "$WPID" || REASON=${REASON:-"no VERIFY line"}
	grep '^VERIFY' "$W/workload.log" | sed 's/^/    /'
	n=$(last_tick "$W/workload.log")
	wait_tick "$W/workload.log" $((n + 5)) 20 "$WPID" || REASON=${REASON:-"workload stopped ticking"}
	echo "    still running: tick $n -> $(last_tick "$W/workload.log")"
	kill -TERM "$WPID"
	wait_line '^FINAL' "$W/workload.log" 120 "$WPID" || REASON=${REASON:-"no FINAL line"}
	grep -E '^(CORRUPT|FINAL)' "$W/workload.log" | sed 's/^/    /'
	grep -q '^VERIFY.*result=PASS' "$W/workload.log" && grep -q '^FINAL.*result=PASS' "$W/workload.log" ||
		REASON=${REASON:-"memory differs from the checkpoint"}
	demo_end "$REASON"
}

demo_end() {
	[ -n "${WPID:-}" ] && alive "$WPID" && kill -9 "$WPID"
	[ -n "${DPID:-}" ] && alive "$DPID" && kill -9 "$DPID"
	save_logs "$R/demo"
	echo
	if [ -z "$1" ]; then
		v=$(grep '^FINAL' "$W/workload.log" | sed 's/.*verified=\([0-9]*\).*/\1/')
		line="VERDICT: PASS: memory verified: all $v pages of the restored process match the checkpoint (daemon: $DAEMON)"
	else
		line="VERDICT: FAIL: $1 (daemon: $DAEMON)"
	fi
	echo "$line"
	echo "$line" >>"$R/summary"
	echo DONE >>"$R/summary"
	sync
}

case $MODE in
demo) demo_main ;;
*) test_main ;;
esac
