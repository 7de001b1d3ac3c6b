// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_bench.c - the BPF LSM path measured inside the VM (full config).
 *
 * A benchmark, not a test: it runs only when the guest was booted by
 * `vmtests/run.sh BUILD --bench` (KGATE_VM_BENCH=1 on the kernel command
 * line, which the kernel hands to /init as an environment variable), and
 * SKIPs at once otherwise so `make vmtest` never pays for it.
 *
 * Arms, per operation (bench/loops.h: openat+close at depth 1/5/20,
 * fork+execve+wait of a copy of true, loopback TCP connect, getpid):
 *
 *   none        kgate not loaded at all: measured with every kg_* program
 *               unloaded (the LSM programs are global, so "not attached to
 *               this cgroup" is not enough), before each load cycle and
 *               after the last one
 *   ungoverned  kgate loaded (LSM + a job's cgroup programs), the worker in
 *               a sibling cgroup
 *   governed    the worker in the job (BPF LSM + cgroup-BPF + seccomp, as a
 *               full-mode `kgate run` child), allowed target
 *   denied      the same, a target the policy refuses
 *
 * File rules: 10, 1,000 and 100,000 exact allow rules on distinct files,
 * installed once per load cycle as three generations; switching the job
 * between them is one map update.  All operations run at 1,000 rules;
 * at 10 and 100,000 only the openat loops.
 *
 * The guest is TCG (slow, noisy): cycles x rounds with the order of sizes
 * and arms rotated, p50 = min over workers of the worker's median, p99 =
 * median over workers, ratios = median of same-round ratios.  Then, with
 * BPF statistics on (/proc/sys/kernel/bpf_stats_enabled), the kernel's own
 * run_time_ns / run_cnt of every kg_* program over an ungoverned pass, a
 * governed pass, and a governed openat pass per rule count.
 *
 * Output: one JSON object per line, prefixed "KGATE-BENCH ", which
 * vmtests/run.sh --bench copies out of the serial log and bench/vm.sh
 * turns into the report.  The only assertion is enforcement: an allowed
 * call that failed or a denied call that succeeded means the figures do
 * not measure what they claim.
 */
#include <sys/utsname.h>

#include "testlib.h"
#include "bench.h"
#include "loops.h"
#include "kernel/selfprotect.h"

#define NSIZES 3
#define SIZE_MAIN 1		/* index of the 1,000-rule policy */
#define MAX_CYCLES 4
#define MAX_ROUNDS 4
#define MAX_WORKERS (MAX_CYCLES * MAX_ROUNDS)
#define MAX_NONE ((MAX_CYCLES + 1) * 2)
#define MAX_PROGS 128

enum { A_NONE, A_FREE, A_GOV, A_DENY, A_MAX };
static const char *const arm_keys[A_MAX] = { "none", "ungoverned", "governed", "denied" };

/* what the VM bench times (OP_UDP is left to the host benches) */
static const enum op_id vb_ops[] = { OP_OPEN1, OP_OPEN5, OP_OPEN20, OP_FORKEXEC, OP_TCP, OP_GETPID };
#define NOPS ARRAY_SIZE(vb_ops)

static bool vb_is_open(enum op_id op)
{
	return op == OP_OPEN1 || op == OP_OPEN5 || op == OP_OPEN20;
}

struct vb_params {
	int cycles, rounds, none_reps;
	long sizes[NSIZES];
	long iters[OP_MAX];
	bool quick;
};

/* Shared with the worker: samples per (op, variant) and outcome counts. */
struct vb_shm {
	bool open_only;
	long n[OP_MAX];
	size_t off[OP_MAX][2];
	uint64_t ok[OP_MAX][2], refused[OP_MAX][2];
	uint32_t samples[];
};

struct vb_warg {
	struct bench *b;
	struct vb_shm *shm;
	bool deny;			/* also the denied variants */
};

/* One figure pair per worker run. */
struct vb_fig {
	bool have;
	double p50, p99;
};

struct vb_state {
	struct vb_params p;
	struct bench b;
	struct vb_shm *shm;
	size_t shm_bytes;
	struct kg_policy_doc *doc[NSIZES];
	uint32_t policy_id[NSIZES];
	double parse_ms[NSIZES], install_ms[MAX_CYCLES][NSIZES], load_ms[MAX_CYCLES];
	int kg_progs_in_none[MAX_CYCLES + 1];
	/* [cycle * rounds + round][arm][size][op] */
	struct vb_fig fig[MAX_WORKERS][A_MAX][NSIZES][OP_MAX];
	struct vb_fig none[MAX_NONE][OP_MAX];
	int none_cycle[MAX_NONE];	/* which none phase (0..cycles) */
	int nnone;
	uint64_t allowed_refused, denied_ok;
	int worker_failures;
};

/* ---- parameters ------------------------------------------------------------ */

static void vb_params_init(struct vb_params *p)
{
	static const long full_iters[OP_MAX] = {
		[OP_OPEN1] = 1500, [OP_OPEN5] = 1500, [OP_OPEN20] = 1500,
		[OP_FORKEXEC] = 40, [OP_TCP] = 400, [OP_GETPID] = 20000,
	};
	int op;

	memset(p, 0, sizeof(*p));
	p->quick = bench_quick();
	p->cycles = p->quick ? 1 : 2;
	p->rounds = 2;
	p->none_reps = 2;
	p->sizes[0] = 10;
	p->sizes[1] = 1000;
	p->sizes[2] = p->quick ? 10000 : 100000;
	if (getenv("KGATE_BENCH_CYCLES"))
		p->cycles = atoi(getenv("KGATE_BENCH_CYCLES"));
	if (getenv("KGATE_BENCH_ROUNDS"))
		p->rounds = atoi(getenv("KGATE_BENCH_ROUNDS"));
	if (p->cycles < 1 || p->cycles > MAX_CYCLES)
		p->cycles = 2;
	if (p->rounds < 1 || p->rounds > MAX_ROUNDS)
		p->rounds = 2;
	for (op = 0; op < OP_MAX; op++)
		p->iters[op] = full_iters[op] ? bench_iters(full_iters[op], 10) : 0;
}

/* KGATE_VM_BENCH=1 in the environment (from the kernel command line). */
static bool vb_requested(void)
{
	const char *v = getenv("KGATE_VM_BENCH");

	return v && !strcmp(v, "1");
}

static void vb_emit(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));

	if (s)
		printf("KGATE-BENCH %s\n", s);
	fflush(stdout);
	free(s);
	json_decref(j);
}

