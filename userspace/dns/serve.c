// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns/serve.c - the resolver's sockets (dns/internal.h): the thread that
 * serves the job's queries, the UDP and TCP pair it binds on each loopback
 * address, and the upstream resolver it asks.
 *
 * One thread, one poll loop: UDP and TCP on 127.0.0.1 and ::1 (the same
 * port for both protocols of a family, as kg_dns_redirect has one port per
 * family), and an eventfd to stop or change policy.  A TCP client is served
 * until it closes, idles for a second or sends garbage; the resolver only
 * serves one job, so a job that stalls it stalls its own name lookups.
 *
 * Every DNS message is parsed and built by ldns; only the two-byte length
 * that frames a message on TCP (RFC 1035 4.2.2) is written here.
 */
#include "dns/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* One datagram.  Read with recvmsg (the bytes only: ldns parses them) for
 * the socket's drop counter (SO_RXQ_OVFL): queries the kernel dropped
 * because the receive queue was full are counted, never silently gone. */
static void serve_udp(struct kg_resolver *r, int fd, uint32_t *ovfl)
{
	static uint8_t wire[65536];	/* only the resolver thread reads here */
	struct sockaddr_storage from;
	char cbuf[CMSG_SPACE(sizeof(uint32_t))];
	struct iovec iov = { wire, sizeof(wire) };
	struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
			    .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	size_t outlen;
	uint8_t *out;
	ssize_t len = recvmsg(fd, &m, MSG_DONTWAIT);

	if (len < 0)
		return;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
			uint32_t now;

			memcpy(&now, CMSG_DATA(c), sizeof(now));
			if (now != *ovfl) {
				pthread_mutex_lock(&r->qmu);
				r->st.dropped += now - *ovfl;
				pthread_mutex_unlock(&r->qmu);
				*ovfl = now;
			}
		}
	kgr_handle(r, wire, (size_t)len, false, &out, &outlen);
	if (out && sendto(fd, out, outlen, MSG_DONTWAIT, (struct sockaddr *)&from, m.msg_namelen) < 0)
		kgr_count(r, &r->st.unsent);	/* the client's queue full, or it went away */
	free(out);
}

static void serve_tcp(struct kg_resolver *r, int lfd)
{
	struct timeval tv = { .tv_sec = 1 };
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (;;) {
		size_t len = 0, outlen;
		uint8_t *wire = ldns_tcp_read_wire_timeout(fd, &len, tv), *out;
		uint16_t be;
		struct iovec iov[2];

		if (!wire)
			break;
		kgr_handle(r, wire, len, true, &out, &outlen);
		LDNS_FREE(wire);
		if (!out)
			break;
		be = htons((uint16_t)outlen);
		iov[0] = (struct iovec){ &be, 2 };
		iov[1] = (struct iovec){ out, outlen };
		if (writev(fd, iov, 2) != (ssize_t)(outlen + 2)) {
			free(out);
			break;
		}
		free(out);
	}
	close(fd);
}

