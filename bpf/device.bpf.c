// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * device.bpf.c - no governed task reads, writes or creates a block device.
 *
 * A root job may open /dev/sda (or a node it finds elsewhere) with nothing
 * more than the file mode: reading the raw disk reads every file on it,
 * the ones its policy denies included, and writing it changes them without
 * any file hook seeing a path.  Attached to each job's cgroup like the
 * network programs, so it works in full and degraded mode alike, for
 * `kgate run` jobs and cgroups `kgate govern` put under a policy.  The
 * device cgroup check runs before any LSM hook, so these refusals are not
 * recorded one by one (docs/design.md, "Escapes by proxy").  No policy
 * field lifts it.  Character devices are left to their own checks (/dev/mem
 * and /dev/port want sys_rawio, which a job does not have).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KG_DEVCG_DEV_BLOCK	1	/* BPF_DEVCG_DEV_BLOCK */

SEC("cgroup/dev")
int kg_device(struct bpf_cgroup_dev_ctx *ctx)
{
	return (ctx->access_type & 0xffff) == KG_DEVCG_DEV_BLOCK ? 0 : 1;
}
