// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_file - file rules through BPF LSM, and every way around them we know:
 * symlinks, hardlinks, bind mounts, mount namespaces, relative paths and
 * dirfds, /proc/self/fd and /proc/PID/root re-opens, O_PATH, openat2,
 * renaming an ancestor, truncate/O_TRUNC/ftruncate, shared writable mmap,
 * and names that did not exist when the policy was compiled.
 */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include "testlib.h"
#include "vt_lib.h"

static const char *policy =
	"{\"version\": 1, \"name\": \"vt-file\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"no-ssh\", \"file\": {\"prefix\": \"~/.ssh/\", \"ops\": [\"read\", \"write\", \"create\", \"unlink\", \"rename\"]}, \"decision\": \"deny\"},"
	"  {\"id\": \"secret\", \"file\": {\"path\": \"~/secret\", \"ops\": [\"read\", \"write\"]}, \"decision\": \"deny\"},"
	"  {\"id\": \"ro\", \"file\": {\"prefix\": \"~/ro/\", \"ops\": [\"write\", \"create\", \"unlink\", \"rename\"]}, \"decision\": \"deny\"},"
	"  {\"id\": \"no-aws\", \"file\": {\"prefix\": \"~/.aws/\", \"ops\": [\"read\", \"write\", \"create\"]}, \"decision\": \"deny\"}"
	" ]}";

/* home: .ssh/id_rsa, secret, ro/f, work/, work/hl (hardlink of secret),
 * work/hl2 (hardlink of .ssh/id_rsa), work/link -> ../.ssh/id_rsa */
static int make_tree(struct vt *v)
{
	char a[512], b[512];

	if (vt_mkdirs(v, ".ssh") || vt_mkdirs(v, "ro") || vt_mkdirs(v, "work"))
		return -1;
	if (vt_write_file(vt_path(v, ".ssh/id_rsa", a, sizeof(a)), "KEY\n", 0600) ||
	    vt_write_file(vt_path(v, "secret", a, sizeof(a)), "SECRET\n", 0600) ||
	    vt_write_file(vt_path(v, "ro/f", a, sizeof(a)), "RO\n", 0644) ||
	    vt_write_file(vt_path(v, "work/ok", a, sizeof(a)), "OK\n", 0644))
		return -1;
	if (link(vt_path(v, "secret", a, sizeof(a)), vt_path(v, "work/hl", b, sizeof(b))) ||
	    link(vt_path(v, ".ssh/id_rsa", a, sizeof(a)), vt_path(v, "work/hl2", b, sizeof(b))) ||
	    symlink("../.ssh/id_rsa", vt_path(v, "work/link", b, sizeof(b))))
		return -1;
	return 0;
}

static int setup(struct vt *v)
{
	if (vt_setup(v, policy))
		return -1;
	if (!ASSERT_OK(make_tree(v), "make tree") || vt_install(v)) {
		vt_teardown(v);
		return -1;
	}
	return 0;
}

static int open_rd(struct vt *v, void *rel)
{
	char p[512];
	int fd = open(vt_path(v, rel, p, sizeof(p)), O_RDONLY);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int open_abs(struct vt *v, void *path)
{
	int fd = open(path, O_RDONLY);

	(void)v;
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int open_flags(struct vt *v, const char *rel, int flags)
{
	char p[512];
	int fd = open(vt_path(v, rel, p, sizeof(p)), flags, 0644);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static bool expect_event(struct vt *v, enum kg_op op, const char *rule, const char *in_path)
{
	const struct kg_event *e = vt_event(v, op, KG_DEC_DENY, rule);

	if (!ASSERT_TRUE(e != NULL, "a deny event with the right op and rule")) {
		vt_dump_events(v);
		return false;
	}
	if (in_path)
		return ASSERT_HAS_SUBSTR(e->path, in_path, "event path");
	return true;
}

TEST(read_allowed_and_denied_with_event)
{
	struct vt v;
	int rc;

	if (setup(&v))
		return;
	ASSERT_OK(vt_run(&v, open_rd, "work/ok"), "allowed file opens");
	rc = vt_run(&v, open_rd, ".ssh/id_rsa");
	ASSERT_TRUE(vt_refused(rc), "id_rsa refused");
	printf("  rc=%d\n", rc);
	expect_event(&v, KG_OP_READ, "no-ssh", "id_rsa/.ssh/");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "secret")), "exact rule");
	expect_event(&v, KG_OP_READ, "secret", "secret/");
	vt_teardown(&v);
}

