/*
 * test_tracescan.c - trace ids from request bodies, and cleaned bodies.
 *
 * A case is a body template with %s where the marks go.  The body is the
 * template filled with signatures; the expected clean body is, for
 * signature-only cases, the same template filled with "" (byte identity
 * apart from the removed marks), and otherwise spelled out in full.  Every
 * clean body is also parsed back: valid JSON, no mark in any string, no
 * "_whyops_trace_id" in any arguments.
 */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "identify.h"
#include "signature.h"
#include "tracescan.h"

/* Strings made by a test, freed by the fixture after it. */
static char *arena[256];
static size_t narena;

static char *
keep(char *p)
{
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_lt(narena, sizeof(arena) / sizeof(arena[0]));
	arena[narena++] = p;
	return p;
}

static void
arena_free(void)
{
	while (narena > 0)
		free(arena[--narena]);
}

static struct tracescan_result res;

static void
res_free(void)
{
	tracescan_result_free(&res);
	arena_free();
}

static const char *
fmt(const char *f, ...)
{
	va_list ap;
	char *p = NULL;

	va_start(ap, f);
	ck_assert_int_ge(vasprintf(&p, f, ap), 0);
	va_end(ap);
	return keep(p);
}

static const char *
sig(const char *id)
{
	char *p = malloc(signature_encoded_len(strlen(id)) + 1);

	ck_assert_ptr_nonnull(p);
	p[signature_encode(id, strlen(id), p)] = '\0';
	return keep(p);
}

/* The same signature as \u escapes (hex case alternating). */
static const char *
sig_esc(const char *id)
{
	const char *raw = sig(id);
	size_t n = strlen(raw) / 3, i;
	char *p = malloc(n * 6 + 1);
	static const char hex[] = "bcdeBCDE";

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < n; i++)
		snprintf(p + i * 6, 7, "\\u200%c", hex[(i % 2) * 4 +
		    (unsigned char)raw[i * 3 + 2] - 0x8b]);
	return keep(p);
}

static void
scan(enum tracescan_dialect d, const char *body)
{
	ck_assert_int_eq(tracescan_run(d, body, strlen(body), &res), 0);
}

static void
assert_id(enum tracescan_source src, const char *id)
{
	ck_assert_str_eq(tracescan_source_names[res.source],
	    tracescan_source_names[src]);
	ck_assert_str_eq(res.trace_id, id);
}

static void
assert_ids(size_t n, ...)
{
	va_list ap;
	size_t i;

	ck_assert_uint_eq(res.ncall_ids, n);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		ck_assert_str_eq(res.call_ids[i], va_arg(ap, const char *));
	va_end(ap);
}

static bool
has_mark(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 2 < n; i++)
		if ((unsigned char)s[i] == 0xe2 &&
		    (unsigned char)s[i + 1] == 0x80 &&
		    (unsigned char)s[i + 2] >= 0x8b &&
		    (unsigned char)s[i + 2] <= 0x8e)
			return true;
	return false;
}

/* No mark anywhere, no trace id member in any object or arguments text. */
static void
check_tree(json_t *v)
{
	const char *k;
	json_t *m, *inner;
	size_t i;

	if (json_is_string(v)) {
		ck_assert(!has_mark(json_string_value(v),
		    json_string_length(v)));
		inner = json_loadb(json_string_value(v), json_string_length(v),
		    0, NULL);
		if (inner != NULL)
			check_tree(inner);
		json_decref(inner);
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, m) {
			ck_assert(!has_mark(k, strlen(k)));
			ck_assert_str_ne(k, TRACESCAN_ARG_KEY);
			check_tree(m);
		}
	} else if (json_is_array(v))
		json_array_foreach(v, i, m)
			check_tree(m);
}

/* want NULL: unchanged. */
static void
assert_clean(const char *want)
{
	json_t *root;

	if (want == NULL) {
		ck_assert_ptr_null(res.clean_body);
		ck_assert_uint_eq(res.clean_len, 0);
		return;
	}
	ck_assert_ptr_nonnull(res.clean_body);
	ck_assert_uint_eq(res.clean_len, strlen(want));
	ck_assert_str_eq(res.clean_body, want);
	root = json_loadb(res.clean_body, res.clean_len, 0, NULL);
	ck_assert_ptr_nonnull(root);
	check_tree(root);
	json_decref(root);
}

