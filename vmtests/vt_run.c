// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_run.c - `kgate run` as a user runs it, under BPF LSM (black box).
 *
 * A governed agent (tests/helpers/vt_agent) attacks files, binaries, the
 * network, kgate itself and its cgroup; each test asserts what the agent
 * saw (the kernel's answer, the exit status) and what the audit trail says
 * about it (op, rule, decision "deny", mechanism).  Also: --require full,
 * and every shipped policy passing `kgate policy check` and running a
 * command.  Full-mode tests SKIP in the nobpf boot; --require full and the
 * policy checks run in both.
 */
#include <arpa/inet.h>
#include <glob.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "testlib.h"
#include "vt_bb.h"
#include "job/cgroup.h"

static int listen_tcp(const char *addr, int *port)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, addr, &in.sin_addr);
	if (bind(fd, (struct sockaddr *)&in, len) || listen(fd, 16) ||
	    getsockname(fd, (struct sockaddr *)&in, &len)) {
		close(fd);
		return -1;
	}
	*port = ntohs(in.sin_port);
	return fd;
}

/* agent step "LABEL=ACTION:PATH" with PATH under the home */
static const char *step(const char *label, const char *action, const char *rel)
{
	static char buf[16][640];
	static int n;
	char *b = buf[n++ % 16];

	snprintf(b, sizeof(buf[0]), "%s=%s:%s", label, action, rel ? bb_home(rel) : "");
	return b;
}

#define FILE_POLICY \
	"{\"version\":1,\"name\":\"vt-files\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"file\":\"allow\",\"exec\":\"allow\",\"net\":\"deny\"}," \
	"\"runtime\":[" \
	"{\"id\":\"no-secret\",\"file\":{\"prefix\":\"~/secret/\",\"ops\":[\"read\",\"write\"]}," \
	"\"decision\":\"deny\",\"reason\":\"secrets stay put\"}," \
	"{\"id\":\"ro-tree\",\"file\":{\"prefix\":\"~/ro/\",\"ops\":[\"write\",\"create\"]}," \
	"\"decision\":\"deny\",\"reason\":\"read-only tree\"}]}"

TEST(run_file_reads_writes_symlinks_and_proc_fd_reopens)
{
	char policy[512];
	const char *trace;
	json_t *recs;
	int rc;

	bb_setup(true);
	ASSERT_OK(kg_mkdir_p(bb_home("workspace"), 0755), "workspace");
	ASSERT_OK(kg_mkdir_p(bb_home("secret"), 0700), "secret");
	ASSERT_OK(kg_mkdir_p(bb_home("ro"), 0755), "ro");
	ASSERT_OK(bb_write(bb_home("workspace/ok.txt"), "fine\n", 0644), "ok.txt");
	ASSERT_OK(bb_write(bb_home("secret/key"), "KEY\n", 0600), "key");
	ASSERT_OK(bb_write(bb_home("ro/file.txt"), "ro\n", 0644), "ro file");
	ASSERT_OK(symlink(bb_home("secret/key"), bb_home("workspace/link")), "symlink");
	bb_policy("p.json", FILE_POLICY, policy, sizeof(policy));

	rc = BB_KGATE("run.out", "run", "--policy", policy, "--",
		      (char *)bb_helper("vt_agent"),
		      (char *)step("ok", "read", "workspace/ok.txt"),
		      (char *)step("secret", "read", "secret/key"),
		      (char *)step("symlink", "read", "workspace/link"),
		      (char *)step("procfd", "procfd", "secret/key"),
		      (char *)step("secretwrite", "write", "secret/key"),
		      (char *)step("rowrite", "write", "ro/file.txt"),
		      (char *)step("rocreate", "create", "ro/new.txt"),
		      (char *)step("roread", "read", "ro/file.txt"));
	ASSERT_EQ(rc, 0, "the agent ran to its end (last step, a read of ~/ro, worked)");
	ASSERT_EQ(bb_result("run.out", "ok", "errno"), 0, "allowed file read");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "secret", "errno")), "denied file refused");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "symlink", "errno")), "its symlink refused");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "procfd", "errno")),
		    "O_PATH + /proc/self/fd re-open refused");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "secretwrite", "errno")), "denied write");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "rowrite", "errno")), "read-only tree write");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "rocreate", "errno")), "read-only tree create");
	ASSERT_EQ(bb_result("run.out", "roread", "errno"), 0, "read-only tree is readable");
	ASSERT_TRUE(access(bb_home("ro/new.txt"), F_OK) != 0, "nothing was created");
	{
		char *ro = kg_read_file(bb_home("ro/file.txt"), 4096, NULL);

		ASSERT_TRUE(ro && !strcmp(ro, "ro\n"), "the read-only file is unchanged");
		free(ro);
	}

	trace = bb_trace("run.out");
	ASSERT_TRUE(trace[0], "kgate run printed the job's trace id");
	recs = bb_audit(trace);
	ASSERT_GE(bb_count(recs, "decision", "read", "deny", "no-secret", "bpf-lsm"), 3,
		  "read, symlink read and /proc re-open each audited as a deny by no-secret");
	ASSERT_GE(bb_count(recs, "decision", "write", "deny", "no-secret", "bpf-lsm"), 1,
		  "write to the secret audited");
	ASSERT_GE(bb_count_target(recs, "decision", "write", "deny", "ro-tree", "bpf-lsm",
				  "ro/file.txt"), 1, "write into ~/ro audited");
	ASSERT_GE(bb_count(recs, "decision", "create", "deny", "ro-tree", "bpf-lsm"), 1,
		  "create in ~/ro audited");
	ASSERT_EQ(bb_count_target(recs, "decision", NULL, "deny", NULL, NULL, "ok.txt"), 0,
		  "the allowed read left no denial");
	ASSERT_EQ(bb_count(recs, "job_start", NULL, NULL, NULL, NULL), 1, "job start recorded");
	ASSERT_EQ(bb_count(recs, "job_exit", NULL, NULL, NULL, NULL), 1, "job exit recorded");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	/* outside the job the same file is readable: kgate governs only jobs */
	{
		char *key = kg_read_file(bb_home("secret/key"), 4096, NULL);

		ASSERT_TRUE(key != NULL, "ungoverned read of the secret works");
		free(key);
	}
	bb_teardown();
}

