/*
 * event.h - the telemetry events of one finished call, as JSON.
 *
 * The dispatcher thread takes a struct record (record.h) off the ring and
 * calls event_build(), which appends the envelopes to the dispatcher's
 * buffer as text; the sink writes each line as one message.  The schema is documented for consumers in
 * whyops-events(7); EVENT_SCHEMA_VERSION is in every payload.
 *
 * Nothing here does I/O or keeps state: the only inputs are the record and
 * the clock value passed in, plus the random bits of each event id.
 */
#ifndef WHYOPS_EVENT_H
#define WHYOPS_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"

/* Additive changes (new fields, new event types) keep the version;
 * removing, renaming or retyping a field bumps it. */
#define EVENT_SCHEMA_VERSION 1

/*
 * Builds the events of one record: appends each envelope to out as one
 * line of compact JSON followed by a NUL byte (no newline; the text holds
 * no NUL of its own) and returns how many (0 for /v1/models; never fails).
 * now_ms: wall clock (ms) for enqueuedAt and the event ids.
 * Runs on the dispatcher thread; the record is read-only here.
 */
int event_build(const struct record *r, int64_t now_ms, struct buf *out);

/* ---- for src/event*.c only ---- */

/* How the request body of an endpoint is read. */
enum event_dialect {
	EVENT_DIALECT_CHAT,		/* POST /v1/chat/completions */
	EVENT_DIALECT_RESPONSES,	/* POST /v1/responses */
	EVENT_DIALECT_ANTHROPIC,	/* POST /v1/messages */
	EVENT_DIALECT_EMBEDDINGS,	/* POST /v1/embeddings */
	EVENT_DIALECT_MODELS,		/* GET /v1/models: no events */
	EVENT_DIALECT__COUNT
};

/*
 * The request event of a call (event_request.c).  body[0..n) is the
 * request, a validated JSON object (NULL when absent or unusable).
 * Appends the content object to content and returns the eventType:
 * "user_message", "tool_result" or "embedding_request".  With capture
 * false the content keeps only structural facts (counts, tool names, ids),
 * never text.
 */
const char *event_request(enum event_dialect d, const char *body, size_t n,
    bool capture, struct buf *content);

#endif
