// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * net.bpf.c - network rules through cgroup-BPF.
 *
 * These programs are attached to each job's cgroup (so ungoverned processes
 * never run them) and load on every kernel kgate supports, with or without
 * BPF LSM: they are the network half of both full and degraded mode.
 *
 *   connect4/6   TCP connect, connected UDP, TCP Fast Open (sendto with
 *                MSG_FASTOPEN reaches the same pre-connect hook)
 *   sendmsg4/6   UDP sendto/sendmsg to an address without connect()
 *                (both: a job with a resolver has its port-53 traffic sent
 *                there, and addresses its resolver learnt decided by the
 *                name's rules; see kgate.h, egress by name)
 *   recvmsg4/6, getpeername4/6   a redirected DNS socket sees the address
 *                it asked for
 *   sock_create  socket(2) family/type allow-list (raw, packet, netlink...),
 *                ICMP datagram sockets (struct kg_policy: icmp_allow)
 *   bind4/6      inbound: a non-loopback local address needs a "bind" rule
 *   cgroup_skb/ingress   degraded mode only: packets to a listener the kernel
 *                bound itself (listen() without bind)
 *   cgroup_skb/egress    degraded mode only: packets carrying a source route
 *
 * IPv4 addresses are looked up as IPv4-mapped IPv6, so connecting to
 * ::ffff:10.0.0.1 over an AF_INET6 socket meets the rules of 10.0.0.1.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KG_AF_INET	2
#define KG_AF_INET6	10
#define KG_AF_PACKET	17
#define KG_SOCK_RAW	3
#define KG_SOCK_PACKET	10

#define KG_PROTO_TCP	6
#define KG_PROTO_UDP	17
#define KG_PROTO_ICMP	1
#define KG_PROTO_ICMPV6	58
#define KG_SOCK_STREAM	1
#define KG_SOCK_DGRAM	2

#define CG_ALLOW	1
#define CG_DENY		0

/* First entry matching protocol, port and op; entries are ordered most
 * specific first by the compiler (see struct kg_net_rule). */
static __always_inline void kg_net_match(struct kg_ctx *c, const __u8 addr[16],
					 __u16 port, __u8 proto, __u8 opbit,
					 __u8 *decision, __u32 *rule_id)
{
	struct kg_net_key key = {};
	struct kg_net_rule *r;
	int i;

	key.prefixlen = 32 + 128;
	key.policy_id = bpf_htonl(c->policy_id);
	__builtin_memcpy(key.addr, addr, 16);
	r = bpf_map_lookup_elem(&kg_net_rules, &key);
	if (!r)
		return;
	for (i = 0; i < KG_NET_ENTS; i++) {
		struct kg_net_ent *e = &r->ent[i];

		if (!e->rule_id)
			break;
		if (e->proto && e->proto != proto)
			continue;
		if (port < e->port_lo || port > e->port_hi)
			continue;
		if (!(e->ops & opbit))
			continue;
		*decision = e->decision;
		*rule_id = e->rule_id;
		return;
	}
}

/* ---- egress by name (kgate.h: kg_dns_addrs) -------------------------------- */

/* deny > require_approval > throttle > audit > allow > none */
static __always_inline __u8 kg_dec_rank(__u8 d)
{
	switch (d) {
	case KG_DEC_DENY: return 5;
	case KG_DEC_REQUIRE_APPROVAL: return 4;
	case KG_DEC_THROTTLE: return 3;
	case KG_DEC_AUDIT: return 2;
	case KG_DEC_ALLOW: return 1;
	default: return 0;
	}
}

/* The job's live record of addr (learnt by its resolver under the job's
 * current generation): its first entry matching protocol, port and op is
 * the name's decision, and it replaces the CIDR one unless that one is more
 * restrictive.  Returns the name's id when the name decides, else 0. */
static __always_inline __u32 kg_name_match(struct kg_ctx *c, const __u8 addr[16], __u16 port,
					   __u8 proto, __u8 opbit, __u8 *decision, __u32 *rule_id)
{
	struct kg_dns_key key = { .cgid = c->cgid };
	struct kg_dns_addr *v;
	int i;

	__builtin_memcpy(key.addr, addr, 16);
	v = bpf_map_lookup_elem(&kg_dns_addrs, &key);
	if (!v || v->policy_id != c->policy_id || v->expires_ns <= bpf_ktime_get_ns())
		return 0;
	for (i = 0; i < KG_NET_ENTS; i++) {
		struct kg_net_ent *e = &v->ent[i];

		if (!e->rule_id)
			break;
		if (e->proto && e->proto != proto)
			continue;
		if (port < e->port_lo || port > e->port_hi)
			continue;
		if (!(e->ops & opbit))
			continue;
		if (*decision != KG_DEC_NONE && kg_dec_rank(*decision) > kg_dec_rank(e->decision))
			return 0;
		*decision = e->decision;
		*rule_id = e->rule_id;
		return v->name_id;
	}
	return 0;
}

/* The name an event's decision came through, into its path. */
static __always_inline void kg_event_name(struct kg_event *e, __u64 cgid, __u32 name_id)
{
	struct kg_dns_name_key key = { .cgid = cgid, .name_id = name_id };
	struct kg_dns_name *n = bpf_map_lookup_elem(&kg_dns_names, &key);

	if (n)
		__builtin_memcpy(e->path, n->name, sizeof(e->path));
	e->path[sizeof(e->path) - 1] = '\0';
}

static __always_inline int kg_net_check(struct bpf_sock_addr *ctx, __u8 op,
					const __u8 addr[16], __u8 family)
{
	__u32 name_id;
	__u8 opbit = op == KG_OP_NET_SEND ? KG_NET_OP_SEND : KG_NET_OP_CONNECT;
	__u8 decision = KG_DEC_NONE;
	__u32 rule_id = 0;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 proto = (__u8)ctx->protocol;
	struct kg_event *e;
	struct kg_ctx c;

	if (kg_ctx_init(&c, op, KG_MECH_CGROUP_BPF))
		return CG_ALLOW;
	__builtin_memcpy(c.target.net.addr, addr, 16);
	c.target.net.port = port;
	c.target.net.proto = proto;
	kg_net_match(&c, addr, port, proto, opbit, &decision, &rule_id);
	name_id = kg_name_match(&c, addr, port, proto, opbit, &decision, &rule_id);
	kg_decide(&c, decision, rule_id);
	if (name_id && c.rule_id == rule_id)
		c.flags |= KG_EVF_BY_NAME;
	c.family = family;
	c.aux = ctx->type;
	if (c.emit) {
		e = kg_event_begin(&c);
		if (e) {
			if (c.flags & KG_EVF_BY_NAME)
				kg_event_name(e, c.cgid, name_id);
			kg_event_submit(e);
		}
	}
	return c.allow & 1;	/* CG_ALLOW or CG_DENY; the mask keeps the verifier sure */
}

/* The job's DNS (TCP or UDP to port 53, any address) goes to its resolver,
 * when it has one; the address asked for is kept for recvmsg/getpeername.
 * Returns 1 when redirected (allowed: the resolver decides each name),
 * 0 when the job has no resolver (the rules decide), -1 when refused. */
static __always_inline int kg_dns_redirect4(struct bpf_sock_addr *ctx)
{
	struct kg_dns_orig o = {};
	struct kg_dns_redirect *r;
	__u64 cookie;
	struct kg_ctx c;

	if (ctx->user_port != bpf_htons(53) ||
	    (ctx->protocol != KG_PROTO_TCP && ctx->protocol != KG_PROTO_UDP))
		return 0;
	if (kg_ctx_init(&c, KG_OP_NET_CONNECT, KG_MECH_CGROUP_BPF))
		return 0;
	r = bpf_map_lookup_elem(&kg_dns_redirect, &c.cgid);
	if (!r)
		return 0;
	if (!r->port4)
		return -1;
	o.addr[0] = ctx->user_ip4;
	o.port = (__u16)ctx->user_port;
	o.via[0] = r->addr4;
	o.via_port = r->port4;
	cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&kg_dns_orig, &cookie, &o, BPF_ANY);
	ctx->user_ip4 = r->addr4;
	ctx->user_port = r->port4;
	return 1;
}

