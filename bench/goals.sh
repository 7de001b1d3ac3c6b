#!/usr/bin/env bash
# The figures of issue 13 ("governed work at the speed of ungoverned work")
# in one table, each beside its goal: read from the parts the other benches
# wrote (bench_ops.json, vm_bench.json, bench_approval.json), plus the
# start-up of `kgate run -- true` measured here, warm (the BPF programs
# already loaded and attached to <cgroup2>/kgate) and cold (every object
# loaded and verified: KGATE_COLD_START=1), interleaved with bubblewrap.
#
# Usage: bench/goals.sh BUILD_DIR --out PARTS_DIR
# Writes PARTS_DIR/goals.md and goals.json.  Never fails on slow figures.
set -uo pipefail

build=$(cd "$1" && pwd) || exit 1
out=${3:-$build/bench/parts}
mkdir -p "$out"
rounds=${KGATE_BENCH_PEER_ROUNDS:-20}
[ -n "${KGATE_BENCH_QUICK:-}" ] && [ "${KGATE_BENCH_QUICK}" != 0 ] && rounds=5

# ---- start-up, interleaved -----------------------------------------------------
work=$(mktemp -d /tmp/kgate-bench-goals.XXXXXX)
pin=/sys/fs/bpf/kgate-bench-goals-$$
trap 'rm -rf "$work"; rm -rf "$pin" 2>/dev/null' EXIT
printf '%s\n' '{"version":1,"name":"bench-startup","default":"allow","runtime_defaults":{"net":"allow"},"runtime":[]}' \
	>"$work/policy.json"
kg="env KGATE_BPFFS=$pin KGATE_STATE_DIR=$work/state KGATE_AUDIT_DIR=$work/audit $build/kgate run -q --policy $work/policy.json -- true"
declare -A cmd samples
names=(warm cold)
startup_why=""
if [ "$(id -u)" = 0 ] && [ -x "$build/kgate" ] && $kg >/dev/null 2>&1 </dev/null; then
	cmd[warm]="$kg"
	cmd[cold]="env KGATE_COLD_START=1 $kg"
else
	startup_why="kgate run did not run here (needs root and a build)"
fi
if command -v bwrap >/dev/null && bwrap --ro-bind / / --dev /dev --proc /proc true 2>/dev/null; then
	cmd[bwrap]="bwrap --ro-bind / / --dev /dev --proc /proc true"
	names+=(bwrap)
fi
for ((r = 0; r < rounds; r++)); do
	for n in "${names[@]}"; do
		[ -n "${cmd[$n]:-}" ] || continue
		t0=$(date +%s%N)
		${cmd[$n]} >/dev/null 2>&1 </dev/null
		t1=$(date +%s%N)
		samples[$n]+="$(( (t1 - t0) / 1000 )) "
	done
done
median_ms() {	# microsecond samples -> median in ms
	tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'
}
max_ms() {	# microsecond samples -> the largest in ms
	tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v = $1 } END { if (NR) printf "%.1f", v / 1000 }'
}
warm=$(median_ms "${samples[warm]:-}")
cold=$(median_ms "${samples[cold]:-}")
bw=$(median_ms "${samples[bwrap]:-}")
# the median hides the exits that sweep retired generations (one in
# KG_RETIRED_SWEEP pays an RCU grace period, userspace/kernel/push.h): say the max
warm_max=$(max_ms "${samples[warm]:-}")
cold_max=$(max_ms "${samples[cold]:-}")

# ---- the table -------------------------------------------------------------------
ops=$out/bench_ops.json vm=$out/vm_bench.json ap=$out/bench_approval.json dns=$out/bench_dns.json
j() { local f=$1; shift; [ -s "$f" ] && jq -r "$@" "$f" 2>/dev/null || echo ""; }
host_ratio() { j "$ops" --arg op "$1" '[.ops[]? | select(.op == $op) | .ratio_governed_vs_ungoverned][0] // empty'; }
vm_ratio() {	# op, index into setup.sizes
	j "$vm" --arg op "$1" --argjson i "$2" \
		'if .measured then (.setup.sizes[$i]) as $n | [.ops[] | select(.op == $op and .rules == $n) | .ratio_governed_vs_ungoverned][0] // empty else empty end'
}
vm_rules() { j "$vm" --argjson i "$1" 'if .measured then .setup.sizes[$i] else empty end'; }
ap99() { j "$ap" '.held.total.p99_ms // empty'; }
ap99r() { j "$ap" '.retry.total.p99_ms // empty'; }
dnsj() { j "$dns" "$1 // empty"; }