/* ---- chat completions ------------------------------------------------ */

#define CHAT_NEWEST "{\"model\":\"gpt-4o\",\"messages\":[" \
	"{\"role\":\"system\",\"content\":\"Be brief.\"}," \
	"{\"role\":\"user\",\"content\":\"hi \\u00e9\"}," \
	"{\"role\":\"assistant\",\"content\":\"Hello! \\ud83d\\ude00%s\"}," \
	"{\"role\":\"user\",\"content\":\"more\"}],\"stream\":true}"

START_TEST(chat_newest_raw)
{
	scan(TRACESCAN_CHAT, fmt(CHAT_NEWEST, sig("thread_V1StGXR8Z5jdHi6B")));
	assert_id(TRACESCAN_SIGNATURE, "thread_V1StGXR8Z5jdHi6B");
	assert_clean(fmt(CHAT_NEWEST, ""));
	assert_ids(0);
	ck_assert_ptr_null(res.previous_response_id);
}
END_TEST

START_TEST(chat_newest_escaped)
{
	scan(TRACESCAN_CHAT, fmt(CHAT_NEWEST, sig_esc("trace.esc:1")));
	assert_id(TRACESCAN_SIGNATURE, "trace.esc:1");
	assert_clean(fmt(CHAT_NEWEST, ""));
}
END_TEST

#define CHAT_OLDER "{\"messages\":[" \
	"{\"role\":\"user\",\"content\":\"q1\"}," \
	"{\"role\":\"assistant\",\"content\":\"a1%s\"}," \
	"{\"role\":\"user\",\"content\":\"q2\"}," \
	"{\"role\":\"assistant\",\"content\":[{\"type\":\"text\"," \
	"\"text\":\"a2%s\"},{\"type\":\"text\",\"text\":\"a2b%s\"}]}," \
	"{\"role\":\"user\",\"content\":\"q3%s\"}," \
	"{\"role\":\"assistant\",\"content\":\"a3 without\"}," \
	"{\"role\":\"user\",\"content\":\"q4\"}],\"model\":\"m\"}"

START_TEST(chat_older_turns)
{
	/* only the oldest turn is signed */
	scan(TRACESCAN_CHAT, fmt(CHAT_OLDER, sig("old"), "", "", ""));
	assert_id(TRACESCAN_SIGNATURE, "old");
	assert_clean(fmt(CHAT_OLDER, "", "", "", ""));
	tracescan_result_free(&res);
	/* a newer turn, in its first part; a user turn is not looked at */
	scan(TRACESCAN_CHAT, fmt(CHAT_OLDER, sig("old"), sig_esc("newer"), "",
	    sig("user_turn")));
	assert_id(TRACESCAN_SIGNATURE, "newer");
	assert_clean(fmt(CHAT_OLDER, "", "", "", ""));
	tracescan_result_free(&res);
	/* the last part of a turn first */
	scan(TRACESCAN_CHAT, fmt(CHAT_OLDER, "", sig("p1"), sig("p2"), ""));
	assert_id(TRACESCAN_SIGNATURE, "p2");
	tracescan_result_free(&res);
	/* a malformed one is no signature */
	scan(TRACESCAN_CHAT, fmt(CHAT_OLDER, "", "\\u200b\\u200c\\u200e", "",
	    ""));
	assert_id(TRACESCAN_NONE, "");
	assert_clean(fmt(CHAT_OLDER, "", "", "", ""));
}
END_TEST

#define CHAT_TOOLS "{\"model\":\"m\",\"messages\":[" \
	"{\"role\":\"user\",\"content\":\"weather?\"}," \
	"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[" \
	"{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"w\"," \
	"\"arguments\":\"%s\"}}," \
	"{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"w\"," \
	"\"arguments\":\"%s\"}}]}," \
	"{\"role\":\"tool\",\"tool_call_id\":\"call_a\",\"content\":\"sun\"}," \
	"{\"role\":\"tool\",\"tool_call_id\":\"call_b\",\"content\":\"rain\"}]," \
	"\"tools\":[]}"

