/*
 * server.h - the libmicrohttpd side (server.c).
 */
#ifndef WHYOPS_SERVER_H
#define WHYOPS_SERVER_H

#include "config.h"

/* Binds the listen address and starts the thread pool.  Main thread. */
int server_start(const struct config *cfg, unsigned threads, unsigned conn_limit);
/* The port the listener is bound to. */
unsigned server_port(void);
/* Requests between their first callback and completion. */
unsigned server_inflight(void);
/* Stops accepting new connections. */
void server_quiesce(void);
/* Waits up to wait_ms for open requests, then stops libmicrohttpd.  Call
 * only after upstream_stop(): no connection may still be suspended. */
void server_stop(unsigned wait_ms);

#endif
