// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* record/chain.c - the chain's key, HMAC sealer, sealed lines and sealed head (chain.h). */
#include "record/audit.h"
#include "common.h"
#include "record/chain.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* ------------------------------------------------------------------ */
/* sealing: HMAC-SHA256 through OpenSSL's EVP_MAC (one context reused) */

int kg_sealer_init(struct kg_sealer *s, const unsigned char *key)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	s->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	s->ctx = s->mac ? EVP_MAC_CTX_new(s->mac) : NULL;
	if (!s->ctx || !EVP_MAC_init(s->ctx, key, KEY_LEN, params)) {
		EVP_MAC_CTX_free(s->ctx);
		EVP_MAC_free(s->mac);
		s->ctx = NULL;
		s->mac = NULL;
		return -ENOMEM;
	}
	return 0;
}

void kg_sealer_free(struct kg_sealer *s)
{
	EVP_MAC_CTX_free(s->ctx);
	EVP_MAC_free(s->mac);
	s->ctx = NULL;
	s->mac = NULL;
}

/* HMAC over the concatenation of chunks; the key set at init is reused */
int kg_sealer_mac(struct kg_sealer *s, const struct kg_chunk *c, int n,
		       unsigned char out[HASH_LEN])
{
	size_t outl = 0;
	int i;

	if (!EVP_MAC_init(s->ctx, NULL, 0, NULL))
		return -EIO;
	for (i = 0; i < n; i++)
		if (c[i].len && !EVP_MAC_update(s->ctx, c[i].p, c[i].len))
			return -EIO;
	if (!EVP_MAC_final(s->ctx, out, &outl, HASH_LEN) || outl != HASH_LEN)
		return -EIO;
	return 0;
}

/* ------------------------------------------------------------------ */
/* key file */

static int key_check_fd(int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		kg_err("audit: key %s is not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		kg_err("audit: key %s is readable or writable by group/other (mode %04o); "
		       "it must be 0400 or 0600", path, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		kg_err("audit: key %s is owned by uid %u, not root", path, (unsigned)st.st_uid);
		return -EPERM;
	}
	if (st.st_size != KEY_LEN) {
		kg_err("audit: key %s has %lld bytes, expected %d", path,
		       (long long)st.st_size, KEY_LEN);
		return -EINVAL;
	}
	return 0;
}

/* Writes the key to a private temporary file and link()s it into place, so
 * a concurrent opener never sees a half-written key: exactly one creator
 * wins, the others get -EEXIST and read the winner's key. */
static int key_create(const char *path)
{
	unsigned char key[KEY_LEN];
	char tmp[PATH_MAX + 48];
	int fd, err;

	if (kg_snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	if (RAND_bytes(key, sizeof(key)) != 1) {
		err = -EIO;
		kg_err("audit: no randomness for a new key");
	} else {
		err = kg_write_full(fd, key, sizeof(key));
		if (!err && fsync(fd))
			err = -errno;
	}
	OPENSSL_cleanse(key, sizeof(key));
	close(fd);
	if (!err && link(tmp, path))
		err = -errno;
	unlink(tmp);
	if (!err)
		kg_info("audit: created a new key %s", path);
	return err;
}

/* Loads the key; creates it (mode 0400) when create is set and it is absent. */
int kg_trail_key_load(const char *path, bool create, unsigned char *key)
{
	int fd, err;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		err = key_create(path);
		if (err && err != -EEXIST)
			return kg_err("audit: cannot create key %s: %s", path, strerror(-err)), err;
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		err = -errno;
		kg_err("audit: cannot open key %s: %s", path, strerror(errno));
		return err;
	}
	err = key_check_fd(fd, path);
	if (!err)
		err = kg_read_full(fd, key, KEY_LEN);
	close(fd);
	return err;
}

/* --- head file: the last committed seq and hash, sealed --- */

int kg_trail_head_mac(struct kg_sealer *s, uint64_t seq, const char *hash_hex,
		    unsigned char out[HASH_LEN])
{
	char buf[128];
	struct kg_chunk c;

	snprintf(buf, sizeof(buf), HEAD_TAG "%" PRIu64 ":%s", seq, hash_hex);
	c.p = buf;
	c.len = strlen(buf);
	return kg_sealer_mac(s, &c, 1, out);
}

/* 0 = valid head, -ENOENT = none, other -errno = present but not valid */
int kg_trail_head_read(const char *path, struct kg_sealer *s, struct kg_head_info *h)
{
	unsigned char mac[HASH_LEN], want[HASH_LEN];
	const char *hash, *machex;
	json_int_t seq;
	json_t *o;
	char *txt;
	size_t len;
	int err = -EBADMSG;

	txt = kg_read_file(path, 4096, &len);
	if (!txt)
		return -errno;
	if (!len) {		/* opened by a writer that has not committed yet */
		free(txt);
		return -ENOENT;
	}
	o = json_loads(txt, 0, NULL);
	free(txt);
	if (o && !json_unpack(o, "{s:I,s:s,s:s}", "seq", &seq, "hash", &hash, "mac", &machex) &&
	    seq >= 0 && strlen(hash) == HASH_HEX && strlen(machex) == HASH_HEX &&
	    !kg_hex_decode(hash, h->hash, HASH_LEN) && !kg_hex_decode(machex, want, HASH_LEN) &&
	    !kg_trail_head_mac(s, (uint64_t)seq, hash, mac) && !CRYPTO_memcmp(mac, want, HASH_LEN)) {
		h->seq = (uint64_t)seq;
		err = 0;
	}
	json_decref(o);
	return err;
}

/* ------------------------------------------------------------------ */
/* parsing one sealed line */

/* Structure + JSON check of a line (no newline). Fills *sl; *why on error. */
int kg_trail_parse_line(const char *line, size_t len, struct kg_sealed_line *sl,
			const char **why)
{
	const char *prev, *hash;
	json_int_t seq;
	json_error_t jerr;
	json_t *o;
	int err = -EBADMSG;

	if (len < SUFFIX_LEN + 2 || line[0] != '{' ||
	    memcmp(line + len - SUFFIX_LEN, SEAL_KEY, SEAL_KEY_LEN) ||
	    memcmp(line + len - 2, "\"}", 2)) {
		*why = "not a sealed record (no trailing hash member)";
		return -EBADMSG;
	}
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		*why = "invalid JSON";
		return -EBADMSG;
	}
	*why = "missing or malformed seq/prev/hash";
	if (!json_unpack(o, "{s:I,s:s,s:s}", "seq", &seq, "prev", &prev, "hash", &hash) &&
	    seq > 0 && strlen(prev) == HASH_HEX && strlen(hash) == HASH_HEX &&
	    !memcmp(hash, line + len - 2 - HASH_HEX, HASH_HEX) &&
	    !kg_hex_decode(prev, sl->prev, HASH_LEN) && !kg_hex_decode(hash, sl->hash, HASH_LEN)) {
		sl->seq = (uint64_t)seq;
		err = 0;
	}
	json_decref(o);
	return err;
}

/* recomputes the seal of a line whose chain predecessor hash is prev */
int kg_trail_line_seal(struct kg_sealer *s, const unsigned char *prev,
			     const char *line, size_t len, unsigned char out[HASH_LEN])
{
	struct kg_chunk c[3] = {
		{ prev, HASH_LEN },
		{ line, len - SUFFIX_LEN },
		{ "}", 1 },
	};

	return kg_sealer_mac(s, c, 3, out);
}
