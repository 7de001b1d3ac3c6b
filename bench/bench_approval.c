// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_approval.c - the approval round trip, without the human.
 *
 * A governed job on this host (real loader, maps, cgroup-BPF, seccomp hold
 * filter) repeatedly asks for a require_approval connect; the bench plays
 * controller and approver and times each step:
 *
 *   held   connect held on the seccomp listener -> request created ->
 *          approved (re-check + one-shot grant in kg_grants + audit record)
 *          -> kg_hold_tick CONTINUE -> the kernel consumes the grant ->
 *          connect returns in the agent
 *   retry  connect refused by the kernel -> escalation event from the ring
 *          buffer -> request created -> approved -> the agent's retry
 *          succeeds on the grant
 *
 * Prints a table and one JSON line; with $KGATE_BENCH_OUT also writes
 * bench_approval.md / bench_approval.json there (bench/run.sh merges them).
 * KGATE_BENCH_ROUNDS=N (default 200; KGATE_BENCH_QUICK: 50).
 */
#define FX_STANDALONE
#include "appr_fixture.h"

#define POLICY(port)								\
	"{\"version\":1,\"name\":\"bench-approval\",\"default\":\"allow\","	\
	"\"runtime_defaults\":{\"net\":\"allow\"},"				\
	"\"approvals\":{\"timeout_sec\":60,\"allow_self_approval\":true},"	\
	"\"runtime\":[{\"id\":\"prod-push\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[" port "]}," \
	"\"decision\":\"require_approval\"}]}"

enum { ST_REQUEST, ST_APPROVE, ST_RELEASE, ST_TOTAL, ST_MAX };
static const char *const step_names[ST_MAX] = {
	"escalation -> request created", "request -> grant installed (approve)",
	"grant -> call completed", "round trip",
};

struct series {
	double *v[ST_MAX];
	int n;
};

static double ms_since(uint64_t t)
{
	return (double)(kg_now_mono_ns() - t) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);

	return n ? v[i < n ? i : n - 1] : 0;
}

static int read_result(struct fx_job *j, int *r)
{
	struct pollfd p = { .fd = j->res_r, .events = POLLIN };

	if (poll(&p, 1, 5000) != 1 || read(j->res_r, r, sizeof(*r)) != sizeof(*r))
		return -1;
	return 0;
}

static int approve_newest(struct fx *f, struct fx_job *j)
{
	struct kg_grant_opts once = { .once = true };
	struct kg_approver root = fx_root();
	struct kg_approval a;

	if (fx_pending(f, j, &a))
		return -1;
	return kg_approvals_approve(f->q, a.id, &root, &once, &a);
}

static int held_round(struct fx *f, struct fx_job *j, int port, double out[ST_MAX])
{
	struct pollfd p = { .fd = kg_hold_fd(j->hold), .events = POLLIN };
	uint64_t t0 = kg_now_mono_ns(), t;
	int r;

	fx_send(j, FX_TCP, "127.0.0.1", port);
	while (kg_hold_count(j->hold) == 0) {
		if (poll(&p, 1, 5000) != 1 || kg_hold_handle(j->hold))
			return -1;
	}
	out[ST_REQUEST] = ms_since(t0);
	t = kg_now_mono_ns();
	if (approve_newest(f, j))
		return -1;
	out[ST_APPROVE] = ms_since(t);
	t = kg_now_mono_ns();
	if (kg_hold_tick(j->hold, 0) != 1 || read_result(j, &r) || r != 0)
		return -1;
	out[ST_RELEASE] = ms_since(t);
	out[ST_TOTAL] = ms_since(t0);
	return 0;
}

static int retry_round(struct fx *f, struct fx_job *j, int port, double out[ST_MAX])
{
	int queued = f->escalations_queued, r, i;
	uint64_t t0 = kg_now_mono_ns(), t;

	fx_send(j, FX_TCP, "127.0.0.1", port);
	if (read_result(j, &r) || r != EPERM)
		return -1;
	for (i = 0; i < 500 && f->escalations_queued == queued; i++)
		kg_events_poll(f->ev, 10);
	if (f->escalations_queued == queued)
		return -1;
	out[ST_REQUEST] = ms_since(t0);
	t = kg_now_mono_ns();
	if (approve_newest(f, j))
		return -1;
	out[ST_APPROVE] = ms_since(t);
	t = kg_now_mono_ns();
	fx_send(j, FX_TCP, "127.0.0.1", port);
	if (read_result(j, &r) || r != 0)
		return -1;
	out[ST_RELEASE] = ms_since(t);
	out[ST_TOTAL] = ms_since(t0);
	return 0;
}

