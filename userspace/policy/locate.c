// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * policy/locate.c - where a value is in the policy's text: the source is
 * walked along a JSON path, skipping values without interpreting them
 * (see locate.h).
 */
#include "policy/locate.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* ---- source positions ----------------------------------------------------
 * The text has been accepted by jansson, so it is valid JSON; these helpers
 * still bound every access by the length.
 */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* i at the opening quote; returns the index after the closing quote */
static size_t skip_string(const char *s, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return n;
}

/* i at the start of a value; returns the index just after it */
static size_t skip_value(const char *s, size_t n, size_t i)
{
	size_t depth = 0;

	while (i < n) {
		char ch = s[i];

		if (ch == '"') {
			i = skip_string(s, n, i);
			if (!depth)
				return i;
			continue;
		}
		if (ch == '{' || ch == '[') {
			depth++;
		} else if (ch == '}' || ch == ']') {
			if (!depth)
				return i;	/* end of the enclosing container */
			if (--depth == 0)
				return i + 1;
		} else if (!depth && (ch == ',' || ch == ' ' || ch == '\t' ||
				      ch == '\n' || ch == '\r')) {
			return i;		/* end of a scalar */
		}
		i++;
	}
	return n;
}

static bool raw_key_is(const char *s, size_t start, size_t end, const char *key)
{
	size_t klen = strlen(key);

	/* start..end spans the quotes; escaped keys never match (rare) */
	return end - start == klen + 2 && !memcmp(s + start + 1, key, klen);
}

/* Step into the member `key` of the object at i; 0 if absent. */
static bool step_key(const char *s, size_t n, size_t *pi, const char *key)
{
	size_t i = *pi;

	if (i >= n || s[i] != '{')
		return false;
	i = skip_ws(s, n, i + 1);
	while (i < n && s[i] == '"') {
		size_t kstart = i, kend = skip_string(s, n, i);

		i = skip_ws(s, n, kend);
		if (i >= n || s[i] != ':')
			return false;
		i = skip_ws(s, n, i + 1);
		if (raw_key_is(s, kstart, kend, key)) {
			*pi = i;
			return true;
		}
		i = skip_ws(s, n, skip_value(s, n, i));
		if (i < n && s[i] == ',')
			i = skip_ws(s, n, i + 1);
	}
	return false;
}

static bool step_index(const char *s, size_t n, size_t *pi, size_t index)
{
	size_t i = *pi, k;

	if (i >= n || s[i] != '[')
		return false;
	i = skip_ws(s, n, i + 1);
	for (k = 0; i < n && s[i] != ']'; k++) {
		if (k == index) {
			*pi = i;
			return true;
		}
		i = skip_ws(s, n, skip_value(s, n, i));
		if (i < n && s[i] == ',')
			i = skip_ws(s, n, i + 1);
	}
	return false;
}

/* Offset of the value at `path`, or of the deepest part of it that exists. */
size_t kgp_locate(const char *s, size_t n, const struct kgp_comp *path, int depth)
{
	size_t i = skip_ws(s, n, 0);
	int k;

	for (k = 0; k < depth; k++) {
		bool ok = path[k].key ? step_key(s, n, &i, path[k].key)
				      : step_index(s, n, &i, path[k].index);
		if (!ok)
			break;
	}
	return i;
}

/* 1-based line and character (not byte) column of an offset */
void kgp_offset_to_linecol(const char *s, size_t n, size_t off, int *line, int *col)
{
	size_t i;
	int l = 1, c = 1;

	for (i = 0; i < off && i < n; i++) {
		if (s[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char)s[i] & 0xc0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

void kgp_cursor_advance(const char *s, size_t n, struct kgp_linecol_cursor *cur, size_t off)
{
	for (; cur->off < off && cur->off < n; cur->off++) {
		if (s[cur->off] == '\n') {
			cur->line++;
			cur->col = 1;
		} else if (((unsigned char)s[cur->off] & 0xc0) != 0x80) {
			cur->col++;
		}
	}
}

/* Offsets of the elements of the top-level array `key`, in one pass. */
void kgp_rule_positions(const char *s, size_t n, const char *key, size_t count,
			size_t *offs)
{
	struct kgp_comp path = { .key = key };
	size_t i = kgp_locate(s, n, &path, 1), k;

	for (k = 0; k < count; k++)
		offs[k] = i;
	if (i >= n || s[i] != '[')
		return;
	i = skip_ws(s, n, i + 1);
	for (k = 0; k < count && i < n && s[i] != ']'; k++) {
		offs[k] = i;
		i = skip_ws(s, n, skip_value(s, n, i));
		if (i < n && s[i] == ',')
			i = skip_ws(s, n, i + 1);
	}
}
