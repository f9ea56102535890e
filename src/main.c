/*
 * main.c - command line, start-up, signals and the shutdown order.
 *
 * Threads: main (signals only, after start-up), the libmicrohttpd pool
 * (server.c) and the upstream thread (upstream.c).  Every signal we handle
 * is blocked before any thread starts, so all threads inherit the mask and
 * main alone receives them with sigwait().
 *
 * Shutdown order (SIGTERM or SIGINT), chosen so that libmicrohttpd is never
 * stopped with a suspended connection (it aborts the process if it is):
 *   0. notify_stopping() tell systemd (STOPPING=1);
 *   1. server_quiesce()  refuse new connections (closed when accepted);
 *   2. upstream_stop()   close the hand-over queue, abort the transfers in
 *                        flight, resume every suspended connection, join
 *                        the upstream thread;
 *   3. metrics_http_stop() stop the metrics listener, if any (it answers
 *                        scrapes and probes through the drain);
 *   4. server_stop()     wait (bounded) for open requests to finish, then
 *                        stop libmicrohttpd;
 *   5. events_stop()     the dispatcher drains the ring to the sink;
 *   6. free the configuration and libcurl's global state.
 *
 * SIGHUP reloads the configuration (main_reload()).  The start-up
 * configuration stays referenced by main until exit: the event pipeline,
 * the metrics labels and the upstream thread's fixed settings point into it.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "event.h"
#include "events.h"
#include "log.h"
#include "metrics_http.h"
#include "notify.h"
#include "server.h"
#include "trace.h"
#include "upreq.h"
#include "upstream.h"

#define MAIN_FDS_RESERVED 256		/* files, epoll, eventfds, Redis... */

#define MAIN_NO_KEYS "no [key] section: every API request will be refused " \
	"with 401 (whyops-proxy --new-key makes a key)"

static void
main_usage(FILE *f)
{
	fprintf(f,
	    "usage: whyops-proxy [-htV] [-c file]\n"
	    "       whyops-proxy --new-key\n"
	    "  -c, --config file  configuration file (default "
	    CONFIG_DEFAULT_PATH ")\n"
	    "  -t, --test         check the configuration and exit\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         print this help and exit\n"
	    "  --new-key          print a fresh API key and its sha256 line for "
	    "the config\n");
}

static int
main_new_key(void)
{
	char key[AUTH_KEY_LEN + 1];
	uint8_t h[32];

	if (auth_new_key(key) != 0) {
		fprintf(stderr, "whyops-proxy: no randomness available\n");
		return 1;
	}
	auth_sha256(key, strlen(key), h);
	printf("%s\n", key);
	printf("# give the key above to the client; paste this line into a [key NAME] section:\n");
	printf("sha256 = ");
	for (size_t i = 0; i < sizeof(h); i++)
		printf("%02x", h[i]);
	printf("\n");
	return 0;
}

/*
 * Each proxied connection needs two descriptors (client and upstream).
 * Raises RLIMIT_NOFILE to match max_connections, and when the hard limit
 * cannot be raised lowers the connection limit so that libmicrohttpd never
 * accepts a connection it cannot serve.
 */
static unsigned
main_fd_budget(unsigned max_connections)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)max_connections * 2 + MAIN_FDS_RESERVED;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return max_connections;
	if (rl.rlim_cur >= need)
		return max_connections;
	if (rl.rlim_max < need) {
		struct rlimit want = { need, need };
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return max_connections;
	}
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur >= need)
		return max_connections;
	unsigned fit = rl.rlim_cur > MAIN_FDS_RESERVED + 2 ?
	    (unsigned)((rl.rlim_cur - MAIN_FDS_RESERVED) / 2) : 1;
	log_warn("open file limit is %llu: serving at most %u connections instead "
	    "of max_connections = %u (raise LimitNOFILE / ulimit -n)",
	    (unsigned long long)rl.rlim_cur, fit, max_connections);
	return fit;
}

/*
 * Lets the requests in flight finish, for at most drain_timeout; a second
 * SIGTERM or SIGINT ends the wait at once.  What is still open afterwards
 * is aborted by upstream_stop() (streams end with a truncated body).
 */
static void
main_drain(const struct config *cfg, const sigset_t *set)
{
	struct timespec tick = { 0, 50 * 1000 * 1000 };
	unsigned waited = 0, open;

	while ((open = server_inflight()) > 0 && waited < cfg->drain_timeout_ms) {
		if (waited == 0)
			log_info("waiting up to %u ms for %u open requests",
			    cfg->drain_timeout_ms, open);
		int sig = sigtimedwait(set, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			log_warn("second signal: not waiting for open requests");
			break;
		}
		if (sig == SIGHUP) {
			events_reopen();	/* still rotate the events file */
			continue;		/* the wait was cut short: no time passed */
		}
		waited += 50;
	}
	if ((open = server_inflight()) > 0)
		log_warn("%u requests still open after the drain: aborting them", open);
}