/* Exec allow-list: the class default is deny, the helpers, the dynamic
 * loader's libraries and busybox are allowed, one helper is denied by name. */
#define EXEC_POLICY \
	"{\"version\":1,\"name\":\"vt-exec\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"file\":\"allow\",\"exec\":\"deny\",\"net\":\"deny\"}," \
	"\"runtime\":[" \
	"{\"id\":\"helpers\",\"exec\":{\"prefix\":\"%s/\"},\"decision\":\"allow\"}," \
	"{\"id\":\"libs\",\"exec\":{\"prefix\":\"/lib/\"},\"decision\":\"allow\"}," \
	"{\"id\":\"libs64\",\"exec\":{\"prefix\":\"/lib64/\"},\"decision\":\"allow\"}," \
	"{\"id\":\"bin\",\"exec\":{\"prefix\":\"/bin/\"},\"decision\":\"allow\"}," \
	"{\"id\":\"no-exit42\",\"exec\":{\"path\":\"%s\"},\"decision\":\"deny\"," \
	"\"reason\":\"this tool is off limits\"}]}"

TEST(run_exec_denied_binary_and_its_copy_are_refused)
{
	char json[2048], helpers[512], *slash;
	char policy[512];
	const char *trace, *exit42 = bb_helper("lsm_exit42");
	char copy_step[640], denied_step[640], true_step[640];
	json_t *recs;
	int rc;

	bb_setup(true);
	snprintf(helpers, sizeof(helpers), "%s", exit42);
	slash = strrchr(helpers, '/');
	if (slash)
		*slash = '\0';
	ASSERT_OK(kg_mkdir_p(bb_home("bin"), 0755), "~/bin");
	ASSERT_OK(bb_copy(exit42, bb_home("bin/exit42"), 0755), "copy the denied binary");
	snprintf(json, sizeof(json), EXEC_POLICY, helpers, exit42);
	bb_policy("p.json", json, policy, sizeof(policy));
	snprintf(denied_step, sizeof(denied_step), "denied=exec:%s", exit42);
	snprintf(copy_step, sizeof(copy_step), "copy=exec:%s", bb_home("bin/exit42"));
	snprintf(true_step, sizeof(true_step), "true=exec:/bin/true");

	/* outside the job both run (exit 42): the refusals below are kgate's */
	{
		char *argv[] = { (char *)bb_helper("vt_agent"), denied_step, copy_step, NULL };

		ASSERT_EQ(bb_run("ungoverned.out", argv), 0, "ungoverned agent");
		ASSERT_EQ(bb_result("ungoverned.out", "copy", "exit"), 42, "copy runs ungoverned");
	}
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--",
		      (char *)bb_helper("vt_agent"), denied_step, copy_step, true_step);
	ASSERT_EQ(rc, 0, "the agent itself (an allowed helper) ran; last step worked");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "denied", "errno")),
		    "exec of the denied binary refused");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "copy", "errno")),
		    "exec of a copy elsewhere refused (exec default deny)");
	ASSERT_EQ(bb_result("run.out", "true", "errno"), 0, "an allowed program runs");
	ASSERT_EQ(bb_result("run.out", "true", "exit"), 0, "and exits 0");
	/* the command itself: a denied binary cannot be launched either */
	rc = BB_KGATE("run2.out", "run", "--policy", policy, "--", (char *)bb_home("bin/exit42"));
	ASSERT_TRUE(rc == 126 || rc == 127, "launching a denied command fails (126/127), not 42");

	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	ASSERT_GE(bb_count_target(recs, "decision", "exec", "deny", "no-exit42", "bpf-lsm",
				  "lsm_exit42"), 1, "denied exec audited with its rule");
	ASSERT_GE(bb_count_target(recs, "decision", "exec", "deny", "default", "bpf-lsm",
				  "bin/exit42"), 1, "the copy's exec audited as the class default");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	bb_teardown();
}

