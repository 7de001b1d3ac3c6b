#!/usr/bin/env bash
# The kgate VM suite: boot a real Debian kernel (BPF LSM active) under QEMU
# and run every BUILD_DIR/vmtests/vt_* binary inside it.
#
# Usage: vmtests/run.sh BUILD_DIR [--lsm full|nobpf]... [--kernel 6.1|6.12]
#                       [--timeout SECS] [--shell] [--bench] [-- FILTER...]
#
#   --lsm full     kernel's default LSM list (includes bpf)
#   --lsm nobpf    lsm=lockdown,capability,landlock,yama,apparmor (no bpf):
#                  the degraded configuration many distributions ship
#                  (default: both, one boot each)
#   --kernel       6.1 (Debian 12, default) or 6.12 (bookworm-backports)
#   --timeout      per-binary timeout inside the guest (default 360 s)
#   --shell        interactive: run the tests, then a root shell on the
#                  console (first --lsm config only; no results collected)
#   --bench        the LSM-path benchmark instead of the tests: boots only
#                  the full configuration with only vt_bench* inside,
#                  KGATE_VM_BENCH=1 (and any KGATE_BENCH_* knobs set here)
#                  on the kernel command line, per-binary timeout 1500 s,
#                  2 GiB; copies its "KGATE-BENCH {json}" lines to
#                  BUILD_DIR/vmtest-bench.jsonl (bench/vm.sh reads them)
#   FILTER         words: one naming (part of) a vt_* binary runs that whole
#                  binary, others select tests by name inside every binary
#
# The guest: busybox init (vmtests/init) runs each vt_* binary as root with
# KGATE_VM_CONFIG, KGATE_BIN, KGATE_SRC (/opt/kgate: policies/, demo/,
# vmtests/data/) and KGATE_TEST_HELPERS set.  Real tools: the host's /usr
# and /etc (and /bin, /lib* where not merged-/usr links) are shared
# read-only over virtio-9p (modules from the same kernel package) and
# mounted under /userland; /opt/kgate/kg-userland CMD runs CMD there as on
# an ordinary machine (cc, make, git, python3, curl...; the guest's /tmp,
# /root, /home, /run shared; HOME=/root), vmtests/vt_userland.h wraps it
# for C tests.  See vmtests/README.md.  A guest whose userland failed is a
# failure ("userland"), never a skip.
#
# Environment: KGATE_VM_TIMEOUT (whole-VM timeout in seconds, default 1800),
# KGATE_VM_ACCEL (auto, the default: KVM if a probe boot works, else TCG;
# or tcg, or kvm), KGATE_VM_CACHE (kernel cache
# directory, default vmtests/cache), KGATE_VM_VERBOSE=1 (echo the serial log),
# KGATE_VM_PARALLEL=0 (boot the configurations one after the other).
#
# Output: one line per test, "<config> PASS|FAIL|SKIP <binary>/<test>", then
# "N passed, N failed, N skipped".  The serial log of each boot is kept in
# BUILD_DIR/vmtest-<config>.log.  Fails closed: a VM that hangs, panics or
# dies, a binary that is missing from the log, exits non-zero without saying
# why, or prints no summary line, is counted as a failure, never a pass.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

usage() { sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[ $# -ge 1 ] || usage
build=$(cd "$1" && pwd) || { echo "vmtest: no build directory $1" >&2; exit 2; }
shift
configs=() kernel=6.1 bin_timeout= filter=() shell=0 bench=0
while [ $# -gt 0 ]; do
	case "$1" in
	--lsm) configs+=("${2:?--lsm needs full or nobpf}"); shift 2 ;;
	--kernel) kernel=${2:?--kernel needs 6.1 or 6.12}; shift 2 ;;
	--timeout) bin_timeout=${2:?}; shift 2 ;;
	--shell) shell=1; shift ;;
	--bench) bench=1; shift ;;
	--) shift; filter=("$@"); break ;;
	-h|--help) usage ;;
	*) echo "vmtest: unknown argument $1" >&2; usage ;;
	esac
