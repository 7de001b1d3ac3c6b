// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_identity.c - whose '~' a policy names (`kgate run` on this host).
 *
 * '~' in a policy's paths is the home of the user the job runs as: --home
 * DIR, else with --as that user's home from the password database, never
 * the controller's $HOME (else `~/.ssh/` rules would guard root's keys
 * while the agent, running as alice, reads alice's).  The job's $HOME is
 * the same directory.
 */
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>

#include "testlib.h"
#include "kgrun.h"

#define SSH_POLICY "{\"version\":1,\"name\":\"t\",\"default\":\"allow\",\"runtime\":[" \
	"{\"id\":\"no-ssh-keys\",\"file\":{\"prefix\":\"~/.ssh/\",\"ops\":[\"read\",\"write\"]}," \
	"\"decision\":\"deny\"}]}"

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[768];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		SKIP("cannot write %s", path);
	close(fd);
}

/* alice's home and root's, each with a .ssh/id readable by anyone (so only
 * kgate stands between the job and them); kgate's own $HOME is root's */
static void two_homes(char *alice, char *root, size_t len)
{
	char d[768];

	chmod(tmpdir, 0755);	/* an unprivileged job must reach them */
	snprintf(alice, len, "%s/alice", tmpdir);
	snprintf(root, len, "%s/root", tmpdir);
	snprintf(d, sizeof(d), "%s/.ssh", alice);
	if (kg_mkdir_p(d, 0755))
		SKIP("mkdir");
	put_file(d, "id", "alice-key\n");
	put_file(alice, "notes", "alice-notes\n");
	snprintf(d, sizeof(d), "%s/.ssh", root);
	if (kg_mkdir_p(d, 0755))
		SKIP("mkdir");
	put_file(d, "id", "root-key\n");
	setenv("HOME", root, 1);
	setenv("ALICE", alice, 1);
	setenv("A", helper("kg_attack"), 1);
}

TEST(home_option_names_the_home_the_rules_protect)
{
	char policy[512], alice[512], root[512], *out;

	setup();
	if (!getpwnam("nobody"))
		SKIP("no user nobody");
	two_homes(alice, root, sizeof(alice));
	write_policy(SSH_POLICY, policy, sizeof(policy));
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--as", "nobody",
				 "--home", alice, "--", "/bin/sh", "-c",
				 "echo HOME=$HOME; cat \"$ALICE/notes\"; \"$A\" read \"$ALICE/.ssh/id\"; exit 0",
				 NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "runs");
	}
	ASSERT_HAS_SUBSTR(out, "alice-notes", "the rest of alice's home is readable");
	ASSERT_FALSE(strstr(out, "read ret=3"), "alice's ~/.ssh/id was not opened");
	ASSERT_HAS_SUBSTR(out, "read ret=-1", "alice's ~/.ssh/id refused");
	{
		char want[600];

		snprintf(want, sizeof(want), "HOME=%s\n", alice);
		ASSERT_HAS_SUBSTR(out, want, "the job's $HOME is --home");
	}
	/* a relative --home is refused before anything runs */
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--home", "rel",
				 "--", "/bin/true", NULL };

		ASSERT_EQ(run_capture(argv, &out), 2, "usage error");
	}
	teardown();
}

TEST(as_user_tilde_is_that_users_home_not_the_controllers)
{
	char policy[512], alice[512], root[512], want[600], *out;
	struct passwd *pw;

	setup();
	pw = getpwnam("nobody");
	if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
		SKIP("no user nobody with a home in the password database");
	two_homes(alice, root, sizeof(alice));
	write_policy(SSH_POLICY, policy, sizeof(policy));
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--as", "nobody",
				 "--", "/bin/sh", "-c", "echo HOME=$HOME", NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "runs");
	}
	snprintf(want, sizeof(want), "'~' in the policy and the agent's $HOME are %s (the "
		 "run-as user's home)", pw->pw_dir);
	ASSERT_HAS_SUBSTR(out, want, "~ is nobody's home, said");
	snprintf(want, sizeof(want), "HOME=%s\n", pw->pw_dir);
	ASSERT_HAS_SUBSTR(out, want, "the job's $HOME is nobody's home");
	{
		char *argv[] = { (char *)kgate_bin(), "audit", "query", "--json", NULL };

		run_capture(argv, &out);
		snprintf(want, sizeof(want), "\"path\":\"%s\"", pw->pw_dir);
		ASSERT_HAS_SUBSTR(out, want, "job_start records the home '~' expanded to");
	}
	/* without --as, '~' stays kgate's $HOME: its ~/.ssh is refused */
	{
		char *argv[] = { (char *)kgate_bin(), "run", "--policy", policy, "--", "/bin/sh",
				 "-c", "cat \"$HOME/.ssh/id\" >/dev/null 2>&1; echo key=$?", NULL };

		ASSERT_EQ(run_capture(argv, &out), 0, "runs");
		ASSERT_HAS_SUBSTR(out, "key=1", "kgate's own ~/.ssh refused");
	}
	teardown();
}
