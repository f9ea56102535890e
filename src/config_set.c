/*
 * config_set.c - the directives of [server], [upstream], [events] and
 * [trace]: each setter checks one value on its own and stores it in struct
 * config (generic ones at the table's offset).  What needs the whole file
 * is checked by config.c afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE			/* asprintf(), explicit_bzero() */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <search.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_parser.h"
#include "sink_redis.h"

static const char *const config_log_level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};


/* Setters for [server] and [upstream]: fields of struct config at an offset */

/* value as a whole number within d's bounds; -1 (reported) if not. */
static int
config_whole(struct config_parser *p, const struct config_directive *d,
    const char *value, unsigned long long *v)
{
	if (config_parse_ull(value, d->max, v) < 0 || *v < d->min) {
		config_error(p, p->lineno, "%s: expected a whole number from %llu "
		    "to %llu, got '%s'", d->name, d->min, d->max, value);
		return -1;
	}
	return 0;
}

void
config_set_uint(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	unsigned long long v;

	(void)sec;
	if (config_whole(p, d, value, &v) == 0)
		*(unsigned *)(void *)((char *)p->cfg + d->offset) = (unsigned)v;
}

void
config_set_size(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	char lo[32], hi[32];
	size_t v;

	(void)sec;
	if (config_parse_size(value, &v) < 0) {
		config_error(p, p->lineno, "%s: invalid size '%s' (expected bytes "
		    "or a number with a K, M or G suffix, as in 32K)", d->name, value);
		return;
	}
	config_format_size(d->min, lo, sizeof(lo));
	config_format_size(d->max, hi, sizeof(hi));
	if (v < d->min || v > d->max) {
		if (d->max == SIZE_MAX)
			config_error(p, p->lineno, "%s: must be at least %s", d->name, lo);
		else
			config_error(p, p->lineno, "%s: must be between %s and %s",
			    d->name, lo, hi);
		return;
	}
	*(size_t *)(void *)((char *)p->cfg + d->offset) = v;
}

void
config_set_duration(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	unsigned ms;

	(void)sec;
	if (config_parse_duration(value, &ms) < 0) {
		config_error(p, p->lineno, "%s: invalid duration '%s' (expected a "
		    "number of seconds, or a number with an ms, s or m suffix, as "
		    "in 500ms)", d->name, value);
		return;
	}
	if (ms < d->min) {
		if (d->min <= 1)
			config_error(p, p->lineno, "%s: must be greater than 0", d->name);
		else
			config_error(p, p->lineno, "%s: must be at least %llu ms",
			    d->name, d->min);
		return;
	}
	*(unsigned *)(void *)((char *)p->cfg + d->offset) = ms;
}

/*
 * A value from a fixed list of words (case-insensitive): returns its index,
 * or -1 after reporting "NAME: expected <expected>, got 'value'".
 */
int
config_keyword(struct config_parser *p, const struct config_directive *d,
    const char *value, const char *const *words, size_t n, const char *expected)
{
	for (size_t i = 0; i < n; i++) {
		if (words[i] != NULL && strcasecmp(value, words[i]) == 0)
			return (int)i;
	}
	config_error(p, p->lineno, "%s: expected %s, got '%s'", d->name, expected,
	    value);
	return -1;
}

void
config_set_bool(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	bool b;

	(void)sec;
	if (config_parse_bool(value, &b) < 0) {
		config_error(p, p->lineno, "%s: expected yes or no, got '%s'",
		    d->name, value);
		return;
	}
	*(bool *)(void *)((char *)p->cfg + d->offset) = b;
}

void
config_set_sink(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	static const char *const words[] = {
		[EVENTS_SINK_NONE] = "none",
		[EVENTS_SINK_FILE] = "file",
		[EVENTS_SINK_REDIS] = "redis",
	};
	int i = config_keyword(p, d, value, words, CONFIG_ARRAY_LEN(words),
	    "redis, file or none");

	(void)sec;
	if (i >= 0)
		p->cfg->events_sink = (enum events_sink_kind)i;
}


void
config_set_events_string(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	char **slot = (char **)(void *)((char *)p->cfg + d->offset);

	(void)sec;
	if (*value == '\0') {
		config_error(p, p->lineno, "%s: empty value", d->name);
		return;
	}
	free(*slot);
	*slot = config_xstrdup(value);
}

