// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_outside.c - a root job must not get anything outside its job to act
 * for it (issue 16), on this host (degraded mode).
 *
 * A root job under the shipped coding-agent policy tries what reaches
 * outside: open kernel.core_pattern (and the other usermode-helper
 * settings that exist here) for writing, mknod a block and a char device,
 * mount, init_module, sethostname, read a block device that this test can
 * read from outside; each is refused, its bounding set is what kgate keeps
 * (kernel/caps.h).  The writes open the file and write
 * nothing, so a failure of the test changes nothing on the machine.
 * With `system_access: ["mknod", "sys_admin"]` the same job creates the char
 * device and sets the hostname (so the refusals above are the capability
 * drop's, not an accident), and core_pattern stays read-only (no grant
 * lifts it).  And a normal root workload still works: a small C project is
 * built with make and its tests run, under the coding-agent policy.
 *
 * Daemons' sockets and files run outside the job (kernel/outside.h), in a
 * mount namespace of this test's own with fake daemons and overlays over
 * /etc, /usr, /root, /var/spool (nothing of the machine's is touched): no
 * connect reaches a daemon, no file changes (also /usr/local, /opt and a
 * user's startup files in /home, a tmpfs here), the workspace and the rest of
 * a home stay writable; system_access grants members back.  Processes outside the
 * job: /proc/PID/mem, process_vm_writev, pidfd_getfd, pidfd_send_signal,
 * ptrace, /proc/PID/root and cwd are refused (the same attacks outside any
 * job get through).  kgate doctor lists the members and how.
 */
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "testlib.h"
#include "kgrun.h"
#include "kernel/caps.h"
#include "kernel/outside.h"
#include "policy/policy.h"

static char home[512], policy[512];

static int sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void make_home(void)
{
	const char *src = getenv("KGATE_SRC");
	const char *base = access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
	char cmd[1024];

	setup();
	snprintf(home, sizeof(home), "%s/kgate-outside.XXXXXX", base);
	if (!mkdtemp(home))
		SKIP("mkdtemp in %s", base);
	snprintf(cmd, sizeof(cmd), "set -e; cd '%s'; chmod 755 .; mkdir -p .ssh workspace", home);
	if (sh(cmd))
		SKIP("cannot build the test HOME");
	setenv("HOME", home, 1);
	setenv("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", 1);
	snprintf(policy, sizeof(policy), "%s/policies/coding-agent.json", src ? src : ".");
	if (access(policy, R_OK))
		SKIP("no %s (run through tests/run.sh)", policy);
}

static void remove_home(void)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
	sh(cmd);
	teardown();
}

/* The coding-agent policy with system_access set to `grants` (JSON). */
static void granted_policy(const char *grants, char *out, size_t len)
{
	json_t *p = json_load_file(policy, 0, NULL), *g = json_loads(grants, 0, NULL);

	if (!p || !g)
		SKIP("cannot read %s", policy);
	json_object_set_new(p, "system_access", g);
	snprintf(out, len, "%s/granted.json", tmpdir);
	if (json_dump_file(p, out, JSON_INDENT(2)))
		SKIP("cannot write %s", out);
	json_decref(p);
}

static int run_root(const char *pol, const char *script, char **out)
{
	char *argv[] = { (char *)kgate_bin(), "run", "--topic", "job.agent.dev", "--policy",
			 (char *)pol, "--as", "root", "--home", home, "--", "/bin/sh", "-c", (char *)script, NULL };
	char old[1024], ws[600];
	int rc;

	if (!getcwd(old, sizeof(old)))
		return -1;
	snprintf(ws, sizeof(ws), "%s/workspace", home);
	if (chdir(ws))
		return -1;
	rc = run_capture(argv, out);
	if (chdir(old))
		return -1;
	return rc;
}

/* "what ret=R errno=E" of kg_attack in out: E, or -1 when missing */
static int attack_errno(const char *out, const char *what)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "%s ret=", what);
	p = out ? strstr(out, key) : NULL;
	if (!p || !(p = strstr(p, "errno=")))
		return -1;
	return atoi(p + 6);
}

