/*
 * decode.c - body framing and dispatch to the per-dialect decoders.
 *
 * Runs on the upstream thread, inside libcurl's write callback, so it never
 * blocks and never does I/O.  This file owns what all dialects share:
 *
 *  - framing: a streamed body goes through the SSE parser (sse.c); a
 *    non-streamed body is accumulated up to max_body_size and parsed once
 *    at finish.  A streamed decoder looks at the first non-blank byte: an
 *    event stream cannot sensibly start with '{' or '[', a JSON error body
 *    (what the APIs send on 4xx even for stream requests) always does, so
 *    such a body is read as a document.
 *  - JSON: only complete event payloads or the complete body are looked
 *    at, never a partial one; "data: [DONE]" is recognised first.  Each is
 *    validated in place (jsonscan) and handed to the dialect as a view
 *    (jsonv.h): no tree is built for the events of a stream, the costliest
 *    thing the request path used to do.  Dialects that still read jansson
 *    trees (on_event / on_document) get one made from the view.  A payload
 *    that is not a JSON object is counted as invalid and skipped.
 *  - in-band errors: any payload or body with a top-level "error" object
 *    (OpenAI {"error":{...}}, Anthropic {"type":"error","error":{...}},
 *    Responses' "error" event) records the error; the dialect still sees
 *    the payload for anything else it carries.
 *  - end of body: an unterminated last event, a missing terminal event
 *    (the dialect calls decode_mark_complete() when it sees its own) and a
 *    transport error are noted in the result, which keeps what arrived.
 *
 * The dialect vtable is in decode.h; each dialect keeps its private state in
 * a zeroed block of state_size bytes owned by the decoder.
 */
#include "decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "sse.h"

enum decode_mode {
	DECODE_MODE_SNIFF,	/* streamed, nothing but blanks seen yet */
	DECODE_MODE_SSE,
	DECODE_MODE_DOC,
};

struct decoder {
	const struct decode_dialect *ops;
	struct decode_limits limits;
	struct llm_result *res;
	struct sse_parser *sse;
	enum decode_mode mode;
	bool finished;
	char *body;
	size_t body_len;
	size_t body_cap;
	bool body_overflow;
	void *state;
	decode_event_hook *hook;
	void *hook_ud;
};

const char *const decode_kind_names[DECODE__COUNT] = {
	[DECODE_OPENAI_CHAT] = "openai_chat",
	[DECODE_OPENAI_RESPONSES] = "openai_responses",
	[DECODE_ANTHROPIC_MESSAGES] = "anthropic_messages",
	[DECODE_EMBEDDINGS] = "embeddings",
	[DECODE_MODELS] = "models",
};

static const struct decode_dialect *const decode_dialects[DECODE__COUNT] = {
	[DECODE_OPENAI_CHAT] = &decode_openai_chat,
	[DECODE_OPENAI_RESPONSES] = &decode_openai_responses,
	[DECODE_ANTHROPIC_MESSAGES] = &decode_anthropic,
	[DECODE_EMBEDDINGS] = &decode_embeddings,
	[DECODE_MODELS] = &decode_models,
};

const struct decode_limits decode_default_limits = {
	.max_event_size = 4u << 20,
	.max_body_size = 16u << 20,
	.max_result_size = 4u << 20,
	.max_choices = 128,
	.max_items = 1024,
};

static void *
decode_xrealloc(void *ptr, size_t n)
{
	void *q = realloc(ptr, n);

	if (q == NULL) {
		fprintf(stderr, "decode: out of memory (%zu bytes)\n", n);
		abort();
	}
	return q;
}

struct llm_result *
decode_res(struct decoder *dec)
{
	return dec->res;
}

void *
decode_state(struct decoder *dec)
{
	return dec->state;
}

void
decode_mark_complete(struct decoder *dec)
{
	dec->res->complete = true;
}

/*
 * One complete payload, validated in place (jsonscan: no allocation); an
 * absent view (and a note) unless it is a JSON object.  A top-level
 * "error" member is recorded here for every dialect.
 */
