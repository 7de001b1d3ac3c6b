/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * loader.h - load kgate's BPF objects, pin them, attach them.
 *
 * Pins live under kg_pin_dir() (default /sys/fs/bpf/kgate/<abi id>, the id
 * a hash of the map layout, so builds with different layouts never share):
 *   <pin>/kg_*                 maps (shared by every object, by name)
 *   <pin>/links/<obj>.<prog>   global LSM links (full mode)
 *   <pin>/root/<tag>-<obj>-<prog>  cgroup-BPF links on <cgroup2>/kgate, which
 *                              every `kgate run` job inherits (<tag>: a hash
 *                              of the BPF objects)
 *   <pin>/ready_<tag>          marker: all of the above is in place (and
 *                              whether the BPF LSM is attached or refused)
 *   <pin>/jobs/<cgid>/<prog>   cgroup-BPF links of a governed cgroup
 * Pinned links keep enforcing when every kgate process is gone (fail
 * closed); a restarted controller finds the pins and re-uses them, so there
 * is no window in which a governed action is unenforced.
 *
 * Errors: -errno (NULL with errno set), logged once in here with what failed;
 * callers pass it on without logging it again.
 */
#ifndef KGATE_LOADER_H
#define KGATE_LOADER_H

#include <stdbool.h>
#include <stdint.h>

struct kg_loader;

struct kg_loader_opts {
	bool want_lsm;		/* try to load and attach the BPF LSM programs */
	/* the event ring's size in bytes when no ring is pinned yet (0:
	 * KG_RINGBUF_BYTES); a pinned ring of another size: refused (see
	 * ringsize.h).  0 takes the pinned ring as it is. */
	uint32_t ring_bytes;
};

/* Load every object; maps come from (or go to) the pins.  LSM programs are
 * attached globally unless their links are already pinned.  When BPF LSM
 * cannot be used the cgroup programs still load (degraded mode) and
 * kg_loader_lsm_active() says false, with the reason in lsm_error.
 * NULL with errno set when anything else fails. */
struct kg_loader *kg_loader_open(const struct kg_loader_opts *opts);
void kg_loader_close(struct kg_loader *l);	/* pins stay */

bool kg_loader_lsm_active(const struct kg_loader *l);
const char *kg_loader_lsm_error(const struct kg_loader *l);

/* fd of a shared map by name ("kg_jobs"...), -ENOENT if unknown. Owned by l. */
int kg_loader_map_fd(const struct kg_loader *l, const char *name);

/* A shared map straight from its pin ("kg_jobs"...), for tools that only
 * read or update state (status, approvals): no object is loaded.  An fd the
 * caller closes, or -errno (-ENOENT: kgate never ran here). */
int kg_open_pinned_map(const char *name);
/* The same, opened once into *fd (-1: not yet): *fd, or -errno with *fd
 * left -1 so that the next call tries again. */
int kg_open_pinned_map_once(int *fd, const char *name);

/* Attach the cgroup-BPF programs to a job's cgroup and pin the links: 0 or
 * -errno (-ENOENT: no cgroup program loaded). */
int kg_loader_attach_cgroup(struct kg_loader *l, int cgroup_fd, uint64_t cgid);
/* True when every cgroup-BPF program is attached to <cgroup2>/kgate
 * (KG_JOBS_CGROUP), so that a job cgroup created below it is governed from
 * its birth without an attach of its own. */
bool kg_loader_governs_jobs_root(const struct kg_loader *l);
/* Remove a job's pinned links (the cgroup going away detaches them too):
 * 0 or -errno, not logged. */
int kg_loader_detach_cgroup(uint64_t cgid);

/* The hash of the BPF objects in this build (names of the root links). */
const char *kg_loader_objects_tag(void);

/* Remove every pin under the pin dir (tests, `kgate daemon --uninstall`). */
int kg_loader_unpin_all(void);

#endif
