// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_control.c - the daemon's control socket (daemon/control.c), driven
 * directly: a server in a thread of this test with a handler of its own,
 * clients as raw sockets and through kg_control_call.
 *
 * What the daemon relies on: a request is answered with what the kernel
 * says about the peer (uid, pid, its cgroup), never what it claims; bad
 * JSON reaches the handler as NULL; no client delays another (one sending a
 * byte now and then is answered after a later client, and cut off at its
 * deadline); a request over the peer's limit is refused by name; an
 * unprivileged user gets at most KG_CONTROL_MAX_PER_UID connections and
 * root still gets in; with no server, a call fails with ENOENT; closing
 * unlinks the socket.
 */
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "testlib.h"
#include "common.h"
#include "daemon/control.h"
#include "job/cgroup.h"

static char statedir[256];

struct server {
	struct kg_control_server *s;
	pthread_t thread;
	volatile int stop;
	size_t limit;			/* 0: KG_CONTROL_SMALL_REQUEST */
	volatile int requests;		/* answered by the handler */
};

/* Answers with the peer as the kernel describes it, and the op asked. */
static json_t *echo_peer(void *ctx, const struct kg_peer *peer, json_t *req)
{
	struct server *srv = ctx;
	const char *op = req ? json_string_value(json_object_get(req, "op")) : NULL;

	srv->requests++;
	if (!req)
		return json_pack("{s:b,s:s}", "ok", 0, "error", "not a JSON object");
	return json_pack("{s:b,s:s,s:I,s:I,s:b,s:s}", "ok", 1, "op", op ? op : "",
			 "uid", (json_int_t)peer->uid, "pid", (json_int_t)peer->pid,
			 "cgroup_known", peer->cgroup_known, "cgroup", peer->cgroup);
}

static size_t limit_of(void *ctx, const struct kg_peer *peer)
{
	struct server *srv = ctx;

	(void)peer;
	return srv->limit ? srv->limit : KG_CONTROL_SMALL_REQUEST;
}

static void *serve(void *arg)
{
	struct server *srv = arg;
	struct pollfd pfd[KG_CONTROL_MAX_CLIENTS + 1];

	while (!srv->stop) {
		size_t n = kg_control_server_pollfds(srv->s, pfd, ARRAY_SIZE(pfd));
		int t = kg_control_server_timeout_ms(srv->s);

		if (poll(pfd, n, t < 0 || t > 20 ? 20 : t) >= 0)
			kg_control_server_service(srv->s, pfd, n);
	}
	return NULL;
}

static void server_start(struct server *srv, size_t limit)
{
	memset(srv, 0, sizeof(*srv));
	srv->limit = limit;
	srv->s = kg_control_server_open(echo_peer, limit_of, srv);
	if (!srv->s)
		SKIP("cannot open the control socket: %s", strerror(errno));
	if (pthread_create(&srv->thread, NULL, serve, srv))
		SKIP("pthread_create");
}

static void server_stop(struct server *srv)
{
	srv->stop = 1;
	pthread_join(srv->thread, NULL);
	kg_control_server_close(srv->s);
}

static int connect_raw(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", kg_socket_path());
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* What the server sent before closing (up to EOF or timeout_ms); *closed
 * says whether the server closed the connection within that time. */
static char *read_reply_closed(int fd, int timeout_ms, bool *closed)
{
	static char buf[4096];
	size_t len = 0;

	*closed = false;
	while (len < sizeof(buf) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0)
			break;
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0) {
			*closed = true;
			break;
		}
		len += n;
	}
	buf[len] = '\0';
	return buf;
}

static char *read_reply(int fd, int timeout_ms)
{
	bool closed;

	return read_reply_closed(fd, timeout_ms, &closed);
}

static void setup_dir(void)
{
	if (statedir[0])
		return;
	snprintf(statedir, sizeof(statedir), "/tmp/kgate-test-control.XXXXXX");
	if (!mkdtemp(statedir) || chmod(statedir, 0755))
		SKIP("mkdtemp: %s", strerror(errno));
	setenv("KGATE_STATE_DIR", statedir, 1);
}

TEST(a_request_is_answered_with_the_peer_the_kernel_describes)
{
	struct server srv;
	json_t *req, *reply;
	char mine[1024];

	setup_dir();
	server_start(&srv, 0);
	/* the request claims to be someone else: only the kernel is believed */
	req = json_pack("{s:s,s:i,s:i}", "op", "ping", "uid", 4242, "pid", 1);
	reply = kg_control_call(req, 2000);
	ASSERT_TRUE(reply != NULL, "answered");
	ASSERT_TRUE(json_is_true(json_object_get(reply, "ok")), "ok");
	ASSERT_STREQ(json_string_value(json_object_get(reply, "op")), "ping", "the op asked");
	ASSERT_EQ(json_integer_value(json_object_get(reply, "uid")), (json_int_t)getuid(),
		  "uid from SO_PEERCRED, not the request");
	ASSERT_EQ(json_integer_value(json_object_get(reply, "pid")), (json_int_t)getpid(),
		  "pid from SO_PEERCRED");
	ASSERT_TRUE(json_is_true(json_object_get(reply, "cgroup_known")), "cgroup established");
	ASSERT_OK(kg_cgroup_of_pid(getpid(), mine, sizeof(mine)), "our cgroup");
	ASSERT_STREQ(json_string_value(json_object_get(reply, "cgroup")), mine,
		     "the peer's cgroup is ours");
	ASSERT_TRUE(kg_control_daemon_running(), "a server answers ping");
	json_decref(req);
	json_decref(reply);
	server_stop(&srv);
}

