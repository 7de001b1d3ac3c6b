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
 */
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "testlib.h"
#include "kgrun.h"
#include "kernel/caps.h"
#include "policy.h"

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
