/*
 * events_state.h - the event pipeline's own state, shared by its two files
 * only: events.c (the ring, wake-ups, building and writing batches, spool
 * replay, start and stop) and events_reload.c (switching sink and spool on
 * SIGHUP).  The rest of the proxy uses events.h.
 *
 * Ownership is events.c's (see its top comment): the first group of fields
 * is set before the dispatcher thread starts, the second belongs to that
 * thread (events_reload.c runs on it too), the atomics are shared.
 */
#ifndef WHYOPS_EVENTS_STATE_H
#define WHYOPS_EVENTS_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "events.h"
#include "record.h"
#include "sink.h"

struct ring;
struct spool;

struct events_state {
	/* set by events_start() before the dispatcher starts; read-only
	 * until events_stop() has joined it */
	struct ring *ring;
	int efd;
	int (*build)(const struct record *, int64_t, struct buf *);
	pthread_t thread;
	bool running;			/* main thread only */
	size_t final_high_water;	/* main thread only, after stop */

	/* dispatcher thread (main thread after the join) */
	struct sink sink;
	int sink_kind;
	struct spool *spool;		/* NULL when not configured */
	struct spool *retired;		/* an earlier spool still replaying */
	char *retired_dir;
	struct events_config *cur;	/* what is in force (a copy) */
	unsigned drain_ms;
	struct buf text;		/* the batch's lines, NUL after each */
	char **lines;			/* into text, set once it is built */
	size_t *lens;
	size_t nlines_cap;

	/* shared */
	_Atomic uint64_t wake;		/* see the top of events.c */
	_Atomic bool stop;
	_Atomic bool reopen;
	_Atomic(struct events_config *) pending;	/* events_reconfigure() */
	_Atomic uint64_t written;
	_Atomic uint64_t dropped_full;
	_Atomic uint64_t dropped_sink;
	_Atomic uint64_t built_failed;
	_Atomic uint64_t spooled;
	_Atomic uint64_t replayed;
	_Atomic uint64_t spool_pending;
	_Atomic uint64_t spool_max;	/* of the configuration in force */
	_Atomic uint64_t drops_unlogged;
	_Atomic int64_t drops_logged_ms;
};

extern struct events_state events;

/* The sinks by enum events_sink_kind. */
extern const struct sink_ops *const events_sink_ops[EVENTS_SINK__COUNT];

/* events.c */
void events_kick(void);
uint64_t events_spool_pending(void);

/* events_reload.c */
struct events_config *events_config_dup(const struct events_config *c);
void events_config_free(struct events_config *c);
uint64_t events_segment_bytes(uint64_t max);
void events_apply_if_asked(void);

#endif
