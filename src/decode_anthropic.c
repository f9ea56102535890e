/*
 * decode_anthropic.c - Anthropic Messages API (POST /v1/messages).
 *
 * Non-streamed, the body is a message object with content[] blocks.
 * Streamed: message_start carries the message without content, each block
 * is opened by content_block_start (its initial form), grown by
 * content_block_delta and closed by content_block_stop; message_delta
 * brings stop_reason / stop_sequence / final usage; message_stop ends the
 * stream.  ping is ignored; an error event is recorded by decode.c.
 *
 * A block's initial form and a complete block are applied by the same
 * function, and deltas append to what it opened, so both forms give one
 * result:
 *  - text blocks: concatenated into content; citations counted
 *  - thinking blocks: reasoning, a blank line between blocks; signatures
 *    are opaque and not kept
 *  - tool_use (function), server_tool_use / mcp_tool_use (server): tool
 *    calls whose arguments are the input re-serialised as compact JSON.  A
 *    streamed block starts with its initial input (always {} today); the
 *    first non-empty input_json_delta replaces it and, at content_block_stop,
 *    the joined fragments are parsed and re-serialised the same way (kept
 *    raw if they do not parse, e.g. a cut stream)
 *  - redacted_thinking, *_tool_result and unknown blocks: kept by (type,
 *    id or tool_use_id)
 *  - usage: input_tokens, output_tokens, cache_read_input_tokens (cached),
 *    cache_creation_input_tokens, output_tokens_details.thinking_tokens
 *    (reasoning); each message_delta value overrides message_start's.  The
 *    API reports service_tier inside usage.
 * Data lines carry trailing blanks after the JSON; jansson accepts them.
 *
 * content_block_delta events (and pings), nearly all of a stream, are read
 * in place (jsonv.h, on_event_jv); the others, a handful per answer, and
 * documents as jansson trees.
 */
#include "decode.h"

#include <stdlib.h>
#include <string.h>

enum ant_type {
	ANT_NONE,
	ANT_TEXT,
	ANT_THINKING,
	ANT_TOOL,
	ANT_OTHER,
};

struct ant_block {
	unsigned char type;	/* enum ant_type */
	bool fragments;		/* a non-empty input_json_delta arrived */
	size_t tool;		/* index in the tool calls, for ANT_TOOL */
};

struct ant_state {
	struct ant_block *blocks;	/* by content block index */
	size_t nblocks;
};

static struct ant_block *
ant_block_at_i(struct decoder *dec, int64_t index)
{
	struct ant_state *st = decode_state(dec);
	struct llm_result *res = decode_res(dec);
	size_t i;

	if (index < 0)
		return NULL;
	i = (size_t)index;
	if (i >= res->limits.max_items) {
		llm_note(res, LLM_NOTE_TOO_MANY);
		return NULL;
	}
	if (i >= st->nblocks) {
		st->blocks = realloc(st->blocks, (i + 1) * sizeof(*st->blocks));
		if (st->blocks == NULL)
			abort();
		memset(st->blocks + st->nblocks, 0,
		    (i + 1 - st->nblocks) * sizeof(*st->blocks));
		st->nblocks = i + 1;
	}
	return &st->blocks[i];
}

static struct ant_block *
ant_block_at(struct decoder *dec, json_t *index)
{
	return ant_block_at_i(dec, json_is_integer(index) ?
	    json_integer_value(index) : -1);
}

static struct llm_tool_call *
ant_tool(struct decoder *dec, const struct ant_block *b)
{
	struct llm_choice *c = llm_result_choice(decode_res(dec), 0);

	if (c == NULL || b == NULL || b->type != ANT_TOOL ||
	    b->tool >= c->ntool_calls)
		return NULL;
	return &c->tool_calls[b->tool];
}

static void
ant_citations(struct llm_choice *c, json_t *v)
{
	if (json_is_array(v))
		c->citations += json_array_size(v);
}

