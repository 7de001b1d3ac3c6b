// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_files.c - file-heavy work in degraded mode (host), issue 19/13.
 *
 * What an agent does all day to a source tree: BF_FILES files of 4 KiB
 * (BF_DIRS directories of BF_PER_DIR files) in a workspace next to a
 * hidden ~/.ssh and a read-only ~/src (the coding-agent policy's three
 * file rules that exist on every machine), and three real tools, each run
 * as a whole process (fork + execve + wait, timed by the worker that
 * starts it):
 *
 *   grep -r     open + read + close of every file
 *   stat walk   du -s: lstat of every entry, open + getdents of every dir
 *   cp -r       read every file, create + write its copy (removed outside
 *               the timed window)
 *
 * Arms, every round in rotated order:
 *   ungoverned     kgate loaded, the job attached, the worker in a sibling
 *                  cgroup;
 *   governed       in the job, set up as a degraded `kgate run` child: its
 *                  own mount namespace with the policy's mounts, Landlock
 *                  for the rest, the seccomp filter;
 *   landlock-only  the same, with every file rule planned by Landlock
 *                  alone (the plan before the mounts, for comparison).
 * Figures: minimum over rounds per arm; ratio = median of same-round
 * ratios to the ungoverned arm.  Goal (issue 19): governed <= 1.05x.
 *
 * Enforcement is checked, never timed: every governed worker must fail to
 * read the hidden key and to write into the read-only tree.
 */
#include <sched.h>

#include "bench.h"

#define BF_DIRS		50
#define BF_PER_DIR	100
#define BF_FILES	(BF_DIRS * BF_PER_DIR)
#define BF_FILE_BYTES	4096
#define BF_MAX_ROUNDS	15

enum { T_GREP, T_STAT, T_CP, T_MAX };
static const char *const tool_names[T_MAX] = { "grep -r", "stat walk (du -s)", "cp -r" };
enum { A_FREE, A_GOV, A_LL, A_MAX };
static const char *const arm_names[A_MAX] = { "ungoverned", "governed", "landlock-only" };

struct bf_shm {
	uint64_t ns[T_MAX];
	int tool_rc[T_MAX];
	int key_read, ro_written;	/* enforcement probes (governed arms) */
};

struct bf {
	struct bench b;
	char home[300], tree[400], copy[400], key[400], ro[400];
	struct kg_landlock_plan *plan[A_MAX];
	struct bf_shm *shm;
};

static int write_tree(struct bf *f)
{
	static char buf[BF_FILE_BYTES];
	char path[600];
	int d, i, fd;

	memset(buf, 'a', sizeof(buf));
	memcpy(buf + 100, "needle-not-here", 6);	/* grep searches, never finds */
	for (d = 0; d < BF_DIRS; d++) {
		snprintf(path, sizeof(path), "%s/d%02d", f->tree, d);
		if (kg_mkdir_p(path, 0755))
			return -1;
		for (i = 0; i < BF_PER_DIR; i++) {
			snprintf(path, sizeof(path), "%s/d%02d/f%03d.c", f->tree, d, i);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
				if (fd >= 0)
					close(fd);
				return -1;
			}
			close(fd);
		}
	}
	return 0;
}

static int make_home(struct bf *f)
{
	char path[600];
	int fd;

	snprintf(f->home, sizeof(f->home), "%s/home", f->b.tmp);
	snprintf(f->tree, sizeof(f->tree), "%s/workspace/tree", f->home);
	snprintf(f->copy, sizeof(f->copy), "%s/workspace/copy", f->home);
	snprintf(f->key, sizeof(f->key), "%s/.ssh/id", f->home);
	snprintf(f->ro, sizeof(f->ro), "%s/src/ref/README", f->home);
	snprintf(path, sizeof(path), "%s/.ssh", f->home);
	if (kg_mkdir_p(path, 0700))
		return -1;
	snprintf(path, sizeof(path), "%s/src/ref", f->home);
	if (kg_mkdir_p(path, 0755))
		return -1;
	fd = open(f->key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "KEY\n", 4) != 4)
		return -1;
	close(fd);
	fd = open(f->ro, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "README\n", 7) != 7)
		return -1;
	close(fd);
	return write_tree(f);
}

