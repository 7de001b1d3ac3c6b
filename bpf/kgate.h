/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kgate.h - the contract between kgate's BPF programs and its controller.
 *
 * Included by every bpf/<concern>.bpf.c (after vmlinux.h) and by userspace (after
 * <linux/types.h>).  It has no includes of its own so that both sides see
 * exactly the same layout; _Static_asserts at the end pin the sizes so a
 * change on one side that the other does not follow breaks the build.
 *
 * Data flow: policy JSON -> compiled rules written under a fresh policy id
 * (a generation) -> one update of the job's entry flips it to the new id ->
 * hooks decide -> events in the ring buffer -> controller -> audit trail.
 *
 * Rule numbers: every rule_id in these maps and in struct kg_event is the
 * rule's number in its policy document, its index in the "runtime" array
 * plus one (0 = no rule: the class default).  The parser assigns them
 * (policy/parse.c, rules[i].num = i + 1); kg_policy_rule_by_num() and the
 * recorder's policy snapshot ("rules"[rule_id - 1]) map them back.  Guard
 * entries (KG_FILE_F_GUARD) and the *_rule_id fields of struct kg_policy
 * carry the number of the rule they come from.  Reordering, filtering or
 * renumbering doc->rules breaks every audit record's rule name.
 */
#ifndef KGATE_H
#define KGATE_H

/* ---- decisions ---------------------------------------------------------- */
enum kg_decision {
	KG_DEC_NONE = 0,		/* no rule matched: use the class default */
	KG_DEC_ALLOW = 1,
	KG_DEC_AUDIT = 2,		/* proceed, and emit an event */
	KG_DEC_DENY = 3,
	KG_DEC_REQUIRE_APPROVAL = 4,	/* refused unless a grant exists */
	KG_DEC_THROTTLE = 5,		/* token bucket per job and rule */
	KG_DEC_COOLDOWN = 6,		/* refused: the job is in cooldown */
	KG_DEC_ALLOW_WITH_CONSTRAINTS = 7, /* admission only */
	KG_DEC_NO_OP = 8,		/* syscalls only (seccomp) */
	KG_DEC_MAX,
};

/* ---- operations ----------------------------------------------------------
 * One enum for events; rules carry a bit mask (1u << op).
 */
enum kg_op {
	KG_OP_READ = 0,
	KG_OP_WRITE = 1,	/* includes truncate, O_TRUNC, shared mmap */
	KG_OP_CREATE = 2,	/* create, mkdir, mknod, symlink */
	KG_OP_UNLINK = 3,	/* unlink, rmdir */
	KG_OP_RENAME = 4,
	KG_OP_LINK = 5,
	KG_OP_EXEC = 6,		/* execve, execveat, PROT_EXEC mapping */
	KG_OP_UNIX_CONNECT = 7,	/* AF_UNIX connect / sendmsg to a peer */
	KG_OP_NET_CONNECT = 8,	/* connect4/6 (TCP, connected UDP, TFO) */
	KG_OP_NET_SEND = 9,	/* sendmsg4/6 (UDP without connect) */
	KG_OP_SOCKET_CREATE = 10,
	KG_OP_BPF = 11,		/* self-protection from here on */
	KG_OP_PTRACE = 12,
	KG_OP_SIGNAL = 13,
	KG_OP_MOUNT = 14,
	KG_OP_USERNS = 15,
	KG_OP_MODULE = 16,
	KG_OP_CGROUP_ESCAPE = 17,
	KG_OP_SYSCALL = 18,	/* seccomp decisions (reported by userspace) */
	KG_OP_ADMISSION = 19,	/* launch decisions (userspace only) */
	KG_OP_KGATE_STATE = 20,	/* self-protection: kgate's own files, pins and control
				 * socket; the event's aux is the op tried (read...) */
	KG_OP_NET_BIND = 21,	/* bind4/6 to a non-loopback address, listen (inbound) */
	KG_OP_SYSTEM = 22,	/* self-protection: the kernel or something outside the
				 * job acting for it (capabilities, kernel settings);
				 * aux = KG_SYS_* */
	KG_OP_MAX,
};

/* aux of KG_OP_SYSTEM events */
#define KG_SYS_SETTING		1	/* a write to a kernel setting (/proc/sys, /sys...) */
#define KG_SYS_PROCESS		2	/* a write to /proc/PID of a process outside the job */
#define KG_SYS_ABSTRACT		3	/* a connect or send to an abstract socket that root made
					 * outside the job (a daemon acting for its clients) */
#define KG_SYS_CAP_BASE		0x100	/* KG_SYS_CAP_BASE + CAP_*: a capability used */
#define KG_SYS_OUTSIDE_BASE	0x10000	/* | member << 8 | the op tried (KG_OP_*): a
					 * daemon's socket or a file something outside
					 * the job runs or obeys (kg_outside) */

