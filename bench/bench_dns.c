// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_dns.c - what egress by name costs (issue 12's benchmarks).
 *
 * The upstream is a real DNS server: dnsmasq, started here on a loopback
 * address of its own (127.X.0.54, port 53) with a hosts file of bench
 * names, and stopped at the end.  The job's resolver is the one `kgate run`
 * starts (kg_resolver_start), run by this process like a controller; its
 * audit records are drained and counted, not written to a trail (the trail
 * is written by the controller's thread after the answer has gone).
 *
 *   resolution   a worker asks dnsmasq's address for an allowed name over
 *                UDP: socket, connect, send, receive (the way a libc stub
 *                does it, one socket per query).  "upstream": the worker is
 *                outside the job, the query reaches dnsmasq itself.
 *                "kgate": the worker is in the job, its cgroup programs
 *                send the query to kgate's resolver, which asks dnsmasq,
 *                learns the address into kg_dns_addrs and answers.  Also
 *                "kgate, refused": a name no rule allows (never leaves).
 *   connect      one governed worker alternates TCP connects (loopback
 *                listener) to 127.0.0.1, allowed by a CIDR rule, and to the
 *                allowed name's address 127.X.1.10, allowed only because
 *                the job resolved the name; ratio name / CIDR, same worker,
 *                interleaved call by call.  Again with 100,000 entries in
 *                kg_dns_addrs.
 *   memory       kg_dns_addrs filled with 100,000 live entries and
 *                kg_dns_names with 25,000 names (4 addresses per name):
 *                the kernel's own figure (fdinfo "memlock", which is
 *                bpf_map_memory_usage) before, full and emptied again, and
 *                the machine's Slab delta (noisy: the whole machine).
 *
 * Rounds are interleaved (arms in rotated order); a p50 is the minimum
 * over rounds of the round's median, a p99 the median over rounds, a ratio
 * the median of same-round ratios.  Enforcement is checked, never timing:
 * before the name is resolved its address is refused, an address never
 * resolved stays refused, a name without a rule is REFUSED.
 */
#include "bench.h"
#include "dns/resolver.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define MAX_ROUNDS	16
#define FILL_ADDRS	100000
#define FILL_NAMES	25000
#define DNS_WAIT_MS	3000

static int net_x;
static char dns_addr[32], addr_svc[32], addr_other[32];
static const char *const name_svc = "svc.bench.test";		/* allowed by name */
static const char *const name_other = "other.bench.test";	/* no rule: REFUSED */
static pid_t dnsmasq_pid = -1;
static struct kg_resolver *res;
static uint64_t records_drained;

/* ---- DNS by ldns -------------------------------------------------------------- */

/* A query for name/A with id as wire bytes; 0 when ldns could not build it. */
static size_t build_query(const char *name, uint16_t id, uint8_t *out, size_t cap)
{
	ldns_pkt *p = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;

	if (ldns_pkt_query_new_frm_str(&p, name, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD) !=
	    LDNS_STATUS_OK)
		return 0;
	ldns_pkt_set_id(p, id);
	if (ldns_pkt2wire(&wire, p, &len) != LDNS_STATUS_OK || len > cap)
		len = 0;
	else
		memcpy(out, wire, len);
	free(wire);
	ldns_pkt_free(p);
	return len;
}

/* One query over UDP to srv:53 as a stub does it.  Returns the time from
 * socket() to the answer received (0 when none came), the answer's rcode
 * (-1 = none or malformed) and whether it holds the address want. */
static uint64_t resolve_once(const char *srv, const char *name, uint16_t id, int *rcode,
			     bool *has_want, const char *want)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
	uint8_t q[512], a[4096];
	struct pollfd pfd;
	ldns_pkt *pkt = NULL;
	uint64_t t0, t1 = 0;
	size_t qlen = build_query(name, id, q, sizeof(q));
	ssize_t n = -1;
	int fd;

	*rcode = -1;
	*has_want = false;
	inet_pton(AF_INET, srv, &sa.sin_addr);
	if (!qlen)
		return 0;
	t0 = bench_now();
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    send(fd, q, qlen, 0) == (ssize_t)qlen) {
		pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, DNS_WAIT_MS) == 1)
			n = recv(fd, a, sizeof(a), 0);
		t1 = bench_now();
	}
	close(fd);
	if (n <= 0 || ldns_wire2pkt(&pkt, a, (size_t)n) != LDNS_STATUS_OK)
		return 0;
	if (ldns_pkt_id(pkt) == id) {
		*rcode = ldns_pkt_get_rcode(pkt);
		if (want) {
			ldns_rr_list *an = ldns_pkt_answer(pkt);
			size_t i;

			for (i = 0; an && i < ldns_rr_list_rr_count(an); i++) {
				ldns_rr *rr = ldns_rr_list_rr(an, i);
				char txt[64];

				if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_A || !ldns_rr_rdf(rr, 0) ||
				    ldns_rdf_size(ldns_rr_rdf(rr, 0)) != 4)
					continue;
				inet_ntop(AF_INET, ldns_rdf_data(ldns_rr_rdf(rr, 0)), txt, sizeof(txt));
				if (!strcmp(txt, want))
					*has_want = true;
			}
		}
	}
	ldns_pkt_free(pkt);
	return t1 > t0 ? t1 - t0 : 0;
}

