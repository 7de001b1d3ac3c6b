// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * maps.c - the BPF maps as userspace writes them: a compiled policy (an
 * image, kernel/image.c) written under a fresh generation id, jobs switched
 * between generations, generations deleted after a grace period, grants,
 * the jobs' roots, the heartbeat and the counters.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common.h"
#include "kernel/image.h"
#include "kernel/maps.h"

static int map_fd(struct kg_loader *l, const char *name)
{
	int fd = kg_loader_map_fd(l, name);

	if (fd < 0)
		kg_err("maps: map %s is not loaded", name);
	return fd;
}

void kg_maps_image_opts(struct kg_loader *l, struct kg_image_opts *opts)
{
	struct kg_control ctl = {};
	uint32_t zero = 0;
	int fd;

	memset(opts, 0, sizeof(*opts));
	/* only the BPF LSM hooks key inodes (Landlock works on paths); the
	 * control map says whether they were loaded knowing btrfs's types */
	if (!kg_loader_lsm_active(l))
		return;
	fd = kg_loader_map_fd(l, "kg_control");
	if (fd >= 0 && bpf_map_lookup_elem(fd, &zero, &ctl) == 0)
		opts->btrfs_blind = !(ctl.fs_flags & KG_CTL_FS_BTRFS);
}

static int new_policy_id(int pol_fd, uint32_t *out)
{
	struct kg_policy p;
	int tries;

	for (tries = 0; tries < 64; tries++) {
		uint32_t id;

		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			return -errno;
		id &= 0x7fffffff;
		if (!id || bpf_map_lookup_elem(pol_fd, &id, &p) == 0)
			continue;
		*out = id;
		return 0;
	}
	return -EEXIST;
}

/* Write n entries of map `name` from an image's array (key first, the
 * value at val_off, stride bytes apart), the key's policy id (id_len bytes
 * at id_off) set to id.  A map without entries is looked up only when
 * `always`.  0 or -errno, said here. */
static int write_entries(struct kg_loader *l, const char *name, bool always, const void *ents,
			 size_t n, size_t stride, size_t key_size, size_t val_off, size_t id_off,
			 const void *id, size_t id_len)
{
	unsigned char key[64];
	size_t i;
	int fd;

	if (!n && !always)
		return 0;
	fd = map_fd(l, name);
	if (fd < 0)
		return -ENOENT;
	for (i = 0; i < n; i++) {
		const unsigned char *e = (const unsigned char *)ents + i * stride;

		memcpy(key, e, key_size);
		memcpy(key + id_off, id, id_len);
		if (bpf_map_update_elem(fd, key, e + val_off, BPF_ANY)) {
			int err = -errno;

			return kg_err("maps: %s update: %s", name, strerror(-err)), err;
		}
	}
	return 0;
}

#define WRITE_ENTRIES(l, name, always, arr, n, type, id, id_field)			\
	write_entries(l, name, always, arr, n, sizeof(type), sizeof(((type *)0)->key),	\
		      offsetof(type, val), offsetof(type, key.id_field), id, sizeof(*(id)))

static int write_rules(struct kg_loader *l, const struct kg_image *img, uint32_t id)
{
	uint32_t be_id = htonl(id);	/* the LPM trie matches its key bitwise */

	return WRITE_ENTRIES(l, "kg_file_rules", true, img->file, img->nfile,
			     struct kg_image_file, &id, policy_id) ?:
	       WRITE_ENTRIES(l, "kg_name_rules", false, img->name, img->nname,
			     struct kg_image_name, &id, policy_id) ?:
	       WRITE_ENTRIES(l, "kg_unix_abstract", false, img->unix_abstract, img->nunix,
			     struct kg_image_unix, &id, policy_id) ?:
	       WRITE_ENTRIES(l, "kg_rule_params", false, img->param, img->nparam,
			     struct kg_image_param, &id, policy_id) ?:
	       WRITE_ENTRIES(l, "kg_net_rules", true, img->net, img->nnet,
			     struct kg_image_net, &be_id, policy_id);
}

