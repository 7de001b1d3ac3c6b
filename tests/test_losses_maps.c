// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_losses_maps.c - losses.c against its maps, without a ring to
 * overflow (test_losses.c overflows a real one through `kgate run`): the
 * kernel's counts are written by hand into a private bpffs, so each part
 * of the contract in losses.h is seen on its own:
 *
 *   - a read is the difference between the kernel's counts (kg_job_lost,
 *     kg_counters.lost_unattributed) and what the trail accounts for
 *     (kg_lost_seen, <state>/lost.unattributed); by_kind and by_job each
 *     add up to lost; jobs with nothing new are not listed;
 *   - mark remembers a committed record: the next read is empty, and only
 *     what grew since is reported;
 *   - the state file is locked while a read is held, free after done;
 *   - a garbage or a too-large state file never hides a loss nor makes
 *     one negative;
 *   - sweep forgets jobs that are gone and fully accounted, and only them.
 *
 * Needs root (BPF, a bpffs mount): skipped without it.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
#include <sys/file.h>

#include "testlib.h"
#include "testenv.h"
#include "common.h"
#include "record/events.h"
#include "kernel/loader.h"
#include "record/losses.h"
#include "record/recorder.h"

static char dir[128], bpfdir[256], pin[300];

static struct kg_loader *open_private(const char *name)
{
	struct kg_loader_opts lo = { .want_lsm = false };
	struct kg_loader *l;
	char ignored[256];
	int err;

	if (getuid() != 0)
		SKIP("needs root (BPF, a bpffs mount)");
	if (kt_state_tree(name, false, dir, sizeof(dir), ignored, sizeof(ignored)))
		SKIP("state tree: %s", strerror(errno));
	snprintf(bpfdir, sizeof(bpfdir), "%s/bpf", dir);
	if (mkdir(bpfdir, 0700) || (err = kt_bpffs_mount(bpfdir, pin, sizeof(pin)))) {
		kt_rm_tree(dir);
		SKIP("cannot mount a private bpffs: %s", strerror(errno));
	}
	l = kg_loader_open(&lo);
	if (!l) {
		umount2(bpfdir, MNT_DETACH);
		kt_rm_tree(dir);
		SKIP("cannot load kgate's BPF objects here: %s", strerror(errno));
	}
	return l;
}

static void close_private(struct kg_loader *l)
{
	kg_loader_close(l);
	kt_bpffs_unmount(bpfdir, pin);
	kt_rm_tree(dir);
}

static int fd_of(struct kg_loader *l, const char *name)
{
	int fd = kg_loader_map_fd(l, name);

	if (fd < 0)
		SKIP("map %s not loaded", name);
	return fd;
}

/* What the kernel would have counted for a job: n[kind] losses. */
static int kernel_lost(struct kg_loader *l, uint64_t cgid, uint64_t job_id, const uint64_t n[KG_EV_MAX])
{
	struct kg_job_lost v = { .job_id = job_id };

	memcpy(v.lost, n, sizeof(v.lost));
	return bpf_map_update_elem(fd_of(l, "kg_job_lost"), &cgid, &v, BPF_ANY);
}

/* kg_counters.lost_unattributed, all on CPU 0 (a read sums the CPUs). */
static int kernel_unattributed(struct kg_loader *l, const uint64_t n[KG_EV_MAX])
{
	int ncpu = libbpf_num_possible_cpus(), err;
	struct kg_counters *per = calloc(ncpu > 0 ? ncpu : 1, sizeof(*per));
	uint32_t zero = 0;

	if (!per || ncpu <= 0)
		return -1;
	memcpy(per[0].lost_unattributed, n, sizeof(per[0].lost_unattributed));
	err = bpf_map_update_elem(fd_of(l, "kg_counters"), &zero, per, BPF_ANY);
	free(per);
	return err;
}

static const struct kg_loss_job *job_in(const struct kg_loss_delta *d, uint64_t cgid)
{
	size_t i;

	for (i = 0; i < d->njobs; i++)
		if (d->jobs[i].cgid == cgid)
			return &d->jobs[i];
	return NULL;
}

