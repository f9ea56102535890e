/*
 * sink_redis.c - the Redis Streams sink (see sink_redis.h).
 *
 * Threads: everything here runs on the dispatcher thread (sink.h); the
 * hiredis context is that thread's alone, so nothing locks.  A slow or
 * dead Redis delays telemetry only, never a request.
 *
 * A batch.  write() appends one XADD per line to the context's output
 * buffer (redisAppendCommandArgv: binary-safe, no formatting of the line),
 * sends the buffer and then reads one reply per command, in order: one
 * round trip per batch instead of one per event.  It returns how many
 * lines, from the first, got an entry id back.  An error reply stops that
 * count (the contract is a prefix) but the remaining replies are still
 * read, so the connection stays in step; the entries written after an
 * error are then reported as not written and may be written again by a
 * caller that retries them: delivery is at least once, and every event
 * carries its eventId for consumers to drop duplicates.  The same holds
 * for a batch cut by a timeout: Redis may still apply the commands it
 * received.
 *
 * Time.  The whole batch (sending and every reply) must finish within
 * timeout_ms: before each wait on the socket the socket timeout
 * (redisSetTimeout: SO_SNDTIMEO and SO_RCVTIMEO) is set to what is left of
 * it, and replies already buffered are taken without a system call.  A
 * connect (TCP or unix socket), then AUTH and SELECT when configured, each
 * wait at most timeout_ms too.
 *
 * Failure and reconnection.  An I/O error, a timeout, a protocol error or
 * a reply that says the connection is no use (NOAUTH, READONLY, LOADING,
 * MASTERDOWN) closes the context; the sink is then down.  While down,
 * write() returns 0 at once, without I/O, until the backoff has run out;
 * the next write() (or sink_redis_poll()) then tries one connect.  The
 * backoff starts at SINK_REDIS_BACKOFF_MIN_MS and doubles after every
 * failed attempt up to SINK_REDIS_BACKOFF_MAX_MS; each wait is drawn from
 * [backoff/2, backoff] ("equal jitter") so that several proxies do not
 * reconnect in lockstep after a Redis restart.  A success resets it.
 *
 * Logging: one line per state change - connected, cannot connect (the
 * first attempt failed), connection lost, reconnected (with the attempts
 * and the events not written meanwhile) - never one per event or per
 * attempt.  Error replies on a working connection are logged at once and
 * then at most once per SINK_REDIS_LOG_INTERVAL_MS with a count.  The
 * password is never logged.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "events.h"
#include "log.h"
#include "sink.h"
#include "sink_redis.h"

#define SINK_REDIS_BACKOFF_MIN_MS	100
#define SINK_REDIS_BACKOFF_MAX_MS	5000
#define SINK_REDIS_TIMEOUT_MS		1000	/* when the config says 0 */
#define SINK_REDIS_LOG_INTERVAL_MS	10000
#define SINK_REDIS_DEFAULT_PORT		6379
#define SINK_REDIS_ARGC_MAX		8

enum sink_redis_state {
	SINK_REDIS_INIT,	/* no attempt yet */
	SINK_REDIS_UP,
	SINK_REDIS_DOWN,
};

struct sink_redis {
	/* configuration */
	char *addr;			/* as configured, for the logs */
	char *host;			/* TCP, or NULL */
	int port;
	char *path;			/* unix socket, or NULL */
	char *user, *password;		/* NULL when not set */
	int db;
	char *stream;
	char maxlen[24];
	unsigned timeout_ms;

	/* the XADD, argv[argc - 1] being the line */
	const char *argv[SINK_REDIS_ARGC_MAX];
	size_t argvlen[SINK_REDIS_ARGC_MAX];
	int argc;

	redisContext *c;		/* NULL while down */
	long armed_ms;			/* the socket timeout set on c */
	enum sink_redis_state state;
	unsigned backoff_ms;		/* the next wait's upper bound */
	int64_t retry_ms;		/* monotonic time of the next attempt */
	uint64_t attempts;		/* failed since the sink went down */
	uint64_t down_lines;		/* not written since it went down */
	uint64_t rng;

	/* error replies on a working connection */
	bool replies_failing;
	uint64_t replies_unlogged;
	int64_t replies_logged_ms;

	struct sink_redis_stats st;
};

static int64_t
sink_redis_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *
sink_redis_strdup(const char *s)
{
	char *d;

	if (s == NULL || s[0] == '\0')
		return NULL;
	d = strdup(s);
	if (d == NULL) {
		fprintf(stderr, "sink_redis: out of memory\n");
		abort();
	}
	return d;
}

