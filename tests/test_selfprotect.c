// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_selfprotect.c - a root job cannot take kgate apart (degraded mode,
 * this host): it cannot unlink kgate's pins, read the audit key, write the
 * trail, plant an approval in the queue or reach the daemon's socket, not
 * by their paths (hidden in the job's mount namespace) and not through
 * /proc/PID/root of a process outside the job (Landlock domain); after the
 * attacks its denied connect is still denied.  The daemon decides nothing
 * for a peer inside a job.  Under sudo the agent runs as the invoking user.
 * The full-mode twin (BPF LSM, audited refusals) is vmtests/vt_protect.c.
 */
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "testlib.h"
#include "kgrun.h"
#include "job/cgroup.h"
#include "daemon/control.h"
#include "kernel/loader.h"
#include "kernel/maps.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static pid_t start_daemon(void)
{
	char out[512];
	pid_t pid;
	int i;

	snprintf(out, sizeof(out), "%s/daemon.out", tmpdir);
	pid = fork();
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execl(kgate_bin(), kgate_bin(), "daemon", (char *)NULL);
		_exit(126);
	}
	for (i = 0; i < 300 && !kg_control_daemon_running(); i++)
		sleep_ms(100);
	return pid;
}

static void stop_daemon(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
}

/* `kgate audit query --json ARGS...` as an array of records. */
static json_t *query(const char *type)
{
	char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", "--type", (char *)type,
			 NULL };
	char *out, *line, *save = NULL;
	json_t *arr = json_array();

	run_capture(argv, &out);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *r = json_loads(line, 0, NULL);

		if (r)
			json_array_append_new(arr, r);
	}
	return arr;
}

#define ALLOW_ALL \
	"{\"version\":1,\"name\":\"open\",\"default\":\"allow\",\"runtime_defaults\":{\"net\":\"allow\"}}"

TEST(under_sudo_the_agent_runs_as_the_invoking_user)
{
	char policy[512], *out;
	json_t *recs, *ra;

	setup();
	write_policy(ALLOW_ALL, policy, sizeof(policy));
	setenv("SUDO_UID", "65534", 1);
	setenv("SUDO_GID", "65534", 1);
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "ids"), 0, "runs");
	ASSERT_HAS_SUBSTR(out, "uid 65534 gid 65534", "the agent ran as the sudo caller");
	ASSERT_HAS_SUBSTR(out, "the agent runs as", "kgate run says who the agent runs as");
	ASSERT_HAS_SUBSTR(out, "(uid 65534, gid 65534), the user who ran sudo", "and why");
	recs = query("job_start");
	ra = json_object_get(json_object_get(json_array_get(recs, 0), "extra"), "run_as");
	ASSERT_EQ(json_integer_value(json_object_get(ra, "uid")), 65534, "job_start: run_as.uid");
	ASSERT_TRUE(json_string_value(json_object_get(ra, "source")) &&
		    !strcmp(json_string_value(json_object_get(ra, "source")), "SUDO_UID"),
		    "job_start: run_as.source");
	json_decref(recs);
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--as", "root", "--policy", policy, "--",
				 (char *)helper("kg_attack"), "ids", NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "--as root runs");
		ASSERT_HAS_SUBSTR(out, "uid 0 gid 0", "--as root: root, when asked for");
		ASSERT_HAS_SUBSTR(out, "the agent runs as root (uid 0, gid 0: --as)", "said");
	}
	setenv("SUDO_UID", "4000000000", 1);	/* no such user here */
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "ids"), 2,
		  "a SUDO_UID naming nobody is refused, not ignored");
	ASSERT_HAS_SUBSTR(out, "SUDO_UID=4000000000", "names it");
	unsetenv("SUDO_UID");
	unsetenv("SUDO_GID");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "ids"), 0, "no sudo");
	ASSERT_HAS_SUBSTR(out, "uid 0 gid 0", "root runs it as root");
	ASSERT_HAS_SUBSTR(out, "the agent runs as root (uid 0)", "and says so");
	teardown();
}