static void
ant_tool_block(struct llm_result *res, struct llm_choice *c, json_t *blk,
    const char *type, struct ant_block *b)
{
	struct llm_tool_call *tc;

	if ((tc = llm_choice_add_tool_call(res, c)) == NULL)
		return;
	tc->kind = strcmp(type, "tool_use") == 0 ? LLM_TOOL_FUNCTION :
	    LLM_TOOL_SERVER;
	llm_str_set_json(res, &tc->type, json_object_get(blk, "type"));
	llm_str_set_json(res, &tc->id, json_object_get(blk, "id"));
	llm_str_set_json(res, &tc->name, json_object_get(blk, "name"));
	llm_str_set_compact(res, &tc->arguments, json_object_get(blk,
	    "input"));
	if (b != NULL) {
		b->type = ANT_TOOL;
		b->tool = c->ntool_calls - 1;
	}
}

/*
 * A content block: complete (non-streamed) or initial (content_block_start;
 * then b is its stream state).
 */
static void
ant_block(struct llm_result *res, json_t *blk, struct ant_block *b)
{
	struct llm_choice *c = llm_result_choice(res, 0);
	const char *type = json_string_value(json_object_get(blk, "type"));
	enum ant_type t = ANT_OTHER;
	json_t *id;

	if (c == NULL || type == NULL)
		return;
	if (strcmp(type, "text") == 0) {
		t = ANT_TEXT;
		llm_str_append_json(res, &c->content, json_object_get(blk,
		    "text"));
		ant_citations(c, json_object_get(blk, "citations"));
	} else if (strcmp(type, "thinking") == 0) {
		t = ANT_THINKING;
		llm_reasoning_break(c);
		llm_reasoning_append(res, c, json_object_get(blk, "thinking"));
	} else if (strcmp(type, "tool_use") == 0 ||
	    strcmp(type, "server_tool_use") == 0 ||
	    strcmp(type, "mcp_tool_use") == 0) {
		ant_tool_block(res, c, blk, type, b);
		return;
	} else {
		id = json_object_get(blk, "id");
		if (id == NULL)
			id = json_object_get(blk, "tool_use_id");
		llm_choice_add_item(res, c, json_object_get(blk, "type"), id);
	}
	if (b != NULL)
		b->type = t;
}

static void
ant_usage(struct llm_result *res, json_t *u)
{
	if (!json_is_object(u))
		return;
	llm_usage_set_json(&res->usage.input, json_object_get(u,
	    "input_tokens"));
	llm_usage_set_json(&res->usage.output, json_object_get(u,
	    "output_tokens"));
	llm_usage_set_json(&res->usage.cached, json_object_get(u,
	    "cache_read_input_tokens"));
	llm_usage_set_json(&res->usage.cache_creation, json_object_get(u,
	    "cache_creation_input_tokens"));
	llm_usage_set_json(&res->usage.reasoning, json_object_get(
	    json_object_get(u, "output_tokens_details"), "thinking_tokens"));
	llm_str_set_json(res, &res->service_tier, json_object_get(u,
	    "service_tier"));
}

/* stop_reason / stop_sequence: of a message, or of a message_delta. */
static void
ant_stop(struct llm_result *res, json_t *obj)
{
	struct llm_choice *c = llm_result_choice(res, 0);

	if (c == NULL)
		return;
	llm_str_set_json(res, &c->finish_reason, json_object_get(obj,
	    "stop_reason"));
	llm_str_set_json(res, &c->stop_sequence, json_object_get(obj,
	    "stop_sequence"));
}

static void
ant_message(struct decoder *dec, json_t *msg)
{
	struct llm_result *res = decode_res(dec);
	json_t *blk;
	size_t i;

	if (!json_is_object(msg))
		return;
	llm_str_set_json(res, &res->id, json_object_get(msg, "id"));
	llm_str_set_json(res, &res->model, json_object_get(msg, "model"));
	ant_stop(res, msg);
	ant_usage(res, json_object_get(msg, "usage"));
	json_array_foreach(json_object_get(msg, "content"), i, blk)
		ant_block(res, blk, NULL);
}

static void
ant_on_message_start(struct decoder *dec, json_t *obj)
{
	ant_message(dec, json_object_get(obj, "message"));
}

static void
ant_on_block_start(struct decoder *dec, json_t *obj)
{
	struct ant_block *b = ant_block_at(dec, json_object_get(obj, "index"));
	json_t *blk = json_object_get(obj, "content_block");

	if (b == NULL || b->type != ANT_NONE || !json_is_object(blk))
		return;
	ant_block(decode_res(dec), blk, b);
}