static struct jv
decode_view(struct decoder *dec, const char *p, size_t n)
{
	struct jv obj;
	const char *err;
	size_t at;

	if (n == 0 || jsonscan_validate(p, n, &at, &err) != 0 ||
	    !jv_is_object(obj = jv_text(p, n))) {
		llm_note(dec->res, LLM_NOTE_INVALID_JSON);
		return JV_ABSENT;
	}
	/* most payloads do not say "error" at all: skip the member scan */
	if (memmem(obj.p, obj.n, "\"error\"", 7) != NULL)
		llm_result_set_error_jv(dec->res, jv_get(obj, "error"));
	return obj;
}

/* Dialects that read jansson trees get one made from the view. */
static json_t *
decode_tree(struct jv obj)
{
	json_t *t = json_loadb(obj.p, obj.n, JSON_ALLOW_NUL, NULL);

	if (!json_is_object(t)) {
		json_decref(t);
		return NULL;
	}
	return t;
}

static void
decode_on_sse(void *ud, const struct sse_event *ev)
{
	struct decoder *dec = ud;
	struct jv obj;
	json_t *tree;

	if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
		if (dec->ops->on_done != NULL)
			dec->ops->on_done(dec);
		if (dec->hook != NULL)
			dec->hook(dec->hook_ud, ev, JV_ABSENT);
		return;
	}
	obj = decode_view(dec, ev->data, ev->data_len);
	if (obj.n > 0 && (dec->ops->on_event_jv == NULL ||
	    !dec->ops->on_event_jv(dec, ev->type, obj)) &&
	    dec->ops->on_event != NULL && (tree = decode_tree(obj)) != NULL) {
		dec->ops->on_event(dec, ev->type, tree);
		json_decref(tree);
	}
	if (dec->hook != NULL)
		dec->hook(dec->hook_ud, ev, obj);
}

const char *
decode_jv_type(struct jv obj, const char *event, char *buf, size_t size)
{
	struct jv t = jv_get(obj, "type");
	size_t n = jv_str_len_max(t);

	if (!jv_is_string(t))
		return event;
	if (n >= size)
		return "";
	n = jv_str_decode(t, buf);
	buf[n] = '\0';
	return buf;
}

void
decode_dispatch(struct decoder *dec, const char *event, json_t *obj,
    const struct decode_handler *table, size_t n)
{
	const char *type = json_string_value(json_object_get(obj, "type"));

	if (type == NULL)
		type = event;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(type, table[i].type) == 0) {
			table[i].fn(dec, obj);
			return;
		}
	}
}

void
decode_set_event_hook(struct decoder *dec, decode_event_hook *hook, void *ud)
{
	dec->hook = hook;
	dec->hook_ud = ud;
}

static void
decode_body_put(struct decoder *dec, const char *buf, size_t len)
{
	size_t need = dec->body_len + len, cap;

	if (dec->body_overflow || len == 0)
		return;
	if (need > dec->limits.max_body_size) {
		dec->body_overflow = true;
		llm_note(dec->res, LLM_NOTE_BODY_TOO_LARGE);
		free(dec->body);
		dec->body = NULL;
		dec->body_len = dec->body_cap = 0;
		return;
	}
	if (need > dec->body_cap) {
		cap = dec->body_cap ? dec->body_cap * 2 : 4096;
		if (cap < need)
			cap = need;
		if (cap > dec->limits.max_body_size)
			cap = dec->limits.max_body_size;
		dec->body = decode_xrealloc(dec->body, cap);
		dec->body_cap = cap;
	}
	memcpy(dec->body + dec->body_len, buf, len);
	dec->body_len = need;
}

/* Streamed body, nothing but blanks so far: returns how many leading bytes
 * are blanks and switches mode at the first other byte. */
static size_t
decode_sniff(struct decoder *dec, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' ||
		    buf[i] == '\n')
			continue;
		dec->mode = buf[i] == '{' || buf[i] == '[' ?
		    DECODE_MODE_DOC : DECODE_MODE_SSE;
		break;
	}
	return i;
}

static void
decode_sse_notes(struct decoder *dec)
{
	struct sse_stats st;

	sse_stats(dec->sse, &st);
	dec->res->notes[LLM_NOTE_OVERSIZED_EVENT] =
	    st.oversized > UINT32_MAX ? UINT32_MAX : (unsigned)st.oversized;
}

