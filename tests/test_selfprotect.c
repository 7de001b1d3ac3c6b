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
#include "cgroup.h"
#include "control.h"
#include "loader.h"
#include "maps.h"

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
	"S=$KGATE_STATE_DIR; L=$KGATE_AUDIT_DIR; B=$KGATE_BPFFS; P=$PPID\n"
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
		"head_unlink", "queue_forge", "state_rename", "ancestor_rename", "push",
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
