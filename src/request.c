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

#include "log.h"
#include "request.h"

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
	rq->cfg = cfg;
	rq->client_fd = -1;
	rq->t_start = request_now();
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
	free(rq->upstream_url);
	free(rq->model);
	free(rq->path);
	free(rq->raw_uri);
	pthread_mutex_destroy(&rq->lock);
	free(rq);
}

void
request_unref(struct request *rq)
{
	if (atomic_fetch_sub_explicit(&rq->refs, 1, memory_order_acq_rel) != 1)
		return;
	request_log(rq);
	request_free(rq);
}
