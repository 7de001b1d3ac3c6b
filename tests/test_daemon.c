// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_daemon.c - the controller's life: hot policy push, the daemon's
 * authorization, and a kill -9 of the controller during a flood of denied
 * operations (denials continue; a restarted controller accounts for every
 * event).  Runs on this host through the cgroup-BPF network programs.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <bpf/bpf.h>

#include "testlib.h"
#include "testenv.h"
#include "record/audit.h"
#include "common.h"
#include "daemon/control.h"
#include "job/registry.h"
#include "kernel/loader.h"
#include "kernel/maps.h"

static char tmpdir[256], pindir[256];

static void setup(void)
{
	if (getuid() != 0)
		SKIP("needs root");
	if (kt_state_tree("daemon", true, tmpdir, sizeof(tmpdir), pindir, sizeof(pindir)))
		SKIP("cannot make the test's directories");
}

static void teardown(void)
{
	kg_loader_unpin_all();
	rmdir(pindir);
}

static const char *kgate_bin(void)
{
	const char *b = getenv("KGATE_BIN");

	return b ? b : "build-san/kgate";
}

static void write_file(const char *name, const char *text, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		SKIP("cannot write %s", path);
	close(fd);
}

static pid_t spawn(char *const argv[], const char *outname)
{
	char out[512];
	pid_t pid;

	snprintf(out, sizeof(out), "%s/%s", tmpdir, outname);
	pid = fork();
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execv(argv[0], argv);
		_exit(126);
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return kg_read_file(path, 1 << 24, NULL);
}

/* Count audit records matching a filter. */
static long count_records(const char *type, const char *decision, const char *trace)
{
	struct kg_audit_filter f = { .type = type, .decision = decision, .trace_id = trace };
	struct kg_audit_qstats st = {};

	if (kg_audit_query(NULL, &f, NULL, NULL, true, &st))
		return -1;
	return (long)st.matched;
}

static int sum_count_cb(json_t *rec, const char *line, size_t len, void *ctx)
{
	json_int_t n = json_integer_value(json_object_get(json_object_get(rec, "extra"), "count"));

	(void)line;
	(void)len;
	*(long *)ctx += n > 0 ? (long)n : 1;
	return 0;
}

/* The decisions those records stand for: a decision record's extra.count
 * (identical ones folded into it, bpf/kgate.h kg_fold), 1 without one. */
