#!/usr/bin/env bash
# tests/deb/run.sh - the Debian package, installed into a fresh root and run
# from the installed files: `make deb` (unless a .deb is given), a minimal
# Debian 12 root (tests/fresh/lib.sh), `apt-get install ./kgate_*.deb` there
# (the package's dependencies come from the archive, as on a real machine),
# then, in a chroot with the host's /proc, /sys and /dev: the installed
# files (binary, default policy as a conffile, systemd unit, tmpfiles.d,
# a manual page per subcommand, bash completion), `kgate doctor`, a governed
# job under the installed default policy and under a policy of the test's
# making, `kgate audit verify`, and removal.
#
# Slow (a root, the package's dependencies), so not part of `make check`:
# `make check-deb` (as root).  Usage: tests/deb/run.sh [PACKAGE.deb]
# Prints PASS/FAIL lines and "N passed, N failed, N skipped".
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/fresh/lib.sh
. "$repo/tests/fresh/lib.sh"

pass=0 fail=0 skip=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
summary() { echo "$pass passed, $fail failed, $skip skipped"; [ "$fail" -eq 0 ]; exit $?; }

if [ "$(id -u)" != 0 ]; then
	echo "SKIP deb: needs root (debootstrap, chroot)"; skip=1; summary
fi

deb=${1:-}
if [ -z "$deb" ]; then
	make -C "$repo" --no-print-directory deb >/dev/null || { ko make_deb "make deb failed"; summary; }
	deb=$(ls "$repo"/build/deb/kgate_*.deb 2>/dev/null | head -n 1)
fi
[ -f "$deb" ] || { ko package_built "no .deb ($deb)"; summary; }
ok package_built

tmp=$(mktemp -d /tmp/kgate-deb.XXXXXX) || exit 1
root=$tmp/root
logs=${KGATE_DEB_LOGS:-$tmp}
export KGATE_BPFFS=/sys/fs/bpf/kgate-deb-$$
cleanup() {
	rm -rf -- "$KGATE_BPFFS"
	if [ -z "${KGATE_DEB_KEEP:-}" ]; then
		fresh_rmroot "$root" && rm -rf -- "$tmp"
	else
		echo "kept: $root"
	fi
}
trap cleanup EXIT

run() {	# run NAME CMD: CMD in the root, its output in $logs/NAME.log
	local name=$1
	shift
	fresh_in "$root" "$@" >"$logs/$name.log" 2>&1
}
show() { echo "--- last lines of $logs/$1.log"; tail -n "${2:-25}" "$logs/$1.log"; }

fresh_mkroot "$root" || { ko minbase_root "debootstrap failed"; summary; }
cp "$deb" "$root/tmp/" || { ko copy "cannot copy $deb"; summary; }
pkg=/tmp/$(basename "$deb")

if run install "apt-get update -q && apt-get install -y -q $pkg"; then
	ok apt_installs_the_package_and_its_dependencies
else
	ko apt_installs_the_package_and_its_dependencies "exit status $?"; show install; summary
fi

# the installed files
missing=
for f in /usr/bin/kgate /etc/kgate/policy.json /lib/systemd/system/kgate.service \
	 /lib/systemd/system/kgate-export.service \
	 /usr/lib/tmpfiles.d/kgate.conf /usr/share/bash-completion/completions/kgate \
	 /usr/share/man/man1/kgate.1.gz /usr/share/kgate/policies/coding-agent.json; do
	[ -e "$root$f" ] || missing="$missing $f"
done
if [ -z "$missing" ]; then ok installed_files; else ko installed_files "missing:$missing"; fi
if grep -qx /etc/kgate/policy.json "$root/var/lib/dpkg/info/kgate.conffiles" 2>/dev/null; then
	ok default_policy_is_a_conffile
else
	ko default_policy_is_a_conffile "not in kgate.conffiles"
fi
# a manual page for every subcommand the installed kgate has
cmds=$(fresh_in "$root" 'kgate --help' 2>&1 | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
nopage=
for c in $cmds; do
	[ -e "$root/usr/share/man/man1/kgate-$c.1.gz" ] || nopage="$nopage $c"
done
if [ -n "$cmds" ] && [ -z "$nopage" ] &&
   zcat "$root/usr/share/man/man1/kgate-govern.1.gz" | grep -q -- '--cgroup PATH'; then
	ok a_manual_page_per_subcommand
else
	ko a_manual_page_per_subcommand "commands: $(echo $cmds); without a page:$nopage"
fi
if grep -q '^ExecStart=/usr/bin/kgate daemon$' "$root/lib/systemd/system/kgate.service" &&
   grep -Eq '^d /run/kgate +0700 +root +root' "$root/usr/lib/tmpfiles.d/kgate.conf"; then
	ok unit_runs_the_daemon_and_tmpfiles_makes_the_state_dir
else
	ko unit_runs_the_daemon_and_tmpfiles_makes_the_state_dir "see the unit and tmpfiles.d"
fi
# (fresh_in runs sh; the completion is bash's)
cat >"$root/tmp/complete.sh" <<'SH'
. /usr/share/bash-completion/completions/kgate
COMP_WORDS=(kgate gov) COMP_CWORD=1
_kgate && echo "got: ${COMPREPLY[*]}"
SH
if run completion 'bash /tmp/complete.sh' &&
   grep -q '^got: govern$' "$logs/completion.log"; then
	ok bash_completion_completes_a_subcommand
else
	ko bash_completion_completes_a_subcommand "see $logs/completion.log"; show completion
fi

# run it: doctor (0 full, 5 degraded), jobs, the trail
run doctor 'kgate doctor'
rc=$?
if { [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ]; } && grep -Eq '^enforcement: (full|degraded)' "$logs/doctor.log"; then
	ok doctor_runs_from_the_installed_files
else
	ko doctor_runs_from_the_installed_files "exit status $rc"; show doctor
fi
if run defjob 'cd / && kgate run -- /bin/sh -c "echo under-the-default-policy"' &&
   grep -q '^under-the-default-policy' "$logs/defjob.log" &&
   grep -q 'started (.* mode, policy default sha256' "$logs/defjob.log"; then
	ok a_job_runs_under_the_installed_default_policy
else
	ko a_job_runs_under_the_installed_default_policy "see $logs/defjob.log"; show defjob
fi
if run job 'mkdir -p /tmp/w && echo secret > /tmp/w/key &&
	    printf "%s" "{\"version\":1,\"name\":\"deb\",\"runtime\":[{\"id\":\"no-key\",\"file\":{\"path\":\"/tmp/w/key\",\"ops\":[\"read\"]},\"decision\":\"deny\"}],\"default\":\"allow\"}" >/tmp/w/p.json &&
	    kgate run --policy /tmp/w/p.json -- /bin/sh -c "echo governed; cat /tmp/w/key && exit 9; exit 0"' &&
   grep -q '^governed' "$logs/job.log" && ! grep -q '^secret' "$logs/job.log"; then
	ok governed_job_runs_and_its_denied_read_is_refused
else
	ko governed_job_runs_and_its_denied_read_is_refused "see $logs/job.log"; show job
fi
if run verify 'kgate audit verify'; then
	ok audit_trail_verifies
else
	ko audit_trail_verifies "exit status $?"; show verify
fi
if run remove "apt-get remove -y -q kgate" && [ ! -e "$root/usr/bin/kgate" ] &&
   [ -e "$root/etc/kgate/policy.json" ]; then
	ok remove_keeps_the_conffile_until_purge
else
	ko remove_keeps_the_conffile_until_purge "see $logs/remove.log"; show remove
fi
summary
