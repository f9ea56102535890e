/* Unit tests: counters, histograms, token table, exposition format and the
 * readiness rule (metrics.c). */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "request.h"
#include "route.h"

static struct provider provs[2];
static struct config cfg;

static void
setup(void)
{
	memset(provs, 0, sizeof(provs));
	provs[0] = (struct provider){ .name = "openai", .type = PROVIDER_OPENAI };
	/* A name that needs escaping in a label value. */
	provs[1] = (struct provider){ .name = "we\"ird\\one", .type = PROVIDER_OPENAI };
	cfg = (struct config){ .providers = provs, .nproviders = 2,
	    .events_queue_size = 100 };
	ck_assert_int_eq(metrics_init(&cfg), 0);
}

static void
teardown(void)
{
	metrics_free();
}

/* The whole exposition; the caller frees it. */
static char *
render(void)
{
	struct buf b = { 0 };

	metrics_render(&b);
	return buf_steal(&b, NULL);
}

/* Is line (without its newline) one of text's lines? */
static bool
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	}
	return false;
}

/* The value of the sample whose name and labels are exactly series, or -1. */
static long long
value(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; (p = strstr(p, series)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	}
	return -1;
}

static void
call(int route, unsigned status, int provider, int64_t total_ns,
    int64_t ttfb_ns, int64_t overhead_ns, int error)
{
	struct metrics_call c = { route, status, provider, total_ns, ttfb_ns,
	    overhead_ns, error };

	metrics_call_done(&c);
}

START_TEST(request_counter_labels)
{
	char *t;

	call(EP_CHAT, 200, 0, 1000, -1, -1, 0);
	call(EP_CHAT, 201, 0, 1000, -1, -1, 0);
	call(EP_CHAT, 502, 0, 1000, -1, -1, UPERR_CONNECT);
	call(EP_CHAT, 401, -1, 1000, -1, -1, 0);
	call(EP_MESSAGES, 499, 1, 1000, -1, -1, UPERR_CLIENT_GONE);
	call(-1, 404, -1, 1000, -1, -1, 0);
	call(EP_HEALTHZ, 0, -1, 1000, -1, -1, 0);	/* no status: 5xx */
	call(EP_CHAT, 200, 7, 1000, -1, -1, 0);		/* bad index: none */
	t = render();
	ck_assert_int_eq(value(t, "whyops_requests_total{route=\"chat.completions\","
	    "status_class=\"2xx\",provider=\"openai\"}"), 2);
	ck_assert_int_eq(value(t, "whyops_requests_total{route=\"chat.completions\","
	    "status_class=\"5xx\",provider=\"openai\"}"), 1);
	ck_assert_int_eq(value(t, "whyops_requests_total{route=\"chat.completions\","
	    "status_class=\"4xx\",provider=\"none\"}"), 1);
	ck_assert_int_eq(value(t, "whyops_requests_total{route=\"chat.completions\","
	    "status_class=\"2xx\",provider=\"none\"}"), 1);
	ck_assert_int_eq(value(t, "whyops_requests_total{route=\"messages\","
	    "status_class=\"4xx\",provider=\"we\\\"ird\\\\one\"}"), 1);
	ck_assert_int_eq(value(t, "whyops_requests_total{route=\"unknown\","
	    "status_class=\"4xx\",provider=\"none\"}"), 1);
	ck_assert_int_eq(value(t, "whyops_requests_total{route=\"healthz\","
	    "status_class=\"5xx\",provider=\"none\"}"), 1);
	/* Series that saw nothing are left out. */
	ck_assert_ptr_null(strstr(t, "status_class=\"3xx\""));
	ck_assert_int_eq(value(t, "whyops_upstream_errors_total{reason=\"connect\"}"), 1);
	ck_assert_int_eq(value(t, "whyops_upstream_errors_total{reason=\"client_gone\"}"), 1);
	ck_assert_int_eq(value(t, "whyops_upstream_errors_total{reason=\"tls\"}"), 0);
	ck_assert_ptr_null(strstr(t, "reason=\"none\""));
	free(t);
}
END_TEST