static double vb_ms_since(uint64_t t0)
{
	return (double)(bench_now() - t0) / 1e6;
}

/* ---- the kernel's own statistics -------------------------------------------- */

struct vb_prog {
	uint32_t id;
	char name[BPF_OBJ_NAME_LEN];
	uint64_t run_cnt, run_time_ns;
};

/* Every loaded program whose name starts with kg_; returns the count. */
static int vb_kg_progs(struct vb_prog *out, int max)
{
	uint32_t id = 0;
	int n = 0;

	while (!bpf_prog_get_next_id(id, &id)) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(id);

		if (fd < 0)
			continue;	/* gone meanwhile */
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) && !strncmp(info.name, "kg_", 3)) {
			if (out && n < max) {
				out[n].id = id;
				memcpy(out[n].name, info.name, sizeof(out[n].name));
				out[n].run_cnt = info.run_cnt;
				out[n].run_time_ns = info.run_time_ns;
			}
			n++;
		}
		close(fd);
	}
	return n;
}

static int vb_stats_enable(int on)
{
	const char *path = "/proc/sys/kernel/bpf_stats_enabled";
	char old = '0';
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (read(fd, &old, 1) != 1)
		old = '0';
	if (pwrite(fd, on ? "1" : "0", 1, 0) != 1) {
		close(fd);
		return -1;
	}
	close(fd);
	return old == '1';
}

