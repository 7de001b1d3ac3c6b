/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * vt_bb.h - the harness of the black-box VM tests (vt_run, vt_controller,
 * vt_decisions): they drive the real `kgate` binary ($KGATE_BIN) and judge
 * it only by what a user sees: exit statuses, output, the audit trail.
 * Include after testlib.h.
 *
 *   bb_setup(true);                  // SKIPs outside the "full" VM config
 *   bb_policy("p.json", json, path, sizeof(path));
 *   rc = BB_KGATE("run.out", "run", "--policy", path, "--", agent, "x=read:...");
 *   trace = bb_trace("run.out");
 *   recs = bb_audit(trace);          // every record of that job (jansson)
 *   ASSERT_GE(bb_count(recs, "decision", "read", "deny", "rule", "bpf-lsm"), 1, ..);
 *   bb_teardown();
 *
 * Each test gets one mkdtemp directory holding a private bpffs mount (the
 * pin dir, KGATE_BPFFS), the audit trail (KGATE_AUDIT_DIR), the state dir
 * (KGATE_STATE_DIR), a "home" that `~` of the policies expands to (HOME),
 * policy files and captured outputs.  Teardown unpins everything (the
 * programs detach), unmounts and removes the directory.  What every suite
 * shares (files, helpers, the private bpffs) is testenv.h's.
 */
#ifndef KGATE_VT_BB_H
#define KGATE_VT_BB_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "kernel/loader.h"
#include "testenv.h"

static struct {
	char dir[64];		/* mkdtemp */
	char home[128];
	char bpffs[128];
	char pin[160];
	bool mounted;
	long long start_ms;
} bb;

/* the shared pieces (testenv.h) under the names these tests use */
static inline const char *bb_config(void) { return kt_vm_config(); }
static inline bool bb_full(void) { return kt_vm_full(); }
static inline const char *bb_kgate(void) { return kt_kgate_bin(); }
static inline const char *bb_helper(const char *name) { return kt_helper(name); }
static inline void bb_sleep_ms(long ms) { kt_sleep_ms(ms); }
static inline long long bb_now_ms(void) { return kt_now_ms(); }

/* A path in the test directory (i = which of 8 rotating buffers). */
static inline const char *bb_path(const char *name)
{
	static char buf[8][512];
	static int n;
	char *b = buf[n++ % 8];

	snprintf(b, sizeof(buf[0]), "%s/%s", bb.dir, name);
	return b;
}

/* A path under the test's home ("~/rel"). */
static inline const char *bb_home(const char *rel)
{
	static char buf[8][512];
	static int n;
	char *b = buf[n++ % 8];

	snprintf(b, sizeof(buf[0]), "%s/%s", bb.home, rel);
	return b;
}

/* want_full: SKIP unless the guest booted with BPF LSM; otherwise any VM
 * configuration will do.  Outside the VM suite everything SKIPs. */
static inline void bb_setup(bool want_full)
{
	if (!bb_config()[0])
		SKIP("not in the VM suite (KGATE_VM_CONFIG unset)");
	if (want_full && !bb_full())
		SKIP("needs the VM with BPF LSM (KGATE_VM_CONFIG=full), have %s", bb_config());
	if (geteuid() != 0)
		SKIP("needs root");
	bb.start_ms = bb_now_ms();
	snprintf(bb.dir, sizeof(bb.dir), "/tmp/kgbb.XXXXXX");
	if (!mkdtemp(bb.dir))
		SKIP("mkdtemp: %s", strerror(errno));
	chmod(bb.dir, 0755);
	snprintf(bb.home, sizeof(bb.home), "%s/home", bb.dir);
	snprintf(bb.bpffs, sizeof(bb.bpffs), "%s/bpf", bb.dir);
	if (mkdir(bb.home, 0755) || mkdir(bb.bpffs, 0700))
		SKIP("mkdir in %s: %s", bb.dir, strerror(errno));
	/* a private bpffs: this test's pins, maps and counters are its own */
	if (kt_bpffs_mount(bb.bpffs, bb.pin, sizeof(bb.pin)))
		SKIP("private bpffs: %s", strerror(errno));
	bb.mounted = true;
	setenv("KGATE_AUDIT_DIR", bb_path("audit"), 1);
	setenv("KGATE_STATE_DIR", bb_path("state"), 1);
	setenv("HOME", bb.home, 1);
}