static __always_inline int kg_dns_redirect6(struct bpf_sock_addr *ctx)
{
	struct kg_dns_orig o = {};
	struct kg_dns_redirect *r;
	__u64 cookie;
	struct kg_ctx c;
	bool mapped;

	if (ctx->user_port != bpf_htons(53) ||
	    (ctx->protocol != KG_PROTO_TCP && ctx->protocol != KG_PROTO_UDP))
		return 0;
	if (kg_ctx_init(&c, KG_OP_NET_CONNECT, KG_MECH_CGROUP_BPF))
		return 0;
	r = bpf_map_lookup_elem(&kg_dns_redirect, &c.cgid);
	if (!r)
		return 0;
	o.addr[0] = ctx->user_ip6[0];
	o.addr[1] = ctx->user_ip6[1];
	o.addr[2] = ctx->user_ip6[2];
	o.addr[3] = ctx->user_ip6[3];
	o.port = (__u16)ctx->user_port;
	/* ::ffff:a.b.c.d goes to the IPv4 resolver, as ::ffff:127.x.y.z */
	mapped = !o.addr[0] && !o.addr[1] && o.addr[2] == bpf_htonl(0xffff);
	if (mapped ? !r->port4 : !r->port6)
		return -1;
	if (mapped) {
		o.via[2] = bpf_htonl(0xffff);
		o.via[3] = r->addr4;
		o.via_port = r->port4;
	} else {
		o.via[0] = r->addr6[0];
		o.via[1] = r->addr6[1];
		o.via[2] = r->addr6[2];
		o.via[3] = r->addr6[3];
		o.via_port = r->port6;
	}
	cookie = bpf_get_socket_cookie(ctx);
	bpf_map_update_elem(&kg_dns_orig, &cookie, &o, BPF_ANY);
	ctx->user_ip6[0] = o.via[0];
	ctx->user_ip6[1] = o.via[1];
	ctx->user_ip6[2] = o.via[2];
	ctx->user_ip6[3] = o.via[3];
	ctx->user_port = o.via_port;
	return 1;
}

