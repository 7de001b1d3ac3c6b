// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* job.c - one governed job, from admission to clean-up (its parts are
 * named in job/job_int.h). */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "policy/admission.h"
#include "job/admit.h"
#include "cli/cmds.h"
#include "common.h"
#include "record/events.h"
#include "job/job_int.h"
#include "kernel/maps.h"
#include "job/reap.h"
#include "job/registry.h"

#define KG_TICK_MS 250

static volatile sig_atomic_t pending_signal;

static void on_signal(int sig)
{
	pending_signal = sig;
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	size_t i;

	sigemptyset(&sa.sa_mask);
	for (i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

const char *kg_default_policy_path(char *buf, size_t len)
{
	const char *env = getenv("KGATE_POLICY");
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && *env)
		return env;
	if (access("/etc/kgate/policy.json", R_OK) == 0)
		return "/etc/kgate/policy.json";
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	/* build/kgate in a checkout, or <prefix>/bin/kgate with share/kgate */
	if (!kg_snprintf(buf, len, "%s/../policies/default.json", exe) && access(buf, R_OK) == 0)
		return buf;
	if (!kg_snprintf(buf, len, "%s/../share/kgate/policies/default.json", exe) &&
	    access(buf, R_OK) == 0)
		return buf;
	return NULL;
}

/* Become the ring-buffer consumer if nobody else is (see registry.h). */
static void try_consume(struct job *j)
{
	if (!j->consumer)
		j->consumer = kg_consumer_try(j->loader, j->audit);
}

/* Starts a record of the controller's own about this job (kg_rec_controller
 * and its trace); kgj_job_record appends it. */
void kgj_job_rec(struct job *j, struct kg_rec *r, const char *type)
{
	kg_rec_controller(r, type, j->doc);
	kg_rec_str(r, "trace", j->trace);
}

void kgj_job_record(struct job *j, const struct kg_rec *r)
{
	if (j->audit && kg_rec_append(j->audit, r))
		kg_warn("audit append failed for a %s record", r->rec.type);
}

/* `kgate policy push` flips the job's generation in the kernel; calls held
 * from then on must be judged, requested and granted under the new one (a
 * grant names its generation, and an approval of a request made under the
 * old one is refused as stale). */
static void follow_pushed_policy(struct job *j)
{
	struct kg_policy_doc *doc;
	struct kg_job kj;

	if (!j->hold || kg_maps_get_job(j->loader, j->cg.id, &kj) ||
	    kj.policy_id == j->hold_policy_id)
		return;
	doc = kj.policy_id == j->policy_id ? NULL : kg_snapshot_load_doc(kj.policy_id);
	if (kj.policy_id != j->policy_id && !doc) {
		kg_warn("run: policy generation %u of job %s has no readable snapshot: held "
			"calls stay judged under generation %u", kj.policy_id, j->trace,
			j->hold_policy_id);
		j->hold_policy_id = kj.policy_id;	/* said once */
		return;
	}
	kg_hold_set_policy(j->hold, doc ? doc : j->doc, kj.policy_id);
	if (j->approvals) {	/* approvers, timeout and queue size of the new policy */
		struct kg_approvals_cfg cfg;

		kg_approvals_cfg_from_doc(&cfg, doc ? doc : j->doc);
		cfg.audit = j->audit;
		cfg.loader = j->loader;
		kg_approvals_set_cfg(j->approvals, &cfg);
	}
	kg_policy_free(j->pushed);
	j->pushed = doc;
	j->hold_policy_id = kj.policy_id;
	if (j->spec->live)
		fprintf(j->spec->live, "kgate: job %s now runs policy generation %u (%s sha256 "
			"%.12s)\n", j->trace, kj.policy_id, (doc ? doc : j->doc)->name,
			(doc ? doc : j->doc)->hash);
}

/* Record events while the main process runs; kill the job at max runtime;
 * forward SIGINT/SIGTERM/SIGHUP to it. */
static void supervise(struct job *j, uint64_t max_runtime_sec, bool *timed_out)
{
	uint64_t deadline = max_runtime_sec ? kg_now_mono_ns() + max_runtime_sec * 1000000000ull : 0;
	uint64_t next_tick = 0;
	struct pollfd pfd[7] = {
		{ .fd = j->jp.pidfd, .events = POLLIN },
		{ .fd = -1, .events = POLLIN },	/* the ring buffer, once we consume */
		{ .fd = j->hold ? kg_hold_fd(j->hold) : -1, .events = POLLIN },
		{ .fd = j->dns ? kg_resolver_fd(j->dns) : -1, .events = POLLIN },
		{ .fd = -1 }, { .fd = -1 },	/* the job's terminal: user input, pty master */
		{ .fd = kg_kaudit_fd(j->ka), .events = POLLIN },	/* Landlock refusals */
	};

	*timed_out = false;
	for (;;) {
		uint64_t now = kg_now_mono_ns();
		int timeout = KG_TICK_MS;

		if (deadline && !*timed_out && now >= deadline) {
			*timed_out = true;
			kg_cgroup_kill(&j->cg);
		}
		if (deadline && !*timed_out && (deadline - now) / 1000000 < (uint64_t)timeout)
			timeout = (deadline - now) / 1000000 + 1;
		if (now >= next_tick) {
			/* a job that runs on deletes what earlier ones retired,
			 * its grace period passing in the background (no fork
			 * follows: the command was exec'd) */
			if (!j->sweep.n && now - j->launched_ns >= KG_TICK_MS * 1000000ull)
				kg_push_sweep_start(&j->sweep);
			kg_maps_heartbeat(j->loader);
			try_consume(j);
			follow_pushed_policy(j);
			kgj_follow_pushed_dns(j);
			next_tick = now + KG_TICK_MS * 1000000ull;
		}
		pfd[1].fd = j->consumer ? kg_consumer_epoll_fd(j->consumer) : -1;
		if (pending_signal) {
			syscall(SYS_pidfd_send_signal, j->jp.pidfd, pending_signal, NULL, 0);
			pending_signal = 0;
		}
		if (j->hold && kg_hold_count(j->hold) && timeout > 100)
			timeout = 100;	/* answer released calls promptly */
		kg_pty_pollfds(&j->pty, &pfd[4].fd, &pfd[4].events, &pfd[5].fd, &pfd[5].events);
		pfd[4].revents = pfd[5].revents = 0;
		poll(pfd, 7, kg_consumer_timeout_ms(j->consumer, timeout));
		if (pfd[6].revents & POLLIN)
			kg_kaudit_poll(j->ka, kgj_record_landlock_denial, j);
		kg_pty_handle(&j->pty, pfd[4].fd >= 0 ? pfd[4].revents : 0,
			      pfd[5].fd >= 0 ? pfd[5].revents : 0);
		if (j->dns && kg_resolver_wanted_policy(j->dns))
			kgj_follow_pushed_dns(j);	/* a query waits for the pushed rules */
		kgj_drain_dns(j);
		if ((pfd[2].revents & POLLIN) && kg_hold_handle(j->hold) < 0)
			pfd[2].fd = -1;	/* listener gone with the process */
		if (j->hold) {
			kg_approvals_expire(j->approvals, 0);
			kg_hold_tick(j->hold, 0);
		}
		if (j->consumer)
			kg_consumer_poll(j->consumer);
		if (j->audit)
			kg_audit_flush_if_due(j->audit);
		if (j->follow)
			kg_follow_poll(j->follow);
		if (pfd[0].revents & (POLLIN | POLLHUP))
			break;
	}
}

/* Show the job's last decisions: ours are committed now; another
 * consumer (a daemon) commits its records of them to the trail before its
 * ring position passes them, so we wait for that, at most 150 ms. */
/* Until the tasks the kill was sent to are gone (at most timeout_ms): a
 * task still in a system call can decide once more. */
static void wait_cgroup_empty(const struct kg_cgroup *cg, int timeout_ms)
{
	uint64_t end = kg_now_mono_ns() + (uint64_t)timeout_ms * 1000000ULL;

	while (kg_cgroup_populated(cg) && kg_now_mono_ns() < end)
		usleep(2000);
}

static void finish_live_view(struct job *j)
{
	if (j->audit)
		kg_audit_flush(j->audit);
	if (!j->follow)
		return;
	if (!j->consumer && j->loader) {
		int err = kg_events_wait_consumed(j->loader, 150);

		if (err && err != -ETIMEDOUT && err != -ENOENT)
			usleep(150 * 1000);	/* the ring cannot be seen: a fixed wait */
	}
	kg_follow_poll(j->follow);
}

static void job_cleanup(struct job *j)
{
	struct kg_readers_wait readers = {};
	int retired = -1;

	if (j->started && !j->jp.released)
		kg_launch_abort(&j->jp);
	kg_hold_free(j->hold);	/* anything still held is refused */
	kg_pty_close(&j->pty);	/* the user's terminal as it was */
	kg_policy_free(j->pushed);
	if (j->started && j->jp.notify_fd >= 0)
		close(j->jp.notify_fd);
	if (j->have_cg)
		kg_cgroup_kill(&j->cg);
	kg_resolver_halt(j->dns);	/* a query being answered finishes first */
	kgj_drain_dns(j);			/* so its record reaches the trail */
	kg_resolver_stop(j->dns);	/* its redirect and everything the job learnt */
	kg_policy_free(j->dns_doc);
	if (j->consumer)
		kg_consumer_drain(j->consumer);
	if (j->links_attached)
		kg_loader_detach_cgroup(j->cg.id);
	if (j->job_registered)
		kg_maps_remove_job(j->loader, j->cg.id);
	/* a job that ended early: its folded decisions, now that none can come */
	if (j->job_registered && !j->residues_recorded)
		kg_record_fold_residue(j->audit, j->loader, j->cg.id, j->job_id);
	/* no hook can newly read the job's generations: they are retired
	 * (push.h), and deleted after a grace period by whoever sweeps next;
	 * the exit that finds enough of them retired sweeps them all, its
	 * grace period passing while the rest is closed.  When they cannot be
	 * retired, they go here after one. */
	if (j->policy_id && j->loader) {
		retired = kg_push_retire_generations(j->loader, j->trace, j->policy_id);
		if (retired < 0)
			kg_maps_wait_readers_start(&readers);
		if ((retired < 0 || retired >= KG_RETIRED_SWEEP) && !j->sweep.n)
			kg_push_sweep_start(&j->sweep);
	}
	if (j->have_cg)
		kg_cgroup_destroy(&j->cg);
	if (j->started)
		kg_launch_release(&j->jp);
	kg_consumer_close(j->consumer);
	kg_approvals_close(j->approvals);
	kg_follow_close(j->follow);
	kg_landlock_plan_free(j->ll);
	kg_kaudit_close(j->ka);
	kg_audit_close(j->audit);
	/* every generation the job ran under, pushed ones included */
	if (j->policy_id && j->loader && retired < 0)
		kg_push_release_generations_after(j->loader, j->trace, j->policy_id, &readers);
	kg_push_sweep_finish(j->loader, &j->sweep);
	if (j->in_registry)
		kg_registry_remove(j->trace);
	kg_loader_close(j->loader);
	json_decref(j->unenforced);
	kg_policy_free(j->doc);
	free(j->home);
}

static void report_exit(struct job *j, const struct kg_exit_info *xi)
{
	unsigned long refused = 0, audited = 0;
	struct kg_rec rec;
	char what[64];
	json_t *extra;

	if (xi->timed_out)
		snprintf(what, sizeof(what), "killed at max runtime");
	else if (xi->signal)
		snprintf(what, sizeof(what), "killed by signal %d", xi->signal);
	else
		snprintf(what, sizeof(what), "exited with %d", xi->code);
	extra = json_pack("{s:i,s:i,s:b,s:i}", "exit_code", xi->code, "signal", xi->signal,
			  "timed_out", xi->timed_out, "kgate_exit", xi->exit_code);
	if (extra && j->spec->attempt > 1)
		json_object_set_new(extra, "attempt", json_integer(j->spec->attempt));
	kgj_job_rec(j, &rec, "job_exit");
	kg_rec_str(&rec, "op", "exit");
	kg_rec_str(&rec, "target", j->spec->argv[0]);
	kg_rec_str(&rec, "reason", what);
	kg_rec_extra(&rec, extra);
	kgj_job_record(j, &rec);
	json_decref(extra);
	if (!j->spec->live)
		return;
	kg_follow_counts(j->follow, &refused, &audited);
	fprintf(j->spec->live, "kgate: job %s %s; %lu actions refused, %lu audited; "
		"timeline: kgate audit timeline %s\n", j->trace, what, refused, audited, j->trace);
}

/* What a job needs from the machine before anything starts, each missing
 * piece said in one line with its fix (chroots and containers often lack
 * them). */
static int preflight(void)
{
	if (access("/proc/self/mountinfo", R_OK))
		return kg_err("run: /proc is not mounted (no /proc/self/mountinfo): mount it "
			      "(mount -t proc proc /proc; in a chroot, bind the host's /proc)"),
		       KG_EXIT_FAIL;
	if (!kg_cgroup2_mount())
		return kg_err("run: no cgroup2 mount is visible in /proc/self/mountinfo: mount one "
			      "(mount -t cgroup2 none /sys/fs/cgroup), or in a chroot or container "
			      "bind the host's /sys with its submounts (mount --rbind /sys ROOT/sys)"),
		       KG_EXIT_FAIL;
	return 0;
}

/* '~' in the policy is the home of the user the job runs as: --home DIR,
 * else when the job runs as another user than kgate's (--as, sudo/pkexec/
 * doas, a dispatcher naming the user) that user's home from the password
 * database, never the controller's $HOME, else $HOME.  The job's $HOME follows, unless it is $HOME already. */
static int job_home(struct job *j)
{
	const char *h = NULL;
	struct passwd *pw;

	if (j->spec->home) {
		h = j->spec->home;
		j->home_why = "--home";
		j->set_home = true;
	} else if (j->spec->have_as && j->spec->as_uid != getuid()) {
		pw = getpwuid(j->spec->as_uid);
		if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/') {
			/* a policy without '~' runs; one using it is refused with
			 * its line (a dispatched job's uid may have no passwd entry) */
			j->no_home = true;
			return 0;
		}
		h = pw->pw_dir;
		j->home_why = "the run-as user's home";
		j->set_home = true;
	} else {
		h = getenv("HOME");
		j->home_why = "$HOME";
		if (!h || h[0] != '/')
			return 0;	/* a policy using '~' is then refused with its line */
	}
	j->home = strdup(h);
	return j->home ? 0 : KG_EXIT_FAIL;
}

