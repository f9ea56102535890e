/*
 * relay.h - the upstream body on its way to the client (relay.c).
 * Upstream thread only.
 */
#ifndef WHYOPS_RELAY_H
#define WHYOPS_RELAY_H

#include <stdbool.h>

#include "request.h"

/* Response headers are in: event_stream tells whether the body is SSE. */
void relay_begin(struct request *rq, bool event_stream);
/* A piece of the body, as libcurl delivered it. */
void relay_data(struct request *rq, const char *data, size_t len);
/* The transfer ended (transport_error NULL on success): flush, finish the
 * decoder and keep its result in rq->result. */
void relay_end(struct request *rq, const char *transport_error);
/* The decoder dialect (enum decode_kind) of rq's route. */
int relay_decode_kind(const struct request *rq);

#endif
