#!/usr/bin/env bash
# kgate's peers side by side: start-up time of a sandboxed `true`, and the
# per-operation loops (openat depth 1/5/20, fork+execve, loopback TCP
# connect, getpid) run inside each sandbox by bench/peer_loops.c, which this
# script compiles with cc.  Ratios are to the same loop run plain.
#
# Usage: bench/peers.sh BUILD_DIR [--install] [--out DIR]
#
#   plain      true
#   kgate      kgate run --policy <minimal> -- true
#   bwrap      bwrap --ro-bind / / --dev /dev --proc /proc true
#   firejail   firejail --quiet --noprofile true
#   srt        srt true   (@anthropic-ai/sandbox-runtime; node 20, bubblewrap,
#              socat, ripgrep)
#
# Nothing is installed unless --install is given (then: apt-get for
# bubblewrap, firejail, socat, ripgrep; npm -g for sandbox-runtime).  A peer
# that is missing is skipped, and the report says so.  Runs are interleaved
# (one of each per round); start-up: min and median over rounds; loops:
# min over rounds of each run's p50, ratio = median of same-round ratios.
# KGATE_BENCH_PEER_ROUNDS (start-up rounds, default 20), loops rounds: 5
# (quick: 2, iterations / 10).
# Writes DIR/peers.md and DIR/peers.json when --out is given; Markdown to
# stdout always.  Never fails on a figure: exit 0 unless BUILD_DIR is wrong.
set -uo pipefail

[ $# -ge 1 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
build=$(cd "$1" && pwd) || exit 2
shift
install=0 out=
while [ $# -gt 0 ]; do
	case "$1" in
	--install) install=1; shift ;;
	--out) out=${2:?}; shift 2 ;;
	*) echo "peers: unknown argument $1" >&2; exit 2 ;;
	esac
done
rounds=${KGATE_BENCH_PEER_ROUNDS:-20}
[ -n "${KGATE_BENCH_QUICK:-}" ] && [ "${KGATE_BENCH_QUICK}" != 0 ] && rounds=5

if [ "$install" = 1 ]; then
	command -v bwrap >/dev/null && command -v firejail >/dev/null && command -v socat >/dev/null \
		&& command -v rg >/dev/null || apt-get install -y bubblewrap firejail socat ripgrep >&2 \
		|| echo "peers: apt-get install failed" >&2
	if ! command -v srt >/dev/null && command -v npm >/dev/null; then
		npm install -g @anthropic-ai/sandbox-runtime >&2 || echo "peers: npm install failed" >&2
	fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kgate-bench-peers.XXXXXX")
pin=/sys/fs/bpf/kgate-bench-peers-$$
cleanup() {
	rm -rf "$work"
	# only the bpffs directory this script named for itself
	[ -d "$pin" ] && rm -rf "$pin"
}
trap cleanup EXIT
cat >"$work/policy.json" <<'EOF'
{"version":1,"name":"bench-peers","default":"allow",
 "runtime_defaults":{"file":"allow","exec":"allow","net":"deny"},
 "runtime":[{"id":"loopback","net":{"cidr":"127.0.0.1/32"},"decision":"allow"}]}
EOF

# the loops' program and tree (depth 1, 5, 20 and a copy of true)
loops_bin=
tree=$work/tree
deep=$tree
for i in $(seq 1 19); do deep=$deep/l$i; done
mkdir -p "$tree/a/b/c/d" "$deep" && touch "$tree/f" "$tree/a/b/c/d/f" "$deep/f" &&
	cp "$(type -P true)" "$tree/true"
chmod -R a+rX "$work"
here=$(cd "$(dirname "$0")" && pwd)
loops_why=
if ! command -v cc >/dev/null; then
	loops_why="no C compiler (cc) to build bench/peer_loops.c"
elif cc -O2 -std=gnu11 -Wall -Wextra -Werror -o "$work/peer_loops" "$here/peer_loops.c" 2>"$work/cc.log"; then
	loops_bin=$work/peer_loops
