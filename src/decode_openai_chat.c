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
 * No private state: everything lives in the result.  Events and bodies are
 * read in place (jsonv.h): each object is scanned once for the members
 * wanted, nested values skipped.
 */
#include "decode.h"

#include <string.h>

static void
chat_usage(struct llm_result *res, struct jv u)
{
	static const char *const keys[] = { "prompt_tokens",
	    "completion_tokens", "total_tokens", "prompt_tokens_details",
	    "completion_tokens_details" };
	struct jv m[5];

	if (!jv_is_object(u))
		return;
	jv_get_many(u, keys, 5, m);
	llm_usage_set_jv(&res->usage.input, m[0]);
	llm_usage_set_jv(&res->usage.output, m[1]);
	llm_usage_set_jv(&res->usage.total, m[2]);
	llm_usage_set_jv(&res->usage.cached, jv_get(m[3], "cached_tokens"));
	llm_usage_set_jv(&res->usage.reasoning, jv_get(m[4],
	    "reasoning_tokens"));
}

/* Index member, or the position in the array when there is none. */
static size_t
chat_index(struct jv v, size_t pos)
{
	int64_t i;

	if (jv_int(v, &i) && i >= 0)
		return (size_t)i;
	if (v.n > 0)
		return (size_t)-1;	/* over any limit: dropped, noted */
	return pos;
}

static void
chat_tool_call(struct llm_result *res, struct llm_choice *c, struct jv tc,
    size_t pos)
{
	static const char *const keys[] = { "index", "type", "id",
	    "function", "custom" };
	struct llm_tool_call *call;
	struct jv m[5];

	if (!jv_is_object(tc))
		return;
	jv_get_many(tc, keys, 5, m);
	call = llm_choice_tool_call(res, c, chat_index(m[0], pos));
	if (call == NULL)
		return;
	if (jv_is_string(m[1]) && call->type.len == 0)
		call->kind = jv_str_eq(m[1], "custom") ?
		    LLM_TOOL_CUSTOM : LLM_TOOL_FUNCTION;
	llm_str_fill_jv(res, &call->type, m[1]);
	llm_str_fill_jv(res, &call->id, m[2]);
	if (m[3].n > 0) {
		llm_str_append_jv(res, &call->name, jv_get(m[3], "name"));
		llm_str_append_jv(res, &call->arguments, jv_get(m[3],
		    "arguments"));
	} else if (m[4].n > 0) {
		llm_str_append_jv(res, &call->name, jv_get(m[4], "name"));
		llm_str_append_jv(res, &call->arguments, jv_get(m[4],
		    "input"));
	}
}

/* A streamed "delta" or a non-streamed "message". */
static void
chat_message(struct llm_result *res, struct llm_choice *c, struct jv msg)
{
	static const char *const keys[] = { "content", "refusal",
	    "reasoning_content", "reasoning", "annotations", "tool_calls" };
	struct jv m[6], tc;
	size_t pos = 0, i = 0;

	if (!jv_is_object(msg))
		return;
	jv_get_many(msg, keys, 6, m);
	llm_str_append_jv(res, &c->content, m[0]);
	llm_str_append_jv(res, &c->refusal, m[1]);
	llm_reasoning_append_jv(res, c, jv_is_string(m[2]) ? m[2] : m[3]);
	if (jv_is_array(m[4]))
		c->citations += jv_count(m[4]);
	while (jv_next(m[5], &pos, &tc))
		chat_tool_call(res, c, tc, i++);
}

static void
chat_apply(struct decoder *dec, struct jv obj, const char *member)
{
	static const char *const keys[] = { "id", "model",
	    "system_fingerprint", "service_tier", "choices", "usage" };
	const char *const ckeys[] = { "index", member, "finish_reason" };
	struct llm_result *res = decode_res(dec);
	struct llm_choice *c;
	struct jv m[6], ch, cm[3];
	size_t pos = 0, i;

	jv_get_many(obj, keys, 6, m);
	llm_str_fill_jv(res, &res->id, m[0]);
	llm_str_fill_jv(res, &res->model, m[1]);
	llm_str_fill_jv(res, &res->system_fingerprint, m[2]);
	llm_str_fill_jv(res, &res->service_tier, m[3]);
	for (i = 0; jv_next(m[4], &pos, &ch); i++) {
		if (!jv_is_object(ch))
			continue;
		jv_get_many(ch, ckeys, 3, cm);
		if ((c = llm_result_choice(res, chat_index(cm[0], i))) == NULL)
			continue;
		chat_message(res, c, cm[1]);
		llm_str_set_jv(res, &c->finish_reason, cm[2]);
	}
	chat_usage(res, m[5]);
}

static bool
chat_on_event(struct decoder *dec, const char *event, struct jv obj)
{
	(void)event;
	chat_apply(dec, obj, "delta");
	return true;
}

static void
chat_on_document(struct decoder *dec, struct jv obj)
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
	.on_event_jv = chat_on_event,
	.on_done = chat_on_done,
	.on_document_jv = chat_on_document,
};
