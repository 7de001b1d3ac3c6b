// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy/values.c - small values (ids, paths, names as bits, CIDRs, ports,
 * sizes) and small objects (constraints, throttle, id and string lists).
 */
#include "policy/values.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int kgp_value_id(struct kgp_ctx *c, json_t *v, char *out, const char *what)
{
	const char *s;
	size_t i, n;

	if (kgp_expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n > KG_ID_MAX)
		return kgp_perr(c, "%s must be 1-%d characters long", what, KG_ID_MAX);
	if (!isalnum((unsigned char)s[0]))
		return kgp_perr(c, "%s '%s' must start with a letter or digit", what, s);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x80 || !(isalnum(ch) || ch == '.' || ch == '_' || ch == '-'))
			return kgp_perr(c, "%s contains an invalid character at offset %zu "
					   "(allowed: letters, digits, '.', '_', '-')", what, i);
	}
	memcpy(out, s, n + 1);
	return 0;
}

/* "~/x" -> home + "/x"; validates absoluteness and canonical form. */
int kgp_value_path(struct kgp_ctx *c, json_t *v, char **out)
{
	const char *s, *rel, *home = NULL;
	size_t n, i, homelen = 0;
	char *p;

	if (kgp_expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0)
		return kgp_perr(c, "empty path");
	if (strlen(s) != n)
		return kgp_perr(c, "path contains a NUL character");
	if (kgp_has_control(s))
		return kgp_perr_control(c, "path contains", s);
	if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
		return kgp_perr(c, "path has leading or trailing whitespace");
	if (s[0] == '~') {
		if (s[1] != '/')
			return kgp_perr(c, "'~' is only allowed as a leading '~/' (no ~user)");
		home = c->home ? c->home : getenv("HOME");
		if (!home || home[0] != '/')
			return kgp_perr(c, "path uses '~' but no absolute home directory is "
					   "known (set HOME or pass --home)");
		homelen = strlen(home);
		while (homelen > 1 && home[homelen - 1] == '/')
			homelen--;
		if (homelen == 1)
			homelen = 0;	/* home "/" */
		rel = s + 1;
	} else if (s[0] == '/') {
		rel = s;
	} else {
		return kgp_perr(c, "path must be absolute (start with '/' or '~/')");
	}
	/* canonical: no empty, "." or ".." components (a trailing '/' is fine) */
	for (i = 0; rel[i]; ) {
		size_t j = i + 1, clen;

		while (rel[j] && rel[j] != '/')
			j++;
		clen = j - i - 1;
		if (clen == 0 && rel[j])
			return kgp_perr(c, "path is not canonical: contains '//'");
		if (clen == 1 && rel[i + 1] == '.')
			return kgp_perr(c, "path is not canonical: contains a '.' component");
		if (clen == 2 && rel[i + 1] == '.' && rel[i + 2] == '.')
			return kgp_perr(c, "path is not canonical: contains a '..' component");
		i = j;
	}
	n = strlen(rel);
	while (n > 1 && rel[n - 1] == '/')
		n--;			/* "/a/b/" names the same object as "/a/b" */
	if (homelen && n == 1)
		n = 0;			/* "~/" is the home directory itself */
	if (homelen + n >= PATH_MAX)
		return kgp_perr(c, "path longer than PATH_MAX (%d)", PATH_MAX);
	p = malloc(homelen + n + 1);
	if (!p)
		return kgp_oom(c);
	memcpy(p, home ? home : "", homelen);
	memcpy(p + homelen, rel, n);
	p[homelen + n] = '\0';
	*out = p;
	return 0;
}

int kgp_value_name_bits(struct kgp_ctx *c, json_t *arr, const struct kgp_name_bits *table,
			const char *what, uint64_t *out)
{
	json_t *v;
	size_t i;

	*out = 0;
	json_array_foreach(arr, i, v) {
		const struct kgp_name_bits *t;
		char list[256] = "";
		int r = 0;

		kgp_push_index(c, i);
		if (kgp_expect_type(c, v, JSON_STRING, "a string")) {
			r = -1;
		} else {
			for (t = table; t->name; t++) {
				if (!strcmp(t->name, json_string_value(v)))
					break;
				if (list[0])
					strncat(list, ", ", sizeof(list) - strlen(list) - 1);
				strncat(list, t->name, sizeof(list) - strlen(list) - 1);
			}
			if (t->name)
				*out |= t->bits;
			else
				r = kgp_perr(c, "unknown %s '%s' (expected one of %s)", what,
					     json_string_value(v), list);
		}
		kgp_pop(c);
		if (r)
			return r;
	}
	return 0;
}