else
	loops_why="bench/peer_loops.c does not build: $(head -1 "$work/cc.log")"
fi

names=(plain kgate bwrap firejail srt)
declare -A cmd why
cmd[plain]="true"
if [ -x "$build/kgate" ] && [ "$(id -u)" = 0 ]; then
	cmd[kgate]="env KGATE_BPFFS=$pin KGATE_STATE_DIR=$work/state KGATE_AUDIT_DIR=$work/audit $build/kgate run --policy $work/policy.json -- true"
else
	why[kgate]="needs root and $build/kgate"
fi
if command -v bwrap >/dev/null; then
	cmd[bwrap]="bwrap --ro-bind / / --dev /dev --proc /proc true"
else
	why[bwrap]="not installed (bench/peers.sh --install, or apt-get install bubblewrap)"
fi
if command -v firejail >/dev/null; then
	cmd[firejail]="firejail --quiet --noprofile true"
else
	why[firejail]="not installed (apt-get install firejail)"
fi
if command -v srt >/dev/null; then
	cmd[srt]="srt true"
else
	why[srt]="not installed (npm install -g @anthropic-ai/sandbox-runtime; needs node 20, bubblewrap, socat, ripgrep)"
fi

# a peer that cannot run `true` here is skipped, with its error
for n in "${names[@]}"; do
	[ -n "${cmd[$n]:-}" ] || continue
	if ! err=$(${cmd[$n]} 2>&1 </dev/null); then
		why[$n]="fails here: $(echo "$err" | tail -1 | cut -c1-120)"
		unset "cmd[$n]"
	fi
done

declare -A samples
for ((r = 0; r < rounds; r++)); do
	for n in "${names[@]}"; do
		[ -n "${cmd[$n]:-}" ] || continue
		t0=$(date +%s%N)
		${cmd[$n]} >/dev/null 2>&1 </dev/null
		t1=$(date +%s%N)
		samples[$n]+="$(( (t1 - t0) / 1000 )) "
	done
done

# ---- per-operation loops inside each sandbox --------------------------------
loop_rounds=5 loop_scale=1
if [ -n "${KGATE_BENCH_QUICK:-}" ] && [ "${KGATE_BENCH_QUICK}" != 0 ]; then
	loop_rounds=2 loop_scale=0.1
fi
: >"$work/loops.jsonl"
if [ -n "$loops_bin" ]; then
	for ((r = 0; r < loop_rounds; r++)); do
		for n in "${names[@]}"; do
			[ -n "${cmd[$n]:-}" ] || continue
			# `true` is the last word of every command: swap in the loops
			c=${cmd[$n]% true}
			[ "$n" = plain ] && c=
			if res=$($c "$loops_bin" "$tree" "$loop_scale" 2>"$work/loops-$n.err" </dev/null) &&
				jq -e . >/dev/null 2>&1 <<<"$res"; then
				jq -c --arg n "$n" --argjson r "$r" '{peer: $n, round: $r, ops: .}' <<<"$res" >>"$work/loops.jsonl"
			else
				echo "peers: loops under $n failed: $(tail -1 "$work/loops-$n.err")" >&2
			fi
		done
	done
