/*
 * event.c - turn one finished call (struct record) into telemetry events.
 *
 * Runs on the dispatcher thread, after the call is over, so the request
 * path never pays for it: the request body is parsed here (once), and the
 * answer is read from the decoder's llm_result.  The events of a call, in
 * order:
 *
 *   request     user_message | tool_result | embedding_request
 *               (event_request.c), timestamped at the call's start
 *   thinking    llm_thinking, one per choice with reasoning text
 *   answer      llm_response | embedding_response, and/or error
 *
 * all timestamped at start + total time.  A call that failed before any
 * content arrived gives error instead of the answer; one that failed after
 * some content arrived gives the answer (what arrived) and then error.
 * /v1/models calls give no events.
 *
 * Every event is an envelope {"payload","source","retryCount","enqueuedAt"}
 * whose payload carries the identity of the call (trace, span, agent, key
 * name, project, environment; never the key or its hash), the content of
 * that event and one metadata object shared by the call's events.  The
 * schema is whyops-events(7); this file and that page change together.
 *
 * Event ids are UUIDv7 (RFC 9562): 48 bits of now_ms, the event's index
 * in the call in the 12 "rand_a" bits (so a call's ids sort in event
 * order), and 62 random bits from gnutls_rnd(GNUTLS_RND_NONCE).  Delivery
 * is at least once; the id is what consumers de-duplicate on.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "event.h"

/* Endpoint names as struct record spells them. */
static const struct {
	const char *name;
	enum event_dialect dialect;
} event_endpoints[] = {
	{ "chat.completions", EVENT_DIALECT_CHAT },
	{ "responses", EVENT_DIALECT_RESPONSES },
	{ "messages", EVENT_DIALECT_ANTHROPIC },
	{ "embeddings", EVENT_DIALECT_EMBEDDINGS },
	{ "models", EVENT_DIALECT_MODELS },
};

/* What one call gives, worked out once. */
struct event_call {
	const struct record *r;
	const struct llm_result *res;	/* NULL when no answer was decoded */
	enum event_dialect dialect;
	bool capture;
	bool has_content;		/* text, refusal, reasoning, tool calls
					 * or vectors arrived */
	bool failed;
	int64_t now_ms;
	int64_t start_ms;		/* request events */
	int64_t end_ms;			/* answer events */
	json_t *metadata;		/* shared by the call's events */
	json_t *events;			/* the result */
};

/* ---- strings, times, ids ---- */

json_t *
event_string(const char *p, size_t n)
{
	json_t *s;
	char *copy;
	size_t i;

	if (p == NULL)
		return NULL;
	s = json_stringn(p, n);
	if (s != NULL)
		return s;
	copy = malloc(n + 1);
	if (copy == NULL)
		abort();
	for (i = 0; i < n; i++)
		copy[i] = (unsigned char)p[i] < 0x80 ? p[i] : '?';
	s = json_stringn(copy, n);
	free(copy);
	return s;
}

static json_t *
event_cstr(const char *s)
{
	return s != NULL ? event_string(s, strlen(s)) : NULL;
}

static json_t *
event_llm_str(const struct llm_str *s)
{
	return s->len > 0 ? event_string(s->ptr, s->len) : NULL;
}

/* Sets key to v when v is not NULL (a new reference, consumed). */
static void
event_set(json_t *obj, const char *key, json_t *v)
{
	if (v != NULL)
		json_object_set_new(obj, key, v);
}

/* Sets key to v, or to null when v is NULL. */
static void
event_set_or_null(json_t *obj, const char *key, json_t *v)
{
	json_object_set_new(obj, key, v != NULL ? v : json_null());
}

/* "2026-11-28T00:10:00.123Z" */
static json_t *
event_iso8601(int64_t ms)
{
	int64_t secs = ms / 1000, frac = ms % 1000;
	char out[64];
	struct tm tm;
	time_t t;

	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	t = (time_t)secs;
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(out, sizeof(out), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)frac);
	return json_string(out);
}

