/*
 * event_request.c - the request event of a call, read from the request body.
 *
 * The request thread keeps the body as raw bytes; the dispatcher thread
 * parses it once (event.c) and this file turns the tree into the content
 * of the request event:
 *
 *   user_message / tool_result   the newest input (the last user message's
 *                                text, or the trailing run of tool results
 *                                with their call ids), plus the request
 *                                context: messages, systemPrompt, params
 *   embedding_request            how many inputs, and the inputs
 *
 * Where the three chat dialects differ (where the conversation lives, where
 * the system prompt lives, what a tool result looks like) they are a row
 * of the table below, one function per dialect.
 *
 * The body came from the network: every member is checked for its type
 * and anything unexpected is left out rather than guessed at.  Values of
 * the body are shared into the content by reference (json_incref), not
 * copied; the content outlives the body, which the caller releases.
 *
 * With capture false ("capture = metadata") nothing a person wrote leaves
 * this file: no texts, messages, system prompt, tool definitions or tool
 * results; only counts, tool names, call ids and scalar parameters.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "event.h"

struct event_req_dialect {
	const char *messages_key;	/* the conversation in the body */
	/* the system prompt as a new string, or NULL */
	json_t *(*system_prompt)(json_t *body, json_t *messages);
	/*
	 * Adds the newest input to content: "content" (text of the last user
	 * message) or "toolResults".  Returns true for tool results.
	 */
	bool (*newest)(json_t *messages, bool capture, json_t *content);
};

static json_t *req_chat_system(json_t *body, json_t *messages);
static json_t *req_responses_system(json_t *body, json_t *messages);
static json_t *req_anthropic_system(json_t *body, json_t *messages);
static bool req_chat_newest(json_t *messages, bool capture, json_t *content);
static bool req_responses_newest(json_t *messages, bool capture,
    json_t *content);
static bool req_anthropic_newest(json_t *messages, bool capture,
    json_t *content);

static const struct event_req_dialect req_dialects[] = {
	[EVENT_DIALECT_CHAT] = {
		"messages", req_chat_system, req_chat_newest },
	[EVENT_DIALECT_RESPONSES] = {
		"input", req_responses_system, req_responses_newest },
	[EVENT_DIALECT_ANTHROPIC] = {
		"messages", req_anthropic_system, req_anthropic_newest },
};

/* ---- small helpers ---- */

