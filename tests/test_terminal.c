// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_terminal.c - the job's session and terminal (`kgate run` on this host).
 *
 * The job gets a session of its own and, when kgate's fds 0-2 include a
 * terminal, a pseudo-terminal that kgate relays: from the job, the user's
 * terminal cannot be pushed input into (TIOCSTI), made to follow the job
 * (tcsetpgrp) or stolen (TIOCSCTTY), while the job's input and output
 * still work through the relay and its exit status passes through.
 *
 * "The user's terminal" here is a pty pair the test opens: kgate runs in a
 * session whose controlling terminal is its slave, as under a shell.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>

#include "testlib.h"
#include "kgrun.h"

#define ALLOW_ALL "{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}"

struct term_run {
	char out[65536];	/* everything the "user's terminal" showed */
	size_t len;
	int status;		/* exit code (or 128+signal) */
};

static char user_tty[128];	/* the slave's name: the terminal the user sits at */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run argv in a new session whose controlling terminal is a fresh pty
 * slave on fds 0 and 2 (and 1 unless stdout_path names a file). Once the
 * terminal shows `when`, type `input`. */
static void run_on_terminal(char *const argv[], const char *stdout_path, const char *when,
			    const char *input, struct term_run *r)
{
	uint64_t deadline = now_ms() + 60000;
	bool typed = !input;
	int master, slave, st;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) || unlockpt(master) ||
	    ptsname_r(master, user_tty, sizeof(user_tty)))
		SKIP("no pseudo-terminals here");
	setenv("USER_TTY", user_tty, 1);
	pid = fork();
	if (pid == 0) {
		setsid();
		slave = open(user_tty, O_RDWR);	/* becomes our controlling terminal */
		if (slave < 0)
			_exit(125);
		dup2(slave, 0);
		dup2(slave, 2);
		if (stdout_path)
			slave = open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(slave, 1);
		execv(argv[0], argv);
		_exit(126);
	}
	for (;;) {
		struct pollfd pfd = { .fd = master, .events = POLLIN };
		ssize_t n;

		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pfd, 1, 200) > 0) {
			n = read(master, r->out + r->len, sizeof(r->out) - 1 - r->len);
			if (n <= 0)
				break;	/* EIO: every slave closed */
			r->len += (size_t)n;
			r->out[r->len] = '\0';
		}
		if (!typed && strstr(r->out, when)) {
			if (write(master, input, strlen(input)) != (ssize_t)strlen(input))
				break;
			typed = true;
		}
		if (waitpid(pid, &st, WNOHANG) == pid) {
			pid = -1;
			break;
		}
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
	/* the rest of what reached the terminal */
	{
		int fl = fcntl(master, F_GETFL);
		ssize_t n;

		fcntl(master, F_SETFL, fl | O_NONBLOCK);
		while ((n = read(master, r->out + r->len, sizeof(r->out) - 1 - r->len)) > 0)
			r->len += (size_t)n;
		r->out[r->len] = '\0';
	}
	close(master);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	printf("  [terminal showed, exit %d]\n%s\n", r->status, r->out);
}

TEST(job_has_its_own_session_even_without_a_terminal)
{
	char policy[512], *out;

	setup();
	write_policy(ALLOW_ALL, policy, sizeof(policy));
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "session"), 0, "runs");
	ASSERT_HAS_SUBSTR(out, "session leader=1 ", "the job leads a session of its own");
	ASSERT_HAS_SUBSTR(out, "ctty=No such device or address",
			  "without a terminal on fds 0-2 it has no controlling terminal");
	teardown();
}

/* The attacks work on this machine when nothing governs them (else the
 * test below could not fail): as root, TIOCSTI into our own terminal. */
TEST(tiocsti_works_without_kgate)
{
	char *argv[] = { (char *)helper("kg_attack"), "tiocsti", NULL };
	struct term_run r;

	setup();
	run_on_terminal(argv, NULL, NULL, NULL, &r);
	if (r.status != 0)
		SKIP("TIOCSTI refused here even without kgate (legacy_tiocsti off, no "
		     "CAP_SYS_ADMIN): nothing to show");
	ASSERT_HAS_SUBSTR(r.out, "tiocsti ret=0 errno=0", "the control attack worked");
	teardown();
}

