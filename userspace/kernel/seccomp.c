// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * seccomp.c - the job's syscall filter (libseccomp).
 *
 * Layout of the filter, first match wins in our own bookkeeping (libseccomp
 * itself has no rule order, so a syscall that an earlier layer already owns
 * is skipped by the later ones):
 *   1. the self-protection baseline (never weaker, whatever the policy says),
 *   2. held syscalls (SCMP_ACT_NOTIFY) when opts->hold_syscalls,
 *   3. the policy's syscall rules in policy order.
 * Default action: allow. Bad architecture (i386 int $0x80, x32): kill the
 * process. libseccomp's x86_64 filter also sends x32 numbers (nr with
 * __X32_SYSCALL_BIT) to the bad-arch action unless x32 is added to the
 * filter, which we never do (tests/test_seccomp.c checks both).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "kernel/landlock.h"
#include "kernel/seccomp.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* Refused in every mode with EPERM (clone3 gets ENOSYS, see below). */
const char *const kg_seccomp_baseline[] = {
	/* kgate's own BPF objects and kernel introspection */
	"bpf", "perf_event_open", "lookup_dcookie",
	/* kernel code */
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	/* mount namespace surgery */
	"mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
	"fsmount", "fsconfig", "fspick", "mount_setattr", "chroot",
	/* namespaces: joining; unshare/clone are filtered by flags below */
	"setns",
	/* file handles bypass path resolution (needs CAP_DAC_READ_SEARCH) */
	"open_by_handle_at",
	/* kernel state outside the job */
	"userfaultfd", "keyctl", "add_key", "request_key", "acct", "swapon", "swapoff",
	"reboot", "settimeofday", "clock_settime", "clock_adjtime", "iopl", "ioperm",
	"quotactl", "quotactl_fd", "syslog", "vhangup", "uselib", "nfsservctl",
};
const size_t kg_seccomp_baseline_len = ARRAY_SIZE(kg_seccomp_baseline);

/* Refused only without BPF LSM (which otherwise scopes them to the job). */
static const char *const degraded_only[] = {
	"ptrace", "process_vm_readv", "process_vm_writev",
};

/* Held for a controller's answer with opts->hold_syscalls. */
static const char *const held[] = { "connect", "sendto", "sendmsg", "sendmmsg" };

/* io_uring performs openat/unlinkat/connect/sendmsg... without those
 * syscalls, so the syscall rules of a policy and the hold for approval
 * would not see them.  Refused in every job with ENOSYS, which liburing and
 * libuv treat as "no io_uring here" and fall back to plain syscalls.  (The
 * BPF LSM and cgroup-BPF hooks do see io_uring operations.) */
static const char *const io_uring_calls[] = { "io_uring_setup", "io_uring_enter",
					   "io_uring_register" };

static const uint64_t ns_flags[] = {
	CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWPID, CLONE_NEWNET,
	CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWTIME,
};

/* Syscalls a layer already owns (unconditionally): later layers skip them. */
struct owned {
	int nrs[512];
	size_t n;
};

static bool owned_has(const struct owned *o, int nr)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		if (o->nrs[i] == nr)
			return true;
	return false;
}

static void owned_add(struct owned *o, int nr)
{
	if (o->n < ARRAY_SIZE(o->nrs) && !owned_has(o, nr))
		o->nrs[o->n++] = nr;
}

/* Add an unconditional rule by name; unknown names (older libseccomp or
 * kernel headers) are skipped: the call then does not exist either. */
static int add_named(scmp_filter_ctx ctx, struct owned *o, const char *name, uint32_t act)
{
	int nr = seccomp_syscall_resolve_name(name), ret;

	if (nr == __NR_SCMP_ERROR) {
		kg_debug("seccomp: %s unknown to libseccomp, skipped", name);
		return 0;
	}
	if (owned_has(o, nr))
		return 0;
	ret = seccomp_rule_add(ctx, act, nr, 0);
	if (ret < 0)
		return kg_err("seccomp: rule for %s: %s", name, strerror(-ret)), ret;
	owned_add(o, nr);
	return 0;
}

/* unshare(flags) and clone(flags, ...): refuse any namespace flag. clone3
 * passes its flags in memory that seccomp cannot read, so it gets ENOSYS and
 * libc falls back to clone (this also closes clone3(CLONE_INTO_CGROUP)). */