START_TEST(histogram_buckets)
{
	char *t;

	/* le is inclusive: exactly 0.5 ms lands in le="0.0005". */
	call(EP_CHAT, 200, 0, 500000, 500001, 0, 0);
	call(EP_CHAT, 200, 0, 3000000, 250000000, 1, 0);
	call(EP_CHAT, 200, 0, 400000000000LL, -1, -1, 0);	/* 400 s: +Inf */
	t = render();
#define D "whyops_request_duration_seconds"
	ck_assert_int_eq(value(t, D "_bucket{route=\"chat.completions\",le=\"0.0005\"}"), 1);
	ck_assert_int_eq(value(t, D "_bucket{route=\"chat.completions\",le=\"0.001\"}"), 1);
	ck_assert_int_eq(value(t, D "_bucket{route=\"chat.completions\",le=\"0.0025\"}"), 1);
	ck_assert_int_eq(value(t, D "_bucket{route=\"chat.completions\",le=\"0.005\"}"), 2);
	ck_assert_int_eq(value(t, D "_bucket{route=\"chat.completions\",le=\"300\"}"), 2);
	ck_assert_int_eq(value(t, D "_bucket{route=\"chat.completions\",le=\"+Inf\"}"), 3);
	ck_assert_int_eq(value(t, D "_count{route=\"chat.completions\"}"), 3);
	ck_assert(has_line(t, D "_sum{route=\"chat.completions\"} 400.003500000"));
#undef D
#define T "whyops_upstream_ttfb_seconds"
	/* One ns over a bound goes to the next bucket; -1 is not observed. */
	ck_assert_int_eq(value(t, T "_bucket{route=\"chat.completions\",le=\"0.0005\"}"), 0);
	ck_assert_int_eq(value(t, T "_bucket{route=\"chat.completions\",le=\"0.001\"}"), 1);
	ck_assert_int_eq(value(t, T "_bucket{route=\"chat.completions\",le=\"0.1\"}"), 1);
	ck_assert_int_eq(value(t, T "_bucket{route=\"chat.completions\",le=\"0.25\"}"), 2);
	ck_assert_int_eq(value(t, T "_count{route=\"chat.completions\"}"), 2);
	ck_assert(has_line(t, T "_sum{route=\"chat.completions\"} 0.250500001"));
#undef T
	ck_assert_int_eq(value(t, "whyops_proxy_overhead_seconds_bucket{route="
	    "\"chat.completions\",le=\"0.0005\"}"), 2);
	/* Routes with no observations have no series. */
	ck_assert_ptr_null(strstr(t, "_bucket{route=\"messages\""));
	free(t);
}
END_TEST

/*
 * Every sample line is `name{labels} value` or `name value`, each family
 * has one HELP and one TYPE line before its samples, and histogram
 * buckets are cumulative with +Inf equal to _count.
 */