/* The coding-agent policy's file rules that exist here, and its workspace. */
static int install_policy(struct bf *f)
{
	char json[4096];

	snprintf(json, sizeof(json),
		 "{\"version\":1,\"name\":\"bench-files\",\"default\":\"allow\",\"runtime\":["
		 "{\"id\":\"workspace-rw\",\"file\":{\"prefix\":\"%s/workspace/\",\"ops\":[\"read\","
		 "\"write\",\"create\",\"unlink\",\"rename\",\"link\"]},\"decision\":\"allow\"},"
		 "{\"id\":\"repo-ro\",\"file\":{\"prefix\":\"%s/src/\",\"ops\":[\"write\",\"create\"]},"
		 "\"decision\":\"deny\"},"
		 "{\"id\":\"no-ssh-keys\",\"file\":{\"prefix\":\"%s/.ssh/\",\"ops\":[\"read\",\"write\","
		 "\"create\"]},\"decision\":\"deny\"}]}", f->home, f->home, f->home);
	if (bench_policy(&f->b, json, NULL, NULL))
		return -1;
	f->plan[A_GOV] = f->b.ll;	/* the default plan: mounts + Landlock */
	return kg_landlock_plan_flags(f->b.doc, KG_LL_PLAN_LANDLOCK_ONLY, &f->plan[A_LL]) ? -1 : 0;
}

