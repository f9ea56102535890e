/*
 * test_mark.c - mark_document(): document answers marked with their trace.
 *
 * Each case builds the struct request the server would have handed over
 * (route, trace id, sign and the encoded signature) and marks an answer of
 * the route's dialect.  Expected documents are written as a template whose
 * %s are the places the proxy inserts at: filled with "" the template is
 * the upstream's answer, filled with the signature or the tag it is what
 * the client must receive, byte for byte, so that "nothing else changed"
 * is checked too.  Every output is parsed back with jansson; signatures are
 * decoded with signature_find_last() and tagged arguments parsed as JSON;
 * the id maps (trace.c) must hold every tool call id and Responses id the
 * answer carried, signed or not.
 *
 * Each test runs in its own forked child (Check's default), so the id maps
 * start empty every time.
 */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mark.h"
#include "request.h"
#include "route.h"
#include "signature.h"
#include "trace.h"

#define TID "0190f5e2-7c1a-7b3e-9d4f-1a2b3c4d5e6f"
/* The tag as inserted into a JSON string (chat, Responses arguments). */
#define TAG_Q "\\\"_whyops_trace_id\\\":\\\"" TID "\\\""
/* The tag as inserted into an object (Anthropic input). */
#define TAG_O "\"_whyops_trace_id\":\"" TID "\""

#define CHAT "/v1/chat/completions"
#define RESPONSES "/v1/responses"
#define MESSAGES "/v1/messages"

static struct request rq;
static char sigbuf[(8 * SIGNATURE_ID_MAX + 2) * 3 + 1];

/* Strings made by a test, freed by the fixture after it. */
static char *arena[512];
static size_t narena;

