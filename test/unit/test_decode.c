/*
 * test_decode.c - the dialect decoders over recorded and hand-written bodies.
 *
 * Recorded bodies live outside the repository, in $WHYOPS_FIXTURES
 * (default: ../shared/fixtures from the repository root; see PROVENANCE.md
 * there); when that folder is absent the tests that need it print a notice
 * and pass.  Hand-written bodies for what the recordings lack are in
 * test/fixtures (chat-*, responses-*, anthropic-*: the prefix names the
 * dialect).
 *
 * For every body: decode it whole, one byte at a time, and split in two at
 * every position (at every event boundary plus a few hundred positions for
 * bodies over 16 KB); all must render the same llm_result_to_json().  Then
 * chosen results are checked field by field against the values in the
 * files, and streamed / non-streamed forms of one answer are compared.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* asprintf */
#endif

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decode.h"
#include "sse.h"

#define SPLIT_ALL_MAX (16 * 1024)
#define MAX_FILES 256

struct fixture {
	char *path;
	char *name;		/* relative to its folder, for messages */
	enum decode_kind kind;
	bool streamed;
};

static char *shared_dir;	/* NULL when absent */
static char *own_dir;
static struct fixture recorded[MAX_FILES], own[MAX_FILES];
static int nrecorded, nown;

/* ---- helpers ---- */

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static char *
render(const struct llm_result *res)
{
	json_t *j = llm_result_to_json(res);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	ck_assert_ptr_nonnull(s);
	json_decref(j);
	return s;
}

/* Decode buf cut at cuts[0..ncuts); returns the finished decoder. */
static struct decoder *
run_cuts(enum decode_kind kind, bool streamed, const struct decode_limits *l,
    const char *buf, size_t len, const size_t *cuts, size_t ncuts)
{
	struct decoder *dec = decode_new(kind, streamed, l);
	const struct llm_result *res;
	size_t from = 0, i;

	for (i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		ck_assert_int_eq(decode_feed(dec, buf + from, to - from), 0);
		from = to;
	}
	decode_finish(dec, NULL);
	ck_assert_int_eq(decode_feed(dec, "x", 1), -1);
	res = decode_result(dec);
	ck_assert_uint_le(res->text_used, res->limits.max_text);
	return dec;
}

static char *
run_render(enum decode_kind kind, bool streamed, const char *buf, size_t len,
    const size_t *cuts, size_t ncuts)
{
	struct decoder *dec = run_cuts(kind, streamed, NULL, buf, len, cuts,
	    ncuts);
	char *s = render(decode_result(dec));

	decode_free(dec);
	return s;
}

static struct decoder *
decode_file(const char *path, enum decode_kind kind, bool streamed,
    const struct decode_limits *l)
{
	size_t len;
	char *buf = slurp(path, &len);
	struct decoder *dec = run_cuts(kind, streamed, l, buf, len, NULL, 0);

	free(buf);
	return dec;
}

static char *
render_file(const char *path, enum decode_kind kind, bool streamed)
{
	struct decoder *dec = decode_file(path, kind, streamed, NULL);
	char *s = render(decode_result(dec));

	decode_free(dec);
	return s;
}

static const char *
S(const struct llm_str *s)
{
	return s->len > 0 ? s->ptr : "";
}

/* A recording by path under the shared folder; NULL when absent. */
static char *
shared(const char *rel)
{
	char *p;

	if (shared_dir == NULL)
		return NULL;
	if (asprintf(&p, "%s/%s", shared_dir, rel) < 0)
		abort();
	return p;
}

static char *
mine(const char *rel)
{
	char *p;

	if (asprintf(&p, "%s/%s", own_dir, rel) < 0)
		abort();
	return p;
}

#define NEED_SHARED(path)						\
	do {								\
		if ((path) == NULL) {					\
			printf("skip %s: no recorded fixtures\n",	\
			    __func__);					\
			return;						\
		}							\
	} while (0)

/* ---- discovery ---- */

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool
kind_of(const char *rel, enum decode_kind *kind)
{
	static const struct {
		const char *key;
		enum decode_kind kind;
	} map[] = {
		{ "chat-completions/", DECODE_OPENAI_CHAT },
		{ "chat-", DECODE_OPENAI_CHAT },
		{ "responses", DECODE_OPENAI_RESPONSES },
		{ "anthropic", DECODE_ANTHROPIC_MESSAGES },
		{ "embeddings/", DECODE_EMBEDDINGS },
		{ "models/", DECODE_MODELS },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strstr(rel, map[i].key) != NULL) {
			*kind = map[i].kind;
			return true;
		}
	return false;
}

static int
cmp_fixture(const void *a, const void *b)
{
	return strcmp(((const struct fixture *)a)->path,
	    ((const struct fixture *)b)->path);
}

static void
discover(const char *root, const char *sub, struct fixture *out, int *n)
{
	char *dir, *rel, *path;
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (asprintf(&dir, "%s%s%s", root, *sub ? "/" : "", sub) < 0)
		abort();
	if ((d = opendir(dir)) == NULL) {
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&rel, "%s%s%s", sub, *sub ? "/" : "",
		    de->d_name) < 0 ||
		    asprintf(&path, "%s/%s", root, rel) < 0)
			abort();
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			discover(root, rel, out, n);
		} else if (*n < MAX_FILES && (ends_with(rel, ".sse") ||
		    (ends_with(rel, ".json") &&
		    !ends_with(rel, ".request.json"))) &&
		    kind_of(rel, &out[*n].kind)) {
			out[*n].path = path;
			out[*n].name = rel;
			out[*n].streamed = ends_with(rel, ".sse");
			(*n)++;
			continue;
		}
		free(rel);
		free(path);
	}
	closedir(d);
	free(dir);
}

static bool
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void
locate(void)
{
	static const char *const ups[] = { ".", "..", "../..", "../../.." };
	const char *env = getenv("WHYOPS_FIXTURES");
	char *p = NULL;
	size_t i;

	for (i = 0; i < sizeof(ups) / sizeof(ups[0]); i++) {
		if (asprintf(&p, "%s/test/fixtures", ups[i]) < 0)
			abort();
		if (is_dir(p))
			break;
		free(p);
		p = NULL;
	}
	if (p == NULL) {
		fprintf(stderr, "test_decode: test/fixtures not found\n");
		exit(EXIT_FAILURE);
	}
	own_dir = p;
	if (env != NULL && *env != '\0')
		p = strdup(env);
	else if (asprintf(&p, "%s/../shared/fixtures", ups[i]) < 0)
		abort();
	if (is_dir(p)) {
		shared_dir = p;
	} else {
		printf("NOTICE: recorded fixtures not found at %s "
		    "(set WHYOPS_FIXTURES); skipping the tests that use them\n",
		    p);
		free(p);
	}
	discover(own_dir, "", own, &nown);
	qsort(own, (size_t)nown, sizeof(own[0]), cmp_fixture);
	if (shared_dir != NULL) {
		discover(shared_dir, "", recorded, &nrecorded);
		qsort(recorded, (size_t)nrecorded, sizeof(recorded[0]),
		    cmp_fixture);
	}
}

/* ---- every body, every split ---- */

struct ends {
	size_t *v;
	size_t n;
};

