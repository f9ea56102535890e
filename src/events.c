/*
 * events.c - the telemetry pipeline and its dispatcher thread (see
 * events.h).
 *
 * Request threads call events_submit(): a lock-free push into the ring
 * (ring.h) plus one atomic add.  One dispatcher thread pops up to
 * EVENTS_BATCH records at a time, has the build function (event_build in
 * the proxy) append each record's envelopes as NUL-terminated lines to one
 * text buffer, hands the whole batch to the sink in one write call, frees
 * the records and keeps the buffer for the next batch: no allocation per
 * line.  Building happens here and not on the request thread, so a
 * request pays only for the push.
 *
 * Ownership: events_start() (main thread) sets up the ring, the eventfd and
 * the sink before the dispatcher exists; from then on the sink, the line
 * buffer and every popped record belong to the dispatcher; events_stop()
 * joins it and takes them back.  The counters and the flags below are
 * atomics shared by all threads.
 *
 * Waking the dispatcher.  When idle it sleeps in poll() on an eventfd with
 * a EVENTS_IDLE_MS timeout (so it also notices stop and reopen and reports
 * drops without help).  Producers must wake it without a syscall or a lock
 * per event while it is busy, and without ever losing a wake-up.  One
 * atomic word, "wake", does both jobs: bits 1.. count the records queued
 * (it is the queued statistic, so the add is not an extra cost) and bit 0
 * means "the dispatcher is going to sleep".
 *
 *   producer: ring_push(); old = fetch_add(wake, 2, release);
 *             if old had bit 0 and fetch_and(wake, ~1) still had it:
 *             write(eventfd)                      (one producer does)
 *   consumer: seen = load(wake, acquire); pop; if nothing popped:
 *             CAS(wake, seen -> seen | 1); if the CAS fails something was
 *             queued since seen: pop again; else poll(eventfd, 100 ms),
 *             then clear bit 0.
 *
 * Every update of "wake" is a read-modify-write, so all of them are in one
 * modification order and see each other.  A producer whose add comes
 * before "seen" made its push visible to the pop that follows (its release
 * add heads a release sequence that the consumer's acquire load reads
 * from; the push's own release store on the slot comes before the add).  A
 * producer whose add comes between "seen" and the CAS makes the CAS fail.
 * A producer whose add comes after the CAS finds bit 0 set and writes the
 * eventfd, which stays readable until read, so a write that lands before
 * poll() is not lost.  The eventfd is chosen over a condition variable for
 * that stickiness and because poll() gives the bounded wait without a
 * mutex on any path.  A busy dispatcher costs producers nothing beyond
 * the add; a sleeping one costs the first producer one write(2).
 *
 * Reconfiguration (SIGHUP).  The main thread leaves a copy of the new
 * settings in one atomic slot ("pending") and wakes the dispatcher, which
 * takes it between two batches and swaps its own sink and spool
 * (events_apply, in events_reload.c): producers never see the change and
 * the ring stays, so nothing queued is lost.  Sinks and spools keep
 * belonging to this thread alone; only the slot is shared, and an exchange
 * decides who owns what is in it.  The state both files use is
 * events_state.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "events.h"
#include "events_state.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "ring.h"
#include "sink.h"
#include "sink_redis.h"
#include "spool.h"

#define EVENTS_BATCH		256	/* records per pop */
#define EVENTS_IDLE_MS		100	/* longest sleep of an idle dispatcher */
#define EVENTS_TEXT_KEEP	(8u << 20) /* line buffer kept between batches */
#define EVENTS_DROP_LOG_MS	1000	/* at most one "queue full" line per */

#define EVENTS_ASLEEP		((uint64_t)1)
#define EVENTS_QUEUED_ONE	((uint64_t)2)

const char *const events_sink_names[EVENTS_SINK__COUNT] = {
	[EVENTS_SINK_NONE] = "none",
	[EVENTS_SINK_FILE] = "file",
	[EVENTS_SINK_REDIS] = "redis",
};


const struct sink_ops *const events_sink_ops[EVENTS_SINK__COUNT] = {
	[EVENTS_SINK_NONE] = &sink_none_ops,
	[EVENTS_SINK_REDIS] = &sink_redis_ops,
	[EVENTS_SINK_FILE] = &sink_file_ops,
};

struct events_state events = { .efd = -1 };

static int64_t
events_clock_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The "queue full" log line: at most one per EVENTS_DROP_LOG_MS, taken by
 * whichever thread wins the CAS on the time of the last line, with the
 * number dropped since.  force (events_stop) reports what is left.
 */
