// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_pty.c - pty.c, the relay itself (test_terminal.c runs it through
 * `kgate run`; here the module is driven directly).  Each test is a session
 * whose controlling terminal ("the user's terminal") is a pty pair the test
 * opens, on fds 0-2, as under a shell; the test reads what that terminal
 * shows and types into it from the other end.
 *
 *   - no fd 0-2 a terminal: no pty, the relay is idle, close is safe;
 *   - otherwise the job gets a terminal of its own (not the user's: it has
 *     nothing to TIOCSTI into the user's shell with), with the user's
 *     settings and window size; only the fds that were terminals are
 *     replaced, and output goes to the first terminal of 1, 2, 0;
 *   - relaying: what the job writes shows on the user's terminal, what the
 *     user types reaches the job, ^C reaches the job as SIGINT (raw input),
 *     a window size change follows; the user's settings come back at close;
 *   - output still in the job's terminal when it ends is shown by close.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

#include "testlib.h"
#include "testenv.h"
#include "job/pty.h"

static int user_master = -1;	/* the far end of the user's terminal */

/* A session of our own whose controlling terminal is a new pty slave on
 * the fds named (0-2); the test's own output moves to a copy of fd 1. */
static void user_terminal(bool on0, bool on1, bool on2)
{
	char name[128];
	int slave, out = dup(1), fl;

	if (out < 0)
		SKIP("dup");
	stdout = fdopen(out, "w");
	setvbuf(stdout, NULL, _IOLBF, 0);
	user_master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (user_master < 0 || grantpt(user_master) || unlockpt(user_master) ||
	    ptsname_r(user_master, name, sizeof(name)))
		SKIP("no pseudo-terminals here");
	if (setsid() < 0)
		SKIP("setsid: %s", strerror(errno));
	slave = open(name, O_RDWR);	/* becomes our controlling terminal */
	if (slave < 0)
		SKIP("open %s: %s", name, strerror(errno));
	if (on0)
		dup2(slave, 0);
	if (on1)
		dup2(slave, 1);
	if (on2)
		dup2(slave, 2);
	/* the others: a pipe's ends (not terminals) */
	if (!on0 || !on1 || !on2) {
		int pp[2];

		if (pipe(pp))
			SKIP("pipe");
		if (!on0)
			dup2(pp[0], 0);
		if (!on1)
			dup2(pp[1], 1);
		if (!on2)
			dup2(pp[1], 2);
	}
	fl = fcntl(user_master, F_GETFL);
	fcntl(user_master, F_SETFL, fl | O_NONBLOCK);
}

/* The job: its fds 0-2 become its terminal (the pty's slave) where the
 * pty says so, in a session of its own, then fn runs. */
static pid_t start_job(struct kg_pty *p, void (*fn)(void))
{
	pid_t pid = fork();

	if (pid == 0) {
		int i;

		/* as after exec (both are O_CLOEXEC): a job must not keep its
		 * own terminal alive if the test dies before it */
		close(p->master);
		close(user_master);
		setsid();
		for (i = 0; i < 3; i++)
			if (p->replace[i])
				dup2(p->slave, i);
		ioctl(0, TIOCSCTTY, 0);
		signal(SIGINT, SIG_DFL);
		fn();
		_exit(0);
	}
	return pid;
}

struct screen {
	char text[16384];
	size_t len;
};

static void read_screen(struct screen *s)
{
	ssize_t n;

	while (s->len < sizeof(s->text) - 1 &&
	       (n = read(user_master, s->text + s->len, sizeof(s->text) - 1 - s->len)) > 0)
		s->len += (size_t)n;
	s->text[s->len] = '\0';
}

/* Relay until the job's terminal has no one left (or ~10 s); once the
 * screen shows `when`, type `input` into the user's terminal. */
static void relay(struct kg_pty *p, struct screen *s, const char *when, const char *input)
{
	long long deadline = kt_now_ms() + 10000;
	bool typed = !input;

	while (p->master >= 0 && kt_now_ms() < deadline) {
		struct pollfd pfd[2];

		kg_pty_pollfds(p, &pfd[0].fd, &pfd[0].events, &pfd[1].fd, &pfd[1].events);
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, 100) < 0 && errno != EINTR)
			break;
		kg_pty_handle(p, pfd[0].fd >= 0 ? pfd[0].revents : 0,
			      pfd[1].fd >= 0 ? pfd[1].revents : 0);
		read_screen(s);
		if (!typed && strstr(s->text, when)) {
			if (write(user_master, input, strlen(input)) != (ssize_t)strlen(input))
				printf("  could not type\n");
			typed = true;
		}
	}
	read_screen(s);
}

/* The job's exit code or 128+signal; a job still there after ~10 s is
 * killed (the test fails on its status, never hangs). */
