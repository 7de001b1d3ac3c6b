// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kaudit.c - Landlock refusals from the kernel audit log (see kaudit.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "record/kaudit.h"

#ifndef AUDIT_NLGRP_READLOG
#define AUDIT_NLGRP_READLOG 1
#endif
#ifndef AUDIT_SECCOMP
#define AUDIT_SECCOMP 1326
#endif
#define KA_LANDLOCK_ACCESS 1423	/* AUDIT_LANDLOCK_ACCESS (Linux 6.15) */
#define KA_LANDLOCK_DOMAIN 1424	/* AUDIT_LANDLOCK_DOMAIN */

#define KA_PENDING 128		/* refusals of a domain not known yet */

struct pending {
	struct kg_kaudit_denial d;
	bool used;
};

struct kg_kaudit {
	int fd;
	pid_t pid;			/* the job's first process */
	unsigned int ses;		/* the job's audit session, 0 = none */
	char domain[24];		/* its domain, once the kernel named it */
	uint64_t reported;
	int64_t kernel_denials;		/* from the deallocation record, -1 before */
	bool deallocated;
	struct pending pend[KA_PENDING];
	size_t next;
	char buf[16384];
};

static int audit_request(int fd, uint16_t type, const void *data, size_t len, void *reply,
			 size_t replylen)
{
	struct sockaddr_nl to = { .nl_family = AF_NETLINK };
	struct {
		struct nlmsghdr h;
		char data[128];
	} req;
	char buf[8192];
	int i;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(len);
	req.h.nlmsg_type = type;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.h.nlmsg_seq = 1;
	if (len)
		memcpy(req.data, data, len);
	if (sendto(fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
		return -errno;
	for (i = 0; i < 4; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		ssize_t n;

		if (poll(&p, 1, 1000) <= 0)
			return -ETIMEDOUT;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < (ssize_t)sizeof(*h))
			return n < 0 ? -errno : -EPROTO;
		if (h->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *e = NLMSG_DATA(h);

			if (e->error)
				return e->error;
			if (!reply)
				return 0;
			continue;	/* the ack; the reply follows */
		}
		if (reply && h->nlmsg_type == type) {
			memcpy(reply, NLMSG_DATA(h), replylen);
			return 0;
		}
	}
	return -EPROTO;
}

/* Audit on, so that Landlock logs (it logs nothing while audit is off). */
static int ensure_enabled(char *said, size_t saidlen)
{
	struct audit_status st;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT), ret;

	if (fd < 0)
		return -errno;
	memset(&st, 0, sizeof(st));
	ret = audit_request(fd, AUDIT_GET, NULL, 0, &st, sizeof(st));
	if (!ret && st.enabled == 0) {
		struct audit_status set = { .mask = AUDIT_STATUS_ENABLED, .enabled = 1 };

		ret = audit_request(fd, AUDIT_SET, &set, sizeof(set), NULL, 0);
		if (!ret && said)
			snprintf(said, saidlen, "kernel audit was off: turned on (it stays on; "
				 "without auditd the kernel also prints its records, rate-limited)");
	}
	close(fd);
	return ret;
}

