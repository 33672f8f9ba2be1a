#!/usr/bin/env bash
# Build the page-server libFuzzer targets (`make fuzz-ps`, needs clang) and run each for a
# bounded time from a few valid seeds: fuzz_ps_server (request headers against the
# server's answer logic) and fuzz_ps_client (server replies into the client library).
# Fails on any crash, leak, UB or broken invariant; a crashing input is kept as
# ARTIFACTS_DIR/fuzz-ps-*-crash-*.
#
#   test/ps/fuzz.sh [ARTIFACTS_DIR]      FUZZ_TIME=seconds per target (default 15)
set -u
cd "$(dirname "$0")/../.."
ART=${1:-test/out}
T=${FUZZ_TIME:-15}
if ! command -v "${FUZZ_CC:-clang}" >/dev/null; then
	echo "${FUZZ_CC:-clang} not found: the fuzz build needs clang"
	exit 77
fi
# A clean make: not the flags (SAN=1, -j jobserver) of a make that may be running us.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s fuzz-ps || exit 1

tmp=$(mktemp -d /tmp/lpt-fuzz-ps-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/srv" "$tmp/cli" "$tmp/srv-corpus" "$tmp/cli-corpus" "$ART"

# Little-endian fields as printf escapes.
le() { # VALUE BYTES
	local v=$1 n=$2 i out=
	for ((i = 0; i < n; i++)); do
		out+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255)))
		done
	printf '%s' "$out"
}
v1() { printf "$(le "$1" 4)$(le "$2" 4)$(le "$3" 8)$(le "$4" 8)"; }           # cmd nr vaddr id
v2() { printf "$(le "$1" 4)$(le 0 4)$(le "$2" 8)$(le "$3" 8)$(le "$4" 8)"; }   # cmd nr vaddr id

# server seeds: selector, then GETs (pid 1 and 2 of the built-in store) and a CLOSE
{ printf '\x00'; v1 7 5 4096 1; v1 7 1 $((0x8000)) 1; v1 7 40 $((0x10000)) 2; v1 $((0x1023)) 0 0 0; } >"$tmp/srv/v1"
{ printf '\x01'; v2 7 $((1 << 40)) 4096 1; v2 7 1 $((0x7f0000000000)) 1; v2 $((0x1024)) 0 0 0; } >"$tmp/srv/v2"
# client seeds: selector (layout, 1 GET of up to byte1's pages), a correct 1-page reply
page() { head -c 4096 /dev/zero | tr '\0' 'p'; }
{ printf '\x00\x00'; v1 $((0x40006)) 1 $((0x7f0000000000)) 100; page; } >"$tmp/cli/v1"
{ printf '\x01\x00'; v2 $((0x40006)) 1 $((0x7f0000000000)) 100; page; } >"$tmp/cli/v2"

rc=0
for t in server:srv client:cli; do
	name=${t%%:*} dir=${t##*:}
	echo "== fuzz_ps_$name for ${T}s"
	# libFuzzer exits 77 on a crash by default, which test/run.sh would take for a skip.
	build-fuzz/fuzz_ps_"$name" -max_total_time="$T" -timeout=10 -rss_limit_mb=2048 \
		-error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
		-artifact_prefix="$ART/fuzz-ps-$name-" "$tmp/$dir-corpus" "$tmp/$dir" || rc=1
done
exit $rc
