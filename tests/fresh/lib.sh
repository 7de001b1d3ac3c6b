# shellcheck shell=bash
# tests/fresh/lib.sh - a minimal Debian 12 root (debootstrap --variant=minbase
# plus git) and a way to run commands in it, for the tests of a fresh
# machine (tests/fresh/run.sh) and of the Debian package (tests/deb/run.sh).
#
#   fresh_cache                 prints the cache dir ($KGATE_FRESH_CACHE, else
#                               $KGATE_VM_CACHE/fresh, else vmtests/cache/fresh)
#   fresh_mkroot ROOT [PKG,...] makes a minbase root with git (and PKG...) in
#                               ROOT; the debootstrap download is kept as a
#                               tarball in the cache and reused
#   fresh_in ROOT CMD...        runs CMD (sh -c) in ROOT as root, in a mount
#                               namespace of its own with the host's /proc,
#                               /sys and /dev bound in (recursively) and the
#                               cache's apt archive at /var/cache/apt/archives;
#                               nothing stays mounted on the machine
#   fresh_rmroot ROOT           removes ROOT (refuses if anything is mounted
#                               below it)
#
# The mirror is the one this machine's apt already uses
# (vmtests/debian-mirror.sh): the project names no mirror.

fresh_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=vmtests/debian-mirror.sh
. "$fresh_repo/vmtests/debian-mirror.sh"

fresh_cache() {
	if [ -n "${KGATE_FRESH_CACHE:-}" ]; then
		echo "$KGATE_FRESH_CACHE"
	elif [ -n "${KGATE_VM_CACHE:-}" ]; then
		echo "$KGATE_VM_CACHE/fresh"
	else
		echo "$fresh_repo/vmtests/cache/fresh"
	fi
}

fresh_mirror() {
	local paths list parts found
	paths=$(kg_apt_source_paths)
	list=$(printf '%s\n' "$paths" | sed -n 1p)
	parts=$(printf '%s\n' "$paths" | sed -n 2p)
	found=$(kg_debian_archive "$list" "$parts") || {
		echo "fresh: no Debian archive entry in $list or $parts: debootstrap needs one" >&2
		return 1
	}
	printf '%s\n' "${found%%$'\t'*}"
}

fresh_mkroot() {	# fresh_mkroot ROOT [PKG,...]
	local root=$1 extra=${2:-} cache mirror tarball include=git
	cache=$(fresh_cache)
	mirror=$(fresh_mirror) || return 1
	command -v debootstrap >/dev/null || {
		echo "fresh: debootstrap is missing (scripts/install-deps.sh fresh)" >&2
		return 1
	}
	[ -n "$extra" ] && include="git,$extra"
	mkdir -p "$cache/archives/partial"
	tarball="$cache/minbase-bookworm-${include//,/-}.tgz"
	if [ ! -s "$tarball" ]; then
		echo "fresh: downloading a minbase root ($include) into $tarball"
		rm -rf "$root.dl"
		debootstrap --variant=minbase --include="$include" \
			--make-tarball="$tarball.tmp" bookworm "$root.dl" "$mirror" >&2 ||
			{ rm -rf "$root.dl" "$tarball.tmp"; return 1; }
		rm -rf "$root.dl"
		mv "$tarball.tmp" "$tarball"
	fi
	mkdir -p "$root"
	debootstrap --variant=minbase --include="$include" --unpack-tarball="$tarball" \
		bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
		echo "fresh: debootstrap failed (log: $root.debootstrap.log):" >&2
		tail -n 20 "$root.debootstrap.log" >&2
		return 1
	}
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	# a root that is new, like a fresh machine: no package lists yet
	rm -rf "$root"/var/lib/apt/lists/*
	mkdir -p "$root/var/lib/apt/lists/partial"
}

fresh_in() {	# fresh_in ROOT CMD...
	local root=$1 cache
	shift
	cache=$(fresh_cache)
	mkdir -p "$cache/archives/partial"
	unshare -m --propagation private -- /bin/bash -c '
		set -e
		root=$1 cache=$2
		shift 2
		for d in proc sys dev; do
			mkdir -p "$root/$d"
			mount --rbind "/$d" "$root/$d"
			mount --make-rslave "$root/$d"
		done
		mount --bind "$cache/archives" "$root/var/cache/apt/archives"
		exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			${KGATE_BPFFS:+KGATE_BPFFS=$KGATE_BPFFS} \
			/bin/sh -c "$*"
	' fresh_in "$root" "$cache" "$@"
}

fresh_rmroot() {	# fresh_rmroot ROOT
	local root=$1
	[ -n "$root" ] && [ -d "$root" ] || return 0
	if awk -v r="$root/" 'index($5 "/", r) == 1 { found = 1 } END { exit !found }' \
		/proc/self/mountinfo; then
		echo "fresh: something is still mounted under $root: not removing it" >&2
		return 1
	fi
	rm -rf --one-file-system -- "$root" "$root.debootstrap.log"
}
