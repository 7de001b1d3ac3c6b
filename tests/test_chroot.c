// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_chroot.c - `kgate run` where / is not a mount point.
 *
 * A chroot (the way many build systems and some containers run): a
 * directory made with mkdtemp holding the kgate binary, a shell, the
 * network probe and the libraries ldd lists, with the host's /proc, /sys
 * and /dev bound in (recursively, as `mount --rbind` does).  The test's
 * child does this in a mount namespace of its own, so nothing is left
 * mounted on the machine.  A minimal chroot instead of debootstrap keeps the
 * test fast; what kgate needs from it is the same.
 *
 * A privileged container (as `docker run --privileged` makes one on cgroup
 * v2): the same root, entered from a cgroup of the test's own with new
 * mount, PID, cgroup, UTS and IPC namespaces, a fresh /proc and sysfs,
 * cgroup2 mounted at /sys/fs/cgroup (its root is the container's cgroup),
 * no bpffs: kgate governs there, its job cgroup nested in the container's.
 */
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "testlib.h"
#include "kgrun.h"
#include "job/cgroup.h"

static char root[300];

static int mkdirs(const char *path)
{
	char tmp[4096], *p;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static int copy_file(const char *from, const char *to)
{
	char buf[1 << 16], dir[4096];
	struct stat st;
	int in, out, ok = -1;
	ssize_t n;

	snprintf(dir, sizeof(dir), "%s", to);
	if (mkdirs(dirname(dir)))
		return -1;
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st))
		goto out_in;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0)
		goto out_in;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			goto out_out;
	ok = n == 0 ? 0 : -1;
out_out:
	close(out);
out_in:
	if (in >= 0)
		close(in);
	return ok;
}

/* Copy `bin` to root/`as` and every library ldd lists for it to the same
 * path under root. */
static int install(const char *bin, const char *as)
{
	char cmd[4300], line[4096], dst[4400], *p, *end;
	FILE *f;
	int ret = 0;

	snprintf(dst, sizeof(dst), "%s%s", root, as);
	if (copy_file(bin, dst))
		return -1;
	snprintf(cmd, sizeof(cmd), "ldd '%s'", bin);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		p = strchr(line, '/');	/* "libx.so => /lib/..." or "/lib64/ld-..." */
		if (!p)
			continue;
		end = strpbrk(p, " \t\n");
		if (end)
			*end = '\0';
		snprintf(dst, sizeof(dst), "%s%s", root, p);
		if (access(dst, F_OK) && copy_file(p, dst))
			ret = -1;
	}
	pclose(f);
	return ret;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void build_root(void)
{
	static const char *const dirs[] = { "proc", "sys", "dev", "tmp", "etc" };
	char path[512];
	size_t i;

	snprintf(root, sizeof(root), "%.250s/root", tmpdir);
	if (mkdir(root, 0755))
		SKIP("cannot make the chroot directory");
	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", root, dirs[i]);
		mkdir(path, dirs[i][0] == 't' ? 01777 : 0755);
	}
	if (install(kgate_bin(), "/kgate") || install("/bin/sh", "/bin/sh") ||
	    install(helper("net_probe"), "/net_probe") ||
	    install(helper("kg_attack"), "/kg_attack"))
		SKIP("cannot copy the binaries and their libraries into the chroot");
}

/* Wait for the child pid, print and return (in *out, static) what it wrote
 * to outpath; returns its exit status (128 + signal when killed). */