static void
events_report_drops(bool force)
{
	int64_t now = events_clock_ms(CLOCK_MONOTONIC);
	int64_t last;
	uint64_t n;

	if (atomic_load_explicit(&events.drops_unlogged,
	    memory_order_relaxed) == 0)
		return;
	last = atomic_load_explicit(&events.drops_logged_ms,
	    memory_order_relaxed);
	if (!force && (now - last < EVENTS_DROP_LOG_MS ||
	    !atomic_compare_exchange_strong_explicit(&events.drops_logged_ms,
	    &last, now, memory_order_relaxed, memory_order_relaxed)))
		return;
	n = atomic_exchange_explicit(&events.drops_unlogged, 0,
	    memory_order_relaxed);
	if (n > 0)
		log_warn("events: queue full (%zu records), %" PRIu64
		    " dropped since the last report",
		    ring_capacity(events.ring), n);
}

void
events_kick(void)
{
	if (eventfd_write(events.efd, 1) < 0 && errno != EAGAIN)
		log_error("events: eventfd write: %s", strerror(errno));
}

bool
events_submit(struct record *r)
{
	uint64_t old;

	if (events.ring == NULL) {
		record_free(r);
		return false;
	}
	if (!ring_push(events.ring, r)) {
		record_free(r);
		atomic_fetch_add_explicit(&events.dropped_full, 1,
		    memory_order_relaxed);
		atomic_fetch_add_explicit(&events.drops_unlogged, 1,
		    memory_order_relaxed);
		events_report_drops(false);
		return false;
	}
	old = atomic_fetch_add_explicit(&events.wake, EVENTS_QUEUED_ONE,
	    memory_order_release);
	if ((old & EVENTS_ASLEEP) &&
	    (atomic_fetch_and_explicit(&events.wake, ~EVENTS_ASLEEP,
	    memory_order_relaxed) & EVENTS_ASLEEP))
		events_kick();
	return true;
}

void
events_reopen(void)
{
	atomic_store_explicit(&events.reopen, true, memory_order_release);
	if (events.efd >= 0)
		(void)eventfd_write(events.efd, 1);
}

/* Counts one more line of len bytes in the batch. */
static void
events_add_line(size_t *nlines, size_t len)
{
	size_t cap;

	if (*nlines == events.nlines_cap) {
		cap = events.nlines_cap ? events.nlines_cap * 2 : EVENTS_BATCH;
		events.lines = realloc(events.lines, cap * sizeof(*events.lines));
		events.lens = realloc(events.lens, cap * sizeof(*events.lens));
		if (events.lines == NULL || events.lens == NULL) {
			fprintf(stderr, "events: out of memory\n");
			abort();
		}
		events.nlines_cap = cap;
	}
	events.lens[*nlines] = len;
	(*nlines)++;
}

/*
 * Appends the lines of r to events.text and counts them.  A build that
 * fails, or whose text does not hold the lines it claims, leaves nothing
 * behind and counts as built_failed.
 */
static void
events_build_one(struct record *r, int64_t now_ms, size_t *nlines)
{
	size_t start = events.text.len, first = *nlines, off, len = 0;
	const char *nul;
	int n, i;

	/* Document answers travel undecoded: decoding them here keeps
	 * jansson off the request path.  Their tokens are counted here;
	 * streams' at completion. */
	bool document = r->result == NULL;
	record_decode(r);
	if (document)
		metrics_tokens_result(r->provider, r->upstream_model, r->result);
	n = events.build(r, now_ms, &events.text);
	for (i = 0, off = start; i < n; i++, off += len + 1) {
		nul = off < events.text.len ? memchr(events.text.data + off,
		    '\0', events.text.len - off) : NULL;
		if (nul == NULL)
			break;
		len = (size_t)(nul - (events.text.data + off));
		events_add_line(nlines, len);
	}
	if (n < 0 || i < n || off != events.text.len) {
		atomic_fetch_add_explicit(&events.built_failed, 1,
		    memory_order_relaxed);
		events.text.len = start;
		*nlines = first;
	}
}

static void events_spool_rest(size_t nlines, size_t wrote);

