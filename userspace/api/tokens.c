// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* api/tokens.c - the bearer tokens of kgate's HTTP API. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "api/tokens.h"
#include "record/audit.h"
#include "common.h"

const char *kg_tokens_path(char *buf, size_t len)
{
	if (kg_snprintf(buf, len, "%s/api-tokens.json", kg_data_dir()))
		return NULL;
	return buf;
}

bool kg_token_name_ok(const char *name)
{
	size_t i, n = name ? strlen(name) : 0;

	if (!n || n > KG_TOKEN_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '@' || c == '-'))
			return false;
	}
	return true;
}

static int sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -EIO;
}

/* ---- the file ------------------------------------------------------------------ */

/* Root's, and nobody else may write it or its directory. */
static int trusted_quiet(const char *path, int fd, bool quiet)
{
	char dir[4096], *slash;
	struct stat st;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		if (!quiet)
			kg_err("api: %s is not a root-owned file that only root may write: "
			       "no token is accepted from it", path);
		return -EPERM;
	}
	if (kg_strlcpy(dir, path, sizeof(dir)) || !(slash = strrchr(dir, '/')))
		return -ENAMETOOLONG;
	*slash = '\0';
	if (stat(dir[0] ? dir : "/", &st) || st.st_uid != 0 || (st.st_mode & 022)) {
		if (!quiet)
			kg_err("api: %s is not a root-owned directory that only root may write: "
			       "no token is accepted from it", dir);
		return -EPERM;
	}
	return 0;
}

static int trusted(const char *path, int fd)
{
	return trusted_quiet(path, fd, false);
}

static int parse_token(json_t *o, struct kg_token *t)
{
	json_t *gids = json_object_get(o, "gids"), *g;
	const char *id = json_string_value(json_object_get(o, "id"));
	const char *name = json_string_value(json_object_get(o, "name"));
	size_t i;

	memset(t, 0, sizeof(*t));
	if (!id || strlen(id) != KG_TOKEN_ID_LEN || !kg_token_name_ok(name) ||
	    !json_is_integer(json_object_get(o, "uid")) ||
	    kg_hex_decode(json_string_value(json_object_get(o, "sha256")), t->hash, sizeof(t->hash)))
		return -EINVAL;
	kg_strlcpy(t->id, id, sizeof(t->id));
	kg_strlcpy(t->name, name, sizeof(t->name));
	t->uid = (uint32_t)json_integer_value(json_object_get(o, "uid"));
	json_array_foreach(gids, i, g)
		if (json_is_integer(g) && t->ngids < KG_TOKEN_MAX_GROUPS)
			t->gids[t->ngids++] = (uint32_t)json_integer_value(g);
	t->created_ns = (uint64_t)json_integer_value(json_object_get(o, "created_ns"));
	t->created_by = (uint32_t)json_integer_value(json_object_get(o, "created_by"));
	return 0;
}

static json_t *token_json(const struct kg_token *t)
{
	char hash[65], created[48];
	json_t *gids = json_array();
	size_t i;

	kg_hex_encode(t->hash, sizeof(t->hash), hash);
	kg_audit_format_time(t->created_ns, created, sizeof(created));
	for (i = 0; gids && i < t->ngids; i++)
		json_array_append_new(gids, json_integer(t->gids[i]));
	return json_pack("{s:s,s:s,s:I,s:o,s:s,s:s,s:I,s:I}", "id", t->id, "name", t->name,
			 "uid", (json_int_t)t->uid, "gids", gids, "sha256", hash, "created", created,
			 "created_ns", (json_int_t)t->created_ns, "created_by",
			 (json_int_t)t->created_by);
}

/* Read the tokens from an open file; an empty file holds none. */
static int read_fd(const char *path, int fd, struct kg_token **out, size_t *n)
{
	json_t *root, *arr, *o;
	json_error_t jerr;
	struct kg_token *v;
	size_t i;
	int err;

	*out = NULL;
	*n = 0;
	err = trusted(path, fd);
	if (err)
		return err;
	root = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		struct stat st;

		if (!fstat(fd, &st) && st.st_size == 0)
			return 0;
		return kg_err("api: %s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text), -EINVAL;
	}
	arr = json_object_get(root, "tokens");
	if (!json_is_array(arr) || json_array_size(arr) > KG_TOKEN_MAX) {
		json_decref(root);
		return kg_err("api: %s: no \"tokens\" array (or too many)", path), -EINVAL;
	}
	v = calloc(json_array_size(arr) + 1, sizeof(*v));
	if (!v) {
		json_decref(root);
		return -ENOMEM;
	}
	json_array_foreach(arr, i, o) {
		if (parse_token(o, &v[*n])) {
			kg_warn("api: %s: token %zu is malformed: ignored", path, i + 1);
			continue;
		}
		(*n)++;
	}
	json_decref(root);
	*out = v;
	return 0;
}

