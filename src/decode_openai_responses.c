/*
 * decode_openai_responses.c - OpenAI Responses API (POST /v1/responses).
 *
 * Non-streamed, the body is a response object whose output[] holds items:
 * message (output_text / refusal parts), function_call, custom_tool_call,
 * reasoning (summary_text / reasoning_text parts) and hosted-tool items.
 * Streamed, named events build the same items piece by piece and the
 * terminal event (response.completed / .failed / .incomplete) repeats the
 * whole response object.
 *
 * How both forms give one result: the decoder tracks each output item by
 * output_index in its state.  Text comes from the .delta events while they
 * flow, so a cut stream keeps what arrived.  When an item is complete
 * (response.output_item.done, or the terminal event's output for items that
 * never got one, or the non-streamed output[]) its full form fills in only
 * what no delta supplied: text kinds for which no delta was seen, and tool
 * arguments, which the complete form replaces outright (it is authoritative
 * and equals the joined deltas).  Items listed again by the terminal event
 * after their .done are skipped.
 *
 *  - content: output_text parts of all messages, concatenated; refusal
 *    likewise; annotations counted as citations from complete items
 *  - reasoning: summary and reasoning_text parts, a blank line between
 *    parts (a streamed part starts when (output_index, part index) changes)
 *  - function_call / custom_tool_call: tool calls with call_id as id and the
 *    item id as itemId; other item types kept by (type, id)
 *  - id, model, status, service_tier: the latest response object wins
 *    (created says "auto", completed says the tier actually used); usage,
 *    error and incomplete_details.reason (as finish reason) from it
 *  - "error" events: nested {"error":{...}} is handled by decode.c, the
 *    documented top-level code / message form here
 *
 * The response.*.delta events, nearly all of a stream, are read in place
 * (jsonv.h, on_event_jv); the others, a handful per answer, and documents
 * as jansson trees.
 */
#include "decode.h"

#include <stdlib.h>
#include <string.h>

enum resp_type {
	RESP_NONE,
	RESP_MESSAGE,
	RESP_FUNCTION,
	RESP_CUSTOM,
	RESP_REASONING,
	RESP_OTHER,
};

struct resp_item {
	unsigned char type;	/* enum resp_type */
	bool done;		/* complete form applied */
	bool text_delta;
	bool refusal_delta;
	bool reasoning_delta;
	bool has_tool;
	size_t tool;		/* index in choice 0's tool calls */
};

struct resp_state {
	struct resp_item *items;	/* by output_index */
	size_t nitems;
	bool rkey_set;			/* last reasoning delta's part */
	int64_t rkey_item;
	int64_t rkey_part;
};

static struct llm_choice *
resp_choice(struct decoder *dec)
{
	return llm_result_choice(decode_res(dec), 0);
}

static struct resp_item *
resp_item(struct decoder *dec, size_t i)
{
	struct resp_state *st = decode_state(dec);
	struct llm_result *res = decode_res(dec);

	if (i >= res->limits.max_items) {
		llm_note(res, LLM_NOTE_TOO_MANY);
		return NULL;
	}
	if (i >= st->nitems) {
		st->items = realloc(st->items, (i + 1) * sizeof(*st->items));
		if (st->items == NULL)
			abort();
		memset(st->items + st->nitems, 0,
		    (i + 1 - st->nitems) * sizeof(*st->items));
		st->nitems = i + 1;
	}
	return &st->items[i];
}

/* The item an event's output_index names. */
static struct resp_item *
resp_item_at(struct decoder *dec, json_t *index)
{
	if (!json_is_integer(index) || json_integer_value(index) < 0)
		return NULL;
	return resp_item(dec, (size_t)json_integer_value(index));
}

static struct resp_item *
resp_item_at_jv(struct decoder *dec, struct jv index)
{
	int64_t i;

	if (!jv_int(index, &i) || i < 0)
		return NULL;
	return resp_item(dec, (size_t)i);
}

static struct llm_tool_call *
resp_tool(struct decoder *dec, const struct resp_item *it)
{
	struct llm_choice *c = resp_choice(dec);

	if (c == NULL || !it->has_tool || it->tool >= c->ntool_calls)
		return NULL;
	return &c->tool_calls[it->tool];
}

