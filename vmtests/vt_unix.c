// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_unix - AF_UNIX peer rules through BPF LSM: a path socket (also reached
 * through a symlink), a datagram socket and an abstract name.
 */
#include <sys/socket.h>
#include <sys/un.h>
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
		 "  {\"id\": \"no-abs\", \"net\": {\"unix_abstract\": \"%s\"}, \"decision\": \"deny\"}"
		 " ]}", abstract_name);
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

TEST(unix_path_dgram_abstract)
{
	int s, d, ab, ok, other;
	char other_name[64];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
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
	/* another abstract name is fine */
	snprintf(other_name, sizeof(other_name), "%s-other", abstract_name);
	other = socket(AF_UNIX, SOCK_STREAM, 0);
	memcpy(a.sun_path + 1, other_name, strlen(other_name));
	if (ASSERT_OK(bind(other, (void *)&a, offsetof(struct sockaddr_un, sun_path) + 1 +
			   strlen(other_name)), "bind other") && !listen(other, 8))
		ASSERT_OK(vt_run(&v, connect_abstract, other_name), "another abstract name");
	ASSERT_OK(vt_run_outside(&v, connect_path, "run/docker.sock"), "ungoverned: connects");
	ASSERT_OK(vt_run_outside(&v, connect_abstract, abstract_name), "ungoverned: abstract");
	close(other);
	close(s); close(d); close(ab); close(ok);
	vt_teardown(&v);
}
