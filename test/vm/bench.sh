#!/usr/bin/env bash
# make bench-vm: CRIU's `criu lazy-pages` against our `lazypages daemon`, side by side in
# one VM boot (real CRIU 3.17.1, QEMU TCG, Debian's 6.1 kernel). Each size is dumped once;
# the same checkpoint is restored lazily by both daemons in turn (test/vm/bench-guest.sh),
# each run verified by the restored workload. Prints per-size medians and the ratios
# lazypages / criu lazy-pages (issue #7: time until fully resident <= 0.5).
#
#   test/vm/bench.sh [--sizes=64,256,1024] [--reps=N] [--mem=MiB] [--timeout=S] [--if-available]
#
#   --sizes         checkpoint sizes in MiB (default 64,256,1024; about 2.5 min of VM time)
#   --reps          pairs of runs per size (default 4; each pair runs both daemons, the
#                   order swapped every pair: A B B A ...)
#   --if-available  (make bench) when the VM prerequisites are missing, say how to get
#                   them in one line and exit 0
# Env: B (build dir, default build), BENCH_OUT (default bench/out), LP_VM_CACHE (see lib.sh),
# LP_VM_DEBUG=1 (set -x in the guest).
# Writes $BENCH_OUT/vm-table.txt, vm-results.csv (per-size medians and ratios), vm-runs.csv
# (every run), vm-bench.png, and the VM's logs under $BENCH_OUT/vm/.
# Exit: 0 every run verified, 1 a run failed or the VM did not finish, 77 prerequisites missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build}
# shellcheck source=test/vm/lib.sh
. test/vm/lib.sh

sizes="64 256 1024" reps=4 mem=3072 tmo=${LP_VM_TIMEOUT:-600} if_available=0
for a in "$@"; do
	case $a in
	--sizes=*) sizes=${a#*=}; sizes=${sizes//,/ } ;;
	--reps=*) reps=${a#*=} ;;
	--mem=*) mem=${a#*=} ;;
	--timeout=*) tmo=${a#*=} ;;
	--if-available) if_available=1 ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench.sh: unknown option $a" >&2; exit 2 ;;
	esac
done

if [ $if_available = 1 ]; then
	how="apt-get install -y --no-install-recommends $(grep -v '^#' "$LP_VM_DIR/packages.txt" | tr '\n' ' ')"
	if ! why=$(vm_need_tools 2>&1 >/dev/null); then
		echo "bench: VM part (criu lazy-pages vs lazypages, real CRIU in QEMU) skipped: ${why#vm: SKIP: }; then: make bench-vm"
		exit 0
	fi
	if ! ls "$LP_VM_CACHE"/kernel/linux-image-*/complete >/dev/null 2>&1 &&
		! apt-cache depends linux-image-amd64 2>/dev/null | grep -q 'Depends: linux-image-[0-9]'; then
		echo "bench: VM part skipped: no guest kernel in $LP_VM_CACHE and apt-cache does not know linux-image-amd64; get it with: apt-get update ($how), then: make bench-vm"
		exit 0
	fi
fi

OUT=$(realpath -m "${BENCH_OUT:-bench/out}")
t_all=$(vm_now)
vm_need_tools
make -s "$B/vm/workload" >&2 || vm_fail "cannot build the VM workload (make $B/vm/workload)"
[ -x "$B/lazypages" ] || vm_fail "$B/lazypages does not exist: run make first"
vm_kernel

VMOUT=$OUT/vm
SHARE=$VMOUT/share
rm -rf "$VMOUT"
mkdir -p "$SHARE/results"
cp test/vm/guest.sh "$SHARE/guest.sh"
cp test/vm/bench-guest.sh "$SHARE/bench-guest.sh"
printf "MODE=bench\nBENCH_SIZES='%s'\nBENCH_REPS=%s\nDEBUG=%s\nLP_ARGS='%s'\n" "$sizes" "$reps" \
	"${LP_VM_DEBUG:-0}" "${BENCH_LP_ARGS:-}" \
	>"$SHARE/config"

echo "bench-vm: sizes $sizes MiB, $reps pairs each: criu lazy-pages and lazypages daemon restore the same checkpoint in turn"
t=$(vm_now)
rc=0
vm_boot "$SHARE" "$mem" "$tmo" "$VMOUT/console.log" "grep --line-buffered -v -E '^lp-vm: init|^\[ '" || rc=$?
t_boot=$(vm_since "$t")

