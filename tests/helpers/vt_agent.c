// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_agent - a scripted "agent" for the black-box VM tests (vmtests/vt_run.c,
 * vt_controller.c, vt_decisions.c): run under `kgate run`, it attempts the
 * actions it is given, in order, and says what the kernel answered.
 *
 *   vt_agent STEP...      STEP = LABEL=ACTION[:ARG...]   (':' separates args)
 *
 * actions (each prints "LABEL errno=E" unless said otherwise; 0 = it worked):
 *   read:PATH            open(O_RDONLY) and read a byte
 *   write:PATH           open(O_WRONLY|O_APPEND) and write a byte
 *   create:PATH          open(O_CREAT|O_EXCL)
 *   procfd:PATH          open(O_PATH), then re-open /proc/self/fd/N for reading
 *   exec:PATH            fork + execv(PATH); the child's status is printed as
 *                        "LABEL errno=E exit=X" (E = exec's errno, X = exit code)
 *   ptrace:PID           PTRACE_ATTACH (PID "ppid" = our parent: kgate run)
 *   kill:PID:SIG         kill(2) ("ppid" as above)
 *   cgescape             write our pid into the root cgroup's cgroup.procs
 *   socket:FAM:TYPE:PROTO  socket(2) with numbers
 *   wait:PATH:MS         wait until PATH exists (errno ETIMEDOUT after MS)
 *   sleep:MS
 *   burst:PATH:N         N reads as fast as possible: "LABEL ok=K refused=R"
 *   rate:PATH:MS         reads in a tight loop for MS: "LABEL ok=K refused=R"
 *   flood:PATH:MS        like rate (the open must stay refused)
 *   watch:A:B:STOP       every 100 ms read A and B, print "round N a=E b=E",
 *                        until STOP exists (at most 60 s): "LABEL rounds=N"
 *
 * Exits with the errno of the last step, so a one-step run asserts on the
 * exit status.  Standalone: no libkgate.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 6

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* errno of a failed call, 0 on success */
#define RC(call) ((call) < 0 ? errno : 0)

static int try_read(const char *path)
{
	char c;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return errno;
	err = RC(read(fd, &c, 1));
	close(fd);
	return err;
}

static int try_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC), err;

	if (fd < 0)
		return errno;
	err = RC(write(fd, "x", 1));
	close(fd);
	return err;
}

static int try_create(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* An O_PATH descriptor opens nothing; re-opening it through /proc is a real
 * open of the same inode and must meet the same rule. */
static int try_procfd(const char *path)
{
	char proc[64];
	int fd = open(path, O_PATH | O_CLOEXEC), err;

	if (fd < 0)
		return errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	err = try_read(proc);
	close(fd);
	return err;
}

static int try_exec(const char *label, const char *path)
{
	int pfd[2], err = 0, status = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return errno;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		char *argv[] = { (char *)path, NULL };

		close(pfd[0]);
		execv(path, argv);
		err = errno;
		if (write(pfd[1], &err, sizeof(err)) < 0)
			_exit(126);
		_exit(127);
	}
	close(pfd[1]);
	if (read(pfd[0], &err, sizeof(err)) != sizeof(err))
		err = 0;
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	printf("%s errno=%d exit=%d\n", label, err,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return err;
}

static pid_t pid_arg(const char *s)
{
	return !strcmp(s, "ppid") ? getppid() : (pid_t)atoi(s);
}

static int try_ptrace(pid_t pid)
{
	int err = RC(ptrace(PTRACE_ATTACH, pid, NULL, NULL));

	if (!err) {	/* it must not have worked: let go again */
		waitpid(pid, NULL, __WALL);
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
	}
	return err;
}

/* The cgroup2 mount point, from mountinfo (never assumed). */
static int cgroup2_root(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[1024], mnt[512], fstype[64];

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %*s %*s %511s %*[^-]- %63s", mnt, fstype) == 2 &&
		    !strcmp(fstype, "cgroup2")) {
			fclose(f);
			snprintf(buf, len, "%s", mnt);
			return 0;
		}
	}
	if (f)
		fclose(f);
	return -1;
}

static int try_cgescape(void)
{
	char root[512], path[600], pid[32];
	int fd, err;

	if (cgroup2_root(root, sizeof(root)))
		return ENOENT;
	snprintf(path, sizeof(path), "%s/cgroup.procs", root);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	err = RC(write(fd, pid, strlen(pid)));
	close(fd);
	return err;
}

