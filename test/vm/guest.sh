#!/bin/sh
# Guest side of the VM tier (busybox ash, run by /init from the host share at /mnt).
# /mnt/config sets MODE (test|demo|bench), DAEMON (criu|lazypages) and SCENARIOS; MODE=bench
# runs bench-guest.sh (make bench-vm: criu lazy-pages and lazypages daemon side by side).
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

# run_ready NAME CMD...: start CMD, told to write its readiness byte to fd 9, in the
# background with its output in $W/NAME.out, and wait for that byte. Sets RUN_PID (CMD
# itself), RUN_JOB (a wrapper that writes "EXITCODE END_CS" to $W/NAME.exit when CMD ends, so
# its exit time is measured, not polled) and READY (the byte read, in hex). Returns 1 unless
# the byte was 00.
run_ready() {
	name=$1
	shift
	rm -f "$W/$name.status" "$W/$name.exit" "$W/$name.pid"
	mkfifo "$W/$name.status"
	(
		"$@" 9>"$W/$name.status" >"$W/$name.out" 2>&1 &
		echo $! >"$W/$name.pid"
		wait $!
		echo "$? $(now_cs)" >"$W/$name.exit"
	) &
	RUN_JOB=$!
	READY=$(timeout 30 dd if="$W/$name.status" bs=1 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
	rm -f "$W/$name.status"
	n=0
	while [ ! -s "$W/$name.pid" ] && [ $n -lt 100 ]; do usleep 50000; n=$((n + 1)); done
	RUN_PID=$(cat "$W/$name.pid" 2>/dev/null)
	[ "$READY" = 00 ]
}

# run_daemon CMD...: run_ready for a lazy-pages daemon; sets DPID and DJOB ($W/daemon.exit).
run_daemon() {
	run_ready daemon "$@"
	rc=$?
	DPID=$RUN_PID DJOB=$RUN_JOB
	return $rc
}

# start_daemon KIND: start a lazy-pages daemon on $IMG (more options in $DEXTRA), wait for
# its readiness byte (run_daemon).
start_daemon() {
	kind=$1
	case $1 in
	criu) set -- timeout "$DTMO" criu lazy-pages -D "$IMG" --status-fd 9 -o "$W/daemon.log" -v4 $DEXTRA ;;
	lazypages)
		[ -x /lp/lazypages ] || { fail "no lazypages binary in the initramfs (build it first)"; return 1; }
		set -- timeout "$DTMO" /lp/lazypages daemon -D "$IMG" --status-fd 9 -o "$W/daemon.log" -v4 \
			--stats-file "$W/stats.json" $DEXTRA
		;;
	broken-*) set -- timeout "$DTMO" /lp/broken-daemon "--mode=${1#broken-}" -D "$IMG" --status-fd 9 -o "$W/daemon.log" ;;
	*) fail "unknown daemon $1"; return 1 ;;
	esac
	run_daemon "$@" || { fail "daemon ($kind) did not report ready on --status-fd (read '$READY')"; return 1; }
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

# wait_plugin_daemon SECONDS RESTORE_LOG WHY: the daemon the CRIU plugin started (its pid is
# in CRIU's RESTORE_LOG, its own log beside it; it is not our child, so how it ended is read
# from its log and its --stats-file): check the plugin saw a lazy restore for the reason
# WHY (a regex), wait for the daemon to end, check it delivered everything. Sets T_DAEMON
# (polled, to 50 ms).
wait_plugin_daemon() {
	dlog=$(dirname "$2")/lazy-pages.log
	grep -q "lazypages-plugin: lazy restore ($3" "$2" ||
		{ fail "the plugin did not see a lazy restore ($3): $(grep -m1 'lazypages-plugin' "$2")"; return 1; }
	DPID=$(sed -n 's/.*lazypages-plugin: lazypages daemon pid \([0-9]*\) listens.*/\1/p' "$2" | head -n 1)
	[ -n "$DPID" ] || { fail "$(basename "$2") does not say which daemon the plugin started"; return 1; }
	pp=$(awk '/^PPid:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null)
	[ -z "$pp" ] || [ "$(cat "/proc/$pp/comm" 2>/dev/null)" != criu ] ||
		{ fail "the plugin's daemon (pid $DPID) is a child of criu (pid $pp)"; return 1; }
	wait_gone "$DPID" "$1" || { fail "the plugin's daemon (pid $DPID) still running ${1}s after restore"; return 1; }
	T_DAEMON=$(($(now_cs) - t0))
	[ -s "$W/stats.json" ] || { fail "the plugin's daemon wrote no --stats-file: it did not finish ($(tail -n 1 "$dlog"))"; return 1; }
	! grep -q 'lazy restore failed' "$dlog" ||
		{ fail "daemon: $(grep -m1 'lazy restore failed' "$dlog")"; return 1; }
}

# start_server KIND(lazypages|criu): a page server for the regular dump in $IMG on
# 127.0.0.1:$PS_PORT (`lazypages page-server --lazy-pages`, with --single when $PSSINGLE,
# or `criu page-server --lazy-pages`, which always serves one session), waits for its
# readiness byte. Sets SPID and SJOB (writes "EXITCODE END_CS" to $W/ps.exit).
start_server() {
	kind=$1
	case $1 in
	criu) set -- timeout "$DTMO" criu page-server -D "$IMG" --lazy-pages --address 127.0.0.1 \
		--port "$PS_PORT" --status-fd 9 -o "$W/ps.log" -v4 ;;
	lazypages)
		[ -x /lp/lazypages ] || { fail "no lazypages binary in the initramfs (build it first)"; return 1; }
		set -- timeout "$DTMO" /lp/lazypages page-server -D "$IMG" --lazy-pages --address 127.0.0.1 \
			--port "$PS_PORT" --status-fd 9 -o "$W/ps.log" -v4 $PSSINGLE
		;;
	esac
	run_ready ps "$@"
	rc=$?
	SPID=$RUN_PID SJOB=$RUN_JOB
	[ $rc = 0 ] || { fail "page server ($kind) did not report ready on --status-fd (read '$READY'): $(tail -n 1 "$W/ps.out")"; return 1; }
}

