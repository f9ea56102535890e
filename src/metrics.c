/*
 * metrics.c - what GET /metrics exposes and what GET /readyz decides (see
 * metrics.h).
 *
 * GET /metrics needs no API key, like /healthz: request counts, latencies,
 * token totals and provider names are operational data, not secrets, but
 * they do describe the traffic.  When the proxy is reachable from outside,
 * set [server] metrics_listen to a private address (metrics_http.c serves
 * /metrics there, and the main listener no longer does), or bind listen
 * itself to a private address.
 *
 * Families, in the order rendered:
 *   whyops_build_info{version}                             gauge, always 1
 *   whyops_requests_total{route,status_class,provider}     counter
 *   whyops_request_duration_seconds{route}                 histogram
 *   whyops_upstream_ttfb_seconds{route}                    histogram
 *   whyops_proxy_overhead_seconds{route}                   histogram
 *   whyops_open_requests, whyops_open_streams              gauges
 *   whyops_upstream_errors_total{reason}                   counter
 *   whyops_events_*                                        from events_get_stats()
 *   gen_ai_client_token_usage_total{provider,model,type}   counter
 *
 * Hot path: one finished request costs a handful of relaxed atomic adds
 * into fixed arrays (route x status class x provider row for the counter,
 * route x bucket for each histogram), after a lookup of the provider's
 * name in the provider table (below).  Buckets are stored per bucket, not
 * cumulatively, so an observation is one add; the renderer accumulates and
 * derives _count from the buckets, so +Inf always equals _count.  _sum is
 * kept in integer nanoseconds: a scrape racing an observation may see the
 * sum and the buckets one observation apart, which Prometheus tolerates.
 *
 * Series that have seen nothing are left out (routes x classes x providers
 * would otherwise fill a scrape with zeros), except the upstream error
 * reasons, a small fixed set rendered from the start.
 *
 * Providers: the provider label of whyops_requests_total comes from a
 * bounded table of names, not from one configuration.  metrics_init()
 * fills it from the start-up configuration and metrics_add_providers()
 * appends the names a SIGHUP reload brings (server_set_config() calls it
 * before new requests can see the new configuration).  A row is never
 * removed or reused, so a provider's counters survive every reload, also
 * one that drops the provider and one that brings it back (a counter must
 * never go backwards).  Rows: "none" (no provider chosen), then up to
 * METRICS_MAX_PROVIDERS names in the order they were first configured,
 * then "other" for every provider that found the table full (or whose
 * name is longer than a row).  A provider named "none" or "other" shares
 * that row, so no label value appears twice.  Fixed rows, not a growing
 * array: the request path reads the table without a lock (one writer, the
 * main thread; a name is copied into its row before the row count is
 * published with a release store, and readers load the count with
 * acquire), and a restart is the only way to forget a name, which bounds
 * the series a long-running proxy can accumulate.
 *
 * Tokens: the (provider, model) keys come from configuration and from
 * upstream answers, so the table is bounded: METRICS_MAX_MODELS distinct
 * pairs, after which a provider's further models are counted under
 * model="other".  Keys are copied into fixed rows (longer names are cut,
 * bytes that are not UTF-8 or are control characters become '?'), so the
 * table never allocates and may be used before metrics_init() and after
 * metrics_free().  One mutex guards it: writers are the dispatcher thread
 * and stream completions, the reader is a scrape.  A document answer is
 * counted when the dispatcher decodes it, so the tokens of a record the
 * full ring refused are not counted (whyops_events_dropped_total is).
 *
 * Readiness (GET /readyz) - ready unless one of these holds:
 *   events_dropped     the pipeline lost events (ring full, or the sink
 *                      failed with no room in a spool): dropped_full +
 *                      dropped_sink grew within the last
 *                      METRICS_READY_DROP_WINDOW_MS, as seen by a probe or
 *                      a scrape.  Growth is noticed when the counters are
 *                      read, so the window starts at the first probe after
 *                      the loss; 30 s spans three failures of a 10 s probe
 *                      (Kubernetes' default failureThreshold), enough for
 *                      a load balancer to take the instance out.
 *   events_queue_full  ring depth above METRICS_READY_FULL_PCT of its
 *                      capacity: the dispatcher cannot keep up and the next
 *                      burst will be dropped (with Redis, a ring 3/4 full
 *                      already spills to the spool, so this means the spool
 *                      cannot keep up either).
 *   events_spool_full  Redis with a spool: the spool holds more than
 *                      METRICS_READY_FULL_PCT of spool_max.  A sink that
 *                      fails while the spool has room is still ready:
 *                      nothing is lost yet.
 * The listener is up by construction (the probe reached it); server.c adds
 * "shutting_down" once the server has stopped accepting connections.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "request.h"
#include "route.h"

#define METRICS_ROUTES		(EP_COUNT + 1)	/* last: no route matched */
#define METRICS_CLASSES		5		/* 1xx .. 5xx */
#define METRICS_TOK_ROWS	(METRICS_MAX_MODELS + 64)
#define METRICS_TOK_HASH	1024		/* power of 2, > 2 * rows */
#define METRICS_PROVIDER_MAX	64		/* bytes kept of a key */
#define METRICS_PROV_NAME_MAX	200		/* > any name the parser takes */
#define METRICS_PROV_ROWS	(METRICS_MAX_PROVIDERS + 2) /* none, names, other */
#define METRICS_MODEL_MAX	128

