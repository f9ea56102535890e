/*
 * identify.c - which trace a request belongs to, and whether its answer is
 * marked (server threads, once the request body has been read).
 *
 * Sources, in order: X-Trace-ID, X-Thread-ID, W3C traceparent; an
 * invisible signature in the history; a _whyops_trace_id in earlier tool
 * calls (both found by tracescan.c, which also yields the cleaned body);
 * tool call ids and previous_response_id the proxy saw in earlier answers
 * (trace.c's id maps); else the UUIDv7 drawn when the request arrived.
 * Plain requests (no history that could carry a mark) never reach the
 * JSON parse: a few substring checks rule them out.
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "identify.h"
#include "jsonscan.h"
#include "signature.h"
#include "trace.h"
#include "tracescan.h"

static const char *
identify_header(struct request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/*
 * The trace id every answer carries, errors included: a valid trace header,
 * else a new UUIDv7.  server_trace() refines it once the body is read.
 */
void
identify_early(struct request *rq)
{
	const char *v;

	if (((v = identify_header(rq, "X-Trace-ID")) != NULL ||
	    (v = identify_header(rq, "X-Thread-ID")) != NULL) &&
	    trace_id_valid(v, strlen(v))) {
		snprintf(rq->trace_id, sizeof(rq->trace_id), "%s", v);
		rq->trace_source = TRACE_SRC_HEADER;
		return;
	}
	if ((v = identify_header(rq, "traceparent")) != NULL &&
	    trace_from_traceparent(v, rq->trace_id) == 0) {
		rq->trace_source = TRACE_SRC_HEADER;
		return;
	}
	trace_new_uuid7(rq->start_unix_ms, rq->trace_id);
	rq->trace_source = TRACE_SRC_GENERATED;
}

/* Could the body carry a mark or tool history?  Cheap substring checks
 * that keep plain requests away from the JSON parse below: one memchr
 * pass per anchor byte instead of one memmem pass per needle.
 *
 *   U+200B..U+200E raw (E2 80 8B..8E) or escaped (\u200b..\u200e); other
 *   characters of that block (quotes, dashes) do not count;
 *   the names below, each found by its first '_' (every one has one). */
bool
identify_may_have_history(const char *b, size_t n)
{
	static const struct {
		const char *s;
		size_t len, before;	/* bytes before its first '_' */
	} names[] = {
		{ "_whyops_trace_id", 16, 0 }, { "call_id", 7, 4 },
		{ "tool_use", 8, 4 }, { "tool_calls", 10, 4 },
		{ "previous_response_id", 20, 8 },
	};
	const char *end = b + n, *p;
	size_t i;

	if (b == NULL)
		return false;
	for (p = b; (p = memchr(p, 0xe2, (size_t)(end - p))) != NULL; p++) {
		if (end - p > 2 && (unsigned char)p[1] == 0x80 &&
		    (unsigned char)p[2] >= 0x8b && (unsigned char)p[2] <= 0x8e)
			return true;
	}
	for (p = b; (p = memchr(p, '\\', (size_t)(end - p))) != NULL; p++) {
		if (end - p > 5 && memcmp(p + 1, "u200", 4) == 0 &&
		    memchr("bcdeBCDE", p[5], 8) != NULL)
			return true;
	}
	for (p = b; (p = memchr(p, '_', (size_t)(end - p))) != NULL; p++) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			size_t at = (size_t)(p - b);

			if (at >= names[i].before && n - (at -
			    names[i].before) >= names[i].len && memcmp(p -
			    names[i].before, names[i].s, names[i].len) == 0)
				return true;
		}
	}
	return false;
}

/* Is the answer machine-parsed JSON (response_format / text.format)? */
static bool
identify_json_mode(const struct request *rq)
{
	const char *b = rq->body.data;
	size_t n = rq->body.len, ob, oe, fb, fe, tb, te;

	if (b == NULL)
		return false;
	if (rq->route->ep == EP_CHAT) {
		if (jsonscan_member(b, n, "response_format", &ob, &oe) != 0)
			return false;
	} else if (rq->route->ep == EP_RESPONSES) {
		if (jsonscan_member(b, n, "text", &tb, &te) != 0 ||
		    jsonscan_member(b + tb, te - tb, "format", &fb, &fe) != 0)
			return false;
		ob = tb + fb, oe = tb + fe;
	} else {
		return false;
	}
	if (jsonscan_member(b + ob, oe - ob, "type", &tb, &te) != 0)
		return false;
	return (te - tb == 13 && memcmp(b + ob + tb, "\"json_object\"", 13) == 0) ||
	    (te - tb == 13 && memcmp(b + ob + tb, "\"json_schema\"", 13) == 0);
}