static char *
keep(char *p)
{
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_lt(narena, sizeof(arena) / sizeof(arena[0]));
	arena[narena++] = p;
	return p;
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

static void
setup(void)
{
	ck_assert_int_eq(trace_map_init(1000, 60000), 0);
}

static void
teardown(void)
{
	trace_map_free();
	while (narena > 0)
		free(arena[--narena]);
}

/* The request as identify.c leaves it: sig only when signing. */
static void
request_for(const char *path, const char *id, bool sign)
{
	memset(&rq, 0, sizeof(rq));
	ck_assert_int_eq(route_match("POST", path, &rq.route), ROUTE_OK);
	ck_assert(trace_id_valid(id, strlen(id)));
	snprintf(rq.trace_id, sizeof(rq.trace_id), "%s", id);
	rq.mark_text_block = -1;
	rq.sign = sign;
	if (sign) {
		rq.sig_len = signature_encode(id, strlen(id), sigbuf);
		ck_assert_uint_gt(rq.sig_len, 0);
		sigbuf[rq.sig_len] = '\0';
		rq.sig = sigbuf;
	}
}

/* The marked document (kept), checked to be JSON; NULL when unchanged. */
static const char *
mark(const char *body)
{
	size_t len = 12345;
	char *out = mark_document(&rq, body, strlen(body), &len);
	json_error_t err;
	json_t *j;

	if (out == NULL)
		return NULL;
	keep(out);
	ck_assert_uint_eq(strlen(out), len);
	j = json_loadb(out, len, 0, &err);
	ck_assert_msg(j != NULL, "not JSON (%s at %d):\n%s", err.text,
	    err.position, out);
	json_decref(j);
	return out;
}

/* Marking body must give exactly want. */
static const char *
mark_expect(const char *body, const char *want)
{
	const char *out = mark(body);

	ck_assert_msg(out != NULL, "not marked:\n%s", body);
	ck_assert_str_eq(out, want);
	return out;
}

/* The value at a dotted path ("choices.0.message.content") of root. */
static json_t *
at(json_t *v, const char *path)
{
	char key[64];

	while (*path != '\0' && v != NULL) {
		size_t n = strcspn(path, ".");

		ck_assert_uint_lt(n, sizeof(key));
		memcpy(key, path, n);
		key[n] = '\0';
		path += n + (path[n] == '.');
		if (json_is_array(v))
			v = json_array_get(v, strtoul(key, NULL, 10));
		else
			v = json_object_get(v, key);
	}
	return v;
}

/* The string at path in the JSON text doc (kept). */
static const char *
str_at(const char *doc, const char *path)
{
	json_t *root = json_loads(doc, 0, NULL), *v;
	char *s;

	ck_assert_ptr_nonnull(root);
	v = at(root, path);
	ck_assert_msg(json_is_string(v), "no string at %s", path);
	ck_assert_uint_eq(strlen(json_string_value(v)), json_string_length(v));
	s = keep(strdup(json_string_value(v)));
	json_decref(root);
	return s;
}

/* text is visible followed by the signature of TID, and nothing else. */
static void
assert_signed(const char *text, const char *visible)
{
	char id[SIGNATURE_ID_MAX + 1] = "", *copy;
	size_t n = strlen(text), vlen = strlen(visible);

	ck_assert_uint_eq(signature_find_last(text, n, id), strlen(rq.trace_id));
	ck_assert_str_eq(id, rq.trace_id);
	ck_assert_uint_eq(n, vlen + rq.sig_len);
	ck_assert(memcmp(text, visible, vlen) == 0);
	ck_assert(memcmp(text + vlen, rq.sig, rq.sig_len) == 0);
	copy = keep(strdup(text));
	ck_assert_uint_eq(signature_strip(copy, n), vlen);
}

/* text carries no mark at all. */
static void
assert_unsigned(const char *text)
{
	ck_assert_ptr_null(strstr(text, "\xe2\x80\x8b"));
}

/* The JSON text args (tool arguments) equals the JSON text want. */
static void
assert_json(const char *args, const char *want)
{
	json_error_t err;
	json_t *a = json_loads(args, 0, &err), *w = json_loads(want, 0, NULL);

	ck_assert_msg(a != NULL, "arguments not JSON (%s): %s", err.text, args);
	ck_assert_ptr_nonnull(w);
	ck_assert_msg(json_equal(a, w), "arguments %s, expected %s", args, want);
	json_decref(a);
	json_decref(w);
}

static void
assert_mapped(const char *key)
{
	char out[TRACE_ID_MAX + 1] = "";

	ck_assert_msg(trace_map_get(key, out), "%s not in the id map", key);
	ck_assert_str_eq(out, rq.trace_id);
}

/* --- chat completions ---------------------------------------------------- */

static const char chat_text[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,"
    "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"It is sunny in Paris.%s\",\"refusal\":null},"
    "\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{"
    "\"prompt_tokens\":9,\"completion_tokens\":6,\"total_tokens\":15}}";

START_TEST(chat_text_signed)
{
	const char *out;

	request_for(CHAT, TID, true);
	out = mark_expect(fmt(chat_text, ""), fmt(chat_text, rq.sig));
	assert_signed(str_at(out, "choices.0.message.content"),
	    "It is sunny in Paris.");
}
END_TEST

/* Escapes stay as the upstream wrote them; only the insertion differs. */
START_TEST(chat_text_escapes)
{
	static const char doc[] =
	    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"He said \\\"caf\\u00e9\\\" \\\\ \\/ \\n\\t\\ud83d\\ude00"
	    "%s\"},\"finish_reason\":\"stop\"}]}";
	const char *out;

	request_for(CHAT, TID, true);
	out = mark_expect(fmt(doc, ""), fmt(doc, rq.sig));
	assert_signed(str_at(out, "choices.0.message.content"),
	    "He said \"caf\xc3\xa9\" \\ / \n\t\xf0\x9f\x98\x80");
}
END_TEST

/* A pretty-printed answer (some OpenAI-compatible servers send one). */
START_TEST(chat_text_pretty)
{
	static const char doc[] =
	    "{\n  \"choices\" : [\n    {\n      \"index\" : 0,\n"
	    "      \"message\" : {\n        \"role\" : \"assistant\",\n"
	    "        \"content\" : \"Hi!%s\"\n      },\n"
	    "      \"finish_reason\" : \"stop\"\n    }\n  ]\n}\n";
	const char *out;

	request_for(CHAT, TID, true);
	out = mark_expect(fmt(doc, ""), fmt(doc, rq.sig));
	assert_signed(str_at(out, "choices.0.message.content"), "Hi!");
}
END_TEST

START_TEST(chat_two_choices)
{
	static const char doc[] =
	    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"First.%s\"},\"finish_reason\":\"stop\"},{\"index\":1,"
	    "\"message\":{\"role\":\"assistant\",\"content\":\"Second.%s\"},"
	    "\"finish_reason\":\"stop\"}]}";
	const char *out;

	request_for(CHAT, TID, true);
	out = mark_expect(fmt(doc, "", ""), fmt(doc, rq.sig, rq.sig));
	assert_signed(str_at(out, "choices.0.message.content"), "First.");
	assert_signed(str_at(out, "choices.1.message.content"), "Second.");
}
END_TEST

static const char chat_tool[] =
    "{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion\",\"choices\":[{"
    "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
    "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{"
    "\"name\":\"get_weather\",\"arguments\":\"%s\"}}]},"
    "\"finish_reason\":\"tool_calls\"}]}";

START_TEST(chat_tool_only_tagged)
{
	const char *out;

	request_for(CHAT, TID, true);
	out = mark_expect(fmt(chat_tool, "{\\\"a\\\": 1}"),
	    fmt(chat_tool, "{\\\"a\\\": 1," TAG_Q "}"));
	assert_json(str_at(out, "choices.0.message.tool_calls.0.function."
	    "arguments"), "{\"a\": 1, \"_whyops_trace_id\": \"" TID "\"}");
	assert_unsigned(out);
	assert_mapped("call_1");
}
END_TEST

/* Arguments of every shape stay a JSON object, now with the member. */
START_TEST(chat_tool_argument_shapes)
{
	static const struct {
		const char *raw;	/* as it sits in the answer's JSON */
		const char *decoded;	/* what it means, without the tag */
	} cases[] = {
		{ "{}", "{}" },
		{ "{ }", "{}" },
		{ "{\\n}", "{}" },
		{ "{ \\t\\r\\n }", "{}" },
		{ "{\\n  \\\"a\\\": 1\\n}", "{\"a\": 1}" },
		{ "{\\\"a\\\":{\\\"b\\\":[1,\\\"}\\\"]}}",
		    "{\"a\": {\"b\": [1, \"}\"]}}" },
		{ "{\\\"s\\\": \\\"\\\\\\\"x\\\\\\\" \\\\u00e9\\\"}",
		    "{\"s\": \"\\\"x\\\" \\u00e9\"}" },
		{ "{\\\"s\\\": \\\"caf\\u00e9\\\"}", "{\"s\": \"caf\\u00e9\"}" },
		{ "  {\\\"a\\\": true}\\n", "{\"a\": true}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *out, *args;
		json_t *want = json_loads(cases[i].decoded, 0, NULL);
		char *wants;

		ck_assert_ptr_nonnull(want);
		json_object_set_new(want, "_whyops_trace_id", json_string(TID));
		wants = keep(json_dumps(want, JSON_COMPACT));
		json_decref(want);
		request_for(CHAT, TID, true);
		out = mark(fmt(chat_tool, cases[i].raw));
		ck_assert_msg(out != NULL, "case %zu not tagged", i);
		args = str_at(out, "choices.0.message.tool_calls.0.function."
		    "arguments");
		assert_json(args, wants);
	}
}
END_TEST

/* Arguments that are not an object are left alone; the id still maps. */
START_TEST(chat_tool_arguments_not_object)
{
	static const char *const raw[] = { "", "null", "[1, 2]", "42", "{" };

	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		request_for(CHAT, TID, true);
		ck_assert_msg(mark(fmt(chat_tool, raw[i])) == NULL,
		    "'%s' was changed", raw[i]);
		assert_mapped("call_1");
	}
}
END_TEST

START_TEST(chat_parallel_tool_calls)
{
	static const char doc[] =
	    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":null,\"tool_calls\":["
	    "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"f\","
	    "\"arguments\":\"{\\\"x\\\":1%s}\"}},"
	    "{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"g\","
	    "\"arguments\":\"{%s}\"}}]},\"finish_reason\":\"tool_calls\"}]}";

	request_for(CHAT, TID, true);
	mark_expect(fmt(doc, "", ""), fmt(doc, "," TAG_Q, TAG_Q));
	assert_mapped("call_a");
	assert_mapped("call_b");
}
END_TEST

/* Text wins: the signature goes into the content, arguments stay. */
START_TEST(chat_text_and_tool_call)
{
	static const char doc[] =
	    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"Let me check.%s\",\"tool_calls\":[{\"id\":\"call_t\","
	    "\"type\":\"function\",\"function\":{\"name\":\"f\","
	    "\"arguments\":\"{\\\"q\\\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}";

	request_for(CHAT, TID, true);
	mark_expect(fmt(doc, ""), fmt(doc, rq.sig));
	assert_mapped("call_t");
}
END_TEST

/* An empty content is no text: the call is tagged instead. */
START_TEST(chat_empty_content_tool_call)
{
	static const char doc[] =
	    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"\",\"tool_calls\":[{\"id\":\"call_e\","
	    "\"type\":\"function\",\"function\":{\"name\":\"f\","
	    "\"arguments\":\"{%s}\"}}]},\"finish_reason\":\"tool_calls\"}]}";

	request_for(CHAT, TID, true);
	mark_expect(fmt(doc, ""), fmt(doc, TAG_Q));
	assert_mapped("call_e");
}
END_TEST

/* n = 2, one choice with text and one with only a tool call. */
START_TEST(chat_mixed_choices)
{
	static const char doc[] =
	    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"Sure.%s\"},\"finish_reason\":\"stop\"},{\"index\":1,"
	    "\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
	    "[{\"id\":\"call_m\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"f\",\"arguments\":\"{\\\"k\\\":\\\"v\\\"%s}\"}}]},"
	    "\"finish_reason\":\"tool_calls\"}]}";

	request_for(CHAT, TID, true);
	mark_expect(fmt(doc, "", ""), fmt(doc, rq.sig, "," TAG_Q));
	assert_mapped("call_m");
}
END_TEST

/* More tool calls than the edit table holds: still JSON, every id mapped. */
START_TEST(chat_many_tool_calls)
{
	char *body = NULL, *ids[100];
	size_t len = 0, tagged = 0;
	FILE *f = open_memstream(&body, &len);
	const char *out;
	json_t *root, *calls;

	ck_assert_ptr_nonnull(f);
	fputs("{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"tool_calls\":[", f);
	for (int i = 0; i < 100; i++)
		fprintf(f, "%s{\"id\":\"call_%d\",\"type\":\"function\",\"function\":"
		    "{\"name\":\"f\",\"arguments\":\"{\\\"i\\\":%d}\"}}",
		    i ? "," : "", i, i);
	fputs("]},\"finish_reason\":\"tool_calls\"}]}", f);
	ck_assert_int_eq(fclose(f), 0);
	keep(body);
	request_for(CHAT, TID, true);
	out = mark(body);
	ck_assert_ptr_nonnull(out);
	root = json_loads(out, 0, NULL);
	calls = at(root, "choices.0.message.tool_calls");
	ck_assert_uint_eq(json_array_size(calls), 100);
	for (int i = 0; i < 100; i++) {
		const char *a = json_string_value(at(json_array_get(calls, (size_t)i),
		    "function.arguments"));
		json_t *args = json_loads(a, 0, NULL);

		ck_assert_ptr_nonnull(args);
		ck_assert_int_eq(json_integer_value(json_object_get(args, "i")), i);
		if (json_object_get(args, "_whyops_trace_id") != NULL) {
			ck_assert_str_eq(json_string_value(json_object_get(args,
			    "_whyops_trace_id")), TID);
			tagged++;
		}
		json_decref(args);
		ck_assert_int_ge(asprintf(&ids[i], "call_%d", i), 0);
		assert_mapped(keep(ids[i]));
	}
	ck_assert_uint_ge(tagged, 1);
	json_decref(root);
}
END_TEST

/* The longest trace id: 128 characters, a 3078-byte signature. */
START_TEST(chat_long_trace_id)
{
	char id[TRACE_ID_MAX + 1];
	const char *out;

	memset(id, 'z', TRACE_ID_MAX);
	id[TRACE_ID_MAX] = '\0';
	request_for(CHAT, id, true);
	ck_assert_uint_eq(rq.sig_len, signature_encoded_len(TRACE_ID_MAX));
	out = mark_expect(fmt(chat_text, ""), fmt(chat_text, rq.sig));
	assert_signed(str_at(out, "choices.0.message.content"),
	    "It is sunny in Paris.");
}
END_TEST

/* Nothing to mark: no choices, no text, a refusal. */
START_TEST(chat_nothing_to_mark)
{
	static const char *const docs[] = {
		"{\"choices\":[]}",
		"{\"object\":\"chat.completion\"}",
		"{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		    "\"content\":null,\"refusal\":\"I can't.\"}}]}",
		"{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		    "\"content\":\"\"}}]}",
		"[1,2,3]",
		"\"text\"",
	};

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		request_for(CHAT, TID, true);
		ck_assert_msg(mark(docs[i]) == NULL, "changed: %s", docs[i]);
	}
}
END_TEST

/* --- Responses ------------------------------------------------------------ */

START_TEST(responses_last_output_text)
{
	static const char doc[] =
	    "{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\","
	    "\"output\":[{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]},"
	    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
	    "\"content\":[{\"type\":\"output_text\",\"text\":\"A\","
	    "\"annotations\":[]}]},"
	    "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\","
	    "\"content\":[{\"type\":\"output_text\",\"text\":\"B\","
	    "\"annotations\":[]},{\"type\":\"refusal\",\"refusal\":\"no\"},"
	    "{\"type\":\"output_text\",\"text\":\"C \\\"q\\\"%s\","
	    "\"annotations\":[]}]}],\"usage\":{\"input_tokens\":3}}";
	const char *out;

	request_for(RESPONSES, TID, true);
	out = mark_expect(fmt(doc, ""), fmt(doc, rq.sig));
	assert_signed(str_at(out, "output.2.content.2.text"), "C \"q\"");
	assert_unsigned(str_at(out, "output.1.content.0.text"));
	assert_unsigned(str_at(out, "output.2.content.0.text"));
	assert_mapped("resp_1");
}
END_TEST

START_TEST(responses_function_call_only)
{
	static const char doc[] =
	    "{\"id\":\"resp_fc\",\"object\":\"response\",\"output\":["
	    "{\"id\":\"fc_1\",\"type\":\"function_call\",\"call_id\":\"call_r1\","
	    "\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1%s}\"},"
	    "{\"id\":\"fc_2\",\"type\":\"function_call\",\"call_id\":\"call_r2\","
	    "\"name\":\"g\",\"arguments\":\"{%s}\"}]}";
	const char *out;

	request_for(RESPONSES, TID, true);
	out = mark_expect(fmt(doc, "", ""), fmt(doc, "," TAG_Q, TAG_Q));
	assert_json(str_at(out, "output.0.arguments"),
	    "{\"x\":1,\"_whyops_trace_id\":\"" TID "\"}");
	assert_json(str_at(out, "output.1.arguments"),
	    "{\"_whyops_trace_id\":\"" TID "\"}");
	assert_mapped("resp_fc");
	assert_mapped("call_r1");
	assert_mapped("call_r2");
}
END_TEST

START_TEST(responses_text_and_function_call)
{
	static const char doc[] =
	    "{\"id\":\"resp_tf\",\"output\":["
	    "{\"type\":\"message\",\"role\":\"assistant\",\"content\":["
	    "{\"type\":\"output_text\",\"text\":\"Calling f.%s\"}]},"
	    "{\"type\":\"function_call\",\"call_id\":\"call_tf\",\"name\":\"f\","
	    "\"arguments\":\"{\\\"x\\\":1}\"}]}";

	request_for(RESPONSES, TID, true);
	mark_expect(fmt(doc, ""), fmt(doc, rq.sig));
	assert_mapped("resp_tf");
	assert_mapped("call_tf");
}
END_TEST

/* The response id alone (no output to mark) still reaches the map. */
START_TEST(responses_id_only)
{
	request_for(RESPONSES, TID, true);
	ck_assert_ptr_null(mark("{\"id\":\"resp_empty\",\"output\":[]}"));
	assert_mapped("resp_empty");
}
END_TEST

/* --- Anthropic messages --------------------------------------------------- */

START_TEST(anthropic_last_text_block)
{
	static const char doc[] =
	    "{\"id\":\"msg_a\",\"type\":\"message\",\"role\":\"assistant\","
	    "\"model\":\"claude-x\",\"content\":["
	    "{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"abc\"},"
	    "{\"type\":\"text\",\"text\":\"First.\"},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"t\","
	    "\"input\":{\"q\":1}},"
	    "{\"type\":\"text\",\"text\":\"Last \\u00e9.%s\"}],"
	    "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":5}}";
	const char *out;

	request_for(MESSAGES, TID, true);
	out = mark_expect(fmt(doc, ""), fmt(doc, rq.sig));
	assert_signed(str_at(out, "content.3.text"), "Last \xc3\xa9.");
	assert_unsigned(str_at(out, "content.1.text"));
	assert_mapped("toolu_1");
}
END_TEST

