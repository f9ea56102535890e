/*
 * upreq.h - the request the proxy sends upstream: URL, headers, body edits.
 */
#ifndef WHYOPS_UPREQ_H
#define WHYOPS_UPREQ_H

#include "config.h"
#include "request.h"

/* Builds cfg's per-provider header lists (they belong to that configuration
 * generation and are freed with it); main thread, before cfg serves. */
int upreq_init(struct config *cfg);
void upreq_free(void);

/*
 * Fills rq->upstream_url and rq->upstream_headers from the resolved
 * provider, the route, the query string and the client's headers.  The
 * header list is rq's own nodes followed by the provider's shared, read-only
 * tail: it is never freed with curl_slist_free_all().  Server thread.
 */
void upreq_build(struct request *rq, const char *query);

/* Replaces the body's top-level "model" value with model, leaving every
 * other byte as the client sent it. */
void upreq_rewrite_model(struct request *rq, const char *model);

/*
 * Chat streams carry no usage unless asked: makes the body ask
 * (stream_options.include_usage = true) with a minimal edit.  Returns true
 * when the proxy changed the request, false when the client had asked
 * itself (or the body cannot be edited).
 */
bool upreq_force_usage(struct request *rq);

#endif
