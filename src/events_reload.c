/*
 * events_reload.c - a configuration reload (SIGHUP) for the event pipeline:
 * events_reconfigure() on the main thread leaves a copy of the new settings
 * in the "pending" slot; the dispatcher takes it between two batches
 * (events_apply_if_asked()) and swaps its own sink and spool.  Producers
 * never see the switch and the ring stays, so nothing queued is lost.  See
 * events.h for the contract and events.c for the thread that runs this.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "events_state.h"
#include "log.h"
#include "sink_redis.h"
#include "spool.h"

static char *
events_xstrdup(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL) {
		fprintf(stderr, "events: out of memory\n");
		abort();
	}
	return d;
}

/* A copy that owns its strings: the caller's configuration may go away. */
struct events_config *
events_config_dup(const struct events_config *c)
{
	struct events_config *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		fprintf(stderr, "events: out of memory\n");
		abort();
	}
	*d = *c;
	d->file = events_xstrdup(c->file);
	d->redis.addr = events_xstrdup(c->redis.addr);
	d->redis.user = events_xstrdup(c->redis.user);
	d->redis.password = events_xstrdup(c->redis.password);
	d->redis.stream = events_xstrdup(c->redis.stream);
	d->spool_dir = events_xstrdup(c->spool_dir);
	return d;
}

void
events_config_free(struct events_config *c)
{
	if (c == NULL)
		return;
	free((char *)c->file);
	free((char *)c->redis.addr);
	free((char *)c->redis.user);
	free((char *)c->redis.password);
	free((char *)c->redis.stream);
	free((char *)c->spool_dir);
	free(c);
}

static bool
events_streq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether a and b name the same sink with the same settings. */
static bool
events_sink_same(const struct events_config *a, const struct events_config *b)
{
	if (a->sink != b->sink)
		return false;
	if (a->sink == EVENTS_SINK_FILE)
		return events_streq(a->file, b->file);
	if (a->sink == EVENTS_SINK_REDIS)
		return events_streq(a->redis.addr, b->redis.addr) &&
		    events_streq(a->redis.user, b->redis.user) &&
		    events_streq(a->redis.password, b->redis.password) &&
		    a->redis.db == b->redis.db &&
		    events_streq(a->redis.stream, b->redis.stream) &&
		    a->redis.maxlen == b->redis.maxlen &&
		    a->redis.timeout_ms == b->redis.timeout_ms;
	return true;
}

/* Segment size for a spool of max bytes: an eighth, at most 64 MiB. */
uint64_t
events_segment_bytes(uint64_t max)
{
	uint64_t seg = max / 8;

	return seg > (64u << 20) ? (64u << 20) : seg ? seg : 1;
}

/* Names where events go now, for the log (never the Redis password). */
static void
events_log_target(const char *how)
{
	const struct events_config *c = events.cur;

	if (c->sink == EVENTS_SINK_FILE)
		log_info("events: %s: the file sink, %s", how, c->file);
	else if (c->sink == EVENTS_SINK_REDIS)
		log_info("events: %s: the redis sink, %s db %d stream %s, %s",
		    how, c->redis.addr, c->redis.db, c->redis.stream,
		    c->spool_dir ? c->spool_dir : "no spool");
	else
		log_info("events: %s: the none sink (events are counted and "
		    "discarded)", how);
}

/*
 * A spool the new configuration no longer uses.  Its events are older than
 * anything queued now, so they are replayed first (events_replay_source)
 * and the spool closed once empty.  The none sink takes nothing: there
 * the events stay on disk for a later configuration (or start) that spools
 * in that directory again.  One retired spool at a time: an older one is
 * closed the same way.
 */
static void
events_retire(struct spool *sp, const char *dir)
{
	uint64_t left;

	if (sp == NULL)
		return;
	left = spool_pending_bytes(sp);
	if (left == 0) {
		spool_close(sp);
		return;
	}
	if (events.sink_kind == EVENTS_SINK_NONE) {
		log_warn("events: %" PRIu64 " bytes of events stay in the spool "
		    "%s (the none sink takes nothing); a configuration that "
		    "spools there again replays them", left, dir);
		spool_close(sp);
		return;
	}
	if (events.retired != NULL) {
		log_warn("events: %" PRIu64 " bytes of events stay in the spool "
		    "%s; a configuration that spools there again replays them",
		    spool_pending_bytes(events.retired), events.retired_dir);
		spool_close(events.retired);
		free(events.retired_dir);
	}
	events.retired = sp;
	events.retired_dir = events_xstrdup(dir);
	log_info("events: the spool in %s (%" PRIu64 " bytes) is replayed "
	    "into the new sink first", dir, left);
}

