/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * pty.h - the job's own terminal, relayed by the controller.
 *
 * A job that kept the user's terminal on fds 0-2 could push characters
 * into the user's shell (TIOCSTI), make itself the terminal's foreground
 * process group (the kernel then stops kgate's own output with SIGTTOU),
 * or steal the terminal.  So the job gets a session of its own (setsid, in
 * launch.c) and, when any of fds 0-2 is a terminal, a pseudo-terminal of
 * its own in place of those fds, as `systemd-run --pty` and sudo's
 * use_pty do: kgate copies the user's input to it and its output back.
 * Fds 0-2 that are not terminals (pipes, files) are passed unchanged.
 *
 * While relaying, the user's terminal is put in raw input mode (so ^C,
 * ^Z and line editing reach the job's terminal, whose settings are a copy
 * of the user's); output processing is left on, so kgate's own messages
 * still print normally.  The settings are restored when the job ends.
 */
#ifndef KGATE_PTY_H
#define KGATE_PTY_H

#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

struct kg_pty {
	bool opened;		/* kg_pty_open ran (a zeroed struct is "none") */
	int master;		/* kgate's side, -1 = no pty (no fd 0-2 is a terminal) */
	int slave;		/* the job's side, until the child has it */
	bool replace[3];	/* the child gets the slave on these of fds 0-2 */
	int user_in;		/* the user's terminal we read from (0), or -1 */
	int user_out;		/* the user's terminal we write the job's output to */
	bool raw;		/* user_in's settings were changed: restore them */
	struct termios saved;
	char in[4096];		/* user input not yet accepted by the job's terminal */
	size_t inlen, inoff;
};

/* Decide and, if any of fds 0-2 is a terminal, open the job's pty (copy of
 * the user's terminal settings and window size). 0 or -errno; p->master
 * is -1 when no pty is needed. */
int kg_pty_open(struct kg_pty *p);

/* After the child has its copy: close our slave, make the master
 * non-blocking, put the user's terminal in raw input mode (only when kgate
 * is in its foreground), follow window size changes. */
void kg_pty_start(struct kg_pty *p);

/* The two pollfds the relay needs (fds -1 when idle). */
void kg_pty_pollfds(const struct kg_pty *p, int *in_fd, short *in_ev, int *m_fd, short *m_ev);

/* Move data for the revents of those pollfds; also applies a pending
 * window size change. */
void kg_pty_handle(struct kg_pty *p, short in_rev, short m_rev);

/* Copy what the job's terminal still holds to the user, restore the user's
 * terminal, close everything. Safe on a never-opened pty. */
void kg_pty_close(struct kg_pty *p);

#endif