static void
collect_end(void *ud, const struct sse_event *ev)
{
	struct ends *e = ud;

	e->v = realloc(e->v, (e->n + 1) * sizeof(*e->v));
	e->v[e->n++] = (size_t)ev->end;
}

/* Split points for a body: all of them when small, else every event
 * boundary and 150 positions spread out. */
static size_t *
split_points(const char *buf, size_t len, size_t *n)
{
	struct ends e = { NULL, 0 };
	struct sse_parser *p;
	size_t *v, i, k = 0;

	/* Sanitizer runs (WHYOPS_TEST_QUICK) split small bodies at event
	 * boundaries and spread positions too; the plain run does them all. */
	size_t all_max = getenv("WHYOPS_TEST_QUICK") ? 1024 : SPLIT_ALL_MAX;

	if (len <= all_max) {
		v = malloc((len + 1) * sizeof(*v));
		for (i = 0; i <= len; i++)
			v[k++] = i;
		*n = k;
		return v;
	}
	p = sse_new(1 << 24, collect_end, &e);
	sse_feed(p, buf, len);
	sse_finish(p);
	sse_free(p);
	v = malloc((e.n + 151) * sizeof(*v));
	for (i = 0; i < e.n; i++) {
		v[k++] = e.v[i];
	}
	for (i = 0; i <= 150; i++)
		v[k++] = (size_t)((unsigned long long)len * i / 150);
	free(e.v);
	*n = k;
	return v;
}

static void
check_splits(const struct fixture *fx)
{
	size_t len, npos, i;
	char *buf = slurp(fx->path, &len);
	char *whole = run_render(fx->kind, fx->streamed, buf, len, NULL, 0);
	size_t *cuts = calloc(len + 1, sizeof(*cuts)), *pos;
	char *got;

	for (i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	got = run_render(fx->kind, fx->streamed, buf, len, cuts,
	    len > 0 ? len - 1 : 0);
	ck_assert_msg(strcmp(got, whole) == 0, "%s byte by byte:\n%s\n"
	    "whole:\n%s", fx->name, got, whole);
	free(got);
	pos = split_points(buf, len, &npos);
	for (i = 0; i < npos; i++) {
		got = run_render(fx->kind, fx->streamed, buf, len, &pos[i], 1);
		ck_assert_msg(strcmp(got, whole) == 0, "%s split at %zu:\n%s\n"
		    "whole:\n%s", fx->name, pos[i], got, whole);
		free(got);
	}
	if (!fx->streamed) {
		/* a JSON body read by a decoder that expected a stream */
		got = run_render(fx->kind, true, buf, len, NULL, 0);
		ck_assert_str_eq(got, whole);
		free(got);
	}
	printf("%-58s %7zu bytes, %5zu splits: %s\n", fx->name, len, npos,
	    strlen(whole) > 60 ? "ok" : whole);
	free(pos);
	free(cuts);
	free(buf);
	free(whole);
}

START_TEST(test_recorded_splits)
{
	const struct fixture *fx = &recorded[_i];
	struct decoder *dec = decode_file(fx->path, fx->kind, fx->streamed,
	    NULL);
	const struct llm_result *res = decode_result(dec);

	/* every recording decodes cleanly; only the Anthropic error stream
	 * ends without its terminal event */
	ck_assert_uint_eq(res->notes[LLM_NOTE_INVALID_JSON], 0);
	ck_assert_uint_eq(res->notes[LLM_NOTE_PARTIAL_EVENT], 0);
	ck_assert_uint_eq(res->notes[LLM_NOTE_OVERSIZED_EVENT], 0);
	ck_assert_uint_eq(res->notes[LLM_NOTE_TEXT_CAPPED], 0);
	ck_assert_msg(res->complete ||
	    strstr(fx->name, "stream-error-overloaded") != NULL,
	    "%s incomplete", fx->name);
	ck_assert_msg(res->error.present == (strstr(fx->name, "error") !=
	    NULL), "%s error", fx->name);
	decode_free(dec);
	check_splits(fx);
}
END_TEST

START_TEST(test_own_splits)
{
	check_splits(&own[_i]);
}
END_TEST

START_TEST(test_recordings_present)
{
	if (shared_dir == NULL) {
		printf("skip %s: no recorded fixtures\n", __func__);
		return;
	}
	/* every .sse / response .json of PROVENANCE.md was found */
	ck_assert_int_eq(nrecorded, 57);
}
END_TEST


/* ---- recorded answers, field by field ---- */

static struct decoder *
rec(const char *rel, enum decode_kind kind)
{
	char *p = shared(rel);
	struct decoder *dec;

	if (p == NULL)
		return NULL;
	dec = decode_file(p, kind, ends_with(rel, ".sse"), NULL);
	free(p);
	return dec;
}

#define REC(dec, rel, kind)						\
	struct decoder *dec = rec(rel, kind);				\
	NEED_SHARED(dec)

static void
check_usage(const struct llm_result *r, int64_t in, int64_t out,
    int64_t total, int64_t cached, int64_t reasoning)
{
	ck_assert_int_eq(r->usage.input, in);
	ck_assert_int_eq(r->usage.output, out);
	ck_assert_int_eq(r->usage.total, total);
	ck_assert_int_eq(r->usage.cached, cached);
	ck_assert_int_eq(r->usage.reasoning, reasoning);
}

static void
check_tool(const struct llm_tool_call *tc, enum llm_tool_kind kind,
    const char *type, const char *id, const char *name, const char *args)
{
	ck_assert(tc->used);
	ck_assert_int_eq(tc->kind, kind);
	ck_assert_str_eq(S(&tc->type), type);
	ck_assert_str_eq(S(&tc->id), id);
	ck_assert_str_eq(S(&tc->name), name);
	ck_assert_str_eq(S(&tc->arguments), args);
}

static bool
clean(const struct llm_result *r)
{
	int i;

	for (i = 0; i < LLM_NOTE__COUNT; i++)
		if (r->notes[i] != 0)
			return false;
	return r->complete;
}

START_TEST(test_chat_tool_call_include_usage)
{
	REC(dec, "openai/chat-completions/stream-tool-call-include-usage.sse",
	    DECODE_OPENAI_CHAT);
	const struct llm_result *r = decode_result(dec);

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->id), "chatcmpl-BWlJBDk2xe66hjff60joVYpXi1hh4");
	ck_assert_str_eq(S(&r->model), "gpt-4o-mini-2024-07-18");
	ck_assert_str_eq(S(&r->system_fingerprint), "fp_dbaca60df0");
	ck_assert_str_eq(S(&r->service_tier), "default");
	ck_assert_uint_eq(r->nchoices, 1);
	ck_assert_str_eq(S(&r->choices[0].content), "");
	ck_assert_str_eq(S(&r->choices[0].finish_reason), "tool_calls");
	ck_assert_uint_eq(r->choices[0].ntool_calls, 1);
	check_tool(&r->choices[0].tool_calls[0], LLM_TOOL_FUNCTION, "function",
	    "call_1EYWDzueHEp8OsB8jJSEp7WB", "multiply",
	    "{\"a\":1231,\"b\":2331}");
	check_usage(r, 54, 20, 74, 0, 0);
	ck_assert(!r->error.present);
	decode_free(dec);
}
END_TEST

