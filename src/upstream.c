/*
 * upstream.c - the upstream thread: every transfer runs on one curl multi.
 *
 * Design (see ../shared/STACK-NOTES.md for the measurements behind it):
 *
 *   server threads --submit/post--> queue --wakeup--> upstream thread
 *   upstream thread --write callback--> rq->out --resume--> server thread
 *
 * - One thread owns the multi handle and every easy handle.  Server threads
 *   never touch curl: they link a request into the hand-over queue (each
 *   request at most once, with a bit set of commands) and wake the thread
 *   with curl_multi_wakeup() only when the queue goes from empty to
 *   non-empty.  The whole queue is taken under the lock in one step.
 * - The loop is curl_multi_poll() + curl_multi_perform(): for small
 *   requests it costs less CPU than socket_action, and it never showed the
 *   HTTP/2 stream errors socket_action did.
 * - Connections to the server side are resumed in a batch after
 *   curl_multi_perform() returns, never inside curl callbacks.
 * - Flow control: a streaming request keeps at most UPSTREAM_HIGH_WATER
 *   bytes (plus one curl buffer) for its client; beyond that the transfer
 *   is paused (CURL_WRITEFUNC_PAUSE) until the client has drained it below
 *   UPSTREAM_LOW_WATER and the server thread posts UNPAUSE.
 * - Timeouts libcurl cannot express are enforced by a sweep every 100 ms:
 *   first byte (from hand-over to response headers) and idle (silence
 *   between two upstream bytes, not counted while paused by a slow client).
 *   The same sweep notices clients that vanished while their connection was
 *   suspended (libmicrohttpd does not watch suspended sockets): a peek that
 *   sees EOF or an error aborts the transfer.
 * - Shutdown: upstream_stop() closes the queue (no new hand-over can
 *   suspend a connection after that), the thread aborts what is left,
 *   resumes every suspended connection and exits.
 */
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"
#include "relay.h"
#include "upstream.h"

#define UPSTREAM_SWEEP_NS	(100 * 1000000LL)
#define UPSTREAM_MAX_HEADERS	(64 * 1024)
#define UPSTREAM_CURL_BUFFER	(64 * 1024)

static struct {
	const struct config *cfg;
	CURLM *multi;
	pthread_t thread;
	bool running;

	pthread_mutex_t qlock;		/* protects the fields up to qtail */
	bool closed;
	struct request *qhead, *qtail;

	atomic_bool stopping;

	/* Upstream thread only. */
	struct request *xfers;		/* active transfers */
	struct request *resume;		/* connections to resume after perform */
	CURL **pool;			/* idle easy handles, reused */
	size_t npool, cappool;
	int64_t last_sweep;
} up = { .qlock = PTHREAD_MUTEX_INITIALIZER };

/* --- resume batch ------------------------------------------------------ */

/* Called with rq->lock held after clearing rq->suspended. */
void
upstream_want_resume(struct request *rq)
{
	rq->resume_next = up.resume;
	up.resume = rq;
}

static void
upstream_resume_batch(void)
{
	struct request *rq = up.resume, *next;

	up.resume = NULL;
	for (; rq != NULL; rq = next) {
		next = rq->resume_next;
		rq->resume_next = NULL;
		/* rq stays alive: its connection is suspended, so the server
		 * side cannot complete (and unref) it before this call. */
		MHD_resume_connection(rq->conn);
	}
}

/* --- curl callbacks (upstream thread, inside curl_multi_perform) -------- */

static bool
upstream_is_event_stream(const struct buf *h)
{
	const char *p = h->data, *end = h->data + h->len;

	while (p != NULL && p < end) {
		const char *name = p, *value = p + strlen(p) + 1;

		if (strcasecmp(name, "Content-Type") == 0)
			return strncasecmp(value, "text/event-stream", 17) == 0;
		p = value + strlen(value) + 1;
	}
	return false;
}

