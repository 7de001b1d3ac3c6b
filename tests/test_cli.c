// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_cli.c - the dispatcher of commands and subcommands (cli/select.c):
 * the table picks exactly the named entry and hands it its own argv; help
 * and errors behave the same for every command family, through the real
 * kgate binary.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cmds.h"
#include "common.h"
#include "testlib.h"

static char called[64];
static int called_argc;
static int usage_calls;
static FILE *usage_to;

static int fn_a(int argc, char **argv)
{
	snprintf(called, sizeof(called), "a:%s", argv[0]);
	called_argc = argc;
	return 11;
}

static int fn_b(int argc, char **argv)
{
	snprintf(called, sizeof(called), "b:%s", argv[0]);
	called_argc = argc;
	return 12;
}

static void fake_usage(FILE *f)
{
	usage_calls++;
	usage_to = f;
}

static const struct kg_cmd table[] = {
	{ "alpha", fn_a, "the first" },
	{ "beta", fn_b, "the second" },
};

static int sel(const char *family, int argc, const char **argv)
{
	called[0] = '\0';
	called_argc = -1;
	usage_calls = 0;
	usage_to = NULL;
	return kg_cmd_select(family, table, ARRAY_SIZE(table), argc, (char **)argv, fake_usage);
}

TEST(select_runs_the_named_entry_with_its_argv)
{
	ASSERT_EQ(sel("fam", 3, (const char *[]){ "beta", "x", "y", NULL }), 12, "beta's exit code");
	ASSERT_STREQ(called, "b:beta", "beta called with argv[0] = its name");
	ASSERT_EQ(called_argc, 3, "beta got all its arguments");
	ASSERT_EQ(usage_calls, 0, "no usage printed");
	ASSERT_EQ(sel("fam", 1, (const char *[]){ "alpha", NULL }), 11, "alpha's exit code");
	ASSERT_STREQ(called, "a:alpha", "alpha called");
}

TEST(select_help_missing_and_unknown)
{
	static const char *const helps[] = { "-h", "--help", "help" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(helps); i++) {
		ASSERT_EQ(sel("fam", 1, (const char *[]){ helps[i], NULL }), KG_EXIT_OK, helps[i]);
		ASSERT_TRUE(usage_calls == 1 && usage_to == stdout, "help: usage once, to stdout");
		ASSERT_STREQ(called, "", "help runs no entry");
	}
	ASSERT_EQ(sel("fam", 0, (const char *[]){ NULL }), KG_EXIT_USAGE, "no subcommand");
	ASSERT_TRUE(usage_calls == 1 && usage_to == stderr, "missing: usage to stderr");
	ASSERT_EQ(sel("fam", 1, (const char *[]){ "alph", NULL }), KG_EXIT_USAGE, "prefix is not a match");
	ASSERT_TRUE(usage_calls == 1 && usage_to == stderr, "unknown: usage to stderr");
	ASSERT_STREQ(called, "", "unknown runs no entry");
	ASSERT_EQ(sel(NULL, 1, (const char *[]){ "ALPHA", NULL }), KG_EXIT_USAGE, "case sensitive");
	ASSERT_TRUE(kg_cmd_is_help("help") && !kg_cmd_is_help("--helpx") && !kg_cmd_is_help("-H"),
		    "help words");
}

