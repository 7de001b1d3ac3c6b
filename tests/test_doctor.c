// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_doctor.c - `kgate doctor` on the host must tell the truth.
 *
 * Every fact doctor reports is checked against an independent probe written
 * here with different code (raw BPF_PROG_LOAD of a hand-made program, our
 * own mountinfo parser, our own landlock syscall), so a doctor that guessed
 * or lied would fail.  The development hosts refuse BPF LSM programs
 * (EPERM) while cgroup-BPF, seccomp and Landlock work: there doctor must
 * report degraded mode, name the degraded mechanisms and exit 5.  On a host
 * where BPF LSM does load those assertions are skipped, not passed.
 */
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <jansson.h>

#include "cli/cmds.h"
#include "kernel/doctor.h"
#include "testlib.h"

/* ---- independent probes ------------------------------------------------- */

/* BPF_PROG_LOAD of "r0 = 0; exit" as an LSM program on file_open.
 * Returns 0 if it loads, else the errno. */
static int raw_lsm_load_errno(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct btf *vmlinux = btf__load_vmlinux_btf();
	int id, fd;

	if (!vmlinux)
		return errno ? errno : ENOENT;
	id = btf__find_by_name_kind(vmlinux, "bpf_lsm_file_open", BTF_KIND_FUNC);
	btf__free(vmlinux);
	if (id < 0)
		return ESRCH;	/* no BPF LSM hooks in this kernel's BTF */
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_LSM_MAC,
		    .attach_btf_id = id);
	fd = bpf_prog_load(BPF_PROG_TYPE_LSM, "t_lsm", "GPL", insns, 2, &opts);
	if (fd < 0)
		return -fd;
	close(fd);
	return 0;
}

/* The cgroup2 mount point, from our own reading of /proc/self/mountinfo. */
static bool mountinfo_cgroup2(char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], mnt[4096], fstype[64];
	const char *sep;
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1 || strcmp(fstype, "cgroup2"))
			continue;
		/* fields: id parent maj:min root mountpoint ... (no escapes expected) */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1) {
			snprintf(out, len, "%s", mnt);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Attach "r0 = 1; exit" as cgroup/connect4 to a fresh cgroup: 0 or errno. */
static int raw_cgroup_attach_errno(const char *cg2)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_CGROUP_INET4_CONNECT);
	char dir[4200];
	int cgfd, fd, err = 0;

	snprintf(dir, sizeof(dir), "%s/kgate-test-doctor.XXXXXX", cg2);
	if (!mkdtemp(dir))
		return errno;
	cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "t_cg", "GPL", insns, 2, &opts);
	if (cgfd < 0 || fd < 0)
		err = cgfd < 0 ? errno : -fd;
	else if (bpf_prog_attach(fd, cgfd, BPF_CGROUP_INET4_CONNECT, 0))
		err = errno;
	else
		bpf_prog_detach2(fd, cgfd, BPF_CGROUP_INET4_CONNECT);
	if (fd >= 0)
		close(fd);
	if (cgfd >= 0)
		close(cgfd);
	rmdir(dir);
	return err;
}

static struct kg_doctor_report *probe(void)
{
	struct kg_doctor_report *r = calloc(1, sizeof(*r));

	if (!r || kg_doctor_probe(r)) {
		printf("  kg_doctor_probe failed\n");
		_exit(1);
	}
	return r;
}

/* ---- doctor against the independent probes ------------------------------- */

TEST(doctor_lsm_load_result_is_the_real_one)
{
	struct kg_doctor_report *r = probe();
	int e = raw_lsm_load_errno();

	ASSERT_EQ(r->lsm_prog_loads, e == 0, "doctor's load result matches a raw BPF_PROG_LOAD");
	if (e == 0) {
		free(r);
		SKIP("BPF LSM programs load on this host: the degraded-host checks do not apply");
	}
	ASSERT_EQ(r->lsm_load_errno, e, "doctor reports the errno the kernel returned");
	ASSERT_FALSE(r->lsm_denies, "an LSM that cannot load cannot deny");
	ASSERT_FALSE(r->full, "no full enforcement without BPF LSM");
	ASSERT_FALSE(kg_bpf_lsm_available(), "kg_bpf_lsm_available() agrees");
	free(r);
}