static inline void bb_teardown(void)
{
	if (!bb.dir[0])
		return;
	if (bb.mounted)
		kt_bpffs_unmount(bb.bpffs, bb.pin);	/* links go: the programs detach */
	else
		kg_loader_unpin_all();
	bb.mounted = false;
	kt_rm_tree(bb.dir);
	bb.dir[0] = '\0';
	printf("  (%lld ms)\n", bb_now_ms() - bb.start_ms);
}

static inline int bb_write(const char *path, const char *text, mode_t mode)
{
	return kt_write_file(path, text, mode);
}

static inline int bb_copy(const char *from, const char *to, mode_t mode)
{
	return kt_copy_file(from, to, mode);
}

/* The policy file: written into the test directory, its path in out. */
static inline void bb_policy(const char *name, const char *json, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", bb.dir, name);
	if (bb_write(out, json, 0644))
		SKIP("cannot write %s", out);
}

static inline char *bb_slurp(const char *name)
{
	char *s = kg_read_file(bb_path(name), 1 << 24, NULL);

	return s ? s : strdup("");
}

/* Start argv in the background, stdout+stderr into OUT (in the test
 * directory), in its own process group. */
static inline pid_t bb_spawn(const char *out, char *const argv[])
{
	const char *outpath = bb_path(out);
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0)
			_exit(125);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execv(argv[0], argv);
		_exit(126);
	}
	return pid;
}

/* Exit status as a shell reports it (128+N for a signal); -1 on error. */
static inline int bb_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Print a captured output indented (the serial log is the only witness). */
static inline void bb_show(const char *what, const char *out)
{
	const char *p = out, *nl;

	printf("  --- %s\n", what);
	while (p && *p) {
		nl = strchr(p, '\n');
		printf("  | %.*s\n", (int)(nl ? nl - p : (long)strlen(p)), p);
		if (!nl)
			break;
		p = nl + 1;
	}
}

/* Run argv to completion, output into OUT; its exit status. */
static inline int bb_run(const char *out, char *const argv[])
{
	int rc = bb_wait(bb_spawn(out, argv));
	char *text = bb_slurp(out);
	char what[256];

	snprintf(what, sizeof(what), "%s %s -> %d", argv[0], argv[1] ? argv[1] : "", rc);
	bb_show(what, text);
	free(text);
	return rc;
}

/* BB_KGATE("out.txt", "run", "--policy", p, "--", cmd, ...) */
#define BB_KGATE(out, ...) ({							\
		char *___argv[] = { (char *)bb_kgate(), __VA_ARGS__, NULL };	\
		bb_run(out, ___argv); })

/* The trace id `kgate run` printed ("kgate: job job-... started"), "" if none. */
static inline const char *bb_trace(const char *out)
{
	static char trace[64];
	char *text = bb_slurp(out), *p = strstr(text, "kgate: job job-");

	trace[0] = '\0';
	if (p)
		sscanf(p + strlen("kgate: job "), "%63[a-z0-9-]", trace);
	free(text);
	return trace;
}

/* The value N printed as "LABEL ...KEY=N" by vt_agent (or a shell script's
 * "LABEL=N" when key is NULL); -9999 when absent. */
static inline long bb_result(const char *out, const char *label, const char *key)
{
	char *text = bb_slurp(out), needle[128], *p = text;
	long v = -9999;

	snprintf(needle, sizeof(needle), key ? "%s " : "%s=", label);
	while ((p = strstr(p, needle))) {
		if (p == text || p[-1] == '\n') {
			char *line_end = strchr(p, '\n'), *k;

			if (!key) {
				v = strtol(p + strlen(needle), NULL, 10);
				break;
			}
			snprintf(needle, sizeof(needle), " %s=", key);
			k = strstr(p, needle);
			if (k && (!line_end || k < line_end))
				v = strtol(k + strlen(needle), NULL, 10);
			break;
		}
		p++;
	}
	free(text);
	return v;
}

static inline bool bb_refused(long err)
{
	return err == EPERM || err == EACCES;
}

/* Every audit record of a trace (or all when trace is NULL/""), from
 * `kgate audit query --json`, as a JSON array. */
