// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* hold.c - hold connect/sendto/sendmsg/sendmmsg until a human decides. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common.h"
#include "record/events.h"
#include "approve/hold.h"

#define KG_HOLD_MMSG_MAX 64	/* sendmmsg entries inspected */

struct held_call {
	uint64_t notif_id;
	uint32_t pid;
	char req_id[KG_APPR_ID_LEN + 1];
	uint64_t expires_ns;	/* of the request, CLOCK_REALTIME */
};

struct kg_hold {
	int fd;
	const struct kg_policy_doc *doc;
	struct kg_approvals *q;
	uint64_t cgid;
	uint32_t policy_id;
	char trace[40];
	struct kg_loader *loader;
	int grants_fd;		/* pinned kg_grants when no loader (owned) */
	FILE *live;
	struct seccomp_notif *req;
	struct seccomp_notif_resp *resp;
	size_t req_size, resp_size;
	struct held_call *held;
	size_t nheld, cap;
	struct kg_hold_stats st;
};

struct kg_hold *kg_hold_new(int notify_fd, const struct kg_policy_doc *doc,
			    struct kg_approvals *q, uint64_t job_cgid, uint32_t policy_id,
			    const char *trace_id, struct kg_loader *loader)
{
	struct seccomp_notif_sizes sz;
	struct kg_hold *h;

	if (notify_fd < 0 || !doc || !q) {
		errno = EINVAL;
		return NULL;
	}
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	/* the kernel's structs may be larger than our headers' */
	h->req_size = sz.seccomp_notif > sizeof(*h->req) ? sz.seccomp_notif : sizeof(*h->req);
	h->resp_size = sz.seccomp_notif_resp > sizeof(*h->resp) ? sz.seccomp_notif_resp
								 : sizeof(*h->resp);
	h->req = calloc(1, h->req_size);
	h->resp = calloc(1, h->resp_size);
	if (!h->req || !h->resp) {
		kg_hold_free(h);
		errno = ENOMEM;
		return NULL;
	}
	h->fd = notify_fd;
	h->doc = doc;
	h->q = q;
	h->cgid = job_cgid;
	h->policy_id = policy_id;
	h->loader = loader;
	h->grants_fd = -1;
	kg_strlcpy(h->trace, trace_id ? trace_id : "", sizeof(h->trace));
	return h;
}

void kg_hold_set_policy(struct kg_hold *h, const struct kg_policy_doc *doc, uint32_t policy_id)
{
	h->doc = doc;
	h->policy_id = policy_id;
}

void kg_hold_set_live(struct kg_hold *h, FILE *live)
{
	h->live = live;
}

int kg_hold_fd(const struct kg_hold *h)
{
	return h ? h->fd : -1;
}

size_t kg_hold_count(const struct kg_hold *h)
{
	return h ? h->nheld : 0;
}

void kg_hold_stats(const struct kg_hold *h, struct kg_hold_stats *out)
{
	*out = h->st;
}

/* ---- answering -------------------------------------------------------------------- */

static bool id_valid(struct kg_hold *h, uint64_t id)
{
	return ioctl(h->fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* error 0 = let the kernel run the call (and the BPF programs decide it). */
static void respond(struct kg_hold *h, uint64_t id, int error)
{
	memset(h->resp, 0, h->resp_size);
	h->resp->id = id;
	if (error) {
		h->resp->error = -error;
		h->st.refused++;
	} else {
		h->resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		h->st.continued++;
	}
	/* ENOENT: the caller died or was interrupted meanwhile; nothing to answer */
	if (ioctl(h->fd, SECCOMP_IOCTL_NOTIF_SEND, h->resp) && errno != ENOENT)
		kg_debug("hold: answer %llu: %s", (unsigned long long)id, strerror(errno));
}

void kg_hold_free(struct kg_hold *h)
{
	size_t i;

	if (!h)
		return;
	for (i = 0; i < h->nheld; i++)
		respond(h, h->held[i].notif_id, EPERM);
	if (h->grants_fd >= 0)
		close(h->grants_fd);
	free(h->held);
	free(h->req);
	free(h->resp);
	free(h);
}

/* ---- reading the caller ------------------------------------------------------------ */

static int read_mem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	char path[64];
	ssize_t n;
	int fd;

	if (!addr)
		return -EFAULT;
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	/* fallback: /proc/PID/mem (same permission check, other code path) */
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, (off_t)addr);
	close(fd);
	return n == (ssize_t)len ? 0 : -EFAULT;
}

