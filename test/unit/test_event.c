/*
 * test_event.c - the telemetry events built from hand-made records.
 *
 * Each test fills a struct record the way the request path does: identity,
 * timings, the raw request body, and an llm_result produced by running the
 * real decoder (decode.h) over a small literal upstream body.  Then
 * event_build() writes text; events_of() parses every line back with
 * jansson (each must be one JSON object, and the lines exactly as many as
 * event_build() says), and the result is checked field by field: event
 * types and their order,
 * the envelope, identity copied from the record, usage mapping, content
 * shapes, and, with capture = metadata, that no marker string planted in
 * any text of the request or the answer appears anywhere in the events.
 *
 * JSON literals are written with single quotes (J() turns them into double
 * quotes) so that they stay readable; none of the texts needs a quote.
 *
 * With WHYOPS_EVENT_EXAMPLES=DIR the tests also write one example event of
 * each type to DIR/<eventType>.json (indented), the source of the examples
 * in whyops-events(7).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* asprintf */
#endif

#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "decode.h"
#include "event.h"
#include "record.h"

#define START_MS	1795824600123LL	/* 2026-11-28T00:10:00.123Z */
#define START_ISO	"2026-11-28T00:10:00.123Z"
#define END_ISO		"2026-11-28T00:10:00.536Z"	/* + 412.5 ms */
#define NOW_MS		(START_MS + 2000)
#define NOW_ISO		"2026-11-28T00:10:02.123Z"
#define NOW_HEX		"01a21f7c-cc0b"		/* NOW_MS, 48 bits */

/* ---- helpers ---- */

/* event_build()'s lines as a JSON array of the parsed envelopes. */
static json_t *
events_of(const struct record *r, int64_t now_ms)
{
	struct buf b = { 0 };
	json_t *arr = json_array(), *v;
	json_error_t err;
	size_t off = 0, len;
	int n, i;

	buf_append(&b, "prefix", 7);	/* appends after what is there */
	off = 7;
	n = event_build(r, now_ms, &b);
	ck_assert_int_ge(n, 0);
	for (i = 0; i < n; i++) {
		ck_assert_uint_lt(off, b.len);
		len = strlen(b.data + off);
		ck_assert_ptr_null(memchr(b.data + off, '\n', len));
		v = json_loadb(b.data + off, len, 0, &err);
		ck_assert_msg(v != NULL, "event %d: %s: %s", i, err.text,
		    b.data + off);
		ck_assert(json_is_object(v));
		json_array_append_new(arr, v);
		off += len + 1;
	}
	ck_assert_uint_eq(off, b.len);
	buf_free(&b);
	return arr;
}

/* A heap copy of s with every ' turned into ". */
static char *
J(const char *s)
{
	char *d = strdup(s), *p;

	ck_assert_ptr_nonnull(d);
	for (p = d; *p; p++)
		if (*p == '\'')
			*p = '"';
	return d;
}

static json_t *
JV(const char *s)
{
	char *t = J(s);
	json_error_t err;
	json_t *v = json_loads(t, JSON_DECODE_ANY, &err);

	ck_assert_msg(v != NULL, "bad literal: %s: %s", err.text, t);
	free(t);
	return v;
}

static struct record *
rec_new(const char *endpoint, const char *provider_type, const char *body)
{
	struct record *r = record_new();
	bool anthropic = strcmp(provider_type, "anthropic") == 0;

	r->request_id = strdup("req_7f3a");
	r->trace_id = strdup("trace-5b1c");
	r->trace_source = strdup("header");
	r->span_id = strdup("0123456789abcdef");
	r->key_name = strdup("ci-bot");
	r->project = strdup("shop");
	r->environment = strdup("prod");
	r->agent_name = strdup("support-agent");
	r->endpoint = strdup(endpoint);
	r->provider = strdup(anthropic ? "claude" : "oai");
	r->provider_type = strdup(provider_type);
	r->requested_model = strdup(anthropic ? "claude/claude-sonnet-4-5" :
	    "oai/gpt-4o-mini");
	r->upstream_model = strdup(anthropic ? "claude-sonnet-4-5" :
	    "gpt-4o-mini");
	if (body != NULL) {
		r->request_body = J(body);
		r->request_len = strlen(r->request_body);
	}
	r->upstream_status = 200;
	r->client_status = 200;
	r->start_unix_ms = START_MS;
	r->ttfb_ms = 120.5;
	r->ttft_ms = 130.25;
	r->total_ms = 412.5;
	r->upstream_ms = 400.25;
	r->overhead_ms = 12.25;
	r->capture_content = true;
	return r;
}

/* Runs the real decoder over a literal body (quotes as in J()). */
static struct llm_result *
decode_body(enum decode_kind kind, bool streamed, const char *body,
    const char *transport_error)
{
	struct decoder *dec = decode_new(kind, streamed, NULL);
	char *b = J(body);
	struct llm_result *res;

	ck_assert_int_eq(decode_feed(dec, b, strlen(b)), 0);
	decode_finish(dec, transport_error);
	res = decode_take_result(dec);
	ck_assert_ptr_nonnull(res);
	decode_free(dec);
	free(b);
	return res;
}

static json_t *
payload(json_t *events, size_t i)
{
	json_t *p = json_object_get(json_array_get(events, i), "payload");

	ck_assert_msg(json_is_object(p), "no event %zu", i);
	return p;
}

static json_t *
content(json_t *events, size_t i)
{
	return json_object_get(payload(events, i), "content");
}

static json_t *
meta(json_t *events, size_t i)
{
	return json_object_get(payload(events, i), "metadata");
}

static const char *
str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	ck_assert_msg(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

static char *
dump(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
	    JSON_ENCODE_ANY);

	ck_assert_ptr_nonnull(s);
	return s;
}

/* v must equal the literal. */
static void
expect_json(json_t *v, const char *literal)
{
	json_t *want = JV(literal);
	char *got = dump(v), *w = dump(want);

	ck_assert_msg(json_equal(v, want), "got  %s\nwant %s", got, w);
	free(got);
	free(w);
	json_decref(want);
}

static void
expect_types(json_t *events, const char *const *types)
{
	size_t i;

	for (i = 0; types[i] != NULL; i++)
		ck_assert_str_eq(str(payload(events, i), "eventType"),
		    types[i]);
	ck_assert_uint_eq(json_array_size(events), i);
}

static void
expect_absent(json_t *events, const char *marker)
{
	char *s = dump(events);

	ck_assert_msg(strstr(s, marker) == NULL, "%s leaked: %s", marker, s);
	free(s);
}

static const char *const uuid7_re =
    "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$";

