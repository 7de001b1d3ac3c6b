// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_journal.c - `kgate run` as a systemd unit's ExecStart sees it: with
 * JOURNAL_STREAM naming its stderr (what systemd sets when the output goes
 * to the journal), every kgate line starts with a syslog priority "<N>",
 * a refused action is one line at <4>, nothing is a terminal control code;
 * without it (or when it names another file) the lines are unchanged.
 * No systemd here: the test sets JOURNAL_STREAM as systemd would.
 */
#include <sys/stat.h>

#include "testlib.h"
#include "kgrun.h"

#define POLICY \
	"{\"version\":1,\"name\":\"journal-test\",\"default\":\"allow\"," \
	"\"runtime_defaults\":{\"net\":\"deny\"}," \
	"\"runtime\":[" \
	"{\"id\":\"no-loopback\",\"net\":{\"cidr\":\"127.0.0.0/8\"},\"decision\":\"deny\",\"reason\":\"test\"}" \
	"]}"

/* kgate run under sh -c: two refused connects; stderr to errpath, whose
 * dev:ino go to JOURNAL_STREAM when journal is true (other = a file that
 * is not stderr) */
static int run_unit(const char *policy, const char *errpath, int journal)
{
	char outpath[512], script[2048];
	char *argv[] = { (char *)kgate_bin(), "run", "--policy", (char *)policy, "--", "/bin/sh",
			 "-c", script, NULL };
	int status, e, o;
	pid_t pid;

	snprintf(script, sizeof(script), "%s connect 127.0.0.2 9; %s connect 127.0.0.3 9; true",
		 helper("net_probe"), helper("net_probe"));
	snprintf(outpath, sizeof(outpath), "%s/unit.out", tmpdir);
	e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	o = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (journal) {
		struct stat st;
		char env[64];

		fstat(journal == 1 ? e : o, &st);
		snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
		setenv("JOURNAL_STREAM", env, 1);
	} else {
		unsetenv("JOURNAL_STREAM");
	}
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);	/* a unit's stdin */
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	close(e);
	close(o);
	unsetenv("JOURNAL_STREAM");
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct scan {
	int kgate_lines, prefixed, refused, refused_warning, started_info, controls;
};

static void scan(const char *path, struct scan *s)
{
	char *text = kg_read_file(path, 1 << 20, NULL), *line, *save = NULL, *p;

	memset(s, 0, sizeof(*s));
	if (!text)
		return;
	for (p = text; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n')
			s->controls++;
	printf("  --- %s\n%s  ---\n", path, text);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		bool pre = line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>';
		const char *body = pre ? line + 3 : line;

		if (strncmp(body, "kgate:", 6))
			continue;	/* the agent's own output */
		s->kgate_lines++;
		s->prefixed += pre;
		if (strstr(body, "REFUSED")) {
			s->refused++;
			s->refused_warning += !strncmp(line, "<4>", 3);
		}
		if (strstr(body, " started (") && !strncmp(line, "<6>", 3))
			s->started_info++;
	}
	free(text);
}

TEST(run_under_journal_stream_prefixes_priorities_one_line_per_decision)
{
	char policy[512], errpath[512];
	struct scan s;

	setup();
	write_policy(POLICY, policy, sizeof(policy));
	snprintf(errpath, sizeof(errpath), "%s/unit.err", tmpdir);
	ASSERT_EQ(run_unit(policy, errpath, 1), 0, "kgate run as a unit: the job exits 0");
	scan(errpath, &s);
	ASSERT_GE(s.kgate_lines, 3, "kgate said something");
	ASSERT_EQ(s.prefixed, s.kgate_lines, "every kgate line starts with <N>");
	ASSERT_EQ(s.refused, 2, "one line per refused connect");
	ASSERT_EQ(s.refused_warning, 2, "refusals at priority 4 (warning)");
	ASSERT_EQ(s.started_info, 1, "the job's start at priority 6 (info)");
	ASSERT_EQ(s.controls, 0, "no control characters (no terminal codes)");
	teardown();
}

TEST(run_without_journal_stream_is_unchanged)
{
	char policy[512], errpath[512];
	struct scan s;

	setup();
	write_policy(POLICY, policy, sizeof(policy));
	snprintf(errpath, sizeof(errpath), "%s/unit.err", tmpdir);
	ASSERT_EQ(run_unit(policy, errpath, 0), 0, "plain run");
	scan(errpath, &s);
	ASSERT_EQ(s.refused, 2, "the same two decisions");
	ASSERT_EQ(s.prefixed, 0, "no priority prefixes");
	ASSERT_EQ(s.controls, 0, "no control characters with stderr not a terminal");
	/* JOURNAL_STREAM inherited but naming another stream (stdout here):
	 * stderr is not the journal */
	ASSERT_EQ(run_unit(policy, errpath, 2), 0, "JOURNAL_STREAM of another file");
	scan(errpath, &s);
	ASSERT_EQ(s.refused, 2, "the same two decisions");
	ASSERT_EQ(s.prefixed, 0, "no prefixes when JOURNAL_STREAM is not our stderr");
	teardown();
}