#define NET_POLICY \
	"{\"version\":1,\"name\":\"vt-net\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"deny\"}," \
	"\"runtime\":[" \
	"{\"id\":\"api\",\"net\":{\"cidr\":\"127.0.0.1/32\",\"ports\":[%d],\"proto\":\"tcp\"},\"decision\":\"allow\"}," \
	"{\"id\":\"no-loopback\",\"net\":{\"cidr\":\"127.0.0.0/8\"},\"decision\":\"deny\"}," \
	"{\"id\":\"sockets\",\"socket\":{\"families\":[\"inet\",\"inet6\",\"unix\"],\"allow_raw\":false},\"decision\":\"deny\"}]}"

/* cgroup-BPF decides connects in both configurations */
TEST(run_connect_allowed_denied_and_packet_socket)
{
	char json[2048], script[2048];
	char policy[512];
	const char *trace, *probe = bb_helper("net_probe");
	json_t *recs;
	int port = 0, lfd, rc;

	bb_setup(false);
	lfd = listen_tcp("127.0.0.1", &port);
	ASSERT_TRUE(lfd >= 0, "listener on 127.0.0.1");
	snprintf(json, sizeof(json), NET_POLICY, port);
	bb_policy("p.json", json, policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 "%s connect 127.0.0.1 %d; echo ok=$?; %s connect 127.0.0.2 %d; echo other=$?; "
		 "%s connect 127.0.0.1 1; echo port=$?; %s socket 17 3 0; echo packet=$?; "
		 "%s socket 2 1 0; echo tcp=$?",
		 probe, port, probe, port, probe, probe, probe);
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--", "/bin/sh", "-c", script);
	ASSERT_EQ(rc, 0, "the job ran");
	ASSERT_EQ(bb_result("run.out", "ok", NULL), 0, "allowed connect reached the listener");
	ASSERT_EQ(bb_result("run.out", "other", NULL), EPERM, "127.0.0.2 refused");
	ASSERT_EQ(bb_result("run.out", "port", NULL), EPERM, "another port falls to the /8 deny");
	ASSERT_EQ(bb_result("run.out", "packet", NULL), EPERM, "socket(AF_PACKET) refused");
	ASSERT_EQ(bb_result("run.out", "tcp", NULL), 0, "an ordinary TCP socket works");

	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	ASSERT_GE(bb_count_target(recs, "decision", "net_connect", "deny", "no-loopback",
				  "cgroup-bpf", "127.0.0.2"), 1, "denied connect audited");
	/* without BPF LSM the family allow-list is seccomp's, which records nothing */
	if (bb_full())
		ASSERT_GE(bb_count(recs, "decision", "socket_create", "deny", "sockets", "bpf-lsm"),
			  1, "packet socket audited");
	ASSERT_EQ(bb_count_target(recs, "decision", "net_connect", "deny", NULL, NULL,
				  "127.0.0.1:" ), 1, "only the wrong port on 127.0.0.1 was refused");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	close(lfd);
	bb_teardown();
}