/* An answer (or the peer name) of a redirected socket reads as coming from
 * the server the job asked.  These hooks cannot refuse anything. */
static __always_inline void kg_dns_restore4(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct kg_dns_orig *o = bpf_map_lookup_elem(&kg_dns_orig, &cookie);

	if (o && ctx->user_ip4 == o->via[0] && ctx->user_port == o->via_port) {
		ctx->user_ip4 = o->addr[0];
		ctx->user_port = o->port;
	}
}

static __always_inline void kg_dns_restore6(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct kg_dns_orig *o = bpf_map_lookup_elem(&kg_dns_orig, &cookie);

	if (o && ctx->user_ip6[0] == o->via[0] && ctx->user_ip6[1] == o->via[1] &&
	    ctx->user_ip6[2] == o->via[2] && ctx->user_ip6[3] == o->via[3] &&
	    ctx->user_port == o->via_port) {
		ctx->user_ip6[0] = o->addr[0];
		ctx->user_ip6[1] = o->addr[1];
		ctx->user_ip6[2] = o->addr[2];
		ctx->user_ip6[3] = o->addr[3];
		ctx->user_port = o->port;
	}
}

static __always_inline void kg_v4_mapped(__u32 ip4_be, __u8 out[16])
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(&out[12], &ip4_be, 4);
}

static __always_inline int kg_net4(struct bpf_sock_addr *ctx, __u8 op)
{
	__u8 addr[16];
	int r = kg_dns_redirect4(ctx);

	if (r)
		return r > 0 ? CG_ALLOW : CG_DENY;

	kg_v4_mapped(ctx->user_ip4, addr);
	return kg_net_check(ctx, op, addr, KG_AF_INET);
}

static __always_inline int kg_net6(struct bpf_sock_addr *ctx, __u8 op)
{
	__u32 a[4];
	int r = kg_dns_redirect6(ctx);

	if (r)
		return r > 0 ? CG_ALLOW : CG_DENY;

	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	return kg_net_check(ctx, op, (const __u8 *)a, KG_AF_INET6);
}

SEC("cgroup/connect4")
int kg_connect4(struct bpf_sock_addr *ctx)
{
	return kg_net4(ctx, KG_OP_NET_CONNECT);
}

SEC("cgroup/connect6")
int kg_connect6(struct bpf_sock_addr *ctx)
{
	return kg_net6(ctx, KG_OP_NET_CONNECT);
}

SEC("cgroup/sendmsg4")
int kg_sendmsg4(struct bpf_sock_addr *ctx)
{
	return kg_net4(ctx, KG_OP_NET_SEND);
}

SEC("cgroup/sendmsg6")
int kg_sendmsg6(struct bpf_sock_addr *ctx)
{
	return kg_net6(ctx, KG_OP_NET_SEND);
}

SEC("cgroup/recvmsg4")
int kg_recvmsg4(struct bpf_sock_addr *ctx)
{
	kg_dns_restore4(ctx);
	return 1;
}

SEC("cgroup/recvmsg6")
int kg_recvmsg6(struct bpf_sock_addr *ctx)
{
	kg_dns_restore6(ctx);
	return 1;
}