static uint64_t capbnd(const char *out)
{
	const char *p = out ? strstr(out, "CapBnd:") : NULL;

	return p ? strtoull(p + 7, NULL, 16) : ~0ULL;
}

/* the settings whose program the kernel runs as root; those this kernel has
 * (the last: a cgroup v1 hierarchy's release_agent, found at run time) */
static const char *helpers_settings[] = {
	"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
	"/proc/sys/kernel/hotplug", "/sys/kernel/uevent_helper",
	"/proc/sys/fs/binfmt_misc/register", "/proc/sysrq-trigger", "",
};

static void find_release_agent(void)
{
	static char path[256];
	glob_t g;

	if (glob("/sys/fs/cgroup/*/release_agent", 0, NULL, &g) == 0 && g.gl_pathc) {
		snprintf(path, sizeof(path), "%s", g.gl_pathv[0]);
		helpers_settings[ARRAY_SIZE(helpers_settings) - 1] = path;
	}
	globfree(&g);
}

/* A block device node this process (outside any job) can open for reading:
 * "" when there is none (the test then says so). */
static const char *readable_block_device(void)
{
	static char path[300];
	struct dirent *de;
	DIR *d = opendir("/dev");

	path[0] = '\0';
	while (d && (de = readdir(d))) {
		struct stat st;
		int fd;

		snprintf(path, sizeof(path), "/dev/%s", de->d_name);
		if (stat(path, &st) || !S_ISBLK(st.st_mode))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			break;
		}
	}
	if (!de)
		path[0] = '\0';
	if (d)
		closedir(d);
	return path;
}

TEST(the_kernels_list_of_kept_capabilities_is_kgates)
{
	ASSERT_EQ(kg_caps_kept(), KG_CAPS_KEPT, "caps.c and lsm/capable keep the same");
}

TEST(a_root_job_cannot_reach_outside_its_job)
{
	char script[4096], *out;
	size_t off = 0, i;
	int tried = 0;
	const char *a = helper("kg_attack"), *blk = readable_block_device();
	bool vsock;

	make_home();
	find_release_agent();
	{	/* a family outside the degraded baseline that this kernel has */
		int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

		vsock = fd >= 0;
		if (fd >= 0)
			close(fd);
	}
	if (vsock)
		off += (size_t)snprintf(script + off, sizeof(script) - off, "%s socket %d %d 0; ",
					a, AF_VSOCK, SOCK_STREAM);
	if (*blk)
		off += (size_t)snprintf(script + off, sizeof(script) - off, "%s read %s; ", a, blk);
	else
		printf("  no block device this test can read from outside: not tried\n");
	off += (size_t)snprintf(script + off, sizeof(script) - off,
				"%s capbnd; %s mknod_blk \"$HOME/workspace/sda\"; "
				"%s mknod_chr \"$HOME/workspace/null\"; %s mount; %s init_module; "
				"%s sethostname; ", a, a, a, a, a, a);
	for (i = 0; i < ARRAY_SIZE(helpers_settings); i++)
		if (*helpers_settings[i] && access(helpers_settings[i], F_OK) == 0)
			off += (size_t)snprintf(script + off, sizeof(script) - off,
						"%s openw %s; ", a, helpers_settings[i]);
	snprintf(script + off, sizeof(script) - off, "echo done");
	ASSERT_EQ(run_root(policy, script, &out), 0, "the job ran");
	ASSERT_HAS_SUBSTR(out, "degraded mode", "degraded mode (this host)");
	ASSERT_EQ(capbnd(out), kg_caps_kept(), "the bounding set is what every job keeps");
	ASSERT_EQ(attack_errno(out, "mknod_blk"), EPERM, "mknod of a block device refused");
	ASSERT_EQ(attack_errno(out, "mknod_chr"), EPERM, "mknod of a char device refused");
	ASSERT_EQ(attack_errno(out, "mount"), EPERM, "mount refused");
	ASSERT_EQ(attack_errno(out, "init_module"), EPERM, "init_module refused");
	ASSERT_EQ(attack_errno(out, "sethostname"), EPERM, "sethostname refused");
	if (*blk)
		ASSERT_EQ(attack_errno(out, "read"), EPERM, "reading a block device refused (cgroup-bpf)");
	if (vsock)	/* the policy's socket rule lists unix, inet, inet6, netlink */
		ASSERT_EQ(attack_errno(out, "socket"), EPERM, "AF_VSOCK refused by the policy");
	for (i = 0; i < ARRAY_SIZE(helpers_settings); i++) {
		if (!*helpers_settings[i] || access(helpers_settings[i], F_OK))
			continue;
		tried++;
		printf("  %s: must be read-only in the job\n", helpers_settings[i]);
	}
	/* the lines are in the order tried: each openw answered EROFS */
	{
		const char *p = out;
		int n = 0;

		while ((p = strstr(p, "openw ret="))) {
			ASSERT_HAS_SUBSTR(p, "openw ret=-1 errno=30", "a setting is read-only");
			if (!strncmp(p, "openw ret=-1 errno=30", 21))
				n++;
			p += 10;
		}
		ASSERT_EQ(n, tried, "every usermode-helper setting here was refused (EROFS)");
		ASSERT_GE(tried, 1, "core_pattern at least exists here");
	}
	{
		char path[768];
		struct stat st;

		snprintf(path, sizeof(path), "%s/workspace/sda", home);
		ASSERT_TRUE(lstat(path, &st) < 0, "no device node was created");
	}
	remove_home();
}

