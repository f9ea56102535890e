/*
 * tracescan.c - trace identity from a request body, and the cleaned body
 * (see tracescan.h).
 *
 * Two views of the same body, because the two jobs want different things:
 *
 *  - Finding reads a jansson tree.  The history (chat and Anthropic
 *    "messages", Responses "input") is walked once from its newest item
 *    backwards; each item is asked, through the dialect's row of the table
 *    below, for a signature in its assistant text, for the trace id
 *    member of its tool call arguments and for its call ids.  The first
 *    signature found wins over any tool call member; among tool calls the
 *    newest wins.  A trace id member that is not a valid trace id is
 *    ignored.  Anything of an unexpected type is skipped: the body came
 *    from the network.
 *
 *  - Cleaning edits the original bytes, so that what the client wrote
 *    reaches the provider unchanged apart from the proxy's own marks.  When
 *    the tree saw a trace id member, a forward walk over the text (no tree,
 *    so that it knows byte positions) finds the same tool call arguments
 *    and replaces each that holds the member: an object loses the member's
 *    bytes and one comma, every other byte kept; an arguments string is
 *    decoded, loses the member from its decoded JSON text the same way, and
 *    is encoded again (jansson's escaping, which may differ from the
 *    client's inside that one string).  Then signature_strip_json() cuts
 *    every zero-width mark out of the whole text: in valid JSON they can
 *    only sit inside strings, whose keys and values all lose them.  The
 *    result is compared with the input, so "changed" means changed.
 *
 * Cost: one jansson tree of the body, plus one small tree per tool call
 * arguments string in the history (each is parsed to look for the member).
 *
 * The text walk relies on the body having been validated (jsonscan), and
 * compares member names decoded, keeps the last of duplicate members and
 * skips values of the wrong type, as the tree does.  Marks that are only
 * visible after decoding an arguments string twice (a "\\u200b" in the
 * body) are left alone, consistently with the tree, where that string's
 * text holds no mark either.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "jsonscan.h"
#include "signature.h"
#include "tracescan.h"

const char *const tracescan_source_names[] = {
	[TRACESCAN_NONE] = "none",
	[TRACESCAN_SIGNATURE] = "signature",
	[TRACESCAN_TOOL_ARGS] = "tool_args",
};

#define TS_NONE SIZE_MAX

/* What the walk over the history collects. */
struct ts_scan {
	struct tracescan_result *out;
	char args_id[SIGNATURE_ID_MAX + 1];	/* newest tool call member */
	bool any_arg_key;		/* some arguments hold the member */
	size_t cap_ids;
};

/* One replacement of body[beg..end) by text[0..len). */
struct ts_edit {
	size_t beg, end;
	char *text;
	size_t len;
};

struct ts_edits {
	struct ts_edit *v;
	size_t n, cap;
};

struct ts_dialect {
	const char *history_key;
	/* the signature in item if it is an assistant turn: id length or 0 */
	size_t (*signature)(json_t *item, char *id);
	/* passes each tool call arguments value of item, newest first */
	void (*tool_args)(json_t *item, struct ts_scan *st);
	/* adds the call ids of item, newest first */
	void (*call_ids)(json_t *item, struct ts_scan *st);
	/* the text walk: item's arguments values, in text order */
	void (*sites)(const char *s, size_t n, size_t item, struct ts_edits *e);
};

static size_t ts_messages_signature(json_t *item, char *id);
static void ts_chat_tool_args(json_t *item, struct ts_scan *st);
static void ts_chat_call_ids(json_t *item, struct ts_scan *st);
static void ts_chat_sites(const char *s, size_t n, size_t item,
    struct ts_edits *e);
static size_t ts_responses_signature(json_t *item, char *id);
static void ts_responses_tool_args(json_t *item, struct ts_scan *st);
static void ts_responses_call_ids(json_t *item, struct ts_scan *st);
static void ts_responses_sites(const char *s, size_t n, size_t item,
    struct ts_edits *e);
static void ts_anthropic_tool_args(json_t *item, struct ts_scan *st);
static void ts_anthropic_call_ids(json_t *item, struct ts_scan *st);
static void ts_anthropic_sites(const char *s, size_t n, size_t item,
    struct ts_edits *e);

static const struct ts_dialect ts_dialects[] = {
	[TRACESCAN_CHAT] = { "messages", ts_messages_signature,
		ts_chat_tool_args, ts_chat_call_ids, ts_chat_sites },
	[TRACESCAN_RESPONSES] = { "input", ts_responses_signature,
		ts_responses_tool_args, ts_responses_call_ids,
		ts_responses_sites },
	[TRACESCAN_ANTHROPIC] = { "messages", ts_messages_signature,
		ts_anthropic_tool_args, ts_anthropic_call_ids,
		ts_anthropic_sites },
};

