#!/usr/bin/env bash
# VM tier: real CRIU 3.17.1 in a QEMU TCG guest (Debian bookworm's 6.1 kernel) restoring
# workloads lazily through a lazy-pages daemon. One boot runs every scenario.
#
#   test/vm/run.sh [--daemon=lazypages|criu] [--scenarios=a,b,...] [--mem=MiB] [--timeout=S]
#
#   --daemon=criu       CRIU's own `criu lazy-pages` (the control)
#   --daemon=lazypages  our `lazypages daemon` ($B/lazypages, the default)
#   scenarios           single threads fork mm events forks futex thp tree big neg-corrupt
#                       neg-broken-exit neg-broken-hang neg-killed runc runc-migrate migrate
#                       remote-images criu-client zdtm-lazy zdtm-remote zdtm-remote-tls, and with
#                       lazypages server-killed plugin plugin-existing plugin-eager
#                       runc-plugin runc-migrate-plugin (default: all; the runc-migrate*,
#                       migrate, remote-images and zdtm-remote* ones only when the daemon
#                       has a page-server client; criu-client needs $B/lazypages,
#                       zdtm-remote-tls certtool). neg-* must FAIL (a broken daemon, a
#                       killed daemon, a corrupted page) and count as PASS when they do.
#                       runc*: a runc 1.1.5 container (fetched once into the cache)
#                       checkpointed and restored lazily. zdtm-*: zdtm.py's lazy modes'
#                       criu calls (with lazypages through lazy-pages/criu-wrapper.sh).
# Env: B (build dir, default build), LP_VM_CACHE (kernel and runc cache, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/lazypages-vm), TEST_OUT (logs, default test/out; this run's
# in $TEST_OUT/vm-DAEMON/), LP_VM_DEBUG=1 (set -x in the guest), CI=true (a missing prerequisite fails instead of skipping).
# Exit: 0 all passed, 1 a failure, 77 skipped (prerequisites missing, never under CI=true).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${B:-build}
# shellcheck source=test/vm/lib.sh
. test/vm/lib.sh

ALL_SCENARIOS="single threads fork mm events forks futex thp tree big neg-corrupt neg-broken-exit neg-broken-hang neg-killed runc zdtm-lazy"
daemon=lazypages scenarios="" mem=3072 tmo=${LP_VM_TIMEOUT:-720}
for a in "$@"; do
	case $a in
	--daemon=*) daemon=${a#*=} ;;
	--scenarios=*) scenarios=${a#*=}; scenarios=${scenarios//,/ } ;;
	--mem=*) mem=${a#*=} ;;
	--timeout=*) tmo=${a#*=} ;;
	-h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown option $a" >&2; exit 2 ;;
	esac
done
case $daemon in criu|lazypages) ;; *) echo "run.sh: --daemon must be criu or lazypages" >&2; exit 2 ;; esac

t_all=$(vm_now)
vm_need_tools
make -s "$B/vm/workload" "$B/vm/broken-daemon" >&2 || vm_fail "cannot build the VM workload (make $B/vm/workload)"
page_server=yes
if [ "$daemon" = lazypages ]; then
	[ -x "$B/lazypages" ] || vm_fail "$B/lazypages does not exist: run make first"
	"$B/lazypages" daemon --help >/dev/null 2>&1 ||
		vm_fail "'$B/lazypages daemon --help' fails: the daemon is not usable yet"
	make -s "$B/criu-plugin/lazypages_plugin.so" >&2 ||
		vm_fail "cannot build the CRIU plugin (make $B/criu-plugin/lazypages_plugin.so)"
	# a build without the page-server client says so at once
	case $("$B/lazypages" daemon --page-server --address 127.0.0.1 --port 1 -D /nonexistent 2>&1 || true) in
	*"no page-server client"*) page_server=no ;;
	esac
