// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* events.c - consume kgate's ring buffer and describe events. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "record/events.h"
#include "kernel/caps.h"

struct kg_events {
	struct kg_event_sink sink;
	int map_fd;
	int epoll_fd;
	uint32_t map_id;
	size_t page, mask;
	volatile uint64_t *consumer_pos;	/* page 0, read-write */
	volatile uint64_t *producer_pos;	/* page 1, read-only */
	const uint8_t *data;			/* data area, mapped twice */
	size_t data_len;
	/* a delivered batch whose commit failed (disk full): it stays with the
	 * sink, nothing more is delivered, and the ring advances to held_pos
	 * once a commit succeeds; meanwhile the kernel counts what does not
	 * fit in the ring as lost */
	bool held;
	uint64_t held_pos;
	/* when a poll last delivered records (monotonic ns; at first, the
	 * open: a wake-up may have gone to nobody just before).  An event
	 * submitted without a wake-up comes less than KG_WAKE_NS after the
	 * last wake-up, which a delivering poll follows: polling every
	 * KG_WAKE_MS until 2 * KG_WAKE_NS after it takes every such event. */
	uint64_t delivered_ns;
};

/* The BPF ring buffer layout (kernel/bpf/ringbuf.c): a consumer page, a
 * producer page, then the data area mapped twice so a record that wraps
 * reads contiguously.  Each record: u32 length (+ busy/discard bits),
 * u32 page offset, then the sample, rounded up to 8 bytes. */
#define RB_BUSY_BIT	(1u << 31)
#define RB_DISCARD_BIT	(1u << 30)
#define RB_HDR_SZ	8

struct kg_events *kg_events_open(struct kg_loader *l, const struct kg_event_sink *sink)
{
	struct bpf_map_info info = {};
	__u32 info_len = sizeof(info);
	struct epoll_event ee = { .events = EPOLLIN };
	struct kg_events *ev;
	void *p;

	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return NULL;
	ev->sink = *sink;
	ev->epoll_fd = -1;
	ev->delivered_ns = kg_now_mono_ns();
	ev->map_fd = kg_loader_map_fd(l, "kg_events");
	if (ev->map_fd < 0 || bpf_obj_get_info_by_fd(ev->map_fd, &info, &info_len) ||
	    info.type != BPF_MAP_TYPE_RINGBUF) {
		kg_err("events: the kg_events ring buffer is not loaded");
		goto fail;
	}
	ev->map_id = info.id;
	ev->page = sysconf(_SC_PAGESIZE);
	ev->data_len = info.max_entries;
	ev->mask = info.max_entries - 1;
	p = mmap(NULL, ev->page, PROT_READ | PROT_WRITE, MAP_SHARED, ev->map_fd, 0);
	if (p == MAP_FAILED)
		goto fail_errno;
	ev->consumer_pos = p;
	p = mmap(NULL, ev->page + 2 * ev->data_len, PROT_READ, MAP_SHARED, ev->map_fd, ev->page);
	if (p == MAP_FAILED)
		goto fail_errno;
	ev->producer_pos = p;
	ev->data = (const uint8_t *)p + ev->page;
	ev->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epoll_fd < 0 || epoll_ctl(ev->epoll_fd, EPOLL_CTL_ADD, ev->map_fd, &ee))
		goto fail_errno;
	return ev;
fail_errno:
	kg_err("events: cannot map the ring buffer: %s", strerror(errno));
fail:
	kg_events_close(ev);
	return NULL;
}

static int consume(struct kg_events *ev)
{
	uint64_t cons = __atomic_load_n(ev->consumer_pos, __ATOMIC_ACQUIRE);
	uint64_t prod = __atomic_load_n(ev->producer_pos, __ATOMIC_ACQUIRE);
	int n = 0;

	if (ev->held) {
		/* the batch is already with the sink: commit it, never re-deliver */
		if (ev->sink.commit && ev->sink.commit(ev->sink.ctx))
			return -EIO;
		__atomic_store_n(ev->consumer_pos, ev->held_pos, __ATOMIC_RELEASE);
		ev->held = false;
		cons = ev->held_pos;
	}
	while (cons < prod) {
		const uint32_t *hdr = (const uint32_t *)(ev->data + (cons & ev->mask));
		uint32_t len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
		uint64_t next;

		if (len & RB_BUSY_BIT)
			break;		/* still being written: next time */
		next = cons + ((RB_HDR_SZ + (len & ~RB_DISCARD_BIT) + 7) & ~7ull);
		if (!(len & RB_DISCARD_BIT) && len >= sizeof(struct kg_event)) {
			/* a sink that cannot take a record (out of memory) gets it
			 * again next time: the ring stops before it */
			if (ev->sink.event(ev->sink.ctx, (const struct kg_event *)(hdr + 2), next))
				break;
			n++;
		}
		cons = next;
	}
	if (n)
		ev->delivered_ns = kg_now_mono_ns();
	if (cons == *ev->consumer_pos)
		return 0;
	/* durable first, then advance: a crash in between re-delivers */
	if (n && ev->sink.commit && ev->sink.commit(ev->sink.ctx)) {
		ev->held = true;
		ev->held_pos = cons;
		return -EIO;
	}
	__atomic_store_n(ev->consumer_pos, cons, __ATOMIC_RELEASE);
	return n;
}