static bool
main_str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* The event pipeline's settings from the configuration (pointing into it). */
static void
main_events_config(const struct config *cfg, struct events_config *ec)
{
	*ec = (struct events_config){
		.sink = cfg->events_sink,
		.file = cfg->events_file,
		.queue_size = cfg->events_queue_size,
		.redis = {
			.addr = cfg->events_redis,
			.user = cfg->events_redis_user,
			.password = cfg->events_redis_password,
			.db = (int)cfg->events_redis_db,
			.stream = cfg->events_stream,
			.maxlen = cfg->events_stream_maxlen,
			.timeout_ms = cfg->events_redis_timeout_ms,
		},
		/* Redis can be down or slow: what it refuses waits on disk. */
		.spool_dir = cfg->events_sink == EVENTS_SINK_REDIS ?
		    cfg->events_spool_dir : NULL,
		.spool_max = cfg->events_spool_max,
		.drain_ms = 2000,
	};
}

/*
 * SIGHUP: reads the configuration file again.  A file with errors changes
 * nothing (the errors go to the log, as FILE:LINE: message).  Otherwise new
 * requests use the new configuration at once, requests in flight finish
 * with theirs (each holds a reference to its generation), and the TLS
 * certificate is loaded again.  What is fixed at start-up (boot) keeps its
 * old value and the log names it: the listener, the thread pool and its
 * limits, TLS on/off and priorities, the trace map, upstream ca_file and
 * the event queue's size.  The event sink and spool are switched by the
 * dispatcher (events_reconfigure()).
 */
static void
main_reload(const struct config *boot)
{
	struct events_config ec;
	struct config *cfg = NULL;
	char *text = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *errs = open_memstream(&text, &len);
	int rc;

	if (errs == NULL) {
		log_error("reload: out of memory; keeping the current configuration");
		return;
	}
	rc = config_load(boot->path, &cfg, errs);
	fclose(errs);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (rc != 0)
			log_error("reload: %s", line);
		else
			log_warn("reload: %s", line);
	}
	free(text);
	if (rc == 0 && cfg->nkeys == 0)
		log_warn("reload: %s: " MAIN_NO_KEYS, boot->path);
	if (rc != 0) {
		log_error("reload: %s has errors (above); keeping the current "
		    "configuration", boot->path);
		return;
	}
#define MAIN_NEEDS_RESTART(cond, what) \
	do { if (cond) log_warn("reload: %s changed: needs a restart; the old " \
	    "value stays in force", what); } while (0)
	MAIN_NEEDS_RESTART(main_str_differs(cfg->listen_host, boot->listen_host) ||
	    cfg->listen_port != boot->listen_port, "[server] listen");
	MAIN_NEEDS_RESTART(main_str_differs(cfg->metrics_listen_host,
	    boot->metrics_listen_host) || cfg->metrics_listen_port !=
	    boot->metrics_listen_port, "[server] metrics_listen");
	MAIN_NEEDS_RESTART(cfg->threads != boot->threads, "[server] threads");
	MAIN_NEEDS_RESTART(cfg->max_connections != boot->max_connections,
	    "[server] max_connections");
	MAIN_NEEDS_RESTART(cfg->max_header_size > boot->max_header_size,
	    "[server] max_header_size (raised beyond the start-up value)");
	MAIN_NEEDS_RESTART(cfg->client_idle_timeout_ms != boot->client_idle_timeout_ms,
	    "[server] client_idle_timeout");
	MAIN_NEEDS_RESTART(main_str_differs(cfg->tls_priorities, boot->tls_priorities),
	    "[server] tls_priorities");
	MAIN_NEEDS_RESTART(main_str_differs(cfg->ca_file, boot->ca_file),
	    "[upstream] ca_file");
	MAIN_NEEDS_RESTART(cfg->trace_map_size != boot->trace_map_size ||
	    cfg->trace_map_ttl_ms != boot->trace_map_ttl_ms, "[trace] map_size/map_ttl");
	MAIN_NEEDS_RESTART(cfg->events_queue_size != boot->events_queue_size,
	    "[events] queue_size");
#undef MAIN_NEEDS_RESTART
	if (upreq_init(cfg) != 0) {
		log_error("reload: out of memory; keeping the current configuration");
		config_unref(cfg);
		return;
	}
	log_set_level(cfg->log_level);
	server_reload_tls(cfg);
	main_events_config(cfg, &ec);
	events_reconfigure(&ec);
	server_set_config(cfg);
	config_unref(cfg);		/* the server holds it now */
	log_info("reload: %s loaded (%zu keys, %zu providers) for new requests",
	    cfg->path, cfg->nkeys, cfg->nproviders);
}

