// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "testlib.h"
#include "common.h"

TEST(hash_is_fnv1a)
{
	/* FNV-1a 64 of "a" is af63dc4c8601ec8c */
	ASSERT_EQ(kg_hash_bytes("a", 1), 0xaf63dc4c8601ec8cULL, "fnv1a(a)");
	ASSERT_EQ(kg_hash_bytes("", 0), 0xcbf29ce484222325ULL, "fnv1a(empty)");
}

TEST(strlcpy_reports_truncation)
{
	char b[4];

	ASSERT_EQ(kg_strlcpy(b, "abc", sizeof(b)), 0, "fits");
	ASSERT_EQ(kg_strlcpy(b, "abcd", sizeof(b)), -1, "truncated");
	ASSERT_STREQ(b, "abc", "truncated content");
}

TEST(hex_round_trip_and_strict_decode)
{
	const unsigned char in[3] = { 0x00, 0xab, 0xff };
	unsigned char out[3];
	char hex[7];

	kg_hex_encode(in, sizeof(in), hex);
	ASSERT_STREQ(hex, "00abff", "encoded lowercase");
	ASSERT_OK(kg_hex_decode(hex, out, sizeof(out)), "decodes");
	ASSERT_TRUE(!memcmp(in, out, sizeof(in)), "round trip");
	ASSERT_EQ(kg_hex_decode("00ABff", out, 3), -EINVAL, "uppercase refused");
	ASSERT_EQ(kg_hex_decode("00abf", out, 3), -EINVAL, "short refused");
	ASSERT_EQ(kg_hex_decode("00abff00", out, 3), -EINVAL, "long refused");
	ASSERT_EQ(kg_hex_decode("00agff", out, 3), -EINVAL, "non-hex refused");
	ASSERT_EQ(kg_hex_decode(NULL, out, 3), -EINVAL, "NULL refused");
}

TEST(grow_doubles_only_when_full)
{
	size_t cap = 0, n;
	int *v = NULL, *nv;

	for (n = 0; n < 20; n++) {
		nv = kg_grow(v, &cap, n, sizeof(*v), 4);
		ASSERT_TRUE(nv != NULL, "grown");
		v = nv;
		v[n] = (int)n;
		ASSERT_EQ(cap, n < 4 ? 4u : n < 8 ? 8u : n < 16 ? 16u : 32u, "capacity");
	}
	for (n = 0; n < 20; n++)
		ASSERT_EQ(v[n], (int)n, "contents kept");
	cap = SIZE_MAX / 2 + 1;
	ASSERT_TRUE(kg_grow(v, &cap, cap, sizeof(*v), 4) == NULL, "overflow refused");
	ASSERT_EQ(cap, SIZE_MAX / 2 + 1, "capacity untouched on failure");
	free(v);
}

TEST(mountinfo_unescape_undoes_octal_only)
{
	char a[] = "/mnt/with\\040space\\011tab\\012nl\\134back";
	char b[] = "/short\\04";
	char c[] = "/not\\777octal\\x";
	char d[] = "\\040";

	kg_mountinfo_unescape(a);
	ASSERT_STREQ(a, "/mnt/with space\ttab\nnl\\back", "space, tab, newline, backslash");
	kg_mountinfo_unescape(b);
	ASSERT_STREQ(b, "/short\\04", "a short escape stays");
	kg_mountinfo_unescape(c);
	ASSERT_STREQ(c, "/not\\777octal\\x", "out of range or no digits: as it is");
	kg_mountinfo_unescape(d);
	ASSERT_STREQ(d, " ", "at the start");
}
