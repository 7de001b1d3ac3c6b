// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_cache - the decision cache of the file hooks (kg_dir_cache, see
 * bpf/walk.bpf.h) never leaves a stale allow.  Each test first warms the
 * cache (governed opens that walk the directories and record what they
 * learnt), then changes what a walk would find - a rename of the directory
 * or of an ancestor (by the job or outside it), an exchange, a push, a bind
 * mount, a hardlink - and checks that the next decision is the one a fresh
 * walk makes.  The race test renames while the job opens.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <bpf/bpf.h>
#include "testlib.h"
#include "vt_lib.h"

/* vault/ is read-protected (a subtree rule); everything else is allowed */
static const char *policy =
	"{\"version\": 1, \"name\": \"vt-cache\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"vault\", \"file\": {\"prefix\": \"~/vault/\", \"ops\": [\"read\"]}, \"decision\": \"deny\"}"
	" ]}";

/* the same tree, with work/a/ read-protected too (the pushed generation) */
static const char *policy_pushed =
	"{\"version\": 1, \"name\": \"vt-cache-2\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"vault\", \"file\": {\"prefix\": \"~/vault/\", \"ops\": [\"read\"]}, \"decision\": \"deny\"},"
	"  {\"id\": \"work-a\", \"file\": {\"prefix\": \"~/work/a/\", \"ops\": [\"read\"]}, \"decision\": \"deny\"}"
	" ]}";

/* vault/s/t/f, vault/k, work/a/b/c/f, work/x/f, work/r/f */
static int make_tree(struct vt *v)
{
	static const char *const files[] = {
		"vault/s/t/f", "vault/k", "work/a/b/c/f", "work/x/f", "work/r/f",
	};
	char p[512];
	size_t i;

	if (vt_mkdirs(v, "vault/s/t") || vt_mkdirs(v, "work/a/b/c") || vt_mkdirs(v, "work/x") ||
	    vt_mkdirs(v, "work/r") || vt_mkdirs(v, "work/m"))
		return -1;
	for (i = 0; i < ARRAY_SIZE(files); i++)
		if (vt_write_file(vt_path(v, files[i], p, sizeof(p)), "DATA\n", 0644))
			return -1;
	return 0;
}

static int setup(struct vt *v)
{
	vt_require_full();
	if (!ASSERT_TRUE(!vt_g.error[0], vt_g.error[0] ? vt_g.error : "the loader"))
		return -1;
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

/* open the same file a few times: the first walk records, the rest hit */
static int open_rd_warm(struct vt *v, void *rel)
{
	int i, rc = 0;

	for (i = 0; i < 4; i++)
		rc = open_rd(v, rel);
	return rc;
}

static int do_rename(struct vt *v, void *arg)
{
	const char **ab = arg;
	char a[512], b[512];

	return VT_RC(rename(vt_path(v, ab[0], a, sizeof(a)), vt_path(v, ab[1], b, sizeof(b))));
}

static int out_rename(struct vt *v, const char *from, const char *to)
{
	char a[512], b[512];

	return VT_RC(rename(vt_path(v, from, a, sizeof(a)), vt_path(v, to, b, sizeof(b))));
}

TEST(rename_warm_dir_into_protected_subtree)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/a/b/c/f"), "allowed, cache warm (a, b, c)");
	if (ASSERT_OK(out_rename(&v, "work/a", "vault/a"), "move work/a under vault/ (outside the job)")) {
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/a/b/c/f")),
			    "refused at once: no stale allow from the cache");
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/a/b/c")), "the directory too");
	}
	vt_teardown(&v);
}

TEST(rename_warm_ancestor_into_protected_subtree)
{
	struct vt v;

	if (setup(&v))
		return;
	/* c is the warm directory; its grandparent a moves */
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/a/b/c/f"), "allowed, cache warm");
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/x/f"), "a sibling tree warm too");
	if (ASSERT_OK(out_rename(&v, "work", "vault/work"), "move work/ itself under vault/")) {
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/work/a/b/c/f")), "deep file refused");
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/work/x/f")), "sibling refused");
	}
	vt_teardown(&v);
}

TEST(rename_out_of_protected_subtree_no_stale_deny)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd_warm, "vault/s/t/f")), "refused, cache warm (s, t)");
	if (ASSERT_OK(out_rename(&v, "vault/s", "work/s"), "move vault/s out (outside the job)"))
		ASSERT_OK(vt_run(&v, open_rd, "work/s/t/f"), "allowed where it is now");
	vt_teardown(&v);
}

TEST(job_renames_warm_dir_then_reads)
{
	const char *ab[2] = { "work/a", "vault/a" };
	struct vt v;

	if (setup(&v))
		return;
	/* the policy protects vault/ from reads only; whether the job may move
	 * a directory into it or not, it must not read it there afterwards */
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/a/b/c/f"), "allowed, cache warm");
	if (vt_run(&v, do_rename, ab) == 0)
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/a/b/c/f")), "and cannot read it there");
	else
		ASSERT_OK(vt_run(&v, open_rd, "work/a/b/c/f"), "refused to move it: still readable where it is");
	vt_teardown(&v);
}