static enum resp_type
resp_classify(const char *type)
{
	static const struct {
		const char *name;
		enum resp_type type;
	} map[] = {
		{ "message", RESP_MESSAGE },
		{ "function_call", RESP_FUNCTION },
		{ "custom_tool_call", RESP_CUSTOM },
		{ "reasoning", RESP_REASONING },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(type, map[i].name) == 0)
			return map[i].type;
	return RESP_OTHER;
}

/* First sight of an item: decide its kind, open its tool call or entry. */
static void
resp_register(struct decoder *dec, struct resp_item *it, json_t *item)
{
	struct llm_result *res = decode_res(dec);
	struct llm_choice *c = resp_choice(dec);
	struct llm_tool_call *tc;
	json_t *type = json_object_get(item, "type");

	if (it->type != RESP_NONE || c == NULL || !json_is_string(type))
		return;
	it->type = resp_classify(json_string_value(type));
	if (it->type == RESP_OTHER) {
		llm_choice_add_item(res, c, type, json_object_get(item, "id"));
	} else if (it->type == RESP_FUNCTION || it->type == RESP_CUSTOM) {
		if ((tc = llm_choice_add_tool_call(res, c)) == NULL)
			return;
		it->has_tool = true;
		it->tool = c->ntool_calls - 1;
		tc->kind = it->type == RESP_CUSTOM ? LLM_TOOL_CUSTOM :
		    LLM_TOOL_FUNCTION;
		llm_str_set_json(res, &tc->type, type);
		llm_str_set_json(res, &tc->id, json_object_get(item,
		    "call_id"));
		llm_str_set_json(res, &tc->item_id, json_object_get(item,
		    "id"));
		llm_str_set_json(res, &tc->name, json_object_get(item,
		    "name"));
	}
}

static void
resp_fill_message(struct decoder *dec, struct resp_item *it, json_t *item)
{
	struct llm_result *res = decode_res(dec);
	struct llm_choice *c = resp_choice(dec);
	json_t *part, *ann;
	const char *type;
	size_t i;

	json_array_foreach(json_object_get(item, "content"), i, part) {
		type = json_string_value(json_object_get(part, "type"));
		if (type == NULL)
			continue;
		if (strcmp(type, "output_text") == 0 && !it->text_delta)
			llm_str_append_json(res, &c->content,
			    json_object_get(part, "text"));
		else if (strcmp(type, "refusal") == 0 && !it->refusal_delta)
			llm_str_append_json(res, &c->refusal,
			    json_object_get(part, "refusal"));
		ann = json_object_get(part, "annotations");
		if (json_is_array(ann))
			c->citations += json_array_size(ann);
	}
}

static void
resp_fill_reasoning(struct decoder *dec, json_t *item)
{
	struct llm_result *res = decode_res(dec);
	struct llm_choice *c = resp_choice(dec);
	json_t *part;
	size_t i;

	json_array_foreach(json_object_get(item, "summary"), i, part) {
		llm_reasoning_break(c);
		llm_reasoning_append(res, c, json_object_get(part, "text"));
	}
	json_array_foreach(json_object_get(item, "content"), i, part) {
		llm_reasoning_break(c);
		llm_reasoning_append(res, c, json_object_get(part, "text"));
	}
}

/* The complete form of an item: fill what the deltas did not supply. */
static void
resp_complete_item(struct decoder *dec, struct resp_item *it, json_t *item)
{
	struct llm_result *res = decode_res(dec);
	struct llm_tool_call *tc;

	if (!json_is_object(item) || resp_choice(dec) == NULL)
		return;
	resp_register(dec, it, item);
	if (it->type == RESP_MESSAGE) {
		resp_fill_message(dec, it, item);
	} else if (it->type == RESP_REASONING) {
		if (!it->reasoning_delta)
			resp_fill_reasoning(dec, item);
	} else if ((tc = resp_tool(dec, it)) != NULL) {
		llm_str_set_json(res, &tc->arguments, json_object_get(item,
		    it->type == RESP_CUSTOM ? "input" : "arguments"));
	}
	it->done = true;
}

