// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* push.c - swap the policy of running jobs without restarting them. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "record/audit.h"
#include "cli/cmds.h"
#include "common.h"
#include "kernel/generation.h"
#include "kernel/maps.h"
#include "kernel/push.h"
#include "record/recorder.h"
#include "job/registry.h"

/* Kinds of rule a running process keeps from its launch. */
static json_t *fixed_at_launch(const struct kg_policy_doc *doc, bool full)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];

		if (r->kind == KG_RULE_SYSCALL ||
		    (!full && (r->kind == KG_RULE_FILE || r->kind == KG_RULE_EXEC)))
			json_array_append_new(list, json_string(r->id));
	}
	return list;
}

static void audit_change(struct kg_audit *a, const struct kg_job_record *job,
			 const struct kg_policy_doc *doc, uint32_t new_id, uint32_t old_id,
			 uid_t actor_uid, json_t *fixed)
{
	struct passwd *pw = getpwuid(actor_uid);
	json_t *extra = json_pack("{s:{s:I,s:s,s:s},s:{s:I,s:s,s:s},s:O,s:I}",
				  "old", "policy_id", (json_int_t)old_id, "name", job->policy_name,
				  "hash", job->policy_hash,
				  "new", "policy_id", (json_int_t)new_id, "name", doc->name ? doc->name : "",
				  "hash", doc->hash, "not_applied_until_relaunch", fixed,
				  "cgroup_id", (json_int_t)job->cgid);
	struct kg_rec r;

	kg_rec_init(&r, "policy_change");
	kg_rec_str(&r, "trace", job->trace);
	kg_rec_int(&r, "actor.uid", actor_uid);
	kg_rec_str(&r, "actor.name", pw ? pw->pw_name : NULL);
	kg_rec_str(&r, "op", "policy_push");
	kg_rec_str(&r, "target", job->trace);
	kg_rec_str(&r, "decision", "allow");
	kg_rec_policy(&r, doc);
	kg_rec_str(&r, "mechanism", "controller");
	kg_rec_extra(&r, extra);
	if (kg_rec_append(a, &r) || kg_audit_sync(a))	/* on disk before push reports success */
		kg_warn("push: the policy change of %s could not be audited", job->trace);
	json_decref(extra);
}

static int push_one(struct kg_loader *l, struct kg_audit *a, const struct kg_policy_doc *doc,
		    struct kg_job_record *job, uid_t actor_uid, FILE *out)
{
	struct kg_generation gen;
	struct kg_job cur;
	uint32_t new_id, old_id;
	json_t *fixed;
	int err;

	if (kg_maps_get_job(l, job->cgid, &cur))
		return -ENOENT;		/* registered but gone */
	err = kg_generation_install(l, doc, &gen);
	new_id = gen.policy_id;
	kg_generation_free(&gen);
	if (err && gen.failed == KG_GEN_SNAPSHOT)
		return KG_EXIT_FAIL;	/* said by the recorder */
	if (err)
		return kg_err("push: %s: cannot compile the policy for the kernel; nothing changed",
			      job->trace), KG_EXIT_POLICY;
	/* the flip: one map update */
	err = kg_maps_switch_job(l, job->cgid, new_id, &old_id);
	if (err) {
		kg_generation_discard(l, new_id);
		return KG_EXIT_FAIL;
	}
	fixed = fixed_at_launch(doc, job->full);
	audit_change(a, job, doc, new_id, old_id, actor_uid, fixed);
	if (out) {
		fprintf(out, "%s: policy %s (sha256 %.12s) -> %s (sha256 %.12s)\n", job->trace,
			job->policy_name, job->policy_hash, doc->name ? doc->name : "", doc->hash);
		if (json_array_size(fixed))
			fprintf(out, "%s: %zu rule(s) are fixed at launch (%s) and apply from the next "
				"launch\n", job->trace, json_array_size(fixed),
				job->full ? "seccomp" : "seccomp, Landlock");
	}
	json_decref(fixed);
	/* the old generation goes once nothing uses it; its snapshot stays
	 * until the job ends, for events still in flight */
	if (job->nold < KG_REGISTRY_MAX_POLICIES)
		job->old_policy_ids[job->nold++] = old_id;
	if (kg_maps_policy_in_use(l, old_id) == 0)
		kg_maps_remove_policy(l, old_id);
	job->policy_id = new_id;
	kg_strlcpy(job->policy_name, doc->name ? doc->name : "", sizeof(job->policy_name));
	kg_strlcpy(job->policy_hash, doc->hash, sizeof(job->policy_hash));
	if (doc->source)
		kg_strlcpy(job->policy_path, doc->source, sizeof(job->policy_path));
	kg_registry_save(job);
	return 0;
}

int kg_push_policy(struct kg_loader *l, struct kg_audit *a, const struct kg_policy_doc *doc,
		   const char *trace, uid_t actor_uid, FILE *out, struct kg_push_result *res)
{
	struct kg_job_record *jobs = NULL;
	size_t n = 0, i;
	int err, rc = 0;
	bool found = false;

	memset(res, 0, sizeof(*res));
	err = kg_registry_list(&jobs, &n);
	if (err)
		return kg_err("push: cannot list jobs in %s: %s", kg_state_dir(), strerror(-err)),
		       KG_EXIT_FAIL;
	for (i = 0; i < n && !rc; i++) {
		if (trace && strcmp(jobs[i].trace, trace))
			continue;
		found = true;
		err = push_one(l, a, doc, &jobs[i], actor_uid, out);
		if (err == -ENOENT) {
			res->jobs_skipped++;
			continue;
		}
		if (err)
			rc = err;
		else
			res->jobs_updated++;
	}
	free(jobs);
	if (!rc && trace && !found)
		return kg_err("push: no running job %s (see `kgate status`)", trace), KG_EXIT_USAGE;
	return rc;
}

