/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/writer.h - the state of an open trail (struct kg_audit), private
 * to the modules that write it:
 *   writer.c   open, queue, commit (seal + one write), head, rotation, close
 *   syncer.c   group mode's background fdatasync thread
 *   recover.c  where the chain continues: the tail re-read under the lock,
 *              a torn last line moved aside, a trail removed under its key
 *
 * Records are queued by kg_audit_append() and committed (seq, prev, hash
 * assigned, written, fsync'ed per the sync setting) under the lock, after
 * re-reading the tail if another process appended since: that is what keeps
 * one linear chain with several writers.
 */
#ifndef KGATE_RECORD_WRITER_H
#define KGATE_RECORD_WRITER_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "record/audit.h"
#include "record/body.h"
#include "record/chain.h"

/* Group mode's background fdatasync (see syncer.c). mu guards every
 * field and a->fd, which the thread reads to sync it. */
struct kg_syncer {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	pthread_cond_t parked;		/* broadcast when the thread goes idle */
	pthread_t thread;
	bool started, stop, idle;
	pid_t owner;			/* the thread exists in this process only */
	uint64_t written;		/* commits written with write(2) */
	uint64_t covered;		/* commits an fdatasync has started on */
	uint64_t done;			/* commits an fdatasync has finished on */
	uint64_t last_start_ns;		/* CLOCK_MONOTONIC */
	int err;			/* first failed fdatasync, not yet reported */
};

/* a queued record's members, kept in kg_audit.bodies */
struct kg_pend {
	size_t off, len;
};

struct kg_compressor;

struct kg_audit {
	char dir[PATH_MAX];
	char active[PATH_MAX + 32], head[PATH_MAX + 32];
	struct kg_audit_opts o;
	int fd, lockfd, headfd;
	dev_t dev;
	ino_t ino;
	uint64_t known_size;		/* UINT64_MAX: re-read the tail */
	uint64_t last_seq;
	unsigned char last_hash[HASH_LEN];
	struct kg_jbuf bodies;		/* members of the queued records, back to back */
	struct kg_pend *pending;
	unsigned npending, cap;
	uint64_t first_pending_mono;
	struct kg_time_cache tcache;
	struct kg_sealer sealer;
	struct kg_audit_recovery recovery;
	struct kg_jbuf out;		/* the sealed lines of one commit */
	struct kg_syncer sync;
	struct kg_compressor *zip;	/* a closed segment being compressed */
	char keypath[PATH_MAX + 32];
	bool have_key;			/* sealer ready (the key is loaded) */
	bool own_key;			/* the key is <dir>/audit.key */
	int write_err;			/* the last commit's write error (said once) */
};

/* writer.c: builds r's members into the queue (in front of it for the
 * recovery record, which must take the first seq). */
int kg_trail_queue(struct kg_audit *a, const struct kg_audit_rec *r, bool front);

/* syncer.c */
bool kg_syncer_here(const struct kg_audit *a);	/* the thread, if any, is this process's */
int kg_syncer_init(struct kg_syncer *s);
/* After a group's write(2): hand the fdatasync to the thread. */
int kg_syncer_note_write(struct kg_audit *a);
/* A failed background fdatasync, reported once (0 when none). */
int kg_syncer_take_error(struct kg_audit *a);
/* Stops the thread after its last fdatasync; its error, if any. */
int kg_syncer_stop(struct kg_audit *a);
/* Waits (at most timeout_ms) until the thread is parked with nothing to
 * do.  0 / -ETIMEDOUT. */
int kg_syncer_wait_idle(struct kg_audit *a, int timeout_ms);
void kg_syncer_destroy(struct kg_syncer *s);
/* Replaces a->fd; records written to the old segment but not yet
 * fdatasynced are synced first. */
void kg_trail_set_active_fd(struct kg_audit *a, int fd);

/* recover.c */
/* Under the lock: make sure we append to the current active segment and
 * know the chain's tail, re-reading it if someone else wrote since. */
int kg_trail_sync_tail(struct kg_audit *a);
/* The dir's key exists but there is no record and no head: queues the
 * "recovery" record saying the trail was removed. */
int kg_trail_queue_missing(struct kg_audit *a);

#endif
