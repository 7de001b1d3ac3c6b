// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_lsmstate.c - the loader must not take "BPF LSM programs attach" for
 * "BPF LSM enforces".  kg_bpf_lsm_listed() is fed a fake securityfs dir and
 * a fake /proc/cmdline: an active list or an lsm= without "bpf" must say
 * KG_NO, an unreadable list with no lsm= must say KG_UNKNOWN (the loader
 * then needs a probe LSM program to deny, else stays degraded), and only a
 * readable list naming "bpf" may say KG_YES.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "common.h"
#include "kernel/lsmstate.h"
#include "testlib.h"

struct fake {
	char root[64];
	char secfs[128];
	char cmdline[128];
};

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		kt_fail(__FILE__, __LINE__, "writing %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* secfs_list NULL: securityfs not mounted (empty dir); cmdline NULL: none */
static void fake_setup(struct fake *f, const char *secfs_list, const char *cmdline)
{
	char p[256];

	snprintf(f->root, sizeof(f->root), "/tmp/kgate-lsmstate.XXXXXX");
	if (!mkdtemp(f->root))
		kt_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	snprintf(f->secfs, sizeof(f->secfs), "%s/security", f->root);
	snprintf(f->cmdline, sizeof(f->cmdline), "%s/cmdline", f->root);
	mkdir(f->secfs, 0700);
	if (secfs_list) {
		snprintf(p, sizeof(p), "%s/lsm", f->secfs);
		put(p, secfs_list);
	}
	if (cmdline)
		put(f->cmdline, cmdline);
}

static void fake_teardown(struct fake *f)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/lsm", f->secfs);
	unlink(p);
	rmdir(f->secfs);
	unlink(f->cmdline);
	rmdir(f->root);
}

static enum kg_tristate ask(const char *secfs_list, const char *cmdline, char *list, char *why)
{
	struct fake f;
	struct kg_lsm_sources src;
	enum kg_tristate t;

	fake_setup(&f, secfs_list, cmdline);
	src = (struct kg_lsm_sources){ .securityfs = f.secfs, .cmdline = f.cmdline };
	t = kg_bpf_lsm_listed(&src, list, 512, why, 512);
	fake_teardown(&f);
	return t;
}

TEST(listed_bpf_is_yes)
{
	char list[512], why[512];

	ASSERT_EQ(ask("lockdown,capability,landlock,yama,bpf\n", "ro lsm=landlock", list, why),
		  KG_YES, "bpf in the active list");
	ASSERT_STREQ(list, "lockdown,capability,landlock,yama,bpf", "list returned");
}

TEST(active_list_without_bpf_is_no)
{
	char list[512], why[512];

	/* the active list wins over lsm= (which names bpf here) */
	ASSERT_EQ(ask("capability,landlock,yama\n", "ro lsm=bpf,landlock", list, why), KG_NO,
		  "bpf not in the active list");
	ASSERT_HAS_SUBSTR(why, "bpf is not an active LSM (capability,landlock,yama)", "why");
	/* whole elements only */
	ASSERT_EQ(ask("capability,bpfx,xbpf\n", NULL, list, why), KG_NO, "bpfx is not bpf");
}

TEST(no_securityfs_cmdline_without_bpf_is_no)
{
	char list[512], why[512];

	ASSERT_EQ(ask(NULL, "BOOT_IMAGE=/vmlinuz ro lsm=landlock,yama quiet\n", list, why), KG_NO,
		  "lsm= leaves out bpf");
	ASSERT_STREQ(list, "landlock,yama", "list from lsm=");
	ASSERT_HAS_SUBSTR(why, "bpf is not in lsm= of the kernel command line", "why");
	/* the kernel keeps the last lsm=; lsm.debug and xlsm= are other words */
	ASSERT_EQ(ask(NULL, "lsm=bpf lsm.debug xlsm=bpf lsm=landlock\n", list, why), KG_NO,
		  "last lsm= wins");
}

TEST(no_securityfs_no_decision_is_unknown)
{
	char list[512], why[512];

	ASSERT_EQ(ask(NULL, "BOOT_IMAGE=/vmlinuz ro quiet xlsm=landlock\n", list, why), KG_UNKNOWN,
		  "no lsm= at all");
	ASSERT_STREQ(list, "", "no list when unknown");
	ASSERT_HAS_SUBSTR(why, "active LSM list is unreadable", "why");
	/* lsm= naming bpf is not proof bpf runs (CONFIG_BPF_LSM, order): unknown */
	ASSERT_EQ(ask(NULL, "lsm=landlock,bpf\n", list, why), KG_UNKNOWN, "lsm= names bpf");
	ASSERT_EQ(ask(NULL, NULL, list, why), KG_UNKNOWN, "no cmdline either");
}

TEST(list_has_whole_words)
{
	ASSERT_TRUE(kg_lsm_list_has("bpf", "bpf"), "alone");
	ASSERT_TRUE(kg_lsm_list_has("a,bpf,b", "bpf"), "middle");
	ASSERT_FALSE(kg_lsm_list_has("a,bpfx,xbpf", "bpf"), "parts");
	ASSERT_FALSE(kg_lsm_list_has("", "bpf"), "empty");
}
