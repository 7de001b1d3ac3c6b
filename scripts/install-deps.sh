#!/usr/bin/env bash
# Install everything kgate's build, host tests and VM suite need (Debian 12).
# Idempotent: when every package is already installed, apt is not touched at
# all (no network, no lock) unless --force is given.
#
# Usage: scripts/install-deps.sh [--force]
set -euo pipefail

packages=(
	# build
	make gcc clang llvm pkg-config linux-libc-dev
	libbpf-dev libelf-dev zlib1g-dev libjansson-dev libseccomp-dev libssl-dev
	bpftool
	# the HTTP API (kgate daemon --http): libmicrohttpd, built with GnuTLS
	libmicrohttpd-dev
	# sanitizer build (ASan/UBSan runtime for gcc)
	libasan8 libubsan1
	# host tests and scripts
	iproute2 procps netcat-openbsd
	# HTTP API tests: libcurl as the client, openssl to make a test
	# certificate; the approvals page in a real browser (test_web): headless
	# Chromium through chromedriver, a font for readable screenshots
	libcurl4-openssl-dev openssl chromium chromium-driver fonts-dejavu-core
	# make bench (report assembly)
	jq
	# VM suite: QEMU and a static busybox for the initramfs, packed with
	# cpio (the kernel package itself is fetched by vmtests/run.sh through
	# apt-get download; apt, dpkg, gzip, coreutils are essential packages)
	qemu-system-x86 busybox-static cpio
	# VM suite: xz for the kernel package's compressed modules (6.12), and
	# the tools the guest's userland takes from this machine read-only
	# (vmtests/README.md): the agent's day of vt_userland* runs them
	xz-utils git python3 python3-venv python3-pip curl tar grep
	# VM suite: mkfs.btrfs/btrfs for the btrfs subvolume tests (vt_fs)
	btrfs-progs
)

force=0
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	-h|--help) sed -n '2,7p' "$0"; exit 0 ;;
	*) echo "install-deps: unknown argument: $arg" >&2; exit 2 ;;
	esac
done

missing_packages() {
	local p status
	for p in "${packages[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || echo "$p"
	done
}

missing=$(missing_packages)
if [ "$force" -eq 0 ] && [ -z "$missing" ]; then
	echo "install-deps: all ${#packages[@]} packages already installed"
	exit 0
fi
[ -n "$missing" ] && echo "install-deps: missing:" $missing

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: need root or sudo" >&2; exit 1; }
	sudo=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
echo "install-deps: done"