TEST(ungoverned_unaffected)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_OK(vt_run_outside(&v, open_rd, ".ssh/id_rsa"), "outside the job: readable");
	ASSERT_OK(vt_run_outside(&v, open_rd, "secret"), "outside the job: readable");
	vt_teardown(&v);
}

TEST(symlink_bypass)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "work/link")), "symlink to id_rsa refused");
	expect_event(&v, KG_OP_READ, "no-ssh", "id_rsa");
	vt_teardown(&v);
}

TEST(hardlink_existing_before_policy)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "work/hl")), "hardlink of exact rule");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "work/hl2")), "hardlink of a file in a subtree");
	vt_teardown(&v);
}

static int do_link(struct vt *v, void *arg)
{
	char a[512], b[512];

	(void)arg;
	return VT_RC(link(vt_path(v, ".ssh/id_rsa", a, sizeof(a)),
			  vt_path(v, "work/newlink", b, sizeof(b))));
}

TEST(hardlink_new_refused)
{
	struct vt v;
	char p[512];

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, do_link, NULL)), "link to a protected file refused");
	ASSERT_TRUE(access(vt_path(&v, "work/newlink", p, sizeof(p)), F_OK) < 0, "no link made");
	expect_event(&v, KG_OP_LINK, NULL, "id_rsa");
	vt_teardown(&v);
}

TEST(bind_mount_bypass)
{
	struct vt v;
	char a[512], b[512];

	if (setup(&v))
		return;
	vt_mkdirs(&v, "work/mnt");
	if (ASSERT_OK(mount(vt_path(&v, ".ssh", a, sizeof(a)), vt_path(&v, "work/mnt", b, sizeof(b)),
			    NULL, MS_BIND, NULL), "bind mount (outside the job)")) {
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "work/mnt/id_rsa")), "through the bind mount");
		expect_event(&v, KG_OP_READ, "no-ssh", "id_rsa");
		umount2(b, MNT_DETACH);
	}
	vt_teardown(&v);
}

/* a private mount namespace with its own bind mount, made before joining */
static int ns_then_open(struct vt *v, void *arg)
{
	char a[512], b[512];
	int fd;

	(void)arg;
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return 900;
	vt_mkdirs(v, "work/nsmnt");
	if (mount(vt_path(v, ".ssh", a, sizeof(a)), vt_path(v, "work/nsmnt", b, sizeof(b)),
		  NULL, MS_BIND, NULL))
		return 901;
	if (kg_cgroup_add_pid(&v->cg, getpid()))
		return 902;
	fd = open(vt_path(v, "work/nsmnt/id_rsa", a, sizeof(a)), O_RDONLY);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

TEST(mount_namespace_bypass)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run_outside(&v, ns_then_open, NULL)), "in a new mount namespace");
	expect_event(&v, KG_OP_READ, "no-ssh", "id_rsa");
	vt_teardown(&v);
}

static int relative_and_dirfd(struct vt *v, void *arg)
{
	char p[512];
	int dfd, fd;

	(void)arg;
	if (chdir(vt_path(v, ".ssh", p, sizeof(p))))
		return 900;
	fd = open("id_rsa", O_RDONLY);
	if (fd >= 0)
		return close(fd), 0;
	if (!vt_refused(errno))
		return errno;
	if (chdir(vt_path(v, "work", p, sizeof(p))))
		return 901;
	fd = open("../.ssh/id_rsa", O_RDONLY);
	if (fd >= 0)
		return close(fd), 0;
	dfd = open(v->home, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return 902;
	fd = openat(dfd, ".ssh/id_rsa", O_RDONLY);
	close(dfd);
	if (fd >= 0)
		return close(fd), 0;
	return errno;
}

TEST(relative_path_and_dirfd)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, relative_and_dirfd, NULL)), "relative and dirfd opens");
	vt_teardown(&v);
}