START_TEST(exposition_format)
{
	char *t, *save = NULL, *line;
	char family[128] = "", type[16] = "";
	long long last_bucket = -1;
	int families = 0;
	struct llm_usage u = { 10, 5, 15, 2, LLM_UNSET, 1 };

	for (int i = 0; i < 50; i++)
		call(i % 2 ? EP_CHAT : EP_EMBEDDINGS, 200, 0, i * 7000000LL,
		    i * 1000000LL, i * 1000LL, 0);
	metrics_tokens("openai", "gpt-4o", &u);
	metrics_open_request(1);
	metrics_open_stream(1);
	t = render();
	ck_assert(has_line(t, "# HELP whyops_build_info Always 1; the version is in the label."));
	ck_assert(has_line(t, "whyops_build_info{version=\"" WHYOPS_VERSION "\"} 1"));
	ck_assert(has_line(t, "whyops_open_requests 1"));
	ck_assert(has_line(t, "whyops_open_streams 1"));
	ck_assert(has_line(t, "# TYPE whyops_requests_total counter"));
	ck_assert(has_line(t, "# TYPE whyops_request_duration_seconds histogram"));
	ck_assert(has_line(t, "# TYPE whyops_events_queue_depth gauge"));
	ck_assert(has_line(t, "# TYPE gen_ai_client_token_usage_total counter"));
	ck_assert(has_line(t, "whyops_events_dropped_total{reason=\"queue_full\"} 0"));
	ck_assert(has_line(t, "whyops_events_dropped_total{reason=\"sink\"} 0"));
	ck_assert_int_eq(t[strlen(t) - 1], '\n');
	for (line = strtok_r(t, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		size_t n;

		if (strncmp(line, "# HELP ", 7) == 0) {
			n = strcspn(line + 7, " ");
			ck_assert_uint_lt(n, sizeof(family));
			ck_assert_msg(strncmp(line + 7, family, n) != 0 ||
			    family[n] != '\0', "two HELP lines for %s", family);
			memcpy(family, line + 7, n);
			family[n] = '\0';
			type[0] = '\0';
			families++;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			n = strlen(family);
			ck_assert_msg(strncmp(line + 7, family, n) == 0 &&
			    line[7 + n] == ' ', "TYPE without HELP: %s", line);
			snprintf(type, sizeof(type), "%s", line + 8 + n);
			ck_assert(strcmp(type, "counter") == 0 || strcmp(type,
			    "gauge") == 0 || strcmp(type, "histogram") == 0);
			continue;
		}
		ck_assert_msg(line[0] != '#', "unknown comment %s", line);
		ck_assert_msg(type[0] != '\0', "sample before TYPE: %s", line);
		n = strcspn(line, "{ ");
		memcpy(name, line, n);
		name[n] = '\0';
		if (strcmp(type, "histogram") == 0) {
			size_t fl = strlen(family);
			const char *suffix = name + fl;

			ck_assert_msg(strncmp(name, family, fl) == 0 &&
			    (strcmp(suffix, "_bucket") == 0 || strcmp(suffix,
			    "_sum") == 0 || strcmp(suffix, "_count") == 0),
			    "%s in histogram %s", name, family);
		} else {
			ck_assert_str_eq(name, family);
		}
		if (line[n] == '{') {
			char *close = strstr(line, "} ");
			ck_assert_ptr_nonnull(close);
			n = (size_t)(close - line) + 1;
		}
		ck_assert_int_eq(line[n], ' ');
		char *end;
		double v = strtod(line + n + 1, &end);
		ck_assert_msg(*end == '\0' && v >= 0, "bad value in %s", line);
		if (strstr(line, "_bucket{") != NULL) {
			long long c = strtoll(line + n + 1, NULL, 10);
			if (strstr(line, "le=\"0.0005\"") != NULL)
				last_bucket = -1;
			ck_assert_msg(c >= last_bucket, "not cumulative: %s", line);
			last_bucket = c;
		} else if (strstr(line, "_count{") != NULL) {
			ck_assert_int_eq(strtoll(line + n + 1, NULL, 10), last_bucket);
		}
	}
	ck_assert_int_eq(families, 18);
	free(t);
}
END_TEST

START_TEST(label_escaping)
{
	struct buf b = { 0 };
	struct llm_usage u = { 3, LLM_UNSET, LLM_UNSET, LLM_UNSET, LLM_UNSET,
	    LLM_UNSET };
	char *t;

	metrics_escape_label(&b, "a\"b\\c\nd");
	ck_assert_str_eq(b.data, "a\\\"b\\\\c\\nd");
	buf_reset(&b);
	metrics_escape_label(&b, "plain");
	ck_assert_str_eq(b.data, "plain");
	buf_free(&b);

	/* Keys from the network: escaped; control bytes and broken UTF-8 are
	 * replaced; whole characters are kept. */
	metrics_tokens("openai", "m\"x\\y\nz\x01\xff\xc3\xa9", &u);
	t = render();
	ck_assert(has_line(t, "gen_ai_client_token_usage_total{provider=\"openai\","
	    "model=\"m\\\"x\\\\y\\nz??\xc3\xa9\",type=\"input\"} 3"));
	free(t);
}
END_TEST

START_TEST(tokens_types_and_models)
{
	struct llm_usage u = { 20, 31, 51, 8, 4, 5 };
	struct llm_usage unset = { LLM_UNSET, LLM_UNSET, LLM_UNSET, LLM_UNSET,
	    LLM_UNSET, LLM_UNSET };
	struct llm_result *res = llm_result_new(NULL);
	char *t;

	metrics_tokens("openai", "gpt-4o-mini", &u);
	metrics_tokens("openai", "gpt-4o-mini", &u);
	metrics_tokens("openai", "gpt-4o-mini", &unset);
	metrics_tokens(NULL, NULL, &u);
	/* The upstream's model name wins over the requested one. */
	res->usage.input = 7;
	metrics_tokens_result("openai", "gpt-4o", res);
	metrics_tokens_result("openai", "gpt-4o", NULL);
	llm_str_set(res, &res->model, "gpt-4o-2024-08-06", 17);
	metrics_tokens_result("openai", "gpt-4o", res);
	llm_result_free(res);
	t = render();
#define G "gen_ai_client_token_usage_total"
	ck_assert_int_eq(value(t, G "{provider=\"openai\",model=\"gpt-4o-mini\",type=\"input\"}"), 40);
	ck_assert_int_eq(value(t, G "{provider=\"openai\",model=\"gpt-4o-mini\",type=\"output\"}"), 62);
	ck_assert_int_eq(value(t, G "{provider=\"openai\",model=\"gpt-4o-mini\",type=\"cached\"}"), 16);
	ck_assert_int_eq(value(t, G "{provider=\"openai\",model=\"gpt-4o-mini\",type=\"reasoning\"}"), 10);
	ck_assert_int_eq(value(t, G "{provider=\"none\",model=\"unknown\",type=\"input\"}"), 20);
	ck_assert_int_eq(value(t, G "{provider=\"openai\",model=\"gpt-4o\",type=\"input\"}"), 7);
	ck_assert_int_eq(value(t, G "{provider=\"openai\",model=\"gpt-4o-2024-08-06\",type=\"input\"}"), 7);
	/* Unknown counts make no series. */
	ck_assert_ptr_null(strstr(t, "model=\"gpt-4o\",type=\"output\""));
#undef G
	free(t);
}
END_TEST

START_TEST(tokens_cardinality_cap)
{
	struct llm_usage u = { 1, 2, LLM_UNSET, LLM_UNSET, LLM_UNSET, LLM_UNSET };
	char model[32], *t;
	int series = 0;

	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < METRICS_MAX_MODELS + 50; i++) {
			snprintf(model, sizeof(model), "model-%d", i);
			metrics_tokens("openai", model, &u);
		}
	}
	/* Once the table is full, another provider gets its own "other". */
	metrics_tokens("anthropic", "claude-x", &u);
	t = render();
	for (const char *p = t; (p = strstr(p, "type=\"input\"}")) != NULL; p++)
		series++;
	ck_assert_int_eq(series, METRICS_MAX_MODELS + 2);
	ck_assert_int_eq(value(t, "gen_ai_client_token_usage_total{provider=\"openai\","
	    "model=\"model-0\",type=\"input\"}"), 2);
	ck_assert_int_eq(value(t, "gen_ai_client_token_usage_total{provider=\"openai\","
	    "model=\"model-199\",type=\"output\"}"), 4);
	ck_assert_int_eq(value(t, "gen_ai_client_token_usage_total{provider=\"openai\","
	    "model=\"model-200\",type=\"input\"}"), -1);
	ck_assert_int_eq(value(t, "gen_ai_client_token_usage_total{provider=\"openai\","
	    "model=\"other\",type=\"input\"}"), 100);
	ck_assert_int_eq(value(t, "gen_ai_client_token_usage_total{provider=\"anthropic\","
	    "model=\"other\",type=\"output\"}"), 2);
	free(t);
}
END_TEST