done
if [ "$bench" = 1 ]; then
	configs=(full) filter=()
	bin_timeout=${bin_timeout:-1500}
fi
bin_timeout=${bin_timeout:-360}
[ ${#configs[@]} -gt 0 ] || configs=(full nobpf)
for c in "${configs[@]}"; do
	case "$c" in full|nobpf) ;; *) echo "vmtest: unknown --lsm $c" >&2; exit 2 ;; esac
done
case "$kernel" in 6.1|6.12) ;; *) echo "vmtest: unknown --kernel $kernel" >&2; exit 2 ;; esac

cache=${KGATE_VM_CACHE:-$here/cache}
vm_timeout=${KGATE_VM_TIMEOUT:-1800}
vm_mem=1024
# CPUs of the guest (KGATE_VM_SMP): 2 by default, so that races between
# CPUs are exercised.  Under TCG, patching a BPF trampoline while another
# vCPU runs through the hook is not reliable: with nothing of kgate's loaded
# but one trivial LSM program attached and detached in a loop while two
# processes open files, Debian's 6.12 guest oopses within seconds ("Oops:
# int3" at bpf_lsm_file_open+0x5, the patched call already in place) and
# 6.1's soft-locks.  kgate attaches its programs once per pin set, which 6.1
# survives; 6.12 oopsed mid-suite twice (at bpf_lsm_mmap_file,
# bpf_lsm_file_permission) and passes with one CPU, its default here.
vm_smp=${KGATE_VM_SMP:-2}
[ "$kernel" = 6.12 ] && vm_smp=${KGATE_VM_SMP:-1}
if [ "$bench" = 1 ]; then
	vm_timeout=${KGATE_VM_TIMEOUT:-$((bin_timeout + 300))}
	vm_mem=2048	# 100,000 files and a 100,000-rule policy
fi
accel=${KGATE_VM_ACCEL:-auto}
parallel=${KGATE_VM_PARALLEL:-1}
mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/kgate-vmtest.XXXXXX")
trap 'rm -rf "$work"' EXIT

