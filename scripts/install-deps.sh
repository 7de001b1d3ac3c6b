#!/usr/bin/env bash
# Install what kgate's build, demo, tests, VM suite and packaging need
# (Debian 12 / Ubuntu, apt).  Idempotent: when every package of the chosen
# groups is already installed, apt is not touched at all (no network, no
# lock) unless --force is given.
#
# Usage: scripts/install-deps.sh [--force] [GROUP...]
#   build    compilers and libraries: `make`
#   demo     what `make demo` needs (build, and dnsmasq-base: the demo's own
#            DNS server on loopback, for its allowed and refused names)
#   test     the host tests (`make test`)
#   vm       the VM suite (`make vmtest`)
#   package  the Debian package (`make deb`)
#   fresh    the fresh-machine test (`make check-fresh`)
#   all      every group (the default; what `make check` and CI install)
set -euo pipefail

build=(
	make gcc clang llvm pkg-config linux-libc-dev
	libbpf-dev libelf-dev zlib1g-dev libjansson-dev libseccomp-dev libssl-dev
	bpftool
	# the HTTP API (kgate daemon --http): libmicrohttpd, built with GnuTLS
	libmicrohttpd-dev
	# egress by name: DNS messages (ldns), IDN A-labels (libidn2)
	libldns-dev libidn2-dev
	# kgate audit export --otlp: OTLP/HTTP to a collector (libcurl)
	libcurl4-openssl-dev
)
test=(
	# sanitizer build (ASan/UBSan runtime for gcc)
	libasan8 libubsan1
	# host tests and scripts
	iproute2 procps netcat-openbsd
	# HTTP API tests: libcurl as the client, openssl to make a test
	# certificate; the approvals page in a real browser (test_web): headless
	# Chromium through chromedriver, a font for readable screenshots
	libcurl4-openssl-dev openssl chromium chromium-driver fonts-dejavu-core
	# the DNS upstream of the egress-by-name tests (binary only, no service),
	# and drill to query through kgate's resolver
	dnsmasq-base ldnsutils
	# make bench (report assembly)
	jq
	# the Kubernetes manifests' check (tests/test_k8s_manifests.sh)
	python3-yaml
)
vm=(
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
package=(
	# dpkg-buildpackage with debhelper (debian/), run under fakeroot
	dpkg-dev debhelper fakeroot
)
fresh=(
	# a minimal Debian root for the fresh-machine and package tests
	debootstrap
)

force=0
groups=()
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	-h|--help) sed -n '2,16p' "$0"; exit 0 ;;
	build|demo|test|vm|package|fresh|all) groups+=("$arg") ;;
	*) echo "install-deps: unknown argument: $arg (groups: build demo test vm package fresh all)" >&2
	   exit 2 ;;
	esac
done
[ ${#groups[@]} -gt 0 ] || groups=(all)

packages=()
for g in "${groups[@]}"; do
	case "$g" in
	build) packages+=("${build[@]}") ;;
	demo) packages+=("${build[@]}" dnsmasq-base) ;;
	test) packages+=("${build[@]}" "${test[@]}") ;;
	vm) packages+=("${build[@]}" "${vm[@]}") ;;
	package) packages+=("${build[@]}" "${package[@]}") ;;
	fresh) packages+=("${fresh[@]}") ;;
	all) packages+=("${build[@]}" "${test[@]}" "${vm[@]}" "${package[@]}" "${fresh[@]}") ;;
	esac
done
# each package once, in order
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | awk '!seen[$0]++')

missing_packages() {
	local p status
	for p in "${packages[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || echo "$p"
	done
}

command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || {
	echo "install-deps: this installs with apt (Debian 12, Ubuntu); elsewhere install the" \
	     "equivalents of: ${packages[*]}" >&2
	exit 1
}
missing=$(missing_packages)
if [ "$force" -eq 0 ] && [ -z "$missing" ]; then
	echo "install-deps: all ${#packages[@]} packages (${groups[*]}) already installed"
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
