#!/usr/bin/env bash
# Run every host test binary of a build, and every tests/test_*.sh script
# (tests of the shell tooling), and print one closing summary line.
# Usage: tests/run.sh BUILD_DIR   (the Makefile passes build-san)
set -u
build=${1:-build-san}
cd "$(dirname "$0")/.." || exit 2
export KGATE_BIN="$PWD/$build/kgate"
export KGATE_TEST_HELPERS="$PWD/$build/tests/helpers"
export KGATE_SRC="$PWD"
# `sudo make test`: kgate run would run every job as the invoking user
# (see cmd_run.c); the tests run their jobs as root unless they say otherwise
unset SUDO_UID SUDO_GID SUDO_USER SUDO_COMMAND PKEXEC_UID DOAS_USER
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
tp=0 tf=0 ts=0 rc=0
for t in "$build"/tests/test_* tests/test_*.sh; do
	[ -x "$t" ] || continue
	[ "${t%.d}" = "$t" ] || continue
	echo "== $(basename "$t")"
	out=$("$t" 2>&1); r=$?
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ -z "$line" ]; then
		echo "FAIL $(basename "$t"): no summary line (exit $r)"
		tf=$((tf + 1)); rc=1; continue
	fi
	p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p'); s=${s:-0}
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
	[ "$r" -eq 0 ] || rc=1
done
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" -eq 0 ] && [ "$rc" -eq 0 ]