SEC("cgroup/getpeername4")
int kg_getpeername4(struct bpf_sock_addr *ctx)
{
	kg_dns_restore4(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int kg_getpeername6(struct bpf_sock_addr *ctx)
{
	kg_dns_restore6(ctx);
	return 1;
}

/* ---- inbound: bind4/6 ------------------------------------------------------
 * Binding a loopback address is free.  Any other local address (the
 * wildcard 0.0.0.0 or :: included) is inbound exposure: refused unless a
 * net rule whose ops include "bind" matches the local address, port and
 * protocol (the class default does not apply: no rule, no bind).  Port 0
 * on a datagram socket is a client's ephemeral port and passes; on a
 * stream socket it is a listener on a port the kernel picks, and is
 * decided like any other.  A listen() on a never-bound socket (the kernel
 * binds it to the wildcard itself, past these hooks) is decided by
 * lsm/socket_listen in full mode (session.bpf.c). */
static __always_inline int kg_bind_check(struct bpf_sock_addr *ctx, const __u8 addr[16],
					 __u8 family)
{
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 proto = (__u8)ctx->protocol;
	__u8 decision = KG_DEC_NONE;
	__u32 rule_id = 0;
	struct kg_event *e;
	struct kg_ctx c;

	if (port == 0 && ctx->type != KG_SOCK_STREAM)
		return CG_ALLOW;
	if (kg_ctx_init(&c, KG_OP_NET_BIND, KG_MECH_CGROUP_BPF))
		return CG_ALLOW;
	__builtin_memcpy(c.target.net.addr, addr, 16);
	c.target.net.port = port;
	c.target.net.proto = proto;
	kg_net_match(&c, addr, port, proto, KG_NET_OP_BIND, &decision, &rule_id);
	if (decision == KG_DEC_NONE)
		decision = KG_DEC_DENY;	/* inbound needs a rule */
	kg_decide(&c, decision, rule_id);
	c.family = family;
	c.aux = ctx->type;
	if (c.emit) {
		e = kg_event_begin(&c);
		if (e)
			kg_event_submit(e);
	}
	return c.allow & 1;
}

SEC("cgroup/bind4")
int kg_bind4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];

	if ((bpf_ntohl(ctx->user_ip4) >> 24) == 127)
		return CG_ALLOW;
	kg_v4_mapped(ctx->user_ip4, addr);
	return kg_bind_check(ctx, addr, KG_AF_INET);
}

SEC("cgroup/bind6")
int kg_bind6(struct bpf_sock_addr *ctx)
{
	__u32 a[4];

	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	/* ::1, and ::ffff:127.0.0.0/104 */
	if (!a[0] && !a[1] && ((!a[2] && a[3] == bpf_htonl(1)) ||
			       (a[2] == bpf_htonl(0xffff) && (bpf_ntohl(a[3]) >> 24) == 127)))
		return CG_ALLOW;
	return kg_bind_check(ctx, (const __u8 *)a, KG_AF_INET6);
}

/* socket(2): the family must be in the policy's allow-list (when it has
 * one), and raw/packet sockets need allow_raw.  Settles c; true = allowed. */
static __always_inline void kg_socket_decide(struct kg_ctx *c, __u32 family, __u32 type,
					     __u32 proto)
{
	__u8 decision = KG_DEC_ALLOW;
	__u32 rule_id = 0;
	struct kg_event *e;
	bool refused = false;

	if (c->pol && c->pol->socket_family_allow) {
		if (family >= 64 || !(c->pol->socket_family_allow & (1ULL << family)))
			refused = true;
		if ((type == KG_SOCK_RAW || type == KG_SOCK_PACKET || family == KG_AF_PACKET) &&
		    !c->pol->allow_raw_sockets)
			refused = true;
		rule_id = c->pol->socket_rule_id;
		if (refused)
			decision = c->pol->socket_decision;
	}
	/* ping sockets (and raw inet and packet ones no socket rule decided):
	 * what they send reaches no cgroup hook, so they are decided here.  A
	 * packet socket (lsm/socket_create, full mode; seccomp refuses them in
	 * degraded mode) sends any frame to any host. */
	if (!refused && c->pol && !c->pol->icmp_allow &&
	    (((family == KG_AF_INET || family == KG_AF_INET6) &&
	      ((type == KG_SOCK_DGRAM && (proto == KG_PROTO_ICMP || proto == KG_PROTO_ICMPV6)) ||
	       (type == KG_SOCK_RAW && !c->pol->socket_family_allow))) ||
	     (family == KG_AF_PACKET && !c->pol->socket_family_allow))) {
		/* rule 0: the net default refuses them (kg_decide reports it) */
		rule_id = c->pol->icmp_rule_id;
		decision = rule_id ? c->pol->icmp_decision : KG_DEC_NONE;
	}
	c->target.net.proto = (__u8)proto;
	kg_decide(c, decision, rule_id);
	c->family = (__u8)family;
	c->aux = type;
	if (c->emit) {
		e = kg_event_begin(c);
		if (e)
			kg_event_submit(e);
	}
}