/* A configuration whose providers have these n names (borrowed). */
static struct config *
provider_cfg(const char *const *names, size_t n)
{
	struct config *c = calloc(1, sizeof(*c));

	ck_assert_ptr_nonnull(c);
	c->providers = calloc(n ? n : 1, sizeof(*c->providers));
	ck_assert_ptr_nonnull(c->providers);
	for (size_t i = 0; i < n; i++)
		c->providers[i].name = (char *)names[i];
	c->nproviders = n;
	return c;
}

static void
provider_cfg_free(struct config *c)
{
	free(c->providers);
	free(c);
}

#define REQ(prov) "whyops_requests_total{route=\"chat.completions\"," \
	"status_class=\"2xx\",provider=\"" prov "\"}"

/*
 * A reload that adds a provider gives it a row of its own; one that drops
 * or reorders providers keeps every row (and count) where it was.
 */
START_TEST(providers_across_reloads)
{
	static const char *const gen2[] = { "fresh", "openai" };
	static const char *const gen3[] = { "fresh" };
	struct config *c2 = provider_cfg(gen2, 2), *c3 = provider_cfg(gen3, 1);
	char *t;

	call(EP_CHAT, 200, metrics_provider_index("openai"), 1000, -1, -1, 0);
	ck_assert_int_eq(metrics_provider_index("fresh"), METRICS_PROVIDER_OTHER);
	ck_assert_uint_eq(metrics_add_providers(c2), 0);
	ck_assert_int_eq(metrics_provider_index("openai"), 0);
	ck_assert_int_eq(metrics_provider_index("we\"ird\\one"), 1);
	ck_assert_int_eq(metrics_provider_index("fresh"), 2);
	call(EP_CHAT, 200, metrics_provider_index("fresh"), 1000, -1, -1, 0);
	call(EP_CHAT, 200, metrics_provider_index("openai"), 1000, -1, -1, 0);
	ck_assert_uint_eq(metrics_add_providers(c3), 0);
	ck_assert_uint_eq(metrics_add_providers(c2), 0);	/* no duplicates */
	ck_assert_int_eq(metrics_provider_index("fresh"), 2);
	call(EP_CHAT, 200, metrics_provider_index("fresh"), 1000, -1, -1, 0);
	t = render();
	ck_assert_int_eq(value(t, REQ("openai")), 2);
	ck_assert_int_eq(value(t, REQ("fresh")), 2);
	ck_assert_int_eq(value(t, REQ("none")), -1);
	ck_assert_int_eq(value(t, REQ("other")), -1);
	free(t);
	provider_cfg_free(c2);
	provider_cfg_free(c3);
}
END_TEST

