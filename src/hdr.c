/*
 * hdr.c - header filtering in both directions (see hdr.h).
 *
 * RFC 9110 section 7.6.1: "a proxy or gateway MUST parse a received
 * Connection header field before a message is forwarded and, for each
 * connection-option in this field, remove any header or trailer field(s)
 * from the message with the same name as the connection-option, and then
 * remove the Connection header field itself".  Proxy-Connection, Keep-Alive,
 * TE, Transfer-Encoding and Upgrade are removed as well (the RFC lists them
 * as the usual connection-specific fields).
 */
#include <string.h>
#include <strings.h>

#include "hdr.h"

static bool
hdr_in(const char *name, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (strcasecmp(name, *list) == 0)
			return true;
	}
	return false;
}

static const char *const hdr_client_allow[] = {
	"anthropic-version", "anthropic-beta", "OpenAI-Organization",
	"OpenAI-Project", "OpenAI-Beta", "Idempotency-Key", "Content-Type",
	"Accept", NULL,
};

static const char *const hdr_hop[] = {
	"Connection", "Proxy-Connection", "Keep-Alive", "TE", "Trailer",
	"Transfer-Encoding", "Upgrade", "Proxy-Authenticate",
	"Proxy-Authorization", NULL,
};

/* Written by libmicrohttpd or replaced by the proxy. */
static const char *const hdr_resp_own[] = {
	"Content-Length", "Date", "X-Request-Id", "X-Trace-ID", "X-Thread-ID",
	"X-WhyOps-Overhead-Us", NULL,
};

static const char *const hdr_resp_stream_own[] = {
	"Cache-Control", "X-Accel-Buffering", NULL,
};

bool
hdr_client_passthrough(const char *name)
{
	return hdr_in(name, hdr_client_allow);
}

bool
hdr_hop_by_hop(const char *name)
{
	return hdr_in(name, hdr_hop);
}

bool
hdr_list_has(const char *list, const char *token, size_t toklen)
{
	const char *p = list;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *start = p;
		while (*p != '\0' && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == toklen &&
		    strncasecmp(start, token, toklen) == 0)
			return true;
	}
	return false;
}

bool
hdr_response_passthrough(const char *name, const char *connection,
    bool streaming)
{
	if (hdr_hop_by_hop(name) || hdr_in(name, hdr_resp_own))
		return false;
	if (streaming && hdr_in(name, hdr_resp_stream_own))
		return false;
	if (connection != NULL && hdr_list_has(connection, name, strlen(name)))
		return false;
	return true;
}
