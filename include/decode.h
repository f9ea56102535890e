/*
 * decode.h - rebuild what the model answered from an upstream body.
 *
 * The upstream thread creates one decoder per request once it knows the
 * dialect and whether the answer streams, calls decode_feed() from the
 * libcurl write callback with each piece of the body (any split, down to one
 * byte) and decode_finish() once at the end.  The decoder never does I/O and
 * never blocks; its memory is bounded by struct decode_limits.
 *
 * Streamed bodies go through the SSE parser and each event's data is parsed
 * as JSON on its own; non-streamed bodies are accumulated (up to
 * max_body_size) and parsed once at finish.  A streamed decoder whose body
 * turns out to start with '{' or '[' (an API answering a stream request
 * with a JSON error) reads it as a document instead.  Streamed and
 * non-streamed forms of the same answer give the same llm_result.
 *
 * One file per dialect implements struct decode_dialect (curl's TLS
 * backends pattern): decode_openai_chat.c, decode_openai_responses.c,
 * decode_anthropic.c, decode_embeddings.c (embeddings and models).
 *
 * Threads: a decoder and its result belong to the thread that feeds it.
 */
#ifndef WHYOPS_DECODE_H
#define WHYOPS_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "llm.h"

enum decode_kind {
	DECODE_OPENAI_CHAT,
	DECODE_OPENAI_RESPONSES,
	DECODE_ANTHROPIC_MESSAGES,
	DECODE_EMBEDDINGS,
	DECODE_MODELS,
	DECODE__COUNT
};

extern const char *const decode_kind_names[DECODE__COUNT];

struct decode_limits {
	size_t max_event_size;	/* one SSE event, bytes of its lines */
	size_t max_body_size;	/* a non-streamed body */
	size_t max_result_size;	/* all text kept in the result */
	size_t max_choices;	/* highest choice index + 1 */
	size_t max_items;	/* tool calls / output items / blocks */
};

/* 4 MiB events, 16 MiB bodies, 4 MiB of text, 128 choices, 1024 items */
extern const struct decode_limits decode_default_limits;

struct decoder;

/* limits may be NULL for the defaults.  Aborts when out of memory. */
struct decoder *decode_new(enum decode_kind kind, bool streamed,
    const struct decode_limits *limits);

/* Returns 0, or -1 after decode_finish(). */
int decode_feed(struct decoder *dec, const char *buf, size_t len);

/*
 * End of body.  transport_error describes a transfer that failed midway
 * (NULL when it completed); the result then keeps what arrived before.
 * Later calls do nothing.
 */
void decode_finish(struct decoder *dec, const char *transport_error);

/* The result so far; owned by the decoder, valid until decode_free() or
 * decode_take_result() (NULL after that). */
const struct llm_result *decode_result(const struct decoder *dec);

/* Take ownership of the result (free it with llm_result_free()); the
 * decoder must have finished.  Returns NULL if already taken. */
struct llm_result *decode_take_result(struct decoder *dec);

/*
 * Streams: offset in the body just past the last complete SSE event (or
 * comment block); bytes before it can be forwarded at event granularity.
 * 0 for documents.
 */
uint64_t decode_boundary(const struct decoder *dec);

void decode_free(struct decoder *dec);

struct sse_event;
/*
 * Streams: called for every dispatched SSE event, after the dialect has
 * seen it, with the event's data as a validated view (obj; absent for [DONE]
 * or data that is not a JSON object).  ev->end is the event's end offset in
 * the body.  The request path uses it to forward at event granularity.
 */
typedef void decode_event_hook(void *ud, const struct sse_event *ev,
    struct jv obj);
void decode_set_event_hook(struct decoder *dec, decode_event_hook *hook, void *ud);

/* ---- for the dialect files only ---- */

struct decode_dialect {
	const char *name;
	size_t state_size;	/* zeroed per-decoder state */
	/* a streamed event whose data is a JSON object; event is the SSE
	 * event type.  NULL: the dialect does not stream. */
	void (*on_event)(struct decoder *dec, const char *event, json_t *obj);
	/* the same, read in place (jsonv.h), tried first: returns whether it
	 * took the event; if not, on_event gets a tree of it.  Dialects read
	 * their frequent events (the deltas) this way, the rare ones as
	 * trees. */
	bool (*on_event_jv)(struct decoder *dec, const char *event,
	    struct jv obj);
	/* "data: [DONE]"; NULL when the dialect has no such sentinel */
	void (*on_done)(struct decoder *dec);
	/* the whole non-streamed body, a JSON object */
	void (*on_document)(struct decoder *dec, json_t *obj);
	/* the same, read in place; used instead of on_document when set */
	void (*on_document_jv)(struct decoder *dec, struct jv obj);
	/* release what state points to (not state itself); may be NULL */
	void (*state_free)(void *state);
};

extern const struct decode_dialect decode_openai_chat;
extern const struct decode_dialect decode_openai_responses;
extern const struct decode_dialect decode_anthropic;
extern const struct decode_dialect decode_embeddings;
extern const struct decode_dialect decode_models;

/* Named-event dialects: a table from the payload's "type" (else the SSE
 * event name) to a handler; decode_dispatch() calls the matching one. */
struct decode_handler {
	const char *type;
	void (*fn)(struct decoder *dec, json_t *obj);
};

/* The type a dialect dispatches an event on: the payload's "type" member,
 * else the SSE event name.  Copied into buf (size bytes, NUL-terminated);
 * a type that does not fit is returned as "" (it matches no handler). */
const char *decode_jv_type(struct jv obj, const char *event, char *buf,
    size_t size);

/* Calls the handler of obj's type (decode_jv_type's rule) in table. */
void decode_dispatch(struct decoder *dec, const char *event, json_t *obj,
    const struct decode_handler *table, size_t n);

struct llm_result *decode_res(struct decoder *dec);
void *decode_state(struct decoder *dec);
/* The stream's terminal event arrived. */
void decode_mark_complete(struct decoder *dec);

#endif
