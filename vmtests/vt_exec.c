// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vt_exec - exec rules through BPF LSM: execve of a denied binary, and the
 * ways around it: ld.so /denied/prog, PROT_EXEC mappings and mprotect,
 * memfd_create + execveat (fileless), a copy in /dev/shm when the exec
 * default is deny.
 */
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "testlib.h"
#include "vt_lib.h"

static const char *policy_rules =
	"{\"version\": 1, \"name\": \"vt-exec\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"allow\", \"net\": \"allow\", \"unix\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"no-bin\", \"exec\": {\"prefix\": \"~/bin/\"}, \"decision\": \"deny\"}"
	" ]}";

/* exec default deny: only the helpers and the system libraries run */
static const char *policy_default_deny =
	"{\"version\": 1, \"name\": \"vt-exec-deny\","
	" \"runtime_defaults\": {\"file\": \"allow\", \"exec\": \"deny\", \"net\": \"allow\", \"unix\": \"allow\"},"
	" \"runtime\": ["
	"  {\"id\": \"helpers\", \"exec\": {\"prefix\": \"/opt/\"}, \"decision\": \"allow\"},"
	"  {\"id\": \"lib\", \"exec\": {\"prefix\": \"/lib/\"}, \"decision\": \"allow\"},"
	"  {\"id\": \"lib64\", \"exec\": {\"prefix\": \"/lib64/\"}, \"decision\": \"allow\"},"
	"  {\"id\": \"usr\", \"exec\": {\"prefix\": \"/usr/\"}, \"decision\": \"allow\"},"
	"  {\"id\": \"bin\", \"exec\": {\"prefix\": \"/bin/\"}, \"decision\": \"allow\"}"
	" ]}";

static char helper[PATH_MAX];

static int setup(struct vt *v, const char *policy)
{
	char p[512];

	vt_helper("lsm_exit42", helper, sizeof(helper));
	if (vt_setup(v, policy))
		return -1;
	if (!ASSERT_OK(vt_mkdirs(v, "bin"), "mkdir bin") ||
	    !ASSERT_OK(vt_copy(helper, vt_path(v, "bin/prog", p, sizeof(p)), 0755), "copy helper") ||
	    vt_install(v)) {
		vt_teardown(v);
		return -1;
	}
	return 0;
}

static int run_prog(struct vt *v, void *path)
{
	char *argv[] = { path, NULL };

	(void)v;
	return vt_spawn_wait(argv);
}

static int run_rel(struct vt *v, void *rel)
{
	char p[512];

	return run_prog(v, vt_path(v, rel, p, sizeof(p)));
}

TEST(exec_rule_denies_and_reports)
{
	struct vt v;
	const struct kg_event *e;
	int rc;

	if (setup(&v, policy_rules))
		return;
	ASSERT_EQ(vt_run(&v, run_prog, helper), 42, "the helper runs where it is");
	rc = vt_run(&v, run_rel, "bin/prog");
	ASSERT_TRUE(rc == 1000 + EPERM || rc == 1000 + EACCES, "execve of ~/bin/prog refused");
	e = vt_event(&v, KG_OP_EXEC, KG_DEC_DENY, "no-bin");
	if (ASSERT_TRUE(e != NULL, "exec deny event"))
		ASSERT_HAS_SUBSTR(e->path, "prog/bin/", "event path");
	else
		vt_dump_events(&v);
	ASSERT_EQ(vt_run_outside(&v, run_rel, "bin/prog"), 42, "ungoverned: runs");
	vt_teardown(&v);
}

static int via_ld_so(struct vt *v, void *arg)
{
	static const char *const ldsos[] = { "/lib64/ld-linux-x86-64.so.2",
					     "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
					     "/lib/ld-linux-aarch64.so.1", NULL };
	char p[512];
	int i;

	(void)arg;
	for (i = 0; ldsos[i]; i++) {
		char *argv[] = { (char *)ldsos[i], vt_path(v, "bin/prog", p, sizeof(p)), NULL };

		if (access(ldsos[i], X_OK) == 0)
			return vt_spawn_wait(argv);
	}
	return -5;
}

