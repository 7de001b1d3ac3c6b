// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_ops.c - per-operation overhead of kgate, four arms side by side.
 *
 *   none        no kgate program attached (the job's links are unpinned)
 *   ungoverned  kgate loaded, a job attached, the worker in a sibling cgroup
 *   governed    worker inside the job: cgroup-BPF + Landlock + seccomp in
 *               degraded mode (BPF LSM + seccomp in full mode), allowed target
 *   denied      same worker, a target the policy refuses
 *
 * Each round forks one fresh worker per arm (order rotated every round) and
 * times every operation; a figure is the min over rounds of the per-round
 * p50 (p99: median over rounds), a ratio is the median over rounds of the
 * per-round ratio, so slow drift of the machine cancels out.
 *
 * Then, with BPF run-time statistics enabled (bpf_enable_stats, released at
 * the end), the kernel's own run_time_ns / run_cnt per attached program.
 */
#include "bench.h"
#include "loops.h"

#define MAX_ROUNDS 16

struct ops_shm {
	uint64_t ok[OP_MAX][2], refused[OP_MAX][2];
	long n[OP_MAX];
	size_t off[OP_MAX][2];	/* into samples */
	uint32_t samples[];
};

struct worker_arg {
	struct bench *b;
	enum bench_arm arm;
	struct ops_shm *shm;
	bool net_only;		/* prog-cost pass: network loops only */
};

static int ops_worker(void *p)
{
	struct worker_arg *a = p;
	struct loops_env e;
	int op, v;

	if (loops_env_open(&e, a->b->tmp))
		return 10;
	for (op = 0; op < OP_MAX; op++) {
		if (a->net_only && op != OP_TCP && op != OP_UDP)
			continue;
		for (v = 0; v < 2; v++) {
			if (v && (a->arm != ARM_GOV || !op_descs[op].has_deny))
				continue;
			loops_run(&e, op, v, a->shm->samples + a->shm->off[op][v], a->shm->n[op]);
			a->shm->ok[op][v] = e.ok;
			a->shm->refused[op][v] = e.refused;
		}
	}
	loops_env_close(&e);
	return 0;
}

/* Per round, arm, op, variant (0 allowed, 1 denied). */
static double p50[MAX_ROUNDS][ARM_MAX][OP_MAX][2];
static double p99[MAX_ROUNDS][ARM_MAX][OP_MAX][2];
static bool measured[MAX_ROUNDS][ARM_MAX];

static void collect(struct ops_shm *shm, int round, enum bench_arm arm)
{
	uint64_t *tmp;
	int op, v;
	long i;

	for (op = 0; op < OP_MAX; op++) {
		tmp = calloc(shm->n[op], sizeof(*tmp));
		if (!tmp)
			return;
		for (v = 0; v < 2; v++) {
			for (i = 0; i < shm->n[op]; i++)
				tmp[i] = shm->samples[shm->off[op][v] + i];
			p50[round][arm][op][v] = (double)bench_pct(tmp, shm->n[op], 50);
			p99[round][arm][op][v] = (double)bench_pct(tmp, shm->n[op], 99);
		}
		free(tmp);
	}
	measured[round][arm] = true;
}

/* min over rounds of p50, median over rounds of p99 */
static void summary(int rounds, enum bench_arm arm, int op, int v, double *m50, double *m99)
{
	double a[MAX_ROUNDS];
	int r, n = 0;

	*m50 = 0;
	for (r = 0; r < rounds; r++) {
		if (!measured[r][arm])
			continue;
		if (!*m50 || p50[r][arm][op][v] < *m50)
			*m50 = p50[r][arm][op][v];
		a[n++] = p99[r][arm][op][v];
	}
	*m99 = bench_median_d(a, n);
}

/* median over rounds of p50(arm_a, va) / p50(arm_b, vb) */
static double ratio(int rounds, enum bench_arm aa, int va, enum bench_arm ab, int vb, int op)
{
	double a[MAX_ROUNDS];
	int r, n = 0;

	for (r = 0; r < rounds; r++)
		if (measured[r][aa] && measured[r][ab] && p50[r][ab][op][vb] > 0)
			a[n++] = p50[r][aa][op][va] / p50[r][ab][op][vb];
	return n ? bench_median_d(a, n) : 0;
}

static const char *const prog_names[] = { "kg_connect4", "kg_sendmsg4", "kg_sock_create" };

/* Kernel-measured cost per program run, over a governed network pass;
 * [] with a "note" entry when statistics cannot be read. */
static json_t *prog_cost(struct bench *b, struct worker_arg *wa)
{
	struct bench_prog_stat before[ARRAY_SIZE(prog_names)], after;
	json_t *arr = json_array();
	int fd, ok = 1;
	size_t i;

	fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (fd < 0) {
		json_array_append_new(arr, json_pack("{s:s}", "note", "bpf_enable_stats failed"));
		return arr;
	}
	for (i = 0; i < ARRAY_SIZE(prog_names); i++)
		if (bench_prog_stat(b, prog_names[i], &before[i]))
			ok = 0;
	wa->arm = ARM_GOV;
	wa->net_only = true;
	if (ok && bench_wait(b, bench_spawn(b, ARM_GOV, ops_worker, wa)) == 0) {
		for (i = 0; i < ARRAY_SIZE(prog_names); i++) {
			uint64_t cnt, ns;

			if (bench_prog_stat(b, prog_names[i], &after))
				continue;
			cnt = after.run_cnt - before[i].run_cnt;
			ns = after.run_time_ns - before[i].run_time_ns;
			json_array_append_new(arr, json_pack("{s:s,s:I,s:f}", "prog", prog_names[i],
							     "runs", (json_int_t)cnt, "avg_ns",
							     cnt ? (double)ns / cnt : 0.0));
		}
	} else {
		json_array_append_new(arr, json_pack("{s:s}", "note",
						     "could not read the programs' statistics"));
	}
	close(fd);
	wa->net_only = false;
	return arr;
}

static void report_progs(json_t *progs)
{
	size_t i;
	json_t *p;

	bench_md("\nKernel-measured cost per program run (bpf_stats over a governed network "
		 "pass; includes the stats' own two clock reads):\n\n"
		 "| program | runs | avg ns/run |\n| --- | ---: | ---: |\n");
	json_array_foreach(progs, i, p) {
		if (json_object_get(p, "note")) {
			bench_md("| %s | | |\n", json_string_value(json_object_get(p, "note")));
			continue;
		}
		bench_md("| %s | %lld | %.0f |\n", json_string_value(json_object_get(p, "prog")),
			 (long long)json_integer_value(json_object_get(p, "runs")),
			 json_real_value(json_object_get(p, "avg_ns")));
	}
}

static void report(struct bench *b, int rounds, struct ops_shm *chk, json_t *progs, int failures)
{
	json_t *root = json_object(), *ops = json_array();
	char r1[32], r2[32], r3[32];
	int op;

	bench_md("## Per-operation overhead (bench_ops)\n\n"
		 "Mode: **%s**. %d interleaved rounds; p50 = min over rounds of the round's median, "
		 "p99 = median over rounds; ratios = median over rounds of the same-round ratio "
		 "of p50s. Times in ns per call.\n\n",
		 b->full ? "full (BPF LSM)" : "degraded (cgroup-BPF + Landlock + seccomp)", rounds);
	bench_md("| operation | none p50/p99 | ungoverned p50/p99 | governed p50/p99 | denied p50/p99 "
		 "| ungov/none (target 1.01x) | gov/ungov (target) | denied/ungov |\n"
		 "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (op = 0; op < OP_MAX; op++) {
		double n50, n99, u50, u99, g50, g99, d50 = 0, d99 = 0, ru, rg, rd = 0;
		char tgt[32] = "";

		summary(rounds, ARM_NONE, op, 0, &n50, &n99);
		summary(rounds, ARM_FREE, op, 0, &u50, &u99);
		summary(rounds, ARM_GOV, op, 0, &g50, &g99);
		if (op_descs[op].has_deny) {
			summary(rounds, ARM_GOV, op, 1, &d50, &d99);
			rd = ratio(rounds, ARM_GOV, 1, ARM_FREE, 0, op);
		}
		ru = ratio(rounds, ARM_FREE, 0, ARM_NONE, 0, op);
		rg = ratio(rounds, ARM_GOV, 0, ARM_FREE, 0, op);
		if (op_descs[op].target)
			snprintf(tgt, sizeof(tgt), " (%.2fx)", op_descs[op].target);
		bench_md("| %s | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | ", op_descs[op].name,
			 n50, n99, u50, u99, g50, g99);
		if (op_descs[op].has_deny)
			bench_md("%.0f / %.0f | ", d50, d99);
		else
			bench_md("n/a | ");
		bench_md("%s | %s%s | %s |\n", bench_ratio_str(ru, r1, sizeof(r1)),
			 bench_ratio_str(rg, r2, sizeof(r2)), tgt, bench_ratio_str(rd, r3, sizeof(r3)));
		json_array_append_new(ops, json_pack(
			"{s:s,s:I,s:{s:{s:f,s:f},s:{s:f,s:f},s:{s:f,s:f},s:{s:f,s:f}},"
			"s:f,s:f,s:f,s:f,s:{s:I,s:I,s:I,s:I}}",
			"op", op_descs[op].name, "iters", (json_int_t)chk->n[op], "arms",
			"none", "p50_ns", n50, "p99_ns", n99,
			"ungoverned", "p50_ns", u50, "p99_ns", u99,
			"governed_allowed", "p50_ns", g50, "p99_ns", g99,
			"governed_denied", "p50_ns", d50, "p99_ns", d99,
			"ratio_ungoverned_vs_none", ru, "ratio_governed_vs_ungoverned", rg,
			"ratio_denied_vs_ungoverned", rd, "target_governed_ratio", op_descs[op].target,
			"last_governed_round", "allowed_ok", (json_int_t)chk->ok[op][0],
			"allowed_refused", (json_int_t)chk->refused[op][0],
			"denied_ok", (json_int_t)chk->ok[op][1],
			"denied_refused", (json_int_t)chk->refused[op][1]));
	}
	/* enforcement sanity: an allowed op that failed or a denied op that
	 * succeeded means the figures do not measure what they claim */
	bench_md("\nEnforcement check (last governed worker): ");
	{
		bool clean = true;

		for (op = 0; op < OP_MAX; op++) {
			if (chk->refused[op][0]) {
				bench_md("%s allowed target failed %llu times; ", op_descs[op].name,
					 (unsigned long long)chk->refused[op][0]);
				clean = false;
			}
			if (op_descs[op].has_deny && chk->ok[op][1]) {
				bench_md("%s denied target succeeded %llu times (not enforced here); ",
					 op_descs[op].name, (unsigned long long)chk->ok[op][1]);
				clean = false;
			}
		}
		bench_md("%s\n", clean ? "every allowed call succeeded, every denied call was refused" : "");
		json_object_set_new(root, "enforcement_clean", json_boolean(clean));
	}
	report_progs(progs);
	if (failures)
		bench_md("\n%d worker(s) failed; their rounds are left out.\n", failures);
	if (!b->full)
		bench_md("\nThe BPF LSM path (file/exec hooks) is not available on this kernel: "
			 "it is measured only inside the VM suite (see bench/README.md).\n");
	json_object_set_new(root, "mode", json_string(b->full ? "full" : "degraded"));
	json_object_set_new(root, "rounds", json_integer(rounds));
	json_object_set_new(root, "ops", ops);
	json_object_set_new(root, "prog_cost", progs);
	bench_emit("bench_ops", root);
	json_decref(root);
}

int main(void)
{
	static const enum bench_arm orders[3][ARM_MAX] = {
		{ ARM_NONE, ARM_FREE, ARM_GOV },
		{ ARM_GOV, ARM_NONE, ARM_FREE },
		{ ARM_FREE, ARM_GOV, ARM_NONE },
	};
	struct worker_arg wa = {};
	struct ops_shm *shm;
	struct bench b;
	size_t total = 0, bytes;
	int rounds = bench_quick() ? 3 : 5, r, i, op, failures = 0;
	json_t *progs;
	char *policy;

	if (getenv("KGATE_BENCH_ROUNDS"))
		rounds = atoi(getenv("KGATE_BENCH_ROUNDS"));
	if (rounds < 1 || rounds > MAX_ROUNDS)
		rounds = 5;
	if (bench_setup(&b, "ops") || loops_make_tree(b.tmp)) {
		bench_teardown(&b);
		return BENCH_EXIT_CANNOT_RUN;
	}
	policy = bench_base_policy(&b, "");
	if (!policy || bench_policy(&b, policy, NULL, NULL)) {
		free(policy);
		bench_teardown(&b);
		return BENCH_EXIT_CANNOT_RUN;
	}
	free(policy);
	for (op = 0; op < OP_MAX; op++)
		total += 2 * bench_iters(op_descs[op].full_iters, 20);
	bytes = sizeof(*shm) + total * sizeof(uint32_t);
	shm = bench_shm(bytes);
	if (!shm) {
		bench_teardown(&b);
		return BENCH_EXIT_CANNOT_RUN;
	}
	for (op = 0, total = 0; op < OP_MAX; op++) {
		shm->n[op] = bench_iters(op_descs[op].full_iters, 20);
		shm->off[op][0] = total;
		shm->off[op][1] = total + shm->n[op];
		total += 2 * shm->n[op];
	}
	wa.b = &b;
	wa.shm = shm;
	for (r = 0; r < rounds; r++) {
		for (i = 0; i < ARM_MAX; i++) {
			enum bench_arm arm = orders[r % 3][i];

			bench_log("ops: round %d/%d, arm %s", r + 1, rounds, bench_arm_names[arm]);
			wa.arm = arm;
			if (bench_wait(&b, bench_spawn(&b, arm, ops_worker, &wa))) {
				failures++;
				continue;
			}
			collect(shm, r, arm);
		}
	}
	/* keep the last governed worker's outcome counts for the check */
	wa.arm = ARM_GOV;
	if (bench_wait(&b, bench_spawn(&b, ARM_GOV, ops_worker, &wa)))
		failures++;
	{
		struct ops_shm *chk = malloc(sizeof(*chk));

		if (chk) {
			memcpy(chk, shm, sizeof(*chk));
			progs = prog_cost(&b, &wa);
			report(&b, rounds, chk, progs, failures);
			free(chk);
		}
	}
	munmap(shm, bytes);
	bench_teardown(&b);
	return 0;
}