struct kg_kaudit *kg_kaudit_open(char *why, size_t whylen, char *said, size_t saidlen)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = 1u << (AUDIT_NLGRP_READLOG - 1) };
	struct kg_kaudit *k;
	int ret, size = 4 << 20;

	if (said && saidlen)
		said[0] = '\0';
	ret = ensure_enabled(said, saidlen);
	if (ret) {
		snprintf(why, whylen, "cannot turn kernel audit on: %s", strerror(-ret));
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	k->kernel_denials = -1;
	k->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_AUDIT);
	if (k->fd < 0 || bind(k->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, whylen, "cannot read the kernel audit log: %s", strerror(errno));
		kg_kaudit_close(k);
		return NULL;
	}
	/* a burst of refusals must not overflow our socket */
	if (setsockopt(k->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(k->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	return k;
}

void kg_kaudit_close(struct kg_kaudit *k)
{
	if (!k)
		return;
	if (k->fd >= 0)
		close(k->fd);
	free(k);
}

int kg_kaudit_fd(const struct kg_kaudit *k)
{
	return k ? k->fd : -1;
}

void kg_kaudit_watch(struct kg_kaudit *k, pid_t pid)
{
	if (k)
		k->pid = pid;
}

void kg_kaudit_watch_session(struct kg_kaudit *k, unsigned int ses)
{
	if (k)
		k->ses = ses;
}

int kg_kaudit_new_session(unsigned int uid)
{
	char buf[32];
	ssize_t n;
	int fd = open("/proc/self/loginuid", O_RDWR | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0) {
		close(fd);
		return n < 0 ? -errno : -EIO;
	}
	buf[n] = '\0';
	/* keep who logged in; a job outside any login gets the run-as uid */
	if (!strncmp(buf, "4294967295", 10))
		n = snprintf(buf, sizeof(buf), "%u", uid);
	if (pwrite(fd, buf, (size_t)n, 0) != n)
		ret = -errno;
	close(fd);
	return ret;
}

unsigned int kg_kaudit_session_of(pid_t pid)
{
	char path[64], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/sessionid", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtoul(buf, NULL, 10) == 4294967295ul ? 0 : (unsigned int)strtoul(buf, NULL, 10);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
		: c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The value of ` key=` in an audit record: quoted, hex-encoded (what audit
 * does to strings with spaces or control characters) or bare. */
static bool field(const char *msg, const char *key, bool untrusted, char *out, size_t len)
{
	size_t klen = strlen(key), n = 0;
	const char *p = msg, *v, *e;

	for (;;) {
		p = strstr(p, key);
		if (!p)
			return false;
		if ((p == msg || p[-1] == ' ') && p[klen] == '=')
			break;
		p += klen;
	}
	v = p + klen + 1;
	if (*v == '"') {
		e = strchr(v + 1, '"');
		if (!e)
			return false;
		n = (size_t)(e - v - 1);
		if (n >= len)
			n = len - 1;
		memcpy(out, v + 1, n);
		out[n] = '\0';
		return true;
	}
	e = v + strcspn(v, " \n");
	if (untrusted && (e - v) % 2 == 0 && e > v) {
		const char *q;

		for (q = v; q < e && hexval(*q) >= 0; q++)
			;
		if (q == e) {
			for (q = v; q < e && n + 1 < len; q += 2)
				out[n++] = (char)(hexval(q[0]) * 16 + hexval(q[1]));
			out[n] = '\0';
			return true;
		}
	}
	n = (size_t)(e - v);
	if (n >= len)
		n = len - 1;
	memcpy(out, v, n);
	out[n] = '\0';
	return true;
}

static int report(struct kg_kaudit *k, const struct kg_kaudit_denial *d, kg_kaudit_cb cb, void *ctx)
{
	if (!d->seccomp)
		k->reported++;	/* against the domain's own count */
	if (cb)
		cb(ctx, d);
	return 1;
}

static int handle_access(struct kg_kaudit *k, const char *msg, kg_kaudit_cb cb, void *ctx)
{
	struct kg_kaudit_denial d;
	char opid[24];

	memset(&d, 0, sizeof(d));
	if (!field(msg, "domain", false, d.domain, sizeof(d.domain)) ||
	    !field(msg, "blockers", false, d.blockers, sizeof(d.blockers)))
		return 0;
	if (!field(msg, "path", true, d.target, sizeof(d.target))) {
		if (field(msg, "opid", false, opid, sizeof(opid)))
			snprintf(d.target, sizeof(d.target), "pid %s", opid);
		else if (!field(msg, "name", true, d.target, sizeof(d.target)))
			snprintf(d.target, sizeof(d.target), "-");
	}
	if (k->domain[0])
		return strcmp(d.domain, k->domain) ? 0 : report(k, &d, cb, ctx);
	/* the domain is named (with its creator) right after its first refusal */
	k->pend[k->next].d = d;
	k->pend[k->next].used = true;
	k->next = (k->next + 1) % KA_PENDING;
	return 0;
}

/* "... ses=N pid=P comm=... exe=... sig=0 arch=c000003e syscall=165 ... code=0x50001" */
static int handle_seccomp(struct kg_kaudit *k, const char *msg, kg_kaudit_cb cb, void *ctx)
{
	struct kg_kaudit_denial d;
	char v[64];

	if (!k->ses || !field(msg, "ses", false, v, sizeof(v)) || strtoul(v, NULL, 10) != k->ses)
		return 0;
	memset(&d, 0, sizeof(d));
	d.seccomp = true;
	d.pid = field(msg, "pid", false, v, sizeof(v)) ? atol(v) : -1;
	field(msg, "comm", true, d.comm, sizeof(d.comm));
	field(msg, "exe", true, d.exe, sizeof(d.exe));
	d.syscall = field(msg, "syscall", false, v, sizeof(v)) ? atoi(v) : -1;
	d.arch = field(msg, "arch", false, v, sizeof(v)) ? (uint32_t)strtoul(v, NULL, 16) : 0;
	d.code = field(msg, "code", false, v, sizeof(v)) ? (uint32_t)strtoul(v, NULL, 0) : 0;
	return report(k, &d, cb, ctx);
}

static int handle_domain(struct kg_kaudit *k, const char *msg, kg_kaudit_cb cb, void *ctx)
{
	char domain[24], status[24], pid[24], denials[24];
	size_t i, j;
	int n = 0;

	if (!field(msg, "domain", false, domain, sizeof(domain)) ||
	    !field(msg, "status", false, status, sizeof(status)))
		return 0;
	if (!strcmp(status, "allocated")) {
		if (k->domain[0] || !k->pid || !field(msg, "pid", false, pid, sizeof(pid)) ||
		    atol(pid) != (long)k->pid)
			return 0;
		kg_strlcpy(k->domain, domain, sizeof(k->domain));
		for (i = 0; i < KA_PENDING; i++) {	/* oldest first */
			j = (k->next + i) % KA_PENDING;
			if (k->pend[j].used && !strcmp(k->pend[j].d.domain, domain))
				n += report(k, &k->pend[j].d, cb, ctx);
			k->pend[j].used = false;
		}
		return n;
	}
	if (!strcmp(status, "deallocated") && k->domain[0] && !strcmp(domain, k->domain)) {
		k->deallocated = true;
		if (field(msg, "denials", false, denials, sizeof(denials)))
			k->kernel_denials = atoll(denials);
	}
	return 0;
}

int kg_kaudit_poll(struct kg_kaudit *k, kg_kaudit_cb cb, void *ctx)
{
	int n = 0;

	if (!k || k->fd < 0)
		return 0;
	for (;;) {
		ssize_t len = recv(k->fd, k->buf, sizeof(k->buf) - 1, MSG_DONTWAIT);
		struct nlmsghdr *h = (struct nlmsghdr *)k->buf;
		char *msg, *body;
		size_t mlen;

		if (len < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue;	/* ENOBUFS: lost; the domain's count says how many */
			return errno == EAGAIN || errno == EWOULDBLOCK ? n : -errno;
		}
		/* one record per datagram; audit's nlmsg_len is not always
		 * trustworthy, the datagram's length is */
		if ((size_t)len < NLMSG_HDRLEN || (h->nlmsg_type != KA_LANDLOCK_ACCESS &&
						   h->nlmsg_type != KA_LANDLOCK_DOMAIN &&
						   h->nlmsg_type != AUDIT_SECCOMP))
			continue;
		msg = k->buf + NLMSG_HDRLEN;
		mlen = (size_t)len - NLMSG_HDRLEN;
		if (h->nlmsg_len >= NLMSG_HDRLEN && h->nlmsg_len - NLMSG_HDRLEN < mlen)
			mlen = h->nlmsg_len - NLMSG_HDRLEN;
		msg[mlen] = '\0';
		body = strstr(msg, "): ");
		body = body ? body + 3 : msg;
		if (h->nlmsg_type == AUDIT_SECCOMP)
			n += handle_seccomp(k, body, cb, ctx);
		else
			n += h->nlmsg_type == KA_LANDLOCK_ACCESS ? handle_access(k, body, cb, ctx)
								 : handle_domain(k, body, cb, ctx);
	}
}

void kg_kaudit_counts(const struct kg_kaudit *k, uint64_t *reported, int64_t *kernel_denials)
{
	*reported = k ? k->reported : 0;
	*kernel_denials = k ? k->kernel_denials : -1;
}

int kg_kaudit_finish(struct kg_kaudit *k, int timeout_ms, kg_kaudit_cb cb, void *ctx)
{
	struct timespec t0, t;
	int n = 0, ret;

	if (!k)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { .fd = k->fd, .events = POLLIN };
		long ms;

		ret = kg_kaudit_poll(k, cb, ctx);
		if (ret < 0)
			return ret;
		n += ret;
		/* a domain the kernel never named refused nothing: nothing to wait for */
		if (k->deallocated || !k->domain[0])
			return n;
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= timeout_ms)
			return n;
		poll(&p, 1, (int)(timeout_ms - ms));
	}
}

const char *kg_kaudit_op(const char *blockers)
{
	static const struct {
		const char *prefix, *op;
	} map[] = {
		{ "fs.read_", "read" }, { "fs.write_file", "write" }, { "fs.truncate", "write" },
		{ "fs.make_", "create" }, { "fs.remove_", "unlink" }, { "fs.refer", "rename" },
		{ "fs.execute", "exec" }, { "fs.ioctl_dev", "ioctl" },
		{ "fs.change_topology", "mount" }, { "scope.signal", "signal" },
		{ "scope.abstract_unix_socket", "unix_connect" }, { "net.", "connect" },
		{ "ptrace", "ptrace" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(map); i++)
		if (!strncmp(blockers, map[i].prefix, strlen(map[i].prefix)))
			return map[i].op;
	return "other";
}
