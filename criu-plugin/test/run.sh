#!/usr/bin/env bash
# Tests of lazypages_plugin.so without CRIU (which cannot run on this kernel; the VM tier's
# plugin scenarios run it under real CRIU): test/harness.c loads the plugin as CRIU does
# and plays the restore's part, criu-plugin/test/fake-daemon.py plays the daemon.
#
#   criu-plugin/test/run.sh        ($B: build dir, default build)
# Exit 0 all passed, 1 a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build}
HARNESS=$B/criu-plugin/harness
PLUGIN=$B/criu-plugin/lazypages_plugin.so
FAKE=$PWD/criu-plugin/test/fake-daemon.py
make -s "$HARNESS" "$PLUGIN" >&2 || { echo "FAIL: cannot build $HARNESS $PLUGIN"; exit 1; }
HARNESS=$PWD/$HARNESS PLUGIN=$PWD/$PLUGIN

T=$(mktemp -d /tmp/lp-plugin-test.XXXXXX)
cleanup() {
	for r in "$T"/*/record "$T"/*/hand.record; do
		[ -f "$r" ] || continue
		p=$(awk 'NR == 1 { print $2 }' "$r")
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); echo "PASS $CASE"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL $CASE: $*"
	for f in "$C/out" "$C/logs/criu.log" "$C/logs/lazy-pages.log" "$C/record"; do
		[ -s "$f" ] && { echo "  --- $f"; sed 's/^/    /' "$f"; }
	done
}

# new_case NAME: a fresh work dir, images dir and log dir in $C
new_case() {
	CASE=$1 C=$T/$1
	mkdir -p "$C/work" "$C/img" "$C/logs"
}

# h ARGS...: run the harness (as "criu ARGS...") with the fake daemon; output in $C/out
h() {
	env TP_PLUGIN="$PLUGIN" TP_WORK="$C/work" TP_IMAGES="$C/img" TP_LOG="$C/logs/criu.log" \
		LAZYPAGES_BIN="${BIN:-$FAKE}" FAKE_RECORD="$C/record" "$HARNESS" "$@" >"$C/out" 2>&1 </dev/null
}

has() { grep -q -- "$1" "$2" 2>/dev/null; }

# wait_for PATTERN FILE: up to 10 s
wait_for() {
	for _ in $(seq 100); do
		has "$1" "$2" && return 0
		sleep 0.1
	done
	return 1
}

# gone PID: exited within 5 s (a zombie counts: the daemon's parent is init, which may
# reap late)
gone() {
	for _ in $(seq 50); do
		grep -q '^State:[[:space:]]*[ZX]' "/proc/$1/status" 2>/dev/null || ! [ -e "/proc/$1" ] && return 0
		sleep 0.1
	done
	return 1
}

rec_pid() { awk 'NR == 1 { print $2 }' "$1"; }

# 1. not lazy: nothing started, restore goes on
new_case not-lazy
if h restore -D "$C/img" && has 'init 0' "$C/out" && ! [ -e "$C/record" ] &&
	has 'not a lazy restore (no --lazy-pages' "$C/logs/criu.log"; then ok; else bad "expected an idle plugin"; fi

# 2. lazy, no daemon: one is started with the restore's options, double-forked, and serves
new_case start
if h restore -D "$C/img" --lazy-pages -v4 && has 'connect ok' "$C/out" &&
	wait_for 'fake: served' "$C/logs/lazy-pages.log"; then
	hp=$(awk '/^pid/ { print $2 }' "$C/out")
	read -r _ dp _ pp <"$C/record"
	want="daemon -D $C/img -W $C/work --status-fd 3 -o $C/logs/lazy-pages.log -v4"
	if [ "$(sed -n '2,$p' "$C/record" | tr '\n' ' ')" != "$want " ]; then
		bad "daemon options: $(sed -n '2,$p' "$C/record" | tr '\n' ' '), want $want"
	elif [ "$pp" = "$hp" ]; then
		bad "the daemon (pid $dp) is a direct child of criu (pid $hp): not double-forked"
	elif [ "$(ps -o sid= -p "$dp" 2>/dev/null | tr -d ' ')" != "" ] &&
		[ "$(ps -o sid= -p "$dp" | tr -d ' ')" != "$dp" ]; then
		bad "the daemon is not in a session of its own"
	else ok; fi