static long count_decisions(const char *decision, const char *trace)
{
	struct kg_audit_filter f = { .type = "decision", .decision = decision, .trace_id = trace };
	long n = 0;

	if (kg_audit_query(NULL, &f, sum_count_cb, &n, true, NULL))
		return -1;
	return n;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait until `kgate run` has registered its job (it is running governed). */
static bool wait_for_job(void)
{
	struct kg_job_record *jobs;
	size_t n = 0;
	int i;

	for (i = 0; i < 300; i++) {
		jobs = NULL;
		if (kg_registry_list(&jobs, &n) == 0 && n > 0) {
			free(jobs);
			return true;
		}
		free(jobs);
		sleep_ms(100);
	}
	return false;
}

/* Start `kgate daemon` and wait until it answers on its socket. */
static pid_t start_daemon(void)
{
	char *argv[] = { (char *)kgate_bin(), "daemon", NULL };
	pid_t d = spawn(argv, "daemon.out");
	int i;

	for (i = 0; i < 300 && !kg_control_daemon_running(); i++)
		sleep_ms(100);
	return d;
}

#define POLICY_BLOCK(ip) \
	"{\"version\":1,\"name\":\"block-" ip "\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[{\"id\":\"block\"," \
	"\"net\":{\"cidr\":\"" ip "/32\"},\"decision\":\"deny\"}]}"

/* The agent: once a second, try 127.0.0.2 and 127.0.0.3 and log the result. */
#define PROBE_LOOP \
	"for i in $(seq 1 40); do " \
	"(exec 3<>/dev/tcp/127.0.0.2/9) 2>/dev/null; a=$?; " \
	"(exec 3<>/dev/tcp/127.0.0.3/9) 2>/dev/null; b=$?; " \
	"echo \"round $i .2=$a .3=$b\" >> $LOG; sleep 0.2; done"

TEST(policy_push_changes_decisions_of_a_running_job)
{
	char p1[512], p2[512], log[512], env[600];
	char *out, *logtext;
	pid_t job;
	int rc;

	setup();
	write_file("p1.json", POLICY_BLOCK("127.0.0.2"), p1, sizeof(p1));
	write_file("p2.json", POLICY_BLOCK("127.0.0.3"), p2, sizeof(p2));
	snprintf(log, sizeof(log), "%s/work/probe.log", tmpdir);
	snprintf(env, sizeof(env), "LOG=%s", log);
	putenv(env);
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", p1, "--", "/bin/bash", "-c",
				 PROBE_LOOP, NULL };

		job = spawn(argv, "run.out");
	}
	ASSERT_TRUE(wait_for_job(), "the job started");
	sleep_ms(1500);
	{
		char *argv[] = { (char *)kgate_bin(), "policy", "push", p2, NULL };
		pid_t p = spawn(argv, "push.out");

		rc = wait_exit(p);
	}
	out = slurp("push.out");
	printf("%s", out ? out : "");
	ASSERT_EQ(rc, 0, "push succeeds");
	ASSERT_HAS_SUBSTR(out, "block-127.0.0.3", "names the new policy");
	free(out);
	ASSERT_EQ(wait_exit(job), 0, "the job was never restarted and ends normally");
	logtext = slurp("work/probe.log");
	/* before: .2 refused (bash exit 1), .3 reached (connection refused: 1 too)
	 * so read the audit trail instead: it says which rule refused what */
	free(logtext);
	ASSERT_GE(count_records("decision", "deny", NULL), 2, "denials recorded");
	{
		struct kg_audit_filter f = { .type = "policy_change" };
		struct kg_audit_qstats st = {};

		ASSERT_OK(kg_audit_query(NULL, &f, NULL, NULL, true, &st), "query");
		ASSERT_EQ(st.matched, 1, "one policy_change record");
	}
	out = slurp("run.out");
	printf("%s", out ? out : "");
	ASSERT_HAS_SUBSTR(out, "127.0.0.2:9/tcp  [rule block", "old policy refused .2");
	ASSERT_HAS_SUBSTR(out, "127.0.0.3:9/tcp  [rule block", "new policy refuses .3");
	/* after the push, no more .2 refusals: the last .2 line precedes the first .3 */
	ASSERT_TRUE(strrchr(out, '2') && strstr(out, "127.0.0.3:9") > strstr(out, "127.0.0.2:9"),
		    "order: .2 refusals, then .3 refusals");
	{
		const char *last2 = NULL, *p = out, *eol;

		/* (refusals folded before the push and counted at the job's end
		 * are recorded then, marked so: bpf/kgate.h, kg_fold) */
		while ((p = strstr(p, "127.0.0.2:9/tcp"))) {
			eol = strchr(p, '\n');
			if (!eol || !memmem(p, eol - p, "at job end", 10))
				last2 = p;
			p++;
		}
		ASSERT_TRUE(last2 && last2 < strstr(out, "127.0.0.3:9/tcp"),
			    "no 127.0.0.2 refusal after the first 127.0.0.3 refusal");
	}
	free(out);
	teardown();
}

#define POLICY_HOLD(port, extra) \
	"{\"version\":1,\"name\":\"hold-push\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"allow\"}," \
	"\"approvals\":{\"timeout_sec\":60,\"allow_self_approval\":true}," \
	"\"runtime\":[{\"id\":\"prod\",\"net\":{\"cidr\":\"127.0.0.2/32\",\"ports\":[" port "]}," \
	"\"decision\":\"require_approval\"}" extra "]}"

/* The id of the one pending approval request, or "" */
static void pending_request(char *id, size_t len)
{
	char *argv[] = { (char *)kgate_bin(), "approvals", "list", "--json", NULL };
	json_t *arr;
	char *out;

	id[0] = '\0';
	wait_exit(spawn(argv, "list.json"));
	out = slurp("list.json");
	arr = out ? json_loads(out, 0, NULL) : NULL;
	if (json_array_size(arr) == 1)
		snprintf(id, len, "%s", json_string_value(json_object_get(json_array_get(arr, 0), "id")) ?: "");
	json_decref(arr);
	free(out);
}

/* After a push, a call held under the new policy is approved under it:
 * the job's hold must know the new generation, else every approval of the
 * job is refused as stale. */