static uint64_t run_tool(char *const argv[], int *rc)
{
	uint64_t t0 = bench_now();
	int st = 0;
	pid_t p = fork();

	if (p == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (p < 0 || waitpid(p, &st, 0) < 0) {
		*rc = -1;
		return 0;
	}
	*rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return bench_now() - t0;
}

static int probe_denials(struct bf *f)
{
	char buf[8];
	int fd = open(f->key, O_RDONLY | O_CLOEXEC);

	f->shm->key_read = fd >= 0 && read(fd, buf, sizeof(buf)) > 0;
	if (fd >= 0)
		close(fd);
	fd = open(f->ro, O_WRONLY | O_APPEND | O_CLOEXEC);
	f->shm->ro_written = fd >= 0 && write(fd, "x", 1) == 1;
	if (fd >= 0)
		close(fd);
	return 0;
}

/* One worker: govern itself as a degraded `kgate run` child, run the tools. */
static int worker(struct bf *f, int arm)
{
	struct kg_seccomp_opts so = { .degraded = true };
	const struct kg_landlock_plan *plan = f->plan[arm];
	char *grep[] = { "/usr/bin/grep", "-r", "-q", "needle-never-found", f->tree, NULL };
	char *du[] = { "/usr/bin/du", "-s", f->tree, NULL };
	char *cp[] = { "/usr/bin/cp", "-r", f->tree, f->copy, NULL };
	char *const *argv[T_MAX] = { grep, du, cp };
	int t;

	if (kg_cgroup_add_pid(arm == A_FREE ? &f->b.free_cg : &f->b.job, getpid()))
		return 120;
	if (arm != A_FREE) {
		if (unshare(CLONE_NEWNS) < 0 || kg_mntns_make_slave() < 0 ||
		    kg_mnt_apply(&plan->mounts) < 0)
			return 121;
		if (kg_landlock_apply(plan) < 0)
			return 122;
		if (kg_seccomp_load(f->b.doc, &so, NULL) < 0)
			return 123;
		probe_denials(f);
	}
	for (t = 0; t < T_MAX; t++)
		f->shm->ns[t] = run_tool(argv[t], &f->shm->tool_rc[t]);
	return 0;
}

static int run_arm(struct bf *f, int arm)
{
	char *rm[] = { "/bin/rm", "-rf", f->copy, NULL };
	int rc, rrc;
	pid_t p;

	memset(f->shm, 0, sizeof(*f->shm));
	fflush(NULL);
	p = fork();
	if (p == 0)
		_exit(worker(f, arm));
	rc = bench_wait(&f->b, p);
	run_tool(rm, &rrc);	/* outside the timed window */
	return rc;
}

int main(void)
{
	static struct bf f;
	uint64_t best[A_MAX][T_MAX];
	double ratio[A_MAX][T_MAX][BF_MAX_ROUNDS];
	int rounds = bench_quick() ? 3 : 7, r, a, t, n = 0;
	int failures = 0, leaks = 0;
	json_t *root, *res;
	char rs[32];

	if (getenv("KGATE_BENCH_ROUNDS"))
		rounds = atoi(getenv("KGATE_BENCH_ROUNDS"));
	if (rounds < 1 || rounds > BF_MAX_ROUNDS)
		rounds = BF_MAX_ROUNDS;
	if (bench_setup(&f.b, "files")) {
		bench_teardown(&f.b);
		return BENCH_EXIT_CANNOT_RUN;
	}
	if (f.b.full) {
		bench_md("## File-heavy work in degraded mode (bench_files)\n\n"
			 "Not measured: this machine has BPF LSM (full mode); see vt_bench_files.\n\n");
		root = json_pack("{s:b,s:s}", "measured", 0, "why", "full mode");
		bench_emit("bench_files", root);
		json_decref(root);
		bench_teardown(&f.b);
		return 0;
	}
	f.shm = bench_shm(sizeof(*f.shm));
	if (!f.shm || make_home(&f) || install_policy(&f) ||
	    access("/usr/bin/grep", X_OK) || access("/usr/bin/du", X_OK) ||
	    access("/usr/bin/cp", X_OK)) {
		bench_log("files: cannot set up (tree, policy or tools)");
		bench_teardown(&f.b);
		return BENCH_EXIT_CANNOT_RUN;
	}
	memset(best, 0xff, sizeof(best));
	for (r = 0; r < rounds; r++) {
		uint64_t ns[A_MAX][T_MAX];
		bool ok = true;

		for (a = 0; a < A_MAX; a++) {
			int arm = (a + r) % A_MAX;

			if (run_arm(&f, arm)) {
				failures++;
				ok = false;
				continue;
			}
			for (t = 0; t < T_MAX; t++) {
				ns[arm][t] = f.shm->ns[t];
				if (f.shm->tool_rc[t] != (t == T_GREP ? 1 : 0))
					failures++, ok = false;	/* grep -q: 1 = not found */
				if (ns[arm][t] < best[arm][t])
					best[arm][t] = ns[arm][t];
			}
			if (arm != A_FREE && (f.shm->key_read || f.shm->ro_written))
				leaks++;
		}
		if (!ok)
			continue;
		for (a = 0; a < A_MAX; a++)
			for (t = 0; t < T_MAX; t++)
				ratio[a][t][n] = (double)ns[a][t] / (double)ns[A_FREE][t];
		n++;
	}
	bench_md("## File-heavy work in degraded mode (bench_files)\n\n");
	bench_md("%d files of %d bytes in %d directories; the coding-agent policy's three file "
		 "rules (~/.ssh hidden, ~/src read-only, the workspace allowed). Each tool is one "
		 "process (fork + execve + wait) started by a worker set up like a degraded `kgate "
		 "run` child; %d rounds, arms in rotated order. ms = minimum over rounds; ratio = "
		 "median of same-round ratios to the ungoverned arm. Goal: governed <= 1.05x "
		 "(issue 19). landlock-only = the plan before mounts (%zu Landlock grants; now %zu "
		 "grants and %zu mounts).\n\n", BF_FILES, BF_FILE_BYTES, BF_DIRS, rounds,
		 f.plan[A_LL]->ngrants, f.plan[A_GOV]->ngrants, f.plan[A_GOV]->mounts.n);
	bench_md("| tool | ungoverned ms | governed ms | governed ratio | landlock-only ms | "
		 "landlock-only ratio |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
	res = json_array();
	for (t = 0; t < T_MAX; t++) {
		double g = bench_median_d(ratio[A_GOV][t], n), l = bench_median_d(ratio[A_LL][t], n);
		char rl[32];

		bench_md("| %s | %.1f | %.1f | %s | %.1f | %s |\n", tool_names[t],
			 best[A_FREE][t] / 1e6, best[A_GOV][t] / 1e6, bench_ratio_str(g, rs, sizeof(rs)),
			 best[A_LL][t] / 1e6, bench_ratio_str(l, rl, sizeof(rl)));
		json_array_append_new(res, json_pack("{s:s,s:f,s:f,s:f,s:f,s:f}", "tool", tool_names[t],
			"ungoverned_min_ms", best[A_FREE][t] / 1e6, "governed_min_ms",
			best[A_GOV][t] / 1e6, "governed_ratio", g, "landlock_only_min_ms",
			best[A_LL][t] / 1e6, "landlock_only_ratio", l));
	}
	bench_md("\nEnforcement: %s.\n\n", !failures && !leaks ?
		 "every tool succeeded in every arm; every governed worker was refused the key "
		 "and the read-only tree" : "NOT clean (see the JSON)");
	root = json_pack("{s:b,s:s,s:i,s:i,s:i,s:o,s:{s:i,s:i},s:{s:I,s:I,s:I}}", "measured", 1,
			 "mode", "degraded", "files", BF_FILES, "file_bytes", BF_FILE_BYTES, "rounds",
			 rounds, "results", res, "enforcement", "failures", failures,
			 "denials_not_refused", leaks, "plan", "landlock_only_grants",
			 (json_int_t)f.plan[A_LL]->ngrants, "grants", (json_int_t)f.plan[A_GOV]->ngrants,
			 "mounts", (json_int_t)f.plan[A_GOV]->mounts.n);
	bench_emit("bench_files", root);
	json_decref(root);
	kg_landlock_plan_free(f.plan[A_LL]);
	bench_teardown(&f.b);
	(void)arm_names;
	return 0;
}
