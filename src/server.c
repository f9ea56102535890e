/*
 * server.c - the libmicrohttpd side: accept, authenticate, hand over, reply.
 *
 * libmicrohttpd runs its own epoll thread pool; every callback here runs on
 * the pool thread that owns the connection.  A request goes through:
 *
 *   uri_log_cb        creates the struct request (and keeps the raw URI
 *                     for the query string)
 *   access handler    1st call: route, headers size, auth, Content-Length
 *                     next calls: request body, bounded by max_body_size
 *                     body done: validate, resolve the provider, build the
 *                     upstream request, suspend + hand over (upstream.c)
 *                     after resume: queue the answer: buffered (one
 *                     MHD_create_response_from_buffer, headers and body in
 *                     one send) or streaming (content reader)
 *   content reader    copies what the upstream thread buffered; when there
 *                     is nothing yet it suspends the connection, and the
 *                     upstream thread resumes it when bytes arrive
 *   completed_cb      drops the server's reference; aborts the upstream
 *                     transfer if the client went away first
 *   conn_cb           per connection: remembers the request in progress,
 *                     and completes one that libmicrohttpd dropped without
 *                     completed_cb when the connection closes
 *
 * The listener itself (socket, options, start, stop, reload) is
 * server_daemon.c; the state both files share is server_state.h.
 *
 * The proxy's own endpoints need no key: /healthz (alive), /readyz (ready
 * for traffic: see metrics.c for the rule) and /metrics (Prometheus text;
 * keep the listen address private, see metrics.c).  With [server]
 * metrics_listen set, /metrics moves to that listener (metrics_http.c) and
 * this one answers it like any unknown path, so that a public listen
 * address does not expose the metrics by accident.
 *
 * Errors the proxy makes itself use the error shape of the API the route
 * speaks (apierr.c).
 */
#include <stdarg.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apierr.h"
#include "auth.h"
#include "hdr.h"
#include "jsonscan.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "server_state.h"
#include "identify.h"
#include "upreq.h"
#include "upstream.h"

/* --- small helpers ----------------------------------------------------- */