TEST(system_access_grants_a_capability_back_and_not_the_settings)
{
	char script[4096], pol[512], *out;
	const char *a = helper("kg_attack");
	uint64_t want = kg_caps_kept() | 1ULL << 27 | 1ULL << 21;	/* mknod, sys_admin */

	make_home();
	granted_policy("[\"mknod\", \"CAP_SYS_ADMIN\"]", pol, sizeof(pol));
	snprintf(script, sizeof(script), "%s capbnd; %s mknod_chr \"$HOME/workspace/null\"; "
		 "%s sethostname; %s openw /proc/sys/kernel/core_pattern; echo done", a, a, a, a);
	ASSERT_EQ(run_root(pol, script, &out), 0, "the job ran");
	ASSERT_EQ(capbnd(out), want, "the bounding set has mknod and sys_admin back");
	ASSERT_EQ(attack_errno(out, "mknod_chr"), 0, "mknod of a char device works when granted");
	ASSERT_EQ(attack_errno(out, "sethostname"), 0, "sethostname works with sys_admin");
	ASSERT_EQ(attack_errno(out, "openw"), EROFS, "core_pattern stays read-only");
	{	/* job_start records the grant */
		char *argv[] = { (char *)kgate_bin(), "audit", "query", "--type", "job_start", "--json",
				 NULL };
		char *o;

		run_capture(argv, &o);
		ASSERT_HAS_SUBSTR(o, "\"granted\":[\"sys_admin\",\"mknod\"]", "job_start: granted");
	}
	remove_home();
}

/* Without a socket rule, degraded mode allows the families every program
 * uses and answers EAFNOSUPPORT for the others (a socket of a family whose
 * module is not loaded makes the kernel run modprobe: request_module asks
 * no capability).  A socket rule's families replace the list. */
TEST(degraded_socket_families_without_a_rule_are_the_common_ones)
{
	char pol[512], script[2048], *out;
	const char *a = helper("kg_attack");
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0)
		SKIP("AF_VSOCK is not available here outside a job either");
	close(fd);
	make_home();
	snprintf(script, sizeof(script), "%s socket %d %d 0; %s socket %d %d 0; echo done", a,
		 AF_VSOCK, SOCK_STREAM, a, AF_INET, SOCK_STREAM);
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		     "\"runtime_defaults\":{\"net\":\"allow\"}}", pol, sizeof(pol));
	ASSERT_EQ(run_root(pol, script, &out), 0, "the job ran");
	ASSERT_EQ(attack_errno(out, "socket"), EAFNOSUPPORT, "AF_VSOCK: EAFNOSUPPORT");
	ASSERT_HAS_SUBSTR(out, "socket ret=3 errno=0", "AF_INET works");
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		     "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[{\"id\":\"s\","
		     "\"socket\":{\"families\":[\"unix\",\"inet\",\"vsock\"]},"
		     "\"decision\":\"deny\"}]}", pol, sizeof(pol));
	ASSERT_EQ(run_root(pol, script, &out), 0, "the job ran");
	ASSERT_EQ(attack_errno(out, "socket"), 0, "AF_VSOCK works when the policy lists it");
	remove_home();
}