/* ---- the tree ---------------------------------------------------------- */

/* true when obj[key] is the string want (no NUL tricks). */
static bool
ts_is(json_t *obj, const char *key, const char *want)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) && json_string_length(v) == strlen(want) &&
	    strcmp(json_string_value(v), want) == 0;
}

static bool
ts_type_in(json_t *obj, const char *const *types)
{
	for (; *types != NULL; types++)
		if (ts_is(obj, "type", *types))
			return true;
	return false;
}

static size_t
ts_find(json_t *str, char *id)
{
	if (!json_is_string(str))
		return 0;
	return signature_find_last(json_string_value(str),
	    json_string_length(str), id);
}

/* The newest signature of a content: a string, or parts of the given
 * types with a "text", searched from the last part. */
static size_t
ts_content_signature(json_t *content, const char *const *types, char *id)
{
	size_t i, n;

	if (json_is_string(content))
		return ts_find(content, id);
	if (!json_is_array(content))
		return 0;
	for (i = json_array_size(content); i-- > 0;) {
		json_t *part = json_array_get(content, i);

		if (json_is_object(part) && ts_type_in(part, types) &&
		    (n = ts_find(json_object_get(part, "text"), id)) > 0)
			return n;
	}
	return 0;
}

/* An arguments value: a JSON string holding an object (OpenAI) or an
 * object (Anthropic; accepted for OpenAI too). */
static void
ts_args(json_t *args, struct ts_scan *st)
{
	json_t *obj = args, *v;

	if (json_is_string(args))
		obj = json_loadb(json_string_value(args),
		    json_string_length(args), 0, NULL);
	if (!json_is_object(obj))
		goto out;
	if ((v = json_object_get(obj, TRACESCAN_ARG_KEY)) == NULL)
		goto out;
	st->any_arg_key = true;
	if (st->args_id[0] == '\0' && json_is_string(v) &&
	    signature_id_valid(json_string_value(v), json_string_length(v)))
		memcpy(st->args_id, json_string_value(v),
		    json_string_length(v) + 1);
out:
	if (obj != args)
		json_decref(obj);
}

static void
ts_add_id(struct ts_scan *st, json_t *v)
{
	struct tracescan_result *r = st->out;
	size_t i, len;

	if (!json_is_string(v) || (len = json_string_length(v)) == 0 ||
	    strlen(json_string_value(v)) != len)
		return;
	for (i = 0; i < r->ncall_ids; i++)
		if (strcmp(r->call_ids[i], json_string_value(v)) == 0)
			return;
	if (r->ncall_ids == st->cap_ids) {
		st->cap_ids = st->cap_ids ? st->cap_ids * 2 : 8;
		r->call_ids = realloc(r->call_ids,
		    st->cap_ids * sizeof(*r->call_ids));
		if (r->call_ids == NULL)
			abort();
	}
	if ((r->call_ids[r->ncall_ids] = strdup(json_string_value(v))) == NULL)
		abort();
	r->ncall_ids++;
}

/* Chat and Anthropic turns: {"role":"assistant","content":"..." or
 * [{"type":"text","text":"..."}, ...]}. */
static size_t
ts_messages_signature(json_t *item, char *id)
{
	static const char *const types[] = { "text", NULL };

	if (!ts_is(item, "role", "assistant"))
		return 0;
	return ts_content_signature(json_object_get(item, "content"), types,
	    id);
}

/* Chat: {"role":"assistant", "tool_calls":[{"id":...,
 * "function":{"arguments":"{...}"}}]} and {"role":"tool",
 * "tool_call_id":...}. */
static void
ts_chat_tool_args(json_t *item, struct ts_scan *st)
{
	json_t *calls = json_object_get(item, "tool_calls");
	size_t i;

	if (!json_is_array(calls))
		return;
	for (i = json_array_size(calls); i-- > 0;) {
		json_t *fn = json_object_get(json_array_get(calls, i),
		    "function");

		ts_args(json_object_get(fn, "arguments"), st);
	}
}

static void
ts_chat_call_ids(json_t *item, struct ts_scan *st)
{
	json_t *calls = json_object_get(item, "tool_calls");
	size_t i;

	if (json_is_array(calls))
		for (i = json_array_size(calls); i-- > 0;)
			ts_add_id(st, json_object_get(json_array_get(calls, i),
			    "id"));
	ts_add_id(st, json_object_get(item, "tool_call_id"));
}