enum metrics_hist {
	METRICS_H_DURATION,
	METRICS_H_TTFB,
	METRICS_H_OVERHEAD,
	METRICS_H__COUNT,
};

static const struct {
	const char *name;
	const char *help;
} metrics_hist_info[METRICS_H__COUNT] = {
	[METRICS_H_DURATION] = { "whyops_request_duration_seconds",
	    "Time from the first byte of a request to its completion (the "
	    "last byte to the client, or the upstream transfer's end if "
	    "later)." },
	[METRICS_H_TTFB] = { "whyops_upstream_ttfb_seconds",
	    "Time from the hand-over to the upstream thread to the upstream's "
	    "complete response headers." },
	[METRICS_H_OVERHEAD] = { "whyops_proxy_overhead_seconds",
	    "Request duration minus the upstream transfer's duration, for "
	    "requests handed to an upstream: the proxy's own time." },
};

/* Upper bounds in nanoseconds, and as the le label spells them. */
static const int64_t metrics_bounds_ns[METRICS_NBUCKETS] = {
	500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
	100000000, 250000000, 500000000, 1000000000, 2500000000,
	5000000000, 10000000000, 30000000000, 60000000000, 120000000000,
	300000000000,
};
static const char *const metrics_bounds_le[METRICS_NBUCKETS] = {
	"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
	"0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120", "300",
};

static const char *const metrics_class_names[METRICS_CLASSES] = {
	"1xx", "2xx", "3xx", "4xx", "5xx",
};

enum metrics_tok_type {
	METRICS_TOK_INPUT,
	METRICS_TOK_OUTPUT,
	METRICS_TOK_CACHED,
	METRICS_TOK_REASONING,
	METRICS_TOK__COUNT,
};

static const char *const metrics_tok_names[METRICS_TOK__COUNT] = {
	[METRICS_TOK_INPUT] = "input",
	[METRICS_TOK_OUTPUT] = "output",
	[METRICS_TOK_CACHED] = "cached",
	[METRICS_TOK_REASONING] = "reasoning",
};

/* Created by metrics_init(), freed by metrics_free(). */
struct metrics_counts {
	const struct config *cfg;	/* start-up: readiness limits */
	/* Provider table: rows [0, nnames) of names are immutable once
	 * published; only the main thread writes. */
	_Atomic size_t nnames;
	char names[METRICS_MAX_PROVIDERS][METRICS_PROV_NAME_MAX];
	_Atomic uint64_t hist[METRICS_H__COUNT][METRICS_ROUTES][METRICS_NBUCKETS + 1];
	_Atomic uint64_t hist_sum_ns[METRICS_H__COUNT][METRICS_ROUTES];
	_Atomic uint64_t errors[UPERR_COUNT];
	/* row 0: none, 1..METRICS_MAX_PROVIDERS: names[row - 1], last: other */
	_Atomic uint64_t requests[METRICS_ROUTES][METRICS_CLASSES][METRICS_PROV_ROWS];
};

