/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cgroup.h - the job's cgroup v2 directory: create, limit, kill, destroy.
 *
 * The cgroup2 mount is discovered from /proc/self/mountinfo (it is
 * /sys/fs/cgroup on most systems, /sys/fs/cgroup/unified on hybrid hosts).
 * A job lives in <cg2>/<parent>/<job>; its id is the directory's inode
 * number, which is what bpf_get_current_cgroup_id() returns on cgroup2.
 */
#ifndef KGATE_CGROUP_H
#define KGATE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kg_cgroup {
	char path[4096];
	int fd;			/* O_DIRECTORY fd of the job cgroup (CLONE_INTO_CGROUP) */
	uint64_t id;		/* inode number == kernel cgroup id */
};

/* How each limit is (or is not) enforced, for `kgate run`, doctor and audit. */
enum kg_limit_how {
	KG_LIMIT_UNSET = 0,	/* no limit asked for */
	KG_LIMIT_CGROUP,	/* cgroup v2 controller file written */
	KG_LIMIT_RLIMIT,	/* approximated with setrlimit in the child */
	KG_LIMIT_NONE,		/* asked for, not enforced */
};

struct kg_limit_report {
	enum kg_limit_how procs_how;
	enum kg_limit_how memory_how;
	uint64_t max_procs, memory_max;
	char procs_reason[160];
	char memory_reason[160];
	/* what the child must apply with setrlimit (0 = nothing) */
	uint64_t rlimit_nproc, rlimit_as;
};

/* Path of the cgroup2 mount (cached); NULL if there is none. */
const char *kg_cgroup2_mount(void);

/* The cgroup under the cgroup2 mount where every `kgate run` job lives
 * (<cgroup2>/kgate/<trace>): the loader attaches the cgroup-BPF programs
 * to it once, and job cgroups inherit them. */
#define KG_JOBS_CGROUP "kgate"

/* True if `ctrl` ("pids", "memory") is available in <cg2>/cgroup.controllers. */
bool kg_cgroup2_has_controller(const char *ctrl);

/* Create <cg2>/<parent_name>/<job_name> (parent_name may contain '/').
 * Enables +pids/+memory in the parent's subtree_control where available.
 * Fails with -EEXIST if the job directory already exists. 0 or -errno. */
int kg_cgroup_create_job(const char *parent_name, const char *job_name,
			 struct kg_cgroup *out);

/* Open an existing cgroup directory (absolute path). 0 or -errno
 * (-EMEDIUMTYPE: the directory is not on the cgroup2 file system). */
int kg_cgroup_open(const char *path, struct kg_cgroup *out);

/* pids.max / memory.max (0 = leave unlimited). Fills *rep honestly: what is
 * enforced by the cgroup, what is approximated by rlimits, what is not. */
int kg_cgroup_set_limits(const struct kg_cgroup *cg, uint64_t max_procs,
			 uint64_t memory_max, struct kg_limit_report *rep);

/* Apply the rlimit fallbacks of *rep in the current process (the child). */
int kg_limits_apply_rlimits(const struct kg_limit_report *rep);

/* Kill every process of the cgroup and its descendants: cgroup.kill, or
 * freeze + SIGKILL of every pid in cgroup.procs recursively. 0 or -errno. */
int kg_cgroup_kill(const struct kg_cgroup *cg);

/* True while cgroup.events says populated 1 (errors count as populated). */
bool kg_cgroup_populated(const struct kg_cgroup *cg);

/* Kill, wait until empty (bounded), rmdir children bottom-up then itself,
 * close the fd. 0 or -errno. */
int kg_cgroup_destroy(struct kg_cgroup *cg);

/* Close the fd without removing anything. */
void kg_cgroup_close(struct kg_cgroup *cg);

/* Move a pid into the cgroup (cgroup.procs). 0 or -errno. */
int kg_cgroup_add_pid(const struct kg_cgroup *cg, pid_t pid);

/* Cgroup id (inode number) of a cgroup2 directory. 0 or -errno. */
int kg_cgroup_id_of_path(const char *path, uint64_t *id);

/* The cgroup2 path of a pid relative to the mount ("/kgate/job-1"), from
 * /proc/<pid>/cgroup's "0::" line; pid 0 = self. 0 or -errno. */
int kg_cgroup_of_pid(pid_t pid, char *buf, size_t len);

#endif