void kg_push_release_generations(struct kg_loader *l, const char *trace, uint32_t current)
{
	kg_push_release_generations_after(l, trace, current, NULL);
}

/* The generations a finished job used: pushed-over ones, then its last. */
static size_t job_generations(const char *trace, uint32_t current, uint32_t *ids)
{
	struct kg_job_record job;
	size_t i, n = 0;

	if (kg_registry_load(trace, &job) == 0) {
		for (i = 0; i < job.nold && i < KG_REGISTRY_MAX_POLICIES; i++)
			ids[n++] = job.old_policy_ids[i];
		current = job.policy_id;
	}
	if (current)
		ids[n++] = current;
	return n;
}

/* state/retired: generation ids (uint32 each) waiting for their grace
 * period, under an exclusive flock.  -1 when it cannot be opened. */
static int retired_open(void)
{
	char path[4200];
	int fd;

	if (kg_snprintf(path, sizeof(path), "%s/retired", kg_state_dir()))
		return -1;
	kg_mkdir_p(kg_state_dir(), 0700);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Up to max ids from the list (fd at any offset). */
static size_t retired_read(int fd, uint32_t *ids, size_t max)
{
	ssize_t n = pread(fd, ids, max * sizeof(*ids), 0);

	return n > 0 ? (size_t)n / sizeof(*ids) : 0;
}

int kg_push_retire_generations(struct kg_loader *l, const char *trace, uint32_t current)
{
	uint32_t ids[KG_REGISTRY_MAX_POLICIES + 1];
	size_t n = job_generations(trace, current, ids), i;
	struct stat st = {};
	int fd, err = 0;

	if (!n)
		return 0;
	fd = retired_open();
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || st.st_size % sizeof(uint32_t) ||
	    (size_t)st.st_size / sizeof(uint32_t) + n > KG_RETIRED_MAX ||
	    pwrite(fd, ids, n * sizeof(*ids), st.st_size) != (ssize_t)(n * sizeof(*ids)))
		err = -EIO;	/* unreadable, full or short: the caller waits itself */
	close(fd);
	if (err)
		return err;
	/* the snapshots go now, as with kg_push_release_generations: the
	 * records of the job's events are written */
	for (i = 0; i < n; i++)
		if (kg_maps_policy_in_use(l, ids[i]) == 0)
			kg_snapshot_remove(ids[i]);
	return (int)((size_t)st.st_size / sizeof(uint32_t) + n);
}

void kg_push_sweep_start(struct kg_retired *r)
{
	int fd;

	memset(r, 0, sizeof(*r));
	fd = retired_open();
	if (fd < 0)
		return;
	r->n = retired_read(fd, r->ids, KG_RETIRED_MAX);
	close(fd);
	/* every id read was retired after its job left kg_jobs: a grace
	 * period that begins now covers every hook that read one */
	if (r->n)
		kg_maps_wait_readers_start(&r->wait);
}

void kg_push_sweep_finish(struct kg_loader *l, struct kg_retired *r)
{
	uint32_t left[KG_RETIRED_MAX], cur[KG_RETIRED_MAX];
	size_t i, k, n, nleft = 0;
	int fd;

	if (!r->n)
		return;
	kg_maps_wait_readers_finish(&r->wait);
	for (i = 0; i < r->n; i++)
		if (kg_maps_policy_in_use(l, r->ids[i]) == 0)
			kg_maps_delete_policy(l, r->ids[i]);
	/* what others retired meanwhile stays for the next sweep */
	fd = retired_open();
	if (fd < 0)
		return;
	n = retired_read(fd, cur, KG_RETIRED_MAX);
	for (i = 0; i < n; i++) {
		for (k = 0; k < r->n && r->ids[k] != cur[i]; k++)
			;
		if (k == r->n)
			left[nleft++] = cur[i];
	}
	if (pwrite(fd, left, nleft * sizeof(*left), 0) == (ssize_t)(nleft * sizeof(*left)))
		(void)ftruncate(fd, (off_t)(nleft * sizeof(*left)));
	close(fd);
	r->n = 0;
}

void kg_push_release_generations_after(struct kg_loader *l, const char *trace, uint32_t current,
				       struct kg_readers_wait *readers)
{
	uint32_t ids[KG_REGISTRY_MAX_POLICIES + 1];
	struct kg_readers_wait own = {};
	size_t i, n = job_generations(trace, current, ids);

	current = n ? ids[n - 1] : 0;
	/* one grace period for them all: none is referenced by this job any
	 * more (the caller removed it, or pushes switched it away), so every
	 * hook that read one of them has returned once it has passed */
	for (i = 0; !readers && i < n && kg_maps_policy_in_use(l, ids[i]) != 0; i++)
		;
	if (readers || i < n)
		kg_maps_wait_readers_finish(readers ? readers : &own);
	for (i = 0; i < n; i++) {
		if (kg_maps_policy_in_use(l, ids[i]) == 0)
			kg_maps_delete_policy(l, ids[i]);
		/* pushed-over snapshots go with the job; the current one only
		 * when nothing runs it (as before) */
		if (ids[i] != current || kg_maps_policy_in_use(l, ids[i]) == 0)
			kg_snapshot_remove(ids[i]);
	}
}