struct metrics_tok_row {
	char provider[METRICS_PROVIDER_MAX];
	char model[METRICS_MODEL_MAX];
	uint64_t v[METRICS_TOK__COUNT];
};

static _Atomic(struct metrics_counts *) metrics_mc;
static _Atomic int64_t metrics_open_requests, metrics_open_streams;

static struct {
	pthread_mutex_t lock;
	struct metrics_tok_row rows[METRICS_TOK_ROWS];
	size_t nrows;
	size_t nmodels;			/* rows that are not model="other" */
	int16_t hash[METRICS_TOK_HASH];	/* row + 1, 0: empty */
} metrics_tok = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct {
	pthread_mutex_t lock;
	struct metrics_ready_state st;
} metrics_ready = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* --- lifetime ------------------------------------------------------------ */

/* A provider with this name counts under the "none" / "other" row. */
static bool
metrics_provider_reserved(const char *name)
{
	return strcmp(name, "none") == 0 || strcmp(name, "other") == 0;
}

int
metrics_provider_index(const char *name)
{
	struct metrics_counts *mc = atomic_load_explicit(&metrics_mc,
	    memory_order_acquire);
	size_t n;

	if (mc == NULL || name == NULL || strcmp(name, "none") == 0)
		return -1;
	n = atomic_load_explicit(&mc->nnames, memory_order_acquire);
	for (size_t i = 0; i < n; i++)
		if (strcmp(mc->names[i], name) == 0)
			return (int)i;
	return METRICS_PROVIDER_OTHER;
}

size_t
metrics_add_providers(const struct config *cfg)
{
	struct metrics_counts *mc = atomic_load_explicit(&metrics_mc,
	    memory_order_acquire);
	size_t n, lost = 0;

	if (mc == NULL)
		return 0;
	n = atomic_load_explicit(&mc->nnames, memory_order_relaxed);
	for (size_t i = 0; i < cfg->nproviders; i++) {
		const char *name = cfg->providers[i].name;
		size_t len = strlen(name);

		if (metrics_provider_reserved(name) ||
		    metrics_provider_index(name) != METRICS_PROVIDER_OTHER)
			continue;
		if (n == METRICS_MAX_PROVIDERS || len >= METRICS_PROV_NAME_MAX) {
			lost++;
			continue;
		}
		memcpy(mc->names[n], name, len + 1);
		atomic_store_explicit(&mc->nnames, ++n, memory_order_release);
	}
	return lost;
}

int
metrics_init(const struct config *cfg)
{
	struct metrics_counts *mc;
	struct events_stats st;

	mc = calloc(1, sizeof(*mc));
	if (mc == NULL)
		return -1;
	mc->cfg = cfg;
	free(atomic_exchange(&metrics_mc, mc));
	(void)metrics_add_providers(cfg);
	atomic_store(&metrics_open_requests, 0);
	atomic_store(&metrics_open_streams, 0);

	/* Losses before the server started are the start-up's business (the
	 * spool replay logs them): the first sample is the baseline. */
	events_get_stats(&st);
	pthread_mutex_lock(&metrics_ready.lock);
	memset(&metrics_ready.st, 0, sizeof(metrics_ready.st));
	metrics_ready_eval(&metrics_ready.st, &st, 0, 0, 0);
	pthread_mutex_unlock(&metrics_ready.lock);

	pthread_mutex_lock(&metrics_tok.lock);
	memset(metrics_tok.rows, 0, sizeof(metrics_tok.rows));
	memset(metrics_tok.hash, 0, sizeof(metrics_tok.hash));
	metrics_tok.nrows = metrics_tok.nmodels = 0;
	pthread_mutex_unlock(&metrics_tok.lock);
	return 0;
}

void
metrics_free(void)
{
	free(atomic_exchange(&metrics_mc, NULL));
}

/* --- recording ----------------------------------------------------------- */

void
metrics_open_request(int delta)
{
	atomic_fetch_add_explicit(&metrics_open_requests, delta, memory_order_relaxed);
}