int kg_maps_write_image(struct kg_loader *l, const struct kg_image *img, uint32_t *policy_id_out)
{
	struct kg_policy pol = img->policy;
	int pol_fd, err;
	uint32_t id;

	pol_fd = map_fd(l, "kg_policies");
	if (pol_fd < 0)
		return -ENOENT;
	err = new_policy_id(pol_fd, &id);
	if (err)
		return kg_err("maps: cannot allocate a policy id: %s", strerror(-err)), err;
	err = write_rules(l, img, id);
	if (!err) {
		/* names this generation in the file hooks' decision cache; a
		 * failed getrandom leaves a clock value, still unique enough */
		if (getrandom(&pol.serial, sizeof(pol.serial), 0) != sizeof(pol.serial))
			pol.serial = kg_now_mono_ns() ^ ((uint64_t)getpid() << 40);
		/* last: the generation becomes usable only once it is complete */
		if (bpf_map_update_elem(pol_fd, &id, &pol, BPF_NOEXIST)) {
			err = -errno;
			kg_err("maps: kg_policies update: %s", strerror(-err));
		}
	}
	if (err) {
		kg_maps_remove_policy(l, id);
		return err;
	}
	*policy_id_out = id;
	return 0;
}

int kg_maps_install(struct kg_loader *l, const struct kg_policy_doc *doc,
		    uint32_t *policy_id_out, struct kg_compile_report *rep)
{
	struct kg_image_opts opts;
	struct kg_image img;
	int err;

	kg_maps_image_opts(l, &opts);
	err = kg_image_compile(doc, &opts, &img);
	if (err)
		return err;
	err = kg_maps_write_image(l, &img, policy_id_out);
	if (!err && rep)
		kg_image_take_report(&img, rep);
	kg_image_free(&img);
	return err;
}

/* Delete every key of one map whose field at id_off equals id (id_len bytes). */
static void delete_matching(struct kg_loader *l, const char *name, size_t key_size,
			    size_t id_off, const void *id, size_t id_len)
{
	int fd = kg_loader_map_fd(l, name);
	unsigned char *keys = NULL, *prev = NULL, cur[64], next[64];
	size_t n = 0, cap = 0, i;

	if (fd < 0 || key_size > sizeof(cur))
		return;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (!memcmp(next + id_off, id, id_len)) {
			if (n == cap) {
				unsigned char *nk;

				cap = cap ? cap * 2 : 256;
				nk = realloc(keys, cap * key_size);
				if (!nk)
					break;
				keys = nk;
			}
			memcpy(keys + n * key_size, next, key_size);
			n++;
		}
		memcpy(cur, next, key_size);
		prev = cur;
	}
	for (i = 0; i < n; i++)
		bpf_map_delete_elem(fd, keys + i * key_size);
	free(keys);
}

int kg_maps_add_job(struct kg_loader *l, uint64_t cgid, uint64_t job_id,
		    uint32_t policy_id, uint32_t flags)
{
	struct kg_job job = { .job_id = job_id, .policy_id = policy_id, .flags = flags };
	struct kg_job_state st = {};
	int fd = map_fd(l, "kg_jobs"), sfd = map_fd(l, "kg_job_state");

	if (fd < 0 || sfd < 0)
		return -ENOENT;
	bpf_map_update_elem(sfd, &cgid, &st, BPF_ANY);
	if (bpf_map_update_elem(fd, &cgid, &job, BPF_NOEXIST)) {
		int err = -errno;

		return kg_err("maps: cannot register job cgroup %llu: %s",
			      (unsigned long long)cgid, strerror(-err)), err;
	}
	return 0;
}

int kg_maps_get_job(struct kg_loader *l, uint64_t cgid, struct kg_job *out)
{
	int fd = map_fd(l, "kg_jobs");

	if (fd < 0)
		return -ENOENT;
	return bpf_map_lookup_elem(fd, &cgid, out) ? -errno : 0;
}