static uint64_t sum_by_kind(const struct kg_loss_delta *d)
{
	uint64_t s = 0;
	int k;

	for (k = 0; k < KG_EV_MAX; k++)
		s += d->by_kind[k];
	return s;
}

TEST(nothing_lost_reads_empty)
{
	struct kg_loader *l = open_private("lossmaps-empty");
	struct kg_loss_delta d;

	ASSERT_OK(kg_losses_read(l, &d), "read");
	ASSERT_EQ(d.lost, 0, "nothing lost");
	ASSERT_EQ(d.njobs, 0, "no job listed");
	ASSERT_EQ(sum_by_kind(&d), 0, "no kind");
	ASSERT_GE(d.lock_fd, 0, "the state file is held");
	kg_losses_done(&d);
	ASSERT_EQ(d.lock_fd, -1, "released");
	close_private(l);
}

TEST(a_read_is_the_kernels_count_split_by_job_and_by_kind)
{
	struct kg_loader *l = open_private("lossmaps-read");
	uint64_t a[KG_EV_MAX] = { [KG_EV_DECISION] = 3, [KG_EV_THROTTLE] = 2 };
	uint64_t b[KG_EV_MAX] = { [KG_EV_DECISION] = 5 };
	uint64_t un[KG_EV_MAX] = { [KG_EV_ESCALATION] = 4 };
	const struct kg_loss_job *ja, *jb;
	struct kg_loss_delta d;
	json_t *kinds, *jobs, *j;
	char trace[32];
	size_t i;
	json_int_t by_job_sum = 0;

	ASSERT_OK(kernel_lost(l, 101, 0xa1, a), "job 101 lost 5");
	ASSERT_OK(kernel_lost(l, 202, 0xb2, b), "job 202 lost 5");
	ASSERT_OK(kernel_unattributed(l, un), "4 unattributed");
	if (!ASSERT_OK(kg_losses_read(l, &d), "read"))
		return;
	ASSERT_EQ(d.lost, 14, "5 + 5 + 4");
	ASSERT_EQ(d.unattributed, 4, "unattributed part");
	ASSERT_EQ(d.by_kind[KG_EV_DECISION], 8, "decisions: 3 + 5");
	ASSERT_EQ(d.by_kind[KG_EV_THROTTLE], 2, "throttles");
	ASSERT_EQ(d.by_kind[KG_EV_ESCALATION], 4, "escalations (unattributed)");
	ASSERT_EQ(sum_by_kind(&d), d.lost, "by_kind adds up to lost");
	ASSERT_EQ(d.njobs, 2, "two jobs");
	ja = job_in(&d, 101);
	jb = job_in(&d, 202);
	if (ASSERT_TRUE(ja && jb, "both listed")) {
		ASSERT_EQ(ja->delta, 5, "job 101's part");
		ASSERT_EQ(jb->delta, 5, "job 202's part");
		ASSERT_EQ(ja->now.job_id, 0xa1, "the kernel's job id");
	}

	kinds = kg_losses_by_kind(&d);
	ASSERT_EQ(json_integer_value(json_object_get(kinds, "decision")), 8, "by_kind.decision");
	ASSERT_EQ(json_integer_value(json_object_get(kinds, "escalation")), 4, "by_kind.escalation");
	ASSERT_EQ(json_integer_value(json_object_get(kinds, "throttle")), 2, "by_kind.throttle");
	ASSERT_EQ(json_object_size(kinds), KG_EV_MAX, "every kind named, zero or not");
	jobs = kg_losses_by_job(&d);
	ASSERT_EQ(json_array_size(jobs), 2, "by_job: two");
	json_array_foreach(jobs, i, j) {
		uint64_t cgid = (uint64_t)json_integer_value(json_object_get(j, "cgroup_id"));

		kg_trace_id(cgid == 101 ? 0xa1 : 0xb2, trace, sizeof(trace));
		ASSERT_STREQ(json_string_value(json_object_get(j, "trace_id")), trace,
			     "the job's trace id, from its job id");
		by_job_sum += json_integer_value(json_object_get(j, "lost"));
	}
	ASSERT_EQ(by_job_sum + (json_int_t)d.unattributed, (json_int_t)d.lost,
		  "by_job plus unattributed adds up to lost");
	json_decref(kinds);
	json_decref(jobs);
	kg_losses_done(&d);
	close_private(l);
}