/* A small C project: a library, its tests, a Makefile with the usual
 * targets; built and tested as root under the coding-agent policy. */
static const char project[] =
	"set -e; mkdir -p proj/src proj/tests; cd proj\n"
	"cat > src/sum.c <<'EOF'\n#include \"sum.h\"\nlong sum(const int *v, int n)\n"
	"{ long s = 0; while (n-- > 0) s += v[n]; return s; }\nEOF\n"
	"cat > src/sum.h <<'EOF'\nlong sum(const int *v, int n);\nEOF\n"
	"cat > tests/t.c <<'EOF'\n#include <stdio.h>\n#include \"../src/sum.h\"\n"
	"int main(void) { int v[] = {1, 2, 3, 4}; if (sum(v, 4) != 10) return 1;\n"
	"puts(\"tests: 1 passed\"); return 0; }\nEOF\n"
	"printf 'CFLAGS ?= -O2 -Wall -Werror\\nall: libsum.a\\nlibsum.a: src/sum.o\\n"
	"\\t$(AR) rcs $@ $^\\ntests/t: tests/t.c libsum.a\\n\\t$(CC) $(CFLAGS) -o $@ $^\\n"
	"check: tests/t\\n\\t./tests/t\\ninstall: libsum.a\\n\\tinstall -D -m 644 -o root "
	"libsum.a $(DESTDIR)/usr/lib/libsum.a\\nclean:\\n\\trm -f src/*.o libsum.a tests/t\\n' "
	"> Makefile\n"
	"make -j2\nmake check\nmake install DESTDIR=\"$PWD/stage\"\n"
	"test -f stage/usr/lib/libsum.a\nmake clean\necho PROJECT-OK\n";

TEST(a_root_job_builds_and_tests_a_c_project)
{
	char *out;

	make_home();
	if (access("/usr/bin/cc", X_OK) || access("/usr/bin/make", X_OK))
		SKIP("needs cc and make in /usr/bin");
	ASSERT_EQ(run_root(policy, project, &out), 0, "make, make check, make install ran");
	ASSERT_HAS_SUBSTR(out, "tests: 1 passed", "the project's tests passed");
	ASSERT_HAS_SUBSTR(out, "PROJECT-OK", "the whole build went through");
	remove_home();
}

/* ---- daemons' sockets and files run outside the job (kernel/outside.h) ------------ */

/* This test's own mount namespace, so nothing of the machine's is touched:
 * /run a tmpfs with fake daemons' sockets that this test listens on; /etc,
 * /usr, /root and /var/spool overlays whose upper layers are this test's
 * (a write the job should not have made lands there, never in the real
 * directory).  The job runs in it (kgate run makes its own beneath). */
static int orig_ns = -1;
static const char *const fake_sockets[] = {
	"/run/docker.sock", "/run/dbus/system_bus_socket", "/run/systemd/private",
	"/run/containerd/containerd.sock", "/run/podman/podman.sock", "/run/snapd.socket",
};
static int listeners[ARRAY_SIZE(fake_sockets)];

static int overlay(const char *dir, const char *base, const char *name)
{
	char lo[600], up[600], wk[600], opts[2000];

	/* the lower layer by a name of its own: a lowerdir that names the
	 * directory the overlay then covers would name the overlay itself */
	snprintf(lo, sizeof(lo), "%s/%s.lo", base, name);
	snprintf(up, sizeof(up), "%s/%s.up", base, name);
	snprintf(wk, sizeof(wk), "%s/%s.wk", base, name);
	if (mkdir(lo, 0755) || mkdir(up, 0755) || mkdir(wk, 0755) ||
	    mount(dir, lo, NULL, MS_BIND, NULL))
		return -1;
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", lo, up, wk);
	return mount("overlay", dir, "overlay", 0, opts);
}

