/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * api/tokens.h - the bearer tokens of kgate's HTTP API.
 *
 * `kgate token create` issues a token for a principal (a uid and groups):
 * 256 random bits, shown once as "kgt_" + 64 hex digits.  Only its SHA-256
 * is kept, in <data dir>/api-tokens.json (root's, mode 0600, in a 0700
 * directory that governed jobs cannot reach: selfprotect.h), with a name,
 * a public id and who issued it.  The daemon hashes what a client presents
 * and compares it with every stored hash in constant time; it re-reads the
 * file whenever it changes, so a revocation takes effect at the next
 * request.  A file that is not root's, or that others may write, is not
 * trusted: no token is accepted from it.
 */
#ifndef KGATE_API_TOKENS_H
#define KGATE_API_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KG_TOKEN_PREFIX		"kgt_"
#define KG_TOKEN_SECRET_BYTES	32
#define KG_TOKEN_LEN		(4 + 2 * KG_TOKEN_SECRET_BYTES)	/* "kgt_" + hex */
#define KG_TOKEN_NAME_MAX	64
#define KG_TOKEN_ID_LEN		12	/* hex */
#define KG_TOKEN_MAX_GROUPS	32
#define KG_TOKEN_MAX		1024	/* tokens in one file */

struct kg_token {
	char id[KG_TOKEN_ID_LEN + 1];
	char name[KG_TOKEN_NAME_MAX + 1];
	uint32_t uid;
	uint32_t gids[KG_TOKEN_MAX_GROUPS];
	size_t ngids;
	unsigned char hash[32];		/* SHA-256 of the token */
	uint64_t created_ns;		/* CLOCK_REALTIME */
	uint32_t created_by;		/* uid of whoever issued it */
};

/* <data dir>/api-tokens.json */
const char *kg_tokens_path(char *buf, size_t len);

/* A valid token name: 1..64 of [A-Za-z0-9._@-]. */
bool kg_token_name_ok(const char *name);

/* All tokens (caller frees *out).  No file = none.  0/-errno (-EPERM: the
 * file or its directory is not root's or is writable by others). */
int kg_tokens_list(struct kg_token **out, size_t *n);

/* Issue a token for uid and gids under a new unique name; the token itself
 * goes to secret (shown once, never stored).  0, -EEXIST (name taken),
 * -EINVAL (bad name), -ENOSPC (too many) or -errno. */
int kg_token_create(const char *name, uint32_t uid, const uint32_t *gids, size_t ngids,
		    char secret[KG_TOKEN_LEN + 1], struct kg_token *out);

/* Remove the token with this name or id.  0, -ENOENT, -errno. */
int kg_token_revoke(const char *name_or_id, struct kg_token *out);

/* ---- the daemon's side ------------------------------------------------------------ */

struct kg_token_store;

struct kg_token_store *kg_token_store_open(void);
void kg_token_store_close(struct kg_token_store *s);
/* The token a client presented, or -ENOENT (unknown, malformed, revoked);
 * -EIO when the file cannot be trusted or read.  Thread-safe. */
int kg_token_store_check(struct kg_token_store *s, const char *presented, struct kg_token *out);

#endif