struct sock_info {
	int domain, type, protocol;
};

/* A status field of /proc/TID/status ("Tgid", "Uid": first number). */
static long status_field(pid_t tid, const char *name)
{
	char path[64], key[32], *buf, *p;
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	snprintf(key, sizeof(key), "\n%s:", name);
	buf = kg_read_file(path, 1 << 16, NULL);
	if (!buf)
		return -1;
	p = strstr(buf, key);
	if (p)
		v = strtol(p + strlen(key), NULL, 10);
	free(buf);
	return v;
}

/* The caller's socket, seen through a duplicate of its fd.  The
 * notification names the calling thread; pidfd_open wants its process. */
static int sock_info_of(pid_t tid, int fd, struct sock_info *si)
{
	socklen_t len = sizeof(int);
	long tgid = status_field(tid, "Tgid");
	int pidfd, dup, err = 0;

	if (tgid <= 0)
		return -ESRCH;
	pidfd = (int)syscall(SYS_pidfd_open, (pid_t)tgid, 0);
	if (pidfd < 0)
		return -errno;
	dup = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	close(pidfd);
	if (dup < 0)
		return -errno;
	if (getsockopt(dup, SOL_SOCKET, SO_DOMAIN, &si->domain, &len) ||
	    getsockopt(dup, SOL_SOCKET, SO_TYPE, &si->type, &len) ||
	    getsockopt(dup, SOL_SOCKET, SO_PROTOCOL, &si->protocol, &len))
		err = -errno;	/* ENOTSOCK: not ours to judge */
	close(dup);
	return err;
}


/* Destination in IPv4-mapped IPv6 form; false for other families. */
static bool dest_of(const struct sockaddr_storage *ss, socklen_t len, uint8_t addr[16],
		    uint16_t *port)
{
	if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)ss;

		memset(addr, 0, 10);
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
		return true;
	}
	if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		memcpy(addr, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
		return true;
	}
	return false;
}

/* ---- deciding ---------------------------------------------------------------------- */

/* What the policy says about one destination: true when it needs approval
 * (key and rule filled). */
static bool needs_approval(struct kg_hold *h, const struct sockaddr_storage *ss, socklen_t len,
			   uint32_t op, uint8_t proto, struct kg_grant_key *key,
			   const struct kg_rule **rule)
{
	uint32_t net_op = op == KG_OP_NET_SEND ? KG_NET_OP_SEND : KG_NET_OP_CONNECT;
	enum kg_decision d;
	uint16_t port;
	uint8_t addr[16];

	if (!dest_of(ss, len, addr, &port))
		return false;
	*rule = kg_policy_match_net(h->doc, addr, port, proto, net_op);
	d = *rule ? (*rule)->decision : h->doc->class_default[KG_CLASS_NET];
	if (d != KG_DEC_REQUIRE_APPROVAL)
		return false;
	memset(key, 0, sizeof(*key));
	key->cgid = h->cgid;
	key->op = op;
	memcpy(key->target.net.addr, addr, 16);
	key->target.net.port = port;
	key->target.net.proto = proto;
	return true;
}

/* Would the kernel accept this action now?  Same test as kg_consume_grant,
 * without consuming: the kernel does that when the call continues. */
static bool grant_valid(struct kg_hold *h, const struct kg_grant_key *key)
{
	struct kg_grant g;
	int fd = h->loader ? kg_loader_map_fd(h->loader, "kg_grants") :
			     kg_open_pinned_map_once(&h->grants_fd, "kg_grants");

	if (fd < 0 || bpf_map_lookup_elem(fd, key, &g))
		return false;
	if (g.policy_id != h->policy_id || !g.uses_left)
		return false;
	return !g.expires_ns || g.expires_ns >= kg_now_mono_ns();
}

/* The destinations of one call: (sockaddr, len) pairs.  Returns how many,
 * 0 when the call has no destination to judge. */
struct dest {
	struct sockaddr_storage ss;
	socklen_t len;
};

static int read_msghdr_dest(pid_t pid, const struct msghdr *m, struct dest *d)
{
	memset(d, 0, sizeof(*d));
	if (!m->msg_name || !m->msg_namelen)
		return 0;
	d->len = m->msg_namelen < sizeof(d->ss) ? m->msg_namelen : sizeof(d->ss);
	return read_mem(pid, (uintptr_t)m->msg_name, &d->ss, d->len) ? -EFAULT : 1;
}