/* ---- dnsmasq ---------------------------------------------------------------- */

static void stop_dnsmasq(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
	}
	dnsmasq_pid = -1;
}

static int start_dnsmasq(const char *tmp, char *why, size_t whylen)
{
	char hosts[512], a_hosts[600], a_listen[64], a_log[600];
	FILE *f;
	int i, rc;
	bool got;

	net_x = 100 + getpid() % 100;
	snprintf(dns_addr, sizeof(dns_addr), "127.%d.0.54", net_x);
	snprintf(addr_svc, sizeof(addr_svc), "127.%d.1.10", net_x);
	snprintf(addr_other, sizeof(addr_other), "127.%d.1.11", net_x);
	snprintf(hosts, sizeof(hosts), "%s/hosts", tmp);
	f = fopen(hosts, "w");
	if (!f)
		return snprintf(why, whylen, "cannot write %s", hosts), -1;
	fprintf(f, "%s %s\n%s %s\n", addr_svc, name_svc, addr_other, name_other);
	fclose(f);
	snprintf(a_hosts, sizeof(a_hosts), "--addn-hosts=%s", hosts);
	snprintf(a_listen, sizeof(a_listen), "--listen-address=%s", dns_addr);
	snprintf(a_log, sizeof(a_log), "--log-facility=%s/dnsmasq.log", tmp);
	fflush(NULL);
	dnsmasq_pid = fork();
	if (dnsmasq_pid == 0) {
		/* TTL 3600 s: the learnt address stays live for the whole bench */
		char *argv[] = { "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
				 "--no-resolv", "--no-hosts", a_hosts, a_listen, "--bind-interfaces",
				 "--port=53", "--local-ttl=3600", "--pid-file=", "--user=root",
				 a_log, NULL };

		execvp("dnsmasq", argv);
		_exit(127);
	}
	if (dnsmasq_pid < 0)
		return snprintf(why, whylen, "fork: %s", strerror(errno)), -1;
	for (i = 0; i < 100; i++) {
		if (resolve_once(dns_addr, name_svc, (uint16_t)(i + 1), &rc, &got, addr_svc) && got)
			return 0;
		if (waitpid(dnsmasq_pid, NULL, WNOHANG) == dnsmasq_pid) {
			dnsmasq_pid = -1;
			break;
		}
		usleep(50 * 1000);
	}
	stop_dnsmasq();
	return snprintf(why, whylen, "dnsmasq did not answer on %s:53 (see %s/dnsmasq.log)",
			dns_addr, tmp), -1;
}

/* ---- the controller's part ------------------------------------------------------- */

static void drain_records(void)
{
	struct kg_dns_record d;

	if (!res)
		return;
	while (kg_resolver_next(res, &d))
		records_drained++;
}

/* bench_wait, plus what a controller does for its resolver: take its
 * records (a full queue would make it wait) and hand over a pushed
 * generation when it asks. */
static int dns_wait(struct bench *b, pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0;
	struct pollfd pfd[3] = {
		{ .fd = pidfd, .events = POLLIN },
		{ .fd = b->ev ? kg_events_epoll_fd(b->ev) : -1, .events = POLLIN },
		{ .fd = res ? kg_resolver_fd(res) : -1, .events = POLLIN },
	};

	if (pid <= 0)
		return -1;
	while (pidfd >= 0) {
		poll(pfd, 3, 100);
		if (b->ev)
			kg_events_poll(b->ev, 0);
		drain_records();
		if (pfd[0].revents)
			break;
	}
	if (pidfd >= 0)
		close(pidfd);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	if (b->ev)
		kg_events_drain(b->ev);
	drain_records();
	if (!WIFEXITED(status)) {
		bench_log("worker killed by signal %d", WTERMSIG(status));
		return -1;
	}
	return WEXITSTATUS(status);
}

/* ---- workers ------------------------------------------------------------------------ */

enum { RES_UP, RES_KG, RES_KG_REFUSED, RES_MAX };
static const char *const res_names[RES_MAX] = {
	"straight to the upstream (dnsmasq)", "through kgate's resolver",
	"through kgate's resolver, a name without a rule (REFUSED)",
};

enum { CONN_CIDR, CONN_NAME, CONN_MAX };

