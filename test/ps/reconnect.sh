#!/usr/bin/env bash
# lazypages daemon --page-server surviving the loss of its page server (issue #8), in the
# middle of a restore: the daemon runs --on-demand (pages arrive only on faults) and
# lp-restore touches one page every --touch-delay-us, so the restore is certainly still
# faulting when the server goes away (each case waits for lp-restore's --progress-file to
# show part of the pages touched, and checks that part was still untouched afterwards).
#
#   kill-restart   SIGKILL the page server, start a new one on the same port; twice
#   stop-cont      SIGSTOP the server for longer than --ps-stall, then SIGCONT
#   deadline       SIGKILL it for good: --ps-deadline ends the restored processes
#   deadline-idle  the same while no process touches memory (half its pages still
#                  missing): the daemon itself must SIGKILL them, by pid
#   netns-flap     server and daemon in two network namespaces joined by a veth pair; the
#                  link goes down for longer than --ps-stall, then up again
#   netns-deadline the link stays down past --ps-deadline
#
# Recovered cases: lp-restore verifies every page (exit 0), the daemon exits 0 with every
# lazy page faulted, logs the loss and the recovery, and counts ps_reconnects. Deadline
# cases: the daemon exits 1 within 15 s naming the server "unreachable" and the pids it
# killed; lp-restore exits 4 (its processes were killed by a signal and none read a wrong
# or zero page).
#
# CASES="kill-restart ..." runs some cases only; DAEMON_ARGS are added to the daemon's own
# (e.g. DAEMON_ARGS="--ps-deadline 0" must make kill-restart fail).
#
# Everything runs in a pid namespace of its own (when unshare allows it), under a watchdog,
# so nothing outlives the script; lp-restore's processes run one namespace further down
# with their checkpoint pids (as a container's would), which is how the daemon finds the
# processes to kill. Exit 0 all passed, 1 a failure, 77 a prerequisite is missing (the
# last line says which; the other cases still ran).
set -u
B=${B:-build}
export B
self=$(realpath "$0")
cd "$(dirname "$self")/../.."
if [ -z "${LP_PSR_INNER:-}" ] && unshare --pid --fork --mount-proc true 2>/dev/null; then
	LP_PSR_INNER=1 exec timeout -k 5 150 unshare --pid --fork --mount-proc --kill-child=SIGTERM bash "$self" "$@"
fi
# lp-restore runs in a pid namespace of its own, below ours (as a container below the
# daemon's): its processes get their checkpoint pids there (--image-pids, with nobody
# else forking in that namespace), and the daemon sees them as NSpid ... 30000.
lrx=() lpre=()
if [ -n "${LP_PSR_INNER:-}" ]; then
	lrx=(--image-pids)
	lpre=(unshare --pid --fork --kill-child)
else
	echo "note: no pid namespace (unshare --pid refused): running without one, image pids not used"
fi

