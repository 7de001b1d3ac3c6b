// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_image.c - kernel/image.c, a policy compiled into map entries on the
 * host without BPF: every test runs under a seccomp filter that kills the
 * process on bpf(2), so a compile that reached for a map would fail here.
 *
 * What is asserted are the entries the hooks will look up: a file rule
 * keyed by its file's (device, inode) with the rule's number (index + 1),
 * ops and decision, guards on the directories above a deny; a path that
 * does not exist keyed by name under its deepest existing ancestor; a net
 * rule's prefix with its own entries before those of wider prefixes;
 * abstract sockets by name hash; throttle parameters; the kg_policies
 * entry; inputs the maps cannot hold refused with an error naming the
 * rule, leaving the image empty; and the shipped policies compiled, each
 * entry traced back to a rule of the right kind.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "kernel/caps.h"
#include "kernel/image.h"
#include "policy/policy.h"
#include "testlib.h"

static char tmp[64];

/* Every test in a private directory holding "secret" (a file) and "dir/"
 * (a directory); bpf(2) kills the test. */
static void setup(void)
{
	scmp_filter_ctx ctx;
	char path[128];
	int fd;

	strcpy(tmp, "/tmp/kgate-test-image.XXXXXX");
	if (!mkdtemp(tmp))
		SKIP("mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/secret", tmp);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/dir", tmp);
	mkdir(path, 0700);
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(bpf), 0) ||
	    seccomp_load(ctx))
		SKIP("cannot forbid bpf(2) with seccomp here");
	seccomp_release(ctx);
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("  (could not remove %s)\n", tmp);
}

static struct kg_policy_doc *doc_of(const char *text)
{
	struct kg_policy_error err;
	struct kg_policy_doc *doc = kg_policy_load_buffer(text, strlen(text), "test", tmp, &err);
	char msg[1024];

	if (!doc) {
		kg_policy_error_format(&err, msg, sizeof(msg));
		printf("  policy: %s\n", msg);
	}
	return doc;
}

/* The identity the hooks see for path (no overlayfs or btrfs under /tmp
 * in these tests: stat's device is the superblock's). */
static bool ident(const char *path, uint64_t *dev, uint64_t *ino)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_INO, &stx))
		return false;
	*dev = ((uint64_t)stx.stx_dev_major << 20) | stx.stx_dev_minor;
	*ino = stx.stx_ino;
	return true;
}

static const struct kg_image_file *file_entry(const struct kg_image *img, const char *path)
{
	uint64_t dev, ino;
	size_t i;

	if (!ident(path, &dev, &ino))
		return NULL;
	for (i = 0; i < img->nfile; i++)
		if (img->file[i].key.dev == dev && img->file[i].key.ino == ino)
			return &img->file[i];
	return NULL;
}

/* The net entry of an IPv4 prefix (as the rule names it: a v4-mapped key). */
static const struct kg_image_net *net_entry(const struct kg_image *img, const char *ip4,
					    unsigned int plen4)
{
	uint8_t addr[16] = { [10] = 0xff, [11] = 0xff };
	size_t i;

	inet_pton(AF_INET, ip4, addr + 12);
	for (i = 0; i < img->nnet; i++)
		if (img->net[i].key.prefixlen == 32 + 96 + plen4 &&
		    !memcmp(img->net[i].key.addr, addr, 16))
			return &img->net[i];
	return NULL;
}

static bool has_note(const struct kg_image *img, uint32_t num, const char *text)
{
	size_t i;

	for (i = 0; i < img->nnotes; i++)
		if (img->notes[i].rule_num == num && strstr(img->notes[i].message, text))
			return true;
	return false;
}

/* stderr into a file while a compile runs, to read what it said */
static int stderr_saved = -1;
static char errpath[128];

