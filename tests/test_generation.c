// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_generation.c - kernel/generation.c on this host's kernel (the maps
 * load whether or not BPF LSM is there): an install writes the image under
 * a fresh policy id and saves its snapshot; when any step fails nothing is
 * left, neither entries nor a snapshot, and the step is named; discarding
 * a generation removes both.  Each test has a private pin dir (its maps
 * start empty) and a private state dir (where snapshots go).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common.h"
#include "kernel/generation.h"
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "record/recorder.h"
#include "testlib.h"

static char pindir[256], tmp[64];

static struct kg_loader *open_private(void)
{
	struct kg_loader_opts lo = { .want_lsm = false };
	struct kg_loader *l;
	char state[128];

	if (getuid() != 0)
		SKIP("needs root (BPF)");
	strcpy(tmp, "/tmp/kgate-test-generation.XXXXXX");
	if (!mkdtemp(tmp))
		SKIP("mkdtemp");
	snprintf(state, sizeof(state), "%s/state", tmp);
	mkdir(state, 0700);
	setenv("KGATE_STATE_DIR", state, 1);
	snprintf(pindir, sizeof(pindir), "/sys/fs/bpf/kgate-test-generation-%d", getpid());
	setenv("KGATE_BPFFS", pindir, 1);
	l = kg_loader_open(&lo);
	if (!l)
		SKIP("cannot load kgate's BPF objects here: %s", strerror(errno));
	return l;
}

static void close_private(struct kg_loader *l)
{
	char cmd[128];

	kg_loader_close(l);
	kg_loader_unpin_all();
	rmdir(pindir);
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

/* entries of a map (all generations) */
static int count_entries(struct kg_loader *l, const char *map, size_t key_size)
{
	unsigned char cur[64], next[64];
	int fd = kg_loader_map_fd(l, map), n = 0;
	bool first = true;

	if (fd < 0)
		SKIP("map %s not loaded", map);
	while (bpf_map_get_next_key(fd, first ? NULL : cur, next) == 0) {
		first = false;
		memcpy(cur, next, key_size);
		n++;
	}
	return n;
}

static bool snapshot_exists(uint32_t id)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/state/policies/%u.json", tmp, id);
	return access(path, F_OK) == 0;
}

