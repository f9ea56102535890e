/*
 * record.c - allocation of struct record (see record.h).
 *
 * A record is filled by the request path and, once submitted, owned and
 * freed by the events dispatcher thread; record_free() may run on either
 * side (the request thread frees a record that the full ring refused).
 * Nothing here is shared between threads.
 */
#include <stdio.h>
#include <stdlib.h>

#include "decode.h"
#include "llm.h"
#include "record.h"

struct record *
record_new(void)
{
	struct record *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		fprintf(stderr, "record: out of memory\n");
		abort();
	}
	r->ttfb_ms = -1;
	r->ttft_ms = -1;
	r->decode_kind = -1;
	return r;
}

void
record_decode(struct record *r)
{
	struct decoder *dec;

	if (r->result != NULL || r->response_body == NULL ||
	    r->decode_kind < 0 || r->decode_kind >= DECODE__COUNT)
		return;
	dec = decode_new((enum decode_kind)r->decode_kind, false, NULL);
	decode_feed(dec, r->response_body, r->response_len);
	decode_finish(dec, r->error);
	r->result = decode_take_result(dec);
	decode_free(dec);
	free(r->response_body);
	r->response_body = NULL;
	r->response_len = 0;
}

void
record_free(struct record *r)
{
	if (r == NULL)
		return;
	free(r->request_id);
	free(r->trace_id);
	free(r->trace_source);
	free(r->span_id);
	free(r->key_name);
	free(r->project);
	free(r->environment);
	free(r->agent_name);
	free(r->external_user_id);
	free(r->endpoint);
	free(r->provider);
	free(r->provider_type);
	free(r->requested_model);
	free(r->upstream_model);
	free(r->request_body);
	free(r->response_body);
	llm_result_free(r->result);
	free(r->error);
	free(r->error_kind);
	free(r);
}
