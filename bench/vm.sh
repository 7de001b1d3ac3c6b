#!/usr/bin/env bash
# The BPF LSM path, measured in the VM: boots `vmtests/run.sh BUILD_DIR
# --bench` (bench/vt_bench.c in the full configuration) and turns its
# "KGATE-BENCH {json}" lines into a report section.
#
# Usage: bench/vm.sh BUILD_DIR --out DIR
#
# Writes DIR/vm_bench.md and DIR/vm_bench.json (and the VM's own output to
# DIR/vm_bench.vmtest.out).  Without qemu, or when the VM run fails, the
# section says that the LSM path was not measured and why.  Targets are
# printed next to the figures, never asserted; exit 0 unless BUILD_DIR or
# --out is wrong.  KGATE_BENCH_VM_REUSE=1: no VM, re-read the last run's
# BUILD_DIR/vmtest-bench.jsonl.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
[ $# -ge 1 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
build=$(cd "$1" && pwd) || exit 2
shift
out=
while [ $# -gt 0 ]; do
	case "$1" in
	--out) out=${2:?}; shift 2 ;;
	*) echo "vm: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ -n "$out" ] && [ -d "$out" ] || { echo "vm: --out DIR is required" >&2; exit 2; }
md=$out/vm_bench.md
json=$out/vm_bench.json
jsonl=$build/vmtest-bench.jsonl

not_measured() {
	printf '## BPF LSM path in the VM (vt_bench)\n\nNot measured: %s. The figures above cover the cgroup-BPF and degraded paths only.\n' "$1" >"$md"
	jq -n --arg why "$1" '{measured: false, why: $why}' >"$json"
	cat "$md"
	exit 0
}

command -v qemu-system-x86_64 >/dev/null || not_measured "qemu-system-x86_64 is not installed (scripts/install-deps.sh)"
if [ ! -x "$build/vmtests/vt_bench" ]; then
	# `make bench` builds the benches only; the VM needs the vmtests too
	if [ "$build" = "$repo/build" ]; then
		make -C "$repo" --no-print-directory vmtests-build >&2 ||
			not_measured "make vmtests-build failed"
	fi
	[ -x "$build/vmtests/vt_bench" ] || not_measured "$build/vmtests/vt_bench is not built (make vmtests-build)"
fi

rc=0
if [ "${KGATE_BENCH_VM_REUSE:-0}" = 1 ] && [ -s "$jsonl" ]; then
	echo "bench: reusing $jsonl (KGATE_BENCH_VM_REUSE=1)" >&2
else
	rm -f "$jsonl"
	echo "bench: booting the VM for the LSM path (vmtests/run.sh --bench)" >&2
	"$repo/vmtests/run.sh" "$build" --bench >"$out/vm_bench.vmtest.out" 2>&1
	rc=$?
fi
[ -s "$jsonl" ] && grep -q '"kind":"done"' "$jsonl" ||
	not_measured "the VM run did not finish (vmtests/run.sh --bench exited $rc; see $(basename "$out")/vm_bench.vmtest.out and $build/vmtest-bench-full.log)"

# one object: {setup, ops[], progs[], enforcement, done}
jq -s '{measured: true,
	setup: (map(select(.kind == "setup")) | first),
	ops: map(select(.kind == "op")),
	progs: map(select(.kind == "prog")),
	enforcement: (map(select(.kind == "enforcement")) | first),
	notes: map(select(.kind == "note") | .text),
	seconds: (map(select(.kind == "done")) | first | .seconds)}' "$jsonl" >"$json" ||
	not_measured "its result lines do not parse"

jq -r '
def r: if . == null or . == 0 then "n/a" else (. * 1000 | round / 1000 | tostring) + "x" end;
def ns: if . == null then "" else (. | round | tostring) end;
def us: if . == null then "" else ((. / 100 | round) / 10 | tostring) end;
def pp: if . == null then "n/a" else "\(.p50_ns | us) / \(.p99_ns | us)" end;
def verdict($v; $t): if $v == null or $v == 0 then "n/a"
	elif $v <= $t then "met" else "not met" end;
