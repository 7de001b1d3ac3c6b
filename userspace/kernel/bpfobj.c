// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kernel/bpfobj.c - one BPF object (kernel/loader_int.h): opened with its
 * maps bound to the pins, its programs chosen for this kernel (LSM hooks it
 * has, not attached already; cgroup_skb stand-ins only without the LSM),
 * loaded (again without LSM programs when they are refused: degraded), and
 * its LSM programs attached with their links pinned.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "common.h"
#include "kgate.h"
#include "kernel/loader_int.h"

static bool is_lsm_prog(const struct bpf_program *p)
{
	const char *sec = bpf_program__section_name(p);

	return !strncmp(sec, "lsm/", 4) || !strncmp(sec, "lsm.s/", 6);
}

/* cgroup_skb programs stand in for LSM hooks where BPF LSM is unavailable
 * (net.bpf.c: a listener the kernel bound itself): loaded only then. */
static bool is_skb_prog(const struct bpf_program *p)
{
	return !strncmp(bpf_program__section_name(p), "cgroup_skb/", 11);
}

bool kgl_is_cgroup_prog(const struct bpf_program *p)
{
	return !strncmp(bpf_program__section_name(p), "cgroup/", 7) || is_skb_prog(p);
}

/* Does the running kernel have the LSM hook?  (file_truncate is 6.2+, for
 * example; the 6.1 guest lacks it.)  Looks for bpf_lsm_<hook> in BTF.  A
 * program named "..._argsN" is for a kernel whose hook takes N arguments
 * (inode_setattr gained one in 6.3): it loads only there. */
static bool kernel_has_lsm_hook(struct btf *vmlinux, const char *sec, const char *prog)
{
	const char *hook = strchr(sec, '/'), *args = strstr(prog, "__args");
	const struct btf_type *fn_t, *proto;
	char fn[128];
	int id;

	if (!vmlinux || !hook)
		return false;
	if (kg_snprintf(fn, sizeof(fn), "bpf_lsm_%s", hook + 1))
		return false;
	id = btf__find_by_name_kind(vmlinux, fn, BTF_KIND_FUNC);
	if (id < 0)
		return false;
	if (!args)
		return true;
	fn_t = btf__type_by_id(vmlinux, id);
	proto = fn_t ? btf__type_by_id(vmlinux, fn_t->type) : NULL;
	return proto && btf_is_func_proto(proto) && btf_vlen(proto) == atoi(args + 6);
}

static int link_pin_path(char *buf, size_t len, const char *objname, const char *progname)
{
	/* "-", not ".": bpffs refuses dots in names (EPERM, reserved) */
	return kgl_pin_path(buf, len, "%s/links/%s-%s", kg_pin_dir(), objname, progname);
}

/* An LSM program whose link is pinned is attached and enforcing already:
 * loading (and verifying) it again would only be thrown away. */
static bool lsm_link_pinned(const char *objname, const struct bpf_program *p)
{
	char path[4096];

	return !link_pin_path(path, sizeof(path), objname, bpf_program__name(p)) &&
	       access(path, F_OK) == 0;
}

/* Open one object with its maps bound to the pins; choose which programs
 * load.  NULL with errno set on error, NULL with errno 0 when nothing in it
 * is loadable here. */
static struct bpf_object *open_object(const struct kg_obj_desc *d, const char *pin_dir,
				      bool want_lsm, struct btf *vmlinux, uint32_t ring_bytes)
{
	struct bpf_map *ring;
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = d->name, .pin_root_path = pin_dir);
	struct bpf_program *p;
	struct bpf_object *obj;
	const void *bytes;
	size_t sz = 0;
	int loadable = 0;

	bytes = d->elf_bytes(&sz);
	obj = bpf_object__open_mem(bytes, sz, &oo);
	if (!obj) {
		int err = errno ?: EINVAL;

		kg_err("loader: cannot open BPF object %s: %s", d->name, strerror(err));
		errno = err;
		return NULL;
	}
	ring = bpf_object__find_map_by_name(obj, "kg_events");
	if (ring && bpf_map__set_max_entries(ring, ring_bytes)) {
		int err = errno ?: EINVAL;

		kg_err("loader: ring buffer size %u for %s: %s", ring_bytes, d->name, strerror(err));
		bpf_object__close(obj);
		errno = err;
		return NULL;
	}
	bpf_object__for_each_program(p, obj) {
		bool load = true;

		if (is_lsm_prog(p))
			load = want_lsm && kernel_has_lsm_hook(vmlinux, bpf_program__section_name(p),
							       bpf_program__name(p)) &&
			       !lsm_link_pinned(d->name, p);
		else if (is_skb_prog(p))
			load = !want_lsm;
		bpf_program__set_autoload(p, load);
		loadable += load;
	}
	if (!loadable) {
		bpf_object__close(obj);
		errno = 0;
		return NULL;
	}
	return obj;
}

static int obj_has_lsm(struct bpf_object *obj)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, obj)
		if (is_lsm_prog(p) && bpf_program__autoload(p))
			return 1;
	return 0;
}

/* Attach every LSM program of obj unless its pinned link already exists
 * (a previous controller attached it: it is enforcing right now). */