/* Packet sockets without a socket rule follow the network restriction (a
 * root job keeps CAP_NET_RAW): lsm/socket_create in full mode, seccomp
 * without BPF LSM, for AF_PACKET and for socket(AF_INET, SOCK_PACKET). */
TEST(run_packet_sockets_follow_the_network_restriction)
{
	char policy[512], script[1024];
	const char *probe = bb_helper("net_probe"), *trace;
	json_t *recs;
	int rc;

	bb_setup(false);
	bb_policy("p.json", "{\"version\":1,\"name\":\"vt-nonet\",\"default\":\"allow\","
		  "\"runtime_defaults\":{\"net\":\"deny\"},\"runtime\":[]}", policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 "%s socket 17 3 0; echo raw=$?; %s socket 17 2 0; echo dgram=$?; "
		 "%s socket 2 10 768; echo old=$?; %s socket 2 1 0; echo tcp=$?",
		 probe, probe, probe, probe);
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--", "/bin/sh", "-c", script);
	ASSERT_EQ(rc, 0, "the job ran");
	ASSERT_EQ(bb_result("run.out", "raw", NULL), EPERM, "no-network policy: AF_PACKET raw refused");
	ASSERT_EQ(bb_result("run.out", "dgram", NULL), EPERM, "AF_PACKET dgram refused");
	ASSERT_EQ(bb_result("run.out", "old", NULL), EPERM, "socket(AF_INET, SOCK_PACKET) refused");
	ASSERT_EQ(bb_result("run.out", "tcp", NULL), 0, "an ordinary TCP socket works");
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	if (bb_full())
		ASSERT_GE(bb_count(recs, "decision", "socket_create", "deny", NULL, "bpf-lsm"), 3,
			  "each packet socket refusal audited");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);

	bb_policy("p2.json", "{\"version\":1,\"name\":\"vt-open\",\"default\":\"allow\","
		  "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[]}", policy, sizeof(policy));
	snprintf(script, sizeof(script), "%s socket 17 3 0; echo raw=$?", probe);
	rc = BB_KGATE("run2.out", "run", "--policy", policy, "--", "/bin/sh", "-c", script);
	ASSERT_EQ(rc, 0, "the job ran");
	ASSERT_EQ(bb_result("run2.out", "raw", NULL), 0, "open network: a packet socket works");
	bb_teardown();
}

/* A second local address (lo:9, 10.9.9.9) so a connection can come from a
 * non-loopback address inside the guest; removed by taking lo:9 down. */
static bool alias_address(bool up)
{
	struct ifreq ifr = { .ifr_name = "lo:9" };
	struct sockaddr_in *a = (struct sockaddr_in *)&ifr.ifr_addr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), r;

	if (fd < 0)
		return false;
	if (up) {
		a->sin_family = AF_INET;
		inet_pton(AF_INET, "10.9.9.9", &a->sin_addr);
		r = ioctl(fd, SIOCSIFADDR, &ifr);
		inet_pton(AF_INET, "255.255.255.255", &a->sin_addr);
		r = r ? r : ioctl(fd, SIOCSIFNETMASK, &ifr);
	} else {
		r = ioctl(fd, SIOCGIFFLAGS, &ifr);
		ifr.ifr_flags &= ~IFF_UP;
		r = r ? r : ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return r == 0;
}

/* Inbound and first hop past bind4/6 and sendmsg4: listen() on a socket no
 * bind() placed, and a source route given per message.  Full mode refuses
 * the calls (lsm/socket_listen, lsm/socket_sendmsg); without BPF LSM their
 * packets are dropped (cgroup_skb).  Either way a connection from a
 * non-loopback address is never served, loopback clients are, the route's
 * first hop is never reached, and each refusal is recorded. */