struct check {
	int before;		/* connect to the name's address before resolving: errno */
	int resolved;		/* rcode of the name's resolution, 0 = NOERROR */
	bool resolved_addr;	/* the answer held the address */
	int after;		/* connect after: 0 or errno */
	int never;		/* connect to an address never resolved */
	int refused_rcode;	/* rcode for a name without a rule */
	int never_after;	/* that name's address, after the refusal */
};

struct shm {
	long n_res, n_conn;
	uint64_t res_ok[RES_MAX], res_bad[RES_MAX];
	uint64_t conn_ok[2][CONN_MAX], conn_bad[2][CONN_MAX];	/* [arm gov?] */
	struct check check;
	uint32_t samples[];	/* res: RES_MAX * n_res; conn: CONN_MAX * n_conn */
};

struct warg {
	struct bench *b;
	struct shm *shm;
	int which;		/* resolution arm, or 0/1 = connect ungoverned/governed */
};

static uint16_t next_id(void)
{
	static uint16_t id;

	return ++id ? id : ++id;
}

static int res_worker(void *p)
{
	struct warg *a = p;
	struct shm *s = a->shm;
	long i, n = s->n_res, warm = n / 10 + 1;
	int arm = a->which, rc;
	bool got;

	/* RES_KG also runs RES_KG_REFUSED, interleaved query by query */
	for (i = -warm; i < n; i++) {
		uint64_t d = resolve_once(dns_addr, name_svc, next_id(), &rc, &got, addr_svc);

		if (i >= 0) {
			s->samples[(size_t)arm * n + i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
			if (d && rc == LDNS_RCODE_NOERROR && got)
				s->res_ok[arm]++;
			else
				s->res_bad[arm]++;
		}
		if (arm != RES_KG)
			continue;
		d = resolve_once(dns_addr, name_other, next_id(), &rc, &got, NULL);
		if (i >= 0) {
			s->samples[(size_t)RES_KG_REFUSED * n + i] = d > UINT32_MAX ? UINT32_MAX
										: (uint32_t)d;
			if (d && rc == LDNS_RCODE_REFUSED)
				s->res_ok[RES_KG_REFUSED]++;
			else
				s->res_bad[RES_KG_REFUSED]++;
		}
	}
	return 0;
}

static int tcp_listener(int *port)
{
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t len = sizeof(any);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&any, sizeof(any)) || listen(fd, 128) ||
	    getsockname(fd, (struct sockaddr *)&any, &len)) {
		close(fd);
		return -1;
	}
	*port = ntohs(any.sin_port);
	return fd;
}

/* One timed connect (RST close, the listener's side accepted and closed
 * outside the window).  *err: 0 or the errno. */
static uint64_t connect_once(int lfd, const char *addr, int port, int *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint64_t t0, t1;
	int fd, r;

	inet_pton(AF_INET, addr, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = errno;
		return 0;
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	t0 = bench_now();
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	t1 = bench_now();
	*err = r ? errno : 0;
	close(fd);
	if (r == 0) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int c;

		poll(&p, 1, 1000);
		c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			close(c);
	}
	return t1 - t0;
}

/* The first governed worker: what the policy says, before anything is timed. */
static int check_worker(void *p)
{
	struct warg *a = p;
	struct check *c = &a->shm->check;
	int lfd, port;
	bool got;

	lfd = tcp_listener(&port);
	if (lfd < 0)
		return 10;
	connect_once(lfd, addr_svc, port, &c->before);
	resolve_once(dns_addr, name_svc, next_id(), &c->resolved, &c->resolved_addr, addr_svc);
	connect_once(lfd, addr_svc, port, &c->after);
	connect_once(lfd, addr_other, port, &c->never);
	resolve_once(dns_addr, name_other, next_id(), &c->refused_rcode, &got, NULL);
	connect_once(lfd, addr_other, port, &c->never_after);
	close(lfd);
	return 0;
}