void
metrics_open_stream(int delta)
{
	atomic_fetch_add_explicit(&metrics_open_streams, delta, memory_order_relaxed);
}

/* Index of the first bucket whose bound is >= ns (Prometheus "le"). */
static size_t
metrics_bucket(int64_t ns)
{
	size_t lo = 0, hi = METRICS_NBUCKETS;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ns <= metrics_bounds_ns[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;			/* METRICS_NBUCKETS: +Inf only */
}

static void
metrics_observe(struct metrics_counts *mc, enum metrics_hist h, size_t route,
    int64_t ns)
{
	if (ns < 0)
		return;
	atomic_fetch_add_explicit(&mc->hist[h][route][metrics_bucket(ns)], 1,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&mc->hist_sum_ns[h][route], (uint64_t)ns,
	    memory_order_relaxed);
}

/* 1xx..5xx; a status outside 100-599 (none was sent) counts as 5xx. */
static size_t
metrics_class(unsigned status)
{
	return status >= 100 && status < 600 ? status / 100 - 1 : 4;
}

void
metrics_call_done(const struct metrics_call *c)
{
	struct metrics_counts *mc = atomic_load_explicit(&metrics_mc,
	    memory_order_acquire);
	size_t route, prov;

	if (mc == NULL)
		return;
	route = c->route >= 0 && c->route < EP_COUNT ? (size_t)c->route : EP_COUNT;
	if (c->provider == METRICS_PROVIDER_OTHER)
		prov = METRICS_PROV_ROWS - 1;
	else if (c->provider >= 0 && (size_t)c->provider <
	    atomic_load_explicit(&mc->nnames, memory_order_acquire))
		prov = (size_t)c->provider + 1;
	else
		prov = 0;
	atomic_fetch_add_explicit(&mc->requests[route][metrics_class(c->status)][prov],
	    1, memory_order_relaxed);
	metrics_observe(mc, METRICS_H_DURATION, route, c->total_ns);
	metrics_observe(mc, METRICS_H_TTFB, route, c->ttfb_ns);
	metrics_observe(mc, METRICS_H_OVERHEAD, route, c->overhead_ns);
	if (c->error > UPERR_NONE && c->error < UPERR_COUNT)
		atomic_fetch_add_explicit(&mc->errors[c->error], 1,
		    memory_order_relaxed);
}

/* --- tokens -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t
metrics_utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Copies s into dst (size cap): whole UTF-8 characters only, '?' for
 * invalid bytes and control characters other than newline. */
static void
metrics_key_copy(char *dst, size_t cap, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0;

	while (i < n) {
		size_t len = metrics_utf8_len(p + i, n - i);

		if (len == 0 || (len == 1 && ((p[i] < 0x20 && p[i] != '\n') ||
		    p[i] == 0x7f))) {
			if (o + 1 >= cap)
				break;
			dst[o++] = '?';
			i += len ? len : 1;
			continue;
		}
		if (o + len >= cap)
			break;
		memcpy(dst + o, p + i, len);
		o += len;
		i += len;
	}
	dst[o] = '\0';
}

static uint32_t
metrics_tok_hash(const char *provider, const char *model)
{
	uint32_t h = 2166136261u;

	for (const char *p = provider; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ 0xff) * 16777619u;	/* separator: a byte no key holds */
	for (const char *p = model; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h;
}

/* The row for (provider, model), added if there is room; NULL otherwise.
 * Called with the lock held. */
static struct metrics_tok_row *
metrics_tok_find(const char *provider, const char *model, bool add)
{
	uint32_t i = metrics_tok_hash(provider, model) & (METRICS_TOK_HASH - 1);
	struct metrics_tok_row *r;

	for (;; i = (i + 1) & (METRICS_TOK_HASH - 1)) {
		int16_t slot = metrics_tok.hash[i];

		if (slot == 0)
			break;
		r = &metrics_tok.rows[slot - 1];
		if (strcmp(r->provider, provider) == 0 && strcmp(r->model, model) == 0)
			return r;
	}
	if (!add || metrics_tok.nrows == METRICS_TOK_ROWS)
		return NULL;
	r = &metrics_tok.rows[metrics_tok.nrows++];
	memcpy(r->provider, provider, strlen(provider) + 1);
	memcpy(r->model, model, strlen(model) + 1);
	metrics_tok.hash[i] = (int16_t)metrics_tok.nrows;
	return r;
}

/*
 * The row for a key: its own while fewer than METRICS_MAX_MODELS models
 * have one, else the provider's "other" row; with no room even for that
 * (more than 64 providers), the last row, provider="other".
 */
static struct metrics_tok_row *
metrics_tok_row(const char *provider, const char *model)
{
	struct metrics_tok_row *r;

	if ((r = metrics_tok_find(provider, model, false)) != NULL)
		return r;
	if (metrics_tok.nmodels < METRICS_MAX_MODELS && strcmp(model, "other") != 0) {
		metrics_tok.nmodels++;
		return metrics_tok_find(provider, model, true);
	}
	if (metrics_tok.nrows < METRICS_TOK_ROWS - 1 ||
	    metrics_tok_find(provider, "other", false) != NULL)
		return metrics_tok_find(provider, "other", true);
	return metrics_tok_find("other", "other", true);
}

void
metrics_tokens(const char *provider, const char *model,
    const struct llm_usage *u)
{
	const int64_t v[METRICS_TOK__COUNT] = {
		[METRICS_TOK_INPUT] = u->input,
		[METRICS_TOK_OUTPUT] = u->output,
		[METRICS_TOK_CACHED] = u->cached,
		[METRICS_TOK_REASONING] = u->reasoning,
	};
	char p[METRICS_PROVIDER_MAX], m[METRICS_MODEL_MAX];
	struct metrics_tok_row *r;
	bool any = false;

	for (size_t i = 0; i < METRICS_TOK__COUNT; i++)
		any |= v[i] > 0;
	if (!any)
		return;
	metrics_key_copy(p, sizeof(p), provider ? provider : "none");
	metrics_key_copy(m, sizeof(m), model && *model ? model : "unknown");
	pthread_mutex_lock(&metrics_tok.lock);
	if ((r = metrics_tok_row(p, m)) != NULL) {
		for (size_t i = 0; i < METRICS_TOK__COUNT; i++)
			r->v[i] += v[i] > 0 ? (uint64_t)v[i] : 0;
	}
	pthread_mutex_unlock(&metrics_tok.lock);
}

void
metrics_tokens_result(const char *provider, const char *request_model,
    const struct llm_result *res)
{
	if (res == NULL)
		return;
	metrics_tokens(provider, res->model.len > 0 ? res->model.ptr :
	    request_model, &res->usage);
}

/* --- readiness ----------------------------------------------------------- */

const char *
metrics_ready_eval(struct metrics_ready_state *state,
    const struct events_stats *st, size_t queue_capacity, uint64_t spool_max,
    int64_t now_ms)
{
	uint64_t drops = st->dropped_full + st->dropped_sink;

	if (state->seen && drops > state->drops) {
		state->grew = true;
		state->grew_ms = now_ms;
	}
	state->seen = true;
	state->drops = drops;
	if (state->grew && now_ms - state->grew_ms < METRICS_READY_DROP_WINDOW_MS)
		return "events_dropped";
	if (queue_capacity > 0 &&
	    (uint64_t)st->depth * 100 > (uint64_t)queue_capacity * METRICS_READY_FULL_PCT)
		return "events_queue_full";
	if (spool_max > 0 && st->spool_pending * 100 > spool_max * METRICS_READY_FULL_PCT)
		return "events_spool_full";
	return NULL;
}

/* Judged on what the pipeline has in force (a reload may change the
 * spool), not on the start-up configuration. */
static const char *
metrics_ready_check(const struct events_stats *st, int64_t now_ms)
{
	const char *reason;

	pthread_mutex_lock(&metrics_ready.lock);
	reason = metrics_ready_eval(&metrics_ready.st, st, st->capacity,
	    st->spool_max, now_ms);
	pthread_mutex_unlock(&metrics_ready.lock);
	return reason;
}

const char *
metrics_readiness(void)
{
	struct events_stats st;

	events_get_stats(&st);
	return metrics_ready_check(&st, request_now() / 1000000);
}

/* --- rendering ----------------------------------------------------------- */

void
metrics_escape_label(struct buf *out, const char *s)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" :
		    *s == '\n' ? "\\n" : NULL;

		if (esc == NULL)
			continue;
		buf_append(out, run, (size_t)(s - run));
		buf_appends(out, esc);
		run = s + 1;
	}
	buf_appends(out, run);
}