TEST(run_listen_without_bind_and_source_routes_per_message)
{
	char policy[512], script[2048];
	const char *probe = bb_helper("net_probe"), *trace;
	json_t *recs;
	int rc;

	bb_setup(false);
	if (!alias_address(true)) {
		bb_teardown();
		SKIP("cannot add 10.9.9.9 to lo:9");
	}
	bb_policy("p.json", "{\"version\":1,\"name\":\"vt-inbound\",\"default\":\"allow\","
		  "\"runtime_defaults\":{\"net\":\"allow\"},\"runtime\":[{\"id\":\"not-2\","
		  "\"net\":{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}", policy, sizeof(policy));
	snprintf(script, sizeof(script),
		 "P=%s; S=$(mktemp); $P retopts 127.0.0.2 9; echo route=$?; "
		 "$P retopts-none 127.0.0.2 9; echo plain=$?; "
		 "$P serve-unbound 4 6000 > $S & pid=$!; sleep 1; port=$(sed -n 's/^port //p' $S); "
		 "if [ -n \"$port\" ]; then $P connect-ms 10.9.9.9 $port 3000; echo wild=$?; "
		 "$P connect 127.0.0.1 $port; echo lo=$?; fi; wait $pid; echo serve=$?; cat $S",
		 probe);
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--", "/bin/sh", "-c", script);
	alias_address(false);
	ASSERT_EQ(rc, 0, "the job ran");
	ASSERT_EQ(bb_result("run.out", "route", NULL), EPERM, "a per-message source route is refused");
	ASSERT_EQ(bb_result("run.out", "plain", NULL), 0, "the same sendmsg without it works");
	if (bb_full()) {
		ASSERT_EQ(bb_result("run.out", "serve", NULL), EPERM, "listen() without bind refused");
	} else {
		ASSERT_EQ(bb_result("run.out", "wild", NULL), 110,
			  "a connection from 10.9.9.9 to the unbound listener gets no answer");
		ASSERT_EQ(bb_result("run.out", "lo", NULL), 0, "a loopback client connects");
		ASSERT_EQ(bb_result("run.out", "serve", NULL), 0, "and is served");
	}
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	ASSERT_GE(bb_count(recs, "decision", "net_send", "deny", "kgate:source-route",
			   bb_full() ? "bpf-lsm" : "cgroup-bpf"), 1, "the source route is recorded");
	ASSERT_GE(bb_count(recs, "decision", "net_bind", "deny", "kgate:inbound",
			   bb_full() ? "bpf-lsm" : "cgroup-bpf"), 1, "the listener's refusal is recorded");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	bb_teardown();
}

TEST(run_agent_cannot_ptrace_signal_kgate_or_leave_its_cgroup)
{
	char policy[512];
	const char *trace;
	json_t *recs;
	int rc;

	bb_setup(true);
	bb_policy("p.json", "{\"version\":1,\"name\":\"vt-protect\",\"default\":\"allow\","
				     "\"runtime\":[]}", policy, sizeof(policy));
	/* "ppid" is kgate run itself: the controller of the job */
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--",
		      (char *)bb_helper("vt_agent"), "ptrace=ptrace:ppid", "kill=kill:ppid:9",
		      "term=kill:ppid:15", "escape=cgescape");
	ASSERT_TRUE(rc == EPERM || rc == EACCES, "the agent ran to its end, kgate survived");
	ASSERT_EQ(bb_result("run.out", "ptrace", "errno"), EPERM, "ptrace of kgate run refused");
	ASSERT_EQ(bb_result("run.out", "kill", "errno"), EPERM, "SIGKILL to kgate run refused");
	ASSERT_EQ(bb_result("run.out", "term", "errno"), EPERM, "SIGTERM to kgate run refused");
	ASSERT_TRUE(bb_refused(bb_result("run.out", "escape", "errno")),
		    "writing our pid to the root cgroup.procs refused");
	{
		char *out = bb_slurp("run.out");

		ASSERT_HAS_SUBSTR(out, "exited with", "kgate run reported the job's end itself");
		free(out);
	}
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	ASSERT_GE(bb_count(recs, "decision", "ptrace", "deny", "kgate:self-protection", "bpf-lsm"),
		  1, "ptrace audited");
	ASSERT_GE(bb_count(recs, "decision", "signal", "deny", "kgate:self-protection", "bpf-lsm"),
		  2, "both signals audited");
	ASSERT_GE(bb_count(recs, "decision", "cgroup_escape", "deny", "kgate:self-protection",
			   "bpf-lsm"), 1, "cgroup escape audited");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	bb_teardown();
}

/* Issue 10 §1: a root job attacks kgate's own state -- its pins (the job's
 * own cgroup links among them), the audit key and trail, the approval
 * queue, the daemon's socket -- by their paths and through /proc/PID/root
 * of processes outside the job.  Full mode: each is refused by the BPF LSM
 * and audited as op kgate_state with what was tried.  nobpf (degraded):
 * hidden by the job's mount namespace, /proc/PID/root closed by its
 * Landlock domain.  Either way the job's denied read stays denied. */
