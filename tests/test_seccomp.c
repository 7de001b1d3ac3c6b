// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_seccomp.c - the job filter, loaded in a forked child of each test.
 * Policies are built by hand (struct kg_policy_doc) so these tests do not
 * depend on the JSON parser.
 */
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "common.h"
#include "kernel/seccomp.h"
#include "testlib.h"

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

static struct kg_rule rules[8];
static char *names[8][4];
static struct kg_policy_doc doc;

static struct kg_rule *add_rule(const char *id, enum kg_decision d, const char *n1, const char *n2)
{
	size_t i = doc.nrules;
	struct kg_rule *r = &rules[i];

	memset(r, 0, sizeof(*r));
	r->num = (uint32_t)i + 1;
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->kind = KG_RULE_SYSCALL;
	r->decision = d;
	names[i][0] = (char *)n1;
	names[i][1] = (char *)n2;
	r->syscalls = names[i];
	r->nsyscalls = n2 ? 2 : 1;
	doc.rules = rules;
	doc.nrules = i + 1;
	return r;
}

/* Run fn in a child that loaded the filter first; returns its wait status. */
static int in_filtered_child(const struct kg_seccomp_opts *opts, int (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int nfd;

		if (kg_seccomp_load(&doc, opts, &nfd) < 0)
			_exit(250);
		_exit(fn());
	}
	waitpid(pid, &status, 0);
	return status;
}

#define EXPECT(call, err) do { errno = 0; long r_ = (long)(call); \
		if ((err) == 0 ? r_ < 0 : (r_ >= 0 || errno != (err))) return __LINE__ % 200 + 1; } while (0)

static int baseline_attacks(void)
{
	struct { long a[8]; } ca = { { 0 } };

	EXPECT(ptrace(PTRACE_TRACEME, 0, NULL, NULL), EPERM);
	EXPECT(mount("none", "/", NULL, MS_REMOUNT | MS_BIND, NULL), EPERM);
	EXPECT(syscall(__NR_bpf, 0, NULL, 0), EPERM);
	EXPECT(unshare(CLONE_NEWUSER), EPERM);
	EXPECT(unshare(CLONE_NEWNS), EPERM);
	EXPECT(syscall(__NR_clone3, &ca, 64), ENOSYS);
	EXPECT(syscall(__NR_init_module, NULL, 0, ""), EPERM);
	EXPECT(syscall(__NR_setns, 0, 0), EPERM);
	EXPECT(syscall(__NR_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0), EPERM);
	/* allowed paths still work */
	EXPECT(unshare(CLONE_FILES), 0);
	EXPECT(getpid(), 0);
	pid_t p = fork();	/* clone without namespace flags */
	if (p == 0)
		_exit(0);
	EXPECT(p, 0);
	waitpid(p, NULL, 0);
	return 0;
}

TEST(baseline_refuses_self_protection_syscalls)
{
	struct kg_seccomp_opts o = { .degraded = true };
	int st;

	doc.nrules = 0;
	st = in_filtered_child(&o, baseline_attacks);
	ASSERT_TRUE(WIFEXITED(st), "child exited");
	ASSERT_EQ(WEXITSTATUS(st), 0, "each attack refused with its errno (else: line of failure)");
}

static int ptrace_works(void)
{
	EXPECT(ptrace(PTRACE_TRACEME, 0, NULL, NULL), 0);
	return 0;
}

TEST(ptrace_refused_only_in_degraded_mode)
{
	struct kg_seccomp_opts full = { .degraded = false };
	int st;

	doc.nrules = 0;
	st = in_filtered_child(&full, ptrace_works);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "full mode leaves ptrace to BPF LSM");
}

static int policy_cannot_unlock(void)
{
	EXPECT(syscall(__NR_bpf, 0, NULL, 0), EPERM);
	EXPECT(mount("none", "/", NULL, MS_REMOUNT | MS_BIND, NULL), EPERM);
	return 0;
}

TEST(policy_allow_cannot_switch_off_baseline)
{
	struct kg_seccomp_opts o = { .degraded = true };
	int st;

	doc.nrules = 0;
	add_rule("allow-bpf", KG_DEC_ALLOW, "bpf", "mount");
	st = in_filtered_child(&o, policy_cannot_unlock);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bpf and mount still refused");
}

static char tmpfile_path[256];

