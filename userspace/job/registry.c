// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* registry.c - jobs and the consumer lock, in the state dir. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common.h"
#include "job/registry.h"

static int job_path(const char *trace, char *buf, size_t len)
{
	size_t i;

	/* traces are "job-<hex>": refuse anything that could escape the dir */
	for (i = 0; trace[i]; i++)
		if (trace[i] == '/' || trace[i] == '.')
			return -EINVAL;
	return kg_snprintf(buf, len, "%s/jobs/%s.json", kg_state_dir(), trace) ? -ENAMETOOLONG : 0;
}

int kg_registry_save(const struct kg_job_record *r)
{
	char dir[4096], path[4200], tmp[4300];
	json_t *o, *old;
	size_t i;
	int err;

	err = job_path(r->trace, path, sizeof(path));
	if (err)
		return err;
	if (kg_snprintf(dir, sizeof(dir), "%s/jobs", kg_state_dir()) ||
	    kg_snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, getpid()))
		return -ENAMETOOLONG;
	err = kg_mkdir_p(dir, 0700);
	if (err)
		return err;
	old = json_array();
	for (i = 0; i < r->nold; i++)
		json_array_append_new(old, json_integer(r->old_policy_ids[i]));
	o = json_pack("{s:s,s:I,s:I,s:s,s:I,s:o,s:s,s:s,s:s,s:i,s:i,s:I,s:I,s:I,s:b,s:I,s:s}",
		      "trace", r->trace, "job_id", (json_int_t)r->job_id, "cgroup_id",
		      (json_int_t)r->cgid, "cgroup_path", r->cgroup_path, "policy_id",
		      (json_int_t)r->policy_id, "old_policy_ids", old, "policy_name", r->policy_name,
		      "policy_hash", r->policy_hash, "policy_path", r->policy_path, "pid", (int)r->pid,
		      "controller_pid", (int)r->controller_pid, "uid", (json_int_t)r->uid,
		      "as_uid", (json_int_t)r->as_uid, "invoker_uid", (json_int_t)r->invoker_uid,
		      "full", r->full, "started_ns", (json_int_t)r->started_real_ns,
		      "command", r->command);
	if (!o)
		return -ENOMEM;
	if (r->governed && (json_object_set_new(o, "governed", json_true()) ||
			    json_object_set_new(o, "root_slot", json_integer(r->root_slot)))) {
		json_decref(o);
		return -ENOMEM;
	}
	err = json_dump_file(o, tmp, JSON_COMPACT);
	json_decref(o);
	if (err || rename(tmp, path)) {
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

static void copy_str(char *dst, size_t len, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	kg_strlcpy(dst, s ? s : "", len);
}

static uint64_t get_u64(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

static int parse_record(json_t *o, struct kg_job_record *r)
{
	json_t *old = json_object_get(o, "old_policy_ids");
	size_t i;

	memset(r, 0, sizeof(*r));
	copy_str(r->trace, sizeof(r->trace), o, "trace");
	copy_str(r->cgroup_path, sizeof(r->cgroup_path), o, "cgroup_path");
	copy_str(r->policy_name, sizeof(r->policy_name), o, "policy_name");
	copy_str(r->policy_hash, sizeof(r->policy_hash), o, "policy_hash");
	copy_str(r->policy_path, sizeof(r->policy_path), o, "policy_path");
	copy_str(r->command, sizeof(r->command), o, "command");
	r->job_id = get_u64(o, "job_id");
	r->cgid = get_u64(o, "cgroup_id");
	r->policy_id = (uint32_t)get_u64(o, "policy_id");
	r->pid = (pid_t)get_u64(o, "pid");
	r->controller_pid = (pid_t)get_u64(o, "controller_pid");
	r->uid = (uint32_t)get_u64(o, "uid");
	/* records of older builds: the job's user was kgate's */
	r->as_uid = json_object_get(o, "as_uid") ? (uint32_t)get_u64(o, "as_uid") : r->uid;
	r->invoker_uid = json_object_get(o, "invoker_uid") ? (uint32_t)get_u64(o, "invoker_uid")
							    : r->uid;
	r->full = json_is_true(json_object_get(o, "full"));
	r->governed = json_is_true(json_object_get(o, "governed"));
	r->root_slot = (uint32_t)get_u64(o, "root_slot");
	r->started_real_ns = get_u64(o, "started_ns");
	for (i = 0; i < json_array_size(old) && i < KG_REGISTRY_MAX_POLICIES; i++)
		r->old_policy_ids[r->nold++] = (uint32_t)json_integer_value(json_array_get(old, i));
	return r->trace[0] && r->cgid ? 0 : -EINVAL;
}

int kg_registry_load(const char *trace, struct kg_job_record *r)
{
	char path[4200];
	json_t *o;
	int err;

	err = job_path(trace, path, sizeof(path));
	if (err)
		return err;
	o = json_load_file(path, 0, NULL);
	if (!o)
		return -ENOENT;
	err = parse_record(o, r);
	json_decref(o);
	return err;
}

void kg_registry_remove(const char *trace)
{
	char path[4200];

	if (job_path(trace, path, sizeof(path)))
		return;
	unlink(path);
	/* <trace>.json -> <trace>.tally (the consumer's per-job counts) */
	strcpy(path + strlen(path) - strlen(".json"), ".tally");
	unlink(path);
}

int kg_registry_tally(const char *trace, struct kg_job_tally *t)
{
	char path[4200], *text;
	int ok;

	memset(t, 0, sizeof(*t));
	if (job_path(trace, path, sizeof(path)))
		return -EINVAL;
	strcpy(path + strlen(path) - strlen(".json"), ".tally");
	text = kg_read_file(path, 4096, NULL);
	if (!text)
		return -ENOENT;
	ok = sscanf(text, "refused %" SCNu64 " audited %" SCNu64 " escalations %" SCNu64,
		    &t->refused, &t->audited, &t->escalations) == 3;
	free(text);
	return ok ? 0 : -EINVAL;
}

int kg_registry_list(struct kg_job_record **out, size_t *n)
{
	struct kg_job_record *v = NULL, *nv;
	char dir[4096], path[4400];
	struct dirent *de;
	size_t cnt = 0;
	DIR *d;

	*out = NULL;
	*n = 0;
	if (kg_snprintf(dir, sizeof(dir), "%s/jobs", kg_state_dir()))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		json_t *o;

		if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		if (kg_snprintf(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		o = json_load_file(path, 0, NULL);
		if (!o)
			continue;
		nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			json_decref(o);
			break;
		}
		v = nv;
		if (parse_record(o, &v[cnt]) == 0)
			cnt++;
		json_decref(o);
	}
	closedir(d);
	*out = v;
	*n = cnt;
	return 0;
}

bool kg_registry_stale(const struct kg_job_record *r)
{
	bool controller = r->controller_pid > 0 && kill(r->controller_pid, 0) == 0;
	bool job = r->pid > 0 && kill(r->pid, 0) == 0;

	return !controller && !job;
}

int kg_state_trylock(const char *name)
{
	char path[4200];
	int fd;

	if (kg_snprintf(path, sizeof(path), "%s/%s", kg_state_dir(), name))
		return -1;
	kg_mkdir_p(kg_state_dir(), 0700);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return -1;
	}
	return fd;
}

int kg_consumer_try_lock(void)
{
	return kg_state_trylock("consumer.lock");
}