static void capture_start(void)
{
	int fd;

	snprintf(errpath, sizeof(errpath), "%s/stderr", tmp);
	fd = open(errpath, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	fflush(stderr);
	stderr_saved = dup(2);
	dup2(fd, 2);
	close(fd);
}

static char *capture_end(void)
{
	char *text = NULL;

	fflush(stderr);
	dup2(stderr_saved, 2);
	close(stderr_saved);
	text = kg_read_file(errpath, 1 << 16, NULL);
	return text ? text : strdup("");
}

#define P(rules) "{\"version\":1,\"name\":\"img\",\"runtime\":[" rules "]}"

TEST(a_file_rule_is_keyed_by_its_file_with_rule_number_index_plus_one)
{
	struct kg_policy_doc *doc;
	const struct kg_image_file *f, *g;
	struct kg_image img;
	char path[128];

	setup();
	doc = doc_of(P("{\"id\":\"first\",\"net\":{\"cidr\":\"192.0.2.0/24\"},\"decision\":\"deny\"},"
		       "{\"id\":\"secret\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"read\"]},"
		       "\"decision\":\"deny\"}"));
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	if (!ASSERT_OK(kg_image_compile(doc, NULL, &img), "compiles"))
		return;
	snprintf(path, sizeof(path), "%s/secret", tmp);
	f = file_entry(&img, path);
	if (ASSERT_TRUE(f != NULL, "an entry keyed by the file's (device, inode)")) {
		ASSERT_EQ(f->key.policy_id, 0u, "no policy id yet: the install stamps it");
		ASSERT_EQ(f->val.ent[0].rule_id, 2u, "rule 2 = runtime[1]");
		ASSERT_EQ(f->val.ent[0].decision, KG_DEC_DENY, "deny");
		ASSERT_TRUE(f->val.ent[0].ops & KG_OP_BIT(KG_OP_READ), "read");
		ASSERT_FALSE(f->val.ent[0].ops & KG_OP_BIT(KG_OP_EXEC), "not exec");
		ASSERT_EQ(f->val.ent[0].flags, 0u, "exact: not a subtree, not a guard");
		ASSERT_EQ(f->val.ent[1].rule_id, 0u, "one rule on it");
	}
	/* the directory holding it: a guard against renaming it away */
	g = file_entry(&img, tmp);
	if (ASSERT_TRUE(g != NULL, "the directory above is guarded")) {
		ASSERT_EQ(g->val.ent[0].rule_id, 2u, "by rule 2");
		ASSERT_EQ(g->val.ent[0].flags, KG_FILE_F_GUARD, "as a guard");
		ASSERT_EQ(g->val.ent[0].ops, KG_OP_BIT(KG_OP_RENAME) | KG_OP_BIT(KG_OP_UNLINK),
			  "rename and unlink");
		ASSERT_EQ(g->val.ent[0].decision, KG_DEC_DENY, "refused");
	}
	ASSERT_EQ(img.nname, 0u, "the file exists: no name entry");
	kg_image_free(&img);
	kg_policy_free(doc);
	cleanup();
}

TEST(an_allow_on_a_directory_is_one_subtree_entry_without_guards)
{
	struct kg_policy_doc *doc;
	const struct kg_image_file *d;
	struct kg_image img;
	char path[128];

	setup();
	/* an allow on a directory: a subtree entry, no guards (allow does not
	 * protect its place) */
	doc = doc_of(P("{\"id\":\"ws\",\"file\":{\"prefix\":\"~/dir\","
		       "\"ops\":[\"read\",\"write\"]},\"decision\":\"allow\"}"));
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	if (!ASSERT_OK(kg_image_compile(doc, NULL, &img), "compiles"))
		return;
	snprintf(path, sizeof(path), "%s/dir", tmp);
	d = file_entry(&img, path);
	if (ASSERT_TRUE(d != NULL, "the directory's entry")) {
		ASSERT_EQ(d->val.ent[0].rule_id, 1u, "rule 1");
		ASSERT_EQ(d->val.ent[0].flags, KG_FILE_F_SUBTREE, "a subtree");
		ASSERT_EQ(d->val.ent[0].decision, KG_DEC_ALLOW, "allow");
	}
	ASSERT_EQ(img.nfile, 1u, "nothing else: an allow guards no ancestor");
	kg_image_free(&img);
	kg_policy_free(doc);
	cleanup();
}

TEST(a_missing_path_is_keyed_by_name_under_its_deepest_existing_ancestor)
{
	struct kg_policy_doc *doc;
	struct kg_image img;
	uint64_t dev, ino;

	setup();
	doc = doc_of(P("{\"id\":\"later\",\"file\":{\"path\":\"~/not-yet/deeper\",\"ops\":[\"read\"]},"
		       "\"decision\":\"deny\"},"
		       "{\"id\":\"moot\",\"file\":{\"path\":\"~/nothing\",\"ops\":[\"read\"]},"
		       "\"decision\":\"allow\"}"));
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	if (!ASSERT_OK(kg_image_compile(doc, NULL, &img), "compiles"))
		return;
	ASSERT_EQ(img.name_rules, 1u, "one rule keyed by name");
	if (ASSERT_EQ(img.nname, 1u, "one name entry") && ASSERT_TRUE(ident(tmp, &dev, &ino), "stat")) {
		ASSERT_TRUE(img.name[0].key.dev == dev && img.name[0].key.ino == ino,
			    "under the deepest directory that exists");
		ASSERT_EQ(img.name[0].key.name_hash, kg_hash_bytes("not-yet", 7),
			  "the first missing component's name");
		ASSERT_EQ(img.name[0].val.rule_id, 1u, "rule 1");
		ASSERT_EQ(img.name[0].val.ops, KG_OP_BIT(KG_OP_CREATE) | KG_OP_BIT(KG_OP_RENAME) |
			  KG_OP_BIT(KG_OP_LINK), "its creation, by any means");
		ASSERT_EQ(img.name[0].val.decision, KG_DEC_DENY, "refused");
	}
	ASSERT_TRUE(has_note(&img, 1, "does not exist: creating it is refused"), "said for rule 1");
	ASSERT_TRUE(has_note(&img, 2, "no effect until it does"), "an allow on nothing is said");
	kg_image_free(&img);
	kg_policy_free(doc);
	cleanup();
}

TEST(a_deny_connect_rule_yields_a_net_entry_with_its_port_and_prefix)
{
	struct kg_policy_doc *doc;
	const struct kg_image_net *n16, *n8;
	struct kg_image img;

	setup();
	doc = doc_of(P("{\"id\":\"narrow\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[443],"
		       "\"proto\":\"tcp\"},\"decision\":\"deny\"},"
		       "{\"id\":\"wide\",\"net\":{\"cidr\":\"10.0.0.0/8\"},\"decision\":\"audit\"}"));
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	if (!ASSERT_OK(kg_image_compile(doc, NULL, &img), "compiles"))
		return;
	ASSERT_EQ(img.nnet, 2u, "one entry per prefix");
	n16 = net_entry(&img, "10.20.0.0", 16);
	n8 = net_entry(&img, "10.0.0.0", 8);
	if (ASSERT_TRUE(n16 != NULL, "10.20.0.0/16 (v4-mapped, 32 + 96 + 16 bits)")) {
		ASSERT_EQ(n16->key.policy_id, 0u, "no policy id yet");
		ASSERT_EQ(n16->val.ent[0].rule_id, 1u, "its own rule first: rule 1");
		ASSERT_EQ(n16->val.ent[0].decision, KG_DEC_DENY, "deny");
		ASSERT_TRUE(n16->val.ent[0].port_lo == 443 && n16->val.ent[0].port_hi == 443,
			    "port 443");
		ASSERT_EQ(n16->val.ent[0].proto, 6, "tcp");
		ASSERT_EQ(n16->val.ent[0].ops, KG_NET_OP_CONNECT | KG_NET_OP_SEND,
			  "no op named: connect and send");
		ASSERT_EQ(n16->val.ent[1].rule_id, 2u, "then the covering /8's: rule 2");
		ASSERT_EQ(n16->val.ent[1].decision, KG_DEC_AUDIT, "audit");
		ASSERT_EQ(n16->val.ent[2].rule_id, 0u, "nothing else");
	}
	if (ASSERT_TRUE(n8 != NULL, "10.0.0.0/8")) {
		ASSERT_EQ(n8->val.ent[0].rule_id, 2u, "only rule 2");
		ASSERT_TRUE(n8->val.ent[0].port_lo == 0 && n8->val.ent[0].port_hi == 65535,
			    "every port");
		ASSERT_EQ(n8->val.ent[1].rule_id, 0u, "one entry");
	}
	ASSERT_EQ(img.nfile, 0u, "no file entry");
	kg_image_free(&img);
	kg_policy_free(doc);
	cleanup();
}

TEST(abstract_sockets_and_throttles_carry_their_rule_numbers)
{
	struct kg_policy_doc *doc;
	struct kg_image img;

	setup();
	doc = doc_of(P("{\"id\":\"a\",\"net\":{\"cidr\":\"192.0.2.0/24\"},\"decision\":\"deny\"},"
		       "{\"id\":\"bus\",\"net\":{\"unix_abstract\":\"some-bus\"},\"decision\":\"deny\"},"
		       "{\"id\":\"slow\",\"net\":{\"cidr\":\"198.51.100.0/24\"},"
		       "\"decision\":\"throttle\",\"throttle\":{\"rate_per_sec\":5,\"burst\":10}}"));
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	if (!ASSERT_OK(kg_image_compile(doc, NULL, &img), "compiles"))
		return;
	if (ASSERT_EQ(img.nunix, 1u, "one abstract socket")) {
		ASSERT_EQ(img.unix_abstract[0].key.name_hash, kg_hash_bytes("some-bus", 8),
			  "keyed by its name's hash");
		ASSERT_EQ(img.unix_abstract[0].val.rule_id, 2u, "rule 2 = runtime[1]");
		ASSERT_EQ(img.unix_abstract[0].val.ops, KG_OP_BIT(KG_OP_UNIX_CONNECT), "connect");
		ASSERT_EQ(img.unix_abstract[0].val.decision, KG_DEC_DENY, "deny");
	}
	if (ASSERT_EQ(img.nparam, 1u, "one throttled rule")) {
		ASSERT_EQ(img.param[0].key.rule_id, 3u, "rule 3 = runtime[2]");
		ASSERT_EQ(img.param[0].val.rate_per_sec, 5u, "its rate");
		ASSERT_EQ(img.param[0].val.burst, 10u, "its burst");
	}
	ASSERT_EQ(img.nnet, 2u, "two prefixes");
	kg_image_free(&img);
	kg_policy_free(doc);
	cleanup();
}

TEST(the_policy_entry_carries_defaults_and_parameters)
{
	struct kg_policy_doc *doc;
	struct kg_image img;

	setup();
	doc = doc_of("{\"version\":1,\"name\":\"p\",\"fail_mode\":\"open\","
		     "\"runtime_defaults\":{\"net\":\"deny\",\"file\":\"allow\"},"
		     "\"runtime\":["
		     "{\"id\":\"secret\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"read\",\"write\"]},"
		     "\"decision\":\"deny\"},"
		     "{\"id\":\"sockets\",\"socket\":{\"families\":[\"inet\",\"unix\"]},"
		     "\"decision\":\"deny\"}]}");
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	if (!ASSERT_OK(kg_image_compile(doc, NULL, &img), "compiles"))
		return;
	ASSERT_EQ(img.policy.serial, 0u, "no serial yet: the install makes one");
	ASSERT_EQ(img.policy.default_decision[KG_CLASS_NET], KG_DEC_DENY, "net default");
	ASSERT_EQ(img.policy.default_decision[KG_CLASS_FILE], KG_DEC_ALLOW, "file default");
	ASSERT_TRUE(img.policy.flags & KG_POL_F_FAIL_OPEN, "fail open");
	ASSERT_TRUE(img.policy.flags & KG_POL_F_EXEC_NO_FILELESS, "fileless exec refused");
	ASSERT_EQ(img.policy.heartbeat_timeout_ns, 10000000000ull, "10 s heartbeat timeout");
	ASSERT_EQ(img.policy.file_ops_ruled, doc->rules[0].ops, "the ops the file rule names");
	ASSERT_TRUE(img.policy.file_ops_ruled & KG_OP_BIT(KG_OP_WRITE), "write among them");
	ASSERT_EQ(img.policy.socket_family_allow, (uint64_t)((1u << AF_INET) | (1u << AF_UNIX)),
		  "the socket rule's families");
	ASSERT_EQ(img.policy.socket_rule_id, 2u, "the socket rule: rule 2");
	ASSERT_EQ(img.policy.caps_allow, kg_caps_kept() | doc->system_access, "capabilities kept");
	ASSERT_EQ(img.policy.icmp_allow, 0, "ping refused: the net default refuses");
	kg_image_free(&img);
	kg_policy_free(doc);
	cleanup();
}

TEST(too_many_entries_on_one_prefix_is_refused_naming_the_rule)
{
	struct kg_policy_doc *doc;
	struct kg_image img;
	char *said;
	int err;

	setup();
	/* the /16 needs its port plus the /8's eight: more than KG_NET_ENTS */
	doc = doc_of(P("{\"id\":\"secret\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"read\"]},"
		       "\"decision\":\"deny\"},"
		       "{\"id\":\"wide\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[1,2,3,4,5,6,7,8]},"
		       "\"decision\":\"deny\"},"
		       "{\"id\":\"narrow\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[9]},"
		       "\"decision\":\"deny\"}"));
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	capture_start();
	err = kg_image_compile(doc, NULL, &img);
	said = capture_end();
	ASSERT_EQ(err, -E2BIG, "refused: too big for the map's value");
	ASSERT_HAS_SUBSTR(said, "rule 'narrow'", "the error names the rule");
	ASSERT_HAS_SUBSTR(said, "more than 8 entries", "and the limit");
	ASSERT_TRUE(img.nfile == 0 && img.nnet == 0 && !img.file && !img.net && !img.notes,
		    "the image is left empty");
	free(said);
	kg_policy_free(doc);
	cleanup();
}

TEST(too_many_rules_on_one_file_is_refused_naming_the_limit)
{
	struct kg_policy_doc *doc;
	struct kg_image img;
	char *said;
	int err;

	setup();
	doc = doc_of(P("{\"id\":\"r1\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"read\"]},"
		       "\"decision\":\"audit\"},"
		       "{\"id\":\"r2\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"write\"]},"
		       "\"decision\":\"audit\"},"
		       "{\"id\":\"r3\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"rename\"]},"
		       "\"decision\":\"audit\"},"
		       "{\"id\":\"r4\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"truncate\"]},"
		       "\"decision\":\"audit\"},"
		       "{\"id\":\"r5\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"unlink\"]},"
		       "\"decision\":\"audit\"}"));
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	capture_start();
	err = kg_image_compile(doc, NULL, &img);
	said = capture_end();
	ASSERT_EQ(err, -E2BIG, "refused");
	ASSERT_HAS_SUBSTR(said, "more than 4 rules on one file (rule '5'", "said, naming rule 5");
	ASSERT_TRUE(img.nfile == 0 && !img.file, "the image is left empty");
	free(said);
	kg_policy_free(doc);
	/* four fit */
	doc = doc_of(P("{\"id\":\"r1\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"read\"]},"
		       "\"decision\":\"audit\"},"
		       "{\"id\":\"r2\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"write\"]},"
		       "\"decision\":\"audit\"},"
		       "{\"id\":\"r3\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"rename\"]},"
		       "\"decision\":\"audit\"},"
		       "{\"id\":\"r4\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"truncate\"]},"
		       "\"decision\":\"audit\"}"));
	if (ASSERT_TRUE(doc != NULL, "four parse") &&
	    ASSERT_OK(kg_image_compile(doc, NULL, &img), "four rules on one file fit")) {
		char path[128];
		const struct kg_image_file *f;

		snprintf(path, sizeof(path), "%s/secret", tmp);
		f = file_entry(&img, path);
		if (ASSERT_TRUE(f != NULL, "the file's entry"))
			ASSERT_TRUE(f->val.ent[0].rule_id == 1 && f->val.ent[1].rule_id == 2 &&
				    f->val.ent[2].rule_id == 3 && f->val.ent[3].rule_id == 4,
				    "in policy order");
		kg_image_free(&img);
	}
	kg_policy_free(doc);
	cleanup();
}

/* Every entry names a rule of a kind that belongs in its map. */
static void entries_trace_to_rules(const struct kg_policy_doc *doc, const struct kg_image *img,
				   const char *name)
{
	size_t i, bad = 0;
	int k;

	for (i = 0; i < img->nfile; i++)
		for (k = 0; k < KG_FILE_ENTS && img->file[i].val.ent[k].rule_id; k++) {
			const struct kg_rule *r = kg_policy_rule_by_num(doc,
							img->file[i].val.ent[k].rule_id);

			bad += !r || (r->kind != KG_RULE_FILE && r->kind != KG_RULE_EXEC &&
				      r->kind != KG_RULE_UNIX);
		}
	for (i = 0; i < img->nname; i++) {
		const struct kg_rule *r = kg_policy_rule_by_num(doc, img->name[i].val.rule_id);

		bad += !r || r->kind == KG_RULE_NET;
	}
	for (i = 0; i < img->nnet; i++)
		for (k = 0; k < KG_NET_ENTS && img->net[i].val.ent[k].rule_id; k++) {
			const struct kg_rule *r = kg_policy_rule_by_num(doc,
							img->net[i].val.ent[k].rule_id);

			bad += !r || r->kind != KG_RULE_NET;
		}
	for (i = 0; i < img->nparam; i++) {
		const struct kg_rule *r = kg_policy_rule_by_num(doc, img->param[i].key.rule_id);

		bad += !r || r->decision != KG_DEC_THROTTLE;
	}
	ASSERT_EQ(bad, 0u, name);
}

/* Each rule that must reach the maps did: a net rule in a net entry with
 * its number, a restricting file rule in a file or name entry. */
static void rules_reach_entries(const struct kg_policy_doc *doc, const struct kg_image *img,
				const char *name)
{
	size_t i, j, missing = 0;
	int k;

	for (i = 0; i < doc->nrules; i++) {
		const struct kg_rule *r = &doc->rules[i];
		bool found = false;

		if (r->kind == KG_RULE_NET) {
			for (j = 0; j < img->nnet && !found; j++)
				for (k = 0; k < KG_NET_ENTS; k++)
					found |= img->net[j].val.ent[k].rule_id == r->num;
		} else if ((r->kind == KG_RULE_FILE || r->kind == KG_RULE_EXEC) &&
			   r->decision == KG_DEC_DENY) {
			for (j = 0; j < img->nfile && !found; j++)
				for (k = 0; k < KG_FILE_ENTS; k++)
					found |= img->file[j].val.ent[k].rule_id == r->num &&
						 !(img->file[j].val.ent[k].flags & KG_FILE_F_GUARD);
			for (j = 0; j < img->nname && !found; j++)
				found = img->name[j].val.rule_id == r->num;
		} else {
			continue;
		}
		if (!found) {
			printf("  %s: rule %u '%s' has no entry\n", name, r->num, r->id);
			missing++;
		}
	}
	ASSERT_EQ(missing, 0u, name);
}

static bool same(const void *a, const void *b, size_t len)
{
	return !len || !memcmp(a, b, len);
}

TEST(the_shipped_policies_compile_and_every_entry_traces_to_its_rule)
{
	const char *src = getenv("KGATE_SRC");
	const char *names[] = { "default", "coding-agent", "mcp-server", "demo" };
	size_t i;

	setup();
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct kg_policy_error perr;
		struct kg_policy_doc *doc;
		struct kg_image img, again;
		char path[512], msg[1024];

		snprintf(path, sizeof(path), "%s/policies/%s.json", src ? src : ".", names[i]);
		doc = kg_policy_load_file(path, tmp, &perr);
		if (!doc) {
			kg_policy_error_format(&perr, msg, sizeof(msg));
			ASSERT_TRUE(false, msg);
			continue;
		}
		if (ASSERT_OK(kg_image_compile(doc, NULL, &img), names[i])) {
			entries_trace_to_rules(doc, &img, names[i]);
			rules_reach_entries(doc, &img, names[i]);
			ASSERT_TRUE(img.nfile + img.nname > 0, "file rules reach the maps");
			if (ASSERT_OK(kg_image_compile(doc, NULL, &again), "compiles again")) {
				ASSERT_TRUE(again.nfile == img.nfile && again.nnet == img.nnet &&
					    again.nname == img.nname &&
					    same(again.file, img.file, img.nfile * sizeof(*img.file)) &&
					    same(again.net, img.net, img.nnet * sizeof(*img.net)) &&
					    !memcmp(&again.policy, &img.policy, sizeof(img.policy)),
					    "the same image twice: a function of the document");
				kg_image_free(&again);
			}
			kg_image_free(&img);
		}
		kg_policy_free(doc);
	}
	cleanup();
}