trap 'echo "vmtest: internal error at line $LINENO" >&2' ERR
log() { echo "vmtest: $*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ---- the kernel ----------------------------------------------------------
# Debian's own kernel package, fetched with apt-get download into the cache
# and reused as long as it is there.  6.12 comes from bookworm-backports
# through a private sources list, so the machine's apt setup is untouched;
# the backports entry is derived from the Debian archive entry of the
# machine's own apt sources (debian-mirror.sh): no mirror is named here.

# shellcheck source=vmtests/debian-mirror.sh
. "$here/debian-mirror.sh"

apt_opts=()
backports_setup() {
	local dir=$cache/apt-backports paths line
	mapfile -t paths < <(kg_apt_source_paths)
	line=$(kg_backports_line "${paths[0]}" "${paths[1]}") ||
		die "no Debian archive entry in ${paths[0]} or ${paths[1]}/*.{list,sources}: the 6.12 kernel comes from bookworm-backports on the mirror this machine's apt already uses (a 'deb' entry for a Debian suite with main); add one, or use --kernel 6.1"
	log "backports: $line"
	mkdir -p "$dir/lists/partial"
	echo "$line" >"$dir/sources.list"
	apt_opts=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o "Dir::Etc::sourceparts=-"
		-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
	as_root apt-get -q "${apt_opts[@]}" update >&2
}

# linux-image-amd64 depends on the versioned image package of the day
resolve_image_package() {
	{ apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null || true; } |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

# The modules the guest loads to mount the host's userland (virtio-9p), and
# (modules.dep is not in the package) whatever their "depends=" name.  One
# that is not in the package is built into that kernel (virtio_pci in 6.12).
userland_modules=(virtio_pci 9pnet_virtio 9p)

# extract_modules DEB OUT: the userland modules of DEB, uncompressed, into
# OUT, with OUT/order listing them dependencies first
extract_modules() {
	local deb=$1 out=$2 x f n
	x=$(mktemp -d "$out.x.XXXXXX")
	mkdir -p "$out"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" --wildcards '*.ko*' 2>/dev/null ||
		{ rm -rf "$x"; die "no kernel modules in $deb"; }
	declare -gA module_file=() module_seen=()
	module_order=()
	while IFS= read -r f; do
		n=${f##*/}; n=${n%%.ko*}; n=${n//-/_}
		module_file[$n]=$f
	done < <(find "$x" -type f -name '*.ko*')
	for n in "${userland_modules[@]}"; do
		add_module "$n" "$out" "" || { rm -rf "$x"; return 1; }
	done
	rm -rf "$x"
	printf '%s\n' "${module_order[@]}" >"$out/order"
	log "kernel $kernel: userland modules ${module_order[*]:-(all built in)}"
}

add_module() {	# add_module NAME OUT NEEDED-BY (depth first: dependencies first)
	local n=$1 out=$2 by=$3 f dep deps
	[ -z "${module_seen[$n]:-}" ] || return 0
	module_seen[$n]=1
	f=${module_file[$n]:-}
	if [ -z "$f" ]; then
		[ -z "$by" ] && return 0	# a wanted one: built in
		log "module $n (needed by $by) is not in the kernel package"
		return 1
	fi
	case "$f" in
	*.ko) cp "$f" "$out/$n.ko" ;;
	*.ko.xz) xz -dc "$f" >"$out/$n.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$out/$n.ko" ;;
	*.ko.gz) gzip -dc "$f" >"$out/$n.ko" ;;
	*) log "module $f: unknown compression"; return 1 ;;
	esac || { log "cannot decompress $f"; return 1; }
	deps=$(tr '\0' '\n' <"$out/$n.ko" | sed -n 's/^depends=//p' | head -n 1)
	for dep in ${deps//,/ }; do
		add_module "$dep" "$out" "$n" || return 1
	done
	module_order+=("$n")
}