static int attach_lsm(struct bpf_object *obj, const char *objname)
{
	char path[4096];
	struct bpf_program *p;
	int err;

	err = kgl_pin_path(path, sizeof(path), "%s/links", kg_pin_dir());
	if (!err)
		err = kg_mkdir_p(path, 0700);
	if (err)
		return kg_err("loader: cannot create link directory under %s: %s", kg_pin_dir(),
			      strerror(-err)), err;
	bpf_object__for_each_program(p, obj) {
		struct bpf_link *link;

		if (!is_lsm_prog(p) || !bpf_program__autoload(p))
			continue;
		err = link_pin_path(path, sizeof(path), objname, bpf_program__name(p));
		if (err)
			return kg_err("loader: link pin path of %s: %s", bpf_program__name(p),
				      strerror(-err)), err;
		if (access(path, F_OK) == 0)
			continue;
		link = bpf_program__attach_lsm(p);
		if (!link) {
			err = -(errno ?: EINVAL);
			return kg_err("loader: attach %s: %s", bpf_program__name(p),
				      strerror(-err)), err;
		}
		err = bpf_link__pin(link, path);
		bpf_link__destroy(link);	/* the pin holds it */
		if (err)
			return kg_err("loader: pin %s: %s", path, strerror(-err)), err;
	}
	return 0;
}

static bool pins_exist(const char *pin_dir)
{
	char path[4096];

	return !kgl_pin_path(path, sizeof(path), "%s/kg_jobs", pin_dir) && access(path, F_OK) == 0;
}

/* pass 0 loads the objects that do not walk, pass 1 those that do: where
 * BPF LSM is refused (EPERM), the first LSM load fails before anything
 * needed kallsyms, and the walking objects (LSM programs only) are then
 * not even opened for loading. */
int kgl_load_one(struct kg_loader *l, const struct kg_obj_desc *d, const char *pin_dir,
		    bool want_lsm, struct btf *vmlinux, int pass)
{
	struct bpf_object *obj;
	int err;

	obj = open_object(d, pin_dir, want_lsm, vmlinux, l->ring_bytes);
	if (!obj)
		return errno ? -errno : 0;
	if (kgl_obj_walks(obj) != (pass == 1)) {
		bpf_object__close(obj);
		return 0;
	}
	if (obj_has_lsm(obj))
		kgl_set_rename_lock(obj);
	err = bpf_object__load(obj);
	if (err && obj_has_lsm(obj)) {
		/* BPF LSM refused (EPERM on kernels without it): degrade */
		snprintf(l->lsm_error, sizeof(l->lsm_error), "loading %s LSM programs: %s",
			 d->name, strerror(-err));
		l->lsm_active = false;
		l->lsm_refused = err == -EPERM;
		bpf_object__close(obj);
		obj = open_object(d, pin_dir, false, vmlinux, l->ring_bytes);
		if (!obj)
			return errno ? -errno : 0;
		err = bpf_object__load(obj);
	}
	if (err) {
		bpf_object__close(obj);
		return kg_err("loader: load %s: %s%s%s%s", d->name, strerror(-err),
			      pins_exist(pin_dir) ? " (pinned maps under " : "",
			      pins_exist(pin_dir) ? pin_dir : "",
			      pins_exist(pin_dir) ? " may come from another kgate build: once no "
			      "job runs, remove that directory; -v shows libbpf's reason)" : ""), err;
	}
	if (l->lsm_active && obj_has_lsm(obj)) {
		err = attach_lsm(obj, d->name);
		if (err) {
			bpf_object__close(obj);
			return err;
		}
		if (!strcmp(d->name, "file"))
			l->file_hooks_loaded = true;
	}
	l->objs[l->nobjs++] = obj;
	return 0;
}

/* Did CO-RE find struct btrfs_inode (built in, or the btrfs module's BTF)
 * when the file hooks were loaded?  Then they key btrfs inodes by
 * subvolume (see kg_inode_dev in bpf/walk.bpf.h). */
static bool btrfs_btf_present(struct btf *vmlinux)
{
	struct btf *mod;
	bool found;

	if (!vmlinux)
		return false;
	if (btf__find_by_name_kind(vmlinux, "btrfs_inode", BTF_KIND_STRUCT) >= 0)
		return true;
	mod = btf__parse_split("/sys/kernel/btf/btrfs", vmlinux);
	if (!mod)
		return false;
	found = btf__find_by_name_kind(mod, "btrfs_inode", BTF_KIND_STRUCT) >= 0;
	btf__free(mod);
	return found;
}

/* Record in kg_control what the file hooks loaded here can tell apart; a
 * process that reuses pinned hooks leaves what their loader recorded. */
void kgl_note_fs_support(struct kg_loader *l, struct btf *vmlinux)
{
	struct kg_control ctl = {};
	uint32_t zero = 0;
	int fd;

	if (!l->file_hooks_loaded)
		return;
	fd = kg_loader_map_fd(l, "kg_control");
	if (fd < 0)
		return;
	bpf_map_lookup_elem(fd, &zero, &ctl);
	ctl.fs_flags = btrfs_btf_present(vmlinux) ? KG_CTL_FS_BTRFS : 0;
	bpf_map_update_elem(fd, &zero, &ctl, BPF_ANY);
}
