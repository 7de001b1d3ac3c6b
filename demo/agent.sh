#!/bin/bash
# demo/agent.sh - a stand-in for an AI agent: it tries a handful of allowed
# and forbidden things and says what happened to each.  Run it under kgate
# (see demo/run.sh); outside kgate everything it tries would succeed.
try() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		printf 'agent: %-46s -> done\n' "$what"
	else
		printf 'agent: %-46s -> refused: %s\n' "$what" "$(printf '%s' "$out" | tail -n 1)"
	fi
}

# A refused connection ("Connection refused") means the network was reached:
# kgate allowed it and nothing listens there.  kgate's refusal is EPERM.
connect() {
	local out
	out=$( (exec 3<>"/dev/tcp/$1/$2") 2>&1) && return 0
	case $out in *"Connection refused"*) echo "reached $1:$2 (nothing listening)"; return 0 ;; esac
	echo "$out"
	return 1
}

try "read my workspace (~/workspace/notes.txt)" cat "$HOME/workspace/notes.txt"
try "append to my workspace"                    sh -c 'echo progress >> "$HOME/workspace/notes.txt"'
try "read an SSH key (~/.ssh/id_demo)"          cat "$HOME/.ssh/id_demo"
try "connect to the local API 127.0.0.1:8765"   connect 127.0.0.1 8765
try "connect to 127.0.0.2:8765"                 connect 127.0.0.2 8765
try "connect to ::ffff:127.0.0.2 (IPv4-mapped)" connect ::ffff:127.0.0.2 8765
# a name the policy allows resolves (kgate's resolver asks the demo's dnsmasq);
# one it does not name is refused by kgate's resolver and never asked upstream
lookup() {
	getent hosts "$1" && return 0
	echo "no address for $1 (the job's DNS answered REFUSED)"
	return 1
}
try "look up api.demo.test (an allowed name)"   lookup api.demo.test
try "look up exfil.demo.test (no rule names it)" lookup exfil.demo.test
try "run perl (a denied interpreter)"           /usr/bin/perl -e 'print "perl ran\n"'
exit 0