int kg_tokens_list(struct kg_token **out, size_t *n)
{
	char path[4200];
	int fd, err;

	*out = NULL;
	*n = 0;
	if (!kg_tokens_path(path, sizeof(path)))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	err = read_fd(path, fd, out, n);
	close(fd);
	return err;
}

/* Under the lock: read, let fn change the list, write it back whole. */
typedef int (*edit_fn)(struct kg_token **v, size_t *n, void *ctx);

static int edit(edit_fn fn, void *ctx)
{
	char path[4200], lockpath[4300], tmp[4300];
	struct kg_token *v = NULL;
	size_t n = 0, i;
	json_t *root = NULL, *arr;
	int lock, fd, err;

	if (!kg_tokens_path(path, sizeof(path)) ||
	    kg_snprintf(lockpath, sizeof(lockpath), "%s.lock", path) ||
	    kg_snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()))
		return -ENAMETOOLONG;
	err = kg_mkdir_p(kg_data_dir(), 0700);
	if (err)
		return kg_err("token: cannot create %s: %s", kg_data_dir(), strerror(-err)), err;
	lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0)
		return -errno;
	while (flock(lock, LOCK_EX))
		if (errno != EINTR) {
			err = -errno;
			close(lock);
			return err;
		}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd >= 0) {
		err = read_fd(path, fd, &v, &n);
		close(fd);
	} else {
		err = errno == ENOENT ? 0 : -errno;
	}
	if (!err)
		err = fn(&v, &n, ctx);
	if (err)
		goto out;
	arr = json_array();
	root = json_pack("{s:i,s:o}", "version", 1, "tokens", arr);
	for (i = 0; root && i < n; i++)
		json_array_append_new(arr, token_json(&v[i]));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (!root || fd < 0) {
		err = root ? -errno : -ENOMEM;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	err = json_dumpfd(root, fd, JSON_INDENT(2)) || write(fd, "\n", 1) != 1 || fsync(fd)
		? -EIO : 0;
	close(fd);
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
out:
	json_decref(root);
	free(v);
	close(lock);	/* releases the flock */
	return err;
}

struct create_ctx {
	const char *name;
	uint32_t uid;
	const uint32_t *gids;
	size_t ngids;
	char *secret;
	struct kg_token *out;
};

static int do_create(struct kg_token **v, size_t *n, void *ctx)
{
	struct create_ctx *c = ctx;
	unsigned char raw[KG_TOKEN_SECRET_BYTES], idraw[KG_TOKEN_ID_LEN / 2];
	struct kg_token t = {}, *nv;
	size_t i;

	for (i = 0; i < *n; i++)
		if (!strcmp((*v)[i].name, c->name))
			return -EEXIST;
	if (*n >= KG_TOKEN_MAX)
		return -ENOSPC;
	if (RAND_bytes(raw, sizeof(raw)) != 1 || RAND_bytes(idraw, sizeof(idraw)) != 1)
		return -EIO;
	memcpy(c->secret, KG_TOKEN_PREFIX, 4);
	kg_hex_encode(raw, sizeof(raw), c->secret + 4);
	OPENSSL_cleanse(raw, sizeof(raw));
	kg_hex_encode(idraw, sizeof(idraw), t.id);
	kg_strlcpy(t.name, c->name, sizeof(t.name));
	t.uid = c->uid;
	for (i = 0; i < c->ngids && i < KG_TOKEN_MAX_GROUPS; i++)
		t.gids[t.ngids++] = c->gids[i];
	t.created_ns = kg_now_real_ns();
	t.created_by = getuid();
	if (sha256(c->secret, KG_TOKEN_LEN, t.hash))
		return -EIO;
	nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = t;
	*v = nv;
	*c->out = t;
	return 0;
}