R=$SHARE/results
ok=1
if ! grep -qx DONE "$R/summary" 2>/dev/null; then
	case $rc in
	124|137) why="QEMU killed by the ${tmo}s time limit" ;;
	0) why="the guest powered off before finishing" ;;
	*) why="QEMU exited $rc" ;;
	esac
	echo "bench-vm: FAIL: the VM run did not complete ($why); last console lines:"
	tail -n 20 "$VMOUT/console.log" | sed 's/^/    /'
	ok=0
fi
[ -s "$R/bench-runs.csv" ] || vm_fail "no results from the guest ($R/bench-runs.csv); console: $VMOUT/console.log"
cp "$R/bench-runs.csv" "$OUT/vm-runs.csv"
grep -q ',FAIL,' "$OUT/vm-runs.csv" && ok=0
grep -q '^BENCH .* dump: FAIL' "$R/summary" && ok=0

# Per size and daemon: medians of the verified runs. Ratio = lazypages median / criu median;
# "pairs" gives the spread of the same ratio taken within each pair of adjacent runs.
awk -F, -v out="$OUT/vm-results.csv" -v kver="$VM_KVER" -v criuv="$(/usr/sbin/criu --version | awk '/Version/ { print $2 }')" '
function median(key,    n, i, j, v, a) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = val[key, i]
	for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
	if (n == 0) return -1
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(key, v) { val[key, ++cnt[key]] = v }
function ratio(a, b) { return (a > 0 && b > 0) ? a / b : -1 }
function fmt(v) { return v < 0 ? "n/a" : sprintf("%.2f", v) }
NR == 1 { next }
{
	s = $1 + 0; d = $4
	if (!(s in seen)) { seen[s] = 1; order[++ns] = s }
	runs[s, d]++
	if ($9 != "PASS") { failed[s, d]++; next }
	add(s SUBSEP d SUBSEP "restore", $5); add(s SUBSEP d SUBSEP "resident", $6); add(s SUBSEP d SUBSEP "total", $7)
	res[s, $2, d] = $6; tot[s, $2, d] = $7
	reps[s] = ($2 > reps[s]) ? $2 : reps[s]
}
END {
	print "size_mib,criu_runs,lazypages_runs,criu_restore_s,criu_resident_s,criu_total_s," \
	      "lazypages_restore_s,lazypages_resident_s,lazypages_total_s,ratio_restore,ratio_resident,ratio_total" > out
	printf "vm bench: criu lazy-pages (CRIU %s) vs lazypages daemon, the same checkpoint restored lazily in turn,\n", criuv
	printf "one VM boot (QEMU TCG, 2 vCPUs, kernel %s): medians of the verified runs, seconds.\n", kver
	printf "restore = criu restore --lazy-pages returned; resident = restore returned -> daemon exited (every page in).\n"
	printf "TCG is slow and the host is shared: absolute times mean little, compare the ratios.\n\n"
	printf "%8s | %-17s | %9s | %9s | %9s | %s\n", "size", "daemon", "restore", "resident", "total", "runs ok (resident min..max)"
	for (k = 1; k <= ns; k++) {
		s = order[k]
		for (di = 1; di <= 2; di++) {
			d = di == 1 ? "criu" : "lazypages"
			key = s SUBSEP d
			m[d, "restore"] = median(key SUBSEP "restore")
			m[d, "resident"] = median(key SUBSEP "resident")
			m[d, "total"] = median(key SUBSEP "total")
			lo = hi = ""
			for (i = 1; i <= cnt[key SUBSEP "resident"]; i++) {
				v = val[key SUBSEP "resident", i] + 0
				if (lo == "" || v < lo) lo = v
				if (hi == "" || v > hi) hi = v
			}
			printf "%4d MiB | %-17s | %9s | %9s | %9s | %d/%d (%s..%s)\n", s, \
				d == "criu" ? "criu lazy-pages" : "lazypages daemon", fmt(m[d, "restore"]), \
				fmt(m[d, "resident"]), fmt(m[d, "total"]), cnt[key SUBSEP "resident"], runs[s, d], \
				lo == "" ? "-" : sprintf("%.2f", lo), hi == "" ? "-" : sprintf("%.2f", hi)
		}
		rr = ratio(m["lazypages", "resident"], m["criu", "resident"])
		rt = ratio(m["lazypages", "total"], m["criu", "total"])
		rs = ratio(m["lazypages", "restore"], m["criu", "restore"])
		plo = phi = ""
		for (r = 1; r <= reps[s]; r++) {
			if (!((s, r, "criu") in res) || !((s, r, "lazypages") in res)) continue
			v = ratio(res[s, r, "lazypages"], res[s, r, "criu"])
			if (v < 0) continue
			if (plo == "" || v < plo) plo = v
			if (phi == "" || v > phi) phi = v
		}
		printf "         ratio resident lazypages/criu-lazy-pages: %s (target <= 0.5)%s%s\n", fmt(rr),
			rr < 0 ? "" : (rr <= 0.5 ? ": met" : ": NOT met"),
			plo == "" ? "" : sprintf("; per pair %.2f..%.2f", plo, phi)
		printf "         ratio total lazypages/criu-lazy-pages: %s; restore: %s\n", fmt(rt), fmt(rs)
		printf "%d,%d,%d,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", s, cnt[s SUBSEP "criu" SUBSEP "resident"],
			cnt[s SUBSEP "lazypages" SUBSEP "resident"], m["criu", "restore"], m["criu", "resident"],
			m["criu", "total"], m["lazypages", "restore"], m["lazypages", "resident"],
			m["lazypages", "total"], rs, rr, rt > out
	}
}' "$OUT/vm-runs.csv" | tee "$OUT/vm-table.txt"
if [ $ok = 0 ]; then
	{
		echo "FAILED runs (excluded from the medians; logs in $R/bench/):"
		grep -E ',FAIL,|dump: FAIL' "$OUT/vm-runs.csv" "$R/summary" | sed 's/^[^:]*:/    /' || true
	} | tee -a "$OUT/vm-table.txt"