int kg_maps_switch_job(struct kg_loader *l, uint64_t cgid, uint32_t new_policy_id,
		       uint32_t *old_policy_id)
{
	struct kg_job job;
	int fd = map_fd(l, "kg_jobs");

	if (fd < 0)
		return -ENOENT;
	if (bpf_map_lookup_elem(fd, &cgid, &job))
		return kg_err("maps: job cgroup %llu is not governed", (unsigned long long)cgid),
		       -ENOENT;
	if (old_policy_id)
		*old_policy_id = job.policy_id;
	job.policy_id = new_policy_id;
	/* one element update: hooks see the old id or the new one, never a mix */
	if (bpf_map_update_elem(fd, &cgid, &job, BPF_EXIST)) {
		int err = -errno;

		return kg_err("maps: switch job %llu: %s", (unsigned long long)cgid,
			      strerror(-err)), err;
	}
	return 0;
}

int kg_maps_remove_job(struct kg_loader *l, uint64_t cgid)
{
	int fd = map_fd(l, "kg_jobs"), sfd = map_fd(l, "kg_job_state");

	if (fd < 0)
		return -ENOENT;
	if (sfd >= 0)
		bpf_map_delete_elem(sfd, &cgid);
	if (bpf_map_delete_elem(fd, &cgid) && errno != ENOENT)
		return -errno;
	/* its grants can never be used again: they must not fill the map */
	kg_maps_sweep_grants(l, cgid);
	delete_matching(l, "kg_throttle", sizeof(struct kg_throttle_key),
			offsetof(struct kg_throttle_key, cgid), &cgid, sizeof(cgid));
	return 0;
}

int kg_maps_policy_in_use(struct kg_loader *l, uint32_t policy_id)
{
	uint64_t key, next;
	struct kg_job job;
	int fd = map_fd(l, "kg_jobs");
	void *prev = NULL;

	if (fd < 0)
		return -ENOENT;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(fd, &next, &job) == 0 && job.policy_id == policy_id)
			return 1;
		key = next;
		prev = &key;
	}
	return 0;
}

int kg_maps_wait_readers(void)
{
	LIBBPF_OPTS(bpf_map_create_opts, o);
	int inner, outer, err = 0;
	uint32_t zero = 0;

	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kg_rcu_inner", 4, 4, 1, NULL);
	o.inner_map_fd = inner;
	outer = inner < 0 ? -1 : bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "kg_rcu_sync", 4, 4,
						  1, &o);
	/* the kernel answers an update of a map-in-map only after
	 * synchronize_rcu() (maybe_wait_bpf_programs): every BPF program that
	 * was running when we asked has returned */
	if (outer < 0 || bpf_map_update_elem(outer, &zero, &inner, BPF_ANY))
		err = -errno;
	if (outer >= 0)
		close(outer);
	if (inner >= 0)
		close(inner);
	if (err) {
		/* no map-in-map here: a hook runs for microseconds; wait far longer */
		usleep(200 * 1000);
	}
	return err;
}

static void *wait_readers_thread(void *arg)
{
	(void)arg;
	kg_maps_wait_readers();
	return NULL;
}

void kg_maps_wait_readers_start(struct kg_readers_wait *w)
{
	w->started = pthread_create(&w->thread, NULL, wait_readers_thread, NULL) == 0;
}

void kg_maps_wait_readers_finish(struct kg_readers_wait *w)
{
	if (w->started)
		pthread_join(w->thread, NULL);
	else
		kg_maps_wait_readers();
	w->started = false;
}

int kg_maps_remove_policy(struct kg_loader *l, uint32_t policy_id)
{
	/* a hook that read this id from a job entry before the job was
	 * switched may still be matching against it: let every running
	 * program finish first, or it could find its rules half deleted and
	 * fall back to the class default */
	kg_maps_wait_readers();
	return kg_maps_delete_policy(l, policy_id);
}

