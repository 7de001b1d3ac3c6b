// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_userland.c - real tools in the guest (both configurations), and an
 * agent's day with them, ungoverned (config full: vt_userland_governed runs
 * the same day under kgate right after it).
 *
 * The guest's "userland" (kg-userland: the host's /usr and /etc over
 * virtio-9p, the guest's /tmp, /root, /home shared) must give root the
 * host's cc, make, git, python3, tar, grep and curl, keep the caller's
 * working directory, environment and exit status, and show a mount table
 * as on a machine.  Then an agent's ordinary day (vmtests/data/agent-day.sh:
 * compile with cc and make, git config/commit/clone, python3 and a venv,
 * ~/.cache, tar, grep -r, an HTTP server and client on loopback) runs as
 * root with HOME under /home: every step works, including the three that
 * the coding-agent policy forbids (reading ~/.ssh, writing into ~/src,
 * connecting outside loopback, which fails here only for want of a route).
 */
#include "testlib.h"
#include "vt_bb.h"
#include "vt_userland.h"

static void show_file(const char *what, const char *path)
{
	char *text = kg_read_file(path, 1 << 20, NULL);

	bb_show(what, text ? text : "(no output)");
	free(text);
}

static char *slurp_path(const char *path)
{
	char *s = kg_read_file(path, 1 << 22, NULL);

	return s ? s : strdup("");
}

/* ---- the userland itself ------------------------------------------------ */

TEST(userland_has_the_hosts_tools_and_the_guests_trees)
{
	char dir[] = "/tmp/kgul.XXXXXX", p[256], out[256];
	char *text, *inside;
	int rc;

	vt_ul_require();
	ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp");
	ASSERT_OK(chdir(dir), "chdir");
	snprintf(p, sizeof(p), "%s/outside.txt", dir);
	ASSERT_OK(bb_write(p, "written outside\n", 0644), "a file from outside");
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	rc = vt_ul_sh(out,
		"cat outside.txt && echo written inside >inside.txt && echo \"cwd=$(pwd)\" &&"
		" echo \"HOME=$HOME\" &&"
		" cc --version | head -n 1 && make --version | head -n 1 && git --version &&"
		" python3 --version && tar --version | head -n 1 && curl --version | head -n 1 &&"
		" if touch /usr/kg-ro-probe 2>/dev/null; then echo /usr is writable; exit 3; fi &&"
		" if touch /etc/kg-ro-probe 2>/dev/null; then echo /etc is writable; exit 3; fi &&"
		" test -f /sys/fs/cgroup/cgroup.controllers && echo cgroup2 visible &&"
		" if grep -q ' /userland' /proc/self/mountinfo; then echo /userland shows; exit 4; fi &&"
		" awk '$5 == \"/\" { for (i = 7; i < NF; i++) if ($i == \"-\") { print \"root fs \" $(i + 1); exit } }' /proc/self/mountinfo &&"
		" exit 7");
	show_file("kg-userland sh -c ...", out);
	text = slurp_path(out);
	ASSERT_EQ(rc, 7, "the command ran to its end and its exit status came back");
	ASSERT_HAS_SUBSTR(text, "written outside", "the guest's /tmp is shared");
	snprintf(p, sizeof(p), "cwd=%s\n", dir);
	ASSERT_HAS_SUBSTR(text, p, "the working directory is kept");
	ASSERT_HAS_SUBSTR(text, "HOME=/root\n", "HOME is the guest's /root");
	ASSERT_HAS_SUBSTR(text, "GNU Make", "make");
	ASSERT_HAS_SUBSTR(text, "git version", "git");
	ASSERT_HAS_SUBSTR(text, "Python 3", "python3");
	ASSERT_HAS_SUBSTR(text, "GNU tar", "tar");
	ASSERT_HAS_SUBSTR(text, "curl ", "curl");
	ASSERT_HAS_SUBSTR(text, "cgroup2 visible", "/sys with cgroup2");
	ASSERT_HAS_SUBSTR(text, "root fs tmpfs", "/ is the userland's own mount (mountinfo as on a machine)");
	snprintf(p, sizeof(p), "%s/inside.txt", dir);
	inside = kg_read_file(p, 4096, NULL);
	ASSERT_STREQ(inside, "written inside\n", "a file written inside is there outside");
	free(inside);
	free(text);

	/* a working directory the userland does not share is refused, not
	 * silently replaced */
	ASSERT_OK(chdir("/opt"), "chdir /opt");
	rc = vt_ul_sh(out, "pwd");
	ASSERT_EQ(rc, 125, "kg-userland refuses a working directory it cannot show");
	ASSERT_OK(chdir("/"), "chdir /");
	vt_ul_rm_tree(dir);
}

/* ---- an agent's day ----------------------------------------------------- */

TEST(userland_agent_day_ungoverned)
{
	char home[64], out[128], p[512], *text, *readme;
	size_t i;
	int rc;

	vt_ul_require();
	/* the baseline of vt_userland_governed, which needs BPF LSM: in the
	 * nobpf boot it would only compete with the full one for the CPU */
	if (strcmp(getenv("KGATE_VM_CONFIG"), "full"))
		SKIP("the baseline of the governed day: config full only, have %s",
		     getenv("KGATE_VM_CONFIG"));
	ASSERT_OK(vt_ul_make_home(home), "a home under /home");
	snprintf(out, sizeof(out), "%s/day.out", home);
	{
		char *argv[] = { "/bin/sh", (char *)vt_ul_day_script(), NULL };

		rc = vt_ul_run(out, argv);
	}
	show_file("agent-day.sh, ungoverned", out);
	text = slurp_path(out);
	ASSERT_EQ(rc, 0, "the day script ran to its end");
	for (i = 0; i < VT_UL_N_ORDINARY; i++)
		ASSERT_EQ(vt_ul_step_rc(text, vt_ul_ordinary_steps[i]), 0, vt_ul_ordinary_steps[i]);
	/* what the policy will refuse works without it */
	ASSERT_EQ(vt_ul_step_rc(text, "ssh_key_read"), 0, "ungoverned root reads ~/.ssh");
	ASSERT_TRUE(vt_ul_step_says(text, "ssh_key_read", "FAKE-PRIVATE-KEY"), "and sees the key");
	ASSERT_EQ(vt_ul_step_rc(text, "src_write"), 0, "ungoverned root writes into ~/src");
	snprintf(p, sizeof(p), "%s/src/README", home);
	readme = kg_read_file(p, 4096, NULL);
	ASSERT_HAS_SUBSTR(readme, "agent was here", "the write landed");
	free(readme);
	ASSERT_TRUE(vt_ul_step_says(text, "net_outside", "errno=ENETUNREACH"),
		    "ungoverned: no route out of the guest (nothing can leave)");
	free(text);
	ASSERT_OK(chdir("/"), "chdir /");
	vt_ul_rm_tree(home);
}
