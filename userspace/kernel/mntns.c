// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* mntns.c - the job's own mount namespace (degraded mode). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common.h"
#include "kernel/mntns.h"

/* The mount point (5th field) of one mountinfo line, in place. */
static char *mount_point(char *line)
{
	char *p = line;
	int field;

	for (field = 1; field < 5 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p)
		return NULL;
	p[strcspn(p, " ")] = '\0';
	kg_mountinfo_unescape(p);
	return p;
}

/* "/" is not a mount point: make each visible mount a slave.  Mounts
 * stacked on the same point, or hidden under later ones, answer EINVAL for
 * the ones underneath; their propagation cannot reach anything we change. */
static int slave_each_visible_mount(void)
{
	static char buf[1 << 16];	/* static: no allocation in the child */
	size_t used = 0;
	ssize_t n;
	int fd, ret = 0, done = 0;

	fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		char *line, *nl, *mp;

		n = read(fd, buf + used, sizeof(buf) - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		used += (size_t)n;
		buf[used] = '\0';
		line = buf;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			mp = mount_point(line);
			if (mp && mount(NULL, mp, NULL, MS_REC | MS_SLAVE, NULL) == 0)
				done++;
			else if (mp && errno != EINVAL && errno != ENOENT && !ret)
				ret = -errno;
			line = nl + 1;
		}
		if (n == 0)
			break;
		used = (size_t)(buf + used - line);
		memmove(buf, line, used);
		if (used == sizeof(buf) - 1) {
			ret = -E2BIG;	/* one line longer than the buffer */
			break;
		}
	}
	close(fd);
	if (!ret && !done)
		ret = -EINVAL;
	return ret;
}

int kg_mntns_make_slave(void)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	return slave_each_visible_mount();
}