static void
resp_usage(struct llm_result *res, json_t *u)
{
	if (!json_is_object(u))
		return;
	llm_usage_set_json(&res->usage.input, json_object_get(u,
	    "input_tokens"));
	llm_usage_set_json(&res->usage.output, json_object_get(u,
	    "output_tokens"));
	llm_usage_set_json(&res->usage.total, json_object_get(u,
	    "total_tokens"));
	llm_usage_set_json(&res->usage.cached, json_object_get(
	    json_object_get(u, "input_tokens_details"), "cached_tokens"));
	llm_usage_set_json(&res->usage.reasoning, json_object_get(
	    json_object_get(u, "output_tokens_details"), "reasoning_tokens"));
}

/* A response object: from a lifecycle event or the non-streamed body. */
static void
resp_response(struct decoder *dec, json_t *r, bool with_output)
{
	struct llm_result *res = decode_res(dec);
	struct llm_choice *c;
	struct resp_item *it;
	json_t *item;
	size_t i;

	if (!json_is_object(r) || (c = resp_choice(dec)) == NULL)
		return;
	llm_str_set_json(res, &res->id, json_object_get(r, "id"));
	llm_str_set_json(res, &res->model, json_object_get(r, "model"));
	llm_str_set_json(res, &res->status, json_object_get(r, "status"));
	llm_str_set_json(res, &res->service_tier,
	    json_object_get(r, "service_tier"));
	llm_str_set_json(res, &c->finish_reason, json_object_get(
	    json_object_get(r, "incomplete_details"), "reason"));
	resp_usage(res, json_object_get(r, "usage"));
	llm_result_set_error_json(res, json_object_get(r, "error"));
	if (!with_output)
		return;
	json_array_foreach(json_object_get(r, "output"), i, item) {
		it = resp_item(dec, i);
		if (it != NULL && !it->done)
			resp_complete_item(dec, it, item);
	}
}

static void
resp_on_response(struct decoder *dec, json_t *obj)
{
	resp_response(dec, json_object_get(obj, "response"), false);
}

static void
resp_on_terminal(struct decoder *dec, json_t *obj)
{
	resp_response(dec, json_object_get(obj, "response"), true);
	decode_mark_complete(dec);
}

static void
resp_on_item_added(struct decoder *dec, json_t *obj)
{
	struct resp_item *it = resp_item_at(dec,
	    json_object_get(obj, "output_index"));

	if (it != NULL && resp_choice(dec) != NULL)
		resp_register(dec, it, json_object_get(obj, "item"));
}

static void
resp_on_item_done(struct decoder *dec, json_t *obj)
{
	struct resp_item *it = resp_item_at(dec,
	    json_object_get(obj, "output_index"));

	if (it != NULL && !it->done)
		resp_complete_item(dec, it, json_object_get(obj, "item"));
}

/*
 * The deltas, the bulk of a stream, are read in place.  Members they use:
 * output_index, delta, and for reasoning summary_index / content_index.
 */
enum { RD_OI, RD_DELTA, RD_SI, RD_CI, RD__N };
static const char *const resp_delta_keys[RD__N] = {
	"output_index", "delta", "summary_index", "content_index",
};

static void
resp_on_text_delta(struct decoder *dec, const struct jv *m, bool refusal)
{
	struct resp_item *it = resp_item_at_jv(dec, m[RD_OI]);
	struct llm_choice *c = resp_choice(dec);

	if (it == NULL || c == NULL)
		return;
	if (refusal)
		it->refusal_delta = true;
	else
		it->text_delta = true;
	llm_str_append_jv(decode_res(dec), refusal ? &c->refusal :
	    &c->content, m[RD_DELTA]);
}

static void
resp_on_reasoning_delta(struct decoder *dec, const struct jv *m)
{
	struct resp_state *st = decode_state(dec);
	struct resp_item *it = resp_item_at_jv(dec, m[RD_OI]);
	struct llm_choice *c = resp_choice(dec);
	int64_t oi = 0, part = 0;

	if (it == NULL || c == NULL)
		return;
	(void)jv_int(m[RD_OI], &oi);
	/* summary parts and reasoning_text parts never share a key */
	if (m[RD_SI].n > 0) {
		(void)jv_int(m[RD_SI], &part);
	} else {
		(void)jv_int(m[RD_CI], &part);
		part = -1 - part;
	}
	if (!st->rkey_set || st->rkey_item != oi || st->rkey_part != part)
		llm_reasoning_break(c);
	st->rkey_set = true;
	st->rkey_item = oi;
	st->rkey_part = part;
	it->reasoning_delta = true;
	llm_reasoning_append_jv(decode_res(dec), c, m[RD_DELTA]);
}

