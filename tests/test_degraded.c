// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_degraded.c - an agent's day under the shipped coding-agent policy,
 * in degraded mode (this host: no BPF LSM), with a HOME of its own.
 *
 * HOME is a mkdtemp directory outside /tmp (/var/tmp when it exists) with
 * what the policy protects: an SSH key (~/.ssh, read denied), a reference
 * repository (~/src, write/create denied) and the workspace.  The day is a
 * shell script of ordinary steps (git config --global, ~/.cache, temp files,
 * git clone and commit, a venv and pip, cc, make, grep -r, tar, an HTTP
 * server and client on loopback); each must work.  The refusals the policy
 * asks for must still happen: the key unreadable, the reference repository
 * unwritable, an outside address refused (checked by the decision in the
 * trail, never by a connect failing: this host may reach the outside).
 *
 * Then the ways around the hiding: rename, link, symlink, /proc/self/fd,
 * /proc/PID/root, umount and unshare, a working directory inside the
 * protected paths, renaming HOME itself; as root and as an unprivileged
 * user.  After each job the protected files are checked from outside.
 */
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>

#include "testlib.h"
#include "kgrun.h"

#define KEY_MARK "SSH-KEY-MARKER-7f3a"
#define REPO_MARK "REFERENCE-README"

static char home[512], policy[512];

static inline void unused(void) { (void)helper; }

static int sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void chown_tree(const char *dir, uid_t uid, gid_t gid)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "chown -R %u:%u '%s'", uid, gid, dir);
	if (sh(cmd))
		SKIP("cannot chown the test HOME");
}

/* HOME with a key, a reference repo (a git repository) and a workspace;
 * the shipped policy, with ~ expanded against it (--home: the user the job
 * runs as has another home in the password database). */
static void make_home(void)
{
	const char *src = getenv("KGATE_SRC");
	const char *base = access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
	char cmd[2048];

	setup();
	snprintf(home, sizeof(home), "%s/kgate-day.XXXXXX", base);
	if (!mkdtemp(home))
		SKIP("mkdtemp in %s", base);
	if (access("/usr/bin/git", X_OK) || access("/usr/bin/cc", X_OK) ||
	    access("/usr/bin/make", X_OK) || access("/usr/bin/python3", X_OK) ||
	    access("/usr/bin/curl", X_OK))
		SKIP("needs git, cc, make, python3 and curl in /usr/bin");
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd '%s'; chmod 755 .; mkdir -p .ssh src workspace; chmod 700 .ssh;"
		 "echo '%s' > .ssh/id_ed25519; chmod 600 .ssh/id_ed25519;"
		 "git init -q src/ref; echo '%s' > src/ref/README;"
		 "git -C src/ref -c user.name=t -c user.email=t@t add README;"
		 "git -C src/ref -c user.name=t -c user.email=t@t commit -qm init",
		 home, KEY_MARK, REPO_MARK);
	if (sh(cmd))
		SKIP("cannot build the test HOME");
	setenv("HOME", home, 1);
	snprintf(policy, sizeof(policy), "%s/policies/coding-agent.json", src ? src : ".");
	if (access(policy, R_OK))
		SKIP("no %s (run through tests/run.sh)", policy);
}

static void remove_home(void)
{
	char cmd[1200];

	/* .moved: where a rename-HOME attack that was not refused left it */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.moved'", home, home);
	sh(cmd);
	teardown();
}

/* The protected files, seen from outside the job, are as they were. */
static void check_untouched(void)
{
	char path[768], *s;

	snprintf(path, sizeof(path), "%s/.ssh/id_ed25519", home);
	s = kg_read_file(path, 4096, NULL);
	ASSERT_HAS_SUBSTR(s, KEY_MARK, "the key is where it was, unchanged");
	free(s);
	snprintf(path, sizeof(path), "%s/src/ref/README", home);
	s = kg_read_file(path, 4096, NULL);
	ASSERT_TRUE(s && !strcmp(s, REPO_MARK "\n"), "the reference README is unchanged");
	free(s);
	snprintf(path, sizeof(path), "%s/src/ref/new", home);
	ASSERT_TRUE(access(path, F_OK) < 0, "nothing was created in the reference repo");
}

static int run_day(const char *as, const char *cwd, const char *script, char **out)
{
	char *argv[] = { (char *)kgate_bin(), "run", "--topic", "job.agent.dev", "--policy", policy,
			 "--as", (char *)as, "--home", home, "--", "/bin/sh", "-c", (char *)script,
			 NULL };
	char old[1024];
	int rc;

	if (!getcwd(old, sizeof(old)) || (cwd && chdir(cwd)))
		return -1;
	setenv("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", 1);
	rc = run_capture(argv, out);
	if (chdir(old))
		return -1;
	return rc;
}

