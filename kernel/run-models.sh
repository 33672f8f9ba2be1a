#!/usr/bin/env bash
# Check the Promela models in kernel/models/ with spin and compare every verdict with the
# expected one. A variant that is meant to contain a bug must still be caught: a model that
# stops finding it fails this script just like a model that starts finding one.
#
# Usage: kernel/run-models.sh [-k] [-j JOBS] [REGEX]
#   -k       keep the work directory (printed at the end) with pan.c, pan output and trails
#   -j JOBS  parallel checks (default: number of CPUs)
#   REGEX    only the cases whose "model defines mode" line matches
# Exit: 0 all verdicts as expected, 1 some differ, 77 spin or a C compiler is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
models=$here/models
keep=0
jobs=$(nproc 2>/dev/null || echo 2)
filter=
while [ $# -gt 0 ]; do
	case $1 in
	-k) keep=1 ;;
	-j) jobs=$2; shift ;;
	-j*) jobs=${1#-j} ;;
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run-models.sh: unknown option $1" >&2; exit 2 ;;
	*) filter=$1 ;;
	esac
	shift
done

SPIN=${SPIN:-spin}
CC=${CC:-gcc}
if ! command -v "$SPIN" >/dev/null 2>&1; then
	echo "spin not found (Debian/Ubuntu: apt-get install spin); models not checked"
	exit 77
fi
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "$CC not found; cannot compile pan"
	exit 77
fi

# model | defines | mode | expected verdict
#   mode safety: pan compiled with -DSAFETY -DNOCLAIM; assertions and invalid end states.
#   pan.c is generated code: compiled at -O0 (state spaces are tiny) without warnings
#   mode ltl:    pan compiled with the model's ltl formula, run with -a -f (acceptance cycles
#                under weak fairness), assertions ignored (-A) so the formula decides alone
cases=$(cat <<'EOF'
uffd_tso.pml    | -DWAKER_MB=0               | safety | bug
uffd_tso.pml    | -DWAKER_MB=1               | safety | ok
uffd_tso.pml    | -DWAKER_MB=0 -DSC=1        | safety | ok
uffd_tso.pml    | -DWAKER_MB=0 -DUNLOCK_RMW=1 | safety | ok
uffd_tso.pml    | -DWAKER_MB=0               | ltl    | bug
uffd_tso.pml    | -DWAKER_MB=1               | ltl    | ok
uffd_refile.pml | -DUSE_SEQ=0                | safety | bug
uffd_refile.pml | -DUSE_SEQ=1                | safety | ok
uffd_refile.pml | -DUSE_SEQ=0                | ltl    | bug
uffd_refile.pml | -DUSE_SEQ=1                | ltl    | ok
uffd_daemon.pml | -DPOLICY=0                 | safety | ok
uffd_daemon.pml | -DPOLICY=1                 | safety | bug
uffd_daemon.pml | -DPOLICY=2                 | safety | ok
uffd_daemon.pml | -DPOLICY=3                 | safety | ok
uffd_daemon.pml | -DPOLICY=0                 | ltl    | ok
uffd_daemon.pml | -DPOLICY=1                 | ltl    | bug
uffd_daemon.pml | -DPOLICY=2                 | ltl    | ok
uffd_daemon.pml | -DMULTI=1 -DRESUME=1       | safety | ok
uffd_daemon.pml | -DMULTI=1 -DRESUME=1 -DPOLICY=2 | safety | ok
uffd_daemon.pml | -DMULTI=1 -DRESUME=0       | safety | bug
uffd_remove.pml | -DVARIANT=0                | safety | bug
uffd_remove.pml | -DVARIANT=1                | safety | bug
uffd_remove.pml | -DVARIANT=2                | safety | ok
uffd_remove.pml | -DVARIANT=3                | safety | ok
uffd_remove.pml | -DVARIANT=2                | ltl    | ok
uffd_remove.pml | -DVARIANT=3                | ltl    | ok
uffd_remove.pml | -DVARIANT=4                | ltl    | bug
EOF
)

