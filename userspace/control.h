/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * control.h - the daemon's local control socket.
 *
 * AF_UNIX stream socket at kg_socket_path(); one JSON object per line in
 * each direction, one request per connection.  The caller's identity is
 * what the kernel says (SO_PEERCRED), never what the request claims.
 *
 *   {"op":"ping"}                                  -> {"ok":true,"pid":N}
 *   {"op":"status"}                                -> {"ok":true,"jobs":[...]}
 *   {"op":"push","policy":"<json text>","name":"FILE","job":"TRACE"?}
 *                                                  -> {"ok":true,"output":"..."}
 * Errors: {"ok":false,"error":"...","exit":N}.
 */
#ifndef KGATE_CONTROL_H
#define KGATE_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

/* Client: send req, return the reply (caller decrefs) or NULL + errno
 * (ECONNREFUSED/ENOENT when no daemon runs). */
json_t *kg_control_call(const json_t *req, int timeout_ms);

/* Is a daemon answering on the control socket? */
bool kg_control_daemon_running(void);

/* Server side. */
int kg_control_listen(void);	/* bound, listening fd (0666; authz per request) */
struct kg_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};
/* Accept one connection and read its request (bounded size, timeout). */
int kg_control_accept(int lfd, struct kg_peer *peer, json_t **req_out);
int kg_control_reply(int cfd, json_t *reply);	/* steals reply, closes cfd */

#endif