static inline json_t *bb_audit_query(const char *trace, const char *type)
{
	char *argv[8] = { (char *)bb_kgate(), "audit", "query", "--json" };
	int n = 4, st;
	json_t *arr = json_array();
	char *text, *line, *save = NULL;
	pid_t pid;

	if (trace && trace[0]) {
		argv[n++] = "--trace";
		argv[n++] = (char *)trace;
	}
	if (type) {
		argv[n++] = "--type";
		argv[n++] = (char *)type;
	}
	argv[n] = NULL;
	pid = bb_spawn("audit.json", argv);
	st = bb_wait(pid);
	if (st != 0)
		printf("  kgate audit query exited %d\n", st);
	text = bb_slurp("audit.json");
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *rec = json_loads(line, 0, NULL);

		if (rec)
			json_array_append_new(arr, rec);
	}
	free(text);
	return arr;
}

static inline json_t *bb_audit(const char *trace)
{
	return bb_audit_query(trace, NULL);
}

static inline bool bb_field_is(json_t *rec, const char *key, const char *want)
{
	const char *v;

	if (!want)
		return true;
	v = json_string_value(json_object_get(rec, key));
	return v && !strcmp(v, want);
}

/* Records with these members (NULL = any); target_sub: a substring of
 * target.  A decision record counts as the decisions it stands for
 * (extra.count: identical ones folded into it, bpf/kgate.h kg_fold), any
 * other record as one. */
static inline int bb_count_target(json_t *recs, const char *type, const char *op,
				  const char *decision, const char *rule, const char *mechanism,
				  const char *target_sub)
{
	size_t i;
	json_t *r;
	int n = 0;

	json_array_foreach(recs, i, r) {
		const char *t = json_string_value(json_object_get(r, "target"));
		json_t *c = json_object_get(json_object_get(r, "extra"), "count");

		if (bb_field_is(r, "type", type) && bb_field_is(r, "op", op) &&
		    bb_field_is(r, "decision", decision) && bb_field_is(r, "rule", rule) &&
		    bb_field_is(r, "mechanism", mechanism) &&
		    (!target_sub || (t && strstr(t, target_sub))))
			n += bb_field_is(r, "type", "decision") && json_integer_value(c) > 0
				     ? (int)json_integer_value(c) : 1;
	}
	return n;
}

static inline int bb_count(json_t *recs, const char *type, const char *op, const char *decision,
			   const char *rule, const char *mechanism)
{
	return bb_count_target(recs, type, op, decision, rule, mechanism, NULL);
}

/* Sum of extra.count of matching decision records (throttle refusals are
 * reported aggregated, once a second). */
static inline long bb_sum_count(json_t *recs, const char *op, const char *decision,
				const char *rule)
{
	size_t i;
	json_t *r;
	long n = 0;

	json_array_foreach(recs, i, r) {
		json_t *c = json_object_get(json_object_get(r, "extra"), "count");

		if (bb_field_is(r, "type", "decision") && bb_field_is(r, "op", op) &&
		    bb_field_is(r, "decision", decision) && bb_field_is(r, "rule", rule))
			n += c ? (long)json_integer_value(c) : 1;
	}
	return n;
}

static inline void bb_dump(json_t *recs)
{
	size_t i;
	json_t *r;

	json_array_foreach(recs, i, r) {
		printf("  rec %zu: type=%s op=%s decision=%s rule=%s mech=%s target=%s\n", i,
		       json_string_value(json_object_get(r, "type")),
		       json_string_value(json_object_get(r, "op")),
		       json_string_value(json_object_get(r, "decision")),
		       json_string_value(json_object_get(r, "rule")),
		       json_string_value(json_object_get(r, "mechanism")),
		       json_string_value(json_object_get(r, "target")));
	}
}

/* The longest a wait for a job's first output may take: it includes a cold
 * load of every BPF object when the test's pin dir is fresh, which took
 * 19 s on Debian 6.1 under TCG and more on 6.12 or on a busy host.  An
 * upper bound, never a measurement: a test waits less when all is well. */
#define BB_START_MS 120000

/* Wait until the file OUT contains needle (ms budget); true if it did. */
static inline bool wait_for_output(const char *out, const char *needle, long ms)
{
	long long end = bb_now_ms() + ms;

	for (;;) {
		char *text = bb_slurp(out);
		bool found = text && strstr(text, needle) != NULL;

		free(text);
		if (found)
			return true;
		if (bb_now_ms() >= end)
			return false;
		bb_sleep_ms(100);
	}
}

#endif