static const char state_attacks[] =
	"at() { n=$1; shift; $A \"$@\" >/dev/null 2>&1; echo \"$n=$?\"; }\n"
	"S=$KGATE_STATE_DIR; L=$KGATE_AUDIT_DIR; B=$KGATE_BPFFS; P=$PPID\n"
	"at pin_unlink unlink $B/kg_jobs\n"
	/* the cgroup links that govern the job: on <cgroup2>/kgate, pinned as
	 * <pins>/root/<tag>-<obj>-<program> */
	"for l in kg_connect4 kg_connect6 kg_sendmsg4 kg_sendmsg6 kg_sock_create; do\n"
	"  at link_unlink unlink $B/root/$KT-net-$l; done\n"
	"at key_read read $L/audit.key\n"
	"at key_link link $L/audit.key $HOME/key\n"
	"at trail_append append $L/audit.jsonl\n"
	"at trail_truncate truncate $L/audit.jsonl\n"
	"at trail_chmod chmod $L/audit.jsonl\n"
	"at queue_forge create $S/approvals/done/0123456789ab.json\n"
	"at queue_mkdir mkdir $S/approvals/x\n"
	"at state_rename rename $S $HOME/state\n"
	"at ancestor_rename rename $(dirname $S) $(dirname $S).moved\n"
	"at push unix-request $S/control.sock '{\"op\":\"push\",\"policy\":\"{}\"}'\n"
	"for x in $P $D; do\n"
	"  at proc_key_read_$x read /proc/$x/root$L/audit.key\n"
	"  at proc_pin_unlink_$x unlink /proc/$x/root$B/kg_jobs\n"
	"  at proc_link_unlink_$x unlink /proc/$x/root$B/root/$KT-net-kg_connect4\n"
	"done\n"
	"at secret_after read $HOME/secret/key\n"
	"$N connect 127.0.0.2 9 >/dev/null 2>&1; echo connect_after=$?\n";

