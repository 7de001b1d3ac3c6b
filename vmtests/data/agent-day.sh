#!/bin/sh
# agent-day.sh - an agent's ordinary day with real tools (VM suite: runs in
# the guest's userland, through kg-userland; see vmtests/README.md).
#
# Usage: sh agent-day.sh [STEP...]   (default: every step, in order)
#
# Runs in the current directory (the agent's workspace) with the HOME it is
# given; the caller prepares ~/.ssh/id_ed25519 and ~/src/README for the two
# file refusal steps.  For each step prints
#
#   STEP <name> rc=<exit status> ms=<wall-clock milliseconds>
#     <name>| <the step's last output lines>
#
# and exits 0: judging the steps is the caller's job (the same step is
# expected to succeed ungoverned and to be refused under a policy).
# Ordinary steps: tmpfile cc_make git_config git_commit git_clone python
# venv cache_dir tar grep_r http.  Steps that a coding-agent policy refuses:
# ssh_key_read src_write net_outside (net_outside prints errno=NAME of a
# TCP connect to a documentation address; it runs only on a machine whose
# one network interface is lo, like the VM guest, so nothing can leave it
# and ungoverned it is ENETUNREACH).
set -u
work=$(pwd)
out=$work/.agent-day.out

step() {
	name=$1
	shift
	t0=$(date +%s%N)
	"$@" >"$out" 2>&1
	rc=$?
	t1=$(date +%s%N)
	echo "STEP $name rc=$rc ms=$(((t1 - t0) / 1000000))"
	tail -n 8 "$out" | sed "s/^/  $name| /"
	rm -f "$out"
}

s_tmpfile() {
	t=$(mktemp) && echo scratch >"$t" && grep -q scratch "$t" && rm "$t"
}

s_cc_make() (
	mkdir -p proj && cd proj || exit 1
	cat >hello.c <<'EOF'
#include <stdio.h>

int main(void)
{
	printf("hello %d\n", 6 * 7);
	return 0;
}
EOF
	printf 'hello: hello.c\n\t$(CC) -O2 -Wall -Werror -o $@ hello.c\n' >Makefile
	printf 'check: hello\n\t./hello | grep -qx "hello 42"\n\techo built and ran\n' >>Makefile
	make -s CC=cc check
)

s_git_config() {
	git config --global user.name agent &&
		git config --global user.email agent@example.invalid &&
		git config --global init.defaultBranch main
}

s_git_commit() (
	git init -q repo && cd repo && echo one >file.txt && git add file.txt &&
		git commit -q -m first && git log --oneline | grep -q first && echo committed
)

s_git_clone() {
	git clone -q repo clone && test "$(cat clone/file.txt)" = one && echo cloned
}

s_python() {
	python3 -c 'print(6 * 7)' | grep -qx 42 && echo python ok
}

# Under TCG, ensurepip's install of pip into a venv takes ~2 minutes and
# even "pip --version" ~20 s (pip imports most of its vendored packages):
# the venv gets the system's pip through its site-packages, and the step
# checks that the venv's python runs, is a venv and can import pip.
s_venv() {
	python3 -m venv --without-pip --system-site-packages venv &&
		venv/bin/python -c 'import sys, pip; assert sys.prefix != sys.base_prefix; print("venv with pip", pip.__version__)'
}

s_cache_dir() {
	mkdir -p "$HOME/.cache/agent" && echo cached >"$HOME/.cache/agent/entry" &&
		grep -q cached "$HOME/.cache/agent/entry"
}

s_tar() {
	tar czf proj.tgz proj && mkdir -p untar && tar xzf proj.tgz -C untar &&
		cmp proj/hello.c untar/proj/hello.c && echo tar ok
}

s_grep_r() {
	grep -rn 'hello %d' proj
}

# a loopback HTTP server (python3 -m http.server on a free port) and client
# (curl); the server is stopped whatever happens
s_http() (
	mkdir -p www && echo served >www/hello.txt || exit 1
	python3 -u -m http.server --bind 127.0.0.1 --directory www 0 >http.log 2>&1 &
	pid=$!
	port= i=0
	while [ -z "$port" ] && [ $i -lt 300 ] && kill -0 $pid 2>/dev/null; do
		port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' http.log | head -n 1)
		[ -n "$port" ] || sleep 0.1
		i=$((i + 1))
	done
	rc=1
	if [ -n "$port" ]; then
		body=$(curl -sS --max-time 20 "http://127.0.0.1:$port/hello.txt") && [ "$body" = served ] &&
			echo "fetched from port $port" && rc=0
	else
		echo "the server did not start:"
		cat http.log
	fi
	kill $pid 2>/dev/null
	wait $pid 2>/dev/null
	exit $rc
)

s_ssh_key_read() {
	cat "$HOME/.ssh/id_ed25519"
}

s_src_write() {
	echo "agent was here" >>"$HOME/src/README"
}

# only where no packet can leave: the VM guest has no interface but lo
s_net_outside() {
	python3 -c '
import errno, os, socket, sys
if sorted(os.listdir("/sys/class/net")) != ["lo"]:
    print("errno=NOTRUN: this machine has a network interface besides lo")
    sys.exit(2)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(("198.51.100.7", 80))
    print("errno=0 connected")
except OSError as e:
    print("errno=%s" % errno.errorcode.get(e.errno, e.errno))
    sys.exit(1)
'
}

all="tmpfile cc_make git_config git_commit git_clone python venv cache_dir tar grep_r http ssh_key_read src_write net_outside"
[ $# -gt 0 ] || set -- $all
for s in "$@"; do
	step "$s" "s_$s"
done
exit 0
