// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_userland_governed.c - an agent's day under the shipped coding-agent
 * policy, in full mode (BPF LSM), with the host's real tools.
 *
 * vmtests/data/agent-day.sh runs as root in the guest's userland
 * (kg-userland) under `kgate run --policy policies/coding-agent.json`, with
 * HOME under /home.  vt_userland runs the same day ungoverned just before
 * (every step works there).  Here the ordinary steps (cc and make, git
 * config/commit/clone, python3 and a venv, ~/.cache, tar, grep -r, an HTTP
 * server and client on loopback) must still work, and the three the policy
 * forbids must be refused, leave nothing behind and be audited with their
 * rules: reading ~/.ssh (no-ssh-keys), writing into ~/src (repo-ro), a
 * connection outside loopback (the net default).  Any other refusal is
 * listed and fails the test.
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

TEST(userland_agent_day_governed_by_coding_agent)
{
	char home[64] = "", policy[512], p[512], *text, *readme;
	const char *src = getenv("KGATE_SRC"), *trace;
	json_t *recs;
	size_t i, k;
	int rc, unexpected = 0;

	vt_ul_require();
	bb_setup(true);		/* private bpffs, audit and state dirs */
	if (!ASSERT_OK(vt_ul_make_home(home), "a home under /home"))
		goto out;
	snprintf(policy, sizeof(policy), "%s/policies/coding-agent.json", src ? src : ".");
	{
		char *argv[] = { (char *)bb_kgate(), "run", "--policy", policy,
				 "--topic", "job.agent.day", "--",
				 "/bin/sh", (char *)vt_ul_day_script(), NULL };

		rc = vt_ul_run(bb_path("run.out"), argv);
	}
	show_file("kgate run --policy coding-agent.json -- sh agent-day.sh", bb_path("run.out"));
	text = bb_slurp("run.out");
	ASSERT_EQ(rc, 0, "kgate ran the day script to its end");
	ASSERT_HAS_SUBSTR(text, "full mode", "in full mode");
	for (i = 0; i < VT_UL_N_ORDINARY; i++)
		ASSERT_EQ(vt_ul_step_rc(text, vt_ul_ordinary_steps[i]), 0, vt_ul_ordinary_steps[i]);
	ASSERT_NEQ(vt_ul_step_rc(text, "ssh_key_read"), 0, "reading ~/.ssh is refused");
	ASSERT_TRUE(!vt_ul_step_says(text, "ssh_key_read", "FAKE-PRIVATE-KEY"), "the key did not leak");
	ASSERT_TRUE(vt_ul_step_says(text, "ssh_key_read", "Permission denied") ||
		    vt_ul_step_says(text, "ssh_key_read", "Operation not permitted"), "refused by permission");
	ASSERT_NEQ(vt_ul_step_rc(text, "src_write"), 0, "writing into ~/src is refused");
	ASSERT_TRUE(vt_ul_step_says(text, "src_write", "Permission denied") ||
		    vt_ul_step_says(text, "src_write", "Operation not permitted"), "refused by permission");
	snprintf(p, sizeof(p), "%s/src/README", home);
	readme = kg_read_file(p, 4096, NULL);
	ASSERT_STREQ(readme, "the reference repository\n", "~/src/README is unchanged");
	free(readme);
	ASSERT_TRUE(vt_ul_step_says(text, "net_outside", "errno=EPERM") ||
		    vt_ul_step_says(text, "net_outside", "errno=EACCES"),
		    "a connection outside loopback is refused by kgate (not by the missing route)");
	free(text);

	trace = bb_trace("run.out");
	ASSERT_TRUE(trace[0], "kgate run printed the job's trace id");
	recs = bb_audit(trace);
	ASSERT_GE(bb_count(recs, "decision", "read", "deny", "no-ssh-keys", NULL), 1,
		  "the ~/.ssh read is audited as a deny by no-ssh-keys");
	ASSERT_GE(bb_count(recs, "decision", NULL, "deny", "repo-ro", NULL), 1,
		  "the ~/src write is audited as a deny by repo-ro");
	ASSERT_GE(bb_count_target(recs, "decision", "net_connect", "deny", "default", NULL,
				  "198.51.100.7"), 1,
		  "the connection outside loopback is audited as a deny by the net default");
	/* every other refusal is a refusal of an ordinary step: list them */
	{
		json_t *r;

		json_array_foreach(recs, k, r) {
			const char *dec = json_string_value(json_object_get(r, "decision"));
			const char *rule = json_string_value(json_object_get(r, "rule"));
			const char *op = json_string_value(json_object_get(r, "op"));

			if (!dec || strcmp(dec, "deny") || (rule && (!strcmp(rule, "no-ssh-keys") ||
								     !strcmp(rule, "repo-ro"))))
				continue;
			if (op && !strcmp(op, "net_connect") &&
			    strstr(json_string_value(json_object_get(r, "target")) ?: "", "198.51.100.7"))
				continue;	/* net_outside */
			printf("  unexpected refusal: op=%s rule=%s mech=%s target=%s\n", op, rule,
			       json_string_value(json_object_get(r, "mechanism")),
			       json_string_value(json_object_get(r, "target")));
			unexpected++;
		}
	}
	ASSERT_EQ(unexpected, 0, "no refusal besides the three the policy means");
	if (kt_failed_here)
		bb_dump(recs);
	json_decref(recs);
out:
	ASSERT_OK(chdir("/"), "chdir /");
	vt_ul_rm_tree(home);
	bb_teardown();
}