#define BLOCK_POLICY \
	"{\"version\":1,\"name\":\"block\",\"default\":\"allow\",\"runtime_defaults\":{\"net\":\"allow\"}," \
	"\"runtime\":[{\"id\":\"block\",\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}"

#define PERMISSIVE "{\\\"version\\\":1,\\\"name\\\":\\\"let-me\\\",\\\"default\\\":\\\"allow\\\"}"

/* The attacks, as root inside one job; each line "NAME=errno" (0 = it
 * worked).  $A is kg_attack, $D the daemon's pid, $P kgate run's pid. */
static const char attacks[] =
	"at() { n=$1; shift; $A \"$@\" >/dev/null 2>&1; echo \"$n=$?\"; }\n"
	"S=$KGATE_STATE_DIR; L=$KGATE_AUDIT_DIR; B=$KGATE_BPFFS; T=$KGATE_DATA_DIR; P=$PPID\n"
	/* by their paths */
	"at pin_unlink unlink $B/kg_jobs\n"
	/* the job's own cgroup links: <pins>/jobs/<its cgroup id>/<program> */
	"ID=$(stat -c %i $CG2$(sed -n 's/^0:://p' /proc/self/cgroup))\n"
	"for l in kg_connect4 kg_connect6 kg_sendmsg4 kg_sendmsg6 kg_sock_create; do\n"
	"  at link_unlink unlink $B/jobs/$ID/$l; done\n"
	"at pins_rmdir rmdir $B/jobs\n"
	"at key_read read $L/audit.key\n"
	"at trail_append append $L/audit.jsonl\n"
	"at trail_truncate truncate $L/audit.jsonl\n"
	"at head_unlink unlink $L/audit.head\n"
	"at queue_forge create $S/approvals/done/0123456789ab.json\n"
	/* a token of its own would let it approve its own requests over HTTP */
	"at token_forge append $T/api-tokens.json\n"
	"at token_plant create $T/api-tokens.new\n"
	"at registry_write append $S/jobs/$TRACE.json\n"
	"at state_rename rename $S $S.moved\n"
	"at ancestor_rename rename $(dirname $S) $(dirname $S).moved\n"
	"at push unix-request $S/control.sock '{\"op\":\"push\",\"policy\":\"" PERMISSIVE "\"}'\n"
	/* through processes outside the job, which see the real paths */
	"for x in $P $D 1; do\n"
	"  R=/proc/$x/root\n"
	"  at proc_pin_unlink_$x unlink $R$B/kg_jobs\n"
	"  at proc_link_unlink_$x unlink $R$B/jobs/$ID/kg_connect4\n"
	"  at proc_key_read_$x read $R$L/audit.key\n"
	"  at proc_trail_append_$x append $R$L/audit.jsonl\n"
	"  at proc_queue_forge_$x create $R$S/approvals/done/0123456789ab.json\n"
	"  at proc_push_$x unix-request $R$S/control.sock '{\"op\":\"push\",\"policy\":\"" PERMISSIVE "\"}'\n"
	"  at proc_cgroup_$x append $R$CG2/cgroup.procs\n"
	"done\n"
	/* its own files it moves as it likes */
	"at move_across rename $WORK/a/f $WORK/b/f\n"
	/* and after all that, its policy still holds */
	"(exec 3<>/dev/tcp/127.0.0.2/9) 2>/dev/null; echo after_denied_connect=$?\n";

static void expect_refused(const char *out, const char *name)
{
	char needle[96];
	const char *p;
	int e = -1;

	snprintf(needle, sizeof(needle), "\n%s=", name);
	p = strstr(out, needle);
	if (p)
		e = atoi(p + strlen(needle));
	if (!ASSERT_TRUE(p && e != 0 && e != 200, name))
		printf("    %s: %s\n", name, p ? "it worked" : "not attempted");
}