TEST(doctor_cgroup2_mount_is_the_mountinfo_one)
{
	struct kg_doctor_report *r = probe();
	char mnt[4096];

	if (!mountinfo_cgroup2(mnt, sizeof(mnt))) {
		ASSERT_STREQ(r->cgroup2_mount, "", "no cgroup2 mount: doctor says none");
		free(r);
		SKIP("no cgroup2 mount on this host");
	}
	ASSERT_STREQ(r->cgroup2_mount, mnt, "cgroup2 mount point");
	free(r);
}

TEST(doctor_cgroup_bpf_result_is_the_real_one)
{
	struct kg_doctor_report *r = probe();
	char mnt[4096];
	int e;

	if (!mountinfo_cgroup2(mnt, sizeof(mnt))) {
		free(r);
		SKIP("no cgroup2 mount on this host");
	}
	e = raw_cgroup_attach_errno(mnt);
	ASSERT_EQ(r->cgroup_bpf, e == 0, "doctor's cgroup-BPF attach matches a raw attach");
	if (e)
		ASSERT_EQ(r->cgroup_bpf_errno, e, "and the errno");
	free(r);
}

TEST(doctor_landlock_abi_is_the_real_one)
{
	struct kg_doctor_report *r = probe();
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	if (abi < 1) {
		ASSERT_EQ(r->landlock_abi, 0, "no Landlock: doctor says 0");
		free(r);
		SKIP("Landlock unavailable here");
	}
	ASSERT_EQ(r->landlock_abi, abi, "Landlock ABI");
	ASSERT_GE(r->landlock_abi, 1, "Landlock ABI at least 1");
	free(r);
}

TEST(doctor_seccomp_matches_prctl)
{
	struct kg_doctor_report *r = probe();
	/* PR_GET_SECCOMP fails with EINVAL only without CONFIG_SECCOMP */
	bool have = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;

	ASSERT_EQ(r->seccomp_filter, have, "seccomp filter support");
	if (have)
		ASSERT_TRUE(r->seccomp_user_notif, "user notification (kernel >= 5.0)");
	free(r);
}

/* ---- the degraded report on this host ------------------------------------ */

static void skip_if_lsm_loads(void)
{
	if (raw_lsm_load_errno() == 0)
		SKIP("BPF LSM programs load on this host");
}

TEST(doctor_matrix_names_degraded_mechanisms)
{
	struct kg_doctor_report *r;

	skip_if_lsm_loads();
	r = probe();
	ASSERT_FALSE(r->full, "not full");
	ASSERT_TRUE(r->degraded_possible, "degraded is possible (cgroup2 + seccomp)");
	ASSERT_EQ(kg_doctor_exit_code(r), KG_EXIT_DEGRADED, "exit code");
	if (r->landlock_abi >= 1)
		ASSERT_HAS_SUBSTR(r->matrix[KG_RT_FILE].mechanism, "Landlock", "file rules by Landlock");
	ASSERT_EQ(r->matrix[KG_RT_FILE].level, r->landlock_abi ? KG_ENF_PARTIAL : KG_ENF_NONE,
		  "file rules are only partly enforced");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_SYSCALL].mechanism, "seccomp", "syscalls by seccomp");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_SELF_PROTECTION].mechanism, "seccomp",
			  "self-protection by seccomp");
	ASSERT_EQ(r->matrix[KG_RT_SELF_PROTECTION].level, KG_ENF_PARTIAL, "self-protection partial");
	if (r->cgroup_bpf) {
		ASSERT_HAS_SUBSTR(r->matrix[KG_RT_NET].mechanism, "cgroup-BPF", "net by cgroup-BPF");
		ASSERT_HAS_SUBSTR(r->matrix[KG_RT_SOCKET].mechanism, "cgroup-BPF", "sockets by cgroup-BPF");
	}
	ASSERT_TRUE(r->matrix[KG_RT_UNIX].level != KG_ENF_FULL, "AF_UNIX path rules not fully enforced");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_ESCALATION_HOLD].mechanism, "seccomp user notification",
			  "holds by seccomp user notification");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_OUTSIDE].mechanism, "capability bounding set",
			  "escapes by proxy: capabilities by the bounding set");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_OUTSIDE].mechanism, "/proc/sys",
			  "escapes by proxy: kernel settings read-only");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_OUTSIDE].missing, "not recorded",
			  "escapes by proxy: what is not said is said");
	ASSERT_HAS_SUBSTR(r->govern[KG_RT_OUTSIDE].missing, "keep their capabilities",
			  "govern: running processes keep their capabilities");
	ASSERT_TRUE(r->fix[0][0] != '\0', "a fix is suggested");
	free(r);
}