static void
metrics_family(struct buf *out, const char *name, const char *type,
    const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *
metrics_route_name(size_t route)
{
	return route < EP_COUNT ? endpoint_names[route] : "unknown";
}

static void
metrics_render_requests(struct buf *out, struct metrics_counts *mc)
{
	size_t n = atomic_load_explicit(&mc->nnames, memory_order_acquire);

	metrics_family(out, "whyops_requests_total", "counter",
	    "Requests completed, by route (endpoint), status class of the "
	    "answer the client got (499, client gone, is 4xx) and provider "
	    "slug (\"none\" when no provider was chosen, \"other\" past the "
	    "provider table's limit).");
	for (size_t r = 0; r < METRICS_ROUTES; r++) {
		for (size_t c = 0; c < METRICS_CLASSES; c++) {
			for (size_t p = 0; p < METRICS_PROV_ROWS; p++) {
				uint64_t v;

				if (p > n && p < METRICS_PROV_ROWS - 1)
					continue;	/* no name yet */
				v = atomic_load_explicit(&mc->requests[r][c][p],
				    memory_order_relaxed);
				if (v == 0)
					continue;
				buf_printf(out, "whyops_requests_total{route=\"%s\","
				    "status_class=\"%s\",provider=\"",
				    metrics_route_name(r), metrics_class_names[c]);
				metrics_escape_label(out, p == 0 ? "none" :
				    p == METRICS_PROV_ROWS - 1 ? "other" : mc->names[p - 1]);
				buf_printf(out, "\"} %" PRIu64 "\n", v);
			}
		}
	}
}

static void
metrics_render_hist(struct buf *out, struct metrics_counts *mc,
    enum metrics_hist h)
{
	const char *name = metrics_hist_info[h].name;

	metrics_family(out, name, "histogram", metrics_hist_info[h].help);
	for (size_t r = 0; r < METRICS_ROUTES; r++) {
		uint64_t b[METRICS_NBUCKETS + 1], cum = 0, sum;
		const char *route = metrics_route_name(r);

		for (size_t i = 0; i <= METRICS_NBUCKETS; i++) {
			b[i] = atomic_load_explicit(&mc->hist[h][r][i],
			    memory_order_relaxed);
			cum += b[i];
		}
		if (cum == 0)
			continue;
		sum = atomic_load_explicit(&mc->hist_sum_ns[h][r], memory_order_relaxed);
		cum = 0;
		for (size_t i = 0; i < METRICS_NBUCKETS; i++) {
			cum += b[i];
			buf_printf(out, "%s_bucket{route=\"%s\",le=\"%s\"} %" PRIu64 "\n",
			    name, route, metrics_bounds_le[i], cum);
		}
		cum += b[METRICS_NBUCKETS];
		buf_printf(out, "%s_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
		    "%s_sum{route=\"%s\"} %" PRIu64 ".%09" PRIu64 "\n"
		    "%s_count{route=\"%s\"} %" PRIu64 "\n", name, route, cum,
		    name, route, sum / 1000000000, sum % 1000000000, name, route, cum);
	}
}

static void
metrics_render_errors(struct buf *out, struct metrics_counts *mc)
{
	metrics_family(out, "whyops_upstream_errors_total", "counter",
	    "Upstream transfers that ended without a complete answer, by reason.");
	for (size_t e = UPERR_NONE + 1; e < UPERR_COUNT; e++)
		buf_printf(out, "whyops_upstream_errors_total{reason=\"%s\"} %" PRIu64
		    "\n", upstream_error_names[e],
		    atomic_load_explicit(&mc->errors[e], memory_order_relaxed));
}

static void
metrics_render_one(struct buf *out, const char *name, const char *type,
    const char *help, uint64_t v)
{
	metrics_family(out, name, type, help);
	buf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void
metrics_render_events(struct buf *out, const struct events_stats *st)
{
	metrics_render_one(out, "whyops_events_queued_total", "counter",
	    "Call records accepted into the event queue.", st->queued);
	metrics_render_one(out, "whyops_events_written_total", "counter",
	    "Events the sink took.", st->written);
	metrics_render_one(out, "whyops_events_spooled_total", "counter",
	    "Events the sink refused, stored in the spool.", st->spooled);
	metrics_render_one(out, "whyops_events_replayed_total", "counter",
	    "Spooled events the sink took later.", st->replayed);
	metrics_family(out, "whyops_events_dropped_total", "counter",
	    "Telemetry lost: records refused by a full queue (queue_full), "
	    "events the sink failed to write and no spool kept (sink).");
	buf_printf(out, "whyops_events_dropped_total{reason=\"queue_full\"} %" PRIu64
	    "\nwhyops_events_dropped_total{reason=\"sink\"} %" PRIu64 "\n",
	    st->dropped_full, st->dropped_sink);
	metrics_render_one(out, "whyops_events_build_failed_total", "counter",
	    "Records or events that could not be turned into JSON.",
	    st->built_failed);
	metrics_render_one(out, "whyops_events_queue_depth", "gauge",
	    "Records in the event queue now.", st->depth);
	metrics_render_one(out, "whyops_events_queue_high_water", "gauge",
	    "The largest event queue depth seen.", st->high_water);
	metrics_render_one(out, "whyops_events_spool_bytes", "gauge",
	    "Bytes waiting in the spool.", st->spool_pending);
}

static void
metrics_render_tokens(struct buf *out)
{
	metrics_family(out, "gen_ai_client_token_usage_total", "counter",
	    "Tokens the upstream reported, by provider slug, model (as the "
	    "upstream named it; \"other\" past " "the series limit) and type "
	    "(input includes cached for OpenAI, not for Anthropic).");
	pthread_mutex_lock(&metrics_tok.lock);
	for (size_t i = 0; i < metrics_tok.nrows; i++) {
		const struct metrics_tok_row *r = &metrics_tok.rows[i];

		for (size_t t = 0; t < METRICS_TOK__COUNT; t++) {
			if (r->v[t] == 0)
				continue;
			buf_appends(out, "gen_ai_client_token_usage_total{provider=\"");
			metrics_escape_label(out, r->provider);
			buf_appends(out, "\",model=\"");
			metrics_escape_label(out, r->model);
			buf_printf(out, "\",type=\"%s\"} %" PRIu64 "\n",
			    metrics_tok_names[t], r->v[t]);
		}
	}
	pthread_mutex_unlock(&metrics_tok.lock);
}

void
metrics_render(struct buf *out)
{
	struct metrics_counts *mc = atomic_load_explicit(&metrics_mc,
	    memory_order_acquire);
	struct events_stats st;
	int64_t v;

	metrics_family(out, "whyops_build_info", "gauge",
	    "Always 1; the version is in the label.");
	buf_appends(out, "whyops_build_info{version=\"");
	metrics_escape_label(out, WHYOPS_VERSION);
	buf_appends(out, "\"} 1\n");
	if (mc != NULL) {
		metrics_render_requests(out, mc);
		for (int h = 0; h < METRICS_H__COUNT; h++)
			metrics_render_hist(out, mc, (enum metrics_hist)h);
	}
	v = atomic_load_explicit(&metrics_open_requests, memory_order_relaxed);
	metrics_render_one(out, "whyops_open_requests", "gauge",
	    "Client requests being served now.", v > 0 ? (uint64_t)v : 0);
	v = atomic_load_explicit(&metrics_open_streams, memory_order_relaxed);
	metrics_render_one(out, "whyops_open_streams", "gauge",
	    "Streamed (text/event-stream) answers being forwarded now.",
	    v > 0 ? (uint64_t)v : 0);
	if (mc != NULL)
		metrics_render_errors(out, mc);
	events_get_stats(&st);
	(void)metrics_ready_check(&st, request_now() / 1000000);
	metrics_render_events(out, &st);
	metrics_render_tokens(out);
}