# wait_exit FILE SECONDS: wait for a "EXITCODE END_CS" file; sets XRC
wait_exit() {
	end=$(($(now_cs) + $2 * 100))
	while [ ! -s "$1" ]; do
		[ "$(now_cs)" -lt "$end" ] || return 1
		usleep 50000
	done
	read -r XRC _ <"$1"
}

# check_source: once the daemon is done, the page source must end cleanly: criu dump
# --lazy-pages finishes (0) after PS_IOV_CLOSE and kills the frozen source; criu page-server
# and lazypages page-server --single end (0) after the session; a multi-session lazypages
# page-server keeps listening until SIGTERM, then exits 0.
check_source() {
	case $REMOTE in
	migrate)
		wait_exit "$W/dump.exit" 30 ||
			{ fail "criu dump --lazy-pages still running 30s after the daemon exited (no PS_IOV_CLOSE?)"; return 1; }
		[ "$XRC" = 0 ] || { fail "criu dump --lazy-pages exited $XRC after the transfer: $(grep -E 'Error' "$W/dump.log" | tail -n 1)"; return 1; }
		grep -q 'Dumping finished successfully' "$W/dump.log" ||
			{ fail "criu dump --lazy-pages: no 'Dumping finished successfully' in dump.log"; return 1; }
		wait_gone "$SRCPID" 10 || { fail "the source (pid $SRCPID) still exists after the migration"; return 1; }
		;;
	remote-images|criu-client)
		if [ "$PSKIND" = lazypages ] && [ -z "$PSSINGLE" ]; then
			alive "$SPID" || { fail "lazypages page-server (pid $SPID) ended by itself: $(cat "$W/ps.exit" 2>/dev/null)"; return 1; }
			kill -TERM "$SPID"
		fi
		wait_exit "$W/ps.exit" 30 || { fail "page server ($PSKIND $PSSINGLE) still running 30s after the daemon exited"; return 1; }
		[ "$XRC" = 0 ] || { fail "page server ($PSKIND $PSSINGLE) exited $XRC: $(grep -iE 'error|dropping' "$W/ps.log" | tail -n 1)"; return 1; }
		wait "$SJOB" 2>/dev/null
		;;
	esac
	return 0
}

# start_workload: start the workload ($MIB MiB, options $WOPTS; with REMOTE=migrate as the
# init of its own pid namespace), wait for READY and its first ticks. Sets WJOB and WPID.
start_workload() {
	if [ "$REMOTE" = migrate ]; then
		# the frozen source and the restored copy live at once: the workload is the init of
		# its own pid namespace (pid 1 in both), dumped by its pid here
		unshare -p -f setsid /lp/workload -m "$MIB" $WOPTS -p "$W/nspid" >>"$W/workload.log" 2>&1 </dev/null &
	else
		setsid /lp/workload -m "$MIB" $WOPTS -p "$W/pid" >>"$W/workload.log" 2>&1 </dev/null &
	fi
	WJOB=$!
	wait_line '^READY' "$W/workload.log" $((20 + MIB / 8)) "$WJOB" || { fail "workload not READY"; return 1; }
	if [ "$REMOTE" = migrate ]; then
		WPID=$(children_of "$WJOB" | awk '{ print $1; exit }')
		[ "$(readlink "/proc/$WPID/exe" 2>/dev/null)" = /lp/workload ] ||
			{ fail "cannot find the workload under unshare (pid $WJOB, child '${WPID}')"; return 1; }
		grep -q '^NSpid:.*[[:space:]]1$' "/proc/$WPID/status" ||
			{ fail "workload pid $WPID is not the init of its pid namespace: $(grep NSpid "/proc/$WPID/status")"; return 1; }
	else
		WPID=$(cat "$W/pid")
	fi
	wait_tick "$W/workload.log" 2 20 "$WPID" || { fail "workload does not tick"; return 1; }
}

# verify_restored: the workload protocol on the restored $WPID: SIGUSR1 ("you were
# restored"), then VERIFY ... result=PASS within $VTMO (and, with -f, the forked child's
# CHILD ... exit=0). Sets T_VERIFY (from t0).
verify_restored() {
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
}

# finish_workload: no CORRUPT line so far; SIGTERM: FINAL ... result=PASS, then the workload
# exits.
finish_workload() {
	! grep -q '^CORRUPT' "$W/workload.log" || { fail "$(grep -m1 '^CORRUPT' "$W/workload.log")"; return 1; }
	kill -TERM "$WPID"
	wait_line '^FINAL' "$W/workload.log" "$VTMO" "$WPID" || { fail "no FINAL line after SIGTERM"; return 1; }
	grep -q '^FINAL.*result=PASS' "$W/workload.log" || { fail "$(grep '^FINAL' "$W/workload.log")"; return 1; }
	wait_gone "$WPID" 10 || { fail "workload did not exit after FINAL"; return 1; }
}

