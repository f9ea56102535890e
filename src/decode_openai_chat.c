/*
 * decode_openai_chat.c - OpenAI chat completions (POST /v1/chat/completions).
 *
 * Streamed, every event is a chat.completion.chunk whose choices[] carry a
 * "delta"; the stream ends with "data: [DONE]".  Non-streamed, the body is a
 * chat.completion whose choices[] carry a "message".  A delta and a message
 * have the same members, and appending to an empty string is setting it, so
 * one function applies both: the two forms of an answer give the same result
 * by construction.
 *
 *  - choices by their "index" (n > 1); tool calls by their "index" within a
 *    choice (position in the array when absent, as in messages)
 *  - content, refusal and argument fragments are appended; a tool call's
 *    id and type are kept from the first fragment that has them, its name
 *    fragments are joined like the official SDK's accumulator does
 *  - reasoning text from "reasoning_content" (DeepSeek, vLLM) or, when
 *    that is absent, "reasoning" (OpenRouter, Ollama)
 *  - id, model, system_fingerprint, service_tier from the first chunk that
 *    has them; finish_reason per choice; usage from any chunk that has a
 *    non-null one (the include_usage chunk), later values overriding
 *  - {"error":{...}} chunks and bodies are recorded by decode.c
 *
 * No private state: everything lives in the result.
 */
#include "decode.h"

#include <string.h>

static void
chat_usage(struct llm_result *res, json_t *u)
{
	json_t *d;

	if (!json_is_object(u))
		return;
	llm_usage_set_json(&res->usage.input, json_object_get(u,
	    "prompt_tokens"));
	llm_usage_set_json(&res->usage.output, json_object_get(u,
	    "completion_tokens"));
	llm_usage_set_json(&res->usage.total, json_object_get(u,
	    "total_tokens"));
	d = json_object_get(u, "prompt_tokens_details");
	llm_usage_set_json(&res->usage.cached, json_object_get(d,
	    "cached_tokens"));
	d = json_object_get(u, "completion_tokens_details");
	llm_usage_set_json(&res->usage.reasoning, json_object_get(d,
	    "reasoning_tokens"));
}

/* Index member, or the position in the array when there is none. */
static size_t
chat_index(json_t *obj, size_t pos)
{
	json_t *v = json_object_get(obj, "index");

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (size_t)json_integer_value(v);
	if (v != NULL)
		return (size_t)-1;	/* over any limit: dropped, noted */
	return pos;
}

static void
chat_tool_call(struct llm_result *res, struct llm_choice *c, json_t *tc,
    size_t pos)
{
	struct llm_tool_call *call;
	json_t *type, *fn;

	if (!json_is_object(tc))
		return;
	call = llm_choice_tool_call(res, c, chat_index(tc, pos));
	if (call == NULL)
		return;
	type = json_object_get(tc, "type");
	if (json_is_string(type) && call->type.len == 0)
		call->kind = strcmp(json_string_value(type), "custom") == 0 ?
		    LLM_TOOL_CUSTOM : LLM_TOOL_FUNCTION;
	llm_str_fill_json(res, &call->type, type);
	llm_str_fill_json(res, &call->id, json_object_get(tc, "id"));
	if ((fn = json_object_get(tc, "function")) != NULL) {
		llm_str_append_json(res, &call->name, json_object_get(fn,
		    "name"));
		llm_str_append_json(res, &call->arguments,
		    json_object_get(fn, "arguments"));
	} else if ((fn = json_object_get(tc, "custom")) != NULL) {
		llm_str_append_json(res, &call->name, json_object_get(fn,
		    "name"));
		llm_str_append_json(res, &call->arguments,
		    json_object_get(fn, "input"));
	}
}

/* A streamed "delta" or a non-streamed "message". */
static void
chat_message(struct llm_result *res, struct llm_choice *c, json_t *m)
{
	json_t *v, *tc;
	size_t i;

	if (!json_is_object(m))
		return;
	llm_str_append_json(res, &c->content, json_object_get(m, "content"));
	llm_str_append_json(res, &c->refusal, json_object_get(m, "refusal"));
	v = json_object_get(m, "reasoning_content");
	if (!json_is_string(v))
		v = json_object_get(m, "reasoning");
	llm_reasoning_append(res, c, v);
	v = json_object_get(m, "annotations");
	if (json_is_array(v))
		c->citations += json_array_size(v);
	json_array_foreach(json_object_get(m, "tool_calls"), i, tc)
		chat_tool_call(res, c, tc, i);
}

static void
chat_apply(struct decoder *dec, json_t *obj, const char *member)
{
	struct llm_result *res = decode_res(dec);
	struct llm_choice *c;
	json_t *ch;
	size_t i;

	llm_str_fill_json(res, &res->id, json_object_get(obj, "id"));
	llm_str_fill_json(res, &res->model, json_object_get(obj, "model"));
	llm_str_fill_json(res, &res->system_fingerprint,
	    json_object_get(obj, "system_fingerprint"));
	llm_str_fill_json(res, &res->service_tier,
	    json_object_get(obj, "service_tier"));
	json_array_foreach(json_object_get(obj, "choices"), i, ch) {
		if (!json_is_object(ch))
			continue;
		if ((c = llm_result_choice(res, chat_index(ch, i))) == NULL)
			continue;
		chat_message(res, c, json_object_get(ch, member));
		llm_str_set_json(res, &c->finish_reason,
		    json_object_get(ch, "finish_reason"));
	}
	chat_usage(res, json_object_get(obj, "usage"));
}

static void
chat_on_event(struct decoder *dec, const char *event, json_t *obj)
{
	(void)event;
	chat_apply(dec, obj, "delta");
}

static void
chat_on_document(struct decoder *dec, json_t *obj)
{
	chat_apply(dec, obj, "message");
}

static void
chat_on_done(struct decoder *dec)
{
	decode_mark_complete(dec);
}

const struct decode_dialect decode_openai_chat = {
	.name = "openai_chat",
	.on_event = chat_on_event,
	.on_done = chat_on_done,
	.on_document = chat_on_document,
};
