/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * outside.h - escapes by proxy through names: the sockets of daemons that
 * act for their clients (systemd, the D-Bus system bus, container engines,
 * snapd) and the files that something outside the job later runs or obeys
 * as root (cron, systemd units, sudoers, ld.so.preload, root's startup
 * files, the system's programs...).  A governed job may not connect to the
 * first nor change, create, remove or rename the second, whatever its
 * policy's file and unix rules say, unless its policy's `system_access`
 * names the member (visible in `kgate policy show` and in job_start).
 *
 * The list is kgate's, fixed (kg_out_members): a policy adds its own
 * refusals with ordinary file and unix rules, and lifts one of kgate's only
 * by naming its member in system_access.
 *
 * Full mode: the names go into kg_outside (kgate.h), checked by
 * bpf/outside.bpf.c; every refusal is recorded (op `system`,
 * extra.outside = the member).  Degraded mode: the job's mount namespace;
 * sockets that exist at launch are covered (/dev/null, or an empty tmpfs
 * over a directory of sockets), files read-only (a bind on themselves), and
 * /etc as a whole read-only (so a name that does not exist yet,
 * /etc/ld.so.preload, cannot be created there either) unless a granted
 * member has files directly in /etc (tools replace those by a rename in
 * /etc); a granted member's directories in /etc stay writable.  Nothing is
 * recorded one by one.
 */
#ifndef KGATE_KERNEL_OUTSIDE_H
#define KGATE_KERNEL_OUTSIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kg_out_member {
	const char *name;		/* as system_access names it */
	bool sockets;			/* daemons' sockets (else files) */
	const char *what;		/* what reaching it gets done outside the job */
	/* each: a kind letter, then an absolute path:
	 *   E  the name (a file, a socket; existing or not)
	 *   T  the name and everything beneath it
	 *   X  beneath a T: left alone (/usr/local)
	 *   U  a path beneath every /run/user/UID (per-user managers)
	 *   H  then E or T: a path beneath every /home/NAME (users' startup
	 *      files; a directory there made after launch is not covered) */
	const char *const *paths;
};

extern const struct kg_out_member kg_out_members[];
extern const size_t kg_out_members_len;

/* The member's number (its bit in a grant), or -1. */
int kg_out_by_name(const char *name);

/* Full mode: every member's names into the kg_outside map (fd); granted or
 * not (the hook asks the job's policy).  Names whose directory is missing
 * are skipped.  0/-errno. */
int kg_outside_register(int map_fd);

/* Degraded mode, in the launched child (in its own mount namespace, before
 * privileges are dropped): the members not in `granted` covered by mounts.
 * Syscalls only (no allocation).  0/-errno. */
int kg_outside_hide(uint32_t granted);

/* How the mode (full 1, degraded 0) closes the member, in a sentence. */
const char *kg_out_how(const struct kg_out_member *m, int full);

/* {"granted":[..],"protected":[..]} with, when full is 0 or 1, "how" */
struct json_t;
struct json_t *kg_outside_json(uint32_t granted, int full);

#endif
