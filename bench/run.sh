#!/usr/bin/env bash
# kgate benchmarks: run every BUILD_DIR/bench/bench_* binary, then the BPF
# LSM path in the VM (bench/vm.sh: vmtests/run.sh --bench, when qemu is
# there), then the peers, and write BUILD_DIR/bench/report.md and
# report.json (also to stdout).
#
# Usage: bench/run.sh BUILD_DIR [--install-peers]
#
# Environment: KGATE_BENCH_QUICK=1 (about a minute: fewer iterations and
# rounds, largest policy 10,000 rules), KGATE_BENCH_SCALE=F (multiply
# iterations), KGATE_BENCH_ROUNDS=N, KGATE_BENCH_TIMEOUT (per binary,
# default 900 s), KGATE_BENCH_INSTALL=1 (same as --install-peers: let
# peers.sh install bubblewrap, firejail, socat, ripgrep and srt),
# KGATE_BENCH_VM=0 (skip the VM: the report says the LSM path was not
# measured).
#
# A benchmark is never a test: slow figures never fail it.  Exit 0 when
# something was measured, 1 when nothing could run at all.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
build=$(cd "$1" && pwd) || { echo "bench: no build directory $1" >&2; exit 1; }
shift
install=${KGATE_BENCH_INSTALL:-0}
[ "${1:-}" = --install-peers ] && install=1
out=$build/bench
parts=$out/parts
rm -rf "$parts"
mkdir -p "$parts"
timeout_s=${KGATE_BENCH_TIMEOUT:-900}

# ---- the machine -----------------------------------------------------------
kernel=$(uname -r)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cores=$(nproc)
mem_gib=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
lsm=$( (cat /sys/kernel/security/lsm 2>/dev/null || echo unknown) | tr -d '\n')
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
quick=no
[ -n "${KGATE_BENCH_QUICK:-}" ] && [ "$KGATE_BENCH_QUICK" != 0 ] && quick=yes

# ---- the benches -------------------------------------------------------------
ran=0
names=()
for bin in "$build"/bench/bench_*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	case "$bin" in *.d|*.o) continue ;; esac
	name=$(basename "$bin")
	echo "bench: running $name" >&2
	t0=$(date +%s)
	KGATE_BENCH_OUT=$parts timeout "$timeout_s" "$bin" >"$parts/$name.out" 2>"$parts/$name.log"
	rc=$?
	echo "bench: $name exited $rc after $(( $(date +%s) - t0 )) s" >&2
	echo "$rc" >"$parts/$name.rc"
	names+=("$name")
	[ "$rc" = 0 ] && ran=$((ran + 1))
done
# the BPF LSM path: only the VM has it (minutes under TCG)
if [ -x "$here/vm.sh" ]; then
	t0=$(date +%s)
	if [ "${KGATE_BENCH_VM:-1}" = 0 ]; then
		printf '## BPF LSM path in the VM (vt_bench)\n\nNot measured: KGATE_BENCH_VM=0.\n' >"$parts/vm_bench.md"
		jq -n '{measured: false, why: "KGATE_BENCH_VM=0"}' >"$parts/vm_bench.json"
		echo 0 >"$parts/vm_bench.rc"
	else
		echo "bench: running vm.sh (the LSM path in the VM)" >&2
		"$here/vm.sh" "$build" --out "$parts" >"$parts/vm_bench.out" 2>"$parts/vm_bench.log"
		echo $? >"$parts/vm_bench.rc"
		echo "bench: vm.sh took $(( $(date +%s) - t0 )) s" >&2
	fi
	names+=(vm_bench)
	[ "$(jq -r '.measured' "$parts/vm_bench.json" 2>/dev/null)" = true ] && ran=$((ran + 1))
	vm_lsm=$(jq -r 'if .measured then "measured in the VM (\(.setup.kernel))" else "not measured: \(.why)" end' \
		"$parts/vm_bench.json" 2>/dev/null || echo "not measured")
