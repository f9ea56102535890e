/*
 * relay.c - the upstream body on its way to the client (upstream thread).
 *
 * Every byte libcurl delivers goes through relay_data().  Two paths:
 *
 *   documents (JSON answers and anything not text/event-stream) are
 *   collected in rq->out and sent in one piece when the transfer ends; they
 *   are decoded later, on the event dispatcher thread, so the request path
 *   pays nothing for telemetry;
 *
 *   event streams are fed to the request's decoder and forwarded at event
 *   granularity: the bytes of an event move to rq->out (and the client's
 *   connection is resumed) the moment the decoder dispatches it, that is
 *   when its terminating blank line arrives.  Events the proxy does not
 *   touch are forwarded byte for byte; the one it removes is the usage-only
 *   chunk of a chat stream whose include_usage the proxy forced.  Bytes that
 *   belong to no event (comments, blank lines) follow at the decoder's
 *   boundary, and an event larger than the decoder keeps is forwarded raw
 *   rather than held.
 *
 * rq->pend holds the bytes received but not yet forwarded; pend_base is the
 * body offset of its first unconsumed byte.  Only the upstream thread
 * touches them; rq->out is shared and written under rq->lock.
 */
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "mark.h"
#include "relay.h"
#include "sse.h"
#include "upstream.h"

static enum decode_kind
relay_kind(const struct request *rq)
{
	switch (rq->route->ep) {
	case EP_RESPONSES:
		return DECODE_OPENAI_RESPONSES;
	case EP_MESSAGES:
		return DECODE_ANTHROPIC_MESSAGES;
	case EP_EMBEDDINGS:
		return DECODE_EMBEDDINGS;
	case EP_MODELS:
		return DECODE_MODELS;
	default:
		return DECODE_OPENAI_CHAT;
	}
}

int
relay_decode_kind(const struct request *rq)
{
	return (int)relay_kind(rq);
}

/* Appends to rq->out and resumes a connection waiting for data. */
static void
relay_out(struct request *rq, const char *data, size_t len)
{
	pthread_mutex_lock(&rq->lock);
	buf_append(&rq->out, data, len);
	if (rq->delivery == DELIVER_BUFFERED && rq->out.len > UPSTREAM_BUFFER_MAX)
		rq->delivery = DELIVER_STREAMING;
	if (rq->delivery == DELIVER_STREAMING && rq->suspended) {
		rq->suspended = false;
		upstream_want_resume(rq);
	}
	pthread_mutex_unlock(&rq->lock);
}

/* Moves pending bytes up to body offset end to the client, or drops them. */
static void
relay_release(struct request *rq, uint64_t end, bool drop)
{
	size_t n;

	if (end <= rq->pend_base)
		return;
	n = (size_t)(end - rq->pend_base);
	if (n > buf_avail(&rq->pend))
		n = buf_avail(&rq->pend);
	if (!drop && n > 0)
		relay_out(rq, buf_head(&rq->pend), n);
	buf_consume(&rq->pend, n);
	rq->pend_base += n;
}

static bool
relay_has_output(const struct llm_result *res)
{
	for (size_t i = 0; i < res->nchoices; i++) {
		const struct llm_choice *c = &res->choices[i];

		if (c->content.len || c->reasoning.len || c->refusal.len ||
		    c->ntool_calls)
			return true;
	}
	return false;
}

/* The chunk include_usage adds: "choices": [] and a usage object. */
static bool
relay_is_usage_chunk(struct jv obj)
{
	static const char *const keys[] = { "choices", "usage" };
	struct jv m[2];

	jv_get_many(obj, keys, 2, m);
	return jv_is_array(m[0]) && jv_count(m[0]) == 0 && jv_is_object(m[1]);
}

static void
relay_on_event(void *ud, const struct sse_event *ev, struct jv obj)
{
	struct request *rq = ud;
	const struct llm_result *res = decode_result(rq->dec);
	/* the usage chunk sets the usage: before that no scan is needed */
	bool drop = rq->usage_forced && obj.n > 0 &&
	    (res->usage.input != LLM_UNSET || res->usage.output != LLM_UNSET ||
	    res->usage.total != LLM_UNSET) && relay_is_usage_chunk(obj);
	struct mark_action act = { 0 };

	if (rq->t_first_token == 0 && relay_has_output(res))
		rq->t_first_token = request_now();
	if (rq->upstream_status >= 200 && rq->upstream_status < 300)
		mark_stream_event(rq, ev, obj, &act);
	/* Inserted events go just before this one (after any comment lines
	 * that preceded it, which are released with it: harmless). */
	if (act.before.len > 0)
		relay_out(rq, act.before.data, act.before.len);
	relay_release(rq, ev->end, drop || act.replace);
	if (act.replace && !drop)
		relay_out(rq, act.replacement.data, act.replacement.len);
	buf_free(&act.before);
	buf_free(&act.replacement);
}

void
relay_begin(struct request *rq, bool event_stream)
{
	struct decode_limits lim = decode_default_limits;

	if (!event_stream)
		return;			/* documents are decoded by the dispatcher */
	lim.max_event_size = rq->cfg->max_event_size;
	rq->dec = decode_new(relay_kind(rq), true, &lim);
	decode_set_event_hook(rq->dec, relay_on_event, rq);
}

void
relay_data(struct request *rq, const char *data, size_t len)
{
	if (rq->dec == NULL) {
		relay_out(rq, data, len);
		return;
	}
	buf_append(&rq->pend, data, len);
	decode_feed(rq->dec, data, len);
	/* Comments and blank lines between events. */
	relay_release(rq, decode_boundary(rq->dec), false);
	/* An event the decoder will not keep whole is not held back either. */
	if (buf_avail(&rq->pend) > rq->cfg->max_event_size + 65536)
		relay_release(rq, rq->pend_base + buf_avail(&rq->pend), false);
}

/*
 * A complete document answer: mark it (mark.c) before the client gets it.
 * The unmarked bytes stay for the record, whose events hold clean text.
 */
static void
relay_mark_document(struct request *rq)
{
	size_t nlen;
	char *marked;

	if (rq->delivery != DELIVER_BUFFERED || rq->upstream_status < 200 ||
	    rq->upstream_status >= 300 || rq->out.off != 0)
		return;
	marked = mark_document(rq, rq->out.data, rq->out.len, &nlen);
	if (marked == NULL)
		return;
	pthread_mutex_lock(&rq->lock);
	rq->orig_out = buf_steal(&rq->out, &rq->orig_out_len);
	rq->out = (struct buf){ .data = marked, .len = nlen, .cap = nlen + 1 };
	pthread_mutex_unlock(&rq->lock);
}

void
relay_end(struct request *rq, const char *transport_error)
{
	/* What is left is an unterminated tail: forwarded as it came. */
	if (buf_avail(&rq->pend) > 0)
		relay_release(rq, rq->pend_base + buf_avail(&rq->pend), false);
	buf_free(&rq->pend);
	if (transport_error == NULL && rq->route != NULL &&
	    rq->route->ep != EP_EMBEDDINGS && rq->route->ep != EP_MODELS)
		relay_mark_document(rq);
	if (rq->dec == NULL)
		return;
	decode_finish(rq->dec, transport_error);
	rq->result = decode_take_result(rq->dec);
	decode_free(rq->dec);
	rq->dec = NULL;
}
