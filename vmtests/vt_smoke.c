// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_smoke.c - the VM suite works end to end.
 *
 * Inside the guest (config "full"): load bpf/probe.bpf.c, create a cgroup,
 * move a forked child into it; the child's open() of a file gets EPERM from
 * the LSM program while the parent (outside the cgroup) still opens it, and
 * the denial arrives through the ring buffer with the child's pid and the
 * file's inode.  In config "nobpf" the BPF LSM is not active: SKIP.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include <bpf/libbpf.h>

#include "job/cgroup.h"
#include "kernel/doctor.h"
#include "probe.skel.h"
#include "testlib.h"

struct seen {
	struct kg_probe_event ev;
	int n;
};

static int on_event(void *ctx, void *data, size_t len)
{
	struct seen *s = ctx;

	if (len >= sizeof(s->ev)) {
		memcpy(&s->ev, data, sizeof(s->ev));
		s->n++;
	}
	return 0;
}

static void need_full_config(void)
{
	const char *cfg = getenv("KGATE_VM_CONFIG");

	if (!cfg)
		SKIP("not in the VM suite (KGATE_VM_CONFIG unset)");
	if (strcmp(cfg, "full"))
		SKIP("config %s: BPF LSM is not active", cfg);
}

/* Child: wait until the parent has moved us, then report open()'s errno. */
static void child_open(int go_fd, const char *file)
{
	char c;
	int fd;

	if (read(go_fd, &c, 1) != 1)
		_exit(100);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		_exit(0);
	}
	_exit(errno > 0 && errno < 100 ? errno : 101);
}

TEST(smoke_lsm_denies_in_cgroup_and_reports_via_ringbuf)
{
	char dir[] = "/tmp/vt_smoke.XXXXXX", file[64], cgdir[4200], procs[4300], pidbuf[32];
	const char *cg2 = kg_cgroup2_mount();
	struct seen seen = { 0 };
	struct probe_bpf *skel;
	struct ring_buffer *rb;
	struct bpf_link *link;
	uint64_t cgid = 0;
	struct stat st, cgst;
	int pipefd[2], fd, status = 0;
	pid_t pid;

	need_full_config();
	ASSERT_TRUE(cg2 != NULL, "cgroup2 mounted");
	ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(file, sizeof(file), "%s/secret.txt", dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	ASSERT_TRUE(fd >= 0 && write(fd, "s3cret\n", 7) == 7 && fstat(fd, &st) == 0, "create file");
	close(fd);

	snprintf(cgdir, sizeof(cgdir), "%s/vt_smoke.XXXXXX", cg2);
	ASSERT_TRUE(mkdtemp(cgdir) != NULL, "create cgroup");
	ASSERT_OK(stat(cgdir, &cgst), "stat cgroup");
	ASSERT_OK(kg_cgroup_id_of_path(cgdir, &cgid), "cgroup id");

	skel = probe_bpf__open_and_load();
	if (!ASSERT_TRUE(skel != NULL, "probe object loads"))
		goto out_cg;
	skel->bss->target_cgid = cgid;
	skel->bss->target_dev = kg_kernel_dev(st.st_dev);
	skel->bss->target_ino = st.st_ino;
	link = bpf_program__attach_lsm(skel->progs.probe_file_open);
	if (!ASSERT_TRUE(link != NULL, "lsm/file_open attaches"))
		goto out_skel;
	rb = ring_buffer__new(bpf_map__fd(skel->maps.probe_events), on_event, &seen, NULL);
	ASSERT_TRUE(rb != NULL, "ring buffer");

	ASSERT_OK(pipe(pipefd), "pipe");
	pid = fork();
	if (pid == 0) {
		close(pipefd[1]);
		child_open(pipefd[0], file);
	}
	close(pipefd[0]);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgdir);
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	fd = open(procs, O_WRONLY | O_CLOEXEC);
	ASSERT_TRUE(fd >= 0 && write(fd, pidbuf, strlen(pidbuf)) > 0, "move child into the cgroup");
	if (fd >= 0)
		close(fd);
	ASSERT_EQ(write(pipefd[1], "g", 1), 1, "release child");
	close(pipefd[1]);
	ASSERT_EQ(waitpid(pid, &status, 0), pid, "wait child");
	ASSERT_TRUE(WIFEXITED(status), "child exited");
	ASSERT_EQ(WEXITSTATUS(status), EPERM, "child in the cgroup gets EPERM");

	/* outside the cgroup the same file still opens */
	fd = open(file, O_RDONLY | O_CLOEXEC);
	ASSERT_TRUE(fd >= 0, "parent outside the cgroup opens the file");
	if (fd >= 0)
		close(fd);

	if (rb) {
		ASSERT_GE(ring_buffer__poll(rb, 1000), 0, "poll");
		ASSERT_EQ(seen.n, 1, "exactly one denial event");
		ASSERT_EQ(seen.ev.pid, pid, "event pid is the child");
		ASSERT_EQ(seen.ev.ino, st.st_ino, "event inode is the file");
		ASSERT_EQ(seen.ev.cgid, cgid, "event cgroup");
		ring_buffer__free(rb);
	}
	ASSERT_EQ(skel->bss->denied, 1, "one denial counted");
	ASSERT_EQ(skel->bss->lost, 0, "no event lost");
	bpf_link__destroy(link);
out_skel:
	probe_bpf__destroy(skel);
out_cg:
	if (rmdir(cgdir))
		printf("  rmdir %s: %s\n", cgdir, strerror(errno));
	unlink(file);
	rmdir(dir);
}

TEST(smoke_detached_program_denies_nothing)
{
	char dir[] = "/tmp/vt_smoke.XXXXXX", file[64];
	struct probe_bpf *skel;
	struct bpf_link *link;
	uint64_t cgid = 0;
	struct stat st;
	char rel[4096], path[8192];
	int fd;

	need_full_config();
	ASSERT_TRUE(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(file, sizeof(file), "%s/f", dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	ASSERT_TRUE(fd >= 0 && fstat(fd, &st) == 0, "create file");
	close(fd);
	ASSERT_OK(kg_cgroup_of_pid(0, rel, sizeof(rel)), "own cgroup");
	snprintf(path, sizeof(path), "%s%s", kg_cgroup2_mount(), rel);
	ASSERT_OK(kg_cgroup_id_of_path(path, &cgid), "own cgroup id");

	skel = probe_bpf__open_and_load();
	if (!ASSERT_TRUE(skel != NULL, "load"))
		return;
	skel->bss->target_cgid = cgid;
	skel->bss->target_dev = kg_kernel_dev(st.st_dev);
	skel->bss->target_ino = st.st_ino;
	link = bpf_program__attach_lsm(skel->progs.probe_file_open);
	ASSERT_TRUE(link != NULL, "attach");
	ASSERT_ERRNO(open(file, O_RDONLY), EPERM, "attached: our own open is denied");
	bpf_link__destroy(link);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	ASSERT_TRUE(fd >= 0, "detached: the same open works again");
	if (fd >= 0)
		close(fd);
	probe_bpf__destroy(skel);
	unlink(file);
	rmdir(dir);
}
