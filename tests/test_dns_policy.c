// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* test_dns_policy.c - net.host rules: validation, normal form, matching and
 * the entries an address learnt for a name carries (dns/match.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "common.h"
#include "policy/policy.h"
#include "dns/match.h"
#include "dns/names.h"

#define R(x) "{\"version\":1,\"name\":\"t\",\n\"runtime\":[\n" x "\n]}"
#define HOST_RULE(sel) "{\"id\":\"r\",\"decision\":\"allow\",\"net\":" sel "}"

static struct kg_policy_doc *load(const char *json, struct kg_policy_error *err)
{
	return kg_policy_load_buffer(json, strlen(json), "t.json", "/home/t", err);
}

static const struct {
	const char *in, *norm;
} good_names[] = {
	{ "api.github.com", "api.github.com" },
	{ "API.GitHub.COM", "api.github.com" },
	{ "api.github.com.", "api.github.com" },
	{ "*.githubusercontent.com", "*.githubusercontent.com" },
	{ "*.GitHubUserContent.com.", "*.githubusercontent.com" },
	{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
	{ "XN--BCHER-KVA.example", "xn--bcher-kva.example" },
	{ "localhost", "localhost" },
	{ "a-b.c0", "a-b.c0" },
	{ "1password.com", "1password.com" },
};

TEST(host_names_are_normalised)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good_names); i++) {
		char out[KG_HOST_MAX + 1], why[256] = "";
		int r = kg_host_pattern_normalize(good_names[i].in, out, why, sizeof(why));

		if (!ASSERT_EQ(r, 0, good_names[i].in))
			printf("  %s\n", why);
		else
			ASSERT_STREQ(out, good_names[i].norm, good_names[i].in);
	}
}

static const struct {
	const char *name, *host, *msg;
} bad_hosts[] = {
	{ "empty", "", "is empty" },
	{ "only a dot", ".", "is empty" },
	{ "two trailing dots", "a.com..", "empty label" },
	{ "leading dot", ".a.com", "empty label" },
	{ "underscore", "a_b.com", "label 1 ('a_b') has '_'" },
	{ "space", "a b.com", "has ' '" },
	{ "star in the middle", "a.*.com", "has '*'" },
	{ "star without dot", "*a.com", "not a whole first label" },
	{ "lone star", "*", "not a whole first label" },
	{ "wildcard TLD", "*.com", "whole top-level domain" },
	{ "leading hyphen", "-a.com", "starts or ends with '-'" },
	{ "trailing hyphen", "a-.com", "starts or ends with '-'" },
	{ "label of 64", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
	  "longer than 63" },
	{ "IPv4 address", "10.0.0.1", "use 'cidr'" },
	{ "IPv6 address", "2001:db8::1", "use 'cidr'" },
	{ "U-label", "b\xc3\xbc" "cher.example", "A-label form ('xn--bcher-kva.example')" },
	{ "bad A-label", "xn--zz-.example", "starts or ends with '-'" },
	{ "undecodable A-label", "xn--ab-zzzzz.example", "not a valid IDN A-label" },
};

TEST(bad_host_names_are_refused_naming_where)
{
	char json[2048], what[128];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_hosts); i++) {
		struct kg_policy_error err;
		struct kg_policy_doc *doc;

		snprintf(json, sizeof(json), R(HOST_RULE("{\"host\":\"%s\",\"ports\":[443]}")),
			 bad_hosts[i].host);
		snprintf(what, sizeof(what), "case '%s'", bad_hosts[i].name);
		doc = load(json, &err);
		if (!ASSERT_TRUE(doc == NULL, what)) {
			kg_policy_free(doc);
			continue;
		}
		ASSERT_HAS_SUBSTR(err.message, bad_hosts[i].msg, what);
		ASSERT_EQ(err.line, 3, what);
		ASSERT_STREQ(err.rule_id, "r", what);
		ASSERT_STREQ(err.field, "net.host", what);
	}
}

