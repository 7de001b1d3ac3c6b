// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* loader.c - load kgate's BPF objects, pin them, attach them.
 *
 * Errors: a function returns -errno (or NULL with errno set) and logs once,
 * here, where the detail (which object, program or pin) is known; callers
 * pass the -errno on without logging it again (docs/design.md, "Errors"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <linux/types.h>
#include "job/cgroup.h"
#include "common.h"
#include "kernel/doctor.h"
#include "kgate.h"
#include "kernel/loader.h"
#include "kernel/lsmstate.h"
#include "record/ringsize.h"
#include "kg_objects.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

#define KG_MAX_OBJECTS 16
#define KG_MAX_PINNED_MAPS 48

struct kg_obj_desc {
	const char *name;
	const void *(*elf_bytes)(size_t *sz);
};

#define KG_OBJ_DESC(n) { #n, n##_bpf__elf_bytes },
static const struct kg_obj_desc kg_obj_table[] = { KG_OBJECTS(KG_OBJ_DESC) };

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

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !kg_env.verbose)
		return 0;
	if (level == LIBBPF_WARN && !kg_env.verbose)
		return 0;	/* expected failures (e.g. EPERM for LSM) are reported by us */
	return vfprintf(stderr, fmt, ap);
}

static bool on_bpffs(const char *dir)
{
	struct statfs st;

	return statfs(dir, &st) == 0 && (unsigned long)st.f_type == BPF_FS_MAGIC;
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

/* bpffs must be mounted at (or above) the pin dir; many systems do not
 * mount it at boot, so mount the conventional /sys/fs/bpf when needed. */
static int ensure_bpffs(const char *pin_dir)
{
	int err;

	if (kg_mkdir_p(pin_dir, 0700) == 0 && on_bpffs(pin_dir))
		return 0;
	if (!on_bpffs("/sys/fs/bpf") && mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
		err = -errno;
		return kg_err("loader: %s is not on bpffs and mounting /sys/fs/bpf failed: %s",
			      pin_dir, strerror(-err)), err;
	}
	err = kg_mkdir_p(pin_dir, 0700);
	if (err)
		return kg_err("loader: cannot create %s: %s", pin_dir, strerror(-err)), err;
	if (!on_bpffs(pin_dir))
		return kg_err("loader: %s is not on a bpf filesystem", pin_dir), -ENOTSUP;
	return 0;
}

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

static bool is_cgroup_prog(const struct bpf_program *p)
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

static int pin_path(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int pin_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

static int link_pin_path(char *buf, size_t len, const char *objname, const char *progname)
{
	/* "-", not ".": bpffs refuses dots in names (EPERM, reserved) */
	return pin_path(buf, len, "%s/links/%s-%s", kg_pin_dir(), objname, progname);
}

/* An LSM program whose link is pinned is attached and enforcing already:
 * loading (and verifying) it again would only be thrown away. */
static bool lsm_link_pinned(const char *objname, const struct bpf_program *p)
{
	char path[4096];

	return !link_pin_path(path, sizeof(path), objname, bpf_program__name(p)) &&
	       access(path, F_OK) == 0;
}

/* ---- rename_lock's address (bpf/walk.bpf.h: kg_rename_lock_addr) -------- */

#define KG_RENAME_LOCK_VAR "kg_rename_lock_addr"

/* Its offset in obj's .rodata and that map, or -ENOENT (obj does not walk). */
static int rodata_var(struct bpf_object *obj, const char *var, struct bpf_map **mapp,
		      __u32 *off)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;
	struct bpf_map *m;
	int id, i;

	id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -ENOENT;
	if (id < 0)
		return -ENOENT;
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *v = btf__type_by_id(btf, vs->type);

		if (v && !strcmp(btf__name_by_offset(btf, v->name_off), var))
			break;
	}
	if (i == btf_vlen(sec))
		return -ENOENT;
	bpf_object__for_each_map(m, obj) {
		const char *n = bpf_map__name(m);
		size_t len = strlen(n);

		if (bpf_map__is_internal(m) && len >= 7 && !strcmp(n + len - 7, ".rodata")) {
			*mapp = m;
			*off = vs->offset;
			return 0;
		}
	}
	return -ENOENT;
}