/* run $KGATE_BIN with args; exit code, stdout and stderr apart */
static int run_kgate(const char *const *args, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *bin = getenv("KGATE_BIN");
	char opath[] = "/tmp/kgate-test-cli-o.XXXXXX", epath[] = "/tmp/kgate-test-cli-e.XXXXXX";
	char *argv[16];
	int ofd = mkstemp(opath), efd = mkstemp(epath), status, n = 0;
	ssize_t r;
	pid_t pid;

	unlink(opath);
	unlink(epath);
	if (ofd < 0 || efd < 0)
		return -1;
	argv[n++] = (char *)bin;
	while (*args && n < 15)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		dup2(devnull, 0);
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(bin, argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		status = -1;
	r = pread(ofd, out, outlen - 1, 0);
	out[r > 0 ? r : 0] = '\0';
	r = pread(efd, err, errlen - 1, 0);
	err[r > 0 ? r : 0] = '\0';
	close(ofd);
	close(efd);
	return status < 0 ? -1 : WEXITSTATUS(status);
}

TEST(every_family_dispatches_alike)
{
	static const char *const families[] = { "policy", "audit", "approvals", "token" };
	/* what an unknown subcommand's error lists: every entry of the table */
	static const char *const valid[] = {
		"(one of check, show, push)",
		"(one of verify, query, timeline, follow, export, prune)",
		"(one of list, approve, deny)",
		"(one of create, list, revoke)",
	};
	static char out[65536], err[65536];
	char want[128];
	size_t i;

	if (!getenv("KGATE_BIN") || access(getenv("KGATE_BIN"), X_OK))
		SKIP("KGATE_BIN not set or not executable (run through tests/run.sh)");
	for (i = 0; i < ARRAY_SIZE(families); i++) {
		const char *fam = families[i];

		snprintf(want, sizeof(want), "kgate %s", fam);
		ASSERT_EQ(run_kgate((const char *[]){ fam, "--help", NULL }, out, sizeof(out), err,
				    sizeof(err)), 0, fam);
		ASSERT_HAS_SUBSTR(out, want, "--help: usage on stdout");
		ASSERT_EQ(run_kgate((const char *[]){ fam, "help", NULL }, out, sizeof(out), err,
				    sizeof(err)), 0, fam);
		ASSERT_HAS_SUBSTR(out, want, "help: usage on stdout");
		ASSERT_EQ(run_kgate((const char *[]){ fam, NULL }, out, sizeof(out), err, sizeof(err)),
			  2, "no subcommand");
		ASSERT_HAS_SUBSTR(err, want, "no subcommand: usage on stderr");
		ASSERT_STREQ(out, "", "no subcommand: nothing on stdout");
		if (!strcmp(fam, "token") && getuid() != 0)
			continue;	/* non-root is refused before the subcommand is looked at */
		ASSERT_EQ(run_kgate((const char *[]){ fam, "frobnicate", NULL }, out, sizeof(out), err,
				    sizeof(err)), 2, "unknown subcommand");
		snprintf(want, sizeof(want), "kgate: error: %s: unknown subcommand 'frobnicate'", fam);
		ASSERT_HAS_SUBSTR(err, want, "unknown subcommand named");
		snprintf(want, sizeof(want), "'frobnicate' %s\n", valid[i]);
		ASSERT_HAS_SUBSTR(err, want, "the valid subcommands listed");
		ASSERT_STREQ(out, "", "unknown subcommand: nothing on stdout");
	}
}

TEST(top_level_table)
{
	static char out[65536], err[65536];

	if (!getenv("KGATE_BIN") || access(getenv("KGATE_BIN"), X_OK))
		SKIP("KGATE_BIN not set or not executable (run through tests/run.sh)");
	ASSERT_EQ(run_kgate((const char *[]){ "--help", NULL }, out, sizeof(out), err, sizeof(err)),
		  0, "--help");
	ASSERT_HAS_SUBSTR(out, "  policy     check, push and show policies", "a command listed");
	ASSERT_TRUE(!strstr(out, "__dispatch"), "the hidden entry is not listed");
	ASSERT_EQ(run_kgate((const char *[]){ "frobnicate", NULL }, out, sizeof(out), err,
			    sizeof(err)), 2, "unknown command");
	ASSERT_HAS_SUBSTR(err, "kgate: error: unknown command 'frobnicate' (one of run, govern, "
			  "release, daemon, policy, approvals, audit, doctor, status, token)\n",
			  "named, with the listed commands (not the hidden one)");
	ASSERT_EQ(run_kgate((const char *[]){ NULL }, out, sizeof(out), err, sizeof(err)), 2,
		  "no command");
	ASSERT_HAS_SUBSTR(err, "usage: kgate", "usage on stderr");
	/* the table hands the entry its argv: a subcommand's own --help */
	ASSERT_EQ(run_kgate((const char *[]){ "policy", "show", "--help", NULL }, out, sizeof(out),
			    err, sizeof(err)), 0, "policy show --help");
	ASSERT_HAS_SUBSTR(out, "usage: kgate policy show", "the subcommand's own usage");
}