TEST(run_root_agent_cannot_reach_kgate_state)
{
	static const char *const names[] = {
		"pin_unlink", "key_read", "key_link", "trail_append", "trail_truncate", "trail_chmod",
		"queue_forge", "queue_mkdir", "state_rename", "ancestor_rename", "push",
	};
	char policy[512], script[4096], dpid[16], label[64], *out;
	const char *trace;
	json_t *recs;
	size_t i;
	pid_t d;
	int rc;

	bb_setup(false);
	ASSERT_OK(kg_mkdir_p(bb_home("secret"), 0700), "secret");
	ASSERT_OK(bb_write(bb_home("secret/key"), "KEY\n", 0600), "key");
	bb_policy("p.json", "{\"version\":1,\"name\":\"vt-state\",\"default\":\"allow\","
		  "\"runtime_defaults\":{\"file\":\"allow\",\"exec\":\"allow\",\"net\":\"allow\"},"
		  "\"runtime\":[{\"id\":\"no-secret\",\"file\":{\"prefix\":\"~/secret/\","
		  "\"ops\":[\"read\"]},\"decision\":\"deny\"},{\"id\":\"no-net\",\"net\":"
		  "{\"cidr\":\"127.0.0.2/32\"},\"decision\":\"deny\"}]}", policy, sizeof(policy));
	{
		char *argv[] = { (char *)bb_kgate(), "daemon", NULL };

		d = bb_spawn("daemon.out", argv);
	}
	ASSERT_TRUE(wait_for_output("daemon.out", "ready", 60000), "the daemon started");
	snprintf(dpid, sizeof(dpid), "%d", (int)d);
	setenv("D", dpid, 1);
	setenv("A", bb_helper("kg_attack"), 1);
	setenv("N", bb_helper("net_probe"), 1);
	setenv("CG2", kg_cgroup2_mount(), 1);
	setenv("KT", kg_loader_objects_tag(), 1);
	snprintf(script, sizeof(script), "%s", state_attacks);
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--", "/bin/sh", "-c", script);
	ASSERT_EQ(rc, 0, "the job ran to its end");
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		long e = bb_result("run.out", names[i], NULL);

		if (!ASSERT_TRUE(e != 0 && e != -9999 && e != 200, names[i]))
			printf("    %s=%ld\n", names[i], e);
		if (bb_full())
			ASSERT_EQ(e, EPERM, "refused by the BPF LSM");
	}
	snprintf(label, sizeof(label), "proc_key_read_%d", (int)d);
	ASSERT_TRUE(bb_refused(bb_result("run.out", label, NULL)), "the key via /proc/DAEMON/root");
	snprintf(label, sizeof(label), "proc_pin_unlink_%d", (int)d);
	ASSERT_TRUE(bb_refused(bb_result("run.out", label, NULL)), "a pin via /proc/DAEMON/root");
	snprintf(label, sizeof(label), "proc_link_unlink_%d", (int)d);
	ASSERT_TRUE(bb_refused(bb_result("run.out", label, NULL)), "a link via /proc/DAEMON/root");
	out = bb_slurp("run.out");
	ASSERT_TRUE(strstr(out, "\nlink_unlink=") && !strstr(out, "\nlink_unlink=0"),
		    "the cgroup links governing the job stay pinned");
	if (bb_full())
		ASSERT_TRUE(!strstr(out, "\nlink_unlink=2"), "(found, and refused)");
	free(out);
	if (bb_full())
		ASSERT_EQ(bb_result("run.out", "secret_after", NULL), EPERM,
			  "afterwards the denied read is still refused");
	ASSERT_EQ(bb_result("run.out", "connect_after", NULL), EPERM,
		  "and so is the denied connect (its cgroup links held)");
	kill(d, SIGTERM);
	ASSERT_EQ(bb_wait(d), 0, "the daemon stops cleanly");
	ASSERT_OK(access(bb_path("bpf/kgate/kg_jobs"), F_OK) == 0 ? 0 : -1, "pins in place");
	ASSERT_TRUE(access(bb_path("state/approvals/done/0123456789ab.json"), F_OK) != 0,
		    "nothing planted in the queue");
	ASSERT_EQ(BB_KGATE("verify.out", "audit", "verify"), 0, "the trail verifies");
	trace = bb_trace("run.out");
	recs = bb_audit(trace);
	if (bb_full()) {
		ASSERT_GE(bb_count(recs, "decision", "kgate_state", "deny", "kgate:self-protection",
				   "bpf-lsm"), 10, "each refusal is an audited self-protection denial");
		ASSERT_GE(bb_count_target(recs, "decision", "kgate_state", "deny", NULL, NULL,
					  "audit.key"), 2, "naming kgate's file");
		ASSERT_GE(bb_count(recs, "decision", "read", "deny", "no-secret", "bpf-lsm"), 1,
			  "and the policy's own refusal");
	}
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
	recs = bb_audit_query(NULL, "policy_change");
	ASSERT_EQ(json_array_size(recs), 0, "no policy was pushed");
	json_decref(recs);

	/* a policy without file rules gives Landlock nothing to do: the job
	 * still gets a domain of its own (on 6.1 no scoping would make one),
	 * and renames across directories keep working in it */
	bb_policy("open.json", "{\"version\":1,\"name\":\"open\",\"default\":\"allow\"}",
		  policy, sizeof(policy));
	ASSERT_OK(kg_mkdir_p(bb_home("a"), 0755) || kg_mkdir_p(bb_home("b"), 0755) ||
		  bb_write(bb_home("a/f"), "f", 0644), "two directories");
	snprintf(script, sizeof(script),
		 "at() { n=$1; shift; $A \"$@\" >/dev/null 2>&1; echo \"$n=$?\"; }\n"
		 "at proc_key_read read /proc/$PPID/root$KGATE_AUDIT_DIR/audit.key\n"
		 "at move_across rename $HOME/a/f $HOME/b/f\n");
	rc = BB_KGATE("open.out", "run", "--policy", policy, "--", "/bin/sh", "-c", script);
	ASSERT_EQ(rc, 0, "the second job ran");
	ASSERT_TRUE(bb_refused(bb_result("open.out", "proc_key_read", NULL)),
		    "no file rules: /proc/KGATE-RUN/root is still closed");
	ASSERT_EQ(bb_result("open.out", "move_across", NULL), 0,
		  "a rename across directories works");
	bb_teardown();
}

/* meaningful in both configurations: full starts, nobpf refuses with 5 */
TEST(run_require_full)
{
	char policy[512], *out;
	int rc;

	bb_setup(false);
	bb_policy("p.json", "{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}", policy, sizeof(policy));
	rc = BB_KGATE("run.out", "run", "--require", "full", "--policy", policy, "--",
		      "/bin/true");
	out = bb_slurp("run.out");
	if (bb_full()) {
		ASSERT_EQ(rc, 0, "full enforcement available: the job runs");
		ASSERT_HAS_SUBSTR(out, "full mode", "says it runs in full mode");
	} else {
		ASSERT_EQ(rc, 5, "exit 5: full enforcement unavailable");
		ASSERT_HAS_SUBSTR(out, "full enforcement required", "says why");
	}
	free(out);
	bb_teardown();
}

