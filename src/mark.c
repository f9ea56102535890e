/*
 * mark.c - marking answers with their trace (upstream thread).
 *
 * The next request of a stateless agent carries the answer back in its
 * history; the mark is how the proxy recognises it (trace.h):
 *
 *   text answers get the invisible signature (signature.h) appended to
 *   their text: documents in the last text of the answer, streams as one
 *   extra delta before the text ends;
 *   tool-call-only documents get "_whyops_trace_id" in each call's JSON
 *   arguments (chat, Responses) or input (Anthropic);
 *   every tool call id and Responses id goes into the id maps, before the
 *   bytes that carry it reach the client, so a streamed tool-call-only
 *   answer (which cannot be tagged) still continues its trace.
 *
 * Documents are edited by insertion at byte positions found with jsonscan:
 * everything else stays as the upstream sent it.  Streams: chat gets one
 * extra chunk per text choice before the chunk with its finish_reason (the
 * stream's own id, created and model); Responses gets an output_text delta
 * before the first output_text.done, and that .done, its content_part.done,
 * output_item.done and response.completed are re-serialised with the same
 * text so the SDK's assembled response agrees with the deltas; Anthropic
 * gets a text_delta before the first text block's content_block_stop, or a
 * trailing text block (start, delta, stop) before message_delta when the
 * answer has no text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "decode.h"
#include "jsonscan.h"
#include "mark.h"
#include "signature.h"
#include "sse.h"
#include "trace.h"

/* --- documents ------------------------------------------------------------ */

struct mark_edit {
	size_t at;
	const char *text;		/* static or rq->sig */
	size_t len;
	char *owned;			/* freed after applying */
};

struct mark_doc {
	struct request *rq;
	const char *s;
	struct mark_edit edits[64];
	size_t nedits;
};

static void
mark_add(struct mark_doc *d, size_t at, const char *text, size_t len, char *owned)
{
	if (d->nedits == sizeof(d->edits) / sizeof(d->edits[0])) {
		free(owned);
		return;
	}
	d->edits[d->nedits++] = (struct mark_edit){ at, text, len, owned };
}

/* Member value span inside the object span [b, e); relative to d->s. */
static bool
mark_member(struct mark_doc *d, size_t b, size_t e, const char *key,
    size_t *vb, size_t *ve)
{
	if (jsonscan_member(d->s + b, e - b, key, vb, ve) != 0)
		return false;
	*vb += b;
	*ve += b;
	return true;
}

static bool
mark_is(struct mark_doc *d, size_t b, size_t e, const char *lit)
{
	return e - b == strlen(lit) && memcmp(d->s + b, lit, e - b) == 0;
}

/* The id (a JSON string at [b, e)) goes into the id maps. */
static void
mark_map_json_id(struct mark_doc *d, size_t b, size_t e)
{
	char id[513];

	if (jsonscan_string_value(d->s + b, e - b, id, sizeof(id)) > 0)
		trace_map_put(id, strlen(id), d->rq->trace_id);
}

/* Appends the signature to the JSON string at [b, e). */
static void
mark_sign(struct mark_doc *d, size_t b, size_t e)
{
	if (e - b > 2 && d->s[b] == '"')
		mark_add(d, e - 1, d->rq->sig, d->rq->sig_len, NULL);
}

/*
 * Tags a JSON object with "_whyops_trace_id".  quoted: the object is the
 * content of a JSON string (chat / Responses arguments), so its quotes are
 * escaped.  [b, e) is the string or the object.
 */
static void
mark_tag(struct mark_doc *d, size_t b, size_t e, bool quoted)
{
	const char *s = d->s;
	size_t open = b, close = e;
	struct buf t = { 0 };

	if (quoted) {			/* the object inside the string */
		while (open < e && s[open] != '{')
			open++;
		while (close > open && s[close - 1] != '}')
			close--;
		if (open >= e || close <= open)
			return;		/* arguments are not an object */
		close--;
	} else {
		if (s[open] != '{')
			return;
		close = e - 1;
	}
	/* Already tagged (a client sent it back): leave it. */
	if (memmem(s + open, close - open, "_whyops_trace_id", 16) != NULL)
		return;
	/* Empty object?  Whitespace, raw or (inside a string) escaped as
	 * \n \r \t or \u0020 \u0009 \u000a \u000d. */
	size_t i = open + 1;
	for (;;) {
		if (i < close && strchr(" \t\r\n", s[i]) != NULL)
			i++;
		else if (quoted && i + 1 < close && s[i] == '\\' &&
		    strchr("nrt", s[i + 1]) != NULL)
			i += 2;
		else if (quoted && i + 5 < close && s[i] == '\\' && s[i + 1] == 'u' &&
		    s[i + 2] == '0' && s[i + 3] == '0' &&
		    (memcmp(s + i + 4, "20", 2) == 0 || memcmp(s + i + 4, "09", 2) == 0 ||
		    strncasecmp(s + i + 4, "0a", 2) == 0 || strncasecmp(s + i + 4, "0d", 2) == 0))
			i += 6;
		else
			break;
	}
	bool empty = i >= close;
	if (quoted)
		buf_printf(&t, "%s\\\"_whyops_trace_id\\\":\\\"%s\\\"", empty ? "" : ",",
		    d->rq->trace_id);
	else
		buf_printf(&t, "\"_whyops_trace_id\":\"%s\"%s", d->rq->trace_id,
		    empty ? "" : ",");
	size_t len = t.len;
	char *owned = buf_steal(&t, NULL);
	mark_add(d, quoted ? close : open + 1, owned, len, owned);
}