/* Run the real binary and read its exit status and output. */
static char *run_kgate(const char *args, int *status)
{
	const char *bin = getenv("KGATE_BIN");
	char cmd[4096], *buf = NULL;
	size_t cap = 0, len = 0, n;
	FILE *p;

	if (!bin)
		SKIP("KGATE_BIN not set (run through tests/run.sh)");
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>/dev/null", bin, args);
	p = popen(cmd, "r");
	if (!p)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap * 2 + 8192;
			buf = realloc(buf, cap);
			if (!buf)
				break;
		}
		n = fread(buf + len, 1, 4096, p);
		len += n;
	} while (n > 0);
	if (buf)
		buf[len] = '\0';
	*status = pclose(p);
	return buf;
}

TEST(doctor_cli_exits_degraded_and_says_why)
{
	char *out;
	int status = 0;

	skip_if_lsm_loads();
	out = run_kgate("doctor", &status);
	ASSERT_TRUE(out != NULL, "output");
	ASSERT_TRUE(WIFEXITED(status), "exited");
	ASSERT_EQ(WEXITSTATUS(status), KG_EXIT_DEGRADED, "kgate doctor exit status");
	ASSERT_HAS_SUBSTR(out, "enforcement: degraded", "mode line");
	ASSERT_HAS_SUBSTR(out, "not loadable: ", "LSM load failure shown");
	ASSERT_HAS_SUBSTR(out, strerrorname_np(raw_lsm_load_errno()), "with the real errno");
	ASSERT_HAS_SUBSTR(out, "Landlock", "Landlock named");
	free(out);
}

TEST(doctor_cli_json_is_one_object_with_the_facts)
{
	json_t *root, *lsm, *matrix;
	json_error_t jerr;
	char *out;
	int status = 0, e;

	skip_if_lsm_loads();
	e = raw_lsm_load_errno();
	out = run_kgate("doctor --json", &status);
	ASSERT_TRUE(out != NULL, "output");
	ASSERT_EQ(WEXITSTATUS(status), KG_EXIT_DEGRADED, "exit status");
	root = json_loads(out, 0, &jerr);	/* fails on trailing garbage too */
	if (!ASSERT_TRUE(root != NULL, "output is one JSON document"))
		printf("  %s at line %d\n", jerr.text, jerr.line);
	free(out);
	if (!root)
		return;
	ASSERT_STREQ(json_string_value(json_object_get(root, "enforcement")), "degraded", "mode");
	ASSERT_EQ(json_integer_value(json_object_get(root, "exit_code")), KG_EXIT_DEGRADED, "exit_code");
	lsm = json_object_get(json_object_get(root, "checks"), "bpf_lsm");
	ASSERT_TRUE(json_is_false(json_object_get(lsm, "loads")), "bpf_lsm.loads false");
	ASSERT_STREQ(json_string_value(json_object_get(lsm, "load_errno")), strerrorname_np(e),
		     "bpf_lsm.load_errno is the real errno");
	matrix = json_object_get(root, "matrix");
	ASSERT_EQ(json_array_size(matrix), KG_RT_MAX, "one matrix row per rule type");
	ASSERT_STREQ(json_string_value(json_object_get(json_array_get(matrix, KG_RT_SYSCALL), "rule")),
		     "syscall", "row names");
	json_decref(root);
}

TEST(doctor_cli_rejects_unknown_arguments)
{
	char *out;
	int status = 0;

	out = run_kgate("doctor --bogus", &status);
	ASSERT_EQ(WEXITSTATUS(status), KG_EXIT_USAGE, "usage error");
	free(out);
}
