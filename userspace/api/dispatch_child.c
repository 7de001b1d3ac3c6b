// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * api/dispatch_child.c - a submitted job's process, both ends of its exec
 * (api/dispatch.h): the daemon writes the job's description to a memfd and
 * forks + execs itself as `kgate __dispatch 3` (so none of its threads'
 * state is forked into a job); cmd_dispatch_child reads it back and runs
 * the job as `kgate run` would.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "api/dispatch.h"
#include "cli/cmds.h"
#include "common.h"
#include "job/job.h"
#include "policy/admission.h"

/* `kgate __dispatch FD`: run the job the daemon described in FD.  Not a
 * command for people: it exists so that the daemon never forks its own
 * threads' state into a job. */
int cmd_dispatch_child(int argc, char **argv)
{
	char *argvv[MAX_ARGV + 1] = {}, *envv[MAX_ENV + 1] = {};
	const char *risk[MAX_TAGS] = {};
	uint32_t gids[KG_TOKEN_MAX_GROUPS + 1];
	struct kg_actor actor = {};
	struct kg_job_spec spec = { .live = stderr };
	json_error_t jerr;
	json_t *o, *v;
	size_t i;
	int fd;

	if (argc != 2 || getuid() != 0 || (fd = atoi(argv[1])) < 3)
		return kg_err("__dispatch is kgate's daemon's own"), KG_EXIT_USAGE;
	o = json_loadfd(fd, 0, &jerr);
	close(fd);
	if (!o)
		return kg_err("__dispatch: %s", jerr.text), KG_EXIT_FAIL;
	spec.policy_path = json_string_value(json_object_get(o, "policy_path"));
	json_array_foreach(json_object_get(o, "argv"), i, v)
		if (i < MAX_ARGV)
			argvv[i] = (char *)json_string_value(v);
	json_array_foreach(json_object_get(o, "env"), i, v)
		if (i < MAX_ENV)
			envv[i] = (char *)json_string_value(v);
	json_array_foreach(json_object_get(o, "risk_tags"), i, v)
		if (i < MAX_TAGS)
			risk[spec.nrisk_tags++] = json_string_value(v);
	spec.argv = argvv;
	spec.envp = envv;
	spec.risk_tags = risk;
	spec.topic = json_string_value(json_object_get(o, "topic"));
	spec.tenant = json_string_value(json_object_get(o, "tenant"));
	spec.labels = json_object_get(o, "labels");
	spec.job_id = (uint64_t)json_integer_value(json_object_get(o, "job_id"));
	spec.attempt = (unsigned int)json_integer_value(json_object_get(o, "attempt"));
	actor.uid = (uint32_t)json_integer_value(json_object_get(o, "uid"));
	actor.user = json_string_value(json_object_get(o, "user"));
	json_array_foreach(json_object_get(o, "gids"), i, v)
		if (i < ARRAY_SIZE(gids))
			gids[actor.ngids++] = (uint32_t)json_integer_value(v);
	actor.gids = gids;
	spec.launcher = &actor;
	spec.invoker_uid = actor.uid;
	spec.have_as = true;
	spec.as_uid = (uid_t)json_integer_value(json_object_get(o, "as_uid"));
	spec.as_gid = (gid_t)json_integer_value(json_object_get(o, "as_gid"));
	spec.as_name = json_string_value(json_object_get(o, "as_name"));
	spec.as_source = "the submitter's token (POST /api/v1/jobs)";
	if (!spec.policy_path || !argvv[0] || !spec.job_id ||
	    chdir(json_string_value(json_object_get(o, "cwd")) ?: "/")) {
		json_decref(o);
		return kg_err("__dispatch: an incomplete job, or its cwd is gone"), KG_EXIT_FAIL;
	}
	i = kg_job_run(&spec);
	json_decref(o);
	return (int)i;
}

int kgd_spec_memfd(json_t *spec)
{
	int fd = memfd_create("kgate-dispatch", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (json_dumpfd(spec, fd, JSON_COMPACT) || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* fork + exec `kgate __dispatch 3`: only async-signal-safe calls between
 * them (this process has threads). */
pid_t kgd_spawn(const char *self, int specfd, int outfd)
{
	char *const argv[] = { "kgate", "__dispatch", "3", NULL };
	sigset_t none;
	pid_t pid;

	sigemptyset(&none);
	pid = fork();
	if (pid != 0)
		return pid;
	{
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

		sigaction(SIGPIPE, &dfl, NULL);
		sigaction(SIGTERM, &dfl, NULL);
		sigaction(SIGINT, &dfl, NULL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0 ||
		    dup2(specfd, 3) < 0)
			_exit(KG_EXIT_FAIL);
		execv(self, argv);
		_exit(127);
	}
}