static void
mark_chat(struct mark_doc *d, size_t n)
{
	size_t cb, ce, pos = 0, ib, ie;

	if (!mark_member(d, 0, n, "choices", &cb, &ce))
		return;
	while (jsonscan_next_item(d->s + cb, ce - cb, &pos, &ib, &ie) == 0) {
		size_t mb, me, vb, ve, tb, te, tpos = 0, xb, xe;
		bool text = false;

		if (!mark_member(d, cb + ib, cb + ie, "message", &mb, &me))
			continue;
		if (mark_member(d, mb, me, "content", &vb, &ve) && d->s[vb] == '"' &&
		    ve - vb > 2) {
			mark_sign(d, vb, ve);
			text = true;
		}
		if (!mark_member(d, mb, me, "tool_calls", &tb, &te))
			continue;
		while (jsonscan_next_item(d->s + tb, te - tb, &tpos, &xb, &xe) == 0) {
			size_t idb, ide, fb, fe, ab, ae;

			xb += tb, xe += tb;
			if (mark_member(d, xb, xe, "id", &idb, &ide))
				mark_map_json_id(d, idb, ide);
			if (!text && mark_member(d, xb, xe, "function", &fb, &fe) &&
			    mark_member(d, fb, fe, "arguments", &ab, &ae) &&
			    d->s[ab] == '"')
				mark_tag(d, ab, ae, true);
		}
	}
}

static void
mark_responses(struct mark_doc *d, size_t n)
{
	size_t ob, oe, pos = 0, ib, ie, vb, ve;
	size_t text_b = 0, text_e = 0;
	bool have_text = false;

	if (mark_member(d, 0, n, "id", &vb, &ve))
		mark_map_json_id(d, vb, ve);
	if (!mark_member(d, 0, n, "output", &ob, &oe))
		return;
	/* The last output_text of the last message item. */
	while (jsonscan_next_item(d->s + ob, oe - ob, &pos, &ib, &ie) == 0) {
		size_t tb, te, cb, ce, cpos = 0, pb, pe, xb, xe;

		ib += ob, ie += ob;
		if (!mark_member(d, ib, ie, "type", &tb, &te))
			continue;
		if (mark_is(d, tb, te, "\"function_call\"") &&
		    mark_member(d, ib, ie, "call_id", &xb, &xe))
			mark_map_json_id(d, xb, xe);
		if (!mark_is(d, tb, te, "\"message\"") ||
		    !mark_member(d, ib, ie, "content", &cb, &ce))
			continue;
		while (jsonscan_next_item(d->s + cb, ce - cb, &cpos, &pb, &pe) == 0) {
			pb += cb, pe += cb;
			if (mark_member(d, pb, pe, "type", &tb, &te) &&
			    mark_is(d, tb, te, "\"output_text\"") &&
			    mark_member(d, pb, pe, "text", &xb, &xe) && d->s[xb] == '"' &&
			    xe - xb > 2) {
				text_b = xb, text_e = xe;
				have_text = true;
			}
		}
	}
	if (have_text) {
		mark_sign(d, text_b, text_e);
		return;
	}
	pos = 0;			/* function_call-only: tag the arguments */
	while (jsonscan_next_item(d->s + ob, oe - ob, &pos, &ib, &ie) == 0) {
		size_t tb, te, ab, ae;

		ib += ob, ie += ob;
		if (mark_member(d, ib, ie, "type", &tb, &te) &&
		    mark_is(d, tb, te, "\"function_call\"") &&
		    mark_member(d, ib, ie, "arguments", &ab, &ae) && d->s[ab] == '"')
			mark_tag(d, ab, ae, true);
	}
}

