// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* losses.c - what the ring buffer could not take, per job and per kind. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common.h"
#include "record/events.h"
#include "record/losses.h"
#include "kernel/maps.h"
#include "record/recorder.h"

/* <state>/lost.unattributed: the unattributed losses already in the trail,
 * one number per kind, overwritten in place at a fixed width (on a full
 * disk a truncate and rewrite could fail after the record was written). */
#define LOST_WIDTH 20

static int unattr_open(uint64_t seen[KG_EV_MAX])
{
	char path[4200], buf[(LOST_WIDTH + 1) * KG_EV_MAX + 1], *p, *end;
	ssize_t n;
	int fd, k;

	memset(seen, 0, sizeof(uint64_t) * KG_EV_MAX);
	if (kg_snprintf(path, sizeof(path), "%s/lost.unattributed", kg_state_dir()))
		return -ENAMETOOLONG;
	kg_mkdir_p(kg_state_dir(), 0700);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	flock(fd, LOCK_EX);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		buf[n] = '\0';
		for (p = buf, k = 0; k < KG_EV_MAX; k++, p = end) {
			seen[k] = strtoull(p, &end, 10);
			if (end == p)
				break;
		}
	}
	return fd;
}

static int unattr_set(int fd, const uint64_t v[KG_EV_MAX])
{
	char buf[(LOST_WIDTH + 1) * KG_EV_MAX + 1];
	int k, n = 0;

	for (k = 0; k < KG_EV_MAX; k++)
		n += snprintf(buf + n, sizeof(buf) - n, "%0*llu%c", LOST_WIDTH,
			      (unsigned long long)v[k], k + 1 < KG_EV_MAX ? ' ' : '\n');
	return pwrite(fd, buf, n, 0) == n ? 0 : -errno;
}

int kg_losses_read(struct kg_loader *l, struct kg_loss_delta *d)
{
	int jfd = kg_loader_map_fd(l, "kg_job_lost"), sfd = kg_loader_map_fd(l, "kg_lost_seen");
	uint64_t seen_un[KG_EV_MAX], key, next;
	struct kg_counters c;
	void *prev = NULL;
	size_t cap = 0;
	int k, err;

	memset(d, 0, sizeof(*d));
	d->lock_fd = -1;
	if (jfd < 0 || sfd < 0)
		return -ENOENT;
	d->lock_fd = unattr_open(seen_un);
	if (d->lock_fd < 0)
		return d->lock_fd;
	err = kg_maps_read_counters(l, &c);
	if (err)
		return err;
	for (k = 0; k < KG_EV_MAX; k++) {
		d->unattr_now[k] = c.lost_unattributed[k];
		if (c.lost_unattributed[k] > seen_un[k]) {
			d->by_kind[k] += c.lost_unattributed[k] - seen_un[k];
			d->unattributed += c.lost_unattributed[k] - seen_un[k];
		}
	}
	d->lost = d->unattributed;
	while (bpf_map_get_next_key(jfd, prev, &next) == 0) {
		struct kg_job_lost now, seen = { 0 };
		uint64_t delta = 0;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(jfd, &key, &now))
			continue;
		bpf_map_lookup_elem(sfd, &key, &seen);
		for (k = 0; k < KG_EV_MAX; k++)
			if (now.lost[k] > seen.lost[k]) {
				delta += now.lost[k] - seen.lost[k];
				d->by_kind[k] += now.lost[k] - seen.lost[k];
			}
		if (!delta)
			continue;
		struct kg_loss_job *grown = kg_grow(d->jobs, &cap, d->njobs, sizeof(*d->jobs), 16);

		if (!grown)
			return -ENOMEM;
		d->jobs = grown;
		d->jobs[d->njobs++] = (struct kg_loss_job){ .cgid = key, .now = now, .delta = delta };
		d->lost += delta;
	}
	return 0;
}

json_t *kg_losses_by_kind(const struct kg_loss_delta *d)
{
	json_t *o = json_object();
	int k;

	for (k = 0; o && k < KG_EV_MAX; k++)
		json_object_set_new(o, kg_event_kind_name(k), json_integer((json_int_t)d->by_kind[k]));
	return o;
}

json_t *kg_losses_by_job(const struct kg_loss_delta *d)
{
	json_t *a = json_array();
	char trace[32];
	size_t i;

	for (i = 0; a && i < d->njobs; i++) {
		kg_trace_id(d->jobs[i].now.job_id, trace, sizeof(trace));
		json_array_append_new(a, json_pack("{s:s,s:I,s:I}", "trace_id", trace, "cgroup_id",
						   (json_int_t)d->jobs[i].cgid, "lost",
						   (json_int_t)d->jobs[i].delta));
	}
	return a;
}

int kg_losses_mark(struct kg_loader *l, struct kg_loss_delta *d)
{
	int sfd = kg_loader_map_fd(l, "kg_lost_seen"), err = 0;
	size_t i;

	if (sfd < 0 || d->lock_fd < 0)
		return -ENOENT;
	for (i = 0; i < d->njobs; i++)
		if (bpf_map_update_elem(sfd, &d->jobs[i].cgid, &d->jobs[i].now, BPF_ANY) && !err)
			err = -errno;
	if (d->unattributed) {
		int e = unattr_set(d->lock_fd, d->unattr_now);

		if (e && !err)
			err = e;
	}
	return err;
}

void kg_losses_done(struct kg_loss_delta *d)
{
	if (d->lock_fd >= 0) {
		flock(d->lock_fd, LOCK_UN);
		close(d->lock_fd);
	}
	d->lock_fd = -1;
	free(d->jobs);
	d->jobs = NULL;
	d->njobs = 0;
}

void kg_losses_sweep(struct kg_loader *l)
{
	int jfd = kg_loader_map_fd(l, "kg_job_lost"), sfd = kg_loader_map_fd(l, "kg_lost_seen");
	int jobs = kg_loader_map_fd(l, "kg_jobs");
	uint64_t key, next, gone[64];
	struct kg_job kj;
	void *prev = NULL;
	size_t n = 0, i;

	if (jfd < 0 || sfd < 0 || jobs < 0)
		return;
	while (n < 64 && bpf_map_get_next_key(jfd, prev, &next) == 0) {
		struct kg_job_lost now, seen = { 0 };

		key = next;
		prev = &key;
		/* a job still in kg_jobs may lose more; one that is not never will */
		if (bpf_map_lookup_elem(jobs, &key, &kj) == 0 || bpf_map_lookup_elem(jfd, &key, &now))
			continue;
		bpf_map_lookup_elem(sfd, &key, &seen);
		if (!memcmp(now.lost, seen.lost, sizeof(now.lost)))
			gone[n++] = key;
	}
	for (i = 0; i < n; i++) {
		bpf_map_delete_elem(jfd, &gone[i]);
		bpf_map_delete_elem(sfd, &gone[i]);
	}
}
