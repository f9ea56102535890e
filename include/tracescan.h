/*
 * tracescan.h - the trace identity of a request, read from its body, and
 * the body cleaned of the proxy's own marks.
 *
 * An agent's calls are stateless; the proxy ties them into one trace with
 * marks that come back in the conversation history:
 *
 *   TRACESCAN_SIGNATURE   an invisible signature (signature.h) in an
 *                         assistant turn, the newest turn that has one
 *   TRACESCAN_TOOL_ARGS   a "_whyops_trace_id" member in the arguments of
 *                         an earlier tool call, the newest one that has one
 *
 * and, for the caller to look up in its own maps when neither is there,
 * the tool call ids of the history (newest first, without duplicates) and
 * the Responses "previous_response_id".
 *
 * The same run produces the body to send upstream: every U+200B..U+200E
 * (raw or \u-escaped) removed from every string of the body, and every
 * "_whyops_trace_id" member removed from tool call arguments.  Only what
 * is removed changes: the zero-width characters are cut out of the original
 * bytes, an Anthropic tool_use "input" object loses just the member's bytes
 * (and one comma), and an arguments string is re-encoded with the member
 * cut out of its decoded text the same way.  A body with nothing to remove
 * is reported as unchanged, so the caller can forward the original bytes.
 *
 * Threads: any; nothing is shared.
 */
#ifndef WHYOPS_TRACESCAN_H
#define WHYOPS_TRACESCAN_H

#include <stddef.h>

#include "signature.h"

enum tracescan_dialect {
	TRACESCAN_CHAT,		/* OpenAI chat completions: "messages" */
	TRACESCAN_RESPONSES,	/* OpenAI Responses: "input" */
	TRACESCAN_ANTHROPIC,	/* Anthropic messages: "messages" */
};

enum tracescan_source {
	TRACESCAN_NONE,
	TRACESCAN_SIGNATURE,
	TRACESCAN_TOOL_ARGS,
};

/* "none", "signature", "tool_args": for logs and metrics. */
extern const char *const tracescan_source_names[];

/* The tool call member that carries a trace id. */
#define TRACESCAN_ARG_KEY "_whyops_trace_id"

struct tracescan_result {
	enum tracescan_source source;
	char trace_id[SIGNATURE_ID_MAX + 1];	/* "" when source is NONE */
	char **call_ids;		/* newest first, no duplicates */
	size_t ncall_ids;
	char *previous_response_id;	/* Responses only; NULL if absent */
	char *clean_body;		/* NUL-terminated; NULL: unchanged */
	size_t clean_len;		/* 0 when clean_body is NULL */
};

/*
 * Scans body[0..len), a JSON text already validated, as a request of
 * dialect d.  Returns 0 with *out filled, or -1 when the body is not a
 * JSON object (*out is then empty).  In both cases *out belongs to the
 * caller, who releases it with tracescan_result_free().  Aborts on
 * allocation failure (the body's size is bounded by max_body_size).
 */
int tracescan_run(enum tracescan_dialect d, const char *body, size_t len,
    struct tracescan_result *out);

/* Frees what r holds and empties it; r itself is the caller's. */
void tracescan_result_free(struct tracescan_result *r);

#endif
