/*
 * config.h - the parsed, immutable configuration.
 *
 * config_load() reads an INI file (libinih), validates it as a whole and
 * returns a struct config that nothing modifies afterwards.  Every error is
 * reported as "FILE:LINE: message" on the given stream; loading fails if
 * there was at least one.  The runtime holds the config by pointer and never
 * writes to it, so any thread may read it without locking.
 *
 * Ownership: config_load() allocates everything reachable from the returned
 * struct; config_free() releases all of it.  Cross references (a key's
 * environment, an environment's providers) are borrowed pointers into the
 * same object.
 */
#ifndef WHYOPS_CONFIG_H
#define WHYOPS_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_PATH "/etc/whyops.conf"
#define CONFIG_DEFAULT_EVENTS_FILE "/var/lib/whyops/events.jsonl"
#define CONFIG_DEFAULT_SPOOL_DIR "/var/lib/whyops/spool"
/* TLS 1.2 and 1.3 only, GnuTLS's NORMAL cipher suites otherwise. */
#define CONFIG_DEFAULT_TLS_PRIORITIES "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"

enum provider_type {
	PROVIDER_OPENAI,
	PROVIDER_ANTHROPIC,
};

extern const char *const provider_type_names[];	/* "openai", "anthropic" */

struct config_header {
	char *name;			/* as written, e.g. "OpenAI-Organization" */
	char *value;			/* trimmed */
};

struct provider {
	char *name;			/* section name, also the model slug */
	enum provider_type type;
	char *base_url;			/* no trailing slash, e.g. https://api.openai.com/v1 */
	char *api_key;			/* NULL when none configured; never logged */
	char **models;			/* fnmatch(3) patterns */
	size_t nmodels;
	struct config_header *headers;	/* extra headers sent upstream */
	size_t nheaders;
	int line;			/* line of the section header */
};

struct environment {
	char *name;
	char *project;			/* defaults to the environment's name */
	struct provider **providers;	/* borrowed; routing order, [0] is default */
	size_t nproviders;
	int line;
};

struct apikey {
	char *name;			/* section name: "[key NAME]" */
	uint8_t sha256[32];
	struct environment *env;	/* borrowed */
	char *agent;			/* NULL when not set */
	int line;
};

enum events_sink_kind {
	EVENTS_SINK_NONE,
	EVENTS_SINK_FILE,
	EVENTS_SINK_REDIS,
};

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

struct config {
	char *path;
	/* A generation: each request holds a reference (SIGHUP swaps the
	 * current one); the last config_unref() frees it. */
	_Atomic unsigned refs;
	void *gen_data;			/* owned by whoever set gen_free */
	void (*gen_free)(void *gen_data);

	/* [server] */
	char *listen_host;		/* "127.0.0.1", "::1", "0.0.0.0", "::" */
	uint16_t listen_port;
	char *metrics_listen_host;	/* NULL: /metrics is served on listen */
	uint16_t metrics_listen_port;	/* differs from listen_port unless 0 */
	int metrics_listen_line;	/* of metrics_listen, for errors */
	unsigned threads;		/* 0 = one per CPU */
	unsigned max_connections;
	size_t max_body_size;		/* bytes */
	size_t max_header_size;		/* bytes */
	unsigned client_idle_timeout_ms;
	unsigned drain_timeout_ms;	/* SIGTERM: time open requests get to finish */
	enum log_level log_level;
	char *tls_cert_file;		/* PEM, leaf first then chain; NULL = plain HTTP */
	char *tls_key_file;		/* PEM private key of the leaf */
	char *tls_priorities;		/* GnuTLS priority string */
	int tls_line;			/* line of tls_cert_file/tls_key_file, for errors */

	/* [upstream] */
	unsigned connect_timeout_ms;
	unsigned first_byte_timeout_ms;
	unsigned idle_timeout_ms;
	char *ca_file;			/* NULL = system trust store */
	bool force_stream_usage;	/* set stream_options.include_usage on chat streams */
	size_t max_event_size;		/* largest SSE event the decoders keep */

	/* [trace] */
	bool trace_signature;		/* mark answers with the invisible signature */
	unsigned trace_map_size;	/* tool call / response ids remembered */
	unsigned trace_map_ttl_ms;	/* how long an id is remembered */

	/* [events] */
	enum events_sink_kind events_sink;
	char *events_file;		/* file sink: one JSON envelope per line */
	unsigned events_queue_size;	/* ring capacity, events */
	bool events_capture_content;	/* capture = full (true) | metadata */
	char *events_redis;		/* host:port or a unix socket path */
	char *events_redis_user;	/* NULL: no ACL user */
	char *events_redis_password;	/* read from redis_password_file; never logged */
	unsigned events_redis_db;
	char *events_stream;		/* default whyops:events */
	unsigned long events_stream_maxlen; /* MAXLEN ~; 0 = no trimming */
	unsigned events_redis_timeout_ms;
	char *events_spool_dir;		/* NULL: no spool */
	size_t events_spool_max;	/* bytes on disk at most */

	struct provider *providers;
	size_t nproviders;
	struct environment *environments;
	size_t nenvironments;
	struct apikey *keys;
	size_t nkeys;
};

/*
 * Parse and validate the file at path.  On success *out holds a new config
 * and 0 is returned.  On failure every problem found has been written to
 * errs as "path:line: message\n" (line 0 for whole-file problems), *out is
 * NULL and -1 is returned.
 */
int config_load(const char *path, struct config **out, FILE *errs);
void config_free(struct config *cfg);
/* References: config_load() returns a config holding one. */
const struct config *config_ref(const struct config *cfg);
void config_unref(const struct config *cfg);

/*
 * Value parsers shared with the tests.  Each returns 0 and stores the value,
 * or -1 when the text is not a valid value.
 *   duration: "250ms", "10s", "2m", plain number = seconds; result in ms
 *   size:     "512", "32K", "32M", "1G" (powers of 1024); result in bytes
 *   bool:     yes/no, true/false, on/off, 1/0
 */
int config_parse_duration(const char *s, unsigned *ms);
int config_parse_size(const char *s, size_t *bytes);
int config_parse_bool(const char *s, bool *b);

#endif
