// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_unix - AF_UNIX peer rules through BPF LSM: a path socket (also reached
 * through a symlink), a datagram socket and an abstract name.  An abstract
 * socket that root made outside the job (a daemon acting for its clients)
 * is refused unless a rule names it and allows it; the job's own abstract
 * sockets and those of other users follow the rules.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "testlib.h"
#include "vt_lib.h"

static char abstract_name[64];

static int setup(struct vt *v, int *stream_fd, int *dgram_fd, int *abs_fd, int *ok_fd)
{
	char policy[2048], p[512];
	struct sockaddr_un a;
	socklen_t len;

	snprintf(abstract_name, sizeof(abstract_name), "kgvt-abs-%d", (int)getpid());
	snprintf(policy, sizeof(policy),
		 "{\"version\": 1, \"name\": \"vt-unix\","
		 " \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
		 " \"runtime\": ["
		 "  {\"id\": \"no-docker\", \"net\": {\"unix\": \"~/run/docker.sock\"}, \"decision\": \"deny\"},"
		 "  {\"id\": \"no-dgram\", \"net\": {\"unix\": \"~/run/dgram.sock\"}, \"decision\": \"deny\"},"
		 "  {\"id\": \"no-abs\", \"net\": {\"unix_abstract\": \"%s\"}, \"decision\": \"deny\"},"
		 "  {\"id\": \"yes-abs\", \"net\": {\"unix_abstract\": \"%s-granted\"}, \"decision\": \"allow\"}"
		 " ]}", abstract_name, abstract_name);
	if (vt_setup(v, policy))
		return -1;
	vt_mkdirs(v, "run");
	*stream_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	*dgram_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	*abs_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	*ok_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	vt_path(v, "run/docker.sock", a.sun_path, sizeof(a.sun_path));
	if (!ASSERT_OK(bind(*stream_fd, (void *)&a, sizeof(a)), "bind") || listen(*stream_fd, 8))
		return vt_teardown(v), -1;
	vt_path(v, "run/dgram.sock", a.sun_path, sizeof(a.sun_path));
	if (!ASSERT_OK(bind(*dgram_fd, (void *)&a, sizeof(a)), "bind dgram"))
		return vt_teardown(v), -1;
	vt_path(v, "run/ok.sock", a.sun_path, sizeof(a.sun_path));
	if (!ASSERT_OK(bind(*ok_fd, (void *)&a, sizeof(a)), "bind ok") || listen(*ok_fd, 8))
		return vt_teardown(v), -1;
	memset(a.sun_path, 0, sizeof(a.sun_path));
	memcpy(a.sun_path + 1, abstract_name, strlen(abstract_name));
	len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract_name);
	if (!ASSERT_OK(bind(*abs_fd, (void *)&a, len), "bind abstract") || listen(*abs_fd, 8))
		return vt_teardown(v), -1;
	if (symlink(vt_path(v, "run/docker.sock", p, sizeof(p)),
		    vt_path(v, "link.sock", a.sun_path, sizeof(a.sun_path))) || vt_install(v))
		return vt_teardown(v), -1;
	return 0;
}

static int connect_path(struct vt *v, void *rel)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), rc;

	vt_path(v, rel, a.sun_path, sizeof(a.sun_path));
	rc = connect(fd, (void *)&a, sizeof(a));
	rc = rc < 0 ? errno : 0;
	close(fd);
	return rc;
}

static int send_dgram(struct vt *v, void *rel)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ssize_t n;

	vt_path(v, rel, a.sun_path, sizeof(a.sun_path));
	n = sendto(fd, "x", 1, 0, (void *)&a, sizeof(a));
	close(fd);
	return n < 0 ? errno : 0;
}

static int connect_abstract(struct vt *v, void *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), rc;
	socklen_t len;

	(void)v;
	memcpy(a.sun_path + 1, name, strlen(name));
	len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
	rc = connect(fd, (void *)&a, len);
	rc = rc < 0 ? errno : 0;
	close(fd);
	return rc;
}