/* How each shipped policy launches something it allows. */
struct shipped {
	const char *name;	/* file name in policies/ */
	const char *topic;	/* admission topic, NULL = none */
	bool usr_bin;		/* exec allow-list of /usr/bin/ only (see below) */
};

static const struct shipped shipped_policies[] = {
	{ "coding-agent.json", "job.agent.test", false },
	{ "default.json", NULL, false },
	{ "demo.json", "job.demo.test", false },
	{ "mcp-server.json", "job.mcp.tool.echo", true },
};

static const struct shipped *shipped_find(const char *file)
{
	const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(shipped_policies); i++)
		if (!strcmp(shipped_policies[i].name, base))
			return &shipped_policies[i];
	return NULL;
}

/* mcp-server.json allows exec only under /usr/bin/ and /usr/lib/; in the
 * guest those are busybox symlinks into /bin, and kgate judges the real
 * file.  A private mount namespace puts a real (static) program at
 * /usr/bin/true, seen only by this test's processes. */
static int private_usr_bin(void)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/usr/bin", "tmpfs", 0, "mode=0755"))
		return -1;
	return bb_copy("/bin/busybox", "/usr/bin/true", 0755);
}

static int run_shipped(const char *file, const struct shipped *s, const char *cmd,
		       const char *arg)
{
	char *argv[12];
	int n = 0;

	argv[n++] = (char *)bb_kgate();
	argv[n++] = "run";
	argv[n++] = "--policy";
	argv[n++] = (char *)file;
	if (s && s->topic) {
		argv[n++] = "--topic";
		argv[n++] = (char *)s->topic;
	}
	argv[n++] = "--";
	argv[n++] = (char *)cmd;
	if (arg)
		argv[n++] = (char *)arg;
	argv[n] = NULL;
	return bb_run("run.out", argv);
}

static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void run_mcp_server(const char *file, const struct shipped *s)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (private_usr_bin())
			_exit(100);
		_exit(run_shipped(file, s, "/usr/bin/true", NULL));
	}
	ASSERT_EQ(bb_wait(pid), 0, "mcp-server runs /usr/bin/true");
}

TEST(shipped_policies_check_and_run)
{
	char pattern[512];
	const char *src = getenv("KGATE_SRC");
	glob_t g;
	size_t i;
	int checked = 0;

	bb_setup(false);
	snprintf(pattern, sizeof(pattern), "%s/policies/*.json", src ? src : ".");
	ASSERT_OK(glob(pattern, 0, NULL, &g), "find the shipped policies");
	for (i = 0; i < g.gl_pathc; i++) {
		const char *file = g.gl_pathv[i];
		const struct shipped *s = shipped_find(file);
		int rc;

		if (strstr(file, "/schema.json"))
			continue;	/* the JSON Schema, not a policy */
		rc = BB_KGATE("check.out", "policy", "check", (char *)file);
		if (!ASSERT_EQ(rc, 0, file))
			continue;
		checked++;
		ASSERT_TRUE(s != NULL, "every shipped policy is known to this test");
		if (!bb_full())
			continue;
		if (s && s->usr_bin) {
			run_mcp_server(file, s);
			continue;
		}
		/* the agent (not busybox: see below) reads a file and exits 0 */
		rc = run_shipped(file, s, bb_helper("vt_agent"), "ok=read:/etc/passwd");
		if (!ASSERT_EQ(rc, 0, file))
			continue;
		{
			char *out = bb_slurp("run.out");

			ASSERT_HAS_SUBSTR(out, "full mode", "ran in full mode");
			free(out);
		}
		/* default.json denies exec of /usr/bin/nc; in this guest that is
		 * busybox itself, and rules bind the real file, so every busybox
		 * applet (/bin/true too) is refused under it */
		if (!strcmp(s->name, "default.json") && same_file("/usr/bin/nc", "/bin/true")) {
			rc = run_shipped(file, s, "/bin/true", NULL);
			ASSERT_TRUE(rc == 126 || rc == 127, "busybox is /usr/bin/nc here: refused");
		}
	}
	globfree(&g);
	ASSERT_GE(checked, 4, "the four shipped policies");
	bb_teardown();
}
