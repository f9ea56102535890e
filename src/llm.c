/*
 * llm.c - the dialect-neutral result of one upstream call.
 *
 * The decoders call the builders below from the upstream thread for every
 * event; the proxy reads the finished result.  The shape is described in
 * llm.h.  The design points that live here:
 *
 *  - Memory is bounded by a byte budget over all strings.  A string's whole
 *    allocation (not just its length) is charged, so the bound is real.
 *    Growth doubles, clamped to what the budget has left; text past the
 *    budget is cut on a UTF-8 character boundary so the result stays valid
 *    UTF-8 for JSON, and the string stops accepting appends so no text is
 *    ever stored after a hole.
 *  - Arrays (choices, tool calls, items) are indexed by what the upstream
 *    sent, so their size comes from the network: they are capped in count.
 *    Pointers returned by llm_result_choice() / llm_choice_tool_call() stay
 *    valid until the next call that grows the same array; the decoders keep
 *    indices, not pointers, across events.
 *  - Everything is decided by the sequence of values appended, never by how
 *    the body was chunked, so a stream fed byte by byte gives the same
 *    result as one fed whole.
 */
#include "llm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const llm_tool_kind_names[LLM_TOOL__COUNT] = {
	[LLM_TOOL_FUNCTION] = "function",
	[LLM_TOOL_CUSTOM] = "custom",
	[LLM_TOOL_SERVER] = "server",
};

const char *const llm_note_names[LLM_NOTE__COUNT] = {
	[LLM_NOTE_OVERSIZED_EVENT] = "oversized_event",
	[LLM_NOTE_INVALID_JSON] = "invalid_json",
	[LLM_NOTE_TRUNCATED] = "truncated",
	[LLM_NOTE_PARTIAL_EVENT] = "partial_event",
	[LLM_NOTE_TEXT_CAPPED] = "text_capped",
	[LLM_NOTE_BODY_TOO_LARGE] = "body_too_large",
	[LLM_NOTE_TOO_MANY] = "too_many",
	[LLM_NOTE_TRANSPORT_ERROR] = "transport_error",
};

/* the same notes as JSON member names (llm_result_to_json) */
static const char *const llm_note_keys[LLM_NOTE__COUNT] = {
	[LLM_NOTE_OVERSIZED_EVENT] = "oversizedEvent",
	[LLM_NOTE_INVALID_JSON] = "invalidJson",
	[LLM_NOTE_TRUNCATED] = "truncated",
	[LLM_NOTE_PARTIAL_EVENT] = "partialEvent",
	[LLM_NOTE_TEXT_CAPPED] = "textCapped",
	[LLM_NOTE_BODY_TOO_LARGE] = "bodyTooLarge",
	[LLM_NOTE_TOO_MANY] = "tooMany",
	[LLM_NOTE_TRANSPORT_ERROR] = "transportError",
};

const struct llm_limits llm_default_limits = {
	.max_text = 4u << 20,
	.max_choices = 128,
	.max_items = 1024,
};

static void *
llm_xrealloc(void *ptr, size_t n)
{
	void *q = realloc(ptr, n);

	if (q == NULL) {
		fprintf(stderr, "llm: out of memory (%zu bytes)\n", n);
		abort();
	}
	return q;
}

void
llm_note(struct llm_result *res, enum llm_note note)
{
	if (res->notes[note] < UINT32_MAX)
		res->notes[note]++;
}

/* Longest prefix of p[0..n) that is at most fit bytes and does not end
 * inside a UTF-8 sequence (p[fit] is not a continuation byte). */
static size_t
llm_utf8_cut(const char *p, size_t fit)
{
	while (fit > 0 && ((unsigned char)p[fit] & 0xC0) == 0x80)
		fit--;
	return fit;
}

/* Grow s towards need bytes (NUL included) within the budget. */
static void
llm_str_grow(struct llm_result *res, struct llm_str *s, size_t need)
{
	size_t avail = s->cap + (res->limits.max_text - res->text_used);
	size_t cap = s->cap ? s->cap * 2 : 32;

	if (cap < need)
		cap = need;
	if (cap > avail)
		cap = avail;
	if (cap <= s->cap)
		return;
	s->ptr = llm_xrealloc(s->ptr, cap);
	s->ptr[s->len] = '\0';
	res->text_used += cap - s->cap;
	s->cap = cap;
}

