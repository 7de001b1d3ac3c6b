// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_protect - self-protection through BPF LSM: a governed task cannot use
 * bpf(2) (so kgate's maps are out of reach), ptrace or read the memory of a
 * process outside its job, signal outside its job, mount, create a user
 * namespace, load a module, or move itself out of its cgroup, or reach
 * kgate's own pins, state and audit trail; inside its job it still may
 * ptrace and signal, and create and enter child cgroups.
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <linux/bpf.h>
#include "testlib.h"
#include "vt_lib.h"
#include "kernel/selfprotect.h"
#include <bpf/bpf.h>

static const char *policy =
	"{\"version\": 1, \"name\": \"vt-protect\","
	/* granted, so that mount and finit_module get past lsm/capable to the
	 * hooks tested here (vt_outside tests the capability refusals) */
	" \"system_access\": [\"sys_admin\", \"sys_module\"],"
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"no-ssh\", \"file\": {\"prefix\": \"~/.ssh/\", \"ops\": [\"read\"]}, \"decision\": \"deny\"}"
	" ]}";

static int setup(struct vt *v)
{
	char p[512];

	if (vt_setup(v, policy))
		return -1;
	if (!ASSERT_OK(vt_mkdirs(v, ".ssh"), "mkdir") ||
	    !ASSERT_OK(vt_write_file(vt_path(v, ".ssh/id_rsa", p, sizeof(p)), "K", 0600), "key") ||
	    vt_install(v)) {
		vt_teardown(v);
		return -1;
	}
	return 0;
}

static bool expect(struct vt *v, enum kg_op op)
{
	if (ASSERT_TRUE(vt_event(v, op, KG_DEC_DENY, "") != NULL, kg_op_name(op)))
		return true;
	vt_dump_events(v);
	return false;
}

static int do_bpf_map_get(struct vt *v, void *arg)
{
	union bpf_attr attr;
	long fd;

	(void)v; (void)arg;
	memset(&attr, 0, sizeof(attr));
	attr.map_id = 1;
	fd = syscall(SYS_bpf, BPF_MAP_GET_FD_BY_ID, &attr, sizeof(attr));
	if (fd >= 0)
		return close((int)fd), 0;
	return errno;
}

static int do_bpf_obj_get(struct vt *v, void *arg)
{
	union bpf_attr attr;
	char path[200];
	long fd;

	(void)v; (void)arg;
	snprintf(path, sizeof(path), "%s/kg_jobs", vt_g.pin);
	memset(&attr, 0, sizeof(attr));
	attr.pathname = (uintptr_t)path;
	fd = syscall(SYS_bpf, BPF_OBJ_GET, &attr, sizeof(attr));
	if (fd >= 0)
		return close((int)fd), 0;
	return errno;
}

TEST(bpf_syscall_refused)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, do_bpf_map_get, NULL)), "BPF_MAP_GET_FD_BY_ID");
	ASSERT_TRUE(vt_refused(vt_run(&v, do_bpf_obj_get, NULL)), "BPF_OBJ_GET of a pinned map");
	expect(&v, KG_OP_BPF);
	ASSERT_OK(vt_run_outside(&v, do_bpf_obj_get, NULL), "ungoverned: allowed");
	vt_teardown(&v);
}

static int ptrace_parent(struct vt *v, void *arg)
{
	pid_t target = *(pid_t *)arg;
	char buf[16], p[64];
	struct iovec local = { buf, sizeof(buf) }, remote = { (void *)v, sizeof(buf) };
	int fd;

	if (ptrace(PTRACE_ATTACH, target, NULL, NULL) == 0)
		return 900;
	if (!vt_refused(errno))
		return 901;
	if (process_vm_readv(target, &local, 1, &remote, 1, 0) >= 0)
		return 902;
	if (!vt_refused(errno))
		return 903;
	snprintf(p, sizeof(p), "/proc/%d/mem", (int)target);
	fd = open(p, O_RDONLY);
	if (fd >= 0)
		return close(fd), 904;
	return errno;
}