TEST(held_call_after_a_push_is_approved_under_the_new_policy)
{
	char p1[512], p2[512], json[1024], go[512], result[600], env[3][700], id[64] = "";
	char portstr[16], *out;
	int lfd, port, i, rc;
	pid_t d, job;

	setup();
	lfd = -1;
	{
		struct sockaddr_in in = { .sin_family = AF_INET };
		socklen_t sl = sizeof(in);
		int one = 1;

		lfd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&in, sizeof(in)) || listen(lfd, 8) ||
		    getsockname(lfd, (struct sockaddr *)&in, &sl))
			SKIP("cannot listen on 127.0.0.2");
		port = ntohs(in.sin_port);
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(json, sizeof(json), POLICY_HOLD("%d", ""), port);
	write_file("p1.json", json, p1, sizeof(p1));
	snprintf(json, sizeof(json), POLICY_HOLD("%d", ",{\"id\":\"extra\",\"net\":"
		 "{\"cidr\":\"192.0.2.0/24\"},\"decision\":\"deny\"}"), port);
	write_file("p2.json", json, p2, sizeof(p2));
	snprintf(go, sizeof(go), "%s/go", tmpdir);
	snprintf(result, sizeof(result), "%s/result", tmpdir);
	snprintf(env[0], sizeof(env[0]), "GO=%s", go);
	snprintf(env[1], sizeof(env[1]), "RESULT=%s", result);
	snprintf(env[2], sizeof(env[2]), "PROBE=%s/net_probe", getenv("KGATE_TEST_HELPERS") ?:
		 "build-san/tests/helpers");
	for (i = 0; i < 3; i++)
		putenv(env[i]);
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon up");
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", p1, "--", "/bin/bash", "-c",
				 "while [ ! -e $GO ]; do sleep 0.1; done; "
				 "$PROBE connect 127.0.0.2 $1; echo $? > $RESULT", "sh", portstr, NULL };

		job = spawn(argv, "run.out");
	}
	ASSERT_TRUE(wait_for_job(), "the job started");
	{
		char *argv[] = { (char *)kgate_bin(), "policy", "push", p2, NULL };

		ASSERT_EQ(wait_exit(spawn(argv, "push.out")), 0, "push");
	}
	sleep_ms(600);			/* a couple of the controller's ticks */
	close(open(go, O_WRONLY | O_CREAT, 0644));
	for (i = 0; i < 100 && !id[0]; i++) {
		sleep_ms(100);
		pending_request(id, sizeof(id));
	}
	ASSERT_TRUE(id[0] != '\0', "the connect is held for approval");
	{
		char *argv[] = { (char *)kgate_bin(), "approvals", "approve", id, NULL };

		rc = wait_exit(spawn(argv, "approve.out"));
	}
	out = slurp("approve.out");
	printf("%s", out ? out : "");
	ASSERT_EQ(rc, 0, "approved, not stale");
	free(out);
	ASSERT_EQ(wait_exit(job), 0, "the job ends");
	out = slurp("result");
	ASSERT_STREQ(out, "0\n", "the held connect went through once approved");
	free(out);
	kill(d, SIGTERM);
	wait_exit(d);
	close(lfd);
	teardown();
}

TEST(invalid_push_changes_nothing)
{
	char p1[512], bad[512], env[600], log[512];
	char *out;
	pid_t job;
	int rc;

	setup();
	write_file("p1.json", POLICY_BLOCK("127.0.0.2"), p1, sizeof(p1));
	write_file("bad.json", "{\"version\":1,\"name\":\"bad\",\"runtime\":[{\"id\":\"b\","
		   "\"net\":{\"cidr\":\"300.0.0.1/32\"},\"decision\":\"deny\"}]}", bad, sizeof(bad));
	snprintf(log, sizeof(log), "%s/work/probe.log", tmpdir);
	snprintf(env, sizeof(env), "LOG=%s", log);
	putenv(env);
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", p1, "--", "/bin/bash", "-c",
				 "sleep 1.5; (exec 3<>/dev/tcp/127.0.0.2/9) 2>/dev/null; echo rc=$? > $LOG", NULL };

		job = spawn(argv, "run.out");
	}
	sleep_ms(700);
	{
		char *argv[] = { (char *)kgate_bin(), "policy", "push", bad, NULL };

		rc = wait_exit(spawn(argv, "push.out"));
	}
	ASSERT_EQ(rc, 3, "invalid policy: exit 3");
	out = slurp("push.out");
	ASSERT_HAS_SUBSTR(out, "bad.json:1:", "error names file and position");
	free(out);
	ASSERT_EQ(wait_exit(job), 0, "job unaffected");
	out = slurp("run.out");
	ASSERT_HAS_SUBSTR(out, "127.0.0.2:9/tcp  [rule block", "old policy still enforced");
	free(out);
	ASSERT_EQ(count_records("policy_change", NULL, NULL), 0, "no policy change recorded");
	teardown();
}