TEST(mark_remembers_a_committed_record_and_only_growth_is_read_again)
{
	struct kg_loader *l = open_private("lossmaps-mark");
	uint64_t a[KG_EV_MAX] = { [KG_EV_DECISION] = 3 };
	uint64_t b[KG_EV_MAX] = { [KG_EV_DECISION] = 5 };
	uint64_t un[KG_EV_MAX] = { [KG_EV_THROTTLE] = 4 };
	struct kg_loss_delta d;
	char path[300], *text;

	ASSERT_OK(kernel_lost(l, 101, 1, a), "job 101");
	ASSERT_OK(kernel_lost(l, 202, 2, b), "job 202");
	ASSERT_OK(kernel_unattributed(l, un), "unattributed");
	ASSERT_OK(kg_losses_read(l, &d), "read");
	ASSERT_EQ(d.lost, 12, "all of it");
	ASSERT_OK(kg_losses_mark(l, &d), "marked");
	kg_losses_done(&d);

	snprintf(path, sizeof(path), "%s/state/lost.unattributed", dir);
	text = kg_read_file(path, 4096, NULL);
	ASSERT_HAS_SUBSTR(text, "00000000000000000004", "the unattributed count, fixed width");
	free(text);

	ASSERT_OK(kg_losses_read(l, &d), "read again");
	ASSERT_EQ(d.lost, 0, "everything accounted");
	ASSERT_EQ(d.njobs, 0, "no job listed");
	kg_losses_done(&d);

	/* the kernel counts one more for job 202, two more unattributed */
	b[KG_EV_DECISION] = 6;
	un[KG_EV_THROTTLE] = 6;
	ASSERT_OK(kernel_lost(l, 202, 2, b), "job 202 grew");
	ASSERT_OK(kernel_unattributed(l, un), "unattributed grew");
	ASSERT_OK(kg_losses_read(l, &d), "read the growth");
	ASSERT_EQ(d.lost, 3, "1 + 2");
	ASSERT_EQ(d.unattributed, 2, "the unattributed growth");
	ASSERT_EQ(d.njobs, 1, "only the job that grew");
	ASSERT_TRUE(job_in(&d, 202) && job_in(&d, 202)->delta == 1, "job 202: one");
	kg_losses_done(&d);

	/* a read that is not marked (its record was not committed) is read again */
	ASSERT_OK(kg_losses_read(l, &d), "read, not marked");
	ASSERT_EQ(d.lost, 3, "still 3");
	kg_losses_done(&d);
	close_private(l);
}