void
llm_str_append(struct llm_result *res, struct llm_str *s, const char *p,
    size_t n)
{
	size_t fit;

	if (n == 0 || s->capped)
		return;
	if (s->len + n + 1 > s->cap)
		llm_str_grow(res, s, s->len + n + 1);
	fit = s->cap > s->len + 1 ? s->cap - s->len - 1 : 0;
	if (fit >= n) {
		fit = n;
	} else {
		fit = llm_utf8_cut(p, fit);
		s->capped = true;
		llm_note(res, LLM_NOTE_TEXT_CAPPED);
	}
	if (fit == 0)
		return;
	memcpy(s->ptr + s->len, p, fit);
	s->len += fit;
	s->ptr[s->len] = '\0';
}

void
llm_str_clear(struct llm_result *res, struct llm_str *s)
{
	free(s->ptr);
	res->text_used -= s->cap;
	memset(s, 0, sizeof(*s));
}

void
llm_str_set(struct llm_result *res, struct llm_str *s, const char *p,
    size_t n)
{
	llm_str_clear(res, s);
	llm_str_append(res, s, p, n);
}

bool
llm_str_set_json(struct llm_result *res, struct llm_str *s, json_t *v)
{
	if (!json_is_string(v) || json_string_length(v) == 0)
		return false;
	llm_str_set(res, s, json_string_value(v), json_string_length(v));
	return true;
}

void
llm_str_fill_json(struct llm_result *res, struct llm_str *s, json_t *v)
{
	if (s->len == 0 && !s->capped)
		llm_str_set_json(res, s, v);
}

void
llm_str_append_json(struct llm_result *res, struct llm_str *s, json_t *v)
{
	if (json_is_string(v))
		llm_str_append(res, s, json_string_value(v),
		    json_string_length(v));
}

void
llm_str_set_compact(struct llm_result *res, struct llm_str *s, json_t *v)
{
	char *text;

	if (v == NULL)
		return;
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (text == NULL)
		return;
	llm_str_set(res, s, text, strlen(text));
	free(text);
}

void
llm_usage_set_json(int64_t *slot, json_t *v)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		*slot = (int64_t)json_integer_value(v);
}

void
llm_result_set_error_json(struct llm_result *res, json_t *err)
{
	json_t *code;
	char num[32];

	if (res->error.present)
		return;
	if (json_is_string(err) && json_string_length(err) > 0) {
		/* {"error":"text"}, as some compatible servers send */
		res->error.present = true;
		llm_str_set_json(res, &res->error.message, err);
		return;
	}
	if (!json_is_object(err))
		return;
	res->error.present = true;
	llm_str_set_json(res, &res->error.type, json_object_get(err, "type"));
	llm_str_set_json(res, &res->error.message,
	    json_object_get(err, "message"));
	code = json_object_get(err, "code");
	if (json_is_integer(code)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(code));
		llm_str_set(res, &res->error.code, num, strlen(num));
	} else {
		llm_str_set_json(res, &res->error.code, code);
	}
}

void
llm_reasoning_break(struct llm_choice *c)
{
	c->reasoning_break = true;
}

void
llm_reasoning_append(struct llm_result *res, struct llm_choice *c,
    json_t *text)
{
	if (!json_is_string(text) || json_string_length(text) == 0)
		return;
	if (c->reasoning_break && c->reasoning.len > 0)
		llm_str_append(res, &c->reasoning, "\n\n", 2);
	c->reasoning_break = false;
	llm_str_append_json(res, &c->reasoning, text);
}

/* A new, empty item of c; NULL (noted) past the limit. */
static struct llm_item *
llm_choice_new_item(struct llm_result *res, struct llm_choice *c)
{
	struct llm_item *it;

	if (c->nitems >= res->limits.max_items) {
		llm_note(res, LLM_NOTE_TOO_MANY);
		return NULL;
	}
	c->items = llm_xrealloc(c->items, (c->nitems + 1) * sizeof(*c->items));
	it = &c->items[c->nitems++];
	memset(it, 0, sizeof(*it));
	return it;
}

/* ---- the same, reading text in place (jsonv.h) ---- */

