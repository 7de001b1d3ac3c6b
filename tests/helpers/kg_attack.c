// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kg_attack - small attacks a test runs inside a governed job.
 *
 *   kg_attack <what> [arg [arg2]]
 *
 * Prints one line "<what> ret=<r> errno=<e>" and exits with the errno of the
 * attempt (0 = it worked), so a test asserts on the exit status. Attempts the
 * kernel should kill (x32, int80) die of SIGSYS before printing.
 * Standalone: no libkgate.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

/* sanitizer builds: the leak checker ptraces itself at exit, which the
 * degraded-mode filter refuses; leaks are not what these programs test */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}

static int done(const char *what, long ret)
{
	int e = ret < 0 ? errno : 0;

	printf("%s ret=%ld errno=%d\n", what, ret, e);
	fflush(stdout);
	return e;
}

static int cgroup_line(void)
{
	char buf[4096];
	FILE *f = fopen("/proc/self/cgroup", "r");

	if (!f)
		return done("cgroup", -1);
	while (fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, "0::", 3))
			fputs(buf + 3, stdout);
	fclose(f);
	return 0;
}

/* Fork a small tree of sleepers, then sleep: only a cgroup kill ends it. */
static __attribute__((noreturn)) void forktree(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		pid_t p = fork();

		if (p == 0) {
			if (fork() == 0)
				setsid();	/* a grandchild that leaves the session */
			for (;;)
				pause();
		}
	}
	printf("forktree started\n");
	fflush(stdout);
	for (;;)
		pause();
}

static int count_fds(void)
{
	int fd, n = 0;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	printf("fds %d\n", n);
	return n;
}

static int unix_request(const char *path, const char *line)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char reply[4096];
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = done("unix-request", -1);
		if (fd >= 0)
			close(fd);
		return e;
	}
	if (write(fd, line, strlen(line)) < 0 || write(fd, "\n", 1) < 0)
		return done("unix-request", -1);
	n = read(fd, reply, sizeof(reply) - 1);
	reply[n > 0 ? n : 0] = '\0';
	printf("reply %s", reply);
	close(fd);
	return done("unix-request", 0);
}