START_TEST(chat_tool_args)
{
	scan(TRACESCAN_CHAT, fmt(CHAT_TOOLS,
	    "{\\\"city\\\":\\\"Paris\\\",\\\"_whyops_trace_id\\\":\\\"tr_1\\\"}",
	    "{\\\"city\\\": \\\"Oslo\\\", \\\"n\\\": 1.50}"));
	assert_id(TRACESCAN_TOOL_ARGS, "tr_1");
	assert_clean(fmt(CHAT_TOOLS, "{\\\"city\\\":\\\"Paris\\\"}",
	    "{\\\"city\\\": \\\"Oslo\\\", \\\"n\\\": 1.50}"));
	assert_ids(2, "call_b", "call_a");
	tracescan_result_free(&res);

	/* the newest call wins; every member goes, formatting stays */
	scan(TRACESCAN_CHAT, fmt(CHAT_TOOLS,
	    "{\\\"_whyops_trace_id\\\":\\\"tr_old\\\",\\\"a\\\":1}",
	    "{\\n  \\\"_whyops_trace_id\\\": \\\"tr_new\\\",\\n"
	    "  \\\"n\\\": 1.50,\\n  \\\"s\\\": \\\"\\\\u00e9\\\"\\n}"));
	assert_id(TRACESCAN_TOOL_ARGS, "tr_new");
	assert_clean(fmt(CHAT_TOOLS, "{\\\"a\\\":1}",
	    "{\\n  \\\"n\\\": 1.50,\\n  \\\"s\\\": \\\"\\\\u00e9\\\"\\n}"));
	tracescan_result_free(&res);

	/* the only member */
	scan(TRACESCAN_CHAT, fmt(CHAT_TOOLS,
	    "{ \\\"_whyops_trace_id\\\" : \\\"x\\\" }", "{}"));
	assert_id(TRACESCAN_TOOL_ARGS, "x");
	assert_clean(fmt(CHAT_TOOLS, "{  }", "{}"));
}
END_TEST

START_TEST(chat_tool_args_invalid)
{
	/* not a trace id, or not a string: ignored, but removed */
	scan(TRACESCAN_CHAT, fmt(CHAT_TOOLS,
	    "{\\\"_whyops_trace_id\\\":\\\"bad id\\\",\\\"k\\\":true}",
	    "{\\\"k\\\":false,\\\"_whyops_trace_id\\\":7}"));
	assert_id(TRACESCAN_NONE, "");
	assert_clean(fmt(CHAT_TOOLS, "{\\\"k\\\":true}", "{\\\"k\\\":false}"));
	tracescan_result_free(&res);
	/* in the middle, after whitespace */
	scan(TRACESCAN_CHAT, fmt(CHAT_TOOLS,
	    "{\\\"a\\\":1, \\\"_whyops_trace_id\\\":\\\"m\\\", \\\"b\\\":2}",
	    "[]"));
	assert_id(TRACESCAN_TOOL_ARGS, "m");
	assert_clean(fmt(CHAT_TOOLS, "{\\\"a\\\":1, \\\"b\\\":2}", "[]"));
	tracescan_result_free(&res);
	/* arguments that are not JSON, or the key only in a nested object */
	scan(TRACESCAN_CHAT, fmt(CHAT_TOOLS, "not json _whyops_trace_id",
	    "{\\\"o\\\":{\\\"_whyops_trace_id\\\":\\\"deep\\\"}}"));
	assert_id(TRACESCAN_NONE, "");
	assert_clean(NULL);
}
END_TEST

START_TEST(chat_precedence)
{
	const char *tpl = "{\"messages\":["
	    "{\"role\":\"assistant\",\"content\":\"hi%s\"},"
	    "{\"role\":\"user\",\"content\":\"go\"},"
	    "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\","
	    "\"function\":{\"name\":\"f\",\"arguments\":\"%s\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"%s\"}]}";

	/* an older signature beats a newer tool call */
	scan(TRACESCAN_CHAT, fmt(tpl, sig("by_sig"),
	    "{\\\"_whyops_trace_id\\\":\\\"by_args\\\"}", "r"));
	assert_id(TRACESCAN_SIGNATURE, "by_sig");
	assert_clean(fmt(tpl, "", "{}", "r"));
	assert_ids(1, "c1");
}
END_TEST