# download_package PKG DIR: the .deb of PKG into DIR (its path on stdout)
download_package() {
	log "downloading $1"
	(cd "$2" && apt-get -q "${apt_opts[@]}" download "$1" >&2) ||
		die "cannot download $1"
	ls "$2"/*.deb
}

# The cache holds, per kernel: vmlinuz, package (its name) and modules/
# (the userland modules and their load order).  Each piece is made in a
# private temporary directory and renamed into place: concurrent runs
# (several engineers share a cache) never see a half-extracted kernel.
fetch_kernel() {
	local dir=$cache/kernel-$kernel pkg deb tmp
	if [ -s "$dir/vmlinuz" ] && [ -f "$dir/modules/order" ]; then
		echo "$dir/vmlinuz"
		return
	fi
	[ "$kernel" = 6.12 ] && backports_setup
	if [ -s "$dir/vmlinuz" ]; then
		# a cache from before the userland share: the modules of the
		# same package (same kernel ABI, so they load into that vmlinuz)
		pkg=$(cat "$dir/package" 2>/dev/null) || die "$dir has a vmlinuz but no package name: remove $dir"
		tmp=$(mktemp -d "$cache/.modules-$kernel.XXXXXX") && chmod 755 "$tmp"
		deb=$(download_package "$pkg" "$tmp")
		extract_modules "$deb" "$tmp/modules" ||
			{ rm -rf "$tmp"; die "cannot extract the userland modules of $pkg"; }
		mv -T "$tmp/modules" "$dir/modules" 2>/dev/null || true	# lost the race: fine
		rm -rf "$tmp"
		[ -f "$dir/modules/order" ] || die "module extraction failed"
		echo "$dir/vmlinuz"
		return
	fi
	pkg=$(resolve_image_package)
	if [ -z "$pkg" ] && [ "$kernel" = 6.1 ]; then
		log "refreshing apt lists to resolve linux-image-amd64"
		as_root apt-get -q update >&2
		pkg=$(resolve_image_package)
	fi
	[ -n "$pkg" ] || die "cannot resolve the Debian kernel package for $kernel"
	case "$pkg" in
	linux-image-"$kernel".*) ;;
	*) die "linux-image-amd64 resolves to $pkg, not a $kernel kernel" ;;
	esac
	tmp=$(mktemp -d "$cache/.kernel-$kernel.XXXXXX") && chmod 755 "$tmp"
	deb=$(download_package "$pkg" "$tmp")
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
	mv "$tmp"/boot/vmlinuz-* "$tmp/vmlinuz"
	extract_modules "$deb" "$tmp/modules" ||
		{ rm -rf "$tmp"; die "cannot extract the userland modules of $pkg"; }
	echo "$pkg" >"$tmp/package"
	rm -rf "$tmp/boot" "$deb"
	mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"	# lost the race: fine
	[ -s "$dir/vmlinuz" ] || die "kernel extraction failed"
	echo "$dir/vmlinuz"
}

# ---- kernel modules -------------------------------------------------------
# Debian builds loop, btrfs and overlayfs as modules: the file system tests
# (vt_fs) need them.  They come from the same kernel package, resolved with
# their dependencies (the "depends=" of each module's .modinfo) into a load
# order, and are cached next to the kernel (KERNEL_DIR/fsmodules/load.list).
vm_modules="crc32c_generic loop btrfs overlay"

fetch_modules() {	# fetch_modules KERNEL_DIR
	local kdir=$1 dir=$1/fsmodules pkg tmp deb root m
	if [ -s "$dir/load.list" ]; then
		return 0
	fi
	pkg=$(cat "$kdir/package" 2>/dev/null) || return 1
	[ "$kernel" = 6.12 ] && backports_setup
	log "downloading $pkg for its modules ($vm_modules)"
	tmp=$(mktemp -d "$kdir/.fsmodules.XXXXXX") && chmod 755 "$tmp"
	if ! (cd "$tmp" && apt-get -q "${apt_opts[@]}" download "$pkg" >&2); then
		rm -rf "$tmp"
		return 1
	fi
	deb=$(ls "$tmp"/*.deb)
	mkdir -p "$tmp/x"
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards './lib/modules/*'
	root=$(ls -d "$tmp"/x/lib/modules/*/kernel)
	: >"$tmp/load.list"
	resolve() {	# depth first: dependencies before the module
		local name=$1 ko deps d
		grep -qx "$name" "$tmp/load.list" && return 0
		ko=$(find "$root" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) -print -quit)
		[ -n "$ko" ] || { log "module $name not in $pkg"; return 1; }
		deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | tr ',' ' ' || true)
		for d in $deps; do resolve "${d//-/_}" || return 1; done
		cp "$ko" "$tmp/$name.ko"
		echo "$name" >>"$tmp/load.list"
	}
	for m in $vm_modules; do
		resolve "$m" || { rm -rf "$tmp"; return 1; }
	done
	rm -rf "$tmp/x" "$deb"
	mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"	# lost the race: fine
	[ -s "$dir/load.list" ]
}

# ---- the initramfs -------------------------------------------------------
root=$work/root

copy_libs_of() {
	local f=$1 lib
	# ldd prints "name => /path (addr)" and "/lib64/ld-linux... (addr)"
	{ ldd "$f" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
		[ -e "$lib" ] || continue
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

add_file() {	# add_file SRC DEST-in-guest
	mkdir -p "$root$(dirname "$2")"
	cp -L "$1" "$root$2"
	copy_libs_of "$1"	# nothing for static binaries and data files
}

# --bench boots only the benchmark; otherwise every vt_* binary (vt_bench
# SKIPs at once without KGATE_VM_BENCH=1)
wanted_binary() {
	if [ "$bench" = 1 ]; then
		case "$1" in vt_bench*) return 0 ;; *) return 1 ;; esac
	fi
	return 0
}

