/*
 * metrics_http.h - the metrics listener ([server] metrics_listen): GET
 * /metrics, /healthz and /readyz on an address of their own
 * (metrics_http.c).
 */
#ifndef WHYOPS_METRICS_HTTP_H
#define WHYOPS_METRICS_HTTP_H

#include "config.h"

/* Main thread, after server_start().  Binds cfg's metrics_listen and
 * starts serving; does nothing when it is unset.  0, or -1 (logged). */
int metrics_http_start(const struct config *cfg);
/* The port it is bound to, 0 when not running. */
unsigned metrics_http_port(void);
/* Main thread, before server_stop().  Safe when not started. */
void metrics_http_stop(void);

#endif
