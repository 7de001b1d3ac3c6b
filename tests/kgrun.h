/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kgrun.h - host integration tests that drive the real `kgate` binary.
 * Include after testlib.h.  Each test calls setup() first: it makes a
 * mkdtemp directory and points KGATE_AUDIT_DIR, KGATE_STATE_DIR,
 * KGATE_DATA_DIR and KGATE_BPFFS (a private pin dir) into it; teardown()
 * unpins and removes the directory.  The shared pieces are testenv.h's.
 */
#ifndef KGATE_KGRUN_H
#define KGATE_KGRUN_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common.h"
#include "kernel/loader.h"
#define KT_BUILD_DIR "build-san"
#include "testenv.h"

static char tmpdir[256];
static char pindir[256];

static inline void setup(void)
{
	if (getuid() != 0)
		SKIP("needs root");
	if (kt_state_tree("run", false, tmpdir, sizeof(tmpdir), pindir, sizeof(pindir)))
		SKIP("cannot make the test's directories");
}

/* unpin, and remove the test's directory (tests/testenv.h) */
static inline void teardown(void)
{
	kg_loader_unpin_all();
	rmdir(pindir);
	if (!strncmp(tmpdir, "/tmp/kgate-test-run.", 20))
		kt_rm_tree(tmpdir);
	tmpdir[0] = '\0';
}

static const char *helper(const char *name)
{
	return kt_helper(name);
}

static const char *kgate_bin(void)
{
	return kt_kgate_bin();
}

static inline void write_policy(const char *json, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/policy.json", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, json, strlen(json)) != (ssize_t)strlen(json))
		SKIP("cannot write policy");
	close(fd);
}

/* Run argv (NULL-terminated), output into *out (static buffer); exit code. */
static inline int run_capture(char *const argv[], char **out)
{
	static char buf[65536];
	char outpath[512];
	int status, fd;
	ssize_t n;
	pid_t pid;

	snprintf(outpath, sizeof(outpath), "%s/out.txt", tmpdir);
	pid = fork();
	if (pid == 0) {
		fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	waitpid(pid, &status, 0);
	fd = open(outpath, O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	*out = buf;
	{
		char *cmd = kg_join_argv(argv);

		printf("  $ %s -> %d\n%s", cmd ? cmd : argv[0],
		       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), buf);
		free(cmd);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* kgate run --policy P -- cmd... */
#define KGATE_RUN(policy, out, ...) ({						\
		char *___argv[] = { (char *)kgate_bin(), "run", "--policy", (char *)(policy), \
				    "--", __VA_ARGS__, NULL };			\
		run_capture(___argv, out); })

static inline int listen_tcp(int family, const char *addr, int *port)
{
	struct sockaddr_storage ss = {};
	socklen_t len;
	int fd = socket(family, SOCK_STREAM, 0), one = 1;

	*port = 0;	/* set on every path (and -O2 sees that it is) */
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &in->sin_addr);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &in6->sin6_addr);
		len = sizeof(*in6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64)) {
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
			 ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

#endif