/* Builds, writes and frees one batch of records. */
static void
events_dispatch(void **batch, size_t n)
{
	int64_t now_ms = events_clock_ms(CLOCK_REALTIME);
	size_t nlines = 0, i, off;
	int wrote;

	for (i = 0; i < n; i++) {
		events_build_one(batch[i], now_ms, &nlines);
		record_free(batch[i]);
	}
	if (nlines == 0)
		goto out;
	/* the text has stopped moving: point at its lines */
	for (i = 0, off = 0; i < nlines; i++) {
		events.lines[i] = events.text.data + off;
		off += events.lens[i] + 1;
	}
	/* A ring three quarters full means the sink is slower than the
	 * requests: the local spool takes the batch so that the ring drains
	 * and request threads keep their events. */
	if (events.spool != NULL &&
	    ring_depth(events.ring) > ring_capacity(events.ring) / 4 * 3)
		wrote = 0;
	else
		wrote = events.sink.ops->write(&events.sink, events.lines,
		    events.lens, nlines);
	if (wrote < 0)
		wrote = 0;
	if ((size_t)wrote > nlines)
		wrote = (int)nlines;
	atomic_fetch_add_explicit(&events.written, (uint64_t)wrote,
	    memory_order_relaxed);
	events_spool_rest(nlines, (size_t)wrote);
out:
	/* a batch of huge bodies does not keep its memory for good */
	if (events.text.cap > EVENTS_TEXT_KEEP)
		buf_free(&events.text);
	else
		buf_reset(&events.text);
}

/* What the sink did not take goes to the spool, or is counted as lost. */
static void
events_spool_rest(size_t nlines, size_t wrote)
{
	size_t stored = 0;

	if (wrote < nlines && events.spool != NULL) {
		stored = spool_append(events.spool, events.lines + wrote,
		    events.lens + wrote, nlines - wrote);
		atomic_fetch_add_explicit(&events.spooled, stored,
		    memory_order_relaxed);
		atomic_store_explicit(&events.spool_pending,
		    events_spool_pending(), memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&events.dropped_sink,
	    nlines - wrote - stored, memory_order_relaxed);
}

/* Bytes waiting in the spools: the current one and a retired one. */
uint64_t
events_spool_pending(void)
{
	return (events.spool ? spool_pending_bytes(events.spool) : 0) +
	    (events.retired ? spool_pending_bytes(events.retired) : 0);
}

/* Where replay reads next: a retired spool first (its events are older),
 * closed once empty; then the current one.  NULL: nothing to replay. */
static struct spool *
events_replay_source(void)
{
	if (events.retired != NULL) {
		if (spool_pending_bytes(events.retired) > 0)
			return events.retired;
		log_info("events: the spool in %s has been replayed; closed",
		    events.retired_dir);
		spool_close(events.retired);
		free(events.retired_dir);
		events.retired = NULL;
		events.retired_dir = NULL;
	}
	if (events.spool != NULL && spool_pending_bytes(events.spool) > 0)
		return events.spool;
	return NULL;
}

/*
 * One step of replaying the spool into the sink, oldest first; returns true
 * when everything it read was delivered and more may wait.  Live events
 * go first: this runs only when the ring had nothing more to give.
 */
static bool
events_replay_step(void)
{
	char *lines[EVENTS_BATCH];
	size_t lens[EVENTS_BATCH];
	struct spool *sp;
	int k, w;

	if ((sp = events_replay_source()) == NULL)
		return false;
	if (events.sink_kind == EVENTS_SINK_REDIS && !sink_redis_poll(&events.sink))
		return false;
	k = spool_replay_next(sp, lines, lens, EVENTS_BATCH);
	if (k <= 0)
		return false;
	w = events.sink.ops->write(&events.sink, lines, lens, (size_t)k);
	if (w < 0)
		w = 0;
	spool_ack(sp, (size_t)w);
	atomic_fetch_add_explicit(&events.replayed, (uint64_t)w,
	    memory_order_relaxed);
	atomic_store_explicit(&events.spool_pending, events_spool_pending(),
	    memory_order_relaxed);
	return w == k;
}

static void
events_reopen_if_asked(void)
{
	if (!atomic_load_explicit(&events.reopen, memory_order_relaxed))
		return;
	if (!atomic_exchange_explicit(&events.reopen, false,
	    memory_order_acquire))
		return;
	if (events.sink.ops->reopen != NULL)
		events.sink.ops->reopen(&events.sink);
}


/* Sleeps until a producer, events_stop() or events_reopen() writes the
 * eventfd, or EVENTS_IDLE_MS pass; returns at once if anything was queued
 * since seen (see the top of the file). */
static void
events_sleep(uint64_t seen)
{
	struct pollfd pfd = { .fd = events.efd, .events = POLLIN };
	eventfd_t cnt;

	if (!atomic_compare_exchange_strong_explicit(&events.wake, &seen,
	    seen | EVENTS_ASLEEP, memory_order_acq_rel, memory_order_acquire))
		return;
	if (poll(&pfd, 1, EVENTS_IDLE_MS) > 0)
		(void)eventfd_read(events.efd, &cnt);
	atomic_fetch_and_explicit(&events.wake, ~EVENTS_ASLEEP,
	    memory_order_relaxed);
}

static void *
events_main(void *arg)
{
	void *batch[EVENTS_BATCH];
	bool stopping, unflushed = false;
	uint64_t seen;
	size_t n;

	pthread_setname_np(pthread_self(), "whyops-events");
	/* A restart replays what an earlier run left in the spool first, as
	 * long as the sink takes it; live events wait in the ring meanwhile. */
	while (!atomic_load_explicit(&events.stop, memory_order_acquire) &&
	    ring_depth(events.ring) < ring_capacity(events.ring) / 2 &&
	    events_replay_step())
		;
	for (;;) {
		/* stop before the pop: what was queued before stop was set
		 * is then seen by this pop or an earlier one */
		stopping = atomic_load_explicit(&events.stop,
		    memory_order_acquire);
		seen = atomic_load_explicit(&events.wake, memory_order_acquire);
		n = ring_pop_batch(events.ring, batch, EVENTS_BATCH);
		/* after the pop: a record queued after events_reopen()
		 * returned goes to the new file */
		events_reopen_if_asked();
		events_apply_if_asked();
		events_report_drops(false);
		if (n > 0) {
			events_dispatch(batch, n);
			unflushed = true;
			if (n == EVENTS_BATCH)
				continue;
		}
		if (!stopping && events_replay_step())
			continue;
		if (n > 0)
			continue;
		if (unflushed) {
			events.sink.ops->flush(&events.sink);
			unflushed = false;
		}
		if (stopping)
			break;
		events_sleep(seen);
	}
	return NULL;
}

static void
events_reset(void)
{
	atomic_store(&events.wake, 0);
	atomic_store(&events.stop, false);
	atomic_store(&events.reopen, false);
	atomic_store(&events.written, 0);
	atomic_store(&events.dropped_full, 0);
	atomic_store(&events.dropped_sink, 0);
	atomic_store(&events.built_failed, 0);
	atomic_store(&events.spooled, 0);
	atomic_store(&events.replayed, 0);
	atomic_store(&events.spool_pending, 0);
	atomic_store(&events.spool_max, 0);
	atomic_store(&events.drops_unlogged, 0);
	atomic_store(&events.drops_logged_ms,
	    events_clock_ms(CLOCK_MONOTONIC) - EVENTS_DROP_LOG_MS);
	events.final_high_water = 0;
}

/* Starts the dispatcher with every signal blocked: signals are handled by
 * the main thread only. */
static int
events_spawn(void)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&events.thread, NULL, events_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		log_error("events: cannot start the dispatcher thread: %s",
		    strerror(err));
		return -1;
	}
	return 0;
}

