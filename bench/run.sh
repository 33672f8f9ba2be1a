#!/usr/bin/env bash
# make bench: run lp-bench against this tree's daemon, print the table, plot it.
# BENCH_REPS (default 5): repetitions per size; the table shows medians (a shared
# machine gives bimodal tails: one slow repetition in five moves no median).
set -euo pipefail
B=${1:-build}
SIZES=${2:-64M,256M,1G,2G}
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${BENCH_OUT:-bench/out}") # absolute: the daemon chdirs to its work dir
mkdir -p "$OUT"
TMP=${BENCH_DIR:-/dev/shm/lp-bench.$$}
"$B/lp-bench" --daemon "$PWD/$B/lazypages" --sizes "$SIZES" --reps "${BENCH_REPS:-5}" --dir "$TMP" --out "$OUT" \
	${BENCH_DAEMON_ARGS:+--daemon-args "$BENCH_DAEMON_ARGS"} | tee "$OUT/table.txt"
if command -v gnuplot >/dev/null; then
	gnuplot <<EOG
set terminal pngcairo size 1100,450 font ",10" noenhanced
set output "$OUT/bench.png"
set datafile separator ","
set key top left
set logscale x 2
set xlabel "checkpoint size (MiB)"
set multiplot layout 1,2 title "lazypages: time and fault latency (one run, this machine)"
set ylabel "seconds"
set title "fully resident / sequential touch of all memory"
plot "$OUT/results.csv" skip 1 using 1:9 with linespoints title "lazypages: uffd handed over -> resident", \
     "" skip 1 using 1:8 with linespoints title "lazypages: seq touch all (fill running)", \
     "" skip 1 using 1:11 with linespoints title "kernel MAP_PRIVATE file: seq read touch", \
     "" skip 1 using 1:12 with linespoints title "kernel MAP_PRIVATE file: seq write touch", \
     "" skip 1 using 1:15 with linespoints title "eager copy (pread)"
set ylabel "microseconds"
set title "random-touch fault latency p99"
plot "$OUT/results.csv" skip 1 using 1:5 with linespoints title "lazypages p99, no fill", \
     "" skip 1 using 1:7 with linespoints title "lazypages p99, fill running", \
     "" skip 1 using 1:4 with linespoints title "lazypages p50, no fill", \
     "" skip 1 using 1:14 with linespoints title "kernel file paging p99"
unset multiplot
EOG
	echo "plot: $OUT/bench.png"
else
	echo "gnuplot not installed: no plot (make deps installs it)"
fi