static int
main_run(struct config *cfg)
{
	sigset_t set;
	unsigned threads = cfg->threads;
	unsigned limit;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	limit = main_fd_budget(cfg->max_connections);
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
		log_error("libcurl initialisation failed");
		return 1;
	}
	struct events_config ec;

	main_events_config(cfg, &ec);
	if (events_start(&ec, event_build) != 0) {
		log_error("could not start the event pipeline (see above); check [events]");
		return 1;
	}
	if (trace_map_init(cfg->trace_map_size, cfg->trace_map_ttl_ms) != 0 ||
	    upreq_init(cfg) != 0) {
		log_error("out of memory");
		return 1;
	}
	if (upstream_start(cfg) != 0) {
		log_error("could not start the upstream thread");
		events_stop();
		return 1;
	}
	if (server_start(cfg, threads, limit) != 0) {
		upstream_stop();
		events_stop();
		return 1;
	}
	if (metrics_http_start(cfg) != 0) {
		server_quiesce();
		upstream_stop();
		server_stop(0);
		events_stop();
		return 1;
	}
	log_info("whyops-proxy %s ready (config %s)", WHYOPS_VERSION, cfg->path);
	notify_status("serving on %s port %u", cfg->listen_host, server_port());
	notify_ready();

	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			notify_reloading();
			events_reopen();
			main_reload(cfg);
			notify_ready();
			continue;
		}
		break;
	}
	notify_stopping();
	notify_status("shutting down");
	log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	server_quiesce();
	main_drain(cfg, &set);
	upstream_stop();
	metrics_http_stop();
	server_stop(5000);
	events_stop();			/* every request has completed: drain */
	upreq_free();
	trace_map_free();
	curl_global_cleanup();
	log_info("stopped");
	return 0;
}

/*
 * -t: what the parser leaves to start-up, checked without side effects.
 * The events file must be creatable or writable (the default one is
 * not named in the file, so the parser cannot check it).
 */
static int
main_check_runtime(const struct config *cfg)
{
	char *dir, *slash;
	int rc = 0;

	if (cfg->events_sink == EVENTS_SINK_REDIS) {
		struct stat st;

		if (cfg->events_spool_dir == NULL)
			return rc;
		if (stat(cfg->events_spool_dir, &st) == 0) {
			if (!S_ISDIR(st.st_mode) || access(cfg->events_spool_dir, W_OK) != 0) {
				fprintf(stderr, "%s:0: [events] spool_dir %s is not a "
				    "writable directory\n", cfg->path, cfg->events_spool_dir);
				rc = -1;
			}
			return rc;
		}
		if ((dir = strdup(cfg->events_spool_dir)) == NULL)
			return -1;
		slash = strrchr(dir, '/');
		const char *parent = slash == NULL ? "." : slash == dir ? "/" : dir;
		if (slash != NULL && slash != dir)
			*slash = '\0';
		if (access(parent, W_OK) != 0) {
			fprintf(stderr, "%s:0: [events] spool_dir %s cannot be created: "
			    "%s: %s\n", cfg->path, cfg->events_spool_dir, parent,
			    strerror(errno));
			rc = -1;
		}
		free(dir);
		return rc;
	}
	if (cfg->events_sink != EVENTS_SINK_FILE)
		return 0;
	if (access(cfg->events_file, F_OK) == 0) {
		if (access(cfg->events_file, W_OK) != 0) {
			fprintf(stderr, "%s:0: [events] file %s is not writable: %s\n",
			    cfg->path, cfg->events_file, strerror(errno));
			rc = -1;
		}
		return rc;
	}
	if ((dir = strdup(cfg->events_file)) == NULL)
		return -1;
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if (access(slash == NULL ? "." : (*dir ? dir : "/"), W_OK) != 0) {
		fprintf(stderr, "%s:0: [events] file %s cannot be created: %s: %s "
		    "(create the directory, or set [events] file or sink = none)\n",
		    cfg->path, cfg->events_file, *dir ? dir : "/", strerror(errno));
		rc = -1;
	}
	free(dir);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "new-key", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = CONFIG_DEFAULT_PATH;
	bool test = false;
	struct config *cfg = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'V':
			printf("whyops-proxy %s\n", WHYOPS_VERSION);
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		case 'k':
			return main_new_key();
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		main_usage(stderr);
		return 2;
	}
	if (config_load(path, &cfg, stderr) != 0) {
		if (!test)
			fprintf(stderr, "whyops-proxy: configuration has errors; not starting\n");
		return 1;
	}
	/* Valid, but a proxy that refuses everything is rarely meant. */
	if (cfg->nkeys == 0)
		fprintf(stderr, "%s:0: warning: " MAIN_NO_KEYS "\n", cfg->path);
	if (test && main_check_runtime(cfg) != 0) {
		config_free(cfg);
		return 1;
	}
	if (test) {
		printf("configuration OK\n");
		config_free(cfg);
		return 0;
	}
	log_set_level(cfg->log_level);
	rc = main_run(cfg);
	config_unref(cfg);
	return rc;
}
