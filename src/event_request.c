/*
 * event_request.c - the request event of a call, read from the request body.
 *
 * The request thread keeps the body as raw bytes; the dispatcher thread
 * reads them here in place (jsonscan.h: member lookup, array iteration,
 * string decoding), without building a tree, and writes the content of
 * the request event as JSON text (jsonw.h):
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
 * and anything unexpected is left out rather than guessed at.  It has been
 * validated (event.c checks it again), so the scans can trust its syntax.
 * Values of the body that the content keeps whole (messages, tools,
 * parameters) are copied as their text minified; only the texts this file
 * joins (system prompt, last user message) are decoded and re-encoded.
 * Keys are compared decoded and a repeated key's last value wins, as a
 * JSON parser reads them.  The body's top level is scanned once for every
 * member used here, and the conversation once for what the event needs
 * from it (struct req_conv).
 *
 * With capture false ("capture = metadata") nothing a person wrote leaves
 * this file: no texts, messages, system prompt, tool definitions or tool
 * results; only counts, tool names, call ids and scalar parameters.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "buf.h"
#include "event.h"
#include "jsonscan.h"
#include "jsonw.h"

/* One value of the body: p[0..n); n == 0 when absent. */
struct req_v {
	const char *p;
	size_t n;
};

/* The members of the body this file reads, found in one scan. */
enum req_key {
	K_MESSAGES, K_INPUT, K_INSTRUCTIONS, K_SYSTEM, K_TEMPERATURE,
	K_MAX_COMPLETION_TOKENS, K_MAX_TOKENS, K_MAX_OUTPUT_TOKENS, K_TOP_P,
	K_TOOLS, K_TOOL_CHOICE, K_REASONING, K_REASONING_EFFORT, K_THINKING,
	K_STREAM, K_DIMENSIONS, K_ENCODING_FORMAT, K__COUNT
};

static const char *const req_keys[K__COUNT] = {
	[K_MESSAGES] = "messages", [K_INPUT] = "input",
	[K_INSTRUCTIONS] = "instructions", [K_SYSTEM] = "system",
	[K_TEMPERATURE] = "temperature",
	[K_MAX_COMPLETION_TOKENS] = "max_completion_tokens",
	[K_MAX_TOKENS] = "max_tokens",
	[K_MAX_OUTPUT_TOKENS] = "max_output_tokens", [K_TOP_P] = "top_p",
	[K_TOOLS] = "tools", [K_TOOL_CHOICE] = "tool_choice",
	[K_REASONING] = "reasoning", [K_REASONING_EFFORT] = "reasoning_effort",
	[K_THINKING] = "thinking", [K_STREAM] = "stream",
	[K_DIMENSIONS] = "dimensions", [K_ENCODING_FORMAT] = "encoding_format",
};

/* The body: present or not, and its members by enum req_key. */
struct req_body {
	bool present;
	struct req_v top[K__COUNT];
};

/* What one pass over the conversation finds. */
struct req_conv {
	size_t count;			/* items */
	struct req_v last_user;		/* the last item with role "user" */
	size_t run;			/* where the trailing run of tool
					 * results starts (a scan position) */
	bool in_run;			/* the last item is a tool result */
	struct buf roles;		/* system and developer texts, joined */
};

struct event_req_dialect {
	enum req_key messages_key;	/* the conversation in the body */
	/* an item that is a tool result, from its role and type */
	bool (*is_result)(struct req_v role, struct req_v type);
	/* writes the system prompt (a JSON string) to out; false if none */
	bool (*system_prompt)(const struct req_body *body,
	    struct req_conv *conv, struct buf *out);
	/*
	 * Writes the newest input to content: "content" (text of the last
	 * user message; *has_text) or "toolResults".  Returns true for tool
	 * results.
	 */
	bool (*newest)(struct req_v messages, struct req_conv *conv,
	    bool capture, struct buf *content, bool *has_text);
};

static bool req_chat_is_tool(struct req_v role, struct req_v type);
static bool req_responses_is_output(struct req_v role, struct req_v type);
static bool req_chat_system(const struct req_body *body,
    struct req_conv *conv, struct buf *out);
static bool req_responses_system(const struct req_body *body,
    struct req_conv *conv, struct buf *out);
static bool req_anthropic_system(const struct req_body *body,
    struct req_conv *conv, struct buf *out);
static bool req_chat_newest(struct req_v messages, struct req_conv *conv,
    bool capture, struct buf *content, bool *has_text);
