// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* control.c - the daemon's local control socket. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "job/cgroup.h"
#include "common.h"
#include "daemon/control.h"

static int socket_addr(struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	return kg_strlcpy(sa->sun_path, kg_socket_path(), sizeof(sa->sun_path)) ? -ENAMETOOLONG : 0;
}

/* Read up to the first newline (or EOF) within timeout; NUL-terminated. */
static char *read_line(int fd, int timeout_ms, size_t max)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1), *nb;

	while (buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0) {
			errno = ETIMEDOUT;
			break;
		}
		if (len == cap) {
			if (cap >= max) {
				errno = EMSGSIZE;
				break;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb)
				break;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 && len) {
				buf[len] = '\0';
				return buf;
			}
			errno = n ? errno : ECONNRESET;
			break;
		}
		len += n;
		if (memchr(buf + len - n, '\n', n)) {
			buf[len] = '\0';
			return buf;
		}
	}
	free(buf);
	return NULL;
}

static int send_json(int fd, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	int err;

	if (!s)
		return -ENOMEM;
	err = kg_write_full(fd, s, strlen(s));
	if (!err)
		err = kg_write_full(fd, "\n", 1);
	free(s);
	return err;
}

json_t *kg_control_call(const json_t *req, int timeout_ms)
{
	struct sockaddr_un sa;
	json_t *reply;
	char *line;
	int fd, err;

	if (socket_addr(&sa)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || (err = send_json(fd, req))) {
		err = errno;
		close(fd);
		errno = err;
		return NULL;
	}
	line = read_line(fd, timeout_ms, KG_CONTROL_MAX_REQUEST);
	close(fd);
	if (!line)
		return NULL;
	reply = json_loads(line, 0, NULL);
	free(line);
	if (!reply)
		errno = EPROTO;
	return reply;
}

bool kg_control_daemon_running(void)
{
	json_t *req = json_pack("{s:s}", "op", "ping"), *reply;
	bool ok;

	reply = req ? kg_control_call(req, 1000) : NULL;
	ok = reply && json_is_true(json_object_get(reply, "ok"));
	json_decref(req);
	json_decref(reply);
	return ok;
}

/* ---- what the kernel says about a peer ------------------------------------------ */

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77		/* Linux 6.5 */
#endif

int kg_control_peer(int fd, struct kg_peer *p)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int pidfd;

	memset(p, 0, sizeof(*p));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -errno;
	p->pid = cred.pid;
	p->uid = cred.uid;
	p->gid = cred.gid;
	len = sizeof(p->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p->groups, &len) == 0) {
		p->ngroups = len / sizeof(gid_t);
	} else if (errno == ERANGE) {	/* more than we keep: the first ones */
		gid_t *all = malloc(len);

		if (all && !getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, all, &len)) {
			memcpy(p->groups, all, sizeof(p->groups));
			p->ngroups = ARRAY_SIZE(p->groups);
		}
		free(all);
	}
	if (p->pid <= 0)
		return 0;	/* another pid namespace: no cgroup we could read */
	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0) {
		p->pidfd_from_socket = true;
	} else {
		pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
		if (pidfd < 0)
			return 0;
	}
	/* read, then check the process still lives: its pid was not reused
	 * between connect and the read */
	if (kg_cgroup_of_pid(p->pid, p->cgroup, sizeof(p->cgroup)) == 0 &&
	    syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0)
		p->cgroup_known = true;
	close(pidfd);
	return 0;
}

/* ---- the server ------------------------------------------------------------------ */

struct client {
	int fd;				/* -1: free slot */
	struct kg_peer peer;
	char *in;			/* the request as it arrives */
	size_t in_len, in_max;
	char *out;			/* the reply, while it is being written */
	size_t out_len, out_off;
	uint64_t accepted_ns, deadline_ns;
};