/* What every job keeps (userspace/kernel/caps.c says which and why, and
 * tests/test_outside.c that both agree): chown, dac_override,
 * dac_read_search, fowner, fsetid, kill, setgid, setuid, setpcap,
 * net_bind_service, net_broadcast, net_raw, ipc_lock, lease, audit_write.
 * lsm/capable answers these at once, before any lookup. */
#define KG_CAPS_KEPT		0x30006dffULL

#define KG_OP_BIT(op)		(1u << (op))
#define KG_FILE_OPS_MASK	(KG_OP_BIT(KG_OP_READ) | KG_OP_BIT(KG_OP_WRITE) | \
				 KG_OP_BIT(KG_OP_CREATE) | KG_OP_BIT(KG_OP_UNLINK) | \
				 KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_LINK) | \
				 KG_OP_BIT(KG_OP_EXEC) | KG_OP_BIT(KG_OP_UNIX_CONNECT))

/* Rule classes, each with its own default decision in struct kg_policy. */
enum kg_class {
	KG_CLASS_FILE = 0,
	KG_CLASS_EXEC = 1,
	KG_CLASS_NET = 2,
	KG_CLASS_UNIX = 3,
	KG_CLASS_MAX = 4,
};

/* Which mechanism made a decision (audit field "mechanism"). */
enum kg_mechanism {
	KG_MECH_NONE = 0,
	KG_MECH_BPF_LSM = 1,
	KG_MECH_CGROUP_BPF = 2,
	KG_MECH_LANDLOCK = 3,
	KG_MECH_SECCOMP = 4,
	KG_MECH_CONTROLLER = 5,	/* admission, approvals */
	KG_MECH_MOUNT = 6,	/* degraded mode: the job's mount namespace */
	KG_MECH_MAX,
};

/* ---- limits ------------------------------------------------------------- */
#define KG_COMM_LEN		16
#define KG_PATH_MAX		256	/* path text carried in an event */
#define KG_MAX_DEPTH		64	/* dentry levels walked; deeper = deny */
#define KG_MAX_CGROUP_LEVELS	16	/* ancestor levels searched for a job */
#define KG_FILE_ENTS		4	/* rules per inode */
#define KG_NET_ENTS		8	/* port/proto entries per prefix */
#define KG_UNIX_NAME_MAX	108

#define KG_MAX_JOBS		4096
#define KG_MAX_ROOTS		64	/* kg_jobs_root slots: kgate's + governed cgroups */
#define KG_MAX_FILE_RULES	131072
#define KG_MAX_NET_RULES	131072
#define KG_MAX_NAME_RULES	16384
#define KG_MAX_GRANTS		16384
#define KG_MAX_POLICIES		256
#define KG_MAX_RULE_PARAMS	16384
#define KG_RINGBUF_BYTES	(1u << 22)	/* default; --ring-size (userspace/record/ringsize.h) */
/* Waking the consumer (bpf/common.bpf.h, kg_rb_flags): an event wakes it
 * when it is not a plain decision (an escalation, a throttle or cooldown
 * report: an approver or a human may wait for it), when a 64th of the ring
 * (>> KG_WAKE_FILL_SHIFT) or more waits unread and the last wake-up is
 * KG_WAKE_FULL_NS old, or when the last wake-up is KG_WAKE_NS old;
 * otherwise it is submitted without a wake-up and the consumer, which polls
 * every KG_WAKE_MS for a while after a batch (kg_events_timeout_ms), takes
 * it with the next one.  A storm of refusals costs a wake-up per KG_WAKE_NS
 * (per KG_WAKE_FULL_NS while the consumer lags), not one per event. */
#define KG_WAKE_FILL_SHIFT	6
#define KG_WAKE_MS		10
#define KG_WAKE_NS		(KG_WAKE_MS * 1000000ULL)
#define KG_WAKE_FULL_NS		250000ULL

/* ---- governed jobs -------------------------------------------------------
 * kg_jobs: cgroup id of the job's cgroup -> struct kg_job.
 * A task is governed when its cgroup or any ancestor (up to
 * KG_MAX_CGROUP_LEVELS) is a key, so child cgroups stay governed.
 */
#define KG_JOB_F_DEGRADED	(1u << 0)	/* LSM not active for this job */

struct kg_job {
	__u64 job_id;		/* trace id (numeric part), unique per launch */
	__u32 policy_id;	/* generation whose rules apply; flipped atomically */
	__u32 flags;
};

/* kg_policies: policy id -> struct kg_policy (class defaults, knobs). */
#define KG_POL_F_FAIL_OPEN	(1u << 0)	/* stop enforcing when controller is gone */
#define KG_POL_F_EXEC_NO_FILELESS (1u << 1)	/* refuse exec of unlinked files (memfd) */

