// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * unix.bpf.c - AF_UNIX peer rules through BPF LSM (full mode only).
 *
 *   unix_stream_connect  connect(2) on a stream/seqpacket socket
 *   unix_may_send        connect(2) and sendto/sendmsg on a datagram socket
 *
 * The peer is matched by what it is bound to: a filesystem socket by the
 * identity of its inode (the same walk as file rules, so a rule on
 * /run/docker.sock or on a directory of sockets holds through symlinks and
 * bind mounts), an abstract name by (policy, FNV-1a of the name bytes after
 * the leading NUL) in kg_unix_abstract.  Unnamed peers (socketpair,
 * unbound) carry no name a rule could match and are left alone.
 * Class default: KG_CLASS_UNIX.
 *
 * An abstract socket that root made outside the job (a daemon that acts for
 * its clients: containerd's shims listen on abstract names) is refused to
 * the job unless a unix_abstract rule names it and allows the connect,
 * whatever the class default says: an escape by proxy (docs/design.md),
 * reported as op system, aux KG_SYS_ABSTRACT.  The job's own sockets and
 * those of other users are decided by the rules as before.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "walk.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KG_AF_UNIX		1
#define KG_SUN_PATH_OFF		2	/* offsetof(struct sockaddr_un, sun_path) */
#define KG_UNIX_BUF		128

/* Made by root outside the job: the peer socket's cgroup is not the job's
 * (nor below it) and the credentials it was created with are uid 0. */
static __always_inline bool kg_sock_of_root_outside(struct sock *sk, __u64 cgid)
{
	const struct cred *cred = BPF_CORE_READ(sk, sk_socket, file, f_cred);

	if (!cred || BPF_CORE_READ(cred, euid.val) != 0)
		return false;
	return !kg_cgroup_in_job(BPF_CORE_READ(sk, sk_cgrp_data.cgroup), cgid);
}

static __always_inline int kg_unix_abstract_check(struct kg_ctx *c, struct unix_address *addr,
						  struct sock *peer)
{
	const char *sun_path;
	struct kg_unix_key key = {};
	struct kg_walk_buf *buf;
	struct kg_rule_ent *ent;
	__u8 decision = KG_DEC_NONE;
	__u32 rule_id = 0;
	struct kg_event *e;
	char first = 1;
	int len;

	len = BPF_CORE_READ(addr, len);
	sun_path = (const char *)addr + bpf_core_field_offset(struct unix_address, name) +
		   KG_SUN_PATH_OFF;
	len -= KG_SUN_PATH_OFF + 1;	/* family, leading NUL */
	if (len < 0 || len > KG_UNIX_NAME_MAX - 1)
		return 0;
	if (bpf_probe_read_kernel(&first, 1, sun_path) || first != 0)
		return 0;	/* a path name without a bound dentry: nothing to match */
	buf = kg_walk_buf_get();
	if (!buf)
		return 0;
	if (bpf_probe_read_kernel(buf->name, len & (KG_UNIX_BUF - 1), sun_path + 1))
		return 0;
	key.policy_id = c->policy_id;
	key.name_hash = kg_hash_buf(buf->name, len);
	/* the grant/event target of an abstract name: dev 0, ino = its hash */
	c->target.file.dev = 0;
	c->target.file.ino = key.name_hash;
	ent = bpf_map_lookup_elem(&kg_unix_abstract, &key);
	if (ent && ent->rule_id && (ent->ops & KG_OP_BIT(KG_OP_UNIX_CONNECT))) {
		decision = ent->decision;
		rule_id = ent->rule_id;
	}
	if (!rule_id && kg_sock_of_root_outside(peer, c->cgid)) {
		c->op = KG_OP_SYSTEM;
		kg_decide_refusal(c);
	} else {
		kg_decide(c, decision, rule_id);
	}
	c->family = KG_AF_UNIX;
	if (c->op == KG_OP_SYSTEM)
		c->aux = KG_SYS_ABSTRACT;
	if (c->emit) {
		e = kg_event_begin(c);
		if (e) {
			e->path[0] = '@';
			bpf_probe_read_kernel(&e->path[1], len & (KG_UNIX_BUF - 1), buf->name);
			e->path[(len + 1) & (KG_UNIX_BUF - 1)] = '\0';
			kg_event_submit(e);
		}
	}
	return c->allow ? 0 : -EPERM;
}

static __always_inline int kg_unix_peer_check(struct sock *peer)
{
	struct unix_sock *u = (struct unix_sock *)peer;
	struct unix_address *addr;
	struct vfsmount *mnt;
	struct dentry *d;
	__u8 decision;
	__u32 rule_id;
	struct kg_event *e;
	struct kg_ctx c;

	if (!peer || kg_ctx_init(&c, KG_OP_UNIX_CONNECT, KG_MECH_BPF_LSM))
		return 0;
	d = BPF_CORE_READ(u, path.dentry);
	if (!d) {
		addr = BPF_CORE_READ(u, addr);
		return addr ? kg_unix_abstract_check(&c, addr, peer) : 0;
	}
	mnt = BPF_CORE_READ(u, path.mnt);
	kg_file_decide(&c, d, mnt, KG_OP_BIT(KG_OP_UNIX_CONNECT), &decision, &rule_id);
	kg_decide(&c, decision, rule_id);
	c.family = KG_AF_UNIX;
	if (c.emit) {
		e = kg_event_begin(&c);
		if (e) {
			kg_fill_path_mnt(e, d, mnt);
			kg_event_submit(e);
		}
	}
	return c.allow ? 0 : -EPERM;
}

SEC("lsm/unix_stream_connect")
int BPF_PROG(kg_unix_stream_connect, struct sock *sock, struct sock *other,
	     struct sock *newsk, int ret)
{
	if (ret)
		return ret;
	return kg_unix_peer_check(other);
}

SEC("lsm/unix_may_send")
int BPF_PROG(kg_unix_may_send, struct socket *sock, struct socket *other, int ret)
{
	if (ret)
		return ret;
	return kg_unix_peer_check(other ? BPF_CORE_READ(other, sk) : NULL);
}
