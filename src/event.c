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
 * The events are written as text, straight into the dispatcher's buffer
 * (jsonw.h), not built as jansson trees and dumped: that was most of the
 * dispatcher's cost (a malloc per value, printf per number).  The shared
 * metadata object is written once per call into its own buffer and copied
 * into each envelope (the closing event adds usage before its '}').  The
 * request body is never parsed into a tree either: event_request.c reads
 * it in place with jsonscan and copies the subtrees it keeps as minified
 * text.  The output is the JSON the tree builder gave, member for member;
 * only member order, whitespace and the spelling of numbers copied from
 * the client (1e2 stays 1e2) may differ.
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

#include "event.h"
#include "jsonscan.h"
#include "jsonw.h"
#include "trace.h"

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
	char enqueued[64];		/* now_ms, ISO 8601 */
	struct buf metadata;		/* the shared object, "{...}" */
	struct buf content;		/* scratch: one event's content */
	struct buf *out;		/* the result */
	int nevents;
};

/* ---- strings, times, ids ---- */

static void
event_llm_str(struct buf *b, const struct llm_str *s)
{
	if (s->len > 0)
		jsonw_str(b, s->ptr, s->len);
	else
		jsonw_lit(b, "null");
}

/* key: s, left out when s is NULL / empty. */
static void
event_opt_cstr(struct buf *b, const char *key, const char *s)
{
	if (s != NULL) {
		jsonw_key(b, key);
		jsonw_cstr(b, s);
	}
}

static void
event_opt_llm(struct buf *b, const char *key, const struct llm_str *s)
{
	if (s->len > 0) {
		jsonw_key(b, key);
		jsonw_str(b, s->ptr, s->len);
	}
}

static void
event_opt_int(struct buf *b, const char *key, int64_t v)
{
	jsonw_key(b, key);
	jsonw_int(b, v);
}

static void
event_digits(char *p, int v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* "2026-11-28T00:10:00.123Z" into out[64] */
static void
event_iso8601(int64_t ms, char *out)
{
	int64_t secs = ms / 1000, frac = ms % 1000;
	struct tm tm;
	time_t t;

	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	t = (time_t)secs;
	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
		snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (int)frac);
		return;
	}
	memcpy(out, "0000-00-00T00:00:00.000Z", 25);
	event_digits(out, tm.tm_year + 1900, 4);
	event_digits(out + 5, tm.tm_mon + 1, 2);
	event_digits(out + 8, tm.tm_mday, 2);
	event_digits(out + 11, tm.tm_hour, 2);
	event_digits(out + 14, tm.tm_min, 2);
	event_digits(out + 17, tm.tm_sec, 2);
	event_digits(out + 20, (int)frac, 3);
}

/* The id, with quotes, into out[39]. */
static void
event_uuid7(int64_t ms, unsigned seq, char *out)
{
	uint8_t b[16];
	uint64_t ts = ms > 0 ? (uint64_t)ms : 0;
	int i;

	for (i = 0; i < 6; i++)
		b[i] = (uint8_t)(ts >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | ((seq >> 8) & 0x0f));
	b[7] = (uint8_t)seq;
	if (gnutls_rnd(GNUTLS_RND_NONCE, b + 8, 8) < 0) {
		/* duplicate ids would make consumers drop events */
		fprintf(stderr, "event: gnutls_rnd failed\n");
		abort();
	}
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
	out[0] = '"';
	trace_uuid_text(b, out + 1);
	out[37] = '"';
	out[38] = '\0';
}

/* Whole ms of a duration, rounded (the program links no libm). */
static int64_t
event_round_ms(double ms)
{
	return ms > 0 && ms < 9e15 ? (int64_t)(ms + 0.5) : 0;
}

/* key: a duration in ms, to the microsecond; left out when unknown. */
static void
event_ms(struct buf *b, const char *key, double ms)
{
	if (!(ms >= 0) || ms >= 9e12)
		return;
	jsonw_key(b, key);
	jsonw_milli(b, (int64_t)(ms * 1000.0 + 0.5));
}

