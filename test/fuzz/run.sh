#!/usr/bin/env bash
# Build the libFuzzer targets (`make fuzz`, needs clang) and run fuzz_images for a bounded
# time from seeds made of real images: the crit-encoded fixtures (test/images/fixtures) and
# the library's own sample checkpoint. Fails on any crash, leak, UB or broken invariant;
# a crashing input is kept as ARTIFACTS_DIR/fuzz-images-crash-*.
#
#   test/fuzz/run.sh [ARTIFACTS_DIR]      FUZZ_TIME=seconds (default 20), B=build dir
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
ART=${1:-test/out}
T=${FUZZ_TIME:-20}
if ! command -v "${FUZZ_CC:-clang}" >/dev/null; then
	echo "${FUZZ_CC:-clang} not found: the fuzz build needs clang"
	exit 77
fi
# A clean make: not the flags (SAN=1, -j jobserver) of a make that may be running us.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s fuzz || exit 1

tmp=$(mktemp -d /tmp/lpt-fuzz-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/seeds" "$tmp/corpus" "$ART"

# Seed = one selector byte (see fuzz_images.c: kind in bits 0-2, bit 7 = img_version 1),
# then the image.
seed() { # DIR VERSION
	local f k v=0
	[ "$2" = 1 ] && v=128
	for f in "$1"/*.img; do
		case "${f##*/}" in
		pagemap-*) k=0 ;; pstree.img) k=1 ;; mm-*) k=2 ;; core-*) k=3 ;;
		inventory.img) k=4 ;; *) continue ;;
		esac
		{ printf "\\$(printf %03o $((k | v)))"; cat "$f"; } >"$tmp/seeds/$2-${f##*/}"
	done
}
if command -v crit >/dev/null && command -v python3 >/dev/null; then
	for v in 2 1; do
		python3 test/images/images_test.py build "$tmp/fx$v" $v >/dev/null && seed "$tmp/fx$v" $v
	done
fi
if [ -x "$B/test/images/test_images" ]; then
	for v in 2 1; do
		mkdir "$tmp/gen$v"
		"$B/test/images/test_images" gen-crit "$tmp/gen$v" $v && seed "$tmp/gen$v" $v
	done
fi
echo "$(ls "$tmp/seeds" | wc -l) seeds"

# libFuzzer exits 77 on a crash by default, which test/run.sh would take for a skip.
# Not exec: the EXIT trap removes the seeds and corpus.
build-fuzz/fuzz_images -max_total_time="$T" -timeout=10 -rss_limit_mb=2048 \
	-error_exitcode=1 -timeout_exitcode=1 \
	-print_final_stats=1 -artifact_prefix="$ART/fuzz-images-" "$tmp/corpus" "$tmp/seeds"
exit $?