/*
 * Trace identity (trace.h): headers, then the history (signature, tagged
 * tool arguments, then ids the proxy has seen), else the generated id.
 * Also removes every mark from the body so the upstream sees what the
 * agent would have sent without the proxy.  Returns -1 with a message for
 * a 400 when a trace header is malformed.
 */
int
identify_request(struct request *rq, char *msg, size_t msglen)
{
	const struct route *r = rq->route;
	const char *v, *which = NULL;
	char tp[33];
	bool from_header = false;

	if ((v = identify_header(rq, "X-Trace-ID")) != NULL)
		which = "X-Trace-ID";
	else if ((v = identify_header(rq, "X-Thread-ID")) != NULL)
		which = "X-Thread-ID";
	if (which != NULL) {
		if (!trace_id_valid(v, strlen(v))) {
			snprintf(msg, msglen, "%s must be 1-128 characters of "
			    "A-Z a-z 0-9 . _ : -", which);
			return -1;
		}
		from_header = true;
	} else if ((v = identify_header(rq, "traceparent")) != NULL) {
		if (trace_from_traceparent(v, tp) != 0) {
			snprintf(msg, msglen, "traceparent is not a valid W3C trace "
			    "context header");
			return -1;
		}
		snprintf(rq->trace_id, sizeof(rq->trace_id), "%s", tp);
		rq->trace_source = TRACE_SRC_HEADER;
		from_header = true;
	}
	if (r->ep != EP_CHAT && r->ep != EP_RESPONSES && r->ep != EP_MESSAGES)
		return 0;
	if (!identify_may_have_history(rq->body.data, rq->body.len))
		return 0;

	struct tracescan_result ts = { 0 };
	enum tracescan_dialect d = r->ep == EP_CHAT ? TRACESCAN_CHAT :
	    r->ep == EP_RESPONSES ? TRACESCAN_RESPONSES : TRACESCAN_ANTHROPIC;
	if (tracescan_run(d, rq->body.data, rq->body.len, &ts) == 0) {
		bool found = from_header;
		if (!found && ts.source != TRACESCAN_NONE) {
			snprintf(rq->trace_id, sizeof(rq->trace_id), "%s", ts.trace_id);
			rq->trace_source = ts.source == TRACESCAN_SIGNATURE ?
			    TRACE_SRC_SIGNATURE : TRACE_SRC_TOOL_ARGS;
			found = true;
		}
		for (size_t i = 0; !found && i < ts.ncall_ids; i++) {
			if (trace_map_get(ts.call_ids[i], rq->trace_id)) {
				rq->trace_source = TRACE_SRC_CALL_ID;
				found = true;
			}
		}
		if (!found && ts.previous_response_id != NULL &&
		    trace_map_get(ts.previous_response_id, rq->trace_id))
			rq->trace_source = TRACE_SRC_PREVIOUS_RESPONSE;
		if (ts.clean_body != NULL) {
			buf_free(&rq->body);
			rq->body = (struct buf){ .data = ts.clean_body,
			    .len = ts.clean_len, .cap = ts.clean_len + 1 };
			ts.clean_body = NULL;
		}
	}
	tracescan_result_free(&ts);
	return 0;
}

/* Whether and how the answer gets the invisible signature. */
void
identify_sign(struct request *rq)
{
	const char *v = identify_header(rq, "X-WhyOps-Signature");
	enum endpoint ep = rq->route->ep;

	if (!rq->cfg->trace_signature || (v != NULL && strcasecmp(v, "off") == 0) ||
	    (ep != EP_CHAT && ep != EP_RESPONSES && ep != EP_MESSAGES) ||
	    identify_json_mode(rq))
		return;
	rq->sign = true;
	rq->sig = malloc(signature_encoded_len(strlen(rq->trace_id)));
	if (rq->sig == NULL)
		abort();
	rq->sig_len = signature_encode(rq->trace_id, strlen(rq->trace_id), rq->sig);
}

