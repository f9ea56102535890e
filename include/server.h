/*
 * server.h - the libmicrohttpd side (server.c).
 */
#ifndef WHYOPS_SERVER_H
#define WHYOPS_SERVER_H

#include <stdarg.h>
#include <stddef.h>

#include "config.h"

/* Binds the listen address and starts the thread pool.  Main thread. */
int server_start(const struct config *cfg, unsigned threads, unsigned conn_limit);
/* Binds host:port (numeric) and listens; -1 after logging "WHAT on HOST
 * port PORT: reason".  Main thread. */
int server_listen_socket(const char *what, const char *host, unsigned port);
/* Writes fd's local address as "host:port" or "[v6]:port" to buf; returns
 * the port. */
unsigned server_socket_name(int fd, char *buf, size_t size);
/* The body of GET /readyz (caller frees) and its status, 200 or 503.  Any
 * thread. */
char *server_readyz_body(unsigned *status, size_t *len);
/* A response holding body (len bytes, taken: freed by libmicrohttpd, or
 * here when NULL is returned) with its Content-Type. */
struct MHD_Response;
struct MHD_Response *server_buffer_response(char *body, size_t len,
    const char *ctype);
/* libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER for both listeners: its lines
 * at debug level, cls (a string, or NULL) after "libmicrohttpd". */
void server_mhd_log(void *cls, const char *fmt, va_list ap);
/* The port the listener is bound to. */
unsigned server_port(void);
/* Requests between their first callback and completion. */
unsigned server_inflight(void);
/* Refuses new connections from now on (closed as soon as accepted); the
 * listening socket is closed by server_stop(). */
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
