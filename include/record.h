/*
 * record.h - everything known about one finished call, handed to telemetry.
 *
 * The request path fills a struct record while the call runs and, when the
 * call is over, pushes it into the event ring (ring.h).  From then on the
 * dispatcher thread owns it: it turns the record into events (event.h),
 * gives them to the sink, and frees the record with record_free().
 *
 * The request thread does as little as possible: the request body is kept
 * as raw bytes and only parsed (for parameters, system prompt and messages)
 * by the dispatcher thread; the response is the decoder's llm_result.
 * All strings are owned by the record (NULL when unknown).
 */
#ifndef WHYOPS_RECORD_H
#define WHYOPS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm.h"

struct record {
	/* identity */
	char *request_id;
	char *trace_id;			/* generated per request until trace identity */
	char *trace_source;		/* "generated", "header", ... */
	char *span_id;			/* 16 hex characters */
	char *key_name;
	char *project;
	char *environment;
	char *agent_name;		/* X-Agent-Name, else the key's agent, else "default" */
	char *external_user_id;		/* X-External-User-Id */

	/* what was called */
	char *endpoint;			/* "chat.completions", "responses", "embeddings",
					 * "models", "messages" */
	char *provider;			/* provider section name (the slug) */
	char *provider_type;		/* "openai" | "anthropic" */
	char *requested_model;		/* as the client wrote it */
	char *upstream_model;		/* as sent upstream (slug removed) */
	bool stream;			/* the client asked for a stream */
	bool usage_forced;		/* the proxy set stream_options.include_usage */

	/* the request body as forwarded upstream: the client's, less the
	 * invisible marks in its history, with a slug-routed model rewritten
	 * and stream_options.include_usage possibly added (upreq.c) */
	char *request_body;
	size_t request_len;

	/* the answer, rebuilt by the decoder (NULL when there was none) */
	struct llm_result *result;
	/* a document answer (JSON) not decoded yet: the dispatcher decodes it
	 * (record_decode) so that the request path pays nothing for it */
	char *response_body;
	size_t response_len;
	int decode_kind;		/* enum decode_kind of response_body */
	long upstream_status;		/* 0 when no HTTP answer */
	unsigned client_status;

	/* timings */
	int64_t start_unix_ms;		/* wall clock at the first byte of the request */
	double ttfb_ms;			/* start -> upstream response headers, -1 unknown */
	double ttft_ms;			/* start -> first content token, -1 unknown */
	double total_ms;		/* start -> last byte to the client */
	double upstream_ms;		/* hand-over -> upstream transfer end */
	double overhead_ms;		/* total - upstream: the proxy's own time */

	/* outcome */
	bool client_aborted;
	char *error;			/* transport/proxy error text, or NULL */
	char *error_kind;		/* upstream_error_names[], or NULL */

	bool capture_content;		/* false: capture = metadata */
};

struct record *record_new(void);
/* Dispatcher thread: turns response_body into result (then frees it). */
void record_decode(struct record *r);
/* Frees the record and everything it owns, including the result. */
void record_free(struct record *r);

#endif