int
decode_feed(struct decoder *dec, const char *buf, size_t len)
{
	size_t skip;

	if (dec->finished)
		return -1;
	if (dec->mode == DECODE_MODE_SNIFF) {
		skip = decode_sniff(dec, buf, len);
		/* Blanks are harmless to the event stream, which needs them
		 * for its offsets; a document does not need them at all. */
		if (dec->mode != DECODE_MODE_DOC)
			sse_feed(dec->sse, buf, skip);
		buf += skip;
		len -= skip;
	}
	if (dec->mode == DECODE_MODE_DOC) {
		decode_body_put(dec, buf, len);
	} else if (len > 0) {
		sse_feed(dec->sse, buf, len);
		decode_sse_notes(dec);
	}
	return 0;
}

static void
decode_finish_doc(struct decoder *dec)
{
	struct jv obj;
	json_t *tree = NULL;

	if (dec->body_overflow)
		return;
	obj = decode_view(dec, dec->body != NULL ? dec->body : "",
	    dec->body_len);
	if (obj.n > 0 && dec->ops->on_document_jv != NULL) {
		dec->ops->on_document_jv(dec, obj);
		dec->res->complete = true;
	} else if (obj.n > 0 && (tree = decode_tree(obj)) != NULL) {
		dec->ops->on_document(dec, tree);
		dec->res->complete = true;
		json_decref(tree);
	}
	free(dec->body);
	dec->body = NULL;
	dec->body_len = dec->body_cap = 0;
}

void
decode_finish(struct decoder *dec, const char *transport_error)
{
	if (dec->finished)
		return;
	dec->finished = true;
	if (dec->mode == DECODE_MODE_DOC) {
		decode_finish_doc(dec);
	} else {
		if (sse_finish(dec->sse))
			llm_note(dec->res, LLM_NOTE_PARTIAL_EVENT);
		decode_sse_notes(dec);
		if (!dec->res->complete)
			llm_note(dec->res, LLM_NOTE_TRUNCATED);
	}
	if (transport_error != NULL) {
		llm_note(dec->res, LLM_NOTE_TRANSPORT_ERROR);
		llm_str_set(dec->res, &dec->res->transport_error,
		    transport_error, strlen(transport_error));
	}
}

struct decoder *
decode_new(enum decode_kind kind, bool streamed,
    const struct decode_limits *limits)
{
	struct decoder *dec = decode_xrealloc(NULL, sizeof(*dec));
	struct llm_limits ll;

	memset(dec, 0, sizeof(*dec));
	dec->ops = decode_dialects[kind];
	dec->limits = limits != NULL ? *limits : decode_default_limits;
	ll.max_text = dec->limits.max_result_size;
	ll.max_choices = dec->limits.max_choices;
	ll.max_items = dec->limits.max_items;
	dec->res = llm_result_new(&ll);
	if (dec->ops->state_size > 0) {
		dec->state = decode_xrealloc(NULL, dec->ops->state_size);
		memset(dec->state, 0, dec->ops->state_size);
	}
	if (streamed && (dec->ops->on_event != NULL || dec->ops->on_event_jv != NULL)) {
		dec->mode = DECODE_MODE_SNIFF;
		dec->sse = sse_new(dec->limits.max_event_size, decode_on_sse,
		    dec);
	} else {
		dec->mode = DECODE_MODE_DOC;
	}
	return dec;
}

const struct llm_result *
decode_result(const struct decoder *dec)
{
	return dec->res;
}

struct llm_result *
decode_take_result(struct decoder *dec)
{
	struct llm_result *res = dec->res;

	if (!dec->finished)
		return NULL;
	dec->res = NULL;
	return res;
}

uint64_t
decode_boundary(const struct decoder *dec)
{
	return dec->sse != NULL && dec->mode != DECODE_MODE_DOC ?
	    sse_boundary(dec->sse) : 0;
}

void
decode_free(struct decoder *dec)
{
	if (dec == NULL)
		return;
	if (dec->state != NULL && dec->ops->state_free != NULL)
		dec->ops->state_free(dec->state);
	free(dec->state);
	sse_free(dec->sse);
	free(dec->body);
	llm_result_free(dec->res);
	free(dec);
}