static int ptrace_own_child(struct vt *v, void *arg)
{
	int status;
	pid_t c;

	(void)v; (void)arg;
	c = fork();
	if (c == 0) {
		pause();
		_exit(0);
	}
	if (ptrace(PTRACE_ATTACH, c, NULL, NULL))
		return kill(c, SIGKILL), errno;
	waitpid(c, &status, 0);
	ptrace(PTRACE_DETACH, c, NULL, NULL);
	kill(c, SIGKILL);
	waitpid(c, &status, 0);
	return 0;
}

TEST(ptrace_outside_job_refused_inside_allowed)
{
	struct vt v;
	pid_t me = getpid();

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, ptrace_parent, &me)),
		    "ptrace, process_vm_readv, /proc/PID/mem of the parent");
	expect(&v, KG_OP_PTRACE);
	ASSERT_OK(vt_run(&v, ptrace_own_child, NULL), "ptrace within the job");
	vt_teardown(&v);
}

static int kill_target(struct vt *v, void *arg)
{
	(void)v;
	return VT_RC(kill(*(pid_t *)arg, 0));
}

static int kill_own(struct vt *v, void *arg)
{
	int status;
	pid_t c;

	(void)v; (void)arg;
	if (kill(getpid(), 0))
		return errno;
	c = fork();
	if (c == 0) {
		pause();
		_exit(0);
	}
	if (kill(c, SIGTERM))
		return errno;
	waitpid(c, &status, 0);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM ? 0 : 900;
}

TEST(signals_outside_job_refused)
{
	struct vt v;
	pid_t me = getpid(), init = 1;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, kill_target, &me)), "kill(parent, 0)");
	ASSERT_TRUE(vt_refused(vt_run(&v, kill_target, &init)), "kill(1, 0)");
	expect(&v, KG_OP_SIGNAL);
	ASSERT_OK(vt_run(&v, kill_own, NULL), "signals within the job");
	ASSERT_OK(vt_run_outside(&v, kill_target, &me), "ungoverned: allowed");
	vt_teardown(&v);
}

static int do_mount(struct vt *v, void *arg)
{
	(void)arg;
	return VT_RC(mount("tmpfs", v->home, "tmpfs", 0, NULL));
}

static int do_userns(struct vt *v, void *arg)
{
	(void)v; (void)arg;
	return VT_RC(unshare(CLONE_NEWUSER));
}

static int do_finit_module(struct vt *v, void *arg)
{
	char p[512];
	int fd, rc;

	(void)arg;
	fd = open(vt_path(v, ".ssh/id_rsa", p, sizeof(p)) , O_RDONLY);
	if (fd < 0)
		fd = open("/proc/self/exe", O_RDONLY);
	if (fd < 0)
		return 900;
	rc = (int)syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	return rc < 0 ? errno : 0;
}

TEST(mount_userns_module_refused)
{
	struct vt v;
	int rc;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, do_mount, NULL)), "mount");
	expect(&v, KG_OP_MOUNT);
	ASSERT_TRUE(vt_refused(vt_run(&v, do_userns, NULL)), "unshare(CLONE_NEWUSER)");
	expect(&v, KG_OP_USERNS);
	rc = vt_run(&v, do_finit_module, NULL);
	ASSERT_TRUE(vt_refused(rc), "finit_module");
	expect(&v, KG_OP_MODULE);
	rc = vt_run_outside(&v, do_finit_module, NULL);
	ASSERT_TRUE(!vt_refused(rc), "ungoverned: gets past the LSM (an invalid module)");
	printf("  ungoverned finit_module errno %d\n", rc);
	vt_teardown(&v);
}

static int write_root_procs(struct vt *v, void *arg)
{
	char p[4200], pid[32];
	int fd;
	ssize_t n;

	(void)v; (void)arg;
	snprintf(p, sizeof(p), "%s/cgroup.procs", kg_cgroup2_mount());
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	fd = open(p, O_WRONLY);
	if (fd < 0)
		return errno;
	n = write(fd, pid, strlen(pid));
	close(fd);
	return n < 0 ? errno : 0;
}