static int conn_worker(void *p)
{
	struct warg *a = p;
	struct shm *s = a->shm;
	long i, n = s->n_conn, warm = n / 10 + 1;
	int gov = a->which, lfd, port, err, rc, k;
	bool got;

	lfd = tcp_listener(&port);
	if (lfd < 0)
		return 10;
	/* live already (TTL 3600 s); resolving again costs nothing timed */
	if (gov)
		resolve_once(dns_addr, name_svc, next_id(), &rc, &got, addr_svc);
	for (i = -warm; i < n; i++) {
		for (k = 0; k < CONN_MAX; k++) {
			/* alternate which target goes first */
			int t = (int)((i + k) & 1) ? CONN_NAME : CONN_CIDR;
			uint64_t d = connect_once(lfd, t == CONN_NAME ? addr_svc : "127.0.0.1",
						  port, &err);

			if (i < 0)
				continue;
			s->samples[(size_t)t * n + i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
			if (err)
				s->conn_bad[gov][t]++;
			else
				s->conn_ok[gov][t]++;
		}
	}
	close(lfd);
	return 0;
}

/* ---- figures ---------------------------------------------------------------------------- */

struct fig {
	double p50[MAX_ROUNDS], p90[MAX_ROUNDS], p99[MAX_ROUNDS];
	int n;
};

static void fig_add(struct fig *f, const uint32_t *v, long n)
{
	uint64_t *t = calloc((size_t)n, sizeof(*t));
	long i;

	if (!t || f->n >= MAX_ROUNDS) {
		free(t);
		return;
	}
	for (i = 0; i < n; i++)
		t[i] = v[i];
	f->p50[f->n] = (double)bench_pct(t, (size_t)n, 50);
	f->p90[f->n] = (double)bench_pct(t, (size_t)n, 90);
	f->p99[f->n] = (double)bench_pct(t, (size_t)n, 99);
	f->n++;
	free(t);
}

static double fig_p50(const struct fig *f)
{
	double m = 0;
	int i;

	for (i = 0; i < f->n; i++)
		if (!m || f->p50[i] < m)
			m = f->p50[i];
	return m;
}

static double median_of(const double *x, int n)
{
	double v[MAX_ROUNDS];

	memcpy(v, x, sizeof(v));
	return bench_median_d(v, (size_t)n);
}

static double fig_p90(const struct fig *f)
{
	return median_of(f->p90, f->n);
}

static double fig_p99(const struct fig *f)
{
	return median_of(f->p99, f->n);
}

/* median over rounds of num.p50 / den.p50 */
static double fig_ratio(const struct fig *num, const struct fig *den)
{
	double v[MAX_ROUNDS];
	int i, n = 0;

	for (i = 0; i < num->n && i < den->n; i++)
		if (den->p50[i] > 0)
			v[n++] = num->p50[i] / den->p50[i];
	return bench_median_d(v, (size_t)n);
}

static json_t *fig_json(const struct fig *f, double scale)
{
	return json_pack("{s:f,s:f,s:f,s:i}", "p50", fig_p50(f) / scale, "p90", fig_p90(f) / scale,
			 "p99", fig_p99(f) / scale, "rounds", f->n);
}

/* ---- memory ------------------------------------------------------------------------------ */

static long fdinfo_memlock(int fd)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static long meminfo_kb(const char *key)
{
	char line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = atol(line + kl + 1);
			break;
		}
	fclose(f);
	return v;
}

struct mem {
	long addrs_empty, addrs_full, addrs_after;	/* memlock bytes */
	long names_empty, names_full, names_after;
	long slab_delta_kb;
	double fill_ms, empty_ms;
	long filled_addrs, filled_names;
};

#define FILL_CGID_BASE	0x6b67617465000000ull	/* "kgate": no cgroup has such an id */

static void fill_key(long k, struct kg_dns_key *key)
{
	memset(key, 0, sizeof(*key));
	key->cgid = FILL_CGID_BASE + (uint64_t)(k / KG_DNS_MAX_PER_JOB);	/* as jobs would */
	key->addr[10] = key->addr[11] = 0xff;
	key->addr[12] = 198;
	key->addr[13] = 51;
	key->addr[14] = (uint8_t)(k >> 8);
	key->addr[15] = (uint8_t)k;
	key->addr[13] += (uint8_t)(k >> 16);	/* 100,000 > 65,536 */
}

static void fill_name_key(long k, struct kg_dns_name_key *key)
{
	memset(key, 0, sizeof(*key));
	key->cgid = FILL_CGID_BASE + (uint64_t)(k / 4096);	/* the resolver's names per job */
	key->name_id = (uint32_t)(k % 4096) + 1;
}

/* Fill (on=true) or empty the two maps; false when an update failed. */
static bool mem_fill(int addrs_fd, int names_fd, bool on, struct mem *m)
{
	struct kg_dns_addr v = {};
	struct kg_dns_name nm = {};
	struct kg_dns_key key;
	struct kg_dns_name_key nk;
	long k;

	v.expires_ns = UINT64_MAX;
	v.policy_id = 0;	/* no job runs generation 0: never matches */
	v.name_id = 1;
	v.ent[0] = (struct kg_net_ent){ .rule_id = 1, .decision = KG_DEC_ALLOW, .port_lo = 443,
					.port_hi = 443, .proto = 6, .ops = KG_NET_OP_CONNECT };
	for (k = 0; k < FILL_ADDRS; k++) {
		fill_key(k, &key);
		if (on ? bpf_map_update_elem(addrs_fd, &key, &v, BPF_NOEXIST)
		       : bpf_map_delete_elem(addrs_fd, &key)) {
			bench_log("kg_dns_addrs entry %ld: %s", k, strerror(errno));
			return false;
		}
		if (on)
			m->filled_addrs++;
	}
	for (k = 0; k < FILL_NAMES; k++) {
		fill_name_key(k, &nk);
		snprintf(nm.name, sizeof(nm.name), "h%ld.cdn-%ld.example.com", k, k % 97);
		if (on ? bpf_map_update_elem(names_fd, &nk, &nm, BPF_NOEXIST)
		       : bpf_map_delete_elem(names_fd, &nk)) {
			bench_log("kg_dns_names entry %ld: %s", k, strerror(errno));
			return false;
		}
		if (on)
			m->filled_names++;
	}
	return true;
}

