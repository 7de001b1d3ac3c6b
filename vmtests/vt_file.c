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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <linux/openat2.h>
#include "testlib.h"
#include "vt_lib.h"

static const char *policy =
	"{\"version\": 1, \"name\": \"vt-file\","
	/* trusted.* xattrs (the metadata test, tmpfs has no user.* on 6.1) */
	" \"system_access\": [\"sys_admin\"],"
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

/* A writable fd opened before joining (the job inherits it): writing
 * through it is decided like an open for writing (file_permission), and so
 * are a truncation and a shared writable mapping; reading it stays allowed
 * (the rule denies writes only). */
static int inherited_fd(struct vt *v, void *arg)
{
	int fd = *(int *)arg;
	char c;
	void *m;

	(void)v;
	if (kg_cgroup_add_pid(&v->cg, getpid()))
		return 900;
	if (write(fd, "x", 1) == 1)
		return 908;
	if (!vt_refused(errno))
		return 909;
	if (pread(fd, &c, 1, 0) != 1)
		return 910;
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
		ASSERT_OK(vt_run_outside(&v, inherited_fd, &fd),
			  "write/mmap/mprotect/ftruncate refused, read allowed");
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
	if (kt_failed_here)
		vt_dump_events(&v);
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

/* A generation is deleted only after the hooks that may still be reading it
 * have returned (kg_maps_wait_readers): a job that opens a file every
 * generation denies, while generations are swapped under it as fast as the
 * controller can, is never let through by a lookup that found its rules half
 * deleted (the class default here is allow). */
TEST(generation_swap_never_lets_a_denied_open_through)
{
	struct vt v;
	char p[512];
	int i, status, swaps = 0, opened;
	long long attempts = 0;
	pid_t pid;

	if (setup(&v))
		return;
	vt_path(&v, "secret", p, sizeof(p));
	v.shared[0] = 0;
	v.shared[1] = 0;
	v.shared[2] = 0;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (kg_cgroup_add_pid(&v.cg, getpid()))
			_exit(3);
		while (!__atomic_load_n(&v.shared[2], __ATOMIC_ACQUIRE)) {
			int fd = open(p, O_RDONLY);

			if (fd >= 0) {
				__atomic_add_fetch(&v.shared[0], 1, __ATOMIC_RELAXED);
				close(fd);
			}
			__atomic_add_fetch(&v.shared[1], 1, __ATOMIC_RELAXED);
		}
		_exit(0);
	}
	for (i = 0; i < 60; i++) {
		uint32_t id, old;

		if (kg_maps_install(v.l, v.doc, &id, NULL) ||
		    kg_maps_switch_job(v.l, v.cg.id, id, &old))
			break;
		kg_maps_remove_policy(v.l, old);
		v.policy_id = id;
		swaps++;
	}
	__atomic_store_n(&v.shared[2], 1, __ATOMIC_RELEASE);
	waitpid(pid, &status, 0);
	opened = v.shared[0];
	attempts = v.shared[1];
	printf("  %d generation swaps, %lld opens attempted, %d got through\n", swaps, attempts,
	       opened);
	ASSERT_EQ(swaps, 60, "every swap worked");
	ASSERT_GE(attempts, 100, "the job kept trying during the swaps");
	ASSERT_EQ(opened, 0, "no open of the denied file got through");
	/* the flood's events must not fill the next test's reader */
	while (ring_buffer__consume(v.ev) > 0)
		;
	vt_teardown(&v);
}

/* ---- the place of a protected object: renames of its ancestors ---------- */

static const char *guard_policy =
	"{\"version\": 1, \"name\": \"vt-guards\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"hooks\", \"file\": {\"prefix\": \"~/w/.git/hooks/\", \"ops\": [\"write\", \"create\"]}, \"decision\": \"deny\"},"
	"  {\"id\": \"autostart\", \"file\": {\"prefix\": \"~/.config/autostart/\", \"ops\": [\"write\", \"create\"]}, \"decision\": \"deny\"},"
	"  {\"id\": \"via-link\", \"file\": {\"path\": \"~/lnk/key\", \"ops\": [\"read\"]}, \"decision\": \"deny\"}"
	" ]}";