static int run(const char *mode, int rounds, struct series *s)
{
	int (*round)(struct fx *, struct fx_job *, int, double *) =
		strcmp(mode, "held") ? retry_round : held_round;
	double one[ST_MAX];
	struct fx_job *j;
	struct fx *f = calloc(1, sizeof(*f));
	char json[1024];
	int lfd, port, i, k;

	if (!f)
		return -1;
	lfd = fx_listen("127.0.0.1", &port);
	if (lfd < 0)
		SKIP("cannot listen on 127.0.0.1");
	snprintf(json, sizeof(json), POLICY("%d"), port);
	fx_setup(f, json);
	j = fx_job(f);
	if (!strcmp(mode, "held") && fx_hold_on(f, j))
		SKIP("cannot load the hold filter");
	for (k = 0; k < ST_MAX; k++)
		s->v[k] = calloc(rounds, sizeof(double));
	for (i = 0; i < rounds; i++) {
		if (round(f, j, port, one)) {
			fprintf(stderr, "bench_approval: %s round %d failed\n", mode, i);
			break;
		}
		for (k = 0; k < ST_MAX; k++)
			s->v[k][s->n] = one[k];
		s->n++;
		kg_events_poll(f->ev, 0);	/* outside the timed part */
		fx_accept_all(lfd);
	}
	fx_teardown(f);
	free(f);
	close(lfd);
	return s->n ? 0 : -1;
}

int main(void)
{
	const char *modes[2] = { "held", "retry" }, *outdir = getenv("KGATE_BENCH_OUT");
	const char *quick = getenv("KGATE_BENCH_QUICK"), *rs = getenv("KGATE_BENCH_ROUNDS");
	int rounds = rs && atoi(rs) > 0 ? atoi(rs) : (quick && strcmp(quick, "0") ? 50 : 200);
	struct series s[2] = {};
	json_t *root = json_object(), *jm;
	char md[8192], path[4200], *line;
	size_t used = 0;
	int m, k, ok = 0;
	FILE *fp;

	used += snprintf(md + used, sizeof(md) - used,
			 "## approval round trip (bench_approval)\n\n"
			 "Human time excluded: the bench approves as soon as the request exists.\n"
			 "Each round installs a one-shot grant that the kernel consumes.\n\n"
			 "| mode | step | p50 ms | p99 ms | max ms | rounds |\n"
			 "| --- | --- | ---: | ---: | ---: | ---: |\n");
	json_object_set_new(root, "bench", json_string("approval"));
	json_object_set_new(root, "rounds", json_integer(rounds));
	for (m = 0; m < 2; m++) {
		if (run(modes[m], rounds, &s[m]))
			continue;
		ok++;
		jm = json_object();
		for (k = 0; k < ST_MAX; k++) {
			qsort(s[m].v[k], s[m].n, sizeof(double), cmp_double);
			used += snprintf(md + used, sizeof(md) - used,
					 "| %s | %s | %.3f | %.3f | %.3f | %d |\n", modes[m],
					 step_names[k], pct(s[m].v[k], s[m].n, 0.5),
					 pct(s[m].v[k], s[m].n, 0.99), s[m].v[k][s[m].n - 1], s[m].n);
			json_object_set_new(jm, k == ST_TOTAL ? "total" : k == ST_REQUEST ? "request"
						: k == ST_APPROVE ? "approve" : "release",
					    json_pack("{s:f,s:f,s:f}", "p50_ms", pct(s[m].v[k], s[m].n, 0.5),
						      "p99_ms", pct(s[m].v[k], s[m].n, 0.99),
						      "max_ms", s[m].v[k][s[m].n - 1]));
		}
		json_object_set_new(jm, "rounds", json_integer(s[m].n));
		json_object_set_new(root, modes[m], jm);
	}
	printf("%s\n", md);
	line = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6));
	printf("%s\n", line ? line : "{}");
	if (outdir && line) {
		snprintf(path, sizeof(path), "%s/bench_approval.md", outdir);
		if ((fp = fopen(path, "w"))) {
			fputs(md, fp);
			fclose(fp);
		}
		snprintf(path, sizeof(path), "%s/bench_approval.json", outdir);
		if ((fp = fopen(path, "w"))) {
			fprintf(fp, "%s\n", line);
			fclose(fp);
		}
	}
	free(line);
	json_decref(root);
	for (m = 0; m < 2; m++)
		for (k = 0; k < ST_MAX; k++)
			free(s[m].v[k]);
	return ok ? 0 : 2;
}