/* Calls fn with the decoded bytes of the string v: where they lie when the
 * literal has no escape, else decoded on the stack or the heap. */
static void
llm_with_jv_string(struct jv v, void (*fn)(void *, const char *, size_t),
    void *ud)
{
	char stackbuf[512], *tmp;
	const char *p;
	size_t n;

	if (jv_str_raw(v, &p, &n)) {
		fn(ud, p, n);
		return;
	}
	n = jv_str_len_max(v);
	tmp = n <= sizeof(stackbuf) ? stackbuf : llm_xrealloc(NULL, n);
	n = jv_str_decode(v, tmp);
	fn(ud, tmp, n);
	if (tmp != stackbuf)
		free(tmp);
}

struct llm_jv_target {
	struct llm_result *res;
	struct llm_str *s;
	bool set;
};

static void
llm_jv_put(void *ud, const char *p, size_t n)
{
	struct llm_jv_target *t = ud;

	if (t->set) {
		if (n == 0)
			return;
		llm_str_clear(t->res, t->s);
	}
	llm_str_append(t->res, t->s, p, n);
}

bool
llm_str_set_jv(struct llm_result *res, struct llm_str *s, struct jv v)
{
	struct llm_jv_target t = { res, s, true };

	if (!jv_is_string(v) || v.n == 2)
		return false;
	llm_with_jv_string(v, llm_jv_put, &t);
	return true;
}

void
llm_str_fill_jv(struct llm_result *res, struct llm_str *s, struct jv v)
{
	if (s->len == 0 && !s->capped)
		llm_str_set_jv(res, s, v);
}

void
llm_str_append_jv(struct llm_result *res, struct llm_str *s, struct jv v)
{
	struct llm_jv_target t = { res, s, false };

	if (jv_is_string(v) && v.n > 2)
		llm_with_jv_string(v, llm_jv_put, &t);
}


void
llm_usage_set_jv(int64_t *slot, struct jv v)
{
	int64_t n;

	if (jv_int(v, &n) && n >= 0)
		*slot = n;
}

void
llm_result_set_error_jv(struct llm_result *res, struct jv err)
{
	static const char *const keys[] = { "type", "message", "code" };
	struct jv m[3];
	int64_t code;
	char num[32];

	if (res->error.present)
		return;
	if (jv_is_string(err) && err.n > 2) {
		/* {"error":"text"}, as some compatible servers send */
		res->error.present = true;
		llm_str_set_jv(res, &res->error.message, err);
		return;
	}
	if (!jv_is_object(err))
		return;
	res->error.present = true;
	jv_get_many(err, keys, 3, m);
	llm_str_set_jv(res, &res->error.type, m[0]);
	llm_str_set_jv(res, &res->error.message, m[1]);
	if (jv_int(m[2], &code)) {
		snprintf(num, sizeof(num), "%" PRId64, code);
		llm_str_set(res, &res->error.code, num, strlen(num));
	} else {
		llm_str_set_jv(res, &res->error.code, m[2]);
	}
}

void
llm_reasoning_append_jv(struct llm_result *res, struct llm_choice *c,
    struct jv text)
{
	if (!jv_is_string(text) || text.n == 2)
		return;
	if (c->reasoning_break && c->reasoning.len > 0)
		llm_str_append(res, &c->reasoning, "\n\n", 2);
	c->reasoning_break = false;
	llm_str_append_jv(res, &c->reasoning, text);
}

void
llm_choice_add_item_jv(struct llm_result *res, struct llm_choice *c,
    struct jv type, struct jv id)
{
	struct llm_item *it = llm_choice_new_item(res, c);

	if (it == NULL)
		return;
	llm_str_set_jv(res, &it->type, type);
	llm_str_set_jv(res, &it->id, id);
}

struct llm_choice *
llm_result_choice(struct llm_result *res, size_t index)
{
	struct llm_choice *c;

	if (index >= res->limits.max_choices) {
		llm_note(res, LLM_NOTE_TOO_MANY);
		return NULL;
	}
	if (index >= res->nchoices) {
		res->choices = llm_xrealloc(res->choices,
		    (index + 1) * sizeof(*res->choices));
		memset(res->choices + res->nchoices, 0,
		    (index + 1 - res->nchoices) * sizeof(*res->choices));
		res->nchoices = index + 1;
	}
	c = &res->choices[index];
	c->used = true;
	return c;
}