/* home: w/.git/hooks/pre-commit, w/src, .config/ (empty: autostart does not
 * exist, so its rule is a name rule anchored at .config), real/key and
 * lnk -> real */
static int guard_setup(struct vt *v)
{
	char a[512];

	if (vt_setup(v, guard_policy))
		return -1;
	if (!ASSERT_OK(vt_mkdirs(v, "w/.git/hooks") || vt_mkdirs(v, "w/src") ||
		       vt_mkdirs(v, ".config") || vt_mkdirs(v, "real") ||
		       vt_write_file(vt_path(v, "w/.git/hooks/pre-commit", a, sizeof(a)), "#!/bin/sh\n",
				     0755) ||
		       vt_write_file(vt_path(v, "real/key", a, sizeof(a)), "K\n", 0600) ||
		       symlink("real", vt_path(v, "lnk", a, sizeof(a))), "guard tree") ||
	    vt_install(v)) {
		vt_teardown(v);
		return -1;
	}
	return 0;
}

static int do_rmdir(struct vt *v, void *rel) { char p[512]; return VT_RC(rmdir(vt_path(v, rel, p, sizeof(p)))); }

TEST(renaming_an_ancestor_of_a_protected_subtree_is_refused)
{
	const char *git_away[] = { "w/.git", "w/.g0" };
	const char *w_away[] = { "w", "w2" };
	const char *over_git[] = { "w/src", "w/.git" };
	const char *src_away[] = { "w/src", "w/src2" };
	struct vt v;
	char p[512];

	if (guard_setup(&v))
		return;
	/* mv .git .g0; cp -r .g0 .git would give a writable .git/hooks */
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, git_away)), "mv w/.git w/.g0");
	expect_event(&v, KG_OP_RENAME, "hooks", ".git/w/");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, w_away)), "mv w w2 (further up)");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, over_git)), "rename another dir over w/.git");
	ASSERT_TRUE(access(vt_path(&v, "w/.git/hooks/pre-commit", p, sizeof(p)), F_OK) == 0,
		    "the hooks are where the policy says");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_wr, "w/.git/hooks/pre-commit")), "still not writable");
	/* what is not above a protected object moves freely */
	ASSERT_OK(vt_run(&v, do_rename, src_away), "mv w/src w/src2");
	ASSERT_OK(vt_run(&v, do_creat, "w/.git/config"), "files next to hooks/ are writable");
	vt_teardown(&v);
}

TEST(the_anchor_of_a_name_rule_cannot_be_moved_or_removed)
{
	const char *config_away[] = { ".config", ".c" };
	struct vt v;

	if (guard_setup(&v))
		return;
	/* mv ~/.config ~/.c; mkdir -p ~/.config/autostart would escape */
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, config_away)), "mv ~/.config ~/.c");
	expect_event(&v, KG_OP_RENAME, "autostart", ".config/");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rmdir, ".config")), "rmdir ~/.config (empty)");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_mkdir, ".config/autostart")), "the name stays refused");
	ASSERT_OK(vt_run(&v, do_mkdir, ".config/other"), "other names under ~/.config are fine");
	vt_teardown(&v);
}

TEST(a_symlink_in_a_protected_path_cannot_be_replaced)
{
	const char *lnk_away[] = { "lnk", "lnk2" };
	struct vt v;

	if (guard_setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "lnk/key")), "the file is denied");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_unlink, "lnk")), "rm lnk (the symlink in the path)");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, lnk_away)), "mv lnk lnk2");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_rename, (const char *[]){ "real", "real2" })),
		    "mv real real2 (the directory it resolves to)");
	vt_teardown(&v);
}

/* ---- metadata and descriptors ------------------------------------------- */

struct meta_case {
	const char *what;
	int (*fn)(const char *path);
};