TEST(daemon_refuses_a_push_from_a_non_pusher)
{
	char p1[512], *out;
	pid_t d;
	int rc;

	setup();
	write_file("p1.json", POLICY_BLOCK("127.0.0.2"), p1, sizeof(p1));
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon answers");
	{
		char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				 (char *)kgate_bin(), "policy", "push", p1, NULL };

		rc = wait_exit(spawn(argv, "push.out"));
	}
	out = slurp("push.out");
	printf("%s", out ? out : "");
	ASSERT_EQ(rc, 4, "exit 4: not authorized");
	ASSERT_HAS_SUBSTR(out, "permission denied", "says why");
	free(out);
	kill(d, SIGTERM);
	ASSERT_EQ(wait_exit(d), 0, "daemon stops cleanly");
	ASSERT_EQ(count_records("controller", NULL, NULL), 2, "start and stop recorded");
	teardown();
}

/* Beside a daemon (the ring's consumer), `kgate run`'s live view shows
 * the refusals the job made just before it exited: the run waits until the
 * daemon's consumer has passed them (their records are in the trail then),
 * not a fixed time.  30 ports: identical refusals would be folded into one
 * record (bpf/kgate.h, kg_fold). */
TEST(live_view_beside_a_daemon_shows_the_last_refusals)
{
	char p1[512], *out, want[64];
	const char *line;
	pid_t d;
	int n = 0;

	setup();
	write_file("p1.json", POLICY_BLOCK("127.0.0.2"), p1, sizeof(p1));
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon answers");
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", p1, "--", "/bin/bash", "-c",
				 "for i in $(seq 1 30); do "
				 "(exec 3<>/dev/tcp/127.0.0.2/$((100+i))) 2>/dev/null; done; true", NULL };

		ASSERT_EQ(wait_exit(spawn(argv, "run.out")), 0, "the job ends");
	}
	out = slurp("run.out");
	printf("%s", out ? out : "");
	for (line = out; line && (line = strstr(line, "REFUSED net_connect")); line++)
		n++;
	ASSERT_EQ(n, 30, "the live view shows all 30 refusals");
	snprintf(want, sizeof(want), "30 actions refused");
	ASSERT_HAS_SUBSTR(out, want, "the summary counts them");
	free(out);
	kill(d, SIGTERM);
	ASSERT_EQ(wait_exit(d), 0, "daemon stops cleanly");
	ASSERT_EQ(count_records("decision", "deny", NULL), 30, "the daemon recorded them");
	teardown();
}

/* one request to the daemon's socket; the reply's error ("" when none) */
static json_t *control_request(const char *json, char *err, size_t errlen)
{
	json_t *req = json_loads(json, 0, NULL), *reply;

	reply = req ? kg_control_call(req, 3000) : NULL;
	json_decref(req);
	snprintf(err, errlen, "%s",
		 json_string_value(json_object_get(reply, "error")) ?: "");
	return reply;
}

static int reply_exit(const json_t *reply)
{
	return (int)json_integer_value(json_object_get(reply, "exit"));
}

/* The socket's requests come from one table: each op reaches its own
 * handler, an unknown one is named with the valid ones (exit 2). */