TEST(a_name_of_254_bytes_is_refused)
{
	char host[300], json[1024];
	struct kg_policy_error err;
	struct kg_policy_doc *doc;
	size_t i;

	/* 4 labels of 63 + 3 dots = 255 > 253 */
	for (i = 0; i < 4; i++) {
		memset(host + i * 64, 'a', 63);
		host[i * 64 + 63] = '.';
	}
	host[255] = '\0';
	host[254] = 'b';
	snprintf(json, sizeof(json), R(HOST_RULE("{\"host\":\"%s\"}")), host);
	doc = load(json, &err);
	ASSERT_TRUE(doc == NULL, "255 bytes refused");
	if (!doc)
		ASSERT_HAS_SUBSTR(err.message, "at most 253", "length said");
	kg_policy_free(doc);
}

static const struct {
	const char *name, *json, *field, *msg;
} bad_rules[] = {
	{ "host with cidr", R(HOST_RULE("{\"host\":\"a.com\",\"cidr\":\"10.0.0.0/8\"}")),
	  "net.cidr", "'host' cannot be combined with 'cidr'" },
	{ "host with unix", R(HOST_RULE("{\"host\":\"a.com\",\"unix\":\"/x\"}")),
	  "net.host", "'unix' cannot be combined with 'host'" },
	{ "host not a string", R(HOST_RULE("{\"host\":5}")), "net.host", "expected a string" },
	{ "allow_private not bool", R(HOST_RULE("{\"host\":\"a.com\",\"allow_private\":1}")),
	  "net.allow_private", "expected true or false" },
	{ "allow_private without host",
	  R(HOST_RULE("{\"cidr\":\"10.0.0.0/8\",\"allow_private\":true}")),
	  "net.allow_private", "only valid with 'host'" },
	{ "bad port", R(HOST_RULE("{\"host\":\"a.com\",\"ports\":[0]}")), "net.ports[0]",
	  "out of range" },
	{ "bad proto", R(HOST_RULE("{\"host\":\"a.com\",\"proto\":\"sctp\"}")), "net.proto",
	  "unknown proto" },
	{ "contradiction after normalising",
	  R(HOST_RULE("{\"host\":\"A.com.\"}") ",\n"
	    "{\"id\":\"s\",\"decision\":\"deny\",\"net\":{\"host\":\"a.com\"}}"),
	  "net.host", "contradicts rule 'r'" },
	{ "too many entries with the covering wildcards",
	  R("{\"id\":\"w\",\"decision\":\"allow\",\"net\":{\"host\":\"*.a.com\",\"ports\":[1,2,3,4,5]}},\n"
	    "{\"id\":\"x\",\"decision\":\"deny\",\"net\":{\"host\":\"x.a.com\",\"ports\":[6,7,8,9]}}"),
	  "net.host", "more than 8 port/protocol entries" },
};

TEST(bad_host_rules_are_refused_naming_where)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_rules); i++) {
		struct kg_policy_error err;
		struct kg_policy_doc *doc = load(bad_rules[i].json, &err);

		if (!ASSERT_TRUE(doc == NULL, bad_rules[i].name)) {
			kg_policy_free(doc);
			continue;
		}
		ASSERT_HAS_SUBSTR(err.message, bad_rules[i].msg, bad_rules[i].name);
		ASSERT_STREQ(err.field, bad_rules[i].field, bad_rules[i].name);
		ASSERT_GE(err.line, 3, bad_rules[i].name);
	}
}

TEST(wildcards_match_one_or_more_labels_never_the_apex)
{
	ASSERT_TRUE(kg_host_match("*.example.com", "a.example.com"), "one label");
	ASSERT_TRUE(kg_host_match("*.example.com", "a.b.example.com"), "two labels");
	ASSERT_FALSE(kg_host_match("*.example.com", "example.com"), "not the apex");
	ASSERT_FALSE(kg_host_match("*.example.com", "badexample.com"), "label boundary");
	ASSERT_FALSE(kg_host_match("*.example.com", "example.com.evil.net"), "suffix only");
	ASSERT_TRUE(kg_host_match("api.github.com", "api.github.com"), "exact");
	ASSERT_FALSE(kg_host_match("api.github.com", "x.api.github.com"), "exact is exact");
}

