# shellcheck shell=bash
# Host side of the VM tier: kernel cache, initramfs, QEMU boot. Sourced by run.sh and demo.sh
# (bash, set -euo pipefail, cwd = repository root, $B = build dir).
#
# The guest is Debian bookworm's current 6.1 kernel under QEMU TCG with bookworm's CRIU:
# real CRIU 3.17.1 does not run on the host kernel (see shared docs, real-criu-vm.md).

LP_VM_CACHE=${LP_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/lazypages-vm}
LP_VM_DIR=test/vm

# Modules the guest insmods, in this order (dependencies found in the .ko files are added
# in front of the module that needs them).
#   nf_tables: CRIU's feature detection aborts without it; *_diag: "Diag module missing";
#   tun veth autofs4: probed by criu check; virtio + 9p: the host share.
LP_VM_MODULES="crc32c_generic libcrc32c nfnetlink nf_tables
unix_diag inet_diag tcp_diag udp_diag raw_diag af_packet_diag netlink_diag
tun veth autofs4
virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p"

vm_say() { printf 'vm: %s\n' "$*" >&2; }

# A failure the harness cannot get past: said loudly, never skipped silently.
vm_fail() {
	printf 'vm: FAIL: %s\n' "$*" >&2
	exit 1
}

# A missing host prerequisite: skip (77, reason on the last line) on a developer machine,
# fail under CI, where skipping is not allowed.
vm_missing() {
	if [ "${CI:-}" = true ]; then
		vm_fail "$* (CI=true: the VM tier may not be skipped; install test/vm/packages.txt)"
	fi
	printf 'vm: SKIP: %s; install with: apt-get install -y --no-install-recommends %s\n' "$*" \
		"$(grep -v '^#' "$LP_VM_DIR/packages.txt" | tr '\n' ' ')" >&2
	echo "skipped: $*"
	exit 77
}

vm_now() { date +%s.%N; }
vm_since() { awk -v a="$1" -v b="$(vm_now)" 'BEGIN { printf "%.1f", b - a }'; }