static json_t *
event_uuid7(int64_t ms, unsigned seq)
{
	unsigned char b[16];
	char out[37];
	uint64_t ts = ms > 0 ? (uint64_t)ms : 0;
	int i, o = 0;

	for (i = 0; i < 6; i++)
		b[i] = (unsigned char)(ts >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
	b[7] = (unsigned char)seq;
	if (gnutls_rnd(GNUTLS_RND_NONCE, b + 8, 8) < 0) {
		/* duplicate ids would make consumers drop events */
		fprintf(stderr, "event: gnutls_rnd failed\n");
		abort();
	}
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		o += snprintf(out + o, sizeof(out) - (size_t)o, "%02x", b[i]);
	}
	return json_string(out);
}

/* Whole ms of a duration, rounded (the program links no libm). */
static int64_t
event_round_ms(double ms)
{
	return ms > 0 && ms < 9e15 ? (int64_t)(ms + 0.5) : 0;
}

/* A duration in ms, to the microsecond; NULL when unknown (< 0). */
static json_t *
event_ms(double ms)
{
	if (!(ms >= 0) || ms >= 9e12)
		return NULL;
	return json_real((double)(int64_t)(ms * 1000.0 + 0.5) / 1000.0);
}

/* ---- metadata ---- */

static json_t *
event_usage(const struct event_call *c)
{
	const struct llm_usage *u = &c->res->usage;
	json_t *o = json_object();
	int64_t total = u->total;

	if (u->input != LLM_UNSET)
		json_object_set_new(o, "promptTokens", json_integer(u->input));
	if (u->output != LLM_UNSET)
		json_object_set_new(o, "completionTokens",
		    json_integer(u->output));
	if (total == LLM_UNSET && u->input != LLM_UNSET &&
	    u->output != LLM_UNSET) {
		/* Anthropic's input_tokens leave out cached tokens */
		total = u->input + u->output;
		if (u->cached != LLM_UNSET && c->dialect ==
		    EVENT_DIALECT_ANTHROPIC)
			total += u->cached;
		if (u->cache_creation != LLM_UNSET && c->dialect ==
		    EVENT_DIALECT_ANTHROPIC)
			total += u->cache_creation;
	}
	if (total != LLM_UNSET)
		json_object_set_new(o, "totalTokens", json_integer(total));
	if (u->cached != LLM_UNSET)
		json_object_set_new(o, "cacheReadTokens",
		    json_integer(u->cached));
	if (u->cache_creation != LLM_UNSET)
		json_object_set_new(o, "cacheCreationTokens",
		    json_integer(u->cache_creation));
	if (u->reasoning != LLM_UNSET)
		json_object_set_new(o, "reasoningTokens",
		    json_integer(u->reasoning));
	if (json_object_size(o) == 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The choice the top level of llm_response describes: the lowest index
 * the upstream sent (0 but for odd upstreams). */
static const struct llm_choice *
event_first_choice(const struct llm_result *res)
{
	size_t i;

	for (i = 0; res != NULL && i < res->nchoices; i++)
		if (res->choices[i].used)
			return &res->choices[i];
	return NULL;
}

/* The error text of the call: the proxy's, else the decoder's. */
static json_t *
event_error_text(const struct event_call *c)
{
	if (c->r->error != NULL)
		return event_cstr(c->r->error);
	if (c->res != NULL)
		return event_llm_str(&c->res->transport_error);
	return NULL;
}

static json_t *
event_notes(const struct llm_result *res)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < LLM_NOTE__COUNT; i++)
		if (res->notes[i] > 0)
			json_array_append_new(a, json_string(
			    llm_note_names[i]));
	if (json_array_size(a) == 0) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* latencyMs is whole ms: the existing consumer stores it in an integer
 * column.  The finer timings keep microseconds. */
static void
event_timings(json_t *m, const struct record *r)
{
	if (r->total_ms >= 0)
		json_object_set_new(m, "latencyMs",
		    json_integer(event_round_ms(r->total_ms)));
	event_set(m, "ttftMs", event_ms(r->ttft_ms));
	event_set(m, "ttfbMs", event_ms(r->ttfb_ms));
	event_set(m, "upstreamMs", event_ms(r->upstream_ms));
	event_set(m, "overheadMs", event_ms(r->overhead_ms));
}

static json_t *
event_metadata(const struct event_call *c)
{
	const struct record *r = c->r;
	const struct llm_choice *ch = event_first_choice(c->res);
	json_t *m = json_object(), *model = NULL;

	if (c->res != NULL)
		model = event_llm_str(&c->res->model);
	if (model == NULL)
		model = event_cstr(r->upstream_model);
	if (model == NULL)
		model = event_cstr(r->requested_model);
	event_set(m, "model", model);
	event_set(m, "requestedModel", event_cstr(r->requested_model));
	event_set(m, "provider", event_cstr(r->provider_type));
	event_set(m, "providerSlug", event_cstr(r->provider));
	event_set(m, "endpoint", event_cstr(r->endpoint));
	event_timings(m, r);
	if (ch != NULL)
		event_set(m, "finishReason", event_llm_str(&ch->finish_reason));
	if (r->upstream_status > 0)
		json_object_set_new(m, "upstreamStatus",
		    json_integer(r->upstream_status));
	if (r->client_status > 0)
		json_object_set_new(m, "clientStatus",
		    json_integer(r->client_status));
	event_set(m, "requestId", event_cstr(r->request_id));
	json_object_set_new(m, "stream", json_boolean(r->stream));
	json_object_set_new(m, "usageForced", json_boolean(r->usage_forced));
	json_object_set_new(m, "clientAborted",
	    json_boolean(r->client_aborted));
	event_set(m, "traceSource", event_cstr(r->trace_source));
	event_set(m, "error", event_error_text(c));
	event_set(m, "errorKind", event_cstr(r->error_kind));
	json_object_set_new(m, "capture",
	    json_string(c->capture ? "full" : "metadata"));
	if (c->res != NULL) {
		event_set(m, "responseId", event_llm_str(&c->res->id));
		event_set(m, "decoderNotes", event_notes(c->res));
	}
	return m;
}

/* ---- envelope ---- */

/*
 * Appends one event.  content is consumed; usage adds metadata.usage (only
 * the event that closes the call carries it, so that summing usage over
 * events counts each call once).
 */
static void
event_add(struct event_call *c, const char *type, int64_t at_ms,
    json_t *content, bool usage)
{
	const struct record *r = c->r;
	json_t *p = json_object(), *env, *meta;

	meta = json_deep_copy(c->metadata);
	if (usage && c->res != NULL)
		event_set(meta, "usage", event_usage(c));
	json_object_set_new(p, "schemaVersion",
	    json_integer(EVENT_SCHEMA_VERSION));
	json_object_set_new(p, "eventId", event_uuid7(c->now_ms,
	    (unsigned)json_array_size(c->events)));
	/* the name the existing consumer de-duplicates on */
	json_object_set(p, "idempotencyKey", json_object_get(p, "eventId"));
	json_object_set_new(p, "eventType", json_string(type));
	event_set_or_null(p, "traceId", event_cstr(r->trace_id));
	event_set_or_null(p, "spanId", event_cstr(r->span_id));
	event_set_or_null(p, "agentName", event_cstr(r->agent_name));
	json_object_set_new(p, "timestamp", event_iso8601(at_ms));
	event_set_or_null(p, "keyName", event_cstr(r->key_name));
	event_set_or_null(p, "projectId", event_cstr(r->project));
	event_set_or_null(p, "environmentId", event_cstr(r->environment));
	event_set(p, "requestId", event_cstr(r->request_id));
	event_set(p, "externalUserId", event_cstr(r->external_user_id));
	json_object_set_new(p, "content", content);
	json_object_set_new(p, "metadata", meta);

	env = json_object();
	json_object_set_new(env, "payload", p);
	json_object_set_new(env, "source", json_string("proxy"));
	json_object_set_new(env, "retryCount", json_integer(0));
	json_object_set_new(env, "enqueuedAt", event_iso8601(c->now_ms));
	json_array_append_new(c->events, env);
}

/* ---- the answer ---- */

/* {"id","type","function":{"name","arguments"}}, OpenAI's tool call shape
 * for every dialect; type is "function", "custom" or "server". */
static json_t *
event_tool_call(const struct llm_tool_call *tc, bool capture)
{
	json_t *fn = json_object();

	event_set_or_null(fn, "name", event_llm_str(&tc->name));
	if (capture)
		event_set_or_null(fn, "arguments",
		    event_llm_str(&tc->arguments));
	return json_pack("{s:o,s:s,s:o}",
	    "id", tc->id.len ? event_llm_str(&tc->id) : json_null(),
	    "type", llm_tool_kind_names[tc->kind],
	    "function", fn);
}

static json_t *
event_choice(const struct llm_choice *ch, bool capture)
{
	json_t *o = json_object(), *calls = json_array();
	size_t i;

	if (capture)
		event_set_or_null(o, "content", event_llm_str(&ch->content));
	event_set_or_null(o, "finishReason", event_llm_str(&ch->finish_reason));
	for (i = 0; i < ch->ntool_calls; i++)
		if (ch->tool_calls[i].used)
			json_array_append_new(calls,
			    event_tool_call(&ch->tool_calls[i], capture));
	json_object_set_new(o, "toolCalls", calls);
	if (capture) {
		event_set(o, "refusal", event_llm_str(&ch->refusal));
		event_set(o, "reasoning", event_llm_str(&ch->reasoning));
	}
	return o;
}

static json_t *
event_response_content(const struct event_call *c)
{
	const struct llm_result *res = c->res;
	const struct llm_choice *first = event_first_choice(res);
	static const struct llm_choice none;
	json_t *o, *choices, *one;
	size_t i, used = 0;

	o = event_choice(first != NULL ? first : &none, c->capture);
	for (i = 0; res != NULL && i < res->nchoices; i++)
		used += res->choices[i].used;
	if (used < 2)
		return o;
	choices = json_array();
	for (i = 0; i < res->nchoices; i++) {
		if (!res->choices[i].used)
			continue;
		one = event_choice(&res->choices[i], c->capture);
		json_object_set_new(one, "index", json_integer((json_int_t)i));
		json_array_append_new(choices, one);
	}
	json_object_set_new(o, "allChoices", choices);
	return o;
}

static void
event_thinking(struct event_call *c)
{
	const struct llm_choice *ch;
	json_t *o;
	size_t i;

	for (i = 0; c->res != NULL && i < c->res->nchoices; i++) {
		ch = &c->res->choices[i];
		if (!ch->used || ch->reasoning.len == 0)
			continue;
		o = json_object();
		json_object_set_new(o, "choiceIndex",
		    json_integer((json_int_t)i));
		if (c->capture) {
			json_object_set_new(o, "reasoning",
			    event_llm_str(&ch->reasoning));
			/* the Anthropic block's name, which the existing
			 * consumer's views read */
			json_object_set_new(o, "thinking",
			    event_llm_str(&ch->reasoning));
		}
		event_add(c, "llm_thinking", c->end_ms, o, false);
	}
}

static json_t *
event_error_content(const struct event_call *c)
{
	const struct record *r = c->r;
	const struct llm_error *e = c->res ? &c->res->error : NULL;
	json_t *o = json_object(), *msg = NULL;
	const char *kind = r->error_kind;
	char text[64];

	if (e != NULL && e->present)
		msg = event_llm_str(&e->message);
	if (msg == NULL)
		msg = event_error_text(c);
	if (msg == NULL && r->upstream_status > 0) {
		snprintf(text, sizeof(text), "upstream answered HTTP %ld",
		    r->upstream_status);
		msg = json_string(text);
	}
	event_set_or_null(o, "message", msg != NULL ? msg :
	    json_string("no answer from upstream"));
	if (e != NULL && e->present) {
		event_set(o, "type", event_llm_str(&e->type));
		event_set(o, "code", event_llm_str(&e->code));
	}
	if (r->upstream_status > 0)
		json_object_set_new(o, "upstreamStatus",
		    json_integer(r->upstream_status));
	if (kind == NULL)
		kind = r->upstream_status >= 400 ? "upstream_status" :
		    e != NULL && e->present ? "upstream_error" : "transport";
	json_object_set_new(o, "kind", json_string(kind));
	return o;
}

static json_t *
event_embedding_content(const struct llm_result *res)
{
	json_t *o = json_object();

	json_object_set_new(o, "vectorCount", json_integer(res != NULL ?
	    (json_int_t)res->embeddings : 0));
	if (res != NULL && res->dimensions > 0)
		json_object_set_new(o, "dimensions",
		    json_integer((json_int_t)res->dimensions));
	return o;
}

static void
event_answer(struct event_call *c)
{
	if (!c->has_content && c->failed) {
		event_add(c, "error", c->end_ms, event_error_content(c), true);
		return;
	}
	if (c->dialect == EVENT_DIALECT_EMBEDDINGS) {
		event_add(c, "embedding_response", c->end_ms,
		    event_embedding_content(c->res), true);
	} else {
		event_thinking(c);
		event_add(c, "llm_response", c->end_ms,
		    event_response_content(c), true);
	}
	/* cut short after content arrived: what arrived, then the error */
	if (c->failed)
		event_add(c, "error", c->end_ms, event_error_content(c), false);
}

/* ---- the call ---- */

static bool
event_has_content(const struct llm_result *res)
{
	const struct llm_choice *ch;
	size_t i;

	if (res == NULL)
		return false;
	if (res->has_embeddings)
		return true;
	for (i = 0; i < res->nchoices; i++) {
		ch = &res->choices[i];
		if (ch->used && (ch->content.len || ch->refusal.len ||
		    ch->reasoning.len || ch->ntool_calls))
			return true;
	}
	return false;
}

static bool
event_failed(const struct record *r, const struct llm_result *res)
{
	if (r->upstream_status >= 400 || r->error != NULL)
		return true;
	if (res == NULL)
		return r->upstream_status == 0;
	return res->error.present || res->transport_error.len > 0;
}

static enum event_dialect
event_dialect_of(const struct record *r, json_t *body)
{
	size_t i;

	for (i = 0; r->endpoint != NULL &&
	    i < sizeof(event_endpoints) / sizeof(event_endpoints[0]); i++)
		if (strcmp(r->endpoint, event_endpoints[i].name) == 0)
			return event_endpoints[i].dialect;
	/* unknown: guess from the body and the provider */
	if (json_object_get(body, "input") != NULL &&
	    json_object_get(body, "messages") == NULL)
		return EVENT_DIALECT_RESPONSES;
	if (r->provider_type != NULL &&
	    strcmp(r->provider_type, "anthropic") == 0)
		return EVENT_DIALECT_ANTHROPIC;
	return EVENT_DIALECT_CHAT;
}

json_t *
event_build(const struct record *r, int64_t now_ms)
{
	struct event_call c = { 0 };
	json_t *body = NULL, *content;
	const char *type;

	c.events = json_array();
	if (r->request_body != NULL && r->request_len > 0)
		body = json_loadb(r->request_body, r->request_len, 0, NULL);
	if (!json_is_object(body)) {
		json_decref(body);
		body = NULL;
	}
	c.r = r;
	c.res = r->result;
	c.dialect = event_dialect_of(r, body);
	if (c.dialect == EVENT_DIALECT_MODELS)
		goto out;
	c.capture = r->capture_content;
	c.has_content = event_has_content(c.res);
	c.failed = event_failed(r, c.res);
	c.now_ms = now_ms;
	c.start_ms = r->start_unix_ms > 0 ? r->start_unix_ms : now_ms;
	c.end_ms = c.start_ms + event_round_ms(r->total_ms);
	c.metadata = event_metadata(&c);

	type = event_request(c.dialect, body, c.capture, &content);
	event_add(&c, type, c.start_ms, content, false);
	event_answer(&c);
out:
	json_decref(c.metadata);
	json_decref(body);
	return c.events;
}
