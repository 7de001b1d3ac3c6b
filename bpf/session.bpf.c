// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * session.bpf.c - signals a job sends through a file's owner (full mode only).
 *
 * F_SETOWN (or F_SETOWN_EX) names a process to signal when I/O is possible
 * on a file; with O_ASYNC the kernel then sends SIGIO, or the signal
 * F_SETSIG chose (SIGKILL included), and SIGURG for sockets, to that
 * process.  No task_kill hook sees these signals, so a job could stop or
 * kill kgate's controller, or any process of its user (root: any process).
 *
 *   file_set_fowner       a governed task sets a file's owner: the file
 *                         remembers the job (kg_fown_jobs); anyone else
 *                         setting it makes the file forget
 *   file_send_sigiotask   a signal from such a file to a task outside that
 *                         job: refused (KG_OP_SIGNAL, aux = the signal,
 *                         target = the pid), whoever's I/O triggered it
 *   file_free_security    the file is gone: forget it
 *
 * Within the job these signals work as before.  In degraded mode Landlock's
 * signal scoping (ABI 6+) covers the same path (hook_file_send_sigiotask).
 * Known limit: when kg_fown_jobs is full a new owner is not remembered (the
 * hook cannot refuse F_SETOWN): counted as an event lost of kind decision.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);		/* the file's struct fown_struct * */
	__type(value, __u64);		/* cgroup id of the job that set its owner */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_fown_jobs SEC(".maps");

/* A pointer as a plain number (a map key), not a pointer the verifier
 * tracks: read through a helper. */
static __always_inline __u64 kg_ptr_key(const void *p)
{
	__u64 key = 0;

	bpf_probe_read_kernel(&key, sizeof(key), &p);
	return key;
}

/* The key of a file's owner record: its fown_struct's address (6.1: inside
 * struct file; 6.12+: a struct of its own that struct file points to). */
struct file___embedded_fown {	/* before 6.12: struct fown_struct f_owner; */
	struct fown_struct f_owner;
} __attribute__((preserve_access_index));

static __always_inline __u64 kg_fown_key(struct file *file)
{
	if (bpf_core_field_exists(((struct fown_struct *)0)->file))
		return kg_ptr_key(BPF_CORE_READ(file, f_owner));
	return kg_ptr_key(file) + bpf_core_field_offset(struct file___embedded_fown, f_owner);
}

SEC("lsm/file_set_fowner")
int BPF_PROG(kg_file_set_fowner, struct file *file)
{
	__u64 key = kg_fown_key(file);
	struct kg_counters *cnt;
	struct kg_ctx c;

	if (kg_ctx_init(&c, KG_OP_SIGNAL, KG_MECH_BPF_LSM)) {
		bpf_map_delete_elem(&kg_fown_jobs, &key);
		return 0;
	}
	if (bpf_map_update_elem(&kg_fown_jobs, &key, &c.cgid, BPF_ANY)) {
		cnt = kg_counters_get();
		if (cnt)
			__sync_fetch_and_add(&cnt->events_lost[KG_EV_DECISION], 1);
	}
	return 0;
}

SEC("lsm/file_send_sigiotask")
int BPF_PROG(kg_file_send_sigiotask, struct task_struct *tsk, struct fown_struct *fown, int sig,
	     int ret)
{
	__u64 key = kg_ptr_key(fown), *cgid;
	struct kg_event *e;
	struct kg_ctx c;

	if (ret)
		return ret;
	cgid = bpf_map_lookup_elem(&kg_fown_jobs, &key);
	if (!cgid || kg_task_in_job(tsk, *cgid))
		return 0;
	/* recorded when the task whose I/O raised it is in a job (usually the
	 * job itself); refused in every case */
	if (!kg_ctx_init(&c, KG_OP_SIGNAL, KG_MECH_BPF_LSM)) {
		kg_decide_refusal(&c);
		c.target.file.ino = BPF_CORE_READ(tsk, tgid);
		c.aux = (__u32)sig;
		e = kg_event_begin(&c);
		if (e)
			kg_event_submit(e);
	}
	return -EPERM;
}

SEC("lsm/file_free_security")
int BPF_PROG(kg_file_free_security, struct file *file)
{
	__u64 key = kg_fown_key(file);

	bpf_map_delete_elem(&kg_fown_jobs, &key);
	return 0;
}