rows=()
row() {	# figure, value, unit (x, ms, us or MiB), goal ("" = none), where
	local v=$2 verdict
	if [ -z "$v" ] || [ "$v" = 0 ] || [ "$v" = null ]; then
		v="not measured"; verdict="n/a"
	elif [ -z "$4" ]; then
		verdict="no goal"
		v=$(printf '%.1f %s' "$v" "$3")
	else
		verdict="not met"
		awk -v v="$v" -v g="$4" 'BEGIN { exit !(v <= g) }' && verdict="met"
		if [ "$3" = x ]; then v=$(printf '%.2f%s' "$v" "$3"); else v=$(printf '%.1f%s' "$v" "$3"); fi
	fi
	rows+=("| $1 | $v | ${4:+≤ $4$3} | $verdict | $5 |")
}
small=$(vm_rules 0); big=$(vm_rules 1)
row "openat+close, full mode, ${small:-10}+3-rule policy, depth 5" "$(vm_ratio 'openat+close depth 5' 0)" x 1.10 "VM (TCG)"
row "the same, 20-deep path" "$(vm_ratio 'openat+close depth 20' 0)" x 1.15 "VM (TCG)"
row "openat+close, full mode, ${big:-1000} rules, depth 5" "$(vm_ratio 'openat+close depth 5' 1)" x 1.10 "VM (TCG)"
for d in 1 5 20; do
	row "openat+close, degraded, depth $d" "$(host_ratio "openat+close depth $d")" x 1.15 "host"
done
row "getpid (only the seccomp filter)" "$(host_ratio getpid)" x 1.05 "host"
row "execve, full mode" "$(vm_ratio 'fork+execve+wait' 1)" x 1.03 "VM (TCG)"
row "execve, degraded" "$(host_ratio 'fork+execve+wait')" x 1.03 "host"
row "connect, full mode" "$(vm_ratio 'tcp connect (loopback)' 1)" x 1.05 "VM (TCG)"
row "connect, degraded" "$(host_ratio 'tcp connect (loopback)')" x 1.05 "host"
row "\`kgate run -- true\`, warm (median)" "$warm" " ms" 10 "host${bw:+; bwrap $bw ms}${warm_max:+; max $warm_max ms}"
row "\`kgate run -- true\`, cold (median)" "$cold" " ms" 100 "host${cold_max:+; max $cold_max ms}"
row "connect to a name-allowed address / a CIDR-allowed one, degraded" \
	"$(dnsj .connect_ns.ratio_name_vs_cidr)" x 1.05 "host (bench_dns)"
up50=$(dnsj '.resolution_us.upstream.p50 | . * 10 | round / 10')
up99=$(dnsj '.resolution_us.upstream.p99 | . * 10 | round / 10')
row "name resolution through kgate's resolver, p50 (straight to the upstream: ${up50:-?} us)" \
	"$(dnsj .resolution_us.kgate.p50)" us "" "host (bench_dns)"
row "the same, p99 (straight to the upstream: ${up99:-?} us)" \
	"$(dnsj .resolution_us.kgate.p99)" us "" "host (bench_dns)"
row "kg_dns_addrs + kg_dns_names, 100,000 addresses and 25,000 names" \
	"$(dnsj '(.memory.addrs_full_bytes - .memory.addrs_empty_bytes + .memory.names_full_bytes - .memory.names_empty_bytes) / 1048576')" \
	MiB "" "host (bench_dns), kernel figure"
row "approval round trip without the human, p99 (held)" "$(ap99)" " ms" 1 "host"
row "the same, refused then retried, p99" "$(ap99r)" " ms" 1 "host"
{
	echo "## Issue 13 goals"
	echo
	echo "Ratios are governed / ungoverned, each the median of same-round ratios of one interleaved run"
	echo "(the benches below give the details); start-up: $rounds interleaved rounds of warm, cold"
	echo "and bubblewrap, median wall time${startup_why:+ ($startup_why)}. Goals are printed, never asserted."
	echo
	echo "| figure | now | goal | | where |"
	echo "| --- | ---: | ---: | --- | --- |"
	printf '%s\n' "${rows[@]}"
	echo
} >"$out/goals.md"
jq -n --arg warm "$warm" --arg cold "$cold" --arg bwrap "$bw" --argjson rounds "$rounds" \
	--arg warm_max "$warm_max" --arg cold_max "$cold_max" \
	'{startup_ms: {warm: ($warm | tonumber? // null), cold: ($cold | tonumber? // null),
	  bwrap: ($bwrap | tonumber? // null), warm_max: ($warm_max | tonumber? // null),
	  cold_max: ($cold_max | tonumber? // null), rounds: $rounds}}' >"$out/goals.json"
cat "$out/goals.md"