/*
 * The table holds METRICS_MAX_PROVIDERS names; later ones, and names
 * longer than a row, count as "other".  Providers named "none" and "other"
 * share those rows and take no place in the table.
 */
START_TEST(providers_table_limit)
{
	enum { N = METRICS_MAX_PROVIDERS + 8 };
	static char names[N + 3][256];
	const char *ptrs[N + 3];
	struct config *c;
	char *t, series[512];
	size_t lost;

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "p%d", i);
		ptrs[i] = names[i];
	}
	snprintf(names[N], sizeof(names[N]), "none");
	snprintf(names[N + 1], sizeof(names[N + 1]), "other");
	memset(names[N + 2], 'x', 200);
	names[N + 2][200] = '\0';
	ptrs[N] = names[N];
	ptrs[N + 1] = names[N + 1];
	ptrs[N + 2] = names[N + 2];
	c = provider_cfg(ptrs, N + 3);
	/* Two rows are taken by setup(); "none" and "other" take none. */
	lost = metrics_add_providers(c);
	ck_assert_uint_eq(lost, N - (METRICS_MAX_PROVIDERS - 2) + 1);
	ck_assert_int_eq(metrics_provider_index("p0"), 2);
	ck_assert_int_eq(metrics_provider_index("p61"), METRICS_MAX_PROVIDERS - 1);
	ck_assert_int_eq(metrics_provider_index("p62"), METRICS_PROVIDER_OTHER);
	ck_assert_int_eq(metrics_provider_index(names[N + 2]), METRICS_PROVIDER_OTHER);
	ck_assert_int_eq(metrics_provider_index("none"), -1);
	ck_assert_int_eq(metrics_provider_index("other"), METRICS_PROVIDER_OTHER);
	ck_assert_int_eq(metrics_provider_index(NULL), -1);
	for (int i = 0; i < N + 3; i++)
		call(EP_CHAT, 200, metrics_provider_index(ptrs[i]), 1000, -1, -1, 0);
	/* Still full: the same providers are reported again, nothing moves. */
	ck_assert_uint_eq(metrics_add_providers(c), lost);
	t = render();
	ck_assert_int_eq(value(t, REQ("p0")), 1);
	ck_assert_int_eq(value(t, REQ("p61")), 1);
	ck_assert_int_eq(value(t, REQ("p62")), -1);
	ck_assert_int_eq(value(t, REQ("none")), 1);
	ck_assert_int_eq(value(t, REQ("other")), N - 62 + 2);
	ck_assert_int_lt(snprintf(series, sizeof(series), REQ("%s"), names[N + 2]),
	    (int)sizeof(series));
	ck_assert_int_eq(value(t, series), -1);
	free(t);
	provider_cfg_free(c);
}
END_TEST

/*
 * Requests count while the main thread adds providers (a reload): run
 * under TSan (make tsan) this checks the table's publication.  No count
 * is lost and each lands under its provider's name.
 */
enum { RACE_NAMES = 40 };
static char race_names[RACE_NAMES][16];
static atomic_bool race_stop;
static atomic_llong race_calls;

static void *
race_requests(void *arg)
{
	(void)arg;
	/* At least one round after the last name was added.  Relaxed, so
	 * that only the table itself orders the threads for TSan. */
	for (bool last = false; !last;) {
		last = atomic_load_explicit(&race_stop, memory_order_relaxed);
		for (int i = 0; i < RACE_NAMES; i++) {
			call(EP_CHAT, 200, metrics_provider_index(race_names[i]),
			    1000, -1, -1, 0);
			atomic_fetch_add_explicit(&race_calls, 1,
			    memory_order_relaxed);
		}
	}
	return NULL;
}

