/*
 * route.c - endpoint table and provider resolution (see route.h).
 *
 * Provider resolution, in order:
 *   1. "slug/rest" where slug names a provider of the key's environment:
 *      that provider, and "rest" is sent upstream as the model;
 *      a slug naming a configured provider outside the environment is a 403.
 *   2. the first provider of the environment whose models patterns
 *      (fnmatch) match the whole model name (OpenRouter-style names such as
 *      "meta-llama/llama-3-70b" go through unchanged);
 *   3. the environment's default, its first provider.
 * The chosen provider must be of the type the route speaks (400 otherwise).
 * GET /models goes to the environment's first openai-type provider.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "route.h"

const char *const endpoint_names[] = {
	[EP_CHAT] = "chat.completions",
	[EP_RESPONSES] = "responses",
	[EP_EMBEDDINGS] = "embeddings",
	[EP_MODELS] = "models",
	[EP_MESSAGES] = "messages",
	[EP_HEALTHZ] = "healthz",
	[EP_READYZ] = "readyz",
	[EP_METRICS] = "metrics",
};

static const struct route route_table[] = {
	{ EP_CHAT, "/chat/completions", "POST", API_OPENAI, PROVIDER_OPENAI, true, true },
	{ EP_RESPONSES, "/responses", "POST", API_OPENAI, PROVIDER_OPENAI, true, true },
	{ EP_EMBEDDINGS, "/embeddings", "POST", API_OPENAI, PROVIDER_OPENAI, true, true },
	{ EP_MODELS, "/models", "GET", API_OPENAI, PROVIDER_OPENAI, true, false },
	{ EP_MESSAGES, "/messages", "POST", API_ANTHROPIC, PROVIDER_ANTHROPIC, true, true },
	{ EP_HEALTHZ, "/healthz", "GET", API_OPENAI, PROVIDER_OPENAI, false, false },
	{ EP_READYZ, "/readyz", "GET", API_OPENAI, PROVIDER_OPENAI, false, false },
	{ EP_METRICS, "/metrics", "GET", API_OPENAI, PROVIDER_OPENAI, false, false },
};

enum route_match_result
route_match(const char *method, const char *path, const struct route **out)
{
	const char *p = path;

	if (strncmp(p, "/v1/", 4) == 0)
		p += 3;
	for (size_t i = 0; i < sizeof(route_table) / sizeof(route_table[0]); i++) {
		const struct route *r = &route_table[i];

		if (strcmp(p, r->path) != 0)
			continue;
		/* The proxy's own endpoints (/healthz, /readyz, /metrics)
		 * are only served without the /v1 prefix. */
		if (!r->upstream && p != path)
			return ROUTE_NOT_FOUND;
		*out = r;
		if (strcmp(method, r->method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
			return ROUTE_OK;
		return ROUTE_BAD_METHOD;
	}
	return ROUTE_NOT_FOUND;
}

static const struct provider *
route_env_provider(const struct environment *env, const char *name, size_t len)
{
	for (size_t i = 0; i < env->nproviders; i++) {
		const struct provider *p = env->providers[i];

		if (strlen(p->name) == len && memcmp(p->name, name, len) == 0)
			return p;
	}
	return NULL;
}

static bool
route_cfg_has_provider(const struct config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->nproviders; i++) {
		if (strlen(cfg->providers[i].name) == len &&
		    memcmp(cfg->providers[i].name, name, len) == 0)
			return true;
	}
	return false;
}

static const struct provider *
route_by_pattern(const struct environment *env, const char *model)
{
	for (size_t i = 0; i < env->nproviders; i++) {
		const struct provider *p = env->providers[i];

		for (size_t j = 0; j < p->nmodels; j++) {
			if (fnmatch(p->models[j], model, 0) == 0)
				return p;
		}
	}
	return NULL;
}

enum route_resolve_result
route_resolve(const struct config *cfg, const struct environment *env,
    const struct route *r, const char *model, const struct provider **prov,
    const char **upstream_model, char *msg, size_t msglen)
{
	const struct provider *p = NULL;
	const char *slash;

	*upstream_model = model;
	if (model == NULL) {
		for (size_t i = 0; i < env->nproviders && p == NULL; i++) {
			if (env->providers[i]->type == r->ptype)
				p = env->providers[i];
		}
		if (p == NULL) {
			snprintf(msg, msglen, "environment '%s' has no %s-type provider",
			    env->name, provider_type_names[r->ptype]);
			return RESOLVE_NO_PROVIDER;
		}
		*prov = p;
		return RESOLVE_OK;
	}
	if ((slash = strchr(model, '/')) != NULL && slash > model) {
		size_t len = (size_t)(slash - model);

		p = route_env_provider(env, model, len);
		if (p != NULL) {
			*upstream_model = slash + 1;
		} else if (route_cfg_has_provider(cfg, model, len)) {
			snprintf(msg, msglen, "provider '%.*s' is not available in "
			    "environment '%s'", (int)len, model, env->name);
			return RESOLVE_FORBIDDEN;
		}
	}
	if (p == NULL)
		p = route_by_pattern(env, model);
	if (p == NULL && env->nproviders > 0)
		p = env->providers[0];
	if (p == NULL) {
		snprintf(msg, msglen, "environment '%s' has no providers", env->name);
		return RESOLVE_NO_PROVIDER;
	}
	if (p->type != r->ptype) {
		snprintf(msg, msglen, "model '%s' resolves to provider '%s' of type "
		    "%s, which does not serve the %s endpoint", model, p->name,
		    provider_type_names[p->type], endpoint_names[r->ep]);
		return RESOLVE_WRONG_TYPE;
	}
	*prov = p;
	return RESOLVE_OK;
}