int kg_job_run(const struct kg_job_spec *spec)
{
	struct kg_admission_result adm = {};
	struct kg_policy_error perr = {};
	struct kg_exit_info xi = {};
	char pathbuf[PATH_MAX], msg[1024];
	const char *policy = spec->policy_path;
	struct job j = { .spec = spec };
	bool timed_out = false;
	int rc;

	if (!policy)
		policy = kg_default_policy_path(pathbuf, sizeof(pathbuf));
	if (!policy)
		return kg_err("run: no policy given and no default policy found (use --policy)"),
		       KG_EXIT_USAGE;
	rc = job_home(&j);
	if (rc)
		return rc;
	j.doc = kg_policy_load_file(policy, j.home ? j.home : j.no_home ? "" : NULL, &perr);
	if (!j.doc) {
		kg_policy_error_format(&perr, msg, sizeof(msg));
		kg_err("%s", msg);
		free(j.home);
		return KG_EXIT_POLICY;
	}
	rc = preflight();
	if (rc) {
		kg_policy_free(j.doc);
		free(j.home);
		return rc;
	}
	j.unenforced = json_array();
	if (spec->job_id)
		j.job_id = spec->job_id;	/* the dispatcher named the trace in advance */
	else if (getrandom(&j.job_id, sizeof(j.job_id), 0) != sizeof(j.job_id))
		j.job_id = kg_now_real_ns() ^ ((uint64_t)getpid() << 32);
	kg_trace_id(j.job_id, j.trace, sizeof(j.trace));
	j.audit = kg_audit_open(NULL, NULL);
	if (!j.audit) {
		rc = KG_EXIT_FAIL;
		kg_err("run: cannot open the audit trail in %s", kg_audit_dir());
		goto out;
	}
	{
		struct kg_admit admit = {
			.doc = j.doc, .spec = spec, .audit = j.audit, .trace = j.trace,
			.interrupted = &pending_signal,
		};

		catch_signals();	/* Ctrl-C while waiting for an approval */
		rc = kg_admit(&admit, &adm);
		kg_approvals_close(admit.approvals);
		if (rc)
			goto out;
	}
	/* the admission record written now: the trail's sync thread starts
	 * and syncs it while the kernel side is prepared, and is idle again
	 * when the job's first process is forked (quiesce_trail) */
	kg_audit_flush(j.audit);
	rc = kgj_prepare_kernel(&j);
	if (rc)
		goto out_fail;
	/* without a daemon, nobody else finishes jobs whose kgate run died */
	kg_reap_orphans(j.loader, j.audit, "a later kgate run");
	try_consume(&j);
	rc = kgj_start_child(&j, &adm.constraints);
	if (rc)
		goto out_fail;
	supervise(&j, adm.constraints.max_runtime_sec, &timed_out);
	rc = kg_launch_wait(&j.jp, 0, &xi);
	if (rc) {
		rc = kg_err("run: waiting for the job failed: %s", strerror(-rc));
		goto out_fail;
	}
	xi.timed_out = timed_out;
	if (timed_out)
		xi.exit_code = 128 + SIGKILL;
	/* the job ends with its main process: stray children go too */
	kg_cgroup_kill(&j.cg);
	kg_pty_close(&j.pty);	/* its last output, then the user's terminal as it was */
	if (j.consumer)
		kg_consumer_drain(j.consumer);
	/* throttle refusals after the kernel's last once-a-second report, and
	 * decisions folded after their key's last event: recorded once no task
	 * of the job is left to add to them (the live view counts them) */
	wait_cgroup_empty(&j.cg, 1000);
	kg_record_job_residues(j.audit, j.loader, j.cg.id, j.job_id);
	j.residues_recorded = true;
	kgj_finish_kernel_log(&j);
	finish_live_view(&j);
	report_exit(&j, &xi);
	rc = xi.exit_code;
	goto out;
out_fail:
	if (rc < 0 || rc == KG_EXIT_FAIL)
		rc = KG_EXIT_FAIL;
out:
	job_cleanup(&j);
	return rc;
}