int kg_maps_delete_policy(struct kg_loader *l, uint32_t policy_id)
{
	int pol_fd = kg_loader_map_fd(l, "kg_policies");
	uint32_t be_id = htonl(policy_id);

	/* the policy entry first: a job still pointing here now fails closed */
	if (pol_fd >= 0)
		bpf_map_delete_elem(pol_fd, &policy_id);
	delete_matching(l, "kg_file_rules", sizeof(struct kg_file_key),
			offsetof(struct kg_file_key, policy_id), &policy_id, sizeof(policy_id));
	delete_matching(l, "kg_name_rules", sizeof(struct kg_name_key),
			offsetof(struct kg_name_key, policy_id), &policy_id, sizeof(policy_id));
	delete_matching(l, "kg_net_rules", sizeof(struct kg_net_key),
			offsetof(struct kg_net_key, policy_id), &be_id, sizeof(be_id));
	delete_matching(l, "kg_unix_abstract", sizeof(struct kg_unix_key),
			offsetof(struct kg_unix_key, policy_id), &policy_id, sizeof(policy_id));
	delete_matching(l, "kg_rule_params", sizeof(struct kg_rule_key),
			offsetof(struct kg_rule_key, policy_id), &policy_id, sizeof(policy_id));
	return 0;
}

int kg_maps_set_jobs_root(struct kg_loader *l, const char *cgroup_dir)
{
	uint32_t zero = 0;
	int fd = map_fd(l, "kg_jobs_root"), cg, err = 0;

	if (fd < 0)
		return -ENOENT;
	cg = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		err = -errno;
		return kg_err("maps: cannot open %s: %s", cgroup_dir, strerror(-err)), err;
	}
	if (bpf_map_update_elem(fd, &zero, &cg, BPF_ANY)) {
		err = -errno;
		kg_err("maps: kg_jobs_root update: %s", strerror(-err));
	}
	close(cg);
	return err;
}

int kg_maps_set_root_slot(struct kg_loader *l, uint32_t slot, int cgroup_fd)
{
	int fd = map_fd(l, "kg_jobs_root");

	if (fd < 0)
		return -ENOENT;
	if (slot == 0 || slot >= KG_MAX_ROOTS)
		return -EINVAL;
	if (cgroup_fd >= 0 ? bpf_map_update_elem(fd, &slot, &cgroup_fd, BPF_ANY) :
			     bpf_map_delete_elem(fd, &slot) && errno != ENOENT) {
		int err = -errno;	/* before kg_err, which may change errno */

		return kg_err("maps: kg_jobs_root slot %u: %s", slot, strerror(-err)), err;
	}
	return 0;
}

int kg_maps_set_roots_used(struct kg_loader *l, uint32_t used)
{
	int fd = map_fd(l, "kg_roots_used");
	uint32_t zero = 0;

	if (fd < 0)
		return -ENOENT;
	if (bpf_map_update_elem(fd, &zero, &used, BPF_ANY)) {
		int err = -errno;	/* before kg_err, which may change errno */

		return kg_err("maps: kg_roots_used: %s", strerror(-err)), err;
	}
	return 0;
}

int kg_grants_put_fd(int grants_fd, int jobs_fd, const struct kg_grant_key *key,
		     const struct kg_grant *g)
{
	if (bpf_map_update_elem(grants_fd, key, g, BPF_ANY) == 0)
		return 0;
	if (errno != E2BIG && errno != ENOMEM)
		return -errno;
	/* full: make room from grants nobody can use any more, then retry */
	if (kg_grants_sweep_fd(grants_fd, jobs_fd, 0) <= 0)
		return -E2BIG;
	return bpf_map_update_elem(grants_fd, key, g, BPF_ANY) ? -errno : 0;
}

int kg_maps_put_grant(struct kg_loader *l, const struct kg_grant_key *key, const struct kg_grant *g)
{
	int fd = map_fd(l, "kg_grants");

	if (fd < 0)
		return -ENOENT;
	return kg_grants_put_fd(fd, kg_loader_map_fd(l, "kg_jobs"), key, g);
}

static bool grant_dead(int jobs_fd, const struct kg_grant_key *k, const struct kg_grant *g,
		       uint64_t now, uint64_t only_cgid)
{
	struct kg_job job;

	if (only_cgid)
		return k->cgid == only_cgid;
	if (!g->uses_left || (g->expires_ns && g->expires_ns < now))
		return true;
	if (jobs_fd < 0)
		return false;
	if (bpf_map_lookup_elem(jobs_fd, &k->cgid, &job))
		return errno == ENOENT;		/* the job is gone */
	return job.policy_id != g->policy_id;	/* a grant never outlives its generation */
}