struct kg_policy {
	__u8 default_decision[KG_CLASS_MAX];	/* enum kg_decision per class */
	__u32 default_rule_id[KG_CLASS_MAX];	/* rule id reported for defaults */
	__u32 flags;
	/* socket(2) families allowed (bit = AF_*); others get sock_decision */
	__u64 socket_family_allow;
	__u32 socket_rule_id;
	__u8 socket_decision;
	__u8 allow_raw_sockets;		/* SOCK_RAW / SOCK_PACKET within allowed families */
	/* ICMP datagram ("ping") sockets: sendto on them reaches no cgroup
	 * hook, so they are decided when created: allowed when icmp_allow,
	 * else icmp_decision (rule icmp_rule_id) */
	__u8 icmp_allow;
	__u8 icmp_decision;
	/* cooldown: after cooldown_threshold denials within cooldown_window_ns,
	 * refuse everything for cooldown_ns.  0 threshold = off. */
	__u32 cooldown_threshold;
	__u32 cooldown_rule_id;
	__u64 cooldown_window_ns;
	__u64 cooldown_ns;
	/* fail-open grace: a controller heartbeat older than this is "dead" */
	__u64 heartbeat_timeout_ns;
	/* ops (KG_OP_BIT) that some file/exec/unix-path rule of this policy
	 * mentions: for any other op no dentry walk can match, so hooks skip it */
	__u32 file_ops_ruled;
	__u32 icmp_rule_id;
	/* random at install: with policy_id, names this generation for the
	 * decision cache of the file hooks (kg_dir_cache), so a policy id that
	 * is reused after its generation was removed never matches old entries */
	__u64 serial;
	/* capabilities the job may use (a bit per CAP_*): what every job keeps
	 * and the policy's system_access (userspace/kernel/caps.h); lsm/capable
	 * refuses the others */
	__u64 caps_allow;
	/* members of kg_outside the policy's system_access grants back (a bit
	 * per member, userspace/kernel/outside.h) */
	__u32 outside_allow;
	__u32 _pad_outside;
};

/* ---- the decision cache of the file hooks (full mode) -----------------------
 * kg_dir_cache: inode storage on directories.  For a directory D and a file
 * op, the first SUBTREE entry (for that op) found from D up to the top of
 * D's superblock, or "none up to the top" (rule_id 0): what a walk from
 * anything beneath D learns at D.  Valid only for the policy generation
 * (policy_id, serial) and the rename_lock sequence it was computed under:
 * any d_move anywhere (rename, exchange, a directory alias spliced) makes
 * every entry stale.  Mounts are not part of an entry: the walk crosses
 * them live.  An entry is never changed in place (a reader on another CPU
 * would see half of it): it is deleted and created anew with the new slot.
 * See bpf/walk.bpf.h. */
#define KG_DC_OPS	8	/* ops 0..7 (KG_OP_READ..KG_OP_UNIX_CONNECT) */

struct kg_dc_slot {
	__u32 rule_id;		/* 0: no SUBTREE entry up to the top */
	__u8 decision;
	__u8 _pad0[3];
};

struct kg_dir_cache {
	__u64 serial;		/* struct kg_policy's */
	__u32 policy_id;
	__u32 seq;		/* rename_lock's sequence, even */
	__u32 known;		/* KG_OP_BIT of the filled slots */
	__u32 _pad0;
	struct kg_dc_slot slot[KG_DC_OPS];
};

/* kg_job_state: cgroup id -> struct kg_job_state (runtime, kernel-owned). */
struct kg_job_state {
	__u64 window_start_ns;
	__u32 denials_in_window;
	__u32 _pad0;
	__u64 cooldown_until_ns;
	__u64 cooldown_started_ns;
};

/* ---- file rules (identity based) -----------------------------------------
 * kg_file_rules: (policy id, device, inode) -> up to KG_FILE_ENTS entries.
 * A hook walks the dentry chain from the object to the root (crossing mounts
 * when it has a vfsmount) and the first entry whose op mask matches wins:
 * the deepest matching inode is the most specific rule.  EXACT entries only
 * match the object itself; SUBTREE entries also match every descendant.
 * Devices are the kernel's internal encoding (MAJOR << 20 | MINOR).
 */
#define KG_FILE_F_SUBTREE	(1u << 0)
/* An ancestor of what a deny/require_approval rule names (its path, or a
 * name rule's anchor): renaming or removing it would change what the rule's
 * path means, so rename and unlink of the directory itself are refused.
 * Exact (never matches descendants); one per inode; reported as the rule. */
#define KG_FILE_F_GUARD		(1u << 1)

struct kg_file_key {
	__u32 policy_id;
	__u32 _pad0;
	__u64 dev;
	__u64 ino;
};

struct kg_rule_ent {
	__u32 rule_id;		/* 0 = empty slot */
	__u32 ops;		/* KG_OP_BIT mask */
	__u8 decision;
	__u8 flags;
	__u16 _pad0;
};

struct kg_file_rule {
	struct kg_rule_ent ent[KG_FILE_ENTS];
};

