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

echo "== kgate run --policy policies/demo.json -- demo/agent.sh"
set +e
HOME=$home "$kgate" run --policy policies/demo.json --topic job.demo.agent -- "$PWD/demo/agent.sh" \
	2> >(tee "$home/kgate.err" >&2)
rc=$?
set -e
wait
trace=$(sed -n 's/.*job \(job-[0-9a-f]*\) started.*/\1/p' "$home/kgate.err" | head -n 1)
echo
echo "== kgate audit timeline $trace"
"$kgate" audit timeline "$trace"
echo
echo "== kgate audit verify"
"$kgate" audit verify
exit $rc