/* Responses: input items {"role":"assistant","content":...} (with or
 * without "type":"message"), {"type":"function_call","call_id":...,
 * "arguments":"{...}"} and {"type":"function_call_output","call_id":...}. */
static size_t
ts_responses_signature(json_t *item, char *id)
{
	static const char *const types[] = {
		"output_text", "text", "input_text", NULL
	};
	json_t *type = json_object_get(item, "type");

	if (!ts_is(item, "role", "assistant") ||
	    (type != NULL && !ts_is(item, "type", "message")))
		return 0;
	return ts_content_signature(json_object_get(item, "content"), types,
	    id);
}

static void
ts_responses_tool_args(json_t *item, struct ts_scan *st)
{
	if (ts_is(item, "type", "function_call"))
		ts_args(json_object_get(item, "arguments"), st);
}

static void
ts_responses_call_ids(json_t *item, struct ts_scan *st)
{
	if (ts_is(item, "type", "function_call") ||
	    ts_is(item, "type", "function_call_output"))
		ts_add_id(st, json_object_get(item, "call_id"));
}

/* Anthropic: {"role":"assistant","content":[{"type":"tool_use","id":...,
 * "input":{...}}]} and {"role":"user","content":[{"type":"tool_result",
 * "tool_use_id":...}]}. */
static void
ts_anthropic_tool_args(json_t *item, struct ts_scan *st)
{
	json_t *blocks = json_object_get(item, "content");
	size_t i;

	if (!json_is_array(blocks))
		return;
	for (i = json_array_size(blocks); i-- > 0;) {
		json_t *b = json_array_get(blocks, i);

		if (json_is_object(b) && ts_is(b, "type", "tool_use"))
			ts_args(json_object_get(b, "input"), st);
	}
}

static void
ts_anthropic_call_ids(json_t *item, struct ts_scan *st)
{
	json_t *blocks = json_object_get(item, "content");
	size_t i;

	if (!json_is_array(blocks))
		return;
	for (i = json_array_size(blocks); i-- > 0;) {
		json_t *b = json_array_get(blocks, i);

		if (!json_is_object(b))
			continue;
		if (ts_is(b, "type", "tool_use"))
			ts_add_id(st, json_object_get(b, "id"));
		else if (ts_is(b, "type", "tool_result"))
			ts_add_id(st, json_object_get(b, "tool_use_id"));
	}
}

/* ---- the text ---------------------------------------------------------- */

static size_t
ts_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' ||
	    s[i] == '\r'))
		i++;
	return i;
}

/* The index just past the (valid) value starting at s[i]. */
static size_t
ts_skip(const char *s, size_t n, size_t i)
{
	size_t depth = 0;

	if (i < n && s[i] != '"' && s[i] != '{' && s[i] != '[') {
		while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
		    s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			i++;
		return i;
	}
	for (; i < n; i++) {
		if (s[i] == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			if (depth == 0)
				return i + 1;
		} else if (s[i] == '{' || s[i] == '[')
			depth++;
		else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
			return i + 1;
	}
	return n;
}

/* true when the string literal s[b..e) decodes to want. */
static bool
ts_text_is(const char *s, size_t b, size_t e, const char *want)
{
	char dec[64];

	if (b >= e || s[b] != '"')
		return false;
	return jsonscan_string_value(s + b, e - b, dec, sizeof(dec)) >= 0 &&
	    strcmp(dec, want) == 0;
}

/* Member key of the object at s[obj] (last if repeated): its value's span. */
static bool
ts_member(const char *s, size_t n, size_t obj, const char *key, size_t *vb,
    size_t *ve)
{
	size_t i, kend, b, e;
	bool found = false;

	if (obj >= n || s[obj] != '{')
		return false;
	for (i = ts_ws(s, n, obj + 1); i < n && s[i] == '"';) {
		kend = ts_skip(s, n, i);
		b = ts_ws(s, n, ts_ws(s, n, kend) + 1);
		e = ts_skip(s, n, b);
		if (ts_text_is(s, i, kend, key)) {
			*vb = b;
			*ve = e;
			found = true;
		}
		i = ts_ws(s, n, e);
		if (i >= n || s[i] != ',')
			break;
		i = ts_ws(s, n, i + 1);
	}
	return found;
}

