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
#include <unistd.h>

#include "common.h"
#include "control.h"

#define KG_CONTROL_MAX_REQUEST	(8u << 20)	/* a policy fits; more is refused */

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

static int write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		s += n;
		len -= n;
	}
	return 0;
}

static int send_json(int fd, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	int err;

	if (!s)
		return -ENOMEM;
	err = write_all(fd, s, strlen(s));
	if (!err)
		err = write_all(fd, "\n", 1);
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

int kg_control_listen(void)
{
	struct sockaddr_un sa;
	int fd, err;

	if (socket_addr(&sa))
		return -ENAMETOOLONG;
	err = kg_mkdir_p(kg_state_dir(), 0755);
	if (err)
		return err;
	/* a stale socket from a dead daemon: the caller checked none answers */
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64) ||
	    chmod(sa.sun_path, 0666)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int kg_control_accept(int lfd, struct kg_peer *peer, json_t **req_out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char *line;
	int cfd;

	*req_out = NULL;
	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0)
		return -errno;
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		close(cfd);
		return -EPERM;
	}
	peer->pid = cred.pid;
	peer->uid = cred.uid;
	peer->gid = cred.gid;
	line = read_line(cfd, 2000, KG_CONTROL_MAX_REQUEST);
	if (line) {
		*req_out = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
		free(line);
	}
	return cfd;
}

int kg_control_reply(int cfd, json_t *reply)
{
	int err = reply ? send_json(cfd, reply) : -ENOMEM;

	json_decref(reply);
	close(cfd);
	return err;
}
