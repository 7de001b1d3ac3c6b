// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kernel/rootlinks.c - the warm start (kernel/loader_int.h): the cgroup-BPF
 * programs attached once to the jobs' root cgroup, and found there again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <linux/types.h>
#include "job/cgroup.h"
#include "common.h"
#include "kernel/loader_int.h"
#include "kg_objects.h"

/*
 * The cgroup-BPF programs read the job's policy from maps, so one copy of
 * them serves every job: the first kgate of a boot (or of a new build of
 * the BPF objects) loads and verifies them and attaches them to
 * <cgroup2>/kgate (links pinned as <pin>/root/<tag>-<obj>-<prog>); every
 * job cgroup created below inherits them from birth, and so do the cgroups
 * a job creates below its own.  Then it pins a marker, <pin>/ready_<tag>,
 * which also keeps what was learnt about the BPF LSM (attached, or refused
 * on this boot).  A later kgate finds the marker, checks that every root
 * link still targets the cgroup that is <cgroup2>/kgate now (a removed and
 * re-created cgroup would have none of the programs), and loads nothing:
 * its maps come from their pins.  <tag> is a hash of the BPF objects, so a
 * rebuilt kgate loads its own programs and replaces the older links.
 */
struct kg_ready {
	__u32 lsm;		/* KG_READY_LSM_* */
	__u32 nroot;		/* root links pinned */
	char why[248];		/* why the BPF LSM is not used */
};

enum { KG_READY_LSM_UNTRIED, KG_READY_LSM_ACTIVE, KG_READY_LSM_REFUSED };

static int jobs_root_path(char *buf, size_t len)
{
	const char *mnt = kg_cgroup2_mount();

	if (!mnt)
		return -ENOENT;
	return kg_snprintf(buf, len, "%s/%s", mnt, KG_JOBS_CGROUP) ? -ENAMETOOLONG : 0;
}

static int ready_path(char *buf, size_t len)
{
	return kgl_pin_path(buf, len, "%s/ready_%s", kg_pin_dir(), KG_OBJECTS_TAG);
}

/* The cgroup a pinned link is attached to: its id, 0 if detached or not a
 * cgroup link, -errno if the pin cannot be read. */
static int64_t link_cgroup(const char *path, struct bpf_link_info *info)
{
	__u32 len = sizeof(*info);
	int fd = bpf_obj_get(path), err;

	if (fd < 0)
		return -errno;
	memset(info, 0, sizeof(*info));
	err = bpf_obj_get_info_by_fd(fd, info, &len);
	close(fd);
	if (err)
		return err;
	return info->type == BPF_LINK_TYPE_CGROUP ? (int64_t)info->cgroup.cgroup_id : 0;
}

/* The directory of this build's root links (pins named <tag>-<obj>-<prog>),
 * opened; prefix gets "<tag>-".  NULL with errno set (ENAMETOOLONG, or
 * opendir's). */
static DIR *root_links_open(char *dir, size_t dirlen, char *prefix, size_t prefixlen)
{
	if (kgl_pin_path(dir, dirlen, "%s/root", kg_pin_dir())) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	snprintf(prefix, prefixlen, "%s-", KG_OBJECTS_TAG);
	return opendir(dir);
}

/* How many of this build's root links target the cgroup root_id; -ESTALE
 * when one does not (the cgroup was re-created, or the link detached). */
static int root_links_check(uint64_t root_id, bool remove_others)
{
	char dir[4096], path[4400], prefix[32];
	struct bpf_link_info info;
	struct dirent *de;
	int n = 0, stale = 0;
	DIR *d;

	d = root_links_open(dir, sizeof(dir), prefix, sizeof(prefix));
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || kgl_pin_path(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		if (strncmp(de->d_name, prefix, strlen(prefix))) {
			/* another build's program: ours replace it (same maps) */
			if (remove_others)
				unlink(path);
			continue;
		}
		if (link_cgroup(path, &info) != (int64_t)root_id) {
			stale++;
			if (remove_others)
				unlink(path);
			continue;
		}
		n++;
	}
	closedir(d);
	return stale ? -ESTALE : n;
}

static bool read_ready(struct kg_ready *r)
{
	char path[4096];
	__u32 zero = 0;
	int fd, err;

	if (ready_path(path, sizeof(path)))
		return false;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return false;
	err = bpf_map_lookup_elem(fd, &zero, r);
	close(fd);
	return !err;
}

/* Everything this build needs is loaded, attached and pinned already:
 * take the maps from their pins and load nothing. */
bool kgl_warm_start(struct kg_loader *l, bool want_lsm)
{
	char root[4096];
	struct kg_ready r;
	uint64_t root_id;

	if (getenv("KGATE_COLD_START") || !read_ready(&r) || !r.nroot)
		return false;
	if (want_lsm && r.lsm == KG_READY_LSM_UNTRIED)
		return false;
	if (jobs_root_path(root, sizeof(root)) || kg_cgroup_id_of_path(root, &root_id) ||
	    root_links_check(root_id, false) != (int)r.nroot)
		return false;
	l->pinned = calloc(1, sizeof(*l->pinned));
	if (!l->pinned)
		return false;
	if (kgl_pinned_map_fd(l->pinned, "kg_jobs") < 0) {
		free(l->pinned);
		l->pinned = NULL;
		return false;
	}
	l->root_governed = true;
	l->lsm_active = want_lsm && r.lsm == KG_READY_LSM_ACTIVE;
	r.why[sizeof(r.why) - 1] = '\0';
	snprintf(l->lsm_error, sizeof(l->lsm_error), "%s",
		 !want_lsm ? "not requested" : r.lsm == KG_READY_LSM_ACTIVE ? "" : r.why);
	kg_debug("loader: warm start, %u cgroup programs attached to %s", r.nroot, root);
	return true;
}

