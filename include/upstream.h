/*
 * upstream.h - the libcurl side: one thread owns a curl multi handle.
 *
 * Server threads hand requests over with upstream_submit() and post
 * commands (unpause, abort) with upstream_post(); the upstream thread runs
 * every transfer, feeds response bytes into the request, and resumes
 * suspended client connections when there is something for them.
 */
#ifndef WHYOPS_UPSTREAM_H
#define WHYOPS_UPSTREAM_H

#include "config.h"
#include "request.h"

#define UPSTREAM_CMD_START	1u
#define UPSTREAM_CMD_UNPAUSE	2u
#define UPSTREAM_CMD_ABORT	4u

/* Bytes kept for a client that reads slower than the upstream writes. */
#define UPSTREAM_HIGH_WATER	(128 * 1024)
#define UPSTREAM_LOW_WATER	(32 * 1024)
/* A non-streamed answer beyond this size is streamed instead of buffered. */
#define UPSTREAM_BUFFER_MAX	(4 * 1024 * 1024)

int upstream_start(const struct config *cfg);

/*
 * Suspends rq's connection and queues it for the upstream thread, under the
 * queue lock so that shutdown never misses a suspended connection.  Takes a
 * reference for the upstream side.  Returns -1 (nothing done) when the
 * upstream thread is shutting down.  Server thread, inside an MHD callback.
 */
int upstream_submit(struct request *rq);

/* Upstream thread, rq->lock held, rq->suspended just cleared: resume rq's
 * connection once the current curl_multi_perform() round is over. */
void upstream_want_resume(struct request *rq);

/* Queues a command for a submitted request; any thread. */
void upstream_post(struct request *rq, unsigned cmd);

/*
 * Closes the queue, aborts every transfer, resumes every suspended
 * connection and joins the thread.  Main thread.
 */
void upstream_stop(void);

#endif