static void private_machine(void)
{
	char base[512];
	size_t i;

	orig_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (orig_ns < 0 || unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		SKIP("cannot make a private mount namespace: %s", strerror(errno));
	snprintf(base, sizeof(base), "%s/ov", tmpdir);
	if (mkdir(base, 0755) || mount("kgtest", base, "tmpfs", 0, "mode=0755"))
		SKIP("tmpfs: %s", strerror(errno));
	if (overlay("/etc", base, "etc") || overlay("/usr", base, "usr") ||
	    overlay("/root", base, "root") ||
	    (access("/var/spool", F_OK) == 0 && overlay("/var/spool", base, "spool")) ||
	    (access("/opt", F_OK) == 0 && overlay("/opt", base, "opt")))
		SKIP("overlayfs: %s", strerror(errno));
	/* a user of this machine of the test's own: /home is a tmpfs here */
	if (access("/home", F_OK) == 0 && mount("kgtest-home", "/home", "tmpfs", 0, "mode=0755"))
		SKIP("tmpfs on /home: %s", strerror(errno));
	if (mount("kgtest-run", "/run", "tmpfs", 0, "mode=0755"))
		SKIP("tmpfs on /run: %s", strerror(errno));
	if (sh("mkdir -p /run/dbus /run/systemd /run/containerd /run/podman "
	       "/var/spool/cron/crontabs && echo '# crontab' > /etc/crontab && "
	       "echo '# bashrc' > /root/.bashrc && rm -f /etc/ld.so.preload && "
	       "mkdir -p /usr/local/bin /opt /home/kgtest/.local/bin && "
	       "echo '# user bashrc' > /home/kgtest/.bashrc"))
		SKIP("cannot lay out the fake machine");
	for (i = 0; i < ARRAY_SIZE(fake_sockets); i++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		listeners[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fake_sockets[i]);
		if (listeners[i] < 0 || bind(listeners[i], (struct sockaddr *)&sa, sizeof(sa)) ||
		    listen(listeners[i], 8) || chmod(fake_sockets[i], 0666))
			SKIP("fake daemon %s: %s", fake_sockets[i], strerror(errno));
	}
}

/* how many clients reached fake daemon i (accepts what is queued) */
static int reached(size_t i)
{
	int n = 0, fd;

	while ((fd = accept(listeners[i], NULL, NULL)) >= 0) {
		close(fd);
		n++;
	}
	return n;
}

static void leave_private_machine(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fake_sockets); i++)
		if (listeners[i] >= 0)
			close(listeners[i]);
	if (orig_ns >= 0 && setns(orig_ns, CLONE_NEWNS))
		printf("  cannot return to the original mount namespace: %s\n", strerror(errno));
	if (orig_ns >= 0)
		close(orig_ns);
	orig_ns = -1;
}

/* the attacks, one line each; $HOME/workspace is the job's */
static void outside_script(char *script, size_t len)
{
	const char *a = helper("kg_attack");
	size_t off = 0, i;

	for (i = 0; i < ARRAY_SIZE(fake_sockets); i++)
		off += (size_t)snprintf(script + off, len - off, "echo %s; %s unix-connect %s; ",
					fake_sockets[i], a, fake_sockets[i]);
	snprintf(script + off, len - off,
		 "echo preload; %s create /etc/ld.so.preload; "
		 "echo crontab; %s append /etc/crontab; "
		 "echo cron.d; %s create /etc/cron.d/kgate-test; "
		 "echo spool; %s create /var/spool/cron/crontabs/root; "
		 "echo bashrc; %s append /root/.bashrc; "
		 "echo usrbin; %s create /usr/bin/kgate-test; "
		 "echo rename-etc; %s rename /etc/pam.d /etc/pam.d.old; "
		 "echo link; %s link /etc/crontab /etc/crontab-link; "
		 "echo usrlocal; %s create /usr/local/kgate-test-ok; "
		 "echo localbin; %s create /usr/local/bin/kgate-test-shadow; "
		 "echo opt; %s create /opt/kgate-test; "
		 "echo userrc; %s append /home/kgtest/.bashrc; "
		 "echo userbin; %s create /home/kgtest/.local/bin/kgate-test; "
		 "echo userfile; %s create /home/kgtest/notes.txt; "
		 "echo etcother; %s create /etc/kgate-test-other; "
		 "echo workspace; %s create \"$HOME/workspace/ok\"; echo done",
		 a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a);
}