/* The sink's own syntax (sink_redis.c), checked here for a FILE:LINE. */
void
config_set_redis(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	if (*value != '\0' && sink_redis_check_addr(value) != 0) {
		config_error(p, p->lineno, "redis: '%s' is not host:port, host, "
		    "[IPv6-address]:port or the absolute path of a unix socket",
		    value);
		return;
	}
	config_set_events_string(p, sec, d, value);
}

void
config_set_spool_dir(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	(void)sec;
	(void)d;
	free(p->cfg->events_spool_dir);
	p->cfg->events_spool_dir = *value == '\0' ? NULL :
	    config_resolve_path(p, value);
}

void
config_set_redis_password_file(struct config_parser *p,
    struct config_section *sec, const struct config_directive *d,
    const char *value)
{
	char *path;

	(void)sec;
	(void)d;
	if (*value == '\0') {
		config_error(p, p->lineno, "redis_password_file: empty value");
		return;
	}
	path = config_resolve_path(p, value);
	config_free_secret(p->cfg->events_redis_password);
	p->cfg->events_redis_password = config_read_secret(p, path, d->name);
	free(path);
}

void
config_set_ulong(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	unsigned long long v;

	(void)sec;
	if (config_whole(p, d, value, &v) == 0)
		*(unsigned long *)(void *)((char *)p->cfg + d->offset) =
		    (unsigned long)v;
}

void
config_set_capture(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	static const char *const words[] = { "metadata", "full" };
	int i = config_keyword(p, d, value, words, CONFIG_ARRAY_LEN(words),
	    "full or metadata");

	(void)sec;
	if (i >= 0)
		p->cfg->events_capture_content = i == 1;
}

/* The file need not exist yet; its directory must. */
void
config_set_events_file(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	char *path, *slash;
	struct stat st;

	(void)sec;
	(void)d;
	if (*value == '\0') {
		config_error(p, p->lineno, "file: empty value");
		return;
	}
	path = config_resolve_path(p, value);
	slash = strrchr(path, '/');
	if (slash != NULL) {
		*slash = '\0';
		if (stat(*path ? path : "/", &st) != 0 || !S_ISDIR(st.st_mode)) {
			config_error(p, p->lineno, "file: directory '%s' does not exist",
			    *path ? path : "/");
			free(path);
			return;
		}
		*slash = '/';
	}
	free(p->cfg->events_file);
	p->cfg->events_file = path;
}

void
config_set_log_level(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	int i = config_keyword(p, d, value, config_log_level_names,
	    CONFIG_ARRAY_LEN(config_log_level_names), "error, warn, info or debug");

	(void)sec;
	if (i >= 0)
		p->cfg->log_level = (enum log_level)i;
}

/*
 * "host:port" with an IPv4 address, "[v6]:port", or "*:port" for every
 * IPv4 address.  Only literals: resolving a name is not the parser's job.
 * Shared by listen and metrics_listen; messages start with the key's name.
 * On success *host is a new string.  0, or -1 after reporting.
 */
static int
config_parse_address(struct config_parser *p, const char *key,
    const char *value, char **hostp, uint16_t *portp)
{
	unsigned char addr[16];
	unsigned long long port;
	const char *end, *portstr;
	char *host = NULL;
	int ret = -1;

	if (value[0] == '[') {
		end = strchr(value, ']');
		if (end == NULL || end[1] != ':')
			goto syntax;
		host = config_xstrndup(value + 1, (size_t)(end - value - 1));
		portstr = end + 2;
		if (inet_pton(AF_INET6, host, addr) != 1) {
			config_error(p, p->lineno, "%s: '%s' is not an IPv6 "
			    "address", key, host);
			goto out;
		}
	} else {
		end = strrchr(value, ':');
		if (end == NULL || end == value)
			goto syntax;
		host = config_xstrndup(value, (size_t)(end - value));
		portstr = end + 1;
		if (strchr(host, ':') != NULL) {
			config_error(p, p->lineno, "%s: an IPv6 address must be "
			    "in brackets, as in [::1]:8080", key);
			goto out;
		}
		if (strcmp(host, "*") == 0) {
			free(host);
			host = config_xstrdup("0.0.0.0");
		} else if (inet_pton(AF_INET, host, addr) != 1) {
			config_error(p, p->lineno, "%s: '%s' is not an IPv4 "
			    "address, [IPv6 address] or *", key, host);
			goto out;
		}
	}
	if (config_parse_ull(portstr, 65535, &port) < 0) {
		config_error(p, p->lineno, "%s: invalid port '%s' (expected 0 "
		    "to 65535)", key, portstr);
		goto out;
	}
	*hostp = host;
	*portp = (uint16_t)port;
	host = NULL;
	ret = 0;
	goto out;
syntax:
	config_error(p, p->lineno, "%s: expected ADDRESS:PORT, "
	    "[IPV6-ADDRESS]:PORT or *:PORT, got '%s'", key, value);
out:
	free(host);
	return ret;
}