START_TEST(chat_call_ids)
{
	const char *body = "{\"messages\":["
	    "{\"role\":\"assistant\",\"tool_calls\":["
	    "{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},"
	    "{\"id\":\"b\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"1\"},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"b\",\"content\":\"2\"},"
	    "{\"role\":\"assistant\",\"tool_calls\":["
	    "{\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},"
	    "{\"id\":\"\",\"function\":{}},{\"id\":5},7]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"3\"}]}";

	scan(TRACESCAN_CHAT, body);
	assert_id(TRACESCAN_NONE, "");
	assert_ids(3, "c", "b", "a");
	assert_clean(NULL);
}
END_TEST

START_TEST(chat_clean_everywhere)
{
	/* marks outside assistant turns, in keys, in tools; parity kept */
	const char *tpl = "{\"model\":\"m%s\",\"messages\":["
	    "{\"role\":\"system\",\"content\":\"s%s\"},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
	    "\"text\":\"C:\\\\u200b %s\\\\\"}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"t\",\"content\":\"%s\"}],"
	    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
	    "\"description\":\"d%s\",\"parameters\":{\"k%s\":1}}}]}";

	scan(TRACESCAN_CHAT, fmt(tpl, "\xe2\x80\x8b", "\\u200C", sig("u"),
	    sig_esc("t"), "\\u200e\\u200E", "\xe2\x80\x8d"));
	assert_id(TRACESCAN_NONE, "");
	assert_clean(fmt(tpl, "", "", "", "", "", ""));
	tracescan_result_free(&res);
	/* the same without marks: unchanged */
	scan(TRACESCAN_CHAT, fmt(tpl, "", "", "", "", "", ""));
	assert_clean(NULL);
}
END_TEST

START_TEST(not_an_object)
{
	ck_assert_int_eq(tracescan_run(TRACESCAN_CHAT, "[1]", 3, &res), -1);
	ck_assert_ptr_null(res.clean_body);
	ck_assert_uint_eq(res.source, TRACESCAN_NONE);
	ck_assert_int_eq(tracescan_run(TRACESCAN_ANTHROPIC, "{", 1, &res), -1);
	/* a history of the wrong shape is no history */
	scan(TRACESCAN_CHAT, "{\"messages\":{\"role\":\"assistant\"}}");
	assert_id(TRACESCAN_NONE, "");
	assert_clean(NULL);
	tracescan_result_free(&res);
	scan(TRACESCAN_CHAT, "{\"messages\":[1,\"x\",null,[],{}]}");
	assert_clean(NULL);
}
END_TEST

/* ---- Responses -------------------------------------------------------- */

#define RESP_TPL "{\"model\":\"gpt-4.1\",\"previous_response_id\":%s," \
	"\"input\":[" \
	"{\"role\":\"user\",\"content\":\"hi\"}," \
	"{\"type\":\"message\",\"role\":\"assistant\",\"content\":[" \
	"{\"type\":\"output_text\",\"text\":\"Hi!%s\",\"annotations\":[]}]}," \
	"{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_9\"," \
	"\"name\":\"f\",\"arguments\":\"%s\"}," \
	"{\"type\":\"function_call_output\",\"call_id\":\"call_9\"," \
	"\"output\":\"ok\"}," \
	"{\"role\":\"assistant\",\"content\":\"plain%s\"}," \
	"{\"role\":\"user\",\"content\":[{\"type\":\"input_text\"," \
	"\"text\":\"again\"}]}]}"

START_TEST(responses_signature)
{
	/* the newest assistant item is an easy input message */
	scan(TRACESCAN_RESPONSES, fmt(RESP_TPL, "null", sig("older"), "{}",
	    sig("resp_trace")));
	assert_id(TRACESCAN_SIGNATURE, "resp_trace");
	assert_clean(fmt(RESP_TPL, "null", "", "{}", ""));
	assert_ids(1, "call_9");
	ck_assert_ptr_null(res.previous_response_id);
	tracescan_result_free(&res);
	/* an older output_text part, escaped */
	scan(TRACESCAN_RESPONSES, fmt(RESP_TPL, "\"resp_abc\"",
	    sig_esc("older"), "{}", ""));
	assert_id(TRACESCAN_SIGNATURE, "older");
	assert_clean(fmt(RESP_TPL, "\"resp_abc\"", "", "{}", ""));
	ck_assert_str_eq(res.previous_response_id, "resp_abc");
}
END_TEST