fi
if [ -z "$scenarios" ]; then
	scenarios=$ALL_SCENARIOS
	# lazy migration of a runc container: the daemon fetches from CRIU's page server
	[ $page_server = yes ] && scenarios="$scenarios runc-migrate"
	# pages over TCP: lazy migration from criu dump --lazy-pages, remote images (a page
	# server), and criu lazy-pages as the client of lazypages page-server
	[ $page_server = yes ] && scenarios="$scenarios migrate remote-images"
	# zdtm.py --remote-lazy-pages (and --tls: certificates from certtool)
	if [ $page_server = yes ]; then
		scenarios="$scenarios zdtm-remote"
		if command -v certtool >/dev/null 2>&1; then
			scenarios="$scenarios zdtm-remote-tls"
		else
			echo "vm: no certtool (package gnutls-bin): zdtm-remote-tls left out"
		fi
	fi
	if [ -x "$B/lazypages" ]; then
		scenarios="$scenarios criu-client"
	else
		echo "vm: no $B/lazypages (run make): criu-client (criu lazy-pages against lazypages page-server) left out"
	fi
	# our daemon's supervisor must survive the death of its serving process; the CRIU
	# plugin starts our daemon from inside criu restore
	[ "$daemon" = criu ] || scenarios="$scenarios server-killed plugin plugin-existing plugin-eager runc-plugin"
	[ "$daemon" = criu ] || [ $page_server = no ] || scenarios="$scenarios runc-migrate-plugin"
	# lazypages only: a page server lost mid-transfer, then back or gone for good
	[ "$daemon" = criu ] || [ $page_server = no ] || scenarios="$scenarios ps-restart ps-gone"
	[ $page_server = yes ] ||
		echo "vm: $B/lazypages has no page-server client: runc-migrate and runc-migrate-plugin left out"
fi
case " $scenarios " in
*" runc"*) vm_runc ;;
esac

t=$(vm_now)
vm_kernel
t_kernel=$(vm_since "$t")

OUT=${TEST_OUT:-$ROOT/test/out}/vm-$daemon
SHARE=$OUT/share
rm -rf "$OUT"
mkdir -p "$SHARE/results"
cp test/vm/guest.sh "$SHARE/guest.sh"
# zdtm-remote-tls: zdtm.py's one key pair for both ends
case " $scenarios " in
*" zdtm-remote-tls "*)
	test/ps/mkcerts.sh "$SHARE/pki" >/dev/null ||
		vm_fail "test/ps/mkcerts.sh could not make the certificates zdtm-remote-tls needs (certtool: package gnutls-bin)"
	;;
esac
{
	echo "MODE=test"
	echo "DAEMON=$daemon"
	echo "SCENARIOS='$scenarios'"
	echo "DEBUG=${LP_VM_DEBUG:-0}"
} >"$SHARE/config"

echo "vm: daemon=$daemon scenarios: $scenarios"
t=$(vm_now)
rc=0
vm_boot "$SHARE" "$mem" "$tmo" "$OUT/console.log" || rc=$?
t_boot=$(vm_since "$t")

summary=$SHARE/results/summary
echo
echo "vm: results (daemon=$daemon), logs in $OUT"
pass=0 fail=0
if [ -f "$summary" ]; then
	while read -r tag name verdict rest; do
		[ "$tag" = RESULT ] || continue
		echo "$verdict $name $rest"
		if [ "$verdict" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
	done <"$summary"
fi
if ! grep -qx DONE "$summary" 2>/dev/null; then
	case $rc in
	124|137) why="QEMU killed by the ${tmo}s time limit" ;;
	0) why="the guest powered off before finishing" ;;
	*) why="QEMU exited $rc" ;;
	esac
	echo "vm: FAIL: the VM run did not complete ($why); last console lines:"
	tail -n 30 "$OUT/console.log" | sed 's/^/    /'
	fail=$((fail + 1))
fi
for s in $scenarios; do
	grep -q "^RESULT $s " "$summary" 2>/dev/null || { echo "FAIL $s (no result)"; fail=$((fail + 1)); }
done
echo "vm: timings: kernel ${t_kernel}s, boot+scenarios ${t_boot}s, total $(vm_since "$t_all")s"
[ $page_server = yes ] || echo "vm: runc lazy migration (runc-migrate*) not run: $B/lazypages has no page-server client yet"
echo "vm: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
