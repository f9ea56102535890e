/*
 * trace.h - which trace a call belongs to.
 *
 * Sources, in order (trace.c): request headers; an invisible signature in
 * the conversation history; a _whyops_trace_id in earlier tool calls; a tool
 * call id or Responses previous_response_id the proxy saw in an earlier
 * answer (the id maps below); otherwise a new UUIDv7.
 */
#ifndef WHYOPS_TRACE_H
#define WHYOPS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_ID_MAX 128

enum trace_source {
	TRACE_SRC_GENERATED,
	TRACE_SRC_HEADER,
	TRACE_SRC_SIGNATURE,
	TRACE_SRC_TOOL_ARGS,
	TRACE_SRC_CALL_ID,
	TRACE_SRC_PREVIOUS_RESPONSE,
	TRACE_SRC_COUNT,
};

extern const char *const trace_source_names[];

/* 1-128 characters of [A-Za-z0-9._:-]. */
bool trace_id_valid(const char *s, size_t len);

/*
 * The trace id of a W3C traceparent header ("00-<32 hex>-<16 hex>-<2 hex>"),
 * copied to out (33 bytes).  Returns 0, or -1 when the header is malformed
 * or its trace id is all zeros.
 */
int trace_from_traceparent(const char *v, char *out);

/* A new UUIDv7 (RFC 9562) into out (37 bytes). */
void trace_new_uuid7(int64_t unix_ms, char *out);

/* The 16 bytes b as UUID text (8-4-4-4-12 lowercase hex) into out[0..36),
 * not terminated. */
void trace_uuid_text(const uint8_t b[16], char *out);

/* n bytes as 2n lowercase hex digits into out, not terminated. */
void trace_hex_text(const uint8_t *b, size_t n, char *out);

/*
 * The id maps: tool call ids and Responses ids seen in answers, mapped to
 * their trace, bounded in number and with expiry.  Any thread.
 */
int trace_map_init(size_t max_entries, unsigned ttl_ms);
void trace_map_free(void);
void trace_map_put(const char *key, size_t klen, const char *trace);
/* Copies the trace of key into out (TRACE_ID_MAX + 1 bytes); true if found. */
bool trace_map_get(const char *key, char *out);
size_t trace_map_size(void);

#endif
