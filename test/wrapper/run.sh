#!/usr/bin/env bash
# lazy-pages/criu-wrapper.sh, driven with the command lines CRIU's zdtm.py gives criu in its
# lazy modes (--lazy-pages, --remote-lazy-pages, --remote-lazy-pages --tls), with
# lp-restore (the criu restore double) verifying every page; plus the wrapper's dispatch:
# every other command reaches the real criu unchanged. Also: CRIU's global options are
# taken and ignored, and errors about the images land in the log file, as with CRIU.
set -u
B=${B:-build}
cd "$(dirname "$0")/../.."
ROOT=$PWD
work=$(mktemp -d /tmp/lp-wrapper.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
pass=0 fail=0
check() { # NAME WHAT COMMAND...
	local name=$1 what=$2; shift 2
	if "$@"; then pass=$((pass + 1)); echo "PASS $name: $what"
	else fail=$((fail + 1)); echo "FAIL $name: $what"
		for f in "$work/$name".* "$work/img/"*.log; do [ -f "$f" ] && tail -n 4 "$f" | sed "s|^|    $(basename "$f"): |"; done
	fi
}

# The wrapper as make install writes it, in a directory of its own, named criu.
mkdir -p "$work/bin" "$work/real"
sed "s|@LP_BINDIR@|$ROOT/$B|" lazy-pages/criu-wrapper.sh >"$work/bin/criu"
chmod +x "$work/bin/criu"
CRIU=$work/bin/criu
# A stand-in for the real criu: records what it was given.
printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>"%s/real.args"\n' "$work" >"$work/real/criu"
chmod +x "$work/real/criu"

"$B/mkckpt" -D "$work/img" -S 16M -p 2 -t 2 -q || exit 1
lazy=$("$B/lazypages" show --json "$work/img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["lazy_pages"])')
test/ps/mkcerts.sh "$work/pki" >/dev/null
have_certs=$?
# shellcheck source=test/free-port.sh
. test/free-port.sh

# nowait NAME FD-VAR CMD...: start CMD with --status-fd 3 as zdtm does and wait for the
# byte; sets $npid. Fails unless the byte is \0.
nowait() {
	local name=$1; shift
	rm -f "$work/$name.ready"
	"$@" --status-fd 3 3>"$work/$name.ready" >"$work/$name.out" 2>&1 &
	npid=$!
	pids+=("$npid")
	for _ in $(seq 200); do [ -s "$work/$name.ready" ] && break; sleep 0.05; done
	[ "$(od -An -tx1 "$work/$name.ready" 2>/dev/null | tr -d ' \n')" = 00 ]
}

# finished PID: the process ends by itself within 30 s; sets $xrc to its exit code.
finished() {
	timeout 30 tail --pid="$1" -f /dev/null || { kill -9 "$1"; wait "$1"; xrc=timeout; return 1; }
	wait "$1"
	xrc=$?
}

no_errors() { ! grep -q 'Error' "$1"; }

# zdtm's criu calls: "<action> --log-file <action>.log --images-dir DDIR --verbosity=4 ..."
zargs() { echo "--no-default-config --log-file $1.log --images-dir $work/img --verbosity=4"; }

# --- zdtm --lazy-pages -----------------------------------------------------------------
rm -f "$work/img/"*.log
nowait lazy $CRIU lazy-pages $(zargs lazy-pages)
check lazy "criu lazy-pages (the wrapper) reports ready on --status-fd" test $? -eq 0
d=$npid
timeout 60 "$B/lp-restore" -D "$work/img" -q --fork 1 >"$work/lazy.restore" 2>&1
check lazy "restore: every page verified" test $? -eq 0
finished $d
check lazy "criu lazy-pages exits 0 by itself" test "$xrc" = 0
check lazy "lazy-pages.log is in the images dir (relative to the work dir)" test -s "$work/img/lazy-pages.log"
check lazy "lazy-pages.log: a summary of all $lazy lazy pages, no Error" \
	eval 'grep -q "summary: 2 processes .*, $lazy lazy pages" "$work/img/lazy-pages.log" && no_errors "$work/img/lazy-pages.log"'
check lazy "--no-default-config is named as an ignored CRIU option" \
	grep -q 'ignored:.*--no-default-config' "$work/img/lazy-pages.log"

# --- zdtm --remote-lazy-pages [--tls] --------------------------------------------------
remote() { # NAME TLS-OPTS...
	local name=$1; shift
	local port=$(lp_free_port) ps d
	rm -f "$work/img/"*.log "$work/img/ps.pid"
	nowait "$name.ps" $CRIU page-server $(zargs page-server) --pidfile ps.pid --port $port --lazy-pages "$@"
	check "$name" "criu page-server --lazy-pages reports ready" test $? -eq 0
	ps=$npid
	nowait "$name.lp" $CRIU lazy-pages $(zargs lazy-pages) --page-server --port $port --address 127.0.0.1 "$@"
	check "$name" "criu lazy-pages --page-server reports ready" test $? -eq 0
	d=$npid
	timeout 60 "$B/lp-restore" -D "$work/img" -q --fork 1 >"$work/$name.restore" 2>&1
	check "$name" "restore: every page verified" test $? -eq 0
	finished $d
	check "$name" "criu lazy-pages exits 0 by itself" test "$xrc" = 0
	finished $ps
	check "$name" "criu page-server exits 0 by itself after the session (zdtm waits for it)" test "$xrc" = 0
	check "$name" "no Error in lazy-pages.log or page-server.log" \
		eval 'no_errors "$work/img/lazy-pages.log" && no_errors "$work/img/page-server.log"'
}
remote remote
if [ $have_certs = 0 ]; then
	# zdtm --tls: one key and certificate for both ends, no CN check
	remote remote-tls --tls --tls-no-cn-verify --tls-key "$work/pki/srv-key.pem" \
		--tls-cert "$work/pki/srv.pem" --tls-cacert "$work/pki/ca.pem"
else
	echo "SKIP remote-tls: certtool (gnutls-bin) not installed"
fi

# --- everything else goes to the real criu, word for word ------------------------------
export LAZYPAGES_REAL_CRIU=$work/real/criu
: >"$work/real.args"
$CRIU check --feature uffd-noncoop
$CRIU -v4 dump -t 1 -D "$work/x" --lazy-pages --port 1234
$CRIU page-server -D "$work/x" --port 1234
$CRIU restore -D lazy-pages --lazy-pages -d
printf '%s\n' "check --feature uffd-noncoop" "-v4 dump -t 1 -D $work/x --lazy-pages --port 1234" \
	"page-server -D $work/x --port 1234" "restore -D lazy-pages --lazy-pages -d" >"$work/want.args"
check dispatch "check, dump --lazy-pages, page-server without --lazy-pages, restore: the real criu, unchanged" \
	cmp -s "$work/want.args" "$work/real.args"
unset LAZYPAGES_REAL_CRIU
PATH="$work/bin:$work/real:$PATH" "$work/bin/criu" --version >/dev/null
check dispatch "without LAZYPAGES_REAL_CRIU: the next criu on PATH, not the wrapper itself" \
	test "$(tail -n 1 "$work/real.args")" = --version

# The page-server header follows the real criu's version (4.2 made it 32 bytes).
printf '#!/bin/sh\necho "Version: $FAKE_VERSION"\n' >"$work/real/criu-version"
printf '#!/bin/sh\nprintf "%%s\\n" "$*"\n' >"$work/lp-args"
chmod +x "$work/real/criu-version" "$work/lp-args"
hdr() { # VERSION ARGS...: what lazypages is given
	FAKE_VERSION=$1 LAZYPAGES_REAL_CRIU=$work/real/criu-version LAZYPAGES_BIN=$work/lp-args \
		"$CRIU" "${@:2}"
}
check header "criu 3.17.1: lazy-pages --page-server gets --ps-header 24" \
	test "$(hdr 3.17.1 lazy-pages --page-server --port 1)" = "lazy-pages --ps-header 24 --page-server --port 1"
check header "criu 4.2: lazy-pages --page-server gets --ps-header 32" \
	test "$(hdr 4.2 lazy-pages --page-server --port 1)" = "lazy-pages --ps-header 32 --page-server --port 1"
check header "criu 4.2: page-server --lazy-pages gets --ps-header 32" \
	test "$(hdr 4.2 page-server --lazy-pages)" = "page-server --single --ps-header 32 --lazy-pages"
check header "an explicit --ps-header stays, local pages get none" \
	test "$(hdr 4.2 lazy-pages --page-server --ps-header 24; hdr 4.2 lazy-pages -D x)" = \
	"$(printf 'lazy-pages --page-server --ps-header 24\nlazy-pages -D x')"

# Options before the command (CRIU's getopt permutes), values that look like commands.
mkdir -p "$work/opt"
rm -f "$work/img/lazy-pages.log"
nowait before $CRIU -o lazy-pages.log -D "$work/img" -v4 lazy-pages -j --timeout 10 --action-script /bin/false
check before "criu -o F -D DIR -v4 lazy-pages -j --timeout 10 ...: ready" test $? -eq 0
d=$npid
timeout 60 "$B/lp-restore" -D "$work/img" -q >"$work/before.restore" 2>&1
check before "restore: every page verified" test $? -eq 0
finished $d
check before "exit 0; -j --timeout --action-script named as ignored" \
	eval 'test "$xrc" = 0 && grep -q "ignored:.* -j --timeout --action-script" "$work/img/lazy-pages.log"'

# --- errors about the images go to the log file, as CRIU's do --------------------------
mkdir -p "$work/empty"
$CRIU lazy-pages --log-file lazy-pages.log --images-dir "$work/empty" -v4 >"$work/noinv.out" 2>&1
rc=$?
check noinv "no inventory.img: exit 1, the log names the file" \
	eval 'test $rc = 1 && grep -q "empty/inventory.img: missing" "$work/empty/lazy-pages.log"'
$CRIU page-server --log-file page-server.log -D "$work/empty" --lazy-pages --port 0 >"$work/noinv-ps.out" 2>&1
rc=$?
check noinv "page-server: the same" \
	eval 'test $rc = 1 && grep -q "empty/inventory.img: missing" "$work/empty/page-server.log"'
"$B/lazypages" lazy-pages -D "$work/img" --no-such-option >"$work/bad.out" 2>&1
rc=$?
check badopt "an option CRIU does not have either: exit 2" \
	eval 'test $rc = 2 && grep -q "unrecognized option" "$work/bad.out"'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
