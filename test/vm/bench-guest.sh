# shellcheck shell=sh
# Guest side of `make bench-vm` (busybox ash): sourced by guest.sh when /mnt/config says
# MODE=bench, so its helpers (say, now_cs, secs, alive, wait_line, wait_tick, wait_daemon,
# save_logs) are at hand. /mnt/config also sets BENCH_SIZES (MiB, space-separated) and
# BENCH_REPS.
#
# Per size: one workload, one `criu dump`; then BENCH_REPS pairs of lazy restores of that
# same checkpoint, one served by `criu lazy-pages` and one by `lazypages daemon`, the order
# swapped every pair (criu,lazypages, lazypages,criu, ...: A B B A). Both daemons run with
# their defaults (no -v, no tuning; ours also writes --stats-file). Measured per run:
#   restore   criu restore --lazy-pages -d started -> returned
#   resident  criu restore returned -> the daemon exited 0 (it exits once every page is in)
#   total     restore started -> the daemon exited
# The daemon's exit time is taken by the shell that waits for it, not polled. A run counts
# only when the restored workload then verifies every word of every page (SIGUSR1 ->
# VERIFY ... result=PASS, pages = all of them) and never printed CORRUPT while its memory
# arrived (it re-checks every page each 200 ms tick). The restored process is SIGKILLed
# and gone (not even a zombie: its pid is restored again) before the next run.
#
# Results: /mnt/results/bench-runs.csv (one row per run), /mnt/results/summary (a BENCH
# line per run, then DONE), each run's logs in /mnt/results/bench/SIZE-DAEMON-REP/.

BENCH_SIZES=${BENCH_SIZES:-64 256}
BENCH_REPS=${BENCH_REPS:-3}

# bench_daemon KIND(criu|lazypages): start a lazy-pages daemon on $IMG with its defaults and
# wait for its readiness byte (guest.sh's run_daemon: sets DPID and DJOB).
bench_daemon() {
	rm -f "$IMG/lazy-pages.socket"
	case $1 in
	criu) set -- timeout "$DTMO" criu lazy-pages -D "$IMG" --status-fd 9 -o "$W/daemon.log" ;;
	lazypages) set -- timeout "$DTMO" /lp/lazypages daemon -D "$IMG" --status-fd 9 -o "$W/daemon.log" \
		--stats-file "$W/stats.json" ${LP_ARGS:-} ;;
	esac
	run_daemon "$@" || { REASON="daemon did not report ready on --status-fd (read '$READY')"; return 1; }
}

# cpu_cs PID: CPU time (user + system, all threads) PID has used, in clock ticks (1/100 s)
cpu_cs() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# bench_gone PID SECONDS: wait until PID does not exist at all (a zombie still holds it)
bench_gone() {
	end=$(($(now_cs) + $2 * 100))
	while [ -e "/proc/$1" ]; do
		[ "$(now_cs)" -lt "$end" ] || return 1
		usleep 20000
	done
}

# bench_dump MIB: start the workload, checkpoint it into /img/bench-MIB. Sets IMG, WPID, WL
# (the log the workload writes, which every restored copy appends to again).
bench_dump() {
	IMG=/img/bench-$1 WL=/tmp/b/workload-$1.log W=/tmp/b/dump-$1
	rm -rf "$IMG" "$W"
	mkdir -p "$IMG" "$W"
	: >"$WL"
	setsid /lp/workload -m "$1" -p "$W/pid" >>"$WL" 2>&1 </dev/null &
	WJOB=$!
	wait_line '^READY' "$WL" $((20 + $1 / 8)) "$WJOB" || { REASON="workload not READY"; return 1; }
	WPID=$(cat "$W/pid")
	wait_tick "$WL" 2 20 "$WPID" || { REASON="workload does not tick"; return 1; }
	t=$(now_cs)
	timeout $((40 + $1 / 4)) criu dump -t "$WPID" -D "$IMG" -o "$W/dump.log" >"$W/dump.out" 2>&1 ||
		{ REASON="criu dump exited $?: $(grep -m1 Error "$W/dump.log")"; return 1; }
	wait "$WJOB" 2>/dev/null
	bench_gone "$WPID" 10 || { REASON="pid $WPID still exists after dump"; return 1; }
	say "bench: $1 MiB: dumped pid $WPID in $(secs $(($(now_cs) - t))) s, images $(du -sm "$IMG" | awk '{ print $1 }') MiB"
}