START_TEST(responses_tool_args)
{
	scan(TRACESCAN_RESPONSES, fmt(RESP_TPL, "\"resp_1\"", "",
	    "{\\\"_whyops_trace_id\\\":\\\"trace_r\\\",\\\"x\\\":[1,2]}", ""));
	assert_id(TRACESCAN_TOOL_ARGS, "trace_r");
	assert_clean(fmt(RESP_TPL, "\"resp_1\"", "", "{\\\"x\\\":[1,2]}", ""));
	assert_ids(1, "call_9");
	ck_assert_str_eq(res.previous_response_id, "resp_1");
	tracescan_result_free(&res);
	/* signature beats the tool call */
	scan(TRACESCAN_RESPONSES, fmt(RESP_TPL, "null", sig("s1"),
	    "{\\\"_whyops_trace_id\\\":\\\"trace_r\\\"}", ""));
	assert_id(TRACESCAN_SIGNATURE, "s1");
	assert_clean(fmt(RESP_TPL, "null", "", "{}", ""));
}
END_TEST

START_TEST(responses_shapes)
{
	/* input as a string; items that are not assistant messages */
	scan(TRACESCAN_RESPONSES, fmt("{\"input\":\"hello%s\"}", sig("x")));
	assert_id(TRACESCAN_NONE, "");
	assert_clean("{\"input\":\"hello\"}");
	tracescan_result_free(&res);
	scan(TRACESCAN_RESPONSES, fmt("{\"input\":["
	    "{\"type\":\"reasoning\",\"role\":\"assistant\",\"content\":\"%s\"},"
	    "{\"role\":\"user\",\"content\":\"%s\"},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\","
	    "\"text\":\"%s\"}]},"
	    "{\"type\":\"function_call_output\",\"call_id\":\"c2\"},"
	    "{\"type\":\"function_call\",\"call_id\":\"c1\",\"arguments\":\"{}\"}"
	    "],\"previous_response_id\":\"\"}", sig("r"), sig("u"), sig("f")));
	assert_id(TRACESCAN_NONE, "");
	assert_ids(2, "c1", "c2");
	ck_assert_ptr_null(res.previous_response_id);
	tracescan_result_free(&res);
	/* previous_response_id is a Responses thing only */
	scan(TRACESCAN_CHAT, "{\"previous_response_id\":\"resp_1\"}");
	ck_assert_ptr_null(res.previous_response_id);
}
END_TEST

/* ---- Anthropic messages ----------------------------------------------- */

#define ANTH_TPL "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024," \
	"\"system\":[{\"type\":\"text\",\"text\":\"sys%s\"}]," \
	"\"messages\":[" \
	"{\"role\":\"user\",\"content\":\"q\"}," \
	"{\"role\":\"assistant\",\"content\":\"first%s\"}," \
	"{\"role\":\"user\",\"content\":\"q2\"}," \
	"{\"role\":\"assistant\",\"content\":[" \
	"{\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"abc\"}," \
	"{\"type\":\"text\",\"text\":\"Let me check.%s\"}," \
	"{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get\"," \
	"\"input\":%s}]}," \
	"{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\"," \
	"\"tool_use_id\":\"toolu_1\",\"content\":\"sunny\"}]}]}"

START_TEST(anthropic_signature)
{
	scan(TRACESCAN_ANTHROPIC, fmt(ANTH_TPL, "", sig("a_old"),
	    sig("a_new"), "{}"));
	assert_id(TRACESCAN_SIGNATURE, "a_new");
	assert_clean(fmt(ANTH_TPL, "", "", "", "{}"));
	assert_ids(1, "toolu_1");
	tracescan_result_free(&res);
	/* only the older string content, escaped; a mark in system */
	scan(TRACESCAN_ANTHROPIC, fmt(ANTH_TPL, "\\u200d", sig_esc("a_old"),
	    "", "{}"));
	assert_id(TRACESCAN_SIGNATURE, "a_old");
	assert_clean(fmt(ANTH_TPL, "", "", "", "{}"));
}
END_TEST

