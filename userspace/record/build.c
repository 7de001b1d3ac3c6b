// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * record/build.c - the record builder: fields set by the name the record
 * spells them with (audit.h), into the struct kg_audit_rec that body.c
 * writes.  Presence is said by setting a field, never by a -1 or a NULL a
 * caller has to remember; a mistake refuses the whole record.
 *
 * A new member of the record: a member of struct kg_audit_rec (audit.h),
 * its line in fields[] below, its place in body.c's writing, its row in
 * docs/audit-format.md, and a case in tests/test_record_build.c.  What
 * only one record type carries belongs in that type's "extra".
 */
#include "record/audit.h"
#include "common.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

enum field_kind {
	F_STR,		/* const char * */
	F_ID,		/* long, never negative (uid, pid, tid) */
	F_LONG,		/* long, any value */
	F_NS,		/* uint64_t nanoseconds */
};

struct field {
	const char *name;
	enum field_kind kind;
	size_t off;		/* in struct kg_audit_rec */
};

#define FIELD(name, kind, member) { name, kind, offsetof(struct kg_audit_rec, member) }

/* in the order the record writes them (body.c) */
static const struct field fields[] = {
	FIELD("time", F_NS, ts_real_ns),
	FIELD("mono_ns", F_NS, ts_mono_ns),
	FIELD("trace", F_STR, trace_id),
	FIELD("actor.uid", F_ID, actor_uid),
	FIELD("actor.name", F_STR, actor_name),
	FIELD("actor.role", F_STR, actor_role),
	FIELD("subject.pid", F_ID, pid),
	FIELD("subject.tid", F_ID, tid),
	FIELD("subject.comm", F_STR, comm),
	FIELD("subject.exe", F_STR, exe),
	FIELD("op", F_STR, op),
	FIELD("target", F_STR, target),
	FIELD("decision", F_STR, decision),
	FIELD("rule", F_STR, rule_id),
	FIELD("reason", F_STR, reason),
	FIELD("policy.name", F_STR, policy_name),
	FIELD("policy.version", F_LONG, policy_version),
	FIELD("policy.hash", F_STR, policy_hash),
	FIELD("mechanism", F_STR, mechanism),
};

/* extra is not in the table: its bit comes after the fields' */
#define EXTRA_BIT (1u << ARRAY_SIZE(fields))
_Static_assert(ARRAY_SIZE(fields) < 32, "one bit per field and one for extra in kg_rec.set");

void kg_rec_init(struct kg_rec *r, const char *type)
{
	memset(r, 0, sizeof(*r));
	r->rec.type = type;
	/* what struct kg_audit_rec takes for "absent" */
	r->rec.actor_uid = r->rec.pid = r->rec.tid = -1;
	r->rec.policy_version = -1;
}

static int mistake(struct kg_rec *r, const char *field, const char *what)
{
	kg_err("audit: %s record: field '%s' %s: the record is refused",
	       r->rec.type ? r->rec.type : "(untyped)", field ? field : "(null)", what);
	if (!r->err)
		r->err = -EINVAL;
	return -EINVAL;
}

/* the field called name, after checking it may be set to a value of kind */
static const struct field *claim(struct kg_rec *r, const char *name, bool is_str)
{
	size_t i;

	for (i = 0; name && i < ARRAY_SIZE(fields); i++)
		if (!strcmp(fields[i].name, name))
			break;
	if (!name || i == ARRAY_SIZE(fields))
		return mistake(r, name, "is not a member of a record"), NULL;
	if ((fields[i].kind == F_STR) != is_str)
		return mistake(r, name, is_str ? "takes an integer, not a string"
					       : "takes a string, not an integer"), NULL;
	if (r->set & (1u << i))
		return mistake(r, name, "is set twice"), NULL;
	r->set |= 1u << i;
	return &fields[i];
}

int kg_rec_str(struct kg_rec *r, const char *field, const char *value)
{
	const struct field *f = claim(r, field, true);

	if (!f)
		return -EINVAL;
	*(const char **)((char *)&r->rec + f->off) = value;
	return 0;
}

int kg_rec_int(struct kg_rec *r, const char *field, long long value)
{
	const struct field *f = claim(r, field, false);
	char *at;

	if (!f)
		return -EINVAL;
	at = (char *)&r->rec + f->off;
	switch (f->kind) {
	case F_ID:
		if (value < 0 || value > (long long)UINT32_MAX)
			return mistake(r, field, "is out of range (0..4294967295)");
		*(long *)at = (long)value;
		break;
	case F_LONG:
		*(long *)at = (long)value;
		break;
	case F_NS:
		if (value < 0)
			return mistake(r, field, "is negative");
		*(uint64_t *)at = (uint64_t)value;
		break;
	case F_STR:
		break;		/* claim() refused it */
	}
	return 0;
}

int kg_rec_extra(struct kg_rec *r, json_t *extra)
{
	if (r->set & EXTRA_BIT)
		return mistake(r, "extra", "is set twice");
	r->set |= EXTRA_BIT;
	if (extra && !json_is_object(extra))
		return mistake(r, "extra", "must be a JSON object");
	r->rec.extra = extra;
	return 0;
}

int kg_rec_append(struct kg_audit *a, const struct kg_rec *r)
{
	if (r->err)
		return r->err;
	return kg_audit_append(a, &r->rec);
}