static void
upstream_headers_done(struct request *rq)
{
	long status = 0;

	curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 100 && status < 200)
		return;			/* interim response; the real one follows */
	rq->up_headers = true;
	pthread_mutex_lock(&rq->lock);
	rq->upstream_status = status;
	rq->headers_ready = true;
	rq->t_headers = request_now();
	bool sse = upstream_is_event_stream(&rq->resp_headers);
	rq->delivery = sse ? DELIVER_STREAMING : DELIVER_BUFFERED;
	if (rq->delivery == DELIVER_STREAMING && rq->suspended) {
		rq->suspended = false;
		upstream_want_resume(rq);
	}
	pthread_mutex_unlock(&rq->lock);
	relay_begin(rq, sse);
}

static size_t
upstream_header_cb(char *line, size_t size, size_t n, void *ud)
{
	struct request *rq = ud;
	size_t len = size * n, vlen;
	const char *colon, *v;

	if (rq->up_headers)
		return len;		/* trailers: not forwarded */
	rq->resp_hdr_bytes += len;
	if (rq->resp_hdr_bytes > UPSTREAM_MAX_HEADERS) {
		rq->up_hdr_overflow = true;
		return 0;
	}
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		/* A new header block (after a 1xx): only the last one counts.
		 * The server side reads resp_headers only after headers_ready. */
		buf_reset(&rq->resp_headers);
		return len;
	}
	if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
		upstream_headers_done(rq);
		return len;
	}
	colon = memchr(line, ':', len);
	if (colon == NULL || colon == line)
		return len;
	v = colon + 1;
	vlen = len - (size_t)(v - line);
	while (vlen > 0 && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
	    v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	/* A known length lets a buffered answer be collected in one block. */
	if ((size_t)(colon - line) == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
		unsigned long long clen = strtoull(v, NULL, 10);
		if (clen > 0 && clen <= UPSTREAM_BUFFER_MAX) {
			pthread_mutex_lock(&rq->lock);
			buf_reserve(&rq->out, (size_t)clen);
			pthread_mutex_unlock(&rq->lock);
		}
	}
	if (rq->resp_headers.cap == 0)
		buf_reserve(&rq->resp_headers, 1024);
	buf_append(&rq->resp_headers, line, (size_t)(colon - line));
	buf_append(&rq->resp_headers, "", 1);
	buf_append(&rq->resp_headers, v, vlen);
	buf_append(&rq->resp_headers, "", 1);
	return len;
}

static size_t
upstream_write_cb(char *data, size_t size, size_t n, void *ud)
{
	struct request *rq = ud;
	size_t len = size * n;
	int64_t now = request_now();

	rq->t_last_rx = now;
	pthread_mutex_lock(&rq->lock);
	if (rq->client_gone) {
		pthread_mutex_unlock(&rq->lock);
		return 0;		/* aborts the transfer */
	}
	if (rq->delivery == DELIVER_STREAMING &&
	    buf_avail(&rq->out) >= UPSTREAM_HIGH_WATER) {
		rq->paused = true;
		rq->unpause_posted = false;
		pthread_mutex_unlock(&rq->lock);
		return CURL_WRITEFUNC_PAUSE;	/* curl delivers it again later */
	}
	if (rq->t_first_byte == 0)
		rq->t_first_byte = now;
	pthread_mutex_unlock(&rq->lock);
	relay_data(rq, data, len);
	rq->bytes_in += len;
	return len;
}

/* --- transfers --------------------------------------------------------- */

/*
 * Easy handles are pooled and keep their per-process options between
 * transfers: curl_easy_reset() and setting twenty options again cost more
 * than the rest of the handle's work for a small request.  Only what
 * differs per request is set in upstream_easy_setup().
 */