static int try_wait(const char *path, long ms)
{
	long long end = now_ms() + ms;

	while (access(path, F_OK) != 0) {
		if (now_ms() >= end)
			return ETIMEDOUT;
		sleep_ms(20);
	}
	return 0;
}

/* Opens until n are done (n > 0) or ms have passed. */
static int try_many(const char *label, const char *path, long n, long ms)
{
	long long end = now_ms() + ms;
	long ok = 0, refused = 0, other = 0, i;
	int err, last = 0;

	for (i = 0; n > 0 ? i < n : now_ms() < end; i++) {
		err = try_read(path);
		if (!err)
			ok++;
		else if (err == EPERM || err == EACCES)
			refused++;
		else
			other++;
		if (err)
			last = err;
	}
	printf("%s ok=%ld refused=%ld other=%ld errno=%d\n", label, ok, refused, other,
	       ok ? 0 : last);
	return ok ? 0 : last;
}

static int try_watch(const char *label, const char *a, const char *b, const char *stop)
{
	long long end = now_ms() + 60000;
	int round = 0;

	while (access(stop, F_OK) != 0 && now_ms() < end) {
		int ea = try_read(a), eb = try_read(b);

		printf("round %d a=%d b=%d\n", ++round, ea, eb);
		fflush(stdout);
		sleep_ms(100);
	}
	printf("%s rounds=%d errno=0\n", label, round);
	return 0;
}

static int step(char *spec)
{
	char *label = spec, *action = strchr(spec, '='), *args[MAX_ARGS] = { 0 }, *p;
	int nargs = 0, err;

	if (!action) {
		fprintf(stderr, "vt_agent: step '%s' is not LABEL=ACTION\n", spec);
		exit(2);
	}
	*action++ = '\0';
	p = strchr(action, ':');
	while (p && nargs < MAX_ARGS) {
		*p++ = '\0';
		args[nargs++] = p;
		p = strchr(p, ':');
	}
#define NEED(n) do { if (nargs < (n)) { fprintf(stderr, "vt_agent: %s needs %d args\n", action, n); exit(2); } } while (0)
	if (!strcmp(action, "exec")) {
		NEED(1);
		return try_exec(label, args[0]);
	}
	if (!strcmp(action, "burst") || !strcmp(action, "rate") || !strcmp(action, "flood")) {
		NEED(2);
		return try_many(label, args[0], !strcmp(action, "burst") ? atol(args[1]) : 0,
				atol(args[1]));
	}
	if (!strcmp(action, "watch")) {
		NEED(3);
		return try_watch(label, args[0], args[1], args[2]);
	}
	if (!strcmp(action, "read")) {
		NEED(1);
		err = try_read(args[0]);
	} else if (!strcmp(action, "write")) {
		NEED(1);
		err = try_write(args[0]);
	} else if (!strcmp(action, "create")) {
		NEED(1);
		err = try_create(args[0]);
	} else if (!strcmp(action, "procfd")) {
		NEED(1);
		err = try_procfd(args[0]);
	} else if (!strcmp(action, "ptrace")) {
		NEED(1);
		err = try_ptrace(pid_arg(args[0]));
	} else if (!strcmp(action, "kill")) {
		NEED(2);
		err = RC(kill(pid_arg(args[0]), atoi(args[1])));
	} else if (!strcmp(action, "cgescape")) {
		err = try_cgescape();
	} else if (!strcmp(action, "socket")) {
		int fd;

		NEED(3);
		fd = socket(atoi(args[0]), atoi(args[1]), atoi(args[2]));
		err = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
	} else if (!strcmp(action, "wait")) {
		NEED(2);
		err = try_wait(args[0], atol(args[1]));
	} else if (!strcmp(action, "sleep")) {
		NEED(1);
		sleep_ms(atol(args[0]));
		err = 0;
	} else {
		fprintf(stderr, "vt_agent: unknown action '%s'\n", action);
		exit(2);
	}
	printf("%s errno=%d\n", label, err);
	return err;
}

int main(int argc, char **argv)
{
	int i, err = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		err = step(argv[i]);
		fflush(stdout);
	}
	return err > 255 ? 255 : err;
}