.setup as $s
| (.ops | map(select(.rules == $s.sizes[1]))) as $main
| "## BPF LSM path in the VM (vt_bench)\n",
  "Guest kernel \($s.kernel) under QEMU TCG (software emulation: 5-40x slower than the host, noisy), LSMs `\($s.lsm)`. \($s.cycles) load cycle(s) x \($s.rounds) round(s); the order of rule counts and arms rotates every round. **none** = kgate completely unloaded (\($s.none_runs) runs, before each load and after the last; kg_* programs still loaded then: \($s.kg_progs_during_none | map(tostring) | join(", "))). p50 = min over workers of the worker median, p99 = median over workers, in **µs per call**; ratios = median of same-round ratios (ungoverned/none: per cycle, against the none runs just before and after it). Quick run: \($s.quick).\n",
  "### All operations at \($s.sizes[1]) file rules\n",
  "| operation | iters | none p50/p99 | ungoverned p50/p99 | governed p50/p99 | denied p50/p99 | ungov/none (target 1.01x) | gov/ungov (target) | denied/ungov |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ($main[] | "| \(.op) | \(.iters) | \(.arms.none | pp) | \(.arms.ungoverned | pp) | \(.arms.governed | pp) | \(.arms.denied | pp) | \(.ratio_ungoverned_vs_none | r) | \(.ratio_governed_vs_ungoverned | r)\(if .target_governed_ratio > 0 then " (\(.target_governed_ratio)x)" else "" end) | \(.ratio_denied_vs_ungoverned | r) |"),
  "",
  "Targets (printed, never asserted):\n",
  ($main[] | select(.op == "openat+close depth 5") | "- governed openat at \($s.sizes[1]) rules within 1.10x of ungoverned: depth 1/5/20 = \([$main[] | select(.op | startswith("openat")) | .ratio_governed_vs_ungoverned | r] | join(" / ")) -> \(verdict(.ratio_governed_vs_ungoverned; 1.10)) at depth 5"),
  ($main[] | select(.op == "fork+execve+wait") | "- execve within 1.02x: \(.ratio_governed_vs_ungoverned | r) -> \(verdict(.ratio_governed_vs_ungoverned; 1.02))"),
  ($main[] | select(.op == "tcp connect (loopback)") | "- connect within 1.05x: \(.ratio_governed_vs_ungoverned | r) -> \(verdict(.ratio_governed_vs_ungoverned; 1.05))"),
  "- ungoverned within 1.01x with kgate loaded: \([$main[] | "\(.op) \(.ratio_ungoverned_vs_none | r)"] | join(", "))",
  "",
  "### openat+close by number of file rules\n",
  "Governed p50 in µs (gov/ungov). Kernel ns/run: `kg_file_open` over a governed openat pass with bpf_stats on (the hook that walks the dentries).\n",
  "| file rules | install ms | depth 1 | depth 5 | depth 20 | denied depth 5 (denied/ungov) | kg_file_open ns/run |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ( $s.sizes | to_entries[] | .key as $i | .value as $n
    | ([$s.install_ms[$i][]] | min) as $ins
    | "| \($n) | \($ins * 10 | round / 10) | " +
      ([ "openat+close depth 1", "openat+close depth 5", "openat+close depth 20" ] | map(. as $op
        | ($main_all[] | select(.rules == $n and .op == $op)) as $o
        | "\($o.arms.governed.p50_ns | us) (\($o.ratio_governed_vs_ungoverned | r))") | join(" | ")) +
      " | " + (($main_all[] | select(.rules == $n and .op == "openat+close depth 5")) as $o
        | "\($o.arms.denied.p50_ns | us) (\($o.ratio_denied_vs_ungoverned | r))") +
      " | " + ([$progs[] | select(.pass == "governed-openat" and .rules == $n and .prog == "kg_file_open") | .avg_ns | ns] | join(", ")) + " |" ),
  "",
  "### Kernel-measured cost per kg_* program (bpf_stats, run_time_ns / run_cnt)\n",
  "One ungoverned and one governed worker running every loop above at \($s.sizes[1]) rules, statistics on only for these passes. This is a *mean* over every run, and under TCG a run that a guest interrupt or the host descheduling QEMU stretched counts fully: read it as an upper bound and compare programs with each other and ungoverned with governed, not with host figures. The wall-clock p50 differences above are the better per-call figure.\n",
  "| program | ungoverned runs | ungoverned ns/run | governed runs | governed ns/run |",
  "| --- | ---: | ---: | ---: | ---: |",
  ( [$progs[] | select(.pass == "ungoverned" or .pass == "governed") | .prog] | unique[] as $p
    | ([$progs[] | select(.pass == "ungoverned" and .prog == $p)] | first) as $u
    | ([$progs[] | select(.pass == "governed" and .prog == $p)] | first) as $g
    | "| \($p) | \($u.runs // "") | \($u.avg_ns | ns) | \($g.runs // "") | \($g.avg_ns | ns) |" ),
  "",
  "Enforcement (every governed worker): \(if .enforcement.clean then "every allowed call succeeded, every denied call was refused" else "NOT clean: \(.enforcement.allowed_refused) allowed calls refused, \(.enforcement.denied_ok) denied calls succeeded" end). Policy parse ms (10 / 1k / \($s.sizes[2])): \($s.parse_ms | map(round | tostring) | join(" / ")); kgate load (open + verify + attach every object) ms: \($s.load_ms | map(round | tostring) | join(", ")). Bench time in the guest: \(.seconds | round) s.\(if (.notes | length) > 0 then " Notes: " + (.notes | join("; ")) else "" end)",
  ""
' --argjson main_all "$(jq '.ops' "$json")" --argjson progs "$(jq '.progs' "$json")" "$json" >"$md" ||
	not_measured "the report could not be generated from $jsonl"
# file-heavy work (bench/vt_bench_files.c): its own section and key
"$here/vm-files.sh" "$jsonl" >>"$md"
files_json=$("$here/vm-files.sh" --json "$jsonl")
if [ -n "$files_json" ]; then
	jq --argjson f "$files_json" '. + {files: $f}' "$json" >"$json.tmp" && mv "$json.tmp" "$json"
fi
cat "$md"
exit 0
