// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/syncer.c - group mode's background fdatasync thread (writer.h). */
#include "record/audit.h"
#include "common.h"
#include "record/writer.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* group mode: fdatasync off the appender's path
 *
 * In KG_AUDIT_SYNC_GROUP, a commit writes its records with write(2) and
 * returns; a background thread fdatasyncs the segment at most once per
 * flush_interval_ms, starting as soon as that much time has passed since its
 * previous fdatasync began (at once after an idle spell). So a record is on
 * disk at most about one interval plus one fdatasync after its write(2);
 * a kill -9 loses nothing written. The thread is started by the first write
 * and stopped (after a last fdatasync) by kg_audit_close. A process that
 * forked with the handle has no such thread and syncs inline instead. */

bool kg_syncer_here(const struct kg_audit *a)
{
	return !a->sync.started || a->sync.owner == getpid();
}

static void syncer_wait_until(struct kg_syncer *s, uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000ull),
		.tv_nsec = (long)(deadline_ns % 1000000000ull),
	};

	pthread_cond_timedwait(&s->wake, &s->mu, &ts);
}

static void *syncer_main(void *arg)
{
	struct kg_audit *a = arg;
	struct kg_syncer *s = &a->sync;
	uint64_t interval = (uint64_t)a->o.flush_interval_ms * 1000000ull;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		uint64_t gen, now;
		int fd, err = 0;

		while (!s->stop && s->written == s->covered) {
			s->idle = true;
			pthread_cond_broadcast(&s->parked);
			pthread_cond_wait(&s->wake, &s->mu);
			s->idle = false;
		}
		if (s->written == s->covered)
			break;			/* stopping, and everything is synced */
		now = kg_now_mono_ns();
		if (!s->stop && s->last_start_ns && now - s->last_start_ns < interval) {
			syncer_wait_until(s, s->last_start_ns + interval);
			continue;
		}
		gen = s->written;
		s->covered = gen;
		s->last_start_ns = now;
		/* a dup: the appender may close a->fd (rotation) meanwhile */
		fd = a->fd >= 0 ? fcntl(a->fd, F_DUPFD_CLOEXEC, 0) : -1;
		if (a->fd >= 0 && fd < 0)
			err = -errno;
		pthread_mutex_unlock(&s->mu);
		if (fd >= 0) {
			if (fdatasync(fd))
				err = -errno;
			close(fd);
		}
		if (err)
			kg_err("audit: background fdatasync of %s failed: %s", a->active,
			       strerror(-err));
		pthread_mutex_lock(&s->mu);
		if (err && !s->err)
			s->err = err;
		if (!err && gen > s->done)
			s->done = gen;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int kg_syncer_init(struct kg_syncer *s)
{
	pthread_condattr_t ca;
	int err;

	err = pthread_condattr_init(&ca);
	if (err)
		return -err;
	err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&s->wake, &ca);
	if (!err) {
		err = pthread_cond_init(&s->parked, &ca);
		if (err)
			pthread_cond_destroy(&s->wake);
	}
	pthread_condattr_destroy(&ca);
	if (err)
		return -err;
	err = pthread_mutex_init(&s->mu, NULL);
	if (err) {
		pthread_cond_destroy(&s->wake);
		pthread_cond_destroy(&s->parked);
		return -err;
	}
	return 0;
}

void kg_syncer_destroy(struct kg_syncer *s)
{
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->parked);
}

/* Woken by the thread as it parks: no polling (this runs before every
 * job's first fork, usually just after the thread started). */
int kg_syncer_wait_idle(struct kg_audit *a, int timeout_ms)
{
	struct kg_syncer *s = &a->sync;
	uint64_t deadline = kg_now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	int err = 0;

	if (!s->started || !kg_syncer_here(a))
		return 0;
	pthread_mutex_lock(&s->mu);
	while (!(s->idle && s->written == s->covered)) {
		struct timespec ts = {
			.tv_sec = (time_t)(deadline / 1000000000ull),
			.tv_nsec = (long)(deadline % 1000000000ull),
		};

		if (pthread_cond_timedwait(&s->parked, &s->mu, &ts) == ETIMEDOUT) {
			err = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return err;
}

/* After a group's write(2): hand the fdatasync to the thread. */
int kg_syncer_note_write(struct kg_audit *a)
{
	struct kg_syncer *s = &a->sync;
	int err;

	pthread_mutex_lock(&s->mu);
	s->written++;
	if (!s->started) {
		err = pthread_create(&s->thread, NULL, syncer_main, a);
		if (err) {	/* no thread: this group is synced here */
			pthread_mutex_unlock(&s->mu);
			kg_warn("audit: cannot start the sync thread (%s); syncing inline",
				strerror(err));
			return fdatasync(a->fd) ? -errno : 0;
		}
		s->started = true;
		s->owner = getpid();
	} else if (s->idle) {
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* A failed background fdatasync, reported once (0 when none). */
int kg_syncer_take_error(struct kg_audit *a)
{
	struct kg_syncer *s = &a->sync;
	int err;

	if (!s->started || !kg_syncer_here(a))
		return 0;
	pthread_mutex_lock(&s->mu);
	err = s->err;
	s->err = 0;
	pthread_mutex_unlock(&s->mu);
	return err;
}

/* Stops the thread after its last fdatasync; its error, if any. */
int kg_syncer_stop(struct kg_audit *a)
{
	struct kg_syncer *s = &a->sync;

	if (!s->started || !kg_syncer_here(a))
		return 0;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->started = false;
	return s->err;
}

/* Replaces a->fd (NULL-safe for the thread, which reads it under mu).
 * Records written to the old segment but not yet fdatasynced are synced
 * here first, so switching segments never weakens group durability. */
void kg_trail_set_active_fd(struct kg_audit *a, int fd)
{
	struct kg_syncer *s = &a->sync;
	bool locked = s->started && kg_syncer_here(a);
	int old = a->fd;

	if (locked)
		pthread_mutex_lock(&s->mu);
	if (old >= 0 && a->o.sync == KG_AUDIT_SYNC_GROUP &&
	    (!locked || s->done != s->written) && fdatasync(old))
		kg_warn("audit: fdatasync of %s failed: %s", a->active, strerror(errno));
	a->fd = fd;
	if (locked) {
		s->covered = s->done = s->written;
		pthread_mutex_unlock(&s->mu);
	}
	if (old >= 0)
		close(old);
}