build_initramfs() {
	local bb app f n=0
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,opt/kgate/vmtests}
	bb=$(command -v busybox) || die "busybox not found (scripts/install-deps.sh)"
	! ldd "$bb" >/dev/null 2>&1 || die "$bb is not static (install busybox-static)"
	cp -L "$bb" "$root/bin/busybox"
	for app in $("$root/bin/busybox" --list-full); do
		[ -e "$root/$app" ] || ln -s /bin/busybox "$root/$app"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
	# no network in the guest: an upstream that answers nothing, so that a
	# policy with host rules starts (its names get SERVFAIL) rather than
	# being refused for want of a nameserver line
	printf 'nameserver 127.0.0.1\n' >"$root/etc/resolv.conf"

	[ -x "$build/kgate" ] || die "$build/kgate is missing (make vmtests-build)"
	add_file "$build/kgate" /opt/kgate/kgate
	for f in "$build"/vmtests/vt_*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		wanted_binary "${f##*/}" || continue
		add_file "$f" "/opt/kgate/vmtests/${f##*/}"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || die "no vt_* binaries in $build/vmtests (make vmtests-build)"
	if [ -d "$build/tests/helpers" ]; then
		for f in "$build"/tests/helpers/*; do
			[ -f "$f" ] && [ -x "$f" ] || continue
			add_file "$f" "/opt/kgate/tests/helpers/${f##*/}"
		done
	fi
	for f in "$build"/bpf/*.bpf.o; do
		[ -f "$f" ] && add_file "$f" "/opt/kgate/bpf/${f##*/}"
	done
	for d in policies demo; do
		[ -d "$repo/$d" ] && cp -rL "$repo/$d" "$root/opt/kgate/$d"
	done
	# scripts and fixtures of the tests (/opt/kgate/vmtests/data)
	cp -rL "$here/data" "$root/opt/kgate/vmtests/data"
	add_userland
	# file system modules and tools for vt_fs (it SKIPs without them)
	if [ -s "$kdir/fsmodules/load.list" ]; then
		mkdir -p "$root/lib/modules/kgate-fs"
		cp "$kdir"/fsmodules/*.ko "$kdir/fsmodules/load.list" "$root/lib/modules/kgate-fs/"
	fi
	for f in mkfs.btrfs btrfs; do
		f=$(command -v "$f" 2>/dev/null) && add_file "$f" "/usr/sbin/${f##*/}"
	done
	cp "$here/init" "$root/init"
	chmod 755 "$root/init"
	(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$work/initrd.gz"
	log "initramfs: $n test binaries, $(du -h "$work/initrd.gz" | cut -f1)"
}

# ---- the userland --------------------------------------------------------
# The host's /usr and /etc (and /bin, /sbin, /lib* where they are real
# directories rather than merged-/usr links) go to the guest read-only over
# virtio-9p; init mounts them under /userland and kg-userland runs commands
# there (vmtests/README.md).  The 9p modules come from the same kernel
# package (fetch_kernel).
userland_qemu=()
add_userland() {
	local d i=0 plan=$root/etc/kgate/userland moddir
	moddir=$(dirname "$vmlinuz")/modules
	[ -f "$moddir/order" ] || die "no userland modules in $moddir"
	mkdir -p "$root/lib/modules/kgate" "$root/etc/kgate"
	cp "$moddir/order" "$root/lib/modules/kgate/order"
	while read -r d; do
		cp "$moddir/$d.ko" "$root/lib/modules/kgate/" || die "$moddir/$d.ko is missing"
	done <"$moddir/order"
	: >"$plan"
	for d in usr etc bin sbin lib lib32 lib64 libx32; do
		if [ -L "/$d" ]; then
			echo "link $d $(readlink "/$d")" >>"$plan"
		elif [ -d "/$d" ]; then
			echo "9p $d" >>"$plan"
			userland_qemu+=(-fsdev "local,id=kg$i,path=/$d,security_model=none,readonly=on,multidevs=remap"
				-device "virtio-9p-pci,fsdev=kg$i,mount_tag=kg-$d")
			i=$((i + 1))
		elif [ "$d" = usr ] || [ "$d" = etc ]; then
			die "the host has no /$d to share with the guest"
		fi
	done
	add_file "$here/kg-userland" /opt/kgate/kg-userland
	chmod 755 "$root/opt/kgate/kg-userland"
}