/* ok NAME CMD...: the step must work; no NAME CMD...: must be refused */
#define DAY_PRELUDE \
	"ok() { n=$1; shift; if \"$@\" >/tmp/kgday.$$ 2>&1; then echo \"step $n: ok\"; else " \
	"echo \"step $n: FAILED\"; sed 's/^/    /' /tmp/kgday.$$; fi; }\n" \
	"no() { n=$1; shift; if \"$@\" >/tmp/kgday.$$ 2>&1; then echo \"refusal $n: NOT REFUSED\";" \
	" sed 's/^/    /' /tmp/kgday.$$; else echo \"refusal $n: refused\"; fi; }\n" \
	"cd \"$HOME/workspace\" || exit 9\n"

static const char day_script[] = DAY_PRELUDE
	"ok git-config-global git config --global user.name agent\n"
	"ok git-config-email git config --global user.email agent@example.invalid\n"
	"ok mkdir-cache mkdir -p \"$HOME/.cache/agent\"\n"
	"ok new-file-in-home sh -c 'echo ls >> \"$HOME/.sh_history\"'\n"
	"ok tmp-file sh -c 'f=$(mktemp) && echo x > \"$f\" && rm \"$f\"'\n"
	"ok tmp-dir-in-home sh -c 'd=$(mktemp -d \"$HOME/.tmp.XXXXXX\") && rmdir \"$d\"'\n"
	"ok git-clone git clone -q \"$HOME/src/ref\" ref\n"
	"ok git-commit sh -c 'cd ref && echo change >> README && git add README && git commit -qm change'\n"
	"ok cc sh -c 'printf \"int main(void){return 0;}\\n\" > hello.c && cc -o hello hello.c && ./hello'\n"
	"ok make sh -c 'printf \"hello2: hello.c\\n\\tcc -o hello2 hello.c\\n\" > Makefile && make -s && ./hello2'\n"
	"ok grep-r grep -rq change \"$HOME/workspace\"\n"
	"ok tar sh -c 'tar cf ws.tar ref && mkdir -p untar && tar xf ws.tar -C untar && test -f untar/ref/README'\n"
	"ok venv /usr/bin/python3 -m venv venv\n"
	"ok pip sh -c 'mkdir -p pkg/kgday && : > pkg/kgday/__init__.py && "
	"printf \"from setuptools import setup\\nsetup(name=\\\"kgday\\\", version=\\\"1.0\\\", packages=[\\\"kgday\\\"])\\n\" > pkg/setup.py && "
	"venv/bin/pip install -q --no-index --no-build-isolation ./pkg && venv/bin/python -c \"import kgday\"'\n"
	"ok http sh -c 'rm -f port; /usr/bin/python3 -c \"import http.server as h; s=h.HTTPServer((\\\"127.0.0.1\\\",0),h.SimpleHTTPRequestHandler); "
	"open(\\\"port.tmp\\\",\\\"w\\\").write(str(s.server_address[1])); __import__(\\\"os\\\").rename(\\\"port.tmp\\\",\\\"port\\\"); s.handle_request()\" & "
	"i=0; while [ ! -s port ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
	"curl -sf -o got.c \"http://127.0.0.1:$(cat port)/hello.c\"; r=$?; wait; [ $r = 0 ] && cmp -s got.c hello.c'\n"
	"no read-ssh-key cat \"$HOME/.ssh/id_ed25519\"\n"
	"no write-ssh-dir sh -c 'echo k > \"$HOME/.ssh/authorized_keys\"'\n"
	"no write-reference sh -c 'echo x >> \"$HOME/src/ref/README\"'\n"
	"no create-in-reference touch \"$HOME/src/ref/new\"\n"
	"no commit-in-reference sh -c 'cd \"$HOME/src/ref\" && echo y >> README && git commit -qam y'\n"
	"no outside-network curl -s --connect-timeout 3 -o /dev/null http://198.51.100.7:80/\n"
	"echo day-done\n";

static void check_day(const char *out)
{
	static const char *const steps[] = { "git-config-global", "git-config-email", "mkdir-cache",
		"new-file-in-home", "tmp-file", "tmp-dir-in-home", "git-clone", "git-commit", "cc",
		"make", "grep-r", "tar", "venv", "pip", "http" };
	static const char *const refusals[] = { "read-ssh-key", "write-ssh-dir", "write-reference",
		"create-in-reference", "commit-in-reference", "outside-network" };
	char want[128];
	size_t i;

	ASSERT_TRUE(out && strstr(out, "day-done"), "the script ran to its end");
	for (i = 0; i < ARRAY_SIZE(steps); i++) {
		snprintf(want, sizeof(want), "step %s: ok", steps[i]);
		ASSERT_TRUE(out && strstr(out, want), want);
	}
	for (i = 0; i < ARRAY_SIZE(refusals); i++) {
		snprintf(want, sizeof(want), "refusal %s: refused", refusals[i]);
		ASSERT_TRUE(out && strstr(out, want), want);
	}
	ASSERT_TRUE(out && !strstr(out, KEY_MARK), "the key never appears in the job's output");
}