TEST(control_socket_dispatches_each_op_and_names_an_unknown_one)
{
	char err[512];
	json_t *r;
	pid_t d;

	setup();
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon answers");

	r = control_request("{\"op\":\"ping\"}", err, sizeof(err));
	ASSERT_TRUE(r && json_is_true(json_object_get(r, "ok")), "ping answered");
	ASSERT_EQ(json_integer_value(json_object_get(r, "pid")), d, "ping gives the daemon's pid");
	json_decref(r);

	r = control_request("{\"op\":\"status\"}", err, sizeof(err));
	ASSERT_TRUE(r && json_is_array(json_object_get(r, "jobs")), "status lists jobs");
	json_decref(r);

	r = control_request("{\"op\":\"approvals_list\"}", err, sizeof(err));
	ASSERT_TRUE(r && json_is_array(json_object_get(r, "requests")), "approvals_list lists requests");
	json_decref(r);

	r = control_request("{\"op\":\"approve\"}", err, sizeof(err));
	ASSERT_TRUE(r && !json_is_true(json_object_get(r, "ok")), "approve without an id refused");
	ASSERT_STREQ(err, "approvals: request has no id", "approve reaches the decision handler");
	ASSERT_EQ(reply_exit(r), 2, "exit 2");
	json_decref(r);

	r = control_request("{\"op\":\"deny\",\"id\":\"000000000000\"}", err, sizeof(err));
	ASSERT_TRUE(r && !json_is_true(json_object_get(r, "ok")), "deny of no such request");
	ASSERT_TRUE(json_integer_value(json_object_get(r, "errno")) > 0, "an errno given");
	json_decref(r);

	r = control_request("{\"op\":\"push\"}", err, sizeof(err));
	ASSERT_STREQ(err, "push: request has no policy text", "push reaches the push handler");
	ASSERT_EQ(reply_exit(r), 2, "exit 2");
	json_decref(r);

	r = control_request("{\"op\":\"frobnicate\"}", err, sizeof(err));
	ASSERT_TRUE(r && !json_is_true(json_object_get(r, "ok")), "unknown op refused");
	ASSERT_STREQ(err, "unknown op 'frobnicate' (one of ping, status, push, approvals_list, "
		     "approve, deny)", "names the op and the valid ones");
	ASSERT_EQ(reply_exit(r), 2, "exit 2");
	json_decref(r);

	r = control_request("{\"op\":\"Ping\"}", err, sizeof(err));
	ASSERT_HAS_SUBSTR(err, "unknown op 'Ping'", "names are exact");
	json_decref(r);

	r = control_request("{\"id\":\"x\"}", err, sizeof(err));
	ASSERT_HAS_SUBSTR(err, "malformed request", "no op: malformed");
	ASSERT_EQ(reply_exit(r), 2, "exit 2");
	json_decref(r);

	kill(d, SIGTERM);
	ASSERT_EQ(wait_exit(d), 0, "daemon stops cleanly");
	teardown();
}

/* kill -9 the controller while the job floods denied connects: the pinned
 * programs keep refusing; the daemon started afterwards drains the ring
 * buffer; audited denials + counted losses == the kernel's denial count. */
TEST(controller_kill9_during_flood_loses_nothing)
{
	char p1[512], env[600], log[512], *out;
	struct kg_loader_opts lo = { 0 };
	struct kg_counters c;
	struct kg_loader *l;
	pid_t run, d;
	long audited, lost_recorded = 0;

	setup();
	write_file("p1.json", POLICY_BLOCK("127.0.0.2"), p1, sizeof(p1));
	snprintf(log, sizeof(log), "%s/work/flood.log", tmpdir);
	snprintf(env, sizeof(env), "LOG=%s", log);
	putenv(env);
	{
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", p1, "--", "/bin/bash", "-c",
				 "end=$((SECONDS+4)); n=0; while [ $SECONDS -lt $end ]; do "
				 "(exec 3<>/dev/tcp/127.0.0.2/9) 2>/dev/null && echo ALLOWED >> $LOG; "
				 "n=$((n+1)); done; echo done $n >> $LOG", NULL };

		run = spawn(argv, "run.out");
	}
	ASSERT_TRUE(wait_for_job(), "the job started");
	sleep_ms(1000);
	kill(run, SIGKILL);		/* the controller, not the job */
	ASSERT_EQ(wait_exit(run), 128 + SIGKILL, "controller killed");
	sleep_ms(3500);			/* the orphaned job keeps flooding */
	out = slurp("work/flood.log");
	ASSERT_TRUE(out && strstr(out, "done "), "the job kept running after the kill");
	ASSERT_TRUE(out && !strstr(out, "ALLOWED"), "no denied connect ever got through");
	free(out);
	d = start_daemon();
	sleep_ms(1500);			/* drain, account losses, adopt the ended job */
	kill(d, SIGTERM);
	ASSERT_EQ(wait_exit(d), 0, "daemon stops cleanly");

	l = kg_loader_open(&lo);
	ASSERT_TRUE(l != NULL, "maps still pinned");
	ASSERT_OK(kg_maps_read_counters(l, &c), "counters");
	kg_loader_close(l);
	audited = count_decisions("deny", NULL);	/* folded ones included */
	{
		/* sum of "lost" in events_lost records */
		char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", "--type",
				 "events_lost", NULL };
		json_t *rec;
		char *line, *save = NULL;

		wait_exit(spawn(argv, "lost.json"));
		out = slurp("lost.json");
		for (line = out ? strtok_r(out, "\n", &save) : NULL; line;
		     line = strtok_r(NULL, "\n", &save)) {
			json_t *lost;

			rec = json_loads(line, 0, NULL);
			/* docs/audit-format.md: extra.counts.lost */
			lost = json_object_get(json_object_get(json_object_get(rec, "extra"),
							       "counts"), "lost");
			ASSERT_TRUE(json_is_integer(lost), "events_lost record has extra.counts.lost");
			lost_recorded += (long)json_integer_value(lost);
			json_decref(rec);
		}
		free(out);
	}
	printf("  kernel denials %llu, audited %ld, lost and recorded %ld\n",
	       (unsigned long long)c.decisions[KG_DEC_DENY], audited, lost_recorded);
	ASSERT_GE(c.decisions[KG_DEC_DENY], 20, "a real flood");
	ASSERT_EQ(audited + lost_recorded, (long)c.decisions[KG_DEC_DENY],
		  "every kernel denial is audited or counted lost");
	ASSERT_EQ(count_records("job_exit", NULL, NULL), 1, "the daemon recorded the job's end");
	teardown();
}

