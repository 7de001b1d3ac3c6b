// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* events.c - consume kgate's ring buffer and describe events. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "common.h"
#include "events.h"

struct kg_events {
	struct ring_buffer *rb;
	kg_event_fn fn;
	void *ctx;
};

static int on_sample(void *ctx, void *data, size_t size)
{
	struct kg_events *ev = ctx;

	if (size < sizeof(struct kg_event))
		return 0;	/* not ours (layout mismatch): ignore, counted by caller */
	return ev->fn(ev->ctx, data);
}

struct kg_events *kg_events_open(struct kg_loader *l, kg_event_fn fn, void *ctx)
{
	struct kg_events *ev;
	int fd = kg_loader_map_fd(l, "kg_events");

	if (fd < 0) {
		kg_err("events: ring buffer map is not loaded");
		return NULL;
	}
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return NULL;
	ev->fn = fn;
	ev->ctx = ctx;
	ev->rb = ring_buffer__new(fd, on_sample, ev, NULL);
	if (!ev->rb) {
		kg_err("events: cannot open ring buffer: %s", strerror(errno));
		free(ev);
		return NULL;
	}
	return ev;
}

int kg_events_poll(struct kg_events *ev, int timeout_ms)
{
	int n = ring_buffer__poll(ev->rb, timeout_ms);

	return n == -EINTR ? 0 : n;
}

int kg_events_drain(struct kg_events *ev)
{
	return ring_buffer__consume(ev->rb);
}

int kg_events_epoll_fd(const struct kg_events *ev)
{
	return ring_buffer__epoll_fd(ev->rb);
}

void kg_events_close(struct kg_events *ev)
{
	if (!ev)
		return;
	ring_buffer__free(ev->rb);
	free(ev);
}

/* The kernel writes path components leaf first ("c/b/a/"); put them back
 * in order ("/a/b/c"). */
static void unreverse_path(const char *rev, char *buf, size_t len)
{
	const char *end = rev + strnlen(rev, KG_PATH_MAX);
	size_t used = 0;

	buf[0] = '\0';
	while (end > rev) {
		const char *start;
		size_t n;

		while (end > rev && end[-1] == '/')
			end--;
		if (end == rev)
			break;
		start = end;
		while (start > rev && start[-1] != '/')
			start--;
		n = end - start;
		if (!(n == 1 && start[0] == '/') && used + n + 2 < len) {
			buf[used++] = '/';
			memcpy(buf + used, start, n);
			used += n;
			buf[used] = '\0';
		}
		end = start;
	}
	if (!used && len > 1)
		snprintf(buf, len, "/");
}

void kg_event_target(const struct kg_event *e, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const char *proto;

	switch (e->op) {
	case KG_OP_NET_CONNECT:
	case KG_OP_NET_SEND:
		proto = e->target.net.proto == 6 ? "tcp" : e->target.net.proto == 17 ? "udp" : "ip";
		if (!memcmp(e->target.net.addr, v4mapped, 12)) {
			inet_ntop(AF_INET, &e->target.net.addr[12], addr, sizeof(addr));
			snprintf(buf, len, "%s:%u/%s", addr, e->target.net.port, proto);
		} else {
			inet_ntop(AF_INET6, e->target.net.addr, addr, sizeof(addr));
			snprintf(buf, len, "[%s]:%u/%s", addr, e->target.net.port, proto);
		}
		return;
	case KG_OP_SOCKET_CREATE:
		snprintf(buf, len, "socket family=%u type=%u protocol=%u", e->family, e->aux,
			 e->target.net.proto);
		return;
	case KG_OP_SIGNAL:
	case KG_OP_PTRACE:
		snprintf(buf, len, "pid %u (arg %u)", (unsigned int)e->target.file.ino, e->aux);
		return;
	default:
		break;
	}
	if (e->path[0]) {
		if (e->flags & KG_EVF_PATH_REVERSED)
			unreverse_path(e->path, buf, len);
		else
			snprintf(buf, len, "%.*s", KG_PATH_MAX, e->path);
		if (e->flags & KG_EVF_PATH_TRUNCATED) {
			size_t n = strlen(buf);

			snprintf(buf + n, len - n, " (truncated; dev %llu ino %llu)",
				 (unsigned long long)e->target.file.dev,
				 (unsigned long long)e->target.file.ino);
		}
		return;
	}
	if (e->target.file.ino)
		snprintf(buf, len, "dev %llu ino %llu", (unsigned long long)e->target.file.dev,
			 (unsigned long long)e->target.file.ino);
	else
		snprintf(buf, len, "-");
}

const char *kg_event_kind_name(unsigned int kind)
{
	static const char *const names[KG_EV_MAX] = {
		[KG_EV_DECISION] = "decision",
		[KG_EV_ESCALATION] = "escalation",
		[KG_EV_THROTTLE] = "throttle",
		[KG_EV_COOLDOWN_START] = "cooldown_start",
	};

	return kind < KG_EV_MAX && names[kind] ? names[kind] : "unknown";
}

const char *kg_mechanism_name(unsigned int mech)
{
	static const char *const names[KG_MECH_MAX] = {
		[KG_MECH_NONE] = "none",
		[KG_MECH_BPF_LSM] = "bpf-lsm",
		[KG_MECH_CGROUP_BPF] = "cgroup-bpf",
		[KG_MECH_LANDLOCK] = "landlock",
		[KG_MECH_SECCOMP] = "seccomp",
		[KG_MECH_CONTROLLER] = "controller",
	};

	return mech < KG_MECH_MAX && names[mech] ? names[mech] : "unknown";
}