static bool req_responses_newest(struct req_v messages,
    struct req_conv *conv, bool capture, struct buf *content,
    bool *has_text);
static bool req_anthropic_newest(struct req_v messages,
    struct req_conv *conv, bool capture, struct buf *content,
    bool *has_text);

static const struct event_req_dialect req_dialects[] = {
	[EVENT_DIALECT_CHAT] = { K_MESSAGES, req_chat_is_tool,
		req_chat_system, req_chat_newest },
	[EVENT_DIALECT_RESPONSES] = { K_INPUT, req_responses_is_output,
		req_responses_system, req_responses_newest },
	[EVENT_DIALECT_ANTHROPIC] = { K_MESSAGES, NULL,
		req_anthropic_system, req_anthropic_newest },
};

/* ---- small helpers ---- */

static char
req_kind(struct req_v v)
{
	return v.n > 0 ? v.p[0] : '\0';
}

static bool req_is_string(struct req_v v) { return req_kind(v) == '"'; }
static bool req_is_object(struct req_v v) { return req_kind(v) == '{'; }
static bool req_is_array(struct req_v v) { return req_kind(v) == '['; }

static bool
req_is_number(struct req_v v)
{
	char c = req_kind(v);

	return c == '-' || (c >= '0' && c <= '9');
}

static bool
req_is_integer(struct req_v v)
{
	return req_is_number(v) && jsonscan_is_integer(v.p, v.n);
}

/* A string with at least one character (an escape is never empty). */
static bool
req_is_text(struct req_v v)
{
	return req_is_string(v) && v.n > 2;
}

static bool
req_is(struct req_v v, const char *s)
{
	return req_is_string(v) && jsonscan_str_eq(v.p, v.n, s);
}

static struct req_v
req_get(struct req_v obj, const char *key)
{
	struct req_v v = { NULL, 0 };
	size_t vb, ve;

	if (req_is_object(obj) &&
	    jsonscan_member(obj.p, obj.n, key, &vb, &ve) == 0) {
		v.p = obj.p + vb;
		v.n = ve - vb;
	}
	return v;
}

/* Array iteration: *pos starts at 0; false at the end or for a
 * non-array. */
static bool
req_next(struct req_v arr, size_t *pos, struct req_v *item)
{
	size_t vb, ve;

	if (!req_is_array(arr) ||
	    jsonscan_next_item(arr.p, arr.n, pos, &vb, &ve) != 0)
		return false;
	item->p = arr.p + vb;
	item->n = ve - vb;
	return true;
}

/* key: v's text, or null when v is absent. */
static void
req_put(struct buf *b, const char *key, struct req_v v)
{
	jsonw_key(b, key);
	if (v.n > 0)
		jsonw_raw(b, v.p, v.n);
	else
		jsonw_lit(b, "null");
}

/* Appends the decoded text to b, a newline between pieces. */
static void
req_join(struct buf *b, struct req_v text)
{
	if (!req_is_text(text))
		return;
	if (b->len > 0)
		buf_append(b, "\n", 1);
	buf_reserve(b, text.n);
	b->len += jsonscan_string_decode(text.p, text.n, b->data + b->len);
	b->data[b->len] = '\0';
}

/*
 * Text of a message content: a string as is, or the text parts of an
 * array ("text", "input_text", "output_text") joined with newlines.
 */
static void
req_content_text(struct buf *b, struct req_v content)
{
	struct req_v part, type;
	size_t pos = 0;

	if (req_is_string(content)) {
		req_join(b, content);
		return;
	}
	while (req_next(content, &pos, &part)) {
		type = req_get(part, "type");
		if (req_is(type, "text") || req_is(type, "input_text") ||
		    req_is(type, "output_text"))
			req_join(b, req_get(part, "text"));
	}
}

/* The joined text in tmp as a JSON string to out; false (and nothing
 * written) when there is none. */
static bool
req_take_text(struct buf *tmp, struct buf *out)
{
	bool any = tmp->len > 0;

	if (any)
		jsonw_str(out, tmp->data, tmp->len);
	buf_free(tmp);
	return any;
}

static bool
req_message_text(struct req_v content, struct buf *out)
{
	struct buf b = { 0 };

	req_content_text(&b, content);
	return req_take_text(&b, out);
}