# The steps of one scenario; returns non-zero at the first failure (REASON says why).
steps() {
	start_workload || return 1

	t=$(now_cs)
	if [ "$REMOTE" = migrate ]; then
		# lazy migration: CRIU dumps all but the lazy pages' contents, keeps the tree
		# frozen and serves those pages itself until the daemon sends PS_IOV_CLOSE
		rm -f "$W/dump-status"
		mkfifo "$W/dump-status"
		(
			timeout "$TMO" criu dump -t "$WPID" -D "$IMG" --lazy-pages --address 127.0.0.1 \
				--port "$PS_PORT" --status-fd 9 -o "$W/dump.log" -v4 9>"$W/dump-status" >"$W/dump.out" 2>&1
			echo "$? $(now_cs)" >"$W/dump.exit"
		) &
		SJOB=$!
		b=$(timeout 60 dd if="$W/dump-status" bs=1 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
		rm -f "$W/dump-status"
		[ "$b" = 00 ] || { fail "criu dump --lazy-pages: no readiness byte from its page server (read '$b', exit '$(cat "$W/dump.exit" 2>/dev/null)')"; return 1; }
		T_DUMP=$(($(now_cs) - t))
		alive "$WPID" || { fail "the source (pid $WPID) is gone while criu dump --lazy-pages serves its pages"; return 1; }
		grep -q '^State:[[:space:]]*[tT]' "/proc/$WPID/status" ||
			{ fail "the source (pid $WPID) is not frozen while its pages are served: $(grep '^State' "/proc/$WPID/status")"; return 1; }
		SRCPID=$WPID
		DEXTRA="--page-server --address 127.0.0.1 --port $PS_PORT"
	else
		timeout "$TMO" criu dump -t "$WPID" -D "$IMG" -o "$W/dump.log" -v4 >"$W/dump.out" 2>&1 ||
			{ fail "criu dump exited $?"; return 1; }
		T_DUMP=$(($(now_cs) - t))
		wait "$WJOB" 2>/dev/null
		wait_gone "$WPID" 10 || { fail "pid $WPID still alive after dump"; return 1; }
	fi
	IMGSZ=$(du -sm "$IMG" | awk '{ print $1 }')
	# remote images: a page server serves the regular dump's pages to the daemon
	case $REMOTE in
	remote-images|criu-client)
		start_server "$PSKIND" || return 1
		DEXTRA="--page-server --address 127.0.0.1 --port $PS_PORT $PSDEXTRA"
		;;
	esac

	# the daemon: started here, or by the CRIU plugin inside criu restore (plugin*)
	LAZY=--lazy-pages PLUG=""
	case $DKIND in
	plugin) PLUG="--libdir /lp/plugin" ;;
	plugin-eager) PLUG="--libdir /lp/plugin" LAZY="" ;;
	plugin-existing) PLUG="--libdir /lp/plugin" ;;
	esac
	if [ -n "$PLUG" ] && [ ! -f /lp/plugin/lazypages_plugin.so ]; then
		fail "no CRIU plugin in the initramfs (build criu-plugin/lazypages_plugin.so first)"
		return 1
	fi
	case $DKIND in
	plugin|plugin-eager) ;;
	plugin-existing) start_daemon lazypages || return 1 ;;
	*)
		t=$(now_cs)
		start_daemon "$DKIND" || return 1
		T_READY=$(($(now_cs) - t))
		;;
	esac

	PIDF=""
	[ "$REMOTE" = migrate ] && PIDF="--pidfile $W/restored.pid"
	t0=$(now_cs)
	LAZYPAGES_BIN=/lp/lazypages LAZYPAGES_DAEMON_ARGS="--stats-file $W/stats.json" \
		timeout "$TMO" criu restore -D "$IMG" $LAZY $PLUG -d $PIDF \
		-o "$W/restore.log" -v4 >"$W/restore.out" 2>&1 </dev/null &
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
		ps-restart|ps-gone) # the page server, for a while or for good
			kill -9 "$SPID"
			wait "$SJOB" 2>/dev/null
			say "  $NAME: killed the page server (pid $SPID) with ${rss:-?} of $MIB MiB resident"
			if [ "$KILL" = ps-restart ]; then
				sleep 2
				start_server "$PSKIND" || return 1
				say "  $NAME: a new page server (pid $SPID) after 2 s"
			fi
			;;
		esac
	fi
	wait "$RJOB" || { fail "criu restore exited $?"; return 1; }
	T_RESTORE=$(($(now_cs) - t0))
	if [ "$KILL" = ps-gone ]; then
		# The page server never comes back: past --ps-deadline the daemon must end the
		# restored workload (Linux 6.1 has no UFFDIO_POISON: SIGKILL by pid) instead of
		# exiting and letting its missing pages read as zeros.
		wait_daemon "$DTMO" || { fail "daemon still running ${DTMO}s after the page server died"; return 1; }
		T_DAEMON=$((DEND - t0))
		[ "$DRC" = 1 ] || { fail "daemon exited $DRC with its page server gone (expected 1)"; return 1; }
		grep -q 'unreachable for .*ending the restored processes' "$W/daemon.log" ||
			{ fail "daemon.log does not say the page server stayed unreachable"; return 1; }
		grep -q "killed 1 restored process still missing pages: $WPID\$" "$W/daemon.log" ||
			{ fail "the daemon did not kill the restored workload (pid $WPID): $(grep -m1 -E 'killed|abandon' "$W/daemon.log")"; return 1; }
		wait_gone "$WPID" 10 || { fail "restored pid $WPID still alive after the daemon gave up"; return 1; }
		! grep -q '^CORRUPT' "$W/workload.log" || { fail "read zeros: $(grep -m1 '^CORRUPT' "$W/workload.log")"; return 1; }
		return 0
	fi
	if [ "$REMOTE" = migrate ]; then
		# a new pid namespace: the restored init has another pid here than the source
		WPID=$(cat "$W/restored.pid" 2>/dev/null)
		[ -n "$WPID" ] && [ "$WPID" != "$SRCPID" ] && [ "$(readlink "/proc/$WPID/exe" 2>/dev/null)" = /lp/workload ] ||
			{ fail "criu restore --pidfile gave '$WPID', not a restored workload (source pid $SRCPID)"; return 1; }
		alive "$SRCPID" || { fail "the source (pid $SRCPID) is gone before the daemon finished"; return 1; }
	fi
	verify_restored || return 1

	case $DKIND in
	plugin) wait_plugin_daemon "$DTMO" "$W/restore.log" "criu command line has --lazy-pages" || return 1 ;;
	plugin-eager)
		grep -q 'lazypages-plugin: not a lazy restore' "$W/restore.log" ||
			{ fail "the plugin did not say it stays idle in a restore without --lazy-pages"; return 1; }
		! grep -q 'lazypages-plugin: starting' "$W/restore.log" ||
			{ fail "the plugin started a daemon for a restore without --lazy-pages"; return 1; }
		;;
	*)
		if [ "$DKIND" = plugin-existing ]; then
			grep -q 'lazypages-plugin: .*a daemon already listens' "$W/restore.log" ||
				{ fail "the plugin did not notice the daemon already listening"; return 1; }
			! grep -q 'lazypages-plugin: starting' "$W/restore.log" ||
				{ fail "the plugin started a second daemon"; return 1; }
		fi
		wait_daemon "$DTMO" || { fail "daemon still running ${DTMO}s after restore"; return 1; }
		T_DAEMON=$((DEND - t0))
		[ "$DRC" = 0 ] || { fail "daemon exited $DRC"; return 1; }
		if [ "$KILL" = ps-restart ]; then
			grep -q 'page server .* back after' "$W/daemon.log" ||
				{ fail "daemon.log does not show the page server coming back"; return 1; }
		fi
		;;
	esac
	check_source || return 1

	n=$(last_tick "$W/workload.log")
	wait_tick "$W/workload.log" $((n + 3)) 20 "$WPID" ||
		{ fail "workload stopped ticking after the daemon left (last tick $n)"; return 1; }
	finish_workload
}