/* What every event of every call must have. */
static void
check_envelopes(json_t *events, const struct record *r)
{
	json_t *env, *p;
	regex_t re;
	size_t i, j;

	ck_assert_int_eq(regcomp(&re, uuid7_re, REG_EXTENDED | REG_NOSUB), 0);
	json_array_foreach(events, i, env) {
		ck_assert_uint_eq(json_object_size(env), 4);
		ck_assert_str_eq(str(env, "source"), "proxy");
		ck_assert(json_integer_value(json_object_get(env,
		    "retryCount")) == 0 && json_is_integer(json_object_get(
		    env, "retryCount")));
		ck_assert_str_eq(str(env, "enqueuedAt"), NOW_ISO);
		p = json_object_get(env, "payload");
		ck_assert_int_eq(json_integer_value(json_object_get(p,
		    "schemaVersion")), EVENT_SCHEMA_VERSION);
		ck_assert_int_eq(regexec(&re, str(p, "eventId"), 0, NULL, 0),
		    0);
		ck_assert_msg(strncmp(str(p, "eventId"), NOW_HEX, 13) == 0,
		    "eventId %s does not start with now", str(p, "eventId"));
		ck_assert_str_eq(str(p, "idempotencyKey"), str(p, "eventId"));
		ck_assert_str_eq(str(p, "traceId"), r->trace_id);
		ck_assert_str_eq(str(p, "spanId"), r->span_id);
		ck_assert_str_eq(str(p, "agentName"), r->agent_name);
		ck_assert_str_eq(str(p, "keyName"), r->key_name);
		ck_assert_str_eq(str(p, "projectId"), r->project);
		ck_assert_str_eq(str(p, "environmentId"), r->environment);
		ck_assert_str_eq(str(p, "requestId"), r->request_id);
		ck_assert(json_is_object(json_object_get(p, "content")));
		ck_assert(json_is_object(json_object_get(p, "metadata")));
		ck_assert_str_eq(str(json_object_get(p, "metadata"),
		    "provider"), r->provider_type);
		ck_assert_str_eq(str(json_object_get(p, "metadata"),
		    "capture"), r->capture_content ? "full" : "metadata");
		/* timestamps: the request at the start, the rest at the end */
		ck_assert_str_eq(str(p, "timestamp"), i == 0 ? START_ISO :
		    END_ISO);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(str(p, "eventId"), str(payload(events,
			    j), "eventId"));
	}
	regfree(&re);
}

/* Only the event that closes the call carries usage. */
static void
check_usage_once(json_t *events, size_t carrier)
{
	size_t i;

	for (i = 0; i < json_array_size(events); i++)
		if (i != carrier)
			ck_assert_ptr_null(json_object_get(meta(events, i),
			    "usage"));
}

static json_t *
build(struct record *r)
{
	json_t *events = events_of(r, NOW_MS);

	ck_assert(json_is_array(events));
	check_envelopes(events, r);
	return events;
}