void *kgr_resolver_main(void *arg)
{
	struct kg_resolver *r = arg;

	for (;;) {
		struct pollfd p[5] = {
			{ .fd = r->stop_fd, .events = POLLIN },
			{ .fd = r->udp4, .events = POLLIN },
			{ .fd = r->tcp4, .events = POLLIN },
			{ .fd = r->udp6, .events = POLLIN },
			{ .fd = r->tcp6, .events = POLLIN },
		};
		uint64_t v;

		if (poll(p, 5, 1000) < 0 && errno != EINTR)
			break;
		if ((p[0].revents & POLLIN) && read(r->stop_fd, &v, sizeof(v)) < 0) {
			/* level-triggered: read again next time */
		}
		/* the doc and policy id only change under the lock */
		pthread_mutex_lock(&r->mu);
		if (r->stopping) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		if (p[1].revents & POLLIN)
			serve_udp(r, r->udp4, &r->ovfl4);
		if (p[3].revents & POLLIN)
			serve_udp(r, r->udp6, &r->ovfl6);
		if (p[2].revents & POLLIN)
			serve_tcp(r, r->tcp4);
		if (p[4].revents & POLLIN)
			serve_tcp(r, r->tcp6);
		if (kgr_now_ns() >= r->next_sweep_ns) {
			kgr_learnt_filter(r, kgr_keep_live);
			r->next_sweep_ns = kgr_now_ns() + 1000000000ull;
		}
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* ---- setup ---------------------------------------------------------------------- */

int kgr_upstream_open(struct kg_resolver *r, const char *spec, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL, *h = spec;
	size_t hl;
	ldns_rdf *ns;
	unsigned long p = 53;
	char *end;

	if (!spec) {
		static const char fix[] = "give one with --dns-upstream ADDR (or $KGATE_DNS_UPSTREAM)";
		ldns_status st;

		if (access("/etc/resolv.conf", F_OK) && errno == ENOENT)
			return snprintf(err, errlen, "no /etc/resolv.conf, so no upstream resolver for "
					"the job's names: %s", fix), -1;
		st = ldns_resolver_new_frm_file(&r->up, NULL);
		if (st != LDNS_STATUS_OK || !r->up)
			return snprintf(err, errlen, "cannot read the upstream resolvers from "
					"/etc/resolv.conf (%s): %s", ldns_get_errorstr_by_id(st),
					fix), -1;
		if (!ldns_resolver_nameserver_count(r->up))
			return snprintf(err, errlen, "/etc/resolv.conf has no nameserver line, so no "
					"upstream resolver for the job's names: %s", fix), -1;
	} else {
		if (spec[0] == '[') {
			const char *close = strchr(spec, ']');

			if (!close)
				return snprintf(err, errlen, "upstream '%s': missing ']'", spec), -1;
			h = spec + 1;
			hl = (size_t)(close - h);
			if (close[1] == ':')
				port = close + 2;
			else if (close[1])
				return snprintf(err, errlen, "upstream '%s': junk after ']'", spec), -1;
		} else {
			const char *colon = strchr(spec, ':');

			if (colon && strchr(colon + 1, ':'))
				colon = NULL;	/* a bare IPv6 address */
			hl = colon ? (size_t)(colon - spec) : strlen(spec);
			port = colon ? colon + 1 : NULL;
		}
		if (hl >= sizeof(host))
			return snprintf(err, errlen, "upstream '%s': address too long", spec), -1;
		memcpy(host, h, hl);
		host[hl] = '\0';
		if (port) {
			errno = 0;
			p = strtoul(port, &end, 10);
			if (!*port || *end || errno || p < 1 || p > 65535)
				return snprintf(err, errlen, "upstream '%s': bad port", spec), -1;
		}
		ns = ldns_rdf_new_frm_str(strchr(host, ':') ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A,
					  host);
		if (!ns)
			return snprintf(err, errlen, "upstream '%s': not an IP address", spec), -1;
		r->up = ldns_resolver_new();
		if (!r->up || ldns_resolver_push_nameserver(r->up, ns) != LDNS_STATUS_OK) {
			ldns_rdf_deep_free(ns);
			return snprintf(err, errlen, "upstream '%s': out of memory", spec), -1;
		}
		ldns_rdf_deep_free(ns);
		ldns_resolver_set_port(r->up, (uint16_t)p);
	}
	ldns_resolver_set_recursive(r->up, true);
	ldns_resolver_set_fallback(r->up, true);	/* TCP when the answer is truncated */
	ldns_resolver_set_retry(r->up, 1);
	ldns_resolver_set_timeout(r->up, (struct timeval){ .tv_sec = 2 });
	ldns_resolver_set_dnssec(r->up, false);
	return 0;
}

int kgr_bind_pair(int family, const void *addr, int *udp, int *tcp, uint16_t *port)
{
	int attempt;

	for (attempt = 0; attempt < 32; attempt++) {
		struct sockaddr_storage ss = {};
		socklen_t sl;
		int one = 1, rcvbuf = 4 << 20;

		if (family == AF_INET) {
			struct sockaddr_in *s = (struct sockaddr_in *)&ss;

			s->sin_family = AF_INET;
			memcpy(&s->sin_addr, addr, 4);
			sl = sizeof(*s);
		} else {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

			s->sin6_family = AF_INET6;
			memcpy(&s->sin6_addr, addr, 16);
			sl = sizeof(*s);
		}
		*udp = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		*tcp = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (*udp < 0 || *tcp < 0)
			goto fail;
		if (family == AF_INET6)
			setsockopt(*udp, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)),
			setsockopt(*tcp, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(*tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/* room for a burst of the job's queries (root may exceed rmem_max),
		 * and the count of those that found none */
		if (setsockopt(*udp, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
			setsockopt(*udp, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
		setsockopt(*udp, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
		if (bind(*udp, (struct sockaddr *)&ss, sl) || getsockname(*udp, (struct sockaddr *)&ss, &sl))
			goto fail;
		*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
		if (!bind(*tcp, (struct sockaddr *)&ss, sl) && !listen(*tcp, 64))
			return 0;
		/* that port is taken for TCP: another one */
		kgr_close_fd(udp);
		kgr_close_fd(tcp);
		continue;
fail:
		kgr_close_fd(udp);
		kgr_close_fd(tcp);
		return -errno;
	}
	return -EADDRINUSE;
}