void
config_set_listen(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	char *host;
	uint16_t port;

	(void)sec;
	if (config_parse_address(p, d->name, value, &host, &port) != 0)
		return;
	free(p->cfg->listen_host);
	p->cfg->listen_host = host;
	p->cfg->listen_port = port;
}

/* Empty: unset (the default), /metrics stays on listen.  That the port
 * differs from listen's is checked once both are known (config_finish()). */
void
config_set_metrics_listen(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	char *host;
	uint16_t port;

	(void)sec;
	free(p->cfg->metrics_listen_host);
	p->cfg->metrics_listen_host = NULL;
	p->cfg->metrics_listen_port = 0;
	p->cfg->metrics_listen_line = p->lineno;
	if (*value == '\0' ||
	    config_parse_address(p, d->name, value, &host, &port) != 0)
		return;
	p->cfg->metrics_listen_host = host;
	p->cfg->metrics_listen_port = port;
}

/* Open a file for reading the way its user will, without blocking. */
int
config_open_file(const char *path, struct stat *st)
{
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

void
config_set_ca_file(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	struct stat st;
	char *path;
	int fd;

	(void)sec;
	(void)d;
	if (*value == '\0')
		return;			/* explicitly the system trust store */
	path = config_resolve_path(p, value);
	fd = config_open_file(path, &st);
	if (fd < 0) {
		config_error(p, p->lineno, "ca_file: cannot read '%s': %s", path,
		    strerror(errno));
		free(path);
		return;
	}
	close(fd);
	if (!S_ISREG(st.st_mode)) {
		config_error(p, p->lineno, "ca_file: '%s' is not a regular file",
		    path);
		free(path);
		return;
	}
	p->cfg->ca_file = path;
}

/* tls_cert_file, tls_key_file: readable regular files; whether they are PEM
 * and belong together is checked by config_check_tls() once both are known. */
void
config_set_tls_file(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	char **field = (char **)((char *)p->cfg + d->offset);
	struct stat st;
	char *path;
	int fd;

	(void)sec;
	if (*value == '\0') {
		config_error(p, p->lineno, "%s: empty file name", d->name);
		return;
	}
	path = config_resolve_path(p, value);
	fd = config_open_file(path, &st);
	if (fd < 0) {
		config_error(p, p->lineno, "%s: cannot read '%s': %s", d->name,
		    path, strerror(errno));
		free(path);
		return;
	}
	close(fd);
	if (!S_ISREG(st.st_mode)) {
		config_error(p, p->lineno, "%s: '%s' is not a regular file",
		    d->name, path);
		free(path);
		return;
	}
	free(*field);
	*field = path;
	if (p->lineno > p->cfg->tls_line)
		p->cfg->tls_line = p->lineno;
}

void
config_set_tls_priorities(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	gnutls_priority_t prio;
	const char *err = NULL;

	(void)sec;
	(void)d;
	if (gnutls_priority_init(&prio, value, &err) != GNUTLS_E_SUCCESS) {
		config_error(p, p->lineno, "tls_priorities: not a valid GnuTLS "
		    "priority string at '%s'", err != NULL ? err : value);
		return;
	}
	gnutls_priority_deinit(prio);
	free(p->cfg->tls_priorities);
	p->cfg->tls_priorities = config_xstrdup(value);
}