/* kg_name_rules: rules whose path did not exist at compile time.  Keyed by
 * the deepest existing ancestor and the hash of the first missing component;
 * creating that name (file, dir, node, symlink, link or rename target) gets
 * the entry's decision. */
struct kg_name_key {
	__u32 policy_id;
	__u32 _pad0;
	__u64 dev;
	__u64 ino;
	__u64 name_hash;	/* kg_hash_bytes() of the component */
};

/* ---- network rules -------------------------------------------------------
 * kg_net_rules: LPM trie keyed by (policy id, address) with IPv4 stored as
 * IPv4-mapped IPv6, so ::ffff:a.b.c.d and a.b.c.d are the same key.
 * prefixlen counts the 32 policy-id bits plus the address bits.  Each value
 * carries its own entries followed by those of every covering shorter prefix
 * (the compiler copies them down), so the first matching entry is the most
 * specific rule and a port miss still falls back to a wider prefix.
 */
struct kg_net_key {
	__u32 prefixlen;
	__u32 policy_id;	/* big endian in the key: it is matched bitwise */
	__u8 addr[16];
};

struct kg_net_ent {
	__u32 rule_id;
	__u16 port_lo;		/* host order; 0..65535 = any */
	__u16 port_hi;
	__u8 proto;		/* 0 = any, 6 = tcp, 17 = udp */
	__u8 decision;
	__u8 ops;		/* KG_NET_OP_*: connect, send, bind */
	__u8 _pad0;
};

#define KG_NET_OP_CONNECT	(1u << 0)
#define KG_NET_OP_SEND		(1u << 1)
/* bind (and listen) on a local address that is not loopback: inbound.
 * Never implied: a rule allows it only when its ops say "bind". */
#define KG_NET_OP_BIND		(1u << 2)

struct kg_net_rule {
	struct kg_net_ent ent[KG_NET_ENTS];
};

/* ---- egress by name (userspace/dns/) -----------------------------------------
 * A job whose policy has host rules gets a resolver of its own (run by its
 * controller, outside the job, on loopback).  kg_dns_redirect: job cgroup id
 * -> that resolver's addresses; connect4/6 and sendmsg4/6 send every TCP or
 * UDP datagram/connection of the job to port 53, whatever its address, there
 * instead, and remember the address asked for in kg_dns_orig (by socket
 * cookie) so that recvmsg4/6 and getpeername4/6 give it back: the job's
 * resolver library sees the answer come from the server it asked.
 */
struct kg_dns_redirect {
	__u32 addr4;		/* network order: 127.x.y.z */
	__u16 port4;		/* network order; 0 = no IPv4 resolver */
	__u16 port6;		/* network order; 0 = no IPv6 resolver */
	__u32 addr6[4];		/* ::1 */
};

struct kg_dns_orig {
	__u32 addr[4];		/* asked for: IPv4 in addr[0] (AF_INET), else IPv6 */
	__u32 via[4];		/* redirected to, in the same form */
	__u16 port;		/* network order */
	__u16 via_port;
	__u32 _pad0;
};

/* kg_dns_addrs: (job cgroup id, address) -> what the job's resolver learnt:
 * the address was in an answer for a name some host rule matches; it carries
 * the entries of those rules (most specific first, as in kg_net_rule) while
 * it is live: until expires_ns (bpf_ktime_get_ns clock) and only under the
 * generation it was learnt for.  Keyed by job, so what one job learns opens
 * nothing for another. */
struct kg_dns_key {
	__u64 cgid;
	__u8 addr[16];		/* IPv4 as IPv4-mapped IPv6 */
};

struct kg_dns_addr {
	__u64 expires_ns;
	__u32 policy_id;
	__u32 name_id;		/* the resolver's id of the name (audit) */
	struct kg_net_ent ent[KG_NET_ENTS];
};

/* kg_dns_names: (job cgroup id, name id) -> the name, for the event of a
 * connection decided through it (copied into the event's path). */
struct kg_dns_name_key {
	__u64 cgid;
	__u32 name_id;
	__u32 _pad0;
};

struct kg_dns_name {
	char name[KG_PATH_MAX];
};

#define KG_MAX_DNS_ADDRS	131072
#define KG_MAX_DNS_NAMES	65536
#define KG_MAX_DNS_SOCKETS	65536

/* kg_unix_abstract: (policy id, hash of abstract name) -> rule. */
struct kg_unix_key {
	__u32 policy_id;
	__u32 _pad0;
	__u64 name_hash;
};

/* kg_rule_params: (policy id, rule id) -> throttle parameters. */
struct kg_rule_key {
	__u32 policy_id;
	__u32 rule_id;
};

struct kg_rule_params {
	__u64 rate_per_sec;	/* tokens added per second */
	__u64 burst;		/* bucket size */
};