static int add_namespace_rules(scmp_filter_ctx ctx, scmp_filter_ctx quiet, struct owned *o)
{
	static const char *const calls[] = { "unshare", "clone" };
	size_t i, j;
	int ret;

	for (i = 0; i < ARRAY_SIZE(calls); i++) {
		int nr = seccomp_syscall_resolve_name(calls[i]);

		for (j = 0; j < ARRAY_SIZE(ns_flags); j++) {
			ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
					       SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[j], ns_flags[j]));
			if (ret < 0)
				return kg_err("seccomp: %s flag rule: %s", calls[i],
					      strerror(-ret)), ret;
		}
	}
	return add_named(quiet, o, "clone3", SCMP_ACT_ERRNO(ENOSYS));
}

/* Terminal ioctls that reach past the job's own terminal, refused with
 * EPERM in every mode (ioctl itself stays available, and is not "owned"):
 *   TIOCSTI    pushes input into a terminal: typed into the user's shell,
 *              it runs after the job, ungoverned;
 *   TIOCLINUX  the console's paste-selection and friends, same effect;
 *   TIOCSCTTY with arg 1: steal a terminal that is another session's
 *              controlling terminal (CAP_SYS_ADMIN).
 * The kernel reads ioctl's command as 32 bits: compare the low half only,
 * or a command with junk in the high bits would pass the filter and still
 * run. */
static int add_tty_rules(scmp_filter_ctx ctx)
{
	static const unsigned long cmds[] = { TIOCSTI, TIOCLINUX };
	int nr = seccomp_syscall_resolve_name("ioctl"), ret;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
				       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, cmds[i]));
		if (ret < 0)
			return kg_err("seccomp: ioctl rule: %s", strerror(-ret)), ret;
	}
	ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 2,
			       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSCTTY),
			       SCMP_A2(SCMP_CMP_EQ, 1));
	if (ret < 0)
		return kg_err("seccomp: ioctl rule: %s", strerror(-ret)), ret;
	return 0;
}

/* Socket options that send a packet somewhere else than the address the
 * connect/sendmsg hooks checked: IPv4 source routes (IP_OPTIONS; a loose or
 * strict source route makes the first hop the route's first address),
 * IPv6 routing headers (IPV6_RTHDR, and IPV6_2292RTHDR and
 * IPV6_2292PKTOPTIONS which can carry one).  Refused with EPERM in every
 * mode.  (The same options given per message as ancillary data to
 * sendmsg, IP_RETOPTS and IPV6_RTHDR, are not seen by seccomp: see
 * docs/design.md.) */
static int add_sockopt_rules(scmp_filter_ctx ctx)
{
	static const struct { int level, name; } opts[] = {
		{ IPPROTO_IP, IP_OPTIONS }, { IPPROTO_IPV6, IPV6_RTHDR },
		{ IPPROTO_IPV6, 5 /* IPV6_2292RTHDR */ }, { IPPROTO_IPV6, 6 /* IPV6_2292PKTOPTIONS */ },
	};
	int nr = seccomp_syscall_resolve_name("setsockopt"), ret;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(opts); i++) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 2,
				       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (uint32_t)opts[i].level),
				       SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffu, (uint32_t)opts[i].name));
		if (ret < 0)
			return kg_err("seccomp: setsockopt rule: %s", strerror(-ret)), ret;
	}
	return 0;
}

/* `quiet` gets what must not be logged: the ENOSYS answers libc falls back
 * from (clone3 at every thread, io_uring probes) and the held calls. */
static int add_baseline(scmp_filter_ctx ctx, scmp_filter_ctx quiet, struct owned *o,
			const struct kg_seccomp_opts *opts)
{
	size_t i;
	int ret;

	for (i = 0; i < kg_seccomp_baseline_len; i++)
		if ((ret = add_named(ctx, o, kg_seccomp_baseline[i], SCMP_ACT_ERRNO(EPERM))))
			return ret;
	if (opts && opts->degraded)
		for (i = 0; i < ARRAY_SIZE(degraded_only); i++)
			if ((ret = add_named(ctx, o, degraded_only[i], SCMP_ACT_ERRNO(EPERM))))
				return ret;
	for (i = 0; i < ARRAY_SIZE(io_uring_calls); i++)
		if ((ret = add_named(quiet, o, io_uring_calls[i], SCMP_ACT_ERRNO(ENOSYS))))
			return ret;
	if (opts && opts->hold_syscalls) {
		for (i = 0; i < ARRAY_SIZE(held); i++)
			if ((ret = add_named(quiet, o, held[i], SCMP_ACT_NOTIFY)))
				return ret;
	}
	if ((ret = add_tty_rules(ctx)) || (ret = add_sockopt_rules(ctx)))
		return ret;
	return add_namespace_rules(ctx, quiet, o);
}