static long int80_getpid(void)
{
#if defined(__x86_64__)
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	return ret;
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* Move ourselves to the root of the cgroup2 hierarchy (out of the job):
 * write our pid to <cgroup2 mount>/cgroup.procs. */
static int cgroup_escape(void)
{
	char line[8192], path[4200], pid[32];
	FILE *f = fopen("/proc/self/mountinfo", "r");
	int fd, n;
	long r = -1;

	errno = ENOENT;
	while (f && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - cgroup2 "), *mp = line;
		int field;

		if (!sep)
			continue;
		for (field = 1; field < 5 && mp; field++)
			mp = strchr(mp, ' ') ? strchr(mp, ' ') + 1 : NULL;
		if (!mp)
			continue;
		mp[strcspn(mp, " ")] = '\0';
		snprintf(path, sizeof(path), "%s/cgroup.procs", mp);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			break;
		n = snprintf(pid, sizeof(pid), "%d", (int)getpid());
		r = write(fd, pid, n) == n ? 0 : -1;
		close(fd);
		break;
	}
	if (f)
		fclose(f);
	return done("cgroup_escape", r);
}

/* A terminal: PATH, or fd 0 when PATH is empty. */
static int tty_fd(const char *path)
{
	return *path ? open(path, O_RDWR | O_NOCTTY | O_CLOEXEC) : 0;
}

static int terminal_attack(const char *w, const char *arg)
{
	int fd = tty_fd(arg);
	char c = 'Z';

	if (fd < 0)
		return done(w, -1);
	if (!strcmp(w, "tiocsti"))	/* push a character into the terminal's input */
		return done(w, ioctl(fd, TIOCSTI, &c));
	if (!strcmp(w, "tiocsti_hi"))	/* the same with junk in the command's high bits */
		return done(w, syscall(__NR_ioctl, fd, (1UL << 32) | TIOCSTI, &c));
	if (!strcmp(w, "tcsetpgrp"))	/* become the terminal's foreground process group */
		return done(w, tcsetpgrp(fd, getpgrp()));
	if (!strcmp(w, "tiocsctty"))	/* steal it as our controlling terminal */
		return done(w, (setsid(), ioctl(fd, TIOCSCTTY, 1)));
	return 200;
}

int main(int argc, char **argv)
{
	const char *w = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "";

	if (!strcmp(w, "cgroup"))
		return cgroup_line();
	if (!strcmp(w, "cgroup_escape"))
		return cgroup_escape();
	if (!strcmp(w, "exit"))
		return atoi(arg);
	if (!strcmp(w, "tiocsti") || !strcmp(w, "tiocsti_hi") || !strcmp(w, "tcsetpgrp") ||
	    !strcmp(w, "tiocsctty"))
		return terminal_attack(w, arg);
	if (!strcmp(w, "sigio")) {	/* SIGKILL to PID through a pipe's owner (F_SETOWN) */
		int p[2];

		if (pipe(p) || fcntl(p[0], F_SETOWN, atoi(arg)) || fcntl(p[0], F_SETSIG, SIGKILL) ||
		    fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK))
			return done(w, -1);
		return done(w, write(p[1], "x", 1) == 1 ? 0 : -1);
	}
	if (!strcmp(w, "session")) {	/* own session? a controlling terminal? */
		int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);

		printf("session leader=%d ctty=%s\n", getsid(0) == getpid(),
		       fd >= 0 ? "yes" : strerror(errno));
		return 0;
	}
	if (!strcmp(w, "sigself"))
		return kill(getpid(), atoi(arg)), 99;
	if (!strcmp(w, "forktree"))
		forktree();
	if (!strcmp(w, "fds"))
		return count_fds();
	if (!strcmp(w, "ids")) {
		printf("uid %d gid %d\n", (int)getuid(), (int)getgid());
		return 0;
	}
	if (!strcmp(w, "getpid"))
		return done(w, getpid() > 0 ? 0 : -1);
	if (!strcmp(w, "ptrace"))
		return done(w, ptrace(PTRACE_TRACEME, 0, NULL, NULL));
	if (!strcmp(w, "mount"))
		return done(w, mount("none", "/", NULL, MS_REMOUNT | MS_BIND, NULL));
	if (!strcmp(w, "bpf"))
		return done(w, syscall(__NR_bpf, 0, NULL, 0));
	if (!strcmp(w, "unshare_user"))
		return done(w, unshare(CLONE_NEWUSER));
	if (!strcmp(w, "clone3")) {
		struct clone_args a = { .exit_signal = SIGCHLD };
		long r = syscall(__NR_clone3, &a, sizeof(a));

		if (r == 0)
			_exit(0);
		return done(w, r);
	}
	if (!strcmp(w, "init_module"))
		return done(w, syscall(__NR_init_module, NULL, 0, ""));
	if (!strcmp(w, "openw")) {	/* open for writing, write nothing (settings) */
		int fd = open(arg, O_WRONLY | O_CLOEXEC);

		if (fd >= 0)
			close(fd);
		return done(w, fd);
	}
	if (!strcmp(w, "mknod_blk"))	/* a block device node: 8:0, the first disk */
		return done(w, mknod(arg, S_IFBLK | 0600, makedev(8, 0)));
	if (!strcmp(w, "mknod_chr"))	/* a char device node: 1:3, /dev/null */
		return done(w, mknod(arg, S_IFCHR | 0600, makedev(1, 3)));
	if (!strcmp(w, "sethostname")) {	/* the same name again: harmless if it works */
		char name[256] = "";

		gethostname(name, sizeof(name) - 1);
		return done(w, sethostname(name, strlen(name)));
	}
	if (!strcmp(w, "socket")) {	/* socket FAMILY TYPE PROTO (module autoload) */
		int fd = socket(atoi(arg), argc > 3 ? atoi(argv[3]) : SOCK_DGRAM,
				argc > 4 ? atoi(argv[4]) : 0);

		if (fd >= 0)
			close(fd);
		return done(w, fd);
	}
	if (!strcmp(w, "capbnd")) {	/* the bounding set, as /proc/self/status says */
		char buf[256];
		FILE *f = fopen("/proc/self/status", "r");

		while (f && fgets(buf, sizeof(buf), f))
			if (!strncmp(buf, "Cap", 3))
				fputs(buf, stdout);
		if (f)
			fclose(f);
		return 0;
	}
	if (!strcmp(w, "io_uring")) {	/* io_uring_setup(4, params) */
		unsigned char params[120] = { 0 };
		long r = syscall(__NR_io_uring_setup, 4, params);

		if (r >= 0)
			close((int)r);
		return done(w, r);
	}
	if (!strcmp(w, "x32"))
		return done(w, syscall(__X32_SYSCALL_BIT | __NR_getpid));
	if (!strcmp(w, "int80"))
		return done(w, int80_getpid());
	if (!strcmp(w, "read")) {
		int fd = open(arg, O_RDONLY | O_CLOEXEC);

		if (fd >= 0)
			close(fd);
		return done(w, fd);
	}
	/* kgate's own state (and anything else) by path */
	if (!strcmp(w, "append")) {
		int fd = open(arg, O_WRONLY | O_APPEND | O_CLOEXEC);

		if (fd >= 0 && write(fd, "forged\n", 7) != 7)
			fd = -1;
		if (fd >= 0)
			close(fd);
		return done(w, fd);
	}
	if (!strcmp(w, "create")) {
		int fd = open(arg, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (fd >= 0)
			close(fd);
		return done(w, fd);
	}
	if (!strcmp(w, "unlink"))
		return done(w, unlink(arg));
	if (!strcmp(w, "rmdir"))
		return done(w, rmdir(arg));
	if (!strcmp(w, "truncate"))
		return done(w, truncate(arg, 0));
	if (!strcmp(w, "chmod"))
		return done(w, chmod(arg, 0666));
	if (!strcmp(w, "rename"))
		return done(w, rename(arg, argc > 3 ? argv[3] : ""));
	if (!strcmp(w, "link"))
		return done(w, link(arg, argc > 3 ? argv[3] : ""));
	if (!strcmp(w, "mkdir"))
		return done(w, mkdir(arg, 0755));
	/* another process's kernel objects, by pid (a process outside the job);
	 * each attempt changes nothing even where it is let through */
	if (!strcmp(w, "procmem")) {	/* /proc/PID/mem opened for writing */
		char path[64];
		int fd;

		snprintf(path, sizeof(path), "/proc/%s/mem", arg);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		return done(w, fd);
	}
	if (!strcmp(w, "vmwrite")) {	/* process_vm_writev to address 0: EFAULT if allowed */
		char byte = 0;
		struct iovec l = { &byte, 1 }, r = { NULL, 1 };

		return done(w, syscall(__NR_process_vm_writev, atoi(arg), &l, 1UL, &r, 1UL, 0UL));
	}
	if (!strcmp(w, "pidfd_getfd")) {	/* the target's fd 0 */
		long pfd = syscall(__NR_pidfd_open, atoi(arg), 0), r;

		if (pfd < 0)
			return done(w, pfd);
		r = syscall(__NR_pidfd_getfd, (int)pfd, 0, 0);
		if (r >= 0)
			close((int)r);
		close((int)pfd);
		return done(w, r);
	}
	if (!strcmp(w, "pidfd_signal")) {	/* signal 0: a probe, never delivered */
		long pfd = syscall(__NR_pidfd_open, atoi(arg), 0), r;

		if (pfd < 0)
			return done(w, pfd);
		r = syscall(__NR_pidfd_send_signal, (int)pfd, 0, NULL, 0);
		close((int)pfd);
		return done(w, r);
	}
	if (!strcmp(w, "ptrace_attach"))
		return done(w, ptrace(PTRACE_ATTACH, atoi(arg), NULL, NULL));
	if (!strcmp(w, "procdir")) {	/* open a directory through /proc/PID/root, cwd... */
		int fd = open(arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd >= 0)
			close(fd);
		return done(w, fd);
	}
	if (!strcmp(w, "unix-connect")) {	/* connect to a unix stream socket, send nothing */
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		long r;

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", arg);
		r = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		r = done(w, r);
		if (fd >= 0)
			close(fd);
		return (int)r;
	}
	if (!strcmp(w, "unix-request"))	/* connect to a unix socket, send argv[3], print the reply */
		return unix_request(arg, argc > 3 ? argv[3] : "");
	if (!strcmp(w, "kill"))	/* signal 0 to a pid outside the job */
		return done(w, kill((pid_t)atoi(arg), 0));
	if (!strcmp(w, "killchild")) {
		pid_t p = fork();
		long r;

		if (p == 0) {
			pause();
			_exit(0);
		}
		r = kill(p, SIGKILL);
		waitpid(p, NULL, 0);
		return done(w, r);
	}
	fprintf(stderr, "kg_attack: unknown attack '%s'\n", w);
	return 200;
}