static int noop_chmod(void)
{
	struct utsname u;

	EXPECT(chmod(tmpfile_path, 0777), 0);
	EXPECT(uname(&u), EACCES);
	EXPECT(getppid(), 0);	/* in no rule: works */
	return 0;
}

TEST(no_op_returns_success_without_effect_and_deny_errno)
{
	struct kg_seccomp_opts o = { .degraded = true };
	char dir[] = "/tmp/kgate-seccomp-XXXXXX";
	struct stat st;
	int fd, status;

	ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(tmpfile_path, sizeof(tmpfile_path), "%s/f", dir);
	fd = open(tmpfile_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ASSERT_GE(fd, 0, "create file");
	close(fd);
	doc.nrules = 0;
	add_rule("pretend-chmod", KG_DEC_NO_OP, "chmod", "fchmodat");
	add_rule("no-uname", KG_DEC_DENY, "uname", NULL)->errno_value = EACCES;
	status = in_filtered_child(&o, noop_chmod);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "chmod 0 / uname EACCES");
	ASSERT_OK(stat(tmpfile_path, &st), "stat");
	ASSERT_EQ(st.st_mode & 0777, 0600, "mode unchanged");
	/* and without the filter chmod does work: the test can tell */
	ASSERT_OK(chmod(tmpfile_path, 0640), "chmod unfiltered");
	ASSERT_OK(stat(tmpfile_path, &st), "stat");
	ASSERT_EQ(st.st_mode & 0777, 0640, "mode changed");
	unlink(tmpfile_path);
	rmdir(dir);
}

static int raw_socket_refused(void)
{
	int fd;

	EXPECT(fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP), EPERM);
	EXPECT(fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), 0);
	close(fd);
	return 0;
}

TEST(argument_conditions)
{
	struct kg_seccomp_opts o = { .degraded = true };
	struct kg_syscall_arg arg = { .index = 1, .op = SCMP_CMP_MASKED_EQ,
				      .value = SOCK_RAW, .mask = 0xf };
	struct kg_rule *r;
	int st;

	doc.nrules = 0;
	r = add_rule("no-raw", KG_DEC_DENY, "socket", NULL);
	r->args = &arg;
	r->nargs = 1;
	st = in_filtered_child(&o, raw_socket_refused);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "raw refused, dgram allowed");
}

static int x32_getpid(void)
{
	syscall(__X32_SYSCALL_BIT | __NR_getpid);
	return 0;
}

static int int80_getpid(void)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	return 0;
}

TEST(x32_syscalls_are_killed)
{
	struct kg_seccomp_opts o = { .degraded = true };
	int st;

	doc.nrules = 0;
	st = in_filtered_child(&o, x32_getpid);
	ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "x32 syscall kills");
}

TEST(int80_syscalls_are_killed)
{
	struct kg_seccomp_opts o = { .degraded = true };
	int st;

	if (!kt_int80_available())
		SKIP("this machine kills every int $0x80 call before seccomp sees it");
	doc.nrules = 0;
	st = in_filtered_child(&o, int80_getpid);
	ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "int $0x80 kills");
}

TEST(rule_mechanism_report)
{
	struct kg_rule r = { .kind = KG_RULE_SYSCALL, .decision = KG_DEC_THROTTLE };
	char why[128];

	ASSERT_EQ(kg_seccomp_rule_mechanism(&r, why, sizeof(why)), KG_MECH_NONE, "throttle");
	ASSERT_HAS_SUBSTR(why, "not enforced", "reason");
	r.decision = KG_DEC_NO_OP;
	ASSERT_EQ(kg_seccomp_rule_mechanism(&r, why, sizeof(why)), KG_MECH_SECCOMP, "no_op");
	r.kind = KG_RULE_FILE;
	ASSERT_EQ(kg_seccomp_rule_mechanism(&r, NULL, 0), KG_MECH_NONE, "file rule");
}

/* ---- the filter's shape ------------------------------------------------------ */

/* A classic BPF interpreter for what libseccomp emits: returns the action,
 * counts the instructions run and whether anything beyond the syscall
 * number and architecture was read (then the kernel cannot cache it). */