static int wait_job(pid_t pid)
{
	long long deadline = kt_now_ms() + 10000;
	int status = 0;
	pid_t got;

	while ((got = waitpid(pid, &status, WNOHANG)) == 0 && kt_now_ms() < deadline)
		kt_sleep_ms(20);
	if (got == 0) {
		kill(pid, SIGKILL);
		got = waitpid(pid, &status, 0);
	}
	if (got != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static dev_t rdev_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : st.st_rdev;
}

TEST(no_terminal_no_pty_and_the_relay_is_idle)
{
	struct kg_pty p;
	int in, m;
	short iev, mev;

	user_terminal(false, false, false);
	ASSERT_OK(kg_pty_open(&p), "open");
	ASSERT_TRUE(p.opened, "decided");
	ASSERT_EQ(p.master, -1, "no pty when no fd 0-2 is a terminal");
	ASSERT_FALSE(p.replace[0] || p.replace[1] || p.replace[2], "every fd passed unchanged");
	kg_pty_start(&p);
	kg_pty_pollfds(&p, &in, &iev, &m, &mev);
	ASSERT_EQ(in, -1, "nothing to read from the user");
	ASSERT_EQ(m, -1, "nothing to read from the job");
	kg_pty_handle(&p, POLLIN, POLLIN);
	kg_pty_close(&p);
	ASSERT_FALSE(p.opened, "closed");
	kg_pty_close(&p);	/* twice: still safe */
}

TEST(a_zeroed_pty_is_none_and_safe_everywhere)
{
	struct kg_pty p = {};
	int in, m;
	short iev, mev;

	kg_pty_start(&p);
	kg_pty_pollfds(&p, &in, &iev, &m, &mev);
	ASSERT_EQ(in, -1, "idle");
	ASSERT_EQ(m, -1, "idle");
	kg_pty_handle(&p, POLLIN, POLLIN);
	kg_pty_close(&p);
	ASSERT_FALSE(p.opened, "still none");
}

TEST(the_job_gets_a_terminal_of_its_own_with_the_users_settings)
{
	struct winsize ws = { .ws_row = 33, .ws_col = 111 }, got = {};
	struct termios t, js;
	struct kg_pty p;

	user_terminal(true, true, true);
	/* a distinctive setting and size on the user's terminal */
	ASSERT_OK(tcgetattr(0, &t), "user settings");
	t.c_cc[VERASE] = 0x08;
	t.c_lflag &= ~ECHOCTL;
	ASSERT_OK(tcsetattr(0, TCSANOW, &t), "set");
	ASSERT_OK(ioctl(user_master, TIOCSWINSZ, &ws), "size");
	ASSERT_OK(kg_pty_open(&p), "open");
	if (!ASSERT_TRUE(p.master >= 0 && p.slave >= 0, "a pty"))
		return;
	ASSERT_TRUE(p.replace[0] && p.replace[1] && p.replace[2], "fds 0-2 replaced");
	ASSERT_EQ(p.user_in, 0, "input from fd 0");
	ASSERT_EQ(p.user_out, 1, "output to fd 1");
	ASSERT_NEQ(rdev_of(p.slave), rdev_of(0), "not the user's terminal");
	ASSERT_OK(tcgetattr(p.slave, &js), "job's settings");
	ASSERT_EQ(js.c_cc[VERASE], 0x08, "the user's erase character");
	ASSERT_EQ(js.c_lflag & ECHOCTL, 0, "the user's ECHOCTL off");
	ASSERT_OK(ioctl(p.slave, TIOCGWINSZ, &got), "job's size");
	ASSERT_EQ(got.ws_row, 33, "rows");
	ASSERT_EQ(got.ws_col, 111, "columns");
	ASSERT_TRUE(fcntl(p.master, F_GETFD) & FD_CLOEXEC, "the job never inherits the master");
	kg_pty_close(&p);
	ASSERT_EQ(p.master, -1, "closed");
}

TEST(only_the_fds_that_are_terminals_are_replaced_output_to_the_first_of_1_2_0)
{
	struct kg_pty p;

	user_terminal(false, false, true);	/* 2>tty, 0 and 1 pipes */
	ASSERT_OK(kg_pty_open(&p), "open");
	ASSERT_TRUE(p.master >= 0, "a pty for fd 2");
	ASSERT_FALSE(p.replace[0], "fd 0 passed unchanged");
	ASSERT_FALSE(p.replace[1], "fd 1 passed unchanged");
	ASSERT_TRUE(p.replace[2], "fd 2 replaced");
	ASSERT_EQ(p.user_in, -1, "no user input to relay");
	ASSERT_EQ(p.user_out, 2, "output to fd 2");
	kg_pty_close(&p);
}

/* The jobs write to fds 0-2 directly: the test's stdio stream went to a
 * copy of its old fd 1 (user_terminal). */
static void job_hello_and_echo(void)
{
	char line[128] = "", *nl;
	ssize_t n;

	dprintf(1, "hello from the job\n");
	n = read(0, line, sizeof(line) - 1);	/* canonical mode: one line */
	if (n <= 0)
		_exit(3);
	line[n] = '\0';
	nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
	dprintf(1, "the job read [%s]\n", line);
	/* whatever TIOCSTI can push goes into the job's own terminal: it
	 * has no fd of the user's terminal to push characters into */
	(void)ioctl(0, TIOCSTI, "x");
	_exit(0);
}

TEST(output_and_input_cross_the_relay_and_the_users_settings_come_back)
{
	struct termios before, during, after;
	struct screen s = {};
	struct kg_pty p;
	pid_t job;
	int rc;

	user_terminal(true, true, true);
	ASSERT_OK(tcgetattr(0, &before), "user settings");
	ASSERT_OK(kg_pty_open(&p), "open");
	if (!ASSERT_TRUE(p.master >= 0, "a pty"))
		return;
	job = start_job(&p, job_hello_and_echo);
	kg_pty_start(&p);
	ASSERT_EQ(p.slave, -1, "our copy of the job's side is closed");
	ASSERT_TRUE(p.raw, "raw input: kgate is in the terminal's foreground");
	ASSERT_OK(tcgetattr(0, &during), "settings while relaying");
	ASSERT_EQ(during.c_lflag & (ICANON | ECHO | ISIG), 0, "no line editing, echo or signals");
	ASSERT_TRUE(during.c_oflag & OPOST, "output processing left on");

	relay(&p, &s, "hello from the job", "typed text\r");
	rc = wait_job(job);
	ASSERT_HAS_SUBSTR(s.text, "hello from the job", "the job's output is on the user's terminal");
	ASSERT_HAS_SUBSTR(s.text, "the job read [typed text]", "the user's typing reached the job");
	ASSERT_EQ(rc, 0, "the job ran to its end");
	ASSERT_EQ(p.master, -1, "the relay saw the job's terminal end");
	kg_pty_close(&p);
	ASSERT_OK(tcgetattr(0, &after), "settings after");
	ASSERT_EQ(after.c_lflag, before.c_lflag, "local modes restored");
	ASSERT_EQ(after.c_iflag, before.c_iflag, "input modes restored");
	/* what the job pushed with TIOCSTI landed in its own input, never in
	 * the user's terminal: nothing waits to be read there */
	{
		char c;
		int fl = fcntl(0, F_GETFL);

		fcntl(0, F_SETFL, fl | O_NONBLOCK);
		ASSERT_ERRNO(read(0, &c, 1), EAGAIN, "no injected input on the user's terminal");
	}
}

static void job_waits(void)
{
	char buf[16];

	dprintf(1, "ready\n");
	for (;;)
		if (read(0, buf, sizeof(buf)) <= 0)
			_exit(5);
}

TEST(ctrl_c_reaches_the_job_as_sigint)
{
	struct screen s = {};
	struct kg_pty p;
	pid_t job;

	user_terminal(true, true, true);
	ASSERT_OK(kg_pty_open(&p), "open");
	if (!ASSERT_TRUE(p.master >= 0, "a pty"))
		return;
	job = start_job(&p, job_waits);
	kg_pty_start(&p);
	/* in raw mode ^C is a byte for the job's terminal, whose ISIG makes
	 * it the job's SIGINT (and not kgate's) */
	relay(&p, &s, "ready", "\x03");
	ASSERT_EQ(wait_job(job), 128 + SIGINT, "the job got SIGINT");
	kg_pty_close(&p);
}

static void job_sleeps(void)
{
	pause();
}

TEST(a_window_size_change_follows_to_the_jobs_terminal)
{
	struct winsize ws = { .ws_row = 24, .ws_col = 80 }, got = {};
	struct kg_pty p;
	pid_t job;

	user_terminal(true, true, true);
	ASSERT_OK(ioctl(user_master, TIOCSWINSZ, &ws), "size");
	ASSERT_OK(kg_pty_open(&p), "open");
	if (!ASSERT_TRUE(p.master >= 0, "a pty"))
		return;
	job = start_job(&p, job_sleeps);
	kg_pty_start(&p);
	ws.ws_row = 50;
	ws.ws_col = 132;
	ASSERT_OK(ioctl(user_master, TIOCSWINSZ, &ws), "the user resizes");	/* SIGWINCH */
	kt_sleep_ms(50);
	kg_pty_handle(&p, 0, 0);
	ASSERT_OK(ioctl(p.master, TIOCGWINSZ, &got), "job's size");
	ASSERT_EQ(got.ws_row, 50, "rows followed");
	ASSERT_EQ(got.ws_col, 132, "columns followed");
	kill(job, SIGKILL);
	wait_job(job);
	kg_pty_close(&p);
}

static void job_says_goodbye(void)
{
	dprintf(1, "last words\n");
}

TEST(output_left_in_the_jobs_terminal_is_shown_at_close)
{
	struct screen s = {};
	struct kg_pty p;
	pid_t job;

	user_terminal(true, true, true);
	ASSERT_OK(kg_pty_open(&p), "open");
	if (!ASSERT_TRUE(p.master >= 0, "a pty"))
		return;
	job = start_job(&p, job_says_goodbye);
	kg_pty_start(&p);
	ASSERT_EQ(wait_job(job), 0, "the job ended");
	/* no relaying at all: close copies what is left */
	kg_pty_close(&p);
	read_screen(&s);
	ASSERT_HAS_SUBSTR(s.text, "last words", "shown by close");
}