static int m_chmod(const char *p) { return VT_RC(chmod(p, 0600)); }
static int m_chown(const char *p) { return VT_RC(chown(p, 0, 0)); }
static int m_utimes(const char *p) { return VT_RC(utimensat(AT_FDCWD, p, NULL, 0)); }
static int m_setxattr(const char *p) { return VT_RC(setxattr(p, "trusted.kgtest", "1", 1, 0)); }
static int m_removexattr(const char *p) { return VT_RC(removexattr(p, "trusted.kgpre")); }
static int m_fchmod(const char *p)
{
	int fd = open(p, O_RDONLY), r;

	if (fd < 0)
		return errno + 1000;
	r = VT_RC(fchmod(fd, 0600));
	close(fd);
	return r;
}
static int m_futimens(const char *p)
{
	int fd = open(p, O_RDONLY), r;

	if (fd < 0)
		return errno + 1000;
	r = VT_RC(futimens(fd, NULL));
	close(fd);
	return r;
}
/* an access ACL (the xattr form: what setfacl does on 6.1) */
static int m_acl(const char *p)
{
	static const unsigned char acl[] = {
		2, 0, 0, 0,				/* version */
		1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,	/* USER_OBJ rw- */
		4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,	/* GROUP_OBJ r-- */
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,	/* OTHER r-- */
	};

	return VT_RC(setxattr(p, "system.posix_acl_access", acl, sizeof(acl), 0));
}

static const struct meta_case meta_cases[] = {
	{ "chmod", m_chmod }, { "fchmod", m_fchmod }, { "chown", m_chown },
	{ "utimensat", m_utimes }, { "futimens", m_futimens }, { "setxattr", m_setxattr },
	{ "removexattr", m_removexattr }, { "posix ACL", m_acl },
};

static int meta_one(struct vt *v, void *arg)
{
	const int *ix = arg;
	char p[512];

	return meta_cases[ix[0]].fn(vt_path(v, ix[1] ? "work/ok" : "ro/f", p, sizeof(p)));
}

TEST(metadata_of_a_write_denied_file_is_refused)
{
	struct vt v;
	char p[512];
	size_t i;

	if (setup(&v))
		return;
	/* an xattr for removexattr to remove, on both files */
	setxattr(vt_path(&v, "ro/f", p, sizeof(p)), "trusted.kgpre", "1", 1, 0);
	setxattr(vt_path(&v, "work/ok", p, sizeof(p)), "trusted.kgpre", "1", 1, 0);
	for (i = 0; i < ARRAY_SIZE(meta_cases); i++) {
		int denied[2] = { (int)i, 0 }, allowed[2] = { (int)i, 1 }, rc;
		char what[96];

		rc = vt_run(&v, meta_one, denied);
		snprintf(what, sizeof(what), "%s on ro/f (write denied): rc %d", meta_cases[i].what, rc);
		ASSERT_TRUE(vt_refused(rc), what);
		rc = vt_run(&v, meta_one, allowed);
		snprintf(what, sizeof(what), "%s on work/ok (allowed): rc %d", meta_cases[i].what, rc);
		ASSERT_EQ(rc, 0, what);
	}
	expect_event(&v, KG_OP_WRITE, "ro", "f/ro/");
	vt_teardown(&v);
}

/* An fd of a read-denied file, opened outside the job and sent in over
 * SCM_RIGHTS: reading it is refused like opening it would be. */
static int recv_and_read(struct vt *v, void *arg)
{
	int sock = *(int *)arg, fd;
	char c, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	(void)v;
	if (recvmsg(sock, &m, 0) != 1)
		return 900;
	cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return 901;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	return VT_RC(read(fd, &c, 1));
}

TEST(descriptor_received_over_scm_rights_is_rechecked)
{
	struct vt v;
	int sv[2], fd;
	char p[512], cbuf[CMSG_SPACE(sizeof(int))], c = 'x';
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	if (setup(&v))
		return;
	ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), "socketpair");
	fd = open(vt_path(&v, ".ssh/id_rsa", p, sizeof(p)), O_RDONLY);
	ASSERT_TRUE(fd >= 0, "open id_rsa outside the job");
	cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	ASSERT_EQ(sendmsg(sv[0], &m, 0), 1, "send the fd");
	ASSERT_TRUE(vt_refused(vt_run(&v, recv_and_read, &sv[1])), "read through it refused");
	expect_event(&v, KG_OP_READ, "no-ssh", "id_rsa");
	close(fd);
	close(sv[0]);
	close(sv[1]);
	vt_teardown(&v);
}