TEST(ld_so_loading_a_denied_binary)
{
	struct vt v;
	int rc;

	if (setup(&v, policy_rules))
		return;
	rc = vt_run(&v, via_ld_so, NULL);
	if (rc == -5) {
		vt_teardown(&v);
		SKIP("no dynamic loader found");
	}
	ASSERT_TRUE(rc != 42 && rc != -999, "ld.so could not map the denied program");
	printf("  ld.so exit %d\n", rc);
	ASSERT_TRUE(vt_event(&v, KG_OP_EXEC, KG_DEC_DENY, "no-bin") != NULL, "exec deny event (mmap)");
	ASSERT_EQ(vt_run_outside(&v, via_ld_so, NULL), 42, "ungoverned: ld.so runs it");
	vt_teardown(&v);
}

static int map_exec(struct vt *v, void *arg)
{
	char p[512];
	void *m;
	int fd;

	(void)arg;
	fd = open(vt_path(v, "bin/prog", p, sizeof(p)), O_RDONLY);
	if (fd < 0)
		return 900;	/* reading it is allowed: only exec is denied */
	m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	if (m != MAP_FAILED)
		return close(fd), 0;
	if (!vt_refused(errno))
		return close(fd), 901;
	m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return 902;
	if (mprotect(m, 4096, PROT_READ | PROT_EXEC) == 0)
		return 903;
	return errno;
}

TEST(prot_exec_mmap_and_mprotect)
{
	struct vt v;

	if (setup(&v, policy_rules))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, map_exec, NULL)), "PROT_EXEC mmap and mprotect refused");
	ASSERT_TRUE(vt_event(&v, KG_OP_EXEC, KG_DEC_DENY, "no-bin") != NULL, "event");
	ASSERT_OK(vt_run_outside(&v, map_exec, NULL), "ungoverned: mappable");
	vt_teardown(&v);
}

static int memfd_exec(struct vt *v, void *arg)
{
	char *argv[] = { "prog", NULL }, *envp[] = { NULL };
	int in, fd, status = 0;
	char buf[65536];
	ssize_t n;
	pid_t pid;

	(void)v; (void)arg;
	fd = (int)syscall(SYS_memfd_create, "kgvt", 0);
	in = open(helper, O_RDONLY);
	if (fd < 0 || in < 0)
		return 900;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(fd, buf, n) != n)
			return 901;
	close(in);
	pid = fork();
	if (pid == 0) {
		syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
		_exit(100 + (errno & 0x7f));
	}
	waitpid(pid, &status, 0);
	close(fd);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 42)
		return 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) - 100 : 902;
}

TEST(memfd_execveat_fileless)
{
	struct vt v;

	if (setup(&v, policy_rules))
		return;
	ASSERT_TRUE(vt_refused(vt_run(&v, memfd_exec, NULL)), "memfd + execveat refused");
	ASSERT_TRUE(vt_event(&v, KG_OP_EXEC, KG_DEC_DENY, NULL) != NULL, "event");
	ASSERT_OK(vt_run_outside(&v, memfd_exec, NULL), "ungoverned: runs");
	vt_teardown(&v);
}

static int shm_copy_exec(struct vt *v, void *arg)
{
	char p[64];
	int rc;

	(void)v; (void)arg;
	snprintf(p, sizeof(p), "/dev/shm/kgvt-%d", (int)getpid());
	if (vt_copy(helper, p, 0755))
		return 900;
	rc = run_prog(v, p);
	unlink(p);
	return rc;
}

TEST(exec_default_deny_dev_shm_copy)
{
	struct vt v;
	int rc;

	if (setup(&v, policy_default_deny))
		return;
	ASSERT_EQ(vt_run(&v, run_prog, helper), 42, "an allowed binary runs (with its libraries)");
	rc = vt_run(&v, shm_copy_exec, NULL);
	ASSERT_TRUE(rc == 1000 + EPERM || rc == 1000 + EACCES, "a copy in /dev/shm is refused");
	ASSERT_TRUE(vt_event(&v, KG_OP_EXEC, KG_DEC_DENY, "") != NULL, "class default event");
	rc = vt_run(&v, run_rel, "bin/prog");
	ASSERT_TRUE(rc == 1000 + EPERM || rc == 1000 + EACCES, "a copy in home is refused");
	vt_teardown(&v);
}
