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