/* ---- policy rules ------------------------------------------------------------ */

/* The seccomp action for a rule's decision; false if seccomp cannot do it. */
static bool decision_action(const struct kg_rule *r, uint32_t *act, char *why, size_t len)
{
	int err = r->errno_value > 0 ? r->errno_value : EPERM;

	switch (r->decision) {
	case KG_DEC_DENY:
	case KG_DEC_COOLDOWN:
		*act = SCMP_ACT_ERRNO((uint32_t)err);
		snprintf(why, len, "seccomp returns errno %d", err);
		return true;
	case KG_DEC_REQUIRE_APPROVAL:
		*act = SCMP_ACT_ERRNO(EPERM);
		snprintf(why, len, "seccomp refuses it (EPERM): syscalls cannot wait for approval");
		return true;
	case KG_DEC_NO_OP:
		*act = SCMP_ACT_ERRNO(0);
		snprintf(why, len, "seccomp returns 0 without running the call");
		return true;
	case KG_DEC_AUDIT:
		*act = SCMP_ACT_LOG;
		snprintf(why, len, "seccomp lets it run and logs it (kernel audit log)");
		return true;
	case KG_DEC_ALLOW:
		*act = SCMP_ACT_ALLOW;
		snprintf(why, len, "seccomp allows it (baseline syscalls stay refused)");
		return true;
	case KG_DEC_THROTTLE:
		snprintf(why, len, "not enforced: seccomp has no rate limit, the call is allowed");
		return false;
	default:
		snprintf(why, len, "not enforced: decision not meaningful for a syscall");
		return false;
	}
}

enum kg_mechanism kg_seccomp_rule_mechanism(const struct kg_rule *rule, char *reason, size_t len)
{
	uint32_t act;
	char tmp[1];

	if (!reason) {
		reason = tmp;
		len = sizeof(tmp);
	}
	if (rule->kind != KG_RULE_SYSCALL) {
		snprintf(reason, len, "not a syscall rule");
		return KG_MECH_NONE;
	}
	return decision_action(rule, &act, reason, len) ? KG_MECH_SECCOMP : KG_MECH_NONE;
}

static int rule_args(const struct kg_rule *r, struct scmp_arg_cmp *cmp, size_t max)
{
	size_t i;

	if (r->nargs > max)
		return -E2BIG;
	for (i = 0; i < r->nargs; i++) {
		const struct kg_syscall_arg *a = &r->args[i];

		if (a->index > 5 || a->op < SCMP_CMP_NE || a->op > SCMP_CMP_MASKED_EQ)
			return -EINVAL;
		cmp[i].arg = a->index;
		cmp[i].op = (enum scmp_compare)a->op;
		if (a->op == SCMP_CMP_MASKED_EQ) {
			cmp[i].datum_a = a->mask;
			cmp[i].datum_b = a->value;
		} else {
			cmp[i].datum_a = a->value;
			cmp[i].datum_b = 0;
		}
	}
	return (int)r->nargs;
}

static int add_policy_rule(scmp_filter_ctx ctx, struct owned *o, const struct kg_rule *r)
{
	struct scmp_arg_cmp cmp[6];
	char why[128];
	uint32_t act;
	size_t i;
	int nargs, ret;

	if (!decision_action(r, &act, why, sizeof(why))) {
		kg_debug("seccomp: rule '%s' %s", r->id, why);
		return 0;
	}
	nargs = rule_args(r, cmp, ARRAY_SIZE(cmp));
	if (nargs < 0)
		return kg_err("seccomp: rule '%s': bad argument condition", r->id), nargs;
	for (i = 0; i < r->nsyscalls; i++) {
		int nr = seccomp_syscall_resolve_name(r->syscalls[i]);

		if (nr == __NR_SCMP_ERROR)
			return kg_err("seccomp: rule '%s': unknown syscall '%s'", r->id,
				      r->syscalls[i]), -EINVAL;
		if (owned_has(o, nr)) {
			kg_debug("seccomp: rule '%s': %s already decided by an earlier rule or "
				 "the baseline", r->id, r->syscalls[i]);
			continue;
		}
		/* allow is the default action: libseccomp refuses a rule equal to it,
		 * but the rule still claims the syscall against later rules */
		if (act != SCMP_ACT_ALLOW) {
			ret = seccomp_rule_add_array(ctx, act, nr, (unsigned int)nargs, cmp);
			if (ret < 0)
				return kg_err("seccomp: rule '%s' on %s: %s", r->id,
					      r->syscalls[i], strerror(-ret)), ret;
		}
		if (!nargs)
			owned_add(o, nr);
	}
	return 0;
}

