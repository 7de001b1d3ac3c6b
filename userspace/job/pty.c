// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pty.c - the job's own terminal, relayed by the controller (see pty.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common.h"
#include "job/pty.h"

static volatile sig_atomic_t winch_pending;

static void on_winch(int sig)
{
	(void)sig;
	winch_pending = 1;
}

static bool writable(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_ACCMODE) != O_RDONLY;
}

int kg_pty_open(struct kg_pty *p)
{
	char name[128];
	struct termios t;
	struct winsize ws;
	int i, ref = -1, err;

	memset(p, 0, sizeof(*p));
	p->opened = true;
	p->master = p->slave = p->user_in = p->user_out = -1;
	for (i = 0; i < 3; i++) {
		p->replace[i] = isatty(i);
		if (p->replace[i] && ref < 0)
			ref = i;
	}
	if (ref < 0)
		return 0;	/* no terminal: nothing to relay */
	/* where the job's output goes: the first of 1, 2, 0 that is a
	 * terminal we may write to */
	if (p->replace[1] && writable(1))
		p->user_out = 1;
	else if (p->replace[2] && writable(2))
		p->user_out = 2;
	else if (p->replace[0] && writable(0))
		p->user_out = 0;
	if (p->replace[0])
		p->user_in = 0;
	p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (p->master < 0)
		goto fail;
	if (grantpt(p->master) || unlockpt(p->master) || ptsname_r(p->master, name, sizeof(name)))
		goto fail;
	p->slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (p->slave < 0)
		goto fail;
	if (tcgetattr(ref, &t) == 0)
		(void)tcsetattr(p->slave, TCSANOW, &t);
	if (ioctl(ref, TIOCGWINSZ, &ws) == 0)
		(void)ioctl(p->slave, TIOCSWINSZ, &ws);
	return 0;
fail:
	err = -errno;
	kg_pty_close(p);
	p->opened = true;
	return err;
}

void kg_pty_start(struct kg_pty *p)
{
	struct sigaction sa = { .sa_handler = on_winch };
	struct termios t;
	int fl;

	if (!p->opened || p->master < 0)
		return;
	if (p->slave >= 0) {
		close(p->slave);
		p->slave = -1;
	}
	fl = fcntl(p->master, F_GETFL);
	if (fl >= 0)
		(void)fcntl(p->master, F_SETFL, fl | O_NONBLOCK);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);
	/* raw input only when we are in the terminal's foreground (a
	 * background kgate would be stopped by SIGTTOU) */
	if (p->user_in >= 0 && tcgetpgrp(p->user_in) == getpgrp() &&
	    tcgetattr(p->user_in, &p->saved) == 0) {
		t = p->saved;
		t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
		t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
		t.c_cflag &= ~(CSIZE | PARENB);
		t.c_cflag |= CS8;
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(p->user_in, TCSADRAIN, &t) == 0)
			p->raw = true;
	}
}

void kg_pty_pollfds(const struct kg_pty *p, int *in_fd, short *in_ev, int *m_fd, short *m_ev)
{
	bool on = p->opened && p->master >= 0;

	*in_fd = on && p->user_in >= 0 && p->inlen == 0 ? p->user_in : -1;
	*in_ev = POLLIN;
	*m_fd = on ? p->master : -1;
	*m_ev = (short)(POLLIN | (p->inlen ? POLLOUT : 0));
}

static void write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;	/* the user's terminal is gone: drop the output */
		buf += n;
		len -= (size_t)n;
	}
}

/* Job's output to the user; false once the job's side is closed. */
static bool pump_out(struct kg_pty *p)
{
	char buf[16384];
	ssize_t n;

	for (;;) {
		n = read(p->master, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			if (p->user_out >= 0)
				write_all(p->user_out, buf, (size_t)n);
			if ((size_t)n < sizeof(buf))
				return true;
			continue;
		}
		/* EAGAIN: nothing more for now; EIO or 0: no slave left */
		return n < 0 && errno == EAGAIN;
	}
}

void kg_pty_handle(struct kg_pty *p, short in_rev, short m_rev)
{
	struct winsize ws;
	ssize_t n;

	if (!p->opened || p->master < 0)
		return;
	if (winch_pending) {
		winch_pending = 0;
		if (p->user_out >= 0 && ioctl(p->user_out, TIOCGWINSZ, &ws) == 0)
			(void)ioctl(p->master, TIOCSWINSZ, &ws);
	}
	if (in_rev & (POLLIN | POLLHUP | POLLERR)) {
		n = read(p->user_in, p->in, sizeof(p->in));
		if (n > 0) {
			p->inlen = (size_t)n;
			p->inoff = 0;
		} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			p->user_in = -1;	/* the user's side ended: stop reading it */
		}
	}
	if (p->inlen && (m_rev & POLLOUT || in_rev)) {
		n = write(p->master, p->in + p->inoff, p->inlen);
		if (n > 0) {
			p->inoff += (size_t)n;
			p->inlen -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			p->inlen = 0;
		}
	}
	if (m_rev & (POLLIN | POLLHUP | POLLERR)) {
		if (!pump_out(p)) {
			/* nobody holds the job's terminal any more */
			close(p->master);
			p->master = -1;
		}
	}
}

void kg_pty_close(struct kg_pty *p)
{
	if (!p->opened)
		return;
	if (p->master >= 0) {
		int fl = fcntl(p->master, F_GETFL);

		if (fl >= 0)
			(void)fcntl(p->master, F_SETFL, fl | O_NONBLOCK);
		(void)pump_out(p);
		close(p->master);
	}
	if (p->slave >= 0)
		close(p->slave);
	if (p->raw)
		(void)tcsetattr(p->user_in >= 0 ? p->user_in : 0, TCSADRAIN, &p->saved);
	if (p->master >= 0 || p->raw)
		signal(SIGWINCH, SIG_DFL);
	p->master = p->slave = -1;
	p->raw = false;
	p->opened = false;
}