bool kg_events_pending(const struct kg_events *ev)
{
	return __atomic_load_n(ev->producer_pos, __ATOMIC_ACQUIRE) !=
	       __atomic_load_n(ev->consumer_pos, __ATOMIC_ACQUIRE);
}

int kg_events_timeout_ms(const struct kg_events *ev, int timeout_ms)
{
	if ((kg_now_mono_ns() - ev->delivered_ns < 2 * KG_WAKE_NS || kg_events_pending(ev)) &&
	    (timeout_ms < 0 || timeout_ms > KG_WAKE_MS))
		return KG_WAKE_MS;
	return timeout_ms;
}

bool kg_events_held(const struct kg_events *ev)
{
	return ev->held;
}

int kg_events_poll(struct kg_events *ev, int timeout_ms)
{
	struct epoll_event e;

	if (timeout_ms && epoll_wait(ev->epoll_fd, &e, 1, kg_events_timeout_ms(ev, timeout_ms)) < 0 &&
	    errno != EINTR)
		return -errno;
	return consume(ev);
}

int kg_events_drain(struct kg_events *ev)
{
	int total = 0, n;

	while ((n = consume(ev)) > 0)
		total += n;
	return n < 0 ? n : total;
}

int kg_events_epoll_fd(const struct kg_events *ev)
{
	return ev->epoll_fd;
}

uint32_t kg_events_ring_id(const struct kg_events *ev)
{
	return ev->map_id;
}

void kg_events_skip_to(struct kg_events *ev, uint64_t pos)
{
	uint64_t cons = *ev->consumer_pos, prod = *ev->producer_pos;

	/* only forward, and only within what the producer has written */
	if (pos > cons && pos <= prod)
		__atomic_store_n(ev->consumer_pos, pos, __ATOMIC_RELEASE);
}

void kg_events_close(struct kg_events *ev)
{
	if (!ev)
		return;
	if (ev->producer_pos)
		munmap((void *)ev->producer_pos, ev->page + 2 * ev->data_len);
	if (ev->consumer_pos)
		munmap((void *)ev->consumer_pos, ev->page);
	if (ev->epoll_fd >= 0)
		close(ev->epoll_fd);
	free(ev);
}

int kg_events_wait_consumed(struct kg_loader *l, int timeout_ms)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int fd = kg_loader_map_fd(l, "kg_events"), err = 0;
	const volatile uint64_t *consumer_pos, *producer_pos;
	uint64_t target, deadline;
	void *p;

	if (fd < 0)
		return -ENOENT;
	/* the consumer page and the producer page, read-only: the consumer
	 * alone may write its position */
	p = mmap(NULL, 2 * page, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	consumer_pos = p;
	producer_pos = (const volatile uint64_t *)((const char *)p + page);
	target = __atomic_load_n(producer_pos, __ATOMIC_ACQUIRE);
	deadline = kg_now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	/* no event to wait on: the position is memory the consumer writes;
	 * usually it is there already (a job that made no event) */
	while (__atomic_load_n(consumer_pos, __ATOMIC_ACQUIRE) < target) {
		if (kg_now_mono_ns() >= deadline) {
			err = -ETIMEDOUT;
			break;
		}
		usleep(1000);
	}
	munmap(p, 2 * page);
	return err;
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

	if (e->flags & KG_EVF_RESIDUE) {
		snprintf(buf, len, "%.*s", KG_PATH_MAX, e->path);
		return;
	}
	switch (e->op) {
	case KG_OP_NET_CONNECT:
	case KG_OP_NET_SEND:
	case KG_OP_NET_BIND:	/* the local address bound (or listened on) */
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
	case KG_OP_SYSTEM:
		if (e->aux >= KG_SYS_OUTSIDE_BASE)
			break;	/* the path */
		if (e->aux >= KG_SYS_CAP_BASE) {
			const struct kg_cap_info *ci = kg_cap_info((int)(e->aux - KG_SYS_CAP_BASE));

			if (ci)
				snprintf(buf, len, "capability %s", ci->name);
			else
				snprintf(buf, len, "capability %u", e->aux - KG_SYS_CAP_BASE);
			return;
		}
		break;
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
		[KG_MECH_MOUNT] = "mount-ns",
	};

	return mech < KG_MECH_MAX && names[mech] ? names[mech] : "unknown";
}
