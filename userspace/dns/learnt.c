// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns/learnt.c - what the resolver taught the kernel (dns/internal.h): the
 * ids of names (kg_dns_names, so that events can name them) and the
 * addresses learnt from answers (kg_dns_addrs, with the entries of their
 * name's host rules), mirrored in an open-addressing table so that expired
 * ones can be swept and live ones rewritten after a push.
 */
#include "dns/internal.h"
#include "dns/match.h"
#include "common.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The id of a name (events of connections decided through it carry it). */
uint32_t kgr_name_id(struct kg_resolver *r, const char *name)
{
	struct kg_dns_name_key key = { .cgid = r->cfg.cgid };
	struct kg_dns_name val = {};
	uint32_t i;

	for (i = r->nnames; i >= 1; i--)	/* recent names first */
		if (!strcmp(r->names[i], name))
			return i;
	if (r->nnames == MAX_NAMES)
		return 0;
	r->names[r->nnames + 1] = strdup(name);
	if (!r->names[r->nnames + 1])
		return 0;
	key.name_id = ++r->nnames;
	kg_strlcpy(val.name, name, sizeof(val.name));
	if (bpf_map_update_elem(r->names_fd, &key, &val, BPF_ANY))
		return 0;	/* the decision stands; its event just lacks the name */
	return key.name_id;
}

static size_t slot_of(const uint8_t addr[16])
{
	uint64_t h = KG_FNV_OFFSET;
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ addr[i]) * KG_FNV_PRIME;
	return (size_t)(h % LEARNT_SLOTS);
}

static struct learnt *learnt_find(struct kg_resolver *r, const uint8_t addr[16], bool add)
{
	size_t s = slot_of(addr), n;

	for (n = 0; n < LEARNT_SLOTS; n++, s = (s + 1) % LEARNT_SLOTS) {
		struct learnt *l = &r->learnt[s];

		if (!l->used) {
			if (!add || r->nlearnt >= KG_DNS_MAX_PER_JOB)
				return NULL;
			memcpy(l->addr, addr, 16);
			l->used = true;
			r->nlearnt++;
			return l;
		}
		if (!memcmp(l->addr, addr, 16))
			return l;
	}
	return NULL;
}

void kgr_map_delete(struct kg_resolver *r, const uint8_t addr[16])
{
	struct kg_dns_key key = { .cgid = r->cfg.cgid };

	memcpy(key.addr, addr, 16);
	bpf_map_delete_elem(r->addrs_fd, &key);
}

/* Keep the entries that pass keep(); rebuild the open-addressing table. */
void kgr_learnt_filter(struct kg_resolver *r, bool (*keep)(struct kg_resolver *, struct learnt *))
{
	struct learnt *old = r->learnt, *l;
	size_t i;

	r->learnt = calloc(LEARNT_SLOTS, sizeof(*r->learnt));
	if (!r->learnt) {	/* keep the old table: nothing is swept this time */
		r->learnt = old;
		return;
	}
	r->nlearnt = 0;
	for (i = 0; i < LEARNT_SLOTS; i++) {
		if (!old[i].used)
			continue;
		if (!keep(r, &old[i])) {
			kgr_map_delete(r, old[i].addr);
			continue;
		}
		l = learnt_find(r, old[i].addr, true);
		if (l)
			*l = old[i];
	}
	free(old);
}

bool kgr_keep_live(struct kg_resolver *r, struct learnt *l)
{
	(void)r;
	return l->expires_ns > kgr_now_ns();
}

int kgr_learn(struct kg_resolver *r, const uint8_t addr[16], const struct kg_net_ent *ent,
		 uint32_t nid, uint64_t expires_ns, uint32_t policy_id)
{
	struct kg_dns_key key = { .cgid = r->cfg.cgid };
	struct kg_dns_addr val = { .expires_ns = expires_ns, .policy_id = policy_id,
				   .name_id = nid };
	struct learnt *l = learnt_find(r, addr, true);

	if (!l && r->nlearnt >= KG_DNS_MAX_PER_JOB) {
		kgr_learnt_filter(r, kgr_keep_live);
		l = learnt_find(r, addr, true);
	}
	if (!l)
		return -ENOSPC;
	memcpy(key.addr, addr, 16);
	memcpy(val.ent, ent, sizeof(val.ent));
	if (bpf_map_update_elem(r->addrs_fd, &key, &val, BPF_ANY))
		return -errno;
	/* a later answer may shorten the life of an address: the last one wins */
	l->expires_ns = expires_ns;
	l->name_id = nid;
	return 0;
}

/* After a push: each live address gets the new rules of its name under the
 * new generation, or goes when the new policy no longer resolves the name. */
bool kgr_keep_relearn(struct kg_resolver *r, struct learnt *l)
{
	struct kg_net_ent ent[KG_NET_ENTS];
	struct kg_dns_key key = { .cgid = r->cfg.cgid };
	struct kg_dns_addr val = {};
	int n;

	if (l->expires_ns <= kgr_now_ns() || !l->name_id || l->name_id > r->nnames)
		return false;
	n = kg_dns_host_entries(r->doc, r->names[l->name_id], ent, NULL);
	if (n <= 0 || !kg_dns_entries_resolvable(ent, n))
		return false;
	memcpy(key.addr, l->addr, 16);
	val.expires_ns = l->expires_ns;
	val.policy_id = r->policy_id;
	val.name_id = l->name_id;
	memcpy(val.ent, ent, sizeof(val.ent));
	return bpf_map_update_elem(r->addrs_fd, &key, &val, BPF_ANY) == 0;
}