/* Descriptors opened before a push: the new policy decides their reads. */
static int read_after_push(struct vt *v, void *arg)
{
	int fd = open(vt_path(v, "work/ok", (char[512]){ 0 }, 512), O_RDONLY), r1, r2;
	char c;

	(void)arg;
	if (fd < 0)
		return 900;
	r1 = VT_RC(pread(fd, &c, 1, 0));
	/* tell the parent to push, wait for it */
	__atomic_store_n(&v->shared[1], 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&v->shared[1], __ATOMIC_ACQUIRE) != 2)
		usleep(1000);
	r2 = VT_RC(pread(fd, &c, 1, 0));
	close(fd);
	return r1 ? 1000 + r1 : r2;
}

static const char *push_policy =
	"{\"version\": 1, \"name\": \"vt-file-2\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\"},"
	" \"runtime\": [{\"id\": \"no-work\", \"file\": {\"prefix\": \"~/work/\","
	" \"ops\": [\"read\"]}, \"decision\": \"deny\"}]}";

TEST(descriptor_opened_before_a_push_follows_the_new_policy)
{
	struct kg_policy_error perr;
	struct kg_policy_doc *doc2;
	struct vt v;
	uint32_t id2, old;
	int status, rc;
	pid_t pid;

	if (setup(&v))
		return;
	doc2 = kg_policy_load_buffer(push_policy, strlen(push_policy), "vt-policy-2", v.home, &perr);
	if (!ASSERT_TRUE(doc2 != NULL, "second policy")) {
		vt_teardown(&v);
		return;
	}
	v.shared[1] = 0;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (kg_cgroup_add_pid(&v.cg, getpid()))
			_exit(3);
		v.shared[0] = read_after_push(&v, NULL);
		_exit(0);
	}
	while (__atomic_load_n(&v.shared[1], __ATOMIC_ACQUIRE) != 1)
		usleep(1000);
	ASSERT_OK(kg_maps_install(v.l, doc2, &id2, NULL), "install the new policy");
	ASSERT_OK(kg_maps_switch_job(v.l, v.cg.id, id2, &old), "push: switch the job");
	kg_maps_remove_policy(v.l, old);
	v.policy_id = id2;
	__atomic_store_n(&v.shared[1], 2, __ATOMIC_RELEASE);
	waitpid(pid, &status, 0);
	rc = v.shared[0];
	ASSERT_TRUE(rc < 1000, "the read before the push worked");
	ASSERT_TRUE(vt_refused(rc), "the read after the push is refused by the new policy");
	kg_policy_free(doc2);
	vt_teardown(&v);
}

/* An exact rule on a directory covers the directory, not what is in it
 * (that is what a prefix rule is for).  The walk used to keep a "past the
 * object" flag in its state, which the 6.1 verifier took as a constant and
 * compiled away in programs that only look at objects: an exact entry on
 * any ancestor then matched, so this read was refused. */
static const char *exact_dir_policy =
	"{\"version\": 1, \"name\": \"vt-exact-dir\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\"},"
	" \"runtime\": [{\"id\": \"dir-only\", \"file\": {\"path\": \"~/d\", \"ops\": [\"read\"]},"
	" \"decision\": \"deny\"}]}";

TEST(exact_rule_on_a_directory_does_not_cover_its_contents)
{
	struct vt v;
	char p[512];

	if (vt_setup(&v, exact_dir_policy))
		return;
	if (!ASSERT_OK(vt_mkdirs(&v, "d") ||
		       vt_write_file(vt_path(&v, "d/f", p, sizeof(p)), "F\n", 0644), "tree") ||
	    vt_install(&v)) {
		vt_teardown(&v);
		return;
	}
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "d")), "the directory itself is denied");
	ASSERT_OK(vt_run(&v, open_rd, "d/f"), "a file inside it is not");
	vt_teardown(&v);
}