/* kg_throttle: (job cgroup id, rule id) -> bucket (kernel-owned). */
struct kg_throttle_key {
	__u64 cgid;
	__u32 rule_id;
	__u32 _pad0;
};

struct kg_throttle_state {
	__u64 tokens_milli;	/* tokens * 1000 */
	__u64 last_ns;
	__u64 refused;		/* refusals since the last reported one */
	__u64 last_report_ns;	/* throttle events are aggregated per second */
	/* of the last refusal: what the controller reports for refusals still
	 * unreported when the job ends (kg_record_throttle_residue) */
	__u32 policy_id;
	__u32 uid;
	__u8 op;
	__u8 mechanism;
	__u16 _pad0;
	__u32 _pad1;
};

/* ---- grants ----------------------------------------------------------------
 * kg_grants: the exact action (job, op, target) -> grant.  Keyed by the full
 * tuple, so a grant cannot be stretched to another target.  A creation's
 * target is the directory *and* the new name (name_hash, FNV-1a of the
 * component; 0 for an existing object), so approving "create /w/out/a.txt"
 * lets exactly that name be created, not any name in /w/out.
 */
struct kg_target {
	union {
		struct {
			__u64 dev;
			__u64 ino;
			__u64 name_hash;	/* creations only */
		} file;
		struct {
			__u8 addr[16];	/* IPv4 as IPv4-mapped IPv6 */
			__u16 port;	/* host order */
			__u8 proto;
			__u8 _pad0;
		} net;
		__u8 raw[24];
	};
};

struct kg_grant_key {
	__u64 cgid;		/* job cgroup id */
	__u32 op;		/* enum kg_op */
	__u32 _pad0;
	struct kg_target target;
};

#define KG_GRANT_UNLIMITED	0xffffffffu

struct kg_grant {
	__u64 expires_ns;	/* CLOCK_MONOTONIC (bpf_ktime_get_ns); 0 = none */
	__u32 uses_left;	/* KG_GRANT_UNLIMITED until expiry; 0 = spent */
	__u32 policy_id;	/* grant valid only while the job runs this id */
};

/* ---- kgate's own state ------------------------------------------------------
 * kg_protected: the identities (kernel dev, inode) of the directories that
 * hold kgate's state (pin dir, state dir, audit dir) and of the directories
 * that lead to them.  Whatever its policy says, and whether or not its
 * controller is alive, no governed task may open, create, remove, rename,
 * link, truncate, chmod or chown anything beneath a KG_PROT_F_TREE entry,
 * nor connect to a socket there (the daemon's control socket), nor rename
 * or remove a KG_PROT_F_TREE or KG_PROT_F_PATH directory itself.  An entry
 * with ino 0 and KG_PROT_F_DEV marks a device holding any of them: one
 * lookup sends every other file away before the walk.
 */
#define KG_PROT_F_TREE		(1u << 0)	/* kgate's directory: its contents */
#define KG_PROT_F_PATH		(1u << 1)	/* a directory on the way to one */
#define KG_PROT_F_DEV		(1u << 2)	/* ino 0: the device holds entries */
#define KG_MAX_PROTECTED	256

struct kg_prot_key {
	__u64 dev;		/* kernel encoding, as in kg_file_key */
	__u64 ino;		/* 0 = the device entry */
};

/* ---- escapes by proxy: daemons' sockets, files run or obeyed outside the job ---
 * kg_outside: names, by (kernel dev, inode of the directory holding them,
 * FNV-1a of the name), that no governed task may write, create, remove,
 * rename, link, chmod, chown or connect to (a socket), whatever its policy
 * says, unless its policy's system_access grants the member back
 * (kg_policy.outside_allow).  name_hash 0: the directory holds entries (so
 * the walk hashes a name only there); name_hash 1: the directory itself is
 * a protected tree that is the root of its superblock (a mount point).
 * Value: KG_OUT_F_* | the member number (KG_OUT_MEMBER_MASK).
 * userspace/kernel/outside.c fills it; bpf/outside.bpf.c reads it.
 */
#define KG_OUT_MEMBER_MASK	0xffu
#define KG_OUT_F_ENTRY		(1u << 8)	/* this name (a file, a socket) */
#define KG_OUT_F_TREE		(1u << 9)	/* this name and everything beneath */
#define KG_OUT_F_PATH		(1u << 10)	/* a directory leading to entries: not
						 * renamed or removed */
#define KG_OUT_F_EXEMPT		(1u << 11)	/* beneath a tree, left alone (/usr/local) */
#define KG_OUT_F_DIR		(1u << 12)	/* name_hash 0: the directory holds entries */
#define KG_OUT_HASH_DIR		0
#define KG_OUT_HASH_SELF	1
#define KG_MAX_OUTSIDE		2048

struct kg_out_key {
	__u64 dev;		/* kernel encoding, as in kg_file_key */
	__u64 ino;		/* the directory holding the name */
	__u64 name_hash;	/* kg_hash_bytes() of the name, or KG_OUT_HASH_* */
};