/* The outside connect was refused by the policy (cgroup-BPF, recorded),
 * not by a network that happens to be unreachable. */
static void check_network_refusal_recorded(void)
{
	char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", "--decision=deny", NULL };
	char *out;

	run_capture(argv, &out);
	ASSERT_HAS_SUBSTR(out, "198.51.100.7:80/tcp", "the refused connect is in the trail");
	ASSERT_HAS_SUBSTR(out, "cgroup-bpf", "decided by cgroup-BPF");
}

TEST(agents_day_as_root_under_the_coding_agent_policy)
{
	char *out;

	make_home();
	ASSERT_EQ(run_day("root", NULL, day_script, &out), 0, "the job ran");
	check_day(out);
	check_network_refusal_recorded();
	check_untouched();
	remove_home();
}

TEST(agents_day_as_an_unprivileged_user)
{
	struct passwd *pw = getpwnam("nobody");
	char *out;

	make_home();
	if (!pw)
		SKIP("no user nobody");
	chown_tree(home, pw->pw_uid, pw->pw_gid);
	ASSERT_EQ(run_day("nobody", NULL, day_script, &out), 0, "the job ran");
	check_day(out);
	check_network_refusal_recorded();
	check_untouched();
	remove_home();
}

/* Every way around a name hidden or made read-only by a mount. */
static const char attack_script[] = DAY_PRELUDE
	"K=\"$HOME/.ssh/id_ed25519\"; R=\"$HOME/src/ref/README\"\n"
	"no cat-key cat \"$K\"\n"
	"no list-ssh sh -c 'ls -A \"$HOME/.ssh\" | grep -q id_'\n"
	"no rename-ssh-dir mv \"$HOME/.ssh\" \"$HOME/ssh2\"\n"
	"no remove-ssh-dir rm -rf \"$HOME/.ssh\"\n"
	"no rename-key mv \"$K\" \"$HOME/key\"\n"
	"no hardlink-key ln \"$K\" \"$HOME/key-link\"\n"
	"no symlink-key sh -c 'ln -sf \"$K\" \"$HOME/key-sym\" && cat \"$HOME/key-sym\"'\n"
	"no fd-of-home sh -c 'exec 3<\"$HOME\"; cat /proc/self/fd/3/.ssh/id_ed25519'\n"
	"no proc-self-root cat \"/proc/self/root$K\"\n"
	"no proc-1-root cat \"/proc/1/root$K\"\n"
	"no umount-ssh umount \"$HOME/.ssh\"\n"
	"no lazy-umount-ssh umount -l \"$HOME/.ssh\"\n"
	"no unshare-mount unshare -m cat \"$K\"\n"
	"no nsenter-init nsenter -t 1 -m cat \"$K\"\n"
	"no rename-home mv \"$HOME\" \"$HOME.moved\"\n"
	"no rename-src mv \"$HOME/src\" \"$HOME/src2\"\n"
	"no write-readme sh -c 'echo x >> \"$R\"'\n"
	"no truncate-readme truncate -s 0 \"$R\"\n"
	"no replace-readme sh -c 'echo x > \"$HOME/workspace/r\" && mv -f \"$HOME/workspace/r\" \"$R\"'\n"
	"no unlink-readme rm -f \"$R\"\n"
	"no hardlink-readme-in sh -c 'ln \"$R\" \"$HOME/workspace/R\" && echo x >> \"$HOME/workspace/R\"'\n"
	"no chmod-readme chmod 777 \"$R\"\n"
	"no remount-rw mount -o remount,rw \"$HOME/src\"\n"
	"ok home-still-writable sh -c 'echo ok > \"$HOME/.new\" && mkdir -p \"$HOME/.config/tool\"'\n"
	"echo day-done\n";