static int do_exchange(struct vt *v, void *arg)
{
	const char **ab = arg;
	char a[512], b[512];

	return VT_RC(syscall(SYS_renameat2, AT_FDCWD, vt_path(v, ab[0], a, sizeof(a)), AT_FDCWD,
			     vt_path(v, ab[1], b, sizeof(b)), RENAME_EXCHANGE));
}

TEST(rename_exchange_warm_dirs)
{
	const char *ab[2] = { "work/x", "vault/s" };
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/x/f"), "work/x warm (allowed)");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd_warm, "vault/s/t/f")), "vault/s warm (refused)");
	if (ASSERT_OK(vt_run_outside(&v, do_exchange, ab), "exchange work/x and vault/s")) {
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/s/f")), "the old work/x, now in vault");
		ASSERT_OK(vt_run(&v, open_rd, "work/x/t/f"), "the old vault/s, now in work");
	}
	vt_teardown(&v);
}

TEST(push_invalidates_warm_entries)
{
	struct kg_policy_error perr;
	struct kg_policy_doc *doc2;
	uint32_t id2 = 0, old = 0;
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/a/b/c/f"), "allowed under the first generation");
	doc2 = kg_policy_load_buffer(policy_pushed, strlen(policy_pushed), "vt-policy-2", v.home,
				     &perr);
	if (ASSERT_TRUE(doc2 != NULL, "second policy parses") &&
	    ASSERT_OK(kg_maps_install(v.l, doc2, &id2, NULL), "install the second generation") &&
	    ASSERT_OK(kg_maps_switch_job(v.l, v.cg.id, id2, &old), "switch the job")) {
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd_warm, "work/a/b/c/f")),
			    "refused under the pushed generation");
		ASSERT_OK(kg_maps_switch_job(v.l, v.cg.id, old, &id2), "switch back");
		ASSERT_OK(vt_run(&v, open_rd, "work/a/b/c/f"), "allowed again under the first");
		kg_maps_remove_policy(v.l, id2);
	}
	kg_policy_free(doc2);
	vt_teardown(&v);
}

TEST(bind_mount_of_warm_dirs)
{
	struct vt v;
	char a[512], b[512];

	if (setup(&v))
		return;
	/* a protected tree, warm, bind-mounted into the allowed area */
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd_warm, "vault/s/t/f")), "vault/s warm (refused)");
	if (ASSERT_OK(mount(vt_path(&v, "vault/s", a, sizeof(a)), vt_path(&v, "work/m", b, sizeof(b)),
			    NULL, MS_BIND, NULL), "bind vault/s onto work/m")) {
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "work/m/t/f")), "refused through the bind");
		umount2(b, MNT_DETACH);
	}
	/* an allowed tree, warm ("nothing up to the top" cached), bind-mounted
	 * under the protected one: the mount point's ancestors still count */
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/a/b/c/f"), "work/a warm (allowed)");
	vt_mkdirs(&v, "vault/m");
	if (ASSERT_OK(mount(vt_path(&v, "work/a", a, sizeof(a)), vt_path(&v, "vault/m", b, sizeof(b)),
			    NULL, MS_BIND, NULL), "bind work/a onto vault/m")) {
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/m/b/c/f")),
			    "refused below the protected mount point");
		ASSERT_OK(vt_run(&v, open_rd, "work/a/b/c/f"), "still allowed by its own name");
		umount2(b, MNT_DETACH);
	}
	vt_teardown(&v);
}

TEST(hardlink_names_decided_live)
{
	struct vt v;
	char a[512], b[512];

	if (setup(&v))
		return;
	/* a second name made after the policy, outside the job: the policy's
	 * hardlink scan did not see it, so each name is decided by its own
	 * ancestors.  Whatever the allowed name did, the protected one stays
	 * refused (the object itself is never cached). */
	if (!ASSERT_OK(link(vt_path(&v, "vault/k", a, sizeof(a)), vt_path(&v, "work/x/k", b, sizeof(b))),
		       "hardlink vault/k as work/x/k"))
		goto out;
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd_warm, "vault/k")), "protected name refused");
	vt_run(&v, open_rd_warm, "work/x/k");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/k")), "still refused after the other name");
out:
	vt_teardown(&v);
}

/* ---- a rename racing the walks ------------------------------------------------- */

struct race {
	struct vt *v;
	atomic_int stop;
	int renames, errors;
};

static void *renamer(void *p)
{
	struct race *r = p;
	int i;

	for (i = 0; i < 400 && !atomic_load(&r->stop); i++) {
		if (out_rename(r->v, "work/r", "vault/r") || out_rename(r->v, "vault/r", "work/r"))
			r->errors++;
		else
			r->renames += 2;
	}
	/* end with the directory protected */
	if (out_rename(r->v, "work/r", "vault/r"))
		r->errors++;
	return NULL;
}

