/*
 * apierr.h - error bodies in the API's own shape.
 *
 * The proxy answers its own errors the way the API the client speaks would:
 *   OpenAI:    {"error":{"message":"...","type":"...","param":null,"code":"..."}}
 *   Anthropic: {"type":"error","error":{"type":"...","message":"..."}}
 * The error type is derived from the HTTP status (a table in apierr.c).
 * Messages are written by the proxy and never contain secrets.
 */
#ifndef WHYOPS_APIERR_H
#define WHYOPS_APIERR_H

#include <stdbool.h>
#include <stddef.h>

enum api_dialect {
	API_OPENAI,
	API_ANTHROPIC,
};

/*
 * Returns a new NUL-terminated JSON body (caller frees) and its length.
 * code is the OpenAI "code" (may be NULL: null); Anthropic has no code.
 */
char *apierr_body(enum api_dialect d, unsigned status, const char *code,
    const char *message, size_t *len);
const char *apierr_type(enum api_dialect d, unsigned status);
/*
 * Makes a message safe in place: every byte that does not belong to a valid
 * UTF-8 sequence becomes '?', and with controls, so does every control
 * character (for a log line).  apierr_body() does the UTF-8 part itself.
 */
void apierr_sanitize(char *s, bool controls);

#endif