static int opath_reopen(struct vt *v, void *arg)
{
	char p[512], q[64];
	int pfd, fd;

	(void)arg;
	pfd = open(vt_path(v, ".ssh/id_rsa", p, sizeof(p)), O_PATH);
	if (pfd < 0)
		return 900;	/* O_PATH itself opens nothing: it is allowed */
	snprintf(q, sizeof(q), "/proc/self/fd/%d", pfd);
	fd = open(q, O_RDONLY);
	close(pfd);
	if (fd >= 0)
		return close(fd), 0;
	return errno;
}

TEST(opath_then_proc_self_fd_reopen)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, opath_reopen, NULL)), "O_PATH + /proc/self/fd re-open");
	expect_event(&v, KG_OP_READ, "no-ssh", NULL);
	vt_teardown(&v);
}

static int fd_reopen_for_write(struct vt *v, void *arg)
{
	char p[512], q[64];
	int rfd, fd;

	(void)arg;
	rfd = open(vt_path(v, "ro/f", p, sizeof(p)), O_RDONLY);
	if (rfd < 0)
		return 900;
	snprintf(q, sizeof(q), "/proc/self/fd/%d", rfd);
	fd = open(q, O_WRONLY);
	close(rfd);
	if (fd >= 0)
		return close(fd), 0;
	return errno;
}

TEST(proc_self_fd_reopen_for_write)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, fd_reopen_for_write, NULL)), "read fd re-opened for write");
	expect_event(&v, KG_OP_WRITE, "ro", NULL);
	vt_teardown(&v);
}

TEST(proc_pid_root)
{
	struct vt v;
	char p[600];

	if (setup(&v))
		return;
	snprintf(p, sizeof(p), "/proc/self/root%s/.ssh/id_rsa", v.home);
	ASSERT_TRUE(vt_refused(vt_run(&v, open_abs, p)), "/proc/self/root/... re-open");
	snprintf(p, sizeof(p), "/proc/1/root%s/.ssh/id_rsa", v.home);
	ASSERT_TRUE(vt_refused(vt_run(&v, open_abs, p)), "/proc/1/root/... re-open");
	vt_teardown(&v);
}

static int do_openat2(struct vt *v, void *arg)
{
	struct open_how how = { .flags = O_RDONLY, .resolve = RESOLVE_NO_SYMLINKS };
	char p[512];
	long fd;

	(void)arg;
	fd = syscall(SYS_openat2, AT_FDCWD, vt_path(v, ".ssh/id_rsa", p, sizeof(p)), &how,
		     sizeof(how));
	if (fd >= 0)
		return close((int)fd), 0;
	return errno;
}

TEST(openat2)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, do_openat2, NULL)), "openat2");
	vt_teardown(&v);
}

TEST(rename_ancestor_after_policy)
{
	struct vt v;
	char a[512], b[512];

	if (setup(&v))
		return;
	if (ASSERT_OK(rename(vt_path(&v, ".ssh", a, sizeof(a)), vt_path(&v, "moved", b, sizeof(b))),
		      "rename .ssh (outside the job)"))
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "moved/id_rsa")), "after the rename");
	expect_event(&v, KG_OP_READ, "no-ssh", "id_rsa/moved/");
	vt_teardown(&v);
}

static int do_truncate(struct vt *v, void *arg)
{
	char p[512];

	(void)arg;
	return VT_RC(truncate(vt_path(v, "ro/f", p, sizeof(p)), 0));
}

static int open_wr(struct vt *v, void *rel) { return open_flags(v, rel, O_WRONLY); }
static int open_rdwr(struct vt *v, void *rel) { return open_flags(v, rel, O_RDWR); }
static int open_trunc(struct vt *v, void *rel) { return open_flags(v, rel, O_RDONLY | O_TRUNC); }

TEST(write_open_trunc_truncate)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_OK(vt_run(&v, open_rd, "ro/f"), "read allowed");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_wr, "ro/f")), "O_WRONLY");
	expect_event(&v, KG_OP_WRITE, "ro", "f/ro/");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rdwr, "ro/f")), "O_RDWR");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_trunc, "ro/f")), "O_RDONLY|O_TRUNC");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_truncate, NULL)), "truncate(2)");
	ASSERT_OK(vt_run(&v, open_rdwr, "work/ok"), "writable elsewhere");
	vt_teardown(&v);
}

