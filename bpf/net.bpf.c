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
 *   sock_create  socket(2) family/type allow-list (raw, packet, netlink...)
 *
 * IPv4 addresses are looked up as IPv4-mapped IPv6, so connecting to
 * ::ffff:10.0.0.1 over an AF_INET6 socket meets the rules of 10.0.0.1.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KG_AF_INET	2
#define KG_AF_INET6	10
#define KG_AF_PACKET	17
#define KG_SOCK_RAW	3
#define KG_SOCK_PACKET	10

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

static __always_inline int kg_net_check(struct bpf_sock_addr *ctx, __u8 op,
					const __u8 addr[16], __u8 family)
{
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
	kg_decide(&c, decision, rule_id);
	if (c.emit) {
		e = kg_event_begin(&c);
		if (e) {
			e->family = family;
			e->aux = ctx->type;
			kg_event_submit(e);
		}
	}
	return c.allow & 1;	/* CG_ALLOW or CG_DENY; the mask keeps the verifier sure */
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

	kg_v4_mapped(ctx->user_ip4, addr);
	return kg_net_check(ctx, op, addr, KG_AF_INET);
}

static __always_inline int kg_net6(struct bpf_sock_addr *ctx, __u8 op)
{
	__u32 a[4];

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
	c->target.net.proto = (__u8)proto;
	kg_decide(c, decision, rule_id);
	if (c->emit) {
		e = kg_event_begin(c);
		if (e) {
			e->family = (__u8)family;
			e->aux = type;
			kg_event_submit(e);
		}
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