static uint32_t run_filter(const struct kg_seccomp_filter *f, const struct seccomp_data *d,
			   unsigned int *steps, bool *read_args)
{
	uint32_t A = 0, X = 0, mem[16] = { 0 };
	unsigned int pc = 0;

	*steps = 0;
	while (pc < f->len && *steps < 10000) {
		const struct sock_filter *i = &f->insns[pc++];
		uint32_t k = i->k, src;

		(*steps)++;
		switch (BPF_CLASS(i->code)) {
		case BPF_LD:
			if (BPF_MODE(i->code) == BPF_ABS) {
				if (k != offsetof(struct seccomp_data, nr) &&
				    k != offsetof(struct seccomp_data, arch))
					*read_args = true;
				memcpy(&A, (const char *)d + k, 4);
			} else if (BPF_MODE(i->code) == BPF_IMM) {
				A = k;
			} else if (BPF_MODE(i->code) == BPF_MEM) {
				A = mem[k & 15];
			}
			break;
		case BPF_LDX:
			X = BPF_MODE(i->code) == BPF_MEM ? mem[k & 15] : k;
			break;
		case BPF_ST:
			mem[k & 15] = A;
			break;
		case BPF_STX:
			mem[k & 15] = X;
			break;
		case BPF_ALU:
			src = BPF_SRC(i->code) == BPF_X ? X : k;
			switch (BPF_OP(i->code)) {
			case BPF_AND: A &= src; break;
			case BPF_OR: A |= src; break;
			case BPF_ADD: A += src; break;
			case BPF_SUB: A -= src; break;
			case BPF_RSH: A >>= src; break;
			case BPF_LSH: A <<= src; break;
			default: return 0xdead;
			}
			break;
		case BPF_JMP: {
			bool t;

			src = BPF_SRC(i->code) == BPF_X ? X : k;
			switch (BPF_OP(i->code)) {
			case BPF_JA: pc += k; continue;
			case BPF_JEQ: t = A == src; break;
			case BPF_JGT: t = A > src; break;
			case BPF_JGE: t = A >= src; break;
			case BPF_JSET: t = A & src; break;
			default: return 0xdead;
			}
			pc += t ? i->jt : i->jf;
			break;
		}
		case BPF_RET:
			return k;
		case BPF_MISC:
			if (BPF_MISCOP(i->code) == BPF_TAX)
				X = A;
			else
				A = X;
			break;
		}
	}
	return 0xdead;
}

/* Syscalls no rule names are decided from their number alone (so the
 * kernel answers them from its per-filter cache without running the
 * filter), and finding any syscall takes a few comparisons (binary tree),
 * not one per rule.  The decisions of the named ones are checked too. */
TEST(filter_shape_for_the_common_path)
{
	struct kg_seccomp_opts o = { .degraded = true, .log_refusals = true };
	struct kg_seccomp_prog p;
	unsigned int nr, worst = 0;
	int i;

	doc.nrules = 0;
	add_rule("no-mount", KG_DEC_DENY, "mount", "umount2");
	add_rule("no-chmod", KG_DEC_DENY, "chmod", NULL);
	ASSERT_OK(kg_seccomp_compile(&doc, &o, &p), "compile");
	ASSERT_EQ(p.n, 2, "a logged and a quiet filter");
	for (nr = 0; nr < 480; nr++) {
		uint32_t act[2][2];
		unsigned int most = 0;
		bool args = false;
		int v;

		for (v = 0; v < 2; v++) {
			struct seccomp_data d = { .nr = (int)nr, .arch = AUDIT_ARCH_X86_64 };
			int a;

			for (a = 0; a < 6; a++)
				d.args[a] = v ? 0xffffffffffffffffull : 0;
			for (i = 0; i < p.n; i++) {
				unsigned int steps;

				act[v][i] = run_filter(&p.filters[i], &d, &steps, &args);
				if (steps > most)
					most = steps;
			}
		}
		/* decided by the number alone: the kernel caches these; the
		 * search itself is what a binary tree shortens */
		if (!args && most > worst)
			worst = most;
		if (nr == SYS_getpid || nr == SYS_read || nr == SYS_openat || nr == SYS_write ||
		    nr == SYS_close || nr == SYS_mmap || nr == SYS_execve || nr == SYS_fstat) {
			ASSERT_FALSE(args, "a common syscall is decided by its number");
			ASSERT_TRUE(act[0][0] == SECCOMP_RET_ALLOW && act[0][1] == SECCOMP_RET_ALLOW,
				    "a common syscall is allowed by both filters");
		}
		if (nr == SYS_chmod || nr == SYS_mount || nr == SYS_bpf)
			ASSERT_EQ(act[0][0] & SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ERRNO,
				  "a named syscall is refused");
		if (nr == SYS_ioctl)
			ASSERT_TRUE(args, "ioctl's command is checked (TIOCSTI)");
	}
	/* a linear chain of this policy runs about 60 comparisons for the
	 * last syscall it names; a binary search, about a dozen */
	ASSERT_TRUE(worst < 30, "no syscall walks a long chain of comparisons");
	/* x32 and other architectures still go to the bad-arch action */
	{
		struct seccomp_data d = { .nr = SYS_getpid | __X32_SYSCALL_BIT,
					  .arch = AUDIT_ARCH_X86_64 };
		unsigned int steps;
		bool args = false;

		ASSERT_EQ(run_filter(&p.filters[0], &d, &steps, &args), SECCOMP_RET_KILL_PROCESS,
			  "x32 number killed");
		d.nr = SYS_getpid;
		d.arch = AUDIT_ARCH_I386;
		ASSERT_EQ(run_filter(&p.filters[0], &d, &steps, &args), SECCOMP_RET_KILL_PROCESS,
			  "i386 killed");
	}
	kg_seccomp_prog_free(&p);
	doc.nrules = 0;
}

