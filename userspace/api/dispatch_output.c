// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/dispatch_output.c - a submitted job's output (api/dispatch.h):
 * <state dir>/dispatch/<trace>.log, rotated to <trace>.log.1 at
 * OUTPUT_ROTATE bytes, and GET /api/v1/jobs/{id}/output, its newest bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/dispatch.h"
#include "common.h"

void kgd_log_path(const char *trace, bool old, char *buf, size_t len)
{
	snprintf(buf, len, "%s/dispatch/%s.log%s", kg_state_dir(), trace, old ? ".1" : "");
}

/* Append what the job wrote; at OUTPUT_ROTATE bytes <trace>.log becomes
 * <trace>.log.1 (the older .1 is dropped).  Returns the bytes dropped. */
uint64_t kgd_log_append(struct outlog *o, const char *buf, size_t n)
{
	char cur[4300], old[4300];
	uint64_t dropped = 0;
	struct stat st;

	if (o->fd >= 0 && o->size + n > OUTPUT_ROTATE && o->size) {
		kgd_log_path(o->trace, false, cur, sizeof(cur));
		kgd_log_path(o->trace, true, old, sizeof(old));
		if (!stat(old, &st))
			dropped = (uint64_t)st.st_size;
		close(o->fd);
		o->fd = -1;
		if (rename(cur, old))
			unlink(cur);
		o->size = 0;
	}
	if (o->fd < 0) {
		kgd_log_path(o->trace, false, cur, sizeof(cur));
		o->fd = open(cur, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	while (o->fd >= 0 && n) {
		ssize_t w = write(o->fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		buf += w;
		n -= (size_t)w;
		o->size += (uint64_t)w;
	}
	return dropped;
}

/* The newest `max` bytes of <trace>.log.1 + <trace>.log into buf; their
 * count; *older: bytes of the kept files before them. */
static size_t read_tail(const char *trace, char *buf, size_t max, uint64_t *older)
{
	size_t got = 0, want[2] = { 0, 0 };
	off_t size[2] = { 0, 0 };
	int fd[2], i;

	*older = 0;
	for (i = 0; i < 2; i++) {
		char path[4300];
		struct stat st;

		kgd_log_path(trace, i == 0, path, sizeof(path));	/* [0]: .log.1, [1]: .log */
		fd[i] = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd[i] >= 0 && !fstat(fd[i], &st) && S_ISREG(st.st_mode))
			size[i] = st.st_size;
	}
	want[1] = (size_t)(size[1] > (off_t)max ? (off_t)max : size[1]);
	want[0] = (size_t)(size[0] > (off_t)(max - want[1]) ? (off_t)(max - want[1]) : size[0]);
	*older = (uint64_t)(size[0] - (off_t)want[0]) + (uint64_t)(size[1] - (off_t)want[1]);
	for (i = 0; i < 2; i++) {
		ssize_t n = want[i] && fd[i] >= 0 ?
			    pread(fd[i], buf + got, want[i], size[i] - (off_t)want[i]) : 0;

		if (n > 0)
			got += (size_t)n;
		if (fd[i] >= 0)
			close(fd[i]);
	}
	return got;
}

/* GET /api/v1/jobs/{id}/output: the newest 64 KiB of its stdout and stderr
 * (the daemon keeps at most 2 x 256 KiB of it: older output is rotated
 * away and counted). */
void kg_dispatch_output(struct kg_api_req *r)
{
	json_t *job = kg_dispatch_job_json(r->api, &r->principal, r->id);
	struct kg_dispatch *d = r->api->dispatch;
	uint64_t older = 0, dropped = 0, total = 0;
	char path[4300], *buf;
	struct djob *j;
	size_t n, b;

	if (!job) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL,
			     "no job %s submitted through this daemon", r->id);
		return;
	}
	json_decref(job);
	kgd_log_path(r->id, false, path, sizeof(path));
	if (access(path, F_OK)) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no output for %s", r->id);
		return;
	}
	buf = malloc(OUTPUT_MAX + 1);
	if (!buf) {
		kg_api_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "out of memory");
		return;
	}
	pthread_mutex_lock(&d->mu);
	j = kgd_find_locked(d, r->id);
	if (j) {
		dropped = j->out_dropped;
		total = j->out_bytes;
	}
	pthread_mutex_unlock(&d->mu);
	/* a read racing a rotation may show less than 64 KiB, never garbage */
	n = read_tail(r->id, buf, OUTPUT_MAX, &older);
	/* JSON strings are UTF-8: other bytes are shown as '?' */
	for (b = 0; b < n; b++)
		if ((unsigned char)buf[b] >= 0x80 || (buf[b] < 0x20 && buf[b] != '\n' && buf[b] != '\t'))
			buf[b] = '?';
	buf[n] = '\0';
	kg_api_json(r, MHD_HTTP_OK, json_pack("{s:s,s:s%,s:b,s:I,s:I,s:I}", "trace", r->id,
					      "output", buf, n, "truncated", older + dropped > 0,
					      "bytes_total", (json_int_t)total, "bytes_rotated_away",
					      (json_int_t)dropped, "bytes_kept",
					      (json_int_t)(older + n)));
	free(buf);
}
