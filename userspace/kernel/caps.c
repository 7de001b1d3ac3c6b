// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* caps.c - the capability bounding set of a governed job (caps.h). */
#include <errno.h>
#include <jansson.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "kernel/caps.h"

#define KEEP(n, nm, w) { n, nm, true, w }
#define DROP(n, nm, w) { n, nm, false, w }

/* Every capability the kernel headers of 6.x know.  Numbers are spelt out:
 * older headers lack the newest names. */
const struct kg_cap_info kg_caps[] = {
	KEEP(0, "chown", "chown files (install -o, tar -x as root)"),
	KEEP(1, "dac_override", "root's file access (the policy's file rules still decide)"),
	KEEP(2, "dac_read_search", "root's file reads (open_by_handle_at is refused by seccomp)"),
	KEEP(3, "fowner", "chmod/utimes on files of other owners"),
	KEEP(4, "fsetid", "keep set-id bits when writing"),
	KEEP(5, "kill", "signal other uids (full mode: only inside the job)"),
	KEEP(6, "setgid", "change gid (su, setpriv, test runners dropping privileges)"),
	KEEP(7, "setuid", "change uid (su, setpriv, test runners dropping privileges)"),
	KEEP(8, "setpcap", "drop capabilities further (sandboxes inside the job)"),
	DROP(9, "linux_immutable", "immutable and append-only flags on any file"),
	KEEP(10, "net_bind_service", "bind ports below 1024 (the net rules still decide)"),
	KEEP(11, "net_broadcast", "broadcast and multicast"),
	DROP(12, "net_admin", "interfaces, routes, firewall: the machine's network"),
	KEEP(13, "net_raw", "raw sockets (the policy's socket rules decide)"),
	KEEP(14, "ipc_lock", "mlock"),
	DROP(15, "ipc_owner", "System V IPC objects of processes outside the job"),
	DROP(16, "sys_module", "load and unload kernel modules, module autoload by name"),
	DROP(17, "sys_rawio", "raw block devices, /dev/mem, I/O ports"),
	DROP(18, "sys_chroot", "chroot"),
	DROP(19, "sys_ptrace", "ptrace processes of other uids"),
	DROP(20, "sys_pacct", "process accounting to a file"),
	DROP(21, "sys_admin", "mount, sethostname, swap, quotas, keyrings of others, most "
			      "kernel settings"),
	DROP(22, "sys_boot", "reboot, kexec"),
	DROP(23, "sys_nice", "real-time scheduling and priorities of other processes"),
	DROP(24, "sys_resource", "raise limits past the hard limit (kgate's rlimits)"),
	DROP(25, "sys_time", "the system clock"),
	DROP(26, "sys_tty_config", "vhangup, terminal configuration"),
	DROP(27, "mknod", "create device nodes (raw disks, /dev/mem)"),
	KEEP(28, "lease", "file leases"),
	KEEP(29, "audit_write", "write user records to the kernel audit log (login, sudo)"),
	DROP(30, "audit_control", "the kernel audit configuration"),
	DROP(31, "setfcap", "file capabilities, which processes outside the job would get"),
	DROP(32, "mac_override", "override the LSM policy"),
	DROP(33, "mac_admin", "change the LSM policy"),
	DROP(34, "syslog", "the kernel log"),
	DROP(35, "wake_alarm", "alarms that wake the machine"),
	DROP(36, "block_suspend", "keep the machine from suspending"),
	DROP(37, "audit_read", "read the kernel audit log"),
	DROP(38, "perfmon", "perf events of the whole machine"),
	DROP(39, "bpf", "BPF programs and maps"),
	DROP(40, "checkpoint_restore", "set pids, map files of other processes"),
};
const size_t kg_caps_len = ARRAY_SIZE(kg_caps);

const char *const kg_caps_ro_paths[] = { "/proc/sys", "/proc/sysrq-trigger", "/sys", NULL };

uint64_t kg_caps_kept(void)
{
	uint64_t m = 0;
	size_t i;

	for (i = 0; i < kg_caps_len; i++)
		if (kg_caps[i].kept)
			m |= 1ULL << kg_caps[i].num;
	return m;
}

int kg_cap_by_name(const char *name)
{
	size_t i;

	if (!name)
		return -1;
	if (!strncasecmp(name, "cap_", 4))
		name += 4;
	for (i = 0; i < kg_caps_len; i++)
		if (!strcasecmp(kg_caps[i].name, name))
			return kg_caps[i].num;
	return -1;
}

const struct kg_cap_info *kg_cap_info(int num)
{
	size_t i;

	for (i = 0; i < kg_caps_len; i++)
		if (kg_caps[i].num == num)
			return &kg_caps[i];
	return NULL;
}

int kg_caps_apply(uint64_t keep)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	uint64_t eff, perm, inh;
	int cap, ret;

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	eff = d[0].effective | (uint64_t)d[1].effective << 32;
	perm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	/* every capability the kernel has, those newer than this table too */
	for (cap = 0; cap < 64; cap++) {
		if (keep & (1ULL << cap))
			continue;
		ret = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (ret < 0)
			break;		/* EINVAL: past the last capability */
		if (ret == 0)
			continue;	/* not in the bounding set already */
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			/* no CAP_SETPCAP: only harmless if nothing can come back */
			if (errno != EPERM || geteuid() == 0 || getuid() == 0 ||
			    (perm & ~keep))
				return -errno;
			break;
		}
	}
	eff &= keep;
	perm &= keep;
	inh &= keep;
	d[0].effective = (uint32_t)eff;
	d[1].effective = (uint32_t)(eff >> 32);
	d[0].permitted = (uint32_t)perm;
	d[1].permitted = (uint32_t)(perm >> 32);
	d[0].inheritable = (uint32_t)inh;
	d[1].inheritable = (uint32_t)(inh >> 32);
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

json_t *kg_caps_json(uint64_t grant, int full)
{
	json_t *g = json_array(), *d = json_array(), *k = json_array(), *o;
	size_t i;

	for (i = 0; i < kg_caps_len; i++) {
		json_t *to = kg_caps[i].kept ? k : (grant & (1ULL << kg_caps[i].num)) ? g : d;

		json_array_append_new(to, json_string(kg_caps[i].name));
	}
	o = json_pack("{s:o,s:o,s:o}", "granted", g, "dropped", d, "kept", k);
	if (o && full >= 0) {
		json_object_set_new(o, "capabilities", json_string(full ? "bpf-lsm (capable)"
								   : "bounding set"));
		json_object_set_new(o, "settings", json_string(full ? "bpf-lsm (file_open)"
								: "mount-ns (read-only)"));
		json_object_set_new(o, "block_devices", json_string("cgroup-bpf (device)"));
	}
	return o;
}
