// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_selfprotect.c - a root job cannot take kgate apart (degraded mode,
 * this host).  Under sudo the agent runs as the invoking user.
 */
#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "testlib.h"
#include "kgrun.h"
#include "cgroup.h"
#include "control.h"
#include "loader.h"
#include "maps.h"

/* `kgate audit query --json ARGS...` as an array of records. */
static json_t *query(const char *type)
{
	char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", "--type", (char *)type,
			 NULL };
	char *out, *line, *save = NULL;
	json_t *arr = json_array();

	run_capture(argv, &out);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *r = json_loads(line, 0, NULL);

		if (r)
			json_array_append_new(arr, r);
	}
	return arr;
}

#define ALLOW_ALL \
	"{\"version\":1,\"name\":\"open\",\"default\":\"allow\",\"runtime_defaults\":{\"net\":\"allow\"}}"

TEST(under_sudo_the_agent_runs_as_the_invoking_user)
{
	char policy[512], *out;
	json_t *recs, *ra;

	setup();
	write_policy(ALLOW_ALL, policy, sizeof(policy));
	setenv("SUDO_UID", "65534", 1);
	setenv("SUDO_GID", "65534", 1);
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "ids"), 0, "runs");
	ASSERT_HAS_SUBSTR(out, "uid 65534 gid 65534", "the agent ran as the sudo caller");
	ASSERT_HAS_SUBSTR(out, "the agent runs as", "kgate run says who the agent runs as");
	ASSERT_HAS_SUBSTR(out, "(uid 65534, gid 65534), the user who ran sudo", "and why");
	recs = query("job_start");
	ra = json_object_get(json_object_get(json_array_get(recs, 0), "extra"), "run_as");
	ASSERT_EQ(json_integer_value(json_object_get(ra, "uid")), 65534, "job_start: run_as.uid");
	ASSERT_TRUE(json_string_value(json_object_get(ra, "source")) &&
		    !strcmp(json_string_value(json_object_get(ra, "source")), "SUDO_UID"),
		    "job_start: run_as.source");
	json_decref(recs);
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--as", "root", "--policy", policy, "--",
				 (char *)helper("kg_attack"), "ids", NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "--as root runs");
		ASSERT_HAS_SUBSTR(out, "uid 0 gid 0", "--as root: root, when asked for");
		ASSERT_HAS_SUBSTR(out, "the agent runs as root (uid 0, gid 0: --as)", "said");
	}
	setenv("SUDO_UID", "4000000000", 1);	/* no such user here */
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "ids"), 2,
		  "a SUDO_UID naming nobody is refused, not ignored");
	ASSERT_HAS_SUBSTR(out, "SUDO_UID=4000000000", "names it");
	unsetenv("SUDO_UID");
	unsetenv("SUDO_GID");
	ASSERT_EQ(KGATE_RUN(policy, &out, (char *)helper("kg_attack"), "ids"), 0, "no sudo");
	ASSERT_HAS_SUBSTR(out, "uid 0 gid 0", "root runs it as root");
	ASSERT_HAS_SUBSTR(out, "the agent runs as root (uid 0)", "and says so");
	teardown();
}
