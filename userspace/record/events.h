/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * events.h - consume kgate's ring buffer and describe events.
 *
 * Any kgate process may consume (a `kgate run` without a daemon, or the
 * daemon): each event is delivered to exactly one consumer, which records
 * it in the shared audit trail, so nothing depends on which one it was.
 */
#ifndef KGATE_EVENTS_H
#define KGATE_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "kgate.h"
#include "kernel/loader.h"

/*
 * Delivery is exactly-once across controller crashes: records are handed to
 * the sink, the sink commits them (the audit trail), and only then does the
 * consumer position in the ring buffer advance.  A crash between the commit
 * and the advance re-delivers that batch; each record carries its ring
 * position (and the ring's map id) so the next consumer skips what the
 * trail already has (kg_events_skip_to).  That is why this reader is not
 * libbpf's ring_buffer, which advances after every record.
 */
struct kg_event_sink {
	/* one record; pos is the ring position just after it (unique,
	 * increasing).  Non-zero = not taken (out of memory): the batch stops
	 * before it and it is delivered again next time. */
	int (*event)(void *ctx, const struct kg_event *e, uint64_t pos);
	/* make the batch delivered so far durable; non-zero = do not advance.
	 * The batch then stays with the sink (it is not delivered again):
	 * every later poll retries this commit first and delivers nothing
	 * new until it succeeds, so a full disk costs no memory beyond one
	 * batch and no duplicates; the kernel counts what the ring cannot
	 * hold meanwhile as lost. */
	int (*commit)(void *ctx);
	void *ctx;
};

struct kg_events;

struct kg_events *kg_events_open(struct kg_loader *l, const struct kg_event_sink *sink);
/* Deliver what is ready, waiting at most timeout_ms; records handled or -errno. */
int kg_events_poll(struct kg_events *ev, int timeout_ms);
/* Deliver everything already in the buffer without waiting. */
int kg_events_drain(struct kg_events *ev);
int kg_events_epoll_fd(const struct kg_events *ev);
/* Records wait in the ring (not yet delivered). */
bool kg_events_pending(const struct kg_events *ev);
/* How long a caller that polls the epoll fd itself may wait: the kernel
 * wakes the consumer only now and then in a storm (KG_WAKE_NS, kgate.h), so
 * until 2 * KG_WAKE_MS after a poll that delivered records, or while
 * records wait, at most KG_WAKE_MS (also when timeout_ms is negative); else
 * timeout_ms.  kg_events_poll applies it itself. */
int kg_events_timeout_ms(const struct kg_events *ev, int timeout_ms);
/* A delivered batch is waiting for its commit (see kg_event_sink). */
bool kg_events_held(const struct kg_events *ev);
/* Identity of the ring (its BPF map id). */
uint32_t kg_events_ring_id(const struct kg_events *ev);
/* Skip records before pos: a previous consumer committed them already. */
void kg_events_skip_to(struct kg_events *ev, uint64_t pos);
void kg_events_close(struct kg_events *ev);
/* Waits (at most timeout_ms) until the ring's consumer, whichever process
 * it is, has moved past every event submitted before the call: their
 * records are then in the trail.  For a process that is not the consumer
 * (kgate run beside a daemon).  0, -ETIMEDOUT or -errno. */
int kg_events_wait_consumed(struct kg_loader *l, int timeout_ms);

/* "/home/u/.ssh/id_rsa", "10.0.0.1:443/tcp", "[2001:db8::1]:53/udp",
 * "family=17 type=3"...: the raw target, not yet escaped for output. */
void kg_event_target(const struct kg_event *e, char *buf, size_t len);
const char *kg_event_kind_name(unsigned int kind);
const char *kg_mechanism_name(unsigned int mech);

#endif