TEST(root_job_cannot_reach_kgate_state_by_any_path)
{
	char policy[512], script[8192], env[128], *out, *before_key, *after_key;
	char keypath[512], pin[512], forged[512];
	const char *names[] = {
		"pin_unlink", "pins_rmdir", "key_read", "trail_append", "trail_truncate",
		"head_unlink", "queue_forge", "token_forge", "token_plant", "state_rename",
		"ancestor_rename", "push",
	};
	const char *proc_names[] = {
		"proc_pin_unlink", "proc_link_unlink", "proc_key_read", "proc_trail_append", "proc_queue_forge",
		"proc_push", "proc_cgroup",
	};
	char name[64], pidbuf[2][16];
	json_t *recs;
	pid_t d;
	size_t i, k;

	setup();
	write_policy(BLOCK_POLICY, policy, sizeof(policy));
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon answers");
	snprintf(keypath, sizeof(keypath), "%s/audit/audit.key", tmpdir);
	before_key = kg_read_file(keypath, 4096, NULL);
	/* a token file for the job to try to append to (the daemon made the dir) */
	snprintf(forged, sizeof(forged), "%s/data/api-tokens.json", tmpdir);
	{
		int fd = open(forged, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		ASSERT_TRUE(fd >= 0 && write(fd, "{\"tokens\":[]}\n", 14) == 14, "a token file");
		if (fd >= 0)
			close(fd);
	}
	snprintf(env, sizeof(env), "%d", (int)d);
	setenv("D", env, 1);
	setenv("A", helper("kg_attack"), 1);
	setenv("CG2", kg_cgroup2_mount(), 1);
	snprintf(script, sizeof(script), "%s/work", tmpdir);
	setenv("WORK", script, 1);
	snprintf(script, sizeof(script), "mkdir -p %s/work/a %s/work/b && touch %s/work/a/f",
		 tmpdir, tmpdir, tmpdir);
	ASSERT_OK(system(script), "the job's own files");
	snprintf(script, sizeof(script), "TRACE=$(cat /proc/self/cgroup | sed 's|.*/||'); %s",
		 attacks);
	ASSERT_EQ(KGATE_RUN(policy, &out, "/bin/bash", "-c", script), 0, "the job ran");
	ASSERT_HAS_SUBSTR(out, "hidden from the job", "kgate run says how its state is kept away");
	for (i = 0; i < ARRAY_SIZE(names); i++)
		expect_refused(out, names[i]);
	ASSERT_HAS_SUBSTR(out, "\nlink_unlink=", "the job's own cgroup links were attempted");
	ASSERT_TRUE(!strstr(out, "\nlink_unlink=0"), "no cgroup link of the job was unlinked");
	snprintf(pidbuf[0], sizeof(pidbuf[0]), "1");
	snprintf(pidbuf[1], sizeof(pidbuf[1]), "%d", (int)d);
	for (k = 0; k < 2; k++)
		for (i = 0; i < ARRAY_SIZE(proc_names); i++) {
			snprintf(name, sizeof(name), "%s_%s", proc_names[i], pidbuf[k]);
			expect_refused(out, name);
		}
	ASSERT_HAS_SUBSTR(out, "\nmove_across=0", "a rename across its own directories works");
	ASSERT_HAS_SUBSTR(out, "\nafter_denied_connect=1", "its denied connect is still denied");
	ASSERT_HAS_SUBSTR(out, "REFUSED net_connect   127.0.0.2:9/tcp", "by the kernel, as audited");
	stop_daemon(d);

	/* from outside: everything is where it was */
	snprintf(pin, sizeof(pin), "%s/kg_jobs", pindir);
	ASSERT_OK(access(pin, F_OK), "the pinned kg_jobs map is still there");
	snprintf(forged, sizeof(forged), "%s/state/approvals/done/0123456789ab.json", tmpdir);
	ASSERT_TRUE(access(forged, F_OK) != 0, "no approval was planted in the queue");
	snprintf(forged, sizeof(forged), "%s/data/api-tokens.new", tmpdir);
	ASSERT_TRUE(access(forged, F_OK) != 0, "no token file was planted");
	after_key = kg_read_file(keypath, 4096, NULL);
	ASSERT_TRUE(before_key && after_key && !strcmp(before_key, after_key), "the key is unchanged");
	free(before_key);
	free(after_key);
	{
		char *argv[] = { (char *)kgate_bin(), "audit", "verify", NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "the trail verifies");
	}
	recs = query("policy_change");
	ASSERT_EQ(json_array_size(recs), 0, "no policy was pushed");
	json_decref(recs);
	unsetenv("D");
	teardown();
}

/* The daemon's own check, for a client that reaches its socket from inside
 * a job (in degraded mode nothing else stops it where Landlock is absent):
 * its cgroup, read from the kernel, is in kg_jobs or under the jobs' root. */
static int governed_request(struct kg_cgroup *cg, const char *req, char *reply, size_t len)
{
	int pipefd[2], st;
	ssize_t n;
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid == 0) {
		json_t *r, *j = json_loads(req, 0, NULL);
		char *s;

		close(pipefd[0]);
		if (kg_cgroup_add_pid(cg, getpid()))
			_exit(3);
		r = j ? kg_control_call(j, 5000) : NULL;
		s = r ? json_dumps(r, JSON_COMPACT) : strdup("no reply");
		if (write(pipefd[1], s, strlen(s)) < 0)
			_exit(4);
		_exit(0);
	}
	close(pipefd[1]);
	n = read(pipefd[0], reply, len - 1);
	reply[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(daemon_decides_nothing_for_a_peer_inside_a_job)
{
	struct kg_loader_opts lo = { 0 };
	struct kg_cgroup job, under_root;
	struct kg_loader *l;
	char reply[4096], name[64];
	json_t *recs;
	pid_t d;
	size_t i;
	int denied = 0;

	setup();
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon answers");
	l = kg_loader_open(&lo);
	ASSERT_TRUE(l != NULL, "loader");
	/* a job somewhere else, known by kg_jobs (its cgroup's id) */
	snprintf(name, sizeof(name), "sp-%d", (int)getpid());
	ASSERT_OK(kg_cgroup_create_job("kgate-test-sp", name, &job), "job cgroup");
	ASSERT_OK(kg_maps_add_job(l, job.id, 42, 0, KG_JOB_F_DEGRADED), "registered in kg_jobs");
	/* and one under the jobs' root that is not (yet) registered */
	ASSERT_OK(kg_cgroup_create_job("kgate", name, &under_root), "cgroup under the jobs' root");

	ASSERT_EQ(governed_request(&job, "{\"op\":\"ping\"}", reply, sizeof(reply)), 0, "child ran");
	ASSERT_HAS_SUBSTR(reply, "\"ok\":true", "ping is answered");
	ASSERT_EQ(governed_request(&job, "{\"op\":\"push\",\"policy\":\"" PERMISSIVE "\"}", reply,
				   sizeof(reply)), 0, "child ran");
	ASSERT_HAS_SUBSTR(reply, "inside a governed job", "a push from inside a job is refused");
	ASSERT_EQ(governed_request(&job, "{\"op\":\"approve\",\"id\":\"0123456789ab\"}", reply,
				   sizeof(reply)), 0, "child ran");
	ASSERT_HAS_SUBSTR(reply, "inside a governed job", "so is an approval");
	ASSERT_EQ(governed_request(&job, "{\"op\":\"status\"}", reply, sizeof(reply)), 0, "child ran");
	ASSERT_HAS_SUBSTR(reply, "inside a governed job", "and a status query");
	ASSERT_EQ(governed_request(&under_root, "{\"op\":\"push\",\"policy\":\"" PERMISSIVE "\"}", reply,
				   sizeof(reply)), 0, "child ran");
	ASSERT_HAS_SUBSTR(reply, "inside a governed job", "under the jobs' root: refused too");
	{
		/* a 32 KiB op of two-byte characters: refused, recorded cut short */
		static char big[40000];
		size_t k, off = (size_t)snprintf(big, sizeof(big), "{\"op\":\"");

		for (k = 0; k < 16384; k++, off += 2)
			memcpy(big + off, "\xc3\xa9", 2);	/* U+00E9 */
		snprintf(big + off, sizeof(big) - off, "\"}");
		ASSERT_EQ(governed_request(&job, big, reply, sizeof(reply)), 0, "child ran");
		ASSERT_HAS_SUBSTR(reply, "inside a governed job", "a huge op is refused too");
	}
	{
		json_t *r, *req = json_pack("{s:s}", "op", "status");

		r = kg_control_call(req, 5000);
		ASSERT_TRUE(r && json_is_true(json_object_get(r, "ok")), "outside a job: answered");
		json_decref(r);
		json_decref(req);
	}
	stop_daemon(d);
	recs = query("decision");
	for (i = 0; i < json_array_size(recs); i++) {
		json_t *r = json_array_get(recs, i);

		if (!strcmp(json_string_value(json_object_get(r, "op")) ?: "", "kgate_state") &&
		    !strcmp(json_string_value(json_object_get(r, "decision")) ?: "", "deny") &&
		    !strcmp(json_string_value(json_object_get(r, "rule")) ?: "", "kgate:self-protection"))
			denied++;
	}
	ASSERT_EQ(denied, 5, "each refusal is an audited self-protection denial");
	for (i = 0; i < json_array_size(recs); i++) {
		const char *tried = json_string_value(json_object_get(
			json_object_get(json_array_get(recs, i), "extra"), "tried"));

		if (tried && strlen(tried) > 60) {
			ASSERT_TRUE(strlen(tried) <= 64 + 3, "a huge op is recorded cut short");
			ASSERT_HAS_SUBSTR(tried, "\xc3\xa9...", "on a character boundary, marked");
		}
	}
	json_decref(recs);
	recs = query("policy_change");
	ASSERT_EQ(json_array_size(recs), 0, "nothing was pushed");
	json_decref(recs);
	kg_maps_remove_job(l, job.id);
	kg_cgroup_destroy(&job);
	kg_cgroup_destroy(&under_root);
	kg_loader_close(l);
	teardown();
}

/* `kgate approvals ARGS...` as uid (through the daemon unless root). */
static int approvals_as(const char *uid, char **out, const char *a1, const char *a2,
			const char *a3)
{
	char reuid[32], regid[32];
	char *argv[] = { "/usr/bin/setpriv", reuid, regid, "--clear-groups", (char *)kgate_bin(),
			 "approvals", (char *)a1, (char *)a2, (char *)a3, NULL };

	snprintf(reuid, sizeof(reuid), "--reuid=%s", uid);
	snprintf(regid, sizeof(regid), "--regid=%s", uid);
	return run_capture(argv, out);
}

#define APPROVERS_POLICY \
	"{\"version\":1,\"name\":\"approvers\",\"default\":\"allow\",\"runtime_defaults\":{\"net\":\"allow\"}," \
	"\"approvals\":{\"timeout_sec\":60,\"approvers\":{\"uids\":[0,12345]}}," \
	"\"runtime\":[{\"id\":\"needs-ok\",\"net\":{\"cidr\":\"127.0.0.9/32\",\"ports\":[%d]}," \
	"\"decision\":\"require_approval\"}]}"

/* Issue 10 §3: with approvers [0, 12345], uid 12345 got EACCES on the state
 * dir.  Now it decides through the daemon, which takes its identity from
 * the kernel; an uid that is not an approver is refused and sees nothing. */
TEST(an_approver_who_is_not_root_approves_through_the_daemon)
{
	char policy[512], json[2048], script[256], bgout[512], id[32] = "", *out, *p;
	int port, lfd, i, st;
	json_t *recs;
	pid_t d, job;
	bool found = false;

	setup();
	chmod(tmpdir, 0755);	/* the approvers reach the daemon's socket inside it */
	lfd = listen_tcp(AF_INET, "127.0.0.9", &port);
	ASSERT_TRUE(lfd >= 0, "listener on 127.0.0.9");
	snprintf(json, sizeof(json), APPROVERS_POLICY, port);
	write_policy(json, policy, sizeof(policy));
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon answers");
	snprintf(script, sizeof(script), "(exec 3<>/dev/tcp/127.0.0.9/%d) && echo HELD-CONNECT-OK",
		 port);
	snprintf(bgout, sizeof(bgout), "%s/job.out", tmpdir);
	job = fork();
	if (job == 0) {
		int fd = open(bgout, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execl(kgate_bin(), kgate_bin(), "run", "--policy", policy, "--", "/bin/bash", "-c",
		      script, (char *)NULL);
		_exit(126);
	}
	for (i = 0; i < 150 && !id[0]; i++) {
		sleep_ms(100);
		approvals_as("12345", &out, "list", "--json", NULL);
		p = strstr(out, "\"id\"");
		if (p && sscanf(p, "\"id\": \"%31[0-9a-f]\"", id) != 1)
			id[0] = '\0';
	}
	ASSERT_TRUE(id[0] != '\0', "the approver (uid 12345) lists the pending request");
	ASSERT_EQ(approvals_as("12346", &out, "list", "--json", NULL), 0, "another user lists");
	ASSERT_TRUE(!strstr(out, id), "and does not see a request it may not decide");
	ASSERT_EQ(approvals_as("12346", &out, "approve", id, NULL), 4, "nor approve it: exit 4");
	ASSERT_HAS_SUBSTR(out, "not an approver", "says why");
	ASSERT_EQ(approvals_as("12345", &out, "approve", id, "--once"), 0, "the approver approves");
	ASSERT_HAS_SUBSTR(out, "approved", "and is told so");
	waitpid(job, &st, 0);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the job ended well");
	out = kg_read_file(bgout, 1 << 20, NULL);
	printf("%s", out ? out : "");
	ASSERT_HAS_SUBSTR(out, "HELD-CONNECT-OK", "the held connect went through after approval");
	free(out);
	stop_daemon(d);
	recs = query("approval");
	for (i = 0; i < (int)json_array_size(recs); i++) {
		json_t *r = json_array_get(recs, i);

		if (!strcmp(json_string_value(json_object_get(r, "decision")) ?: "", "approved") &&
		    json_integer_value(json_object_get(json_object_get(r, "actor"), "uid")) == 12345)
			found = true;
	}
	ASSERT_TRUE(found, "the trail says uid 12345 approved it");
	json_decref(recs);
	close(lfd);
	teardown();
}

/* kgate status: root and the job's own user see its command line; other
 * users see that it exists. */
TEST(status_shows_a_job_in_full_only_to_root_and_its_own_user)
{
	char policy[512], bgout[512], *out;
	char *argv_other[] = { "/usr/bin/setpriv", "--reuid=12346", "--regid=12346",
			       "--clear-groups", (char *)kgate_bin(), "status", NULL };
	char *argv_own[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
			     "--clear-groups", (char *)kgate_bin(), "status", NULL };
	char *argv_root[] = { (char *)kgate_bin(), "status", NULL };
	int i, st;
	pid_t d, job;

	setup();
	chmod(tmpdir, 0755);
	write_policy(ALLOW_ALL, policy, sizeof(policy));
	d = start_daemon();
	ASSERT_TRUE(kg_control_daemon_running(), "daemon answers");
	snprintf(bgout, sizeof(bgout), "%s/job.out", tmpdir);
	setenv("SUDO_UID", "65534", 1);	/* started through sudo by uid 65534 */
	job = fork();
	if (job == 0) {
		int fd = open(bgout, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 1);
		dup2(fd, 2);
		execl(kgate_bin(), kgate_bin(), "run", "--policy", policy, "--", "/bin/bash", "-c",
		      "sleep 4", "secret-argument-3", (char *)NULL);
		_exit(126);
	}
	unsetenv("SUDO_UID");
	for (i = 0; i < 100; i++) {
		run_capture(argv_root, &out);
		if (strstr(out, "secret-argument"))
			break;
		sleep_ms(100);
	}
	ASSERT_HAS_SUBSTR(out, "secret-argument-3", "root sees the command line");
	ASSERT_EQ(run_capture(argv_own, &out), 0, "the job's user asks the daemon");
	ASSERT_HAS_SUBSTR(out, "secret-argument-3", "and sees its job in full");
	ASSERT_EQ(run_capture(argv_other, &out), 0, "another user asks");
	ASSERT_HAS_SUBSTR(out, "1 job(s)", "sees that a job exists");
	ASSERT_TRUE(!strstr(out, "secret-argument"), "but not its command line");
	ASSERT_HAS_SUBSTR(out, "another user's job", "and is told why");
	waitpid(job, &st, 0);
	stop_daemon(d);
	teardown();
}
