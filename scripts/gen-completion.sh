#!/usr/bin/env bash
# gen-completion.sh KGATE - bash completion for kgate on stdout: the
# subcommands and each one's long options, read from the built program's
# --help.  Used by debian/rules.
set -euo pipefail
kgate=$1
mapfile -t cmds < <("$kgate" --help 2>&1 | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[ ${#cmds[@]} -gt 0 ] || { echo "gen-completion: no commands in $kgate --help" >&2; exit 1; }
cat <<'HEAD'
# bash completion for kgate (generated from kgate --help)
_kgate()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	case $prev in
	--policy|--dir|--key|--http-cert|--http-key)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--cgroup)
		COMPREPLY=($(compgen -d -- "$cur")); return ;;
	esac
	case $cmd in
HEAD
printf '\t"")\n\t\tCOMPREPLY=($(compgen -W "-v --json --help %s" -- "$cur")) ;;\n' "${cmds[*]}"
for c in "${cmds[@]}"; do
	help=$("$kgate" "$c" --help 2>&1) || true
	# its subcommands ("kgate audit verify ...") and its long options
	words=$( { printf '%s\n' "$help" | grep -oE -- "kgate $c [a-z][a-z-]*" | awk '{ print $3 }'
		   printf '%s\n' "$help" | awk '/^subcommands:/ { on = 1; next }
						on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }'
		   printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z0-9-]*'
		   echo --help; } | awk '!seen[$0]++' | tr '\n' ' ')
	printf '\t%s)\n\t\tCOMPREPLY=($(compgen -W "%s" -- "$cur")) ;;\n' "$c" "${words% }"
done
cat <<'TAIL'
	esac
	[ ${#COMPREPLY[@]} -gt 0 ] || COMPREPLY=($(compgen -f -- "$cur"))
}
complete -F _kgate kgate
TAIL