static bool
req_is(json_t *v, const char *s)
{
	return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static json_t *
req_get(json_t *obj, const char *key)
{
	return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

/* Appends text to b, a newline between pieces. */
static void
req_join(struct buf *b, json_t *text)
{
	if (!json_is_string(text) || json_string_length(text) == 0)
		return;
	if (b->len > 0)
		buf_append(b, "\n", 1);
	buf_append(b, json_string_value(text), json_string_length(text));
}

/*
 * Text of a message content: a string as is, or the text parts of an
 * array ("text", "input_text", "output_text") joined with newlines.
 */
static void
req_content_text(struct buf *b, json_t *content)
{
	json_t *part, *type;
	size_t i;

	if (json_is_string(content)) {
		req_join(b, content);
		return;
	}
	json_array_foreach(content, i, part) {
		type = req_get(part, "type");
		if (req_is(type, "text") || req_is(type, "input_text") ||
		    req_is(type, "output_text"))
			req_join(b, req_get(part, "text"));
	}
}

/* The joined text as a new string; NULL when there is none. */
static json_t *
req_take_text(struct buf *b)
{
	json_t *s = NULL;

	if (b->len > 0)
		s = json_stringn(b->data, b->len);
	buf_free(b);
	return s;
}

static json_t *
req_message_text(json_t *content)
{
	struct buf b = { 0 };

	req_content_text(&b, content);
	return req_take_text(&b);
}

/* System and developer messages of a chat-shaped list, joined. */
static json_t *
req_role_text(json_t *messages)
{
	struct buf b = { 0 };
	json_t *m, *role;
	size_t i;

	json_array_foreach(messages, i, m) {
		role = req_get(m, "role");
		if (req_is(role, "system") || req_is(role, "developer"))
			req_content_text(&b, req_get(m, "content"));
	}
	return req_take_text(&b);
}

/* content["content"] = text of the last message with role "user". */
static void
req_last_user_text(json_t *messages, json_t *content)
{
	json_t *m, *text = NULL;
	size_t i;

	for (i = json_array_size(messages); i > 0; i--) {
		m = json_array_get(messages, i - 1);
		if (req_is(req_get(m, "role"), "user")) {
			text = req_message_text(req_get(m, "content"));
			break;
		}
	}
	json_object_set_new(content, "content", text ? text : json_null());
}

/* One tool result: {"toolCallId", "content"}; content only with capture. */
static json_t *
req_tool_result(json_t *id, json_t *output, bool capture)
{
	json_t *o = json_object();

	json_object_set_new(o, "toolCallId",
	    json_is_string(id) ? json_incref(id) : json_null());
	if (capture)
		json_object_set_new(o, "content",
		    output ? json_incref(output) : json_null());
	return o;
}

/*
 * The trailing run of items for which is_result() holds, oldest first, as
 * content["toolResults"].  Returns false when the last item is none.
 */
static bool
req_trailing_results(json_t *items, bool (*is_result)(json_t *),
    const char *id_key, const char *output_key, bool capture,
    json_t *content)
{
	size_t n = json_array_size(items), first = n, i;
	json_t *results, *it;

	while (first > 0 && is_result(json_array_get(items, first - 1)))
		first--;
	if (first == n)
		return false;
	results = json_array();
	for (i = first; i < n; i++) {
		it = json_array_get(items, i);
		json_array_append_new(results, req_tool_result(
		    req_get(it, id_key), req_get(it, output_key), capture));
	}
	json_object_set_new(content, "toolResults", results);
	return true;
}

/* ---- OpenAI chat completions ---- */

static json_t *
req_chat_system(json_t *body, json_t *messages)
{
	return req_role_text(messages);
}

static bool
req_chat_is_tool(json_t *m)
{
	json_t *role = req_get(m, "role");

	return req_is(role, "tool") || req_is(role, "function");
}

static bool
req_chat_newest(json_t *messages, bool capture, json_t *content)
{
	/* {"role":"tool","tool_call_id":..,"content":..}; the legacy
	 * "function" role names the function instead of a call id */
	if (req_trailing_results(messages, req_chat_is_tool, "tool_call_id",
	    "content", capture, content))
		return true;
	if (capture)
		req_last_user_text(messages, content);
	return false;
}

/* ---- OpenAI Responses ---- */

static json_t *
req_responses_system(json_t *body, json_t *messages)
{
	json_t *ins = req_get(body, "instructions");

	if (json_is_string(ins) && json_string_length(ins) > 0)
		return json_incref(ins);
	return req_role_text(messages);
}

static bool
req_responses_is_output(json_t *it)
{
	json_t *type = req_get(it, "type");

	return req_is(type, "function_call_output") ||
	    req_is(type, "custom_tool_call_output");
}

static bool
req_responses_newest(json_t *input, bool capture, json_t *content)
{
	if (json_is_string(input)) {
		if (capture)
			json_object_set_new(content, "content",
			    json_string_length(input) > 0 ?
			    json_incref(input) : json_null());
		return false;
	}
	if (req_trailing_results(input, req_responses_is_output, "call_id",
	    "output", capture, content))
		return true;
	if (capture)
		req_last_user_text(input, content);
	return false;
}

/* ---- Anthropic messages ---- */

static json_t *
req_anthropic_system(json_t *body, json_t *messages)
{
	return req_message_text(req_get(body, "system"));
}

static bool
req_anthropic_newest(json_t *messages, bool capture, json_t *content)
{
	json_t *m = NULL, *blocks, *blk, *results, *r, *text;
	size_t i;

	for (i = json_array_size(messages); i > 0; i--) {
		m = json_array_get(messages, i - 1);
		if (req_is(req_get(m, "role"), "user"))
			break;
		m = NULL;
	}
	blocks = req_get(m, "content");
	results = json_array();
	json_array_foreach(blocks, i, blk) {
		if (!req_is(req_get(blk, "type"), "tool_result"))
			continue;
		r = req_tool_result(req_get(blk, "tool_use_id"),
		    req_get(blk, "content"), capture);
		if (json_is_true(req_get(blk, "is_error")))
			json_object_set_new(r, "isError", json_true());
		json_array_append_new(results, r);
	}
	if (capture) {
		text = req_message_text(blocks);
		if (text != NULL || json_array_size(results) == 0)
			json_object_set_new(content, "content",
			    text ? text : json_null());
	}
	if (json_array_size(results) == 0) {
		json_decref(results);
		return false;
	}
	json_object_set_new(content, "toolResults", results);
	return true;
}

/* ---- parameters ---- */

static void
req_copy_number(json_t *params, const char *key, json_t *v)
{
	if (json_is_number(v))
		json_object_set(params, key, v);
}

/* A tool's name: chat {"function":{"name"}}, Responses and Anthropic
 * {"name"}, hosted tools only their {"type"}. */
static json_t *
req_tool_name(json_t *tool)
{
	json_t *name = req_get(req_get(tool, "function"), "name");

	if (!json_is_string(name))
		name = req_get(tool, "name");
	if (!json_is_string(name))
		name = req_get(tool, "type");
	return json_is_string(name) ? json_incref(name) : json_null();
}

static void
req_tools(json_t *params, json_t *tools, bool capture)
{
	json_t *names, *t;
	size_t i;

	if (!json_is_array(tools))
		return;
	names = json_array();
	json_array_foreach(tools, i, t)
		json_array_append_new(names, req_tool_name(t));
	json_object_set_new(params, "toolNames", names);
	if (capture)
		json_object_set(params, "tools", tools);
}

static json_t *
req_params(json_t *body, bool capture)
{
	static const char *const max_keys[] = {
		"max_completion_tokens", "max_tokens", "max_output_tokens",
	};
	json_t *params = json_object(), *v;
	size_t i;

	req_copy_number(params, "temperature", req_get(body, "temperature"));
	for (i = 0; i < sizeof(max_keys) / sizeof(max_keys[0]); i++) {
		v = req_get(body, max_keys[i]);
		if (json_is_integer(v)) {
			json_object_set(params, "maxTokens", v);
			break;
		}
	}
	req_copy_number(params, "topP", req_get(body, "top_p"));
	req_tools(params, req_get(body, "tools"), capture);
	v = req_get(body, "tool_choice");
	if (json_is_string(v) || json_is_object(v))
		json_object_set(params, "toolChoice", v);
	/* Responses {"effort","summary"}; chat's reasoning_effort is put in
	 * the same shape */
	v = req_get(body, "reasoning");
	if (json_is_object(v))
		json_object_set(params, "reasoning", v);
	else if (json_is_string(v = req_get(body, "reasoning_effort")))
		json_object_set_new(params, "reasoning",
		    json_pack("{sO}", "effort", v));
	v = req_get(body, "thinking");
	if (json_is_object(v))
		json_object_set(params, "thinking", v);
	v = req_get(body, "stream");
	if (json_is_boolean(v))
		json_object_set(params, "stream", v);
	return params;
}

/* ---- the events ---- */

static const char *
req_chat_event(enum event_dialect d, json_t *body, bool capture,
    json_t *content)
{
	const struct event_req_dialect *dl = &req_dialects[d];
	json_t *messages = req_get(body, dl->messages_key), *system;
	bool tool;

	if (!json_is_array(messages) && !json_is_string(messages))
		messages = NULL;
	tool = messages != NULL && dl->newest(messages, capture, content);
	if (capture && !tool && json_object_get(content, "content") == NULL)
		json_object_set_new(content, "content", json_null());
	if (messages != NULL)
		json_object_set_new(content, "messageCount", json_integer(
		    json_is_array(messages) ?
		    (json_int_t)json_array_size(messages) : 1));
	system = body != NULL ? dl->system_prompt(body,
	    json_is_array(messages) ? messages : NULL) : NULL;
	if (capture) {
		json_object_set_new(content, "messages",
		    messages ? json_incref(messages) : json_null());
		json_object_set_new(content, "systemPrompt",
		    system ? system : json_null());
	} else {
		json_object_set_new(content, "hasSystemPrompt",
		    json_boolean(system != NULL));
		json_decref(system);
	}
	json_object_set_new(content, "params", req_params(body, capture));
	return tool ? "tool_result" : "user_message";
}

/* input: a string, strings, one token list, or token lists. */
static json_int_t
req_embedding_count(json_t *input)
{
	json_t *first;

	if (json_is_string(input))
		return 1;
	if (!json_is_array(input))
		return 0;
	first = json_array_get(input, 0);
	if (json_is_integer(first))
		return 1;
	return (json_int_t)json_array_size(input);
}

static const char *
req_embedding_event(json_t *body, bool capture, json_t *content)
{
	json_t *input = req_get(body, "input"), *params = json_object(), *v;

	json_object_set_new(content, "inputCount",
	    json_integer(req_embedding_count(input)));
	if (capture)
		json_object_set_new(content, "input", input != NULL &&
		    (json_is_string(input) || json_is_array(input)) ?
		    json_incref(input) : json_null());
	v = req_get(body, "dimensions");
	if (json_is_integer(v))
		json_object_set(params, "dimensions", v);
	v = req_get(body, "encoding_format");
	if (json_is_string(v))
		json_object_set(params, "encodingFormat", v);
	json_object_set_new(content, "params", params);
	return "embedding_request";
}

const char *
event_request(enum event_dialect d, json_t *body, bool capture,
    json_t **content)
{
	*content = json_object();
	if (!json_is_object(body))
		body = NULL;
	if (d == EVENT_DIALECT_EMBEDDINGS)
		return req_embedding_event(body, capture, *content);
	if (d >= sizeof(req_dialects) / sizeof(req_dialects[0]))
		d = EVENT_DIALECT_CHAT;
	return req_chat_event(d, body, capture, *content);
}