else bad "no daemon served the restore"; fi

# 3. getopt abbreviation of --lazy-pages
new_case abbrev
if h restore --lazy -D "$C/img" && has 'connect ok' "$C/out" && [ -e "$C/record" ]; then ok; else bad "--lazy not taken as --lazy-pages"; fi

# 4. a daemon already listens: the plugin must leave it alone and never connect to it
#    (the daemon accepts one connection: the restore's)
for diag in 1 0; do
	new_case existing-diag$diag
	(cd "$C/work" && FAKE_RECORD="$C/hand.record" exec python3 "$FAKE" daemon -D "$C/img" -W "$C/work" \
		--status-fd 9 9>"$C/ready" >"$C/hand.log" 2>&1 &)
	for _ in $(seq 100); do [ -s "$C/ready" ] && break; sleep 0.1; done
	nd=""
	[ $diag = 0 ] && nd=1
	if LAZYPAGES_PLUGIN_NO_DIAG=$nd h restore --lazy-pages && has 'connect ok' "$C/out" &&
		has 'already listens' "$C/logs/criu.log" && ! [ -e "$C/record" ] &&
		wait_for 'fake: served' "$C/hand.log"; then ok
	else bad "expected the hand-started daemon to serve (hand.log: $(cat "$C/hand.log" 2>/dev/null))"; fi
done

# 5. a stale socket file (daemon gone): a new daemon is started
new_case stale
python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.bind("'"$C"'/work/lazy-pages.socket")'
if h restore --lazy-pages && has 'connect ok' "$C/out" && [ -e "$C/record" ] &&
	wait_for 'fake: served' "$C/logs/lazy-pages.log"; then ok; else bad "stale socket: expected a new daemon"; fi

# 6. criu swrk (RPC, as runc runs it): the parent's command line tells
new_case swrk-runc
env TP_PLUGIN="$PLUGIN" TP_WORK="$C/work" TP_IMAGES="$C/img" TP_LOG="$C/logs/criu.log" \
	LAZYPAGES_BIN="$FAKE" FAKE_RECORD="$C/record" \
	bash -c '"$0" swrk 3; :' "$HARNESS" restore --lazy-pages --image-path /x ctr >"$C/out" 2>&1
if has 'connect ok' "$C/out" && has 'criu RPC: its parent (pid [0-9]*, bash) has --lazy-pages' "$C/logs/criu.log" &&
	wait_for 'fake: served' "$C/logs/lazy-pages.log"; then ok; else bad "swrk under a lazy runc restore"; fi
# once it serves the request, CRIU has rewritten its command line: one string,
# "restore --rpc -D DIR"
new_case rpc-proctitle
env TP_PLUGIN="$PLUGIN" TP_WORK="$C/work" TP_IMAGES="$C/img" TP_LOG="$C/logs/criu.log" \
	LAZYPAGES_BIN="$FAKE" FAKE_RECORD="$C/record" \
	bash -c '(exec -a "restore --rpc -D /x" "$0"); :' "$HARNESS" restore --lazy-pages ctr >"$C/out" 2>&1
if has 'connect ok' "$C/out" && has 'criu RPC: its parent' "$C/logs/criu.log" &&
	wait_for 'fake: served' "$C/logs/lazy-pages.log"; then ok; else bad "RPC restore (restore --rpc) under a lazy runc restore"; fi
new_case swrk-eager
env TP_PLUGIN="$PLUGIN" TP_WORK="$C/work" TP_IMAGES="$C/img" TP_LOG="$C/logs/criu.log" \
	LAZYPAGES_BIN="$FAKE" FAKE_RECORD="$C/record" \
	bash -c '"$0" swrk 3; :' "$HARNESS" restore --lazy-pages=false --image-path /x ctr >"$C/out" 2>&1
if has 'init 0' "$C/out" && ! [ -e "$C/record" ] && has 'no --lazy-pages option' "$C/logs/criu.log"; then ok
else bad "swrk under an eager runc restore must stay idle"; fi

