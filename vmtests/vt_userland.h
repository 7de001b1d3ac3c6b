/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * vt_userland.h - run the host's real tools (cc, make, git, python3, tar,
 * grep, curl...) inside the VM guest, through kg-userland (see
 * vmtests/README.md, "The userland").  Include after testlib.h.
 *
 *   vt_ul_require();                        // SKIP outside the VM suite,
 *                                           // FAIL if the guest has no userland
 *   rc = vt_ul_sh("/home/x/out.txt", "cc -o hello hello.c && ./hello");
 *   char *argv[] = { "git", "init", NULL };
 *   rc = vt_ul_run("/home/x/git.txt", argv);
 *
 *   vt_ul_make_home(home);                  // /home/kgday.XXXXXX, HOME, cwd
 *   char *day[] = { "/bin/sh", (char *)vt_ul_day_script(), NULL };
 *   rc = vt_ul_run(out, day);               // vmtests/data/agent-day.sh
 *   vt_ul_step_rc(text, "cc_make") == 0;    // its "STEP cc_make rc=0" line
 *
 * Commands run as the caller (root), in the caller's working directory
 * (which must be under /tmp, /root, /home, /run or /opt/kgate: the trees the
 * userland shares with the guest), with the caller's environment except
 * PATH.  stdout and stderr go to the output file; the return value is the
 * exit status as a shell reports it (128+N for a signal), 125 when the
 * userland is missing, -1 when the command could not be started.
 */
#ifndef KGATE_VT_USERLAND_H
#define KGATE_VT_USERLAND_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testenv.h"

#define VT_UL_WRAPPER "/opt/kgate/kg-userland"

/* SKIP outside the VM suite; inside it the userland is part of the harness,
 * so its absence is a failure (with the guest's reason), never a skip. */
static inline void vt_ul_require(void)
{
	const char *why = getenv("KGATE_VM_USERLAND_ERROR");

	if (!getenv("KGATE_VM_CONFIG"))
		SKIP("not in the VM suite (KGATE_VM_CONFIG unset)");
	if (geteuid() != 0)
		SKIP("needs root");
	if (!getenv("KGATE_VM_USERLAND") || access(VT_UL_WRAPPER, X_OK)) {
		kt_fail(__FILE__, __LINE__, "the guest has no userland: %s",
			why ? why : "KGATE_VM_USERLAND unset");
		_exit(1);
	}
}

/* argv (argv[0] looked up in the userland's PATH) inside the userland,
 * stdout+stderr into outpath (created or truncated, 0644). */
static inline int vt_ul_run(const char *outpath, char *const argv[])
{
	char *full[64];
	int i, st;
	pid_t pid;

	full[0] = (char *)VT_UL_WRAPPER;
	for (i = 0; argv[i] && i < 62; i++)
		full[i + 1] = argv[i];
	full[i + 1] = NULL;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0)
			_exit(125);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(full[0], full);
		_exit(125);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A /bin/sh script (the host's sh) inside the userland. */
static inline int vt_ul_sh(const char *outpath, const char *script)
{
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };

	return vt_ul_run(outpath, argv);
}

/* ---- an agent's day (vmtests/data/agent-day.sh) ------------------------- */

/* The steps of agent-day.sh that every policy meant for agents allows. */
static const char *const vt_ul_ordinary_steps[] = {
	"tmpfile", "cc_make", "git_config", "git_commit", "git_clone", "python",
	"venv", "cache_dir", "tar", "grep_r", "http",
};
#define VT_UL_N_ORDINARY (sizeof(vt_ul_ordinary_steps) / sizeof(vt_ul_ordinary_steps[0]))

static inline const char *vt_ul_day_script(void)
{
	static char buf[512];
	const char *src = getenv("KGATE_SRC");

	snprintf(buf, sizeof(buf), "%s/vmtests/data/agent-day.sh", src ? src : ".");
	return buf;
}

/* "STEP name rc=N" in the day's output: N, or -1 when the step did not
 * report. */
static inline int vt_ul_step_rc(const char *text, const char *name)
{
	char needle[96];
	const char *p;

	snprintf(needle, sizeof(needle), "STEP %s rc=", name);
	p = text ? strstr(text, needle) : NULL;
	return p ? atoi(p + strlen(needle)) : -1;
}

/* Does one of the step's output lines ("  name| ...") contain sub? */
static inline bool vt_ul_step_says(const char *text, const char *name, const char *sub)
{
	char prefix[96], line[1024];
	const char *p = text;

	snprintf(prefix, sizeof(prefix), "  %s| ", name);
	while (p && (p = strstr(p, prefix))) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
		if (strstr(line, sub))
			return true;
		p += len;
	}
	return false;
}

static inline int vt_ul_put(const char *dir, const char *rel, const char *text, mode_t mode)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return kt_write_file(p, text, mode);
}

static inline int vt_ul_mkdir(const char *dir, const char *rel, mode_t mode)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return mkdir(p, mode);
}

/* A user's home for the day under /home (mkdtemp into home, 64 bytes):
 * ~/workspace, a fake key ~/.ssh/id_ed25519 ("FAKE-PRIVATE-KEY") and a
 * reference repository ~/src/README ("the reference repository"); sets
 * HOME and makes ~/workspace the working directory.  0 or -1. */
static inline int vt_ul_make_home(char home[64])
{
	char p[512];

	snprintf(home, 64, "/home/kgday.XXXXXX");
	if (!mkdtemp(home)) {
		home[0] = '\0';
		return -1;
	}
	snprintf(p, sizeof(p), "%s/workspace", home);
	if (chmod(home, 0755) || vt_ul_mkdir(home, ".ssh", 0700) ||
	    vt_ul_put(home, ".ssh/id_ed25519", "FAKE-PRIVATE-KEY\n", 0600) ||
	    vt_ul_mkdir(home, "src", 0755) ||
	    vt_ul_put(home, "src/README", "the reference repository\n", 0644) ||
	    vt_ul_mkdir(home, "workspace", 0755) || chdir(p))
		return -1;
	setenv("HOME", home, 1);
	return 0;
}

/* Remove a tree the test made (never crosses into mounts). */
static inline void vt_ul_rm_tree(const char *dir)
{
	if (dir && dir[0])
		kt_rm_tree(dir);
}

#endif