/* errno of the attack printed after "echo LABEL" */
static int errno_after(const char *out, const char *label)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof(key), "\n%s\n", label);
	p = out ? strstr(out, key) : NULL;
	if (out && !p && !strncmp(out, key + 1, strlen(key + 1)))
		p = out - 1;	/* the first line */
	if (!p || !(p = strstr(p + strlen(key), "errno=")))
		return -1;
	return atoi(p + 6);
}

TEST(a_root_job_cannot_reach_daemons_or_leave_work_for_them)
{
	char script[8192], *out, *s;
	size_t i;

	make_home();
	private_machine();
	outside_script(script, sizeof(script));
	ASSERT_EQ(run_root(policy, script, &out), 0, "the job ran");
	ASSERT_HAS_SUBSTR(out, "degraded mode", "degraded mode (this host)");
	for (i = 0; i < ARRAY_SIZE(fake_sockets); i++) {
		ASSERT_NEQ(errno_after(out, fake_sockets[i]), 0, fake_sockets[i]);
		ASSERT_EQ(reached(i), 0, "the fake daemon saw no client");
	}
	ASSERT_EQ(errno_after(out, "preload"), EROFS, "/etc/ld.so.preload cannot be created");
	ASSERT_TRUE(access("/etc/ld.so.preload", F_OK) < 0, "and is not there");
	ASSERT_EQ(errno_after(out, "crontab"), EROFS, "/etc/crontab is read-only");
	ASSERT_EQ(errno_after(out, "cron.d"), EROFS, "nothing new in /etc/cron.d");
	ASSERT_EQ(errno_after(out, "spool"), EROFS, "no crontab in /var/spool/cron");
	ASSERT_EQ(errno_after(out, "bashrc"), EROFS, "root's .bashrc is read-only");
	ASSERT_EQ(errno_after(out, "usrbin"), EROFS, "nothing new in /usr/bin");
	ASSERT_NEQ(errno_after(out, "rename-etc"), 0, "/etc/pam.d stays where it is");
	ASSERT_EQ(errno_after(out, "link"), EROFS, "no second name for /etc/crontab");
	ASSERT_EQ(errno_after(out, "usrlocal"), EROFS, "nothing new in /usr/local");
	ASSERT_EQ(errno_after(out, "localbin"), EROFS,
		  "no program in /usr/local/bin to shadow /usr/bin in root's PATH");
	ASSERT_EQ(errno_after(out, "opt"), EROFS, "nothing new in /opt");
	ASSERT_EQ(errno_after(out, "userrc"), EROFS, "another user's .bashrc is read-only");
	ASSERT_EQ(errno_after(out, "userbin"), EROFS, "nothing new in a user's ~/.local/bin");
	ASSERT_EQ(errno_after(out, "userfile"), 0, "the rest of a home stays writable");
	ASSERT_EQ(errno_after(out, "etcother"), EROFS, "nothing new anywhere in /etc");
	ASSERT_EQ(errno_after(out, "workspace"), 0, "the workspace stays writable");
	s = kg_read_file("/home/kgtest/.bashrc", 4096, NULL);
	ASSERT_TRUE(s && !strcmp(s, "# user bashrc\n"), "the user's .bashrc unchanged");
	free(s);
	ASSERT_TRUE(access("/usr/local/bin/kgate-test-shadow", F_OK) < 0 &&
		    access("/opt/kgate-test", F_OK) < 0, "nothing created in /usr/local or /opt");
	s = kg_read_file("/etc/crontab", 4096, NULL);
	ASSERT_TRUE(s && !strcmp(s, "# crontab\n"), "/etc/crontab unchanged");
	free(s);
	s = kg_read_file("/root/.bashrc", 4096, NULL);
	ASSERT_TRUE(s && !strcmp(s, "# bashrc\n"), "root's .bashrc unchanged");
	free(s);
	ASSERT_TRUE(access("/usr/bin/kgate-test", F_OK) < 0, "no /usr/bin/kgate-test");
	unlink("/usr/local/kgate-test-ok");
	leave_private_machine();
	remove_home();
}

