/*
 * sink_redis.h - the Redis Streams sink: every event line becomes one
 * entry of a stream,
 *
 *     XADD <stream> [MAXLEN ~ <maxlen>] * payload <envelope JSON>
 *
 * sent pipelined, a whole batch at a time, over one hiredis connection
 * that belongs to the dispatcher thread (sink.h).  When Redis is down or
 * slow, write reports the lines not confirmed and the sink reconnects on
 * its own, with backoff, on a later call.
 *
 * struct events_config has no Redis settings yet, so this sink is opened
 * with sink_redis_open() and its own configuration; sink_redis_ops.open
 * only refuses (-1, logged).  write, flush and close work on a sink opened
 * by sink_redis_open(); reopen is NULL.
 */
#ifndef WHYOPS_SINK_REDIS_H
#define WHYOPS_SINK_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include "sink.h"

struct sink_redis_config {
	/* "host:port", "[v6addr]:port", "host" (port 6379), or the path of
	 * a unix socket (starts with '/').  A host name is resolved at each
	 * connect, outside the timeout: prefer an address. */
	const char *addr;
	const char *user;	/* AUTH user password; NULL/"": AUTH password */
	const char *password;	/* NULL/"": no AUTH */
	int db;			/* SELECT db when not 0 */
	const char *stream;	/* the stream key */
	unsigned long maxlen;	/* MAXLEN ~ maxlen; 0: no trimming */
	unsigned timeout_ms;	/* connect and per-batch timeout; 0: 1000 */
};

/*
 * Fills s (ops and priv) from cfg; the strings are copied.  Tries to
 * connect once at once; if that fails the sink still opens (returns 0):
 * it is down, logs why once, and reconnects later like after a lost
 * connection.  -1 (logged, nothing to close) for a configuration that
 * cannot work: no address, an address that does not parse, no stream.
 */
int sink_redis_open(struct sink *s, const struct sink_redis_config *cfg);

/* Whether the sink has a connection now (no I/O). */
bool sink_redis_connected(struct sink *s);

/* 0 when addr is a valid Redis address (host:port, [v6]:port, /socket);
 * -1 when it is not (nothing is logged).  For the configuration parser. */
int sink_redis_check_addr(const char *addr);

/* If the sink is down and its backoff has run out, tries to connect once
 * (bounded by the timeout); then says whether it is connected.  For a
 * caller that wants to know, without an event to write, whether spooled
 * events can be replayed. */
bool sink_redis_poll(struct sink *s);

/* Counters since sink_redis_open(), in lines (events) and attempts. */
struct sink_redis_stats {
	uint64_t written;		/* XADDs confirmed by their reply */
	uint64_t failed;		/* lines reported not written */
	uint64_t error_replies;		/* XADDs answered with an error */
	uint64_t connects;		/* connections made (first and again) */
	uint64_t connect_failures;
};

void sink_redis_get_stats(struct sink *s, struct sink_redis_stats *st);

extern const struct sink_ops sink_redis_ops;

#endif
