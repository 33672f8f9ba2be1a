#!/usr/bin/env bash
# Build the libFuzzer targets (`make fuzz`, needs clang) and run fuzz_restore_sock, the
# restore-socket parser driven through a socketpair, for a bounded time from a few seeds:
# a complete valid restore and the classic mistakes (two fds, a FIFO named userfaultfd, a
# uffd without UFFDIO_API, a short pid). Fails on any crash, leak (memory or fd), UB, hang
# or broken invariant; a crashing input is kept as ARTIFACTS_DIR/fuzz-restore-sock-crash-*.
#
#   test/fuzz/run_restore_sock.sh [ARTIFACTS_DIR]      FUZZ_TIME=seconds (default 15)
set -u
cd "$(dirname "$0")/../.."
ART=${1:-test/out}
T=${FUZZ_TIME:-15}
if ! command -v "${FUZZ_CC:-clang}" >/dev/null; then
	echo "${FUZZ_CC:-clang} not found: the fuzz build needs clang"
	exit 77
fi
# A clean make: not the flags (SAN=1, -j jobserver) of a make that may be running us.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s fuzz || exit 1

tmp=$(mktemp -d /tmp/lpt-fuzz-sock-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/seeds" "$tmp/corpus" "$ART"

# Script ops (fuzz_restore_sock.c): 01 w = word (w: 0 pid 1, 1 pid 2, 2 zombie -3, 3 pid 4,
# 4 stranger, 5 zero, 6 finish, 7 the next 4 bytes), 02 k n kinds = bytes with fds (kind 2 a
# uffd, 3 a uffd without API, 4 a FIFO), 03 creds, 04 hang up, 05 parse now.
seed() { printf "$2" >"$tmp/seeds/$1"; }
seed valid '\x01\x00\x02\x00\x00\x02\x01\x01\x02\x00\x00\x02\x01\x02\x01\x07\xfc\xff\xff\xff\x01\x06\x05\x04'
seed garbage '\x01\x00\x02\x00\x00\x02\x01\x01\x02\x00\x00\x02\x01\x02\x01\x07\xfc\xff\xff\xff\x01\x06\x00\x03JUNK\x02\x01\x00\x00\x01'
seed twofds '\x01\x00\x02\x01\x00\x02\x00'
seed fifo '\x01\x00\x02\x00\x00\x04'
seed noapi '\x01\x00\x02\x00\x00\x03'
seed creds '\x01\x00\x03\x05'
seed shortpid '\x00\x01\x01\x00\x04'
seed twice '\x01\x00\x02\x00\x00\x02\x01\x00'
echo "$(ls "$tmp/seeds" | wc -l) seeds"

# libFuzzer exits 77 on a crash by default, which test/run.sh would take for a skip.
# Not exec: the EXIT trap removes the seeds and corpus.
build-fuzz/fuzz_restore_sock -max_total_time="$T" -timeout=10 -rss_limit_mb=2048 \
	-error_exitcode=1 -timeout_exitcode=1 \
	-print_final_stats=1 -artifact_prefix="$ART/fuzz-restore-sock-" "$tmp/corpus" "$tmp/seeds"
exit $?