# ---- boot and collect ----------------------------------------------------

# /dev/kvm can exist and still be unusable (QEMU asserts on an MSR on some
# nested setups): use KVM only if a probe boot of the same kernel and
# initramfs reaches /init and powers off.  Costs ~0.1 s when KVM is broken.
choose_accel() {
	[ "$accel" = auto ] || return 0
	accel=tcg
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 0
	local out
	# (output captured first: grep -q on a pipe would SIGPIPE qemu under pipefail)
	out=$(timeout -s KILL 30 qemu-system-x86_64 -accel kvm -cpu host -m 512 -nodefaults \
		-no-user-config -display none -no-reboot -serial stdio -kernel "$vmlinuz" \
		-initrd "$work/initrd.gz" -append "console=ttyS0 quiet panic=-1 kgate.probe=1" \
		</dev/null 2>&1 | tr -d '\r' || true)
	if grep -q '^KGATE-VT-PROBE-OK' <<<"$out"; then
		accel=kvm
	fi
	return 0
}

tot_pass=0 tot_fail=0 tot_skip=0

result() {	# result CONFIG PASS|FAIL|SKIP NAME [why]
	echo "$1 $2 $3${4:+: $4}"
	case "$2" in
	PASS) tot_pass=$((tot_pass + 1)) ;;
	FAIL) tot_fail=$((tot_fail + 1)) ;;
	SKIP) tot_skip=$((tot_skip + 1)) ;;
	esac
}

# no_timer_check: under TCG on a loaded host the guest's IO-APIC timer check
# can miss its ticks and panic the boot ("IO-APIC + timer doesn't work");
# the check proves nothing about kgate, so it is skipped (as cloud images do)
guest_cmdline="console=ttyS0 quiet panic=-1 no_timer_check"

boot() {	# boot CONFIG LOGFILE
	local config=$1 logfile=$2 cmdline accel_opts=()
	cmdline="$guest_cmdline kgate.config=$config kgate.timeout=$bin_timeout"
	[ "$config" = nobpf ] && cmdline+=" lsm=lockdown,capability,landlock,yama,apparmor"
	if [ ${#filter[@]} -gt 0 ]; then
		cmdline+=" kgate.filter=$(IFS=,; echo "${filter[*]}")"
	fi
	# NAME=value words without a dot reach /init as environment variables
	if [ "$bench" = 1 ]; then
		local knob
		cmdline+=" KGATE_VM_BENCH=1"
		for knob in KGATE_BENCH_QUICK KGATE_BENCH_SCALE KGATE_BENCH_ROUNDS KGATE_BENCH_CYCLES; do
			if [ -n "${!knob:-}" ]; then cmdline+=" $knob=${!knob}"; fi
		done
	fi
	case "$accel" in
	kvm) accel_opts=(-accel kvm -cpu host) ;;
	*) accel_opts=(-accel tcg) ;;
	esac
	local start=$SECONDS rc=0
	: >"$logfile"
	if [ "${KGATE_VM_VERBOSE:-0}" = 1 ]; then
		timeout -s KILL "$vm_timeout" qemu-system-x86_64 "${accel_opts[@]}" \
			-m "$vm_mem" -smp "$vm_smp" -nodefaults -no-user-config -display none -no-reboot \
			-serial stdio -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
			"${userland_qemu[@]}" -append "$cmdline" </dev/null 2>&1 | tee "$logfile" >&2 || rc=$?
	else
		timeout -s KILL "$vm_timeout" qemu-system-x86_64 "${accel_opts[@]}" \
			-m "$vm_mem" -smp "$vm_smp" -nodefaults -no-user-config -display none -no-reboot \
			-serial stdio -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
			"${userland_qemu[@]}" -append "$cmdline" </dev/null >"$logfile" 2>&1 || rc=$?
	fi
	log "$config: VM ran $((SECONDS - start)) s (qemu exit $rc)"
	return 0
}