int
events_start(const struct events_config *cfg,
    int (*build)(const struct record *r, int64_t now_ms, struct buf *out))
{
	bool sink_open = false;
	int rc = -1;

	if (events.running || build == NULL || cfg->sink < 0 ||
	    cfg->sink >= EVENTS_SINK__COUNT) {
		log_error("events: cannot start (sink %d, %s)", cfg->sink,
		    events.running ? "already running" : "bad arguments");
		return -1;
	}
	events_reset();
	events.build = build;
	events.ring = ring_new(cfg->queue_size);
	if (events.ring == NULL) {
		log_error("events: cannot create a queue of %u records",
		    cfg->queue_size);
		goto out;
	}
	events.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (events.efd < 0) {
		log_error("events: eventfd: %s", strerror(errno));
		goto out;
	}
	events.sink.ops = events_sink_ops[cfg->sink];
	events.sink.priv = NULL;
	events.sink_kind = cfg->sink;
	events.drain_ms = cfg->drain_ms;
	if (cfg->spool_dir != NULL) {
		uint64_t seg = events_segment_bytes(cfg->spool_max);
		if (spool_open(cfg->spool_dir, cfg->spool_max, seg, &events.spool) != 0) {
			log_error("events: cannot open the spool in %s", cfg->spool_dir);
			goto out;
		}
		atomic_store(&events.spool_pending, events_spool_pending());
	}
	if (cfg->sink == EVENTS_SINK_REDIS) {
		if (sink_redis_open(&events.sink, &cfg->redis) < 0)
			goto out;
	} else if (events.sink.ops->open(&events.sink, cfg) < 0) {
		goto out;
	}
	sink_open = true;
	events.cur = events_config_dup(cfg);
	atomic_store(&events.spool_max, cfg->spool_dir ? cfg->spool_max : 0);
	if (events_spawn() < 0)
		goto out;
	events.running = true;
	log_debug("events: %s sink, queue of %zu records",
	    events.sink.ops->name, ring_capacity(events.ring));
	rc = 0;
out:
	if (rc < 0) {
		if (sink_open)
			events.sink.ops->close(&events.sink);
		if (events.spool != NULL)
			spool_close(events.spool);
		events.spool = NULL;
		if (events.efd >= 0)
			close(events.efd);
		events.efd = -1;
		events_config_free(events.cur);
		events.cur = NULL;
		ring_free(events.ring);
		events.ring = NULL;
	}
	return rc;
}

