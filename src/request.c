/*
 * request.c - lifetime of one proxied call (see request.h).
 *
 * Two references, one per side; the last one out completes the request:
 * one log line with what happened, then the memory goes.  Completion runs
 * on whichever thread dropped the last reference (a server or the upstream
 * thread), so it must stay short and must never block.
 */
#include <curl/curl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "relay.h"
#include "request.h"
#include "trace.h"

const char *const upstream_error_names[] = {
	[UPERR_NONE] = "none",
	[UPERR_CONNECT] = "connect",
	[UPERR_TLS] = "tls",
	[UPERR_PROTOCOL] = "protocol",
	[UPERR_RESET] = "reset",
	[UPERR_CONNECT_TIMEOUT] = "connect_timeout",
	[UPERR_FIRST_BYTE_TIMEOUT] = "first_byte_timeout",
	[UPERR_IDLE_TIMEOUT] = "idle_timeout",
	[UPERR_TOO_LARGE] = "headers_too_large",
	[UPERR_CLIENT_GONE] = "client_gone",
	[UPERR_SHUTDOWN] = "shutdown",
	[UPERR_INTERNAL] = "internal",
};

int64_t
request_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
request_make_id(char *out, size_t outlen)
{
	static const char alphabet[] =
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	uint8_t r[24];
	size_t i;

	gnutls_rnd(GNUTLS_RND_NONCE, r, sizeof(r));
	if (outlen < 4 + sizeof(r) + 1)
		abort();
	memcpy(out, "req_", 4);
	for (i = 0; i < sizeof(r); i++)
		out[4 + i] = alphabet[r[i] % 62];
	out[4 + i] = '\0';
}

struct request *
request_new(const struct config *cfg)
{
	struct request *rq = calloc(1, sizeof(*rq));

	if (rq == NULL)
		abort();
	rq->cfg = config_ref(cfg);	/* this generation until request_free() */
	rq->client_fd = -1;
	rq->mark_text_block = -1;
	rq->t_start = request_now();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	rq->start_unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	pthread_mutex_init(&rq->lock, NULL);
	atomic_init(&rq->refs, 1);
	return rq;
}

void
request_ref(struct request *rq)
{
	atomic_fetch_add_explicit(&rq->refs, 1, memory_order_relaxed);
}

static double
request_ms(int64_t from, int64_t to)
{
	if (from == 0 || to == 0 || to < from)
		return -1;
	return (double)(to - from) / 1e6;
}

/* One line per request; never a key, a credential or a body. */
static void
request_log(struct request *rq)
{
	int64_t end = rq->t_done ? rq->t_done : request_now();
	char err[200] = "";

	if (rq->error != UPERR_NONE)
		snprintf(err, sizeof(err), " error=%s", upstream_error_names[rq->error]);
	log_info("req=%s %s %s %u provider=%s model=%s upstream=%ld in=%zu out=%zu "
	    "total_ms=%.2f ttfb_ms=%.2f%s",
	    rq->request_id[0] ? rq->request_id : "-", rq->method,
	    rq->path ? rq->path : "-", rq->client_status,
	    rq->provider ? rq->provider->name : "-",
	    rq->model ? rq->model : "-", rq->upstream_status, rq->body.len,
	    rq->bytes_out, request_ms(rq->t_start, end),
	    request_ms(rq->t_submit, rq->t_headers), err);
}

static void
request_free(struct request *rq)
{
	buf_free(&rq->body);
	buf_free(&rq->out);
	buf_free(&rq->resp_headers);
	buf_free(&rq->hdr_text);
	buf_free(&rq->pend);
	if (rq->result != NULL)
		llm_result_free(rq->result);
	free(rq->agent_name);
	free(rq->sig);
	free(rq->orig_out);
	free(rq->external_user_id);
	free(rq->upstream_url);
	free(rq->model);
	free(rq->upstream_model);
	free(rq->path);
	free(rq->raw_uri);
	pthread_mutex_destroy(&rq->lock);
	config_unref(rq->cfg);
	free(rq);
}

static char *
request_hex_id(void)
{
	uint8_t b[8];
	char *s = malloc(17);

	if (s == NULL)
		abort();
	gnutls_rnd(GNUTLS_RND_NONCE, b, sizeof(b));
	trace_hex_text(b, sizeof(b), s);
	s[16] = '\0';
	return s;
}

static char *
request_dup(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		abort();
	return d;
}

/*
 * Moves what the call produced into a record for the event pipeline.  Only
 * calls handed to an upstream are recorded; requests refused before that
 * (401, 404, 400 ...) have their log line only.  The request body and the
 * answer move without a copy.
 */