/* Emit the programs that ran between two snapshots. */
static void vb_emit_prog_delta(const char *pass, long rules, const struct vb_prog *a, int na,
			       const struct vb_prog *z, int nz)
{
	int i, k;

	for (i = 0; i < nz; i++) {
		for (k = 0; k < na && a[k].id != z[i].id; k++)
			;
		if (k == na || z[i].run_cnt <= a[k].run_cnt)
			continue;
		uint64_t cnt = z[i].run_cnt - a[k].run_cnt, ns = z[i].run_time_ns - a[k].run_time_ns;

		vb_emit(json_pack("{s:s,s:s,s:I,s:s,s:I,s:I,s:f}", "kind", "prog", "pass", pass,
				  "rules", (json_int_t)rules, "prog", z[i].name, "id", (json_int_t)z[i].id,
				  "runs", (json_int_t)cnt, "avg_ns", (double)ns / (double)cnt));
	}
}

/* ---- workers ----------------------------------------------------------------- */

static int vb_worker(void *p)
{
	struct vb_warg *a = p;
	struct vb_shm *shm = a->shm;
	struct loops_env e;
	size_t i;
	int v;

	if (loops_env_open(&e, a->b->tmp))	/* O_PATH directory handles */
		return 10;
	for (i = 0; i < NOPS; i++) {
		enum op_id op = vb_ops[i];

		if (shm->open_only && !vb_is_open(op))
			continue;
		for (v = 0; v < 2; v++) {
			if (v && (!a->deny || !op_descs[op].has_deny))
				continue;
			loops_run(&e, op, v, shm->samples + shm->off[op][v], shm->n[op]);
			shm->ok[op][v] = e.ok;
			shm->refused[op][v] = e.refused;
		}
	}
	loops_env_close(&e);
	return 0;
}

static struct vb_fig vb_figure(struct vb_shm *shm, enum op_id op, int v)
{
	struct vb_fig f = { .have = true };
	uint64_t *tmp = calloc(shm->n[op], sizeof(*tmp));
	long i;

	if (!tmp)
		return (struct vb_fig){ 0 };
	for (i = 0; i < shm->n[op]; i++)
		tmp[i] = shm->samples[shm->off[op][v] + i];
	f.p50 = (double)bench_pct(tmp, shm->n[op], 50);
	f.p99 = (double)bench_pct(tmp, shm->n[op], 99);
	free(tmp);
	return f;
}

/* Run one worker in `arm` (A_NONE/A_FREE/A_GOV; A_GOV also does the denied
 * variants) and store its figures in figs[arm..][op]. */
static int vb_run_worker(struct vb_state *s, int arm, bool open_only, struct vb_fig *row_allowed,
			 struct vb_fig *row_denied)
{
	struct vb_warg wa = { .b = &s->b, .shm = s->shm, .deny = arm == A_GOV };
	enum bench_arm barm = arm == A_GOV ? ARM_GOV : arm == A_FREE ? ARM_FREE : ARM_NONE;
	size_t i;

	s->shm->open_only = open_only;
	memset(s->shm->ok, 0, sizeof(s->shm->ok));
	memset(s->shm->refused, 0, sizeof(s->shm->refused));
	if (bench_wait(&s->b, bench_spawn(&s->b, barm, vb_worker, &wa))) {
		s->worker_failures++;
		return -1;
	}
	for (i = 0; i < NOPS; i++) {
		enum op_id op = vb_ops[i];

		if (open_only && !vb_is_open(op))
			continue;
		if (row_allowed)
			row_allowed[op] = vb_figure(s->shm, op, 0);
		if (arm == A_GOV && op_descs[op].has_deny && row_denied)
			row_denied[op] = vb_figure(s->shm, op, 1);
		if (arm == A_GOV) {
			s->allowed_refused += s->shm->refused[op][0];
			if (op_descs[op].has_deny)
				s->denied_ok += s->shm->ok[op][1];
		}
	}
	return 0;
}

