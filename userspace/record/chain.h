/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * record/chain.h - what makes the audit trail a chain (private to the
 * trail's modules: writer, recover, verify, query, and seal for the key of
 * exported batches).
 *
 * Owns: the names of the trail's files, the sealed line's format, the key
 * file (32 random bytes, 0400, checked before use), the HMAC-SHA256 sealer,
 * parsing and re-sealing one record line, and the sealed head (the last
 * committed seq and hash).  docs/audit-format.md describes the format.
 *
 * A record line is  {"seq":N,"prev":"<hex>",...,"hash":"<hex>"}  where
 * hash = HMAC-SHA256(key, prev_raw || the line without its ',"hash":"..."'
 * member). Because the hash is always the last member and has a fixed
 * length, the sealed bytes are recovered textually: no re-serialisation,
 * so a verifier does not depend on any JSON library's output order.
 */
#ifndef KGATE_RECORD_CHAIN_H
#define KGATE_RECORD_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#define KEY_LEN		32
#define HASH_LEN	32
#define HASH_HEX	(2 * HASH_LEN)
#define ACTIVE_NAME	"audit.jsonl"
#define HEAD_NAME	"audit.head"
#define LOCK_NAME	"audit.lock"
#define KEY_NAME	"audit.key"
#define SEAL_KEY	",\"hash\":\""
#define SEAL_KEY_LEN	(sizeof(SEAL_KEY) - 1)
#define SUFFIX_LEN	(SEAL_KEY_LEN + HASH_HEX + 2)	/* ,"hash":"<hex>"} */
#define HEAD_TAG	"kgate-audit-head:"

/* sealing: HMAC-SHA256 through OpenSSL's EVP_MAC (one context reused) */
struct kg_sealer {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
};

struct kg_chunk {
	const void *p;
	size_t len;
};

int kg_sealer_init(struct kg_sealer *s, const unsigned char *key);
void kg_sealer_free(struct kg_sealer *s);
/* HMAC over the concatenation of chunks; the key set at init is reused */
int kg_sealer_mac(struct kg_sealer *s, const struct kg_chunk *c, int n,
		  unsigned char out[HASH_LEN]);

/* Loads the key; creates it (mode 0400) when create is set and it is absent. */
int kg_trail_key_load(const char *path, bool create, unsigned char *key);

/* the sealed head: the last committed seq and hash */
struct kg_head_info {
	uint64_t seq;
	unsigned char hash[HASH_LEN];
};

int kg_trail_head_mac(struct kg_sealer *s, uint64_t seq, const char *hash_hex,
		      unsigned char out[HASH_LEN]);
/* 0 = valid head, -ENOENT = none, other -errno = present but not valid */
int kg_trail_head_read(const char *path, struct kg_sealer *s, struct kg_head_info *h);

/* one sealed line */
struct kg_sealed_line {
	uint64_t seq;
	unsigned char prev[HASH_LEN];
	unsigned char hash[HASH_LEN];
};

/* Structure + JSON check of a line (no newline). Fills *sl; *why on error. */
int kg_trail_parse_line(const char *line, size_t len, struct kg_sealed_line *sl,
			const char **why);
/* recomputes the seal of a line whose chain predecessor hash is prev */
int kg_trail_line_seal(struct kg_sealer *s, const unsigned char *prev,
		       const char *line, size_t len, unsigned char out[HASH_LEN]);

#endif