/* ---- main ----------------------------------------------------------------------------------- */

static int run_res_round(struct bench *b, struct shm *s, struct fig f[RES_MAX], int round)
{
	int order[2] = { RES_UP, RES_KG }, i, arm;

	if (round & 1) {
		order[0] = RES_KG;
		order[1] = RES_UP;
	}
	for (i = 0; i < 2; i++) {
		struct warg a = { .b = b, .shm = s, .which = order[i] };
		pid_t pid = bench_spawn(b, order[i] == RES_UP ? ARM_FREE : ARM_GOV, res_worker, &a);

		if (dns_wait(b, pid))
			return -1;
	}
	for (arm = 0; arm < RES_MAX; arm++)
		fig_add(&f[arm], s->samples + (size_t)arm * s->n_res, s->n_res);
	return 0;
}

static int run_conn_round(struct bench *b, struct shm *s, struct fig f[2][CONN_MAX], int round)
{
	int order[2] = { 0, 1 }, i, t;

	if (round & 1) {
		order[0] = 1;
		order[1] = 0;
	}
	for (i = 0; i < 2; i++) {
		struct warg a = { .b = b, .shm = s, .which = order[i] };
		pid_t pid = bench_spawn(b, order[i] ? ARM_GOV : ARM_FREE, conn_worker, &a);

		if (dns_wait(b, pid))
			return -1;
		for (t = 0; t < CONN_MAX; t++)
			fig_add(&f[order[i]][t], s->samples + (size_t)t * s->n_conn, s->n_conn);
	}
	return 0;
}

static const char *errno_word(int e)
{
	static char buf[4][32];
	static int k;

	k = (k + 1) % 4;
	if (!e)
		return "connected";
	snprintf(buf[k], sizeof(buf[k]), "%s", e == EPERM ? "EPERM" : strerror(e));
	return buf[k];
}