vm_need_tools() {
	local t missing=()
	for t in qemu-system-x86_64 timeout flock cpio apt-get apt-cache dpkg-deb gcc ldd make awk; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	[ -x /usr/sbin/criu ] || missing+=(/usr/sbin/criu)
	[ -x /bin/busybox ] || missing+=(/bin/busybox)
	[ ${#missing[@]} -eq 0 ] || vm_missing "missing on this host: ${missing[*]}"
	if ldd /bin/busybox >/dev/null 2>&1; then
		vm_missing "/bin/busybox is not the static one (package busybox-static)"
	fi
}

# vm_kernel: sets VM_KVER, VM_VMLINUZ, VM_MODDIR (modules + "order") from the cache, filling
# the cache from bookworm's current linux-image-*-amd64 package when needed.
vm_kernel() {
	local pkg dir tmp deb kroot
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }') || true
	if [ -z "$pkg" ]; then
		# No package lists (no apt-get update yet, or offline): use what the cache has.
		dir=$(ls -d "$LP_VM_CACHE"/kernel/linux-image-*/ 2>/dev/null | sort -V | tail -n 1) || true
		[ -n "$dir" ] && [ -f "$dir/complete" ] ||
			vm_fail "apt-cache does not know linux-image-amd64 (run apt-get update) and $LP_VM_CACHE has no kernel"
		vm_say "apt-cache gave no kernel package; using the cached ${dir%/}"
		dir=${dir%/}
	else
		dir=$LP_VM_CACHE/kernel/$pkg
	fi
	mkdir -p "$LP_VM_CACHE/kernel"
	# one fetch at a time (two runs may share the cache)
	exec 8>"$LP_VM_CACHE/kernel/.lock"
	flock 8
	if [ ! -f "$dir/complete" ]; then
		local t0 old
		t0=$(vm_now)
		tmp=$(mktemp -d "$LP_VM_CACHE/kernel/.fetch.XXXXXX")
		chmod 755 "$tmp"
		vm_say "downloading $pkg into $LP_VM_CACHE (once)"
		(cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed' >&2) ||
			{ rm -rf "$tmp"; vm_fail "apt-get download $pkg failed"; }
		deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n 1)
		[ -n "$deb" ] || { rm -rf "$tmp"; vm_fail "apt-get download $pkg produced no .deb"; }
		mkdir -p "$tmp/x"
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards './boot/vmlinuz-*' './lib/modules/*' ||
			{ rm -rf "$tmp"; vm_fail "cannot unpack $deb"; }
		rm -f "$deb"
		kroot=$(ls -d "$tmp"/x/lib/modules/*/ | head -n 1)
		rm -rf "$dir.new" && mkdir -p "$dir.new/modules"
		cp "$tmp"/x/boot/vmlinuz-* "$dir.new/vmlinuz"
		basename "${kroot%/}" >"$dir.new/kver"
		vm_resolve_modules "$kroot" "$dir.new/modules" || { rm -rf "$tmp" "$dir.new"; exit 1; }
		touch "$dir.new/complete"
		rm -rf "$dir" && mv "$dir.new" "$dir"
		rm -rf "$tmp"
		vm_say "kernel $(cat "$dir/kver") cached in $dir ($(vm_since "$t0") s)"
		# Debian moved to a new kernel ABI: drop the older ones
		for old in "$LP_VM_CACHE"/kernel/linux-image-*; do
			[ "$old" = "$dir" ] || rm -rf "$old"
		done
	fi
	exec 8>&-
	VM_KVER=$(cat "$dir/kver")
	VM_VMLINUZ=$dir/vmlinuz
	VM_MODDIR=$dir/modules
}

# vm_runc: sets VM_RUNC to bookworm's runc binary (1.1.5), fetched once with `apt-get
# download runc` into $LP_VM_CACHE/runc/VERSION/ (the host needs its libraries: libc6 and
# libseccomp2, which ldd finds when the initramfs is built).
vm_runc() {
	local ver dir tmp deb
	ver=$(apt-cache policy runc 2>/dev/null | awk '/Candidate:/ { print $2; exit }') || true
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		dir=$(ls -d "$LP_VM_CACHE"/runc/*/ 2>/dev/null | sort -V | tail -n 1) || true
		[ -n "$dir" ] && [ -x "$dir/runc" ] ||
			vm_fail "apt-cache does not know runc (run apt-get update) and $LP_VM_CACHE has no runc"
		VM_RUNC=${dir%/}/runc
		return 0
	fi
	dir=$LP_VM_CACHE/runc/${ver//:/_}
	mkdir -p "$LP_VM_CACHE/runc"
	exec 8>"$LP_VM_CACHE/runc/.lock"
	flock 8
	if [ ! -x "$dir/runc" ]; then
		tmp=$(mktemp -d "$LP_VM_CACHE/runc/.fetch.XXXXXX")
		chmod 755 "$tmp"
		vm_say "downloading runc $ver into $LP_VM_CACHE (once)"
		(cd "$tmp" && apt-get download -q "runc=$ver" 2>&1 | grep -v 'unsandboxed' >&2) ||
			{ rm -rf "$tmp"; vm_fail "apt-get download runc=$ver failed"; }
		deb=$(ls "$tmp"/*.deb 2>/dev/null | head -n 1)
		[ -n "$deb" ] || { rm -rf "$tmp"; vm_fail "apt-get download runc produced no .deb"; }
		mkdir -p "$tmp/x"
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" ./usr/sbin/runc ||
			{ rm -rf "$tmp"; vm_fail "cannot unpack $deb"; }
		rm -rf "$dir" && mkdir -p "$dir"
		mv "$tmp/x/usr/sbin/runc" "$dir/runc"
		rm -rf "$tmp"
		for old in "$LP_VM_CACHE"/runc/*/; do
			[ "${old%/}" = "$dir" ] || rm -rf "$old"
		done
	fi
	exec 8>&-
	ldd "$dir/runc" 2>/dev/null | grep -q 'not found' &&
		vm_missing "runc's libraries are missing on this host: $(ldd "$dir/runc" | awk '/not found/ { print $1 }' | tr '\n' ' ')(package libseccomp2)"
	VM_RUNC=$dir/runc
}

# vm_resolve_modules KROOT DEST: copy LP_VM_MODULES and their dependencies (read from each
# .ko's modinfo "depends=") to DEST, and write DEST/order, dependencies first.
vm_resolve_modules() {
	local kroot=$1 dest=$2 f n
	declare -A path=() done_=()
	local order=()
	while IFS= read -r f; do
		n=$(basename "$f" .ko)
		path[${n//-/_}]=$f
	done < <(find "$kroot" -name '*.ko')
	_vm_add_module() {
		local m=${1//-/_} d deps
		[ -z "${done_[$m]:-}" ] || return 0
		if [ -z "${path[$m]:-}" ]; then
			if grep -q "/$m.ko\$" "$kroot/modules.builtin" 2>/dev/null ||
				grep -q "/${m//_/-}.ko\$" "$kroot/modules.builtin" 2>/dev/null; then
				done_[$m]=builtin
				return 0
			fi
			vm_say "FAIL: module $m not found in the kernel package"
			return 1
		fi
		done_[$m]=busy
		deps=$(tr '\0' '\n' <"${path[$m]}" | sed -n 's/^depends=//p' | head -n 1)
		for d in ${deps//,/ }; do
			_vm_add_module "$d" || return 1
		done
		done_[$m]=yes
		order+=("$m")
	}
	for n in $LP_VM_MODULES; do
		_vm_add_module "$n" || return 1
	done
	: >"$dest/order"
	for n in "${order[@]}"; do
		cp "${path[$n]}" "$dest/$n.ko"
		echo "$n.ko" >>"$dest/order"
	done
}

# vm_copy_bin ROOT SRC DEST: copy an executable into the initramfs tree with the shared
# libraries ldd lists for it (and the dynamic loader) at their own paths.
vm_copy_bin() {
	local root=$1 src=$2 dest=$3 lib
	mkdir -p "$root$(dirname "$dest")"
	cp -L "$src" "$root$dest"
	while IFS= read -r lib; do
		[ -n "$lib" ] || continue
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done < <(ldd "$src" 2>/dev/null | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(/ { print $1 }')
}

# vm_initrd OUT: build the initramfs (uncompressed newc cpio) into OUT.
#   busybox, criu + libs, modules, /init, and under /lp: workload, broken-daemon, the criu
#   wrapper (lazy-pages/criu-wrapper.sh as /lp/bin/criu) and, when built, lazypages (+ libs)
#   and the CRIU plugin (/lp/plugin/, criu --libdir /lp/plugin);
#   runc (+ libs) as /usr/sbin/runc and GNU tar when VM_RUNC is set (vm_runc).
vm_initrd() {
	local out=$1 root
	root=$(mktemp -d "$LP_VM_CACHE/.root.XXXXXX")
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,img,mnt,etc,lp,modules,root}
	cp /bin/busybox "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	vm_copy_bin "$root" /usr/sbin/criu /usr/sbin/criu
	cp "$VM_MODDIR"/*.ko "$VM_MODDIR/order" "$root/modules/"
	install -m 0755 "$LP_VM_DIR/init" "$root/init"
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	vm_copy_bin "$root" "$B/vm/workload" /lp/workload
	vm_copy_bin "$root" "$B/vm/broken-daemon" /lp/broken-daemon
	if [ -x "$B/lazypages" ]; then
		vm_copy_bin "$root" "$B/lazypages" /lp/lazypages
	fi
	# the criu wrapper zdtm.py runs as --criu-bin (the zdtm-* scenarios)
	install -D -m 0755 lazy-pages/criu-wrapper.sh "$root/lp/bin/criu"
	if [ -f "$B/criu-plugin/lazypages_plugin.so" ]; then
		mkdir -p "$root/lp/plugin"
		cp "$B/criu-plugin/lazypages_plugin.so" "$root/lp/plugin/"
	fi
	if [ -n "${VM_RUNC:-}" ]; then
		vm_copy_bin "$root" "$VM_RUNC" /usr/sbin/runc
		# CRIU saves a container's tmpfs mounts (/dev, /dev/shm) with GNU tar options that
		# busybox tar lacks; /usr/bin comes before busybox's /bin in the guest's PATH
		vm_copy_bin "$root" "$(command -v tar)" /usr/bin/tar
	fi
	if [ "$(id -u)" = 0 ]; then
		mknod -m 600 "$root/dev/console" c 5 1
		mknod -m 666 "$root/dev/null" c 1 3
	fi
	(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$out" ||
		{ rm -rf "$root"; vm_fail "cpio failed"; }
	rm -rf "$root"
}

# vm_boot SHARE MEM_MIB TIMEOUT_S CONSOLE_LOG [FILTER]: boot the guest, which runs
# SHARE/guest.sh and powers off. The console goes to CONSOLE_LOG and, through FILTER (a
# command reading stdin; default cat), to stdout. Returns QEMU's exit code (124 = timeout).
vm_boot() {
	local share=$1 mem=$2 tmo=$3 log=$4 filter=${5:-cat} initrd rc
	initrd=$(mktemp "$LP_VM_CACHE/initrd.XXXXXX")
	vm_initrd "$initrd"
	vm_say "boot: kernel $VM_KVER, initrd $(($(stat -c %s "$initrd") / 1024 / 1024)) MiB, ${mem} MiB RAM, 2 TCG vCPUs, limit ${tmo}s"
	set +e
	timeout -k 10 "$tmo" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "$mem" \
		-nodefaults -display none -serial stdio -no-reboot \
		-kernel "$VM_VMLINUZ" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 quiet" \
		-virtfs "local,path=$share,mount_tag=share,security_model=none,id=share" \
		</dev/null 2>&1 | sed -u 's/\r$//' | tee "$log" | eval "$filter"
	rc=${PIPESTATUS[0]}
	set -e
	rm -f "$initrd"
	return "$rc"
}
