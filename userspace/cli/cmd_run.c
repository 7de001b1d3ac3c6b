// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cmd_run.c - 'kgate run': launch a command as a governed job. */
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmds.h"
#include "record/journal.h"
#include "policy/admission.h"
#include "common.h"
#include "job/job.h"
#include "record/ringsize.h"

#define MAX_RISK_TAGS 32

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kgate run [OPTIONS] -- COMMAND [ARGS]...\n\n"
		"Decide admission, then run COMMAND in a fresh governed cgroup: every file,\n"
		"exec, connection and dangerous syscall is decided by the kernel from the\n"
		"policy, and recorded in the audit trail under the job's trace id.\n\n"
		"options:\n"
		"  --policy FILE     policy to enforce (default: $KGATE_POLICY,\n"
		"                    /etc/kgate/policy.json, or the shipped default)\n"
		"  --topic T         admission topic, e.g. job.agent.exec.build\n"
		"  --risk TAG        admission risk tag (repeatable)\n"
		"  --tenant T        admission tenant\n"
		"  --label KEY=VALUE admission label, e.g. mcp.action=write (repeatable)\n"
		"  --as USER         run COMMAND as USER (privileges dropped before exec);\n"
		"                    under sudo, pkexec or doas the default is the invoking\n"
		"                    user: --as root runs COMMAND as root\n"
		"  --home DIR        '~' in the policy's paths is DIR, and so is the\n"
		"                    command's $HOME (default: the home of the user\n"
		"                    COMMAND runs as, from the password database, when\n"
		"                    --as or sudo/pkexec/doas chose it; else $HOME)\n"
		"  --require full    refuse to start unless every rule is enforced (BPF LSM)\n"
		"  --degraded        do not use BPF LSM even if available\n"
		"  --dns-upstream A  with host rules: where the job's resolver asks\n"
		"                    (ADDR, ADDR:PORT or [V6]:PORT; default\n"
		"                    $KGATE_DNS_UPSTREAM, then /etc/resolv.conf)\n"
		"  --ring-size SIZE  the event ring buffer's size when kgate first loads\n"
		"                    (no job or daemon has loaded it yet): a power of\n"
		"                    two from 64K to 256M (default 4M); a ring already\n"
		"                    loaded with another size is refused\n"
		"  -q, --quiet       do not print decisions as they happen\n"
		"  -h, --help        this help\n\n"
		"exit status: COMMAND's own; 128+N if killed by signal N; 127 if it could not\n"
		"start; 2 usage, 3 invalid policy, 4 admission denied, 5 full enforcement\n"
		"unavailable, 1 other kgate failure\n");
}

/* Under sudo, pkexec or doas, the user who asked: the agent runs as that
 * user unless --as says otherwise (running agents as root is what most
 * people would otherwise do without meaning to).  The variables are only
 * believed when kgate runs as root: they can only lower privileges. */
static int invoking_user(struct kg_job_spec *spec)
{
	static const char *const vars[] = { "SUDO_UID", "PKEXEC_UID", "DOAS_USER" };
	struct passwd *pw = NULL;
	const char *v = NULL;
	size_t i;
	char *end;

	spec->invoker_uid = getuid();
	if (getuid() != 0)
		return 0;
	for (i = 0; i < ARRAY_SIZE(vars) && !pw; i++) {
		v = getenv(vars[i]);
		if (!v || !*v)
			continue;
		if (i == 2) {
			pw = getpwnam(v);
		} else {
			unsigned long uid = strtoul(v, &end, 10);

			if (*end || uid > 0xfffffffful)
				return kg_err("run: %s=%s is not a uid", vars[i], v), -1;
			pw = getpwuid((uid_t)uid);
		}
		if (!pw)
			return kg_err("run: %s=%s names no user of this machine; use --as USER",
				      vars[i], v), -1;
		spec->as_source = vars[i];
	}
	if (!pw)
		return 0;
	spec->have_as = true;
	spec->as_uid = pw->pw_uid;
	spec->as_gid = pw->pw_gid;
	if (!strcmp(spec->as_source, "SUDO_UID") && (v = getenv("SUDO_GID")) && *v) {
		unsigned long gid = strtoul(v, &end, 10);

		if (*end || gid > 0xfffffffful)
			return kg_err("run: SUDO_GID=%s is not a gid", v), -1;
		spec->as_gid = (gid_t)gid;
	}
	spec->as_name = strdup(pw->pw_name);
	spec->invoker_uid = pw->pw_uid;
	return spec->as_name ? 0 : -1;
}

static bool label_ok(const char *kv)
{
	const char *eq = strchr(kv, '=');

	return eq && eq > kv && eq[1] && eq - kv <= 128 && strlen(eq + 1) <= 256;
}

