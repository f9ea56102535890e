/*
 * metrics.h - counters, gauges and histograms for GET /metrics (Prometheus
 * text exposition format 0.0.4), and the readiness verdict for GET /readyz.
 *
 * What is counted where:
 *   request threads   metrics_open_request() / metrics_open_stream() as
 *                     connections and streamed answers begin and end;
 *   completion        metrics_call_done() once per request, from whichever
 *                     thread drops the last reference (request.c);
 *   tokens            metrics_tokens*(): streamed answers at completion,
 *                     documents on the events dispatcher thread once they
 *                     are decoded (events.c, after record_decode());
 *   scrape            metrics_render() and metrics_readiness() on a server
 *                     thread.
 * Everything on the request path is a relaxed atomic add into fixed arrays,
 * after a lock-free lookup of the provider's row (metrics_provider_index());
 * only the token table, whose keys come from the network, takes a mutex.
 *
 * Lifetime: metrics_init() on the main thread before the server starts and
 * metrics_free() after it has stopped (server.c does both).  Before
 * metrics_init() and after metrics_free() the request counters ignore
 * updates; the token table and the gauges are static and always usable,
 * so the dispatcher may report tokens at any time, also while it drains the
 * ring at shutdown.
 */
#ifndef WHYOPS_METRICS_H
#define WHYOPS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "events.h"
#include "llm.h"

/* Distinct (provider, model) token series; later models count as "other". */
#define METRICS_MAX_MODELS 200

/* Provider names with their own whyops_requests_total rows, over the whole
 * run (reloads included); later ones count as provider="other". */
#define METRICS_MAX_PROVIDERS 64
/* metrics_provider_index() of a provider counted as "other". */
#define METRICS_PROVIDER_OTHER METRICS_MAX_PROVIDERS

/* Readiness thresholds (see metrics_ready_eval()). */
#define METRICS_READY_DROP_WINDOW_MS 30000
#define METRICS_READY_FULL_PCT 90

/* Histogram upper bounds, in seconds. */
#define METRICS_NBUCKETS 18

/* One finished request.  Times are nanoseconds; -1 where not applicable. */
struct metrics_call {
	int route;		/* enum endpoint, -1: no route matched (404) */
	unsigned status;	/* status the client got (499: client left) */
	int provider;		/* metrics_provider_index(), -1: none */
	int64_t total_ns;	/* first callback -> completion */
	int64_t ttfb_ns;	/* hand-over -> upstream response headers */
	int64_t overhead_ns;	/* total minus upstream time (proxied only) */
	int error;		/* enum upstream_error, 0: none */
};

/* Main thread.  cfg names the first providers (labels) and gives the
 * limits that readiness checks against; it must outlive metrics_free().
 * 0 or -1. */
int metrics_init(const struct config *cfg);
void metrics_free(void);
/* Main thread, after metrics_init() (else a no-op), before any request
 * uses cfg: gives cfg's providers that have none yet a row of their own
 * (reload).  Returns how many found the table full and count as "other". */
size_t metrics_add_providers(const struct config *cfg);

/* Any thread.  delta is +1 when a client request (resp. a streamed answer)
 * begins and -1 when it ends. */
void metrics_open_request(int delta);
void metrics_open_stream(int delta);

/* Any thread, lock-free. */
void metrics_call_done(const struct metrics_call *c);

/* Any thread, lock-free: the row of the provider named name, for
 * metrics_call.provider; -1 ("none") for NULL, METRICS_PROVIDER_OTHER
 * for a name without a row of its own. */
int metrics_provider_index(const char *name);

/*
 * Any thread; takes the token table's mutex.  Adds the known (not
 * LLM_UNSET) input, output, cached and reasoning counts of u.  provider
 * and model are copied (NULL counts as "none" / "unknown").
 */
void metrics_tokens(const char *provider, const char *model,
    const struct llm_usage *u);
/* metrics_tokens() for a decoder's result: the model is the one the
 * upstream reported, else request_model.  res may be NULL (no-op). */
void metrics_tokens_result(const char *provider, const char *request_model,
    const struct llm_result *res);

/* Appends the whole exposition to out.  Any thread. */
void metrics_render(struct buf *out);
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Readiness: NULL when ready, else a short reason ("events_dropped",
 * "events_queue_full", "events_spool_full").  Reads events_get_stats(); a
 * scrape of /metrics also counts as an observation of the drop counters.
 * Any thread.
 */
const char *metrics_readiness(void);

/* The rule itself, for tests: state carries the drop count last seen and
 * when it last grew across calls (zero-initialise it). */
struct metrics_ready_state {
	bool seen;		/* drops holds a first sample */
	bool grew;		/* grew_ms is set */
	uint64_t drops;		/* dropped_full + dropped_sink last seen */
	int64_t grew_ms;	/* when a call first saw them higher */
};
const char *metrics_ready_eval(struct metrics_ready_state *state,
    const struct events_stats *st, size_t queue_capacity, uint64_t spool_max,
    int64_t now_ms);

/* Prometheus label value escaping (\\, \", \n), appended to out. */
void metrics_escape_label(struct buf *out, const char *s);

#endif
