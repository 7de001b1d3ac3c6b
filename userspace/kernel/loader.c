// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* kernel/loader.c - load kgate's BPF objects, pin them, attach them (its
 * parts are named in kernel/loader_int.h).  This file: open (warm or cold),
 * close, map fds, a job's cgroup attached; can the BPF LSM be used at all.
 *
 * Errors: a function returns -errno (or NULL with errno set) and logs once,
 * here, where the detail (which object, program or pin) is known; callers
 * pass the -errno on without logging it again (docs/design.md, "Errors"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <linux/types.h>
#include "common.h"
#include "kgate.h"
#include "kernel/doctor.h"
#include "kernel/loader_int.h"
#include "kernel/lsmstate.h"
#include "record/ringsize.h"
#include "kg_objects.h"

#define KG_OBJ_DESC(n) { #n, n##_bpf__elf_bytes },
static const struct kg_obj_desc kg_obj_table[] = { KG_OBJECTS(KG_OBJ_DESC) };

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !kg_env.verbose)
		return 0;
	if (level == LIBBPF_WARN && !kg_env.verbose)
		return 0;	/* expected failures (e.g. EPERM for LSM) are reported by us */
	return vfprintf(stderr, fmt, ap);
}

/* BPF LSM programs load and attach even when "bpf" is not among the
 * active LSMs (lsm= without it): the hooks are then never called and
 * nothing is enforced.  So the active list decides (lsmstate.h); when it
 * cannot be read, an LSM program must be seen denying (doctor's probe),
 * else the loader stays degraded. */
static bool bpf_lsm_enforces(char *why, size_t len)
{
	struct kg_lsm_sources src = { .mount_private = true };
	enum kg_tristate listed = kg_bpf_lsm_listed(&src, NULL, 0, why, len);
	size_t n;

	if (listed != KG_UNKNOWN)
		return listed == KG_YES;
	if (kg_bpf_lsm_available())
		return true;
	n = strlen(why);
	snprintf(why + n, len - n, " and a probe LSM program did not deny: see `kgate doctor`");
	return false;
}

/* Does the kernel refuse BPF LSM programs outright (EPERM on kernels that
 * list "bpf" among their LSMs but let no LSM program load)?  Asked with two
 * instructions for a hook every BPF LSM kernel has, loaded and closed at
 * once, never attached: the first object with LSM programs would meet the
 * same refusal, but only after its other programs were verified for
 * nothing, and be verified again without them (about 25 ms here).  Any
 * other answer leaves it to the objects, as before. */
static bool lsm_load_refused(struct btf *vmlinux)
{
	LIBBPF_OPTS(bpf_prog_load_opts, o, .expected_attach_type = BPF_LSM_MAC);
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int id = btf__find_by_name_kind(vmlinux, "bpf_lsm_file_open", BTF_KIND_FUNC), fd;

	if (id < 0)
		return false;
	o.attach_btf_id = (__u32)id;
	fd = bpf_prog_load(BPF_PROG_TYPE_LSM, "kg_lsm_probe", "GPL", insns, ARRAY_SIZE(insns), &o);
	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == EPERM;
}

/* The event ring's size: the pinned ring's when there is one (a loader
 * that asks for another is refused: nothing is loaded or changed), else
 * the one asked for, else KG_RINGBUF_BYTES. */
static int ring_settle(struct kg_loader *l, uint32_t want)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[4096], a[16], b[16];
	int fd, err;

	l->ring_bytes = want ? want : KG_RINGBUF_BYTES;
	if (kgl_pin_path(path, sizeof(path), "%s/kg_events", kg_pin_dir()))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;	/* no ring yet: this loader makes it */
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (err || info.type != BPF_MAP_TYPE_RINGBUF || !info.max_entries)
		return 0;	/* not ours to judge: loading says what is wrong */
	if (want && info.max_entries != want) {
		kg_ring_size_format(want, a, sizeof(a));
		kg_ring_size_format(info.max_entries, b, sizeof(b));
		kg_err("loader: --ring-size %s, but the ring buffer already loaded (%s) has %s: "
		       "its size is chosen when kgate first loads; to change it, stop every job "
		       "and the daemon, remove %s, and start again with --ring-size %s",
		       a, path, b, kg_pin_dir(), a);
		return -EBUSY;
	}
	l->ring_bytes = info.max_entries;
	return 0;
}

const char *kg_loader_objects_tag(void)
{
	return KG_OBJECTS_TAG;
}

bool kg_loader_governs_jobs_root(const struct kg_loader *l)
{
	return l && l->root_governed;
}

struct kg_loader *kg_loader_open(const struct kg_loader_opts *opts)
{
	const char *pin_dir = kg_pin_dir();
	struct btf *vmlinux = NULL;
	struct kg_loader *l;
	size_t i;
	int pass, err;