/* cgroup/sock_create runs for AF_INET and AF_INET6 only (inet_create);
 * it is what degraded mode has for raw sockets.  Other families (packet,
 * netlink, vsock...) are refused by lsm/socket_create below in full mode and
 * by the seccomp filter's socket() family check in both modes. */
SEC("cgroup/sock_create")
int kg_sock_create(struct bpf_sock *sk)
{
	struct kg_ctx c;

	if (kg_ctx_init(&c, KG_OP_SOCKET_CREATE, KG_MECH_CGROUP_BPF))
		return CG_ALLOW;
	kg_socket_decide(&c, sk->family, sk->type, sk->protocol);
	return c.allow & 1;	/* CG_ALLOW or CG_DENY */
}

/* The other families, in full mode (the loader skips LSM programs where BPF
 * LSM is unavailable); inet and inet6 are left to kg_sock_create so that one
 * socket gets one decision. */
SEC("lsm/socket_create")
int BPF_PROG(kg_lsm_socket_create, int family, int type, int protocol, int kern, int ret)
{
	struct kg_ctx c;

	if (ret || kern)
		return ret;
	if (family == KG_AF_INET || family == KG_AF_INET6)
		return 0;
	if (kg_ctx_init(&c, KG_OP_SOCKET_CREATE, KG_MECH_BPF_LSM))
		return 0;
	kg_socket_decide(&c, family, type & 0xf, protocol);
	return c.allow ? 0 : -EPERM;
}
/* ---- full mode: what the cgroup hooks cannot see ------------------------------ */

/* listen() on a socket that was never bound: the kernel binds it to the
 * wildcard address and a port of its choosing, past bind4/6.  Decided like
 * that bind (a stream socket on port 0 of the wildcard).  A bound socket
 * was decided at bind. */
SEC("lsm/socket_listen")
int BPF_PROG(kg_lsm_socket_listen, struct socket *sock, int backlog, int ret)
{
	struct sock *sk;
	__u8 addr[16] = {};
	__u8 decision = KG_DEC_NONE;
	__u32 rule_id = 0;
	struct kg_event *e;
	struct kg_ctx c;
	__u16 family;

	if (ret)
		return ret;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if ((family != KG_AF_INET && family != KG_AF_INET6) || BPF_CORE_READ(sk, __sk_common.skc_num))
		return 0;
	if (kg_ctx_init(&c, KG_OP_NET_BIND, KG_MECH_BPF_LSM))
		return 0;
	if (family == KG_AF_INET) {
		addr[10] = 0xff;
		addr[11] = 0xff;
	}
	c.target.net.proto = KG_PROTO_TCP;
	__builtin_memcpy(c.target.net.addr, addr, 16);
	kg_net_match(&c, addr, 0, KG_PROTO_TCP, KG_NET_OP_BIND, &decision, &rule_id);
	if (decision == KG_DEC_NONE)
		decision = KG_DEC_DENY;	/* inbound needs a rule */
	kg_decide(&c, decision, rule_id);
	c.family = (__u8)family;
	c.aux = KG_SOCK_STREAM;
	if (c.emit) {
		e = kg_event_begin(&c);
		if (e)
			kg_event_submit(e);
	}
	return c.allow ? 0 : -EPERM;
}

/* ---- degraded mode: listeners the kernel bound itself --------------------------
 * listen() on a never-bound TCP socket binds it to the wildcard address and
 * a port of the kernel's choosing, past bind4/6; without BPF LSM nothing sees
 * that listen() (seccomp cannot tell a bound socket from an unbound one, and
 * Landlock's TCP bind right is checked at bind(2) only).  So the packets do:
 * this program runs for every packet delivered to a socket of the job
 * (cgroup_skb, attached to the job's cgroup, loaded only without BPF LSM,
 * where lsm/socket_listen refuses the listen() itself).  A packet that
 * reaches a TCP listener of the job that no bind(2) placed (its userlocks
 * hold neither an address nor a port), from outside the loopback addresses,
 * is dropped unless a bind of the wildcard address on port 0 would be
 * allowed, which is lsm/socket_listen's decision.  The peer sees no answer
 * to its SYN; the job's loopback clients still connect.  A SYN dropped is
 * recorded as a refused net_bind (pid 0: it is the peer's packet, decided in
 * the softirq, and the socket's uid). */
#define KG_ETH_P_IP		0x0800
#define KG_ETH_P_IPV6		0x86DD
#define KG_SOCK_BINDADDR_LOCK	4
#define KG_SOCK_BINDPORT_LOCK	8