START_TEST(test_chat_parallel_tool_calls)
{
	REC(dec, "openai/chat-completions/"
	    "stream-parallel-tool-calls-include-usage.sse", DECODE_OPENAI_CHAT);
	const struct llm_result *r = decode_result(dec);
	const struct llm_choice *c = &r->choices[0];

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->system_fingerprint), "fp_07871e2ad8");
	ck_assert_uint_eq(c->ntool_calls, 2);
	check_tool(&c->tool_calls[0], LLM_TOOL_FUNCTION, "function",
	    "call_q2UyBRP7eXNTzAoR8lEhjc9Z", "get_country", "{}");
	check_tool(&c->tool_calls[1], LLM_TOOL_FUNCTION, "function",
	    "call_b51ijcpFkDiTQG1bQzsrmtW5", "get_product_name", "{}");
	ck_assert_str_eq(S(&c->finish_reason), "tool_calls");
	check_usage(r, 364, 40, 404, 0, 0);
	decode_free(dec);

	dec = rec("openai/chat-completions/stream-parallel-tool-calls-2.sse",
	    DECODE_OPENAI_CHAT);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert_uint_eq(c->ntool_calls, 2);
	check_tool(&c->tool_calls[0], LLM_TOOL_FUNCTION, "function",
	    "call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs",
	    "{\"city\": \"Edinburgh\", \"country\": \"GB\", \"units\": \"c\"}");
	check_tool(&c->tool_calls[1], LLM_TOOL_FUNCTION, "function",
	    "call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price",
	    "{\"ticker\": \"AAPL\", \"exchange\": \"NASDAQ\"}");
	/* no prompt_tokens_details in this 2024 usage chunk */
	check_usage(r, 149, 60, 209, LLM_UNSET, 0);
	decode_free(dec);

	dec = rec("openai/chat-completions/nonstream-parallel-tool-calls-2.json",
	    DECODE_OPENAI_CHAT);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->id), "chatcmpl-C9f7f1SbHRzcwlJwrYKdSonTRWPvV");
	ck_assert_str_eq(S(&c->content), "");
	check_tool(&c->tool_calls[0], LLM_TOOL_FUNCTION, "function",
	    "call_jYdIdRZHxZTn5bWCq5jlMrJi", "delete_file",
	    "{\"path\": \".env\"}");
	check_tool(&c->tool_calls[1], LLM_TOOL_FUNCTION, "function",
	    "call_TmlTVWQbzrXCZ4jNsCVNbNqu", "create_file",
	    "{\"path\": \"test.txt\"}");
	check_usage(r, 71, 46, 117, 0, 0);
	decode_free(dec);
}
END_TEST

START_TEST(test_chat_text_and_refusal)
{
	REC(dec, "openai/chat-completions/stream-text-include-usage.sse",
	    DECODE_OPENAI_CHAT);
	const struct llm_result *r = decode_result(dec);

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->choices[0].content), "The result of \\( 1231 "
	    "\\times 2331 \\) is \\( 2,869,461 \\).");
	ck_assert_str_eq(S(&r->choices[0].finish_reason), "stop");
	ck_assert_uint_eq(r->choices[0].ntool_calls, 0);
	check_usage(r, 87, 26, 113, 0, 0);
	decode_free(dec);

	dec = rec("openai/chat-completions/stream-refusal.sse",
	    DECODE_OPENAI_CHAT);
	r = decode_result(dec);
	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->choices[0].refusal),
	    "I'm sorry, I can't assist with that request.");
	ck_assert_str_eq(S(&r->choices[0].content), "");
	ck_assert_str_eq(S(&r->choices[0].finish_reason), "stop");
	check_usage(r, 79, 11, 90, LLM_UNSET, 0);
	decode_free(dec);

	dec = rec("openai/chat-completions/nonstream-text.json",
	    DECODE_OPENAI_CHAT);
	r = decode_result(dec);
	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->id), "chatcmpl-BWpGTZY785VsZipCO0bAvF7Z7tjdA");
	ck_assert_str_eq(S(&r->choices[0].content), "YES");
	ck_assert_str_eq(S(&r->service_tier), "default");
	ck_assert_str_eq(S(&r->system_fingerprint), "fp_0392822090");
	check_usage(r, 146, 3, 149, 0, 0);
	decode_free(dec);
}
END_TEST

START_TEST(test_chat_errors)
{
	REC(dec, "openai/chat-completions/error-400-unsupported-parameter.json",
	    DECODE_OPENAI_CHAT);
	const struct llm_result *r = decode_result(dec);

	ck_assert(r->complete);
	ck_assert(r->error.present);
	ck_assert_str_eq(S(&r->error.type), "invalid_request_error");
	ck_assert_str_eq(S(&r->error.code), "unsupported_parameter");
	ck_assert_str_eq(S(&r->error.message), "Unsupported parameter: "
	    "'max_tokens' is not supported with this model. Use "
	    "'max_completion_tokens' instead.");
	ck_assert_uint_eq(r->nchoices, 0);
	decode_free(dec);

	dec = rec("openai/chat-completions/error-400-null-code.json",
	    DECODE_OPENAI_CHAT);
	r = decode_result(dec);
	ck_assert(r->error.present);
	ck_assert_str_eq(S(&r->error.code), "");
	ck_assert_str_eq(S(&r->error.message),
	    "Web search options not supported with this model.");
	decode_free(dec);
}
END_TEST

START_TEST(test_responses_text_and_function_call)
{
	REC(dec, "openai/responses/stream-text.sse", DECODE_OPENAI_RESPONSES);
	const struct llm_result *r = decode_result(dec);

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->id),
	    "resp_00592e63e61b66660169fab1b9f8e481a2b321356198d7ac1b");
	ck_assert_str_eq(S(&r->model), "gpt-5.5-2026-04-23");
	ck_assert_str_eq(S(&r->status), "completed");
	/* created said "auto"; completed says what was used */
	ck_assert_str_eq(S(&r->service_tier), "default");
	ck_assert_uint_eq(r->nchoices, 1);
	ck_assert_str_eq(S(&r->choices[0].content), "pong");
	check_usage(r, 11, 5, 16, 0, 0);
	decode_free(dec);

	dec = rec("openai/responses/stream-function-call-gpt-4o.sse",
	    DECODE_OPENAI_RESPONSES);
	r = decode_result(dec);
	ck_assert(clean(r));
	ck_assert_uint_eq(r->choices[0].ntool_calls, 1);
	check_tool(&r->choices[0].tool_calls[0], LLM_TOOL_FUNCTION,
	    "function_call", "call_kL0PCQV7M2WMoVX8V8OtYSAL", "get_capital",
	    "{\"country\":\"France\"}");
	ck_assert_str_eq(S(&r->choices[0].tool_calls[0].item_id),
	    "fc_67e554a1de488191af0831d35cbe082e0794405d35281ae2");
	ck_assert_str_eq(S(&r->service_tier), "");
	check_usage(r, 255, 16, 271, 0, 0);
	decode_free(dec);
}
END_TEST

