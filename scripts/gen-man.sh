#!/usr/bin/env bash
# gen-man.sh KGATE OUTDIR - manual pages for kgate(1) and each subcommand
# (kgate-run(1), kgate-audit(1), ...) from the built program's own --help, so
# that the pages say what that binary does.  Used by debian/rules.
set -euo pipefail
kgate=$1 out=$2
mkdir -p "$out"
version=$(dpkg-parsechangelog -S Version 2>/dev/null || echo dev)
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

# roff-escape a line: backslashes, and leading dots/quotes
esc() { sed -e 's/\\/\\e/g' -e 's/^\([.'"'"']\)/\\\&\1/'; }

# the subcommands: the indented "  name  description" lines of kgate --help
mapfile -t cmds < <("$kgate" --help 2>&1 | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[ ${#cmds[@]} -gt 0 ] || { echo "gen-man: no commands in $kgate --help" >&2; exit 1; }

page() {	# page NAME SUMMARY HELP-TEXT SEEALSO
	local name=$1 summary=$2 help=$3 see=$4 upper
	upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
	{
		echo ".TH $upper 1 \"$date\" \"kgate $version\" \"kgate manual\""
		echo ".SH NAME"
		echo "$name \\- $summary"
		echo ".SH DESCRIPTION"
		echo ".nf"
		printf '%s\n' "$help" | esc
		echo ".fi"
		echo ".SH FILES"
		echo ".TP"
		echo "/etc/kgate/policy.json"
		echo "the default policy"
		echo ".TP"
		echo "/run/kgate, /var/log/kgate, /var/lib/kgate"
		echo "state (jobs, control socket), the audit trail, what outlives a reboot"
		echo ".SH SEE ALSO"
		echo "$see"
	} >"$out/$name.1"
}

see="kgate(1)"
for c in "${cmds[@]}"; do see="$see, kgate-$c(1)"; done
page kgate "kernel-enforced runtime governance for AI agents" "$("$kgate" --help 2>&1)" "$see"
for c in "${cmds[@]}"; do
	summary=$("$kgate" --help 2>&1 | awk -v c="$c" '$1 == c { $1 = ""; sub(/^ +/, ""); print; exit }')
	help=$("$kgate" "$c" --help 2>&1) || true
	[ -n "$help" ] || { echo "gen-man: kgate $c --help printed nothing" >&2; exit 1; }
	page "kgate-$c" "$summary" "$help" "kgate(1)"
done
echo "gen-man: $((${#cmds[@]} + 1)) pages in $out"
