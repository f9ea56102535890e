/*
 * route.h - the endpoints the proxy serves and provider resolution.
 *
 * route_match() maps a request path (with or without the /v1 prefix) to a
 * route; route_resolve() picks the provider that serves a model for a key's
 * environment.  Both are pure functions of their arguments.
 */
#ifndef WHYOPS_ROUTE_H
#define WHYOPS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "apierr.h"
#include "config.h"

enum endpoint {
	EP_CHAT,
	EP_RESPONSES,
	EP_EMBEDDINGS,
	EP_MODELS,
	EP_MESSAGES,
	EP_HEALTHZ,
	EP_READYZ,
	EP_METRICS,
	EP_COUNT,
};

extern const char *const endpoint_names[];

struct route {
	enum endpoint ep;
	const char *path;		/* without /v1, e.g. "/chat/completions" */
	const char *method;		/* "GET" or "POST" */
	enum api_dialect dialect;	/* error shape */
	enum provider_type ptype;	/* provider type that can serve it */
	bool upstream;			/* false: answered by the proxy itself,
					 * no key, no /v1 prefix */
	bool needs_model;		/* POST body must carry "model" */
};

enum route_match_result {
	ROUTE_OK,
	ROUTE_NOT_FOUND,		/* 404 */
	ROUTE_BAD_METHOD,		/* 405 */
};

/* path excludes the query string.  *out is set for ROUTE_OK and ROUTE_BAD_METHOD. */
enum route_match_result route_match(const char *method, const char *path,
    const struct route **out);

enum route_resolve_result {
	RESOLVE_OK,
	RESOLVE_FORBIDDEN,		/* 403: slug names a provider outside the environment */
	RESOLVE_WRONG_TYPE,		/* 400: provider type does not serve this route */
	RESOLVE_NO_PROVIDER,		/* 400: environment has no provider for the route */
};

/*
 * Picks the provider for model (may be NULL for GET /models).  On RESOLVE_OK
 * *prov is set and *upstream_model points into model: past "slug/" when the
 * slug named the provider, else model itself.  On failure msg receives a
 * message for the client (no secrets).
 */
enum route_resolve_result route_resolve(const struct config *cfg,
    const struct environment *env, const struct route *r, const char *model,
    const struct provider **prov, const char **upstream_model,
    char *msg, size_t msglen);

#endif
