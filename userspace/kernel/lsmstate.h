/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * lsmstate.h - is "bpf" among the kernel's active LSMs?
 *
 * BPF LSM programs load and attach even when "bpf" is left out of lsm=:
 * the hooks are then never called and nothing is enforced.  So the loader
 * must not take a successful attach as proof.  The active list is read from
 * securityfs ("lsm"); when securityfs is not mounted (containers, chroots)
 * it is mounted in a private mount namespace of a child; when that fails
 * too, an lsm= on the kernel command line can still say "not listed".
 * Anything else is KG_UNKNOWN: the caller must then prove an LSM program
 * runs (kg_bpf_lsm_available()) or stay degraded.
 */
#ifndef KGATE_LSMSTATE_H
#define KGATE_LSMSTATE_H

#include <stdbool.h>
#include <stddef.h>

enum kg_tristate { KG_NO = 0, KG_YES = 1, KG_UNKNOWN = 2 };

/* Where to look; NULL fields mean the real system (tests pass fake dirs). */
struct kg_lsm_sources {
	const char *securityfs;	/* dir holding "lsm"; NULL: /sys/kernel/security */
	const char *cmdline;	/* NULL: /proc/cmdline */
	bool mount_private;	/* list unreadable: mount securityfs privately */
};

/* KG_YES / KG_NO when the active list (or lsm= on the command line, which
 * can only say KG_NO) decides, else KG_UNKNOWN.  list (may be NULL) gets
 * the list that decided, "" when unknown; why gets one line for the user
 * whenever the answer is not KG_YES. */
enum kg_tristate kg_bpf_lsm_listed(const struct kg_lsm_sources *src, char *list, size_t list_len,
				   char *why, size_t why_len);

/* "a,b,c" contains word as a whole element */
bool kg_lsm_list_has(const char *list, const char *word);

#endif