START_TEST(test_responses_reasoning)
{
	REC(dec, "openai/responses/stream-reasoning-summary.sse",
	    DECODE_OPENAI_RESPONSES);
	const struct llm_result *r = decode_result(dec);
	const struct llm_choice *c = &r->choices[0];
	const char *p;
	int parts = 1;

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->model), "o3-mini-2025-01-31");
	ck_assert(starts_with(S(&c->reasoning), "**Providing street crossing "
	    "instructions**\n\nThe user is asking how to cross the street"));
	ck_assert_ptr_nonnull(strstr(S(&c->reasoning), "for anyone needing "
	    "assistance.\n\n**Providing safe crossing advice**\n\n"));
	for (p = S(&c->reasoning); (p = strstr(p, "\n\n**")) != NULL; p++)
		parts++;
	ck_assert_int_eq(parts, 4);
	ck_assert(starts_with(S(&c->content), "I'm not a road safety professional, "
	    "but here are some"));
	ck_assert(ends_with(S(&c->content), "specific to your area. Stay "
	    "safe!"));
	check_usage(r, 13, 1680, 1693, 0, 1408);
	decode_free(dec);

	dec = rec("openai/responses/nonstream-reasoning-summary.json",
	    DECODE_OPENAI_RESPONSES);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert(clean(r));
	ck_assert(starts_with(S(&c->reasoning), "**Generating factorial function**"
	    "\n\nI need to respond with a Python function"));
	ck_assert(ends_with(S(&c->reasoning), "before presenting the final "
	    "code to the user."));
	ck_assert(starts_with(S(&c->content), "```python\ndef factorial(n: int) "
	    "-> int:\n"));
	check_usage(r, 34, 226, 260, 0, 59);
	decode_free(dec);

	dec = rec("openai/responses/"
	    "nonstream-reasoning-parallel-function-calls.json",
	    DECODE_OPENAI_RESPONSES);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert(clean(r));
	ck_assert_str_eq(S(&c->reasoning), "");	/* empty summary */
	ck_assert_uint_eq(c->ntool_calls, 5);
	check_tool(&c->tool_calls[0], LLM_TOOL_FUNCTION, "function_call",
	    "call_WbWwKw4J6EXQ7Sn93fgmuZe3", "db_lookup", "{\"key\":\"begin\"}");
	check_tool(&c->tool_calls[3], LLM_TOOL_FUNCTION, "function_call",
	    "call_gd2cYY61KkICSgB6qNd7ZC66", "db_lookup",
	    "{\"key\":\"Begin with the value 7.\"}");
	check_tool(&c->tool_calls[4], LLM_TOOL_FUNCTION, "function_call",
	    "call_nInKAmdZObYpqc3OR3WC61K3", "db_lookup",
	    "{\"key\":\"start2\"}");
	check_usage(r, 532, 119, 651, 0, 17);
	decode_free(dec);
}
END_TEST

START_TEST(test_responses_stream_error)
{
	REC(dec, "openai/responses/stream-error-insufficient-quota.sse",
	    DECODE_OPENAI_RESPONSES);
	const struct llm_result *r = decode_result(dec);
	struct decoder *d2;
	const struct llm_result *r2;

	/* error event, then response.failed: terminal, so not truncated */
	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->status), "failed");
	ck_assert(r->error.present);
	ck_assert_str_eq(S(&r->error.type), "insufficient_quota");
	ck_assert_str_eq(S(&r->error.code), "insufficient_quota");
	ck_assert(starts_with(S(&r->error.message), "You exceeded your current "
	    "quota, please check your plan and billing details."));
	ck_assert_int_eq(r->usage.input, LLM_UNSET);
	/* the non-streamed counterpart reports the same error */
	d2 = rec("openai/responses/error-429-insufficient-quota.json",
	    DECODE_OPENAI_RESPONSES);
	r2 = decode_result(d2);
	ck_assert_str_eq(S(&r2->error.type), S(&r->error.type));
	ck_assert_str_eq(S(&r2->error.code), S(&r->error.code));
	ck_assert_str_eq(S(&r2->error.message), S(&r->error.message));
	ck_assert_uint_eq(r2->nchoices, 0);
	decode_free(d2);
	decode_free(dec);
}
END_TEST

/* The terminal event of a Responses stream repeats the response object,
 * which is the non-streamed body of the same answer. */
START_TEST(test_responses_stream_equals_final_object)
{
	static const char *const files[] = {
		"openai/responses/stream-text.sse",
		"openai/responses/stream-function-call.sse",
		"openai/responses/stream-function-call-gpt-4o.sse",
		"openai/responses/stream-after-function-call-output.sse",
		"openai/responses/stream-reasoning-summary.sse",
	};
	size_t i, len;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *path = shared(files[i]), *buf, *last, *nl, *doc;
		char *a, *b;
		json_t *ev;

		NEED_SHARED(path);
		buf = slurp(path, &len);
		last = strstr(buf, "event: response.completed\ndata: ");
		ck_assert_ptr_nonnull(last);
		last += strlen("event: response.completed\ndata: ");
		nl = strchr(last, '\n');
		ev = json_loadb(last, (size_t)(nl - last), 0, NULL);
		ck_assert_ptr_nonnull(ev);
		doc = json_dumps(json_object_get(ev, "response"), 0);
		a = run_render(DECODE_OPENAI_RESPONSES, true, buf, len, NULL,
		    0);
		b = run_render(DECODE_OPENAI_RESPONSES, false, doc,
		    strlen(doc), NULL, 0);
		ck_assert_msg(strcmp(a, b) == 0, "%s\nstream:   %s\n"
		    "document: %s", files[i], a, b);
		free(a);
		free(b);
		free(doc);
		json_decref(ev);
		free(buf);
		free(path);
	}
}
END_TEST

START_TEST(test_anthropic_tool_use)
{
	REC(dec, "anthropic/messages/stream-tool-use.sse",
	    DECODE_ANTHROPIC_MESSAGES);
	const struct llm_result *r = decode_result(dec);
	const struct llm_choice *c = &r->choices[0];

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->id), "msg_01AusY9WEbCaj3N7Tv5J4YjH");
	ck_assert_str_eq(S(&r->model), "claude-haiku-4-5-20251001");
	ck_assert_str_eq(S(&r->service_tier), "standard");
	ck_assert_str_eq(S(&c->finish_reason), "tool_use");
	ck_assert_str_eq(S(&c->stop_sequence), "");
	ck_assert_uint_eq(c->ntool_calls, 1);
	/* the fragments {"location": "San Francisco, CA", "units": "f"}
	 * re-serialised compact, like a non-streamed input object */
	check_tool(&c->tool_calls[0], LLM_TOOL_FUNCTION, "tool_use",
	    "toolu_018acGYLtfR52q9yDbWaEdQZ", "get_weather",
	    "{\"location\":\"San Francisco, CA\",\"units\":\"f\"}");
	/* message_delta's output_tokens (74) overrides message_start's (26) */
	check_usage(r, 656, 74, LLM_UNSET, 0, LLM_UNSET);
	ck_assert_int_eq(r->usage.cache_creation, 0);
	decode_free(dec);

	dec = rec("anthropic/messages/nonstream-parallel-tool-use.json",
	    DECODE_ANTHROPIC_MESSAGES);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert(clean(r));
	ck_assert(starts_with(S(&c->content), "I'll help you find out who is the "
	    "youngest"));
	ck_assert_uint_eq(c->ntool_calls, 4);
	check_tool(&c->tool_calls[0], LLM_TOOL_FUNCTION, "tool_use",
	    "toolu_0167cfEnoQaPviGdVXA95zcu", "retrieve_entity_info",
	    "{\"name\":\"Alice\"}");
	check_tool(&c->tool_calls[3], LLM_TOOL_FUNCTION, "tool_use",
	    "toolu_013mnQZbgtK2oe3Mo3XKJsx3", "retrieve_entity_info",
	    "{\"name\":\"Daisy\"}");
	check_usage(r, 423, 202, LLM_UNSET, 0, LLM_UNSET);
	decode_free(dec);

	dec = rec("anthropic/messages/stream-two-tool-use-blocks-empty-input.sse",
	    DECODE_ANTHROPIC_MESSAGES);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert_uint_eq(c->ntool_calls, 2);
	check_tool(&c->tool_calls[1], LLM_TOOL_FUNCTION, "tool_use",
	    "toolu_01N8a4jWyf116qKTMqKKmjyt", "pelican_name_generator", "{}");
	decode_free(dec);
}
END_TEST