/*
 * One pass over the conversation: counts the items, finds the last user
 * message and the trailing run of tool results, and joins the system and
 * developer texts (chat-shaped lists; Anthropic keeps its system prompt
 * apart and has no such roles).
 */
static void
req_conv_scan(const struct event_req_dialect *dl, struct req_v messages,
    struct req_conv *conv)
{
	static const char *const keys[] = { "role", "type" };
	size_t pos = 0, before, vb[2], ve[2];
	struct req_v m, role, type;

	for (before = pos; req_next(messages, &pos, &m); before = pos) {
		conv->count++;
		role = type = (struct req_v){ NULL, 0 };
		if (req_is_object(m)) {
			jsonscan_get_many(m.p, m.n, keys, 2, vb, ve);
			role = (struct req_v){ m.p + vb[0], ve[0] - vb[0] };
			type = (struct req_v){ m.p + vb[1], ve[1] - vb[1] };
		}
		if (req_is(role, "user"))
			conv->last_user = m;
		if (dl->is_result == NULL || !dl->is_result(role, type)) {
			conv->in_run = false;
		} else if (!conv->in_run) {
			conv->in_run = true;
			conv->run = before;
		}
		if (dl->is_result != NULL && (req_is(role, "system") ||
		    req_is(role, "developer")))
			req_content_text(&conv->roles, req_get(m, "content"));
	}
}

/* "content": text of the last message with role "user", or null. */
static void
req_last_user_text(struct req_conv *conv, struct buf *content,
    bool *has_text)
{
	struct req_v m = conv->last_user;

	jsonw_key(content, "content");
	if (m.n == 0 || !req_message_text(req_get(m, "content"), content))
		jsonw_lit(content, "null");
	*has_text = true;
}

/* One tool result: {"toolCallId", "content"}; content only with capture;
 * without the closing brace. */
static void
req_tool_result(struct buf *b, struct req_v id, struct req_v output,
    bool capture)
{
	jsonw_elem(b);
	jsonw_lit(b, "{");
	req_put(b, "toolCallId", req_is_string(id) ? id :
	    (struct req_v){ NULL, 0 });
	if (capture)
		req_put(b, "content", output);
}

/* The trailing run of tool results, oldest first, as "toolResults".
 * Returns false when the last item is none. */
static bool
req_trailing_results(struct req_v items, struct req_conv *conv,
    const char *id_key, const char *output_key, bool capture,
    struct buf *content)
{
	const char *const keys[] = { id_key, output_key };
	size_t pos, vb[2], ve[2];
	struct req_v it;

	if (!conv->in_run)
		return false;
	jsonw_key(content, "toolResults");
	jsonw_lit(content, "[");
	for (pos = conv->run; req_next(items, &pos, &it); ) {
		jsonscan_get_many(it.p, it.n, keys, 2, vb, ve);
		req_tool_result(content,
		    (struct req_v){ it.p + vb[0], ve[0] - vb[0] },
		    (struct req_v){ it.p + vb[1], ve[1] - vb[1] }, capture);
		jsonw_lit(content, "}");
	}
	jsonw_lit(content, "]");
	return true;
}

/* ---- OpenAI chat completions ---- */

static bool
req_chat_is_tool(struct req_v role, struct req_v type)
{
	return req_is(role, "tool") || req_is(role, "function");
}

/* The joined system and developer texts; false when there are none. */
static bool
req_chat_system(const struct req_body *body, struct req_conv *conv,
    struct buf *out)
{
	if (conv->roles.len == 0)
		return false;
	jsonw_str(out, conv->roles.data, conv->roles.len);
	return true;
}

static bool
req_chat_newest(struct req_v messages, struct req_conv *conv, bool capture,
    struct buf *content, bool *has_text)
{
	/* {"role":"tool","tool_call_id":..,"content":..}; the legacy
	 * "function" role names the function instead of a call id */
	if (req_trailing_results(messages, conv, "tool_call_id", "content",
	    capture, content))
		return true;
	if (capture)
		req_last_user_text(conv, content, has_text);
	return false;
}

/* ---- OpenAI Responses ---- */

static bool
req_responses_is_output(struct req_v role, struct req_v type)
{
	return req_is(type, "function_call_output") ||
	    req_is(type, "custom_tool_call_output");
}

static bool
req_responses_system(const struct req_body *body, struct req_conv *conv,
    struct buf *out)
{
	struct req_v ins = body->top[K_INSTRUCTIONS];