work=$(mktemp -d /tmp/lp-psr.XXXXXX)
tag=${work##*.}
ns_s= ns_c=
# kill_tree PID...: SIGKILL these processes and their descendants (the daemon's serving
# process, lp-restore's children), deepest first
kill_tree() {
	local p
	for p in "$@"; do
		kill -STOP "$p" 2>/dev/null
		kill_tree $(pgrep -P "$p" 2>/dev/null)
		kill -KILL "$p" 2>/dev/null
	done
}
cleanup() {
	kill_tree $(jobs -p)
	[ -n "$ns_s" ] && ip netns del "$ns_s" 2>/dev/null
	[ -n "$ns_c" ] && ip netns del "$ns_c" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "FAIL: watchdog (SIGTERM)"; exit 1' TERM INT

pass=0 fail=0 skipped= shown= restored=
want() { [ -z "${CASES:-}" ] || [[ " $CASES " == *" $1 "* ]]; }
stat() { python3 -c "import json; print(json.load(open('$1')).get('$2', -1))" 2>/dev/null || echo -1; }
check() {
	local name=$1 what=$2; shift 2
	if "$@"; then pass=$((pass + 1)); echo "PASS $name: $what"
	else
		fail=$((fail + 1)); echo "FAIL $name: $what"
		[[ " $shown " == *" $name "* ]] && return 0
		shown="$shown $name"
		for f in "$work/$name.lr.out" "$work/$name.log" "$work/$name.d.err"; do
			[ -s "$f" ] && { echo "    -- $f"; tail -8 "$f" | sed 's/^/    /'; }
		done
	fi
}
now() { echo "${EPOCHREALTIME/,/.}"; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

"$B/mkckpt" -D "$work/img" -S 8M -p 2 -z 1 -t 2 --pid-base 30000 -q || exit 1
lazy=$("$B/lazypages" show --json "$work/img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["lazy_pages"])')
if ! "$B/lazypages" daemon --help 2>&1 | grep -q -- --ps-deadline; then
	echo "FAIL: $B/lazypages daemon has no --ps-deadline (page-server loss survival not built)"
	exit 1
fi

# start_ps NAME ADDR PORT [NETNS]: a page server, ready to serve; sets $ps
start_ps() {
	local name=$1 addr=$2 port=$3 ns=${4:-} k
	local pre=()
	[ -n "$ns" ] && pre=(ip netns exec "$ns")
	k=$(ls "$work/$name".ps*.log 2>/dev/null | wc -l)
	rm -f "$work/$name.ps.ready"
	"${pre[@]}" "$B/lazypages" page-server -D "$work/img" --lazy-pages --address "$addr" --port "$port" \
		-o "$work/$name.ps$k.log" --status-fd 3 3>"$work/$name.ps.ready" 2>"$work/$name.ps$k.err" &
	ps=$!
	for _ in $(seq 200); do [ -s "$work/$name.ps.ready" ] && return 0; sleep 0.02; done
	echo "page server $name ($addr:$port) did not become ready"; cat "$work/$name.ps$k.log"
	return 1
}

# start_daemon NAME ADDR PORT NETNS|"" ARGS...: the daemon, on demand; sets $d
start_daemon() {
	local name=$1 addr=$2 port=$3 ns=$4; shift 4
	local pre=()
	[ -n "$ns" ] && pre=(ip netns exec "$ns")
	rm -f "$work/img/lazy-pages.socket" "$work/$name.ready"
	"${pre[@]}" "$B/lazypages" daemon -D "$work/img" --page-server --address "$addr" --port "$port" \
		--on-demand -o "$work/$name.log" --stats-file "$work/$name.json" "$@" ${DAEMON_ARGS:-} \
		--status-fd 3 3>"$work/$name.ready" 2>"$work/$name.d.err" &
	d=$!
	for _ in $(seq 200); do [ -s "$work/$name.ready" ] && return 0; sleep 0.02; done
	echo "daemon $name did not become ready"; cat "$work/$name.log" "$work/$name.d.err"
	return 1
}

# start_lr NAME DELAY_US [ARGS...]: lp-restore in the background, touching slowly; sets $lr
start_lr() {
	local name=$1 delay=$2; shift 2
	timeout -k 2 60 "${lpre[@]}" "$B/lp-restore" -D "$work/img" -q --order rand --touch-delay-us "$delay" "${lrx[@]}" "$@" \
		--timeout 50 --progress-file "$work/$name.prog" --stats-file "$work/$name.lr.json" \
		>"$work/$name.lr.out" 2>&1 &
	lr=$!
}

# progress NAME: "X Y" (pages touched in the first phase, planned), once every process verifies
progress() {
	awk '$7 == $9 { print $2, $4; next } { print 0, 0 }' "$work/$1.prog" 2>/dev/null || echo "0 0"
}

# wait_progress NAME PCT SECS: until PCT% of the first phase is done (1: never, or lp-restore ended)
wait_progress() {
	local name=$1 pct=$2 end=$((SECONDS + $3)) x y
	while [ $SECONDS -lt $end ]; do
		read -r x y < <(progress "$name")
		[ "$y" -gt 0 ] && [ $((x * 100)) -ge $((pct * y)) ] && return 0
		kill -0 "$lr" 2>/dev/null || break
		sleep 0.02
	done
	echo "$name: lp-restore never got to $pct% of its first phase (progress: $(cat "$work/$name.prog" 2>/dev/null))"
	return 1
}

# finish NAME [SECS]: wait for lp-restore and the daemon (sets $lrc, $drc, $dsecs: time the
# daemon took from now on)
finish() {
	local name=$1 t=${2:-40} t0
	t0=$(now)
	timeout "$t" tail --pid="$d" -f /dev/null || { echo "$name: daemon still running after $t s: killed"; kill_tree "$d"; }
	wait "$d"; drc=$?
	dsecs=$(secs_since "$t0")
	timeout 30 tail --pid="$lr" -f /dev/null || kill_tree "$lr"
	wait "$lr"; lrc=$?
	if [ $lrc -eq 77 ]; then
		echo "SKIP $name: $(tail -n 1 "$work/$name.lr.out")"
		skipped="$skipped $name(uffd)"
		return 1
	fi
	return 0
}

sanitizer_clean() { ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/$1".*err 2>/dev/null; }

# Every lazy page came by a fault (on demand) and the stats say so.
accounted() {
	[ "$(stat "$work/$1.json" lazy_pages)" -eq "$lazy" ] &&
		[ "$(stat "$work/$1.json" pages_faulted)" -eq "$lazy" ]
}

# The per-case checks for a restore that must survive.
survived() { # NAME MIN_RECONNECTS
	local name=$1 n=$2
	check "$name" "lp-restore verified every page (exit $lrc), daemon exit $drc" test $lrc -eq 0 -a $drc -eq 0
	check "$name" "log: $n x 'lost (...)', then 'back after'" \
		test "$(grep -cE "page server .* lost \(.*\): reconnecting for up to [0-9.]+ s" "$work/$name.log")" -ge "$n" \
		-a "$(grep -cE "page server .* back after [0-9.]+ s \([0-9]+ attempts?\)" "$work/$name.log")" -ge "$n"
	check "$name" "stats: ps_reconnects $(stat "$work/$name.json" ps_reconnects) >= $n" \
		test "$(stat "$work/$name.json" ps_reconnects)" -ge "$n"
	check "$name" "stats: all $lazy lazy pages faulted in" accounted "$name"
	check "$name" "no sanitizer report" sanitizer_clean "$name"
}

# restored_pids: the restored processes as OURPID:IMAGEPID (lp-restore's children: NSpid
# ending in an image pid, not in the namespace's 1)
restored_pids() {
	local f n l
	for f in /proc/[0-9]*/status; do
		n=$(sed -n 's/^Name:[[:space:]]*//p' "$f" 2>/dev/null)
		l=$(sed -n 's/^NSpid:[[:space:]]*//p' "$f" 2>/dev/null)
		[ "$n" = lp-restore ] && [ "$(wc -w <<<"$l")" -ge 2 ] && [ "${l##*[[:space:]]}" != 1 ] &&
			echo "${l%%[[:space:]]*}:${l##*[[:space:]]}"
	done
}
names_pid() { grep -A8 "unreachable for" "$1" | grep -i "kill" | grep -qw "$2"; }

# The per-case checks for a restore the daemon must end. Processes that were faulting die
# of SIGBUS on a poisoned page (or of SIGKILL); IDLE: none was touching memory, so each
# must have been killed by the daemon, by its (image) pid.
ended() { # NAME [idle]
	local name=$1 idle=${2:-} real
	check "$name" "daemon exit 1 (got $drc) ${dsecs}s after the loss (deadline 2 s; bound 15 s)" \
		test $drc -eq 1 -a -n "$(le 1.5 "$dsecs" && le "$dsecs" 15 && echo ok)"
	check "$name" "log: 'unreachable for 2 s: ending the restored processes'" \
		grep -qE "page server .* unreachable for 2 s.*: ending the restored processes" "$work/$name.log"
	check "$name" "lp-restore exit 4: processes killed, no page mismatched (got $lrc)" \
		test $lrc -eq 4 -a "$(stat "$work/$name.lr.json" mismatches)" -eq 0
	check "$name" "lp-restore saw no mismatch and no zero page" \
		test -z "$(grep -E 'MISMATCH|reads as zeros' "$work/$name.lr.out")"
	# With --image-pids the restored processes have their checkpoint pids (as with CRIU),
	# which is how the daemon recognises them: each must have been SIGKILLed by name.
	if [ -n "$idle" ] && [ ${#lrx[@]} -gt 0 ]; then
		check "$name" "both restored processes were found beforehand ($restored)" \
			test "$(wc -w <<<"$restored")" -eq 2
		check "$name" "every restored process died of SIGKILL" \
			test "$(grep -c "killed by signal Killed" "$work/$name.lr.out")" -eq 2
		for p in $restored; do # OURPID:IMAGEPID
			check "$name" "log: pid ${p%:*} (image pid ${p#*:}) named as killed" \
				names_pid "$work/$name.log" "${p%:*}"
		done
		check "$name" "stats: killed $(stat "$work/$name.json" killed) = 2 processes" \
			test "$(stat "$work/$name.json" killed)" -eq 2
	fi
	check "$name" "no sanitizer report" sanitizer_clean "$name"
}

# shellcheck source=test/free-port.sh
. test/free-port.sh
port=$(lp_free_port)

# --- kill-restart: the server is killed twice and restarted on the same port -------------
name=kill-restart
if ! want $name; then
	:
elif start_ps $name 127.0.0.1 $port && start_daemon $name 127.0.0.1 $port "" --ps-deadline 10; then
	start_lr $name 2000
	stalled=1 midway=1
	for round in 1 2; do
		wait_progress $name $((round * 25)) 20 || break
		kill -KILL $ps; wait $ps 2>/dev/null
		read -r x0 y < <(progress $name)
		sleep 1.5
		read -r x1 y < <(progress $name)
		# Faulting threads wait: at most a few resident pages are touched meanwhile.
		[ $(((x1 - x0) * 100)) -le $((5 * y)) ] || stalled=0
		[ "$x1" -lt "$y" ] || midway=0
		echo "$name: round $round: killed at $x0/$y pages touched, $x1/$y when restarted"
		start_ps $name 127.0.0.1 $port || break
	done
	if finish $name; then
		survived $name 2
		check $name "first phase stalled during each outage, still unfinished at each restart" \
			test $stalled -eq 1 -a $midway -eq 1
	fi
	kill -TERM $ps 2>/dev/null; wait $ps 2>/dev/null
else
	check $name "setup" false
fi

# --- stop-cont: a server that stops answering (SIGSTOP) is caught by --ps-stall ------------
name=stop-cont
port=$(lp_free_port)
if ! want $name; then
	:
elif start_ps $name 127.0.0.1 $port && start_daemon $name 127.0.0.1 $port "" --ps-stall 1 --ps-deadline 10; then
	start_lr $name 1500
	if wait_progress $name 20 20; then
		kill -STOP $ps
		sleep 2.5
		check $name "the stall was noticed while the server was stopped" \
			grep -q "page server .* lost (.*): reconnecting" "$work/$name.log"
		read -r x y < <(progress $name)
		check $name "the restore was still in its first phase ($x/$y)" test "$x" -lt "$y"
		kill -CONT $ps
	fi
	kill -CONT $ps 2>/dev/null
	finish $name && survived $name 1
	kill -TERM $ps 2>/dev/null; wait $ps 2>/dev/null
else
	check $name "setup" false
fi

# --- deadline: the server never comes back ------------------------------------------------
name=deadline
port=$(lp_free_port)
if ! want $name; then
	:
elif start_ps $name 127.0.0.1 $port && start_daemon $name 127.0.0.1 $port "" --ps-deadline 2; then
	start_lr $name 1500
	if wait_progress $name 20 20; then
		kill -KILL $ps; wait $ps 2>/dev/null
		finish $name 30 && ended $name
	else
		check $name "setup" false
	fi
else
	check $name "setup" false
fi

# --- deadline-idle: the same with processes that touch nothing while the server is away ----
# Half of the pages are touched, the rest stay missing while lp-restore sleeps before its
# late check: no fault reaches a poisoned page, so the daemon itself must kill them.
name=deadline-idle
port=$(lp_free_port)
if ! want $name; then
	:
elif [ ${#lrx[@]} -eq 0 ]; then
	echo "SKIP $name: needs a pid namespace (restored processes with their image pids)"
	skipped="$skipped $name(no pid namespace)"
elif start_ps $name 127.0.0.1 $port && start_daemon $name 127.0.0.1 $port "" --ps-deadline 2; then
	start_lr $name 500 --touch-fraction 0.5 --late-delay 30000
	if wait_progress $name 100 20; then
		sleep 0.2
		restored=$(restored_pids | tr '\n' ' ')
		echo "$name: restored processes (pid:image pid): $restored"
		kill -KILL $ps; wait $ps 2>/dev/null
		finish $name 30 && ended $name idle
	else
		check $name "setup" false
	fi
else
	check $name "setup" false
fi

# --- network namespaces: the link between daemon and server goes down ----------------------
setup_netns() {
	command -v ip >/dev/null || { echo "no ip(8)"; return 1; }
	# In our own mount namespace the names live in a private /run/netns: no collisions,
	# nothing left behind.
	[ -n "${LP_PSR_INNER:-}" ] && mkdir -p /run/netns && mount -t tmpfs lp-psr /run/netns
	ns_s=lp-psr-s-$tag ns_c=lp-psr-c-$tag
	ip netns add "$ns_s" || { ns_s=; echo "ip netns add refused"; return 1; }
	ip netns add "$ns_c" || { ns_c=; echo "ip netns add refused"; return 1; }
	ip -n "$ns_s" link add lpv-s type veth peer name lpv-c netns "$ns_c" &&
		ip -n "$ns_s" addr add "$net.1/24" dev lpv-s &&
		ip -n "$ns_c" addr add "$net.2/24" dev lpv-c &&
		ip -n "$ns_s" link set lo up && ip -n "$ns_c" link set lo up &&
		ip -n "$ns_s" link set lpv-s up && ip -n "$ns_c" link set lpv-c up
}
net=10.251.$((RANDOM % 250 + 1))
if ! want netns-flap && ! want netns-deadline; then
	:
elif setup_netns >"$work/netns.err" 2>&1; then
	for name in netns-flap netns-deadline; do
		want $name || continue
		port=$(lp_free_port)
		dl=10
		[ $name = netns-deadline ] && dl=2
		if ! start_ps $name "$net.1" $port "$ns_s" ||
			! start_daemon $name "$net.1" $port "$ns_c" --ps-stall 1 --ps-deadline $dl; then
			check $name "setup" false
			continue
		fi
		start_lr $name 1500
		if ! wait_progress $name 20 20; then
			check $name "setup" false
			kill_tree $d $ps
			continue
		fi
		ip -n "$ns_c" link set lpv-c down
		if [ $name = netns-flap ]; then
			sleep 2.5
			check $name "the dead link was noticed (--ps-stall 1) while it was down" \
				grep -q "page server .* lost (.*): reconnecting" "$work/$name.log"
			read -r x y < <(progress $name)
			check $name "the restore was still in its first phase ($x/$y)" test "$x" -lt "$y"
			ip -n "$ns_c" link set lpv-c up
			finish $name && survived $name 1 &&
				check $name "log: requests that were in flight were resent" \
					grep -qE "back after .*(re)?sending [1-9][0-9]* requests" "$work/$name.log"
		else
			finish $name 30 && ended $name
			ip -n "$ns_c" link set lpv-c up
		fi
		kill -TERM $ps 2>/dev/null; wait $ps 2>/dev/null
	done
else
	netwhy=$(tail -n 1 "$work/netns.err")
	echo "SKIP netns-flap, netns-deadline: cannot set up network namespaces: $netwhy"
	skipped="$skipped netns($netwhy)"
fi

if [ $fail -gt 0 ]; then
	echo "$pass passed, $fail failed"
	exit 1
fi
if [ -n "$skipped" ]; then
	echo "$pass passed, 0 failed; skipped:$skipped"
	exit 77
fi
echo "$pass passed, 0 failed"