START_TEST(anthropic_tool_use)
{
	scan(TRACESCAN_ANTHROPIC, fmt(ANTH_TPL, "", "", "",
	    "{\"city\": \"Paris\", \"_whyops_trace_id\": \"trace_a\", "
	    "\"n\": 1.0}"));
	assert_id(TRACESCAN_TOOL_ARGS, "trace_a");
	assert_clean(fmt(ANTH_TPL, "", "", "",
	    "{\"city\": \"Paris\", \"n\": 1.0}"));
	tracescan_result_free(&res);
	/* an escaped member name, repeated: the last counts, all go */
	scan(TRACESCAN_ANTHROPIC, fmt(ANTH_TPL, "", "", "",
	    "{\"\\u005fwhyops_trace_id\":\"first\",\"x\":{\"y\":[1e2]},"
	    "\"_whyops_trace_id\":\"last\"}"));
	assert_id(TRACESCAN_TOOL_ARGS, "last");
	assert_clean(fmt(ANTH_TPL, "", "", "", "{\"x\":{\"y\":[1e2]}}"));
	tracescan_result_free(&res);
	/* pretty printed, with marks elsewhere too */
	scan(TRACESCAN_ANTHROPIC, fmt(ANTH_TPL, "\xe2\x80\x8c", "", "",
	    "{\n    \"_whyops_trace_id\": \"tp\",\n    \"q\": \"v\"\n  }"));
	assert_id(TRACESCAN_TOOL_ARGS, "tp");
	assert_clean(fmt(ANTH_TPL, "", "", "",
	    "{\n    \"q\": \"v\"\n  }"));
	tracescan_result_free(&res);
	/* signature wins over the tool_use of the same turn */
	scan(TRACESCAN_ANTHROPIC, fmt(ANTH_TPL, "", "", sig("sig_wins"),
	    "{\"_whyops_trace_id\":\"args\"}"));
	assert_id(TRACESCAN_SIGNATURE, "sig_wins");
	assert_clean(fmt(ANTH_TPL, "", "", "", "{}"));
	tracescan_result_free(&res);
	/* nothing to do */
	scan(TRACESCAN_ANTHROPIC, fmt(ANTH_TPL, "", "", "", "{\"a\":1}"));
	assert_id(TRACESCAN_NONE, "");
	assert_clean(NULL);
}
END_TEST

START_TEST(anthropic_call_ids)
{
	scan(TRACESCAN_ANTHROPIC, "{\"messages\":["
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
	    "\"id\":\"tu_1\",\"input\":{}},{\"type\":\"tool_use\","
	    "\"id\":\"tu_2\",\"input\":{}}]},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
	    "\"tool_use_id\":\"tu_1\"},{\"type\":\"tool_result\","
	    "\"tool_use_id\":\"tu_2\"},{\"type\":\"text\",\"text\":\"x\"}]},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
	    "\"id\":\"tu_3\",\"input\":{\"_whyops_trace_id\":\"z\"}}]}]}");
	assert_id(TRACESCAN_TOOL_ARGS, "z");
	assert_ids(3, "tu_3", "tu_2", "tu_1");
	ck_assert_ptr_nonnull(res.clean_body);
}
END_TEST

START_TEST(big_history)
{
	/* many turns: the only signature is in the first */
	char *body = malloc(1 << 20);
	size_t len, i;

	ck_assert_ptr_nonnull(body);
	keep(body);
	len = (size_t)sprintf(body, "{\"messages\":[{\"role\":\"assistant\","
	    "\"content\":\"s%s\"}", sig("first_turn"));
	for (i = 0; i < 2000; i++)
		len += (size_t)sprintf(body + len, ",{\"role\":\"%s\","
		    "\"content\":\"turn %zu\"}", i % 2 ? "user" : "assistant",
		    i);
	strcpy(body + len, "]}");
	scan(TRACESCAN_CHAT, body);
	assert_id(TRACESCAN_SIGNATURE, "first_turn");
	ck_assert_ptr_nonnull(res.clean_body);
	ck_assert_uint_eq(res.clean_len, strlen(body) -
	    signature_encoded_len(10));
}
END_TEST