static int child_cgroup_then_read(struct vt *v, void *arg)
{
	char p[4200], pid[32];
	int fd;

	(void)arg;
	snprintf(p, sizeof(p), "%s/sub", v->cg.path);
	if (mkdir(p, 0755))
		return 900;
	snprintf(p, sizeof(p), "%s/sub/cgroup.procs", v->cg.path);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	fd = open(p, O_WRONLY);
	if (fd < 0)
		return 901;
	if (write(fd, pid, strlen(pid)) < 0)
		return close(fd), 902;
	close(fd);
	/* still governed in the child cgroup */
	fd = open(vt_path(v, ".ssh/id_rsa", p, sizeof(p)), O_RDONLY);
	if (fd >= 0)
		return close(fd), 903;
	return vt_refused(errno) ? 0 : 904;
}

static int write_own_limit(struct vt *v, void *arg)
{
	char p[4200];
	int fd;

	(void)arg;
	snprintf(p, sizeof(p), "%s/pids.max", v->cg.path);
	if (access(p, F_OK))
		snprintf(p, sizeof(p), "%s/cgroup.max.descendants", v->cg.path);
	fd = open(p, O_WRONLY);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

TEST(cgroup_escape_refused_children_allowed)
{
	struct vt v;

	if (setup(&v))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, write_root_procs, NULL)), "root cgroup.procs");
	expect(&v, KG_OP_CGROUP_ESCAPE);
	ASSERT_TRUE(vt_refused(vt_run(&v, write_own_limit, NULL)), "the job's own limits");
	ASSERT_OK(vt_run(&v, child_cgroup_then_read, NULL), "child cgroup inside the job");
	vt_teardown(&v);
}

/* ---- kgate's own state -------------------------------------------------------- */

struct state_act {
	const char *what;	/* "read", "append", "create", "unlink", ... */
	char path[256], path2[256];
};

static int do_state_act(struct vt *v, void *arg)
{
	const struct state_act *a = arg;
	int fd;

	(void)v;
	if (!strcmp(a->what, "read"))
		return (fd = open(a->path, O_RDONLY)) < 0 ? errno : (close(fd), 0);
	if (!strcmp(a->what, "append"))
		return (fd = open(a->path, O_WRONLY | O_APPEND)) < 0 ? errno : (close(fd), 0);
	if (!strcmp(a->what, "create"))
		return (fd = open(a->path, O_WRONLY | O_CREAT | O_EXCL, 0644)) < 0 ? errno
										   : (close(fd), 0);
	if (!strcmp(a->what, "list"))
		return (fd = open(a->path, O_RDONLY | O_DIRECTORY)) < 0 ? errno : (close(fd), 0);
	if (!strcmp(a->what, "unlink"))
		return VT_RC(unlink(a->path));
	if (!strcmp(a->what, "rmdir"))
		return VT_RC(rmdir(a->path));
	if (!strcmp(a->what, "mkdir"))
		return VT_RC(mkdir(a->path, 0755));
	if (!strcmp(a->what, "symlink"))
		return VT_RC(symlink("/etc/passwd", a->path));
	if (!strcmp(a->what, "mknod"))
		return VT_RC(mknod(a->path, S_IFIFO | 0600, 0));
	if (!strcmp(a->what, "truncate"))
		return VT_RC(truncate(a->path, 0));
	if (!strcmp(a->what, "chmod"))
		return VT_RC(chmod(a->path, 0666));
	if (!strcmp(a->what, "chown"))
		return VT_RC(chown(a->path, 65534, 65534));
	if (!strcmp(a->what, "rename"))
		return VT_RC(rename(a->path, a->path2));
	if (!strcmp(a->what, "link"))
		return VT_RC(link(a->path, a->path2));
	if (!strcmp(a->what, "connect")) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM, 0), rc;

		if (kg_strlcpy(sa.sun_path, a->path, sizeof(sa.sun_path)))
			return ENAMETOOLONG;
		rc = VT_RC(connect(s, (struct sockaddr *)&sa, sizeof(sa)));
		close(s);
		return rc;
	}
	if (!strcmp(a->what, "sendto")) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_DGRAM, 0), rc;

		if (kg_strlcpy(sa.sun_path, a->path, sizeof(sa.sun_path)))
			return ENAMETOOLONG;
		rc = VT_RC(sendto(s, "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa)));
		close(s);
		return rc;
	}
	return 999;
}