START_TEST(test_anthropic_thinking)
{
	REC(dec, "anthropic/messages/stream-thinking-then-tool-use.sse",
	    DECODE_ANTHROPIC_MESSAGES);
	const struct llm_result *r = decode_result(dec);
	const struct llm_choice *c = &r->choices[0];

	ck_assert(clean(r));
	ck_assert_str_eq(S(&c->reasoning), "The user wants me to:\n1. Use the "
	    "fixed_version tool\n2. Tell them the version\n3. Make a short "
	    "joke about it\n\nLet me first call the fixed_version tool to see "
	    "what version it returns.");
	ck_assert_str_eq(S(&c->content), "");
	check_tool(&c->tool_calls[0], LLM_TOOL_FUNCTION, "tool_use",
	    "toolu_01825dXWLSoJwCst1qTsiWdb", "fixed_version", "{}");
	check_usage(r, 598, 92, LLM_UNSET, 0, 53);
	decode_free(dec);

	dec = rec("anthropic/messages/nonstream-thinking.json",
	    DECODE_ANTHROPIC_MESSAGES);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert(clean(r));
	ck_assert_str_eq(S(&c->reasoning), "This is a straightforward question "
	    "about pedestrian safety. I should provide clear, practical advice "
	    "about crossing the street safely.");
	ck_assert(starts_with(S(&c->content), "Here's how to cross the street "
	    "safely:\n\n## Basic Steps"));
	check_usage(r, 43, 321, LLM_UNSET, 0, LLM_UNSET);
	decode_free(dec);

	dec = rec("anthropic/messages/stream-redacted-thinking.sse",
	    DECODE_ANTHROPIC_MESSAGES);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert(clean(r));
	ck_assert_str_eq(S(&c->reasoning), "");
	ck_assert_uint_eq(c->nitems, 2);
	ck_assert_str_eq(S(&c->items[0].type), "redacted_thinking");
	ck_assert_str_eq(S(&c->items[1].type), "redacted_thinking");
	ck_assert(starts_with(S(&c->content), "I notice that you've sent what "
	    "appears"));
	decode_free(dec);
}
END_TEST

START_TEST(test_anthropic_server_tool)
{
	REC(dec, "anthropic/messages/stream-text-server-tool-and-tool-use.sse",
	    DECODE_ANTHROPIC_MESSAGES);
	const struct llm_result *r = decode_result(dec);
	const struct llm_choice *c = &r->choices[0];

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->model), "claude-sonnet-4-6");
	ck_assert_str_eq(S(&c->content), "Let me search for a tool that can "
	    "provide current exchange rate information.I found the right "
	    "tool! Let me fetch the current USD to EUR exchange rate for you.");
	ck_assert_uint_eq(c->ntool_calls, 2);
	check_tool(&c->tool_calls[0], LLM_TOOL_SERVER, "server_tool_use",
	    "srvtoolu_01S5swZdBmTzLDVzwcT5LbHp", "tool_search_tool_bm25",
	    "{\"query\":\"USD EUR exchange rate currency conversion\"}");
	check_tool(&c->tool_calls[1], LLM_TOOL_FUNCTION, "tool_use",
	    "toolu_01EFn5wTNBYA8Reni8rbmnHT", "get_exchange_rate",
	    "{\"from_currency\":\"USD\",\"to_currency\":\"EUR\"}");
	ck_assert_uint_eq(c->nitems, 1);
	ck_assert_str_eq(S(&c->items[0].type), "tool_search_tool_result");
	ck_assert_str_eq(S(&c->items[0].id), "srvtoolu_01S5swZdBmTzLDVzwcT5LbHp");
	check_usage(r, 1591, 175, LLM_UNSET, 0, LLM_UNSET);
	decode_free(dec);

	dec = rec("anthropic/messages/stream-text-after-tool-result.sse",
	    DECODE_ANTHROPIC_MESSAGES);
	r = decode_result(dec);
	ck_assert_ptr_nonnull(strstr(S(&r->choices[0].content),
	    "**Temperature:** 68\xc2\xb0" "F"));
	decode_free(dec);
}
END_TEST

START_TEST(test_anthropic_errors)
{
	REC(dec, "anthropic/errors/stream-error-overloaded.sse",
	    DECODE_ANTHROPIC_MESSAGES);
	const struct llm_result *r = decode_result(dec);

	ck_assert(r->error.present);
	ck_assert_str_eq(S(&r->error.type), "overloaded_error");
	ck_assert_str_eq(S(&r->error.message), "Overloaded");
	ck_assert(!r->complete);
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRUNCATED], 1);
	ck_assert_uint_eq(r->nchoices, 0);
	decode_free(dec);

	dec = rec("anthropic/errors/error-429-rate-limit.json",
	    DECODE_ANTHROPIC_MESSAGES);
	r = decode_result(dec);
	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->error.type), "rate_limit_error");
	ck_assert(starts_with(S(&r->error.message), "This request would exceed "
	    "your organization's rate limit"));
	decode_free(dec);
}
END_TEST

START_TEST(test_embeddings_and_models)
{
	REC(dec, "openai/embeddings/embeddings-base64.json", DECODE_EMBEDDINGS);
	const struct llm_result *r = decode_result(dec);

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->model), "text-embedding-3-small");
	ck_assert(r->has_embeddings);
	ck_assert_uint_eq(r->embeddings, 1);
	ck_assert_uint_eq(r->dimensions, 128);	/* dimensions=128 requested */
	check_usage(r, 4, LLM_UNSET, 4, LLM_UNSET, LLM_UNSET);
	decode_free(dec);

	dec = rec("openai/embeddings/embeddings-float-trimmed.json",
	    DECODE_EMBEDDINGS);
	r = decode_result(dec);
	ck_assert_uint_eq(r->embeddings, 2);
	ck_assert_uint_eq(r->dimensions, 5);
	check_usage(r, 12, LLM_UNSET, 12, LLM_UNSET, LLM_UNSET);
	decode_free(dec);

	dec = rec("openai/embeddings/error-404-model-not-found.json",
	    DECODE_EMBEDDINGS);
	r = decode_result(dec);
	ck_assert(!r->has_embeddings);
	ck_assert_str_eq(S(&r->error.code), "model_not_found");
	decode_free(dec);

	dec = rec("openai/models/models-list.json", DECODE_MODELS);
	r = decode_result(dec);
	ck_assert(clean(r));
	ck_assert(!r->error.present);
	ck_assert_uint_eq(r->nchoices, 0);
	decode_free(dec);
}
END_TEST

