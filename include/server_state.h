/*
 * server_state.h - what the two halves of the libmicrohttpd side share:
 * server.c (the callbacks a request goes through) and server_daemon.c
 * (listener, start, stop, reload).  Not for other files: they use server.h.
 */
#ifndef WHYOPS_SERVER_STATE_H
#define WHYOPS_SERVER_STATE_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"

struct server_state {
	const struct config *cfg;	/* current generation, under cfg_lock */
	pthread_mutex_t cfg_lock;
	struct MHD_Daemon *daemon;
	int listen_fd;
	unsigned port;			/* bound port (listen may say 0) */
	atomic_int inflight;
	atomic_bool quiesced;		/* no longer accepting: not ready */
	bool tls;			/* HTTPS listener (tls_cert_file set) */
	bool metrics_apart;		/* start-up metrics_listen set: no /metrics */
};

/* Defined in server_daemon.c. */
extern struct server_state srv;

/* The libmicrohttpd callbacks of server.c, registered by server_start(). */
void *server_uri_log_cb(void *cls, const char *uri, struct MHD_Connection *c);
enum MHD_Result server_access_cb(void *cls, struct MHD_Connection *c,
    const char *url, const char *method, const char *version,
    const char *upload_data, size_t *upload_data_size, void **con_cls);
void server_completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe);
void server_conn_cb(void *cls, struct MHD_Connection *c,
    void **socket_context, enum MHD_ConnectionNotificationCode toe);

#endif
