// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns/names.c - normal form, validation and matching of host names.
 *
 * IDN labels are checked with libidn2 (an A-label must decode to a U-label
 * that encodes back to the same A-label); nothing here reads DNS messages.
 */
#include "dns/names.h"

#include <ctype.h>
#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ldh(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}

/* An "xn--" label must be a valid IDNA2008 A-label. */
static bool a_label_ok(const char *label, size_t n)
{
	char buf[64], *u = NULL, *back = NULL;
	bool ok;

	memcpy(buf, label, n);
	buf[n] = '\0';
	if (idn2_to_unicode_8z8z(buf, &u, 0) != IDN2_OK)
		return false;
	ok = idn2_to_ascii_8z(u, &back, IDN2_NONTRANSITIONAL) == IDN2_OK && !strcmp(back, buf);
	idn2_free(u);
	idn2_free(back);
	return ok;
}

/* Lower-case copy without one trailing dot; labels checked.  star: a leading
 * "*." is allowed.  0 or -1 with why. */
static int normalize(const char *in, char *out, bool star, char *why, size_t whylen)
{
	const char *p, *label;
	size_t len = strlen(in), i, nlabels = 0;
	char *ascii = NULL;

	for (i = 0; i < len; i++) {
		if ((unsigned char)in[i] >= 0x80) {
			if (idn2_to_ascii_8z(in, &ascii, IDN2_NONTRANSITIONAL) == IDN2_OK) {
				snprintf(why, whylen, "is not ASCII: write it in its A-label form "
					 "('%s')", ascii);
				idn2_free(ascii);
			} else {
				snprintf(why, whylen, "is not ASCII and not a valid IDN");
			}
			return -1;
		}
	}
	if (len && in[len - 1] == '.')
		len--;
	if (!len)
		return snprintf(why, whylen, "is empty"), -1;
	if (len > KG_HOST_MAX)
		return snprintf(why, whylen, "is %zu bytes long (at most %d)", len, KG_HOST_MAX), -1;
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[len] = '\0';
	p = out;
	if (out[0] == '*') {
		if (!star)
			return snprintf(why, whylen, "has a wildcard"), -1;
		if (out[1] != '.')
			return snprintf(why, whylen, "has a wildcard that is not a whole first "
					"label ('*.example.com')"), -1;
		p = out + 2;
	}
	for (label = p;; label = p + 1) {
		size_t n;

		p = strchr(label, '.');
		n = p ? (size_t)(p - label) : strlen(label);
		nlabels++;
		if (!n)
			return snprintf(why, whylen, "has an empty label (label %zu)", nlabels), -1;
		if (n > 63)
			return snprintf(why, whylen, "has a label longer than 63 bytes (label %zu)",
					nlabels), -1;
		for (i = 0; i < n; i++)
			if (!ldh((unsigned char)label[i]))
				return snprintf(why, whylen, "label %zu ('%.*s') has '%c': only "
						"letters, digits and '-' (and a leading '*.') are "
						"allowed", nlabels, (int)n, label, label[i]), -1;
		if (label[0] == '-' || label[n - 1] == '-')
			return snprintf(why, whylen, "label %zu ('%.*s') starts or ends with '-'",
					nlabels, (int)n, label), -1;
		if (n >= 4 && !strncmp(label, "xn--", 4) && !a_label_ok(label, n))
			return snprintf(why, whylen, "label %zu ('%.*s') is not a valid IDN A-label",
					nlabels, (int)n, label), -1;
		if (!p)
			break;
	}
	/* the last label of a host name is never all digits: that is an address */
	if (strspn(label, "0123456789") == strlen(label))
		return snprintf(why, whylen, "looks like an IPv4 address: use 'cidr' for "
				"addresses"), -1;
	if (out[0] == '*' && nlabels < 2)
		return snprintf(why, whylen, "covers a whole top-level domain: a wildcard needs "
				"at least two labels after '*.'"), -1;
	return 0;
}

int kg_host_pattern_normalize(const char *in, char *out, char *why, size_t whylen)
{
	if (strchr(in, ':'))
		return snprintf(why, whylen, "looks like an IPv6 address: use 'cidr' for "
				"addresses"), -1;
	return normalize(in, out, true, why, whylen);
}

int kg_host_name_normalize(const char *in, char *out)
{
	char why[128];

	return normalize(in, out, false, why, sizeof(why));
}

bool kg_host_match(const char *pattern, const char *name)
{
	size_t pl, nl;

	if (pattern[0] != '*')
		return !strcmp(pattern, name);
	pl = strlen(pattern) - 1;	/* ".suffix" */
	nl = strlen(name);
	return nl > pl && !strcmp(name + nl - pl, pattern + 1);
}

unsigned int kg_host_specificity(const char *pattern)
{
	if (pattern[0] != '*')
		return KG_HOST_MAX + 1;
	return (unsigned int)strlen(pattern);
}