static int dests_of(const struct seccomp_notif *n, struct dest *d, size_t max, int *sockfd,
		    int *flags)
{
	const struct seccomp_data *sd = &n->data;
	pid_t pid = (pid_t)n->pid;
	struct mmsghdr mm[KG_HOLD_MMSG_MAX];
	struct msghdr m;
	size_t i, vlen, count = 0;
	int r;

	*sockfd = (int)sd->args[0];
	*flags = 0;
	if (sd->nr == __NR_connect || sd->nr == __NR_sendto) {
		uint64_t ptr = sd->nr == __NR_connect ? sd->args[1] : sd->args[4];
		socklen_t len = (socklen_t)(sd->nr == __NR_connect ? sd->args[2] : sd->args[5]);

		if (sd->nr == __NR_sendto)
			*flags = (int)sd->args[3];
		if (!ptr || !len)
			return 0;
		memset(&d[0], 0, sizeof(d[0]));
		d[0].len = len < sizeof(d[0].ss) ? len : sizeof(d[0].ss);
		return read_mem(pid, ptr, &d[0].ss, d[0].len) ? -EFAULT : 1;
	}
	if (sd->nr == __NR_sendmsg) {
		*flags = (int)sd->args[2];
		if (read_mem(pid, sd->args[1], &m, sizeof(m)))
			return -EFAULT;
		return read_msghdr_dest(pid, &m, &d[0]);
	}
	if (sd->nr == __NR_sendmmsg) {
		*flags = (int)sd->args[3];
		vlen = sd->args[2] < max ? sd->args[2] : max;
		if (vlen > KG_HOLD_MMSG_MAX)
			vlen = KG_HOLD_MMSG_MAX;
		if (!vlen || read_mem(pid, sd->args[1], mm, vlen * sizeof(mm[0])))
			return vlen ? -EFAULT : 0;
		for (i = 0; i < vlen; i++) {
			r = read_msghdr_dest(pid, &mm[i].msg_hdr, &d[count]);
			if (r < 0)
				return r;
			count += r;
		}
		return (int)count;
	}
	return 0;
}

/* The kernel op that will judge this call on this socket, or -1 when the
 * cgroup-BPF programs will not look at the destination (connected TCP
 * ignores a sendto address; raw and unix sockets are judged elsewhere). */
static int op_for(const struct seccomp_notif *n, const struct sock_info *si, int flags)
{
	if (si->domain != AF_INET && si->domain != AF_INET6)
		return -1;
	if (si->type == SOCK_STREAM) {
		if (n->data.nr == __NR_connect || (flags & MSG_FASTOPEN))
			return KG_OP_NET_CONNECT;	/* TFO reaches the connect hook */
		return -1;
	}
	if (si->type == SOCK_DGRAM)
		return n->data.nr == __NR_connect ? KG_OP_NET_CONNECT : KG_OP_NET_SEND;
	return -1;
}

static int remember(struct kg_hold *h, uint64_t id, uint32_t pid, const struct kg_approval *a)
{
	struct held_call *nv = kg_grow(h->held, &h->cap, h->nheld, sizeof(*nv), 16);

	if (!nv)
		return -ENOMEM;
	h->held = nv;
	h->held[h->nheld].notif_id = id;
	h->held[h->nheld].pid = pid;
	memcpy(h->held[h->nheld].req_id, a->id, sizeof(a->id));
	h->held[h->nheld].expires_ns = a->expires_ns;
	h->nheld++;
	h->st.held++;
	return 0;
}

/* Queue (or merge) the request for a held call; error to answer with, or
 * 0 once the call is held. */
static int hold_call(struct kg_hold *h, const struct seccomp_notif *n,
		     const struct kg_grant_key *key, const struct kg_rule *rule)
{
	struct kg_approval *in = calloc(1, sizeof(*in)), out;
	struct kg_event ev = {};
	int ret;

	if (!in)
		return EPERM;
	in->key = *key;
	ev.op = (uint8_t)key->op;
	ev.target = key->target;
	kg_event_target(&ev, in->target, sizeof(in->target));
	kg_strlcpy(in->trace_id, h->trace, sizeof(in->trace_id));
	kg_strlcpy(in->rule_id, rule ? rule->id : "default", sizeof(in->rule_id));
	kg_strlcpy(in->policy_hash, h->doc->hash, sizeof(in->policy_hash));
	in->policy_id = h->policy_id;
	in->requester_uid = (uint32_t)status_field((pid_t)n->pid, "Uid");	/* real uid, as bpf sees it */
	in->requester_pid = n->pid;
	in->held = true;
	ret = kg_approvals_request(h->q, in, &out);
	if (ret == -ENOSPC)
		kg_approvals_audit_queue_full(h->q, in);
	free(in);
	if (ret < 0)
		return EPERM;	/* no request could be queued: fail closed */
	if (remember(h, n->id, n->pid, &out))
		return EPERM;
	if (h->live)
		fprintf(h->live, "kgate: HELD %s %s (rule %s, pid %u): kgate approvals approve %s\n",
			kg_op_name(key->op), out.target, out.rule_id, n->pid, out.id);
	return 0;
}