/* ---- control -------------------------------------------------------------- */
struct kg_control {
	__u64 heartbeat_ns;	/* controller liveness (bpf_ktime_get_ns clock) */
	__u32 lsm_active;	/* set by the LSM object once attached */
	__u32 fs_flags;		/* KG_CTL_FS_*: set by the loader that loaded the file hooks */
};

/* The file hooks were loaded with btrfs's BTF at hand: they key a btrfs inode
 * by its subvolume's device (what stat(2) reports), not the superblock's.
 * Without it, rules on btrfs paths cannot be compiled (maps.c says so). */
#define KG_CTL_FS_BTRFS		(1u << 0)

/* ---- events ----------------------------------------------------------------
 * One ring buffer.  The decision is always made first; an event that cannot
 * be reserved is counted in kg_counters.events_lost[kind].
 */
enum kg_event_kind {
	KG_EV_DECISION = 0,
	KG_EV_ESCALATION = 1,	/* require_approval without a grant */
	KG_EV_THROTTLE = 2,
	KG_EV_COOLDOWN_START = 3,
	KG_EV_MAX,
};

#define KG_EVF_PATH_TRUNCATED	(1u << 0)
#define KG_EVF_WALK_INCOMPLETE	(1u << 1)
#define KG_EVF_GRANT_USED	(1u << 2)
#define KG_EVF_FAIL_OPEN	(1u << 3)
#define KG_EVF_PATH_REVERSED	(1u << 4)	/* path is "leaf/parent/.../top/" */
#define KG_EVF_RESIDUE		(1u << 5)	/* userspace: throttle refusals after the
						 * last report, counted at job end; no
						 * single target (path holds a note) */
#define KG_EVF_BY_NAME		(1u << 6)	/* net: decided by a host rule through an
						 * address the job's resolver learnt; path
						 * holds the name (kg_dns_names) */
#define KG_EVF_FOLD_END		(1u << 7)	/* userspace: identical decisions folded
						 * after the last event of their key
						 * (kg_fold), counted at job end; the
						 * target is that event's */

struct kg_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns */
	__u64 job_cgid;		/* cgroup id of the job (key in kg_jobs) */
	__u64 job_id;
	__u32 pid;		/* tgid */
	__u32 tid;
	__u32 uid;
	__u32 policy_id;
	__u32 rule_id;		/* 0 = class default */
	__u8 kind;		/* enum kg_event_kind */
	__u8 op;		/* enum kg_op */
	__u8 decision;		/* enum kg_decision actually enforced */
	__u8 mechanism;		/* enum kg_mechanism */
	__u32 flags;		/* KG_EVF_* */
	__u32 count;		/* decisions this event stands for: aggregated
				 * throttle refusals, or 1 + the identical
				 * decisions folded into it (kg_fold) */
	char comm[KG_COMM_LEN];
	struct kg_target target;
	__u8 family;		/* AF_INET / AF_INET6 / AF_UNIX for net events */
	__u8 _pad0[3];
	__u32 aux;		/* socket family/type, signal, ptrace mode... */
	char path[KG_PATH_MAX];	/* NUL-terminated; see KG_EVF_PATH_REVERSED */
};

/* ---- folding repeated decisions ---------------------------------------------
 * A job that repeats the same refused (or audited) action thousands of times
 * a second would fill the ring with identical events and push out the rest.
 * kg_fold: the identity of a decision event (job, policy, rule, op, decision,
 * mechanism, flags but the path's, family, aux, target) -> when the last
 * event of that key was emitted, and how many identical decisions came
 * since.  An identical decision within KG_FOLD_NS of that event emits
 * nothing and adds 1 to `folded`; the first one after the interval is
 * emitted with count = 1 + folded (taken atomically).  What is still folded
 * when the job ends is recorded by its controller (kg_record_fold_residue):
 * one record per key, "at_job_end", with the target of the key's last event
 * (kg_fold_last: key -> that event as submitted).  The decision itself is
 * never delayed or changed; only events of kind KG_EV_DECISION with decision
 * deny, cooldown or audit fold (never an allow, an escalation, a used grant,
 * a throttle report or a cooldown start).  A full kg_fold folds nothing new:
 * each decision then has its own event, as without folding, so counts stay
 * exact; entries go when the job ends.  A file's target is its identity
 * (device, inode): the same file reached by two paths is one key. */
#define KG_FOLD_NS		1000000000ULL	/* 1 s: at most one event per key and second */
#define KG_MAX_FOLD		16384
/* flags that describe the path's text, not the decision: not in the key */
#define KG_FOLD_FLAGS_IGNORED	(KG_EVF_PATH_TRUNCATED | KG_EVF_PATH_REVERSED)

