// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_loader.c - loader.c on this host (degraded or full, whichever the
 * kernel gives): the objects load into a private pin dir, the shared maps
 * are found by name, cgroup programs attach to a real cgroup and their
 * links are pinned and removed; every failure is a negative errno (never a
 * bare -1) that names what went wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "cgroup.h"
#include "common.h"
#include "loader.h"
#include "testlib.h"

static char pindir[256];

static struct kg_loader *open_private(void)
{
	struct kg_loader_opts lo = { .want_lsm = true };

	if (getuid() != 0)
		SKIP("needs root (BPF)");
	snprintf(pindir, sizeof(pindir), "/sys/fs/bpf/kgate-test-loader-%d", getpid());
	setenv("KGATE_BPFFS", pindir, 1);
	return kg_loader_open(&lo);
}

static void close_private(struct kg_loader *l)
{
	kg_loader_close(l);
	kg_loader_unpin_all();
	rmdir(pindir);
}

TEST(maps_found_by_name_unknown_is_enoent)
{
	struct kg_loader *l = open_private();
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char path[512];
	int fd;

	if (!ASSERT_TRUE(l != NULL, "objects load into a private pin dir"))
		return;
	fd = kg_loader_map_fd(l, "kg_jobs");
	ASSERT_GE(fd, 0, "kg_jobs");
	if (fd >= 0 && ASSERT_OK(bpf_obj_get_info_by_fd(fd, &info, &len), "info"))
		ASSERT_STREQ(info.name, "kg_jobs", "the fd is that map");
	ASSERT_EQ(kg_loader_map_fd(l, "kg_no_such_map"), -ENOENT, "unknown map: -ENOENT");
	/* the maps are pinned where the pin dir says, and open from the pin */
	snprintf(path, sizeof(path), "%s/kg_jobs", pindir);
	ASSERT_OK(access(path, F_OK), "kg_jobs pinned under the pin dir");
	fd = kg_open_pinned_map("kg_jobs");
	ASSERT_GE(fd, 0, "opened from its pin");
	if (fd >= 0)
		close(fd);
	ASSERT_EQ(kg_open_pinned_map("kg_no_such_map"), -ENOENT, "no pin: -ENOENT");
	close_private(l);
}

TEST(attach_pins_links_detach_removes_them)
{
	struct kg_loader *l = open_private();
	struct kg_cgroup cg = {};
	char name[64], dir[512];
	struct stat st;

	if (!ASSERT_TRUE(l != NULL, "loader"))
		return;
	snprintf(name, sizeof(name), "kgate-test-loader-%d", getpid());
	if (kg_cgroup_create_job("kgate-test", name, &cg)) {
		close_private(l);
		SKIP("cannot create a cgroup here");
	}
	ASSERT_OK(kg_loader_attach_cgroup(l, cg.fd, cg.id), "attach to a real cgroup");
	snprintf(dir, sizeof(dir), "%s/jobs/%llu", pindir, (unsigned long long)cg.id);
	ASSERT_TRUE(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "the job's link dir");
	ASSERT_OK(kg_loader_detach_cgroup(cg.id), "detach");
	ASSERT_TRUE(stat(dir, &st) != 0 && errno == ENOENT, "links gone");
	ASSERT_OK(kg_loader_detach_cgroup(cg.id), "detach again: nothing to do");
	/* a bad cgroup fd: the kernel's errno, not -1 */
	ASSERT_EQ(kg_loader_attach_cgroup(l, -1, 424242), -EBADF, "bad fd: -EBADF");
	kg_loader_detach_cgroup(424242);
	kg_cgroup_destroy(&cg);
	close_private(l);
}

TEST(pin_dir_not_on_bpffs_fails_with_errno)
{
	struct kg_loader_opts lo = { .want_lsm = false };
	char tmpl[] = "/tmp/kgate-test-loader.XXXXXX", pin[600];
	struct kg_loader *l;

	if (getuid() != 0)
		SKIP("needs root (BPF)");
	if (!ASSERT_TRUE(mkdtemp(tmpl) != NULL, "mkdtemp"))
		return;
	snprintf(pin, sizeof(pin), "%s/pins", tmpl);
	setenv("KGATE_BPFFS", pin, 1);
	errno = 0;
	l = kg_loader_open(&lo);
	ASSERT_TRUE(l == NULL, "refused");
	ASSERT_EQ(errno, ENOTSUP, "errno says why (not on a bpf filesystem)");
	kg_loader_close(l);
	rmdir(pin);
	rmdir(tmpl);
}
