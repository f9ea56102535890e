/*
 * mark.h - marking answers with their trace (mark.c).  Upstream thread.
 */
#ifndef WHYOPS_MARK_H
#define WHYOPS_MARK_H

#include <jansson.h>
#include <stdbool.h>

#include "buf.h"
#include "jsonv.h"
#include "request.h"

struct sse_event;

/*
 * A document answer (rq->route's dialect): fills the id maps and, when
 * rq->sign, returns a new body with the mark (caller frees), or NULL when
 * nothing was changed.
 */
char *mark_document(struct request *rq, const char *body, size_t len,
    size_t *outlen);

/* What to do around one stream event. */
struct mark_action {
	struct buf before;		/* bytes to send before the event */
	bool replace;			/* send replacement instead of the event */
	struct buf replacement;
};

/* Called for every decoded stream event, before its bytes are released;
 * obj is the event's data (absent for [DONE] and data that is not a JSON
 * object). */
void mark_stream_event(struct request *rq, const struct sse_event *ev,
    struct jv obj, struct mark_action *act);

#endif