static struct timeval
sink_redis_tv(long ms)
{
	return (struct timeval){ .tv_sec = ms / 1000,
	    .tv_usec = (ms % 1000) * 1000 };
}

/* xorshift64*: the jitter needs no quality, only no shared state. */
static uint64_t
sink_redis_rand(struct sink_redis *r)
{
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return r->rng * 0x2545f4914f6cdd1dull;
}

/*
 * Splits addr into r->path, or r->host and r->port: "/path", "host",
 * "host:port", "[v6]" or "[v6]:port".  0, or -1 (the caller logs: the
 * configuration parser reports it as FILE:LINE).
 */
static int
sink_redis_parse_addr(struct sink_redis *r, const char *addr)
{
	const char *host = addr, *colon, *end;
	char *stop;
	long port = SINK_REDIS_DEFAULT_PORT;
	size_t hlen;

	if (addr[0] == '/') {
		r->path = sink_redis_strdup(addr);
		return 0;
	}
	if (addr[0] == '[') {
		host = addr + 1;
		end = strchr(host, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			goto bad;
		colon = end[1] == ':' ? end + 1 : NULL;
	} else {
		colon = strchr(addr, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			goto bad;	/* a bare IPv6 address */
		end = colon != NULL ? colon : addr + strlen(addr);
	}
	if (colon != NULL) {
		errno = 0;
		port = strtol(colon + 1, &stop, 10);
		if (colon[1] < '0' || colon[1] > '9' || *stop != '\0' ||
		    errno != 0 || port < 1 || port > 65535)
			goto bad;
	}
	hlen = (size_t)(end - host);
	if (hlen == 0)
		goto bad;
	r->host = strndup(host, hlen);
	if (r->host == NULL) {
		fprintf(stderr, "sink_redis: out of memory\n");
		abort();
	}
	r->port = (int)port;
	return 0;
bad:
	return -1;
}

int
sink_redis_check_addr(const char *addr)
{
	struct sink_redis r;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = sink_redis_parse_addr(&r, addr);
	free(r.host);
	free(r.path);
	return rc;
}

static void
sink_redis_free(struct sink_redis *r)
{
	if (r == NULL)
		return;
	if (r->c != NULL)
		redisFree(r->c);
	free(r->addr);
	free(r->host);
	free(r->path);
	free(r->user);
	if (r->password != NULL)
		explicit_bzero(r->password, strlen(r->password));
	free(r->password);
	free(r->stream);
	free(r);
}

/* ---- connection ------------------------------------------------------- */

/* The socket timeout for the next wait: what is left until deadline_ms.
 * 0, or -1 when the time is up. */
static int
sink_redis_arm(struct sink_redis *r, int64_t deadline_ms)
{
	int64_t left = deadline_ms - sink_redis_now_ms();

	if (left <= 0)
		return -1;
	if (left != r->armed_ms) {
		if (redisSetTimeout(r->c, sink_redis_tv((long)left)) !=
		    REDIS_OK)
			return -1;
		r->armed_ms = (long)left;
	}
	return 0;
}

/* Why the context failed, for the logs: hiredis says "Resource
 * temporarily unavailable" when a socket timeout ran out. */
static const char *
sink_redis_errstr(struct sink_redis *r, char *buf, size_t size)
{
	if (r->c == NULL)
		return "no connection";
	if (r->c->err == REDIS_ERR_IO &&
	    (errno == EAGAIN || errno == EWOULDBLOCK)) {
		snprintf(buf, size, "timed out (%u ms)", r->timeout_ms);
		return buf;
	}
	return r->c->errstr[0] ? r->c->errstr : "connection error";
}

/* Why a batch failed: the batch deadline, or the context's error. */
static void
sink_redis_failure(struct sink_redis *r, bool timed_out, char *why,
    size_t size)
{
	char buf[64];

	if (timed_out)
		snprintf(why, size, "timed out (%u ms)", r->timeout_ms);
	else
		snprintf(why, size, "%s", sink_redis_errstr(r, buf,
		    sizeof(buf)));
}

/* Runs one command while connecting (AUTH, SELECT); 0 when it answered
 * +OK, else -1 with the reason in why. */
static int
sink_redis_setup_cmd(struct sink_redis *r, int argc, const char **argv,
    char *why, size_t size)
{
	redisReply *reply;
	char buf[64];
	int rc = -1;

	reply = redisCommandArgv(r->c, argc, argv, NULL);
	if (reply == NULL) {
		snprintf(why, size, "%s: %s", argv[0],
		    sink_redis_errstr(r, buf, sizeof(buf)));
		return -1;
	}
	if (reply->type == REDIS_REPLY_STATUS &&
	    strcmp(reply->str, "OK") == 0)
		rc = 0;
	else
		snprintf(why, size, "%s: %s", argv[0],
		    reply->type == REDIS_REPLY_ERROR ? reply->str :
		    "unexpected reply");
	freeReplyObject(reply);
	return rc;
}

/* One connect: the socket, then AUTH and SELECT.  0, or -1 with the
 * context freed and the reason in why. */
static int
sink_redis_connect(struct sink_redis *r, char *why, size_t size)
{
	struct timeval tv = sink_redis_tv((long)r->timeout_ms);
	const char *argv[3];
	char db[16], buf[64];

	r->c = r->path != NULL ? redisConnectUnixWithTimeout(r->path, tv) :
	    redisConnectWithTimeout(r->host, r->port, tv);
	if (r->c == NULL) {
		snprintf(why, size, "out of memory");
		return -1;
	}
	if (r->c->err) {
		snprintf(why, size, "%s", sink_redis_errstr(r, buf,
		    sizeof(buf)));
		goto fail;
	}
	if (redisSetTimeout(r->c, tv) != REDIS_OK) {
		snprintf(why, size, "cannot set the timeout: %s",
		    sink_redis_errstr(r, buf, sizeof(buf)));
		goto fail;
	}
	r->armed_ms = (long)r->timeout_ms;
	if (r->path == NULL)
		(void)redisEnableKeepAlive(r->c);
	if (r->password != NULL) {
		argv[0] = "AUTH";
		argv[1] = r->user != NULL ? r->user : r->password;
		argv[2] = r->password;
		if (sink_redis_setup_cmd(r, r->user != NULL ? 3 : 2, argv,
		    why, size) < 0)
			goto fail;
	}
	if (r->db != 0) {
		snprintf(db, sizeof(db), "%d", r->db);
		argv[0] = "SELECT";
		argv[1] = db;
		if (sink_redis_setup_cmd(r, 2, argv, why, size) < 0)
			goto fail;
	}
	return 0;
fail:
	redisFree(r->c);
	r->c = NULL;
	return -1;
}

/* Schedules the next attempt: a wait in [backoff/2, backoff], then the
 * backoff doubles (capped). */
static void
sink_redis_schedule(struct sink_redis *r)
{
	unsigned half = r->backoff_ms / 2;

	r->retry_ms = sink_redis_now_ms() + half +
	    (int64_t)(sink_redis_rand(r) % (half + 1));
	r->backoff_ms = r->backoff_ms >= SINK_REDIS_BACKOFF_MAX_MS / 2 ?
	    SINK_REDIS_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* Drops the connection (if any) after a failure; logs the first. */
static void
sink_redis_down(struct sink_redis *r, const char *why)
{
	if (r->state == SINK_REDIS_UP)
		log_warn("events: redis %s: connection lost: %s "
		    "(reconnecting with backoff)", r->addr, why);
	else if (r->state == SINK_REDIS_INIT)
		log_warn("events: redis %s: cannot connect: %s (retrying "
		    "with backoff; meanwhile events go to the spool when one "
		    "is configured)", r->addr, why);
	if (r->state != SINK_REDIS_DOWN) {
		r->state = SINK_REDIS_DOWN;
		r->attempts = 0;
		r->down_lines = 0;
		r->backoff_ms = SINK_REDIS_BACKOFF_MIN_MS;
	}
	if (r->c != NULL) {
		redisFree(r->c);
		r->c = NULL;
	}
	sink_redis_schedule(r);
}

/* Connected afterwards?  Tries to connect when down and due. */
static bool
sink_redis_ensure(struct sink_redis *r)
{
	char why[256];

	if (r->c != NULL)
		return true;
	if (r->state == SINK_REDIS_DOWN && sink_redis_now_ms() < r->retry_ms)
		return false;
	if (sink_redis_connect(r, why, sizeof(why)) < 0) {
		r->st.connect_failures++;
		r->attempts++;
		sink_redis_down(r, why);
		return false;
	}
	r->st.connects++;
	if (r->state == SINK_REDIS_DOWN)
		log_info("events: redis %s: reconnected after %" PRIu64
		    " failed attempts (%" PRIu64 " events not written "
		    "meanwhile)", r->addr, r->attempts, r->down_lines);
	else
		log_info("events: redis %s: connected, stream %s", r->addr,
		    r->stream);
	r->state = SINK_REDIS_UP;
	r->backoff_ms = SINK_REDIS_BACKOFF_MIN_MS;
	return true;
}

/* ---- the sink operations ---------------------------------------------- */

static int
sink_redis_open_events(struct sink *s, const struct events_config *cfg)
{
	log_error("events: the redis sink is opened with sink_redis_open()");
	return -1;
}

int
sink_redis_open(struct sink *s, const struct sink_redis_config *cfg)
{
	struct sink_redis *r;
	int i;

	if (cfg->addr == NULL || cfg->addr[0] == '\0' ||
	    cfg->stream == NULL || cfg->stream[0] == '\0') {
		log_error("events: the redis sink needs an address and a "
		    "stream");
		return -1;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		fprintf(stderr, "sink_redis: out of memory\n");
		abort();
	}
	if (sink_redis_parse_addr(r, cfg->addr) < 0) {
		log_error("events: redis address \"%s\" is not host:port, "
		    "[address]:port or /unix/socket/path", cfg->addr);
		sink_redis_free(r);
		return -1;
	}
	r->addr = sink_redis_strdup(cfg->addr);
	r->user = sink_redis_strdup(cfg->user);
	r->password = sink_redis_strdup(cfg->password);
	r->stream = sink_redis_strdup(cfg->stream);
	r->db = cfg->db;
	r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms :
	    SINK_REDIS_TIMEOUT_MS;
	r->rng = ((uint64_t)sink_redis_now_ms() << 20) ^
	    (uint64_t)getpid() ^ (uint64_t)(uintptr_t)r;
	if (r->rng == 0)
		r->rng = 1;
	r->backoff_ms = SINK_REDIS_BACKOFF_MIN_MS;
	r->argv[r->argc++] = "XADD";
	r->argv[r->argc++] = r->stream;
	if (cfg->maxlen > 0) {
		snprintf(r->maxlen, sizeof(r->maxlen), "%lu", cfg->maxlen);
		r->argv[r->argc++] = "MAXLEN";
		r->argv[r->argc++] = "~";
		r->argv[r->argc++] = r->maxlen;
	}
	r->argv[r->argc++] = "*";
	r->argv[r->argc++] = "payload";
	r->argc++;			/* the line */
	for (i = 0; i < r->argc - 1; i++)
		r->argvlen[i] = strlen(r->argv[i]);
	s->ops = &sink_redis_ops;
	s->priv = r;
	(void)sink_redis_ensure(r);
	return 0;
}

/* Sends everything appended; 0, or -1 (the context has the error, or the
 * time ran out: *timed_out). */
static int
sink_redis_send(struct sink_redis *r, int64_t deadline_ms, bool *timed_out)
{
	int done = 0;

	while (!done) {
		if (sink_redis_arm(r, deadline_ms) < 0) {
			*timed_out = true;
			return -1;
		}
		if (redisBufferWrite(r->c, &done) != REDIS_OK)
			return -1;
	}
	return 0;
}

/* The next reply, from the buffer or the socket; like sink_redis_send. */
static int
sink_redis_reply(struct sink_redis *r, int64_t deadline_ms,
    redisReply **reply, bool *timed_out)
{
	void *p = NULL;

	for (;;) {
		if (redisGetReplyFromReader(r->c, &p) != REDIS_OK)
			return -1;
		if (p != NULL) {
			*reply = p;
			return 0;
		}
		if (sink_redis_arm(r, deadline_ms) < 0) {
			*timed_out = true;
			return -1;
		}
		if (redisBufferRead(r->c) != REDIS_OK)
			return -1;
	}
}

/* An error reply that means this connection cannot write: reconnect. */
static bool
sink_redis_reply_fatal(const char *err)
{
	static const char *const prefixes[] = {
		"NOAUTH", "WRONGPASS", "READONLY", "LOADING", "MASTERDOWN",
	};
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(err, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static void
sink_redis_log_reply_errors(struct sink_redis *r, uint64_t n,
    const char *err)
{
	int64_t now = sink_redis_now_ms();

	r->replies_unlogged += n;
	if (r->replies_failing &&
	    now - r->replies_logged_ms < SINK_REDIS_LOG_INTERVAL_MS)
		return;
	log_error("events: redis %s: XADD %s: %s (%" PRIu64 " events not "
	    "written)", r->addr, r->stream, err, r->replies_unlogged);
	r->replies_failing = true;
	r->replies_unlogged = 0;
	r->replies_logged_ms = now;
}

/*
 * Reads the n replies of a batch.  Returns the count of entry ids before
 * the first error; *lost says the connection failed (why in why).
 */
static size_t
sink_redis_read_replies(struct sink_redis *r, size_t n, int64_t deadline,
    bool *lost, char *why, size_t size)
{
	redisReply *reply;
	size_t i, ok = 0, errors = 0;
	bool prefix = true, timed_out = false, fatal = false;
	char err[128] = "";

	for (i = 0; i < n; i++) {
		if (sink_redis_reply(r, deadline, &reply, &timed_out) < 0) {
			*lost = true;
			sink_redis_failure(r, timed_out, why, size);
			break;
		}
		if (reply->type == REDIS_REPLY_STRING) {
			if (prefix)
				ok++;
		} else {
			prefix = false;
			errors++;
			if (err[0] == '\0')
				snprintf(err, sizeof(err), "%s",
				    reply->type == REDIS_REPLY_ERROR ?
				    reply->str : "unexpected reply");
			if (reply->type == REDIS_REPLY_ERROR &&
			    sink_redis_reply_fatal(reply->str))
				fatal = true;
		}
		freeReplyObject(reply);
	}
	r->st.error_replies += errors;
	if (errors > 0)
		sink_redis_log_reply_errors(r, n - ok, err);
	if (fatal && !*lost) {
		*lost = true;
		snprintf(why, size, "%s", err);
	}
	return ok;
}

static int
sink_redis_write(struct sink *s, char *const *lines, const size_t *lens,
    size_t n)
{
	struct sink_redis *r = s->priv;
	int64_t deadline;
	bool lost = false, timed_out = false;
	char why[160];
	size_t i, ok = 0;

	if (n == 0)
		return 0;
	if (!sink_redis_ensure(r))
		goto out;
	deadline = sink_redis_now_ms() + r->timeout_ms;
	for (i = 0; i < n; i++) {
		r->argv[r->argc - 1] = lines[i];
		r->argvlen[r->argc - 1] = lens[i];
		if (redisAppendCommandArgv(r->c, r->argc, r->argv,
		    r->argvlen) != REDIS_OK) {
			fprintf(stderr, "sink_redis: out of memory\n");
			abort();
		}
	}
	if (sink_redis_send(r, deadline, &timed_out) < 0) {
		lost = true;
		sink_redis_failure(r, timed_out, why, sizeof(why));
	} else {
		ok = sink_redis_read_replies(r, n, deadline, &lost, why,
		    sizeof(why));
	}
	if (lost)
		sink_redis_down(r, why);
	else if (ok == n && r->replies_failing) {
		if (r->replies_unlogged > 0)
			log_info("events: redis %s: XADD works again (%"
			    PRIu64 " more events not written before)",
			    r->addr, r->replies_unlogged);
		else
			log_info("events: redis %s: XADD works again",
			    r->addr);
		r->replies_failing = false;
		r->replies_unlogged = 0;
	}
out:
	r->st.written += ok;
	r->st.failed += n - ok;
	if (r->state != SINK_REDIS_UP)
		r->down_lines += n - ok;
	return (int)ok;
}

/* Nothing is buffered between calls: every write waits for its replies. */
static void
sink_redis_flush(struct sink *s)
{
}

static void
sink_redis_close(struct sink *s)
{
	struct sink_redis *r = s->priv;

	if (r == NULL)
		return;
	if (r->state == SINK_REDIS_DOWN && r->down_lines > 0)
		log_warn("events: redis %s: closing while down (%" PRIu64
		    " events not written since the connection failed)",
		    r->addr, r->down_lines);
	if (r->replies_unlogged > 0)
		log_error("events: redis %s: %" PRIu64 " more events not "
		    "written since the last report", r->addr,
		    r->replies_unlogged);
	sink_redis_free(r);
	s->priv = NULL;
}

bool
sink_redis_connected(struct sink *s)
{
	struct sink_redis *r = s->priv;

	return r != NULL && r->c != NULL;
}

bool
sink_redis_poll(struct sink *s)
{
	struct sink_redis *r = s->priv;

	return r != NULL && sink_redis_ensure(r);
}

void
sink_redis_get_stats(struct sink *s, struct sink_redis_stats *st)
{
	struct sink_redis *r = s->priv;

	if (r == NULL)
		memset(st, 0, sizeof(*st));
	else
		*st = r->st;
}

const struct sink_ops sink_redis_ops = {
	.name = "redis",
	.open = sink_redis_open_events,
	.write = sink_redis_write,
	.flush = sink_redis_flush,
	.close = sink_redis_close,
	.reopen = NULL,
};