/* KEY=VALUE arguments as a JSON object (a repeated KEY: the last wins) */
static json_t *labels_json(char *const *kv, size_t n)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o && i < n; i++) {
		const char *eq = strchr(kv[i], '=');
		char key[129];

		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv[i]), kv[i]);
		if (json_object_set_new(o, key, json_string(eq + 1))) {
			json_decref(o);
			o = NULL;
		}
	}
	return o;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "topic", required_argument, NULL, 't' },
		{ "risk", required_argument, NULL, 'r' },
		{ "tenant", required_argument, NULL, 'T' },
		{ "label", required_argument, NULL, 'l' },
		{ "as", required_argument, NULL, 'a' },
		{ "require", required_argument, NULL, 'R' },
		{ "home", required_argument, NULL, 'H' },
		{ "degraded", no_argument, NULL, 'd' },
		{ "dns-upstream", required_argument, NULL, 'D' },
		{ "ring-size", required_argument, NULL, 'S' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *risk[MAX_RISK_TAGS];
	char *labels[KG_MAX_LABELS];
	size_t nlabels = 0;
	struct kg_job_spec spec = { .live = stderr };
	struct kg_job_spec invoker = {};
	struct passwd *pw;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': spec.policy_path = optarg; break;
		case 't': spec.topic = optarg; break;
		case 'T': spec.tenant = optarg; break;
		case 'r':
			if (spec.nrisk_tags == MAX_RISK_TAGS)
				return kg_err("run: more than %d --risk tags", MAX_RISK_TAGS), KG_EXIT_USAGE;
			risk[spec.nrisk_tags++] = optarg;
			break;
		case 'l':
			if (nlabels == KG_MAX_LABELS)
				return kg_err("run: more than %d --label", KG_MAX_LABELS), KG_EXIT_USAGE;
			if (!label_ok(optarg))
				return kg_err("run: --label takes KEY=VALUE (a key of 1-128 and a "
					      "value of 1-256 bytes), not '%s'", optarg), KG_EXIT_USAGE;
			labels[nlabels++] = optarg;
			break;
		case 'a':
			pw = getpwnam(optarg);
			if (!pw)
				return kg_err("run: --as: no such user '%s'", optarg), KG_EXIT_USAGE;
			spec.have_as = true;
			spec.as_uid = pw->pw_uid;
			spec.as_gid = pw->pw_gid;
			spec.as_name = optarg;
			spec.as_source = "--as";
			break;
		case 'R':
			if (!strcmp(optarg, "full"))
				spec.require = KG_REQUIRE_FULL;
			else if (!strcmp(optarg, "any"))
				spec.require = KG_REQUIRE_ANY;
			else
				return kg_err("run: --require takes 'full' or 'any', not '%s'", optarg),
				       KG_EXIT_USAGE;
			break;
		case 'H':
			if (optarg[0] != '/')
				return kg_err("run: --home takes an absolute directory, not '%s'",
					      optarg), KG_EXIT_USAGE;
			spec.home = optarg;
			break;
		case 'd': spec.no_lsm = true; break;
		case 'D': spec.dns_upstream = optarg; break;
		case 'S':
			if (kg_ring_size_parse(optarg, &spec.ring_bytes))
				return KG_EXIT_USAGE;
			break;
		case 'q': spec.live = NULL; break;
		case 'h': usage(stdout); return KG_EXIT_OK;
		default: usage(stderr); return KG_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		kg_err("run: no command given");
		usage(stderr);
		return KG_EXIT_USAGE;
	}
	spec.argv = argv + optind;
	spec.risk_tags = risk;
	if (invoking_user(&invoker))
		return KG_EXIT_USAGE;
	spec.invoker_uid = invoker.invoker_uid;
	if (!spec.have_as && invoker.have_as) {
		spec.have_as = true;
		spec.as_uid = invoker.as_uid;
		spec.as_gid = invoker.as_gid;
		spec.as_name = invoker.as_name;
		spec.as_source = invoker.as_source;
	}
	if (nlabels && !(spec.labels = labels_json(labels, nlabels)))
		return kg_err("run: --label: out of memory or not UTF-8"), KG_EXIT_USAGE;
	/* under systemd (JOURNAL_STREAM names our stderr): every line about
	 * the job carries a syslog priority; decisions their own (follow.c) */
	if (spec.live == stderr && kg_journal_stderr()) {
		FILE *j = kg_journal_lines(stderr, 6);

		if (j)
			spec.live = j;
	}
	rc = kg_job_run(&spec);
	if (spec.live && spec.live != stderr)
		fclose(spec.live);
	json_decref(spec.labels);
	free((char *)invoker.as_name);
	return rc;
}
