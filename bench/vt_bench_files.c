// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_bench_files.c - file-heavy work in full mode, measured inside the VM.
 *
 * A benchmark, not a test: like vt_bench it runs only when the guest was
 * booted by `vmtests/run.sh BUILD --bench` (KGATE_VM_BENCH=1) and SKIPs at
 * once otherwise.
 *
 * What an agent does all day to a source tree: a tree of VF_FILES files of
 * 4 KiB (VF_DIRS directories of VF_PER_DIR files, seven levels below /)
 * and three real tools from the guest's busybox, each run as a whole
 * process (fork + execve + wait, timed by the worker that starts it):
 *
 *   grep -r -F  open + read + close of every file (a fixed needle that is
 *               not there, lines of 256 bytes)
 *   stat walk   du -s: lstat of every entry, open + getdents of every dir
 *   cp -r       read every file, create + write its copy (then removed,
 *               outside the timed window)
 *
 * Arms: ungoverned (kgate loaded, the job attached, the worker in a sibling
 * cgroup) and governed (in the job: BPF LSM + cgroup-BPF + the job's
 * seccomp filter, as a full-mode `kgate run` child).  Policies: the bench
 * base policy plus 10 file rules (13 rules in all, the size of a typical
 * hand-written policy) and plus 1,000 file rules, as two generations;
 * switching is one map update.  Every round visits both sizes in rotated
 * order and at each runs the two arms in rotated order: the figure of an
 * arm is the minimum over rounds, the ratio both min(governed) /
 * min(ungoverned) and the median of same-round ratios.
 *
 * The decision cache of the LSM hooks is per policy generation: the first
 * governed run after a switch may pay the cold walks.  Each worker is a
 * fresh process, so the figures include whatever a new agent process pays.
 *
 * Output: "KGATE-BENCH {json}" lines of kind files_setup, files and
 * files_enforcement (bench/vm.sh turns them into a report section).  The
 * only assertion is enforcement: every tool exits 0 in both arms and the
 * governed worker cannot read <tmp>/deny.
 */
#include <sys/utsname.h>

#include "testlib.h"
#include "bench.h"
#include "kernel/selfprotect.h"

#define VF_DIRS		50
#define VF_PER_DIR	100
#define VF_FILES	(VF_DIRS * VF_PER_DIR)
#define VF_FILE_BYTES	4096
#define VF_NSIZES	2
#define VF_MAX_ROUNDS	10
#define VF_BUSYBOX	"/bin/busybox"

enum { T_GREP, T_STAT, T_CP, T_MAX };
static const char *const vf_tool_names[T_MAX] = { "grep -r", "stat walk (du -s)", "cp -r" };
static const long vf_sizes[VF_NSIZES] = { 10, 1000 };
enum { VA_FREE, VA_GOV, VA_MAX };
static const char *const vf_arm_names[VA_MAX] = { "ungoverned", "governed" };

/* Shared with a worker: one run of each tool. */
struct vf_shm {
	uint64_t ns[T_MAX];
	int rc[T_MAX];
	int deny_refused;	/* governed: opening <tmp>/deny/f failed with EPERM/EACCES */
	int deny_ok;		/* ... and succeeded (enforcement broken) */
};

struct vf_warg {
	struct bench *b;
	struct vf_shm *shm;
	bool governed;
	int seq;		/* names the cp -r destination */
};

struct vf_state {
	struct bench b;
	struct vf_shm *shm;
	struct kg_policy_doc *doc[VF_NSIZES];
	uint32_t policy_id[VF_NSIZES];
	int rounds;
	/* [round][size][arm][tool] in ns; 0 = no figure */
	uint64_t ns[VF_MAX_ROUNDS][VF_NSIZES][VA_MAX][T_MAX];
	int tool_failures, worker_failures, deny_ok, deny_checked;
	double setup_ms;
};

static void vf_emit(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));

	if (s)
		printf("KGATE-BENCH %s\n", s);
	fflush(stdout);
	free(s);
	json_decref(j);
}

/* ---- the tree ------------------------------------------------------------------- */