	if (req_is_text(ins)) {
		jsonw_raw(out, ins.p, ins.n);
		return true;
	}
	return req_chat_system(body, conv, out);
}

static bool
req_responses_newest(struct req_v input, struct req_conv *conv,
    bool capture, struct buf *content, bool *has_text)
{
	if (req_is_string(input)) {
		if (capture) {
			req_put(content, "content", req_is_text(input) ?
			    input : (struct req_v){ NULL, 0 });
			*has_text = true;
		}
		return false;
	}
	if (req_trailing_results(input, conv, "call_id", "output", capture,
	    content))
		return true;
	if (capture)
		req_last_user_text(conv, content, has_text);
	return false;
}

/* ---- Anthropic messages ---- */

static bool
req_anthropic_system(const struct req_body *body, struct req_conv *conv,
    struct buf *out)
{
	return req_message_text(body->top[K_SYSTEM], out);
}

static bool
req_anthropic_newest(struct req_v messages, struct req_conv *conv,
    bool capture, struct buf *content, bool *has_text)
{
	struct req_v blocks = req_get(conv->last_user, "content"), blk;
	size_t pos = 0, nresults = 0;

	while (req_next(blocks, &pos, &blk)) {
		if (!req_is(req_get(blk, "type"), "tool_result"))
			continue;
		if (nresults++ == 0) {
			jsonw_key(content, "toolResults");
			jsonw_lit(content, "[");
		}
		req_tool_result(content, req_get(blk, "tool_use_id"),
		    req_get(blk, "content"), capture);
		if (req_kind(req_get(blk, "is_error")) == 't')
			jsonw_lit(content, ",\"isError\":true");
		jsonw_lit(content, "}");
	}
	if (nresults > 0)
		jsonw_lit(content, "]");
	if (capture) {
		struct buf text = { 0 };

		req_content_text(&text, blocks);
		if (text.len > 0 || nresults == 0) {
			jsonw_key(content, "content");
			if (!req_take_text(&text, content))
				jsonw_lit(content, "null");
			*has_text = true;
		}
		buf_free(&text);
	}
	return nresults > 0;
}

/* ---- parameters ---- */

/* A tool's name: chat {"function":{"name"}}, Responses and Anthropic
 * {"name"}, hosted tools only their {"type"}. */
static struct req_v
req_tool_name(struct req_v tool)
{
	struct req_v name = req_get(req_get(tool, "function"), "name");

	if (!req_is_string(name))
		name = req_get(tool, "name");
	if (!req_is_string(name))
		name = req_get(tool, "type");
	return req_is_string(name) ? name : (struct req_v){ NULL, 0 };
}

static void
req_tools(struct buf *params, struct req_v tools, bool capture)
{
	struct req_v t, name;
	size_t pos = 0;

	if (!req_is_array(tools))
		return;
	jsonw_key(params, "toolNames");
	jsonw_lit(params, "[");
	while (req_next(tools, &pos, &t)) {
		name = req_tool_name(t);
		jsonw_elem(params);
		if (name.n > 0)
			jsonw_raw(params, name.p, name.n);
		else
			jsonw_lit(params, "null");
	}
	jsonw_lit(params, "]");
	if (capture)
		req_put(params, "tools", tools);
}

static void
req_params(struct buf *b, const struct req_body *body, bool capture)
{
	static const enum req_key max_keys[] = {
		K_MAX_COMPLETION_TOKENS, K_MAX_TOKENS, K_MAX_OUTPUT_TOKENS,
	};
	const struct req_v *top = body->top;
	struct req_v v;
	size_t i;

	jsonw_key(b, "params");
	jsonw_lit(b, "{");
	if (req_is_number(v = top[K_TEMPERATURE]))
		req_put(b, "temperature", v);
	for (i = 0; i < sizeof(max_keys) / sizeof(max_keys[0]); i++) {
		if (req_is_integer(v = top[max_keys[i]])) {
			req_put(b, "maxTokens", v);
			break;
		}
	}
	if (req_is_number(v = top[K_TOP_P]))
		req_put(b, "topP", v);
	req_tools(b, top[K_TOOLS], capture);
	v = top[K_TOOL_CHOICE];
	if (req_is_string(v) || req_is_object(v))
		req_put(b, "toolChoice", v);
	/* Responses {"effort","summary"}; chat's reasoning_effort is put in
	 * the same shape */
	v = top[K_REASONING];
	if (req_is_object(v))
		req_put(b, "reasoning", v);
	else if (req_is_string(v = top[K_REASONING_EFFORT])) {
		jsonw_key(b, "reasoning");
		jsonw_lit(b, "{");
		req_put(b, "effort", v);
		jsonw_lit(b, "}");
	}
	if (req_is_object(v = top[K_THINKING]))
		req_put(b, "thinking", v);
	v = top[K_STREAM];
	if (req_kind(v) == 't' || req_kind(v) == 'f')
		req_put(b, "stream", v);
	jsonw_lit(b, "}");
}