TEST(bad_json_reaches_the_handler_as_null_and_gets_an_answer)
{
	static const char bad[] = "{\"op\": \x01 nope\n";
	struct server srv;
	char *out;
	int fd;

	setup_dir();
	server_start(&srv, 0);
	fd = connect_raw();
	ASSERT_TRUE(fd >= 0, "connected");
	ASSERT_EQ(write(fd, bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1), "sent");
	out = read_reply(fd, 3000);
	ASSERT_HAS_SUBSTR(out, "\"ok\":false", "refused");
	ASSERT_HAS_SUBSTR(out, "not a JSON object", "by the handler, which got NULL");
	close(fd);
	server_stop(&srv);
}

TEST(a_dribbling_client_delays_no_other_and_is_cut_off)
{
	struct server srv;
	json_t *req, *reply;
	struct pollfd p;
	bool closed;
	char *out;
	int slow;

	setup_dir();
	server_start(&srv, 0);
	slow = connect_raw();
	ASSERT_TRUE(slow >= 0, "the slow client connected");
	ASSERT_EQ(write(slow, "{\"op\":", 6), 6, "and sent half a request");
	req = json_pack("{s:s}", "op", "status");
	reply = kg_control_call(req, 2000);
	ASSERT_TRUE(reply && json_is_true(json_object_get(reply, "ok")),
		    "a later client is answered while the first is still sending");
	p = (struct pollfd){ .fd = slow, .events = POLLIN };
	ASSERT_EQ(poll(&p, 1, 0), 0, "the slow client has no answer yet");
	ASSERT_EQ(write(slow, "\"p", 2), 2, "another byte or two");
	out = read_reply_closed(slow, KG_CONTROL_DEADLINE_MS + 3000, &closed);
	ASSERT_TRUE(closed, "cut off at its deadline");
	ASSERT_STREQ(out, "", "unanswered");
	ASSERT_EQ(srv.requests, 1, "the handler saw only the complete request");
	close(slow);
	json_decref(req);
	json_decref(reply);
	server_stop(&srv);
}

TEST(a_request_over_the_peers_limit_is_refused_by_name)
{
	struct server srv;
	char big[4096], *out;
	int fd;

	setup_dir();
	server_start(&srv, 1024);
	fd = connect_raw();
	ASSERT_TRUE(fd >= 0, "connected");
	memset(big, 'x', sizeof(big));
	ASSERT_TRUE(write(fd, big, sizeof(big)) > 0, "sent more than the limit, no newline");
	out = read_reply(fd, 3000);
	ASSERT_HAS_SUBSTR(out, "request larger than 1024 bytes", "refused, with the limit named");
	ASSERT_EQ(srv.requests, 0, "the handler never saw it");
	close(fd);
	server_stop(&srv);
}

/* In a child as nobody: KG_CONTROL_MAX_PER_UID connections are held, the
 * next one is refused with a reason; then it waits to be killed (holding
 * them).  Its exit status names the step that failed. */
static int nobody_fills_its_slots(int ready_fd)
{
	int fds[KG_CONTROL_MAX_PER_UID], extra, i;
	char *out;

	if (setgid(65534) || setuid(65534))
		return 10;
	for (i = 0; i < KG_CONTROL_MAX_PER_UID; i++)
		if ((fds[i] = connect_raw()) < 0)
			return 11;
	usleep(200 * 1000);	/* the server accepts them */
	extra = connect_raw();
	if (extra < 0)
		return 12;
	out = read_reply(extra, 2000);
	if (!strstr(out, "too many connections from this user"))
		return 13;
	if (write(ready_fd, "r", 1) != 1)
		return 14;
	pause();
	return 0;
}

TEST(an_unprivileged_user_gets_a_bounded_number_of_connections_and_root_still_gets_in)
{
	struct server srv;
	json_t *req, *reply;
	int status = 0, pfd[2];
	char c = 0;
	pid_t child;

	if (getuid() != 0)
		SKIP("needs root (to become nobody)");
	setup_dir();
	server_start(&srv, 0);
	ASSERT_OK(pipe(pfd), "pipe");
	child = fork();
	if (child == 0) {
		close(pfd[0]);
		_exit(nobody_fills_its_slots(pfd[1]));
	}
	close(pfd[1]);
	ASSERT_EQ(read(pfd[0], &c, 1), 1, "nobody holds its connections and was refused one more");
	close(pfd[0]);
	req = json_pack("{s:s}", "op", "ping");
	reply = kg_control_call(req, 2000);
	ASSERT_TRUE(reply && json_is_true(json_object_get(reply, "ok")),
		    "root is answered meanwhile");
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	if (c != 'r')
		printf("  nobody's child: exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	json_decref(req);
	json_decref(reply);
	server_stop(&srv);
}

TEST(without_a_server_a_call_fails_and_close_unlinks_the_socket)
{
	struct server srv;
	json_t *req;

	setup_dir();
	server_start(&srv, 0);
	ASSERT_OK(access(kg_socket_path(), F_OK), "the socket is there while serving");
	server_stop(&srv);
	ASSERT_TRUE(access(kg_socket_path(), F_OK) < 0, "closing the server unlinked it");
	req = json_pack("{s:s}", "op", "ping");
	errno = 0;
	ASSERT_TRUE(kg_control_call(req, 500) == NULL, "no answer");
	ASSERT_EQ(errno, ENOENT, "ENOENT: no daemon");
	ASSERT_FALSE(kg_control_daemon_running(), "none running");
	json_decref(req);
	rmdir(statedir);
}
