// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * probe.bpf.c - the smallest object that proves what the kernel can do.
 *
 * `kgate doctor` loads it to find out, for real, whether BPF LSM programs
 * load and attach (probe_file_open) and whether cgroup-BPF programs attach
 * (probe_connect4).  The VM smoke test uses it end to end: a task in the
 * target cgroup opening the target inode gets EPERM, and the denial arrives
 * through the ring buffer.
 *
 * Deliberately independent of kgate's shared maps: nothing is pinned, so a
 * probe never touches (or is confused by) a running controller's state.
 * The event layout is struct kg_probe_event in kgate.h (sizes asserted
 * there); nothing else of kgate.h is used.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "kgate.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PROBE_EPERM 1

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 4096);
} probe_events SEC(".maps");

/* Set by userspace after load; all zero means "deny nothing". */
__u64 target_cgid;
__u64 target_dev;
__u64 target_ino;
/* denials decided / events the ring buffer could not take */
__u64 denied;
__u64 lost;

SEC("lsm/file_open")
int BPF_PROG(probe_file_open, struct file *file, int ret)
{
	struct kg_probe_event *e;
	struct inode *inode;
	__u64 pid_tgid;

	if (ret)
		return ret;
	if (!target_cgid || bpf_get_current_cgroup_id() != target_cgid)
		return 0;
	inode = file->f_inode;
	if (!inode || inode->i_ino != target_ino || inode->i_sb->s_dev != target_dev)
		return 0;

	/* decide first: the denial never depends on the ring buffer */
	__sync_fetch_and_add(&denied, 1);
	e = bpf_ringbuf_reserve(&probe_events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&lost, 1);
		return -PROBE_EPERM;
	}
	pid_tgid = bpf_get_current_pid_tgid();
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->cgid = target_cgid;
	e->dev = target_dev;
	e->ino = target_ino;
	bpf_ringbuf_submit(e, 0);
	return -PROBE_EPERM;
}

/* Allows everything: it only proves that cgroup-BPF attach works. */
SEC("cgroup/connect4")
int probe_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}
