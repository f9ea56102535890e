/*
 * server_daemon.c - the libmicrohttpd listener's life: the listening socket,
 * the daemon's options (thread pool, connection limit, per-connection pool,
 * TLS), start, refusing connections for the drain, stop, and what a SIGHUP
 * changes (the configuration generation new requests use, the certificate).
 * Main thread, except server_mhd_log and server_accept_policy, which
 * libmicrohttpd calls from its threads.  The request callbacks are in
 * server.c; the state both share is server_state.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "server.h"
#include "server_state.h"
#include "tlscred.h"

struct server_state srv = { .listen_fd = -1,
    .cfg_lock = PTHREAD_MUTEX_INITIALIZER };

void
server_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("libmicrohttpd%s: %s", cls != NULL ? (const char *)cls : "",
	    line);
}

/* --- start and stop ---------------------------------------------------- */

int
server_listen_socket(const char *what, const char *host, unsigned port)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char portstr[8];
	int fd = -1, one = 1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		log_error("%s %s: %s", what, host, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (res->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(fd, 4096) != 0) {
		log_error("%s on %s port %u: %s", what, host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

unsigned
server_socket_name(int fd, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		}
	}
	snprintf(buf, size, "%s%s%s:%u", ss.ss_family == AF_INET6 ? "[" : "",
	    host, ss.ss_family == AF_INET6 ? "]" : "", port);
	return port;
}

/* MHD_AcceptPolicyCallback: any pool thread, once per new connection. */
static enum MHD_Result
server_accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
	(void)cls;
	(void)addr;
	(void)len;
	return atomic_load_explicit(&srv.quiesced, memory_order_relaxed) ?
	    MHD_NO : MHD_YES;
}

int
server_start(const struct config *cfg, unsigned threads, unsigned conn_limit)
{
	char addr[INET6_ADDRSTRLEN + 16];
	/* libmicrohttpd keeps the request head, the reply's headers and a
	 * streamed body's current chunk in a per-connection pool that it
	 * zeroes whole after every request (14% of the CPU per small request
	 * with a 96 KiB pool, 6% of the instructions at 40 KiB).
	 * max_header_size plus 8 KiB: heads somewhat over the limit still fit
	 * and get the proxy's own 431 (README: Design decisions). */
	size_t pool = cfg->max_header_size + 8 * 1024;
	unsigned timeout_s = (cfg->client_idle_timeout_ms + 999) / 1000;
	struct MHD_OptionItem opts[16];
	size_t no = 0;

	pthread_mutex_lock(&srv.cfg_lock);
	srv.cfg = config_ref(cfg);
	pthread_mutex_unlock(&srv.cfg_lock);
	atomic_store(&srv.quiesced, false);
	srv.metrics_apart = cfg->metrics_listen_host != NULL;
	if (metrics_init(cfg) != 0) {
		log_error("out of memory");
		return -1;
	}
	if ((srv.listen_fd = server_listen_socket("listen", cfg->listen_host,
	    cfg->listen_port)) < 0) {
		metrics_free();
		return -1;
	}
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER,
	    (intptr_t)server_mhd_log, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, srv.listen_fd, NULL };
	/* A pool of one thread is refused with a warning: leave it out. */
	if (threads > 1)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, threads, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, conn_limit, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (intptr_t)pool, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK,
	    (intptr_t)server_uri_log_cb, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
	    (intptr_t)server_completed_cb, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
	    (intptr_t)server_conn_cb, NULL };
	if (cfg->tls_cert_file != NULL) {
		char err[512];

		if (tlscred_reload(cfg->tls_cert_file, cfg->tls_key_file, err,
		    sizeof(err)) != 0) {
			log_error("TLS: %s", err);
			close(srv.listen_fd);
			srv.listen_fd = -1;
			metrics_free();
			return -1;
		}
		/* The certificate comes from the callback, every handshake:
		 * server_reload_tls() swaps it without a restart. */
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK,
		    0, (void *)tlscred_retrieve };
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES,
		    0, cfg->tls_priorities };
		srv.tls = true;
	}
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	srv.daemon = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
	    MHD_USE_ERROR_LOG | (srv.tls ? MHD_USE_TLS : 0), 0,
	    server_accept_policy, NULL, server_access_cb, NULL,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (srv.daemon == NULL) {
		log_error("could not start the HTTP server");
		tlscred_free_all();
		srv.tls = false;
		close(srv.listen_fd);
		srv.listen_fd = -1;
		metrics_free();
		return -1;
	}
	srv.port = server_socket_name(srv.listen_fd, addr, sizeof(addr));
	log_info("listening on %s://%s (%u threads, %u connections)",
	    srv.tls ? "https" : "http", addr, threads > 1 ? threads : 1,
	    conn_limit);
	return 0;
}

