// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_doctor.c - `kgate doctor` inside the guest, in both LSM configurations.
 *
 *   full   bpf is in lsm=: doctor must see an LSM program deny and report
 *          through the ring buffer, conclude "full" and exit 0
 *   nobpf  booted with lsm= without bpf: doctor must say bpf is not an active
 *          LSM, not claim full enforcement, exit 5, and suggest the boot
 *          parameter built from the real list (what /sys/kernel/security/lsm
 *          says, read here independently)
 */
#include <sys/wait.h>

#include "cli/cmds.h"
#include "common.h"
#include "kernel/doctor.h"
#include "testlib.h"

static const char *config(void)
{
	const char *cfg = getenv("KGATE_VM_CONFIG");

	if (!cfg)
		SKIP("not in the VM suite (KGATE_VM_CONFIG unset)");
	return cfg;
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

static int kgate_doctor_exit(void)
{
	const char *bin = getenv("KGATE_BIN");
	char cmd[4096];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' doctor", bin ? bin : "kgate");
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(doctor_full_config_reports_full_enforcement)
{
	struct kg_doctor_report *r;

	if (strcmp(config(), "full"))
		SKIP("config %s", config());
	r = probe();
	ASSERT_EQ(r->bpf_in_lsm_list, KG_YES, "bpf is an active LSM");
	ASSERT_TRUE(r->lsm_prog_loads, "LSM program loads");
	ASSERT_TRUE(r->lsm_prog_attaches, "LSM program attaches");
	ASSERT_TRUE(r->lsm_denies, "LSM program denied an open");
	ASSERT_TRUE(r->lsm_event_seen, "the denial came through the ring buffer");
	ASSERT_TRUE(r->cgroup_bpf, "cgroup-BPF attaches");
	ASSERT_TRUE(r->full, "full enforcement");
	ASSERT_EQ(kg_doctor_exit_code(r), KG_EXIT_OK, "exit code");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_FILE].mechanism, "BPF LSM", "file rules by BPF LSM");
	ASSERT_EQ(r->matrix[KG_RT_FILE].level, KG_ENF_FULL, "file rules fully enforced");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_OUTSIDE].mechanism, "capable",
			  "escapes by proxy: capabilities by lsm/capable");
	ASSERT_TRUE(kg_bpf_lsm_available(), "kg_bpf_lsm_available()");
	ASSERT_EQ(kgate_doctor_exit(), KG_EXIT_OK, "`kgate doctor` exits 0");
	free(r);
}

TEST(doctor_nobpf_config_reports_degraded_with_fix)
{
	struct kg_doctor_report *r;
	char *lsm, expect[600];

	if (strcmp(config(), "nobpf"))
		SKIP("config %s", config());
	lsm = kg_read_file("/sys/kernel/security/lsm", 4096, NULL);
	ASSERT_TRUE(lsm != NULL, "read the LSM list");
	if (!lsm)
		return;
	lsm[strcspn(lsm, "\n")] = '\0';
	ASSERT_TRUE(strstr(lsm, "bpf") == NULL, "booted without bpf in lsm=");
	r = probe();
	ASSERT_EQ(r->bpf_in_lsm_list, KG_NO, "doctor: bpf not an active LSM");
	ASSERT_STREQ(r->lsm_list, lsm, "doctor's LSM list");
	ASSERT_FALSE(r->lsm_denies, "no LSM denial possible");
	ASSERT_FALSE(r->full, "not full");
	ASSERT_FALSE(kg_bpf_lsm_available(), "kg_bpf_lsm_available()");
	ASSERT_EQ(kg_doctor_exit_code(r), KG_EXIT_DEGRADED, "exit code 5");
	snprintf(expect, sizeof(expect), "lsm=%s,bpf", lsm);
	ASSERT_HAS_SUBSTR(r->fix[0], expect, "fix built from the current list");
	ASSERT_HAS_SUBSTR(r->matrix[KG_RT_FILE].mechanism, "Landlock", "file rules by Landlock");
	ASSERT_EQ(kgate_doctor_exit(), KG_EXIT_DEGRADED, "`kgate doctor` exits 5");
	free(lsm);
	free(r);
}