static void check_attacks(const char *out)
{
	static const char *const refusals[] = { "cat-key", "list-ssh", "rename-ssh-dir",
		"remove-ssh-dir", "rename-key", "hardlink-key", "symlink-key", "fd-of-home",
		"proc-self-root", "proc-1-root", "umount-ssh", "lazy-umount-ssh", "unshare-mount",
		"nsenter-init", "rename-home", "rename-src", "write-readme", "truncate-readme",
		"replace-readme", "unlink-readme", "hardlink-readme-in", "chmod-readme",
		"remount-rw" };
	char want[128];
	size_t i;

	ASSERT_TRUE(out && strstr(out, "day-done"), "the script ran to its end");
	for (i = 0; i < ARRAY_SIZE(refusals); i++) {
		snprintf(want, sizeof(want), "refusal %s: refused", refusals[i]);
		ASSERT_TRUE(out && strstr(out, want), want);
	}
	ASSERT_TRUE(out && strstr(out, "step home-still-writable: ok"), "HOME itself stays usable");
	ASSERT_TRUE(out && !strstr(out, KEY_MARK), "the key never appears in the job's output");
}

TEST(attacks_around_hidden_and_read_only_paths_as_root)
{
	char *out;

	make_home();
	ASSERT_EQ(run_day("root", NULL, attack_script, &out), 0, "the job ran");
	check_attacks(out);
	check_untouched();
	remove_home();
}

TEST(attacks_around_hidden_and_read_only_paths_as_an_unprivileged_user)
{
	struct passwd *pw = getpwnam("nobody");
	char *out;

	make_home();
	if (!pw)
		SKIP("no user nobody");
	chown_tree(home, pw->pw_uid, pw->pw_gid);
	ASSERT_EQ(run_day("nobody", NULL, attack_script, &out), 0, "the job ran");
	check_attacks(out);
	check_untouched();
	remove_home();
}

/* A job started with its working directory inside a protected path must
 * not keep the directory from before the mounts. */
TEST(a_working_directory_inside_protected_paths_gains_nothing)
{
	char dir[768], *out;

	make_home();
	snprintf(dir, sizeof(dir), "%s/.ssh", home);
	run_day("root", dir, "cat id_ed25519; ls -A; echo cwd-done", &out);
	ASSERT_HAS_SUBSTR(out, "cwd-done", "the job ran");
	ASSERT_TRUE(out && !strstr(out, KEY_MARK), "the key is not readable from its directory");
	snprintf(dir, sizeof(dir), "%s/src/ref", home);
	run_day("root", dir, "echo x >> README; touch new; echo cwd-done", &out);
	ASSERT_HAS_SUBSTR(out, "cwd-done", "the job ran");
	check_untouched();
	remove_home();
}

/* The VM suite's day (vmtests/data/agent-day.sh, run in full mode by
 * vt_userland_governed) on this host in degraded mode: the two modes run
 * the same script and differ only where the kernel leaves no choice. */
static int step_rc(const char *out, const char *name)
{
	char want[64];
	const char *p;

	snprintf(want, sizeof(want), "STEP %s rc=", name);
	p = out ? strstr(out, want) : NULL;
	return p ? atoi(p + strlen(want)) : -1;
}

TEST(the_vm_suites_agent_day_script_in_degraded_mode)
{
	static const char *const ordinary[] = { "tmpfile", "cc_make", "git_config", "git_commit",
		"git_clone", "python", "venv", "cache_dir", "tar", "grep_r", "http" };
	char script[1024], dir[768], path[768], *out, *s;
	const char *src = getenv("KGATE_SRC");
	size_t i;

	make_home();
	snprintf(path, sizeof(path), "%s/vmtests/data/agent-day.sh", src ? src : ".");
	if (access(path, R_OK))
		SKIP("no %s", path);
	snprintf(dir, sizeof(dir), "%s/src/README", home);	/* what src_write tries */
	{
		int fd = open(dir, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || write(fd, "the reference repository\n", 25) != 25)
			SKIP("cannot write ~/src/README");
		close(fd);
	}
	snprintf(script, sizeof(script), "sh '%s'", path);
	snprintf(dir, sizeof(dir), "%s/workspace", home);
	ASSERT_EQ(run_day("root", dir, script, &out), 0, "the day ran");
	ASSERT_TRUE(out && strstr(out, "degraded mode"), "in degraded mode");
	for (i = 0; i < ARRAY_SIZE(ordinary); i++)
		ASSERT_EQ(step_rc(out, ordinary[i]), 0, ordinary[i]);
	ASSERT_TRUE(step_rc(out, "ssh_key_read") > 0, "reading ~/.ssh is refused");
	ASSERT_TRUE(step_rc(out, "src_write") > 0, "writing into ~/src is refused");
	ASSERT_TRUE(out && !strstr(out, KEY_MARK), "the key did not leak");
	snprintf(path, sizeof(path), "%s/src/README", home);
	s = kg_read_file(path, 4096, NULL);
	ASSERT_TRUE(s && !strcmp(s, "the reference repository\n"), "~/src/README is unchanged");
	free(s);
	remove_home();
}