/* socket(2) families outside the policy's socket allow-list.  cgroup-BPF
 * sock_create only sees AF_INET/AF_INET6, so without BPF LSM seccomp (which
 * reads the family argument) refuses the others: packet, netlink, vsock,
 * bluetooth...  The error is the rule's.  In full mode lsm/socket_create
 * covers them (and audits each refusal), so the filter leaves them alone. */
#define KG_AF_MAX 64
#ifndef SOCK_PACKET
#define SOCK_PACKET 10
#endif

/* Does the policy refuse, hold or throttle any network destination?  The
 * same test as image.c's for ICMP and raw sockets (fill_icmp). */
static bool net_restricts(enum kg_decision d)
{
	return d != KG_DEC_NONE && d != KG_DEC_ALLOW && d != KG_DEC_AUDIT;
}

static bool policy_restricts_net(const struct kg_policy_doc *doc)
{
	size_t i;

	if (!doc)
		return false;
	if (net_restricts(doc->class_default[KG_CLASS_NET]))
		return true;
	for (i = 0; i < doc->nrules; i++)
		if (doc->rules[i].kind == KG_RULE_NET && net_restricts(doc->rules[i].decision))
			return true;
	return false;
}

/* Packet sockets send any frame to any host past every cgroup hook (a root
 * job keeps CAP_NET_RAW).  They are allowed when the socket rule lists
 * "packet" with allow_raw, or, with no socket rule, when the policy
 * restricts no network destination (like raw inet sockets, decided by
 * kg_sock_create).  socket(AF_INET, SOCK_PACKET) is the old spelling of a
 * packet socket: the kernel makes it one before inet_create, so neither the
 * family list nor cgroup/sock_create would see it. */
static int add_packet_socket_rules(scmp_filter_ctx ctx, int nr, bool refuse_af_packet, int err)
{
	int ret = 0;

	if (refuse_af_packet)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 1,
				       SCMP_A0(SCMP_CMP_EQ, (uint64_t)AF_PACKET));
	if (ret >= 0)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 2,
				       SCMP_A0(SCMP_CMP_EQ, (uint64_t)AF_INET),
				       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, (uint64_t)SOCK_PACKET));
	return ret < 0 ? kg_err("seccomp: packet socket rule: %s", strerror(-ret)), ret : 0;
}

static int add_socket_family_rules(scmp_filter_ctx ctx, const struct kg_policy_doc *doc)
{
	int nr = seccomp_syscall_resolve_name("socket"), ret, fam, err = EPERM;
	uint64_t allowed = 0;
	bool have = false, allow_raw = false, packet_ok;
	size_t i;

	for (i = 0; doc && i < doc->nrules; i++) {
		if (doc->rules[i].kind != KG_RULE_SOCKET ||
		    (doc->rules[i].decision != KG_DEC_DENY &&
		     doc->rules[i].decision != KG_DEC_REQUIRE_APPROVAL))
			continue;
		allowed |= doc->rules[i].families;
		allow_raw = doc->rules[i].allow_raw;
		have = true;
	}
	packet_ok = (allowed & (1ull << AF_PACKET)) && allow_raw;
	/* No allow-list in the policy: the families every program uses.  A
	 * socket() of a family no module provides yet makes the kernel run
	 * modprobe for it (request_module, no capability asked), which in
	 * degraded mode nothing else refuses; EAFNOSUPPORT is what a kernel
	 * without the family answers. */
	if (!have || !allowed) {
		allowed = 1ull << AF_UNIX | 1ull << AF_INET | 1ull << AF_INET6 |
			  1ull << AF_NETLINK | 1ull << AF_PACKET;
		err = EAFNOSUPPORT;
		packet_ok = !policy_restricts_net(doc);
	}
	for (fam = 0; fam < KG_AF_MAX; fam++) {
		if (allowed & (1ull << fam))
			continue;
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 1,
				       SCMP_A0(SCMP_CMP_EQ, (uint64_t)fam));
		if (ret < 0)
			return kg_err("seccomp: socket family rule: %s", strerror(-ret)), ret;
	}
	/* families beyond the table are refused too */
	ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 1,
			       SCMP_A0(SCMP_CMP_GE, (uint64_t)KG_AF_MAX));
	if (ret < 0)
		return kg_err("seccomp: socket family rule: %s", strerror(-ret)), ret;
	if (packet_ok)
		return 0;
	return add_packet_socket_rules(ctx, nr, allowed & (1ull << AF_PACKET), EPERM);
}

