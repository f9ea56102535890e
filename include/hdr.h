/*
 * hdr.h - which headers cross the proxy, in each direction.
 *
 * Requests: only the client's API headers go upstream (an allowlist); the
 * client's credentials never do.  Responses: everything but hop-by-hop
 * headers (RFC 9110 section 7.6.1, plus the headers a Connection header
 * names) and the framing headers libmicrohttpd writes itself.
 */
#ifndef WHYOPS_HDR_H
#define WHYOPS_HDR_H

#include <stdbool.h>
#include <stddef.h>

/* True when a client request header is passed upstream. */
bool hdr_client_passthrough(const char *name);

/* True for the hop-by-hop headers of RFC 9110 section 7.6.1. */
bool hdr_hop_by_hop(const char *name);

/*
 * True when the upstream response header name is passed to the client.
 * connection is the upstream's Connection header value (or NULL): any
 * header it names is hop-by-hop too.  streaming responses get the proxy's
 * own Cache-Control and X-Accel-Buffering instead of the upstream's.
 */
bool hdr_response_passthrough(const char *name, const char *connection,
    bool streaming);

/* Case-insensitive: does the comma-separated token list contain token? */
bool hdr_list_has(const char *list, const char *token, size_t toklen);

#endif