work=$(mktemp -d "${TMPDIR:-/tmp}/lp-models.XXXXXX") || exit 1
cleanup() { [ $keep -eq 1 ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }

# check_one N MODEL DEFINES MODE: writes "verdict|note" to $work/N/verdict
check_one() {
	local n=$1 model=$2 defines=$3 mode=$4 dir=$work/$1 got note
	if ! mkdir -p "$dir" || ! cp "$models/$model" "$dir/"; then
		echo "error|cannot copy $model" >"$dir/verdict"
		return
	fi
	cd "$dir" || return
	# shellcheck disable=SC2086  # $defines is a word list on purpose
	if ! "$SPIN" $defines -a "$model" >spin.out 2>&1; then
		echo "error|spin -a failed: $(grep -m1 -i error spin.out)" >verdict
		return
	fi
	if [ "$mode" = safety ]; then
		"$CC" -w -O0 -DSAFETY -DNOCLAIM -o pan pan.c >cc.out 2>&1 &&
			./pan -m100000 >pan.out 2>&1
	else
		"$CC" -w -O0 -DNFAIR=8 -o pan pan.c >cc.out 2>&1 && ./pan -m100000 -a -f -A >pan.out 2>&1
	fi
	if ! grep -q 'errors: [0-9]' pan.out 2>/dev/null; then
		echo "error|pan did not run: $(cat cc.out pan.out 2>/dev/null | tr '\n' ' ' | head -c 200)" >verdict
		return
	fi
	if grep -q 'errors: 0' pan.out; then
		if grep -qiE 'max search depth too small|search not completed|out of memory' pan.out; then
			got=incomplete
			note=$(grep -m1 -iE 'max search depth too small|search not completed|out of memory' pan.out)
		else
			got=ok
			note=$(grep -m1 'states, stored' pan.out)
		fi
	else
		got=bug
		note=$(grep -m1 '^pan:1:' pan.out | sed -e 's/^pan:1: //' -e 's/ (at depth [0-9]*)//')
	fi
	echo "$got|$(trim "$note")" >verdict
}

start=$(date +%s%N)
n=0
running=0
lines=()
while IFS= read -r line; do
	[ -n "$line" ] || continue
	IFS='|' read -r model defines mode expect <<<"$line"
	model=$(trim "$model"); defines=$(trim "$defines"); mode=$(trim "$mode"); expect=$(trim "$expect")
	if [ -n "$filter" ] && ! [[ "$model $defines $mode" =~ $filter ]]; then continue; fi
	n=$((n + 1))
	lines[n]="$model|$defines|$mode|$expect"
	( check_one "$n" "$model" "$defines" "$mode" ) &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done <<<"$cases"
wait

pass=0 fail=0
for i in $(seq 1 "$n"); do
	IFS='|' read -r model defines mode expect <<<"${lines[i]}"
	if [ -r "$work/$i/verdict" ]; then
		IFS='|' read -r got note <"$work/$i/verdict"
	else
		got=error note="no verdict"
	fi
	label=$defines
	[ "$mode" = ltl ] && label="$defines ltl"
	if [ "$got" = "$expect" ]; then
		status=PASS pass=$((pass + 1))
	else
		status=FAIL fail=$((fail + 1))
	fi
	printf '%s spin %-16s %-34s expect=%-3s got=%-3s (%s)\n' "$status" "$model" "$label" \
		"$expect" "$got" "$note"
	if [ "$status" = FAIL ] && [ -r "$work/$i/pan.out" ]; then
		sed 's/^/    /' "$work/$i/pan.out" | head -n 20
	fi
done

ms=$((($(date +%s%N) - start) / 1000000))
echo "models: $("$SPIN" -V 2>&1 | head -n1), $n checks in $((ms / 1000)).$((ms % 1000 / 100))s"
[ $keep -eq 1 ] && echo "work directory kept: $work"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$n" -gt 0 ]