# Turn one serial log into result lines.  Every expected binary must appear
# framed by KGATE-VT-BEGIN / KGATE-VT <name> <rc> and print a summary line.
collect() {	# collect CONFIG LOGFILE PUBLISHED-NAME
	local config=$1 logfile=$2 clean=$work/$1.clean.log name section
	local shown=$3
	tr -d '\r' <"$logfile" >"$clean"
	if ! grep -q '^KGATE-VT-BOOTED' "$clean"; then
		result "$config" FAIL "boot" "the guest never reached /init (see $shown)"
		grep -m 3 -E 'Kernel panic|BUG:|Oops' "$clean" >&2 || true
	fi
	# the userland is part of the harness: a guest without it fails
	if grep -q '^KGATE-VT-BOOTED' "$clean" && ! grep -q '^KGATE-VT-USERLAND ok' "$clean"; then
		result "$config" FAIL "userland" "$(grep -m 1 '^KGATE-VT-USERLAND' "$clean" ||
			echo "no KGATE-VT-USERLAND line")"
	fi
	if grep -q -E 'Kernel panic|BUG: |Oops:|general protection fault' "$clean"; then
		result "$config" FAIL "kernel" "$(grep -m 1 -E 'Kernel panic|BUG: |Oops:|general protection fault' "$clean")"
	fi
	for name in "${expected[@]}"; do
		section=$(awk -v n="$name" '
			$0 == "KGATE-VT-BEGIN " n { on = 1; next }
			on && $1 == "KGATE-VT" && $2 == n { print "KGATE-RC " $3; exit }
			on { print }' "$clean")
		collect_binary "$config" "$name" "$section"
	done
	# where the guest's time went (boot = kernel + init up to the tests)
	log "$config: seconds: $(awk '$1 == "KGATE-VT-TIME" { printf "%s%s %s", sep, $2, $3; sep = ", " }' "$clean")"
	if ! grep -q '^KGATE-VT-DONE' "$clean"; then
		result "$config" FAIL "vm" "no KGATE-VT-DONE: the guest hung, crashed or hit the ${vm_timeout} s limit"
	fi
}

collect_binary() {	# collect_binary CONFIG NAME SECTION
	local config=$1 name=$2 section=$3 rc summary p=0 f=0 s=0 sp sf verdict test why
	# (no "printf | grep -q" here: grep quits at the first match, and under
	# pipefail the SIGPIPE that printf may still get would say "empty")
	if [[ $section != *[![:space:]]* ]]; then
		result "$config" FAIL "$name" "never started"
		return
	fi
	rc=$(printf '%s\n' "$section" | sed -n 's/^KGATE-RC \([0-9]*\)$/\1/p')
	while read -r verdict test why; do
		test=${test%:}
		result "$config" "$verdict" "$name/$test" "$why"
		case "$verdict" in PASS) p=$((p + 1)) ;; FAIL) f=$((f + 1)) ;; SKIP) s=$((s + 1)) ;; esac
	done < <(printf '%s\n' "$section" | grep -E '^(PASS|FAIL|SKIP) [^ ]+' || true)
	summary=$(printf '%s\n' "$section" | grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -n 1 || true)
	if [ -z "$rc" ]; then
		result "$config" FAIL "$name" "no exit status (killed with the VM?)"
		return
	fi
	if [ -z "$summary" ]; then
		result "$config" FAIL "$name" "no summary line (exit $rc$([ "$rc" = 137 ] && echo ', per-binary timeout'))"
		return
	fi
	sp=${summary%% passed*}
	sf=$(echo "$summary" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	# a FAIL line garbled by a kernel message must not turn into a pass
	if [ "$sf" -gt "$f" ]; then
		result "$config" FAIL "$name" "summary reports $sf failures, $f readable"
	fi
	if [ "$rc" != 0 ] && [ "$f" -eq 0 ] && [ "$sf" -eq 0 ]; then
		result "$config" FAIL "$name" "exit $rc"
	fi
	[ "$sp" -ge "$p" ] || result "$config" FAIL "$name" "more PASS lines ($p) than the summary's $sp"
}

