// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_maps.c - maps.c on this host's kernel (the maps load whether or not
 * BPF LSM is there): a policy compiles into the entries the hooks look up
 * (rule number = index + 1, net entries ordered narrow prefix first, file
 * rules keyed by the superblock's device and inode), each generation apart
 * from the others; a failed install leaves nothing behind; a job flips
 * generations in one update; grants nobody can use any more are swept.
 * Every test uses a private pin dir, so its maps start empty.
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
#include "kernel/loader.h"
#include "kernel/maps.h"
#include "policy/policy.h"
#include "testlib.h"

static char pindir[256], tmp[64];

static struct kg_loader *open_private(void)
{
	struct kg_loader_opts lo = { .want_lsm = false };
	struct kg_loader *l;

	if (getuid() != 0)
		SKIP("needs root (BPF)");
	snprintf(pindir, sizeof(pindir), "/sys/fs/bpf/kgate-test-maps-%d", getpid());
	setenv("KGATE_BPFFS", pindir, 1);
	l = kg_loader_open(&lo);
	if (!l)
		SKIP("cannot load kgate's BPF objects here: %s", strerror(errno));
	strcpy(tmp, "/tmp/kgate-test-maps.XXXXXX");
	if (!mkdtemp(tmp))
		SKIP("mkdtemp");
	return l;
}

static void close_private(struct kg_loader *l)
{
	char path[128];

	kg_loader_close(l);
	kg_loader_unpin_all();
	rmdir(pindir);
	snprintf(path, sizeof(path), "%s/secret", tmp);
	unlink(path);
	rmdir(tmp);
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

static int fd_of(struct kg_loader *l, const char *name)
{
	int fd = kg_loader_map_fd(l, name);

	if (fd < 0)
		SKIP("map %s not loaded", name);
	return fd;
}

/* entries of a map whose key starts with (or, for the LPM trie, holds at
 * offset 4 big endian) policy id pid; pid 0 = all */
static int count_entries(int fd, size_t key_size, bool net, uint32_t pid)
{
	unsigned char cur[64], next[64];
	bool first = true;
	int n = 0;

	while (bpf_map_get_next_key(fd, first ? NULL : cur, next) == 0) {
		uint32_t id;

		first = false;
		memcpy(cur, next, key_size);
		memcpy(&id, next + (net ? 4 : 0), sizeof(id));
		if (net)
			id = ntohl(id);
		n += !pid || id == pid;
	}
	return n;
}

static int net_lookup(int fd, uint32_t pid, const char *ip4, struct kg_net_rule *out)
{
	struct kg_net_key key = { .prefixlen = 32 + 128, .policy_id = htonl(pid) };

	key.addr[10] = key.addr[11] = 0xff;
	inet_pton(AF_INET, ip4, key.addr + 12);
	return bpf_map_lookup_elem(fd, &key, out) ? -errno : 0;
}

#define NET_POLICY							\
	"{\"version\":1,\"name\":\"maps\",\"runtime_defaults\":{\"net\":\"allow\"},"	\
	"\"runtime\":["							\
	"{\"id\":\"narrow\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[443],\"proto\":\"tcp\"}," \
	"\"decision\":\"deny\"},"					\
	"{\"id\":\"wide\",\"net\":{\"cidr\":\"10.0.0.0/8\"},\"decision\":\"audit\"},"	\
	"{\"id\":\"secret\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"read\"]},\"decision\":\"deny\"}," \
	"{\"id\":\"later\",\"file\":{\"path\":\"~/not-yet\",\"ops\":[\"read\"]},\"decision\":\"deny\"}" \
	"]}"

TEST(compiled_entries_carry_rule_numbers_and_stay_in_their_generation)
{
	struct kg_loader *l = open_private();
	struct kg_compile_report rep = {};
	struct kg_policy_doc *doc;
	struct kg_net_rule nr;
	struct kg_file_rule fr;
	struct kg_file_key fk = {};
	struct kg_policy pol;
	struct statx stx;
	uint32_t id1 = 0, id2 = 0;
	char path[128];
	bool found = false;
	int k, fd, nfd, ffd, pfd;

	snprintf(path, sizeof(path), "%s/secret", tmp);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	doc = doc_of(NET_POLICY);
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	nfd = fd_of(l, "kg_net_rules");
	ffd = fd_of(l, "kg_file_rules");
	pfd = fd_of(l, "kg_policies");
	ASSERT_OK(kg_maps_install(l, doc, &id1, &rep), "install");
	ASSERT_TRUE(id1 != 0, "a policy id");
	ASSERT_EQ(rep.net_entries, 2u, "two prefixes");
	ASSERT_GE(rep.file_entries, 1u, "the file (and guards on its ancestors)");
	ASSERT_EQ(rep.name_entries, 1u, "the missing file keyed by name");
	kg_compile_report_free(&rep);

	/* kg_policies: the class defaults */
	ASSERT_OK(bpf_map_lookup_elem(pfd, &id1, &pol), "kg_policies entry");
	ASSERT_EQ(pol.default_decision[KG_CLASS_NET], KG_DEC_ALLOW, "net default");
	/* a /16 address: its own rule first, then the /8's */
	if (ASSERT_OK(net_lookup(nfd, id1, "10.20.1.1", &nr), "10.20.1.1 found")) {
		ASSERT_EQ(nr.ent[0].rule_id, 1u, "rule 1 = runtime[0]");
		ASSERT_EQ(nr.ent[0].decision, KG_DEC_DENY, "deny");
		ASSERT_TRUE(nr.ent[0].port_lo == 443 && nr.ent[0].port_hi == 443 &&
			    nr.ent[0].proto == 6, "port 443 tcp");
		ASSERT_EQ(nr.ent[1].rule_id, 2u, "then rule 2, the covering /8");
		ASSERT_EQ(nr.ent[1].decision, KG_DEC_AUDIT, "audit");
		ASSERT_EQ(nr.ent[2].rule_id, 0u, "nothing else");
	}
	if (ASSERT_OK(net_lookup(nfd, id1, "10.1.1.1", &nr), "10.1.1.1 found")) {
		ASSERT_EQ(nr.ent[0].rule_id, 2u, "only the /8");
		ASSERT_TRUE(nr.ent[0].port_lo == 0 && nr.ent[0].port_hi == 65535, "any port");
		ASSERT_EQ(nr.ent[1].rule_id, 0u, "one entry");
	}
	ASSERT_EQ(net_lookup(nfd, id1, "11.0.0.1", &nr), -ENOENT, "outside every rule");
	ASSERT_EQ(net_lookup(nfd, id1 + 1000, "10.20.1.1", &nr), -ENOENT,
		  "not under another policy id");
	/* the file: keyed by (superblock device, inode) */
	if (ASSERT_OK(statx(AT_FDCWD, path, 0, STATX_INO, &stx), "statx")) {
		fk.policy_id = id1;
		fk.dev = ((uint64_t)stx.stx_dev_major << 20) | stx.stx_dev_minor;
		fk.ino = stx.stx_ino;
		if (ASSERT_OK(bpf_map_lookup_elem(ffd, &fk, &fr), "file entry")) {
			for (k = 0; k < KG_FILE_ENTS; k++)
				found |= fr.ent[k].rule_id == 3 && fr.ent[k].decision == KG_DEC_DENY &&
					 (fr.ent[k].ops & KG_OP_BIT(KG_OP_READ));
			ASSERT_TRUE(found, "rule 3 denies read");
		}
	}

	/* a second generation of the same document: apart from the first */
	ASSERT_OK(kg_maps_install(l, doc, &id2, NULL), "install again");
	ASSERT_TRUE(id2 != id1, "a fresh id");
	ASSERT_EQ(count_entries(nfd, sizeof(struct kg_net_key), true, id2), 2, "its own net entries");
	ASSERT_OK(kg_maps_remove_policy(l, id1), "remove the first");
	ASSERT_NEQ(bpf_map_lookup_elem(pfd, &id1, &pol), 0, "kg_policies entry gone");
	ASSERT_EQ(count_entries(nfd, sizeof(struct kg_net_key), true, id1), 0, "net entries gone");
	ASSERT_EQ(count_entries(ffd, sizeof(struct kg_file_key), false, id1), 0, "file entries gone");
	ASSERT_OK(net_lookup(nfd, id2, "10.20.1.1", &nr), "the second untouched");
	ASSERT_OK(bpf_map_lookup_elem(pfd, &id2, &pol), "its kg_policies entry too");
	kg_policy_free(doc);
	close_private(l);
}

TEST(a_failed_install_leaves_nothing)
{
	struct kg_loader *l = open_private();
	struct kg_policy_doc *doc;
	uint32_t id = 0;
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/secret", tmp);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	/* the /16 needs its port plus the /8's eight: more than KG_NET_ENTS */
	doc = doc_of("{\"version\":1,\"name\":\"full\",\"runtime\":["
		     "{\"id\":\"secret\",\"file\":{\"path\":\"~/secret\",\"ops\":[\"read\"]},"
		     "\"decision\":\"deny\"},"
		     "{\"id\":\"wide\",\"net\":{\"cidr\":\"10.0.0.0/8\",\"ports\":[1,2,3,4,5,6,7,8]},"
		     "\"decision\":\"deny\"},"
		     "{\"id\":\"narrow\",\"net\":{\"cidr\":\"10.20.0.0/16\",\"ports\":[9]},"
		     "\"decision\":\"deny\"}]}");
	if (!ASSERT_TRUE(doc != NULL, "policy parses"))
		return;
	ASSERT_TRUE(kg_maps_install(l, doc, &id, NULL) < 0, "refused");
	ASSERT_EQ(id, 0u, "no id handed out");
	ASSERT_EQ(count_entries(fd_of(l, "kg_file_rules"), sizeof(struct kg_file_key), false, 0), 0,
		  "the file entry written first was removed");
	ASSERT_EQ(count_entries(fd_of(l, "kg_net_rules"), sizeof(struct kg_net_key), true, 0), 0,
		  "no net entry");
	ASSERT_EQ(count_entries(fd_of(l, "kg_policies"), sizeof(uint32_t), false, 0), 0,
		  "no kg_policies entry: the generation never became usable");
	kg_policy_free(doc);
	close_private(l);
}

TEST(a_job_flips_generations_in_one_update)
{
	struct kg_loader *l = open_private();
	struct kg_policy_doc *doc = doc_of("{\"version\":1,\"name\":\"j\",\"runtime\":[]}");
	uint64_t cgid = 0x5eed0001;
	uint32_t a = 0, b = 0, old = 0;
	struct kg_job j;

	if (!ASSERT_TRUE(doc != NULL, "policy"))
		return;
	ASSERT_OK(kg_maps_install(l, doc, &a, NULL), "generation a");
	ASSERT_OK(kg_maps_install(l, doc, &b, NULL), "generation b");
	ASSERT_EQ(kg_maps_policy_in_use(l, a), 0, "a unused");
	ASSERT_OK(kg_maps_add_job(l, cgid, 42, a, KG_JOB_F_DEGRADED), "add");
	ASSERT_EQ(kg_maps_add_job(l, cgid, 43, b, 0), -EEXIST, "a cgroup is registered once");
	ASSERT_OK(kg_maps_get_job(l, cgid, &j), "get");
	ASSERT_TRUE(j.job_id == 42 && j.policy_id == a && j.flags == KG_JOB_F_DEGRADED,
		    "the first registration stands");
	ASSERT_EQ(kg_maps_policy_in_use(l, a), 1, "a in use");
	ASSERT_OK(kg_maps_switch_job(l, cgid, b, &old), "switch");
	ASSERT_EQ(old, a, "the old id returned");
	ASSERT_OK(kg_maps_get_job(l, cgid, &j), "get");
	ASSERT_TRUE(j.policy_id == b && j.job_id == 42, "b now, same job");
	ASSERT_EQ(kg_maps_policy_in_use(l, a), 0, "a free again");
	ASSERT_OK(kg_maps_remove_job(l, cgid), "remove");
	ASSERT_EQ(kg_maps_get_job(l, cgid, &j), -ENOENT, "gone");
	ASSERT_EQ(kg_maps_switch_job(l, cgid, a, &old), -ENOENT, "no switch of a job that is gone");
	ASSERT_OK(kg_maps_remove_job(l, cgid), "removing twice is fine");
	kg_policy_free(doc);
	close_private(l);
}

static struct kg_grant_key gkey(uint64_t cgid, uint16_t port)
{
	struct kg_grant_key k = { .cgid = cgid, .op = KG_OP_NET_CONNECT };

	k.target.net.port = port;
	k.target.net.proto = 6;
	return k;
}

TEST(grants_nobody_can_use_are_swept)
{
	struct kg_loader *l = open_private();
	uint64_t live = 0x5eed0002, gone = 0x5eed0003, now = kg_now_mono_ns();
	struct kg_grant g = { .uses_left = KG_GRANT_UNLIMITED }, out;
	struct kg_grant_key k;
	int gfd = fd_of(l, "kg_grants");

	ASSERT_OK(kg_maps_add_job(l, live, 1, 7, 0), "a job on generation 7");
	k = gkey(live, 1);
	g.policy_id = 7;
	ASSERT_OK(kg_maps_put_grant(l, &k, &g), "usable: its job, its generation");
	k = gkey(live, 2);
	g.policy_id = 6;
	ASSERT_OK(kg_maps_put_grant(l, &k, &g), "of an older generation");
	k = gkey(live, 3);
	g.policy_id = 7;
	g.uses_left = 0;
	ASSERT_OK(kg_maps_put_grant(l, &k, &g), "spent");
	k = gkey(live, 4);
	g.uses_left = 1;
	g.expires_ns = now - 1;
	ASSERT_OK(kg_maps_put_grant(l, &k, &g), "expired");
	k = gkey(live, 5);
	g.expires_ns = now + 3600ull * 1000000000ull;
	ASSERT_OK(kg_maps_put_grant(l, &k, &g), "one use left, an hour to go");
	k = gkey(gone, 1);
	ASSERT_OK(kg_maps_put_grant(l, &k, &g), "of a job that is not registered");

	ASSERT_EQ(kg_maps_sweep_grants(l, 0), 4, "four swept");
	k = gkey(live, 1);
	ASSERT_OK(bpf_map_lookup_elem(gfd, &k, &out), "the usable one stays");
	k = gkey(live, 5);
	ASSERT_OK(bpf_map_lookup_elem(gfd, &k, &out), "the one with a use left stays");
	ASSERT_EQ(count_entries(gfd, sizeof(struct kg_grant_key), false, 0), 2, "two left");
	/* the job ends: every grant of it goes */
	ASSERT_OK(kg_maps_remove_job(l, live), "job ends");
	ASSERT_EQ(count_entries(gfd, sizeof(struct kg_grant_key), false, 0), 0, "none left");
	close_private(l);
}

TEST(a_full_grant_map_makes_room_from_dead_grants_only)
{
	struct kg_loader *l = open_private();
	struct kg_grant g = { .uses_left = 0, .policy_id = 7 };
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), i;
	struct kg_grant_key k;
	int gfd = fd_of(l, "kg_grants"), jfd = fd_of(l, "kg_jobs");
	uint64_t cgid = 0x5eed0004;

	if (!ASSERT_OK(bpf_obj_get_info_by_fd(gfd, &info, &len), "info"))
		return;
	ASSERT_OK(kg_maps_add_job(l, cgid, 1, 7, 0), "job");
	for (i = 0; i < info.max_entries; i++) {
		k = gkey(cgid, 0);
		k.target.file.ino = i + 1;
		if (!ASSERT_OK(bpf_map_update_elem(gfd, &k, &g, BPF_NOEXIST), "fill with spent"))
			break;
	}
	k = gkey(cgid, 0);
	k.target.file.ino = 0xffffffffull;
	g.uses_left = KG_GRANT_UNLIMITED;
	ASSERT_OK(kg_grants_put_fd(gfd, jfd, &k, &g), "full of spent grants: room made");
	ASSERT_EQ(count_entries(gfd, sizeof(struct kg_grant_key), false, 0), 1,
		  "only the new grant left");
	/* full of usable grants: refused, nothing usable dropped */
	for (i = 0; i < info.max_entries - 1; i++) {
		k = gkey(cgid, 0);
		k.target.file.ino = i + 1;
		if (!ASSERT_OK(bpf_map_update_elem(gfd, &k, &g, BPF_NOEXIST), "fill with usable"))
			break;
	}
	k = gkey(cgid, 0);
	k.target.file.ino = 0xfffffffeull;
	ASSERT_EQ(kg_grants_put_fd(gfd, jfd, &k, &g), -E2BIG, "full of usable grants: -E2BIG");
	ASSERT_EQ(count_entries(gfd, sizeof(struct kg_grant_key), false, 0), (int)info.max_entries,
		  "every usable grant kept");
	kg_maps_remove_job(l, cgid);
	close_private(l);
}

TEST(heartbeat_and_counters)
{
	struct kg_loader *l = open_private();
	struct kg_control ctl;
	struct kg_counters c;
	uint32_t zero = 0;
	uint64_t before = kg_now_mono_ns();

	ASSERT_OK(kg_maps_heartbeat(l), "heartbeat");
	if (ASSERT_OK(bpf_map_lookup_elem(fd_of(l, "kg_control"), &zero, &ctl), "kg_control"))
		ASSERT_TRUE(ctl.heartbeat_ns >= before && ctl.heartbeat_ns <= kg_now_mono_ns(),
			    "the heartbeat is now, on the kernel's monotonic clock");
	ASSERT_OK(kg_maps_read_counters(l, &c), "counters of every CPU summed");
	ASSERT_EQ(kg_maps_read_counters_fd(-1, &c) < 0, 1, "bad fd: an error");
	close_private(l);
}