/* ---- hand-written fixtures ---- */

static void
same_answer(enum decode_kind kind, const char *sse, const char *json)
{
	char *ps = mine(sse), *pj = mine(json);
	char *a = render_file(ps, kind, true), *b = render_file(pj, kind, false);

	ck_assert_msg(strcmp(a, b) == 0, "%s vs %s\n%s\n%s", sse, json, a, b);
	free(a);
	free(b);
	free(ps);
	free(pj);
}

START_TEST(test_stream_equals_document)
{
	same_answer(DECODE_OPENAI_CHAT, "chat-n2.sse", "chat-n2.json");
	same_answer(DECODE_OPENAI_CHAT, "chat-crlf.sse", "chat-n2.json");
	same_answer(DECODE_OPENAI_CHAT, "chat-comments.sse", "chat-n2.json");
	same_answer(DECODE_OPENAI_RESPONSES, "responses-mixed.sse",
	    "responses-mixed.json");
	same_answer(DECODE_ANTHROPIC_MESSAGES, "anthropic-mixed.sse",
	    "anthropic-mixed.json");
	same_answer(DECODE_ANTHROPIC_MESSAGES, "anthropic-stop-sequence.sse",
	    "anthropic-stop-sequence.json");
}
END_TEST

static struct decoder *
own_file(const char *rel, enum decode_kind kind,
    const struct decode_limits *l)
{
	char *p = mine(rel);
	struct decoder *dec = decode_file(p, kind, ends_with(rel, ".sse"), l);

	free(p);
	return dec;
}

START_TEST(test_chat_n2)
{
	struct decoder *dec = own_file("chat-n2.sse", DECODE_OPENAI_CHAT, NULL);
	const struct llm_result *r = decode_result(dec);

	ck_assert(clean(r));
	ck_assert_uint_eq(r->nchoices, 2);
	ck_assert_str_eq(S(&r->choices[0].content),
	    "Paris is the capital of France.");
	ck_assert_str_eq(S(&r->choices[0].reasoning), "Two answers needed.");
	ck_assert_str_eq(S(&r->choices[0].finish_reason), "stop");
	ck_assert_uint_eq(r->choices[0].ntool_calls, 0);
	ck_assert_str_eq(S(&r->choices[1].content), "Let me check.");
	ck_assert_str_eq(S(&r->choices[1].finish_reason), "tool_calls");
	ck_assert_uint_eq(r->choices[1].ntool_calls, 2);
	check_tool(&r->choices[1].tool_calls[0], LLM_TOOL_FUNCTION, "function",
	    "call_A", "lookup", "{\"city\": \"Paris\"}");
	check_tool(&r->choices[1].tool_calls[1], LLM_TOOL_FUNCTION, "function",
	    "call_B", "weather", "{\"q\":\"Paris, FR\"}");
	check_usage(r, 20, 31, 51, 8, 5);
	decode_free(dec);
}
END_TEST

START_TEST(test_own_mixed_answers)
{
	struct decoder *dec = own_file("responses-mixed.sse",
	    DECODE_OPENAI_RESPONSES, NULL);
	const struct llm_result *r = decode_result(dec);
	const struct llm_choice *c = &r->choices[0];

	ck_assert(clean(r));
	ck_assert_str_eq(S(&r->status), "incomplete");
	ck_assert_str_eq(S(&c->finish_reason), "max_output_tokens");
	ck_assert_str_eq(S(&c->content), "Paris is sunny. More below.");
	ck_assert_str_eq(S(&c->refusal), "I can't share that.");
	ck_assert_str_eq(S(&c->reasoning), "**Plan**\n\nSearch, then call "
	    "tools.\n\n**Check**\n\nAll good.");
	ck_assert_uint_eq(c->citations, 1);
	check_tool(&c->tool_calls[0], LLM_TOOL_FUNCTION, "function_call",
	    "call_F", "get_weather", "{\"city\":\"Paris\"}");
	check_tool(&c->tool_calls[1], LLM_TOOL_CUSTOM, "custom_tool_call",
	    "call_C", "run_sql", "SELECT 1;");
	ck_assert_uint_eq(c->nitems, 1);
	ck_assert_str_eq(S(&c->items[0].type), "web_search_call");
	ck_assert_str_eq(S(&c->items[0].id), "ws_1");
	check_usage(r, 300, 64, 364, 100, 32);
	decode_free(dec);

	dec = own_file("anthropic-mixed.sse", DECODE_ANTHROPIC_MESSAGES, NULL);
	r = decode_result(dec);
	c = &r->choices[0];
	ck_assert(clean(r));
	ck_assert_str_eq(S(&c->content),
	    "Paris is the capital and has about 2.1 million people.");
	ck_assert_str_eq(S(&c->reasoning),
	    "I should search first.\nThen answer.\n\nNow the weather.");
	ck_assert_uint_eq(c->citations, 2);
	check_tool(&c->tool_calls[0], LLM_TOOL_SERVER, "server_tool_use",
	    "srvtoolu_01Test", "web_search", "{\"query\":\"population of Paris\"}");
	check_tool(&c->tool_calls[1], LLM_TOOL_FUNCTION, "tool_use",
	    "toolu_01Test", "get_weather", "{\"city\":\"Paris\",\"units\":"
	    "[\"metric\",\"\xc2\xb0" "C\"],\"detail\":{\"days\":3,\"hourly\":"
	    "false}}");
	ck_assert_str_eq(S(&c->items[0].type), "web_search_tool_result");
	check_usage(r, 2100, 180, LLM_UNSET, 4000, LLM_UNSET);
	ck_assert_int_eq(r->usage.cache_creation, 1500);
	decode_free(dec);

	dec = own_file("anthropic-stop-sequence.sse", DECODE_ANTHROPIC_MESSAGES,
	    NULL);
	r = decode_result(dec);
	ck_assert_str_eq(S(&r->choices[0].finish_reason), "stop_sequence");
	ck_assert_str_eq(S(&r->choices[0].stop_sequence), "###");
	ck_assert_str_eq(S(&r->choices[0].content), "1, 2, 3");
	ck_assert_int_eq(r->usage.output, 7);
	decode_free(dec);
}
END_TEST