/* ---- load cycles -------------------------------------------------------------- */

/* The "none" arm: kgate completely unloaded.  Waits until the kernel has
 * freed every kg_* program (release is deferred). */
static void vb_none_phase(struct vb_state *s, int phase)
{
	uint64_t deadline = bench_now() + 10000000000ull;
	int k;

	while ((s->kg_progs_in_none[phase] = vb_kg_progs(NULL, 0)) > 0 && bench_now() < deadline)
		usleep(100000);
	for (k = 0; k < s->p.none_reps && s->nnone < MAX_NONE; k++) {
		bench_log("vm: none arm, phase %d, run %d", phase, k + 1);
		if (!vb_run_worker(s, A_NONE, false, s->none[s->nnone], NULL))
			s->none_cycle[s->nnone++] = phase;
	}
}

static int vb_load(struct vb_state *s, int cycle)
{
	struct kg_loader_opts lo = { .want_lsm = true };
	struct bench *b = &s->b;
	uint64_t t0 = bench_now();
	int i, err;

	b->l = kg_loader_open(&lo);
	if (!b->l)
		return -EIO;
	b->full = kg_loader_lsm_active(b->l);
	if (!b->full) {
		bench_log("vm: BPF LSM not active: %s", kg_loader_lsm_error(b->l));
		return -ENOTSUP;
	}
	s->load_ms[cycle] = vb_ms_since(t0);
	b->ev = kg_events_open(b->l, &b->sink);
	for (i = 0; i < NSIZES; i++) {
		t0 = bench_now();
		err = kg_maps_install(b->l, s->doc[i], &s->policy_id[i], NULL);
		if (err) {
			bench_log("vm: cannot install the %ld-rule policy (%d)", s->p.sizes[i], err);
			return err;
		}
		s->install_ms[cycle][i] = vb_ms_since(t0);
		bench_log("vm: %ld-rule policy installed in %.0f ms", s->p.sizes[i],
			  s->install_ms[cycle][i]);
	}
	err = kg_maps_add_job(b->l, b->job.id, 1, s->policy_id[SIZE_MAIN], 0);
	if (err)
		return err;
	{
		/* kgate's own directories, as `kgate run` registers them: every
		 * governed open on their device (here: the one the loops' files
		 * are on) walks its dentries once more */
		struct kg_sp_dirs dirs;
		char dir[sizeof(b->tmp) + 16];

		snprintf(dir, sizeof(dir), "%s/state", b->tmp);
		setenv("KGATE_STATE_DIR", dir, 1);
		snprintf(dir, sizeof(dir), "%s/audit", b->tmp);
		setenv("KGATE_AUDIT_DIR", dir, 1);
		err = kg_selfprotect_dirs(&dirs);
		if (!err)
			err = kg_selfprotect_register(b->l, &dirs);
		if (err)
			return err;
	}
	/* as `kgate run` does with <cgroup2>/kgate: tasks outside it (the
	 * ungoverned worker's sibling cgroup) leave the LSM hooks at once */
	err = kg_maps_set_jobs_root(b->l, b->job.path);
	if (err)
		return err;
	b->registered = true;
	b->doc = s->doc[SIZE_MAIN];	/* the seccomp filter of bench_spawn */
	return bench_set_attached(b, true);
}

static void vb_unload(struct vb_state *s)
{
	struct bench *b = &s->b;

	if (b->ev)
		kg_events_close(b->ev);
	b->ev = NULL;
	if (b->attached)
		kg_loader_detach_cgroup(b->job.id);
	b->attached = false;
	if (b->registered && b->l)
		kg_maps_remove_job(b->l, b->job.id);
	b->registered = false;
	b->doc = NULL;
	if (b->l)
		kg_loader_close(b->l);
	b->l = NULL;
	kg_loader_unpin_all();	/* the links go: every program detaches */
}