/* The job of the packet's socket: its cgroup, then its ancestors. */
static __always_inline struct kg_job *kg_skb_job(struct __sk_buff *skb, __u64 *cgid_out)
{
	__u64 cgid = bpf_skb_cgroup_id(skb);
	struct kg_job *job;
	int level;

	job = bpf_map_lookup_elem(&kg_jobs, &cgid);
	if (job) {
		*cgid_out = cgid;
		return job;
	}
	for (level = 1; level < KG_MAX_CGROUP_LEVELS; level++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);

		if (!id || id == cgid)
			break;
		job = bpf_map_lookup_elem(&kg_jobs, &id);
		if (job) {
			*cgid_out = id;
			return job;
		}
	}
	return NULL;
}

/* The common part of a refusal decided on a packet: no task to name (pid 0),
 * the socket's uid. */
/* The governed job of a packet's socket, c filled as kg_ctx_init does for
 * a task; -1 when the socket is not in a job. */
static __always_inline int kg_skb_ctx_init(struct kg_ctx *c, struct __sk_buff *skb, __u8 op)
{
	__builtin_memset(c, 0, sizeof(*c));
	c->job = kg_skb_job(skb, &c->cgid);
	if (!c->job)
		return -1;
	c->policy_id = c->job->policy_id;
	c->pol = bpf_map_lookup_elem(&kg_policies, &c->policy_id);
	c->op = op;
	c->mechanism = KG_MECH_CGROUP_BPF;
	c->count = 1;
	return 0;
}

/* A packet refused: counted, and its event reserved with the common part
 * filled (no task here: pid 0, the socket's uid); NULL when the ring is
 * full (the loss is counted).  The caller adds the target and submits. */
static __always_inline struct kg_event *kg_skb_deny_begin(struct kg_ctx *c, struct __sk_buff *skb,
							  __u32 rule_id)
{
	struct kg_counters *cnt = kg_counters_get();
	struct kg_event *e;

	if (cnt)
		__sync_fetch_and_add(&cnt->decisions[KG_DEC_DENY], 1);
	e = bpf_ringbuf_reserve(&kg_events, sizeof(*e), 0);
	if (!e) {
		kg_count_lost(c->cgid, c->job->job_id, KG_EV_DECISION, 1);
		return NULL;
	}
	if (cnt)
		__sync_fetch_and_add(&cnt->events_sent[KG_EV_DECISION], 1);
	e->ts_ns = bpf_ktime_get_ns();
	e->job_cgid = c->cgid;
	e->job_id = c->job->job_id;
	e->pid = 0;
	e->tid = 0;
	e->uid = bpf_get_socket_uid(skb);
	e->policy_id = c->policy_id;
	e->rule_id = rule_id;
	e->kind = KG_EV_DECISION;
	e->op = c->op;
	e->decision = KG_DEC_DENY;
	e->mechanism = KG_MECH_CGROUP_BPF;
	e->flags = 0;
	e->count = 1;
	__builtin_memset(e->comm, 0, sizeof(e->comm));
	__builtin_memset(&e->target, 0, sizeof(e->target));
	e->family = 0;
	e->aux = 0;
	e->path[0] = '\0';
	return e;
}

/* 1 when the packet is addressed to a loopback address; *syn when it is a
 * TCP SYN (no ACK) whose header could be read. */
static __always_inline int kg_skb_to_loopback(struct __sk_buff *skb, bool *syn)
{
	__u8 hdr[40], flags = 0;
	__u32 off = 0;

	*syn = false;
	if (skb->protocol == bpf_htons(KG_ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, hdr, 20))
			return 0;
		if (hdr[16] == 127)
			return 1;
		if (hdr[9] == KG_PROTO_TCP)
			off = (hdr[0] & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(KG_ETH_P_IPV6)) {
		__u32 *d;

		if (bpf_skb_load_bytes(skb, 0, hdr, 40))
			return 0;
		d = (__u32 *)&hdr[24];
		if (!d[0] && !d[1] && ((!d[2] && d[3] == bpf_htonl(1)) ||
				       (d[2] == bpf_htonl(0xffff) && hdr[36] == 127)))
			return 1;
		if (hdr[6] == KG_PROTO_TCP)
			off = 40;
	} else {
		return 0;
	}
	if (off >= 20 && off <= 60 && !bpf_skb_load_bytes(skb, off + 13, &flags, 1))
		*syn = (flags & 0x12) == 0x02;
	return 0;
}

