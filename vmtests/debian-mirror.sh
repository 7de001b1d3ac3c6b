# shellcheck shell=bash
# debian-mirror.sh - find the Debian archive this machine's apt already uses
# (sourced by vmtests/run.sh; tested by tests/test_debian_mirror.sh).
#
# The VM suite downloads guest kernels from the machine's own Debian mirror,
# never from a host name written into the project: the 6.12 kernel lives in
# bookworm-backports, which every Debian archive mirror also carries, so the
# backports entry is derived from the archive entry the machine already has.
#
#   kg_debian_archive SOURCELIST PARTSDIR
#       prints "URI<TAB>SIGNED-BY" (SIGNED-BY may be empty) of the first
#       enabled binary ("deb") entry that points at a Debian archive, reading
#       SOURCELIST (one-line format) and then PARTSDIR/*.list (one-line) and
#       PARTSDIR/*.sources (deb822) in apt's order; returns 1 if none.
#   kg_backports_line SOURCELIST PARTSDIR [SUITE]
#       prints a one-line sources.list entry for SUITE (default
#       bookworm-backports) main on that archive; returns 1 if none.
#   kg_apt_source_paths
#       prints the machine's SOURCELIST and PARTSDIR (apt-config, so a
#       relocated apt configuration is honoured), one per line.
#
# "A Debian archive entry" is one whose suite is a Debian release name or
# alias, alone or with -updates/-backports/-proposed-updates, and that lists
# the main component.  Security entries (suite *-security or */updates, or
# a URI ending in -security) carry only security suites and are skipped, as
# are deb-src-only entries, "Enabled: no" stanzas and cdrom: URIs.  A
# Signed-By that names a keyring file is kept; an embedded key block cannot
# go into a one-line entry and is dropped (apt then uses its trusted keys).

kg_apt_source_paths() {
	local SL=/etc/apt/sources.list SP=/etc/apt/sources.list.d
	if command -v apt-config >/dev/null 2>&1; then
		eval "$(apt-config shell SL Dir::Etc::sourcelist/f SP Dir::Etc::sourceparts/d 2>/dev/null)"
	fi
	printf '%s\n%s\n' "$SL" "${SP%/}"
}

kg_debian_archive() {	# kg_debian_archive SOURCELIST PARTSDIR
	local list=$1 parts=$2 f files=()
	[ -f "$list" ] && files+=("$list")
	if [ -d "$parts" ]; then
		for f in "$parts"/*; do
			case "$f" in
			*.list|*.sources) [ -f "$f" ] && files+=("$f") ;;
			esac
		done
	fi
	[ ${#files[@]} -gt 0 ] || return 1
	awk '
	function debian_suite(s,    base) {
		if (s ~ /-security$/ || s ~ /\/updates$/)
			return 0
		base = s
		sub(/-(updates|backports|backports-sloppy|proposed-updates)$/, "", base)
		return base ~ /^(buzz|rex|bo|hamm|slink|potato|woody|sarge|etch|lenny|squeeze|wheezy|jessie|stretch|buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)$/
	}
	function has_main(comps,    n, i, c) {
		n = split(comps, c, /[ \t]+/)
		for (i = 1; i <= n; i++)
			if (c[i] == "main")
				return 1
		return 0
	}
	# one candidate entry: print it and stop at the first that qualifies
	function consider(types, uri, suites, comps, signed,    n, i, s, ok) {
		if ((" " types " ") !~ / deb /)
			return
		if (uri == "" || uri ~ /^cdrom:/ || uri ~ /-security\/?$/)
			return
		if (!has_main(comps))
			return
		n = split(suites, s, /[ \t]+/)
		ok = 0
		for (i = 1; i <= n; i++)
			if (s[i] != "" && debian_suite(s[i]))
				ok = 1
		if (!ok)
			return
		sub(/\/+$/, "", uri)
		printf "%s\t%s\n", uri, signed
		found = 1
		exit 0
	}
	function trim(x) { sub(/^[ \t]+/, "", x); sub(/[ \t]+$/, "", x); return x }
	function flush(    uri) {
		if (fmt == "deb822" && nfields > 0 && tolower(f["enabled"]) != "no") {
			split(trim(f["uris"]), u, /[ \t]+/)
			consider(trim(f["types"]), u[1], trim(f["suites"]), trim(f["components"]),
				 f["signed-by"] ~ /\n/ ? "" : trim(f["signed-by"]))
		}
		delete f
		nfields = 0
		last = ""
	}
	FNR == 1 {
		flush()
		fmt = FILENAME ~ /\.sources$/ ? "deb822" : "oneline"
	}
	fmt == "oneline" {
		line = $0
		sub(/#.*/, "", line)
		n = split(line, w, /[ \t]+/)
		j = 1
		while (j <= n && w[j] == "") j++
		if (j > n || w[j] != "deb")
			next
		j++
		signed = ""
		if (w[j] ~ /^\[/) {
			# options: [key=value ...], possibly spread over words
			opts = ""
			while (j <= n) {
				opts = opts " " w[j]
				if (w[j] ~ /\]$/) { j++; break }
				j++
			}
			gsub(/[\[\]]/, "", opts)
			m = split(opts, o, /[ \t]+/)
			for (k = 1; k <= m; k++)
				if (tolower(o[k]) ~ /^signed-by=/)
					signed = substr(o[k], 11)
		}
		uri = w[j]; suite = w[j + 1]; comps = ""
		for (k = j + 2; k <= n; k++)
			comps = comps " " w[k]
		consider("deb", uri, suite, comps, signed)
		next
	}
	# deb822: stanzas separated by blank lines; "#" lines are comments;
	# lines starting with white space continue the previous field
	/^[ \t]*$/ { flush(); next }
	/^#/ { next }
	/^[ \t]/ {
		if (last != "")
			f[last] = f[last] "\n" trim($0)
		next
	}
	{
		i = index($0, ":")
		if (!i)
			next
		last = tolower(trim(substr($0, 1, i - 1)))
		f[last] = trim(substr($0, i + 1))
		nfields++
	}
	END {
		if (!found)
			flush()
		exit found ? 0 : 1
	}' "${files[@]}"
}

kg_backports_line() {	# kg_backports_line SOURCELIST PARTSDIR [SUITE]
	local suite=${3:-bookworm-backports} found uri signed
	found=$(kg_debian_archive "$1" "$2") || return 1
	uri=${found%%$'\t'*}
	signed=${found#*$'\t'}
	if [ -n "$signed" ]; then
		printf 'deb [signed-by=%s] %s %s main\n' "$signed" "$uri" "$suite"
	else
		printf 'deb %s %s main\n' "$uri" "$suite"
	fi
}