START_TEST(anthropic_tool_use_only)
{
	static const char doc[] =
	    "{\"id\":\"msg_t\",\"type\":\"message\",\"role\":\"assistant\","
	    "\"content\":["
	    "{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"t\","
	    "\"input\":{%s}},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"t\","
	    "\"input\":{%s\"q\": 2, \"r\": {\"s\": [1]}}},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_c\",\"name\":\"t\","
	    "\"input\":{%s }},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_d\",\"name\":\"t\","
	    "\"input\":{%s\n  \"q\": 3\n}}],\"stop_reason\":\"tool_use\"}";
	const char *out;

	request_for(MESSAGES, TID, true);
	out = mark_expect(fmt(doc, "", "", "", ""),
	    fmt(doc, TAG_O, TAG_O ",", TAG_O, TAG_O ","));
	assert_unsigned(out);
	{
		json_t *root = json_loads(out, 0, NULL);
		char *s;

		ck_assert_ptr_nonnull(root);
		s = keep(json_dumps(at(root, "content.1.input"), JSON_COMPACT));
		assert_json(s, "{\"q\":2,\"r\":{\"s\":[1]},\"_whyops_trace_id\":\""
		    TID "\"}");
		s = keep(json_dumps(at(root, "content.3.input"), JSON_COMPACT));
		assert_json(s, "{\"q\":3,\"_whyops_trace_id\":\"" TID "\"}");
		json_decref(root);
	}
	assert_mapped("toolu_a");
	assert_mapped("toolu_b");
	assert_mapped("toolu_c");
	assert_mapped("toolu_d");
}
END_TEST