SEC("cgroup_skb/ingress")
int kg_listen_unbound_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	__u8 addr[16] = {};
	__u8 decision = KG_DEC_NONE, locks;
	__u32 rule_id = 0;
	struct tcp_sock *tp;
	struct kg_event *e;
	struct kg_ctx c;
	__u32 family;
	bool syn;

	if (!sk)
		return CG_ALLOW;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->state != BPF_TCP_LISTEN || sk->protocol != KG_PROTO_TCP)
		return CG_ALLOW;
	family = sk->family;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return CG_ALLOW;
	locks = BPF_CORE_READ_BITFIELD(&tp->inet_conn.icsk_inet.sk, sk_userlocks);
	if (locks & (KG_SOCK_BINDADDR_LOCK | KG_SOCK_BINDPORT_LOCK))
		return CG_ALLOW;	/* placed by bind(2): decided there */
	if (kg_skb_to_loopback(skb, &syn))
		return CG_ALLOW;
	if (kg_skb_ctx_init(&c, skb, KG_OP_NET_BIND))
		return CG_ALLOW;
	if (family == KG_AF_INET) {
		addr[10] = 0xff;
		addr[11] = 0xff;
	}
	kg_net_match(&c, addr, 0, KG_PROTO_TCP, KG_NET_OP_BIND, &decision, &rule_id);
	if (decision == KG_DEC_ALLOW || decision == KG_DEC_ALLOW_WITH_CONSTRAINTS ||
	    decision == KG_DEC_AUDIT || decision == KG_DEC_NO_OP)
		return CG_ALLOW;
	if (c.pol && kg_controller_dead_fail_open(&c, bpf_ktime_get_ns()))
		return CG_ALLOW;
	if (!syn)
		return CG_DENY;
	e = kg_skb_deny_begin(&c, skb, rule_id);
	if (!e)
		return CG_DENY;
	__builtin_memcpy(e->target.net.addr, addr, 16);
	e->target.net.proto = KG_PROTO_TCP;
	e->family = (__u8)family;
	e->aux = KG_SOCK_STREAM;
	bpf_ringbuf_submit(e, kg_rb_flags(KG_EV_DECISION));
	return CG_DENY;
}

/* ---- degraded mode: source routes given per message -----------------------------
 * A source route in a sendmsg's ancillary data (IP_RETOPTS with LSRR/SSRR,
 * IPV6_RTHDR) sends the packet to the route's first address, not the one
 * sendmsg4/6 checked; lsm/socket_sendmsg refuses that in full mode, and the
 * setsockopt forms are refused by seccomp in every mode.  Without BPF LSM
 * nothing sees the ancillary data, so the packet is checked as it leaves:
 * an IPv4 header whose options hold a loose or strict source route, or an
 * IPv6 packet with a routing header (directly or after hop-by-hop or
 * destination options), is dropped and sendmsg fails with EPERM.  Recorded
 * as a refused net_send whose aux is the cmsg type (as in full mode): pid 0
 * (the packet's sender is not known here) and the socket's uid. */
#define KG_IPOPT_END	0
#define KG_IPOPT_NOOP	1
#define KG_IPOPT_LSRR	131
#define KG_IPOPT_SSRR	137
#define KG_NEXTHDR_HOP		0
#define KG_NEXTHDR_ROUTING	43
#define KG_NEXTHDR_DEST		60
#define KG_IP_RETOPTS_TYPE	7
#define KG_IPV6_RTHDR_TYPE	57

struct kg_optscan {
	struct __sk_buff *skb;
	__u32 off, end;
	bool route;
};

static long kg_optscan_cb(__u32 i, void *arg)
{
	struct kg_optscan *s = arg;
	__u8 o[2];

	if (s->off >= s->end || bpf_skb_load_bytes(s->skb, s->off, o, 1))
		return 1;
	if (o[0] == KG_IPOPT_END)
		return 1;
	if (o[0] == KG_IPOPT_NOOP) {
		s->off++;
		return 0;
	}
	if (o[0] == KG_IPOPT_LSRR || o[0] == KG_IPOPT_SSRR) {
		s->route = true;
		return 1;
	}
	if (s->off + 1 >= s->end || bpf_skb_load_bytes(s->skb, s->off, o, 2) || o[1] < 2)
		return 1;
	s->off += o[1];
	return 0;
}

