/*
 * identify.h - which trace a request belongs to (identify.c).  Server threads.
 */
#ifndef WHYOPS_IDENTIFY_H
#define WHYOPS_IDENTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"

/* First callback: a valid X-Trace-ID / X-Thread-ID, else a new UUIDv7, so
 * that every answer (errors too) carries an X-Trace-ID. */
void identify_early(struct request *rq);

/* Body read: the trace from headers or history; cleans rq->body of marks.
 * Returns -1 with msg set when a trace header is malformed (a 400). */
int identify_request(struct request *rq, char *msg, size_t msglen);

/* Whether body b[0..n) can hold a mark or tool history at all (a zero-width
 * character raw or escaped, or one of the names tool history uses): a
 * cheap filter before the parse; false positives are fine. */
bool identify_may_have_history(const char *b, size_t n);

/* Decides rq->sign and encodes rq->sig. */
void identify_sign(struct request *rq);

#endif
