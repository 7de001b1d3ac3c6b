// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* common.c - logging, paths and small helpers shared by every module. */
#include "common.h"
#include "record/journal.h"
#include <linux/types.h>
#include "kgate.h"
#include "kg_abi.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

struct kg_env kg_env;

/* prio: the syslog priority, written as "<N>" in front when stderr is
 * systemd's journal (record/journal.h) */
static void vlog(FILE *f, int prio, const char *prefix, const char *fmt, va_list ap)
{
	if (f == stderr && kg_journal_stderr())
		fprintf(f, "<%d>", prio);
	fputs(prefix, f);
	vfprintf(f, fmt, ap);
	fputc('\n', f);
}

int kg_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (kg_env.json) {
		char buf[1024];
		json_t *o;
		char *s;

		vsnprintf(buf, sizeof(buf), fmt, ap);
		o = json_pack("{s:s}", "error", buf);
		s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		fprintf(stdout, "%s\n", s ? s : "{\"error\":\"out of memory\"}");
		free(s);
		json_decref(o);
	} else {
		vlog(stderr, 3, "kgate: error: ", fmt, ap);
	}
	va_end(ap);
	return -1;
}

void kg_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(stderr, 4, "kgate: warning: ", fmt, ap);
	va_end(ap);
}

void kg_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(stderr, 6, "kgate: ", fmt, ap);
	va_end(ap);
}

void kg_debug(const char *fmt, ...)
{
	va_list ap;

	if (!kg_env.verbose)
		return;
	va_start(ap, fmt);
	vlog(stderr, 7, "kgate: debug: ", fmt, ap);
	va_end(ap);
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return (v && *v) ? v : fallback;
}

/* <bpffs>/kgate/<abi id>: see kg_abi.h in the Makefile */
const char *kg_pin_dir(void) { return env_or("KGATE_BPFFS", KG_PIN_DEFAULT "/" KG_ABI_ID); }
const char *kg_state_dir(void) { return env_or("KGATE_STATE_DIR", "/run/kgate"); }
const char *kg_audit_dir(void) { return env_or("KGATE_AUDIT_DIR", "/var/log/kgate"); }
const char *kg_data_dir(void) { return env_or("KGATE_DATA_DIR", "/var/lib/kgate"); }

const char *kg_socket_path(void)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/control.sock", kg_state_dir());
	return buf;
}

int kg_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (!size)
		return -1;
	if (n >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int kg_snprintf(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, size, fmt, ap);
	va_end(ap);
	return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

int kg_mkdir_p(const char *path, unsigned int mode)
{
	char buf[4096];
	char *p;

	if (kg_strlcpy(buf, path, sizeof(buf)))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Read all of fd (at most max bytes; a file of exactly max bytes is fine). */
static char *read_fd(int fd, size_t max, size_t *len_out)
{
	size_t cap = max < 4096 ? max : 4096, len = 0;
	char *buf, *nb;
	ssize_t n;

	buf = malloc(cap + 1);
	if (!buf)
		return NULL;
	for (;;) {
		if (len == cap) {
			char probe;

			if (cap >= max) {
				/* full: only an end of file right here keeps it */
				do
					n = read(fd, &probe, 1);
				while (n < 0 && errno == EINTR);
				if (n == 0)
					break;
				errno = n < 0 ? errno : EFBIG;
				goto fail;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nb = realloc(buf, cap + 1);
			if (!nb)
				goto fail;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
fail:
	{
		int saved = errno;

		free(buf);
		errno = saved;
	}
	return NULL;
}

void kg_hex_encode(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int kg_hex_decode(const char *s, void *out, size_t len)
{
	unsigned char *p = out;
	size_t i;

	if (!s || strlen(s) != 2 * len)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		int hi = hex_nibble(s[2 * i]), lo = hex_nibble(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void kg_mountinfo_unescape(char *s)
{
	char *w = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*w++ = *s++;
		}
	}
	*w = '\0';
}

void *kg_grow(void *v, size_t *cap, size_t n, size_t elem, size_t first_cap)
{
	size_t ncap;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : first_cap;
	if (ncap < *cap || (elem && ncap > SIZE_MAX / elem))
		return NULL;
	v = realloc(v, ncap * elem);
	if (v)
		*cap = ncap;
	return v;
}

char *kg_read_file(const char *path, size_t max, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), saved;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = read_fd(fd, max, len_out);
	saved = errno;
	close(fd);
	errno = saved;
	return buf;
}

char *kg_read_regular_file(const char *path, size_t max, size_t *len_out)
{
	/* O_NONBLOCK: opening a FIFO without a writer must not wait for one */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), saved;
	struct stat st;
	char *buf = NULL;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		saved = errno;
	} else if (!S_ISREG(st.st_mode)) {
		saved = EINVAL;
	} else if (fcntl(fd, F_SETFL, 0) < 0) {
		saved = errno;
	} else {
		buf = read_fd(fd, max, len_out);
		saved = errno;
	}
	close(fd);
	errno = saved;
	return buf;
}

int kg_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 0;
}

int kg_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* one write(2): sysfs and cgroupfs take a value in a single write */
int kg_write_file(const char *path, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	if (n < 0)
		err = -errno;
	else if ((size_t)n != len)
		err = -EIO;
	close(fd);
	return err;
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t kg_now_mono_ns(void) { return now_ns(CLOCK_MONOTONIC); }
uint64_t kg_now_real_ns(void) { return now_ns(CLOCK_REALTIME); }

uint64_t kg_hash_bytes(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = KG_FNV_OFFSET;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= KG_FNV_PRIME;
	}
	return h;
}

uint64_t kg_kernel_dev(uint64_t st_dev)
{
	return ((uint64_t)major(st_dev) << 20) | minor(st_dev);
}

char *kg_join_argv(char *const *argv)
{
	size_t len = 1, i;
	char *s, *p;

	for (i = 0; argv[i]; i++)
		len += strlen(argv[i]) + 1;
	s = calloc(1, len);
	if (!s)
		return NULL;
	for (i = 0, p = s; argv[i]; i++)
		p += sprintf(p, i ? " %s" : "%s", argv[i]);
	return s;
}