/* The cmsg type that carries the packet's source route, or 0. */
static __always_inline __u32 kg_skb_source_route(struct __sk_buff *skb)
{
	__u8 b[2];

	if (skb->protocol == bpf_htons(KG_ETH_P_IP)) {
		struct kg_optscan s = { .skb = skb, .off = 20 };

		if (bpf_skb_load_bytes(skb, 0, b, 1) || (b[0] & 0xf) <= 5)
			return 0;
		s.end = (b[0] & 0xf) * 4;
		bpf_loop(40, kg_optscan_cb, &s, 0);
		return s.route ? KG_IP_RETOPTS_TYPE : 0;
	}
	if (skb->protocol == bpf_htons(KG_ETH_P_IPV6)) {
		__u32 off = 40;
		__u8 next;
		int i;

		if (bpf_skb_load_bytes(skb, 6, &next, 1))
			return 0;
		for (i = 0; i < 3; i++) {
			if (next == KG_NEXTHDR_ROUTING)
				return KG_IPV6_RTHDR_TYPE;
			if (next != KG_NEXTHDR_HOP && next != KG_NEXTHDR_DEST)
				return 0;
			if (bpf_skb_load_bytes(skb, off, b, 2))
				return 0;
			next = b[0];
			off += (b[1] + 1) * 8;
		}
	}
	return 0;
}

SEC("cgroup_skb/egress")
int kg_source_route_egress(struct __sk_buff *skb)
{
	struct kg_event *e;
	struct kg_ctx c;
	__u32 type;

	type = kg_skb_source_route(skb);
	if (!type)
		return CG_ALLOW;
	if (kg_skb_ctx_init(&c, skb, KG_OP_NET_SEND))
		return CG_ALLOW;
	if (c.pol && kg_controller_dead_fail_open(&c, bpf_ktime_get_ns()))
		return CG_ALLOW;
	e = kg_skb_deny_begin(&c, skb, 0);
	if (!e)
		return CG_DENY;
	/* the target: where the packet goes first (the route's first hop) */
	if (skb->protocol == bpf_htons(KG_ETH_P_IP)) {
		e->family = KG_AF_INET;
		e->target.net.addr[10] = 0xff;
		e->target.net.addr[11] = 0xff;
		bpf_skb_load_bytes(skb, 16, &e->target.net.addr[12], 4);
	} else {
		e->family = KG_AF_INET6;
		bpf_skb_load_bytes(skb, 24, e->target.net.addr, 16);
	}
	e->aux = type;
	bpf_ringbuf_submit(e, kg_rb_flags(KG_EV_DECISION));
	return CG_DENY;
}

#define KG_SOL_IP		0
#define KG_SOL_IPV6		41
#define KG_IP_RETOPTS		7
#define KG_IPV6_2292RTHDR	5
#define KG_IPV6_RTHDR		57
#define KG_CMSG_MAX		8

struct kg_cmsghdr {
	__u64 len;
	__s32 level;
	__s32 type;
};

/* Source routes given per message (ancillary data to sendmsg): the first
 * hop would be the route's first address, not the one connect4/sendmsg4
 * checked.  The setsockopt forms are refused by seccomp in every mode.
 * Refused: op net_send, aux = the cmsg type. */
SEC("lsm/socket_sendmsg")
int BPF_PROG(kg_lsm_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	struct kg_cmsghdr h;
	__u64 len, off = 0;
	bool user, bad = false;
	struct kg_event *e;
	struct kg_ctx c;
	struct sock *sk;
	__u16 family;
	void *ctl;
	int i;

	if (ret)
		return ret;
	len = BPF_CORE_READ(msg, msg_controllen);
	if (len < sizeof(h))
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	family = sk ? BPF_CORE_READ(sk, __sk_common.skc_family) : 0;
	if (family != KG_AF_INET && family != KG_AF_INET6)
		return 0;
	if (kg_ctx_init(&c, KG_OP_NET_SEND, KG_MECH_BPF_LSM))
		return 0;
	ctl = BPF_CORE_READ(msg, msg_control);
	user = BPF_CORE_READ_BITFIELD_PROBED(msg, msg_control_is_user);
	for (i = 0; i < KG_CMSG_MAX; i++) {
		if (off + sizeof(h) > len)
			break;
		if (user ? bpf_probe_read_user(&h, sizeof(h), ctl + off)
			 : bpf_probe_read_kernel(&h, sizeof(h), ctl + off))
			break;
		if ((h.level == KG_SOL_IP && h.type == KG_IP_RETOPTS) ||
		    (h.level == KG_SOL_IPV6 && (h.type == KG_IPV6_RTHDR || h.type == KG_IPV6_2292RTHDR))) {
			bad = true;
			break;
		}
		if (h.len < sizeof(h))
			break;
		off += (h.len + 7) & ~7ULL;
	}
	if (!bad)
		return 0;
	c.target.net.proto = (__u8)BPF_CORE_READ(sk, sk_protocol);
	kg_decide_refusal(&c);
	c.family = (__u8)family;
	c.aux = (__u32)h.type;
	e = kg_event_begin(&c);
	if (e)
		kg_event_submit(e);
	return -EPERM;
}