/* rename_lock's address from /proc/kallsyms: read at most once per process
 * (it costs tens of milliseconds), and only when asked, i.e. when an object
 * that walks is about to load LSM programs.  0 when it is not there (no
 * data symbols, or addresses hidden by kptr_restrict): the cache is off. */
static __u64 rename_lock_addr(void)
{
	static bool done;
	static __u64 addr;
	char line[512], sym[256], type;
	unsigned long long a;
	FILE *f;

	if (done)
		return addr;
	done = true;
	f = fopen("/proc/kallsyms", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %255s", &a, &type, sym) == 3 &&
		    !strcmp(sym, "rename_lock")) {
			addr = a;
			break;
		}
	}
	fclose(f);
	return addr;
}

/* Before an object that walks loads its LSM programs: give it the address. */
static void set_rename_lock(struct bpf_object *obj)
{
	const void *cur;
	struct bpf_map *m;
	size_t sz = 0;
	__u32 off;
	__u64 addr;
	char *data;

	if (rodata_var(obj, KG_RENAME_LOCK_VAR, &m, &off))
		return;
	cur = bpf_map__initial_value(m, &sz);
	if (!cur || (size_t)off + sizeof(addr) > sz)
		return;
	data = malloc(sz);
	if (!data)
		return;
	memcpy(data, cur, sz);
	addr = rename_lock_addr();
	memcpy(data + off, &addr, sizeof(addr));
	bpf_map__set_initial_value(m, data, sz);	/* (copies it) */
	free(data);
}

