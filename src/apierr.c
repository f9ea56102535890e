/*
 * apierr.c - error bodies in the API's own shape (see apierr.h).
 *
 * Types follow what the providers send for the same status, so SDKs map
 * them to the same exception classes:
 *   https://platform.openai.com/docs/guides/error-codes
 *   https://docs.anthropic.com/en/api/errors
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "apierr.h"
#include "jsonscan.h"

struct apierr_type_row {
	unsigned status;
	const char *openai;
	const char *anthropic;
};

static const struct apierr_type_row apierr_types[] = {
	{ 400, "invalid_request_error", "invalid_request_error" },
	{ 401, "invalid_request_error", "authentication_error" },
	{ 403, "permission_error", "permission_error" },
	{ 404, "invalid_request_error", "not_found_error" },
	{ 405, "invalid_request_error", "invalid_request_error" },
	{ 413, "invalid_request_error", "request_too_large" },
	{ 429, "rate_limit_error", "rate_limit_error" },
	{ 431, "invalid_request_error", "invalid_request_error" },
	{ 502, "upstream_error", "api_error" },
	{ 503, "server_error", "overloaded_error" },
	{ 504, "timeout_error", "api_error" },
};

const char *
apierr_type(enum api_dialect d, unsigned status)
{
	for (size_t i = 0; i < sizeof(apierr_types) / sizeof(apierr_types[0]); i++) {
		if (apierr_types[i].status == status)
			return d == API_OPENAI ? apierr_types[i].openai :
			    apierr_types[i].anthropic;
	}
	return status >= 500 ? (d == API_OPENAI ? "server_error" : "api_error") :
	    "invalid_request_error";
}

void
apierr_sanitize(char *s, bool controls)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t l = 1;

		if (c >= 0x80) {
			if ((l = jsonscan_utf8_len((const unsigned char *)s + i, n - i)) == 0) {
				s[i] = '?';
				l = 1;
			}
		} else if (controls && (c < 0x20 || c == 0x7f)) {
			s[i] = '?';
		}
		i += l;
	}
}

char *
apierr_body(enum api_dialect d, unsigned status, const char *code,
    const char *message, size_t *len)
{
	const char *type = apierr_type(d, status);
	char *clean = strdup(message);
	json_t *root;
	char *s;

	/* jansson refuses a string that is not UTF-8: a message quoting a
	 * client's path or model (or cut by a caller's buffer in the middle
	 * of a sequence) must not make json_pack fail. */
	if (clean == NULL)
		abort();
	apierr_sanitize(clean, false);
	message = clean;

	if (d == API_OPENAI) {
		root = json_pack("{s:{s:s, s:s, s:n, s:s?}}", "error",
		    "message", message, "type", type, "param", "code", code);
		/* json_pack's s? drops a NULL code; OpenAI sends "code": null. */
		if (root != NULL && code == NULL)
			json_object_set_new(json_object_get(root, "error"), "code",
			    json_null());
	} else {
		root = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error",
		    "type", type, "message", message);
	}
	free(clean);
	if (root == NULL)
		abort();
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (s == NULL)
		abort();
	if (len)
		*len = strlen(s);
	return s;
}
