/*
 * request.h - one proxied call, shared by the server and upstream threads.
 *
 * A struct request is created by the server (libmicrohttpd) thread on the
 * first callback of a request and lives until both sides let go of it:
 *
 *   server side    holds a reference from creation until libmicrohttpd's
 *                  completion callback (the client connection is done);
 *   upstream side  holds a reference from the hand-over (upstream_submit)
 *                  until its curl transfer is removed from the multi handle.
 *
 * The last request_unref() completes the request: it writes the log line and
 * hands the request to the completion hook, then frees it.
 *
 * Field ownership:
 *   - "immutable" fields are written by the server thread before the
 *     hand-over and only read afterwards;
 *   - "upstream" fields are touched by the upstream thread only;
 *   - "shared" fields are read and written under rq->lock by both threads.
 * No shared field is a bit-field: two threads must never write the same
 * memory word through different flags (TSan found exactly that in an
 * earlier relay of this shape).
 */
#ifndef WHYOPS_REQUEST_H
#define WHYOPS_REQUEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "llm.h"
#include "config.h"
#include "route.h"

#include <curl/curl.h>

struct MHD_Connection;
struct MHD_Response;
struct decoder;

/* Own upstream header nodes: the allowlist's eight names plus two defaults. */
#define REQUEST_MAX_HDR_NODES 10

/* Why an upstream transfer ended without a complete answer. */
enum upstream_error {
	UPERR_NONE,
	UPERR_CONNECT,		/* 502: refused, unreachable, DNS */
	UPERR_TLS,		/* 502: handshake or certificate verification */
	UPERR_PROTOCOL,		/* 502: not an HTTP answer */
	UPERR_RESET,		/* 502: connection reset or closed early */
	UPERR_CONNECT_TIMEOUT,	/* 504 */
	UPERR_FIRST_BYTE_TIMEOUT, /* 504 */
	UPERR_IDLE_TIMEOUT,	/* mid-stream silence */
	UPERR_TOO_LARGE,	/* upstream headers beyond the proxy's limit */
	UPERR_CLIENT_GONE,	/* aborted because the client disconnected */
	UPERR_SHUTDOWN,		/* aborted by shutdown */
	UPERR_INTERNAL,
	UPERR_COUNT,
};

extern const char *const upstream_error_names[];

/* How the answer reaches the client. */
enum delivery {
	DELIVER_PENDING,	/* headers not known yet */
	DELIVER_BUFFERED,	/* whole body collected, then one send */
	DELIVER_STREAMING,	/* forwarded as it arrives */
};

struct request {
	/* --- immutable after hand-over --- */
	const struct config *cfg;
	const struct route *route;
	const struct apikey *key;
	const struct provider *provider;
	struct MHD_Connection *conn;
	int client_fd;
	char request_id[132];
	char method[8];
	char *raw_uri;			/* request target as received (query string) */
	char *path;			/* as requested, for logs */
	char *model;			/* requested model (from the body), or NULL */
	char *upstream_model;		/* as sent upstream (slug removed) */
	char *upstream_url;
	struct curl_slist *upstream_headers;	/* hdr_nodes + provider tail */
	struct curl_slist hdr_nodes[REQUEST_MAX_HDR_NODES];
	size_t hdr_offsets[REQUEST_MAX_HDR_NODES];
	size_t nhdr_nodes;
	struct buf hdr_text;		/* "Name: value\0" of hdr_nodes */
	struct buf body;		/* request body; read by curl after hand-over */
	int64_t t_start;		/* monotonic ns: first callback */
	int64_t start_unix_ms;		/* wall clock at the same moment */
	char *agent_name;		/* X-Agent-Name, or NULL */
	char *external_user_id;		/* X-External-User-Id, or NULL */
	bool stream_requested;		/* body has "stream": true */
	char trace_id[129];		/* trace.h */
	int trace_source;		/* enum trace_source */
	bool sign;			/* mark the answer (mark.c) */
	char *sig;			/* the encoded signature, when sign */
	size_t sig_len;
	bool usage_forced;		/* proxy set stream_options.include_usage */
	int64_t t_submit;		/* hand-over to the upstream thread */

	/* --- server thread only --- */
	unsigned client_status;		/* status the client got */
	bool answered;			/* a response has been queued */
	bool dispatched;		/* handed to the upstream thread */
	bool body_too_large;		/* body beyond max_body_size: dropped */
	bool defer;			/* first call: prepare answers, queue later */
	struct MHD_Response *pending;	/* answer prepared in the first call */
	size_t bytes_out;		/* body bytes given to libmicrohttpd */
	bool stream_open;		/* counted in whyops_open_streams */

	/* --- upstream thread only --- */
	void *easy;			/* CURL * */
	struct request *xfer_prev, *xfer_next;	/* active transfer list */
	struct request *resume_next;	/* batch of connections to resume */
	int64_t t_last_rx;		/* last upstream byte, monotonic ns */
	size_t resp_hdr_bytes;
	size_t bytes_in;		/* upstream body bytes received */
	unsigned up_cmds;		/* commands taken from the queue */
	struct request *up_next;	/* batch taken from the queue */
	bool up_headers;		/* final response headers seen */
	bool up_hdr_overflow;		/* headers beyond UPSTREAM_MAX_HEADERS */
	char up_errbuf[256];		/* CURLOPT_ERRORBUFFER */
	struct decoder *dec;		/* event streams: decoded as they pass */
	struct buf pend;		/* received, not yet forwarded (relay.c) */
	uint64_t pend_base;		/* body offset of pend's first byte */
	int64_t t_first_token;		/* first content, reasoning or tool call */
	struct llm_result *result;	/* decoder's result once finished */
	bool marked;			/* stream: the signature went out */
	long long mark_oi, mark_ci;	/* Responses: the marked output_text */
	long long mark_text_block;	/* Anthropic: first text block, or -1 */
	long long mark_nblocks;		/* Anthropic: content blocks seen */
	char *orig_out;			/* document before marking, for the record */
	size_t orig_out_len;

	/* --- shared, under lock --- */
	pthread_mutex_t lock;
	bool suspended;			/* we suspended the MHD connection */
	bool headers_ready;		/* status + headers known, or failed */
	bool upstream_done;		/* transfer over (success or error) */
	bool paused;			/* curl receive paused: client is slow */
	bool unpause_posted;
	bool client_gone;
	enum delivery delivery;
	enum upstream_error error;
	char error_detail[160];		/* curl's message, never secrets */
	long upstream_status;
	struct buf resp_headers;	/* "Name\0Value\0" pairs, as received */
	struct buf out;			/* body bytes waiting for the client */
	int64_t t_headers;		/* upstream response headers complete */
	int64_t t_first_byte;		/* first upstream body byte */
	int64_t t_done;

	/* --- hand-over queue, under the upstream queue lock --- */
	struct request *q_next;
	bool queued;
	unsigned q_cmds;		/* UPSTREAM_CMD_* bits */

	atomic_int refs;
};

struct request *request_new(const struct config *cfg);
void request_ref(struct request *rq);
void request_unref(struct request *rq);

/* Monotonic clock in nanoseconds. */
int64_t request_now(void);

/* Generates a request id ("req_" + 24 base62 characters) into out. */
void request_make_id(char *out, size_t outlen);

#endif
