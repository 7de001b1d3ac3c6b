// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_protect - self-protection through BPF LSM: a governed task cannot use
 * bpf(2) (so kgate's maps are out of reach), ptrace or read the memory of a
 * process outside its job, signal outside its job, mount, create a user
 * namespace, load a module, or move itself out of its cgroup; inside its
 * job it still may ptrace and signal, and create and enter child cgroups.
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/bpf.h>
#include "testlib.h"
#include "vt_lib.h"

static const char *policy =
	"{\"version\": 1, \"name\": \"vt-protect\","
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
