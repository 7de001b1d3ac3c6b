/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * mntns.h - the job's own mount namespace (degraded mode).
 *
 * The launched child unshares its mount namespace and changes mounts in it
 * (a read-only cgroupfs, ...).  Those changes must not propagate back to
 * the machine, so every mount the child can see becomes a slave first.
 * Where / is not a mount point (a chroot, some containers), "mount --make-
 * rslave /" fails with EINVAL; the visible mount points are then made
 * slaves one by one.  Only syscalls and a read of /proc/self/mountinfo
 * (no allocation): safe in the forked child.
 */
#ifndef KGATE_MNTNS_H
#define KGATE_MNTNS_H

/* 0 or -errno. */
int kg_mntns_make_slave(void);

#endif
