/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * control.h - the daemon's local control socket.
 *
 * AF_UNIX stream socket at kg_socket_path(); one JSON object per line in
 * each direction, one request per connection.  The caller's identity is
 * what the kernel says (SO_PEERCRED, SO_PEERGROUPS and its cgroup), never
 * what the request claims.
 *
 *   {"op":"ping"}                                  -> {"ok":true,"pid":N}
 *   {"op":"status"}                                -> {"ok":true,"jobs":[...]}
 *   {"op":"push","policy":"<json text>","name":"FILE","job":"TRACE"?}
 *                                                  -> {"ok":true,"output":"..."}
 *   {"op":"approvals_list","all":B}                -> {"ok":true,"requests":[...]}
 *   {"op":"approve","id":"ID","note":S?,"ttl":N?,"once":B?}
 *   {"op":"deny","id":"ID","note":S?}              -> {"ok":true,"request":{...}}
 * Errors: {"ok":false,"error":"...","exit":N}.  A peer inside a governed job
 * gets an answer to ping only (see selfprotect.h).
 */
#ifndef KGATE_CONTROL_H
#define KGATE_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

/* Client: send req, return the reply (caller decrefs) or NULL + errno
 * (ECONNREFUSED/ENOENT when no daemon runs). */
json_t *kg_control_call(const json_t *req, int timeout_ms);

/* Is a daemon answering on the control socket? */
bool kg_control_daemon_running(void);

/* ---- server ------------------------------------------------------------------
 * Bounded and non-blocking, so that no client can delay another, the
 * daemon's work or enforcement: every client socket is non-blocking and
 * read as bytes arrive, each has one deadline for its whole request and
 * one for its reply (a client dribbling a byte a second is cut off, not
 * waited for), requests are capped in size (small unless the peer may
 * push a policy) and clients in number (in all and per uid; root gets a
 * slot by closing the oldest unprivileged client when all are taken).
 * A complete request is answered by the handler in the caller's thread.
 */
#define KG_CONTROL_MAX_CLIENTS	64
#define KG_CONTROL_MAX_PER_UID	8
#define KG_CONTROL_DEADLINE_MS	3000
#define KG_CONTROL_SMALL_REQUEST (64u << 10)	/* bytes, unless the peer may push */
#define KG_CONTROL_MAX_REQUEST	(8u << 20)	/* a policy fits; more is refused */

/* What the kernel says about a client, read at accept. */
struct kg_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];		/* SO_PEERGROUPS (supplementary groups) */
	size_t ngroups;
	/* its cgroup (relative to the cgroup2 mount, as in /proc/PID/cgroup),
	 * read through a pidfd (SO_PEERPIDFD, else pidfd_open of the pid) that
	 * was still alive after the read, so the pid was not reused meanwhile;
	 * cgroup_known false: no cgroup could be established */
	bool cgroup_known;
	bool pidfd_from_socket;		/* SO_PEERPIDFD (race-free) was available */
	char cgroup[1024];
};

/* The answer to one request (the server sends it and closes); NULL = out
 * of memory.  Runs in the thread that calls kg_control_server_service(). */
typedef json_t *(*kg_control_handler)(void *ctx, const struct kg_peer *peer, json_t *req);
/* The largest request this peer may send. */
typedef size_t (*kg_control_limit)(void *ctx, const struct kg_peer *peer);

struct kg_control_server;

/* Bind and listen on kg_socket_path() (mode 0666: authorization is per
 * request, from the peer's credentials).  NULL + errno. */
struct kg_control_server *kg_control_server_open(kg_control_handler handler,
						 kg_control_limit limit, void *ctx);
void kg_control_server_close(struct kg_control_server *s);	/* unlinks the socket */

/* The descriptors to poll (the listener, then each client) into pfd[max];
 * returns how many. */
size_t kg_control_server_pollfds(const struct kg_control_server *s, struct pollfd *pfd,
				 size_t max);
/* Milliseconds until the next client deadline (-1: none). */
int kg_control_server_timeout_ms(const struct kg_control_server *s);
/* After poll(): accept, read, answer complete requests, write replies,
 * drop clients past their deadline. */
void kg_control_server_service(struct kg_control_server *s, const struct pollfd *pfd, size_t n);

/* What the kernel says about the peer of a connected socket. 0/-errno. */
int kg_control_peer(int fd, struct kg_peer *peer);

#endif