struct kg_fold_key {
	__u64 cgid;		/* job cgroup id */
	__u32 policy_id;
	__u32 rule_id;
	__u32 flags;		/* KG_EVF_*, without KG_FOLD_FLAGS_IGNORED */
	__u32 aux;
	__u8 op;
	__u8 decision;
	__u8 mechanism;
	__u8 family;
	__u32 _pad0;
	struct kg_target target;
};

struct kg_fold {
	__u64 last_ns;		/* the key's last emitted event (bpf_ktime_get_ns) */
	__u64 folded;		/* identical decisions since, in no event yet */
	__u64 folded_ns;	/* the last of them: the job-end record's time */
};

/* kg_counters: per-CPU array, one element. */
struct kg_counters {
	__u64 decisions[KG_DEC_MAX];	/* every governed decision, by outcome */
	__u64 events_sent[KG_EV_MAX];
	__u64 events_lost[KG_EV_MAX];	/* ring buffer full */
	__u64 walk_incomplete;		/* dentry walks that hit KG_MAX_DEPTH */
	/* the part of events_lost that kg_job_lost could not take (map full) */
	__u64 lost_unattributed[KG_EV_MAX];
};

/* ---- losses per job --------------------------------------------------------
 * kg_job_lost: job cgroup id -> the decisions of that job whose event the ring
 * buffer could not take (kernel-written, only ever increased, an entry made
 * by the first loss).  kg_lost_seen: job cgroup id -> how many of them the
 * trail already accounts for (written by the consumer after the events_lost
 * record that accounts them is committed).  The consumer deletes both
 * entries once the job is gone (not in kg_jobs) and fully accounted.  A loss
 * that finds kg_job_lost full is counted in kg_counters.lost_unattributed
 * ("unattributed" in the events_lost record).  Each loss is counted once in
 * exactly one of those two places (and in kg_counters.events_lost, which
 * `kgate status` and the metrics show), so a loss record's per-job and
 * per-kind parts always add up to its total. */
struct kg_job_lost {
	__u64 job_id;		/* trace id (numeric part) of the job */
	__u64 lost[KG_EV_MAX];	/* by event kind */
};

/* ---- the probe of `kgate doctor` (bpf/probe.bpf.c) ---------------------------
 * One event per open the probe LSM program denied (its own ring buffer;
 * nothing shared with kgate's maps). */
struct kg_probe_event {
	__u32 pid;		/* thread group id of the opener */
	__u32 tid;
	__u64 cgid;
	__u64 dev;		/* kernel encoding: MAJOR << 20 | MINOR */
	__u64 ino;
};

/* FNV-1a 64: a map-key hash for names (not a security boundary: lookups by
 * hash only ever *add* restrictions, never grants). */
#define KG_FNV_OFFSET	0xcbf29ce484222325ULL
#define KG_FNV_PRIME	0x100000001b3ULL

#define KG_PIN_DEFAULT	"/sys/fs/bpf/kgate"

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
/* Every struct that crosses the kernel/userspace boundary: its size, and the
 * offset of the fields after which padding could hide (BPF's clang and the
 * controller's gcc must agree byte for byte). */
#define KG_OFF(t, f) __builtin_offsetof(struct t, f)
_Static_assert(sizeof(struct kg_job) == 16 && KG_OFF(kg_job, policy_id) == 8, "kg_job layout");
_Static_assert(sizeof(struct kg_policy) == 104 && KG_OFF(kg_policy, default_rule_id) == 4 &&
	       KG_OFF(kg_policy, socket_family_allow) == 24 &&
	       KG_OFF(kg_policy, cooldown_threshold) == 40 &&
	       KG_OFF(kg_policy, heartbeat_timeout_ns) == 64 &&
	       KG_OFF(kg_policy, file_ops_ruled) == 72 && KG_OFF(kg_policy, serial) == 80 &&
	       KG_OFF(kg_policy, caps_allow) == 88 && KG_OFF(kg_policy, outside_allow) == 96,
	       "kg_policy layout");
_Static_assert(sizeof(struct kg_dc_slot) == 8, "kg_dc_slot layout");
_Static_assert(sizeof(struct kg_dir_cache) == 24 + 8 * KG_DC_OPS &&
	       KG_OFF(kg_dir_cache, slot) == 24, "kg_dir_cache layout");
_Static_assert(sizeof(struct kg_job_state) == 32 && KG_OFF(kg_job_state, cooldown_until_ns) == 16,
	       "kg_job_state layout");
_Static_assert(sizeof(struct kg_file_key) == 24 && KG_OFF(kg_file_key, dev) == 8,
	       "kg_file_key layout");
_Static_assert(sizeof(struct kg_rule_ent) == 12 && KG_OFF(kg_rule_ent, decision) == 8,
	       "kg_rule_ent layout");
_Static_assert(sizeof(struct kg_file_rule) == 12 * KG_FILE_ENTS, "kg_file_rule layout");
_Static_assert(sizeof(struct kg_name_key) == 32 && KG_OFF(kg_name_key, name_hash) == 24,
	       "kg_name_key layout");