static void
mark_anthropic(struct mark_doc *d, size_t n)
{
	size_t cb, ce, pos = 0, ib, ie, tb, te, xb, xe;
	size_t text_b = 0, text_e = 0;
	bool have_text = false;

	if (!mark_member(d, 0, n, "content", &cb, &ce))
		return;
	while (jsonscan_next_item(d->s + cb, ce - cb, &pos, &ib, &ie) == 0) {
		ib += cb, ie += cb;
		if (!mark_member(d, ib, ie, "type", &tb, &te))
			continue;
		if (mark_is(d, tb, te, "\"text\"") &&
		    mark_member(d, ib, ie, "text", &xb, &xe) && d->s[xb] == '"' &&
		    xe - xb > 2) {
			text_b = xb, text_e = xe;
			have_text = true;
		} else if (mark_is(d, tb, te, "\"tool_use\"") &&
		    mark_member(d, ib, ie, "id", &xb, &xe)) {
			mark_map_json_id(d, xb, xe);
		}
	}
	if (have_text) {
		mark_sign(d, text_b, text_e);
		return;
	}
	pos = 0;
	while (jsonscan_next_item(d->s + cb, ce - cb, &pos, &ib, &ie) == 0) {
		ib += cb, ie += cb;
		if (mark_member(d, ib, ie, "type", &tb, &te) &&
		    mark_is(d, tb, te, "\"tool_use\"") &&
		    mark_member(d, ib, ie, "input", &xb, &xe) && d->s[xb] == '{')
			mark_tag(d, xb, xe, false);
	}
}

static int
mark_edit_cmp(const void *a, const void *b)
{
	const struct mark_edit *x = a, *y = b;

	return x->at < y->at ? -1 : x->at > y->at;
}

char *
mark_document(struct request *rq, const char *body, size_t len, size_t *outlen)
{
	struct mark_doc d = { .rq = rq, .s = body };
	struct buf out = { 0 };
	size_t at = 0, err_at;
	const char *err;

	if (len == 0 || jsonscan_validate(body, len, &err_at, &err) != 0)
		return NULL;
	switch (rq->route->ep) {
	case EP_CHAT:
		mark_chat(&d, len);
		break;
	case EP_RESPONSES:
		mark_responses(&d, len);
		break;
	case EP_MESSAGES:
		mark_anthropic(&d, len);
		break;
	default:
		return NULL;
	}
	if (!rq->sign) {		/* maps only: nothing to insert */
		for (size_t i = 0; i < d.nedits; i++)
			free(d.edits[i].owned);
		d.nedits = 0;
	}
	if (d.nedits == 0)
		return NULL;
	qsort(d.edits, d.nedits, sizeof(d.edits[0]), mark_edit_cmp);
	buf_reserve(&out, len + 1024);
	for (size_t i = 0; i < d.nedits; i++) {
		buf_append(&out, body + at, d.edits[i].at - at);
		buf_append(&out, d.edits[i].text, d.edits[i].len);
		at = d.edits[i].at;
		free(d.edits[i].owned);
	}
	buf_append(&out, body + at, len - at);
	return buf_steal(&out, outlen);
}

/* --- streams ------------------------------------------------------------- */

static void
mark_sse(struct buf *b, const char *type, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);

	if (s == NULL)
		return;
	if (type != NULL)
		buf_printf(b, "event: %s\n", type);
	buf_printf(b, "data: %s\n\n", s);
	free(s);
}

static void
mark_map_str(struct request *rq, json_t *v)
{
	if (json_is_string(v) && json_string_length(v) > 0)
		trace_map_put(json_string_value(v), json_string_length(v), rq->trace_id);
}

/* Appends the signature to obj[key] (a string); true if it did. */
static bool
mark_append_json(struct request *rq, json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	struct buf t = { 0 };

	if (!json_is_string(v))
		return false;
	buf_append(&t, json_string_value(v), json_string_length(v));
	buf_append(&t, rq->sig, rq->sig_len);
	json_object_set_new(obj, key, json_stringn(t.data, t.len));
	buf_free(&t);
	return true;
}

