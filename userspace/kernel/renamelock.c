// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kernel/renamelock.c - rename_lock's address for the objects that walk
 * paths (kernel/loader_int.h; bpf/walk.bpf.h: kg_rename_lock_addr): read
 * from /proc/kallsyms once, written into the object's .rodata before it
 * loads.  Without it the walk's decision cache is off.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <linux/types.h>
#include "kernel/loader_int.h"

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
void kgl_set_rename_lock(struct bpf_object *obj)
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

bool kgl_obj_walks(struct bpf_object *obj)
{
	struct bpf_map *m;
	__u32 off;

	return !rodata_var(obj, KG_RENAME_LOCK_VAR, &m, &off);
}