int kg_grants_sweep_fd(int grants_fd, int jobs_fd, uint64_t only_cgid)
{
	struct kg_grant_key cur, next, *dead = NULL;
	uint64_t now = kg_now_mono_ns();
	size_t n = 0, cap = 0, i;
	struct kg_grant g;
	bool first = true;
	int deleted = 0;

	if (grants_fd < 0)
		return -EBADF;
	/* collect first: deleting while iterating a hash map restarts the walk */
	while (bpf_map_get_next_key(grants_fd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		if (bpf_map_lookup_elem(grants_fd, &cur, &g) ||
		    !grant_dead(jobs_fd, &cur, &g, now, only_cgid))
			continue;
		if (n == cap) {
			struct kg_grant_key *nd;

			cap = cap ? cap * 2 : 64;
			nd = realloc(dead, cap * sizeof(*nd));
			if (!nd)
				break;
			dead = nd;
		}
		dead[n++] = cur;
	}
	for (i = 0; i < n; i++)
		if (bpf_map_delete_elem(grants_fd, &dead[i]) == 0)
			deleted++;
	free(dead);
	return deleted;
}

int kg_maps_sweep_grants(struct kg_loader *l, uint64_t only_cgid)
{
	int fd = map_fd(l, "kg_grants");

	if (fd < 0)
		return -ENOENT;
	return kg_grants_sweep_fd(fd, kg_loader_map_fd(l, "kg_jobs"), only_cgid);
}

int kg_maps_heartbeat(struct kg_loader *l)
{
	struct kg_control ctl = {};
	uint32_t zero = 0;
	int fd = map_fd(l, "kg_control");

	if (fd < 0)
		return -ENOENT;
	bpf_map_lookup_elem(fd, &zero, &ctl);
	ctl.heartbeat_ns = kg_now_mono_ns();
	ctl.lsm_active = kg_loader_lsm_active(l);
	return bpf_map_update_elem(fd, &zero, &ctl, BPF_ANY) ? -errno : 0;
}

struct kg_heartbeat {
	struct kg_loader *l;
	unsigned int period_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* CLOCK_MONOTONIC */
	bool stop;
};

static void *heartbeat_main(void *arg)
{
	struct kg_heartbeat *h = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		kg_maps_heartbeat(h->l);	/* a map update: no loader state changes */
		next.tv_nsec += (long)(h->period_ms % 1000) * 1000000L;
		next.tv_sec += h->period_ms / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		while (!h->stop && pthread_cond_timedwait(&h->cond, &h->lock, &next) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

struct kg_heartbeat *kg_heartbeat_start(struct kg_loader *l, unsigned int period_ms)
{
	struct kg_heartbeat *h = calloc(1, sizeof(*h));
	pthread_condattr_t ca;
	int err;

	if (!h)
		return NULL;
	h->l = l;
	h->period_ms = period_ms ? period_ms : 250;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_condattr_destroy(&ca);
	err = pthread_create(&h->thread, NULL, heartbeat_main, h);
	if (err) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		free(h);
		errno = err;
		return NULL;
	}
	return h;
}

void kg_heartbeat_stop(struct kg_heartbeat *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int kg_maps_read_counters(struct kg_loader *l, struct kg_counters *sum)
{
	return kg_maps_read_counters_fd(map_fd(l, "kg_counters"), sum);
}

int kg_maps_read_counters_fd(int fd, struct kg_counters *sum)
{
	int ncpu = libbpf_num_possible_cpus(), c;
	struct kg_counters *per;
	uint32_t zero = 0;
	size_t k;

	memset(sum, 0, sizeof(*sum));
	if (fd < 0 || ncpu <= 0)
		return -ENOENT;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		free(per);
		return -errno;
	}
	for (c = 0; c < ncpu; c++) {
		const uint64_t *src = (const uint64_t *)&per[c];
		uint64_t *dst = (uint64_t *)sum;

		for (k = 0; k < sizeof(*sum) / sizeof(uint64_t); k++)
			dst[k] += src[k];
	}
	free(per);
	return 0;
}