/* --- not signing, not JSON, not a marked route ---------------------------- */

/* rq->sign false (JSON mode, X-WhyOps-Signature: off, signature = no):
 * nothing is inserted, but the ids still reach the maps. */
START_TEST(unsigned_fills_maps)
{
	static const struct {
		const char *path, *doc, *ids[3];
	} cases[] = {
		{ CHAT, "{\"choices\":[{\"index\":0,\"message\":{\"content\":"
		    "\"hi\"}}]}", { NULL } },
		{ CHAT, "{\"choices\":[{\"index\":0,\"message\":{\"content\":null,"
		    "\"tool_calls\":[{\"id\":\"call_u\",\"function\":{\"name\":\"f\","
		    "\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}", { "call_u", NULL } },
		{ RESPONSES, "{\"id\":\"resp_u\",\"output\":[{\"type\":"
		    "\"function_call\",\"call_id\":\"call_ru\",\"arguments\":\"{}\"}]}",
		    { "resp_u", "call_ru", NULL } },
		{ RESPONSES, "{\"id\":\"resp_v\",\"output\":[{\"type\":\"message\","
		    "\"content\":[{\"type\":\"output_text\",\"text\":\"x\"}]}]}",
		    { "resp_v", NULL } },
		{ MESSAGES, "{\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_u\","
		    "\"name\":\"t\",\"input\":{\"q\":1}}]}", { "toolu_u", NULL } },
		{ MESSAGES, "{\"content\":[{\"type\":\"text\",\"text\":\"x\"},"
		    "{\"type\":\"tool_use\",\"id\":\"toolu_v\",\"name\":\"t\","
		    "\"input\":{}}]}", { "toolu_v", NULL } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = 7;

		request_for(cases[i].path, TID, false);
		ck_assert_ptr_null(mark_document(&rq, cases[i].doc,
		    strlen(cases[i].doc), &len));
		for (size_t j = 0; cases[i].ids[j] != NULL; j++)
			assert_mapped(cases[i].ids[j]);
	}
}
END_TEST

START_TEST(invalid_json)
{
	static const char *const docs[] = {
		"", " ", "{", "{\"choices\":[", "{\"choices\":[]}x",
		"{\"choices\":[{\"message\":{\"content\":\"hi}}]}",
		"{\"id\":\"resp_bad\",\"output\":[}",
		"{\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_bad\","
		    "\"input\":{}},]}",
		"\xff\xfe",
	};
	static const char *const paths[] = { CHAT, RESPONSES, MESSAGES };
	char out[TRACE_ID_MAX + 1];

	for (size_t p = 0; p < 3; p++) {
		for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
			size_t len = 7;

			request_for(paths[p], TID, true);
			ck_assert_msg(mark_document(&rq, docs[i], strlen(docs[i]),
			    &len) == NULL, "'%s' marked", docs[i]);
		}
	}
	/* Nothing of an invalid document reaches the maps. */
	ck_assert(!trace_map_get("resp_bad", out));
	ck_assert(!trace_map_get("toolu_bad", out));
	ck_assert_uint_eq(trace_map_size(), 0);
}
END_TEST