static int collect(pid_t pid, const char *outpath, const char *where, const char *cmd,
		   char **out)
{
	static char buf[65536];
	int status = 0, fd, rc;
	ssize_t n;

	waitpid(pid, &status, 0);
	fd = open(outpath, O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	printf("  (%s) $ %s ... -> %d\n%s", where, cmd, rc, buf);
	*out = buf;
	return rc;
}

/* In a child with a mount namespace of its own: bind /proc, /sys, /dev
 * into the root (recursively unless `flat_sys`), chroot, run kgate with
 * argv; its output goes to tmpdir/chroot.out.  Returns its exit status. */
static int run_in_chroot(char *const argv[], bool flat_sys, char **out)
{
	static const char *const binds[] = { "/proc", "/sys", "/dev" };
	char outpath[512], path[512];
	size_t i;
	pid_t pid;
	int fd;

	snprintf(outpath, sizeof(outpath), "%s/chroot.out", tmpdir);
	pid = fork();
	if (pid == 0) {
		fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
			_exit(120);
		for (i = 0; i < ARRAY_SIZE(binds); i++) {
			unsigned long flags = MS_BIND;

			if (!(flat_sys && !strcmp(binds[i], "/sys")))
				flags |= MS_REC;
			snprintf(path, sizeof(path), "%s%s", root, binds[i]);
			if (mount(binds[i], path, NULL, flags, NULL))
				_exit(121);
		}
		if (chroot(root) || chdir("/"))
			_exit(122);
		setenv("KGATE_AUDIT_DIR", "/tmp/audit", 1);
		setenv("KGATE_STATE_DIR", "/tmp/state", 1);
		setenv("KGATE_DATA_DIR", "/tmp/data", 1);
		execv(argv[0], argv);
		_exit(126);
	}
	return collect(pid, outpath, "chroot", argv[0], out);
}

#define CHROOT_POLICY \
	"{\"version\":1,\"name\":\"chroot\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[" \
	"{\"id\":\"no-dot-2\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}"

TEST(run_works_in_a_chroot_where_root_is_not_a_mount_point)
{
	char policy[512], inside[600], *out;
	int fd;

	setup();
	build_root();
	snprintf(policy, sizeof(policy), "%s/policy.json", root);
	fd = open(policy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, CHROOT_POLICY, strlen(CHROOT_POLICY)) < 0)
		SKIP("cannot write the policy");
	close(fd);
	snprintf(inside, sizeof(inside), "/policy.json");
	{
		char *argv[] = { "/kgate", "run", "-q", "--policy", inside, "--", "/bin/sh", "-c",
				 "/kg_attack cgroup_escape; echo escape=$?; "
				 "/net_probe connect 127.0.0.2 9; echo probe=$?; exit 7", NULL };

		ASSERT_EQ(run_in_chroot(argv, false, &out), 7, "the command ran governed and its "
			  "exit status came back");
		ASSERT_FALSE(strstr(out, "escape=0"), "leaving the job cgroup is refused");
		ASSERT_HAS_SUBSTR(out, "probe=1", "a denied connect is still refused (EPERM)");
	}
	teardown();
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* /sys bound without its submounts: no cgroup2 mount is visible.  kgate
 * must say so in one line with the fix, before anything runs. */
TEST(run_in_a_chroot_without_cgroup2_says_what_is_missing)
{
	char policy[512], *out;
	int fd;

	setup();
	build_root();
	snprintf(policy, sizeof(policy), "%s/policy.json", root);
	fd = open(policy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, CHROOT_POLICY, strlen(CHROOT_POLICY)) < 0)
		SKIP("cannot write the policy");
	close(fd);
	{
		char *argv[] = { "/kgate", "run", "--policy", "/policy.json", "--", "/bin/sh", "-c",
				 "echo RAN", NULL };

		ASSERT_NEQ(run_in_chroot(argv, true, &out), 0, "refused");
		ASSERT_FALSE(strstr(out, "RAN"), "nothing ran");
		ASSERT_HAS_SUBSTR(out, "cgroup2", "names what is missing");
		ASSERT_HAS_SUBSTR(out, "mount -t cgroup2", "says how to fix it");
	}
	teardown();
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The container's side, in its new namespaces (PID 1 there): fresh /proc
 * and sysfs, cgroup2 at /sys/fs/cgroup, the host's /dev, no bpffs. */
static void enter_container(char *const argv[])
{
	char path[512];

	snprintf(path, sizeof(path), "%s/proc", root);
	if (mount("proc", path, "proc", 0, NULL))
		_exit(123);
	snprintf(path, sizeof(path), "%s/sys", root);
	if (mount("sysfs", path, "sysfs", 0, NULL))
		_exit(124);
	snprintf(path, sizeof(path), "%s/sys/fs/cgroup", root);
	if (mount("cgroup2", path, "cgroup2", 0, NULL))
		_exit(125);
	snprintf(path, sizeof(path), "%s/dev", root);
	if (mount("/dev", path, NULL, MS_BIND | MS_REC, NULL))
		_exit(121);
	if (chroot(root) || chdir("/"))
		_exit(122);
	setenv("KGATE_AUDIT_DIR", "/tmp/audit", 1);
	setenv("KGATE_STATE_DIR", "/tmp/state", 1);
	setenv("KGATE_DATA_DIR", "/tmp/data", 1);
	execv(argv[0], argv);
	_exit(126);
}

/* Run argv in a privileged container whose cgroup is `cgdir` (made by the
 * caller); output in tmpdir/container.out.  Returns the exit status. */
static int run_in_container(const char *cgdir, char *const argv[], char **out)
{
	char outpath[512], procs[600], pidbuf[32];
	pid_t pid;
	int fd;

	snprintf(outpath, sizeof(outpath), "%s/container.out", tmpdir);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgdir);
	pid = fork();
	if (pid == 0) {
		pid_t init;
		int status;

		fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
		fd = open(procs, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, pidbuf, strlen(pidbuf)) < 0)
			_exit(119);
		close(fd);
		if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWUTS |
			    CLONE_NEWIPC) ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
			_exit(120);
		init = fork();
		if (init == 0)
			enter_container(argv);
		if (init < 0 || waitpid(init, &status, 0) != init)
			_exit(118);
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
	return collect(pid, outpath, "container", argv[0], out);
}

