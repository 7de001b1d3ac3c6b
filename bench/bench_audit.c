// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_audit.c - audit trail throughput per sync setting, the cost of
 * sealing one record, and verification speed. Prints a table and one JSON
 * line (the last line). Runs in a mkdtemp directory under $TMPDIR (or /tmp),
 * which it removes afterwards. Target: >= 100,000 records/s with group
 * commit (64 records / 5 ms).
 *
 *   bench_audit [records]     (default 200000; per-record fsync runs 1/50)
 */
#include "audit.h"
#include "common.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void fill(struct kg_audit_rec *r, unsigned long i, char *trace, char *rule)
{
	snprintf(trace, 32, "job-%04lu", i % 1000);
	snprintf(rule, 16, "r%lu", i % 50);
	memset(r, 0, sizeof(*r));
	r->type = "decision";
	r->trace_id = trace;
	r->actor_uid = 1000;
	r->actor_name = "alice";
	r->actor_role = "operator";
	r->pid = 4242;
	r->tid = 4243;
	r->comm = "python3";
	r->exe = "/usr/bin/python3.11";
	r->op = "file_open";
	r->target = "/home/alice/.aws/credentials";
	r->decision = i % 4 ? "allow" : "deny";
	r->rule_id = rule;
	r->reason = "path matches protected secret";
	r->policy_name = "default";
	r->policy_hash = "9f2c1e0b7a6d5c4b3a2918f7e6d5c4b3";
	r->policy_version = 7;
	r->mechanism = "bpf-lsm";
}

/* records/s appending n records with opts, closing included */
static double run(const char *base, const char *name, const struct kg_audit_opts *o,
		  unsigned long n)
{
	char dir[4200], trace[32], rule[16];
	struct kg_audit_rec r;
	struct kg_audit *a;
	uint64_t t0;
	unsigned long i;

	snprintf(dir, sizeof(dir), "%s/%s", base, name);
	a = kg_audit_open(dir, o);
	if (!a)
		return -1;
	t0 = kg_now_mono_ns();
	for (i = 0; i < n; i++) {
		fill(&r, i, trace, rule);
		if (kg_audit_append(a, &r)) {
			kg_audit_close(a);
			return -1;
		}
	}
	kg_audit_close(a);
	return n / ((kg_now_mono_ns() - t0) / 1e9);
}

/* ns per HMAC-SHA256 seal of a typical record (prev hash + ~450 bytes),
 * the same EVP_MAC calls the writer makes */
static double seal_ns(void)
{
	unsigned char key[32] = { 1 }, prev[32] = { 2 }, out[32];
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	char line[450];
	const int iters = 200000;
	uint64_t t0;
	size_t outl;
	int i;

	if (!ctx || !EVP_MAC_init(ctx, key, sizeof(key), params))
		return -1;
	memset(line, 'x', sizeof(line));
	t0 = kg_now_mono_ns();
	for (i = 0; i < iters; i++) {
		line[i % sizeof(line)]++;
		EVP_MAC_init(ctx, NULL, 0, NULL);
		EVP_MAC_update(ctx, prev, sizeof(prev));
		EVP_MAC_update(ctx, (unsigned char *)line, sizeof(line));
		EVP_MAC_final(ctx, out, &outl, sizeof(out));
		prev[0] ^= out[0];
	}
	t0 = kg_now_mono_ns() - t0;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return (double)t0 / iters;
}

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
	const char *tmp = getenv("TMPDIR");
	struct kg_audit_verify_result vr;
	struct kg_audit_opts rec = { .sync = KG_AUDIT_SYNC_RECORD };
	struct kg_audit_opts grp = { .sync = KG_AUDIT_SYNC_GROUP, .flush_every_records = 64,
				     .flush_interval_ms = 5 };
	struct kg_audit_opts none = { .sync = KG_AUDIT_SYNC_NONE, .flush_every_records = 64,
				      .flush_interval_ms = 5 };
	double r_rec, r_grp, r_none, s_ns, v_rate;
	char base[4096], dir[4200];
	uint64_t t0;

	if (!n)
		n = 200000;
	snprintf(base, sizeof(base), "%s/kgate-bench-audit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	r_rec = run(base, "record", &rec, n / 50 ? n / 50 : 1);
	r_grp = run(base, "group", &grp, n);
	r_none = run(base, "none", &none, n);
	s_ns = seal_ns();
	snprintf(dir, sizeof(dir), "%s/group", base);
	t0 = kg_now_mono_ns();
	v_rate = kg_audit_verify_dir(dir, NULL, &vr) || !vr.ok ? -1 :
		 vr.records / ((kg_now_mono_ns() - t0) / 1e9);
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	printf("%-32s %14s\n", "audit setting", "records/s");
	printf("%-32s %14.0f\n", "sync=record (fdatasync each)", r_rec);
	printf("%-32s %14.0f\n", "sync=group (64 records / 5 ms)", r_grp);
	printf("%-32s %14.0f\n", "sync=none (64 / 5 ms, no fsync)", r_none);
	printf("%-32s %14.0f\n", "verify (group trail)", v_rate);
	printf("%-32s %11.0f ns\n", "HMAC-SHA256 seal per record", s_ns);
	printf("group commit target >= 100000 records/s: %s\n", r_grp >= 100000 ? "met" : "NOT met");
	printf("{\"bench\":\"audit\",\"records\":%lu,\"sync_record_rps\":%.0f,"
	       "\"sync_group_rps\":%.0f,\"sync_none_rps\":%.0f,\"verify_rps\":%.0f,"
	       "\"seal_ns\":%.0f,\"group_target_met\":%s}\n", n, r_rec, r_grp, r_none, v_rate,
	       s_ns, r_grp >= 100000 ? "true" : "false");
	return r_grp < 0 || r_none < 0 || r_rec < 0 ? 1 : 0;
}
