// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kernel/pins.c - where the loader's pins live (kernel/loader_int.h): bpffs
 * under the pin dir, pin paths, shared maps opened from their pins (by
 * tools, and by a warm start), a job's links and every pin removed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common.h"
#include "kernel/loader_int.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

static bool on_bpffs(const char *dir)
{
	struct statfs st;

	return statfs(dir, &st) == 0 && (unsigned long)st.f_type == BPF_FS_MAGIC;
}

/* bpffs must be mounted at (or above) the pin dir; many systems do not
 * mount it at boot, so mount the conventional /sys/fs/bpf when needed. */
int kgl_ensure_bpffs(const char *pin_dir)
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

int kgl_pin_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int kgl_pinned_map_fd(struct kg_pinned_maps *pm, const char *name)
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

int kg_open_pinned_map(const char *name)
{
	char path[4096];
	int fd;

	if (kgl_pin_path(path, sizeof(path), "%s/%s", kg_pin_dir(), name))
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
		if (kgl_pin_path(path, sizeof(path), "%s/%s", dir, de->d_name))
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

	if (kgl_pin_path(dir, sizeof(dir), "%s/jobs/%llu", kg_pin_dir(), (unsigned long long)cgid))
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