/* No daemon: a job whose `kgate run` was killed ends; the next `kgate run`
 * finishes its clean-up (docs/design.md, "Fail closed"), so it is not
 * called governed forever. */
TEST(killed_run_is_cleaned_up_by_the_next_run_without_a_daemon)
{
	struct kg_loader_opts lo = { 0 };
	struct kg_job_record *jobs = NULL, first;
	char p1[512], cgdir[4200], links[4200];
	struct kg_loader *l;
	struct kg_job kj;
	size_t n = 0;
	pid_t run;

	setup();
	ASSERT_FALSE(kg_control_daemon_running(), "no daemon in this test");
	write_file("p1.json", POLICY_BLOCK("127.0.0.2"), p1, sizeof(p1));
	{
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", p1, "--", "/bin/sleep",
				 "1.5", NULL };

		run = spawn(argv, "run1.out");
	}
	ASSERT_TRUE(wait_for_job(), "the job started");
	if (!ASSERT_OK(kg_registry_list(&jobs, &n), "registry") || !ASSERT_EQ(n, 1, "one job")) {
		free(jobs);
		teardown();
		return;
	}
	first = jobs[0];
	free(jobs);
	kill(run, SIGKILL);		/* the controller, not the job */
	ASSERT_EQ(wait_exit(run), 128 + SIGKILL, "controller killed");
	sleep_ms(2500);			/* the job's sleep ends meanwhile */
	snprintf(cgdir, sizeof(cgdir), "%s", first.cgroup_path);
	snprintf(links, sizeof(links), "%s/jobs/%llu", pindir, (unsigned long long)first.cgid);
	/* governed by the programs on <cgroup2>/kgate (no links of its own),
	 * or by its own links where the loader could not attach there */
	ASSERT_OK(access(cgdir, F_OK), "its cgroup is still there before the next run");

	{
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", p1, "--", "/bin/true",
				 NULL };

		ASSERT_EQ(wait_exit(spawn(argv, "run2.out")), 0, "the next run");
	}
	jobs = NULL;
	ASSERT_OK(kg_registry_list(&jobs, &n), "registry");
	ASSERT_EQ(n, 0, "the orphan is no longer listed (kgate status)");
	free(jobs);
	ASSERT_TRUE(access(links, F_OK) != 0, "its cgroup links are unpinned");
	ASSERT_TRUE(access(cgdir, F_OK) != 0, "its cgroup is removed");
	l = kg_loader_open(&lo);
	if (ASSERT_TRUE(l != NULL, "maps"))
		ASSERT_TRUE(kg_maps_get_job(l, first.cgid, &kj) != 0, "no kg_jobs entry left");
	kg_loader_close(l);
	ASSERT_EQ(count_records("job_exit", NULL, first.trace), 1, "its end is recorded");
	teardown();
}