TEST(the_state_file_is_locked_while_a_read_is_held)
{
	struct kg_loader *l = open_private("lossmaps-lock");
	struct kg_loss_delta d;
	char path[300];
	int fd;

	ASSERT_OK(kg_losses_read(l, &d), "read");
	snprintf(path, sizeof(path), "%s/state/lost.unattributed", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (ASSERT_GE(fd, 0, "the state file exists")) {
		ASSERT_ERRNO(flock(fd, LOCK_EX | LOCK_NB), EWOULDBLOCK,
			     "another reader waits while one is held");
		kg_losses_done(&d);
		ASSERT_OK(flock(fd, LOCK_EX | LOCK_NB), "free after done");
		close(fd);
	} else {
		kg_losses_done(&d);
	}
	/* mark without a held read has nothing to remember it under */
	ASSERT_EQ(kg_losses_mark(l, &d), -ENOENT, "mark after done refused");
	close_private(l);
}

TEST(a_bad_state_file_never_hides_a_loss_nor_makes_one_negative)
{
	struct kg_loader *l = open_private("lossmaps-badstate");
	uint64_t un[KG_EV_MAX] = { [KG_EV_DECISION] = 7, [KG_EV_THROTTLE] = 1 };
	uint64_t n[KG_EV_MAX] = { [KG_EV_DECISION] = 2 }, job = 44;
	struct kg_job_lost ahead = { .job_id = 4, .lost = { [KG_EV_DECISION] = 5 } };
	struct kg_loss_delta d;
	char path[300];

	ASSERT_OK(kernel_unattributed(l, un), "unattributed");
	snprintf(path, sizeof(path), "%s/state", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/state/lost.unattributed", dir);
	ASSERT_OK(kt_write_file(path, "\xff garbage, not counts\n", 0600), "garbage");
	ASSERT_OK(kg_losses_read(l, &d), "read over garbage");
	ASSERT_EQ(d.lost, 8, "garbage accounts for nothing: all 8 reported");
	kg_losses_done(&d);

	/* more than the kernel counts (its maps were made anew): nothing to
	 * report, and no wrap-around into a huge number */
	ASSERT_OK(kt_write_file(path, "00000000000000000100 00000000000000000100 "
				"00000000000000000100 00000000000000000100\n", 0600), "ahead");
	ASSERT_OK(kg_losses_read(l, &d), "read under a state ahead of the kernel");
	ASSERT_EQ(d.lost, 0, "nothing new, nothing negative");
	ASSERT_EQ(d.unattributed, 0, "unattributed 0");
	kg_losses_done(&d);

	/* the same for a job: seen ahead of the kernel's count */
	ASSERT_OK(kernel_lost(l, job, 4, n), "job 44 lost 2");
	ASSERT_OK(bpf_map_update_elem(fd_of(l, "kg_lost_seen"), &job, &ahead, BPF_ANY),
		  "5 seen");
	ASSERT_OK(kg_losses_read(l, &d), "read under a job seen ahead");
	ASSERT_EQ(d.lost, 0, "no negative job delta");
	ASSERT_EQ(d.njobs, 0, "the job is not listed");
	kg_losses_done(&d);
	close_private(l);
}

TEST(sweep_forgets_only_jobs_that_are_gone_and_fully_accounted)
{
	struct kg_loader *l = open_private("lossmaps-sweep");
	uint64_t n[KG_EV_MAX] = { [KG_EV_DECISION] = 2 };
	uint64_t more[KG_EV_MAX] = { [KG_EV_DECISION] = 3 };
	struct kg_job running = {};
	struct kg_job_lost v;
	struct kg_loss_delta d;
	uint64_t live = 11, gone = 22, owing = 33;
	int jfd, sfd;

	ASSERT_OK(kernel_lost(l, live, 1, n), "a running job's losses");
	ASSERT_OK(kernel_lost(l, gone, 2, n), "a gone job's losses");
	ASSERT_OK(kernel_lost(l, owing, 3, n), "another gone job's losses");
	ASSERT_OK(bpf_map_update_elem(fd_of(l, "kg_jobs"), &live, &running, BPF_ANY),
		  "job 11 still runs");
	ASSERT_OK(kg_losses_read(l, &d), "read");
	ASSERT_OK(kg_losses_mark(l, &d), "all accounted");
	kg_losses_done(&d);
	/* job 33 lost one more after the record: not yet accounted */
	ASSERT_OK(kernel_lost(l, owing, 3, more), "job 33 grew");

	kg_losses_sweep(l);
	jfd = fd_of(l, "kg_job_lost");
	sfd = fd_of(l, "kg_lost_seen");
	ASSERT_ERRNO(bpf_map_lookup_elem(jfd, &gone, &v), ENOENT, "gone and accounted: forgotten");
	ASSERT_ERRNO(bpf_map_lookup_elem(sfd, &gone, &v), ENOENT, "its seen entry too");
	ASSERT_OK(bpf_map_lookup_elem(jfd, &live, &v), "a running job is kept");
	ASSERT_OK(bpf_map_lookup_elem(sfd, &live, &v), "with what was seen of it");
	ASSERT_OK(bpf_map_lookup_elem(jfd, &owing, &v), "a gone job still owing a record is kept");

	/* and its loss is still reported */
	ASSERT_OK(kg_losses_read(l, &d), "read after the sweep");
	ASSERT_EQ(d.lost, 1, "job 33's last loss");
	ASSERT_TRUE(job_in(&d, owing) != NULL, "under job 33");
	kg_losses_done(&d);
	close_private(l);
}