static int vb_switch(struct vb_state *s, int size)
{
	uint32_t old;

	return kg_maps_switch_job(s->b.l, s->b.job.id, s->policy_id[size], &old);
}

/* One round: every size in rotated order, at each the two arms rotated. */
static void vb_round(struct vb_state *s, int w)
{
	int k, a;

	for (k = 0; k < NSIZES; k++) {
		int size = (k + w) % NSIZES;
		bool open_only = size != SIZE_MAIN;

		if (vb_switch(s, size)) {
			s->worker_failures++;
			continue;
		}
		for (a = 0; a < 2; a++) {
			int arm = (a + w) % 2 ? A_GOV : A_FREE;

			bench_log("vm: worker %d, %ld rules, %s", w + 1, s->p.sizes[size], arm_keys[arm]);
			vb_run_worker(s, arm, open_only, s->fig[w][arm][size],
				      arm == A_GOV ? s->fig[w][A_DENY][size] : NULL);
		}
	}
}

/* bpf_stats pass: ungoverned and governed at 1,000 rules, then a governed
 * openat pass per rule count. */
static void vb_stats_pass(struct vb_state *s)
{
	static struct vb_prog a[MAX_PROGS], z[MAX_PROGS];
	int old, na, nz, i;

	old = vb_stats_enable(1);
	if (old < 0) {
		vb_emit(json_pack("{s:s,s:s}", "kind", "note", "text",
				  "cannot enable /proc/sys/kernel/bpf_stats_enabled"));
		return;
	}
	vb_switch(s, SIZE_MAIN);
	na = vb_kg_progs(a, MAX_PROGS);
	vb_run_worker(s, A_FREE, false, NULL, NULL);
	nz = vb_kg_progs(z, MAX_PROGS);
	vb_emit_prog_delta("ungoverned", s->p.sizes[SIZE_MAIN], a, na, z, nz);
	na = vb_kg_progs(a, MAX_PROGS);
	vb_run_worker(s, A_GOV, false, NULL, NULL);
	nz = vb_kg_progs(z, MAX_PROGS);
	vb_emit_prog_delta("governed", s->p.sizes[SIZE_MAIN], a, na, z, nz);
	for (i = 0; i < NSIZES; i++) {
		if (vb_switch(s, i))
			continue;
		na = vb_kg_progs(a, MAX_PROGS);
		vb_run_worker(s, A_GOV, true, NULL, NULL);
		nz = vb_kg_progs(z, MAX_PROGS);
		vb_emit_prog_delta("governed-openat", s->p.sizes[i], a, na, z, nz);
	}
	vb_stats_enable(old);
}

/* ---- summaries ------------------------------------------------------------------ */

/* p50: min over workers of the worker's median; p99: median over workers. */
static struct vb_fig vb_summary(struct vb_state *s, int arm, int size, enum op_id op)
{
	double p99s[MAX_WORKERS + MAX_NONE];
	struct vb_fig out = { 0 };
	int w, n = 0, nw = s->p.cycles * s->p.rounds;

	for (w = 0; w < (arm == A_NONE ? s->nnone : nw); w++) {
		const struct vb_fig *f = arm == A_NONE ? &s->none[w][op] : &s->fig[w][arm][size][op];

		if (!f->have)
			continue;
		if (!out.have || f->p50 < out.p50)
			out.p50 = f->p50;
		out.have = true;
		p99s[n++] = f->p99;
	}
	out.p99 = bench_median_d(p99s, n);
	return out;
}