else
	vm_lsm="not measured (no bench/vm.sh)"
fi
if [ -x "$here/peers.sh" ]; then
	echo "bench: running peers.sh" >&2
	peer_args=("$build" --out "$parts")
	[ "$install" = 1 ] && peer_args+=(--install)
	"$here/peers.sh" "${peer_args[@]}" >"$parts/peers.out" 2>"$parts/peers.log" && names+=(peers)
fi

# issue 13's figures beside their goals (from the parts above, plus the
# start-up warm and cold): the first section of the report
if [ -x "$here/goals.sh" ]; then
	echo "bench: running goals.sh (start-up warm/cold, the goals table)" >&2
	"$here/goals.sh" "$build" --out "$parts" >"$parts/goals.out" 2>"$parts/goals.log"
	echo $? >"$parts/goals.rc"
	names=(goals "${names[@]}")
fi

mode=$(jq -r '.mode // empty' "$parts/bench_ops.json" 2>/dev/null)
[ -n "$mode" ] || mode=unknown

# ---- report.md -----------------------------------------------------------------
{
	echo "# kgate benchmark report"
	echo
	echo "| machine | |"
	echo "| --- | --- |"
	echo "| date | $started |"
	echo "| kernel | $kernel |"
	echo "| CPU | $cpu |"
	echo "| cores | $cores |"
	echo "| memory | $mem_gib GiB |"
	echo "| LSMs | $lsm |"
	echo "| kgate mode | $mode |"
	echo "| BPF LSM path | ${vm_lsm:-not measured} |"
	echo "| quick run | $quick |"
	echo
	echo "Targets are printed next to the figures, never asserted. See bench/README.md."
	echo
	for n in "${names[@]}"; do
		if [ -s "$parts/$n.md" ]; then
			cat "$parts/$n.md"
		else
			# a bench that does not write a section: its output verbatim
			echo "## $n"
			echo
			echo "exit status $(cat "$parts/$n.rc" 2>/dev/null || echo '?')"
			echo
			echo '```'
			cat "$parts/$n.out"
			echo '```'
		fi
		if [ -f "$parts/$n.rc" ] && [ "$(cat "$parts/$n.rc")" != 0 ]; then
			echo
			echo "($n exited $(cat "$parts/$n.rc"); last lines of its log:)"
			echo '```'
			tail -5 "$parts/$n.log"
			echo '```'
		fi
		echo
	done
} >"$out/report.md"

# ---- report.json ---------------------------------------------------------------
benches='{}'
for n in "${names[@]}"; do
	rc=$(cat "$parts/$n.rc" 2>/dev/null || echo 0)
	if [ -s "$parts/$n.json" ] && jq -e . "$parts/$n.json" >/dev/null 2>&1; then
		entry=$(jq --argjson rc "$rc" '{exit: $rc, result: .}' "$parts/$n.json")
	else
		entry=$(jq -Rs --argjson rc "$rc" '{exit: $rc, output: .}' "$parts/$n.out")
	fi
	benches=$(jq --arg n "$n" --argjson e "$entry" '. + {($n): $e}' <<<"$benches")
done
jq -n --arg date "$started" --arg kernel "$kernel" --arg cpu "$cpu" --argjson cores "$cores" \
	--arg mem "$mem_gib" --arg lsm "$lsm" --arg mode "$mode" --arg quick "$quick" \
	--arg vm "${vm_lsm:-not measured}" --argjson benches "$benches" \
	'{machine: {date: $date, kernel: $kernel, cpu: $cpu, cores: $cores,
	  memory_gib: ($mem | tonumber), lsm: $lsm, mode: $mode, quick: ($quick == "yes"),
	  bpf_lsm_path: $vm},
	  benches: $benches}' >"$out/report.json"

cat "$out/report.md"
echo "bench: report in $out/report.md and $out/report.json" >&2
[ "$ran" -gt 0 ] || { echo "bench: nothing could be measured" >&2; exit 1; }
exit 0
