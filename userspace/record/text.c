// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/text.c - escaping hostile bytes and the trail's times (text.h). */
#include "record/audit.h"
#include "common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* ------------------------------------------------------------------ */
/* escaping hostile bytes */

/* Length of a valid, printable UTF-8 sequence at s (2..4 bytes), else 0.
 * C1 controls (U+0080..U+009F) count as unprintable. */
size_t kg_audit_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t need, k;
	uint32_t cp;

	if (c >= 0xc2 && c <= 0xdf)
		need = 1, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 2, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 3, cp = c & 0x07;
	else
		return 0;
	if (n < need + 1)
		return 0;
	for (k = 1; k <= need; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3f);
	}
	if (need == 1 && cp < 0xa0)
		return 0;
	if (need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
		return 0;
	if (need == 3 && (cp < 0x10000 || cp > 0x10ffff))
		return 0;
	return need + 1;
}

char *kg_audit_escape(const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	char *out, *o;
	size_t i = 0;

	out = malloc(4 * len + 1);
	if (!out)
		return NULL;
	o = out;
	while (i < len) {
		unsigned c = s[i];
		size_t n;

		if (c == '\\') {
			*o++ = '\\';
			*o++ = '\\';
			i++;
		} else if (c >= 0x20 && c < 0x7f) {
			*o++ = (char)c;
			i++;
		} else if (c >= 0x80 && (n = kg_audit_utf8_seq(s + i, len - i))) {
			memcpy(o, s + i, n);
			o += n;
			i += n;
		} else {
			o += sprintf(o, "\\x%02x", c);
			i++;
		}
	}
	*o = '\0';
	return out;
}

char *kg_audit_unescape(const char *in, size_t *len_out)
{
	size_t n = strlen(in), i, o = 0;
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		if (in[i] != '\\') {
			out[o++] = in[i];
			continue;
		}
		if (in[i + 1] == '\\') {
			out[o++] = '\\';
			i++;
		} else if (in[i + 1] == 'x' && hexval((unsigned char)in[i + 2]) >= 0 &&
			   hexval((unsigned char)in[i + 3]) >= 0) {
			out[o++] = (char)(hexval((unsigned char)in[i + 2]) << 4 |
					  hexval((unsigned char)in[i + 3]));
			i += 3;
		} else {
			free(out);
			errno = EINVAL;
			return NULL;
		}
	}
	out[o] = '\0';
	if (len_out)
		*len_out = o;
	return out;
}

/* ------------------------------------------------------------------ */
/* time */

void kg_audit_format_time(uint64_t real_ns, char *buf, size_t size)
{
	time_t secs = (time_t)(real_ns / 1000000000ull);
	struct tm tm;

	if (!gmtime_r(&secs, &tm)) {
		snprintf(buf, size, "invalid");
		return;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRIu64 "Z",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (uint64_t)(real_ns % 1000000000ull));
}

/* digits after a '.', scaled to nanoseconds (extra digits ignored) */
static const char *parse_fraction(const char *p, uint64_t *ns)
{
	uint64_t v = 0, scale = 100000000ull;

	if (!isdigit((unsigned char)*p))
		return NULL;
	for (; isdigit((unsigned char)*p); p++) {
		v += (uint64_t)(*p - '0') * scale;
		scale /= 10;
	}
	*ns = v;
	return p;
}

static int parse_unix_seconds(const char *s, uint64_t *ns_out)
{
	uint64_t secs = 0, frac = 0;
	const char *p = s;

	for (; isdigit((unsigned char)*p); p++) {
		if (secs > (UINT64_MAX / 1000000000ull) / 10)
			return -EINVAL;
		secs = secs * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -EINVAL;
	if (*p == '.' && !(p = parse_fraction(p + 1, &frac)))
		return -EINVAL;
	if (*p)
		return -EINVAL;
	*ns_out = secs * 1000000000ull + frac;
	return 0;
}

static int two_digits(const char *p)
{
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

int kg_audit_parse_time(const char *s, uint64_t *ns_out)
{
	int year, mon, day, hh, mm, ss, oh, om, n = 0;
	uint64_t frac = 0;
	long long offset = 0, secs;
	const char *p;
	struct tm tm;

	if (!s || !*s)
		return -EINVAL;
	if (!strchr(s, '-') || strlen(s) < 20)
		return parse_unix_seconds(s, ns_out);
	if (sscanf(s, "%4d-%2d-%2d%n", &year, &mon, &day, &n) != 3 || n != 10)
		return -EINVAL;
	p = s + 10;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	hh = two_digits(p + 1);
	mm = p[3] == ':' ? two_digits(p + 4) : -1;
	ss = p[6] == ':' ? two_digits(p + 7) : -1;
	if (hh < 0 || mm < 0 || ss < 0 || hh > 23 || mm > 59 || ss > 60 ||
	    mon < 1 || mon > 12 || day < 1 || day > 31 || year < 1970)
		return -EINVAL;
	p += 9;
	if (*p == '.' && !(p = parse_fraction(p + 1, &frac)))
		return -EINVAL;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		oh = two_digits(p + 1);
		om = p[3] == ':' ? two_digits(p + 4) : -1;
		if (oh < 0 || om < 0 || oh > 23 || om > 59)
			return -EINVAL;
		offset = (oh * 3600LL + om * 60LL) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	secs = (long long)timegm(&tm) - offset;
	if (secs < 0)
		return -EINVAL;
	*ns_out = (uint64_t)secs * 1000000000ull + frac;
	return 0;
}
