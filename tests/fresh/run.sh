#!/usr/bin/env bash
# tests/fresh/run.sh - README's two commands on a fresh machine: a minimal
# Debian 12 root (debootstrap --variant=minbase plus git, nothing else), a
# clone of this repository in it, and then, as root in a chroot with the
# host's /proc, /sys and /dev: `./kgate-dev demo` (installs make, compilers
# and libraries with apt, builds, runs the governed demo), `kgate doctor`,
# a governed job, `kgate audit verify`, and the set-up half of
# `./kgate-dev check` (every dependency, the test and VM-test builds, one
# host test binary under the sanitizers).  The VM suite itself is not
# booted in the root: `make check` runs it on the machine.
#
# Slow (a first run downloads the root and the build dependencies, about
# 600 MB; later runs reuse them from the cache, see tests/fresh/lib.sh), so
# it is not part of `make check`: run it with `make check-fresh` (as root).
# It tests the repository's HEAD, as a clone would see it: commit first.
# Prints PASS/FAIL lines and "N passed, N failed, N skipped".
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/fresh/lib.sh
. "$here/lib.sh"

pass=0 fail=0 skip=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
summary() { echo "$pass passed, $fail failed, $skip skipped"; [ "$fail" -eq 0 ]; exit $?; }

if [ "$(id -u)" != 0 ]; then
	echo "SKIP fresh: needs root (debootstrap, chroot)"; skip=1; summary
fi
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
	echo "note: uncommitted changes are not in a clone: testing HEAD $(git -C "$repo" rev-parse --short HEAD)"
fi

tmp=$(mktemp -d /tmp/kgate-fresh.XXXXXX) || exit 1
root=$tmp/root
logs=${KGATE_FRESH_LOGS:-$tmp}
export KGATE_BPFFS=/sys/fs/bpf/kgate-fresh-$$
cleanup() {
	rm -rf -- "$KGATE_BPFFS"
	if [ -z "${KGATE_FRESH_KEEP:-}" ]; then
		fresh_rmroot "$root" && rm -rf -- "$tmp"
	else
		echo "kept: $root"
	fi
}
trap cleanup EXIT

# run NAME CMD: run CMD in the root, its output in $logs/NAME.log
run() {
	local name=$1
	shift
	fresh_in "$root" "$@" >"$logs/$name.log" 2>&1
}
show() { echo "--- last lines of $logs/$1.log"; tail -n "${2:-25}" "$logs/$1.log"; }

start=$SECONDS
if ! fresh_mkroot "$root"; then
	ko minbase_root "debootstrap failed"
	summary
fi
# the commands a user is told to type are README's; the test types them
readme_cmds=$(sed -n '/^## Two commands/,/^## /p' "$repo/README.md" | grep -E '^\./kgate-dev ' | awk '{print $1, $2}')
if [ "$readme_cmds" = "$(printf './kgate-dev demo\n./kgate-dev check')" ]; then
	ok readme_names_the_two_commands
else
	ko readme_names_the_two_commands "README's block says: $readme_cmds"
fi
if grep -q '\./kgate-dev check' "$repo/.ci/run"; then
	ok ci_runs_the_readme_command
else
	ko ci_runs_the_readme_command ".ci/run does not run ./kgate-dev check"
fi

# the root is fresh: git, but no make and no compiler
if run probe 'command -v git && ! command -v make && ! command -v cc && ! command -v clang'; then
	ok root_has_git_but_no_make_or_compiler
else
	ko root_has_git_but_no_make_or_compiler "$(tr '\n' ' ' <"$logs/probe.log")"
fi
git clone -q "$repo" "$root/root/kgate" || { ko clone "git clone failed"; summary; }

# 1. ./kgate-dev demo
if run demo 'cd /root/kgate && ./kgate-dev demo'; then
	ok kgate_dev_demo_installs_builds_and_runs_the_demo
else
	ko kgate_dev_demo_installs_builds_and_runs_the_demo "exit status $?"; show demo
fi
if grep -q 'read an SSH key.*-> refused' "$logs/demo.log" &&
   grep -q 'read my workspace.*-> done' "$logs/demo.log" &&
   grep -q '^audit: ok' "$logs/demo.log"; then
	ok demo_refuses_the_key_reads_the_workspace_verifies_the_trail
else
	ko demo_refuses_the_key_reads_the_workspace_verifies_the_trail "see $logs/demo.log"
	show demo 40
fi

# 2. the built kgate: doctor, a governed job, the trail
# doctor exits 0 in full mode, 5 (KG_EXIT_DEGRADED) when only degraded
# mode is possible (a kernel without BPF LSM, like most hosts), 1 when
# nothing can be enforced
run doctor 'cd /root/kgate && build/kgate doctor'
rc=$?
if { [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ]; } && grep -Eq '^enforcement: (full|degraded)' "$logs/doctor.log"; then
	ok doctor_runs_and_names_the_enforcement_mode
else
	ko doctor_runs_and_names_the_enforcement_mode "exit status $rc"; show doctor
fi
if run job 'cd /root/kgate && mkdir -p /tmp/w && echo secret > /tmp/w/key &&
	    printf "%s" "{\"version\":1,\"name\":\"fresh\",\"runtime\":[{\"id\":\"no-key\",\"file\":{\"path\":\"/tmp/w/key\",\"ops\":[\"read\"]},\"decision\":\"deny\"}],\"default\":\"allow\"}" >/tmp/w/p.json &&
	    build/kgate run --policy /tmp/w/p.json -- /bin/sh -c "echo governed; cat /tmp/w/key && exit 9; exit 0"'; then
	if grep -q '^governed' "$logs/job.log" && ! grep -q '^secret' "$logs/job.log"; then
		ok governed_job_runs_and_its_denied_read_is_refused
	else
		ko governed_job_runs_and_its_denied_read_is_refused "see $logs/job.log"; show job
	fi
else
	ko governed_job_runs_and_its_denied_read_is_refused "exit status $?"; show job
fi
if run verify 'cd /root/kgate && build/kgate audit verify'; then
	ok audit_trail_verifies
else
	ko audit_trail_verifies "exit status $?"; show verify
fi

# 3. the set-up half of ./kgate-dev check: every dependency, the builds
if run checksetup 'cd /root/kgate && ./kgate-dev SAN=1 tests-build && ./kgate-dev vmtests-build'; then
	ok kgate_dev_check_setup_installs_everything_and_builds_the_tests
else
	ko kgate_dev_check_setup_installs_everything_and_builds_the_tests "exit status $?"
	show checksetup
fi
if run unittest 'cd /root/kgate && build-san/tests/test_policy'; then
	ok a_host_test_binary_runs_under_the_sanitizers
else
	ko a_host_test_binary_runs_under_the_sanitizers "exit status $?"; show unittest
fi
echo "fresh: $((SECONDS - start)) s (logs in $logs)"
summary