/* ---- held connect() --------------------------------------------------------- */

static int answer(int nfd, bool allow, int err)
{
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;

	memset(&req, 0, sizeof(req));
	if (ioctl(nfd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
		return -errno;
	if (req.data.nr != __NR_connect)
		return -EBADMSG;
	if (ioctl(nfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) < 0)
		return -errno;
	memset(&resp, 0, sizeof(resp));
	resp.id = req.id;
	if (allow)
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	else
		resp.error = -err;
	return ioctl(nfd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 ? -errno : 0;
}

TEST(held_connect_waits_for_the_controller)
{
	struct kg_seccomp_opts o = { .degraded = true, .hold_syscalls = true };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int lfd, sync_pipe[2], st, pidfd, nfd, child_nfd = -1;
	char c = 0;
	pid_t pid;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(lfd, 0, "listen socket");
	ASSERT_OK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), "bind");
	ASSERT_OK(listen(lfd, 4), "listen");
	ASSERT_OK(getsockname(lfd, (struct sockaddr *)&sa, &sl), "port");
	ASSERT_OK(pipe(sync_pipe), "pipe");
	doc.nrules = 0;
	pid = fork();
	if (pid == 0) {
		int s1, s2, r1, r2, e2;

		if (kg_seccomp_load(&doc, &o, &child_nfd) < 0)
			_exit(250);
		if (write(sync_pipe[1], &child_nfd, sizeof(child_nfd)) != sizeof(child_nfd))
			_exit(251);
		s1 = socket(AF_INET, SOCK_STREAM, 0);
		r1 = connect(s1, (struct sockaddr *)&sa, sizeof(sa));	/* held, allowed */
		s2 = socket(AF_INET, SOCK_STREAM, 0);
		r2 = connect(s2, (struct sockaddr *)&sa, sizeof(sa));	/* held, refused */
		e2 = errno;
		_exit(r1 == 0 && r2 < 0 && e2 == ECONNREFUSED ? 0 : 1);
	}
	ASSERT_EQ(read(sync_pipe[0], &child_nfd, sizeof(child_nfd)), sizeof(child_nfd), "fd no");
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	ASSERT_GE(pidfd, 0, "pidfd_open");
	nfd = (int)syscall(SYS_pidfd_getfd, pidfd, child_nfd, 0);
	ASSERT_GE(nfd, 0, "pidfd_getfd of the listener");
	/* the child is now blocked in connect(): nothing was accepted yet */
	usleep(100000);
	ASSERT_EQ(waitpid(pid, &st, WNOHANG), 0, "child still held");
	ASSERT_OK(answer(nfd, true, 0), "continue the first connect");
	ASSERT_OK(answer(nfd, false, ECONNREFUSED), "refuse the second");
	waitpid(pid, &st, 0);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "first connected, second refused");
	(void)c;
	close(nfd);
	close(pidfd);
	close(lfd);
}
