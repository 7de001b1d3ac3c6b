// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_session - what a job reaches past the task_kill and cgroup hooks, in
 * full mode (BPF LSM):
 *   - signals through a file's owner (F_SETOWN + F_SETSIG + O_ASYNC):
 *     refused to a process outside the job, delivered inside it
 *     (session.bpf.c, file_send_sigiotask);
 *   - listen() on a never-bound socket (the kernel binds the wildcard past
 *     bind4/6): refused without a bind rule; on loopback it works
 *     (net.bpf.c, socket_listen);
 *   - a source route given per message (IP_RETOPTS ancillary data):
 *     refused; the same sendmsg without it works (net.bpf.c, socket_sendmsg).
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include "testlib.h"
#include "vt_lib.h"

static const char *policy =
	"{\"version\": 1, \"name\": \"vt-session\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
	" \"runtime\": []}";

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

/* arg: the pid to name as the pipe's owner; its signal: SIGKILL, or
 * SIGUSR1 when it is ourselves (then: did it arrive?) */
static int sigio_to(struct vt *v, void *arg)
{
	pid_t target = *(pid_t *)arg;
	bool self = target == getpid();
	int p[2], i;

	(void)v;
	signal(SIGUSR1, on_usr1);
	if (pipe(p) || fcntl(p[0], F_SETOWN, target) || fcntl(p[0], F_SETSIG, self ? SIGUSR1 : SIGKILL) ||
	    fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK))
		return 900 + errno;
	if (write(p[1], "x", 1) != 1)
		return 950;
	for (i = 0; i < 100 && self && !got_usr1; i++)
		usleep(10000);
	return self ? (got_usr1 ? 0 : 960) : 0;
}

static int sigio_self(struct vt *v, void *arg)
{
	pid_t me = getpid();

	(void)arg;
	return sigio_to(v, &me);
}

static pid_t sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0)
		for (;;)
			pause();
	return pid;
}

/* true if pid died (and is reaped) within ~1 s */
static bool died(pid_t pid)
{
	int st, i;

	for (i = 0; i < 20; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return true;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return false;
}

TEST(sigio_to_a_process_outside_the_job_refused_inside_delivered)
{
	struct vt v;
	pid_t victim;

	if (vt_setup(&v, policy) || vt_install(&v))
		return;
	/* control: ungoverned, SIGKILL through a pipe's owner kills */
	victim = sleeper();
	ASSERT_OK(vt_run_outside(&v, sigio_to, &victim), "control: owner set, written");
	ASSERT_TRUE(died(victim), "control: outside kgate the signal kills");
	/* the job names a process outside it as owner, SIGKILL as the signal */
	victim = sleeper();
	ASSERT_OK(vt_run(&v, sigio_to, &victim), "the job sets the owner and writes");
	ASSERT_FALSE(died(victim), "the process outside the job is alive");
	vt_drain(&v);
	if (!ASSERT_TRUE(vt_event(&v, KG_OP_SIGNAL, KG_DEC_DENY, "") != NULL, "recorded"))
		vt_dump_events(&v);
	ASSERT_OK(vt_run(&v, sigio_self, NULL), "within the job the signal arrives");
	vt_teardown(&v);
}

static int listen_unbound(struct vt *v, void *arg)
{
	int fd = socket(*(int *)arg, SOCK_STREAM, 0);

	(void)v;
	if (fd < 0)
		return 900;
	return VT_RC(listen(fd, 1));
}

static int listen_loopback(struct vt *v, void *arg)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)v; (void)arg;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)))
		return 900 + errno;
	return VT_RC(listen(fd, 1));
}

TEST(listen_without_bind_refused_loopback_works)
{
	int v4 = AF_INET, v6 = AF_INET6;
	struct vt v;

	if (vt_setup(&v, policy) || vt_install(&v))
		return;
	ASSERT_OK(vt_run_outside(&v, listen_unbound, &v4), "control: works outside");
	ASSERT_TRUE(vt_refused(vt_run(&v, listen_unbound, &v4)), "listen on an unbound IPv4 socket");
	ASSERT_TRUE(vt_refused(vt_run(&v, listen_unbound, &v6)), "and IPv6");
	vt_drain(&v);
	if (!ASSERT_TRUE(vt_event(&v, KG_OP_NET_BIND, KG_DEC_DENY, "") != NULL, "recorded"))
		vt_dump_events(&v);
	ASSERT_OK(vt_run(&v, listen_loopback, NULL), "a listener on 127.0.0.1 works");
	vt_teardown(&v);
}

/* arg: non-NULL = with a loose source route via 127.0.0.2 as IP_RETOPTS */
static int send_route(struct vt *v, void *arg)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(9),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	union {
		char buf[CMSG_SPACE(8)];
		struct cmsghdr align;
	} u;
	unsigned char opt[8] = { 131, 7, 4, 127, 0, 0, 2, 1 };
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr m = { .msg_name = &dst, .msg_namelen = sizeof(dst), .msg_iov = &iov,
			    .msg_iovlen = 1 };
	struct cmsghdr *c;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	(void)v;
	if (fd < 0)
		return 900;
	if (arg) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_RETOPTS;
		c->cmsg_len = CMSG_LEN(8);
		memcpy(CMSG_DATA(c), opt, 8);
	}
	return VT_RC(sendmsg(fd, &m, 0));
}

TEST(source_route_per_message_refused_plain_sendmsg_works)
{
	struct vt v;
	int with = 1;

	if (vt_setup(&v, policy) || vt_install(&v))
		return;
	ASSERT_OK(vt_run_outside(&v, send_route, &with), "control: works outside");
	ASSERT_TRUE(vt_refused(vt_run(&v, send_route, &with)), "IP_RETOPTS source route refused");
	vt_drain(&v);
	if (!ASSERT_TRUE(vt_event(&v, KG_OP_NET_SEND, KG_DEC_DENY, "") != NULL, "recorded"))
		vt_dump_events(&v);
	ASSERT_OK(vt_run(&v, send_route, NULL), "the same sendmsg without it works");
	vt_teardown(&v);
}
