/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ship_fixture.h - shared by the tests of shipping the trail (test_follow,
 * test_export, test_otlp): a trail in a mkdtemp directory written through
 * the real writer, the kgate binary run as a child, files read back.
 * Include after testlib.h.
 */
#ifndef KGATE_SHIP_FIXTURE_H
#define KGATE_SHIP_FIXTURE_H

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "record/audit.h"
#include "common.h"

static char sf_dir[256];	/* the test's directory */
static char sf_trail[300];	/* the trail: sf_dir/trail */

static int sf_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static inline void sf_setup(void)
{
	snprintf(sf_dir, sizeof(sf_dir), "/tmp/kgate-ship-test.XXXXXX");
	if (!mkdtemp(sf_dir))
		SKIP("mkdtemp failed");
	snprintf(sf_trail, sizeof(sf_trail), "%s/trail", sf_dir);
	mkdir(sf_trail, 0700);
	setenv("KGATE_AUDIT_DIR", sf_trail, 1);
}

static inline void sf_teardown(void)
{
	nftw(sf_dir, sf_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline const char *sf_kgate(void)
{
	const char *b = getenv("KGATE_BIN");

	return b ? b : "build-san/kgate";
}

static inline struct kg_audit *sf_open(uint64_t rotate_bytes)
{
	struct kg_audit_opts o = { .sync = KG_AUDIT_SYNC_NONE, .rotate_bytes = rotate_bytes };
	struct kg_audit *a = kg_audit_open(sf_trail, &o);

	if (!a)
		SKIP("cannot open a trail in %s: %s", sf_trail, strerror(errno));
	return a;
}

/* one decision record, numbered i (in the target) */
static inline int sf_append(struct kg_audit *a, unsigned long i)
{
	char target[64];
	struct kg_audit_rec r = {
		.type = "decision", .trace_id = "job-ship", .actor_uid = 1000,
		.actor_name = "alice", .actor_role = "operator", .pid = 4242, .tid = 4242,
		.comm = "python3", .op = "read", .target = target, .decision = "deny",
		.rule_id = "no-secrets", .reason = "protected path", .policy_name = "default",
		.policy_hash = "9f2c00aa", .policy_version = 3, .mechanism = "bpf-lsm",
	};

	snprintf(target, sizeof(target), "/home/alice/secret-%lu", i);
	return kg_audit_append(a, &r);
}

static inline int sf_count_closed(void)
{
	char **paths = NULL;
	int n = 0, i, closed = 0;

	if (kg_audit_list_segments(sf_trail, &paths, &n))
		return 0;
	for (i = 0; i < n; i++)
		if (strstr(paths[i], "/audit-"))
			closed++;
	kg_audit_free_list(paths, n);
	return closed;
}

static inline int sf_count_gz(void)
{
	char **paths = NULL;
	int n = 0, i, gz = 0;

	if (kg_audit_list_segments(sf_trail, &paths, &n))
		return 0;
	for (i = 0; i < n; i++)
		if (strstr(paths[i], ".jsonl.gz"))
			gz++;
	kg_audit_free_list(paths, n);
	return gz;
}

/* Starts argv with stdout -> out, stderr -> err (paths); returns the pid. */
static inline pid_t sf_spawn(char *const argv[], const char *out, const char *err)
{
	pid_t pid = fork();

	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	return pid;
}

static inline int sf_wait(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs argv to completion: exit code; out/err files as in sf_spawn. */
static inline int sf_run(char *const argv[], const char *out, const char *err)
{
	char *cmd = kg_join_argv(argv);
	int rc;

	rc = sf_wait(sf_spawn(argv, out, err));
	printf("  $ %s -> %d\n", cmd ? cmd : argv[0], rc);
	free(cmd);
	return rc;
}

/* A file's content (malloc'd, NUL-terminated; "" when absent). */
static inline char *sf_read(const char *path)
{
	size_t len;
	char *s = kg_read_file(path, 256u << 20, &len);

	return s ? s : strdup("");
}

static inline int sf_count_lines(const char *path)
{
	char *s = sf_read(path), *p;
	int n = 0;

	for (p = s; *p; p++)
		n += *p == '\n';
	free(s);
	return n;
}

static inline void sf_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", sf_dir, name);
}

static inline uint64_t sf_now_ms(void)
{
	return kg_now_mono_ns() / 1000000;
}

#endif