static int rm_cgroups(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(path) : 0;
}

TEST(run_works_in_a_privileged_container)
{
	const char *mnt = kg_cgroup2_mount();
	char policy[512], cgdir[512], *out;
	int fd;

	setup();
	if (!mnt)
		SKIP("no cgroup2 mount on this machine");
	build_root();
	snprintf(policy, sizeof(policy), "%s/policy.json", root);
	fd = open(policy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, CHROOT_POLICY, strlen(CHROOT_POLICY)) < 0)
		SKIP("cannot write the policy");
	close(fd);
	snprintf(cgdir, sizeof(cgdir), "%s/kgate-test-container.%d", mnt, (int)getpid());
	if (mkdir(cgdir, 0755))
		SKIP("cannot make the container's cgroup %s: %s", cgdir, strerror(errno));
	{
		char *argv[] = { "/kgate", "run", "-q", "--policy", "/policy.json", "--", "/bin/sh", "-c",
				 "while read l; do case $l in 0::*) echo cg=$l;; esac; done </proc/self/cgroup; "
				 "/kg_attack cgroup_escape; echo escape=$?; "
				 "/net_probe connect 127.0.0.2 9; echo probe=$?; exit 7", NULL };

		ASSERT_EQ(run_in_container(cgdir, argv, &out), 7, "the command ran governed and "
			  "its exit status came back");
		ASSERT_HAS_SUBSTR(out, "cg=0::/kgate/job-", "the job's cgroup is nested in the "
				  "container's (the cgroup namespace's root)");
		ASSERT_FALSE(strstr(out, "escape=0"), "leaving the job cgroup is refused");
		ASSERT_HAS_SUBSTR(out, "probe=1", "a denied connect is still refused (EPERM)");
	}
	nftw(cgdir, rm_cgroups, 16, FTW_DEPTH | FTW_PHYS);
	ASSERT_TRUE(access(cgdir, F_OK) < 0, "the container's cgroups are gone");
	teardown();
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
