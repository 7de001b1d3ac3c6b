// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cli/cmd_token.c - 'kgate token create|list|revoke': the bearer tokens of
 * the HTTP API (api/tokens.h).  Root only: the token file is root's, and a
 * token carries the authority of the principal it names.  Issuing and
 * revoking are recorded in the audit trail.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/tokens.h"
#include "record/audit.h"
#include "cli/cmds.h"
#include "common.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: kgate token create --name NAME --uid USER [--groups G[,G...]] [--json]\n"
		   "       kgate token list [--json]\n"
		   "       kgate token revoke NAME|ID\n\n"
		   "Bearer tokens for kgate's HTTP API (`kgate daemon --http`).  A token acts as\n"
		   "the principal it names: USER's uid (a name or a number) and the groups given,\n"
		   "by default USER's groups in the group database now.  Whoever holds it may\n"
		   "decide the requests that uid and groups may decide (the policy's approvers)\n"
		   "and see what they may see.  The token is printed once; kgate keeps only its\n"
		   "SHA-256 in %s/api-tokens.json.  A revoked token is refused from the\n"
		   "next request on.  Root only.\n\n"
		   "exit status: 0 done, 1 failure, 2 usage (or no such token)\n", kg_data_dir());
}

static int parse_uid(const char *s, uint32_t *uid)
{
	struct passwd *pw = getpwnam(s);
	char *end;
	unsigned long v;

	if (pw) {
		*uid = pw->pw_uid;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v > 0xfffffffeul)
		return kg_err("token: --uid: no user '%s'", s), -1;
	*uid = (uint32_t)v;
	return 0;
}

static int parse_groups(const char *s, uint32_t *gids, size_t *n)
{
	char *copy = strdup(s), *tok, *save = NULL;
	int err = 0;

	*n = 0;
	if (!copy)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok && !err; tok = strtok_r(NULL, ",", &save)) {
		struct group *gr = getgrnam(tok);
		unsigned long v;
		char *end;

		if (*n == KG_TOKEN_MAX_GROUPS) {
			err = kg_err("token: at most %d groups", KG_TOKEN_MAX_GROUPS);
			break;
		}
		if (gr) {
			gids[(*n)++] = gr->gr_gid;
			continue;
		}
		errno = 0;
		v = strtoul(tok, &end, 10);
		if (errno || *end || end == tok || v > 0xfffffffeul)
			err = kg_err("token: --groups: no group '%s'", tok);
		else
			gids[(*n)++] = (uint32_t)v;
	}
	free(copy);
	return err;
}

/* USER's groups as the group database has them now (none for a uid
 * without a passwd entry). */
static void default_groups(uint32_t uid, uint32_t *gids, size_t *n)
{
	struct passwd *pw = getpwuid(uid);
	gid_t groups[KG_TOKEN_MAX_GROUPS];
	int ng = KG_TOKEN_MAX_GROUPS, i;

	*n = 0;
	if (!pw)
		return;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ng) < 0)
		ng = KG_TOKEN_MAX_GROUPS;	/* the first ones */
	for (i = 0; i < ng && *n < KG_TOKEN_MAX_GROUPS; i++)
		gids[(*n)++] = groups[i];
}

static void audit_token(const char *op, const struct kg_token *t)
{
	struct kg_audit *a = kg_audit_open(NULL, NULL);
	struct passwd *pw = getpwuid(getuid());
	json_t *gids = json_array(), *extra;
	char target[128];
	struct kg_rec r;
	size_t i;

	for (i = 0; gids && i < t->ngids; i++)
		json_array_append_new(gids, json_integer(t->gids[i]));
	extra = json_pack("{s:s,s:s,s:I,s:o}", "token_id", t->id, "token", t->name, "uid",
			  (json_int_t)t->uid, "gids", gids);
	snprintf(target, sizeof(target), "token %s", t->name);
	if (a) {
		kg_rec_init(&r, "controller");
		kg_rec_int(&r, "actor.uid", getuid());
		kg_rec_str(&r, "actor.name", pw ? pw->pw_name : NULL);
		kg_rec_int(&r, "subject.pid", getpid());
		kg_rec_str(&r, "op", op);
		kg_rec_str(&r, "target", target);
		kg_rec_str(&r, "mechanism", "controller");
		kg_rec_extra(&r, extra);
		if (kg_rec_append(a, &r) || kg_audit_sync(a))
			kg_warn("token: the audit record of %s could not be written", op);
		kg_audit_close(a);
	} else {
		kg_warn("token: cannot open the audit trail in %s", kg_audit_dir());
	}
	json_decref(extra);
}

static void groups_text(const struct kg_token *t, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < t->ngids && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%u", i ? "," : "", t->gids[i]);
	if (!t->ngids)
		snprintf(buf, len, "-");
}

