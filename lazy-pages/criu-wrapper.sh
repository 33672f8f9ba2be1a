#!/bin/sh
# SPDX-License-Identifier: MIT
#
# criu, with its lazy-pages daemon and its lazy page server replaced by lazypages.
#
# Installed as $(PREFIX)/lib/lazypages/criu (make install), in a directory of its own, for
# tools that run criu by path or from PATH and start `criu lazy-pages` themselves:
#
#   zdtm.py run --lazy-pages --criu-bin /usr/local/lib/lazypages/criu ...
#   PATH=/usr/local/lib/lazypages:$PATH some-migration-script
#
#   criu lazy-pages ARGS                  lazypages lazy-pages ARGS
#   criu page-server ARGS (--lazy-pages)  lazypages page-server --single ARGS: one session,
#                                         then exit, as CRIU's does (zdtm waits for that)
#   criu anything else                    the real criu, unchanged
#
# Both ends of the page-server protocol get --ps-header 24 or 32 as the real criu's
# version (criu --version) says, unless given one: CRIU >= 4.2 speaks 32-byte headers,
# so lazy migration from its `criu dump --lazy-pages` needs them (zdtm --lazy-migrate).
#
# LAZYPAGES_BIN       the lazypages binary (default: the one make install put in
#                     $(BINDIR), else lazypages on PATH)
# LAZYPAGES_REAL_CRIU the real criu (default: the first criu on PATH that is not this
#                     script, else /usr/sbin/criu)
#
# CRIU takes options before the command too (criu -v4 lazy-pages ...): the command is the
# first argument that is neither an option nor the value of one.

self=$(readlink -f "$0" 2>/dev/null || echo "$0")

real_criu() {
	if [ -n "${LAZYPAGES_REAL_CRIU:-}" ]; then
		echo "$LAZYPAGES_REAL_CRIU"
		return
	fi
	IFS=:
	for d in $PATH; do
		if [ -n "$d" ] && [ -x "$d/criu" ] && [ ! -d "$d/criu" ] &&
			[ "$(readlink -f "$d/criu" 2>/dev/null)" != "$self" ]; then
			echo "$d/criu"
			return
		fi
	done
	unset IFS
	echo /usr/sbin/criu
}

lazypages_bin() {
	bindir=@LP_BINDIR@ # make install writes $(BINDIR) here
	if [ -n "${LAZYPAGES_BIN:-}" ]; then
		echo "$LAZYPAGES_BIN"
	elif [ -x "$bindir/lazypages" ]; then
		echo "$bindir/lazypages"
	else
		command -v lazypages || echo lazypages
	fi
}

# CRIU 3.17.1's options that take a separate value (criu-opts.h has the rest of the table).
takes_value() {
	case $1 in
	-t | -D | -o | -J | -r | -W | -L | -M) return 0 ;;
	--tree | --images-dir | --work-dir | --log-file | --join-ns | --root | --close | \
		--pidfile | --veth-pair | --action-script | --address | --port | \
		--prev-images-dir | --libdir | --ext-mount-map | --cgroup-root | --inherit-fd | \
		--feature | --skip-mnt | --enable-fs | --freeze-cgroup | --ghost-limit | \
		--irmap-scan-path | --lsm-profile | --timeout | --external | --empty-ns | \
		--cgroup-props | --cgroup-props-file | --cgroup-dump-controller | --status-fd | \
		--ps-socket | --config | --tls-cacert | --tls-cacrl | --tls-cert | --tls-key | \
		--cgroup-yard | --pre-dump-mode | --file-validation | --lsm-mount-context | \
		--network-lock) return 0 ;;
	esac
	return 1
}

# CRIU 4.2 widened the page-server header from 24 to 32 bytes, and the protocol has no
# version negotiation: speak the layout of the criu installed here (lazypages --ps-header).
ps_header() {
	# shellcheck disable=SC2046 # "MAJOR MINOR" split on purpose
	set -- $("$(real_criu)" --version 2>/dev/null |
		sed -n 's/^Version: *\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p')
	[ $# = 2 ] || return 0
	if [ "$1" -gt 4 ] || { [ "$1" = 4 ] && [ "$2" -ge 2 ]; }; then echo 32; else echo 24; fi
}

# Find the command and whether --lazy-pages, --page-server and --ps-header are among the
# options.
cmd="" lazy=0 remote=0 hdr=0 skip=0 pos=0 cmdpos=0
for a in "$@"; do
	pos=$((pos + 1))
	if [ $skip = 1 ]; then
		skip=0
		continue
	fi
	case $a in
	--) break ;;
	--lazy-pages) lazy=1 ;;
	--page-server) remote=1 ;;
	--ps-header | --ps-header=*) hdr=1 ;;
	-*) takes_value "$a" && skip=1 ;;
	*) if [ -z "$cmd" ]; then cmd=$a cmdpos=$pos; fi ;;
	esac
done

case $cmd in
lazy-pages) ;;
page-server) [ $lazy = 1 ] || exec "$(real_criu)" "$@" ;;
*) exec "$(real_criu)" "$@" ;;
esac

# The same arguments without the command word.
pos=0
for a in "$@"; do
	pos=$((pos + 1))
	[ $pos = 1 ] && set --
	[ $pos = "$cmdpos" ] || set -- "$@" "$a"
done

lp=$(lazypages_bin)
if [ $hdr = 0 ] && { [ "$cmd" = page-server ] || [ $remote = 1 ]; }; then
	h=$(ps_header)
	[ -z "$h" ] || set -- --ps-header "$h" "$@"
fi
if [ "$cmd" = page-server ]; then
	exec "$lp" page-server --single "$@"
fi
exec "$lp" lazy-pages "$@"
