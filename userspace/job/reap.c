// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* reap.c - finish what a dead `kgate run` would have done for its job. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job/cgroup.h"
#include "common.h"
#include "job/govern.h"
#include "kernel/maps.h"
#include "kernel/push.h"
#include "job/reap.h"
#include "record/recorder.h"

static uint64_t boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CLOCK_REALTIME of a process's start, 0 when unknown ("starttime" in
 * /proc/PID/stat counts clock ticks of CLOCK_BOOTTIME). */
static uint64_t proc_start_real_ns(pid_t pid)
{
	char path[64], *stat, *p, *save = NULL;
	unsigned long long ticks = 0;
	uint64_t boot_real_ns;
	long hz = sysconf(_SC_CLK_TCK);
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	stat = kg_read_file(path, 4096, NULL);
	if (!stat || hz <= 0)
		goto out;
	/* the command name may hold spaces and parentheses: fields start after the last ')' */
	p = strrchr(stat, ')');
	for (p = p ? strtok_r(p + 1, " ", &save) : NULL, field = 3; p;
	     p = strtok_r(NULL, " ", &save), field++) {
		if (field == 22) {
			ticks = strtoull(p, NULL, 10);
			break;
		}
	}
out:
	free(stat);
	if (!ticks)
		return 0;
	/* the boot time in CLOCK_REALTIME, from the two clocks now */
	boot_real_ns = kg_now_real_ns() - boottime_ns();
	return boot_real_ns + ticks * (1000000000ull / (uint64_t)hz);
}

bool kg_reap_controller_alive(const struct kg_job_record *r)
{
	uint64_t started;

	if (r->controller_pid <= 0)
		return false;
	if (kill(r->controller_pid, 0) && errno == ESRCH)
		return false;
	started = proc_start_real_ns(r->controller_pid);
	/* started after the job (with a second of slack for clock reading):
	 * the pid was reused */
	return !started || !r->started_real_ns || started <= r->started_real_ns + 1000000000ull;
}

static void record_end(struct kg_audit *a, const struct kg_job_record *r, const char *who)
{
	char note[160];
	struct kg_rec rec;
	json_t *extra;

	snprintf(note, sizeof(note), "its kgate run had died; %s cleaned up", who);
	extra = json_pack("{s:s,s:I,s:I}", "note", note, "cgroup_id", (json_int_t)r->cgid,
			  "policy_id", (json_int_t)r->policy_id);
	kg_rec_init(&rec, "job_exit");
	kg_rec_str(&rec, "trace", r->trace);
	kg_rec_int(&rec, "actor.uid", getuid());
	kg_rec_str(&rec, "op", "exit");
	kg_rec_str(&rec, "target", r->command);
	kg_rec_str(&rec, "reason", "ended while its controller was gone");
	kg_rec_str(&rec, "policy.name", r->policy_name);
	kg_rec_str(&rec, "policy.hash", r->policy_hash);
	kg_rec_str(&rec, "mechanism", "controller");
	kg_rec_extra(&rec, extra);
	if (a && kg_rec_append(a, &rec))
		kg_warn("reap: the end of %s could not be audited", r->trace);
	json_decref(extra);
	if (a)
		kg_audit_flush(a);
}

int kg_reap_orphans(struct kg_loader *l, struct kg_audit *a, const char *who)
{
	struct kg_job_record *jobs = NULL;
	size_t n = 0, i;
	int lock, reaped = 0;

	lock = kg_state_trylock("reap.lock");
	if (lock < 0)
		return 0;	/* someone else is at it */
	if (kg_registry_list(&jobs, &n)) {
		close(lock);
		return 0;
	}
	for (i = 0; i < n; i++) {
		struct kg_job_record *r = &jobs[i];
		struct kg_cgroup cg;

		/* a cgroup governed in place is not ours: never killed or
		 * removed, released once whoever owns it has removed it */
		if (r->governed) {
			if (kg_govern_cgroup_alive(r))
				continue;
			kg_govern_end(l, a, r, "exit", "its cgroup was removed");
			reaped++;
			continue;
		}
		if (kg_reap_controller_alive(r))
			continue;
		if (kg_cgroup_open(r->cgroup_path, &cg) == 0) {
			bool busy = kg_cgroup_populated(&cg);

			if (!busy && kg_cgroup_destroy(&cg))
				busy = true;	/* could not remove it: try again later */
			kg_cgroup_close(&cg);
			if (busy)
				continue;	/* still running, still enforced */
		}
		kg_loader_detach_cgroup(r->cgid);
		/* throttle refusals after the kernel's last once-a-second report,
		 * and decisions folded after their key's last event */
		kg_record_job_residues(a, l, r->cgid, r->job_id);
		kg_maps_remove_job(l, r->cgid);
		kg_push_release_generations(l, r->trace, r->policy_id);
		record_end(a, r, who);
		kg_registry_remove(r->trace);
		reaped++;
	}
	free(jobs);
	close(lock);
	return reaped;
}