# 7. LAZYPAGES_PLUGIN overrides
new_case env-off
if LAZYPAGES_PLUGIN=off h restore --lazy-pages -D "$C/img" && ! [ -e "$C/record" ]; then ok; else bad "LAZYPAGES_PLUGIN=off"; fi
new_case env-lazy
if LAZYPAGES_PLUGIN=lazy h swrk 3 && has 'connect ok' "$C/out" && [ -e "$C/record" ]; then ok; else bad "LAZYPAGES_PLUGIN=lazy"; fi

# 8. the restore never connects (it failed before): exit() stops the daemon; one that was
#    connected to is left alone (also when only /proc/net/unix can tell: no sock_diag)
for nd in "" 1; do
	new_case never-connected${nd:+-nodiag}
	if TP_CONNECT=0 LAZYPAGES_PLUGIN_NO_DIAG=$nd h restore --lazy-pages && [ -e "$C/record" ] &&
		gone "$(rec_pid "$C/record")" && has 'never connected' "$C/logs/criu.log"; then ok
	else bad "the unused daemon was not stopped"; fi
done
new_case connected-nodiag
if LAZYPAGES_PLUGIN_NO_DIAG=1 h restore --lazy-pages && has 'connect ok' "$C/out" &&
	wait_for 'fake: served' "$C/logs/lazy-pages.log" && ! has 'never connected' "$C/logs/criu.log"
then ok; else bad "a connected daemon was stopped"; fi

# 9. the daemon fails at start: init fails, the error quotes the daemon's log
new_case daemon-fails
if ! FAKE_MODE=fail h restore --lazy-pages && has 'init -1' "$C/out" &&
	has 'exited before listening' "$C/logs/criu.log" &&
	has 'daemon log: fake: cannot open the images' "$C/logs/criu.log"; then ok; else bad "daemon failure not reported"; fi

# 10. the daemon never gets ready: timeout, killed, clear error
new_case daemon-hangs
if ! FAKE_MODE=hang LAZYPAGES_PLUGIN_TIMEOUT=1 h restore --lazy-pages && has 'init -1' "$C/out" &&
	has 'did not report ready within 1 s' "$C/logs/criu.log" && gone "$(rec_pid "$C/record")"; then ok
else bad "hung daemon not reported or not killed"; fi

# 11. no binary
new_case no-binary
if ! BIN=/nonexistent/lazypages h restore --lazy-pages && has 'LAZYPAGES_BIN=/nonexistent/lazypages is not an executable' "$C/logs/criu.log"
then ok; else bad "missing binary not reported"; fi

# 12. page server and extra options reach the daemon; a bad address is refused
new_case page-server
if LAZYPAGES_PAGE_SERVER=10.1.2.3:2700 LAZYPAGES_DAEMON_ARGS="--fill-threads 2" h restore --lazy-pages &&
	has 'connect ok' "$C/out" &&
	[ "$(sed -n '2,$p' "$C/record" | tr '\n' ' ' | grep -o -- '--page-server.*')" = "--page-server --address 10.1.2.3 --port 2700 --fill-threads 2 " ]
then ok; else bad "page-server options: $(sed -n '2,$p' "$C/record" 2>/dev/null | tr '\n' ' ')"; fi
new_case page-server-bad
if ! LAZYPAGES_PAGE_SERVER=nowhere h restore --lazy-pages && has 'is not ADDRESS:PORT' "$C/logs/criu.log"
then ok; else bad "bad LAZYPAGES_PAGE_SERVER accepted"; fi

# 13. the plugin does nothing at dump (criu dump --lazy-pages is a lazy *dump*)
new_case dump-stage
if TP_STAGE=dump h dump -t 1 --lazy-pages && ! [ -e "$C/record" ]; then ok; else bad "dump stage"; fi

# 14. the real binary: exec'd with the options it accepts (it fails on empty images, and
#     the plugin must say so)
new_case real-binary
if [ -x "$B/lazypages" ]; then
	if ! BIN=$PWD/$B/lazypages h restore --lazy-pages && has 'exited before listening' "$C/logs/criu.log" &&
		! has -i 'usage' "$C/logs/lazy-pages.log" && [ -s "$C/logs/lazy-pages.log" ]; then ok
	else bad "the real daemon's failure on empty images was not reported as such"; fi
else echo "SKIP $CASE: no $B/lazypages"; fi

echo "criu-plugin: $pass passed, $fail failed"
[ $fail -eq 0 ]
