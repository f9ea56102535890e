/*
 * metrics_http.c - the metrics listener: GET /metrics, /healthz and
 * /readyz on their own address ([server] metrics_listen).
 *
 * Why a second listener: /metrics needs no key, and the proxy's listen
 * address often has to face clients.  With metrics_listen set, Prometheus
 * scrapes a private address (or loopback) and server.c answers /metrics on
 * the main listener like any unknown path (404 in the OpenAI error shape).
 * /healthz and /readyz are served here too, with the same answers as on
 * the main listener, so that probes may use either address.
 *
 * Shape, kept small on purpose:
 *   - a libmicrohttpd daemon of its own with one internal thread (epoll):
 *     every answer is built synchronously in the access handler from
 *     metrics_render() or the readiness verdict, and nothing here waits on
 *     another thread, so there is no suspend/resume, no thread pool and no
 *     per-request state (con_cls holds a static marker between the first
 *     call and the last; a request body is read and dropped);
 *   - at most METRICS_HTTP_CONN_LIMIT connections, closed after
 *     METRICS_HTTP_TIMEOUT_S idle seconds: scrapers and probes are few, and
 *     this listener must not eat into the descriptors that max_connections
 *     counts on (main_fd_budget() keeps 256 spare);
 *   - plain HTTP, even when listen speaks HTTPS: a scrape on a private
 *     address is plain HTTP by custom (Prometheus' default scheme), and a
 *     certificate for an internal address is rarely at hand.  Who needs
 *     TLS or authentication for metrics puts a reverse proxy in front;
 *   - these requests are not counted in whyops_requests_total (a scrape
 *     does not change what it measures) and carry no X-Request-Id.
 *
 * Threads: metrics_http_start() and metrics_http_stop() on the main
 * thread; the callbacks on the daemon's thread.  Lifetime: started after
 * server_start() (metrics_init() has run), stopped before server_stop()
 * (metrics_free()).  The address is fixed at start-up; a reload that
 * changes it is logged as needing a restart (main.c).
 */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apierr.h"
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "route.h"
#include "server.h"

#define METRICS_HTTP_CONN_LIMIT	64
#define METRICS_HTTP_TIMEOUT_S	30

static struct {
	struct MHD_Daemon *daemon;
	int listen_fd;
	unsigned port;
} mhttp = { .listen_fd = -1 };

/* Queues body (freed by libmicrohttpd) with status and content type. */
static enum MHD_Result
metrics_http_reply(struct MHD_Connection *c, unsigned status,
    const char *ctype, char *body, size_t len, const char *allow)
{
	struct MHD_Response *resp = server_buffer_response(body, len, ctype);
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	if (allow != NULL)
		MHD_add_response_header(resp, "Allow", allow);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
metrics_http_error(struct MHD_Connection *c, unsigned status,
    const char *code, const char *msg, const char *allow)
{
	size_t len;
	char *body = apierr_body(API_OPENAI, status, code, msg, &len);

	return metrics_http_reply(c, status, "application/json", body, len, allow);
}

static enum MHD_Result
metrics_http_answer(struct MHD_Connection *c, const char *method,
    const char *url)
{
	const struct route *r = NULL;
	enum route_match_result m = route_match(method, url, &r);
	struct buf b = { 0 };
	unsigned status;
	size_t len;
	char *body;

	if (m == ROUTE_NOT_FOUND || r->upstream)
		return metrics_http_error(c, 404, "not_found", "unknown path: "
		    "this listener serves /metrics, /healthz and /readyz", NULL);
	if (m == ROUTE_BAD_METHOD)
		return metrics_http_error(c, 405, "method_not_allowed",
		    "only GET and HEAD are allowed here", "GET, HEAD");
	switch (r->ep) {
	case EP_METRICS:
		metrics_render(&b);
		body = buf_steal(&b, &len);
		return metrics_http_reply(c, 200, METRICS_CONTENT_TYPE, body, len,
		    NULL);
	case EP_READYZ:
		body = server_readyz_body(&status, &len);
		return metrics_http_reply(c, status, "application/json", body, len,
		    NULL);
	default:
		body = strdup("{\"status\":\"ok\"}");
		if (body == NULL)
			abort();
		return metrics_http_reply(c, 200, "application/json", body,
		    strlen(body), NULL);
	}
}

static enum MHD_Result
metrics_http_access_cb(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static int marker;

	(void)cls;
	(void)version;
	(void)upload_data;
	/* Answer once the whole request has been read: libmicrohttpd closes
	 * a connection whose answer went out before its body was read. */
	if (*con_cls == NULL) {
		*con_cls = &marker;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	return metrics_http_answer(c, method, url);
}

int
metrics_http_start(const struct config *cfg)
{
	char addr[64];

	if (cfg->metrics_listen_host == NULL)
		return 0;
	mhttp.listen_fd = server_listen_socket("metrics_listen",
	    cfg->metrics_listen_host, cfg->metrics_listen_port);
	if (mhttp.listen_fd < 0)
		return -1;
	/* MHD_USE_ITC: MHD_stop_daemon() wakes the thread through it. */
	mhttp.daemon = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD |
	    MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    metrics_http_access_cb, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, server_mhd_log, " (metrics_listen)",
	    MHD_OPTION_LISTEN_SOCKET, mhttp.listen_fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONN_LIMIT,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT_S,
	    MHD_OPTION_END);
	if (mhttp.daemon == NULL) {
		log_error("could not start the metrics listener");
		close(mhttp.listen_fd);
		mhttp.listen_fd = -1;
		return -1;
	}
	mhttp.port = server_socket_name(mhttp.listen_fd, addr, sizeof(addr));
	log_info("metrics listener on http://%s (/metrics, /healthz, /readyz; "
	    "%u connections)", addr, METRICS_HTTP_CONN_LIMIT);
	return 0;
}

unsigned
metrics_http_port(void)
{
	return mhttp.port;
}

void
metrics_http_stop(void)
{
	if (mhttp.daemon == NULL)
		return;
	/* Not MHD_quiesce_daemon(): it races with the daemon's own thread in
	 * 0.9.75 (server_daemon.c, server_quiesce()).  MHD_stop_daemon()
	 * closes the listening socket it was given. */
	MHD_stop_daemon(mhttp.daemon);
	mhttp.daemon = NULL;
	mhttp.listen_fd = -1;
	mhttp.port = 0;
}