/* median over workers of the same-round ratio arm_a / arm_b at `size` */
static double vb_ratio(struct vb_state *s, int aa, int ab, int size, enum op_id op)
{
	double r[MAX_WORKERS];
	int w, n = 0, nw = s->p.cycles * s->p.rounds;

	for (w = 0; w < nw; w++) {
		const struct vb_fig *x = &s->fig[w][aa][size][op], *y = &s->fig[w][ab][size][op];

		if (x->have && y->have && y->p50 > 0)
			r[n++] = x->p50 / y->p50;
	}
	return n ? bench_median_d(r, n) : 0;
}

/* ungoverned (kgate loaded) / none (unloaded): per cycle, the median of its
 * ungoverned workers over the median of the none runs just before and
 * just after it; the median over cycles. */
static double vb_ratio_loaded(struct vb_state *s, int size, enum op_id op)
{
	double r[MAX_CYCLES], v[MAX_WORKERS + MAX_NONE];
	int c, w, n = 0, k;

	for (c = 0; c < s->p.cycles; c++) {
		double fm, nm;

		for (k = 0, w = 0; w < s->p.rounds; w++) {
			const struct vb_fig *f = &s->fig[c * s->p.rounds + w][A_FREE][size][op];

			if (f->have)
				v[k++] = f->p50;
		}
		fm = bench_median_d(v, k);
		for (k = 0, w = 0; w < s->nnone; w++)
			if ((s->none_cycle[w] == c || s->none_cycle[w] == c + 1) && s->none[w][op].have)
				v[k++] = s->none[w][op].p50;
		nm = bench_median_d(v, k);
		if (fm > 0 && nm > 0)
			r[n++] = fm / nm;
	}
	return n ? bench_median_d(r, n) : 0;
}

static json_t *vb_fig_json(struct vb_fig f)
{
	return f.have ? json_pack("{s:f,s:f}", "p50_ns", f.p50, "p99_ns", f.p99) : json_null();
}

static void vb_emit_ops(struct vb_state *s)
{
	int size, arm;
	size_t i;

	for (size = 0; size < NSIZES; size++) {
		for (i = 0; i < NOPS; i++) {
			enum op_id op = vb_ops[i];
			json_t *j, *arms = json_object();

			if (size != SIZE_MAIN && !vb_is_open(op))
				continue;
			for (arm = 0; arm < A_MAX; arm++)
				json_object_set_new(arms, arm_keys[arm],
						    vb_fig_json(vb_summary(s, arm, size, op)));
			j = json_pack("{s:s,s:s,s:I,s:I,s:o,s:f,s:f,s:f,s:f}",
				      "kind", "op", "op", op_descs[op].name,
				      "rules", (json_int_t)s->p.sizes[size],
				      "iters", (json_int_t)s->p.iters[op], "arms", arms,
				      "ratio_ungoverned_vs_none", vb_ratio_loaded(s, size, op),
				      "ratio_governed_vs_ungoverned", vb_ratio(s, A_GOV, A_FREE, size, op),
				      "ratio_denied_vs_ungoverned",
				      op_descs[op].has_deny ? vb_ratio(s, A_DENY, A_FREE, size, op) : 0.0,
				      "target_governed_ratio", op_descs[op].target);
			vb_emit(j);
		}
	}
}

