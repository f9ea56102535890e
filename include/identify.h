/*
 * identify.h - which trace a request belongs to (identify.c).  Server threads.
 */
#ifndef WHYOPS_IDENTIFY_H
#define WHYOPS_IDENTIFY_H

#include <stddef.h>

#include "request.h"

/* First callback: a valid X-Trace-ID / X-Thread-ID, else a new UUIDv7, so
 * that every answer (errors too) carries an X-Trace-ID. */
void identify_early(struct request *rq);

/* Body read: the trace from headers or history; cleans rq->body of marks.
 * Returns -1 with msg set when a trace header is malformed (a 400). */
int identify_request(struct request *rq, char *msg, size_t msglen);

/* Decides rq->sign and encodes rq->sig. */
void identify_sign(struct request *rq);

#endif
