// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_lsmstate.c - with securityfs not mounted (containers, chroots) kgate
 * must still see that bpf is not an active LSM.  In the nobpf boot (lsm=
 * without bpf) the BPF LSM programs load and attach but are never called;
 * a loader that took an unreadable /sys/kernel/security/lsm for "fine"
 * reported full mode with nothing enforced.  Here the test unmounts
 * securityfs in its own mount namespace and runs the real `kgate run`:
 * --require full must be refused (exit 5) and a plain run must say degraded
 * mode, naming the list it found.  In the full boot the same unmounted
 * securityfs must not cost full mode (the list is read privately).
 */
#include <sched.h>
#include <sys/mount.h>

#include "testlib.h"
#include "vt_bb.h"
#include "kernel/lsmstate.h"

static void unmount_securityfs(void)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		SKIP("private mount namespace: %s", strerror(errno));
	if (umount2("/sys/kernel/security", MNT_DETACH) && errno != EINVAL)
		SKIP("umount securityfs: %s", strerror(errno));
}

TEST(securityfs_unmounted_mode_follows_the_real_lsm_list)
{
	struct kg_lsm_sources src = { .mount_private = true };
	char policy[512], list[512], *out;
	int rc;

	if (!bb_config()[0])
		SKIP("not in the VM suite (KGATE_VM_CONFIG unset)");
	unmount_securityfs();
	ASSERT_TRUE(access("/sys/kernel/security/lsm", F_OK) != 0, "securityfs is gone here");
	ASSERT_EQ(kg_bpf_lsm_listed(&src, list, sizeof(list), NULL, 0), bb_full() ? KG_YES : KG_NO,
		  "the list read through a private securityfs mount");
	bb_setup(false);
	bb_policy("p.json", "{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[]}",
		  policy, sizeof(policy));
	rc = BB_KGATE("req.out", "run", "--require", "full", "--policy", policy, "--", "/bin/true");
	out = bb_slurp("req.out");
	if (bb_full()) {
		ASSERT_EQ(rc, 0, "full boot: --require full still runs");
		ASSERT_HAS_SUBSTR(out, "full mode", "full boot: says full mode");
	} else {
		ASSERT_EQ(rc, 5, "nobpf boot: --require full refused, exit 5");
		ASSERT_HAS_SUBSTR(out, "full enforcement required", "says why");
	}
	free(out);
	rc = BB_KGATE("run.out", "run", "--policy", policy, "--", "/bin/true");
	out = bb_slurp("run.out");
	ASSERT_EQ(rc, 0, "a plain run works in either mode");
	if (!bb_full()) {
		ASSERT_HAS_SUBSTR(out, "degraded mode", "nobpf boot: degraded, not full");
		ASSERT_HAS_SUBSTR(out, "bpf is not an active LSM", "names the reason");
		ASSERT_TRUE(strstr(out, "full mode") == NULL, "never claims full mode");
	}
	free(out);
	bb_teardown();
}