/* A listening abstract socket named `name`, -1 on failure. */
static int listen_abstract(const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memcpy(a.sun_path + 1, name, strlen(name));
	if (fd < 0 || bind(fd, (void *)&a, offsetof(struct sockaddr_un, sun_path) + 1 +
			   strlen(name)) || listen(fd, 8)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* In the job: its own abstract listener, then a connect to it. */
static int own_abstract(struct vt *v, void *name)
{
	int fd = listen_abstract(name), rc;

	if (fd < 0)
		return -errno;
	rc = connect_abstract(v, name);
	close(fd);
	return rc;
}

/* A listener made by `nobody` outside the job: the child keeps it open
 * until killed.  Its pid, or -1. */
static pid_t nobody_listener(const char *name)
{
	int ready[2];
	char c = 0;
	pid_t pid;

	if (pipe(ready))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		if (setgid(65534) || setuid(65534) || listen_abstract(name) < 0)
			_exit(1);
		c = 1;
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	if (pid < 0 || read(ready[0], &c, 1) != 1 || c != 1) {
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		pid = -1;
	}
	close(ready[0]);
	return pid;
}

TEST(unix_path_dgram_abstract)
{
	int s, d, ab, ok, other;
	char other_name[64];
	const struct kg_event *e;
	struct vt v;

	if (setup(&v, &s, &d, &ab, &ok))
		return;
	ASSERT_OK(vt_run(&v, connect_path, "run/ok.sock"), "an allowed socket");
	ASSERT_TRUE(vt_refused(vt_run(&v, connect_path, "run/docker.sock")), "docker.sock refused");
	e = vt_event(&v, KG_OP_UNIX_CONNECT, KG_DEC_DENY, "no-docker");
	if (ASSERT_TRUE(e != NULL, "event"))
		ASSERT_HAS_SUBSTR(e->path, "docker.sock/run/", "event path");
	else
		vt_dump_events(&v);
	ASSERT_TRUE(vt_refused(vt_run(&v, connect_path, "link.sock")), "through a symlink");
	ASSERT_TRUE(vt_refused(vt_run(&v, send_dgram, "run/dgram.sock")), "datagram sendto");
	ASSERT_TRUE(vt_event(&v, KG_OP_UNIX_CONNECT, KG_DEC_DENY, "no-dgram") != NULL, "dgram event");
	ASSERT_TRUE(vt_refused(vt_run(&v, connect_abstract, abstract_name)), "abstract name");
	ASSERT_TRUE(vt_event(&v, KG_OP_UNIX_CONNECT, KG_DEC_DENY, "no-abs") != NULL, "abstract event");
	/* another abstract name that root made outside the job: a daemon's,
	 * refused whatever the class default says, as self-protection */
	snprintf(other_name, sizeof(other_name), "%s-other", abstract_name);
	other = listen_abstract(other_name);
	ASSERT_TRUE(other >= 0, "root's abstract listener outside the job");
	ASSERT_TRUE(vt_refused(vt_run(&v, connect_abstract, other_name)),
		    "root's abstract socket outside the job refused");
	e = vt_event(&v, KG_OP_SYSTEM, KG_DEC_DENY, NULL);
	if (ASSERT_TRUE(e != NULL, "recorded as op system")) {
		ASSERT_EQ(e->aux, KG_SYS_ABSTRACT, "aux: an abstract socket root made outside");
		ASSERT_HAS_SUBSTR(e->path, other_name, "the event names it");
	} else {
		vt_dump_events(&v);
	}
	close(other);
	/* a rule that names it and allows it lets the job through */
	snprintf(other_name, sizeof(other_name), "%s-granted", abstract_name);
	other = listen_abstract(other_name);
	ASSERT_TRUE(other >= 0, "root's granted abstract listener");
	ASSERT_OK(vt_run(&v, connect_abstract, other_name), "a rule allowing the name");
	close(other);
	/* the job's own abstract socket, and another user's: the rules decide */
	snprintf(other_name, sizeof(other_name), "%s-own", abstract_name);
	ASSERT_OK(vt_run(&v, own_abstract, other_name), "the job's own abstract socket");
	snprintf(other_name, sizeof(other_name), "%s-nobody", abstract_name);
	{
		pid_t nb = nobody_listener(other_name);

		if (ASSERT_TRUE(nb > 0, "nobody's abstract listener outside the job")) {
			ASSERT_OK(vt_run(&v, connect_abstract, other_name),
				  "another user's abstract socket: class default allow");
			kill(nb, SIGKILL);
			waitpid(nb, NULL, 0);
		}
	}
	ASSERT_OK(vt_run_outside(&v, connect_path, "run/docker.sock"), "ungoverned: connects");
	ASSERT_OK(vt_run_outside(&v, connect_abstract, abstract_name), "ungoverned: abstract");
	close(s); close(d); close(ab); close(ok);
	vt_teardown(&v);
}
