// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ringsize.c - the size of kgate's event ring buffer (--ring-size). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "record/ringsize.h"

int kg_ring_size_parse(const char *text, uint32_t *bytes)
{
	unsigned long long v, mult = 1;
	const char *s = text ? text : "";
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)*s))
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno)
		goto bad;
	switch (tolower((unsigned char)*end)) {
	case 'k': mult = 1ull << 10; end++; break;
	case 'm': mult = 1ull << 20; end++; break;
	case 'g': mult = 1ull << 30; end++; break;
	default: break;
	}
	if (mult > 1 && (!strcasecmp(end, "iB") || !strcasecmp(end, "B")))
		end += strlen(end);
	if (*end || v > KG_RING_MAX_BYTES / mult + 1)
		goto bad;
	v *= mult;
	if (v < KG_RING_MIN_BYTES || v > KG_RING_MAX_BYTES || (v & (v - 1)))
		goto bad;
	*bytes = (uint32_t)v;
	return 0;
bad:
	kg_err("--ring-size '%s': the ring buffer's size is a power of two from 64K to 256M "
	       "bytes (K, M, G: binary units; default 4M)", s);
	return -EINVAL;
}

void kg_ring_size_format(uint32_t bytes, char *buf, size_t len)
{
	if (bytes && !(bytes & ((1u << 20) - 1)))
		snprintf(buf, len, "%uM", bytes >> 20);
	else if (bytes && !(bytes & ((1u << 10) - 1)))
		snprintf(buf, len, "%uK", bytes >> 10);
	else
		snprintf(buf, len, "%u", bytes);
}