/* Degraded mode, a policy that refuses some exec: Landlock checks the path
 * of what is executed, and a memfd has none in the tree, so a denied
 * program copied into a memfd would run.  Refuse memfds that can be
 * executable (no MFD_NOEXEC_SEAL, or MFD_EXEC) and execveat(AT_EMPTY_PATH)
 * (fexecve), with EPERM.  A syscall rule of the policy on either call
 * decides it instead. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

static int add_exec_memory_rules(scmp_filter_ctx ctx, const struct owned *o)
{
	int memfd = seccomp_syscall_resolve_name("memfd_create");
	int execat = seccomp_syscall_resolve_name("execveat");
	int ret = 0;

	if (memfd != __NR_SCMP_ERROR && !owned_has(o, memfd)) {
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), memfd, 1,
				       SCMP_A1(SCMP_CMP_MASKED_EQ, MFD_NOEXEC_SEAL, 0));
		if (!ret)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), memfd, 1,
					       SCMP_A1(SCMP_CMP_MASKED_EQ, MFD_EXEC, MFD_EXEC));
	}
	if (!ret && execat != __NR_SCMP_ERROR && !owned_has(o, execat))
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), execat, 1,
				       SCMP_A4(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
	return ret < 0 ? kg_err("seccomp: exec-from-memory rule: %s", strerror(-ret)), ret : 0;
}

/* ---- build and load -------------------------------------------------------------- */

static int base_attrs(scmp_filter_ctx ctx)
{
	int ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);

	if (ret < 0)
		return kg_err("seccomp: bad-arch action: %s", strerror(-ret)), ret;
	/* no_new_privs is set by kg_seccomp_load itself, explicitly */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (ret < 0)
		return ret;
	/* Syscalls are found by a binary search on their number instead of a
	 * linear chain: a call that some rule names (ioctl, socket, clone...)
	 * pays a few comparisons, not one per rule before it.  A call that no
	 * rule names never runs the filter: the kernel's per-filter cache
	 * (5.11+) answers allow from a bitmap, which needs the decision to
	 * depend on the architecture and number alone, as it does here.  An
	 * older libseccomp without the attribute builds the linear chain,
	 * which decides the same. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0)
		kg_debug("seccomp: no binary-tree optimisation in this libseccomp");
	return 0;
}

static int build_filter(scmp_filter_ctx ctx, scmp_filter_ctx quiet, const struct kg_policy_doc *doc,
			const struct kg_seccomp_opts *opts)
{
	struct owned owned = { .n = 0 };
	size_t i;
	int ret;

	ret = base_attrs(ctx);
	if (ret < 0)
		return ret;
	ret = add_baseline(ctx, quiet, &owned, opts);
	if (ret < 0)
		return ret;
	/* with BPF LSM, lsm/socket_create decides these families and records
	 * the decision; a seccomp refusal first would leave no audit record */
	if (!opts || opts->degraded) {
		ret = add_socket_family_rules(ctx, doc);
		if (ret < 0)
			return ret;
	}
	for (i = 0; doc && i < doc->nrules; i++) {
		if (doc->rules[i].kind != KG_RULE_SYSCALL)
			continue;
		ret = add_policy_rule(ctx, &owned, &doc->rules[i]);
		if (ret < 0)
			return ret;
	}
	if (opts && opts->degraded && kg_policy_restricts_exec(doc))
		return add_exec_memory_rules(ctx, &owned);
	return 0;
}