/* Shutdown: give the sink a bounded time to take what was spooled. */
static void
events_drain_spool(void)
{
	int64_t end = events_clock_ms(CLOCK_MONOTONIC) + events.drain_ms;

	while (events_spool_pending() > 0 &&
	    events_clock_ms(CLOCK_MONOTONIC) < end) {
		if (!events_replay_step()) {
			if (events.sink_kind != EVENTS_SINK_REDIS ||
			    sink_redis_connected(&events.sink))
				break;	/* the sink refused: stop trying */
			usleep(50 * 1000);	/* reconnecting with backoff */
		}
	}
}

void
events_stop(void)
{
	void *batch[EVENTS_BATCH];
	size_t n;

	if (!events.running)
		return;
	atomic_store_explicit(&events.stop, true, memory_order_release);
	events_kick();
	pthread_join(events.thread, NULL);
	/* The dispatcher drained the ring; anything still there was
	 * submitted against the contract, while it was stopping.  Its
	 * state is ours now: write that too rather than leak it. */
	while ((n = ring_pop_batch(events.ring, batch, EVENTS_BATCH)) > 0)
		events_dispatch(batch, n);
	events_drain_spool();
	events.sink.ops->flush(&events.sink);
	events.sink.ops->close(&events.sink);
	if (events_spool_pending() > 0)
		log_warn("events: %" PRIu64 " bytes of events stay in the spool; "
		    "they are replayed at the next start", events_spool_pending());
	spool_close(events.spool);
	spool_close(events.retired);
	free(events.retired_dir);
	events.spool = events.retired = NULL;
	events.retired_dir = NULL;
	events_config_free(events.cur);
	events_config_free(atomic_exchange(&events.pending, NULL));
	events.cur = NULL;
	events_report_drops(true);
	events.final_high_water = ring_high_water(events.ring);
	ring_free(events.ring);
	events.ring = NULL;
	close(events.efd);
	events.efd = -1;
	buf_free(&events.text);
	free(events.lines);
	free(events.lens);
	events.lines = NULL;
	events.lens = NULL;
	events.nlines_cap = 0;
	events.running = false;
}

void
events_get_stats(struct events_stats *st)
{
	st->queued = atomic_load_explicit(&events.wake,
	    memory_order_relaxed) / EVENTS_QUEUED_ONE;
	st->written = atomic_load_explicit(&events.written,
	    memory_order_relaxed);
	st->dropped_full = atomic_load_explicit(&events.dropped_full,
	    memory_order_relaxed);
	st->dropped_sink = atomic_load_explicit(&events.dropped_sink,
	    memory_order_relaxed);
	st->built_failed = atomic_load_explicit(&events.built_failed,
	    memory_order_relaxed);
	st->spooled = atomic_load_explicit(&events.spooled, memory_order_relaxed);
	st->replayed = atomic_load_explicit(&events.replayed, memory_order_relaxed);
	st->spool_pending = atomic_load_explicit(&events.spool_pending,
	    memory_order_relaxed);
	st->spool_max = atomic_load_explicit(&events.spool_max,
	    memory_order_relaxed);
	st->capacity = events.ring ? ring_capacity(events.ring) : 0;
	st->depth = events.ring ? ring_depth(events.ring) : 0;
	st->high_water = events.ring ? ring_high_water(events.ring) :
	    events.final_high_water;
}