static const char *
server_header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Copy of s safe for a log line: control characters become '?'. */
static char *
server_logsafe(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *d = malloc(n + 1);

	if (d == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		d[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	d[n] = '\0';
	return d;
}

static bool
server_valid_request_id(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (n >= 128 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return n > 0;
}

/*
 * The proxy's own time so far, in microseconds.  For a proxied request the
 * upstream's share is left out: from the hand-over to the transfer's end
 * when it is over (a buffered answer goes out only then), else to its
 * response headers (a stream's headers go out as they arrive).  For an
 * answer the proxy makes itself, all the time since the first callback.
 */
static long long
server_overhead_us(struct request *rq)
{
	int64_t now = request_now(), until = 0, upstream = 0;

	if (rq->dispatched && rq->t_submit != 0) {
		pthread_mutex_lock(&rq->lock);
		until = rq->upstream_done ? rq->t_done : rq->t_headers;
		pthread_mutex_unlock(&rq->lock);
		if (until >= rq->t_submit)
			upstream = until - rq->t_submit;
	}
	return (long long)((now - rq->t_start - upstream) / 1000);
}

static void
server_common_headers(struct request *rq, struct MHD_Response *resp)
{
	char us[24];

	MHD_add_response_header(resp, "X-Request-Id", rq->request_id);
	snprintf(us, sizeof(us), "%lld", server_overhead_us(rq));
	MHD_add_response_header(resp, "X-WhyOps-Overhead-Us", us);
	if (rq->trace_id[0] != '\0') {
		MHD_add_response_header(resp, "X-Trace-ID", rq->trace_id);
		MHD_add_response_header(resp, "X-Thread-ID", rq->trace_id);
	}
	/* Draining: served, but the client is told not to send more here. */
	if (atomic_load_explicit(&srv.quiesced, memory_order_relaxed))
		MHD_add_response_header(resp, "Connection", "close");
}

struct MHD_Response *
server_buffer_response(char *body, size_t len, const char *ctype)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return NULL;
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	return resp;
}

static enum MHD_Result
server_reply(struct request *rq, unsigned status, const char *ctype,
    char *body, size_t len)
{
	struct MHD_Response *resp = server_buffer_response(body, len, ctype);
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	server_common_headers(rq, resp);
	rq->answered = true;
	rq->client_status = status;
	if (rq->defer) {
		/* Queued only once the request (and any body) has been read:
		 * libmicrohttpd closes a connection whose answer went out
		 * before the request was complete. */
		rq->pending = resp;
		return MHD_YES;
	}
	ret = MHD_queue_response(rq->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Queues an answer prepared during the first call, now that the request has
 * been read completely. */
static enum MHD_Result
server_queue_pending(struct request *rq)
{
	struct MHD_Response *resp = rq->pending;
	enum MHD_Result ret;

	rq->pending = NULL;
	ret = MHD_queue_response(rq->conn, rq->client_status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Answers with a proxy-made error in the route's error shape. */
static enum MHD_Result
server_error(struct request *rq, enum api_dialect d, unsigned status,
    const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static enum MHD_Result
server_error(struct request *rq, enum api_dialect d, unsigned status,
    const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t len;
	char *body;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The message may quote the client's path or model: no control
	 * character for the log line, no invalid UTF-8 for the body. */
	apierr_sanitize(msg, true);
	body = apierr_body(d, status, code, msg, &len);
	log_debug("req=%s %u %s", rq->request_id, status, msg);
	return server_reply(rq, status, "application/json", body, len);
}

static enum api_dialect
server_guess_dialect(struct request *rq)
{
	if (rq->route != NULL)
		return rq->route->dialect;
	if (server_header(rq->conn, "x-api-key") != NULL ||
	    server_header(rq->conn, "anthropic-version") != NULL)
		return API_ANTHROPIC;
	return API_OPENAI;
}

/* --- the proxy's own endpoints ------------------------------------------- */

char *
server_readyz_body(unsigned *status, size_t *len)
{
	const char *reason = atomic_load(&srv.quiesced) ? "shutting_down" :
	    metrics_readiness();
	struct buf b = { 0 };

	if (reason == NULL)
		buf_appends(&b, "{\"status\":\"ready\"}");
	else
		buf_printf(&b, "{\"status\":\"not_ready\",\"reason\":\"%s\"}", reason);
	*status = reason == NULL ? 200 : 503;
	return buf_steal(&b, len);
}

/* 200 {"status":"ready"}, or 503 {"status":"not_ready","reason":"..."}. */
static enum MHD_Result
server_readyz(struct request *rq)
{
	unsigned status;
	size_t len;
	char *body = server_readyz_body(&status, &len);

	return server_reply(rq, status, "application/json", body, len);
}

static enum MHD_Result
server_metrics(struct request *rq)
{
	struct buf b = { 0 };
	size_t len;
	char *body;

	metrics_render(&b);
	body = buf_steal(&b, &len);
	return server_reply(rq, 200, METRICS_CONTENT_TYPE, body, len);
}

/* --- first call: route, size, auth ---------------------------------------- */

static enum MHD_Result
server_header_size_cb(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	size_t *total = cls;

	(void)kind;
	*total += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static enum MHD_Result
server_begin(struct request *rq, const char *method, const char *url)
{
	const struct config *cfg = rq->cfg;
	struct MHD_Connection *c = rq->conn;
	const union MHD_ConnectionInfo *ci;
	const char *rid, *key, *cl, *v;
	size_t hsize = strlen(url) + strlen(method) + 12, klen = 0;
	enum route_match_result m;

	snprintf(rq->method, sizeof(rq->method), "%s", method);
	rq->path = server_logsafe(url, 512);
	rid = server_header(c, "X-Request-Id");
	if (rid != NULL && server_valid_request_id(rid))
		snprintf(rq->request_id, sizeof(rq->request_id), "%s", rid);
	else
		request_make_id(rq->request_id, sizeof(rq->request_id));
	if ((ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD)) != NULL)
		rq->client_fd = ci->connect_fd;
	if ((v = server_header(c, "X-Agent-Name")) != NULL && *v != '\0')
		rq->agent_name = server_logsafe(v, 128);
	if ((v = server_header(c, "X-External-User-Id")) != NULL && *v != '\0')
		rq->external_user_id = server_logsafe(v, 256);

	identify_early(rq);
	m = route_match(method, url, &rq->route);
	if (m != ROUTE_NOT_FOUND && rq->route->ep == EP_METRICS && srv.metrics_apart)
		m = ROUTE_NOT_FOUND;	/* served on metrics_listen only */
	if (m == ROUTE_NOT_FOUND) {
		rq->route = NULL;
		return server_error(rq, server_guess_dialect(rq), 404, "not_found",
		    "unknown path %s", rq->path);
	}
	if (m == ROUTE_BAD_METHOD)
		return server_error(rq, rq->route->dialect, 405, "method_not_allowed",
		    "%s is not allowed on %s; use %s", rq->method, rq->path,
		    rq->route->method);

	MHD_get_connection_values(c, MHD_HEADER_KIND, server_header_size_cb, &hsize);
	if (hsize > cfg->max_header_size && !(rq->defer = false))
		return server_error(rq, rq->route->dialect, 431,
		    "request_header_fields_too_large", "request headers are %zu bytes, "
		    "more than the %zu this proxy accepts", hsize, cfg->max_header_size);

	if (rq->route->ep == EP_HEALTHZ) {
		char *b = strdup("{\"status\":\"ok\"}");
		return server_reply(rq, 200, "application/json", b, strlen(b));
	}
	if (rq->route->ep == EP_READYZ)
		return server_readyz(rq);
	if (rq->route->ep == EP_METRICS)
		return server_metrics(rq);

	key = auth_extract(server_header(c, "Authorization"),
	    server_header(c, "x-api-key"), &klen);
	if (key == NULL)
		return server_error(rq, rq->route->dialect, 401, "missing_api_key",
		    "no API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'");
	if ((rq->key = auth_lookup(cfg, key, klen)) == NULL)
		return server_error(rq, rq->route->dialect, 401, "invalid_api_key",
		    "invalid API key");

	/* Refused before reading: the connection closes after the answer,
	 * which is what a client sending that much should see. */
	cl = server_header(c, "Content-Length");
	unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
	if (clen > cfg->max_body_size && !(rq->defer = false))
		return server_error(rq, rq->route->dialect, 413, "request_too_large",
		    "request body is larger than the %zu bytes this proxy accepts",
		    cfg->max_body_size);
	if (clen > 0)
		buf_reserve(&rq->body, (size_t)clen);	/* one allocation */
	return MHD_YES;
}

/* --- body complete: validate, resolve, hand over ------------------------- */

static const char *
server_raw_query(struct request *rq)
{
	const char *q = rq->raw_uri ? strchr(rq->raw_uri, '?') : NULL;

	return q ? q + 1 : NULL;
}

static enum MHD_Result
server_dispatch(struct request *rq)
{
	const struct route *r = rq->route;
	const struct environment *env = rq->key->env;
	const char *model = NULL, *upstream_model = NULL, *jerr;
	const char *body = rq->body.data ? rq->body.data : "";
	char msg[512], mbuf[512];
	size_t at, vb, ve;
	enum MHD_Result ret;

	if (strcmp(r->method, "POST") == 0) {
		if (jsonscan_validate(body, rq->body.len, &at, &jerr) != 0)
			return server_error(rq, r->dialect, 400, "invalid_json",
			    "request body is not valid JSON: %s at byte %zu", jerr, at);
		at = 0;
		while (at < rq->body.len && strchr(" \t\r\n", body[at]))
			at++;
		if (body[at] != '{')
			return server_error(rq, r->dialect, 400, "invalid_json",
			    "request body must be a JSON object");
		if (jsonscan_member(body, rq->body.len, "model", &vb, &ve) == 0) {
			if (jsonscan_string_value(body + vb, ve - vb, mbuf,
			    sizeof(mbuf)) > 0)
				model = mbuf;
			else if (body[vb] == '"' && ve - vb > 2)
				return server_error(rq, r->dialect, 400,
				    "invalid_model", "\"model\" must be at most "
				    "%zu bytes, without NUL", sizeof(mbuf) - 1);
		}
		if (r->needs_model && model == NULL)
			return server_error(rq, r->dialect, 400, "missing_model",
			    "request body has no \"model\" string");
	}
	if (model != NULL)
		rq->model = server_logsafe(model, 256);
	if (identify_request(rq, msg, sizeof(msg)) != 0)
		return server_error(rq, r->dialect, 400, "invalid_trace_id", "%s", msg);

	switch (route_resolve(rq->cfg, env, r, model, &rq->provider,
	    &upstream_model, msg, sizeof(msg))) {
	case RESOLVE_OK:
		break;
	case RESOLVE_FORBIDDEN:
		return server_error(rq, r->dialect, 403, "provider_not_allowed", "%s", msg);
	default:
		return server_error(rq, r->dialect, 400, "model_not_supported", "%s", msg);
	}
	if (upstream_model != NULL)
		rq->upstream_model = strdup(upstream_model);
	if (model != NULL && upstream_model != model)
		upreq_rewrite_model(rq, upstream_model);
	identify_sign(rq);
	body = rq->body.data;		/* the rewrite may have replaced it */
	if (r->ep != EP_MODELS && body != NULL &&
	    jsonscan_member(body, rq->body.len, "stream", &vb, &ve) == 0)
		rq->stream_requested = ve - vb == 4 && memcmp(body + vb, "true", 4) == 0;
	if (rq->stream_requested && r->ep == EP_CHAT && rq->cfg->force_stream_usage)
		rq->usage_forced = upreq_force_usage(rq);

	upreq_build(rq, server_raw_query(rq));
	rq->dispatched = true;
	if (upstream_submit(rq) != 0) {
		rq->dispatched = false;
		return server_error(rq, r->dialect, 503, "shutting_down",
		    "the proxy is shutting down");
	}
	ret = MHD_YES;
	return ret;
}

/* --- after resume: the answer ------------------------------------------ */

static unsigned
server_error_status(enum upstream_error e)
{
	switch (e) {
	case UPERR_CONNECT_TIMEOUT:
	case UPERR_FIRST_BYTE_TIMEOUT:
		return 504;
	case UPERR_SHUTDOWN:
		return 503;
	default:
		return 502;
	}
}

static void
server_copy_headers(struct request *rq, struct MHD_Response *resp, bool streaming)
{
	const struct buf *h = &rq->resp_headers;
	const char *p = h->data, *end = h->data + h->len, *connection = NULL;

	for (const char *q = p; q != NULL && q < end;) {
		const char *v = q + strlen(q) + 1;
		if (strcasecmp(q, "Connection") == 0)
			connection = v;
		q = v + strlen(v) + 1;
	}
	while (p != NULL && p < end) {
		const char *name = p, *value = p + strlen(p) + 1;

		p = value + strlen(value) + 1;
		if (strcasecmp(name, "X-Request-Id") == 0) {
			MHD_add_response_header(resp, "X-Upstream-Request-Id", value);
			continue;
		}
		if (hdr_response_passthrough(name, connection, streaming))
			MHD_add_response_header(resp, name, value);
	}
	server_common_headers(rq, resp);
	if (streaming) {
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	}
}

static ssize_t
server_content_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct request *rq = cls;
	bool unpause = false;
	ssize_t n;

	(void)pos;
	pthread_mutex_lock(&rq->lock);
	size_t avail = buf_avail(&rq->out);
	if (avail > 0) {
		n = (ssize_t)(avail < max ? avail : max);
		memcpy(out, buf_head(&rq->out), (size_t)n);
		buf_consume(&rq->out, (size_t)n);
		if (rq->paused && !rq->unpause_posted &&
		    buf_avail(&rq->out) < UPSTREAM_LOW_WATER) {
			rq->unpause_posted = true;
			unpause = true;
		}
	} else if (rq->upstream_done) {
		n = rq->error == UPERR_NONE ? MHD_CONTENT_READER_END_OF_STREAM :
		    MHD_CONTENT_READER_END_WITH_ERROR;
	} else {
		rq->suspended = true;
		MHD_suspend_connection(rq->conn);
		n = 0;
	}
	pthread_mutex_unlock(&rq->lock);
	if (unpause)
		upstream_post(rq, UPSTREAM_CMD_UNPAUSE);
	if (n > 0)
		rq->bytes_out += (size_t)n;
	return n;
}

static enum MHD_Result
server_answer(struct request *rq)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	pthread_mutex_lock(&rq->lock);
	long status = rq->upstream_status;
	enum upstream_error err = rq->error;
	enum delivery d = rq->delivery;
	bool done = rq->upstream_done;
	char detail[sizeof(rq->error_detail)];
	memcpy(detail, rq->error_detail, sizeof(detail));
	pthread_mutex_unlock(&rq->lock);

	/* The client closed its side (gone, or half-closed as nginx also
	 * counts it): nothing to tell it; logged as 499. */
	if (err == UPERR_CLIENT_GONE)
		return MHD_NO;
	if (status == 0 || (d == DELIVER_BUFFERED && err != UPERR_NONE)) {
		unsigned st = server_error_status(err);
		const char *what = st == 504 ? "timed out" : "failed";
		return server_error(rq, rq->route->dialect, st,
		    st == 504 ? "upstream_timeout" : "upstream_error",
		    "upstream '%s' %s: %s", rq->provider->name, what,
		    err == UPERR_NONE ? "no answer" : detail);
	}
	if (d == DELIVER_BUFFERED) {
		size_t len;
		char *body;

		if (!done)	/* resumed early: cannot happen by construction */
			return MHD_NO;
		/* The body stays in rq->out (persistent for libmicrohttpd) until
		 * the request completes: the event record takes it then. */
		pthread_mutex_lock(&rq->lock);
		body = rq->out.data ? rq->out.data + rq->out.off : "";
		len = buf_avail(&rq->out);
		pthread_mutex_unlock(&rq->lock);
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
		rq->bytes_out = len;
	} else {
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
		    server_content_reader, rq, NULL);
	}
	if (resp == NULL)
		return MHD_NO;
	server_copy_headers(rq, resp, d == DELIVER_STREAMING);
	ret = MHD_queue_response(rq->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	rq->answered = true;
	rq->client_status = (unsigned)status;
	if (d == DELIVER_STREAMING && ret == MHD_YES) {
		rq->stream_open = true;
		metrics_open_stream(1);
	}
	return ret;
}

/* --- libmicrohttpd callbacks -------------------------------------------- */

/* Per connection (MHD_OPTION_NOTIFY_CONNECTION): the request in progress. */
struct server_conn {
	struct request *rq;
};

static void server_request_done(struct request *rq,
    enum MHD_RequestTerminationCode toe);

static struct server_conn *
server_conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

static void
server_conn_attach(struct MHD_Connection *c, struct request *rq)
{
	struct server_conn *sc = server_conn_of(c);

	if (sc == NULL)
		return;
	if (sc->rq != NULL)	/* the previous one was dropped uncompleted */
		server_request_done(sc->rq, MHD_REQUEST_TERMINATED_WITH_ERROR);
	sc->rq = rq;
}

static void
server_conn_detach(struct MHD_Connection *c, struct request *rq)
{
	struct server_conn *sc = server_conn_of(c);

	if (sc != NULL && sc->rq == rq)
		sc->rq = NULL;
}

void *
server_uri_log_cb(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct request *rq;

	/* The request keeps the generation current now to its end. */
	pthread_mutex_lock(&srv.cfg_lock);
	rq = request_new(srv.cfg);
	pthread_mutex_unlock(&srv.cfg_lock);

	(void)cls;
	rq->conn = c;
	rq->raw_uri = strdup(uri);
	atomic_fetch_add(&srv.inflight, 1);
	metrics_open_request(1);
	server_conn_attach(c, rq);
	return rq;
}

enum MHD_Result
server_access_cb(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)version;
	if (rq == NULL) {		/* no URI callback ran: cannot happen */
		rq = server_uri_log_cb(NULL, url, c);
		*con_cls = rq;
	}
	if (rq->path == NULL) {
		rq->defer = true;
		enum MHD_Result r = server_begin(rq, method, url);
		rq->defer = false;
		return r;
	}
	if (rq->answered) {		/* an answer is prepared; drop the body */
		if (*upload_data_size > 0) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		return rq->pending != NULL ? server_queue_pending(rq) : MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* libmicrohttpd cannot queue a response in the middle of an
		 * upload: a chunked body over the limit is read and dropped,
		 * never stored, and answered with 413 at its end. */
		if (rq->body_too_large ||
		    rq->body.len + *upload_data_size > rq->cfg->max_body_size) {
			rq->body_too_large = true;
			buf_free(&rq->body);
		} else {
			buf_append(&rq->body, upload_data, *upload_data_size);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->body_too_large)
		return server_error(rq, rq->route->dialect, 413, "request_too_large",
		    "request body is larger than the %zu bytes this proxy accepts",
		    rq->cfg->max_body_size);
	if (!rq->dispatched)
		return server_dispatch(rq);
	return server_answer(rq);
}

static void
server_request_done(struct request *rq, enum MHD_RequestTerminationCode toe)
{
	bool abort_upstream = false;

	if (rq->pending != NULL) {
		MHD_destroy_response(rq->pending);
		rq->pending = NULL;
	}
	if (rq->dispatched) {
		pthread_mutex_lock(&rq->lock);
		if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
			rq->client_gone = true;
		abort_upstream = !rq->upstream_done;
		pthread_mutex_unlock(&rq->lock);
	}
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && rq->client_status == 0)
		rq->client_status = 499;	/* client closed before an answer */
	if (abort_upstream)
		upstream_post(rq, UPSTREAM_CMD_ABORT);
	if (rq->stream_open)
		metrics_open_stream(-1);
	metrics_open_request(-1);
	request_unref(rq);
	atomic_fetch_sub(&srv.inflight, 1);
}

void
server_completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	if (rq == NULL)
		return;
	*con_cls = NULL;
	server_conn_detach(c, rq);
	server_request_done(rq, toe);
}

/*
 * libmicrohttpd 0.9.75 can drop a request after the URI callback without
 * ever calling the completion callback: a query string with more arguments
 * than the connection's memory pool can index ("Not enough memory in pool
 * to allocate header record") gets a 431 that is never sent, and the
 * connection is closed later without MHD_OPTION_NOTIFY_COMPLETED.  The
 * request (and an open-request count, which holds a SIGTERM for the whole
 * drain_timeout) would be leaked.  The connection's own close notification
 * always comes: it completes a request still attached then.
 */
void
server_conn_cb(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct server_conn *sc = *socket_context;

	(void)cls;
	(void)c;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((*socket_context = calloc(1, sizeof(struct server_conn))) == NULL)
			abort();
		return;
	}
	if (sc == NULL)
		return;
	if (sc->rq != NULL) {
		log_debug("req=%s dropped by libmicrohttpd without completion",
		    sc->rq->request_id[0] != '\0' ? sc->rq->request_id : "-");
		server_request_done(sc->rq, MHD_REQUEST_TERMINATED_WITH_ERROR);
	}
	free(sc);
	*socket_context = NULL;
}