static struct state_act act(const char *what, const char *dir, const char *rel, const char *dir2,
			    const char *rel2)
{
	struct state_act a = { .what = what };

	if (kg_snprintf(a.path, sizeof(a.path), "%s%s%s", dir, rel ? "/" : "", rel ? rel : "") ||
	    (dir2 && kg_snprintf(a.path2, sizeof(a.path2), "%s%s%s", dir2, rel2 ? "/" : "",
				 rel2 ? rel2 : "")))
		a.what = "too long";
	return a;
}

/* Issue 10 §1 (full mode): whatever its policy (here: allow everything but
 * ~/.ssh), a governed task may not open, create, remove, rename, link,
 * truncate, chmod or chown anything under kgate's pin, state and audit
 * dirs, nor connect to a socket there, nor move the directories leading to
 * them; each refusal is a kgate_state event saying what was tried.
 * Outside the job all of it works; inside, the policy's own denial holds. */
TEST(kgate_state_refused_to_governed_tasks)
{
	char top[64] = "/tmp/kgvt-state.XXXXXX", state[128], audit[128], data[128], p[512];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct kg_sp_dirs dirs;
	struct state_act a;
	struct vt v;
	int srv = -1, dg = -1, rc, targets = 0;
	size_t i, j;

	if (setup(&v))
		return;
	ASSERT_TRUE(mkdtemp(top) != NULL, "mkdtemp");
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(audit, sizeof(audit), "%s/audit", top);
	snprintf(data, sizeof(data), "%s/data", top);
	setenv("KGATE_STATE_DIR", state, 1);
	setenv("KGATE_AUDIT_DIR", audit, 1);
	setenv("KGATE_DATA_DIR", data, 1);
	ASSERT_OK(kg_selfprotect_dirs(&dirs), "kgate's dirs");
	ASSERT_EQ(dirs.n, 4, "pins, state, audit, data");
	ASSERT_OK(kg_selfprotect_register(v.l, &dirs), "registered in kg_protected");
	snprintf(p, sizeof(p), "%s/plain", v.home);
	ASSERT_OK(vt_write_file(p, "plain", 0644), "a file of the job's");
	snprintf(p, sizeof(p), "%s/approvals/done", state);
	kg_mkdir_p(p, 0700);
	ASSERT_OK(mkdir(p, 0700) && errno != EEXIST ? -1 : 0, "queue");
	snprintf(p, sizeof(p), "%s/audit.key", audit);
	ASSERT_OK(vt_write_file(p, "secret key", 0600), "key");
	snprintf(p, sizeof(p), "%s/audit.jsonl", audit);
	ASSERT_OK(vt_write_file(p, "{}\n", 0600), "trail");
	snprintf(p, sizeof(p), "%s/api-tokens.json", data);
	ASSERT_OK(vt_write_file(p, "{\"tokens\":[]}\n", 0600), "the HTTP API's tokens");
	snprintf(p, sizeof(p), "%s/control.sock", state);
	kg_strlcpy(sa.sun_path, p, sizeof(sa.sun_path));
	srv = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT_OK(bind(srv, (struct sockaddr *)&sa, sizeof(sa)) || listen(srv, 4), "socket");
	snprintf(p, sizeof(p), "%s/dgram.sock", state);
	kg_strlcpy(sa.sun_path, p, sizeof(sa.sun_path));
	dg = socket(AF_UNIX, SOCK_DGRAM, 0);
	ASSERT_OK(bind(dg, (struct sockaddr *)&sa, sizeof(sa)), "datagram socket");
	{
		const struct state_act attacks[] = {
			act("read", audit, "audit.key", NULL, NULL),
			act("append", audit, "audit.jsonl", NULL, NULL),
			act("truncate", audit, "audit.jsonl", NULL, NULL),
			act("chmod", audit, "audit.key", NULL, NULL),
			act("chown", audit, "audit.key", NULL, NULL),
			act("unlink", audit, "audit.jsonl", NULL, NULL),
			act("link", audit, "audit.key", v.home, "key"),
			act("rename", audit, "audit.jsonl", v.home, "trail"),
			act("list", state, NULL, NULL, NULL),
			act("create", state, "approvals/done/0123456789ab.json", NULL, NULL),
			act("mkdir", state, "approvals/x", NULL, NULL),
			act("symlink", state, "approvals/done/0123456789ac.json", NULL, NULL),
			act("mknod", state, "fifo", NULL, NULL),
			act("rename", v.home, "plain", state, "approvals/y"),
			act("connect", state, "control.sock", NULL, NULL),
			act("sendto", state, "dgram.sock", NULL, NULL),
			act("unlink", vt_g.pin, "kg_jobs", NULL, NULL),
			act("rename", vt_g.pin, "kg_grants", vt_g.pin, "x"),
			act("rmdir", vt_g.pin, "links", NULL, NULL),
			act("rename", state, NULL, v.home, "state"),
			/* a token of its own would let the agent approve its requests */
			act("append", data, "api-tokens.json", NULL, NULL),
			act("read", data, "api-tokens.json", NULL, NULL),
			act("create", data, "api-tokens.json.tmp", NULL, NULL),
			act("rename", v.home, "plain", data, "api-tokens.json"),
			act("rename", top, NULL, v.home, "top"),	/* a directory leading to them */
			act("rmdir", top, NULL, NULL, NULL),
		};

		/* identical refusals (same op, same object) within KG_FOLD_NS fold
		 * into one event (issue 10 §5), whose rest is written at the job's
		 * end, which this in-process job has not: every object attacked has
		 * an event of its own at least */
		for (i = 0; i < ARRAY_SIZE(attacks); i++) {
			for (j = 0; j < i && strcmp(attacks[j].path, attacks[i].path); j++)
				;
			targets += j == i;
		}
		for (i = 0; i < ARRAY_SIZE(attacks); i++) {
			char what[600];

			a = attacks[i];
			rc = vt_run(&v, do_state_act, &a);
			snprintf(what, sizeof(what), "%s %s: refused (got %d)", a.what, a.path, rc);
			ASSERT_EQ(rc, EPERM, what);
		}
	}
	vt_drain(&v);
	{
		int n = 0, tried_read = 0;

		for (i = 0; i < (size_t)v.nevents; i++)
			if (v.events[i].op == KG_OP_KGATE_STATE && v.events[i].decision == KG_DEC_DENY) {
				n++;
				tried_read += v.events[i].aux == KG_OP_READ &&
					      strstr(v.events[i].path, "audit.key") != NULL;
			}
		ASSERT_GE(n, targets, "a kgate_state event per object refused");
		ASSERT_GE(tried_read, 1, "saying what was tried, on which file");
		if (kt_failed_here)
			vt_dump_events(&v);
	}
	/* the policy still decides the rest, its denial included */
	snprintf(p, sizeof(p), "%s/.ssh/id_rsa", v.home);
	a = act("read", p, NULL, NULL, NULL);
	ASSERT_EQ(vt_run(&v, do_state_act, &a), EPERM, "the policy's own denial holds");
	snprintf(p, sizeof(p), "%s/x", v.home);
	a = act("create", p, NULL, NULL, NULL);
	ASSERT_OK(vt_run(&v, do_state_act, &a), "and its allowances");
	a = act("chmod", top, NULL, NULL, NULL);
	ASSERT_OK(vt_run(&v, do_state_act, &a), "a directory leading to kgate's may be chmod'ed");
	/* kgate itself, outside any job: unaffected */
	a = act("read", audit, "audit.key", NULL, NULL);
	ASSERT_OK(vt_run_outside(&v, do_state_act, &a), "ungoverned: reads the key");
	a = act("connect", state, "control.sock", NULL, NULL);
	ASSERT_OK(vt_run_outside(&v, do_state_act, &a), "ungoverned: connects");
	close(srv);
	close(dg);
	{
		/* forget this test's directories (the loader outlives the test) */
		int fd = kg_loader_map_fd(v.l, "kg_protected");
		struct stat st;

		for (i = 1; i < dirs.n; i++)
			if (stat(dirs.path[i], &st) == 0) {
				struct kg_prot_key k = { kg_kernel_dev(st.st_dev), st.st_ino };

				bpf_map_delete_elem(fd, &k);
			}
	}
	kt_rm_tree(top);
	vt_teardown(&v);
}