/* The pre-filter of identify.c, against the plain definition it replaced
 * (one memmem per needle): known cases, then random bodies built from the
 * needles' pieces so that near-misses are frequent. */
static bool
history_reference(const char *b, size_t n)
{
	static const char *const needles[] = { "_whyops_trace_id", "call_id",
	    "tool_use", "tool_calls", "previous_response_id", NULL };
	const char *end = b + n, *p;

	for (p = b; (p = memmem(p, (size_t)(end - p), "\xe2\x80", 2)) != NULL;
	    p += 2)
		if (p + 2 < end && (unsigned char)p[2] >= 0x8b &&
		    (unsigned char)p[2] <= 0x8e)
			return true;
	for (p = b; (p = memmem(p, (size_t)(end - p), "\\u200", 5)) != NULL;
	    p += 5)
		if (p + 5 < end && p[5] != '\0' && strchr("bcdeBCDE", p[5]))
			return true;
	for (size_t i = 0; needles[i] != NULL; i++)
		if (memmem(b, n, needles[i], strlen(needles[i])) != NULL)
			return true;
	return false;
}

START_TEST(history_prefilter)
{
	static const char *const yes[] = { "_whyops_trace_id", "xcall_id",
	    "tool_use\"", "{\"tool_calls\":[]}", "previous_response_id",
	    "hi\xe2\x80\x8b", "\xe2\x80\x8e", "a\\u200b", "\\u200E",
	    "__whyops_trace_id", "tool_calls_id" };
	static const char *const no[] = { "", "call-id", "tool_us", "ool_use",
	    "revious_response_id", "_whyops_trace_i", "\xe2\x80\x8a",
	    "\xe2\x80", "\xe2\x80\x8f", "\\u200a", "\\u200", "\\u20", "__",
	    "\xe2\xe2\x80\x93", "\\\\u200f" };
	static const char *const pieces[] = { "_", "call", "_id", "tool",
	    "_use", "_calls", "previous", "_response", "_whyops", "_trace",
	    "\xe2", "\x80", "\x8b", "\x8f", "\\", "u200", "b", "a", "E",
	    "x", " ", "\"" };
	char body[64];
	size_t i, k, n;
	unsigned seed = 12345;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(identify_may_have_history(yes[i], strlen(yes[i])),
		    "%s", yes[i]);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(!identify_may_have_history(no[i], strlen(no[i])),
		    "%s", no[i]);
	ck_assert(!identify_may_have_history(NULL, 0));
	for (i = 0; i < 200000; i++) {
		n = 0;
		for (k = 0; k < 8; k++) {
			seed = seed * 1103515245 + 12345;
			const char *pc = pieces[(seed >> 16) %
			    (sizeof(pieces) / sizeof(pieces[0]))];
			if (n + strlen(pc) > sizeof(body))
				break;
			memcpy(body + n, pc, strlen(pc));
			n += strlen(pc);
		}
		ck_assert_msg(identify_may_have_history(body, n) ==
		    history_reference(body, n), "%.*s", (int)n, body);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tracescan");
	TCase *tc = tcase_create("dialects");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, NULL, res_free);
	tcase_add_test(tc, history_prefilter);
	tcase_add_test(tc, chat_newest_raw);
	tcase_add_test(tc, chat_newest_escaped);
	tcase_add_test(tc, chat_older_turns);
	tcase_add_test(tc, chat_tool_args);
	tcase_add_test(tc, chat_tool_args_invalid);
	tcase_add_test(tc, chat_precedence);
	tcase_add_test(tc, chat_call_ids);
	tcase_add_test(tc, chat_clean_everywhere);
	tcase_add_test(tc, not_an_object);
	tcase_add_test(tc, responses_signature);
	tcase_add_test(tc, responses_tool_args);
	tcase_add_test(tc, responses_shapes);
	tcase_add_test(tc, anthropic_signature);
	tcase_add_test(tc, anthropic_tool_use);
	tcase_add_test(tc, anthropic_call_ids);
	tcase_add_test(tc, big_history);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