TEST(name_entries_most_specific_rule_first)
{
	const char *json = R(
		"{\"id\":\"gh-wide\",\"decision\":\"deny\",\"net\":{\"host\":\"*.github.com\"}},\n"
		"{\"id\":\"gh-api\",\"decision\":\"allow\",\"net\":{\"host\":\"API.github.com.\",\"ports\":[443],\"proto\":\"tcp\"}},\n"
		"{\"id\":\"gh-codeload\",\"decision\":\"audit\",\"net\":{\"host\":\"*.codeload.github.com\",\"ports\":[\"1-1024\"]}},\n"
		"{\"id\":\"cidr\",\"decision\":\"allow\",\"net\":{\"cidr\":\"0.0.0.0/0\"}}");
	struct kg_net_ent ent[KG_NET_ENTS];
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load(json, &err);
	bool priv = true;
	int n;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	ASSERT_TRUE(kg_dns_policy_has_hosts(doc), "has host rules");
	n = kg_dns_host_entries(doc, "api.github.com", ent, &priv);
	ASSERT_EQ(n, 2, "exact + wildcard");
	ASSERT_EQ(ent[0].rule_id, 2, "exact first");
	ASSERT_EQ(ent[0].port_lo, 443, "its port");
	ASSERT_EQ(ent[0].proto, 6, "its proto");
	ASSERT_EQ(ent[1].rule_id, 1, "then the wildcard");
	ASSERT_EQ(ent[1].port_hi, 65535, "any port");
	ASSERT_FALSE(priv, "private answers refused by default");
	ASSERT_TRUE(kg_dns_entries_resolvable(ent, n), "resolvable (443 allowed)");

	n = kg_dns_host_entries(doc, "x.codeload.github.com", ent, NULL);
	ASSERT_EQ(n, 2, "two wildcards");
	ASSERT_EQ(ent[0].rule_id, 3, "longer suffix first");
	n = kg_dns_host_entries(doc, "gist.github.com", ent, NULL);
	ASSERT_EQ(n, 1, "wildcard only");
	ASSERT_FALSE(kg_dns_entries_resolvable(ent, n), "denied name is not resolvable");
	n = kg_dns_host_entries(doc, "github.com", ent, NULL);
	ASSERT_EQ(n, 0, "apex: no host rule");
	kg_policy_free(doc);
}

TEST(allow_private_comes_from_the_most_specific_rule)
{
	const char *json = R(
		"{\"id\":\"w\",\"decision\":\"allow\",\"net\":{\"host\":\"*.corp.example\",\"allow_private\":true}},\n"
		"{\"id\":\"x\",\"decision\":\"allow\",\"net\":{\"host\":\"pub.corp.example\"}}");
	struct kg_net_ent ent[KG_NET_ENTS];
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load(json, &err);
	bool priv = false;

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	kg_dns_host_entries(doc, "git.corp.example", ent, &priv);
	ASSERT_TRUE(priv, "wildcard allows private");
	kg_dns_host_entries(doc, "pub.corp.example", ent, &priv);
	ASSERT_FALSE(priv, "the exact rule does not");
	kg_policy_free(doc);
}

TEST(cidr_only_policies_have_no_host_rules)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc = load(R(HOST_RULE("{\"cidr\":\"10.0.0.0/8\"}")), &err);

	if (!ASSERT_TRUE(doc != NULL, "load"))
		return;
	ASSERT_FALSE(kg_dns_policy_has_hosts(doc), "no host rules");
	kg_policy_free(doc);
}