struct kg_control_server {
	int lfd;
	kg_control_handler handler;
	kg_control_limit limit;
	void *ctx;
	struct client c[KG_CONTROL_MAX_CLIENTS];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static uint64_t deadline_from_now(void)
{
	return kg_now_mono_ns() + (uint64_t)KG_CONTROL_DEADLINE_MS * 1000000u;
}

static void client_drop(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Queue a reply (consumes it) and try to send it at once. */
static void client_reply(struct client *c, json_t *reply)
{
	char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	size_t n;

	json_decref(reply);
	free(c->in);
	c->in = NULL;
	c->in_len = 0;
	if (!s) {
		client_drop(c);
		return;
	}
	n = strlen(s);
	c->out = realloc(s, n + 2);
	if (!c->out) {
		free(s);
		client_drop(c);
		return;
	}
	c->out[n] = '\n';
	c->out[n + 1] = '\0';
	c->out_len = n + 1;
	c->out_off = 0;
	c->deadline_ns = deadline_from_now();
}

static json_t *error_json(const char *msg)
{
	return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg, "exit", 1);
}

/* Answer a refused connection with one line, without waiting for anyone. */
static void refuse(int fd, const char *msg)
{
	json_t *j = error_json(msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (s && send(fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
		(void)send(fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	free(s);
	json_decref(j);
	close(fd);
}

struct kg_control_server *kg_control_server_open(kg_control_handler handler,
						 kg_control_limit limit, void *ctx)
{
	struct kg_control_server *s = calloc(1, sizeof(*s));
	struct sockaddr_un sa;
	struct stat st;
	size_t i;
	int err;

	if (!s)
		return NULL;
	for (i = 0; i < KG_CONTROL_MAX_CLIENTS; i++)
		s->c[i].fd = -1;
	s->handler = handler;
	s->limit = limit;
	s->ctx = ctx;
	s->lfd = -1;
	err = socket_addr(&sa) ? -ENAMETOOLONG : kg_mkdir_p(kg_state_dir(), 0755);
	if (err)
		goto fail;
	/* the socket is for every local user (approvers, status): its
	 * directory must let them reach it, not list or change it */
	if (stat(kg_state_dir(), &st) == 0 && (st.st_mode & 0111) != 0111)
		chmod(kg_state_dir(), (st.st_mode & 07777) | 0111);
	kg_strlcpy(s->path, sa.sun_path, sizeof(s->path));
	/* a stale socket from a dead daemon: the caller checked none answers */
	unlink(sa.sun_path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(s->lfd, 128) ||
	    chmod(sa.sun_path, 0666)) {
		err = -errno;
		goto fail;
	}
	return s;
fail:
	if (s->lfd >= 0)
		close(s->lfd);
	free(s);
	errno = -err;
	return NULL;
}

void kg_control_server_close(struct kg_control_server *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < KG_CONTROL_MAX_CLIENTS; i++)
		client_drop(&s->c[i]);
	if (s->lfd >= 0) {
		close(s->lfd);
		unlink(s->path);
	}
	free(s);
}

size_t kg_control_server_pollfds(const struct kg_control_server *s, struct pollfd *pfd, size_t max)
{
	size_t i, n = 0;

	if (!max)
		return 0;
	pfd[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
	for (i = 0; i < KG_CONTROL_MAX_CLIENTS && n < max; i++)
		if (s->c[i].fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = s->c[i].fd,
						    .events = s->c[i].out ? POLLOUT : POLLIN };
	return n;
}

int kg_control_server_timeout_ms(const struct kg_control_server *s)
{
	uint64_t now = kg_now_mono_ns(), next = 0;
	size_t i;

	for (i = 0; i < KG_CONTROL_MAX_CLIENTS; i++)
		if (s->c[i].fd >= 0 && (!next || s->c[i].deadline_ns < next))
			next = s->c[i].deadline_ns;
	if (!next)
		return -1;
	return next <= now ? 0 : (int)((next - now) / 1000000u + 1);
}

/* A slot for a new client of uid: NULL (and why) when it may not have one.
 * Root (who is trusted) is never locked out by unprivileged clients: it
 * takes the slot of the oldest of theirs when every slot is taken. */
static struct client *slot_for(struct kg_control_server *s, uid_t uid, const char **why)
{
	struct client *free_slot = NULL, *oldest = NULL;
	size_t i, same = 0;

	for (i = 0; i < KG_CONTROL_MAX_CLIENTS; i++) {
		struct client *c = &s->c[i];

		if (c->fd < 0) {
			if (!free_slot)
				free_slot = c;
			continue;
		}
		same += c->peer.uid == uid;
		if (c->peer.uid != 0 && (!oldest || c->accepted_ns < oldest->accepted_ns))
			oldest = c;
	}
	if (uid != 0 && same >= KG_CONTROL_MAX_PER_UID) {
		*why = "too many connections from this user to kgate's daemon";
		return NULL;
	}
	if (free_slot)
		return free_slot;
	if (uid == 0 && oldest) {
		client_drop(oldest);
		return oldest;
	}
	*why = "kgate's daemon has too many clients";
	return NULL;
}

static void accept_clients(struct kg_control_server *s)
{
	int i;

	for (i = 0; i < 32; i++) {	/* a burst, then the others get their turn */
		struct kg_peer peer;
		struct client *c;
		const char *why = NULL;
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0)
			return;		/* EAGAIN: none left (or a transient error) */
		if (kg_control_peer(fd, &peer)) {
			close(fd);
			continue;
		}
		c = slot_for(s, peer.uid, &why);
		if (!c) {
			refuse(fd, why);
			continue;
		}
		c->fd = fd;
		c->peer = peer;
		c->accepted_ns = kg_now_mono_ns();
		c->deadline_ns = deadline_from_now();
		c->in_max = s->limit ? s->limit(s->ctx, &peer) : KG_CONTROL_SMALL_REQUEST;
		if (c->in_max > KG_CONTROL_MAX_REQUEST)
			c->in_max = KG_CONTROL_MAX_REQUEST;
	}
}

static void dispatch(struct kg_control_server *s, struct client *c, size_t line_len)
{
	json_t *req;

	c->in[line_len] = '\0';
	req = json_loads(c->in, JSON_REJECT_DUPLICATES, NULL);
	client_reply(c, s->handler(s->ctx, &c->peer, req));
	json_decref(req);
}

static void client_read(struct kg_control_server *s, struct client *c)
{
	char buf[16384], *nl, *nb;
	ssize_t n;

	for (;;) {
		size_t room = c->in_max - c->in_len;

		n = read(c->fd, buf, room < sizeof(buf) ? room : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				client_drop(c);
			return;
		}
		if (n == 0) {	/* EOF: what came is the request, if anything */
			if (c->in_len)
				dispatch(s, c, c->in_len);
			else
				client_drop(c);
			return;
		}
		nb = realloc(c->in, c->in_len + n + 1);
		if (!nb) {
			client_drop(c);
			return;
		}
		c->in = nb;
		memcpy(c->in + c->in_len, buf, n);
		nl = memchr(c->in + c->in_len, '\n', n);
		c->in_len += n;
		if (nl) {
			dispatch(s, c, nl - c->in);
			return;
		}
		if (c->in_len >= c->in_max) {
			char msg[96];

			snprintf(msg, sizeof(msg), "request larger than %zu bytes", c->in_max);
			client_reply(c, error_json(msg));
			return;
		}
	}
}

static void client_write(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		c->out_off += n;
	}
	client_drop(c);		/* sent (or the client went away) */
}

static struct client *client_of(struct kg_control_server *s, int fd)
{
	size_t i;

	for (i = 0; i < KG_CONTROL_MAX_CLIENTS; i++)
		if (s->c[i].fd == fd)
			return &s->c[i];
	return NULL;
}

void kg_control_server_service(struct kg_control_server *s, const struct pollfd *pfd, size_t n)
{
	uint64_t now;
	size_t i;

	for (i = 0; i < n; i++) {
		struct client *c;

		if (!pfd[i].revents || pfd[i].fd < 0)
			continue;
		if (pfd[i].fd == s->lfd) {
			accept_clients(s);
			continue;
		}
		c = client_of(s, pfd[i].fd);
		if (!c)
			continue;	/* dropped meanwhile (or its slot given to root) */
		if (!c->out && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
			client_read(s, c);
		if (c->fd >= 0 && c->out)
			client_write(c);
	}
	now = kg_now_mono_ns();
	for (i = 0; i < KG_CONTROL_MAX_CLIENTS; i++)
		if (s->c[i].fd >= 0 && now >= s->c[i].deadline_ns)
			client_drop(&s->c[i]);	/* too slow: its time is up */
}
