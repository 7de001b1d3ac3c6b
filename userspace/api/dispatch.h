/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * api/dispatch.h - what the files of POST /api/v1/jobs share (private to
 * userspace/api/dispatch*.c; the routes' entry points are in api/internal.h).
 *
 * Owns: the limits of a submission, the daemon's table of submitted jobs
 * (struct kg_dispatch, one struct djob a job, under d->mu), and the calls
 * one part of dispatch makes into another:
 *   dispatch.c         the table: open, close, a job's state as JSON, /metrics
 *   dispatch_submit.c  POST /api/v1/jobs: the body checked, the job started
 *   dispatch_child.c   the job's process: spawned by the daemon, `kgate __dispatch`
 *   dispatch_waiter.c  one thread a job: its output pumped, a failed attempt
 *                      relaunched, how it ended
 *   dispatch_output.c  <trace>.log and its rotation; GET .../output
 *   dispatch_stop.c    DELETE /api/v1/jobs/{id}
 */
#ifndef KGATE_API_DISPATCH_H
#define KGATE_API_DISPATCH_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "api/internal.h"
#include "policy/policy.h"

#define MAX_ARGV	256
#define MAX_TAGS	16
#define MAX_LABELS	32
#define MAX_ENV		64
#define MAX_KEY		128
#define MAX_JOBS	1024	/* remembered (oldest ended ones are forgotten first) */
#define MAX_ACTIVE	32	/* submitted and not yet ended */
#define OUTPUT_MAX	(64u << 10)	/* what GET .../output returns: the newest bytes */
#define OUTPUT_ROTATE	(256u << 10)	/* <trace>.log becomes <trace>.log.1 at this size */
#define STOP_GRACE_MS	5000

struct djob {
	char trace[32];
	char key[MAX_KEY + 1];
	uint32_t uid;			/* the launcher */
	pid_t pid;
	bool done;
	int status;			/* wait status */
	char state[24];			/* once done: exited, denied, expired, stale, failed */
	char policy[128];
	json_t *submitted;		/* what was asked (topic, tenant, risk tags, labels, argv) */
	uint64_t created_ns;
	uint64_t out_bytes, out_dropped; /* output written by the job; rotated away */
	json_t *spec;			/* what its process is given (relaunched with it) */
	unsigned int attempt, max_retries;	/* 1, 2, ...; from the admission's constraints */
	bool stop;			/* DELETE asked for it to stop */
	uint32_t stopped_by;
	char stopped_via[96];
	uint64_t stopped_ns;
};

/* submits answered, by status (kgate_dispatch_submits_total) */
static const unsigned int counted_status[] = { 200, 201, 202, 400, 401, 403, 404, 413, 500, 503 };
#define NCOUNTED (sizeof(counted_status) / sizeof(counted_status[0]))

struct kg_dispatch {
	_Atomic unsigned long long submits[NCOUNTED + 1];	/* [NCOUNTED]: any other */
	pthread_mutex_t mu;
	struct djob *v;
	size_t n;
	unsigned int active;
	bool closing;			/* the daemon stops: no more attempts */
	char self[PATH_MAX];		/* this kgate binary */
	struct kg_policy_doc *docs[KG_API_MAX_DISPATCH];
	char paths[KG_API_MAX_DISPATCH][PATH_MAX];
	size_t ndocs;
};

/* The job of this trace in d->v, or NULL; d->mu held. */
struct djob *kgd_find_locked(struct kg_dispatch *d, const char *trace);
/* The launch approval of a trace, when there is one (dispatch.c). */
bool kgd_launch_request(struct kg_approvals *q, const char *trace, struct kg_approval *out);

/* ---- the job's process (dispatch_child.c) ------------------------------------------ */

/* The spec as JSON in a memfd, at offset 0 for the child to read; -1 on failure. */
int kgd_spec_memfd(json_t *spec);
/* fork + exec `kgate __dispatch 3` with the spec on fd 3 and stdout and
 * stderr on outfd; the pid, or <= 0. */
pid_t kgd_spawn(const char *self, int specfd, int outfd);

/* ---- the waiter (dispatch_waiter.c) ------------------------------------------------ */

struct waiter {
	struct kg_api *api;
	pid_t pid;
	int out;		/* the read end of the job's stdout/stderr */
	char trace[32];
};

/* The thread of one job (w is its own, freed at the end): pumps the
 * output, relaunches failed attempts, records how the job ended. */
void *kgd_waiter_main(void *arg);

/* ---- the output (dispatch_output.c) ------------------------------------------------ */

/* <state dir>/dispatch/<trace>.log, or .log.1 when old. */
void kgd_log_path(const char *trace, bool old, char *buf, size_t len);

struct outlog {
	int fd;
	uint64_t size;		/* of <trace>.log */
	char trace[32];
};

/* Append what the job wrote, rotating at OUTPUT_ROTATE; the bytes dropped. */
uint64_t kgd_log_append(struct outlog *o, const char *buf, size_t n);

#endif
