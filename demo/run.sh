#!/bin/bash
# demo/run.sh - kgate's main job on the shipped demo policy: run the demo
# agent as a governed job, show what was decided, then the job's audit
# timeline and a verification of the audit trail.
#
# Usage: demo/run.sh [BUILD_DIR]     (run as root; `make demo` does it all)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
kgate="$PWD/$build/kgate"

# The agent's world: a fresh HOME with a workspace and an SSH key.
home=$(mktemp -d /tmp/kgate-demo.XXXXXX)
trap 'rm -rf -- "$home"' EXIT
mkdir -p "$home/workspace" "$home/.ssh"
echo "notes of the demo agent" > "$home/workspace/notes.txt"
echo "-----BEGIN DEMO PRIVATE KEY-----" > "$home/.ssh/id_demo"
chmod 700 "$home/.ssh"
# under sudo, kgate run runs the agent as the user who ran sudo: its world is theirs
if [ "$(id -u)" = 0 ] && [ -n "${SUDO_UID:-}" ]; then
	chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$home"
fi

# The job's upstream DNS server: dnsmasq on a loopback address of its own,
# answering two names from a hosts file (never the machine's resolver).
# The policy allows api.demo.test by name; exfil.demo.test it does not name,
# so kgate's resolver refuses it before dnsmasq is asked.
dns=127.53.0.1
dnsmasq_pid=
if command -v dnsmasq >/dev/null 2>&1; then
	printf '127.0.0.1 api.demo.test\n127.0.0.1 exfil.demo.test\n' >"$home/demo.hosts"
	dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
		--addn-hosts="$home/demo.hosts" --listen-address=$dns --bind-interfaces \
		--port=53 --pid-file= --user=root --log-facility="$home/dnsmasq.log" &
	dnsmasq_pid=$!
	trap 'kill "$dnsmasq_pid" 2>/dev/null || true; wait "$dnsmasq_pid" 2>/dev/null || true; rm -rf -- "$home"' EXIT
	sleep 0.3
else
	echo "demo: dnsmasq not found (scripts/install-deps.sh demo installs dnsmasq-base):" \
	     "both names will fail to resolve" >&2
fi

echo "== kgate run --policy policies/demo.json --dns-upstream $dns -- demo/agent.sh"
set +e
HOME=$home "$kgate" run --policy policies/demo.json --dns-upstream $dns --topic job.demo.agent \
	-- "$PWD/demo/agent.sh" 2> >(tee "$home/kgate.err" >&2)
rc=$?
set -e
# the job is over: stop its DNS server, then wait for it and the tee
[ -z "$dnsmasq_pid" ] || kill "$dnsmasq_pid" 2>/dev/null || true
wait
trace=$(sed -n 's/.*job \(job-[0-9a-f]*\) started.*/\1/p' "$home/kgate.err" | head -n 1)
echo
echo "== kgate audit timeline $trace"
"$kgate" audit timeline "$trace"
echo
echo "== kgate audit verify"
"$kgate" audit verify
exit $rc