# --- zdtm: CRIU's test suite's lazy modes, call for call ------------------------------
# zdtm.py (CRIU 3.17) runs every criu action as `CRIU ACTION --no-default-config --log-file
# ACTION.log --images-dir DDIR --verbosity=4 OPTS` from its own directory, DDIR relative
# (dump/TEST/PID/ITER; criu's work dir, where the logs land); a background ("nowait") call gets
# --status-fd N and must write one \0 byte there. CRIU is $ZCRIU: with lazypages the criu
# wrapper (lazy-pages/criu-wrapper.sh as /lp/bin/criu: lazy-pages and page-server --lazy-pages
# go to lazypages, the rest to the real criu), with the control the real criu.
#   ZDTM=lazy    zdtm.py --lazy-pages: dump; lazy-pages (nowait); restore --lazy-pages
#   ZDTM=remote  --remote-lazy-pages: dump; page-server --lazy-pages (nowait); lazy-pages
#                --page-server (nowait); restore --lazy-pages
#   ZDTM=tls     --remote-lazy-pages --tls: the same, both with --tls and one key pair
# Then the test is checked (the workload: VERIFY), stopped (SIGTERM: FINAL), and zdtm.py's
# fini waits, with no time limit, for lazy-pages and then the page server to exit by
# themselves: each must exit 0, and zdtm.py reads their logs for "Error" (a missing log
# fails it). Here every wait has a limit.
if [ "$DAEMON" = lazypages ]; then
	ZCRIU="env LAZYPAGES_BIN=/lp/lazypages LAZYPAGES_REAL_CRIU=/usr/sbin/criu /lp/bin/criu"
else
	ZCRIU=/usr/sbin/criu
fi
# zdtm.py's one key pair for both ends (test/ps/mkcerts.sh on the host, through the share)
ZTLS="--tls --tls-no-cn-verify --tls-key /mnt/pki/srv-key.pem --tls-cert /mnt/pki/srv.pem --tls-cacert /mnt/pki/ca.pem"

# zcriu ACTION OPTS...: exec one criu call as zdtm.py makes it, in $ZTOP with the images in
# $ZDDIR (relative), time limit $ZTMO. Execs: run it in a subshell, or as run_ready's command.
zcriu() {
	za=$1
	shift
	cd "$ZTOP" || exit 1
	exec timeout "$ZTMO" $ZCRIU "$za" --no-default-config --log-file "$za.log" --images-dir "$ZDDIR" \
		--verbosity=4 "$@"
}

# zdtm_log LOG [clean]: zdtm.py opens LOG in DDIR after the call (a missing one fails the
# test); with clean, no line of it may say "Error"
zdtm_log() {
	[ -f "$ZD/$1" ] || { fail "no $1 in the images dir $ZDDIR (zdtm.py fails on a missing log)"; return 1; }
	[ -z "${2:-}" ] || ! grep -q Error "$ZD/$1" ||
		{ fail "$1 has $(grep -c Error "$ZD/$1") Error line(s): $(grep -m1 Error "$ZD/$1")"; return 1; }
}

# zdtm_why LOG OUT: what a criu call that failed says: the first Error line of its log in
# DDIR, else the last line of its output ($W/OUT) or of its log
zdtm_why() {
	grep -m1 Error "$ZD/$1" 2>/dev/null && return
	tail -n 1 "$W/$2" 2>/dev/null | grep . || tail -n 1 "$ZD/$1" 2>/dev/null
}