int kg_token_create(const char *name, uint32_t uid, const uint32_t *gids, size_t ngids,
		    char secret[KG_TOKEN_LEN + 1], struct kg_token *out)
{
	struct create_ctx c = { name, uid, gids, ngids, secret, out };

	if (!kg_token_name_ok(name))
		return -EINVAL;
	memset(secret, 0, KG_TOKEN_LEN + 1);
	return edit(do_create, &c);
}

struct revoke_ctx {
	const char *key;
	struct kg_token *out;
};

static int do_revoke(struct kg_token **v, size_t *n, void *ctx)
{
	struct revoke_ctx *c = ctx;
	size_t i;

	for (i = 0; i < *n; i++)
		if (!strcmp((*v)[i].name, c->key) || !strcmp((*v)[i].id, c->key)) {
			*c->out = (*v)[i];
			memmove(&(*v)[i], &(*v)[i + 1], (*n - i - 1) * sizeof(**v));
			(*n)--;
			return 0;
		}
	return -ENOENT;
}

int kg_token_revoke(const char *name_or_id, struct kg_token *out)
{
	struct revoke_ctx c = { name_or_id, out };

	return edit(do_revoke, &c);
}

/* ---- the daemon's side ---------------------------------------------------------------- */

struct kg_token_store {
	pthread_mutex_t mu;
	char path[4200];
	struct kg_token *v;
	size_t n;
	bool loaded, bad;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
};

struct kg_token_store *kg_token_store_open(void)
{
	struct kg_token_store *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (!kg_tokens_path(s->path, sizeof(s->path)) || pthread_mutex_init(&s->mu, NULL)) {
		free(s);
		errno = ENAMETOOLONG;
		return NULL;
	}
	return s;
}

void kg_token_store_close(struct kg_token_store *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s->v);
	free(s);
}

/* Re-read the file when it changed (a new token, a revocation).  The lock
 * is held. */
static void refresh(struct kg_token_store *s)
{
	struct kg_token *v = NULL;
	struct stat st;
	size_t n = 0;
	int fd, err;

	fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		/* no file: no tokens (a revoked last one included) */
		free(s->v);
		s->v = NULL;
		s->n = 0;
		s->loaded = true;
		s->bad = errno != ENOENT;
		s->ino = 0;
		return;
	}
	/* ownership and modes are checked on every use, not only on a change
	 * of contents: a chmod does not touch the mtime */
	if (trusted_quiet(s->path, fd, s->bad)) {	/* said once, until it is fixed */
		close(fd);
		free(s->v);
		s->v = NULL;
		s->n = 0;
		s->bad = true;
		s->loaded = false;
		return;
	}
	if (fstat(fd, &st) == 0 && s->loaded && st.st_dev == s->dev && st.st_ino == s->ino &&
	    st.st_size == s->size && st.st_mtim.tv_sec == s->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == s->mtime.tv_nsec) {
		close(fd);
		return;
	}
	err = read_fd(s->path, fd, &v, &n);
	close(fd);
	free(s->v);
	s->v = err ? NULL : v;
	s->n = err ? 0 : n;
	s->bad = err != 0;
	s->loaded = true;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
}

int kg_token_store_check(struct kg_token_store *s, const char *presented, struct kg_token *out)
{
	unsigned char hash[32];
	int found = -1, err;
	size_t i;

	/* the shape first: a malformed token is not hashed or compared */
	if (!presented || strlen(presented) != KG_TOKEN_LEN ||
	    strncmp(presented, KG_TOKEN_PREFIX, 4) ||
	    strspn(presented + 4, "0123456789abcdef") != KG_TOKEN_LEN - 4)
		return -ENOENT;
	if (sha256(presented, KG_TOKEN_LEN, hash))
		return -EIO;
	pthread_mutex_lock(&s->mu);
	refresh(s);
	err = s->bad ? -EIO : 0;
	/* every entry is compared, in constant time, whichever matches */
	for (i = 0; !err && i < s->n; i++)
		if (CRYPTO_memcmp(hash, s->v[i].hash, sizeof(hash)) == 0 && found < 0)
			found = (int)i;
	if (!err && found >= 0)
		*out = s->v[found];
	pthread_mutex_unlock(&s->mu);
	return err ? err : found >= 0 ? 0 : -ENOENT;
}