TEST(job_cannot_reach_the_users_terminal_and_the_relay_works)
{
	char policy[512];
	char script[2048];
	struct term_run r;

	setup();
	write_policy(ALLOW_ALL, policy, sizeof(policy));
	setenv("A", helper("kg_attack"), 1);
	snprintf(script, sizeof(script),
		 "\"$A\" tiocsti; \"$A\" tiocsti /dev/tty; \"$A\" tiocsti \"$USER_TTY\"; "
		 "\"$A\" tiocsti_hi; \"$A\" tcsetpgrp \"$USER_TTY\"; \"$A\" tiocsctty \"$USER_TTY\"; "
		 "\"$A\" tcsetpgrp; "	/* its own terminal: allowed, harmless */
		 "echo tty=$(tty); echo READY; read x; echo \"got:$x.\"; exit 7");
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--",
				 "/bin/sh", "-c", script, NULL };

		run_on_terminal(argv, NULL, "READY", "hello\n", &r);
	}
	ASSERT_HAS_SUBSTR(r.out, "the job has a session and a terminal of its own", "said");
	ASSERT_FALSE(strstr(r.out, "tiocsti ret=0"), "no TIOCSTI got through");
	ASSERT_HAS_SUBSTR(r.out, "tiocsti ret=-1 errno=1", "TIOCSTI refused (EPERM)");
	ASSERT_HAS_SUBSTR(r.out, "tiocsti_hi ret=-1 errno=1", "junk in the high bits changes nothing");
	ASSERT_HAS_SUBSTR(r.out, "tcsetpgrp ret=-1 errno=25",
			  "the user's terminal is not the job's: tcsetpgrp gets ENOTTY");
	ASSERT_HAS_SUBSTR(r.out, "tiocsctty ret=-1 errno=1", "stealing the user's terminal refused");
	ASSERT_HAS_SUBSTR(r.out, "tcsetpgrp ret=0 errno=0", "its own terminal is its own");
	{
		char mine[160];

		snprintf(mine, sizeof(mine), "tty=%s\r", user_tty);
		ASSERT_HAS_SUBSTR(r.out, "tty=/dev/pts/", "the job has a terminal");
		ASSERT_FALSE(strstr(r.out, mine), "and it is not the user's");
	}
	ASSERT_HAS_SUBSTR(r.out, "got:hello.", "typed input reached the job through the relay");
	ASSERT_EQ(r.status, 7, "the job's exit status passes through");
	ASSERT_HAS_SUBSTR(r.out, "exited with 7", "kgate reported the exit after the job's output");
	teardown();
}

/* stdin a terminal, stdout a file: the file gets the job's stdout as is */
TEST(non_terminal_fds_pass_unchanged)
{
	char policy[512], path[512], buf[256] = "";
	char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--", "/bin/sh", "-c",
			 "echo to-file; [ -t 1 ] || echo stdout-not-a-tty; [ -t 0 ] && echo in-tty >&2;"
			 " exit 3", NULL };
	struct term_run r;
	int fd;
	ssize_t n;

	setup();
	write_policy(ALLOW_ALL, policy, sizeof(policy));
	snprintf(path, sizeof(path), "%s/stdout.txt", tmpdir);
	run_on_terminal(argv, path, NULL, NULL, &r);
	fd = open(path, O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	ASSERT_STREQ(buf, "to-file\nstdout-not-a-tty\n", "stdout went to the file, untouched");
	ASSERT_HAS_SUBSTR(r.out, "in-tty", "stdin and stderr are the job's terminal");
	ASSERT_EQ(r.status, 3, "exit status passes through");
	teardown();
}

static pid_t sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static bool died(pid_t pid)
{
	int st, i;

	for (i = 0; i < 20; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return true;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return false;
}

/* F_SETOWN + F_SETSIG(SIGKILL) + O_ASYNC signals a process past task_kill:
 * degraded mode relies on Landlock's signal scoping (ABI 6+), full mode on
 * file_send_sigiotask (vmtests/vt_session.c). */
TEST(sigio_cannot_signal_outside_the_job)
{
	char policy[512], pid_s[16], *out;
	pid_t victim;

	setup();
	write_policy(ALLOW_ALL, policy, sizeof(policy));
	victim = sleeper();
	snprintf(pid_s, sizeof(pid_s), "%d", (int)victim);
	{
		char *argv[] = { (char *)helper("kg_attack"), "sigio", pid_s, NULL };

		run_capture(argv, &out);
	}
	ASSERT_TRUE(died(victim), "control: outside kgate the signal kills");
	victim = sleeper();
	snprintf(pid_s, sizeof(pid_s), "%d", (int)victim);
	KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "sigio", pid_s);
	if (!strstr(out, "signals and abstract unix sockets scoped to the job")) {
		kill(victim, SIGKILL);
		waitpid(victim, NULL, 0);
		SKIP("Landlock signal scoping (ABI 6+) unavailable here");
	}
	ASSERT_HAS_SUBSTR(out, "sigio ret=0", "the job could set the owner and write");
	ASSERT_FALSE(died(victim), "the process outside the job is alive");
	teardown();
}