static CURL *
upstream_easy_get(void)
{
	const struct config *cfg = up.cfg;
	CURL *e;

	if (up.npool > 0)
		return up.pool[--up.npool];
	if ((e = curl_easy_init()) == NULL)
		abort();
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, upstream_write_cb);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, upstream_header_cb);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)UPSTREAM_CURL_BUFFER);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Debian's libcurl-gnutls parses CAPATH on every TLS connection
	 * (20-25 ms of CPU); the bundle file alone costs a quarter of that. */
	if (cfg->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
	curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	return e;
}

static void
upstream_easy_put(CURL *e)
{
	if (up.npool == up.cappool) {
		size_t cap = up.cappool ? up.cappool * 2 : 64;
		CURL **p = realloc(up.pool, cap * sizeof(*p));

		if (p == NULL) {
			curl_easy_cleanup(e);
			return;
		}
		up.pool = p;
		up.cappool = cap;
	}
	up.pool[up.npool++] = e;
}

static void
upstream_easy_setup(struct request *rq, CURL *e)
{
	curl_easy_setopt(e, CURLOPT_URL, rq->upstream_url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, rq);
	/* The request's own configuration generation (SIGHUP reloads). */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)rq->cfg->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, rq->upstream_headers);
	if (strcmp(rq->route->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body.data ? rq->body.data : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body.len);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(e, CURLOPT_WRITEDATA, rq);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, rq);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, rq->up_errbuf);
}

static void
upstream_link(struct request *rq)
{
	rq->xfer_prev = NULL;
	rq->xfer_next = up.xfers;
	if (up.xfers != NULL)
		up.xfers->xfer_prev = rq;
	up.xfers = rq;
}

static void
upstream_unlink(struct request *rq)
{
	if (rq->xfer_prev != NULL)
		rq->xfer_prev->xfer_next = rq->xfer_next;
	else
		up.xfers = rq->xfer_next;
	if (rq->xfer_next != NULL)
		rq->xfer_next->xfer_prev = rq->xfer_prev;
	rq->xfer_prev = rq->xfer_next = NULL;
}

/*
 * Ends a request's upstream side: records the outcome, resumes its
 * connection if suspended and drops the upstream reference.  Also used for
 * requests that never started (shutdown, abort before start).
 */
static void
upstream_finish(struct request *rq, enum upstream_error err, const char *detail)
{
	if (rq->easy != NULL) {
		curl_multi_remove_handle(up.multi, rq->easy);
		upstream_unlink(rq);
		upstream_easy_put(rq->easy);
		rq->easy = NULL;
	}
	relay_end(rq, err == UPERR_NONE ? NULL : (detail ? detail : upstream_error_names[err]));
	pthread_mutex_lock(&rq->lock);
	rq->upstream_done = true;
	rq->t_done = request_now();
	if (err != UPERR_NONE && rq->error == UPERR_NONE) {
		rq->error = err;
		snprintf(rq->error_detail, sizeof(rq->error_detail), "%s",
		    detail ? detail : upstream_error_names[err]);
	}
	rq->headers_ready = true;
	if (rq->suspended) {
		rq->suspended = false;
		upstream_want_resume(rq);
	}
	pthread_mutex_unlock(&rq->lock);
	request_unref(rq);
}

static enum upstream_error
upstream_classify(struct request *rq, CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return UPERR_NONE;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return UPERR_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return rq->up_headers ? UPERR_IDLE_TIMEOUT : UPERR_CONNECT_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		return UPERR_TLS;
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_HTTP2:
		return UPERR_PROTOCOL;
	case CURLE_WRITE_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
		if (rq->up_hdr_overflow)
			return UPERR_TOO_LARGE;
		return UPERR_CLIENT_GONE;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2_STREAM:
		return UPERR_RESET;
	default:
		return UPERR_INTERNAL;
	}
}

static void
upstream_start_xfer(struct request *rq)
{
	CURL *e = upstream_easy_get();

	upstream_easy_setup(rq, e);
	rq->easy = e;
	rq->t_last_rx = request_now();
	upstream_link(rq);
	if (curl_multi_add_handle(up.multi, e) != CURLM_OK)
		upstream_finish(rq, UPERR_INTERNAL, "could not start the transfer");
}