/* A writable fd opened before joining (the job inherits it): the write
 * itself is not refused (the open check is the gate), but turning it into
 * a truncation or a shared writable mapping is. */
static int inherited_fd(struct vt *v, void *arg)
{
	int fd = *(int *)arg;
	void *m;

	(void)v;
	if (kg_cgroup_add_pid(&v->cg, getpid()))
		return 900;
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m != MAP_FAILED)
		return 901;
	if (!vt_refused(errno))
		return 902;
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return 903;	/* a read-only shared map is fine */
	if (mprotect(m, 4096, PROT_READ | PROT_WRITE) == 0)
		return 904;
	if (!vt_refused(errno))
		return 905;
	munmap(m, 4096);
	if (ftruncate(fd, 0) == 0)
		return 906;
	if (!vt_refused(errno))
		return 907;
	return 0;
}

TEST(shared_writable_mmap_mprotect_ftruncate)
{
	struct vt v;
	char p[512];
	int fd;

	if (setup(&v))
		return;
	fd = open(vt_path(&v, "ro/f", p, sizeof(p)), O_RDWR);
	if (ASSERT_TRUE(fd >= 0, "open ro/f outside the job")) {
		ASSERT_OK(vt_run_outside(&v, inherited_fd, &fd), "mmap/mprotect/ftruncate refused");
		expect_event(&v, KG_OP_WRITE, "ro", NULL);
		close(fd);
	}
	vt_teardown(&v);
}

static int do_unlink(struct vt *v, void *rel) { char p[512]; return VT_RC(unlink(vt_path(v, rel, p, sizeof(p)))); }
static int do_mkdir(struct vt *v, void *rel) { char p[512]; return VT_RC(mkdir(vt_path(v, rel, p, sizeof(p)), 0755)); }
static int do_creat(struct vt *v, void *rel) { return open_flags(v, rel, O_WRONLY | O_CREAT | O_EXCL); }
static int do_symlink(struct vt *v, void *rel) { char p[512]; return VT_RC(symlink("/etc/passwd", vt_path(v, rel, p, sizeof(p)))); }

static int do_rename(struct vt *v, void *arg)
{
	const char **ab = arg;
	char a[512], b[512];

	return VT_RC(rename(vt_path(v, ab[0], a, sizeof(a)), vt_path(v, ab[1], b, sizeof(b))));
}

TEST(unlink_rename_create)
{
	const char *out_of[] = { "ro/f", "work/f" };
	const char *into[] = { "work/ok", "ro/g" };
	const char *over[] = { "work/ok", ".ssh/id_rsa" };
	const char *inside[] = { "work/ok", "work/ok2" };
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, do_unlink, "ro/f")), "unlink");
	expect_event(&v, KG_OP_UNLINK, "ro", "f/ro/");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, out_of)), "rename out of");
	expect_event(&v, KG_OP_RENAME, "ro", NULL);
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, into)), "rename into");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, over)), "rename over a protected file");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_mkdir, "ro/d")), "mkdir");
	expect_event(&v, KG_OP_CREATE, "ro", "d/ro/");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_creat, "ro/new")), "open(O_CREAT)");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_symlink, "ro/sym")), "symlink");
	ASSERT_OK(vt_run(&v, do_mkdir, "work/d"), "mkdir elsewhere");
	ASSERT_OK(vt_run(&v, do_creat, "work/new"), "create elsewhere");
	ASSERT_OK(vt_run(&v, do_rename, inside), "rename elsewhere");
	ASSERT_OK(vt_run(&v, do_unlink, "work/new"), "unlink elsewhere");
	vt_teardown(&v);
}

TEST(name_rule_for_path_that_did_not_exist)
{
	struct vt v;
	const char *to_aws[] = { "work/d2", ".aws" };

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, do_mkdir, ".aws")), "mkdir ~/.aws");
	expect_event(&v, KG_OP_CREATE, "no-aws", ".aws/");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_creat, ".aws")), "create file ~/.aws");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_symlink, ".aws")), "symlink ~/.aws");
	ASSERT_OK(vt_run(&v, do_mkdir, "work/d2"), "mkdir work/d2");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, to_aws)), "rename a dir to ~/.aws");
	ASSERT_OK(vt_run(&v, do_mkdir, ".azure"), "a sibling name is fine");
	vt_teardown(&v);
}