/* files in <state>/policies (snapshots and leftovers) */
static int snapshot_files(void)
{
	char cmd[256];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s/state/policies' 2>/dev/null | wc -l", tmp);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

#define POLICY								\
	"{\"version\":1,\"name\":\"gen\",\"runtime\":["			\
	"{\"id\":\"narrow\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[443]},\"decision\":\"deny\"}," \
	"{\"id\":\"later\",\"file\":{\"path\":\"~/not-yet\",\"ops\":[\"read\"]},\"decision\":\"deny\"}" \
	"]}"

TEST(an_install_writes_the_maps_and_the_snapshot_under_one_fresh_id)
{
	struct kg_loader *l = open_private();
	struct kg_policy_doc *doc = doc_of(POLICY), *back;
	struct kg_generation a, b;
	struct kg_policy pol;

	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	if (!ASSERT_OK(kg_generation_install(l, doc, &a), "install"))
		return;
	ASSERT_TRUE(a.policy_id != 0, "a policy id");
	ASSERT_EQ(a.failed, KG_GEN_DONE, "no failed step");
	ASSERT_EQ(a.report.net_entries, 1u, "the report: one prefix");
	ASSERT_EQ(a.report.name_entries, 1u, "one rule keyed by name");
	ASSERT_TRUE(a.report.nnotes >= 1 && a.report.notes[0].rule_num == 2,
		    "the note on the missing path, for rule 2");
	ASSERT_OK(bpf_map_lookup_elem(kg_loader_map_fd(l, "kg_policies"), &a.policy_id, &pol),
		  "its kg_policies entry");
	ASSERT_TRUE(pol.serial != 0, "with a serial of its own");
	ASSERT_TRUE(snapshot_exists(a.policy_id), "its snapshot, under the same id");
	back = kg_snapshot_load_doc(a.policy_id);
	if (ASSERT_TRUE(back != NULL, "the snapshot reads back")) {
		ASSERT_STREQ(back->hash, doc->hash, "as the same document");
		kg_policy_free(back);
	}
	ASSERT_OK(kg_generation_install(l, doc, &b), "a second install of the same document");
	ASSERT_TRUE(b.policy_id != a.policy_id, "a fresh id");
	ASSERT_TRUE(snapshot_exists(b.policy_id), "a snapshot of its own");
	ASSERT_EQ(count_entries(l, "kg_net_rules", sizeof(struct kg_net_key)), 2,
		  "two generations, one prefix each");
	kg_generation_free(&a);
	kg_generation_free(&b);
	kg_policy_free(doc);
	close_private(l);
}

TEST(a_snapshot_that_cannot_be_written_leaves_no_entries)
{
	struct kg_loader *l = open_private();
	struct kg_policy_doc *doc = doc_of(POLICY);
	struct kg_generation gen;
	char path[256];
	int fd, err;

	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	/* <state>/policies is a file: no snapshot can go there */
	snprintf(path, sizeof(path), "%s/state/policies", tmp);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	err = kg_generation_install(l, doc, &gen);
	ASSERT_TRUE(err < 0 && err != -1, "refused with an errno");
	ASSERT_EQ(gen.failed, KG_GEN_SNAPSHOT, "at the snapshot");
	ASSERT_EQ(gen.policy_id, 0u, "no id handed out");
	ASSERT_EQ(count_entries(l, "kg_policies", sizeof(uint32_t)), 0,
		  "the kg_policies entry written before was removed");
	ASSERT_EQ(count_entries(l, "kg_net_rules", sizeof(struct kg_net_key)), 0,
		  "and the net entry");
	ASSERT_EQ(count_entries(l, "kg_name_rules", sizeof(struct kg_name_key)), 0,
		  "and the name entry");
	kg_generation_free(&gen);
	kg_policy_free(doc);
	close_private(l);
}

TEST(a_policy_the_maps_cannot_hold_leaves_no_snapshot)
{
	struct kg_loader *l = open_private();
	struct kg_policy_doc *doc;
	struct kg_generation gen;
	int err;

	/* the /16 needs its port plus the /8's eight: more than KG_NET_ENTS */
	doc = doc_of("{\"version\":1,\"name\":\"full\",\"runtime\":["
		     "{\"id\":\"wide\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[1,2,3,4,5,6,7,8]},"
		     "\"decision\":\"deny\"},"
		     "{\"id\":\"narrow\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[9]},"
		     "\"decision\":\"deny\"}]}");
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	err = kg_generation_install(l, doc, &gen);
	ASSERT_EQ(err, -E2BIG, "refused: too big for the maps");
	ASSERT_EQ(gen.failed, KG_GEN_COMPILE, "at the compile");
	ASSERT_EQ(gen.policy_id, 0u, "no id");
	ASSERT_TRUE(snapshot_files() <= 0, "no snapshot");
	ASSERT_EQ(count_entries(l, "kg_policies", sizeof(uint32_t)), 0, "no kg_policies entry");
	ASSERT_EQ(count_entries(l, "kg_net_rules", sizeof(struct kg_net_key)), 0, "no net entry");
	kg_generation_free(&gen);
	kg_policy_free(doc);
	close_private(l);
}

TEST(discarding_a_generation_removes_its_entries_and_its_snapshot)
{
	struct kg_loader *l = open_private();
	struct kg_policy_doc *doc = doc_of(POLICY);
	struct kg_generation keep, drop;

	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	if (!ASSERT_OK(kg_generation_install(l, doc, &keep), "install one") ||
	    !ASSERT_OK(kg_generation_install(l, doc, &drop), "and another"))
		return;
	kg_generation_discard(l, drop.policy_id);
	ASSERT_FALSE(snapshot_exists(drop.policy_id), "its snapshot is gone");
	ASSERT_TRUE(snapshot_exists(keep.policy_id), "the other's stays");
	ASSERT_EQ(count_entries(l, "kg_policies", sizeof(uint32_t)), 1, "one kg_policies entry left");
	ASSERT_EQ(count_entries(l, "kg_net_rules", sizeof(struct kg_net_key)), 1, "one net entry left");
	ASSERT_EQ(count_entries(l, "kg_name_rules", sizeof(struct kg_name_key)), 1,
		  "one name entry left");
	kg_generation_free(&keep);
	kg_generation_free(&drop);
	kg_policy_free(doc);
	close_private(l);
}