_Static_assert(sizeof(struct kg_net_key) == 24 && KG_OFF(kg_net_key, addr) == 8,
	       "kg_net_key layout");
_Static_assert(sizeof(struct kg_net_ent) == 12 && KG_OFF(kg_net_ent, proto) == 8,
	       "kg_net_ent layout");
_Static_assert(sizeof(struct kg_net_rule) == 12 * KG_NET_ENTS, "kg_net_rule layout");
_Static_assert(sizeof(struct kg_dns_redirect) == 24 && KG_OFF(kg_dns_redirect, addr6) == 8,
	       "kg_dns_redirect layout");
_Static_assert(sizeof(struct kg_dns_orig) == 40 && KG_OFF(kg_dns_orig, port) == 32,
	       "kg_dns_orig layout");
_Static_assert(sizeof(struct kg_dns_key) == 24 && KG_OFF(kg_dns_key, addr) == 8,
	       "kg_dns_key layout");
_Static_assert(sizeof(struct kg_dns_addr) == 16 + 12 * KG_NET_ENTS && KG_OFF(kg_dns_addr, ent) == 16,
	       "kg_dns_addr layout");
_Static_assert(sizeof(struct kg_dns_name_key) == 16 && KG_OFF(kg_dns_name_key, name_id) == 8,
	       "kg_dns_name_key layout");
_Static_assert(sizeof(struct kg_dns_name) == KG_PATH_MAX, "kg_dns_name layout");
_Static_assert(sizeof(struct kg_unix_key) == 16 && KG_OFF(kg_unix_key, name_hash) == 8,
	       "kg_unix_key layout");
_Static_assert(sizeof(struct kg_rule_key) == 8 && KG_OFF(kg_rule_key, rule_id) == 4,
	       "kg_rule_key layout");
_Static_assert(sizeof(struct kg_rule_params) == 16, "kg_rule_params layout");
_Static_assert(sizeof(struct kg_throttle_key) == 16 && KG_OFF(kg_throttle_key, rule_id) == 8,
	       "kg_throttle_key layout");
_Static_assert(sizeof(struct kg_throttle_state) == 48 && KG_OFF(kg_throttle_state, policy_id) == 32,
	       "kg_throttle_state layout");
_Static_assert(sizeof(struct kg_target) == 24 && KG_OFF(kg_target, net.port) == 16,
	       "kg_target layout");
_Static_assert(sizeof(struct kg_grant_key) == 40 && KG_OFF(kg_grant_key, target) == 16,
	       "kg_grant_key layout");
_Static_assert(sizeof(struct kg_grant) == 16 && KG_OFF(kg_grant, uses_left) == 8,
	       "kg_grant layout");
_Static_assert(sizeof(struct kg_prot_key) == 16, "kg_prot_key layout");
_Static_assert(sizeof(struct kg_out_key) == 24 && KG_OFF(kg_out_key, name_hash) == 16,
	       "kg_out_key layout");
_Static_assert(sizeof(struct kg_control) == 16 && KG_OFF(kg_control, lsm_active) == 8,
	       "kg_control layout");
_Static_assert(sizeof(struct kg_event) == 104 + KG_PATH_MAX && KG_OFF(kg_event, kind) == 44 &&
	       KG_OFF(kg_event, flags) == 48 && KG_OFF(kg_event, comm) == 56 &&
	       KG_OFF(kg_event, target) == 72 && KG_OFF(kg_event, aux) == 100 &&
	       KG_OFF(kg_event, path) == 104, "kg_event layout");
_Static_assert(sizeof(struct kg_fold_key) == 56 && KG_OFF(kg_fold_key, op) == 24 &&
	       KG_OFF(kg_fold_key, target) == 32, "kg_fold_key layout");
_Static_assert(sizeof(struct kg_fold) == 24, "kg_fold layout");
_Static_assert(sizeof(struct kg_counters) == 8 * (KG_DEC_MAX + 3 * KG_EV_MAX + 1) &&
	       KG_OFF(kg_counters, walk_incomplete) == 8 * (KG_DEC_MAX + 2 * KG_EV_MAX) &&
	       KG_OFF(kg_counters, lost_unattributed) == 8 * (KG_DEC_MAX + 2 * KG_EV_MAX + 1),
	       "kg_counters layout");
_Static_assert(sizeof(struct kg_job_lost) == 8 + 8 * KG_EV_MAX && KG_OFF(kg_job_lost, lost) == 8,
	       "kg_job_lost layout");
_Static_assert(sizeof(struct kg_probe_event) == 32 && KG_OFF(kg_probe_event, cgid) == 8,
	       "kg_probe_event layout");
_Static_assert(KG_OP_UNIX_CONNECT < KG_DC_OPS, "every file op has a cache slot");
#undef KG_OFF
#endif

#endif /* KGATE_H */