int kgp_parse_ops(struct kgp_ctx *c, json_t *obj, const char *key,
		  const struct kgp_name_bits *table, bool required, uint32_t *out)
{
	json_t *arr;
	uint64_t bits;
	int r;

	if (required && !json_object_get(obj, key)) {
		kgp_push_key(c, key);
		r = kgp_perr(c, "missing required field '%s'", key);
		kgp_pop(c);
		return r;
	}
	if (kgp_get_array(c, obj, key, &arr, 64))
		return -1;
	if (!arr)
		return 0;
	kgp_push_key(c, key);
	r = kgp_value_name_bits(c, arr, table, "op", &bits);
	kgp_pop(c);
	if (!r)
		*out = (uint32_t)bits;
	return r;
}

/* "a.b.c.d/len", "x::y/len", or a bare address (host route) */
int kgp_value_cidr(struct kgp_ctx *c, json_t *v, struct kg_rule *rule)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *s, *slash;
	unsigned int max, len = 0, i;
	uint8_t bytes[16] = { 0 };
	bool v6;

	if (kgp_expect_type(c, v, JSON_STRING, "a string"))
		return -1;
	s = json_string_value(v);
	slash = strchr(s, '/');
	if ((size_t)((slash ? slash : s + strlen(s)) - s) >= sizeof(addr))
		return kgp_perr(c, "invalid CIDR '%s'", s);
	memcpy(addr, s, (size_t)((slash ? slash : s + strlen(s)) - s));
	addr[(slash ? slash : s + strlen(s)) - s] = '\0';
	v6 = strchr(addr, ':') != NULL;
	max = v6 ? 128 : 32;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, v6 ? bytes : bytes + 12) != 1)
		return kgp_perr(c, "invalid %s address '%s' in CIDR '%s'", v6 ? "IPv6" : "IPv4",
				addr, s);
	if (slash) {
		const char *p = slash + 1;

		if (!*p || (p[0] == '0' && p[1]) || strspn(p, "0123456789") != strlen(p) ||
		    strlen(p) > 3)
			return kgp_perr(c, "invalid prefix length in CIDR '%s'", s);
		len = (unsigned int)atoi(p);
		if (len > max)
			return kgp_perr(c, "prefix length /%u too long for %s in CIDR '%s' (max %u)",
					len, v6 ? "IPv6" : "IPv4", s, max);
	} else {
		len = max;
	}
	if (!v6) {
		bytes[10] = 0xff;	/* IPv4-mapped: ::ffff:a.b.c.d */
		bytes[11] = 0xff;
		len += 96;
	}
	for (i = len; i < 128; i++)
		if (bytes[i / 8] & (0x80 >> (i % 8)))
			return kgp_perr(c, "host bits set in CIDR '%s' (the network address "
					   "must have zeros after the prefix)", s);
	memcpy(rule->addr, bytes, 16);
	rule->prefixlen = len;
	rule->family = v6 ? AF_INET6 : AF_INET;
	return 0;
}

static int parse_port_number(const char *s, size_t n, unsigned long *out)
{
	size_t i;
	unsigned long v = 0;

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* 443 or "8000-8080" (or "443"); port 0 is never valid */
int kgp_value_port(struct kgp_ctx *c, json_t *v, uint16_t *lo, uint16_t *hi)
{
	unsigned long a, b;

	if (json_is_integer(v)) {
		json_int_t p = json_integer_value(v);

		if (p < 1 || p > 65535)
			return kgp_perr(c, "port %lld out of range (1-65535)", (long long)p);
		*lo = *hi = (uint16_t)p;
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v), *dash = strchr(s, '-');

		if (dash ? parse_port_number(s, (size_t)(dash - s), &a) ||
			   parse_port_number(dash + 1, strlen(dash + 1), &b)
			 : parse_port_number(s, strlen(s), &a))
			return kgp_perr(c, "invalid port range '%s' (expected \"LO-HI\")", s);
		if (!dash)
			b = a;
		if (a < 1 || a > 65535 || b < 1 || b > 65535)
			return kgp_perr(c, "port range '%s' out of range (1-65535)", s);
		if (a > b)
			return kgp_perr(c, "reversed port range '%s'", s);
		*lo = (uint16_t)a;
		*hi = (uint16_t)b;
		return 0;
	}
	return kgp_perr(c, "expected a port number or a \"LO-HI\" string, got %s",
			kgp_json_type_name(v));
}