/* fail_mode "open": once the controller is gone longer than the heartbeat
 * timeout (10 s), the kernel stops refusing; "closed" never does (the kill
 * -9 test above). */
TEST(fail_open_policy_stops_refusing_when_the_controller_is_gone)
{
	char p1[512], env[600], log[512], *out, *before, *after;
	pid_t run, job_pid = 0;

	setup();
	write_file("p1.json", "{\"version\":1,\"name\":\"open\",\"fail_mode\":\"open\","
		   "\"default\":\"allow\",\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":["
		   "{\"id\":\"block\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}",
		   p1, sizeof(p1));
	snprintf(log, sizeof(log), "%s/work/open.log", tmpdir);
	snprintf(env, sizeof(env), "LOG=%s", log);
	putenv(env);
	{
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", p1, "--", "/bin/bash", "-c",
				 "echo $$ > $LOG.pid; for i in $(seq 1 60); do "
				 "if (exec 3<>/dev/tcp/127.0.0.2/9) 2>&1 | grep -q 'not permitted'; "
				 "then echo \"$SECONDS refused\"; else echo \"$SECONDS reached\"; fi >> $LOG; "
				 "sleep 0.5; done", NULL };

		run = spawn(argv, "run.out");
	}
	ASSERT_TRUE(wait_for_job(), "the job started");
	sleep_ms(1000);
	kill(run, SIGKILL);
	ASSERT_EQ(wait_exit(run), 128 + SIGKILL, "controller killed");
	sleep_ms(14000);	/* past the 10 s heartbeat timeout */
	out = slurp("work/open.log");
	printf("%s", out ? out : "");
	before = out ? strstr(out, "refused") : NULL;
	after = out ? strrchr(out, '\n') : NULL;
	ASSERT_TRUE(before != NULL, "refused while the controller lived");
	ASSERT_TRUE(out && strstr(out, "reached"), "reached after the controller was gone");
	/* the last probe (well past the timeout) went through */
	if (after && after > out) {
		char *last = after - 1;

		while (last > out && last[-1] != '\n')
			last--;
		ASSERT_TRUE(strstr(last, "reached") == last + strcspn(last, " ") + 1,
			    "the newest probe was not refused");
	}
	free(out);
	out = slurp("work/open.log.pid");
	if (out)
		job_pid = atoi(out);
	free(out);
	if (job_pid > 0)
		kill(job_pid, SIGKILL);
	{
		/* the daemon adopts the ended job and removes its cgroup */
		pid_t d = start_daemon();

		sleep_ms(1000);
		kill(d, SIGTERM);
		wait_exit(d);
	}
	ASSERT_EQ(count_records("job_exit", NULL, NULL), 1, "the daemon recorded the job's end");
	teardown();
}

/* An unprivileged client that opens `nconn` connections and dribbles a byte
 * on each every 200 ms for `secs` seconds (then exits). */
static pid_t slow_loris(int nconn, int secs)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fds[64], n = 0, i, round;

		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(3);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", kg_socket_path());
		for (i = 0; i < nconn && i < 64; i++) {
			int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

			if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
				fds[n++] = fd;
			else if (fd >= 0)
				close(fd);
		}
		signal(SIGPIPE, SIG_IGN);
		for (round = 0; round < secs * 5; round++) {
			for (i = 0; i < n; i++)
				(void)write(fds[i], "{", 1);	/* never a whole line */
			sleep_ms(200);
		}
		_exit(0);
	}
	return pid;
}

static uint64_t heartbeat_age_ms(void)
{
	struct kg_control ctl = {};
	uint32_t zero = 0;
	int fd = kg_open_pinned_map("kg_control");
	uint64_t now = kg_now_mono_ns();

	if (fd < 0 || bpf_map_lookup_elem(fd, &zero, &ctl)) {
		if (fd >= 0)
			close(fd);
		return UINT64_MAX;
	}
	close(fd);
	return now > ctl.heartbeat_ns ? (now - ctl.heartbeat_ns) / 1000000 : 0;
}

