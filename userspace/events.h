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

#include <stddef.h>
#include <linux/types.h>
#include "kgate.h"
#include "loader.h"

typedef int (*kg_event_fn)(void *ctx, const struct kg_event *e);

struct kg_events;

struct kg_events *kg_events_open(struct kg_loader *l, kg_event_fn fn, void *ctx);
/* Deliver what is ready; waits at most timeout_ms. Returns events handled
 * or -errno. */
int kg_events_poll(struct kg_events *ev, int timeout_ms);
/* Deliver everything already in the buffer without waiting. */
int kg_events_drain(struct kg_events *ev);
int kg_events_epoll_fd(const struct kg_events *ev);
void kg_events_close(struct kg_events *ev);

/* "/home/u/.ssh/id_rsa", "10.0.0.1:443/tcp", "[2001:db8::1]:53/udp",
 * "family=17 type=3"...: the raw target, not yet escaped for output. */
void kg_event_target(const struct kg_event *e, char *buf, size_t len);
const char *kg_event_kind_name(unsigned int kind);
const char *kg_mechanism_name(unsigned int mech);

#endif