/* integer or "512M"-style string; K/M/G/T are powers of 1024 */
static int value_bytes(struct kgp_ctx *c, json_t *v, uint64_t *out)
{
	const char *s;
	char *end;
	unsigned long long n;
	unsigned int shift = 0;

	if (json_is_integer(v))
		return kgp_value_uint(c, v, 1, UINT64_MAX >> 1, out);
	if (!json_is_string(v))
		return kgp_perr(c, "expected bytes as an integer or a string like \"512M\", got %s",
				kgp_json_type_name(v));
	s = json_string_value(v);
	if (!isdigit((unsigned char)s[0]))
		return kgp_perr(c, "invalid size '%s' (expected digits with an optional K, M, G "
				   "or T suffix)", s);
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno)
		return kgp_perr(c, "size '%s' too large", s);
	switch (*end) {
	case '\0': shift = 0; break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	default:
		return kgp_perr(c, "invalid size '%s' (expected digits with an optional K, M, G "
				   "or T suffix)", s);
	}
	if (*end && end[1])
		return kgp_perr(c, "invalid size '%s' (expected digits with an optional K, M, G "
				   "or T suffix)", s);
	if (n == 0)
		return kgp_perr(c, "size must be greater than zero");
	if (n > (UINT64_MAX >> 1) >> shift)
		return kgp_perr(c, "size '%s' too large", s);
	*out = (uint64_t)n << shift;
	return 0;
}

/* ---- objects ------------------------------------------------------------- */

#define MAX_SECONDS (10ull * 365 * 86400)

int kgp_parse_constraints(struct kgp_ctx *c, json_t *obj, struct kg_constraints *out)
{
	static const char *const keys[] = { "max_runtime_sec", "max_procs", "memory_max",
					    "max_retries", NULL };
	json_t *v;

	if (kgp_check_keys(c, obj, keys))
		return -1;
	if (json_object_size(obj) == 0)
		return kgp_perr(c, "empty constraints (give at least one limit)");
	if (kgp_get_uint(c, obj, "max_runtime_sec", 1, MAX_SECONDS, &out->max_runtime_sec) ||
	    kgp_get_uint(c, obj, "max_procs", 1, 4194304, &out->max_procs) ||
	    kgp_get_uint(c, obj, "max_retries", 0, 100, &out->max_retries))
		return -1;
	v = json_object_get(obj, "memory_max");
	if (v) {
		int r;

		kgp_push_key(c, "memory_max");
		r = value_bytes(c, v, &out->memory_max);
		kgp_pop(c);
		if (r)
			return r;
	}
	out->present = true;
	return 0;
}

int kgp_parse_throttle(struct kgp_ctx *c, json_t *obj, uint64_t *rate, uint64_t *burst)
{
	static const char *const keys[] = { "rate_per_sec", "burst", NULL };
	json_t *v;

	if (kgp_check_keys(c, obj, keys) || kgp_require(c, obj, "rate_per_sec", &v) ||
	    kgp_require(c, obj, "burst", &v) ||
	    kgp_get_uint(c, obj, "rate_per_sec", 1, 1000000000, rate) ||
	    kgp_get_uint(c, obj, "burst", 1, 1000000000, burst))
		return -1;
	return 0;
}

/* principals lists may be empty ("nobody by group"); match lists may not */
int kgp_parse_id_list(struct kgp_ctx *c, json_t *obj, const char *key, uint32_t **out,
		      size_t *nout, bool allow_empty)
{
	json_t *arr, *v = json_object_get(obj, key);
	size_t i;

	if (allow_empty && json_is_array(v) && json_array_size(v) == 0)
		return 0;
	if (kgp_get_array(c, obj, key, &arr, 65536))
		return -1;
	if (!arr)
		return 0;
	*out = calloc(json_array_size(arr), sizeof(**out));
	if (!*out)
		return kgp_oom(c);
	kgp_push_key(c, key);
	json_array_foreach(arr, i, v) {
		uint64_t id;
		int r;

		kgp_push_index(c, i);
		r = kgp_value_uint(c, v, 0, UINT32_MAX - 1, &id);
		kgp_pop(c);
		if (r) {
			kgp_pop(c);
			return r;
		}
		(*out)[(*nout)++] = (uint32_t)id;
	}
	kgp_pop(c);
	return 0;
}

int kgp_parse_str_list(struct kgp_ctx *c, json_t *obj, const char *key, char ***out,
		       size_t *nout)
{
	json_t *arr, *v;
	size_t i;

	if (kgp_get_array(c, obj, key, &arr, 65536))
		return -1;
	if (!arr)
		return 0;
	*out = calloc(json_array_size(arr), sizeof(**out));
	if (!*out)
		return kgp_oom(c);
	kgp_push_key(c, key);
	json_array_foreach(arr, i, v) {
		int r = 0;

		kgp_push_index(c, i);
		if (kgp_expect_type(c, v, JSON_STRING, "a string"))
			r = -1;
		else if (json_string_length(v) == 0 || json_string_length(v) > 255)
			r = kgp_perr(c, "must be 1-255 bytes long");
		else if (kgp_has_control(json_string_value(v)))
			r = kgp_perr_control(c, "contains", json_string_value(v));
		else if (!((*out)[*nout] = strdup(json_string_value(v))))
			r = kgp_oom(c);
		else
			(*nout)++;
		kgp_pop(c);
		if (r) {
			kgp_pop(c);
			return r;
		}
	}
	kgp_pop(c);
	return 0;
}
