#!/usr/bin/env bash
# test_debian_mirror.sh - vmtests/debian-mirror.sh finds the Debian archive
# of the machine's apt sources (one-line and deb822), never a security,
# source-only, disabled or third-party entry, and vmtests/run.sh --kernel
# 6.12 refuses clearly when there is none.  Sample files live in a mktemp
# directory; nothing is downloaded.  Run by tests/run.sh; prints
# "PASS|FAIL name" lines and "N passed, N failed, N skipped".
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=vmtests/debian-mirror.sh
. "$repo/vmtests/debian-mirror.sh"

pass=0 fail=0 skip=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kgate-mirror.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1: $2"; fail=$((fail + 1)); }

# case NAME: a fresh sources.list + sources.list.d under $tmp/NAME
fresh() {
	d=$tmp/$1
	mkdir -p "$d/sources.list.d"
	SL=$d/sources.list SP=$d/sources.list.d
}

# expect NAME WANTED: kg_debian_archive prints exactly WANTED (URI<TAB>KEY)
expect() {
	local got rc
	got=$(kg_debian_archive "$SL" "$SP" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && [ "$got" = "$2" ]; then ok "$1"
	else ko "$1" "got '$got' (rc $rc), want '$2'"; fi
}

expect_none() {
	local got rc
	got=$(kg_debian_archive "$SL" "$SP" 2>&1); rc=$?
	if [ "$rc" -ne 0 ] && [ -z "$got" ]; then ok "$1"
	else ko "$1" "got '$got' (rc $rc), want nothing and a failure"; fi
}

T=$'\t'

fresh oneline_skips_security_and_src
cat >"$SL" <<'EOF'
# the installer's file
deb http://mirror.example/debian-security bookworm-security main contrib
deb-src http://src.example/debian bookworm main
deb http://security.example/debian bookworm/updates main
  deb   http://mirror.example/debian/   bookworm main non-free-firmware  # trailing
EOF
expect oneline_skips_security_and_src "http://mirror.example/debian$T"

fresh oneline_options_signed_by
cat >"$SL" <<'EOF'
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] https://m.example/debian bookworm-updates main
EOF
expect oneline_options_signed_by "https://m.example/debian$T/usr/share/keyrings/k.gpg"

fresh oneline_spaced_options
cat >"$SL" <<'EOF'
deb [ signed-by=/k.gpg arch=amd64 ] http://m.example/debian stable main
EOF
expect oneline_spaced_options "http://m.example/debian$T/k.gpg"

fresh deb822_security_first
cat >"$SP/debian.sources" <<'EOF'
Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
# a comment inside the stanza
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
expect deb822_security_first "http://mirror.example/debian$T/usr/share/keyrings/debian-archive-keyring.gpg"

fresh deb822_disabled_src_only_and_third_party
cat >"$SP/a-vendor.sources" <<'EOF'
Types: deb
URIs: https://vendor.example/node_20.x
Suites: nodistro
Components: main

Types: deb
URIs: https://vendor.example/apt
Suites: cloud-sdk-bookworm
Components: main
EOF
cat >"$SP/b-debian.sources" <<'EOF'
Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://mirror.example/debian http://second.example/debian
Suites: trixie
Components: main
EOF
expect deb822_disabled_src_only_and_third_party "http://mirror.example/debian$T"

fresh deb822_embedded_key_dropped
cat >"$SP/debian.sources" <<'EOF'
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NlOkJ+9Q==
 -----END PGP PUBLIC KEY BLOCK-----
EOF
expect deb822_embedded_key_dropped "http://mirror.example/debian$T"

fresh deb822_last_stanza_without_blank_line
printf 'Types: deb\nURIs: http://m.example/debian\nSuites: bookworm\nComponents: main' >"$SP/x.sources"
expect deb822_last_stanza_without_blank_line "http://m.example/debian$T"

fresh sources_list_comes_before_parts
echo "deb http://first.example/debian bookworm main" >"$SL"
printf 'Types: deb\nURIs: http://second.example/debian\nSuites: bookworm\nComponents: main\n' >"$SP/debian.sources"
expect sources_list_comes_before_parts "http://first.example/debian$T"

fresh disabled_file_names_and_no_main_ignored
echo "deb http://ignored.example/debian bookworm main" >"$SP/debian.list.disabled-by-admin"
echo "deb http://nomain.example/debian bookworm contrib" >"$SP/contrib.list"
echo "deb http://m.example/debian bookworm main" >"$SP/z.list"
expect disabled_file_names_and_no_main_ignored "http://m.example/debian$T"

fresh only_security_and_vendors_is_none
echo "deb http://security.example/debian-security bookworm-security main" >"$SL"
echo "deb https://vendor.example/apt cloud-sdk-bookworm main" >"$SP/vendor.list"
expect_none only_security_and_vendors_is_none

fresh no_files_is_none
rm -rf "$SP"
expect_none no_files_is_none

# kg_backports_line: the entry run.sh writes to its private sources list
fresh backports_line
echo "deb [signed-by=/k.gpg] http://m.example/debian bookworm main" >"$SL"
got=$(kg_backports_line "$SL" "$SP")
if [ "$got" = "deb [signed-by=/k.gpg] http://m.example/debian bookworm-backports main" ]; then
	ok backports_line
else
	ko backports_line "got '$got'"
fi

# kg_apt_source_paths honours apt's configuration (APT_CONFIG)
fresh apt_config_paths
printf 'Dir::Etc::sourcelist "%s";\nDir::Etc::sourceparts "%s";\n' "$SL" "$SP" >"$d/apt.conf"
if ! command -v apt-config >/dev/null; then
	echo "SKIP apt_config_paths: no apt-config"; skip=$((skip + 1))
else
	got=$(APT_CONFIG=$d/apt.conf kg_apt_source_paths | tr '\n' ' ')
	if [ "$got" = "$SL $SP " ]; then ok apt_config_paths
	else ko apt_config_paths "got '$got'"; fi
fi

# run.sh --kernel 6.12 with no Debian archive entry: a clear refusal before
# any download, and nothing cached
fresh run_sh_refuses_without_archive
echo "deb https://vendor.example/apt nodistro main" >"$SL"
printf 'Dir::Etc::sourcelist "%s";\nDir::Etc::sourceparts "%s";\n' "$SL" "$SP" >"$d/apt.conf"
mkdir -p "$d/build" "$d/cache"
out=$(APT_CONFIG=$d/apt.conf KGATE_VM_CACHE=$d/cache \
	"$repo/vmtests/run.sh" "$d/build" --kernel 6.12 2>&1 </dev/null); rc=$?
if [ "$rc" -ne 0 ] && grep -q 'no Debian archive entry' <<<"$out" &&
   [ ! -e "$d/cache/kernel-6.12" ] && [ ! -e "$d/cache/apt-backports/sources.list" ]; then
	ok run_sh_refuses_without_archive
else
	ko run_sh_refuses_without_archive "rc $rc, output: $(tr '\n' '|' <<<"$out")"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