/* First element of the array at s[arr], or TS_NONE. */
static size_t
ts_first(const char *s, size_t n, size_t arr)
{
	size_t i;

	if (arr >= n || s[arr] != '[')
		return TS_NONE;
	i = ts_ws(s, n, arr + 1);
	return i < n && s[i] != ']' ? i : TS_NONE;
}

/* The element after the one at s[elem], or TS_NONE. */
static size_t
ts_next(const char *s, size_t n, size_t elem)
{
	size_t i = ts_ws(s, n, ts_skip(s, n, elem));

	return i < n && s[i] == ',' ? ts_ws(s, n, i + 1) : TS_NONE;
}

/*
 * The (valid) object o[0..n) without its members named TRACESCAN_ARG_KEY,
 * appended to b; false (b untouched) when it has none.  Kept members keep
 * their bytes, each after the separator that preceded it in o (comma and
 * whitespace since the member before, kept or not); the first one kept
 * follows the opening brace and its whitespace, and what followed the last
 * member (whitespace, brace) closes the object.
 */
static bool
ts_drop_member(const char *o, size_t n, struct buf *b)
{
	size_t i, kend, e = 1, vb, ve;
	bool kept = false;

	if (!ts_member(o, n, 0, TRACESCAN_ARG_KEY, &vb, &ve))
		return false;
	i = ts_ws(o, n, 1);
	buf_append(b, o, i);
	while (i < n && o[i] == '"') {
		size_t sep = e;		/* end of the previous member */

		kend = ts_skip(o, n, i);
		e = ts_skip(o, n, ts_ws(o, n, ts_ws(o, n, kend) + 1));
		if (!ts_text_is(o, i, kend, TRACESCAN_ARG_KEY)) {
			if (kept)
				buf_append(b, o + sep, i - sep);
			buf_append(b, o + i, e - i);
			kept = true;
		}
		i = ts_ws(o, n, e);
		if (i >= n || o[i] != ',')
			break;
		i = ts_ws(o, n, i + 1);
	}
	buf_append(b, o + e, n - e);
	return true;
}

static void
ts_edit_add(struct ts_edits *e, size_t beg, size_t end, struct buf *b)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 4;
		if ((e->v = realloc(e->v, e->cap * sizeof(*e->v))) == NULL)
			abort();
	}
	e->v[e->n].beg = beg;
	e->v[e->n].end = end;
	e->v[e->n].text = buf_steal(b, &e->v[e->n].len);
	e->n++;
}

/* An arguments string literal s[vb..ve): decoded, cut, encoded again. */
static void
ts_site_string(const char *s, size_t vb, size_t ve, struct ts_edits *e)
{
	json_t *str = json_loadb(s + vb, ve - vb, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, NULL), *cut = NULL;
	struct buf b = { 0 };
	const char *t;
	char *enc = NULL;
	size_t n, o, end, err_at;
	const char *err;

	if (!json_is_string(str))
		goto out;
	t = json_string_value(str);
	n = json_string_length(str);
	o = ts_ws(t, n, 0);
	if (o >= n || t[o] != '{' || jsonscan_validate(t, n, &err_at,
	    &err) != 0)
		goto out;
	end = ts_skip(t, n, o);
	buf_append(&b, t, o);
	if (!ts_drop_member(t + o, end - o, &b))
		goto out;
	buf_append(&b, t + end, n - end);
	cut = json_stringn_nocheck(b.data, b.len);
	if (cut == NULL || (enc = json_dumps(cut, JSON_ENCODE_ANY)) == NULL)
		abort();
	buf_reset(&b);
	buf_appends(&b, enc);
	ts_edit_add(e, vb, ve, &b);
out:
	free(enc);
	json_decref(cut);
	json_decref(str);
	buf_free(&b);
}

/* Tool call arguments at s[vb..]: an object or a string holding one. */
static void
ts_site(const char *s, size_t n, size_t vb, size_t ve, struct ts_edits *e)
{
	struct buf b = { 0 };

	if (s[vb] == '"')
		ts_site_string(s, vb, ve, e);
	else if (s[vb] == '{' && ts_drop_member(s + vb, ve - vb, &b))
		ts_edit_add(e, vb, ve, &b);
	buf_free(&b);
}

static void
ts_chat_sites(const char *s, size_t n, size_t item, struct ts_edits *e)
{
	size_t vb, ve, c, fb, fe;

	if (!ts_member(s, n, item, "tool_calls", &vb, &ve))
		return;
	for (c = ts_first(s, n, vb); c != TS_NONE; c = ts_next(s, n, c))
		if (ts_member(s, n, c, "function", &fb, &fe) &&
		    ts_member(s, n, fb, "arguments", &vb, &ve))
			ts_site(s, n, vb, ve, e);
}