zdtm_steps() {
	[ "$DAEMON" = criu ] || [ -x /lp/bin/criu ] ||
		{ fail "no criu wrapper (/lp/bin/criu) in the initramfs"; return 1; }
	[ "$ZDTM" != tls ] || [ -f /mnt/pki/srv.pem ] ||
		{ fail "no certificates in the share (/mnt/pki: run.sh makes them with test/ps/mkcerts.sh)"; return 1; }
	start_workload || return 1
	ZTOP=$IMG ZDDIR=dump/$NAME/$WPID/1
	ZD=$ZTOP/$ZDDIR
	mkdir -p "$ZD"

	# zdtm.py's dump: criu dump --tree PID --timeout 10 (through the wrapper: the real criu)
	t=$(now_cs) ZTMO=$TMO
	(zcriu dump --tree "$WPID" --timeout 10) >"$W/dump.out" 2>&1 </dev/null ||
		{ fail "criu dump exited $?: $(zdtm_why dump.log dump.out)"; return 1; }
	T_DUMP=$(($(now_cs) - t))
	zdtm_log dump.log || return 1
	wait "$WJOB" 2>/dev/null
	wait_gone "$WPID" 10 || { fail "pid $WPID still alive after dump"; return 1; }
	IMGSZ=$(du -sm "$ZD" | awk '{ print $1 }')

	# zdtm.py's restore: the page server (remote), lazy-pages, each waited for its status
	# byte, then criu restore --lazy-pages --restore-detached. The background calls' time
	# limit is well past every wait below (busybox timeout ends them with SIGTERM, and a
	# page server exits 0 on that): one that does not end by itself is seen still running.
	tls="" lp="" ZTMO=$((DTMO + 120))
	[ "$ZDTM" = tls ] && tls=$ZTLS
	t=$(now_cs)
	if [ "$ZDTM" != lazy ]; then
		run_ready ps zcriu page-server --pidfile ps.pid --port "$PS_PORT" --lazy-pages $tls --status-fd 9
		rc=$?
		SPID=$RUN_PID SJOB=$RUN_JOB
		[ $rc = 0 ] || { fail "criu page-server --lazy-pages: status byte '$READY', not 00: $(zdtm_why page-server.log ps.out)"; return 1; }
		lp="--page-server --port $PS_PORT --address 127.0.0.1 $tls"
	fi
	run_daemon zcriu lazy-pages $lp --status-fd 9 ||
		{ fail "criu lazy-pages: status byte '$READY', not 00: $(zdtm_why lazy-pages.log daemon.out)"; return 1; }
	T_READY=$(($(now_cs) - t))
	t0=$(now_cs) ZTMO=$TMO
	(zcriu restore --lazy-pages --restore-detached) >"$W/restore.out" 2>&1 </dev/null ||
		{ fail "criu restore exited $?: $(zdtm_why restore.log restore.out)"; return 1; }
	T_RESTORE=$(($(now_cs) - t0))
	zdtm_log restore.log || return 1
	[ "$(readlink "/proc/$WPID/exe" 2>/dev/null)" = /lp/workload ] ||
		{ fail "pid $WPID is not the restored workload after criu restore"; return 1; }

	# the test's check, then its stop
	verify_restored || return 1
	finish_workload || return 1

	# zdtm.py's fini: lazy-pages, then the page server, each ending by itself with 0
	wait_daemon "$DTMO" ||
		{ fail "criu lazy-pages still running ${DTMO}s after the test ended (zdtm.py waits forever)"; return 1; }
	T_DAEMON=$((DEND - t0))
	[ "$DRC" = 0 ] ||
		{ fail "criu lazy-pages exited $DRC: $(zdtm_why lazy-pages.log daemon.out)"; return 1; }
	zdtm_log lazy-pages.log clean || return 1
	[ "$ZDTM" != lazy ] || return 0
	wait_exit "$W/ps.exit" 30 ||
		{ fail "criu page-server --lazy-pages still running 30s after lazy-pages exited (zdtm.py waits forever)"; return 1; }
	[ "$XRC" = 0 ] ||
		{ fail "criu page-server --lazy-pages exited $XRC: $(zdtm_why page-server.log ps.out)"; return 1; }
	wait "$SJOB" 2>/dev/null
	zdtm_log page-server.log clean
}

