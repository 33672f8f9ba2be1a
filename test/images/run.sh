#!/usr/bin/env bash
# Image tests that need crit and python3: see images_test.py. Usage: run.sh TEST
#   crit-decode | fixtures | corrupt
# Skips (77) when crit or python3 is missing. Run from anywhere; $B defaults to build.
set -u
cd "$(dirname "$0")/../.."
export B=${B:-build}
if ! command -v python3 >/dev/null; then
	echo "python3 not found"
	exit 77
fi
if ! command -v crit >/dev/null; then
	echo "crit not found (Debian package criu)"
	exit 77
fi
exec python3 test/images/images_test.py "$@"