static void
upstream_unpause(struct request *rq)
{
	if (rq->easy == NULL)
		return;
	pthread_mutex_lock(&rq->lock);
	bool was = rq->paused;
	rq->paused = false;
	rq->unpause_posted = false;
	pthread_mutex_unlock(&rq->lock);
	if (was)
		curl_easy_pause(rq->easy, CURLPAUSE_CONT);
}

/* Runs the commands queued since the last loop; takes the queue in one step. */
static void
upstream_take_queue(void)
{
	struct request *rq, *next;

	pthread_mutex_lock(&up.qlock);
	rq = up.qhead;
	up.qhead = up.qtail = NULL;
	/* Once unlocked, a request may be queued again (q_next reused), so
	 * the batch is walked through up_next and commands taken now. */
	for (struct request *p = rq; p != NULL; p = p->q_next) {
		p->up_next = p->q_next;
		p->up_cmds = p->q_cmds;
		p->q_cmds = 0;
		p->queued = false;
	}
	pthread_mutex_unlock(&up.qlock);

	for (; rq != NULL; rq = next) {
		unsigned cmds = rq->up_cmds;

		next = rq->up_next;
		rq->up_next = NULL;
		if (cmds & UPSTREAM_CMD_START) {
			if (cmds & UPSTREAM_CMD_ABORT)
				upstream_finish(rq, UPERR_CLIENT_GONE, NULL);
			else
				upstream_start_xfer(rq);
		} else if ((cmds & UPSTREAM_CMD_ABORT) && rq->easy != NULL) {
			upstream_finish(rq, UPERR_CLIENT_GONE, NULL);
		} else if (cmds & UPSTREAM_CMD_UNPAUSE) {
			upstream_unpause(rq);
		}
		request_unref(rq);	/* the queue's reference */
	}
}

static void
upstream_done_msgs(void)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(up.multi, &left)) != NULL) {
		struct request *rq = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		CURLcode rc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&rq);
		enum upstream_error err = upstream_classify(rq, rc);
		if (err == UPERR_CLIENT_GONE)
			upstream_finish(rq, err, NULL);
		else
			upstream_finish(rq, err, err == UPERR_NONE ? NULL :
			    curl_easy_strerror(rc));
	}
}

/* A suspended client whose socket reads EOF or an error has gone away. */
static bool
upstream_client_gone(struct request *rq)
{
	char c;
	ssize_t r;

	if (rq->client_fd < 0)
		return false;
	r = recv(rq->client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r == 0)
		return true;
	return r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void
upstream_sweep(int64_t now)
{
	struct request *rq, *next;

	for (rq = up.xfers; rq != NULL; rq = next) {
		const struct config *cfg = rq->cfg;

		next = rq->xfer_next;
		if (!rq->up_headers &&
		    now - rq->t_submit > (int64_t)cfg->first_byte_timeout_ms * 1000000) {
			upstream_finish(rq, UPERR_FIRST_BYTE_TIMEOUT,
			    "no answer from the upstream within first_byte_timeout");
			continue;
		}
		pthread_mutex_lock(&rq->lock);
		bool paused = rq->paused, suspended = rq->suspended;
		bool gone = suspended && upstream_client_gone(rq);
		if (gone)
			rq->client_gone = true;
		pthread_mutex_unlock(&rq->lock);
		if (gone) {
			upstream_finish(rq, UPERR_CLIENT_GONE, NULL);
			continue;
		}
		if (rq->up_headers && !paused &&
		    now - rq->t_last_rx > (int64_t)cfg->idle_timeout_ms * 1000000)
			upstream_finish(rq, UPERR_IDLE_TIMEOUT,
			    "upstream silent for longer than idle_timeout");
	}
}

/* Shutdown: fail what is queued, abort what runs, resume everything. */
static void
upstream_abort_all(void)
{
	upstream_take_queue();	/* queue is closed: nothing new arrives */
	while (up.xfers != NULL)
		upstream_finish(up.xfers, UPERR_SHUTDOWN, "the proxy is shutting down");
	upstream_resume_batch();
}

static void *
upstream_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&up.stopping)) {
		long timeout = -1;
		int running;

		curl_multi_timeout(up.multi, &timeout);
		if (timeout < 0 || timeout > 100)
			timeout = 100;
		curl_multi_poll(up.multi, NULL, 0, (int)timeout, NULL);
		upstream_take_queue();
		curl_multi_perform(up.multi, &running);
		upstream_done_msgs();
		int64_t now = request_now();
		if (now - up.last_sweep >= UPSTREAM_SWEEP_NS) {
			up.last_sweep = now;
			upstream_sweep(now);
		}
		upstream_resume_batch();
	}
	upstream_abort_all();
	return NULL;
}