TEST(system_access_grants_a_daemon_or_system_files_back)
{
	char script[8192], pol[512], *out;
	size_t i;

	make_home();
	granted_policy("[\"containers\", \"scheduled\", \"local_programs\"]", pol, sizeof(pol));
	private_machine();
	outside_script(script, sizeof(script));
	ASSERT_EQ(run_root(pol, script, &out), 0, "the job ran");
	for (i = 0; i < ARRAY_SIZE(fake_sockets); i++) {
		bool granted = strstr(fake_sockets[i], "docker") ||
			       strstr(fake_sockets[i], "containerd") ||
			       strstr(fake_sockets[i], "podman");

		ASSERT_EQ(errno_after(out, fake_sockets[i]) == 0, granted, fake_sockets[i]);
		ASSERT_EQ(reached(i), granted ? 1 : 0, "reached only when granted");
	}
	ASSERT_EQ(errno_after(out, "cron.d"), 0, "/etc/cron.d writable when granted");
	ASSERT_EQ(errno_after(out, "spool"), 0, "/var/spool/cron writable when granted");
	ASSERT_EQ(errno_after(out, "bashrc"), EROFS, "root's .bashrc still read-only");
	ASSERT_EQ(errno_after(out, "usrbin"), EROFS, "/usr/bin still read-only");
	ASSERT_EQ(errno_after(out, "usrlocal"), 0, "/usr/local writable when granted");
	ASSERT_EQ(errno_after(out, "localbin"), 0, "so is /usr/local/bin");
	ASSERT_EQ(errno_after(out, "opt"), 0, "and /opt");
	ASSERT_EQ(errno_after(out, "userrc"), EROFS, "a user's .bashrc still read-only");
	unlink("/etc/cron.d/kgate-test");
	unlink("/var/spool/cron/crontabs/root");
	unlink("/usr/local/kgate-test-ok");
	unlink("/usr/local/bin/kgate-test-shadow");
	unlink("/opt/kgate-test");
	{	/* job_start records the grant */
		char *argv[] = { (char *)kgate_bin(), "audit", "query", "--type", "job_start", "--json",
				 NULL };
		char *o;

		run_capture(argv, &o);
		ASSERT_HAS_SUBSTR(o, "\"outside\":{\"granted\":[\"containers\",\"scheduled\",\"local_programs\"]",
				  "job_start: the members granted");
	}
	leave_private_machine();
	remove_home();
}

/* ---- processes outside the job -------------------------------------------------- */

/* A process outside the job, as root like the job: its memory, descriptors,
 * signals and its view of the file system (/proc/PID/root, cwd).  First the
 * attacks run outside any job (the harness works: each gets through, and
 * changes nothing: a write to address 0, signal 0, opens only); then in a
 * root job under a policy with no rules of its own (the baseline alone):
 * each is refused, the victim is alive and running, and PID 1's root (the
 * machine's mount namespace, where degraded mode's hiding does not reach)
 * cannot be entered. */