static void vb_emit_setup(struct vb_state *s)
{
	json_t *sizes = json_array(), *parse = json_array(), *inst = json_array(),
	       *load = json_array(), *nonek = json_array(), *iters = json_object();
	struct utsname u;
	char lsm[256] = "";
	int i, c, fd;
	size_t k;

	uname(&u);
	fd = open("/sys/kernel/security/lsm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, lsm, sizeof(lsm) - 1);

		lsm[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	for (i = 0; i < NSIZES; i++) {
		json_t *row = json_array();

		json_array_append_new(sizes, json_integer(s->p.sizes[i]));
		json_array_append_new(parse, json_real(s->parse_ms[i]));
		for (c = 0; c < s->p.cycles; c++)
			json_array_append_new(row, json_real(s->install_ms[c][i]));
		json_array_append_new(inst, row);
	}
	for (c = 0; c < s->p.cycles; c++)
		json_array_append_new(load, json_real(s->load_ms[c]));
	for (c = 0; c <= s->p.cycles; c++)
		json_array_append_new(nonek, json_integer(s->kg_progs_in_none[c]));
	for (k = 0; k < NOPS; k++)
		json_object_set_new(iters, op_descs[vb_ops[k]].name,
				    json_integer(s->p.iters[vb_ops[k]]));
	vb_emit(json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:i}",
			  "kind", "setup", "kernel", u.release, "lsm", lsm,
			  "cycles", s->p.cycles, "rounds", s->p.rounds, "none_runs", s->nnone,
			  "quick", s->p.quick, "sizes", sizes, "iters", iters,
			  "parse_ms", parse, "install_ms", inst, "load_ms", load,
			  "kg_progs_during_none", nonek, "worker_failures", s->worker_failures));
}

/* ---- set-up ------------------------------------------------------------------------ */

static int vb_make_scale_files(const char *tmp, long n)
{
	char path[4096];
	long i;
	int err;

	snprintf(path, sizeof(path), "%s/scale", tmp);
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	for (i = 0; i < n; i++) {
		if (i % 1000 == 0) {
			snprintf(path, sizeof(path), "%s/scale/d%ld", tmp, i / 1000);
			if (mkdir(path, 0755) && errno != EEXIST)
				return -errno;
		}
		snprintf(path, sizeof(path), "%s/scale/d%ld/f%ld", tmp, i / 1000, i);
		err = loops_mkfile(path, 0644);
		if (err)
			return err;
	}
	return 0;
}

static struct kg_policy_doc *vb_parse_policy(struct bench *b, long n)
{
	struct kg_policy_error perr = {};
	struct kg_policy_doc *doc;
	struct bench_str rules = {};
	char *json, msg[1024];
	long i;

	for (i = 0; i < n; i++)
		bench_str_add(&rules, ",{\"id\":\"f%ld\",\"file\":{\"path\":\"%s/scale/d%ld/f%ld\","
			      "\"ops\":[\"read\",\"write\"]},\"decision\":\"allow\"}",
			      i, b->tmp, i / 1000, i);
	json = bench_base_policy(b, rules.s ? rules.s : "");
	free(rules.s);
	if (!json)
		return NULL;
	doc = kg_policy_load_buffer(json, strlen(json), "vm-bench", NULL, &perr);
	free(json);
	if (!doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		bench_log("vm: policy: %s", msg);
	}
	return doc;
}

/* tmp tree, scale files, policies, cgroups, shared memory; no kgate yet */
static int vb_prepare(struct vb_state *s)
{
	struct bench *b = &s->b;
	size_t total = 0, k;
	int i;

	memset(b, 0, sizeof(*b));
	b->name = "vm";
	b->job.fd = b->free_cg.fd = -1;
	b->sink.event = bench_event;
	b->sink.ctx = b;
	snprintf(b->tmp, sizeof(b->tmp), "/tmp/kgate-bench-vm.XXXXXX");
	if (!mkdtemp(b->tmp))
		return -errno;
	b->have_tmp = true;
	snprintf(b->pin, sizeof(b->pin), "/sys/fs/bpf/kgate-bench-vm-%d", (int)getpid());
	setenv("KGATE_BPFFS", b->pin, 1);
	setenv("KGATE_STATE_DIR", b->tmp, 1);
	setenv("KGATE_AUDIT_DIR", b->tmp, 1);
	if (loops_make_tree(b->tmp) || vb_make_scale_files(b->tmp, s->p.sizes[NSIZES - 1]))
		return -EIO;
	for (i = 0; i < NSIZES; i++) {
		uint64_t t0 = bench_now();

		s->doc[i] = vb_parse_policy(b, s->p.sizes[i]);
		if (!s->doc[i])
			return -EINVAL;
		s->parse_ms[i] = vb_ms_since(t0);
		bench_log("vm: %ld-rule policy parsed in %.0f ms", s->p.sizes[i], s->parse_ms[i]);
	}
	if (kg_cgroup_create_job("kgate-bench-vm", "job", &b->job))
		return -EIO;
	b->have_job = true;
	if (kg_cgroup_create_job("kgate-bench-vm", "free", &b->free_cg))
		return -EIO;
	b->have_free = true;
	snprintf(b->cg_parent, sizeof(b->cg_parent), "%s", b->job.path);
	dirname(b->cg_parent);
	for (k = 0; k < NOPS; k++)
		total += 2 * s->p.iters[vb_ops[k]];
	s->shm_bytes = sizeof(*s->shm) + total * sizeof(uint32_t);
	s->shm = bench_shm(s->shm_bytes);
	if (!s->shm)
		return -ENOMEM;
	for (k = 0, total = 0; k < NOPS; k++) {
		enum op_id op = vb_ops[k];

		s->shm->n[op] = s->p.iters[op];
		s->shm->off[op][0] = total;
		s->shm->off[op][1] = total + s->p.iters[op];
		total += 2 * s->p.iters[op];
	}
	return 0;
}