START_TEST(test_midstream_errors)
{
	struct decoder *dec = own_file("chat-error-midstream.sse",
	    DECODE_OPENAI_CHAT, NULL);
	const struct llm_result *r = decode_result(dec);

	ck_assert_str_eq(S(&r->choices[0].content), "The answer is");
	ck_assert(r->error.present);
	ck_assert_str_eq(S(&r->error.type), "server_error");
	ck_assert_str_eq(S(&r->error.code), "");
	ck_assert_str_eq(S(&r->error.message), "The server had an error while "
	    "processing your request. Sorry about that!");
	ck_assert(!r->complete);
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRUNCATED], 1);
	ck_assert_uint_eq(r->notes[LLM_NOTE_PARTIAL_EVENT], 0);
	decode_free(dec);

	dec = own_file("responses-error-midstream.sse", DECODE_OPENAI_RESPONSES,
	    NULL);
	r = decode_result(dec);
	ck_assert_str_eq(S(&r->choices[0].content), "Partial answ");
	ck_assert_str_eq(S(&r->status), "in_progress");
	ck_assert_str_eq(S(&r->error.type), "");
	ck_assert_str_eq(S(&r->error.code), "server_error");
	ck_assert_str_eq(S(&r->error.message),
	    "The server had an error while processing your request.");
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRUNCATED], 1);
	decode_free(dec);

	dec = own_file("anthropic-overloaded-midstream.sse",
	    DECODE_ANTHROPIC_MESSAGES, NULL);
	r = decode_result(dec);
	ck_assert_str_eq(S(&r->id), "msg_test_overload");
	ck_assert_str_eq(S(&r->choices[0].content), "1, 2");
	ck_assert_str_eq(S(&r->choices[0].finish_reason), "");
	ck_assert_str_eq(S(&r->error.type), "overloaded_error");
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRUNCATED], 1);
	decode_free(dec);
}
END_TEST

START_TEST(test_truncated_stream)
{
	struct decoder *dec = own_file("chat-truncated.sse", DECODE_OPENAI_CHAT,
	    NULL);
	const struct llm_result *r = decode_result(dec);

	ck_assert(!r->complete);
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRUNCATED], 1);
	ck_assert_uint_eq(r->notes[LLM_NOTE_PARTIAL_EVENT], 1);
	ck_assert_uint_eq(r->notes[LLM_NOTE_INVALID_JSON], 0);
	check_tool(&r->choices[0].tool_calls[0], LLM_TOOL_FUNCTION, "function",
	    "call_T", "search", "{\"query\": \"weather");
	ck_assert_str_eq(S(&r->choices[0].finish_reason), "");
	decode_free(dec);
}
END_TEST

/* The connection drops midway: what arrived is kept, with the error. */
START_TEST(test_transport_error)
{
	char *path = mine("chat-n2.sse"), *buf, *cut;
	size_t len, b;
	struct decoder *dec = decode_new(DECODE_OPENAI_CHAT, true, NULL);
	const struct llm_result *r;
	json_t *j;

	buf = slurp(path, &len);
	cut = strstr(buf, "\" France.\"");	/* inside that event */
	ck_assert_ptr_nonnull(cut);
	decode_feed(dec, buf, (size_t)(cut - buf));
	/* the boundary is the end of the last whole event fed */
	for (b = (size_t)(cut - buf); b >= 2; b--)
		if (buf[b - 1] == '\n' && buf[b - 2] == '\n')
			break;
	ck_assert_uint_eq(decode_boundary(dec), b);
	decode_finish(dec, "Recv failure: Connection reset by peer");
	decode_finish(dec, "ignored");
	r = decode_result(dec);
	ck_assert_str_eq(S(&r->choices[0].content), "Paris is the capital of");
	ck_assert_str_eq(S(&r->choices[1].tool_calls[0].arguments),
	    "{\"city\"");
	ck_assert_str_eq(S(&r->transport_error),
	    "Recv failure: Connection reset by peer");
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRANSPORT_ERROR], 1);
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRUNCATED], 1);
	ck_assert_uint_eq(r->notes[LLM_NOTE_PARTIAL_EVENT], 1);
	j = llm_result_to_json(r);
	ck_assert_str_eq(json_string_value(json_object_get(j,
	    "transportError")), "Recv failure: Connection reset by peer");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j,
	    "notes"), "transportError")), 1);
	json_decref(j);
	decode_free(dec);
	free(buf);
	free(path);
}
END_TEST

START_TEST(test_oversized_event)
{
	struct decode_limits l = decode_default_limits;
	struct decoder *dec;
	const struct llm_result *r;

	l.max_event_size = 1024;
	dec = own_file("chat-oversized.sse", DECODE_OPENAI_CHAT, &l);
	r = decode_result(dec);
	/* the 3000-byte delta is dropped and noted; the rest is intact */
	ck_assert_uint_eq(r->notes[LLM_NOTE_OVERSIZED_EVENT], 1);
	ck_assert_str_eq(S(&r->choices[0].content), "ab");
	ck_assert_str_eq(S(&r->choices[0].finish_reason), "stop");
	ck_assert(r->complete);
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRUNCATED], 0);
	decode_free(dec);
	/* with the default limit nothing is lost */
	dec = own_file("chat-oversized.sse", DECODE_OPENAI_CHAT, NULL);
	r = decode_result(dec);
	ck_assert(clean(r));
	ck_assert_uint_eq(r->choices[0].content.len, 3002);
	decode_free(dec);
}
END_TEST

static const char *const two_byte_chars =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\""
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
    "\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"zz\"},"
    "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

START_TEST(test_text_cap)
{
	struct decode_limits l = decode_default_limits;
	const struct llm_result *r;
	struct decoder *dec;
	char *path, *full, *capped;
	json_t *a, *b;
	const char *ca, *cb;

	/* 64 bytes of "é": the cut at 51 falls inside a character */
	l.max_result_size = 52;
	dec = run_cuts(DECODE_OPENAI_CHAT, true, &l, two_byte_chars,
	    strlen(two_byte_chars), NULL, 0);
	r = decode_result(dec);
	ck_assert_uint_eq(r->choices[0].content.len, 50);
	ck_assert(r->choices[0].content.capped);
	ck_assert_uint_le(r->text_used, 52);
	ck_assert_uint_ge(r->notes[LLM_NOTE_TEXT_CAPPED], 2);
	ck_assert(r->complete);
	/* later text is not appended after the hole; the rendering is
	 * valid UTF-8 */
	capped = render(r);
	ck_assert_ptr_null(strstr(capped, "zz"));
	free(capped);
	decode_free(dec);

	/* a long real stream under a small budget keeps a prefix */
	path = mine("chat-n2.sse");
	l.max_result_size = 40;
	dec = decode_file(path, DECODE_OPENAI_CHAT, true, &l);
	full = render_file(path, DECODE_OPENAI_CHAT, true);
	capped = render(decode_result(dec));
	a = json_loads(full, 0, NULL);
	b = json_loads(capped, 0, NULL);
	ck_assert_ptr_nonnull(b);
	ca = json_string_value(json_object_get(a, "id"));
	cb = json_string_value(json_object_get(b, "id"));
	ck_assert_str_eq(ca, cb);
	ck_assert_uint_le(decode_result(dec)->text_used, 40);
	json_decref(a);
	json_decref(b);
	free(full);
	free(capped);
	free(path);
	decode_free(dec);
}
END_TEST