struct llm_tool_call *
llm_choice_tool_call(struct llm_result *res, struct llm_choice *c,
    size_t index)
{
	struct llm_tool_call *tc;

	if (index >= res->limits.max_items) {
		llm_note(res, LLM_NOTE_TOO_MANY);
		return NULL;
	}
	if (index >= c->ntool_calls) {
		c->tool_calls = llm_xrealloc(c->tool_calls,
		    (index + 1) * sizeof(*c->tool_calls));
		memset(c->tool_calls + c->ntool_calls, 0,
		    (index + 1 - c->ntool_calls) * sizeof(*c->tool_calls));
		c->ntool_calls = index + 1;
	}
	tc = &c->tool_calls[index];
	tc->used = true;
	return tc;
}

struct llm_tool_call *
llm_choice_add_tool_call(struct llm_result *res, struct llm_choice *c)
{
	return llm_choice_tool_call(res, c, c->ntool_calls);
}

void
llm_choice_add_item(struct llm_result *res, struct llm_choice *c,
    json_t *type, json_t *id)
{
	struct llm_item *it = llm_choice_new_item(res, c);

	if (it == NULL)
		return;
	llm_str_set_json(res, &it->type, type);
	llm_str_set_json(res, &it->id, id);
}

struct llm_result *
llm_result_new(const struct llm_limits *limits)
{
	struct llm_result *res = llm_xrealloc(NULL, sizeof(*res));

	memset(res, 0, sizeof(*res));
	res->limits = limits != NULL ? *limits : llm_default_limits;
	res->usage.input = LLM_UNSET;
	res->usage.output = LLM_UNSET;
	res->usage.total = LLM_UNSET;
	res->usage.cached = LLM_UNSET;
	res->usage.cache_creation = LLM_UNSET;
	res->usage.reasoning = LLM_UNSET;
	return res;
}

static void
llm_tool_call_free(struct llm_tool_call *tc)
{
	free(tc->type.ptr);
	free(tc->id.ptr);
	free(tc->item_id.ptr);
	free(tc->name.ptr);
	free(tc->arguments.ptr);
}

static void
llm_choice_free(struct llm_choice *c)
{
	size_t i;

	free(c->content.ptr);
	free(c->refusal.ptr);
	free(c->reasoning.ptr);
	free(c->finish_reason.ptr);
	free(c->stop_sequence.ptr);
	for (i = 0; i < c->ntool_calls; i++)
		llm_tool_call_free(&c->tool_calls[i]);
	free(c->tool_calls);
	for (i = 0; i < c->nitems; i++) {
		free(c->items[i].type.ptr);
		free(c->items[i].id.ptr);
	}
	free(c->items);
}

void
llm_result_free(struct llm_result *res)
{
	size_t i;

	if (res == NULL)
		return;
	free(res->id.ptr);
	free(res->model.ptr);
	free(res->system_fingerprint.ptr);
	free(res->service_tier.ptr);
	free(res->status.ptr);
	for (i = 0; i < res->nchoices; i++)
		llm_choice_free(&res->choices[i]);
	free(res->choices);
	free(res->error.type.ptr);
	free(res->error.code.ptr);
	free(res->error.message.ptr);
	free(res->transport_error.ptr);
	free(res);
}

/* ---- rendering ---- */

static void
llm_json_str(json_t *obj, const char *key, const struct llm_str *s)
{
	json_t *v;
	char *copy;
	size_t i;

	if (s->len == 0)
		return;
	v = json_stringn(s->ptr, s->len);
	if (v == NULL) {
		/* Not valid UTF-8 (only a transport error text can be): show
		 * it with the non-ASCII bytes replaced. */
		copy = llm_xrealloc(NULL, s->len);
		for (i = 0; i < s->len; i++)
			copy[i] = (unsigned char)s->ptr[i] < 0x80 ?
			    s->ptr[i] : '?';
		v = json_stringn(copy, s->len);
		free(copy);
	}
	json_object_set_new(obj, key, v);
}

static void
llm_json_count(json_t *obj, const char *key, int64_t n)
{
	if (n != LLM_UNSET)
		json_object_set_new(obj, key, json_integer((json_int_t)n));
}