static void vb_cleanup(struct vb_state *s)
{
	int i;

	vb_unload(s);
	if (s->shm)
		munmap(s->shm, s->shm_bytes);
	s->b.doc = NULL;
	s->b.l = NULL;
	bench_teardown(&s->b);	/* cgroups, pin dir, tmp tree */
	for (i = 0; i < NSIZES; i++)
		kg_policy_free(s->doc[i]);
}

TEST(lsm_path_overhead)
{
	static struct vb_state s;
	uint64_t t0 = bench_now();
	int c, r;

	if (!vb_requested())
		SKIP("a benchmark: runs only with vmtests/run.sh --bench (KGATE_VM_BENCH=1)");
	if (!getenv("KGATE_VM_CONFIG") || strcmp(getenv("KGATE_VM_CONFIG"), "full"))
		SKIP("needs the VM with BPF LSM (KGATE_VM_CONFIG=full)");
	if (geteuid() != 0)
		SKIP("needs root");
	vb_params_init(&s.p);
	if (!ASSERT_OK(vb_prepare(&s), "prepare the bench tree, policies and cgroups")) {
		vb_cleanup(&s);
		return;
	}
	for (c = 0; c < s.p.cycles; c++) {
		vb_none_phase(&s, c);
		bench_log("vm: cycle %d/%d: loading kgate", c + 1, s.p.cycles);
		if (!ASSERT_OK(vb_load(&s, c), "load kgate and install the policies")) {
			vb_cleanup(&s);
			return;
		}
		for (r = 0; r < s.p.rounds; r++)
			vb_round(&s, c * s.p.rounds + r);
		if (c == s.p.cycles - 1)
			vb_stats_pass(&s);
		vb_unload(&s);
	}
	vb_none_phase(&s, s.p.cycles);
	vb_emit_setup(&s);
	vb_emit_ops(&s);
	vb_emit(json_pack("{s:s,s:b,s:I,s:I}", "kind", "enforcement",
			  "clean", !s.allowed_refused && !s.denied_ok,
			  "allowed_refused", (json_int_t)s.allowed_refused,
			  "denied_ok", (json_int_t)s.denied_ok));
	vb_emit(json_pack("{s:s,s:f}", "kind", "done", "seconds", vb_ms_since(t0) / 1000));
	ASSERT_EQ(s.allowed_refused, 0, "every allowed call of a governed worker succeeded");
	ASSERT_EQ(s.denied_ok, 0, "every denied call of a governed worker was refused");
	ASSERT_EQ(s.worker_failures, 0, "every worker ran");
	vb_cleanup(&s);
}
