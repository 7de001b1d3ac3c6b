/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * testenv.h - the set-up every suite shares: host tests (tests/), the VM
 * tests (vmtests/ through vt_lib.h and vt_bb.h) and the benchmarks
 * (bench/bench.h).  Independent of testlib.h (the benchmarks have no test
 * runner): every function reports failure by its return value, a test
 * turns it into SKIP or a failed assertion.
 *
 *   kt_vm_config() kt_vm_full()     which VM boot this is ("" outside the VM)
 *   kt_kgate_bin() kt_helper(name)  $KGATE_BIN, $KGATE_TEST_HELPERS/name
 *   kt_now_ms() kt_sleep_ms(ms)     monotonic milliseconds
 *   kt_write_file() kt_copy_file()  small files of a test's tree
 *   kt_rm_tree(dir)                 remove a test's tree (not across mounts)
 *   kt_bpffs_mount() _unmount()     a private bpffs as the pin dir (KGATE_BPFFS)
 *   kt_state_tree(name, ...)        a test's own audit/state/data dirs and pin dir
 */
#ifndef KGATE_TESTENV_H
#define KGATE_TESTENV_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernel/loader.h"

/* where the binaries are when $KGATE_BIN / $KGATE_TEST_HELPERS are not set
 * (a test binary run by hand): host tests say "build-san" */
#ifndef KT_BUILD_DIR
#define KT_BUILD_DIR "build"
#endif

/* KGATE_VM_CONFIG of the VM suite ("full", "nobpf"), "" outside it. */
static inline const char *kt_vm_config(void)
{
	const char *cfg = getenv("KGATE_VM_CONFIG");

	return cfg ? cfg : "";
}

/* The VM booted with BPF LSM. */
static inline bool kt_vm_full(void)
{
	return !strcmp(kt_vm_config(), "full");
}

/* The kgate binary under test ($KGATE_BIN; tests/run.sh and the VM's init
 * set it), else the build's. */
static inline const char *kt_kgate_bin(void)
{
	const char *b = getenv("KGATE_BIN");

	return b ? b : KT_BUILD_DIR "/kgate";
}

/* A helper program of tests/helpers (8 rotating buffers). */
static inline const char *kt_helper(const char *name)
{
	static char buf[8][512];
	static int n;
	const char *dir = getenv("KGATE_TEST_HELPERS");
	char *b = buf[n++ % 8];

	snprintf(b, sizeof(buf[0]), "%s/%s", dir ? dir : KT_BUILD_DIR "/tests/helpers", name);
	return b;
}

static inline long long kt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void kt_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Write text as the whole of path (created with mode).  0 or -1. */
static inline int kt_write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Copy a file (helpers into a test's tree).  0 or -1. */
static inline int kt_copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	int in, out, ok = 0;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n) {
			ok = -1;
			break;
		}
	if (n < 0)
		ok = -1;
	close(in);
	close(out);
	return ok;
}

static inline int kt_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);	/* on: as much as can go goes */
	return 0;
}

/* Remove dir and everything below it, staying on its file system (a
 * mount a test left inside is not descended into).  0 when dir is gone,
 * else -1. */
static inline int kt_rm_tree(const char *dir)
{
	nftw(dir, kt_rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return access(dir, F_OK) == 0 ? -1 : 0;
}

/* A private bpffs: dir (a mkdtemp template, e.g. "/tmp/kgvt-bpf.XXXXXX",
 * or an existing empty directory when it has no XXXXXX) gets a bpf mount,
 * and KGATE_BPFFS points at <dir>/kgate, so that the pins, maps and
 * counters of the test are its own.  pin gets that path.  0 or -errno. */
static inline int kt_bpffs_mount(char *dir, char *pin, size_t pinlen)
{
	size_t len = strlen(dir);

	if (len >= 6 && !strcmp(dir + len - 6, "XXXXXX") && !mkdtemp(dir))
		return -errno;
	if (mount("bpf", dir, "bpf", 0, "mode=0700"))
		return -errno;
	snprintf(pin, pinlen, "%s/kgate", dir);
	setenv("KGATE_BPFFS", pin, 1);
	return 0;
}

/* Unpin everything (the links go: the programs detach), then unmount. */
static inline void kt_bpffs_unmount(const char *dir, const char *pin)
{
	kg_loader_unpin_all();
	rmdir(pin);
	umount2(dir, MNT_DETACH);
}

/* A test's own kgate: dir (size dirlen) gets a new directory
 * /tmp/kgate-test-<name>.XXXXXX, mode 0755 (jobs that run as another user
 * must traverse it), whose audit/, state/ and data/ become KGATE_AUDIT_DIR,
 * KGATE_STATE_DIR and KGATE_DATA_DIR; with_work also makes work/ (what jobs
 * write goes there: kgate's own directories are refused to jobs, and so is
 * creating entries next to them in degraded mode).  pin (size pinlen) gets
 * /sys/fs/bpf/kgate-test-<name>-<pid>, set as KGATE_BPFFS.  0 or -errno. */
static inline int kt_state_tree(const char *name, bool with_work, char *dir, size_t dirlen,
				char *pin, size_t pinlen)
{
	static const char *const vars[][2] = {
		{ "KGATE_AUDIT_DIR", "audit" },
		{ "KGATE_STATE_DIR", "state" },
		{ "KGATE_DATA_DIR", "data" },
	};
	char path[512];
	size_t i;

	if ((size_t)snprintf(dir, dirlen, "/tmp/kgate-test-%s.XXXXXX", name) >= dirlen)
		return -ENAMETOOLONG;
	if (!mkdtemp(dir))
		return -errno;
	if (chmod(dir, 0755))
		return -errno;
	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, vars[i][1]);
		setenv(vars[i][0], path, 1);
	}
	snprintf(path, sizeof(path), "%s/work", dir);
	if (with_work && mkdir(path, 0755))
		return -errno;
	snprintf(pin, pinlen, "/sys/fs/bpf/kgate-test-%s-%d", name, (int)getpid());
	setenv("KGATE_BPFFS", pin, 1);
	return 0;
}

#endif