# bench_steps: one lazy restore of $IMG served by $D; sets T_RESTORE, T_RESIDENT, T_TOTAL
bench_steps() {
	bench_daemon "$D" || return 1
	t0=$(now_cs)
	timeout "$TMO" criu restore -D "$IMG" --lazy-pages -d -o "$W/restore.log" \
		>"$W/restore.out" 2>&1 </dev/null ||
		{ REASON="criu restore exited $?: $(grep -m1 Error "$W/restore.log")"; return 1; }
	t1=$(now_cs)
	WCPU0=$(cpu_cs "$WPID")
	alive "$WPID" || { REASON="restored pid $WPID is not running: $(grep -m1 -E '^(CORRUPT|FAIL)' "$WL")"; return 1; }
	wait_daemon "$DTMO" || { REASON="daemon still running ${DTMO}s after restore"; return 1; }
	[ "$DRC" = 0 ] || { REASON="daemon exited $DRC: $(tail -n 1 "$W/daemon.log" 2>/dev/null)"; return 1; }
	T_RESTORE=$((t1 - t0)) T_RESIDENT=$((DEND - t1)) T_TOTAL=$((DEND - t0))
	WCPU=$(($(cpu_cs "$WPID") - WCPU0))
	RSS=$(rss_mib "$WPID")
	! grep -q '^CORRUPT' "$WL" || { REASON="$(grep -m1 '^CORRUPT' "$WL")"; return 1; }
	kill -USR1 "$WPID" 2>/dev/null || { REASON="restored pid $WPID died: $(grep -m1 -E '^(CORRUPT|FAIL)' "$WL")"; return 1; }
	wait_line '^VERIFY' "$WL" "$VTMO" "$WPID" || { REASON="no VERIFY from the restored workload within ${VTMO}s"; return 1; }
	grep -q "^VERIFY pages=$PAGES bad=0 .*result=PASS" "$WL" ||
		{ REASON="$(grep -m1 -E '^(CORRUPT|VERIFY)' "$WL") (want pages=$PAGES bad=0 PASS)"; return 1; }
	return 0
}

# bench_run MIB DAEMON REP SLOT: one run, one CSV row, one BENCH line
bench_run() {
	MIB=$1 D=$2 REP=$3 SLOT=$4
	W=/tmp/b/$MIB-$D-$REP REASON="" DPID="" DJOB="" RSS=""
	T_RESTORE=0 T_RESIDENT=0 T_TOTAL=0 WCPU=""
	PAGES=$((MIB * 256)) TMO=$((40 + MIB / 4)) VTMO=$((30 + MIB / 8)) DTMO=$((60 + MIB / 2))
	rm -rf "$W"
	mkdir -p "$W"
	: >"$WL"
	if bench_steps; then verdict=PASS; else verdict=FAIL; fi
	# whatever happened: the restored process and the daemon go, the pid must be free
	alive "$WPID" && kill -9 "$WPID" 2>/dev/null
	[ -n "$DPID" ] && alive "$DPID" && kill -9 "$DPID" 2>/dev/null
	[ -n "$DJOB" ] && wait "$DJOB" 2>/dev/null
	bench_gone "$WPID" 20 || { verdict=FAIL REASON=${REASON:-"restored pid $WPID still exists after SIGKILL"}; }
	cp "$WL" "$W/workload.log"
	extra=""
	if [ -s "$W/stats.json" ]; then
		extra=$(awk -F'[:,]' '/"pages_faulted"|"pages_filled"|"pages_zero"|"cpu_user_seconds"|"cpu_system_seconds"|"fault_wait_seconds"|"fill_copy_seconds"|"fault_messages"|"wakeups_resolved_by_fill"/ {
			gsub(/[" ]/, "", $1); gsub(/ /, "", $2); printf "%s%s=%s", s, $1, $2; s = " " }' "$W/stats.json")
	fi
	[ -n "$WCPU" ] && extra="${extra:+$extra }workload_cpu_s=$(secs "$WCPU")"
	detail=$(printf '%s' "$extra${REASON:+ $REASON}" | tr ',\n' '; ')
	echo "$MIB,$REP,$SLOT,$D,$(secs "$T_RESTORE"),$(secs "$T_RESIDENT"),$(secs "$T_TOTAL"),${RSS:-0},$verdict,$detail" \
		>>"$R/bench-runs.csv"
	line="BENCH $MIB MiB rep $REP $D: $verdict restore=$(secs "$T_RESTORE")s resident=$(secs "$T_RESIDENT")s total=$(secs "$T_TOTAL")s rss=${RSS:-?}MiB${extra:+ $extra}${REASON:+ ($REASON)}"
	echo "lp-vm: $line"
	echo "$line" >>"$R/summary"
	if [ $verdict = FAIL ]; then
		for f in restore.log daemon.log daemon.out; do
			[ -s "$W/$f" ] || continue
			say "  --- $MIB-$D-$REP $f (last lines):"
			tail -n 12 "$W/$f" | sed 's/^/    /'
		done
	fi
	save_logs "$R/bench/$MIB-$D-$REP"
}

bench_main() {
	: >"$R/summary"
	echo "size_mib,rep,slot,daemon,restore_s,resident_s,total_s,rss_mib,verdict,detail" >"$R/bench-runs.csv"
	say "bench: $(criu --version | head -n 1); sizes (MiB): $BENCH_SIZES; $BENCH_REPS pairs each"
	mkdir -p /tmp/b
	for mib in $BENCH_SIZES; do
		if ! bench_dump "$mib"; then
			line="BENCH $mib MiB dump: FAIL $REASON"
			echo "lp-vm: $line"
			echo "$line" >>"$R/summary"
			save_logs "$R/bench/dump-$mib"
			continue
		fi
		save_logs "$R/bench/dump-$mib"
		rep=1
		while [ $rep -le "$BENCH_REPS" ]; do
			if [ $((rep % 2)) = 1 ]; then order="criu lazypages"; else order="lazypages criu"; fi
			slot=1
			for d in $order; do
				bench_run "$mib" "$d" "$rep" "$slot"
				slot=$((slot + 1))
			done
			rep=$((rep + 1))
		done
		rm -rf "$IMG"
	done
	echo DONE >>"$R/summary"
	sync
}

bench_main