START_TEST(providers_added_while_counting)
{
	const char *ptrs[RACE_NAMES];
	struct config *c;
	pthread_t th[2];
	long long total = 0, other;
	char *t, series[128];

	for (int i = 0; i < RACE_NAMES; i++) {
		snprintf(race_names[i], sizeof(race_names[i]), "r%d", i);
		ptrs[i] = race_names[i];
	}
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_requests, NULL), 0);
	for (size_t n = 1; n <= RACE_NAMES; n++) {	/* one reload per name */
		c = provider_cfg(ptrs, n);
		ck_assert_uint_eq(metrics_add_providers(c), 0);
		provider_cfg_free(c);
		t = render();
		free(t);
	}
	atomic_store(&race_stop, true);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	t = render();
	for (int i = 0; i < RACE_NAMES; i++) {
		long long v;

		ck_assert_int_lt(snprintf(series, sizeof(series), REQ("%s"),
		    race_names[i]), (int)sizeof(series));
		v = value(t, series);
		ck_assert_int_gt(v, 0);
		total += v;
	}
	/* Counted before its name was added: "other". */
	if ((other = value(t, REQ("other"))) > 0)
		total += other;
	ck_assert_int_eq(total, atomic_load(&race_calls));
	free(t);
}
END_TEST
#undef REQ

START_TEST(readiness_rule)
{
	struct metrics_ready_state s = { 0 };
	struct events_stats st = { 0 };

	ck_assert_ptr_null(metrics_ready_eval(&s, &st, 128, 0, 1000));
	/* A first sample is the baseline, not growth. */
	struct metrics_ready_state s2 = { 0 };
	st.dropped_full = 5;
	ck_assert_ptr_null(metrics_ready_eval(&s2, &st, 128, 0, 1000));
	/* Growth: not ready for the window, then ready again. */
	ck_assert_str_eq(metrics_ready_eval(&s, &st, 128, 0, 2000), "events_dropped");
	ck_assert_str_eq(metrics_ready_eval(&s, &st, 128, 0,
	    2000 + METRICS_READY_DROP_WINDOW_MS - 1), "events_dropped");
	ck_assert_ptr_null(metrics_ready_eval(&s, &st, 128, 0,
	    2000 + METRICS_READY_DROP_WINDOW_MS));
	st.dropped_sink = 1;
	ck_assert_str_eq(metrics_ready_eval(&s, &st, 128, 0, 90000), "events_dropped");
	ck_assert_ptr_null(metrics_ready_eval(&s, &st, 128, 0,
	    90000 + METRICS_READY_DROP_WINDOW_MS));
	/* Queue depth: 90% of 128 is 115.2. */
	st.depth = 115;
	ck_assert_ptr_null(metrics_ready_eval(&s, &st, 128, 0, 200000));
	st.depth = 116;
	ck_assert_str_eq(metrics_ready_eval(&s, &st, 128, 0, 200000), "events_queue_full");
	st.depth = 0;
	/* Spool: only with a limit; a spool in use within it is fine. */
	st.spool_pending = 950;
	ck_assert_ptr_null(metrics_ready_eval(&s, &st, 128, 0, 200000));
	ck_assert_str_eq(metrics_ready_eval(&s, &st, 128, 1000, 200000), "events_spool_full");
	st.spool_pending = 900;
	ck_assert_ptr_null(metrics_ready_eval(&s, &st, 128, 1000, 200000));
	/* The pipeline is not running in this test: nothing dropped. */
	ck_assert_ptr_null(metrics_readiness());
}
END_TEST

START_TEST(not_initialised)
{
	char *t;

	metrics_free();
	call(EP_CHAT, 200, 0, 1000, -1, -1, 0);	/* ignored, no crash */
	t = render();
	ck_assert_ptr_null(strstr(t, "whyops_requests_total{"));
	ck_assert(has_line(t, "whyops_build_info{version=\"" WHYOPS_VERSION "\"} 1"));
	free(t);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, request_counter_labels);
	tcase_add_test(tc, histogram_buckets);
	tcase_add_test(tc, exposition_format);
	tcase_add_test(tc, label_escaping);
	tcase_add_test(tc, tokens_types_and_models);
	tcase_add_test(tc, tokens_cardinality_cap);
	tcase_add_test(tc, providers_across_reloads);
	tcase_add_test(tc, providers_table_limit);
	tcase_add_test(tc, providers_added_while_counting);
	tcase_add_test(tc, readiness_rule);
	tcase_add_test(tc, not_initialised);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
