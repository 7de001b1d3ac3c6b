// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/dispatch_stop.c - DELETE /api/v1/jobs/{id} (api/dispatch.h): its
 * launcher (or a root principal) stops a submitted job, audited as a
 * job_stop record naming who stopped it; SIGTERM to its `kgate run`, then
 * its cgroup killed if the job is still there after STOP_GRACE_MS.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/dispatch.h"
#include "common.h"
#include "job/registry.h"
#include "record/recorder.h"

/* Kill the cgroup of a job that is still running after its `kgate run`
 * was asked to end it. */
static void kill_job_cgroup(const char *trace)
{
	struct kg_job_record rec;
	char path[4200];
	int fd;

	if (kg_registry_load(trace, &rec) || !rec.cgroup_path[0] ||
	    kg_snprintf(path, sizeof(path), "%s/cgroup.kill", rec.cgroup_path))
		return;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			kg_warn("api: could not kill the cgroup of %s: %s", trace, strerror(errno));
		close(fd);
	}
}

static void record_stop(struct kg_api *api, const struct djob *j, const struct kg_principal *p,
			const char *before)
{
	const struct kg_policy_doc *doc = NULL;
	struct passwd pw, *pwr = NULL;
	char pwbuf[1024], *cmd = NULL;
	json_t *argv = json_object_get(j->submitted, "argv"), *v, *extra;
	struct kg_rec rec;
	size_t i;

	for (i = 0; i < api->dispatch->ndocs; i++)
		if (!strcmp(api->dispatch->docs[i]->name, j->policy))
			doc = api->dispatch->docs[i];
	{
		char **a = calloc(json_array_size(argv) + 1, sizeof(*a));

		json_array_foreach(argv, i, v)
			if (a)
				a[i] = (char *)json_string_value(v);
		cmd = a ? kg_join_argv(a) : NULL;
		free(a);
	}
	getpwuid_r(p->who.uid, &pw, pwbuf, sizeof(pwbuf), &pwr);
	extra = json_pack("{s:s,s:s,s:I}", "state_before", before, "via", "DELETE /api/v1/jobs/{id}",
			  "launcher_uid", (json_int_t)j->uid);
	kg_rec_init(&rec, "job_stop");
	kg_rec_str(&rec, "trace", j->trace);
	kg_rec_int(&rec, "actor.uid", p->who.uid);
	kg_rec_str(&rec, "actor.name", pwr ? pwr->pw_name : NULL);
	kg_rec_str(&rec, "actor.role", p->who.via[0] ? p->who.via : NULL);
	kg_rec_str(&rec, "op", "stop");
	kg_rec_str(&rec, "target", cmd ? cmd : "");
	kg_rec_str(&rec, "decision", "stop");
	kg_rec_str(&rec, "reason", "stopped through the HTTP API");
	kg_rec_policy(&rec, doc);
	kg_rec_str(&rec, "mechanism", "controller");
	kg_rec_extra(&rec, extra);
	pthread_mutex_lock(&api->audit_mu);
	if (kg_rec_append(api->audit, &rec) || kg_audit_flush(api->audit))
		kg_warn("api: the stop of %s could not be recorded", j->trace);
	pthread_mutex_unlock(&api->audit_mu);
	json_decref(extra);
	free(cmd);
}

/* DELETE /api/v1/jobs/{id}: its launcher (or a root principal) stops a
 * submitted job, waiting or running. */
void kg_dispatch_stop(struct kg_api_req *r)
{
	struct kg_api *api = r->api;
	struct kg_dispatch *d = api->dispatch;
	const struct kg_principal *p = &r->principal;
	json_t *job = d ? kg_dispatch_job_json(api, p, r->id) : NULL;
	char before[24];
	struct djob copy, *j;
	bool first = false, done = false;
	pid_t pid = -1;
	int ms;

	if (!job) {
		kg_api_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL,
			     "no job %s submitted through this daemon", r->id);
		return;
	}
	snprintf(before, sizeof(before), "%s", json_string_value(json_object_get(job, "state")) ?: "");
	json_decref(job);
	if (p->anonymous) {
		kg_api_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL, "stopping needs a token");
		return;
	}
	pthread_mutex_lock(&d->mu);
	j = kgd_find_locked(d, r->id);
	if (j && p->who.uid != j->uid && p->who.uid != 0)
		j = NULL;
	if (j && !j->done && !j->stop) {
		first = true;
		j->stop = true;
		j->stopped_by = p->who.uid;
		snprintf(j->stopped_via, sizeof(j->stopped_via), "%s", p->who.via);
		j->stopped_ns = kg_now_real_ns();
		pid = j->pid;
		copy = *j;
		json_incref(copy.submitted);
	}
	done = j && j->done;
	pthread_mutex_unlock(&d->mu);
	if (!j) {
		kg_api_error(r, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
			     "only the job's launcher (or root) stops it");
		return;
	}
	if (done) {
		kg_api_error(r, MHD_HTTP_CONFLICT, "already_ended",
			     json_pack("{s:o}", "job", kg_dispatch_job_json(api, p, r->id)),
			     "job %s has ended already", r->id);
		return;
	}
	if (first) {
		record_stop(api, &copy, p, before);
		json_decref(copy.submitted);
		if (pid > 0)
			kill(pid, SIGTERM);	/* `kgate run` ends the job (or stops waiting) */
	}
	for (ms = 0; ms < 2 * STOP_GRACE_MS; ms += 50) {
		pthread_mutex_lock(&d->mu);
		j = kgd_find_locked(d, r->id);
		done = !j || j->done;
		pthread_mutex_unlock(&d->mu);
		if (done)
			break;
		if (ms == STOP_GRACE_MS)
			kill_job_cgroup(r->id);	/* the command ignored SIGTERM */
		usleep(50 * 1000);
	}
	job = kg_dispatch_job_json(api, p, r->id);
	kg_api_json(r, done ? MHD_HTTP_OK : MHD_HTTP_ACCEPTED, json_pack("{s:o}", "job", job));
}