static json_t *
llm_tool_call_json(const struct llm_tool_call *tc)
{
	json_t *o = json_object();

	json_object_set_new(o, "kind", json_string(
	    llm_tool_kind_names[tc->kind]));
	llm_json_str(o, "type", &tc->type);
	llm_json_str(o, "id", &tc->id);
	llm_json_str(o, "itemId", &tc->item_id);
	llm_json_str(o, "name", &tc->name);
	llm_json_str(o, "arguments", &tc->arguments);
	return o;
}

static json_t *
llm_choice_json(const struct llm_choice *c, size_t index)
{
	json_t *o = json_object(), *a;
	size_t i;

	json_object_set_new(o, "index", json_integer((json_int_t)index));
	llm_json_str(o, "content", &c->content);
	llm_json_str(o, "refusal", &c->refusal);
	llm_json_str(o, "reasoning", &c->reasoning);
	llm_json_str(o, "finishReason", &c->finish_reason);
	llm_json_str(o, "stopSequence", &c->stop_sequence);
	if (c->citations > 0)
		json_object_set_new(o, "citations",
		    json_integer((json_int_t)c->citations));
	if (c->ntool_calls > 0) {
		a = json_array();
		for (i = 0; i < c->ntool_calls; i++)
			if (c->tool_calls[i].used)
				json_array_append_new(a,
				    llm_tool_call_json(&c->tool_calls[i]));
		json_object_set_new(o, "toolCalls", a);
	}
	if (c->nitems > 0) {
		a = json_array();
		for (i = 0; i < c->nitems; i++) {
			json_t *it = json_object();

			llm_json_str(it, "type", &c->items[i].type);
			llm_json_str(it, "id", &c->items[i].id);
			json_array_append_new(a, it);
		}
		json_object_set_new(o, "items", a);
	}
	return o;
}

static json_t *
llm_usage_json(const struct llm_usage *u)
{
	json_t *o = json_object();

	llm_json_count(o, "inputTokens", u->input);
	llm_json_count(o, "outputTokens", u->output);
	llm_json_count(o, "totalTokens", u->total);
	llm_json_count(o, "cachedTokens", u->cached);
	llm_json_count(o, "cacheCreationTokens", u->cache_creation);
	llm_json_count(o, "reasoningTokens", u->reasoning);
	if (json_object_size(o) == 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
llm_notes_json(const struct llm_result *res)
{
	json_t *o = json_object();
	int i;

	for (i = 0; i < LLM_NOTE__COUNT; i++)
		if (res->notes[i] > 0)
			json_object_set_new(o, llm_note_keys[i],
			    json_integer(res->notes[i]));
	if (json_object_size(o) == 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
llm_result_to_json(const struct llm_result *res)
{
	json_t *o = json_object(), *a, *e, *u, *n;
	size_t i;

	llm_json_str(o, "id", &res->id);
	llm_json_str(o, "model", &res->model);
	llm_json_str(o, "systemFingerprint", &res->system_fingerprint);
	llm_json_str(o, "serviceTier", &res->service_tier);
	llm_json_str(o, "status", &res->status);
	a = json_array();
	for (i = 0; i < res->nchoices; i++)
		if (res->choices[i].used)
			json_array_append_new(a,
			    llm_choice_json(&res->choices[i], i));
	json_object_set_new(o, "choices", a);
	if ((u = llm_usage_json(&res->usage)) != NULL)
		json_object_set_new(o, "usage", u);
	if (res->has_embeddings) {
		e = json_object();
		json_object_set_new(e, "count",
		    json_integer((json_int_t)res->embeddings));
		json_object_set_new(e, "dimensions",
		    json_integer((json_int_t)res->dimensions));
		json_object_set_new(o, "embeddings", e);
	}
	if (res->error.present) {
		e = json_object();
		llm_json_str(e, "type", &res->error.type);
		llm_json_str(e, "code", &res->error.code);
		llm_json_str(e, "message", &res->error.message);
		json_object_set_new(o, "error", e);
	}
	json_object_set_new(o, "complete", json_boolean(res->complete));
	if ((n = llm_notes_json(res)) != NULL)
		json_object_set_new(o, "notes", n);
	llm_json_str(o, "transportError", &res->transport_error);
	return o;
}