static int do_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "uid", required_argument, NULL, 'u' },
		{ "groups", required_argument, NULL, 'g' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *name = NULL, *user = NULL, *groups = NULL;
	uint32_t uid = 0, gids[KG_TOKEN_MAX_GROUPS];
	char secret[KG_TOKEN_LEN + 1], gtext[512];
	struct passwd *pw;
	struct kg_token t;
	size_t ngids = 0;
	int c, err;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 'u': user = optarg; break;
		case 'g': groups = optarg; break;
		case 'j': kg_env.json = true; break;
		case 'h': usage(stdout); return KG_EXIT_OK;
		default:
			return kg_err("token: unknown option '%s'", argv[optind - 1]), KG_EXIT_USAGE;
		}
	}
	if (optind != argc || !name || !user)
		return kg_err("token: create needs --name NAME and --uid USER"), KG_EXIT_USAGE;
	if (!kg_token_name_ok(name))
		return kg_err("token: name '%s': 1 to %d of A-Z a-z 0-9 . _ @ -", name,
			      KG_TOKEN_NAME_MAX), KG_EXIT_USAGE;
	if (parse_uid(user, &uid))
		return KG_EXIT_USAGE;
	if (groups ? parse_groups(groups, gids, &ngids) : (default_groups(uid, gids, &ngids), 0))
		return KG_EXIT_USAGE;
	err = kg_token_create(name, uid, gids, ngids, secret, &t);
	if (err == -EEXIST)
		return kg_err("token: a token named '%s' exists (revoke it first)", name), KG_EXIT_USAGE;
	if (err)
		return kg_err("token: cannot issue the token: %s", strerror(-err)), KG_EXIT_FAIL;
	audit_token("token_create", &t);
	groups_text(&t, gtext, sizeof(gtext));
	pw = getpwuid(uid);
	if (kg_env.json) {
		json_t *gj = json_array(), *o;
		char *s;
		size_t i;

		for (i = 0; gj && i < t.ngids; i++)
			json_array_append_new(gj, json_integer(t.gids[i]));
		o = json_pack("{s:s,s:s,s:I,s:o,s:s}", "id", t.id, "name", t.name, "uid",
			      (json_int_t)t.uid, "gids", gj, "token", secret);
		s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(o);
	} else {
		printf("token '%s' (id %s) acts as uid %u%s%s%s, groups %s:\n%s\n"
		       "It is shown only this once; kgate keeps its SHA-256.  Send it as\n"
		       "\"Authorization: Bearer <token>\" or paste it into the approvals page.\n",
		       t.name, t.id, t.uid, pw ? " (" : "", pw ? pw->pw_name : "", pw ? ")" : "",
		       gtext, secret);
	}
	memset(secret, 0, sizeof(secret));
	return KG_EXIT_OK;
}

static int do_list(int argc, char **argv)
{
	struct kg_token *v = NULL;
	size_t n = 0, i;
	int err;

	if (argc > 1 && !strcmp(argv[1], "--json"))
		kg_env.json = true;
	else if (argc > 1)
		return kg_err("token: list takes only --json"), KG_EXIT_USAGE;
	err = kg_tokens_list(&v, &n);
	if (err)
		return kg_err("token: cannot read the tokens: %s", strerror(-err)), KG_EXIT_FAIL;
	if (kg_env.json) {
		json_t *arr = json_array();
		char *s;

		for (i = 0; arr && i < n; i++) {
			json_t *gj = json_array();
			char created[48];
			size_t k;

			for (k = 0; gj && k < v[i].ngids; k++)
				json_array_append_new(gj, json_integer(v[i].gids[k]));
			kg_audit_format_time(v[i].created_ns, created, sizeof(created));
			json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:o,s:s,s:I}", "id", v[i].id,
							     "name", v[i].name, "uid",
							     (json_int_t)v[i].uid, "gids", gj,
							     "created", created, "created_by",
							     (json_int_t)v[i].created_by));
		}
		s = arr ? json_dumps(arr, JSON_INDENT(2)) : NULL;
		printf("%s\n", s ? s : "[]");
		free(s);
		json_decref(arr);
	} else if (!n) {
		printf("no tokens\n");
	} else {
		printf("%-12s  %-24s  %7s  %-20s  %s\n", "ID", "NAME", "UID", "GROUPS", "CREATED (UTC)");
		for (i = 0; i < n; i++) {
			char created[48], gtext[512];

			kg_audit_format_time(v[i].created_ns, created, sizeof(created));
			created[19] = '\0';
			groups_text(&v[i], gtext, sizeof(gtext));
			printf("%-12s  %-24s  %7u  %-20s  %s\n", v[i].id, v[i].name, v[i].uid, gtext,
			       created);
		}
	}
	free(v);
	return KG_EXIT_OK;
}

static int do_revoke(int argc, char **argv)
{
	struct kg_token t;
	int err;

	if (argc != 2)
		return kg_err("token: revoke takes one NAME or ID"), KG_EXIT_USAGE;
	err = kg_token_revoke(argv[1], &t);
	if (err == -ENOENT)
		return kg_err("token: no token named '%s' (nor with that id)", argv[1]), KG_EXIT_USAGE;
	if (err)
		return kg_err("token: cannot revoke: %s", strerror(-err)), KG_EXIT_FAIL;
	audit_token("token_revoke", &t);
	printf("revoked token '%s' (id %s)\n", t.name, t.id);
	return KG_EXIT_OK;
}

static const struct kg_cmd token_cmds[] = {
	{ "create",	do_create,	"issue a bearer token for the HTTP API" },
	{ "list",	do_list,	"the tokens kgate keeps" },
	{ "revoke",	do_revoke,	"refuse a token from the next request on" },
};

int cmd_token(int argc, char **argv)
{
	if (argc >= 2 && !kg_cmd_is_help(argv[1]) && getuid() != 0)
		return kg_err("token: the HTTP API's tokens are root's: run this as root"), KG_EXIT_FAIL;
	return kg_cmd_select("token", token_cmds, ARRAY_SIZE(token_cmds), argc - 1, argv + 1, usage);
}