	libbpf_set_print(libbpf_print);
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	err = kgl_ensure_bpffs(pin_dir);
	if (!err)
		err = ring_settle(l, opts ? opts->ring_bytes : 0);
	if (err)
		goto fail;
	l->lsm_active = opts && opts->want_lsm;
	if (kgl_warm_start(l, opts && opts->want_lsm))
		return l;
	if (l->lsm_active && !bpf_lsm_enforces(l->lsm_error, sizeof(l->lsm_error))) {
		l->lsm_active = false;
		l->lsm_refused = true;
	}
	if (l->lsm_active) {
		vmlinux = btf__load_vmlinux_btf();
		if (!vmlinux) {
			l->lsm_active = false;
			snprintf(l->lsm_error, sizeof(l->lsm_error), "no kernel BTF");
		} else if (lsm_load_refused(vmlinux)) {
			snprintf(l->lsm_error, sizeof(l->lsm_error), "loading LSM programs: %s",
				 strerror(EPERM));
			l->lsm_active = false;
			l->lsm_refused = true;
		}
	} else if (!l->lsm_error[0]) {
		snprintf(l->lsm_error, sizeof(l->lsm_error), "not requested");
	}
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < ARRAY_SIZE(kg_obj_table) && l->nobjs < KG_MAX_OBJECTS; i++) {
			err = kgl_load_one(l, &kg_obj_table[i], pin_dir, l->lsm_active, vmlinux, pass);
			if (err)
				goto fail;
		}
	kgl_note_fs_support(l, vmlinux);
	btf__free(vmlinux);
	kgl_cold_start_done(l, opts && opts->want_lsm);
	if (kg_loader_map_fd(l, "kg_jobs") < 0) {
		kg_err("loader: no object provides the kg_jobs map");
		kg_loader_close(l);
		errno = ENOENT;
		return NULL;
	}
	return l;
fail:
	btf__free(vmlinux);
	kg_loader_close(l);
	errno = -err;
	return NULL;
}

void kg_loader_close(struct kg_loader *l)
{
	int i;

	if (!l)
		return;
	for (i = 0; i < l->nobjs; i++)
		bpf_object__close(l->objs[i]);
	for (i = 0; l->pinned && i < l->pinned->n; i++)
		close(l->pinned->fd[i]);
	free(l->pinned);
	free(l);
}

bool kg_loader_lsm_active(const struct kg_loader *l)
{
	return l && l->lsm_active;
}

const char *kg_loader_lsm_error(const struct kg_loader *l)
{
	return l->lsm_active ? "" : l->lsm_error;
}

int kg_loader_map_fd(const struct kg_loader *l, const char *name)
{
	int i;

	if (l->pinned)
		return kgl_pinned_map_fd(l->pinned, name);
	for (i = 0; i < l->nobjs; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(l->objs[i], name);

		if (m && bpf_map__fd(m) >= 0)
			return bpf_map__fd(m);
	}
	return -ENOENT;
}

int kg_loader_attach_cgroup(struct kg_loader *l, int cgroup_fd, uint64_t cgid)
{
	char dir[4096], path[4200];
	struct bpf_program *p;
	int i, err, attached = 0;

	err = kgl_pin_path(dir, sizeof(dir), "%s/jobs/%llu", kg_pin_dir(), (unsigned long long)cgid);
	if (!err)
		err = kg_mkdir_p(dir, 0700);
	if (err)
		return kg_err("loader: cannot create %s/jobs/%llu: %s", kg_pin_dir(),
			      (unsigned long long)cgid, strerror(-err)), err;
	if (!l->nobjs)	/* warm start: the programs are those of the root links */
		return kgl_attach_from_root_links(cgroup_fd, dir);
	for (i = 0; i < l->nobjs; i++) {
		bpf_object__for_each_program(p, l->objs[i]) {
			struct bpf_link *link;

			if (!kgl_is_cgroup_prog(p) || !bpf_program__autoload(p))
				continue;
			err = kgl_pin_path(path, sizeof(path), "%s/%s", dir, bpf_program__name(p));
			if (err)
				return kg_err("loader: pin path of %s under %s: %s",
					      bpf_program__name(p), dir, strerror(-err)), err;
			link = bpf_program__attach_cgroup(p, cgroup_fd);
			if (!link) {
				err = -(errno ?: EINVAL);
				return kg_err("loader: attach %s to cgroup %llu: %s",
					      bpf_program__name(p), (unsigned long long)cgid,
					      strerror(-err)), err;
			}
			err = bpf_link__pin(link, path);
			bpf_link__destroy(link);
			if (err)
				return kg_err("loader: pin %s: %s", path, strerror(-err)), err;
			attached++;
		}
	}
	if (!attached)
		return kg_err("loader: no cgroup programs to attach"), -ENOENT;
	return 0;
}