static bool obj_walks(struct bpf_object *obj)
{
	struct bpf_map *m;
	__u32 off;

	return !rodata_var(obj, KG_RENAME_LOCK_VAR, &m, &off);
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

	err = pin_path(path, sizeof(path), "%s/links", kg_pin_dir());
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

	return !pin_path(path, sizeof(path), "%s/kg_jobs", pin_dir) && access(path, F_OK) == 0;
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
	if (pin_path(path, sizeof(path), "%s/kg_events", kg_pin_dir()))
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

/* pass 0 loads the objects that do not walk, pass 1 those that do: where
 * BPF LSM is refused (EPERM), the first LSM load fails before anything
 * needed kallsyms, and the walking objects (LSM programs only) are then
 * not even opened for loading. */
static int load_one(struct kg_loader *l, const struct kg_obj_desc *d, const char *pin_dir,
		    bool want_lsm, struct btf *vmlinux, int pass)
{
	struct bpf_object *obj;
	int err;

	obj = open_object(d, pin_dir, want_lsm, vmlinux, l->ring_bytes);
	if (!obj)
		return errno ? -errno : 0;
	if (obj_walks(obj) != (pass == 1)) {
		bpf_object__close(obj);
		return 0;
	}
	if (obj_has_lsm(obj))
		set_rename_lock(obj);
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
static void note_fs_support(struct kg_loader *l, struct btf *vmlinux)
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


/* ---- warm start: programs attached once, to the jobs' root cgroup -------- */
/*
 * The cgroup-BPF programs read the job's policy from maps, so one copy of
 * them serves every job: the first kgate of a boot (or of a new build of
 * the BPF objects) loads and verifies them and attaches them to
 * <cgroup2>/kgate (links pinned as <pin>/root/<tag>-<obj>-<prog>); every
 * job cgroup created below inherits them from birth, and so do the cgroups
 * a job creates below its own.  Then it pins a marker, <pin>/ready_<tag>,
 * which also keeps what was learnt about the BPF LSM (attached, or refused
 * on this boot).  A later kgate finds the marker, checks that every root
 * link still targets the cgroup that is <cgroup2>/kgate now (a removed and
 * re-created cgroup would have none of the programs), and loads nothing:
 * its maps come from their pins.  <tag> is a hash of the BPF objects, so a
 * rebuilt kgate loads its own programs and replaces the older links.
 */
struct kg_ready {
	__u32 lsm;		/* KG_READY_LSM_* */
	__u32 nroot;		/* root links pinned */
	char why[248];		/* why the BPF LSM is not used */
};
enum { KG_READY_LSM_UNTRIED, KG_READY_LSM_ACTIVE, KG_READY_LSM_REFUSED };

static int jobs_root_path(char *buf, size_t len)
{
	const char *mnt = kg_cgroup2_mount();

	if (!mnt)
		return -ENOENT;
	return kg_snprintf(buf, len, "%s/%s", mnt, KG_JOBS_CGROUP) ? -ENAMETOOLONG : 0;
}

static int ready_path(char *buf, size_t len)
{
	return pin_path(buf, len, "%s/ready_%s", kg_pin_dir(), KG_OBJECTS_TAG);
}

/* The cgroup a pinned link is attached to: its id, 0 if detached or not a
 * cgroup link, -errno if the pin cannot be read. */
static int64_t link_cgroup(const char *path, struct bpf_link_info *info)
{
	__u32 len = sizeof(*info);
	int fd = bpf_obj_get(path), err;

	if (fd < 0)
		return -errno;
	memset(info, 0, sizeof(*info));
	err = bpf_obj_get_info_by_fd(fd, info, &len);
	close(fd);
	if (err)
		return err;
	return info->type == BPF_LINK_TYPE_CGROUP ? (int64_t)info->cgroup.cgroup_id : 0;
}

/* The directory of this build's root links (pins named <tag>-<obj>-<prog>),
 * opened; prefix gets "<tag>-".  NULL with errno set (ENAMETOOLONG, or
 * opendir's). */
static DIR *root_links_open(char *dir, size_t dirlen, char *prefix, size_t prefixlen)
{
	if (pin_path(dir, dirlen, "%s/root", kg_pin_dir())) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	snprintf(prefix, prefixlen, "%s-", KG_OBJECTS_TAG);
	return opendir(dir);
}

/* How many of this build's root links target the cgroup root_id; -ESTALE
 * when one does not (the cgroup was re-created, or the link detached). */
static int root_links_check(uint64_t root_id, bool remove_others)
{
	char dir[4096], path[4400], prefix[32];
	struct bpf_link_info info;
	struct dirent *de;
	int n = 0, stale = 0;
	DIR *d;

	d = root_links_open(dir, sizeof(dir), prefix, sizeof(prefix));
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || pin_path(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		if (strncmp(de->d_name, prefix, strlen(prefix))) {
			/* another build's program: ours replace it (same maps) */
			if (remove_others)
				unlink(path);
			continue;
		}
		if (link_cgroup(path, &info) != (int64_t)root_id) {
			stale++;
			if (remove_others)
				unlink(path);
			continue;
		}
		n++;
	}
	closedir(d);
	return stale ? -ESTALE : n;
}

static int pinned_map_fd(struct kg_pinned_maps *pm, const char *name)
{
	int i, fd;

	for (i = 0; i < pm->n; i++)
		if (!strcmp(pm->name[i], name))
			return pm->fd[i];
	if (pm->n >= KG_MAX_PINNED_MAPS || strlen(name) >= BPF_OBJ_NAME_LEN)
		return -ENOENT;
	fd = kg_open_pinned_map(name);
	if (fd < 0)
		return -ENOENT;
	kg_strlcpy(pm->name[pm->n], name, sizeof(pm->name[0]));
	pm->fd[pm->n++] = fd;
	return fd;
}

static bool read_ready(struct kg_ready *r)
{
	char path[4096];
	__u32 zero = 0;
	int fd, err;

	if (ready_path(path, sizeof(path)))
		return false;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return false;
	err = bpf_map_lookup_elem(fd, &zero, r);
	close(fd);
	return !err;
}

/* Everything this build needs is loaded, attached and pinned already:
 * take the maps from their pins and load nothing. */
static bool warm_start(struct kg_loader *l, bool want_lsm)
{
	char root[4096];
	struct kg_ready r;
	uint64_t root_id;

	if (getenv("KGATE_COLD_START") || !read_ready(&r) || !r.nroot)
		return false;
	if (want_lsm && r.lsm == KG_READY_LSM_UNTRIED)
		return false;
	if (jobs_root_path(root, sizeof(root)) || kg_cgroup_id_of_path(root, &root_id) ||
	    root_links_check(root_id, false) != (int)r.nroot)
		return false;
	l->pinned = calloc(1, sizeof(*l->pinned));
	if (!l->pinned)
		return false;
	if (pinned_map_fd(l->pinned, "kg_jobs") < 0) {
		free(l->pinned);
		l->pinned = NULL;
		return false;
	}
	l->root_governed = true;
	l->lsm_active = want_lsm && r.lsm == KG_READY_LSM_ACTIVE;
	r.why[sizeof(r.why) - 1] = '\0';
	snprintf(l->lsm_error, sizeof(l->lsm_error), "%s",
		 !want_lsm ? "not requested" : r.lsm == KG_READY_LSM_ACTIVE ? "" : r.why);
	kg_debug("loader: warm start, %u cgroup programs attached to %s", r.nroot, root);
	return true;
}

/* Attach every loaded cgroup program to the jobs' root cgroup (those not
 * attached there yet) and pin the links; then the marker. */
static void cold_start_done(struct kg_loader *l, bool want_lsm)
{
	LIBBPF_OPTS(bpf_map_create_opts, mo);
	char root[4096], path[4400], dir[4096];
	struct bpf_link_info info;
	struct bpf_program *p;
	struct kg_ready r = {};
	uint64_t root_id;
	int cg, i, n = 0, fd, err;
	__u32 zero = 0;

	if (jobs_root_path(root, sizeof(root)) || kg_mkdir_p(root, 0755) ||
	    kg_cgroup_id_of_path(root, &root_id) ||
	    pin_path(dir, sizeof(dir), "%s/root", kg_pin_dir()) || kg_mkdir_p(dir, 0700))
		return;
	cg = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0)
		return;
	for (i = 0; i < l->nobjs; i++) {
		bpf_object__for_each_program(p, l->objs[i]) {
			struct bpf_link *link;

			if (!is_cgroup_prog(p) || !bpf_program__autoload(p))
				continue;
			if (pin_path(path, sizeof(path), "%s/%s-%s-%s", dir, KG_OBJECTS_TAG,
				     bpf_object__name(l->objs[i]), bpf_program__name(p)))
				goto out;
			if (link_cgroup(path, &info) == (int64_t)root_id) {
				n++;
				continue;
			}
			unlink(path);	/* stale: another cgroup, or detached */
			link = bpf_program__attach_cgroup(p, cg);
			if (!link) {
				kg_warn("loader: attach %s to %s: %s", bpf_program__name(p), root,
					strerror(errno));
				goto out;
			}
			err = bpf_link__pin(link, path);
			bpf_link__destroy(link);	/* the pin holds it */
			if (err && !(err == -EEXIST &&
				     link_cgroup(path, &info) == (int64_t)root_id)) {
				kg_warn("loader: pin %s: %s", path, strerror(-err));
				goto out;
			}
			n++;
		}
	}
	/* this build's links are all there: older builds' go (the same maps) */
	if (!n || root_links_check(root_id, true) != n)
		goto out;
	l->root_governed = true;
	r.nroot = (__u32)n;
	r.lsm = !want_lsm ? KG_READY_LSM_UNTRIED : l->lsm_active ? KG_READY_LSM_ACTIVE :
		l->lsm_refused ? KG_READY_LSM_REFUSED : KG_READY_LSM_UNTRIED;
	kg_strlcpy(r.why, l->lsm_error, sizeof(r.why));
	if (ready_path(path, sizeof(path)))
		goto out;
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kg_ready", sizeof(__u32), sizeof(r), 1, &mo);
	if (fd < 0)
		goto out;
	if (!bpf_map_update_elem(fd, &zero, &r, BPF_ANY)) {
		unlink(path);
		bpf_obj_pin(fd, path);
	}
	close(fd);
out:
	close(cg);
}

/* A governed cgroup outside the jobs' root (kgate govern, benches) after a
 * warm start: the same programs, taken from the root links. */
static int attach_from_root_links(int cgroup_fd, const char *jobdir)
{
	char dir[4096], path[4400], out[4400], prefix[32];
	struct bpf_link_info info;
	struct dirent *de;
	int attached = 0, err = 0;
	DIR *d;

	d = root_links_open(dir, sizeof(dir), prefix, sizeof(prefix));
	if (!d && errno == ENAMETOOLONG)
		return -ENAMETOOLONG;
	if (!d)
		return kg_err("loader: no cgroup programs to attach (%s: %s)", dir,
			      strerror(errno)), -ENOENT;
	while (!err && (de = readdir(d))) {
		const char *prog;
		int pfd, lfd;

		if (strncmp(de->d_name, prefix, strlen(prefix)) ||
		    pin_path(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		/* <tag>-<obj>-<prog>: the job's pin is named <prog> as before */
		prog = strchr(de->d_name + strlen(prefix), '-');
		if (!prog || pin_path(out, sizeof(out), "%s/%s", jobdir, prog + 1)) {
			err = -ENAMETOOLONG;
			break;
		}
		if (link_cgroup(path, &info) <= 0) {
			err = -(errno ? errno : EIO);
			kg_err("loader: root link %s unreadable", path);
			break;
		}
		pfd = bpf_prog_get_fd_by_id(info.prog_id);
		if (pfd < 0) {
			err = -(errno ? errno : EIO);
			kg_err("loader: program of %s: %s", path, strerror(errno));
			break;
		}
		lfd = bpf_link_create(pfd, cgroup_fd, info.cgroup.attach_type, NULL);
		close(pfd);
		if (lfd < 0) {
			err = -(errno ? errno : EIO);
			kg_err("loader: attach %s: %s", prog + 1, strerror(errno));
			break;
		}
		if (bpf_obj_pin(lfd, out)) {
			err = -(errno ? errno : EIO);
			kg_err("loader: pin %s: %s", out, strerror(errno));
			close(lfd);
			break;
		}
		close(lfd);
		attached++;
	}
	closedir(d);
	if (err)
		return err;
	if (!attached) {
		kg_err("loader: no cgroup programs to attach");
		return -ENOENT;
	}
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
	err = ensure_bpffs(pin_dir);
	if (!err)
		err = ring_settle(l, opts ? opts->ring_bytes : 0);
	if (err)
		goto fail;
	l->lsm_active = opts && opts->want_lsm;
	if (warm_start(l, opts && opts->want_lsm))
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
			err = load_one(l, &kg_obj_table[i], pin_dir, l->lsm_active, vmlinux, pass);
			if (err)
				goto fail;
		}
	note_fs_support(l, vmlinux);
	btf__free(vmlinux);
	cold_start_done(l, opts && opts->want_lsm);
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
		return pinned_map_fd(l->pinned, name);
	for (i = 0; i < l->nobjs; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(l->objs[i], name);

		if (m && bpf_map__fd(m) >= 0)
			return bpf_map__fd(m);
	}
	return -ENOENT;
}

int kg_open_pinned_map(const char *name)
{
	char path[4096];
	int fd;

	if (pin_path(path, sizeof(path), "%s/%s", kg_pin_dir(), name))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

int kg_open_pinned_map_once(int *fd, const char *name)
{
	int r;

	if (*fd >= 0)
		return *fd;
	r = kg_open_pinned_map(name);
	*fd = r < 0 ? -1 : r;
	return r;
}

int kg_loader_attach_cgroup(struct kg_loader *l, int cgroup_fd, uint64_t cgid)
{
	char dir[4096], path[4200];
	struct bpf_program *p;
	int i, err, attached = 0;

	err = pin_path(dir, sizeof(dir), "%s/jobs/%llu", kg_pin_dir(), (unsigned long long)cgid);
	if (!err)
		err = kg_mkdir_p(dir, 0700);
	if (err)
		return kg_err("loader: cannot create %s/jobs/%llu: %s", kg_pin_dir(),
			      (unsigned long long)cgid, strerror(-err)), err;
	if (!l->nobjs)	/* warm start: the programs are those of the root links */
		return attach_from_root_links(cgroup_fd, dir);
	for (i = 0; i < l->nobjs; i++) {
		bpf_object__for_each_program(p, l->objs[i]) {
			struct bpf_link *link;

			if (!is_cgroup_prog(p) || !bpf_program__autoload(p))
				continue;
			err = pin_path(path, sizeof(path), "%s/%s", dir, bpf_program__name(p));
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

static int remove_dir_entries(const char *dir)
{
	struct dirent *de;
	char path[4400];
	DIR *d;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (pin_path(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			remove_dir_entries(path);
			rmdir(path);
		} else {
			unlink(path);
		}
	}
	closedir(d);
	return 0;
}

int kg_loader_detach_cgroup(uint64_t cgid)
{
	char dir[4096];

	if (pin_path(dir, sizeof(dir), "%s/jobs/%llu", kg_pin_dir(), (unsigned long long)cgid))
		return -ENAMETOOLONG;
	remove_dir_entries(dir);
	if (rmdir(dir) && errno != ENOENT)
		return -errno;
	return 0;
}

int kg_loader_unpin_all(void)
{
	return remove_dir_entries(kg_pin_dir());
}