/* Attach every loaded cgroup program to the jobs' root cgroup (those not
 * attached there yet) and pin the links; then the marker. */
void kgl_cold_start_done(struct kg_loader *l, bool want_lsm)
{
	LIBBPF_OPTS(bpf_map_create_opts, mo);
	char root[4096], path[4400], dir[4096];
	struct bpf_link_info info;
	struct bpf_program *p;
	struct kg_ready r = {};
	uint64_t root_id;
	int cg, i, n = 0, fd, err;
	__u32 zero = 0;

	if (jobs_root_path(root, sizeof(root)) || kg_mkdir_p(root, 0755) ||
	    kg_cgroup_id_of_path(root, &root_id) ||
	    kgl_pin_path(dir, sizeof(dir), "%s/root", kg_pin_dir()) || kg_mkdir_p(dir, 0700))
		return;
	cg = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0)
		return;
	for (i = 0; i < l->nobjs; i++) {
		bpf_object__for_each_program(p, l->objs[i]) {
			struct bpf_link *link;

			if (!kgl_is_cgroup_prog(p) || !bpf_program__autoload(p))
				continue;
			if (kgl_pin_path(path, sizeof(path), "%s/%s-%s-%s", dir, KG_OBJECTS_TAG,
				     bpf_object__name(l->objs[i]), bpf_program__name(p)))
				goto out;
			if (link_cgroup(path, &info) == (int64_t)root_id) {
				n++;
				continue;
			}
			unlink(path);	/* stale: another cgroup, or detached */
			link = bpf_program__attach_cgroup(p, cg);
			if (!link) {
				kg_warn("loader: attach %s to %s: %s", bpf_program__name(p), root,
					strerror(errno));
				goto out;
			}
			err = bpf_link__pin(link, path);
			bpf_link__destroy(link);	/* the pin holds it */
			if (err && !(err == -EEXIST &&
				     link_cgroup(path, &info) == (int64_t)root_id)) {
				kg_warn("loader: pin %s: %s", path, strerror(-err));
				goto out;
			}
			n++;
		}
	}
	/* this build's links are all there: older builds' go (the same maps) */
	if (!n || root_links_check(root_id, true) != n)
		goto out;
	l->root_governed = true;
	r.nroot = (__u32)n;
	r.lsm = !want_lsm ? KG_READY_LSM_UNTRIED : l->lsm_active ? KG_READY_LSM_ACTIVE :
		l->lsm_refused ? KG_READY_LSM_REFUSED : KG_READY_LSM_UNTRIED;
	kg_strlcpy(r.why, l->lsm_error, sizeof(r.why));
	if (ready_path(path, sizeof(path)))
		goto out;
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kg_ready", sizeof(__u32), sizeof(r), 1, &mo);
	if (fd < 0)
		goto out;
	if (!bpf_map_update_elem(fd, &zero, &r, BPF_ANY)) {
		unlink(path);
		bpf_obj_pin(fd, path);
	}
	close(fd);
out:
	close(cg);
}

/* A governed cgroup outside the jobs' root (kgate govern, benches) after a
 * warm start: the same programs, taken from the root links. */
int kgl_attach_from_root_links(int cgroup_fd, const char *jobdir)
{
	char dir[4096], path[4400], out[4400], prefix[32];
	struct bpf_link_info info;
	struct dirent *de;
	int attached = 0, err = 0;
	DIR *d;

	d = root_links_open(dir, sizeof(dir), prefix, sizeof(prefix));
	if (!d && errno == ENAMETOOLONG)
		return -ENAMETOOLONG;
	if (!d)
		return kg_err("loader: no cgroup programs to attach (%s: %s)", dir,
			      strerror(errno)), -ENOENT;
	while (!err && (de = readdir(d))) {
		const char *prog;
		int pfd, lfd;

		if (strncmp(de->d_name, prefix, strlen(prefix)) ||
		    kgl_pin_path(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		/* <tag>-<obj>-<prog>: the job's pin is named <prog> as before */
		prog = strchr(de->d_name + strlen(prefix), '-');
		if (!prog || kgl_pin_path(out, sizeof(out), "%s/%s", jobdir, prog + 1)) {
			err = -ENAMETOOLONG;
			break;
		}
		if (link_cgroup(path, &info) <= 0) {
			err = -(errno ? errno : EIO);
			kg_err("loader: root link %s unreadable", path);
			break;
		}
		pfd = bpf_prog_get_fd_by_id(info.prog_id);
		if (pfd < 0) {
			err = -(errno ? errno : EIO);
			kg_err("loader: program of %s: %s", path, strerror(errno));
			break;
		}
		lfd = bpf_link_create(pfd, cgroup_fd, info.cgroup.attach_type, NULL);
		close(pfd);
		if (lfd < 0) {
			err = -(errno ? errno : EIO);
			kg_err("loader: attach %s: %s", prog + 1, strerror(errno));
			break;
		}
		if (bpf_obj_pin(lfd, out)) {
			err = -(errno ? errno : EIO);
			kg_err("loader: pin %s: %s", out, strerror(errno));
			close(lfd);
			break;
		}
		close(lfd);
		attached++;
	}
	closedir(d);
	if (err)
		return err;
	if (!attached) {
		kg_err("loader: no cgroup programs to attach");
		return -ENOENT;
	}
	return 0;
}
