// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* lsmstate.c - is "bpf" among the kernel's active LSMs? (see lsmstate.h) */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "kernel/lsmstate.h"

static int read_lsm_list(const char *path, char *buf, size_t len)
{
	size_t n = 0;
	char *data = kg_read_file(path, 4096, &n);

	if (!data)
		return -errno;
	while (n && (data[n - 1] == '\n' || data[n - 1] == ' '))
		data[--n] = '\0';
	n = kg_strlcpy(buf, data, len) ? -ENAMETOOLONG : 0;
	free(data);
	return (int)n;
}

/* securityfs is not mounted: mount it in a private mount namespace of a
 * child (so the machine's mounts are untouched) and pass the list back. */
static int read_lsm_list_private(char *buf, size_t len)
{
	char dir[] = "/tmp/kgate-sec.XXXXXX";
	int pfd[2], status = 0;
	ssize_t n;
	pid_t pid;

	if (!mkdtemp(dir))
		return -errno;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rmdir(dir);
		return -errno;
	}
	pid = fork();
	if (pid == 0) {
		char path[64], list[512] = "";

		close(pfd[0]);
		if (unshare(CLONE_NEWNS) == 0 &&
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
		    mount("securityfs", dir, "securityfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
			snprintf(path, sizeof(path), "%s/lsm", dir);
			if (read_lsm_list(path, list, sizeof(list)) == 0 &&
			    write(pfd[1], list, strlen(list)) < 0)
				_exit(1);
		}
		_exit(0);
	}
	close(pfd[1]);
	n = pid > 0 ? read(pfd[0], buf, len - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	rmdir(dir);
	return n > 0 ? 0 : -ENOENT;
}

bool kg_lsm_list_has(const char *list, const char *word)
{
	size_t wl = strlen(word);
	const char *p = list;

	while ((p = strstr(p, word))) {
		if ((p == list || p[-1] == ',') && (p[wl] == ',' || p[wl] == '\0'))
			return true;
		p += wl;
	}
	return false;
}

/* The value of the last "lsm=" word of the kernel command line (the kernel
 * keeps the last one); -ENOENT when there is none. */
static int cmdline_lsm(const char *path, char *buf, size_t len)
{
	char *data = kg_read_file(path, 65536, NULL), *p, *save = NULL;
	int err = -ENOENT;

	if (!data)
		return -errno;
	for (p = strtok_r(data, " \t\n", &save); p; p = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(p, "lsm=", 4))
			continue;
		err = kg_strlcpy(buf, p + 4, len) ? -ENAMETOOLONG : 0;
	}
	free(data);
	return err;
}

enum kg_tristate kg_bpf_lsm_listed(const struct kg_lsm_sources *src, char *list, size_t list_len,
				   char *why, size_t why_len)
{
	const char *secfs = src && src->securityfs ? src->securityfs : "/sys/kernel/security";
	const char *cmdline = src && src->cmdline ? src->cmdline : "/proc/cmdline";
	char path[4200], found[512] = "";
	int err;

	if (list && list_len)
		list[0] = '\0';
	if (why && why_len)
		why[0] = '\0';
	if (kg_snprintf(path, sizeof(path), "%s/lsm", secfs) == 0 &&
	    (read_lsm_list(path, found, sizeof(found)) == 0 ||
	     (src && src->mount_private && read_lsm_list_private(found, sizeof(found)) == 0))) {
		if (list && list_len)
			kg_strlcpy(list, found, list_len);
		if (kg_lsm_list_has(found, "bpf"))
			return KG_YES;
		if (why && why_len)
			snprintf(why, why_len, "bpf is not an active LSM (%s): see `kgate doctor`", found);
		return KG_NO;
	}
	err = cmdline_lsm(cmdline, found, sizeof(found));
	if (err == 0 && !kg_lsm_list_has(found, "bpf")) {
		if (list && list_len)
			kg_strlcpy(list, found, list_len);
		if (why && why_len)
			snprintf(why, why_len,
				 "bpf is not in lsm= of the kernel command line (%s): see `kgate doctor`",
				 found);
		return KG_NO;
	}
	if (why && why_len)
		snprintf(why, why_len, "the active LSM list is unreadable (securityfs not mounted%s)",
			 err == 0 ? ", lsm= names bpf" : ", no lsm= on the kernel command line");
	return KG_UNKNOWN;
}