unsigned
server_port(void)
{
	return srv.port;
}

unsigned
server_inflight(void)
{
	int n = atomic_load(&srv.inflight);

	return n > 0 ? (unsigned)n : 0;
}

/*
 * Refusing connections without MHD_quiesce_daemon(): in 0.9.75 that function
 * deletes the listening socket from each pool thread's epoll set while the
 * thread, seeing the quiesced flag, may delete it too, and the loser of the
 * race calls MHD_PANIC (abort) on ENOENT ("Failed to remove listen FD from
 * epoll set").  Measured: 13 aborts in 3,000 quiesces of a 2-thread pool
 * with busy clients; one CI run lost its drain to it.  Instead the accept
 * policy callback refuses every connection from now on: libmicrohttpd
 * closes it as soon as it is accepted (the client sees the connection
 * closed before any answer, a connection error SDKs retry), and the
 * listening socket is closed by MHD_stop_daemon().
 */
void
server_quiesce(void)
{
	atomic_store(&srv.quiesced, true);
}

void
server_stop(unsigned wait_ms)
{
	if (srv.daemon == NULL)
		return;
	/* Every suspended connection has been resumed by upstream_stop();
	 * give libmicrohttpd a moment to finish them before stopping it. */
	for (unsigned waited = 0; atomic_load(&srv.inflight) > 0 && waited < wait_ms;
	    waited += 10)
		usleep(10 * 1000);
	MHD_stop_daemon(srv.daemon);	/* closes the listening socket */
	srv.daemon = NULL;
	srv.listen_fd = -1;
	if (srv.tls)
		tlscred_free_all();	/* no session holds one any more */
	srv.tls = false;
	metrics_free();			/* every request has completed */
	pthread_mutex_lock(&srv.cfg_lock);
	config_unref(srv.cfg);
	srv.cfg = NULL;
	pthread_mutex_unlock(&srv.cfg_lock);
}

void
server_set_config(const struct config *cfg)
{
	const struct config *old;
	size_t lost;

	/* Before the swap: no request of cfg may find its provider unnamed. */
	if ((lost = metrics_add_providers(cfg)) > 0)
		log_warn("reload: %zu providers are counted as provider=\"other\" in "
		    "/metrics: the table of %d provider names is full until a restart",
		    lost, METRICS_MAX_PROVIDERS);
	config_ref(cfg);
	pthread_mutex_lock(&srv.cfg_lock);
	old = srv.cfg;
	srv.cfg = cfg;
	pthread_mutex_unlock(&srv.cfg_lock);
	config_unref(old);	/* freed when its last request is */
}

int
server_reload_tls(const struct config *cfg)
{
	char err[512];

	if (!srv.tls && cfg->tls_cert_file == NULL)
		return 0;
	if (srv.tls != (cfg->tls_cert_file != NULL)) {
		log_warn("reload: turning HTTPS %s needs a restart",
		    srv.tls ? "off" : "on");
		return 0;
	}
	if (tlscred_reload(cfg->tls_cert_file, cfg->tls_key_file, err,
	    sizeof(err)) != 0) {
		log_error("reload: TLS: %s; keeping the current certificate", err);
		return -1;
	}
	log_info("reload: TLS certificate %s loaded for new connections",
	    cfg->tls_cert_file);
	return 0;
}
