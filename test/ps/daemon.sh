#!/usr/bin/env bash
# lazypages daemon --page-server against lazypages page-server, plain and TLS, both header
# layouts: lp-restore (the criu restore double) verifies every page, the daemon must exit
# 0 with every lazy page accounted for, and the page server must keep serving (a second
# restore from the same server) until SIGTERM.
set -u
B=${B:-build}
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/lp-psd.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"; kill $ps 2>/dev/null' EXIT
ps=
pass=0 fail=0
stat() { python3 -c "import json; print(json.load(open('$1'))['$2'])"; }
check() {
	local name=$1 what=$2; shift 2
	if "$@"; then pass=$((pass + 1)); echo "PASS $name: $what"
	else fail=$((fail + 1)); echo "FAIL $name: $what"; tail -5 "$work/$name".* 2>/dev/null | sed 's/^/    /'; fi
}
"$B/mkckpt" -D "$work/img" -S 16M -p 2 -z 1 -t 2 -q || exit 1
lazy=$("$B/lazypages" show --json "$work/img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["lazy_pages"])')
test/ps/mkcerts.sh "$work/pki" >/dev/null || exit $?
# shellcheck source=test/free-port.sh
. test/free-port.sh
tls="--tls --tls-cacert $work/pki/ca.pem"

run() { # NAME HDR TLS?
	local name=$1 hdr=$2 t=$3 port=$(lp_free_port) sargs= dargs=
	if [ "$t" = tls ]; then
		sargs="$tls --tls-cert $work/pki/srv.pem --tls-key $work/pki/srv-key.pem"
		dargs="$tls --tls-cert $work/pki/cli.pem --tls-key $work/pki/cli-key.pem"
	fi
	rm -f "$work/$name.ready"
	"$B/lazypages" page-server -D "$work/img" --lazy-pages --address 127.0.0.1 --port $port \
		--ps-header $hdr $sargs -o "$work/$name.ps.log" --status-fd 3 3>"$work/$name.ready" &
	ps=$!
	for _ in $(seq 100); do [ -s "$work/$name.ready" ] && break; sleep 0.05; done
	for k in 1 2; do
		rm -f "$work/$name.$k.dready" "$work/img/lazy-pages.socket"
		"$B/lazypages" daemon -D "$work/img" --page-server --address 127.0.0.1 --port $port \
			--ps-header $hdr $dargs -o "$work/$name.$k.log" --stats-file "$work/$name.$k.json" \
			--status-fd 3 3>"$work/$name.$k.dready" &
		local d=$!
		for _ in $(seq 100); do [ -s "$work/$name.$k.dready" ] && break; sleep 0.05; done
		timeout 60 "$B/lp-restore" -D "$work/img" -q --fork 1 >"$work/$name.$k.out" 2>&1
		local rrc=$?
		timeout 30 tail --pid=$d -f /dev/null || kill -KILL $d
		wait $d
		local drc=$?
		check "$name" "restore $k: every page verified, daemon exit 0" test $rrc -eq 0 -a $drc -eq 0
		check "$name" "restore $k: the stats count all $lazy lazy pages (remote mode)" \
			test "$(stat "$work/$name.$k.json" lazy_pages)" -eq "$lazy"
	done
	kill -TERM $ps; wait $ps
	check "$name" "page server: exit 0 after SIGTERM" test $? -eq 0
}
run plain24 24 plain
run plain32 32 plain
run tls24 24 tls

# A daemon that cannot verify the server's certificate fails clearly, before serving.
port=$(lp_free_port)
rm -f "$work/bad.ready"
"$B/lazypages" page-server -D "$work/img" --lazy-pages --address 127.0.0.1 --port $port \
	$tls --tls-cert "$work/pki/srv.pem" --tls-key "$work/pki/srv-key.pem" \
	-o "$work/bad.ps.log" --status-fd 3 3>"$work/bad.ready" &
ps=$!
for _ in $(seq 100); do [ -s "$work/bad.ready" ] && break; sleep 0.05; done
rm -f "$work/img/lazy-pages.socket" "$work/bad.dready"
"$B/lazypages" daemon -D "$work/img" --page-server --address 127.0.0.1 --port $port --tls \
	--tls-cacert "$work/pki/ca2.pem" --tls-cert "$work/pki/cli2.pem" --tls-key "$work/pki/cli2-key.pem" \
	-o "$work/bad.log" --status-fd 3 3>"$work/bad.dready" &
d=$!
for _ in $(seq 100); do [ -s "$work/bad.dready" ] && break; sleep 0.05; done
timeout 60 "$B/lp-restore" -D "$work/img" -q --timeout 20 >"$work/bad.out" 2>&1
timeout 30 tail --pid=$d -f /dev/null || kill -KILL $d
wait $d
check bad "wrong CA: daemon exit 1 with a TLS error in its log" \
	test $? -eq 1 -a -n "$(grep -i "tls\|certificate" "$work/bad.log")"
kill -TERM $ps; wait $ps

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
