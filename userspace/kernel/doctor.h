/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * doctor.h - what this kernel can enforce, found by trying it.
 *
 * Every answer comes from an attempt, not from reading configuration alone:
 * the LSM program of bpf/probe.bpf.c is loaded, attached and made to deny an
 * open of a file doctor created; the cgroup-BPF program is attached to a
 * temporary cgroup; a seccomp listener is installed in a child; and so on.
 * The result says which mechanism enforces each rule type (the enforcement
 * matrix), what is missing and how to fix it.
 */
#ifndef KGATE_DOCTOR_H
#define KGATE_DOCTOR_H

#include <stdbool.h>
#include <stdint.h>

/* struct kg_probe_event (the probe's ring buffer) is in kgate.h */
#include <linux/types.h>
#include "kgate.h"

/* kg_kernel_dev() (userspace dev_t -> inode->i_sb->s_dev) is in common.h */
#include "common.h"

#include "kernel/lsmstate.h"	/* enum kg_tristate */

/* how well a rule type is enforced */
enum kg_enf_level {
	KG_ENF_FULL = 0,	/* every rule of the type is enforced */
	KG_ENF_PARTIAL,		/* some rules, or with weaker semantics */
	KG_ENF_NONE,		/* not enforced at all */
};

enum kg_rule_type {
	KG_RT_FILE = 0,
	KG_RT_EXEC,
	KG_RT_NET,
	KG_RT_UNIX,
	KG_RT_SOCKET,
	KG_RT_SYSCALL,
	KG_RT_SELF_PROTECTION,
	KG_RT_ESCALATION_HOLD,
	KG_RT_OUTSIDE,		/* escapes by proxy: the kernel or a process outside the
				 * job acting for it (docs/design.md) */
	KG_RT_MAX,
};

struct kg_matrix_row {
	enum kg_enf_level level;
	char mechanism[160];	/* what enforces it ("BPF LSM (file_open, ...)") */
	char missing[200];	/* what is not enforced, "" if nothing */
};

struct kg_doctor_report {
	/* kernel */
	char kernel_release[65];
	char kernel_version[65];
	bool btf;				/* /sys/kernel/btf/vmlinux */

	/* BPF LSM */
	enum kg_tristate bpf_in_lsm_list;	/* "bpf" active: kg_bpf_lsm_listed() */
	char lsm_list[512];			/* "" when unknown */
	bool lsm_prog_loads;			/* BPF_PROG_LOAD of lsm/file_open */
	int lsm_load_errno;			/* when it does not */
	bool lsm_prog_attaches;
	int lsm_attach_errno;
	bool lsm_denies;			/* an attached program really denied an open */
	bool lsm_event_seen;			/* ...and reported it via the ring buffer */
	char lsm_detail[160];

	/* cgroup v2 and cgroup-BPF */
	char cgroup2_mount[4096];		/* "" when there is none */
	bool cgroup_bpf;			/* connect4 attached to a temporary cgroup */
	int cgroup_bpf_errno;
	char cgroup_bpf_detail[160];

	/* bpffs (needed to pin programs and maps for fail_closed) */
	char bpffs_path[4096];			/* directory checked */
	bool bpffs;

	/* Landlock */
	int landlock_abi;			/* 0 when unavailable */
	int landlock_errno;

	/* seccomp */
	bool seccomp_filter;
	bool seccomp_user_notif;
	int seccomp_errno;

	/* fanotify permission events (holding opens/execs for approval) */
	bool fanotify_perm;
	int fanotify_errno;

	/* conclusions */
	bool full;			/* BPF LSM + cgroup-BPF + seccomp all work */
	bool degraded_possible;		/* cgroup2 + seccomp: something is enforced */
	struct kg_matrix_row matrix[KG_RT_MAX];
	/* the same for a cgroup kgate did not start (`kgate govern`): what a
	 * running process cannot be given from outside is missing here */
	bool govern_needs_force;		/* degraded: refused unless --force */
	struct kg_matrix_row govern[KG_RT_MAX];
	char fix[4][256];		/* one-line fixes, "" when none */
};

/* Probe everything; always fills *out (unknowns are marked). Returns 0, or
 * -errno only for failures of doctor itself (not of the kernel features). */
int kg_doctor_probe(struct kg_doctor_report *out);

/* Exit status for `kgate doctor`: KG_EXIT_OK (full), KG_EXIT_DEGRADED,
 * KG_EXIT_FAIL (not even degraded enforcement is possible). */
int kg_doctor_exit_code(const struct kg_doctor_report *r);

/* Does an LSM program load, attach and deny here? Probed once (cached);
 * what `kgate run` asks before choosing full or degraded mode. */
bool kg_bpf_lsm_available(void);

/* Names for output. */
const char *kg_rule_type_name(enum kg_rule_type t);
const char *kg_enf_level_name(enum kg_enf_level l);

/* Print the report, human readable or as one JSON object on stdout. */
void kg_doctor_print(const struct kg_doctor_report *r);
int kg_doctor_print_json(const struct kg_doctor_report *r);

#endif