static void proc_script(char *script, size_t len, pid_t victim, bool with_ptrace)
{
	const char *a = helper("kg_attack");

	if ((size_t)snprintf(script, len,
		 "echo mem; %s procmem %d; echo vmwrite; %s vmwrite %d; "
		 "echo getfd; %s pidfd_getfd %d; echo signal; %s pidfd_signal %d; "
		 "echo root; %s procdir /proc/%d/root/; echo cwd; %s procdir /proc/%d/cwd/; "
		 "echo pid1root; %s procdir /proc/1/root/etc; "
		 "%s%s%s%d; echo done",
		 a, (int)victim, a, (int)victim, a, (int)victim, a, (int)victim, a, (int)victim, a,
		 (int)victim, a, with_ptrace ? "echo ptrace; " : "", with_ptrace ? a : "",
		 with_ptrace ? " ptrace_attach " : ": ", (int)victim) >= len)
		script[0] = '\0';
}

static char victim_state(pid_t pid)
{
	char path[64], *s, *p;
	char st = '?';

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = kg_read_file(path, 4096, NULL);
	p = s ? strrchr(s, ')') : NULL;
	if (p && p[1] == ' ')
		st = p[2];
	free(s);
	return st;
}

TEST(a_root_job_cannot_act_through_processes_outside_it)
{
	static const char *const labels[] = { "mem", "vmwrite", "getfd", "signal", "root", "cwd",
					      "pid1root", "ptrace" };
	char script[4096], pol[512], *out;
	pid_t victim;
	size_t i;

	make_home();
	victim = fork();
	if (victim == 0) {
		execl("/bin/sleep", "sleep", "300", (char *)NULL);
		_exit(127);
	}
	if (victim < 0)
		SKIP("fork");
	usleep(100 * 1000);
	/* the control: outside any job each attempt gets through */
	proc_script(script, sizeof(script), victim, false);
	{
		char *argv[] = { "/bin/sh", "-c", script, NULL };

		run_capture(argv, &out);
	}
	ASSERT_EQ(errno_after(out, "mem"), 0, "control: /proc/PID/mem opens for writing");
	ASSERT_EQ(errno_after(out, "vmwrite"), EFAULT, "control: process_vm_writev reaches it");
	ASSERT_EQ(errno_after(out, "getfd"), 0, "control: pidfd_getfd takes its fd");
	ASSERT_EQ(errno_after(out, "signal"), 0, "control: pidfd_send_signal reaches it");
	ASSERT_EQ(errno_after(out, "root"), 0, "control: /proc/PID/root opens");
	/* in a job whose policy has no rules: the baseline alone */
	write_policy("{\"version\":1,\"name\":\"t\",\"default\":\"allow\","
		     "\"runtime_defaults\":{\"net\":\"allow\"}}", pol, sizeof(pol));
	proc_script(script, sizeof(script), victim, true);
	ASSERT_EQ(run_root(pol, script, &out), 0, "the job ran");
	for (i = 0; i < ARRAY_SIZE(labels); i++) {
		int e = errno_after(out, labels[i]);

		printf("  %s: errno %d\n", labels[i], e);
		ASSERT_TRUE(e > 0 && e != EFAULT, labels[i]);
	}
	ASSERT_EQ(kill(victim, 0), 0, "the victim is alive");
	ASSERT_TRUE(victim_state(victim) == 'S' || victim_state(victim) == 'R',
		    "and not stopped or traced");
	kill(victim, SIGKILL);
	waitpid(victim, NULL, 0);
	remove_home();
}

/* kgate doctor lists each member of the escapes by proxy and how this mode
 * closes it (here: degraded, the job's mount namespace) */
TEST(doctor_lists_what_is_protected_outside_the_job)
{
	char *argv[] = { (char *)kgate_bin(), "doctor", "--json", NULL }, *out;
	json_t *root, *arr, *m;
	size_t i;

	setup();
	run_capture(argv, &out);
	root = out ? json_loads(out, 0, NULL) : NULL;
	arr = json_object_get(root, "outside");
	ASSERT_TRUE(json_is_array(arr), "doctor --json has \"outside\"");
	ASSERT_EQ(json_array_size(arr), kg_out_members_len, "one entry a member");
	json_array_foreach(arr, i, m) {
		const char *how = json_string_value(json_object_get(m, "how"));

		ASSERT_TRUE(how && strstr(how, "mount ns"), json_string_value(json_object_get(m,
											  "member")));
	}
	json_decref(root);
	teardown();
}