static void
mark_chat_event(struct request *rq, json_t *obj, struct mark_action *act)
{
	const struct llm_result *res = decode_result(rq->dec);
	json_t *choices = json_object_get(obj, "choices"), *c;
	size_t i;

	json_array_foreach(choices, i, c) {
		json_t *fr = json_object_get(c, "finish_reason");
		json_int_t idx = json_integer_value(json_object_get(c, "index"));

		if (!json_is_string(fr) || idx < 0 || (size_t)idx >= res->nchoices)
			continue;
		const struct llm_choice *ch = &res->choices[idx];
		for (size_t t = 0; t < ch->ntool_calls; t++) {
			if (ch->tool_calls[t].used && ch->tool_calls[t].id.len)
				trace_map_put(ch->tool_calls[t].id.ptr,
				    ch->tool_calls[t].id.len, rq->trace_id);
		}
		if (!rq->sign || ch->content.len == 0)
			continue;
		json_t *chunk = json_pack("{s:O?,s:s,s:O?,s:O?,s:[{s:I,s:{s:s%},s:n}]}",
		    "id", json_object_get(obj, "id"), "object", "chat.completion.chunk",
		    "created", json_object_get(obj, "created"),
		    "model", json_object_get(obj, "model"), "choices", "index",
		    idx, "delta", "content", rq->sig, rq->sig_len, "finish_reason");
		if (chunk != NULL) {
			mark_sse(&act->before, NULL, chunk);
			json_decref(chunk);
		}
	}
}

/* The output_text part the stream marked: set by the first .done. */
static bool
mark_same_part(struct request *rq, json_t *obj)
{
	return json_integer_value(json_object_get(obj, "output_index")) == rq->mark_oi &&
	    json_integer_value(json_object_get(obj, "content_index")) == rq->mark_ci;
}

static void
mark_responses_event(struct request *rq, const char *type, json_t *obj,
    struct mark_action *act)
{
	json_t *item, *part, *resp;

	if (strcmp(type, "response.created") == 0) {
		mark_map_str(rq, json_object_get(json_object_get(obj, "response"), "id"));
		return;
	}
	if (strcmp(type, "response.output_item.done") == 0 &&
	    (item = json_object_get(obj, "item")) != NULL)
		mark_map_str(rq, json_object_get(item, "call_id"));
	if (!rq->sign)
		return;
	if (strcmp(type, "response.output_text.done") == 0 && !rq->marked) {
		rq->marked = true;
		rq->mark_oi = json_integer_value(json_object_get(obj, "output_index"));
		rq->mark_ci = json_integer_value(json_object_get(obj, "content_index"));
		json_t *delta = json_pack("{s:s,s:O?,s:I,s:I,s:s%}",
		    "type", "response.output_text.delta",
		    "item_id", json_object_get(obj, "item_id"),
		    "output_index", (json_int_t)rq->mark_oi,
		    "content_index", (json_int_t)rq->mark_ci,
		    "delta", rq->sig, rq->sig_len);
		if (delta != NULL) {
			json_t *seq = json_object_get(obj, "sequence_number");
			if (seq != NULL)
				json_object_set(delta, "sequence_number", seq);
			if (json_object_get(obj, "logprobs") != NULL)
				json_object_set_new(delta, "logprobs", json_array());
			mark_sse(&act->before, "response.output_text.delta", delta);
			json_decref(delta);
		}
		if (mark_append_json(rq, obj, "text"))
			act->replace = true;
	} else if (strcmp(type, "response.content_part.done") == 0 && rq->marked &&
	    mark_same_part(rq, obj)) {
		act->replace = mark_append_json(rq, json_object_get(obj, "part"), "text");
	} else if (strcmp(type, "response.output_item.done") == 0 && rq->marked &&
	    json_integer_value(json_object_get(obj, "output_index")) == rq->mark_oi) {
		part = json_array_get(json_object_get(json_object_get(obj, "item"),
		    "content"), (size_t)rq->mark_ci);
		act->replace = mark_append_json(rq, part, "text");
	} else if ((strcmp(type, "response.completed") == 0 ||
	    strcmp(type, "response.incomplete") == 0) && rq->marked &&
	    (resp = json_object_get(obj, "response")) != NULL) {
		item = json_array_get(json_object_get(resp, "output"), (size_t)rq->mark_oi);
		part = json_array_get(json_object_get(item, "content"), (size_t)rq->mark_ci);
		act->replace = mark_append_json(rq, part, "text");
	}
	if (act->replace)
		mark_sse(&act->replacement, type, obj);
}

static void
mark_anthropic_event(struct request *rq, const char *type, json_t *obj,
    struct mark_action *act)
{
	json_t *block;
	json_int_t idx = json_integer_value(json_object_get(obj, "index"));