/* Issue 10 §2: an unprivileged client dribbling bytes stalled the daemon
 * (a root ping took 24 s) and a fail-open job whose `kgate run` had been
 * killed stopped being enforced once the heartbeat went stale.  Now: while
 * slow clients dribble for longer than the heartbeat timeout, root pings
 * are answered, the heartbeat keeps beating and the job keeps refusing. */
TEST(slow_clients_delay_neither_root_nor_the_heartbeat)
{
	char p1[512], env[600], log[512], *out;
	pid_t run, d, loris, big, job_pid = 0;
	int i, pings_ok = 0;
	uint64_t worst_age = 0;

	setup();
	write_file("p1.json", "{\"version\":1,\"name\":\"open\",\"fail_mode\":\"open\","
		   "\"default\":\"allow\",\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":["
		   "{\"id\":\"block\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}",
		   p1, sizeof(p1));
	snprintf(log, sizeof(log), "%s/work/open.log", tmpdir);
	snprintf(env, sizeof(env), "LOG=%s", log);
	putenv(env);
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon answers");
	{
		char *argv[] = { (char *)kgate_bin(), "run", "-q", "--policy", p1, "--", "/bin/bash", "-c",
				 "echo $$ > $LOG.pid; for i in $(seq 1 80); do "
				 "if (exec 3<>/dev/tcp/127.0.0.2/9) 2>&1 | grep -q 'not permitted'; "
				 "then echo \"$SECONDS refused\"; else echo \"$SECONDS reached\"; fi >> $LOG; "
				 "sleep 0.25; done", NULL };

		run = spawn(argv, "run.out");
	}
	ASSERT_TRUE(wait_for_job(), "the job started");
	sleep_ms(500);
	kill(run, SIGKILL);	/* its controller: only the daemon beats now */
	ASSERT_EQ(wait_exit(run), 128 + SIGKILL, "kgate run killed");
	loris = slow_loris(40, 14);
	/* and another user that sends a large request without a newline (the
	 * slow one has used up its own user's share of connections) */
	big = fork();
	if (big == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		static char junk[128 << 10], reply[512];
		ssize_t n, off = 0;
		int fd;

		if (setgroups(0, NULL) || setresgid(65533, 65533, 65533) ||
		    setresuid(65533, 65533, 65533))
			_exit(3);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", kg_socket_path());
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			_exit(4);
		memset(junk, ' ', sizeof(junk));
		signal(SIGPIPE, SIG_IGN);
		while (off < (ssize_t)sizeof(junk) && (n = write(fd, junk + off, sizeof(junk) - off)) > 0)
			off += n;
		n = read(fd, reply, sizeof(reply) - 1);
		reply[n > 0 ? n : 0] = '\0';
		printf("  oversized request -> %s", reply);
		_exit(strstr(reply, "larger than") ? 0 : 1);
	}
	sleep_ms(500);
	for (i = 0; i < 13; i++) {
		json_t *req = json_pack("{s:s}", "op", "ping"), *r;
		uint64_t age;

		r = kg_control_call(req, 1000);
		pings_ok += r && json_is_true(json_object_get(r, "ok"));
		json_decref(r);
		json_decref(req);
		age = heartbeat_age_ms();
		if (age > worst_age)
			worst_age = age;
		sleep_ms(1000);
	}
	printf("  pings answered within 1 s: %d of 13; oldest heartbeat seen: %llu ms\n", pings_ok,
	       (unsigned long long)worst_age);
	ASSERT_EQ(pings_ok, 13, "every root ping answered within 1 s");
	ASSERT_TRUE(worst_age < 2000, "the heartbeat never went stale");
	ASSERT_EQ(wait_exit(big), 0, "an oversized request is refused, not buffered");
	ASSERT_EQ(wait_exit(loris), 0, "the slow client ran to its end");
	out = slurp("work/open.log");
	printf("%s", out ? out : "");
	ASSERT_TRUE(out && strstr(out, "refused"), "the job's probes ran");
	ASSERT_TRUE(out && !strstr(out, "reached"), "no denied connect went through (fail-open never opened)");
	free(out);
	out = slurp("work/open.log.pid");
	if (out)
		job_pid = atoi(out);
	free(out);
	if (job_pid > 0)
		kill(job_pid, SIGKILL);
	sleep_ms(700);		/* the daemon adopts the ended job */
	kill(d, SIGTERM);
	ASSERT_EQ(wait_exit(d), 0, "daemon stops cleanly");
	teardown();
}
