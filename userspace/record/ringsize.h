/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ringsize.h - the size of kgate's event ring buffer (kg_events).
 *
 * The ring is one pinned map shared by every job; its size is fixed when
 * kgate first loads its programs (no pinned ring yet): --ring-size of
 * `kgate run` or `kgate daemon`, else KG_RINGBUF_BYTES (4 MiB).  Later
 * loaders take the pinned ring as it is; one that asks for another size is
 * refused (kg_loader_open) and changes nothing.
 */
#ifndef KGATE_RINGSIZE_H
#define KGATE_RINGSIZE_H

#include <stddef.h>
#include <stdint.h>

#define KG_RING_MIN_BYTES	(64u << 10)	/* ~190 events */
#define KG_RING_MAX_BYTES	(256u << 20)	/* locked kernel memory */

/* "4M", "65536", "64K", "16MiB": a power of two within the bounds.  0, or
 * -EINVAL with an error naming the text. */
int kg_ring_size_parse(const char *text, uint32_t *bytes);
/* 4194304 -> "4M", 65536 -> "64K" */
void kg_ring_size_format(uint32_t bytes, char *buf, size_t len);

#endif