/*
 * Puts nc (owned; freed or kept here) in force, on the dispatcher thread,
 * between two batches.  What is new is opened first; if anything fails to
 * open, nothing changes and the log says so.  Then the old sink is flushed
 * and closed, and the old spool retired.  The ring stays: its size is
 * fixed at start (main.c logs that queue_size needs a restart).
 */
static void
events_apply(struct events_config *nc)
{
	struct events_config *oc = events.cur;
	struct sink ns = { 0 };
	struct spool *nsp = NULL, *old;
	bool new_sink = !events_sink_same(oc, nc);
	bool same_dir = events_streq(oc->spool_dir, nc->spool_dir);
	bool back = !same_dir && nc->spool_dir != NULL &&
	    events.retired_dir != NULL &&
	    strcmp(nc->spool_dir, events.retired_dir) == 0;
	uint64_t seg = events_segment_bytes(nc->spool_max);
	int rc;

	nc->queue_size = oc->queue_size;
	if (!new_sink && same_dir && oc->spool_max == nc->spool_max) {
		events.drain_ms = nc->drain_ms;
		events_config_free(nc);
		return;
	}
	if (!same_dir && !back && nc->spool_dir != NULL &&
	    spool_open(nc->spool_dir, nc->spool_max, seg, &nsp) != 0) {
		log_error("events: reload: cannot open the spool in %s (above); "
		    "the [events] sink settings stay as they were",
		    nc->spool_dir);
		events_config_free(nc);
		return;
	}
	if (new_sink) {
		ns.ops = events_sink_ops[nc->sink];
		rc = nc->sink == EVENTS_SINK_REDIS ?
		    sink_redis_open(&ns, &nc->redis) : ns.ops->open(&ns, nc);
		if (rc < 0) {
			log_error("events: reload: cannot open the %s sink "
			    "(above); the [events] sink settings stay as they "
			    "were", events_sink_names[nc->sink]);
			spool_close(nsp);
			events_config_free(nc);
			return;
		}
		events.sink.ops->flush(&events.sink);
		events.sink.ops->close(&events.sink);
		events.sink = ns;
		events.sink_kind = nc->sink;
	}
	if (same_dir) {
		if (events.spool != NULL)
			spool_set_limits(events.spool, nc->spool_max, seg);
	} else {
		if (back) {
			nsp = events.retired;
			events.retired = NULL;
			free(events.retired_dir);
			events.retired_dir = NULL;
			spool_set_limits(nsp, nc->spool_max, seg);
		}
		old = events.spool;
		events.spool = nsp;
		events_retire(old, oc->spool_dir);
	}
	if (events.retired != NULL && events.sink_kind == EVENTS_SINK_NONE) {
		old = events.retired;
		events.retired = NULL;
		events_retire(old, events.retired_dir);
		free(events.retired_dir);
		events.retired_dir = NULL;
	}
	events.drain_ms = nc->drain_ms;
	events.cur = nc;
	events_config_free(oc);
	atomic_store_explicit(&events.spool_max, nc->spool_dir ?
	    nc->spool_max : 0, memory_order_relaxed);
	atomic_store_explicit(&events.spool_pending, events_spool_pending(),
	    memory_order_relaxed);
	events_log_target("reload: events now go to");
}

void
events_apply_if_asked(void)
{
	struct events_config *nc;

	if (atomic_load_explicit(&events.pending, memory_order_relaxed) == NULL)
		return;
	nc = atomic_exchange_explicit(&events.pending, NULL,
	    memory_order_acquire);
	if (nc != NULL)
		events_apply(nc);
}

void
events_reconfigure(const struct events_config *cfg)
{
	struct events_config *nc;

	if (!events.running)
		return;
	nc = events_config_dup(cfg);
	/* the dispatcher takes it with an exchange too: whoever gets a
	 * configuration out of the slot owns it */
	events_config_free(atomic_exchange_explicit(&events.pending, nc,
	    memory_order_acq_rel));
	events_kick();
}