mapfile -t expected < <(cd "$build/vmtests" 2>/dev/null &&
	for f in vt_*; do [ -f "$f" ] && [ -x "$f" ] && wanted_binary "$f" && echo "$f"; done)

vmlinuz=$(fetch_kernel) || exit 1	# it said why
kdir=$(dirname "$vmlinuz")
log "kernel $kernel: $(cat "$kdir/package" 2>/dev/null || echo "$vmlinuz")"
fetch_modules "$kdir" || log "no file system modules: vt_fs will skip its btrfs and overlayfs tests"
build_initramfs
choose_accel
log "accelerator: $accel"

if [ "$shell" = 1 ]; then
	config=${configs[0]}
	cmdline="$guest_cmdline kgate.config=$config kgate.timeout=$bin_timeout kgate.shell=1"
	[ "$config" = nobpf ] && cmdline+=" lsm=lockdown,capability,landlock,yama,apparmor"
	[ ${#filter[@]} -gt 0 ] && cmdline+=" kgate.filter=$(IFS=,; echo "${filter[*]}")"
	qemu_accel=(-accel tcg)
	[ "$accel" = kvm ] && qemu_accel=(-accel kvm -cpu host)
	qemu-system-x86_64 "${qemu_accel[@]}" -m "$vm_mem" -smp "$vm_smp" -nodefaults -no-user-config \
		-display none -no-reboot -serial mon:stdio -kernel "$vmlinuz" \
		-initrd "$work/initrd.gz" "${userland_qemu[@]}" -append "$cmdline" || true
	exit 0
fi

label_of() { if [ "$kernel" = 6.1 ]; then echo "$1"; else echo "$1-$kernel"; fi; }

# The configurations boot side by side by default: a TCG guest leaves much
# of its host CPU idle, so two of them take little longer than one.
if [ "$parallel" = 1 ] && [ ${#configs[@]} -gt 1 ]; then
	pids=()
	for config in "${configs[@]}"; do
		boot "$config" "$work/serial-$config.log" &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || true; done
else
	for config in "${configs[@]}"; do
		boot "$config" "$work/serial-$config.log"
	done
fi
# Collect from the private copy, then publish it (rename: another run on the
# same build directory at the same time never interleaves with this one).
for config in "${configs[@]}"; do
	published=$build/vmtest-$(label_of "$config").log
	if [ "$bench" = 1 ]; then published=$build/vmtest-bench-$(label_of "$config").log; fi
	{ cp "$work/serial-$config.log" "$published.$$" && mv -f "$published.$$" "$published"; } ||
		log "cannot save $published"
	log "$(label_of "$config"): serial log in $published"
	collect "$(label_of "$config")" "$work/serial-$config.log" "$published"
done
if [ "$bench" = 1 ]; then
	# the benchmark's figures, for bench/vm.sh (renamed into place)
	jsonl=$build/vmtest-bench.jsonl
	tr -d '\r' <"$work/serial-full.log" | sed -n 's/^KGATE-BENCH //p' >"$jsonl.$$" || true
	mv -f "$jsonl.$$" "$jsonl"
	log "benchmark: $(wc -l <"$jsonl") result lines in $jsonl"
fi

echo "$tot_pass passed, $tot_fail failed, $tot_skip skipped"
trap - ERR
[ "$tot_fail" -eq 0 ] || exit 1