int main(void)
{
	struct bench b;
	struct kg_resolver_cfg cfg = {};
	struct kg_resolver_stats rst = {};
	struct fig fres[RES_MAX] = {}, fconn[2][CONN_MAX] = {}, fconn_full[2][CONN_MAX] = {};
	struct mem m = {};
	struct shm *s = NULL;
	char *policy = NULL, why[1024] = "", r1[32], r2[32];
	int rounds, r, addrs_fd = -1, names_fd = -1, rc = 0;
	long n_res, n_conn, slab0;
	size_t shm_bytes = 0;
	uint64_t conn_bad[2] = { 0, 0 };
	bool check_ok, mem_ok = false, conn_full_ok = false;
	double load[3] = { 0, 0, 0 };
	json_t *j;
	uint64_t t0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (bench_setup(&b, "dns")) {
		bench_teardown(&b);
		return BENCH_EXIT_CANNOT_RUN;
	}
	rounds = b.quick ? 2 : 6;
	if (getenv("KGATE_BENCH_ROUNDS") && atoi(getenv("KGATE_BENCH_ROUNDS")) > 0)
		rounds = atoi(getenv("KGATE_BENCH_ROUNDS"));
	if (rounds > MAX_ROUNDS)
		rounds = MAX_ROUNDS;
	n_res = bench_iters(2000, 100);
	n_conn = bench_iters(3000, 100);
	getloadavg(load, 3);
	if (system("command -v dnsmasq >/dev/null 2>&1")) {
		snprintf(why, sizeof(why), "no dnsmasq (scripts/install-deps.sh demo installs "
			 "dnsmasq-base)");
		goto cannot;
	}
	if (start_dnsmasq(b.tmp, why, sizeof(why)))
		goto cannot;
	{
		struct bench_str ps = {};

		bench_str_add(&ps,
			"{\"version\":1,\"name\":\"bench-dns\",\"default\":\"allow\","
			"\"runtime_defaults\":{\"file\":\"allow\",\"exec\":\"allow\",\"net\":\"deny\"},"
			"\"runtime\":["
			"{\"id\":\"lo-cidr\",\"net\":{\"cidr\":\"127.0.0.1/32\"},\"decision\":\"allow\"},"
			"{\"id\":\"bench-bind\",\"net\":{\"cidr\":\"0.0.0.0/0\",\"ops\":[\"bind\"]},"
			"\"decision\":\"allow\"},"
			"{\"id\":\"svc-name\",\"net\":{\"host\":\"%s\",\"allow_private\":true},"
			"\"decision\":\"allow\"}]}", name_svc);
		policy = ps.s;
	}
	if (!policy || bench_policy(&b, policy, NULL, NULL)) {
		snprintf(why, sizeof(why), "the bench policy could not be installed");
		goto cannot;
	}
	cfg.cgid = b.job.id;
	cfg.doc = b.doc;
	cfg.policy_id = b.policy_id;
	cfg.upstream = dns_addr;
	res = kg_resolver_start(&cfg);
	if (!res) {
		snprintf(why, sizeof(why), "kgate's resolver did not start");
		goto cannot;
	}
	shm_bytes = sizeof(*s) + sizeof(uint32_t) * (size_t)(RES_MAX * n_res + CONN_MAX * n_conn);
	s = bench_shm(shm_bytes);
	if (!s) {
		snprintf(why, sizeof(why), "no shared memory");
		goto cannot;
	}
	s->n_res = n_res;
	s->n_conn = n_conn;

	/* what the policy says, first */
	{
		struct warg a = { .b = &b, .shm = s };

		if (dns_wait(&b, bench_spawn(&b, ARM_GOV, check_worker, &a)))
			bench_log("the check worker failed");
	}
	check_ok = s->check.before == EPERM && s->check.resolved == LDNS_RCODE_NOERROR &&
		   s->check.resolved_addr && s->check.after == 0 && s->check.never == EPERM &&
		   s->check.refused_rcode == LDNS_RCODE_REFUSED && s->check.never_after == EPERM;

	bench_log("dns: %d rounds, %ld resolutions, %ld connect pairs per worker", rounds, n_res,
		  n_conn);
	for (r = 0; r < rounds; r++)
		if (run_res_round(&b, s, fres, r) || run_conn_round(&b, s, fconn, r)) {
			bench_log("dns: round %d: a worker failed", r);
			break;
		}

	conn_bad[0] = s->conn_bad[0][0] + s->conn_bad[0][1];
	conn_bad[1] = s->conn_bad[1][0] + s->conn_bad[1][1];
	/* 100,000 live entries */
	addrs_fd = kg_open_pinned_map("kg_dns_addrs");
	names_fd = kg_open_pinned_map("kg_dns_names");
	if (addrs_fd >= 0 && names_fd >= 0) {
		m.addrs_empty = fdinfo_memlock(addrs_fd);
		m.names_empty = fdinfo_memlock(names_fd);
		slab0 = meminfo_kb("Slab");
		t0 = bench_now();
		mem_ok = mem_fill(addrs_fd, names_fd, true, &m);
		m.fill_ms = (double)(bench_now() - t0) / 1e6;
		m.addrs_full = fdinfo_memlock(addrs_fd);
		m.names_full = fdinfo_memlock(names_fd);
		m.slab_delta_kb = meminfo_kb("Slab") - slab0;
		if (mem_ok) {
			conn_full_ok = true;
			for (r = 0; r < rounds; r++)
				if (run_conn_round(&b, s, fconn_full, r)) {
					conn_full_ok = false;
					break;
				}
		}
		t0 = bench_now();
		mem_fill(addrs_fd, names_fd, false, &m);
		m.empty_ms = (double)(bench_now() - t0) / 1e6;
		m.addrs_after = fdinfo_memlock(addrs_fd);
		m.names_after = fdinfo_memlock(names_fd);
	}
	kg_resolver_halt(res);
	drain_records();
	kg_resolver_stats(res, &rst);

	/* ---- report ---- */
	bench_md("## Egress by name (bench_dns)\n\n");
	bench_md("Upstream: dnsmasq on %s:53 (started and stopped by the bench, hosts file, TTL "
		 "3600 s); kgate's resolver run in-process as a controller runs it, its %llu "
		 "audit records drained, not written. Mode: %s. Load average at start: %.1f %.1f "
		 "%.1f on %ld cores (other work shares this machine: read p99 as an upper "
		 "bound). %d interleaved rounds; p50 = min over rounds of the round's median, "
		 "p99 = median over rounds, ratio = median of same-round ratios.\n\n",
		 dns_addr, (unsigned long long)records_drained,
		 b.full ? "full (BPF LSM)" : "degraded (cgroup-BPF decides connects in both modes)",
		 load[0], load[1], load[2], sysconf(_SC_NPROCESSORS_ONLN), rounds);
	bench_md("Enforcement (before timing): the name's address before resolving: %s; "
		 "resolving %s: rcode %d%s; after: %s; an address never resolved: %s; a name "
		 "without a rule: rcode %d (5 = REFUSED), its address after: %s. %s\n\n",
		 errno_word(s->check.before), name_svc, s->check.resolved,
		 s->check.resolved_addr ? " with its address" : " WITHOUT its address",
		 errno_word(s->check.after), errno_word(s->check.never), s->check.refused_rcode,
		 errno_word(s->check.never_after),
		 check_ok ? "As the policy says." : "**NOT as the policy says: the figures below "
						    "do not measure what they claim.**");
	bench_md("### Resolution over UDP, socket to answer (%ld queries per worker per round)\n\n",
		 n_res);
	bench_md("| path | p50 us | p90 us | p99 us | answered as expected | vs upstream (p50) |\n");
	bench_md("| --- | ---: | ---: | ---: | ---: | ---: |\n");
	for (r = 0; r < RES_MAX; r++)
		bench_md("| %s | %.1f | %.1f | %.1f | %llu/%llu | %s |\n", res_names[r],
			 fig_p50(&fres[r]) / 1e3, fig_p90(&fres[r]) / 1e3, fig_p99(&fres[r]) / 1e3,
			 (unsigned long long)s->res_ok[r],
			 (unsigned long long)(s->res_ok[r] + s->res_bad[r]),
			 r ? bench_ratio_str(fig_ratio(&fres[r], &fres[RES_UP]), r1, sizeof(r1)) : "");
	bench_md("\nResolver: %llu queries, %llu answered, %llu refused, %llu failed, %llu "
		 "malformed, %llu dropped by the kernel, %llu records lost.\n\n",
		 (unsigned long long)rst.queries, (unsigned long long)rst.answered,
		 (unsigned long long)rst.refused, (unsigned long long)rst.failed,
		 (unsigned long long)rst.malformed, (unsigned long long)rst.dropped,
		 (unsigned long long)rst.records_lost);
	bench_md("### TCP connect (loopback): a name-allowed address vs a CIDR-allowed one\n\n");
	bench_md("One worker alternates the two targets call by call (%ld each per round). "
		 "Goal (issue 12): name / CIDR <= 1.05x.\n\n", n_conn);
	bench_md("| worker | kg_dns_addrs | CIDR 127.0.0.1 p50 / p99 ns | name %s p50 / p99 ns | "
		 "name / CIDR | refused |\n", addr_svc);
	bench_md("| --- | --- | ---: | ---: | ---: | ---: |\n");
	for (r = 1; r >= 0; r--) {
		bench_md("| %s | the job's entry | %.0f / %.0f | %.0f / %.0f | %s | %llu |\n",
			 r ? "governed" : "ungoverned", fig_p50(&fconn[r][CONN_CIDR]),
			 fig_p99(&fconn[r][CONN_CIDR]), fig_p50(&fconn[r][CONN_NAME]),
			 fig_p99(&fconn[r][CONN_NAME]),
			 bench_ratio_str(fig_ratio(&fconn[r][CONN_NAME], &fconn[r][CONN_CIDR]), r1,
					 sizeof(r1)),
			 (unsigned long long)conn_bad[r]);
	}
	if (conn_full_ok)
		bench_md("| governed | + %ld other entries | %.0f / %.0f | %.0f / %.0f | %s | %llu |\n",
			 m.filled_addrs, fig_p50(&fconn_full[1][CONN_CIDR]),
			 fig_p99(&fconn_full[1][CONN_CIDR]), fig_p50(&fconn_full[1][CONN_NAME]),
			 fig_p99(&fconn_full[1][CONN_NAME]),
			 bench_ratio_str(fig_ratio(&fconn_full[1][CONN_NAME],
						   &fconn_full[1][CONN_CIDR]), r2, sizeof(r2)),
			 (unsigned long long)(s->conn_bad[1][0] + s->conn_bad[1][1] - conn_bad[1]));
	bench_md("\nGoverned / ungoverned (p50): CIDR %s, name %s.\n\n",
		 bench_ratio_str(fig_ratio(&fconn[1][CONN_CIDR], &fconn[0][CONN_CIDR]), r1, sizeof(r1)),
		 bench_ratio_str(fig_ratio(&fconn[1][CONN_NAME], &fconn[0][CONN_NAME]), r2, sizeof(r2)));
	bench_md("### Map memory for 100,000 live name entries\n\n");
	if (mem_ok) {
		bench_md("kg_dns_addrs (hash, BPF_F_NO_PREALLOC, %d max) filled with %ld entries "
			 "(key %zu + value %zu bytes) as %ld jobs would hold them (%d each at most), "
			 "kg_dns_names with %ld names (%d per job at most): the kernel's figure "
			 "(fdinfo memlock, bpf_map_memory_usage).\n\n",
			 KG_MAX_DNS_ADDRS, m.filled_addrs, sizeof(struct kg_dns_key),
			 sizeof(struct kg_dns_addr),
			 (m.filled_addrs + KG_DNS_MAX_PER_JOB - 1) / KG_DNS_MAX_PER_JOB,
			 KG_DNS_MAX_PER_JOB, m.filled_names, 4096);
		bench_md("| map | empty | full | per entry | emptied again | fill / empty ms |\n");
		bench_md("| --- | ---: | ---: | ---: | ---: | ---: |\n");
		bench_md("| kg_dns_addrs, %ld entries | %.1f MiB | %.1f MiB | %.0f B | %.1f MiB | "
			 "%.0f / %.0f |\n", m.filled_addrs, m.addrs_empty / 1048576.0,
			 m.addrs_full / 1048576.0,
			 (double)(m.addrs_full - m.addrs_empty) / (double)m.filled_addrs,
			 m.addrs_after / 1048576.0, m.fill_ms, m.empty_ms);
		bench_md("| kg_dns_names, %ld names | %.1f MiB | %.1f MiB | %.0f B | %.1f MiB | "
			 "(included) |\n", m.filled_names, m.names_empty / 1048576.0,
			 m.names_full / 1048576.0,
			 (double)(m.names_full - m.names_empty) / (double)m.filled_names,
			 m.names_after / 1048576.0);
		bench_md("\nBoth filled: +%.1f MiB (kernel figure); the machine's Slab grew %.1f MiB "
			 "meanwhile (whole machine, noisy; slab size classes round each element "
			 "up).\n\n",
			 (double)(m.addrs_full - m.addrs_empty + m.names_full - m.names_empty) / 1048576.0,
			 m.slab_delta_kb / 1024.0);
	} else {
		bench_md("Not measured: the maps could not be filled (see the log).\n\n");
	}

	j = json_pack("{s:s,s:b,s:i,s:[f,f,f]}", "mode", b.full ? "full" : "degraded",
		      "enforced_as_policy_says", check_ok, "rounds", rounds,
		      "loadavg", load[0], load[1], load[2]);
	json_object_set_new(j, "resolution_us", json_pack("{s:o,s:o,s:o,s:f,s:f,s:i}",
		"upstream", fig_json(&fres[RES_UP], 1e3), "kgate", fig_json(&fres[RES_KG], 1e3),
		"kgate_refused", fig_json(&fres[RES_KG_REFUSED], 1e3),
		"ratio_kgate_vs_upstream", fig_ratio(&fres[RES_KG], &fres[RES_UP]),
		"ratio_refused_vs_upstream", fig_ratio(&fres[RES_KG_REFUSED], &fres[RES_UP]),
		"queries", (int)n_res));
	json_object_set_new(j, "connect_ns", json_pack("{s:o,s:o,s:o,s:o,s:f,s:f,s:i}",
		"governed_cidr", fig_json(&fconn[1][CONN_CIDR], 1),
		"governed_name", fig_json(&fconn[1][CONN_NAME], 1),
		"ungoverned_cidr", fig_json(&fconn[0][CONN_CIDR], 1),
		"ungoverned_name", fig_json(&fconn[0][CONN_NAME], 1),
		"ratio_name_vs_cidr", fig_ratio(&fconn[1][CONN_NAME], &fconn[1][CONN_CIDR]),
		"ratio_name_vs_cidr_100k",
		conn_full_ok ? fig_ratio(&fconn_full[1][CONN_NAME], &fconn_full[1][CONN_CIDR]) : 0.0,
		"calls", (int)n_conn));
	if (mem_ok)
		json_object_set_new(j, "memory", json_pack("{s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
			"addrs", (int)m.filled_addrs, "names", (int)m.filled_names,
			"addrs_empty_bytes", (json_int_t)m.addrs_empty,
			"addrs_full_bytes", (json_int_t)m.addrs_full,
			"names_empty_bytes", (json_int_t)m.names_empty,
			"names_full_bytes", (json_int_t)m.names_full,
			"addrs_after_bytes", (json_int_t)m.addrs_after,
			"names_after_bytes", (json_int_t)m.names_after,
			"slab_delta_kb", (json_int_t)m.slab_delta_kb));
	bench_emit("bench_dns", j);
	json_decref(j);
	goto out;
cannot:
	bench_log("dns: not measured: %s", why);
	bench_md("## Egress by name (bench_dns)\n\nNot measured: %s.\n\n", why);
	j = json_pack("{s:b,s:s}", "measured", 0, "why", why);
	bench_emit("bench_dns", j);
	json_decref(j);
	rc = BENCH_EXIT_CANNOT_RUN;
out:
	if (addrs_fd >= 0)
		close(addrs_fd);
	if (names_fd >= 0)
		close(names_fd);
	kg_resolver_stop(res);
	res = NULL;
	stop_dnsmasq();
	if (s)
		munmap(s, shm_bytes);
	free(policy);
	bench_teardown(&b);
	return rc;
}