static void
request_record(struct request *rq, int64_t end)
{
	const struct config *cfg = rq->cfg;
	struct record *r;

	if (rq->provider == NULL || rq->t_submit == 0 || rq->route->ep == EP_MODELS)
		return;
	r = record_new();
	r->request_id = request_dup(rq->request_id);
	r->trace_id = request_dup(rq->trace_id);
	r->trace_source = request_dup(trace_source_names[rq->trace_source]);
	r->span_id = request_hex_id();
	r->key_name = request_dup(rq->key->name);
	r->project = request_dup(rq->key->env->project ? rq->key->env->project :
	    rq->key->env->name);
	r->environment = request_dup(rq->key->env->name);
	r->agent_name = request_dup(rq->agent_name ? rq->agent_name :
	    rq->key->agent ? rq->key->agent : "default");
	r->external_user_id = request_dup(rq->external_user_id);
	r->endpoint = request_dup(endpoint_names[rq->route->ep]);
	r->provider = request_dup(rq->provider->name);
	r->provider_type = request_dup(provider_type_names[rq->provider->type]);
	r->requested_model = request_dup(rq->model);
	r->upstream_model = request_dup(rq->upstream_model);
	r->stream = rq->stream_requested;
	r->usage_forced = rq->usage_forced;
	r->request_body = buf_steal(&rq->body, &r->request_len);
	r->result = rq->result;
	rq->result = NULL;
	if (r->result == NULL && rq->orig_out != NULL) {
		r->response_body = rq->orig_out;	/* before marking */
		r->response_len = rq->orig_out_len;
		rq->orig_out = NULL;
		r->decode_kind = relay_decode_kind(rq);
	} else if (r->result == NULL && rq->delivery == DELIVER_BUFFERED &&
	    rq->out.len > 0) {
		r->response_body = buf_steal(&rq->out, &r->response_len);
		r->decode_kind = relay_decode_kind(rq);
	}
	r->upstream_status = rq->upstream_status;
	r->client_status = rq->client_status;
	r->start_unix_ms = rq->start_unix_ms;
	r->ttfb_ms = request_ms(rq->t_start, rq->t_headers);
	/* A buffered answer's tokens all arrive with its body; an error
	 * answer or an embedding has none (a 429's few milliseconds would
	 * drag every time-to-first-token figure down). */
	r->ttft_ms = rq->t_first_token ? request_ms(rq->t_start, rq->t_first_token) :
	    (rq->delivery == DELIVER_BUFFERED && rq->error == UPERR_NONE &&
	    rq->upstream_status >= 200 && rq->upstream_status < 300 &&
	    rq->route->ep != EP_EMBEDDINGS ? request_ms(rq->t_start, rq->t_done) : -1);
	r->total_ms = request_ms(rq->t_start, end);
	r->upstream_ms = request_ms(rq->t_submit, rq->t_done);
	r->overhead_ms = r->total_ms >= 0 && r->upstream_ms >= 0 ?
	    r->total_ms - r->upstream_ms : -1;
	r->client_aborted = rq->client_gone || rq->client_status == 499;
	if (rq->error != UPERR_NONE) {
		r->error = request_dup(rq->error_detail);
		r->error_kind = request_dup(upstream_error_names[rq->error]);
	}
	r->capture_content = cfg->events_capture_content;
	/* A document answer is decoded on the dispatcher thread, which
	 * counts its tokens there (events.c); a stream's result is here. */
	metrics_tokens_result(r->provider, r->upstream_model, r->result);
	events_submit(r);
}

/*
 * Feeds /metrics.  Upstream time is hand-over to the transfer's end, so
 * the overhead covers everything else: reading the request, routing, the
 * queue to the upstream thread, and delivery after the upstream finished.
 * ttfb is the upstream's alone (hand-over to its response headers).
 */
static void
request_metrics(struct request *rq, int64_t end)
{
	bool proxied = rq->t_submit != 0 && rq->t_done >= rq->t_submit;
	struct metrics_call c = {
		.route = rq->route ? (int)rq->route->ep : -1,
		.status = rq->client_status,
		/* By name: metrics.c keeps one row per provider name across
		 * every configuration generation. */
		.provider = rq->provider ? metrics_provider_index(rq->provider->name) : -1,
		.total_ns = end - rq->t_start,
		.ttfb_ns = rq->t_submit && rq->t_headers >= rq->t_submit ?
		    rq->t_headers - rq->t_submit : -1,
		.overhead_ns = proxied ?
		    (end - rq->t_start) - (rq->t_done - rq->t_submit) : -1,
		.error = (int)rq->error,
	};

	metrics_call_done(&c);
}

void
request_unref(struct request *rq)
{
	int64_t end;

	if (atomic_fetch_sub_explicit(&rq->refs, 1, memory_order_acq_rel) != 1)
		return;
	end = request_now();
	request_log(rq);
	request_metrics(rq, end);
	request_record(rq, end);
	request_free(rq);
}