/* ---- the events ---- */

static const char *
req_chat_event(enum event_dialect d, const struct req_body *body,
    bool capture, struct buf *content)
{
	const struct event_req_dialect *dl = &req_dialects[d];
	struct req_v messages = body->top[dl->messages_key];
	struct req_v none = { NULL, 0 };
	struct req_conv conv = { 0 };
	struct buf system = { 0 };
	bool tool, has_text = false, has_system = false;

	if (!req_is_array(messages) && !req_is_string(messages))
		messages = none;
	req_conv_scan(dl, messages, &conv);
	tool = messages.n > 0 && dl->newest(messages, &conv, capture, content,
	    &has_text);
	if (capture && !tool && !has_text)
		req_put(content, "content", none);
	if (messages.n > 0) {
		jsonw_key(content, "messageCount");
		jsonw_int(content, req_is_array(messages) ?
		    (int64_t)conv.count : 1);
	}
	if (body->present)
		has_system = dl->system_prompt(body, &conv, &system);
	if (capture) {
		req_put(content, "messages", messages);
		jsonw_key(content, "systemPrompt");
		if (has_system)
			buf_append(content, system.data, system.len);
		else
			jsonw_lit(content, "null");
	} else {
		jsonw_key(content, "hasSystemPrompt");
		jsonw_bool(content, has_system);
	}
	buf_free(&system);
	buf_free(&conv.roles);
	req_params(content, body, capture);
	return tool ? "tool_result" : "user_message";
}

/* input: a string, strings, one token list, or token lists. */
static int64_t
req_embedding_count(struct req_v input)
{
	struct req_v first;
	size_t pos = 0;

	if (req_is_string(input))
		return 1;
	if (!req_is_array(input))
		return 0;
	if (req_next(input, &pos, &first) && req_is_integer(first))
		return 1;
	return (int64_t)jsonscan_count_items(input.p, input.n);
}

static const char *
req_embedding_event(const struct req_body *body, bool capture,
    struct buf *content)
{
	struct req_v input = body->top[K_INPUT], v;

	jsonw_key(content, "inputCount");
	jsonw_int(content, req_embedding_count(input));
	if (capture)
		req_put(content, "input", req_is_string(input) ||
		    req_is_array(input) ? input : (struct req_v){ NULL, 0 });
	jsonw_key(content, "params");
	jsonw_lit(content, "{");
	if (req_is_integer(v = body->top[K_DIMENSIONS]))
		req_put(content, "dimensions", v);
	if (req_is_string(v = body->top[K_ENCODING_FORMAT]))
		req_put(content, "encodingFormat", v);
	jsonw_lit(content, "}");
	return "embedding_request";
}

/* Finds the members of req_keys in body[0..n) (a validated object or
 * NULL). */
static void
req_body_scan(struct req_body *rb, const char *body, size_t n)
{
	size_t vb[K__COUNT], ve[K__COUNT], i;

	memset(rb, 0, sizeof(*rb));
	if (body == NULL)
		return;
	rb->present = true;
	jsonscan_get_many(body, n, req_keys, K__COUNT, vb, ve);
	for (i = 0; i < K__COUNT; i++)
		if (ve[i] > vb[i]) {
			rb->top[i].p = body + vb[i];
			rb->top[i].n = ve[i] - vb[i];
		}
}

const char *
event_request(enum event_dialect d, const char *body, size_t n,
    bool capture, struct buf *content)
{
	struct req_body rb;
	const char *type;

	req_body_scan(&rb, body, n);
	jsonw_lit(content, "{");
	if (d == EVENT_DIALECT_EMBEDDINGS) {
		type = req_embedding_event(&rb, capture, content);
	} else {
		if (d >= sizeof(req_dialects) / sizeof(req_dialects[0]))
			d = EVENT_DIALECT_CHAT;
		type = req_chat_event(d, &rb, capture, content);
	}
	jsonw_lit(content, "}");
	return type;
}