/* --- API for the other threads ----------------------------------------- */

int
upstream_start(const struct config *cfg)
{
	up.cfg = cfg;
	up.multi = curl_multi_init();
	if (up.multi == NULL)
		return -1;
	/* The default connection cache (4x the added handles) churns
	 * connections under load; keep as many as we may have clients. */
	curl_multi_setopt(up.multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_connections);
	curl_multi_setopt(up.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	if (pthread_create(&up.thread, NULL, upstream_main, NULL) != 0)
		return -1;
	up.running = true;
	return 0;
}

/* Links rq into the queue with cmd; returns true if the queue was empty. */
static bool
upstream_enqueue_locked(struct request *rq, unsigned cmd)
{
	bool was_empty = up.qhead == NULL;

	rq->q_cmds |= cmd;
	if (rq->queued)
		return false;
	request_ref(rq);		/* the queue's reference */
	rq->queued = true;
	rq->q_next = NULL;
	if (up.qtail != NULL)
		up.qtail->q_next = rq;
	else
		up.qhead = rq;
	up.qtail = rq;
	return was_empty;
}

int
upstream_submit(struct request *rq)
{
	bool wake;

	pthread_mutex_lock(&up.qlock);
	if (up.closed) {
		pthread_mutex_unlock(&up.qlock);
		return -1;
	}
	pthread_mutex_lock(&rq->lock);
	rq->suspended = true;
	MHD_suspend_connection(rq->conn);
	pthread_mutex_unlock(&rq->lock);
	request_ref(rq);		/* the transfer's reference */
	rq->t_submit = request_now();
	wake = upstream_enqueue_locked(rq, UPSTREAM_CMD_START);
	pthread_mutex_unlock(&up.qlock);
	if (wake)
		curl_multi_wakeup(up.multi);
	return 0;
}

void
upstream_post(struct request *rq, unsigned cmd)
{
	bool wake;

	pthread_mutex_lock(&up.qlock);
	if (up.closed) {
		pthread_mutex_unlock(&up.qlock);
		return;
	}
	wake = upstream_enqueue_locked(rq, cmd);
	pthread_mutex_unlock(&up.qlock);
	if (wake)
		curl_multi_wakeup(up.multi);
}

void
upstream_stop(void)
{
	if (!up.running)
		return;
	pthread_mutex_lock(&up.qlock);
	up.closed = true;
	pthread_mutex_unlock(&up.qlock);
	atomic_store(&up.stopping, true);
	curl_multi_wakeup(up.multi);
	pthread_join(up.thread, NULL);
	up.running = false;
	for (size_t i = 0; i < up.npool; i++)
		curl_easy_cleanup(up.pool[i]);
	free(up.pool);
	up.pool = NULL;
	up.npool = up.cappool = 0;
	curl_multi_cleanup(up.multi);
	up.multi = NULL;
}