	if (strcmp(type, "content_block_start") == 0 &&
	    (block = json_object_get(obj, "content_block")) != NULL) {
		const char *bt = json_string_value(json_object_get(block, "type"));
		if (bt != NULL && strcmp(bt, "tool_use") == 0)
			mark_map_str(rq, json_object_get(block, "id"));
		if (bt != NULL && strcmp(bt, "text") == 0 && rq->mark_text_block < 0)
			rq->mark_text_block = idx;
		if (idx + 1 > rq->mark_nblocks)
			rq->mark_nblocks = idx + 1;
		return;
	}
	if (!rq->sign || rq->marked)
		return;
	if (strcmp(type, "content_block_stop") == 0 && idx == rq->mark_text_block) {
		json_t *d = json_pack("{s:s,s:I,s:{s:s,s:s%}}", "type",
		    "content_block_delta", "index", idx, "delta", "type", "text_delta",
		    "text", rq->sig, rq->sig_len);
		if (d != NULL) {
			mark_sse(&act->before, "content_block_delta", d);
			json_decref(d);
		}
		rq->marked = true;
	} else if (strcmp(type, "message_delta") == 0) {
		/* No text block: a trailing one holding only the signature. */
		json_int_t n = (json_int_t)rq->mark_nblocks;
		json_t *st = json_pack("{s:s,s:I,s:{s:s,s:s}}", "type",
		    "content_block_start", "index", n, "content_block", "type", "text",
		    "text", "");
		json_t *d = json_pack("{s:s,s:I,s:{s:s,s:s%}}", "type",
		    "content_block_delta", "index", n, "delta", "type", "text_delta",
		    "text", rq->sig, rq->sig_len);
		json_t *sp = json_pack("{s:s,s:I}", "type", "content_block_stop", "index", n);
		if (st && d && sp) {
			mark_sse(&act->before, "content_block_start", st);
			mark_sse(&act->before, "content_block_delta", d);
			mark_sse(&act->before, "content_block_stop", sp);
		}
		json_decref(st);
		json_decref(d);
		json_decref(sp);
		rq->marked = true;
	}
}

/*
 * The events marking acts on, told from the view without building a tree:
 * a chat chunk that ends a choice (finish_reason set), and a few Responses
 * and Anthropic event types.  Only those are parsed (jansson), so the
 * deltas that make up nearly all of a stream cost a scan, not a tree.
 */
static const char *const mark_responses_types[] = {
	"response.created", "response.output_item.done",
	"response.output_text.done", "response.content_part.done",
	"response.completed", "response.incomplete",
};
static const char *const mark_anthropic_types[] = {
	"content_block_start", "content_block_stop", "message_delta",
};

static bool
mark_chat_ends_choice(const struct llm_result *res, struct jv obj)
{
	struct jv c, choices;
	size_t pos = 0, i;

	/* The decoder has read this event already: while no choice has a
	 * finish_reason, this event did not carry one either. */
	for (i = 0; i < res->nchoices; i++)
		if (res->choices[i].finish_reason.len > 0)
			break;
	if (i == res->nchoices)
		return false;
	choices = jv_get(obj, "choices");

	while (jv_next(choices, &pos, &c))
		if (jv_is_string(jv_get(c, "finish_reason")))
			return true;
	return false;
}

static bool
mark_type_in(struct jv obj, const char *const *types, size_t n)
{
	struct jv t = jv_get(obj, "type");

	for (size_t i = 0; i < n; i++)
		if (jv_str_eq(t, types[i]))
			return true;
	return false;
}

void
mark_stream_event(struct request *rq, const struct sse_event *ev,
    struct jv view, struct mark_action *act)
{
	const char *type;
	json_t *obj;
	bool wanted;

	(void)ev;
	switch (rq->route->ep) {
	case EP_CHAT:
		wanted = mark_chat_ends_choice(decode_result(rq->dec), view);
		break;
	case EP_RESPONSES:
		wanted = mark_type_in(view, mark_responses_types,
		    sizeof(mark_responses_types) / sizeof(mark_responses_types[0]));
		break;
	case EP_MESSAGES:
		wanted = mark_type_in(view, mark_anthropic_types,
		    sizeof(mark_anthropic_types) / sizeof(mark_anthropic_types[0]));
		break;
	default:
		wanted = false;
		break;
	}
	if (!wanted || (obj = json_loadb(view.p, view.n, JSON_ALLOW_NUL,
	    NULL)) == NULL)
		return;
	type = json_string_value(json_object_get(obj, "type"));
	if (rq->route->ep == EP_CHAT)
		mark_chat_event(rq, obj, act);
	else if (rq->route->ep == EP_RESPONSES && type != NULL)
		mark_responses_event(rq, type, obj, act);
	else if (type != NULL)
		mark_anthropic_event(rq, type, obj, act);
	json_decref(obj);
}
