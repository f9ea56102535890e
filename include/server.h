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
/* SIGHUP: loads cfg's tls_cert_file and tls_key_file again for new
 * connections.  -1 (logged) keeps the current certificate. */
int server_reload_tls(const struct config *cfg);
/* SIGHUP: new requests use cfg (the server takes a reference); requests in
 * flight keep the generation they started with. */
void server_set_config(const struct config *cfg);

#endif