/* With WHYOPS_EVENT_EXAMPLES set: DIR/<eventType>.json */
static void
example_save(json_t *events, size_t i)
{
	const char *dir = getenv("WHYOPS_EVENT_EXAMPLES");
	char *path;

	if (dir == NULL)
		return;
	ck_assert_int_ge(asprintf(&path, "%s/%s.json", dir,
	    str(payload(events, i), "eventType")), 0);
	ck_assert_int_eq(json_dump_file(json_array_get(events, i), path,
	    JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
	free(path);
}

/* ---- request bodies and answers used by several tests ---- */

static const char chat_text_req[] =
    "{'model':'oai/gpt-4o-mini','messages':["
    "{'role':'system','content':'You answer in one sentence.'},"
    "{'role':'user','content':'Is the Paris store open on Sunday?'}],"
    "'temperature':0.5,'max_tokens':200,'top_p':0.75}";

static const char chat_text_resp[] =
    "{'id':'chatcmpl-9x1','object':'chat.completion','created':1795824600,"
    "'model':'gpt-4o-mini-2024-07-18','choices':[{'index':0,'message':"
    "{'role':'assistant','content':'Yes, from 10:00 to 18:00.',"
    "'refusal':null},'finish_reason':'stop'}],'usage':{'prompt_tokens':31,"
    "'completion_tokens':9,'total_tokens':40,'prompt_tokens_details':"
    "{'cached_tokens':0},'completion_tokens_details':"
    "{'reasoning_tokens':0}}}";

static const char chat_tools_req[] =
    "{'model':'oai/gpt-4o-mini','stream':true,'stream_options':"
    "{'include_usage':true},'messages':[{'role':'user','content':"
    "'Weather in Paris?'}],'tool_choice':'auto','tools':[{'type':"
    "'function','function':{'name':'get_weather','description':"
    "'Current weather for a city.','parameters':{'type':'object',"
    "'properties':{'city':{'type':'string'}}}}}]}";

/* streamed: the arguments arrive in two pieces; no total_tokens */
static const char chat_tools_sse[] =
    "data: {'id':'c1','object':'chat.completion.chunk','model':"
    "'gpt-4o-mini-2024-07-18','choices':[{'index':0,'delta':{'role':"
    "'assistant','content':null,'tool_calls':[{'index':0,'id':"
    "'call_Wx1','type':'function','function':{'name':'get_weather',"
    "'arguments':''}}]},'finish_reason':null}]}\n\n"
    "data: {'id':'c1','object':'chat.completion.chunk','model':"
    "'gpt-4o-mini-2024-07-18','choices':[{'index':0,'delta':"
    "{'tool_calls':[{'index':0,'function':{'arguments':'{\\'city\\''}}]},"
    "'finish_reason':null}]}\n\n"
    "data: {'id':'c1','object':'chat.completion.chunk','model':"
    "'gpt-4o-mini-2024-07-18','choices':[{'index':0,'delta':"
    "{'tool_calls':[{'index':0,'function':{'arguments':':\\'Paris\\'}'}}]},"
    "'finish_reason':null}]}\n\n"
    "data: {'id':'c1','object':'chat.completion.chunk','model':"
    "'gpt-4o-mini-2024-07-18','choices':[{'index':0,'delta':{},"
    "'finish_reason':'tool_calls'}]}\n\n"
    "data: {'id':'c1','object':'chat.completion.chunk','model':"
    "'gpt-4o-mini-2024-07-18','choices':[],'usage':{'prompt_tokens':52,"
    "'completion_tokens':15}}\n\n"
    "data: [DONE]\n\n";

static const char anthropic_req[] =
    "{'model':'claude/claude-sonnet-4-5','max_tokens':2048,"
    "'thinking':{'type':'enabled','budget_tokens':1024},"
    "'system':[{'type':'text','text':'You are the store assistant.'},"
    "{'type':'text','text':'Use tools for live data.'}],"
    "'tools':[{'name':'get_weather','description':'Current weather.',"
    "'input_schema':{'type':'object','properties':{'city':"
    "{'type':'string'}}}}],"
    "'messages':[{'role':'user','content':[{'type':'text','text':"
    "'Should I bring an umbrella to the Paris store?'}]}]}";

static const char anthropic_resp[] =
    "{'id':'msg_01A','type':'message','role':'assistant','model':"
    "'claude-sonnet-4-5-20250929','content':[{'type':'thinking',"
    "'thinking':'The user needs the forecast for Paris.','signature':"
    "'EqQBCkYIB'},{'type':'tool_use','id':'toolu_01B','name':"
    "'get_weather','input':{'city':'Paris', 'units': 'c'}}],"
    "'stop_reason':'tool_use','stop_sequence':null,'usage':"
    "{'input_tokens':410,'cache_creation_input_tokens':0,"
    "'cache_read_input_tokens':1200,'output_tokens':96}}";

static const char responses_req[] =
    "{'model':'o3-mini','input':'How many stores are open today?',"
    "'instructions':'Answer with a number.','max_output_tokens':500,"
    "'reasoning':{'effort':'low','summary':'auto'}}";

static const char responses_resp[] =
    "{'id':'resp_01','object':'response','status':'completed','model':"
    "'o3-mini-2025-01-31','output':[{'type':'reasoning','id':'rs_01',"
    "'summary':[{'type':'summary_text','text':'Count the open stores.'}]},"
    "{'type':'message','id':'msg_01','role':'assistant','status':"
    "'completed','content':[{'type':'output_text','text':'Twelve.',"
    "'annotations':[]}]}],'usage':{'input_tokens':40,"
    "'input_tokens_details':{'cached_tokens':8},'output_tokens':70,"
    "'output_tokens_details':{'reasoning_tokens':64},'total_tokens':110}}";

static const char embeddings_req[] =
    "{'model':'text-embedding-3-small','input':['red shoes',"
    "'blue scarf'],'dimensions':3,'encoding_format':'float'}";

static const char embeddings_resp[] =
    "{'object':'list','data':[{'object':'embedding','index':0,"
    "'embedding':[0.125,-0.5,0.75]},{'object':'embedding','index':1,"
    "'embedding':[0.25,0.5,-0.75]}],'model':'text-embedding-3-small',"
    "'usage':{'prompt_tokens':4,'total_tokens':4}}";

/* ---- tests ---- */

START_TEST(chat_text)
{
	static const char *const types[] = { "user_message", "llm_response",
		NULL };
	struct record *r = rec_new("chat.completions", "openai",
	    chat_text_req);
	json_t *ev, *c, *m;

	r->result = decode_body(DECODE_OPENAI_CHAT, false, chat_text_resp,
	    NULL);
	ev = build(r);
	expect_types(ev, types);

	c = content(ev, 0);
	ck_assert_str_eq(str(c, "content"),
	    "Is the Paris store open on Sunday?");
	ck_assert_str_eq(str(c, "systemPrompt"), "You answer in one sentence.");
	ck_assert_int_eq(json_array_size(json_object_get(c, "messages")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(c,
	    "messageCount")), 2);
	expect_json(json_object_get(c, "params"),
	    "{'temperature':0.5,'maxTokens':200,'topP':0.75}");

	expect_json(content(ev, 1), "{'content':'Yes, from 10:00 to 18:00.',"
	    "'finishReason':'stop','toolCalls':[]}");

	m = meta(ev, 1);
	expect_json(m, "{'model':'gpt-4o-mini-2024-07-18',"
	    "'requestedModel':'oai/gpt-4o-mini','provider':'openai',"
	    "'providerSlug':'oai','endpoint':'chat.completions',"
	    "'usage':{'promptTokens':31,'completionTokens':9,"
	    "'totalTokens':40,'cacheReadTokens':0,'reasoningTokens':0},"
	    "'latencyMs':413,'ttftMs':130.25,'ttfbMs':120.5,"
	    "'upstreamMs':400.25,'overheadMs':12.25,'finishReason':'stop',"
	    "'upstreamStatus':200,'clientStatus':200,'requestId':'req_7f3a',"
	    "'stream':false,'usageForced':false,'clientAborted':false,"
	    "'traceSource':'header','capture':'full',"
	    "'responseId':'chatcmpl-9x1'}");
	/* the same metadata on the request event, but for usage */
	json_object_del(m, "usage");
	ck_assert(json_equal(meta(ev, 0), m));
	check_usage_once(ev, 1);
	ck_assert_ptr_null(json_object_get(payload(ev, 0), "externalUserId"));
	example_save(ev, 0);
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(chat_tool_calls)
{
	static const char *const types[] = { "user_message", "llm_response",
		NULL };
	struct record *r = rec_new("chat.completions", "openai",
	    chat_tools_req);
	json_t *ev, *params;

	r->stream = true;
	r->usage_forced = false;
	r->external_user_id = strdup("user-4411");
	r->result = decode_body(DECODE_OPENAI_CHAT, true, chat_tools_sse,
	    NULL);
	ev = build(r);
	expect_types(ev, types);
	ck_assert_str_eq(str(payload(ev, 0), "externalUserId"), "user-4411");
	ck_assert_str_eq(str(payload(ev, 1), "externalUserId"), "user-4411");

	params = json_object_get(content(ev, 0), "params");
	ck_assert_str_eq(str(params, "toolChoice"), "auto");
	ck_assert(json_is_true(json_object_get(params, "stream")));
	expect_json(json_object_get(params, "toolNames"), "['get_weather']");
	ck_assert_int_eq(json_array_size(json_object_get(params, "tools")), 1);

	expect_json(content(ev, 1), "{'content':null,'finishReason':"
	    "'tool_calls','toolCalls':[{'id':'call_Wx1','type':'function',"
	    "'function':{'name':'get_weather','arguments':"
	    "'{\\'city\\':\\'Paris\\'}'}}]}");
	/* total computed: the stream's usage had none */
	expect_json(json_object_get(meta(ev, 1), "usage"),
	    "{'promptTokens':52,'completionTokens':15,'totalTokens':67}");
	ck_assert(json_is_true(json_object_get(meta(ev, 1), "stream")));
	example_save(ev, 1);
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(chat_n2)
{
	static const char *const types[] = { "user_message", "llm_response",
		NULL };
	struct record *r = rec_new("chat.completions", "openai",
	    "{'model':'oai/gpt-4o-mini','n':2,'messages':[{'role':'user',"
	    "'content':'Name a colour.'}]}");
	json_t *ev;

	r->result = decode_body(DECODE_OPENAI_CHAT, false,
	    "{'id':'chatcmpl-n2','object':'chat.completion','model':"
	    "'gpt-4o-mini','choices':[{'index':0,'message':{'role':"
	    "'assistant','content':'Red.'},'finish_reason':'stop'},"
	    "{'index':1,'message':{'role':'assistant','content':'Teal'},"
	    "'finish_reason':'length'}],'usage':{'prompt_tokens':10,"
	    "'completion_tokens':4,'total_tokens':14}}", NULL);
	ev = build(r);
	expect_types(ev, types);
	expect_json(content(ev, 1), "{'content':'Red.','finishReason':'stop',"
	    "'toolCalls':[],'allChoices':["
	    "{'index':0,'content':'Red.','finishReason':'stop','toolCalls':[]},"
	    "{'index':1,'content':'Teal','finishReason':'length',"
	    "'toolCalls':[]}]}");
	ck_assert_str_eq(str(meta(ev, 1), "finishReason"), "stop");
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(tool_result_chat)
{
	static const char *const types[] = { "tool_result", "llm_response",
		NULL };
	struct record *r = rec_new("chat.completions", "openai",
	    "{'model':'oai/gpt-4o-mini','messages':["
	    "{'role':'developer','content':[{'type':'text','text':'Be terse.'}]},"
	    "{'role':'user','content':'Weather in Paris and Oslo?'},"
	    "{'role':'assistant','content':null,'tool_calls':["
	    "{'id':'call_a','type':'function','function':{'name':'get_weather',"
	    "'arguments':'{}'}},{'id':'call_b','type':'function','function':"
	    "{'name':'get_weather','arguments':'{}'}}]},"
	    "{'role':'tool','tool_call_id':'call_a','content':'sunny, 21C'},"
	    "{'role':'tool','tool_call_id':'call_b','content':[{'type':'text',"
	    "'text':'rain, 9C'}]}]}");
	json_t *ev, *c;

	r->result = decode_body(DECODE_OPENAI_CHAT, false, chat_text_resp,
	    NULL);
	ev = build(r);
	expect_types(ev, types);
	c = content(ev, 0);
	expect_json(json_object_get(c, "toolResults"),
	    "[{'toolCallId':'call_a','content':'sunny, 21C'},"
	    "{'toolCallId':'call_b','content':[{'type':'text',"
	    "'text':'rain, 9C'}]}]");
	ck_assert_ptr_null(json_object_get(c, "content"));
	ck_assert_str_eq(str(c, "systemPrompt"), "Be terse.");
	ck_assert_int_eq(json_integer_value(json_object_get(c,
	    "messageCount")), 5);
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(tool_result_responses)
{
	static const char *const types[] = { "tool_result", "llm_response",
		NULL };
	struct record *r = rec_new("responses", "openai",
	    "{'model':'gpt-5.5','instructions':'Use the tools.',"
	    "'max_output_tokens':300,'reasoning':{'effort':'low'},"
	    "'input':[{'role':'user','content':'What is 1231 * 2331?'},"
	    "{'type':'function_call','call_id':'call_nJ','name':'multiply',"
	    "'arguments':'{}'},{'type':'function_call_output','call_id':"
	    "'call_nJ','output':'2869461'}],'tools':[{'type':'function',"
	    "'name':'multiply','parameters':{}},{'type':'web_search'}]}");
	json_t *ev, *c;

	r->result = decode_body(DECODE_OPENAI_RESPONSES, false,
	    "{'id':'resp_2','object':'response','status':'completed','model':"
	    "'gpt-5.5','output':[{'type':'message','id':'msg_2','role':"
	    "'assistant','content':[{'type':'output_text','text':"
	    "'2869461'}]}],'usage':{'input_tokens':80,'output_tokens':5,"
	    "'total_tokens':85}}", NULL);
	ev = build(r);
	expect_types(ev, types);
	c = content(ev, 0);
	expect_json(json_object_get(c, "toolResults"),
	    "[{'toolCallId':'call_nJ','content':'2869461'}]");
	ck_assert_str_eq(str(c, "systemPrompt"), "Use the tools.");
	expect_json(json_object_get(json_object_get(c, "params"), "maxTokens"),
	    "300");
	expect_json(json_object_get(json_object_get(c, "params"), "reasoning"),
	    "{'effort':'low'}");
	expect_json(json_object_get(json_object_get(c, "params"), "toolNames"),
	    "['multiply','web_search']");
	ck_assert_str_eq(str(content(ev, 1), "content"), "2869461");
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(tool_result_anthropic)
{
	static const char *const types[] = { "tool_result", "llm_response",
		NULL };
	struct record *r = rec_new("messages", "anthropic",
	    "{'model':'claude/claude-sonnet-4-5','max_tokens':1024,"
	    "'system':'You are the store assistant.','messages':["
	    "{'role':'user','content':'Weather in Paris?'},"
	    "{'role':'assistant','content':[{'type':'tool_use','id':'toolu_1',"
	    "'name':'get_weather','input':{'city':'Paris'}}]},"
	    "{'role':'user','content':[{'type':'tool_result','tool_use_id':"
	    "'toolu_1','content':'upstream timeout','is_error':true},"
	    "{'type':'text','text':'Try again later?'}]}]}");
	json_t *ev, *c;

	r->result = decode_body(DECODE_ANTHROPIC_MESSAGES, false,
	    "{'id':'msg_2','type':'message','role':'assistant','model':"
	    "'claude-sonnet-4-5-20250929','content':[{'type':'text','text':"
	    "'The weather service is down.'}],'stop_reason':'end_turn',"
	    "'usage':{'input_tokens':300,'output_tokens':12}}", NULL);
	ev = build(r);
	expect_types(ev, types);
	c = content(ev, 0);
	expect_json(json_object_get(c, "toolResults"),
	    "[{'toolCallId':'toolu_1','content':'upstream timeout',"
	    "'isError':true}]");
	ck_assert_str_eq(str(c, "content"), "Try again later?");
	ck_assert_str_eq(str(c, "systemPrompt"), "You are the store assistant.");
	expect_json(content(ev, 1), "{'content':'The weather service is down.',"
	    "'finishReason':'end_turn','toolCalls':[]}");
	/* Anthropic sends no total; none of the cache counts either */
	expect_json(json_object_get(meta(ev, 1), "usage"),
	    "{'promptTokens':300,'completionTokens':12,'totalTokens':312}");
	example_save(ev, 0);
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(responses_reasoning)
{
	static const char *const types[] = { "user_message", "llm_thinking",
		"llm_response", NULL };
	struct record *r = rec_new("responses", "openai", responses_req);
	json_t *ev, *c;

	r->result = decode_body(DECODE_OPENAI_RESPONSES, false,
	    responses_resp, NULL);
	ev = build(r);
	expect_types(ev, types);
	c = content(ev, 0);
	ck_assert_str_eq(str(c, "content"), "How many stores are open today?");
	ck_assert_str_eq(str(c, "messages"), "How many stores are open today?");
	ck_assert_int_eq(json_integer_value(json_object_get(c,
	    "messageCount")), 1);
	ck_assert_str_eq(str(c, "systemPrompt"), "Answer with a number.");
	expect_json(json_object_get(c, "params"), "{'maxTokens':500,"
	    "'reasoning':{'effort':'low','summary':'auto'}}");
	expect_json(content(ev, 1), "{'choiceIndex':0,'reasoning':"
	    "'Count the open stores.','thinking':'Count the open stores.'}");
	expect_json(content(ev, 2), "{'content':'Twelve.','finishReason':null,"
	    "'toolCalls':[],'reasoning':'Count the open stores.'}");
	expect_json(json_object_get(meta(ev, 2), "usage"),
	    "{'promptTokens':40,'completionTokens':70,'totalTokens':110,"
	    "'cacheReadTokens':8,'reasoningTokens':64}");
	check_usage_once(ev, 2);
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(anthropic_thinking_tool_use)
{
	static const char *const types[] = { "user_message", "llm_thinking",
		"llm_response", NULL };
	struct record *r = rec_new("messages", "anthropic", anthropic_req);
	json_t *ev, *c;

	r->result = decode_body(DECODE_ANTHROPIC_MESSAGES, false,
	    anthropic_resp, NULL);
	ev = build(r);
	expect_types(ev, types);
	c = content(ev, 0);
	ck_assert_str_eq(str(c, "content"),
	    "Should I bring an umbrella to the Paris store?");
	ck_assert_str_eq(str(c, "systemPrompt"),
	    "You are the store assistant.\nUse tools for live data.");
	expect_json(json_object_get(c, "params"), "{'maxTokens':2048,"
	    "'thinking':{'type':'enabled','budget_tokens':1024},"
	    "'toolNames':['get_weather'],'tools':[{'name':'get_weather',"
	    "'description':'Current weather.','input_schema':{'type':'object',"
	    "'properties':{'city':{'type':'string'}}}}]}");
	expect_json(content(ev, 1), "{'choiceIndex':0,'reasoning':"
	    "'The user needs the forecast for Paris.','thinking':"
	    "'The user needs the forecast for Paris.'}");
	/* the tool input as compact JSON text, as OpenAI sends arguments */
	expect_json(content(ev, 2), "{'content':null,'finishReason':'tool_use',"
	    "'toolCalls':[{'id':'toolu_01B','type':'function','function':"
	    "{'name':'get_weather','arguments':"
	    "'{\\'city\\':\\'Paris\\',\\'units\\':\\'c\\'}'}}],"
	    "'reasoning':'The user needs the forecast for Paris.'}");
	/* total = input + cache read + cache creation + output */
	expect_json(json_object_get(meta(ev, 2), "usage"),
	    "{'promptTokens':410,'completionTokens':96,'totalTokens':1706,"
	    "'cacheReadTokens':1200,'cacheCreationTokens':0}");
	ck_assert_str_eq(str(meta(ev, 2), "model"),
	    "claude-sonnet-4-5-20250929");
	ck_assert_str_eq(str(meta(ev, 2), "providerSlug"), "claude");
	example_save(ev, 1);
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(upstream_error_429)
{
	static const char *const types[] = { "user_message", "error", NULL };
	struct record *r = rec_new("chat.completions", "openai",
	    chat_text_req);
	json_t *ev;

	r->upstream_status = 429;
	r->client_status = 429;
	r->ttft_ms = -1;
	r->result = decode_body(DECODE_OPENAI_CHAT, false,
	    "{'error':{'message':'You exceeded your current quota, please "
	    "check your plan and billing details.','type':"
	    "'insufficient_quota','param':null,'code':'insufficient_quota'}}",
	    NULL);
	ev = build(r);
	expect_types(ev, types);
	expect_json(content(ev, 1), "{'message':'You exceeded your current "
	    "quota, please check your plan and billing details.','type':"
	    "'insufficient_quota','code':'insufficient_quota',"
	    "'upstreamStatus':429,'kind':'upstream_status'}");
	ck_assert_int_eq(json_integer_value(json_object_get(meta(ev, 1),
	    "upstreamStatus")), 429);
	ck_assert_ptr_null(json_object_get(meta(ev, 1), "ttftMs"));
	ck_assert_ptr_null(json_object_get(meta(ev, 1), "usage"));
	example_save(ev, 1);
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(transport_error_partial)
{
	static const char *const types[] = { "user_message", "llm_response",
		"error", NULL };
	struct record *r = rec_new("chat.completions", "openai",
	    chat_text_req);
	json_t *ev, *notes;
	char *s;

	r->stream = true;
	r->error = strdup("upstream connection reset mid-stream");
	r->error_kind = strdup("reset");
	r->result = decode_body(DECODE_OPENAI_CHAT, true,
	    "data: {'id':'c2','object':'chat.completion.chunk','model':"
	    "'gpt-4o-mini','choices':[{'index':0,'delta':{'content':'Yes, "
	    "from '},'finish_reason':null}]}\n\n"
	    "data: {'id':'c2','object':'chat.completion.chunk','model':"
	    "'gpt-4o-mini','choices':[{'index':0,'delta':{'content':'10:00'},"
	    "'finish_reason':null}]}\n\n"
	    "data: {'id':'c2','object':'chat.completion.chunk','mo",
	    "Recv failure: Connection reset by peer");
	ev = build(r);
	expect_types(ev, types);
	expect_json(content(ev, 1), "{'content':'Yes, from 10:00',"
	    "'finishReason':null,'toolCalls':[]}");
	expect_json(content(ev, 2), "{'message':"
	    "'upstream connection reset mid-stream','upstreamStatus':200,"
	    "'kind':'reset'}");
	ck_assert_str_eq(str(meta(ev, 2), "error"),
	    "upstream connection reset mid-stream");
	ck_assert_str_eq(str(meta(ev, 2), "errorKind"), "reset");
	notes = json_object_get(meta(ev, 1), "decoderNotes");
	ck_assert(json_is_array(notes));
	s = dump(notes);
	ck_assert_ptr_nonnull(strstr(s, "transport_error"));
	free(s);
	json_decref(ev);

	/* the proxy's own text absent: the decoder's transport error */
	free(r->error);
	r->error = NULL;
	free(r->error_kind);
	r->error_kind = NULL;
	ev = build(r);
	expect_types(ev, types);
	expect_json(content(ev, 2), "{'message':"
	    "'Recv failure: Connection reset by peer','upstreamStatus':200,"
	    "'kind':'transport'}");
	json_decref(ev);

	/* nothing arrived at all: error only, and it carries no usage */
	llm_result_free(r->result);
	r->result = NULL;
	r->upstream_status = 0;
	r->client_status = 502;
	r->error = strdup("connect: connection refused");
	r->error_kind = strdup("connect");
	ev = build(r);
	expect_types(ev, (const char *const[]){ "user_message", "error",
	    NULL });
	expect_json(content(ev, 1), "{'message':'connect: connection refused',"
	    "'kind':'connect'}");
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(embeddings)
{
	static const char *const types[] = { "embedding_request",
		"embedding_response", NULL };
	struct record *r = rec_new("embeddings", "openai", embeddings_req);
	json_t *ev;

	free(r->requested_model);
	r->requested_model = strdup("text-embedding-3-small");
	free(r->upstream_model);
	r->upstream_model = strdup("text-embedding-3-small");
	r->ttft_ms = -1;
	r->result = decode_body(DECODE_EMBEDDINGS, false, embeddings_resp,
	    NULL);
	ev = build(r);
	expect_types(ev, types);
	expect_json(content(ev, 0), "{'inputCount':2,'input':['red shoes',"
	    "'blue scarf'],'params':{'dimensions':3,'encodingFormat':"
	    "'float'}}");
	expect_json(content(ev, 1), "{'vectorCount':2,'dimensions':3}");
	expect_absent(ev, "0.125");
	expect_json(json_object_get(meta(ev, 1), "usage"),
	    "{'promptTokens':4,'totalTokens':4}");
	ck_assert_str_eq(str(meta(ev, 1), "model"), "text-embedding-3-small");
	example_save(ev, 0);
	example_save(ev, 1);
	json_decref(ev);
	record_free(r);
}
END_TEST

START_TEST(models_give_nothing)
{
	struct record *r = rec_new("models", "openai", NULL);
	json_t *ev;

	r->result = decode_body(DECODE_MODELS, false,
	    "{'object':'list','data':[{'id':'gpt-4o','object':'model'}]}",
	    NULL);
	ev = events_of(r, NOW_MS);
	ck_assert(json_is_array(ev));
	ck_assert_uint_eq(json_array_size(ev), 0);
	json_decref(ev);
	record_free(r);
}
END_TEST

/*
 * capture = metadata: every text of the requests and answers carries a
 * marker; none may appear in the events, while the structure stays.
 */
START_TEST(capture_metadata)
{
	static const struct {
		const char *endpoint, *ptype;
		enum decode_kind kind;
		bool streamed;
		const char *req, *resp;
		const char *types[4];
	} cases[] = {
		{ "chat.completions", "openai", DECODE_OPENAI_CHAT, false,
		  "{'model':'m','messages':[{'role':'system','content':"
		  "'SECRET sys'},{'role':'user','content':'SECRET user'}],"
		  "'tools':[{'type':'function','function':{'name':'lookup',"
		  "'description':'SECRET tool description'}}]}",
		  "{'id':'x','model':'m','choices':[{'index':0,'message':"
		  "{'role':'assistant','content':'SECRET answer',"
		  "'refusal':'SECRET refusal','reasoning_content':"
		  "'SECRET reasoning','tool_calls':[{'id':'call_1','type':"
		  "'function','function':{'name':'lookup','arguments':"
		  "'{\\'q\\':\\'SECRET args\\'}'}}]},'finish_reason':"
		  "'tool_calls'}]}",
		  { "user_message", "llm_thinking", "llm_response", NULL } },
		{ "chat.completions", "openai", DECODE_OPENAI_CHAT, false,
		  "{'model':'m','messages':[{'role':'user','content':'SECRET q'},"
		  "{'role':'tool','tool_call_id':'call_1','content':"
		  "'SECRET tool output'}]}",
		  "{'id':'x','model':'m','choices':[{'index':0,'message':"
		  "{'role':'assistant','content':'SECRET a'},'finish_reason':"
		  "'stop'},{'index':1,'message':{'role':'assistant','content':"
		  "'SECRET b'},'finish_reason':'stop'}]}",
		  { "tool_result", "llm_response", NULL } },
		{ "messages", "anthropic", DECODE_ANTHROPIC_MESSAGES, false,
		  anthropic_req, anthropic_resp,
		  { "user_message", "llm_thinking", "llm_response", NULL } },
		{ "responses", "openai", DECODE_OPENAI_RESPONSES, false,
		  responses_req, responses_resp,
		  { "user_message", "llm_thinking", "llm_response", NULL } },
		{ "embeddings", "openai", DECODE_EMBEDDINGS, false,
		  "{'model':'e','input':'SECRET embed'}", embeddings_resp,
		  { "embedding_request", "embedding_response", NULL } },
		{ "messages", "anthropic", DECODE_ANTHROPIC_MESSAGES, false,
		  "{'model':'c','system':'SECRET sys','messages':[{'role':"
		  "'user','content':[{'type':'tool_result','tool_use_id':"
		  "'toolu_9','content':[{'type':'text','text':'SECRET out'}]}]}]}",
		  "{'type':'error','error':{'type':'overloaded_error',"
		  "'message':'Overloaded'}}",
		  { "tool_result", "error", NULL } },
	};
	static const char *const markers[] = {
		"SECRET", "store assistant", "umbrella", "forecast", "Paris",
		"stores", "Twelve", "red shoes", "Current weather", "number",
	};
	struct record *r;
	json_t *ev;
	size_t i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = rec_new(cases[i].endpoint, cases[i].ptype, cases[i].req);
		r->capture_content = false;
		if (strstr(cases[i].resp, "overloaded") != NULL)
			r->upstream_status = r->client_status = 529;
		r->result = decode_body(cases[i].kind, cases[i].streamed,
		    cases[i].resp, NULL);
		ev = build(r);
		expect_types(ev, cases[i].types);
		for (j = 0; j < sizeof(markers) / sizeof(markers[0]); j++)
			expect_absent(ev, markers[j]);
		json_decref(ev);
		record_free(r);
	}

	/* what remains: counts, names, ids, finish reasons */
	r = rec_new(cases[0].endpoint, cases[0].ptype, cases[0].req);
	r->capture_content = false;
	r->result = decode_body(DECODE_OPENAI_CHAT, false, cases[0].resp,
	    NULL);
	ev = build(r);
	expect_json(content(ev, 0), "{'messageCount':2,'hasSystemPrompt':true,"
	    "'params':{'toolNames':['lookup']}}");
	expect_json(content(ev, 1), "{'choiceIndex':0}");
	expect_json(content(ev, 2), "{'finishReason':'tool_calls','toolCalls':"
	    "[{'id':'call_1','type':'function','function':{'name':"
	    "'lookup'}}]}");
	json_decref(ev);
	record_free(r);

	r = rec_new(cases[1].endpoint, cases[1].ptype, cases[1].req);
	r->capture_content = false;
	r->result = decode_body(DECODE_OPENAI_CHAT, false, cases[1].resp,
	    NULL);
	ev = build(r);
	expect_json(content(ev, 0), "{'toolResults':[{'toolCallId':'call_1'}],"
	    "'messageCount':2,'hasSystemPrompt':false,'params':{}}");
	json_decref(ev);
	record_free(r);

	r = rec_new("embeddings", "openai", embeddings_req);
	r->capture_content = false;
	r->result = decode_body(DECODE_EMBEDDINGS, false, embeddings_resp,
	    NULL);
	ev = build(r);
	expect_json(content(ev, 0), "{'inputCount':2,'params':{'dimensions':3,"
	    "'encodingFormat':'float'}}");
	json_decref(ev);
	record_free(r);
}
END_TEST

/* The body came from the network: nothing in it may be trusted. */
/*
 * capture = metadata with texts the builder reads in place: markers hidden
 * behind escapes (\u0053 is S), in keys spelled with escapes, in every
 * place a text can sit (content parts, developer and system messages,
 * instructions, tool outputs of all three dialects, tool definitions), and
 * in whitespace-padded bodies.  Neither the raw lines nor their parsed
 * values may hold one.
 */
START_TEST(capture_metadata_in_place)
{
	static const struct {
		const char *endpoint, *ptype, *req;
	} cases[] = {
		{ "chat.completions", "openai",
		  " { 'messages' : [ {'role':'developer','content':[{'type':"
		  "'text','text':'\\u0053ECRET dev'}]}, {'r\\u006fle':'user',"
		  "'content':[{'type':'input_text','text':'SECRET part'}]},"
		  "{'role':'tool','tool_call_id':'c1','content':[{'type':'text',"
		  "'text':'SECRET out'}]} ], 'tools':[{'type':'function',"
		  "'function':{'name':'f','description':'SECRET d','parameters':"
		  "{'properties':{'SECRET':{}}}}}] } " },
		{ "responses", "openai",
		  "{'instructions':'SECRET ins','input':[{'role':'user','content':"
		  "'SECRET q'},{'type':'function_call','call_id':'c','name':'f',"
		  "'arguments':'{\\'SECRET\\':1}'},{'type':'function_call_output',"
		  "'call_id':'c','output':'SECRET r'}]}" },
		{ "responses", "openai", "{'input':'SECRET plain'}" },
		{ "messages", "anthropic",
		  "{'system':[{'type':'text','text':'SECRET s'}],'messages':[{"
		  "'role':'user','content':[{'type':'tool_result','tool_use_id':"
		  "'t1','is_error':true,'content':'SECRET e'},{'type':'text',"
		  "'text':'SECRET t'}]}]}" },
		{ "embeddings", "openai", "{'input':['SECRET a','\\u0053ECRET b']}" },
		{ NULL, "openai", "{'input':'SECRET guess'}" },
	};
	struct buf b = { 0 };
	struct record *r;
	json_t *ev;
	size_t i;
	int n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = rec_new(cases[i].endpoint ? cases[i].endpoint : "x",
		    cases[i].ptype, cases[i].req);
		if (cases[i].endpoint == NULL) {
			free(r->endpoint);
			r->endpoint = NULL;
		}
		r->capture_content = false;
		buf_reset(&b);
		n = event_build(r, NOW_MS, &b);
		ck_assert_int_ge(n, 2);
		ck_assert_ptr_null(memmem(b.data, b.len, "SECRET", 6));
		ck_assert_ptr_null(memmem(b.data, b.len, "\\u0053", 6));
		ev = build(r);
		expect_absent(ev, "SECRET");
		json_decref(ev);
		/* and with capture the texts are all there */
		r->capture_content = true;
		buf_reset(&b);
		ck_assert_int_eq(event_build(r, NOW_MS, &b), n);
		ev = events_of(r, NOW_MS);
		{
			char *d = dump(ev);

			ck_assert_ptr_nonnull(strstr(d, "SECRET"));
			free(d);
		}
		json_decref(ev);
		record_free(r);
	}
	buf_free(&b);
}
END_TEST

START_TEST(invalid_request_body)
{
	static const char *const bodies[] = {
		NULL,
		"{not json",
		"[1,2,3]",
		"'just a string'",
		"{'messages':42,'input':{},'system':7,'tools':'x',"
		"'temperature':'hot','max_tokens':1.5,'tool_choice':null,"
		"'reasoning':'high','thinking':true,'stream':'yes'}",
		"{'messages':[1,null,'x',{'role':5},{'role':'user','content':"
		"{'x':1}},{'role':'user','content':[7,{'type':'text'},"
		"{'type':'text','text':9},{'type':'image_url'}]},{'role':'tool'}],"
		"'tools':[1,{},{'function':7},{'type':'function','function':"
		"{'name':[]}}]}",
		"{'input':[null,{'type':'function_call_output'},{'type':"
		"'function_call_output','call_id':3,'output':{'a':[1]}}]}",
		"{'messages':[{'role':'user','content':[{'type':'tool_result'},"
		"{'type':'tool_result','tool_use_id':'t','is_error':'yes'}]}]}",
	};
	static const char *const endpoints[] = { "chat.completions",
		"responses", "messages", "embeddings", "unknown", NULL };
	struct record *r;
	json_t *ev, *c;
	size_t i, j;
	bool captures[] = { true, false };
	size_t k;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		for (j = 0; endpoints[j] != NULL; j++)
			for (k = 0; k < 2; k++) {
				r = rec_new(endpoints[j], j == 2 ? "anthropic" :
				    "openai", bodies[i]);
				r->capture_content = captures[k];
				r->result = decode_body(DECODE_OPENAI_CHAT,
				    false, chat_text_resp, NULL);
				ev = build(r);
				ck_assert_uint_eq(json_array_size(ev), 2);
				json_decref(ev);
				record_free(r);
			}

	/* invalid JSON: the request event goes out with what is known */
	r = rec_new("chat.completions", "openai", "{not json");
	r->result = decode_body(DECODE_OPENAI_CHAT, false, chat_text_resp,
	    NULL);
	ev = build(r);
	expect_types(ev, (const char *const[]){ "user_message",
	    "llm_response", NULL });
	expect_json(content(ev, 0), "{'content':null,'messages':null,"
	    "'systemPrompt':null,'params':{}}");
	ck_assert_str_eq(str(meta(ev, 0), "requestedModel"), "oai/gpt-4o-mini");
	json_decref(ev);
	record_free(r);

	/* odd members left out, not guessed at */
	r = rec_new("chat.completions", "openai", bodies[5]);
	ev = build(r);
	c = content(ev, 0);
	expect_json(json_object_get(c, "toolResults"),
	    "[{'toolCallId':null,'content':null}]");
	expect_json(json_object_get(c, "params"),
	    "{'toolNames':[null,null,null,'function'],'tools':[1,{},"
	    "{'function':7},{'type':'function','function':{'name':[]}}]}");
	json_decref(ev);
	r->capture_content = true;
	free(r->request_body);
	r->request_body = J(bodies[4]);
	r->request_len = strlen(r->request_body);
	ev = build(r);
	expect_json(content(ev, 0), "{'content':null,'messages':null,"
	    "'systemPrompt':null,'params':{}}");
	json_decref(ev);
	record_free(r);
}
END_TEST

/* What RFC 8259 allows and some parsers refuse is recorded, not dropped:
 * a NUL escape, an unpaired surrogate escape, numbers beyond int64 and
 * double.  Kept-whole values are the client's text; decoded texts are
 * re-encoded.  (jansson refuses these, so the output is read as text.) */
START_TEST(unusual_request_body_recorded)
{
	struct record *r = rec_new("chat.completions", "openai",
	    "{'model':'gpt-4o','max_tokens':123456789012345678901234,"
	    "'temperature':1e400,'messages':[{'role':'system','content':"
	    "'sys\\u0000tem'},{'role':'user','content':'a\\u0000b \\ud800 c'}]}");
	struct buf b = { 0 };
	char *text;
	const char *want[] = {
		/* the last user message, decoded and re-encoded */
		"\"content\":\"a\\u0000b ??? c\"",
		/* the conversation as sent */
		"\"content\":\"a\\u0000b \\ud800 c\"}]",
		"\"systemPrompt\":\"sys\\u0000tem\"",
		"\"maxTokens\":123456789012345678901234",
		"\"temperature\":1e400",
	};
	size_t i;
	json_t *root, *v;

	r->result = decode_body(DECODE_OPENAI_CHAT, false, chat_text_resp,
	    NULL);
	ck_assert_int_eq(event_build(r, 1700000000000, &b), 2);
	text = b.data;			/* the first event, NUL-terminated */
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(strstr(text, want[i]) != NULL, "%s not in %s",
		    want[i], text);
	ck_assert_ptr_null(strstr(text, "\"content\":null"));
	buf_free(&b);

	/* without the surrogate and the big numbers jansson reads it back:
	 * the NUL is really in the decoded texts */
	free(r->request_body);
	r->request_body = J("{'model':'gpt-4o','messages':[{'role':'user',"
	    "'content':'a\\u0000b'}]}");
	r->request_len = strlen(r->request_body);
	ck_assert_int_eq(event_build(r, 1700000000000, &b), 2);
	root = json_loads(b.data, JSON_ALLOW_NUL, NULL);
	ck_assert_ptr_nonnull(root);
	v = json_object_get(json_object_get(root, "payload"), "content");
	ck_assert_uint_eq(json_string_length(json_object_get(v, "content")), 3);
	ck_assert(memcmp(json_string_value(json_object_get(v, "content")),
	    "a\0b", 3) == 0);
	json_decref(root);
	buf_free(&b);
	record_free(r);
}
END_TEST

START_TEST(envelope_and_ids)
{
	struct record *r = rec_new("chat.completions", "openai",
	    chat_text_req);
	json_t *ev, *ids = json_object();
	char *s;
	size_t i, j;
	regex_t re;

	/* ids are unique over many calls built within the same ms */
	r->result = decode_body(DECODE_OPENAI_CHAT, false, chat_text_resp,
	    NULL);
	for (i = 0; i < 2000; i++) {
		ev = events_of(r, NOW_MS);
		for (j = 0; j < json_array_size(ev); j++) {
			const char *id = str(payload(ev, j), "eventId");

			ck_assert_ptr_null(json_object_get(ids, id));
			json_object_set_new(ids, id, json_true());
			/* the event's index is in the id: sorted in order */
			ck_assert_int_eq(id[16] - '0', 0);
			ck_assert_int_eq(id[17] - '0', (int)j);
		}
		json_decref(ev);
	}
	ck_assert_uint_eq(json_object_size(ids), 4000);
	json_decref(ids);

	/* no key material in the payload, only its name */
	ev = build(r);
	s = dump(ev);
	ck_assert_ptr_null(strstr(s, "apiKey"));
	ck_assert_ptr_null(strstr(s, "sha256"));
	free(s);
	json_decref(ev);

	/* no start time: now; a bad header value: still valid JSON */
	r->start_unix_ms = 0;
	free(r->agent_name);
	r->agent_name = strdup("caf\xe9-bot");
	ev = events_of(r, NOW_MS);
	ck_assert_str_eq(str(payload(ev, 0), "timestamp"), NOW_ISO);
	ck_assert_str_eq(str(payload(ev, 0), "agentName"), "caf?-bot");
	ck_assert_int_eq(regcomp(&re,
	    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
	    REG_EXTENDED | REG_NOSUB), 0);
	for (i = 0; i < json_array_size(ev); i++) {
		ck_assert_int_eq(regexec(&re, str(json_array_get(ev, i),
		    "enqueuedAt"), 0, NULL, 0), 0);
		ck_assert_int_eq(regexec(&re, str(payload(ev, i),
		    "timestamp"), 0, NULL, 0), 0);
	}
	regfree(&re);
	json_decref(ev);

	/* a record with nothing in it */
	record_free(r);
	r = record_new();
	ev = events_of(r, NOW_MS);
	expect_types(ev, (const char *const[]){ "user_message", "error",
	    NULL });
	ck_assert(json_is_null(json_object_get(payload(ev, 0), "traceId")));
	ck_assert_str_eq(str(content(ev, 1), "message"),
	    "no answer from upstream");
	json_decref(ev);
	record_free(r);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("event");
	TCase *tc = tcase_create("build");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, chat_text);
	tcase_add_test(tc, chat_tool_calls);
	tcase_add_test(tc, chat_n2);
	tcase_add_test(tc, tool_result_chat);
	tcase_add_test(tc, tool_result_responses);
	tcase_add_test(tc, tool_result_anthropic);
	tcase_add_test(tc, responses_reasoning);
	tcase_add_test(tc, anthropic_thinking_tool_use);
	tcase_add_test(tc, upstream_error_429);
	tcase_add_test(tc, transport_error_partial);
	tcase_add_test(tc, embeddings);
	tcase_add_test(tc, models_give_nothing);
	tcase_add_test(tc, capture_metadata);
	tcase_add_test(tc, capture_metadata_in_place);
	tcase_add_test(tc, invalid_request_body);
	tcase_add_test(tc, unusual_request_body_recorded);
	tcase_add_test(tc, envelope_and_ids);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
