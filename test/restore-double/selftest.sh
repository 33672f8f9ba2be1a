#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Self-test of the checkpoint generator and the restore double, without the daemon:
#   1. mkckpt layouts x pagemap encodings x image versions, each restored eagerly by
#      `lp-restore --no-lazy --check-pattern` with threads, events, forks and signals;
#   2. mkckpt is deterministic per seed;
#   3. the double notices broken inputs and broken daemons: a corrupted pages file, no
#      daemon, a daemon that drops the uffds (zero pages), a daemon that never answers
#      (watchdog).
# Exit 0 pass, 1 fail, 77 skip.
set -u
B=${B:-build}
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
MK=$B/mkckpt
LR=$B/lp-restore
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

for p in "$MK" "$LR"; do
	[ -x "$p" ] || { echo "FAIL: $p not built"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lp-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# eager NAME MKCKPT-ARGS -- LP-RESTORE-ARGS
eager() {
	local name=$1 mk=() lr=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do mk+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	lr=("$@")
	rm -rf "$tmp/ck"
	if ! "$MK" -D "$tmp/ck" "${mk[@]}" >"$tmp/mk.out" 2>&1; then
		fail "$name: mkckpt ${mk[*]}"; sed 's/^/    /' "$tmp/mk.out"; return
	fi
	if "$LR" -D "$tmp/ck" --no-lazy --check-pattern --timeout 60 "${lr[@]}" >"$tmp/lr.out" 2>&1; then
		ok "$name: $(tail -n 1 "$tmp/lr.out" | sed 's/^lp-restore: //' | cut -c1-110)"
	else
		fail "$name (mkckpt ${mk[*]}; lp-restore ${lr[*]}), exit $?"
		tail -n 15 "$tmp/lr.out" | sed 's/^/    /'
	fi
}

# --- 1. layouts x encodings ---------------------------------------------------------------
for layout in random one many; do
	for enc in compat both v42; do
		eager "$layout/$enc" --layout "$layout" --encoding "$enc" --seed 7 --size 2M -- \
			--threads 3 --events all --fork 2 --fork-storm 10 --signals -q
	done
done
eager "img-version 1" --img-version 1 --seed 3 -- -q
eager "one page" --size 4096 --layout one --holes 0 --nonlazy 0 -- --events all -q
eager "all lazy" --holes 0 --nonlazy 0 --seed 11 -- --order rev -q
eager "all holes" --holes 1 --nonlazy 0 --seed 12 -- --order seq -q
eager "non-lazy only" --holes 0 --nonlazy 1 --seed 13 -- -q
eager "tree: 5 procs, 3 zombies, 4 threads" --procs 5 --zombies 3 --threads 4 --seed 5 -- \
	--shuffle --events dontneed,mremap --touch-fraction 0.3 -q
eager "many specials" --shared 4 --locked 3 --vmas 20 --seed 9 -- --events all --event-count 4 -q
eager "long runs" --max-run 4096 --size 16M --seed 21 -- --threads 2 --order rand -q
eager "256 MiB one VMA" --layout one --size 256M --seed 2 -- --threads 2 -q

# --- 2. determinism -----------------------------------------------------------------------
rm -rf "$tmp/a" "$tmp/b" "$tmp/c"
"$MK" -D "$tmp/a" --procs 2 --zombies 1 --seed 42 -q && "$MK" -D "$tmp/b" --procs 2 --zombies 1 --seed 42 -q &&
	"$MK" -D "$tmp/c" --procs 2 --zombies 1 --seed 43 -q
if diff -r "$tmp/a" "$tmp/b" >/dev/null; then ok "same seed, same checkpoint"; else fail "same seed gave different files"; fi
if ! diff -r "$tmp/a" "$tmp/c" >/dev/null; then ok "other seed, other checkpoint"; else fail "seeds 42 and 43 gave the same files"; fi
n=0
for s in 1 2 3 4 5; do
	rm -rf "$tmp/x"; "$MK" -D "$tmp/x" --vmas 16 --seed $s -q
	c=$(awk '$1 == "crossing_entries" {print $2}' "$tmp/x/mkckpt.info"); n=$((n + c))
done
if [ "$n" -gt 0 ]; then ok "pagemap entries cross VMA boundaries ($n over 5 seeds)"; else fail "no entry crosses a VMA boundary"; fi

# --- 3. the double notices trouble --------------------------------------------------------
rm -rf "$tmp/ck"; "$MK" -D "$tmp/ck" --seed 4 -q
printf '\x5a' | dd of="$tmp/ck/pages-1.img" bs=1 seek=4100 conv=notrunc status=none
"$LR" -D "$tmp/ck" --no-lazy --check-pattern >"$tmp/o" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "differs from mkckpt's content" "$tmp/o"; then
	ok "corrupted pages file: $(grep -m1 differs "$tmp/o" | cut -c1-100)"
else
	fail "corrupted pages file not noticed (exit $rc)"; sed 's/^/    /' "$tmp/o"
fi

rm -rf "$tmp/ck"; "$MK" -D "$tmp/ck" --procs 2 --zombies 1 --seed 4 -q
"$LR" -D "$tmp/ck" --timeout 10 >"$tmp/o" 2>&1
rc=$?
if [ $rc -eq 77 ]; then
	echo "userfaultfd unavailable: lazy-mode checks skipped"
elif [ $rc -eq 2 ] && grep -q "connect to .*lazy-pages.socket failed" "$tmp/o"; then
	ok "no daemon: $(grep -m1 connect "$tmp/o" | cut -c1-110)"
else
	fail "no daemon: exit $rc"; sed 's/^/    /' "$tmp/o"
fi

# fake MODE LP-RESTORE-ARGS: run lp-restore against test/restore-double/fake-daemon.py
fake() {
	local mode=$1 fpid rc x
	shift
	rm -f "$tmp/ck/lazy-pages.socket" "$tmp/fifo"; mkfifo "$tmp/fifo"
	exec 7<>"$tmp/fifo"
	python3 "$ROOT/test/restore-double/fake-daemon.py" -W "$tmp/ck" --mode "$mode" \
		--hold-seconds 30 --status-fd 3 3>"$tmp/fifo" 2>"$tmp/fake.log" &
	fpid=$!
	IFS= read -r -t 10 -d '' -n 1 x <&7
	exec 7<&-
	"$LR" -D "$tmp/ck" "$@" >"$tmp/o" 2>&1
	rc=$?
	kill "$fpid" 2>/dev/null; wait "$fpid" 2>/dev/null
	return $rc
}

if [ $rc -ne 77 ] && command -v python3 >/dev/null; then
	fake close --timeout 30
	rc=$?
	if [ $rc -eq 1 ] && grep -q "MISMATCH.*reads as zeros" "$tmp/o"; then
		ok "daemon dropping the uffds: $(grep -m1 MISMATCH "$tmp/o" | cut -c1-120)"
	else
		fail "daemon dropping the uffds not noticed (exit $rc)"; tail -n 20 "$tmp/o" | sed 's/^/    /'
	fi
	start=$(date +%s)
	fake hold --timeout 3
	rc=$?
	took=$(($(date +%s) - start))
	if [ $rc -eq 3 ] && grep -q "stuck at address" "$tmp/o" && [ $took -lt 20 ]; then
		ok "daemon never answering: watchdog after ${took}s: $(grep -m1 'stuck at' "$tmp/o" | sed 's/^ *//' | cut -c1-100)"
	else
		fail "daemon never answering: exit $rc after ${took}s"; tail -n 20 "$tmp/o" | sed 's/^/    /'
	fi
fi

echo "$fails failure(s)"
[ $fails -eq 0 ]
