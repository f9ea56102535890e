/*
 * events.h - the telemetry pipeline: request threads hand over finished
 * records, one dispatcher thread turns them into events and writes them to
 * the configured sink.
 *
 *   request thread --events_submit()--> ring (ring.h) --> dispatcher thread
 *       --build()--> JSON envelope lines in one buffer --> sink (sink.h)
 *
 * A request never waits for telemetry: events_submit() is a lock-free push;
 * when the ring is full the record is dropped, counted and logged (at most
 * one log line per second).  There is one pipeline per process.
 *
 * Threads: events_start(), events_reconfigure() and events_stop() from the
 * main thread, start and stop before the first and after the last
 * events_submit() (the shutdown order in main.c stops every request thread
 * first); events_submit() from any
 * thread in between; events_reopen() from any thread, also from a signal
 * handler; events_get_stats() from any thread while the pipeline runs, and
 * from the main thread after events_stop() (final counts).
 */
#ifndef WHYOPS_EVENTS_H
#define WHYOPS_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "record.h"
#include "sink_redis.h"

/*
 * The sinks are enum events_sink_kind in config.h, which the parser fills
 * (config.h is also included by log.h, so the enumerators cannot be
 * declared here as well):
 *   EVENTS_SINK_NONE  build the events, count them, discard them
 *   EVENTS_SINK_FILE  one JSON envelope per line, appended to a file
 * EVENTS_SINK__COUNT must follow the last of them.
 */
#define EVENTS_SINK__COUNT (EVENTS_SINK_REDIS + 1)

/* "none", "file": the names the logs use, by sink. */
extern const char *const events_sink_names[EVENTS_SINK__COUNT];

/* Filled from struct config (events_sink, events_file, events_queue_size);
 * read once by events_start() (the strings are not kept: the sink copies
 * what it needs). */
struct events_config {
	int sink;		/* enum events_sink_kind */
	const char *file;	/* EVENTS_SINK_FILE: the path to append to */
	unsigned queue_size;	/* ring capacity, rounded up to a power of 2 */
	struct sink_redis_config redis;	/* EVENTS_SINK_REDIS */
	const char *spool_dir;	/* NULL: events the sink refuses are dropped */
	uint64_t spool_max;	/* bytes the spool may take on disk */
	unsigned drain_ms;	/* at stop: how long to replay the spool */
};

/*
 * Opens the sink, creates the ring and starts the dispatcher thread.
 * 0, or -1 with the reason logged (nothing is left running).
 *
 * build makes the events of one record: it appends each envelope to out as
 * one line of JSON followed by a NUL byte (the text has none of its own)
 * and returns how many; -1 when it failed (what it appended is dropped).
 * The proxy passes event_build (event.h).  It is called on the dispatcher
 * thread only, with now_ms the wall clock in milliseconds since the epoch.
 */
int events_start(const struct events_config *cfg,
    int (*build)(const struct record *r, int64_t now_ms, struct buf *out));

/* Hands r over to the pipeline, which owns it from now on.  Never blocks.
 * true: queued.  false: dropped (ring full, or the pipeline not running);
 * r has been freed either way. */
bool events_submit(struct record *r);

/* Drains everything already submitted to the sink, flushes and closes it,
 * joins the dispatcher.  No-op when not started. */
void events_stop(void);

/* Asks the dispatcher to reopen the sink (log rotation: SIGHUP).  Records
 * submitted after this returns go to the reopened file.  Async-signal-safe:
 * an atomic store and an eventfd write. */
void events_reopen(void);

/*
 * A configuration reload (SIGHUP; main thread): the dispatcher puts cfg in
 * force between two batches, so records submitted after this returns are
 * written by the new sink; earlier ones by the old or the new one, never
 * lost or written twice.  A changed sink is opened before the old one is
 * flushed and closed; a changed spool directory is opened at once and the
 * old spool, if it holds events, is replayed into the new sink first
 * (into none it is not: those events stay on disk).  If the new sink or
 * spool cannot be opened the old ones stay and the log says so.  The
 * queue size is fixed at start and not changed here.  cfg is copied.
 */
void events_reconfigure(const struct events_config *cfg);

/*
 * Counters since events_start().  Units: queued and dropped_full count
 * records; written, dropped_sink count events (lines; one record may give
 * several); built_failed counts records whose build() failed (returned -1
 * or fewer lines than it said).  With the none sink discarded
 * events count as written.
 */
struct events_stats {
	uint64_t queued;	/* records accepted into the ring */
	uint64_t written;	/* events the sink took */
	uint64_t dropped_full;	/* records refused: ring full */
	uint64_t dropped_sink;	/* events the sink failed to write */
	uint64_t built_failed;
	uint64_t spooled;	/* events the sink refused, stored in the spool */
	uint64_t replayed;	/* spooled events the sink took later */
	uint64_t spool_pending;	/* bytes waiting in the spool */
	uint64_t spool_max;	/* the spool's size cap in force; 0: no spool */
	size_t capacity;	/* of the ring (queue_size rounded up) */
	size_t depth;		/* records in the ring now (approximate) */
	size_t high_water;	/* the largest depth seen */
};

void events_get_stats(struct events_stats *st);

#endif
