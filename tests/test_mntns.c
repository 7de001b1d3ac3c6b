// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_mntns.c - the job's mount namespace does not leak back
 * (kernel/mntns.c), driven directly.
 *
 * The test first takes a mount namespace of its own (so the machine's
 * mounts are never touched) and makes a tmpfs there a shared mount: it
 * stands for the machine's shared mounts (systemd makes / shared).  A
 * child unshares its mount namespace as the launched job does and calls
 * kg_mntns_make_slave(): a mount it makes then stays its own, while one the
 * parent makes afterwards still reaches it (a slave, not private).  Without
 * the call the child's mount reaches the parent (the test can fail).  And
 * where / is not a mount point (a chroot with the machine's /proc bound
 * in), the visible mounts are made slaves one by one, with the same result.
 */
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testlib.h"
#include "kernel/mntns.h"

static char base[256];

/* A mount namespace of the test's own with a shared tmpfs at base. */
static void shared_base(void)
{
	if (base[0])
		return;
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		SKIP("cannot make a mount namespace: %s", strerror(errno));
	snprintf(base, sizeof(base), "/tmp/kgate-test-mntns.XXXXXX");
	if (!mkdtemp(base))
		SKIP("mkdtemp: %s", strerror(errno));
	if (mount("kgtest", base, "tmpfs", 0, "mode=0755") ||
	    mount(NULL, base, NULL, MS_SHARED, NULL))
		SKIP("a shared tmpfs: %s", strerror(errno));
}

static bool is_dir_mounted(const char *path)
{
	struct stat a, b;
	char parent[600];

	snprintf(parent, sizeof(parent), "%s/..", path);
	return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* The child: unshare, maybe chroot into base/root, maybe make slave, mount a
 * tmpfs at `mine` (relative to its root), tell the parent, wait for the
 * parent's mount at `theirs`, exit 0 when it sees it (1 when not). */
static int child(int to_parent, int from_parent, bool slave, const char *chroot_dir,
		 const char *mine, const char *theirs)
{
	char c;

	if (unshare(CLONE_NEWNS))
		return 10;
	if (chroot_dir && (chroot(chroot_dir) || chdir("/")))
		return 11;
	if (slave && kg_mntns_make_slave())
		return 12;
	if (mount("kgtest-child", mine, "tmpfs", 0, NULL))
		return 13;
	if (write(to_parent, "m", 1) != 1 || read(from_parent, &c, 1) != 1)
		return 14;
	return is_dir_mounted(theirs) ? 0 : 1;
}

/* Run the child; *leaked: its mount reached us; returns its exit status. */
static int run(bool slave, const char *chroot_dir, const char *sub, bool *leaked)
{
	char mine[512], theirs[512], mine_in[512], theirs_in[512];
	int up[2], down[2], status;
	char c;
	pid_t pid;

	snprintf(mine, sizeof(mine), "%s%s/mine", base, sub);
	snprintf(theirs, sizeof(theirs), "%s%s/theirs", base, sub);
	if (mkdir(mine, 0755) || mkdir(theirs, 0755) || pipe(up) || pipe(down))
		return -1;
	/* the child's view: under the chroot, the same directories */
	snprintf(mine_in, sizeof(mine_in), "%s", chroot_dir ? "/m/mine" : mine);
	snprintf(theirs_in, sizeof(theirs_in), "%s", chroot_dir ? "/m/theirs" : theirs);
	pid = fork();
	if (pid == 0)
		_exit(child(up[1], down[0], slave, chroot_dir, mine_in, theirs_in));
	close(up[1]);		/* a child that fails early: EOF, not a hang */
	close(down[0]);
	if (read(up[0], &c, 1) != 1)
		c = 0;
	*leaked = is_dir_mounted(mine);
	if (mount("kgtest-parent", theirs, "tmpfs", 0, NULL))
		printf("  parent mount: %s\n", strerror(errno));
	if (write(down[1], "g", 1) != 1)
		printf("  cannot release the child\n");
	waitpid(pid, &status, 0);
	umount2(theirs, MNT_DETACH);
	umount2(mine, MNT_DETACH);
	rmdir(mine);
	rmdir(theirs);
	close(up[0]);
	close(down[1]);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST(without_slave_a_childs_mount_reaches_the_machine)
{
	bool leaked = false;

	shared_base();
	ASSERT_EQ(run(false, NULL, "", &leaked), 0, "the child ran and sees the parent's mount");
	ASSERT_TRUE(leaked, "its own mount reached the parent (shared): the test can fail");
}

TEST(a_slave_childs_mount_stays_its_own_and_the_machines_still_reach_it)
{
	bool leaked = true;

	shared_base();
	ASSERT_EQ(run(true, NULL, "", &leaked), 0,
		  "slave: the parent's later mount still reaches the child");
	ASSERT_FALSE(leaked, "the child's mount did not reach the parent");
}

TEST(where_root_is_not_a_mount_point_each_visible_mount_becomes_a_slave)
{
	char root[512], m[600], proc[600];
	bool leaked = true;

	shared_base();
	/* base/root: a plain directory (not a mount point) holding m, a shared
	 * bind of base/shared, the mount the chrooted child sees */
	snprintf(root, sizeof(root), "%s/root", base);
	snprintf(m, sizeof(m), "%s/m", root);
	ASSERT_OK(mkdir(root, 0755), "root");
	ASSERT_OK(mkdir(m, 0755), "root/m");
	ASSERT_OK(mount("kgtest-m", m, "tmpfs", 0, "mode=0755"), "a tmpfs at root/m");
	ASSERT_OK(mount(NULL, m, NULL, MS_SHARED, NULL), "shared");
	/* as a chroot has it: the machine's /proc (mountinfo is read there) */
	snprintf(proc, sizeof(proc), "%s/proc", root);
	ASSERT_OK(mkdir(proc, 0755), "root/proc");
	ASSERT_OK(mount("/proc", proc, NULL, MS_BIND | MS_REC, NULL), "/proc bound in");
	ASSERT_EQ(run(true, root, "/root/m", &leaked), 0,
		  "chroot + slave: the parent's later mount reaches the child");
	ASSERT_FALSE(leaked, "the child's mount did not reach the parent");
	umount2(proc, MNT_DETACH);
	umount2(m, MNT_DETACH);
}