START_TEST(test_limits)
{
	struct decode_limits l = decode_default_limits;
	struct decoder *dec;
	const struct llm_result *r;
	static const char huge_index[] =
	    "data: {\"choices\":[{\"index\":100000000,\"delta\":{\"content\":"
	    "\"x\"}},{\"index\":-1,\"delta\":{}},{\"index\":0,\"delta\":{"
	    "\"tool_calls\":[{\"index\":99999999999,\"id\":\"c\"}]}}]}\n\n"
	    "data: {oops\n\ndata: [1]\n\ndata: [DONE]\n\n";

	/* body over max_body_size */
	l.max_body_size = 1000;
	dec = own_file("chat-n2.json", DECODE_OPENAI_CHAT, &l);
	r = decode_result(dec);
	ck_assert_uint_eq(r->notes[LLM_NOTE_BODY_TOO_LARGE], 1);
	ck_assert(!r->complete);
	ck_assert_uint_eq(r->nchoices, 0);
	decode_free(dec);

	/* choices and tool calls over the count limits */
	l = decode_default_limits;
	l.max_choices = 1;
	l.max_items = 1;
	dec = own_file("chat-n2.sse", DECODE_OPENAI_CHAT, &l);
	r = decode_result(dec);
	ck_assert_uint_eq(r->nchoices, 1);
	ck_assert_str_eq(S(&r->choices[0].content),
	    "Paris is the capital of France.");
	ck_assert_uint_gt(r->notes[LLM_NOTE_TOO_MANY], 0);
	decode_free(dec);
	l.max_choices = 2;
	dec = own_file("chat-n2.json", DECODE_OPENAI_CHAT, &l);
	r = decode_result(dec);
	ck_assert_uint_eq(r->choices[1].ntool_calls, 1);
	ck_assert_uint_eq(r->notes[LLM_NOTE_TOO_MANY], 1);
	decode_free(dec);

	/* indices from the network never size an array; bad payloads are
	 * counted and skipped */
	dec = run_cuts(DECODE_OPENAI_CHAT, true, NULL, huge_index,
	    strlen(huge_index), NULL, 0);
	r = decode_result(dec);
	ck_assert_uint_eq(r->notes[LLM_NOTE_TOO_MANY], 3);
	ck_assert_uint_eq(r->notes[LLM_NOTE_INVALID_JSON], 2);
	ck_assert_uint_eq(r->nchoices, 1);
	ck_assert_uint_eq(r->choices[0].ntool_calls, 0);
	ck_assert(r->complete);
	decode_free(dec);
}
END_TEST

START_TEST(test_take_result)
{
	struct decoder *dec = decode_new(DECODE_OPENAI_CHAT, false, NULL);
	static const char body[] = "{\"id\":\"x\",\"choices\":[]}";
	struct llm_result *res;

	decode_feed(dec, body, sizeof(body) - 1);
	ck_assert_ptr_null(decode_take_result(dec));	/* not finished */
	ck_assert_uint_eq(decode_boundary(dec), 0);
	decode_finish(dec, NULL);
	res = decode_take_result(dec);
	ck_assert_ptr_nonnull(res);
	ck_assert_ptr_null(decode_take_result(dec));
	decode_free(dec);
	ck_assert_str_eq(S(&res->id), "x");
	ck_assert(res->complete);
	llm_result_free(res);

	/* an empty body */
	dec = decode_new(DECODE_MODELS, false, NULL);
	decode_finish(dec, NULL);
	ck_assert_uint_eq(decode_result(dec)->notes[LLM_NOTE_INVALID_JSON], 1);
	decode_free(dec);
	dec = decode_new(DECODE_ANTHROPIC_MESSAGES, true, NULL);
	decode_feed(dec, "\r\n \n", 4);
	decode_finish(dec, NULL);
	ck_assert_uint_eq(decode_result(dec)->notes[LLM_NOTE_TRUNCATED], 1);
	decode_free(dec);
	ck_assert_str_eq(decode_kind_names[DECODE_ANTHROPIC_MESSAGES],
	    "anthropic_messages");
	ck_assert_str_eq(llm_note_names[LLM_NOTE_OVERSIZED_EVENT],
	    "oversized_event");
}
END_TEST

/* Error payload shapes seen from OpenAI-compatible servers. */
START_TEST(test_error_shapes)
{
	static const char *const bodies[] = {
		"data: {\"error\":\"rate limited\"}\n\n",
		"event: error\ndata: {\"error\":{\"code\":429,\"message\":\"slow "
		    "down\"}}\n\ndata: {\"error\":{\"message\":\"second\"}}\n\n",
	};
	struct decoder *dec;
	const struct llm_result *r;

	dec = run_cuts(DECODE_OPENAI_CHAT, true, NULL, bodies[0],
	    strlen(bodies[0]), NULL, 0);
	r = decode_result(dec);
	ck_assert(r->error.present);
	ck_assert_str_eq(S(&r->error.message), "rate limited");
	ck_assert_str_eq(S(&r->error.type), "");
	decode_free(dec);
	dec = run_cuts(DECODE_OPENAI_CHAT, true, NULL, bodies[1],
	    strlen(bodies[1]), NULL, 0);
	r = decode_result(dec);
	ck_assert_str_eq(S(&r->error.code), "429");
	ck_assert_str_eq(S(&r->error.message), "slow down");	/* first wins */
	ck_assert_uint_eq(r->notes[LLM_NOTE_TRUNCATED], 1);
	decode_free(dec);
}
END_TEST

/* ---- suite ---- */

static Suite *
decode_suite(void)
{
	Suite *s = suite_create("decode");
	TCase *tc = tcase_create("splits");
	TCase *te = tcase_create("expect");

	tcase_set_timeout(tc, 1800);
	tcase_set_timeout(te, 300);
	tcase_add_loop_test(tc, test_recorded_splits, 0, nrecorded);
	tcase_add_loop_test(tc, test_own_splits, 0, nown);
	tcase_add_test(te, test_recordings_present);
	tcase_add_test(te, test_chat_tool_call_include_usage);
	tcase_add_test(te, test_chat_parallel_tool_calls);
	tcase_add_test(te, test_chat_text_and_refusal);
	tcase_add_test(te, test_chat_errors);
	tcase_add_test(te, test_responses_text_and_function_call);
	tcase_add_test(te, test_responses_reasoning);
	tcase_add_test(te, test_responses_stream_error);
	tcase_add_test(te, test_responses_stream_equals_final_object);
	tcase_add_test(te, test_anthropic_tool_use);
	tcase_add_test(te, test_anthropic_thinking);
	tcase_add_test(te, test_anthropic_server_tool);
	tcase_add_test(te, test_anthropic_errors);
	tcase_add_test(te, test_embeddings_and_models);
	tcase_add_test(te, test_stream_equals_document);
	tcase_add_test(te, test_chat_n2);
	tcase_add_test(te, test_own_mixed_answers);
	tcase_add_test(te, test_midstream_errors);
	tcase_add_test(te, test_truncated_stream);
	tcase_add_test(te, test_transport_error);
	tcase_add_test(te, test_oversized_event);
	tcase_add_test(te, test_text_cap);
	tcase_add_test(te, test_limits);
	tcase_add_test(te, test_take_result);
	tcase_add_test(te, test_error_shapes);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, te);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	locate();
	printf("fixtures: %d recorded (%s), %d hand-written (%s)\n", nrecorded,
	    shared_dir != NULL ? shared_dir : "absent", nown, own_dir);
	sr = srunner_create(decode_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