/* the job opens both names in a loop while the directory moves */
static int open_loop(struct vt *v, void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 3000 && !*(volatile int *)(v->shared + 1); i++) {
		open_rd(v, "work/r/f");
		open_rd(v, "vault/r/f");
	}
	return 0;
}

TEST(rename_racing_walks_leaves_no_stale_allow)
{
	struct race r = { 0 };
	pthread_t th;
	pid_t pid;
	int round, status;
	struct vt v;

	if (setup(&v))
		return;
	r.v = &v;
	for (round = 0; round < 5; round++) {
		v.shared[1] = 0;
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			if (kg_cgroup_add_pid(&v.cg, getpid()))
				_exit(3);
			_exit(open_loop(&v, NULL));
		}
		atomic_store(&r.stop, 0);
		pthread_create(&th, NULL, renamer, &r);
		pthread_join(th, NULL);
		v.shared[1] = 1;
		waitpid(pid, &status, 0);
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd, "vault/r/f")),
			    "after the race, the protected name is refused");
		ASSERT_TRUE(vt_refused(vt_run(&v, open_rd_warm, "vault/r/f")), "and stays refused");
		if (out_rename(&v, "vault/r", "work/r"))
			r.errors++;
		ASSERT_OK(vt_run(&v, open_rd_warm, "work/r/f"), "allowed back in work/");
	}
	ASSERT_EQ(r.errors, 0, "every rename of the race succeeded");
	ASSERT_TRUE(r.renames > 0, "the race renamed");
	vt_teardown(&v);
}

static int open_wr(struct vt *v, void *rel)
{
	char p[512];
	int fd = open(vt_path(v, rel, p, sizeof(p)), O_WRONLY);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* Each op has its own slot: a warm read slot says nothing about write. */
TEST(ops_have_their_own_slots)
{
	static const char *pol =
		"{\"version\": 1, \"name\": \"vt-cache-ops\","
		" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
		" \"runtime\": ["
		"  {\"id\": \"ro\", \"file\": {\"prefix\": \"~/work/a/\", \"ops\": [\"write\"]}, \"decision\": \"deny\"},"
		"  {\"id\": \"wo\", \"file\": {\"prefix\": \"~/work/x/\", \"ops\": [\"read\"]}, \"decision\": \"deny\"}"
		" ]}";
	struct vt v;

	if (vt_setup(&v, pol))
		return;
	if (!ASSERT_OK(make_tree(&v), "make tree") || vt_install(&v))
		goto out;
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/a/b/c/f"), "read allowed (read slot warm)");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_wr, "work/a/b/c/f")), "write refused");
	ASSERT_OK(vt_run(&v, open_rd, "work/a/b/c/f"), "read still allowed");
	ASSERT_OK(vt_run(&v, open_wr, "work/x/f"), "write allowed (write slot warm)");
	ASSERT_TRUE(vt_refused(vt_run(&v, open_rd_warm, "work/x/f")), "read refused");
	ASSERT_OK(vt_run(&v, open_wr, "work/x/f"), "write still allowed");
out:
	vt_teardown(&v);
}

/* The cache is in use at all: after a governed read walked work/a/b/c/f,
 * its parent directory holds an entry for this generation and op, under
 * an even rename_lock sequence.  Without rename_lock's address (the loader
 * sets it from kallsyms) every walk sees an odd sequence and records
 * nothing, and the tests above would pass with the cache off. */
TEST(a_walk_records_on_its_directories)
{
	struct kg_dir_cache dc;
	struct vt v;
	char p[512];
	int map, dfd;

	if (setup(&v))
		return;
	map = kg_loader_map_fd(v.l, "kg_dir_cache");
	if (!ASSERT_TRUE(map >= 0, "kg_dir_cache map"))
		goto out;
	ASSERT_OK(vt_run(&v, open_rd_warm, "work/a/b/c/f"), "allowed, cache warm (a, b, c)");
	dfd = open(vt_path(&v, "work/a/b/c", p, sizeof(p)), O_RDONLY | O_DIRECTORY);
	if (!ASSERT_TRUE(dfd >= 0, "open work/a/b/c outside the job"))
		goto out;
	memset(&dc, 0, sizeof(dc));
	if (ASSERT_OK(bpf_map_lookup_elem(map, &dfd, &dc), "an entry on work/a/b/c")) {
		ASSERT_EQ(dc.policy_id, v.policy_id, "of this generation");
		ASSERT_TRUE(dc.known & KG_OP_BIT(KG_OP_READ), "for read");
		ASSERT_EQ(dc.seq & 1, 0, "under an even rename_lock sequence");
		ASSERT_EQ(dc.slot[KG_OP_READ].rule_id, 0, "no rule up to the top");
	}
	close(dfd);
out:
	vt_teardown(&v);
}