/* Embeddings and models answers are never marked. */
START_TEST(other_routes)
{
	static const char doc[] =
	    "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"hi\"}}]}";
	size_t len = 7;

	memset(&rq, 0, sizeof(rq));
	ck_assert_int_eq(route_match("POST", "/v1/embeddings", &rq.route),
	    ROUTE_OK);
	snprintf(rq.trace_id, sizeof(rq.trace_id), "%s", TID);
	rq.sign = true;
	rq.sig_len = signature_encode(TID, strlen(TID), sigbuf);
	rq.sig = sigbuf;
	ck_assert_ptr_null(mark_document(&rq, doc, strlen(doc), &len));
	ck_assert_int_eq(route_match("GET", "/v1/models", &rq.route), ROUTE_OK);
	ck_assert_ptr_null(mark_document(&rq, doc, strlen(doc), &len));
}
END_TEST

/* The ids this proxy makes: UUID text, UUIDv7 layout, hex. */
START_TEST(id_texts)
{
	uint8_t b[16];
	char out[40];
	int i;

	for (i = 0; i < 16; i++)
		b[i] = (uint8_t)(i * 17);
	memset(out, '#', sizeof(out));
	trace_uuid_text(b, out);
	ck_assert(memcmp(out, "00112233-4455-6677-8899-aabbccddeeff#", 37) == 0);
	trace_hex_text(b + 14, 2, out);
	ck_assert(memcmp(out, "eeff", 4) == 0);
	for (i = 0; i < 100; i++) {
		trace_new_uuid7(0x0123456789abLL, out);
		ck_assert_uint_eq(strlen(out), 36);
		ck_assert_msg(memcmp(out, "01234567-89ab-7", 15) == 0, "%s", out);
		ck_assert_msg(strchr("89ab", out[19]) != NULL, "variant: %s", out);
		ck_assert(strspn(out, "0123456789abcdef-") == 36);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("mark");
	TCase *tc;
	SRunner *sr;
	int failed;

	tc = tcase_create("chat");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, id_texts);
	tcase_add_test(tc, chat_text_signed);
	tcase_add_test(tc, chat_text_escapes);
	tcase_add_test(tc, chat_text_pretty);
	tcase_add_test(tc, chat_two_choices);
	tcase_add_test(tc, chat_tool_only_tagged);
	tcase_add_test(tc, chat_tool_argument_shapes);
	tcase_add_test(tc, chat_tool_arguments_not_object);
	tcase_add_test(tc, chat_parallel_tool_calls);
	tcase_add_test(tc, chat_text_and_tool_call);
	tcase_add_test(tc, chat_empty_content_tool_call);
	tcase_add_test(tc, chat_mixed_choices);
	tcase_add_test(tc, chat_many_tool_calls);
	tcase_add_test(tc, chat_long_trace_id);
	tcase_add_test(tc, chat_nothing_to_mark);
	suite_add_tcase(s, tc);

	tc = tcase_create("responses");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, responses_last_output_text);
	tcase_add_test(tc, responses_function_call_only);
	tcase_add_test(tc, responses_text_and_function_call);
	tcase_add_test(tc, responses_id_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("anthropic");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, anthropic_last_text_block);
	tcase_add_test(tc, anthropic_tool_use_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("other");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, unsigned_fills_maps);
	tcase_add_test(tc, invalid_json);
	tcase_add_test(tc, other_routes);
	suite_add_tcase(s, tc);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