/* One filter as the kernel takes it: libseccomp's program, exported. */
static int export_filter(scmp_filter_ctx ctx, unsigned int flags, struct kg_seccomp_filter *f)
{
	struct stat st;
	ssize_t got;
	int fd, ret;

	fd = memfd_create("kgate-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = seccomp_export_bpf(ctx, fd);
	if (ret < 0)
		goto out;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    st.st_size % (off_t)sizeof(struct sock_filter) ||
	    st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		ret = -EINVAL;
		goto out;
	}
	f->insns = malloc((size_t)st.st_size);
	if (!f->insns) {
		ret = -ENOMEM;
		goto out;
	}
	got = pread(fd, f->insns, (size_t)st.st_size, 0);
	if (got != st.st_size) {
		ret = got < 0 ? -errno : -EIO;
		free(f->insns);
		f->insns = NULL;
		goto out;
	}
	f->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	f->flags = flags;
	ret = 0;
out:
	close(fd);
	return ret;
}

void kg_seccomp_prog_free(struct kg_seccomp_prog *p)
{
	int i;

	for (i = 0; i < p->n; i++)
		free(p->filters[i].insns);
	memset(p, 0, sizeof(*p));
}

int kg_seccomp_compile(const struct kg_policy_doc *doc, const struct kg_seccomp_opts *opts,
		       struct kg_seccomp_prog *out)
{
	scmp_filter_ctx ctx, quiet = NULL;
	unsigned int main_flags = 0, quiet_flags = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	out->notify_filter = -1;
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return kg_err("seccomp: init failed"), -ENOMEM;
	/* refusals logged (SECCOMP_FILTER_FLAG_LOG) for the trail (kaudit.h):
	 * what must not be logged goes to a second, quiet filter */
	if (opts && opts->log_refusals) {
		quiet = seccomp_init(SCMP_ACT_ALLOW);
		ret = quiet ? base_attrs(quiet) : -ENOMEM;
		if (ret) {
			kg_err("seccomp: logged filter: %s", strerror(-ret));
			goto out;
		}
		main_flags |= SECCOMP_FILTER_FLAG_LOG;
	}
	ret = build_filter(ctx, quiet ? quiet : ctx, doc, opts);
	if (ret < 0)
		goto out;
	/* held calls (SCMP_ACT_NOTIFY) are in the quiet filter when there is
	 * one: that filter gets the listener (one per task) */
	if (opts && opts->hold_syscalls) {
		if (quiet)
			quiet_flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
		else
			main_flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
		out->notify_filter = quiet ? 1 : 0;
	}
	ret = export_filter(ctx, main_flags, &out->filters[0]);
	if (!ret)
		out->n = 1;
	if (!ret && quiet) {
		ret = export_filter(quiet, quiet_flags, &out->filters[1]);
		if (!ret)
			out->n = 2;
	}
	if (ret < 0) {
		kg_err("seccomp: export: %s", strerror(-ret));
		kg_seccomp_prog_free(out);
	}
out:
	seccomp_release(ctx);
	if (quiet)
		seccomp_release(quiet);
	return ret;
}

/* Only system calls: safe in a child forked from a threaded controller,
 * where another thread may have held the allocator's lock at fork. */
int kg_seccomp_install(const struct kg_seccomp_prog *p, int *notify_fd_out)
{
	int i;

	if (notify_fd_out)
		*notify_fd_out = -1;
	if (p->notify_filter >= 0 && !notify_fd_out)
		return -EINVAL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	for (i = 0; i < p->n; i++) {
		struct sock_fprog prog = {
			.len = p->filters[i].len,
			.filter = p->filters[i].insns,
		};
		long ret = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->filters[i].flags, &prog);

		if (ret < 0)
			return -errno;
		if (i == p->notify_filter)
			*notify_fd_out = (int)ret;
	}
	return 0;
}

int kg_seccomp_load(const struct kg_policy_doc *doc, const struct kg_seccomp_opts *opts,
		    int *notify_fd_out)
{
	struct kg_seccomp_prog p;
	int ret;

	if (notify_fd_out)
		*notify_fd_out = -1;
	if (opts && opts->hold_syscalls && !notify_fd_out)
		return -EINVAL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return kg_err("seccomp: no_new_privs: %s", strerror(errno)), -errno;
	ret = kg_seccomp_compile(doc, opts, &p);
	if (ret < 0)
		return ret;
	ret = kg_seccomp_install(&p, notify_fd_out);
	if (ret < 0)
		kg_err("seccomp: load: %s", strerror(-ret));
	kg_seccomp_prog_free(&p);
	return ret;
}