/* <tmp>/heavy/src/lib/dNN/fNNN.c, 4 KiB each, text that greps like code */
static int vf_make_tree(const char *tmp)
{
	static const char *const levels[] = { "heavy", "heavy/src", "heavy/src/lib" };
	char path[512], buf[VF_FILE_BYTES];
	size_t i, off;
	int d, f, fd;

	for (i = 0; i < ARRAY_SIZE(levels); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp, levels[i]);
		if (mkdir(path, 0755))
			return -errno;
	}
	for (off = 0; off < sizeof(buf); off++)
		buf[off] = (off % 256 == 255) ? '\n' : "static int value = 42; /* x */ "[off % 32];
	for (d = 0; d < VF_DIRS; d++) {
		snprintf(path, sizeof(path), "%s/heavy/src/lib/d%02d", tmp, d);
		if (mkdir(path, 0755))
			return -errno;
		for (f = 0; f < VF_PER_DIR; f++) {
			snprintf(path, sizeof(path), "%s/heavy/src/lib/d%02d/f%03d.c", tmp, d, f);
			fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
			if (fd < 0)
				return -errno;
			if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
				close(fd);
				return -EIO;
			}
			close(fd);
		}
	}
	return 0;
}

/* the files the rules name (elsewhere in the tmp tree, as in vt_bench) */
static int vf_make_rule_files(const char *tmp, long n)
{
	char path[512];
	long i;
	int fd;

	snprintf(path, sizeof(path), "%s/rules", tmp);
	if (mkdir(path, 0755))
		return -errno;
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/rules/r%ld", tmp, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/deny", tmp);
	if (mkdir(path, 0755))
		return -errno;
	snprintf(path, sizeof(path), "%s/deny/f", tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static struct kg_policy_doc *vf_policy(struct bench *b, long n)
{
	struct kg_policy_error perr = {};
	struct kg_policy_doc *doc;
	struct bench_str rules = {};
	char *json, msg[1024];
	long i;

	for (i = 0; i < n; i++)
		bench_str_add(&rules, ",{\"id\":\"r%ld\",\"file\":{\"path\":\"%s/rules/r%ld\","
			      "\"ops\":[\"read\",\"write\"]},\"decision\":\"allow\"}", i, b->tmp, i);
	json = bench_base_policy(b, rules.s ? rules.s : "");
	free(rules.s);
	if (!json)
		return NULL;
	doc = kg_policy_load_buffer(json, strlen(json), "vm-bench-files", NULL, &perr);
	free(json);
	if (!doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		bench_log("files: policy: %s", msg);
	}
	return doc;
}

/* ---- workers -------------------------------------------------------------------- */

/* Run busybox with argv (stdout/stderr to /dev/null); its exit status, or
 * -1.  *ns: fork to reaped. */
static int vf_run_tool(char *const argv[], uint64_t *ns)
{
	uint64_t t0 = bench_now();
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(VF_BUSYBOX, argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	*ns = bench_now() - t0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int vf_worker(void *p)
{
	struct vf_warg *a = p;
	struct vf_shm *shm = a->shm;
	char tree[512], dst[512], deny[512];
	uint64_t ns;
	int fd;

	snprintf(tree, sizeof(tree), "%s/heavy/src", a->b->tmp);
	snprintf(dst, sizeof(dst), "%s/copy-%d", a->b->tmp, a->seq);
	{
		/* a fixed needle that is not there: every byte of every file is
		 * read; lines of 256 bytes keep busybox's per-line work (emulated
		 * under TCG like everything else) from hiding the kernel's */
		char *argv[] = { "busybox", "grep", "-r", "-l", "-F", "kgate-needle", tree, NULL };
		int rc = vf_run_tool(argv, &shm->ns[T_GREP]);

		shm->rc[T_GREP] = rc == 1 ? 0 : rc == 0 ? 1 : rc;	/* 1 = not found */
	}
	{
		char *argv[] = { "busybox", "du", "-s", tree, NULL };

		shm->rc[T_STAT] = vf_run_tool(argv, &shm->ns[T_STAT]);
	}
	{
		char *argv[] = { "busybox", "cp", "-r", tree, dst, NULL };
		char *rm[] = { "busybox", "rm", "-rf", dst, NULL };

		shm->rc[T_CP] = vf_run_tool(argv, &shm->ns[T_CP]);
		if (vf_run_tool(rm, &ns))
			shm->rc[T_CP] = 200;
	}
	if (a->governed) {
		snprintf(deny, sizeof(deny), "%s/deny/f", a->b->tmp);
		fd = open(deny, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			shm->deny_ok = 1;
			close(fd);
		} else if (errno == EPERM || errno == EACCES) {
			shm->deny_refused = 1;
		}
	}
	return 0;
}

static int vf_run_worker(struct vf_state *s, int arm, int seq, uint64_t out[T_MAX])
{
	struct vf_warg wa = { .b = &s->b, .shm = s->shm, .governed = arm == VA_GOV, .seq = seq };
	int t;

	memset(s->shm, 0, sizeof(*s->shm));
	if (bench_wait(&s->b, bench_spawn(&s->b, arm == VA_GOV ? ARM_GOV : ARM_FREE,
					   vf_worker, &wa))) {
		s->worker_failures++;
		return -1;
	}
	for (t = 0; t < T_MAX; t++) {
		if (s->shm->rc[t]) {
			bench_log("files: %s %s exited %d", vf_arm_names[arm], vf_tool_names[t],
				  s->shm->rc[t]);
			s->tool_failures++;
			continue;
		}
		out[t] = s->shm->ns[t];
	}
	if (arm == VA_GOV) {
		s->deny_checked++;
		if (s->shm->deny_ok || !s->shm->deny_refused)
			s->deny_ok++;
	}
	return 0;
}

/* ---- set-up ------------------------------------------------------------------------ */

static int vf_load(struct vf_state *s)
{
	struct bench *b = &s->b;
	struct kg_sp_dirs dirs;
	char dir[sizeof(b->tmp) + 16];
	int i, err;

	if (!b->full)
		return -ENOTSUP;
	for (i = 0; i < VF_NSIZES; i++) {
		err = kg_maps_install(b->l, s->doc[i], &s->policy_id[i], NULL);
		if (err)
			return err;
	}
	err = kg_maps_add_job(b->l, b->job.id, 1, s->policy_id[0], 0);
	if (err)
		return err;
	b->registered = true;
	/* kgate's own directories, registered as `kgate run` does (vt_bench) */
	snprintf(dir, sizeof(dir), "%s/state", b->tmp);
	setenv("KGATE_STATE_DIR", dir, 1);
	snprintf(dir, sizeof(dir), "%s/audit", b->tmp);
	setenv("KGATE_AUDIT_DIR", dir, 1);
	err = kg_selfprotect_dirs(&dirs);
	if (!err)
		err = kg_selfprotect_register(b->l, &dirs);
	if (!err)
		err = kg_maps_set_jobs_root(b->l, b->job.path);
	if (err)
		return err;
	b->doc = s->doc[0];	/* the seccomp filter of bench_spawn */
	return bench_set_attached(b, true);
}

static double vf_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void vf_emit_results(struct vf_state *s)
{
	int z, t, r;

	for (z = 0; z < VF_NSIZES; z++) {
		for (t = 0; t < T_MAX; t++) {
			uint64_t min[VA_MAX] = { 0 };
			double ratios[VF_MAX_ROUNDS];
			json_t *runs[VA_MAX];
			int nr = 0, a;

			for (a = 0; a < VA_MAX; a++)
				runs[a] = json_array();
			for (r = 0; r < s->rounds; r++) {
				for (a = 0; a < VA_MAX; a++) {
					uint64_t v = s->ns[r][z][a][t];

					if (!v)
						continue;
					json_array_append_new(runs[a], json_real(vf_ms(v)));
					if (!min[a] || v < min[a])
						min[a] = v;
				}
				if (s->ns[r][z][VA_FREE][t] && s->ns[r][z][VA_GOV][t])
					ratios[nr++] = (double)s->ns[r][z][VA_GOV][t] /
						       (double)s->ns[r][z][VA_FREE][t];
			}
			vf_emit(json_pack("{s:s,s:I,s:s,s:i,s:f,s:f,s:f,s:f,s:o,s:o}",
					  "kind", "files", "rules", (json_int_t)vf_sizes[z] + 3,
					  "tool", vf_tool_names[t], "rounds", s->rounds,
					  "ungoverned_min_ms", vf_ms(min[VA_FREE]),
					  "governed_min_ms", vf_ms(min[VA_GOV]),
					  "ratio_of_min", min[VA_FREE] ? (double)min[VA_GOV] / (double)min[VA_FREE] : 0.0,
					  "ratio_median", nr ? bench_median_d(ratios, nr) : 0.0,
					  "ungoverned_ms", runs[VA_FREE], "governed_ms", runs[VA_GOV]));
		}
	}
}

TEST(file_heavy_work)
{
	static struct vf_state s;
	struct utsname u;
	uint64_t t0 = bench_now();
	int r, k, a, i, seq = 0;

	if (!getenv("KGATE_VM_BENCH") || strcmp(getenv("KGATE_VM_BENCH"), "1"))
		SKIP("a benchmark: runs only with vmtests/run.sh --bench (KGATE_VM_BENCH=1)");
	if (!getenv("KGATE_VM_CONFIG") || strcmp(getenv("KGATE_VM_CONFIG"), "full"))
		SKIP("needs the VM with BPF LSM (KGATE_VM_CONFIG=full)");
	if (geteuid() != 0)
		SKIP("needs root");
	if (access(VF_BUSYBOX, X_OK))
		SKIP("no " VF_BUSYBOX " in this guest");
	s.rounds = bench_quick() ? 2 : 5;
	if (getenv("KGATE_BENCH_ROUNDS") && atoi(getenv("KGATE_BENCH_ROUNDS")) > 0)
		s.rounds = atoi(getenv("KGATE_BENCH_ROUNDS")) * (bench_quick() ? 1 : 2);
	if (s.rounds > VF_MAX_ROUNDS)
		s.rounds = VF_MAX_ROUNDS;
	if (!ASSERT_OK(bench_setup(&s.b, "files"), "load kgate, cgroups, tmp dir"))
		goto out;
	if (!s.b.full) {
		bench_teardown(&s.b);
		SKIP("BPF LSM not active in this guest");
	}
	s.shm = bench_shm(sizeof(*s.shm));
	if (!ASSERT_TRUE(s.shm != NULL, "shared memory"))
		goto out;
	if (!ASSERT_OK(vf_make_tree(s.b.tmp), "a tree of 5,000 files of 4 KiB") ||
	    !ASSERT_OK(vf_make_rule_files(s.b.tmp, vf_sizes[VF_NSIZES - 1]), "the files rules name"))
		goto out;
	for (i = 0; i < VF_NSIZES; i++) {
		s.doc[i] = vf_policy(&s.b, vf_sizes[i]);
		if (!ASSERT_TRUE(s.doc[i] != NULL, "bench policy parses"))
			goto out;
	}
	if (!ASSERT_OK(vf_load(&s), "install the policies, register the job"))
		goto out;
	s.setup_ms = (double)(bench_now() - t0) / 1e6;
	/* warm the page cache and both arms' paths once (not counted) */
	{
		uint64_t scratch[T_MAX];

		vf_run_worker(&s, VA_FREE, seq++, scratch);
		vf_run_worker(&s, VA_GOV, seq++, scratch);
	}
	for (r = 0; r < s.rounds; r++) {
		for (k = 0; k < VF_NSIZES; k++) {
			int z = (k + r) % VF_NSIZES;
			uint32_t old;

			if (kg_maps_switch_job(s.b.l, s.b.job.id, s.policy_id[z], &old)) {
				s.worker_failures++;
				continue;
			}
			for (a = 0; a < VA_MAX; a++) {
				int arm = (a + r + k) % VA_MAX;

				bench_log("files: round %d/%d, %ld rules, %s", r + 1, s.rounds,
					  vf_sizes[z] + 3, vf_arm_names[arm]);
				vf_run_worker(&s, arm, seq++, s.ns[r][z][arm]);
			}
		}
	}
	uname(&u);
	vf_emit(json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:b,s:f}", "kind", "files_setup",
			  "kernel", u.release, "files", VF_FILES, "dirs", VF_DIRS,
			  "file_bytes", VF_FILE_BYTES, "rounds", s.rounds, "quick", bench_quick(),
			  "setup_ms", s.setup_ms));
	vf_emit_results(&s);
	vf_emit(json_pack("{s:s,s:b,s:i,s:i,s:i,s:f}", "kind", "files_enforcement",
			  "clean", !s.tool_failures && !s.deny_ok && !s.worker_failures,
			  "tool_failures", s.tool_failures, "deny_not_refused", s.deny_ok,
			  "worker_failures", s.worker_failures,
			  "seconds", (double)(bench_now() - t0) / 1e9));
	ASSERT_EQ(s.tool_failures, 0, "every tool run succeeded in both arms");
	ASSERT_EQ(s.worker_failures, 0, "every worker ran");
	ASSERT_TRUE(s.deny_checked > 0, "the governed worker checked the deny rule");
	ASSERT_EQ(s.deny_ok, 0, "every governed worker was refused <tmp>/deny/f");
out:
	if (s.shm)
		munmap(s.shm, sizeof(*s.shm));
	s.b.doc = NULL;		/* the docs are ours */
	bench_teardown(&s.b);
	for (i = 0; i < VF_NSIZES; i++)
		kg_policy_free(s.doc[i]);
}