static void
ant_input_delta(struct decoder *dec, struct ant_block *b, struct jv frag)
{
	struct llm_result *res = decode_res(dec);
	struct llm_tool_call *tc = ant_tool(dec, b);

	if (tc == NULL || !jv_is_string(frag) || frag.n == 2)
		return;
	if (!b->fragments) {
		llm_str_clear(res, &tc->arguments);
		b->fragments = true;
	}
	llm_str_append_jv(res, &tc->arguments, frag);
}

/* content_block_delta, the bulk of a stream: read in place. */
static void
ant_on_block_delta(struct decoder *dec, struct jv obj)
{
	static const char *const keys[] = { "index", "delta" };
	static const char *const dkeys[] = { "type", "text", "thinking",
	    "partial_json" };
	struct llm_result *res = decode_res(dec);
	struct ant_block *b;
	struct llm_choice *c;
	struct jv m[2], d[4];
	int64_t index;

	jv_get_many(obj, keys, 2, m);
	b = ant_block_at_i(dec, jv_int(m[0], &index) ? index : -1);
	c = llm_result_choice(res, 0);
	jv_get_many(m[1], dkeys, 4, d);
	if (b == NULL || c == NULL || !jv_is_string(d[0]))
		return;
	if (jv_str_eq(d[0], "text_delta"))
		llm_str_append_jv(res, &c->content, d[1]);
	else if (jv_str_eq(d[0], "thinking_delta"))
		llm_reasoning_append_jv(res, c, d[2]);
	else if (jv_str_eq(d[0], "input_json_delta"))
		ant_input_delta(dec, b, d[3]);
	else if (jv_str_eq(d[0], "citations_delta"))
		c->citations++;
	/* signature_delta: opaque, not kept */
}

static void
ant_on_block_stop(struct decoder *dec, json_t *obj)
{
	struct llm_result *res = decode_res(dec);
	struct ant_block *b = ant_block_at(dec, json_object_get(obj, "index"));
	struct llm_tool_call *tc = ant_tool(dec, b);
	json_t *input;

	if (tc == NULL || !b->fragments || tc->arguments.capped)
		return;
	input = json_loadb(tc->arguments.ptr, tc->arguments.len,
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (input != NULL)
		llm_str_set_compact(res, &tc->arguments, input);
	json_decref(input);
}

static void
ant_on_message_delta(struct decoder *dec, json_t *obj)
{
	struct llm_result *res = decode_res(dec);

	ant_stop(res, json_object_get(obj, "delta"));
	ant_usage(res, json_object_get(obj, "usage"));
}

static void
ant_on_message_stop(struct decoder *dec, json_t *obj)
{
	(void)obj;
	decode_mark_complete(dec);
}

static const struct decode_handler ant_handlers[] = {
	{ "message_start", ant_on_message_start },
	{ "content_block_start", ant_on_block_start },
	{ "content_block_stop", ant_on_block_stop },
	{ "message_delta", ant_on_message_delta },
	{ "message_stop", ant_on_message_stop },
	/* ping: nothing; error: decode.c */
};

/* Deltas and pings in place; the few other events as trees. */
static bool
ant_on_event_jv(struct decoder *dec, const char *event, struct jv obj)
{
	char buf[32];
	const char *type = decode_jv_type(obj, event, buf, sizeof(buf));

	if (strcmp(type, "content_block_delta") == 0) {
		ant_on_block_delta(dec, obj);
		return true;
	}
	return strcmp(type, "ping") == 0;
}

static void
ant_on_event(struct decoder *dec, const char *event, json_t *obj)
{
	decode_dispatch(dec, event, obj, ant_handlers,
	    sizeof(ant_handlers) / sizeof(ant_handlers[0]));
}

static void
ant_on_document(struct decoder *dec, json_t *obj)
{
	const char *type = json_string_value(json_object_get(obj, "type"));

	if (type != NULL && strcmp(type, "error") == 0)
		return;		/* decode.c took the error */
	ant_message(dec, obj);
}

static void
ant_state_free(void *state)
{
	struct ant_state *st = state;

	free(st->blocks);
}

const struct decode_dialect decode_anthropic = {
	.name = "anthropic_messages",
	.state_size = sizeof(struct ant_state),
	.on_event_jv = ant_on_event_jv,
	.on_event = ant_on_event,
	.on_document = ant_on_document,
	.state_free = ant_state_free,
};
