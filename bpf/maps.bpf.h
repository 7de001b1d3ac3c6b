/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * maps.bpf.h - every map kgate's programs share.
 *
 * Each .bpf.c includes this file, so each object declares the same maps;
 * LIBBPF_PIN_BY_NAME plus the controller's pin_root_path makes libbpf reuse
 * the pinned instance instead of creating a new one.  So the cgroup object
 * (loads everywhere) and the LSM objects (full mode only) read one policy,
 * and the maps outlive the controller: enforcement continues if it dies and
 * a restarted controller finds the same state.
 */
#ifndef KGATE_MAPS_BPF_H
#define KGATE_MAPS_BPF_H

#include "kgate.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_JOBS);
	__type(key, __u64);		/* cgroup id */
	__type(value, struct kg_job);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_jobs SEC(".maps");

/* The cgroups governed jobs live under.  LSM hooks run for every task on
 * the system: bpf_current_task_under_cgroup() (an O(1) ancestor check)
 * sends the ungoverned ones away before any hash lookup.  Slot 0 is where
 * every `kgate run` job lives (<cgroup2>/kgate), set by the controller;
 * each cgroup `kgate govern` put under a policy elsewhere has a slot of its
 * own (1 .. kg_roots_used - 1), so a task outside all of them costs one
 * check plus one per governed cgroup.  Slot 0 left empty (e.g. by tests
 * that place jobs elsewhere): the hooks fall back to the kg_jobs walk. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, KG_MAX_ROOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_jobs_root SEC(".maps");

/* How many kg_jobs_root slots may be in use (the highest one + 1): written
 * by `kgate govern` and `kgate release` under the state dir's roots lock. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_roots_used SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_JOBS);
	__type(key, __u64);		/* cgroup id */
	__type(value, struct kg_job_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_job_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_POLICIES);
	__type(key, __u32);		/* policy id */
	__type(value, struct kg_policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_FILE_RULES);
	__type(key, struct kg_file_key);
	__type(value, struct kg_file_rule);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_file_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_NAME_RULES);
	__type(key, struct kg_name_key);
	__type(value, struct kg_rule_ent);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_name_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, KG_MAX_NET_RULES);
	__type(key, struct kg_net_key);
	__type(value, struct kg_net_rule);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_net_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_NAME_RULES);
	__type(key, struct kg_unix_key);
	__type(value, struct kg_rule_ent);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_unix_abstract SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_RULE_PARAMS);
	__type(key, struct kg_rule_key);
	__type(value, struct kg_rule_params);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_rule_params SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KG_MAX_RULE_PARAMS);
	__type(key, struct kg_throttle_key);
	__type(value, struct kg_throttle_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_throttle SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_GRANTS);
	__type(key, struct kg_grant_key);
	__type(value, struct kg_grant);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_grants SEC(".maps");

/* egress by name: see kgate.h */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_DNS_ADDRS);
	__type(key, struct kg_dns_key);
	__type(value, struct kg_dns_addr);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_dns_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_DNS_NAMES);
	__type(key, struct kg_dns_name_key);
	__type(value, struct kg_dns_name);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_dns_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_JOBS);
	__type(key, __u64);		/* job cgroup id */
	__type(value, struct kg_dns_redirect);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_dns_redirect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KG_MAX_DNS_SOCKETS);
	__type(key, __u64);		/* socket cookie */
	__type(value, struct kg_dns_orig);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_dns_orig SEC(".maps");

/* kgate's own directories (see kg_protected in kgate.h): key -> KG_PROT_F_* */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_PROTECTED);
	__type(key, struct kg_prot_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_protected SEC(".maps");

/* names run, obeyed or served outside the job (kg_outside in kgate.h):
 * key -> KG_OUT_F_* | member */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_OUTSIDE);
	__type(key, struct kg_out_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_outside SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kg_control);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_control SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KG_RINGBUF_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_events SEC(".maps");

/* when the consumer was last woken (bpf_ktime_get_ns): see KG_WAKE_NS */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_wake SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kg_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_counters SEC(".maps");

/* losses per job: see kgate.h */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_JOBS);
	__type(key, __u64);		/* job cgroup id */
	__type(value, struct kg_job_lost);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_job_lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_JOBS);
	__type(key, __u64);		/* job cgroup id */
	__type(value, struct kg_job_lost);	/* accounted in the trail */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_lost_seen SEC(".maps");

/* folding repeated decisions: see kgate.h.  Not LRU: an evicted entry would
 * take its folded count with it; a full map folds nothing new instead. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_FOLD);
	__type(key, struct kg_fold_key);
	__type(value, struct kg_fold);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_fold SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KG_MAX_FOLD);
	__type(key, struct kg_fold_key);
	__type(value, struct kg_event);	/* the key's last event, for the job-end record */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kg_fold_last SEC(".maps");

/* Per-CPU scratch space for building an event before it is reserved
 * (the stack is too small for a path buffer). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kg_event);
} kg_scratch SEC(".maps");

#endif
