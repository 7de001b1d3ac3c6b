/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kernel/loader_int.h - the state of an open loader (struct kg_loader),
 * private to the loader's files (the API is kernel/loader.h):
 *   loader.c      open (warm or cold), close, map fds, a job's cgroup attached;
 *                 whether the BPF LSM can be used at all
 *   bpfobj.c      one BPF object: which programs load here, loaded (degraded
 *                 when the LSM programs are refused), its LSM programs attached
 *   renamelock.c  rename_lock's address given to the objects that walk
 *   rootlinks.c   the warm start: cgroup programs attached once to the jobs'
 *                 root cgroup, found there again by later kgate processes
 *   pins.c        bpffs, pin paths, maps opened from their pins, pins removed
 *
 * Errors: as loader.h says (-errno, logged once where the detail is known).
 */
#ifndef KGATE_KERNEL_LOADER_INT_H
#define KGATE_KERNEL_LOADER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "kernel/loader.h"

#define KG_MAX_OBJECTS 16
#define KG_MAX_PINNED_MAPS 48

struct kg_obj_desc {
	const char *name;
	const void *(*elf_bytes)(size_t *sz);
};

struct kg_pinned_maps {
	char name[KG_MAX_PINNED_MAPS][BPF_OBJ_NAME_LEN];
	int fd[KG_MAX_PINNED_MAPS];
	int n;
};

struct kg_loader {
	struct bpf_object *objs[KG_MAX_OBJECTS];
	int nobjs;
	bool lsm_active;
	bool lsm_refused;	/* for this boot: no reason to try again */
	bool file_hooks_loaded;	/* by this process (not reused from pins) */
	bool root_governed;	/* every cgroup program attached to the jobs' root */
	struct kg_pinned_maps *pinned;	/* maps opened from their pins (warm start) */
	uint32_t ring_bytes;	/* kg_events: the pinned ring's size, or the one to make */
	char lsm_error[256];
};

/* ---- pins.c ---------------------------------------------------------------------- */

/* printf into buf: 0, or -ENAMETOOLONG when it does not fit. */
int kgl_pin_path(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The pin dir exists on bpffs (/sys/fs/bpf mounted when needed): 0 or -errno. */
int kgl_ensure_bpffs(const char *pin_dir);
/* A map of the warm start, opened from its pin once: its fd, or -ENOENT. */
int kgl_pinned_map_fd(struct kg_pinned_maps *pm, const char *name);

/* ---- bpfobj.c -------------------------------------------------------------------- */

/* A cgroup-BPF program (attached to job cgroups, not globally). */
bool kgl_is_cgroup_prog(const struct bpf_program *p);
/* Open, load (and attach the LSM programs of) object d in this pass (0:
 * objects that do not walk, 1: those that do) into l->objs: 0 or -errno. */
int kgl_load_one(struct kg_loader *l, const struct kg_obj_desc *d, const char *pin_dir,
		 bool want_lsm, struct btf *vmlinux, int pass);
/* What the file hooks loaded here tell apart, recorded in kg_control. */
void kgl_note_fs_support(struct kg_loader *l, struct btf *vmlinux);

/* ---- renamelock.c ---------------------------------------------------------------- */

/* Give obj rename_lock's address (when it walks and kallsyms has it). */
void kgl_set_rename_lock(struct bpf_object *obj);
/* Does obj walk paths (has the rename_lock variable)? */
bool kgl_obj_walks(struct bpf_object *obj);

/* ---- rootlinks.c ----------------------------------------------------------------- */

/* Everything is in place already: l takes the maps from their pins. */
bool kgl_warm_start(struct kg_loader *l, bool want_lsm);
/* After a cold load: the cgroup programs attached to the jobs' root, the
 * marker pinned (failures leave jobs to be attached one by one). */
void kgl_cold_start_done(struct kg_loader *l, bool want_lsm);
/* A cgroup's links made from the root links' programs: 0 or -errno. */
int kgl_attach_from_root_links(int cgroup_fd, const char *jobdir);

#endif