# scenario NAME DAEMON EXPECT(pass|fail) MIB "WORKLOAD OPTIONS" [KILL]
scenario() {
	NAME=$1 DKIND=$2 EXPECT=$3 MIB=$4 WOPTS=$5 KILL=${6:-0}  # KILL: 0, tree or server
	W=/tmp/s/$NAME IMG=/img/$NAME
	REASON="" WPID="" DPID="" DJOB="" WJOB="" DEXTRA="" SPID="" SJOB="" SRCPID="" ZD=""
	T_DUMP=0 T_READY=0 T_RESTORE=0 T_VERIFY=0 T_DAEMON=0 IMGSZ=0
	KIND_FORK=0
	case " $WOPTS " in *" -f "*) KIND_FORK=1 ;; esac
	TMO=$((40 + MIB / 4)) VTMO=$((30 + MIB / 8)) DTMO=$((60 + MIB / 4))
	if [ "$EXPECT" = fail ]; then TMO=20 VTMO=10 DTMO=10; fi
	rm -rf "$W" "$IMG"
	mkdir -p "$W" "$IMG"
	say "=== $NAME: daemon=$DKIND workload='-m $MIB $WOPTS' expect=$EXPECT"
	start=$(now_cs)
	if [ -n "$ZDTM" ]; then zdtm_steps; else steps; fi
	ok=$?
	# clean up whatever is left, whatever happened (a daemon or a page server with the
	# processes it started: a supervisor's server, a wrapper script's lazypages)
	[ -n "$WPID" ] && alive "$WPID" && kill -9 "$WPID" 2>/dev/null
	[ -n "$DPID" ] && alive "$DPID" && kill_tree "$DPID"
	[ -n "$SPID" ] && alive "$SPID" && kill_tree "$SPID"
	# criu dump --lazy-pages still serving: it and the frozen source
	[ -n "$SJOB" ] && alive "$SJOB" && kill_tree "$SJOB"
	[ -n "$SRCPID" ] && alive "$SRCPID" && kill -9 "$SRCPID" 2>/dev/null
	[ -n "$WJOB" ] && alive "$WJOB" && kill_tree "$WJOB"
	[ -n "$DJOB" ] && wait "$DJOB" 2>/dev/null
	[ -n "$SJOB" ] && wait "$SJOB" 2>/dev/null
	[ -n "$WJOB" ] && wait "$WJOB" 2>/dev/null
	# zdtm: the logs criu wrote in its images dir, and what else is there
	if [ -n "$ZD" ]; then
		ls -l "$ZD" >"$W/images-dir.txt" 2>&1
		for f in "$ZD"/*.log; do
			[ -f "$f" ] && cp "$f" "$W/"
		done
	fi
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
		for f in dump.log restore.log daemon.log daemon.out lazy-pages.log ps.log ps.out page-server.log; do
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

# --- runc: a container live-migrated through lazy restore --------------------------------
# A busybox rootfs whose init is the workload (static) runs under runc 1.1.5; runc
# checkpoints it, and `runc restore --lazy-pages` restores it as a new container whose
# memory comes from the lazy-pages daemon. Modes:
#   local        runc checkpoint (a regular dump) to $IMG; the daemon serves $IMG
#   page-server  runc checkpoint --lazy-pages --page-server 127.0.0.1:PORT: CRIU dumps all
#                but the lazy pages and serves those itself, the container frozen; the
#                daemon fetches them (--page-server); the source ends once all arrived
# The daemon is started by hand in the restore's work dir, or (DKIND=plugin) by the CRIU
# plugin inside the `criu swrk` that runc starts (CRIU_LIBS_DIR; runc passes its
# environment on; the plugin finds lazypages on PATH and reads --lazy-pages from runc's
# command line). The workload's output goes through a pipe: runc hands its stdio to the
# container, and on restore its new stdio takes the dumped pipe's place (inherit-fd).
RUNC_MIB=32

# runc_bundle DIR: rootfs (busybox + the workload) and config.json (runc spec's defaults,
# without terminal, network namespace and cgroup mount; args = the workload)
runc_bundle() {
	mkdir -p "$1/rootfs/bin" "$1/rootfs/proc" "$1/rootfs/sys" "$1/rootfs/dev" "$1/rootfs/tmp"
	cp /bin/busybox "$1/rootfs/bin/busybox"
	ln -s busybox "$1/rootfs/bin/sh"
	cp /lp/workload "$1/rootfs/workload"
	cat >"$1/config.json" <<EOF
{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": false,
		"user": { "uid": 0, "gid": 0 },
		"args": [ "/workload", "-m", "$RUNC_MIB" ],
		"env": [ "PATH=/bin" ],
		"cwd": "/",
		"capabilities": {
			"bounding": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"effective": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"permitted": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"ambient": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ]
		},
		"rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
		"noNewPrivileges": true
	},
	"root": { "path": "rootfs", "readonly": true },
	"hostname": "lp-runc",
	"mounts": [
		{ "destination": "/proc", "type": "proc", "source": "proc" },
		{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
		  "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
		{ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
		  "options": [ "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" ] },
		{ "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
		  "options": [ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" ] },
		{ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
		  "options": [ "nosuid", "noexec", "nodev" ] },
		{ "destination": "/sys", "type": "sysfs", "source": "sysfs",
		  "options": [ "nosuid", "noexec", "nodev", "ro" ] }
	],
	"linux": {
		"resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
		"namespaces": [ { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" } ],
		"maskedPaths": [ "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
			"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
			"/sys/firmware", "/proc/scsi" ],
		"readonlyPaths": [ "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" ]
	}
}
EOF
}

# runc_state ID: the container's status (running, stopped, ...) or nothing
runc_state() { runc state "$1" 2>/dev/null | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p'; }

runc_steps() {
	[ -x /usr/sbin/runc ] || { fail "no runc in the initramfs"; return 1; }
	if [ "$DKIND" = plugin ] && [ ! -f /lp/plugin/lazypages_plugin.so ]; then
		fail "no CRIU plugin in the initramfs (build criu-plugin/lazypages_plugin.so first)"
		return 1
	fi
	runc_bundle "$BUNDLE"
	mkdir -p "$W/dump" "$W/work"

	# 1. the container
	( : | timeout 60 runc run -d -b "$BUNDLE" --pid-file "$W/src.pid" "$SRC" 2>&1 |
		cat >>"$W/workload.log" ) &
	WJOB=$!
	wait_line '^READY' "$W/workload.log" 60 "$WJOB" ||
		{ fail "the container's workload did not get READY: $(tail -n 2 "$W/workload.log" | tr '\n' ' ')"; return 1; }
	WPID=$(cat "$W/src.pid" 2>/dev/null)
	[ "$(runc_state "$SRC")" = running ] || { fail "runc state $SRC: not running"; return 1; }
	wait_tick "$W/workload.log" 2 20 "$WPID" || { fail "the container's workload does not tick"; return 1; }

	# 2. checkpoint
	t=$(now_cs)
	case $MODE in
	local)
		timeout "$TMO" runc checkpoint --image-path "$IMG" --work-path "$W/dump" "$SRC" \
			>"$W/checkpoint.out" 2>&1 ||
			{ fail "runc checkpoint exited $?: $(tail -n 2 "$W/checkpoint.out" | tr '\n' ' ')"; return 1; }
		wait_gone "$WPID" 10 || { fail "the checkpointed container (pid $WPID) still runs"; return 1; }
		;;
	page-server)
		rm -f "$W/ps-status"
		mkfifo "$W/ps-status"
		(
			timeout "$TMO" runc checkpoint --lazy-pages --page-server "127.0.0.1:$RUNC_PORT" \
				--status-fd 9 --image-path "$IMG" --work-path "$W/dump" "$SRC" \
				9>"$W/ps-status" >"$W/checkpoint.out" 2>&1
			echo $? >"$W/checkpoint.rc"
		) &
		CKJOB=$!
		b=$(timeout 60 dd if="$W/ps-status" bs=1 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
		rm -f "$W/ps-status"
		[ "$b" = 00 ] || { fail "runc checkpoint --lazy-pages: no readiness byte from its page server (read '$b'): $(tail -n 2 "$W/checkpoint.out" | tr '\n' ' ')"; return 1; }
		DEXTRA="--page-server --address 127.0.0.1 --port $RUNC_PORT"
		;;
	esac
	T_DUMP=$(($(now_cs) - t))
	N0=$(last_tick "$W/workload.log")
	IMGSZ=$(du -sm "$IMG" | awk '{ print $1 }')

	# 3. the daemon, by hand in the restore's work dir (or by the plugin, below)
	PLUGENV=""
	if [ "$DKIND" = plugin ]; then
		PLUGENV="CRIU_LIBS_DIR=/lp/plugin PATH=/lp:$PATH LAZYPAGES_DAEMON_ARGS=--stats-file=$W/stats.json"
		[ "$MODE" = page-server ] && PLUGENV="$PLUGENV LAZYPAGES_PAGE_SERVER=127.0.0.1:$RUNC_PORT"
	else
		t=$(now_cs)
		DEXTRA="-W $W/work $DEXTRA"
		start_daemon "$DKIND" || return 1
		T_READY=$(($(now_cs) - t))
	fi

	# 4. restore, lazily, as a new container
	t0=$(now_cs)
	(
		: | {
			env $PLUGENV timeout "$TMO" runc restore -d --lazy-pages --image-path "$IMG" \
				--work-path "$W/work" -b "$BUNDLE" --pid-file "$W/dst.pid" "$DST"
			echo $? >"$W/restore.rc"
		} 2>&1 | cat >>"$W/workload-restored.log"
	) &
	WJOB2=$!
	end=$(($(now_cs) + TMO * 100 + 500))
	while [ ! -s "$W/restore.rc" ] && [ "$(now_cs)" -lt "$end" ]; do usleep 50000; done
	T_RESTORE=$(($(now_cs) - t0))
	[ "$(cat "$W/restore.rc" 2>/dev/null)" = 0 ] ||
		{ fail "runc restore exited $(cat "$W/restore.rc" 2>/dev/null): $(grep -v '^tick' "$W/workload-restored.log" | tail -n 2 | tr '\n' ' ')"; return 1; }
	WPID=$(cat "$W/dst.pid" 2>/dev/null)
	[ "$(runc_state "$DST")" = running ] || { fail "runc state $DST: $(runc_state "$DST"), not running"; return 1; }

	# 5. verify: every page, the output going on from where it was, the daemon done
	runc kill "$DST" USR1 || { fail "runc kill $DST USR1 failed"; return 1; }
	wait_line '^VERIFY' "$W/workload-restored.log" "$VTMO" "$WPID"
	case $? in
	1) fail "no VERIFY from the restored container within ${VTMO}s"; return 1 ;;
	2) fail "the restored container died before verifying: $(grep -E '^(CORRUPT|FAIL)' "$W/workload-restored.log" | head -n 1)"; return 1 ;;
	esac
	T_VERIFY=$(($(now_cs) - t0))
	grep -q '^VERIFY.*result=PASS' "$W/workload-restored.log" ||
		{ fail "$(grep -E '^(CORRUPT|VERIFY)' "$W/workload-restored.log" | head -n 2 | tr '\n' ' ')"; return 1; }
	if [ "$DKIND" = plugin ]; then
		wait_plugin_daemon "$DTMO" "$W/work/restore.log" "criu RPC: its parent (pid [0-9]*, runc) has --lazy-pages" ||
			return 1
		# runc runs criu in the new container's cgroup; the daemon must not stay there
		grep -q "lazypages-plugin: moved the daemon from cgroup /$DST " "$W/work/restore.log" ||
			{ fail "the plugin's daemon was not moved out of the container's cgroup: $(grep -m1 'lazypages-plugin.*cgroup' "$W/work/restore.log")"; return 1; }
	else
		wait_daemon "$DTMO" || { fail "daemon still running ${DTMO}s after restore"; return 1; }
		T_DAEMON=$((DEND - t0))
		[ "$DRC" = 0 ] || { fail "daemon exited $DRC"; return 1; }
	fi
	if [ "$MODE" = page-server ]; then
		end=$(($(now_cs) + 3000))
		while [ ! -s "$W/checkpoint.rc" ] && [ "$(now_cs)" -lt "$end" ]; do usleep 50000; done
		[ "$(cat "$W/checkpoint.rc" 2>/dev/null)" = 0 ] ||
			{ fail "runc checkpoint --lazy-pages exited '$(cat "$W/checkpoint.rc" 2>/dev/null)' after the transfer: $(tail -n 2 "$W/checkpoint.out" | tr '\n' ' ')"; return 1; }
		wait_gone "$(cat "$W/src.pid")" 10 || { fail "the source container still runs after the migration"; return 1; }
	fi
	first=$(grep '^tick' "$W/workload-restored.log" | head -n 1 | awk '{ print $2 + 0 }')
	[ "${first:-0}" -gt "${N0:-0}" ] ||
		{ fail "the restored output does not go on from the checkpoint: last tick before $N0, first after ${first:-none}"; return 1; }
	n=$(last_tick "$W/workload-restored.log")
	wait_tick "$W/workload-restored.log" $((n + 3)) 20 "$WPID" ||
		{ fail "the restored container stopped ticking (last tick $n)"; return 1; }
	runc kill "$DST" TERM
	wait_line '^FINAL' "$W/workload-restored.log" "$VTMO" "$WPID" || { fail "no FINAL line after SIGTERM"; return 1; }
	grep -q '^FINAL.*result=PASS' "$W/workload-restored.log" || { fail "$(grep '^FINAL' "$W/workload-restored.log")"; return 1; }
	wait_gone "$WPID" 10 || { fail "the container did not exit after FINAL"; return 1; }
	end=$(($(now_cs) + 1000))
	while [ "$(runc_state "$DST")" = running ] && [ "$(now_cs)" -lt "$end" ]; do usleep 50000; done
	runc delete "$DST" >/dev/null 2>&1 || { fail "runc delete $DST failed (state $(runc_state "$DST"))"; return 1; }
	return 0
}

# runc_scenario NAME DKIND(criu|lazypages|plugin) MODE(local|page-server) [PORT]
runc_scenario() {
	NAME=$1 DKIND=$2 MODE=$3 RUNC_PORT=${4:-27027}
	W=/tmp/s/$NAME IMG=/img/$NAME BUNDLE=/tmp/s/$NAME/bundle SRC=$1-src DST=$1-dst
	REASON="" WPID="" DPID="" DJOB="" WJOB="" WJOB2="" CKJOB="" DEXTRA="" N0=""
	T_DUMP=0 T_READY=0 T_RESTORE=0 T_VERIFY=0 T_DAEMON=0 IMGSZ=0
	MIB=$RUNC_MIB TMO=90 VTMO=40 DTMO=90
	rm -rf "$W" "$IMG"
	mkdir -p "$W" "$IMG"
	say "=== $NAME: runc container, workload '-m $MIB', $MODE, daemon=$DKIND"
	start=$(now_cs)
	runc_steps
	ok=$?
	# clean up whatever is left: a checkpoint still serving pages (runc, criu and its page
	# server, which holds the port), the daemon, the containers
	[ -n "$CKJOB" ] && alive "$CKJOB" && kill_tree "$CKJOB"
	[ -n "$DPID" ] && alive "$DPID" && kill_tree "$DPID"
	for c in "$SRC" "$DST"; do
		[ -n "$(runc_state "$c")" ] || continue
		runc kill "$c" KILL >/dev/null 2>&1
		runc delete -f "$c" >/dev/null 2>&1
	done
	for j in $DJOB $WJOB $WJOB2 $CKJOB; do wait "$j" 2>/dev/null; done
	for f in "$W"/dump/*.log "$W"/work/*.log "$W"/dump/descriptors.json; do
		[ -f "$f" ] && cp "$f" "$W/$(basename "$(dirname "$f")")-$(basename "$f")"
	done
	cp "$BUNDLE/config.json" "$W/" 2>/dev/null
	el=$(secs $(($(now_cs) - start)))
	times="checkpoint=$(secs $T_DUMP)s($IMGSZ MiB) daemon-ready=$(secs $T_READY)s restore=$(secs $T_RESTORE)s verified=$(secs $T_VERIFY)s daemon-done=$(secs $T_DAEMON)s"
	if [ $ok = 0 ]; then
		line="RESULT $NAME PASS ${el}s $MODE $times $(grep '^VERIFY' "$W/workload-restored.log" | head -n 1 | cut -d' ' -f2-3) ticks $N0->$(last_tick "$W/workload-restored.log")"
	else
		line="RESULT $NAME FAIL ${el}s $REASON"
		say "  --- $NAME output before / after (ticks omitted):"
		grep -v '^tick' "$W/workload.log" 2>/dev/null | tail -n 8 | sed 's/^/    before| /'
		grep -v '^tick' "$W/workload-restored.log" 2>/dev/null | tail -n 8 | sed 's/^/    after| /'
		for f in dump-dump.log work-restore.log work-lazy-pages.log daemon.log daemon.out checkpoint.out; do
			[ -s "$W/$f" ] || continue
			say "  --- $NAME $f (errors, last lines):"
			grep -E 'Error|error|FAIL|fatal' "$W/$f" | tail -n 8 | sed 's/^/    /'
			tail -n 8 "$W/$f" | sed 's/^/    /'
		done
	fi
	save_logs "$R/$NAME"
	rm -rf "$IMG" "$BUNDLE"
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
	# zdtm's uffd-events: fork, then parent and child both change memory that is still
	# partly missing (the child's events on its FORK uffd)
	events) scenario events "$DAEMON" pass 64 "-f -x -t 2" ;;
	# zdtm's transition/fork tests: a thread forks all the time, through the dump and the
	# restore (zombies and children mid-check in the images, FORK events during restore)
	forks) scenario forks "$DAEMON" pass 64 "-F -t 2" ;;
	# zdtm's futex tests: threads asleep in futex(2) on a word in lazy memory
	futex) scenario futex "$DAEMON" pass 32 "-u 4 -t 2" ;;
	# zdtm's lazy-thp: huge-page memory written to while pages are still missing
	thp) scenario thp "$DAEMON" pass 64 "-H -t 2" ;;
	# a tree of 4 processes whose memory is shared copy-on-write at the dump: 4 uffds,
	# each process checking its own copy
	tree) scenario tree "$DAEMON" pass 32 "-P 4 -t 2" ;;
	big) scenario big "$DAEMON" pass 512 "-t 2" ;;
	neg-corrupt) scenario neg-corrupt "$DAEMON" fail 32 "-C" ;;
	neg-broken-exit) scenario neg-broken-exit broken-exit fail 32 "" ;;
	neg-broken-hang) scenario neg-broken-hang broken-hang fail 32 "" ;;
	neg-killed) scenario neg-killed "$DAEMON" fail 128 "" tree ;;
	# lazypages only: its supervisor must replace a server killed mid-transfer
	server-killed) scenario server-killed "$DAEMON" pass 128 "" server ;;
	# lazypages only: the CRIU plugin (criu --libdir /lp/plugin) starts the daemon itself;
	# leaves a running daemon alone; stays idle in a restore that is not lazy
	plugin) scenario plugin plugin pass 64 "-t 2" ;;
	plugin-existing) scenario plugin-existing plugin-existing pass 32 "" ;;
	plugin-eager) scenario plugin-eager plugin-eager pass 32 "" ;;
	# a runc container live-migrated through lazy restore (see runc_scenario)
	runc) runc_scenario runc "$DAEMON" local ;;
	runc-plugin) runc_scenario runc-plugin plugin local ;;
	runc-migrate) runc_scenario runc-migrate "$DAEMON" page-server ;;
	runc-migrate-plugin) runc_scenario runc-migrate-plugin plugin page-server 27028 ;;
	# pages over TCP (see check_source): lazy migration from criu dump --lazy-pages (the
	# workload as init of its own pid namespace); a regular dump served by a page server
	# (criu's under the control, ours with lazypages); CRIU's daemon as the client of ours
	migrate) REMOTE=migrate PS_PORT=27031 scenario migrate "$DAEMON" pass 64 "-t 2" ;;
	remote-images) REMOTE=remote-images PSKIND=$DAEMON PS_PORT=27032 scenario remote-images "$DAEMON" pass 64 "-t 2" ;;
	criu-client) REMOTE=criu-client PSKIND=lazypages PSSINGLE=--single PS_PORT=27033 \
		scenario criu-client criu pass 64 "-t 2" ;;
	# lazypages only: the page server killed mid-transfer and restarted 2 s later (the
	# daemon reconnects, memory verified), or killed for good (past --ps-deadline the
	# daemon kills the restored workload: it must never run on zero pages)
	ps-restart) REMOTE=remote-images PSKIND=lazypages PS_PORT=27034 \
		scenario ps-restart "$DAEMON" pass 128 "-t 2" ps-restart ;;
	ps-gone) REMOTE=remote-images PSKIND=lazypages PS_PORT=27035 PSDEXTRA="--ps-deadline 3 --ps-stall 2" \
		scenario ps-gone "$DAEMON" pass 128 "-t 2" ps-gone ;;
	# zdtm.py --lazy-pages, --remote-lazy-pages (and --tls), call for call, through the criu
	# wrapper with lazypages (see zdtm_steps)
	zdtm-lazy) ZDTM=lazy scenario zdtm-lazy "$DAEMON" pass 32 "" ;;
	zdtm-remote) ZDTM=remote PS_PORT=27036 scenario zdtm-remote "$DAEMON" pass 32 "-t 2" ;;
	zdtm-remote-tls) ZDTM=tls PS_PORT=27037 scenario zdtm-remote-tls "$DAEMON" pass 32 "" ;;
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
		REMOTE="" PSKIND="" PSSINGLE="" PS_PORT="" PSDEXTRA="" ZDTM=""
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
bench) . /mnt/bench-guest.sh ;;
*) test_main ;;
esac