fi

if command -v gnuplot >/dev/null; then
	gnuplot <<EOG
set terminal pngcairo size 1100,450 font ",10" noenhanced
set output "$OUT/vm-bench.png"
set datafile separator ","
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top left
set grid ytics
set yrange [0:*]
set xlabel "checkpoint size"
set multiplot layout 1,2 title "criu lazy-pages vs lazypages daemon: same checkpoint, one VM boot (CRIU 3.17.1, QEMU TCG), medians"
set ylabel "seconds (log scale)"
set logscale y
set yrange [0.1:*]
set title "resident: restore returned -> every page in; total: restore start -> every page in"
plot "$OUT/vm-results.csv" skip 1 using 5:xtic(sprintf("%d MiB", \$1)) lc rgb "#c0504d" title "criu lazy-pages: resident", \
     "" skip 1 using 8 lc rgb "#4f81bd" title "lazypages: resident", \
     "" skip 1 using 6 lc rgb "#e6b9b8" title "criu lazy-pages: total", \
     "" skip 1 using 9 lc rgb "#b9cde5" title "lazypages: total"
set ylabel "lazypages / criu lazy-pages"
unset logscale y
set yrange [0:*]
set title "ratios (lower is better; issue #7 target: resident <= 0.5)"
set arrow 1 from graph 0, first 0.5 to graph 1, first 0.5 nohead front dt 2 lw 2 lc rgb "black"
set label 1 "target 0.5" at graph 0.99, first 0.53 right
plot "$OUT/vm-results.csv" skip 1 using 11:xtic(sprintf("%d MiB", \$1)) lc rgb "#4f81bd" title "resident", \
     "" skip 1 using 12 lc rgb "#9bbb59" title "total", \
     "" skip 1 using 10 lc rgb "#8064a2" title "restore"
unset multiplot
EOG
	echo "plot: $OUT/vm-bench.png"
else
	echo "gnuplot not installed: no plot (make deps installs it)"
fi
echo "bench-vm: table $OUT/vm-table.txt, medians $OUT/vm-results.csv, runs $OUT/vm-runs.csv, VM logs $VMOUT"
echo "bench-vm: timings: boot+bench ${t_boot}s, total $(vm_since "$t_all")s"
[ $ok = 1 ]