fi
# {peer: {op: {p50_ns (min over rounds), ratio (median same-round ratio to plain), error}}}
loops_json=$(jq -s '
	def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	. as $all
	| ($all | map(select(.peer == "plain")) | map({key: (.round | tostring), value: .ops}) | from_entries) as $plain
	| ($all | map(.peer) | unique) as $peers
	| ($all | map(.ops | keys) | add // [] | unique) as $ops
	| [ $peers[] as $p | {key: $p, value: ([ $ops[] as $o
		| ($all | map(select(.peer == $p))) as $runs
		| ($runs | map(.ops[$o].p50_ns) | map(select(. != null))) as $v
		| {key: $o, value: {
			p50_ns: ($v | min),
			ratio: ([ $runs[] | select(.ops[$o].p50_ns != null)
				| ($plain[.round | tostring][$o].p50_ns) as $b
				| select($b != null and $b > 0) | .ops[$o].p50_ns / $b ] | median),
			error: ($runs | map(.ops[$o].error) | map(select(. != null)) | first)}} ] | from_entries)} ]
	| from_entries' "$work/loops.jsonl")
[ -n "$loops_json" ] || loops_json='{}'

stat() {	# min median (microseconds) of a list
	tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {
		if (!NR) { print "0 0"; exit }
		m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print a[1], m }'
}

md="## Peers: start-up of a sandboxed \`true\` (peers.sh)

$rounds interleaved rounds; wall-clock of the whole command in ms (min / median).

| sandbox | min ms | median ms | vs plain (median) | note |
| --- | ---: | ---: | ---: | --- |
"
json="{\"rounds\":$rounds,\"peers\":["
sep=
read -r pmin pmed < <(echo "${samples[plain]:-}" | stat)
for n in "${names[@]}"; do
	if [ -n "${cmd[$n]:-}" ]; then
		read -r mn me < <(echo "${samples[$n]}" | stat)
		ratio=$(awk -v a="$me" -v b="$pmed" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "n/a" }')
		md+=$(printf '| %s | %.2f | %.2f | %s | %s |' "$n" "$(awk -v x="$mn" 'BEGIN{print x/1000}')" \
			"$(awk -v x="$me" 'BEGIN{print x/1000}')" "$ratio" "ran")$'\n'
		json+="$sep{\"name\":\"$n\",\"min_us\":$mn,\"median_us\":$me,\"skipped\":false}"
	else
		md+="| $n | | | | skipped: ${why[$n]:-unknown} |"$'\n'
		json+="$sep{\"name\":\"$n\",\"skipped\":true,\"why\":$(printf '%s' "${why[$n]:-unknown}" | jq -Rs . 2>/dev/null || echo '"?"')}"
	fi
	sep=,
done
json+="]}"
json=$(jq -c --argjson loops "$loops_json" --argjson lr "$loop_rounds" --arg why "$loops_why" \
	'. + {loops: $loops, loop_rounds: $lr} + (if $why != "" then {loops_skipped: $why} else {} end)' <<<"$json")

# the loops table: p50 in ns and the ratio to plain, per peer
md+="
### Per-operation loops inside each sandbox

bench/peer_loops.c run by each sandbox in place of \`true\`; $loop_rounds interleaved rounds; p50 in ns per call (min over rounds), ratio to the same loop run plain (median of same-round ratios). This is what each sandbox adds *per operation* (seccomp filters, LSM hooks, namespaces), not its start-up.
"
if [ -n "$loops_why" ]; then
	md+="
Not run: $loops_why
"
else
	md+=$'\n'$(jq -r --argjson names "$(printf '%s\n' "${names[@]}" | jq -R . | jq -s .)" '
		. as $l
		| ["openat_depth1", "openat_depth5", "openat_depth20", "fork_execve", "tcp_connect", "getpid"] as $ops
		| "| sandbox | " + ($ops | join(" | ")) + " |",
		  "| --- |" + ($ops | map(" ---: |") | join("")),
		  ($names[] as $n | select($l[$n] != null) | $l[$n] as $p
		   | "| \($n) | " + ($ops | map(. as $o | $p[$o] |
			if . == null then "n/a"
			elif .p50_ns == null then "fails: \(.error // "?")"
			elif $n == "plain" then "\(.p50_ns)"
			else "\(.p50_ns) (\(if .ratio then (.ratio * 100 | round / 100 | tostring) + "x" else "n/a" end))" end)
		     | join(" | ")) + " |")' <<<"$loops_json")$'\n'
fi
printf '%s\n' "$md"
if [ -n "$out" ]; then
	printf '%s\n' "$md" >"$out/peers.md"
	printf '%s\n' "$json" >"$out/peers.json"
fi
exit 0