/* Decide one notification: 0 = held, else the answer (0 error = CONTINUE
 * is expressed as -1 here to keep "held" distinct). */
#define ANSWER_CONTINUE (-1)

static int judge(struct kg_hold *h, const struct seccomp_notif *n)
{
	struct dest d[KG_HOLD_MMSG_MAX];
	struct sock_info si;
	const struct kg_rule *rule;
	struct kg_grant_key key;
	int nd, i, op, sockfd, flags;

	nd = dests_of(n, d, ARRAY_SIZE(d), &sockfd, &flags);
	if (nd <= 0)
		return ANSWER_CONTINUE;	/* no destination, or unreadable: the kernel decides */
	if (sock_info_of((pid_t)n->pid, sockfd, &si))
		return ANSWER_CONTINUE;	/* not a socket (the call will fail by itself) */
	op = op_for(n, &si, flags);
	if (op < 0)
		return ANSWER_CONTINUE;
	for (i = 0; i < nd; i++) {
		if (!needs_approval(h, &d[i].ss, d[i].len, (uint32_t)op, (uint8_t)si.protocol,
				    &key, &rule))
			continue;
		if (grant_valid(h, &key))
			continue;
		/* what we read is only trusted if the call is still the same */
		if (!id_valid(h, n->id))
			return 0;	/* gone: nothing to hold, nothing to answer */
		return hold_call(h, n, &key, rule) ? EPERM : 0;
	}
	return ANSWER_CONTINUE;
}

int kg_hold_handle(struct kg_hold *h)
{
	int r;

	memset(h->req, 0, h->req_size);
	if (ioctl(h->fd, SECCOMP_IOCTL_NOTIF_RECV, h->req)) {
		if (errno == EINTR || errno == ENOENT || errno == EAGAIN)
			return 0;	/* the caller went away before we looked */
		return -errno;
	}
	h->st.received++;
	r = judge(h, h->req);
	if (r == ANSWER_CONTINUE)
		respond(h, h->req->id, 0);
	else if (r)
		respond(h, h->req->id, r);
	return 0;
}

/* ---- resolving ---------------------------------------------------------------------- */

static void drop(struct kg_hold *h, size_t i)
{
	h->held[i] = h->held[--h->nheld];
}

int kg_hold_tick(struct kg_hold *h, uint64_t now_real_ns)
{
	struct kg_approval a;
	bool expired_some = false;
	size_t i;
	int answered = 0;

	if (!now_real_ns)
		now_real_ns = kg_now_real_ns();
	for (i = 0; i < h->nheld; i++)
		if (h->held[i].expires_ns <= now_real_ns)
			expired_some = true;
	if (expired_some)
		kg_approvals_expire(h->q, now_real_ns);	/* marks and audits them */
	for (i = 0; i < h->nheld;) {
		struct held_call *c = &h->held[i];
		int err;

		if (!id_valid(h, c->notif_id)) {
			h->st.dropped++;
			drop(h, i);
			continue;
		}
		err = kg_approvals_get(h->q, c->req_id, &a);
		if (!err && a.state == KG_APPR_PENDING) {
			i++;
			continue;
		}
		if (!err && a.state == KG_APPR_APPROVED) {
			respond(h, c->notif_id, 0);
			h->st.released++;
		} else {
			respond(h, c->notif_id, EPERM);
		}
		if (h->live)
			fprintf(h->live, "kgate: held call of pid %u %s (request %s %s)\n", c->pid,
				!err && a.state == KG_APPR_APPROVED ? "released" : "REFUSED", c->req_id,
				err ? "lost" : kg_appr_state_name(a.state));
		answered++;
		drop(h, i);
	}
	return answered;
}
