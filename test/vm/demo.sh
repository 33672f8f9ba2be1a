#!/usr/bin/env bash
# make demo: boot the VM, start a workload, checkpoint it with real CRIU, restore it lazily
# through `lazypages daemon`, show the pages arriving, the daemon's summary and a verdict.
#
#   test/vm/demo.sh [--daemon=lazypages|criu] [--mib=N]
# Exit 0 when the restored memory was verified, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${B:-build}
# shellcheck source=test/vm/lib.sh
. test/vm/lib.sh

daemon=lazypages mib=256
for a in "$@"; do
	case $a in
	--daemon=*) daemon=${a#*=} ;;
	--mib=*) mib=${a#*=} ;;
	-h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "demo.sh: unknown option $a" >&2; exit 2 ;;
	esac
done
case $daemon in criu|lazypages) ;; *) echo "demo.sh: --daemon must be criu or lazypages" >&2; exit 2 ;; esac

vm_need_tools
make -s "$B/vm/workload" "$B/vm/broken-daemon" >&2 || vm_fail "cannot build the VM workload"
if [ "$daemon" = lazypages ]; then
	[ -x "$B/lazypages" ] || vm_fail "$B/lazypages does not exist: run make first"
fi
vm_kernel

OUT=${TEST_OUT:-$ROOT/test/out}/vm-demo
SHARE=$OUT/share
rm -rf "$OUT"
mkdir -p "$SHARE/results"
cp test/vm/guest.sh "$SHARE/guest.sh"
printf 'MODE=demo\nDAEMON=%s\nDEMO_MIB=%s\n' "$daemon" "$mib" >"$SHARE/config"

echo "demo: a $mib MiB process, checkpointed by CRIU $(/usr/sbin/criu --version | awk '/Version/ { print $2 }'), restored lazily through the $daemon daemon"
echo "demo: guest = Debian's $VM_KVER kernel under QEMU TCG (software CPU: times are slow, compare ratios)"
# show the guest's demo output, not kernel or init chatter
rc=0
vm_boot "$SHARE" 2048 300 "$OUT/console.log" "grep --line-buffered -v -E '^lp-vm: init|^\[ '" || rc=$?
if ! grep -q '^VERDICT: ' "$SHARE/results/summary" 2>/dev/null; then
	echo "VERDICT: FAIL: the VM did not finish the demo (QEMU exit $rc); last console lines:"
	tail -n 20 "$OUT/console.log" | sed 's/^/    /'
	exit 1
fi
echo "demo: logs in $OUT/share/results/demo/"
grep -q '^VERDICT: PASS' "$SHARE/results/summary"
