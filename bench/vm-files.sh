#!/usr/bin/env bash
# File-heavy work in full mode (bench/vt_bench_files.c), as a report
# section: reads the "files*" result lines of a VM bench run.
#
# Usage: bench/vm-files.sh JSONL   (markdown on stdout; nothing when the run
# has no files lines, e.g. a filtered VM run)
#        bench/vm-files.sh --json JSONL   (the lines as one JSON object)
set -uo pipefail
json=0
[ "${1:-}" = --json ] && { json=1; shift; }
jsonl=${1:?usage: vm-files.sh [--json] JSONL}
[ -s "$jsonl" ] && grep -q '"kind":"files_setup"' "$jsonl" || exit 0
if [ "$json" = 1 ]; then
	jq -s '{setup: (map(select(.kind == "files_setup")) | first),
		results: map(select(.kind == "files")),
		enforcement: (map(select(.kind == "files_enforcement")) | first)}' "$jsonl"
	exit
fi
jq -rs '
def r: if . == null or . == 0 then "n/a" else (. * 100 | round / 100 | tostring) + "x" end;
def ms: if . == null then "" else (. * 10 | round / 10 | tostring) end;
(map(select(.kind == "files_setup")) | first) as $s
| (map(select(.kind == "files_enforcement")) | first) as $e
| "### File-heavy work in full mode (vt_bench_files)\n",
  "\($s.files) files of \($s.file_bytes) bytes in \($s.dirs) directories, seven levels below /, on the guest tmpfs (kernel \($s.kernel), TCG). Each tool is one busybox process (fork + execve + wait) started by a worker in the arm; \($s.rounds) rounds, each visiting both policy sizes and both arms in rotated order. ms = minimum over rounds; ratios: min(governed)/min(ungoverned), and the median of the same-round ratios. Target: within 1.10x (issue 13).\n",
  "| rules | tool | ungoverned ms | governed ms | gov/ungov (min) | gov/ungov (median of rounds) |",
  "| ---: | --- | ---: | ---: | ---: | ---: |",
  (map(select(.kind == "files"))[] | "| \(.rules) | \(.tool) | \(.ungoverned_min_ms | ms) | \(.governed_min_ms | ms) | \(.ratio_of_min | r) | \(.ratio_median | r) |"),
  "",
  "Enforcement: \(if $e.clean then "every tool run succeeded in both arms and every governed worker was refused <tmp>/deny/f" else "NOT clean: \($e.tool_failures) tool failures, \($e.deny_not_refused) governed workers not refused, \($e.worker_failures) workers failed" end). Bench time in the guest: \($e.seconds | round) s.\n"
' "$jsonl"