static void
resp_on_args_delta(struct decoder *dec, const struct jv *m)
{
	struct resp_item *it = resp_item_at_jv(dec, m[RD_OI]);
	struct llm_tool_call *tc;

	if (it != NULL && (tc = resp_tool(dec, it)) != NULL)
		llm_str_append_jv(decode_res(dec), &tc->arguments, m[RD_DELTA]);
}

static void
resp_on_args_done(struct decoder *dec, json_t *obj)
{
	struct resp_item *it = resp_item_at(dec,
	    json_object_get(obj, "output_index"));
	struct llm_tool_call *tc;
	json_t *v = json_object_get(obj, "arguments");

	if (v == NULL)
		v = json_object_get(obj, "input");
	if (it != NULL && (tc = resp_tool(dec, it)) != NULL)
		llm_str_set_json(decode_res(dec), &tc->arguments, v);
}

/* {"type":"error","code":..,"message":..,"param":..}: no nested object. */
static void
resp_on_error(struct decoder *dec, json_t *obj)
{
	json_t *err;

	if (json_object_get(obj, "error") != NULL)
		return;		/* decode.c took it */
	err = json_object();
	json_object_set(err, "code", json_object_get(obj, "code"));
	json_object_set(err, "message", json_object_get(obj, "message"));
	llm_result_set_error_json(decode_res(dec), err);
	json_decref(err);
}

static const struct decode_handler resp_handlers[] = {
	{ "response.created", resp_on_response },
	{ "response.queued", resp_on_response },
	{ "response.in_progress", resp_on_response },
	{ "response.completed", resp_on_terminal },
	{ "response.failed", resp_on_terminal },
	{ "response.incomplete", resp_on_terminal },
	{ "response.output_item.added", resp_on_item_added },
	{ "response.output_item.done", resp_on_item_done },
	{ "response.function_call_arguments.done", resp_on_args_done },
	{ "response.custom_tool_call_input.done", resp_on_args_done },
	{ "error", resp_on_error },
};

static bool
resp_on_event_jv(struct decoder *dec, const char *event, struct jv obj)
{
	char buf[64];
	const char *type = decode_jv_type(obj, event, buf, sizeof(buf));
	struct jv m[RD__N];

	if (strncmp(type, "response.", 9) != 0 ||
	    strcmp(type + strlen(type) - 6, ".delta") != 0)
		return false;
	jv_get_many(obj, resp_delta_keys, RD__N, m);
	type += 9;
	if (strcmp(type, "output_text.delta") == 0)
		resp_on_text_delta(dec, m, false);
	else if (strcmp(type, "refusal.delta") == 0)
		resp_on_text_delta(dec, m, true);
	else if (strcmp(type, "reasoning_summary_text.delta") == 0 ||
	    strcmp(type, "reasoning_text.delta") == 0)
		resp_on_reasoning_delta(dec, m);
	else if (strcmp(type, "function_call_arguments.delta") == 0 ||
	    strcmp(type, "custom_tool_call_input.delta") == 0)
		resp_on_args_delta(dec, m);
	/* other deltas (audio, ...) are not kept */
	return true;
}

static void
resp_on_event(struct decoder *dec, const char *event, json_t *obj)
{
	decode_dispatch(dec, event, obj, resp_handlers,
	    sizeof(resp_handlers) / sizeof(resp_handlers[0]));
}

static void
resp_on_document(struct decoder *dec, json_t *obj)
{
	/* {"error":{...}} alone is an API error body, not a response */
	if (json_object_get(obj, "output") == NULL &&
	    json_is_object(json_object_get(obj, "error")))
		return;
	resp_response(dec, obj, true);
}

static void
resp_state_free(void *state)
{
	struct resp_state *st = state;

	free(st->items);
}

const struct decode_dialect decode_openai_responses = {
	.name = "openai_responses",
	.state_size = sizeof(struct resp_state),
	.on_event_jv = resp_on_event_jv,
	.on_event = resp_on_event,
	.on_document = resp_on_document,
	.state_free = resp_state_free,
};
