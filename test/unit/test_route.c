/* Unit tests: route matching and provider resolution (route.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

static struct provider provs[4];
static struct provider *env_prod_list[3], *env_stage_list[1];
static struct environment envs[2];
static struct config cfg;
static char *oa_models[] = { "gpt-*", "o1*", "text-embedding-*" };
static char *an_models[] = { "claude-*" };
static char *lo_models[] = { "llama*" };

static void
setup(void)
{
	memset(provs, 0, sizeof(provs));
	provs[0] = (struct provider){ .name = "openai", .type = PROVIDER_OPENAI,
	    .models = oa_models, .nmodels = 3 };
	provs[1] = (struct provider){ .name = "anthropic", .type = PROVIDER_ANTHROPIC,
	    .models = an_models, .nmodels = 1 };
	provs[2] = (struct provider){ .name = "local", .type = PROVIDER_OPENAI,
	    .models = lo_models, .nmodels = 1 };
	provs[3] = (struct provider){ .name = "other", .type = PROVIDER_OPENAI };
	env_prod_list[0] = &provs[0];
	env_prod_list[1] = &provs[1];
	env_prod_list[2] = &provs[2];
	env_stage_list[0] = &provs[1];
	envs[0] = (struct environment){ .name = "production", .providers = env_prod_list, .nproviders = 3 };
	envs[1] = (struct environment){ .name = "staging", .providers = env_stage_list, .nproviders = 1 };
	cfg = (struct config){ .providers = provs, .nproviders = 4, .environments = envs, .nenvironments = 2 };
}

static const struct route *
must_match(const char *method, const char *path)
{
	const struct route *r = NULL;

	ck_assert_int_eq(route_match(method, path, &r), ROUTE_OK);
	ck_assert_ptr_nonnull(r);
	return r;
}

START_TEST(match_all_routes)
{
	ck_assert_int_eq(must_match("POST", "/v1/chat/completions")->ep, EP_CHAT);
	ck_assert_int_eq(must_match("POST", "/chat/completions")->ep, EP_CHAT);
	ck_assert_int_eq(must_match("POST", "/v1/responses")->ep, EP_RESPONSES);
	ck_assert_int_eq(must_match("POST", "/responses")->ep, EP_RESPONSES);
	ck_assert_int_eq(must_match("POST", "/v1/embeddings")->ep, EP_EMBEDDINGS);
	ck_assert_int_eq(must_match("GET", "/v1/models")->ep, EP_MODELS);
	ck_assert_int_eq(must_match("GET", "/models")->ep, EP_MODELS);
	ck_assert_int_eq(must_match("POST", "/v1/messages")->ep, EP_MESSAGES);
	ck_assert_int_eq(must_match("POST", "/messages")->ep, EP_MESSAGES);
	ck_assert_int_eq(must_match("GET", "/healthz")->ep, EP_HEALTHZ);
	ck_assert_int_eq(must_match("GET", "/readyz")->ep, EP_READYZ);
	ck_assert_int_eq(must_match("GET", "/metrics")->ep, EP_METRICS);
	ck_assert_int_eq(must_match("HEAD", "/metrics")->ep, EP_METRICS);
	ck_assert(!must_match("GET", "/metrics")->upstream);
	ck_assert_str_eq(endpoint_names[EP_READYZ], "readyz");
	ck_assert_str_eq(endpoint_names[EP_METRICS], "metrics");
	ck_assert_int_eq(must_match("POST", "/v1/messages")->dialect, API_ANTHROPIC);
	ck_assert_int_eq(must_match("POST", "/v1/chat/completions")->dialect, API_OPENAI);
}
END_TEST

START_TEST(match_errors)
{
	const struct route *r = NULL;

	ck_assert_int_eq(route_match("GET", "/v1/chat/completions", &r), ROUTE_BAD_METHOD);
	ck_assert_int_eq(route_match("DELETE", "/v1/models", &r), ROUTE_BAD_METHOD);
	ck_assert_int_eq(route_match("POST", "/v1/nothing", &r), ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match("POST", "/v1/chat/completions/", &r), ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match("POST", "/v2/chat/completions", &r), ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match("GET", "/v1/healthz", &r), ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match("GET", "/v1/readyz", &r), ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match("GET", "/v1/metrics", &r), ROUTE_NOT_FOUND);
	ck_assert_int_eq(route_match("POST", "/metrics", &r), ROUTE_BAD_METHOD);
	ck_assert_int_eq(route_match("POST", "/v1/v1/chat/completions", &r), ROUTE_NOT_FOUND);
}
END_TEST

static enum route_resolve_result
resolve(int env, const char *path, const char *model, const char **pname,
    const char **um, char *msg)
{
	const struct route *r = NULL;
	const struct provider *p = NULL;

	route_match(strcmp(path, "/models") == 0 ? "GET" : "POST", path, &r);
	enum route_resolve_result rr = route_resolve(&cfg, &envs[env], r, model, &p, um, msg, 256);
	*pname = p ? p->name : NULL;
	return rr;
}

START_TEST(resolve_slug)
{
	const char *pn, *um;
	char msg[256];

	ck_assert_int_eq(resolve(0, "/chat/completions", "openai/gpt-4o", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "openai");
	ck_assert_str_eq(um, "gpt-4o");
	ck_assert_int_eq(resolve(0, "/chat/completions", "local/anything/x", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "local");
	ck_assert_str_eq(um, "anything/x");
	ck_assert_int_eq(resolve(0, "/messages", "anthropic/claude-x", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "anthropic");
	ck_assert_str_eq(um, "claude-x");
}
END_TEST

START_TEST(resolve_patterns_and_default)
{
	const char *pn, *um;
	char msg[256];

	ck_assert_int_eq(resolve(0, "/chat/completions", "gpt-4o-mini", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "openai");
	ck_assert_str_eq(um, "gpt-4o-mini");
	ck_assert_int_eq(resolve(0, "/chat/completions", "llama3", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "local");
	ck_assert_int_eq(resolve(0, "/messages", "claude-3-5-sonnet", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "anthropic");
	/* OpenRouter-style: unknown slug, no pattern: whole name, default provider. */
	ck_assert_int_eq(resolve(0, "/chat/completions", "meta-llama/llama-3-70b", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "openai");
	ck_assert_str_eq(um, "meta-llama/llama-3-70b");
	ck_assert_int_eq(resolve(0, "/embeddings", "text-embedding-3-small", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "openai");
	/* A leading slash is not a slug. */
	ck_assert_int_eq(resolve(0, "/chat/completions", "/gpt", &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(um, "/gpt");
}
END_TEST

START_TEST(resolve_errors)
{
	const char *pn, *um;
	char msg[256];

	ck_assert_int_eq(resolve(0, "/chat/completions", "other/gpt-4o", &pn, &um, msg), RESOLVE_FORBIDDEN);
	ck_assert_str_eq(msg, "provider 'other' is not available in environment 'production'");
	ck_assert_int_eq(resolve(0, "/chat/completions", "claude-3-opus", &pn, &um, msg), RESOLVE_WRONG_TYPE);
	ck_assert_str_eq(msg, "model 'claude-3-opus' resolves to provider 'anthropic' of type "
	    "anthropic, which does not serve the chat.completions endpoint");
	ck_assert_int_eq(resolve(0, "/messages", "gpt-4o", &pn, &um, msg), RESOLVE_WRONG_TYPE);
	ck_assert_int_eq(resolve(0, "/messages", "unknown-model", &pn, &um, msg), RESOLVE_WRONG_TYPE);
	ck_assert_int_eq(resolve(1, "/chat/completions", "openai/gpt-4o", &pn, &um, msg), RESOLVE_FORBIDDEN);
	ck_assert_int_eq(resolve(1, "/models", NULL, &pn, &um, msg), RESOLVE_NO_PROVIDER);
	ck_assert_str_eq(msg, "environment 'staging' has no openai-type provider");
}
END_TEST

START_TEST(resolve_models_route)
{
	const char *pn, *um;
	char msg[256];

	ck_assert_int_eq(resolve(0, "/models", NULL, &pn, &um, msg), RESOLVE_OK);
	ck_assert_str_eq(pn, "openai");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("route");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, match_all_routes);
	tcase_add_test(tc, match_errors);
	tcase_add_test(tc, resolve_slug);
	tcase_add_test(tc, resolve_patterns_and_default);
	tcase_add_test(tc, resolve_errors);
	tcase_add_test(tc, resolve_models_route);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