static void
ts_responses_sites(const char *s, size_t n, size_t item, struct ts_edits *e)
{
	size_t vb, ve;

	if (ts_member(s, n, item, "type", &vb, &ve) &&
	    ts_text_is(s, vb, ve, "function_call") &&
	    ts_member(s, n, item, "arguments", &vb, &ve))
		ts_site(s, n, vb, ve, e);
}

static void
ts_anthropic_sites(const char *s, size_t n, size_t item, struct ts_edits *e)
{
	size_t vb, ve, c, tb, te;

	if (!ts_member(s, n, item, "content", &vb, &ve))
		return;
	for (c = ts_first(s, n, vb); c != TS_NONE; c = ts_next(s, n, c))
		if (ts_member(s, n, c, "type", &tb, &te) &&
		    ts_text_is(s, tb, te, "tool_use") &&
		    ts_member(s, n, c, "input", &tb, &te))
			ts_site(s, n, tb, te, e);
}

/* ---- the run ----------------------------------------------------------- */

static void
ts_walk(const struct ts_dialect *dl, json_t *root, struct ts_scan *st)
{
	struct tracescan_result *r = st->out;
	json_t *hist = json_object_get(root, dl->history_key);
	size_t i;

	if (!json_is_array(hist))
		return;
	for (i = json_array_size(hist); i-- > 0;) {
		json_t *item = json_array_get(hist, i);

		if (!json_is_object(item))
			continue;
		if (r->source == TRACESCAN_NONE &&
		    dl->signature(item, r->trace_id) > 0)
			r->source = TRACESCAN_SIGNATURE;
		dl->tool_args(item, st);
		dl->call_ids(item, st);
	}
}

/* body with the trace id members cut out of its tool call arguments. */
static void
ts_cut_args(const struct ts_dialect *dl, const char *s, size_t n,
    struct buf *b)
{
	struct ts_edits e = { 0 };
	size_t hb, he, item, at = 0, i;

	if (ts_member(s, n, ts_ws(s, n, 0), dl->history_key, &hb, &he))
		for (item = ts_first(s, n, hb); item != TS_NONE;
		    item = ts_next(s, n, item))
			dl->sites(s, n, item, &e);
	for (i = 0; i < e.n; i++) {
		buf_append(b, s + at, e.v[i].beg - at);
		buf_append(b, e.v[i].text, e.v[i].len);
		at = e.v[i].end;
		free(e.v[i].text);
	}
	buf_append(b, s + at, n - at);
	free(e.v);
}

static void
ts_clean(const struct ts_dialect *dl, const struct ts_scan *st,
    const char *body, size_t len, struct tracescan_result *r)
{
	struct buf b = { 0 };

	if (!st->any_arg_key && !signature_present_json(body, len))
		return;
	if (st->any_arg_key)
		ts_cut_args(dl, body, len, &b);
	else
		buf_append(&b, body, len);
	b.len = signature_strip_json(b.data, b.len);
	b.data[b.len] = '\0';
	if (b.len == len && memcmp(b.data, body, len) == 0) {
		buf_free(&b);
		return;
	}
	r->clean_body = buf_steal(&b, &r->clean_len);
}

int
tracescan_run(enum tracescan_dialect d, const char *body, size_t len,
    struct tracescan_result *out)
{
	const struct ts_dialect *dl = &ts_dialects[d];
	struct ts_scan st = { .out = out };
	json_t *root, *prev;

	memset(out, 0, sizeof(*out));
	root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return -1;
	}
	ts_walk(dl, root, &st);
	if (out->source == TRACESCAN_NONE && st.args_id[0] != '\0') {
		out->source = TRACESCAN_TOOL_ARGS;
		memcpy(out->trace_id, st.args_id, sizeof(out->trace_id));
	}
	prev = json_object_get(root, "previous_response_id");
	if (d == TRACESCAN_RESPONSES && json_is_string(prev) &&
	    json_string_length(prev) > 0 &&
	    (out->previous_response_id = strdup(json_string_value(prev))) ==
	    NULL)
		abort();
	json_decref(root);
	ts_clean(dl, &st, body, len, out);
	return 0;
}

void
tracescan_result_free(struct tracescan_result *r)
{
	size_t i;

	for (i = 0; i < r->ncall_ids; i++)
		free(r->call_ids[i]);
	free(r->call_ids);
	free(r->previous_response_id);
	free(r->clean_body);
	memset(r, 0, sizeof(*r));
}
