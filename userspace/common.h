/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* common.h - logging, paths and small helpers shared by every module. */
#ifndef KGATE_COMMON_H
#define KGATE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Global output settings, set from the command line. */
struct kg_env {
	bool verbose;
	bool json;		/* --json: machine-readable output */
};
extern struct kg_env kg_env;

/* Messages: lowercase, no trailing period, subsystem prefix ("policy: ...").
 * kg_err() prints {"error": ...} in JSON mode. Both return -1 for chaining. */
int kg_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kg_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Locations; each can be overridden by an environment variable so tests run
 * in directories they created (KGATE_BPFFS, KGATE_STATE_DIR, KGATE_AUDIT_DIR,
 * KGATE_DATA_DIR). */
const char *kg_pin_dir(void);		/* default /sys/fs/bpf/kgate/<abi id> */
const char *kg_state_dir(void);		/* default /run/kgate */
const char *kg_audit_dir(void);		/* default /var/log/kgate */
const char *kg_data_dir(void);		/* default /var/lib/kgate: what outlives a
					 * reboot (the HTTP API's tokens) */
const char *kg_socket_path(void);	/* $state_dir/control.sock */

/* Safe string helpers. */
int kg_strlcpy(char *dst, const char *src, size_t size);	/* -1 if truncated */
int kg_snprintf(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));			/* -1 if truncated */

/* Lowercase hex: encode len bytes into out (2 * len + 1 chars, NUL-ended);
 * decode exactly 2 * len lowercase hex digits (s NULL, another length or
 * another character: -EINVAL). */
void kg_hex_encode(const void *data, size_t len, char *out);
int kg_hex_decode(const char *s, void *out, size_t len);
/* /proc/self/mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo: undo it
 * in place (anything else, a lone or short '\' too, stays as it is). */
void kg_mountinfo_unescape(char *s);

/* Room for element n of a growing array v of *cap elements of elem bytes:
 * v itself while n < *cap, else v reallocated to twice *cap (first_cap the
 * first time) with *cap updated; NULL (v and *cap untouched) when out of
 * memory. */
void *kg_grow(void *v, size_t *cap, size_t n, size_t elem, size_t first_cap);

/* mkdir -p with mode; 0 or -errno. */
int kg_mkdir_p(const char *path, unsigned int mode);

/* Read a whole (small) file; NUL-terminated; caller frees. NULL + errno. */
char *kg_read_file(const char *path, size_t max, size_t *len_out);
/* Same for a regular file only: anything else (a FIFO, a device, a
 * directory) is refused with EINVAL without blocking. */
char *kg_read_regular_file(const char *path, size_t max, size_t *len_out);
/* read(2) / write(2) until all len bytes are done, EINTR and short counts
 * retried: 0, or -errno (-EIO: the file ended, or write(2) wrote nothing,
 * before len bytes). */
int kg_read_full(int fd, void *buf, size_t len);
int kg_write_full(int fd, const void *buf, size_t len);
/* Write a string to an existing file (sysfs/cgroupfs); 0 or -errno. */
int kg_write_file(const char *path, const char *s);

/* Clocks. */
uint64_t kg_now_mono_ns(void);	/* CLOCK_MONOTONIC, same clock as bpf_ktime_get_ns */
uint64_t kg_now_real_ns(void);	/* CLOCK_REALTIME */

/* FNV-1a 64 over bytes, identical to the BPF side's kg_hash_bytes(). */
uint64_t kg_hash_bytes(const void *data, size_t len);

/* argv joined with spaces (for messages and records); caller frees. */
char *kg_join_argv(char *const *argv);

/* Userspace st_dev -> the kernel's s_dev encoding (MAJOR << 20 | MINOR)
 * that BPF programs read from inode->i_sb->s_dev. */
uint64_t kg_kernel_dev(uint64_t st_dev);

#endif
