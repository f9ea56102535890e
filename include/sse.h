/*
 * sse.h - incremental text/event-stream parser.
 *
 * Implements "Parsing an event stream" and "Interpreting an event stream"
 * from the WHATWG HTML standard (section 9.2, server-sent events) over raw
 * bytes fed in arbitrary pieces: the same stream split anywhere yields the
 * same events with the same offsets.  Events are handed to a callback as
 * soon as their blank line arrives; nothing is queued.
 *
 * Memory: an event is the run of lines before its blank line.  When the
 * bytes of those lines (line terminators not counted) exceed max_event_size
 * the event is dropped, counted in sse_stats.oversized, and the parser skips
 * to the next blank line.  No buffer ever holds more than max_event_size+1
 * bytes, so a parser costs at most about four times that, plus the struct.
 *
 * Threads: a parser belongs to one thread; there is no locking inside.
 */
#ifndef WHYOPS_SSE_H
#define WHYOPS_SSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * One dispatched event.  All pointers are borrowed from the parser and are
 * valid only for the duration of the callback.  Strings are NUL-terminated
 * but may also contain NUL bytes (data can); use the lengths.
 */
struct sse_event {
	const char *type;	/* event type; "message" when none was given */
	size_t type_len;
	const char *data;	/* data lines joined with "\n", last LF removed */
	size_t data_len;
	const char *id;		/* last event ID buffer; persists across events */
	size_t id_len;
	int64_t retry;		/* reconnection time (ms) last set by the stream,
				 * -1 if never set */
	uint64_t end;		/* stream offset just past the line terminator
				 * of the blank line that dispatched the event;
				 * for a CRLF terminator this is just past the
				 * CR (see sse.c for why) */
};

struct sse_stats {
	uint64_t bytes;		/* bytes fed, BOM included */
	uint64_t events;	/* events dispatched */
	uint64_t oversized;	/* events dropped for exceeding max_event_size */
};

struct sse_parser;

/*
 * Create a parser.  on_event is called from inside sse_feed() for every
 * dispatched event; it must not call sse_feed(), sse_finish() or sse_free()
 * on the same parser.  max_event_size must be at least 1.  Aborts when out
 * of memory; never returns NULL.
 */
struct sse_parser *sse_new(size_t max_event_size,
    void (*on_event)(void *ud, const struct sse_event *ev), void *ud);

/*
 * Feed the next len bytes of the stream.  Returns 0, or -1 when called after
 * sse_finish().  Oversized events are not an error here: see sse_stats().
 */
int sse_feed(struct sse_parser *p, const char *buf, size_t len);

/*
 * End of stream.  Per the standard an event not terminated by a blank line
 * is discarded, not dispatched.  Returns 1 when such a partial event (any
 * field line, or a partial line other than a comment, since the last blank
 * line) was pending, else 0.  Further feeds are refused.
 */
int sse_finish(struct sse_parser *p);

void sse_free(struct sse_parser *p);

void sse_stats(const struct sse_parser *p, struct sse_stats *st);

/*
 * Offset just past the last blank line seen, whether or not it dispatched
 * an event: the bytes before it form whole events (or comments) and can be
 * forwarded as a unit.
 */
uint64_t sse_boundary(const struct sse_parser *p);

/* Bytes currently allocated by the parser's buffers (for tests and stats). */
size_t sse_memory(const struct sse_parser *p);

#endif