/* ---- metadata ---- */

static void
event_usage(struct buf *b, const struct event_call *c)
{
	const struct llm_usage *u = &c->res->usage;
	int64_t total = u->total;

	if (u->input == LLM_UNSET && u->output == LLM_UNSET &&
	    total == LLM_UNSET && u->cached == LLM_UNSET &&
	    u->cache_creation == LLM_UNSET && u->reasoning == LLM_UNSET)
		return;
	jsonw_key(b, "usage");
	jsonw_lit(b, "{");
	if (u->input != LLM_UNSET)
		event_opt_int(b, "promptTokens", u->input);
	if (u->output != LLM_UNSET)
		event_opt_int(b, "completionTokens", u->output);
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
		event_opt_int(b, "totalTokens", total);
	if (u->cached != LLM_UNSET)
		event_opt_int(b, "cacheReadTokens", u->cached);
	if (u->cache_creation != LLM_UNSET)
		event_opt_int(b, "cacheCreationTokens", u->cache_creation);
	if (u->reasoning != LLM_UNSET)
		event_opt_int(b, "reasoningTokens", u->reasoning);
	jsonw_lit(b, "}");
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

/* The error text of the call: the proxy's, else the decoder's; false
 * when there is none. */
static bool
event_error_text(struct buf *b, const struct event_call *c)
{
	if (c->r->error != NULL) {
		jsonw_cstr(b, c->r->error);
		return true;
	}
	if (c->res != NULL && c->res->transport_error.len > 0) {
		event_llm_str(b, &c->res->transport_error);
		return true;
	}
	return false;
}

static void
event_notes(struct buf *b, const struct llm_result *res)
{
	int i, n = 0;

	for (i = 0; i < LLM_NOTE__COUNT; i++) {
		if (res->notes[i] <= 0)
			continue;
		if (n++ == 0) {
			jsonw_key(b, "decoderNotes");
			jsonw_lit(b, "[");
		}
		jsonw_elem(b);
		jsonw_cstr(b, llm_note_names[i]);
	}
	if (n > 0)
		jsonw_lit(b, "]");
}

/* latencyMs is whole ms: the existing consumer stores it in an integer
 * column.  The finer timings keep microseconds. */
static void
event_timings(struct buf *m, const struct record *r)
{
	if (r->total_ms >= 0)
		event_opt_int(m, "latencyMs", event_round_ms(r->total_ms));
	event_ms(m, "ttftMs", r->ttft_ms);
	event_ms(m, "ttfbMs", r->ttfb_ms);
	event_ms(m, "upstreamMs", r->upstream_ms);
	event_ms(m, "overheadMs", r->overhead_ms);
}

static void
event_metadata(struct event_call *c)
{
	const struct record *r = c->r;
	const struct llm_choice *ch = event_first_choice(c->res);
	struct buf *m = &c->metadata;

	jsonw_lit(m, "{");
	if (c->res != NULL && c->res->model.len > 0)
		event_opt_llm(m, "model", &c->res->model);
	else if (r->upstream_model != NULL)
		event_opt_cstr(m, "model", r->upstream_model);
	else
		event_opt_cstr(m, "model", r->requested_model);
	event_opt_cstr(m, "requestedModel", r->requested_model);
	event_opt_cstr(m, "provider", r->provider_type);
	event_opt_cstr(m, "providerSlug", r->provider);
	event_opt_cstr(m, "endpoint", r->endpoint);
	event_timings(m, r);
	if (ch != NULL)
		event_opt_llm(m, "finishReason", &ch->finish_reason);
	if (r->upstream_status > 0)
		event_opt_int(m, "upstreamStatus", r->upstream_status);
	if (r->client_status > 0)
		event_opt_int(m, "clientStatus", r->client_status);
	event_opt_cstr(m, "requestId", r->request_id);
	jsonw_key(m, "stream");
	jsonw_bool(m, r->stream);
	jsonw_key(m, "usageForced");
	jsonw_bool(m, r->usage_forced);
	jsonw_key(m, "clientAborted");
	jsonw_bool(m, r->client_aborted);
	event_opt_cstr(m, "traceSource", r->trace_source);
	if (r->error != NULL || (c->res != NULL &&
	    c->res->transport_error.len > 0)) {
		jsonw_key(m, "error");
		event_error_text(m, c);
	}
	event_opt_cstr(m, "errorKind", r->error_kind);
	jsonw_key(m, "capture");
	jsonw_lit(m, c->capture ? "\"full\"" : "\"metadata\"");
	if (c->res != NULL) {
		event_opt_llm(m, "responseId", &c->res->id);
		event_notes(m, c->res);
	}
	jsonw_lit(m, "}");
}

/* ---- envelope ---- */

/* key: s, or null when s is NULL. */
static void
event_cstr_or_null(struct buf *b, const char *key, const char *s)
{
	jsonw_key(b, key);
	jsonw_cstr(b, s);
}

/*
 * Appends one event line (NUL-terminated) with c->content as its content;
 * usage adds metadata.usage (only the event that closes the call carries
 * it, so that summing usage over events counts each call once).
 */
static void
event_add(struct event_call *c, const char *type, int64_t at_ms, bool usage)
{
	const struct record *r = c->r;
	struct buf *b = c->out;
	char id[40], at[64];

	event_uuid7(c->now_ms, (unsigned)c->nevents++, id);
	event_iso8601(at_ms, at);
	jsonw_lit(b, "{\"payload\":{");
	event_opt_int(b, "schemaVersion", EVENT_SCHEMA_VERSION);
	jsonw_key(b, "eventId");
	jsonw_lit(b, id);
	/* the name the existing consumer de-duplicates on */
	jsonw_key(b, "idempotencyKey");
	jsonw_lit(b, id);
	event_cstr_or_null(b, "eventType", type);
	event_cstr_or_null(b, "traceId", r->trace_id);
	event_cstr_or_null(b, "spanId", r->span_id);
	event_cstr_or_null(b, "agentName", r->agent_name);
	event_cstr_or_null(b, "timestamp", at);
	event_cstr_or_null(b, "keyName", r->key_name);
	event_cstr_or_null(b, "projectId", r->project);
	event_cstr_or_null(b, "environmentId", r->environment);
	event_opt_cstr(b, "requestId", r->request_id);
	event_opt_cstr(b, "externalUserId", r->external_user_id);
	jsonw_key(b, "content");
	buf_append(b, c->content.data, c->content.len);
	jsonw_key(b, "metadata");
	buf_append(b, c->metadata.data, c->metadata.len - 1);
	if (usage && c->res != NULL)
		event_usage(b, c);
	jsonw_lit(b, "}},\"source\":\"proxy\",\"retryCount\":0,"
	    "\"enqueuedAt\":\"");
	jsonw_lit(b, c->enqueued);
	jsonw_lit(b, "\"}");
	buf_append(b, "", 1);		/* the line's NUL */
	buf_reset(&c->content);
}

/* ---- the answer ---- */

/* {"id","type","function":{"name","arguments"}}, OpenAI's tool call shape
 * for every dialect; type is "function", "custom" or "server". */
static void
event_tool_call(struct buf *b, const struct llm_tool_call *tc, bool capture)
{
	jsonw_lit(b, "{\"id\":");
	event_llm_str(b, &tc->id);
	jsonw_key(b, "type");
	jsonw_cstr(b, llm_tool_kind_names[tc->kind]);
	jsonw_lit(b, ",\"function\":{\"name\":");
	event_llm_str(b, &tc->name);
	if (capture) {
		jsonw_key(b, "arguments");
		event_llm_str(b, &tc->arguments);
	}
	jsonw_lit(b, "}}");
}

/* The members of one choice (the caller opens and closes the object). */
static void
event_choice(struct buf *b, const struct llm_choice *ch, bool capture)
{
	size_t i;

	if (capture) {
		jsonw_key(b, "content");
		event_llm_str(b, &ch->content);
	}
	jsonw_key(b, "finishReason");
	event_llm_str(b, &ch->finish_reason);
	jsonw_key(b, "toolCalls");
	jsonw_lit(b, "[");
	for (i = 0; i < ch->ntool_calls; i++) {
		if (!ch->tool_calls[i].used)
			continue;
		jsonw_elem(b);
		event_tool_call(b, &ch->tool_calls[i], capture);
	}
	jsonw_lit(b, "]");
	if (capture) {
		event_opt_llm(b, "refusal", &ch->refusal);
		event_opt_llm(b, "reasoning", &ch->reasoning);
	}
}

static void
event_response_content(struct event_call *c)
{
	const struct llm_result *res = c->res;
	const struct llm_choice *first = event_first_choice(res);
	static const struct llm_choice none;
	struct buf *b = &c->content;
	size_t i, used = 0;

	jsonw_lit(b, "{");
	event_choice(b, first != NULL ? first : &none, c->capture);
	for (i = 0; res != NULL && i < res->nchoices; i++)
		used += res->choices[i].used;
	if (used >= 2) {
		jsonw_key(b, "allChoices");
		jsonw_lit(b, "[");
		for (i = 0; i < res->nchoices; i++) {
			if (!res->choices[i].used)
				continue;
			jsonw_elem(b);
			jsonw_lit(b, "{");
			event_choice(b, &res->choices[i], c->capture);
			event_opt_int(b, "index", (int64_t)i);
			jsonw_lit(b, "}");
		}
		jsonw_lit(b, "]");
	}
	jsonw_lit(b, "}");
}

static void
event_thinking(struct event_call *c)
{
	const struct llm_choice *ch;
	struct buf *b = &c->content;
	size_t i;

	for (i = 0; c->res != NULL && i < c->res->nchoices; i++) {
		ch = &c->res->choices[i];
		if (!ch->used || ch->reasoning.len == 0)
			continue;
		jsonw_lit(b, "{");
		event_opt_int(b, "choiceIndex", (int64_t)i);
		if (c->capture) {
			jsonw_key(b, "reasoning");
			event_llm_str(b, &ch->reasoning);
			/* the Anthropic block's name, which the existing
			 * consumer's views read */
			jsonw_key(b, "thinking");
			event_llm_str(b, &ch->reasoning);
		}
		jsonw_lit(b, "}");
		event_add(c, "llm_thinking", c->end_ms, false);
	}
}

static void
event_error_content(struct event_call *c)
{
	const struct record *r = c->r;
	const struct llm_error *e = c->res ? &c->res->error : NULL;
	const char *kind = r->error_kind;
	struct buf *b = &c->content;

	jsonw_lit(b, "{\"message\":");
	if (e != NULL && e->present && e->message.len > 0)
		event_llm_str(b, &e->message);
	else if (event_error_text(b, c))
		;
	else if (r->upstream_status > 0) {
		jsonw_lit(b, "\"upstream answered HTTP ");
		jsonw_int(b, r->upstream_status);
		jsonw_lit(b, "\"");
	} else
		jsonw_lit(b, "\"no answer from upstream\"");
	if (e != NULL && e->present) {
		event_opt_llm(b, "type", &e->type);
		event_opt_llm(b, "code", &e->code);
	}
	if (r->upstream_status > 0)
		event_opt_int(b, "upstreamStatus", r->upstream_status);
	if (kind == NULL)
		kind = r->upstream_status >= 400 ? "upstream_status" :
		    e != NULL && e->present ? "upstream_error" : "transport";
	event_cstr_or_null(b, "kind", kind);
	jsonw_lit(b, "}");
}

static void
event_embedding_content(struct event_call *c)
{
	const struct llm_result *res = c->res;
	struct buf *b = &c->content;

	jsonw_lit(b, "{");
	event_opt_int(b, "vectorCount", res != NULL ?
	    (int64_t)res->embeddings : 0);
	if (res != NULL && res->dimensions > 0)
		event_opt_int(b, "dimensions", (int64_t)res->dimensions);
	jsonw_lit(b, "}");
}

static void
event_answer(struct event_call *c)
{
	if (!c->has_content && c->failed) {
		event_error_content(c);
		event_add(c, "error", c->end_ms, true);
		return;
	}
	if (c->dialect == EVENT_DIALECT_EMBEDDINGS) {
		event_embedding_content(c);
		event_add(c, "embedding_response", c->end_ms, true);
	} else {
		event_thinking(c);
		event_response_content(c);
		event_add(c, "llm_response", c->end_ms, true);
	}
	/* cut short after content arrived: what arrived, then the error */
	if (c->failed) {
		event_error_content(c);
		event_add(c, "error", c->end_ms, false);
	}
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
event_dialect_of(const struct record *r, const char *body, size_t n)
{
	size_t i, vb, ve;

	for (i = 0; r->endpoint != NULL &&
	    i < sizeof(event_endpoints) / sizeof(event_endpoints[0]); i++)
		if (strcmp(r->endpoint, event_endpoints[i].name) == 0)
			return event_endpoints[i].dialect;
	/* unknown: guess from the body and the provider */
	if (body != NULL && jsonscan_member(body, n, "input", &vb, &ve) == 0 &&
	    jsonscan_member(body, n, "messages", &vb, &ve) != 0)
		return EVENT_DIALECT_RESPONSES;
	if (r->provider_type != NULL &&
	    strcmp(r->provider_type, "anthropic") == 0)
		return EVENT_DIALECT_ANTHROPIC;
	return EVENT_DIALECT_CHAT;
}

/*
 * The request body when it is a JSON object: the request path validated it
 * with jsonscan before forwarding (server.c) but a record can also come
 * from a request refused for its body, so it is checked again here (one
 * pass, no allocation).  What RFC 8259 allows is recorded, including what
 * some parsers refuse (\u0000, an unpaired surrogate escape, an integer
 * outside 64 bits): values kept whole are copied as the client sent them,
 * decoded texts are re-encoded (jsonw_str: a NUL as \u0000, bytes that are
 * not UTF-8 as '?').
 */
static const char *
event_body(const struct record *r)
{
	const char *s = r->request_body;
	size_t n = r->request_len, i = 0, at;
	const char *err;

	if (s == NULL || n == 0)
		return NULL;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' ||
	    s[i] == '\r'))
		i++;
	if (i == n || s[i] != '{')
		return NULL;
	if (jsonscan_validate(s, n, &at, &err) != 0)
		return NULL;
	return s;
}

int
event_build(const struct record *r, int64_t now_ms, struct buf *out)
{
	struct event_call c = { 0 };
	const char *body = event_body(r), *type;

	c.r = r;
	c.res = r->result;
	c.out = out;
	c.dialect = event_dialect_of(r, body, r->request_len);
	if (c.dialect == EVENT_DIALECT_MODELS)
		return 0;
	c.capture = r->capture_content;
	c.has_content = event_has_content(c.res);
	c.failed = event_failed(r, c.res);
	c.now_ms = now_ms;
	c.start_ms = r->start_unix_ms > 0 ? r->start_unix_ms : now_ms;
	c.end_ms = c.start_ms + event_round_ms(r->total_ms);
	event_iso8601(now_ms, c.enqueued);
	event_metadata(&c);

	type = event_request(c.dialect, body, body != NULL ? r->request_len : 0,
	    c.capture, &c.content);
	event_add(&c, type, c.start_ms, false);
	event_answer(&c);
	buf_free(&c.metadata);
	buf_free(&c.content);
	return c.nevents;
}
