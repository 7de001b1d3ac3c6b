#!/usr/bin/env bash
# kgate's peers side by side: start-up time of a sandboxed `true`.
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
# (one of each per round); the figures are min and median over rounds.
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
 "runtime_defaults":{"file":"allow","exec":"allow","net":"deny"},"runtime":[]}
EOF

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

stat() {	# min median (microseconds) of a list
	tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {
		if (!NR) { print "0 0"; exit }
		m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; print a[1], m }'
}

md="## Peers: start-up of a sandboxed \`true\` (peers.sh)

$rounds interleaved rounds; wall-clock of the whole command in ms (min / median).
Per-operation loops under each peer are not run yet (see bench/README.md).

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
printf '%s\n' "$md"
if [ -n "$out" ]; then
	printf '%s\n' "$md" >"$out/peers.md"
	printf '%s\n' "$json" >"$out/peers.json"
fi
exit 0
