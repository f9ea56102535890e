/*
 * config.c - parse and validate whyops.conf into an immutable struct config.
 *
 * The file is INI as libinih reads it.  Debian's libinih is built without
 * INI_HANDLER_LINENO and without INI_CALL_HANDLER_ON_NEW_SECTION, so inih
 * alone can tell us neither the line of a name = value pair nor where a
 * section starts (an empty or repeated section is invisible to the
 * handler).  We therefore feed inih through ini_parse_stream() with our own
 * reader, config_reader(), which hands over one physical line per call and
 * counts it.  inih calls the handler synchronously while it digests the
 * line the reader just returned, so the reader's counter is the line of
 * every pair the handler sees.  The reader also:
 *
 *   - recognises "[kind name]" headers and opens the section itself
 *     (config_section_begin()); the handler's section argument is unused;
 *   - strips leading whitespace, so keys may be indented and inih's
 *     multi-line continuation (an indented line glued onto the previous
 *     value, on by default) can never trigger;
 *   - reports malformed, over-long and NUL-containing lines itself and
 *     passes inih an empty line instead, so that every syntax error is
 *     reported, not only the first line number inih returns.
 *
 * inih still does the splitting: name and value at the first '=' or ':',
 * whitespace trimming, and inline comments (';' preceded by whitespace; in
 * Debian's build INI_ALLOW_INLINE_COMMENTS is 1 and the prefixes are ";").
 * Its line buffer is INI_MAX_LINE (200) bytes, which the reader enforces.
 *
 * Checking happens in two steps.  The handler checks each value on its
 * own, through the table config_directives[], and stores it.  After the
 * whole file, config_finish() checks what needs all of it: required keys,
 * names that refer to sections defined anywhere in the file, and duplicate
 * key hashes, and it resolves those names to borrowed pointers (only then
 * are the arrays final).  Every problem becomes a diagnostic; they are
 * printed sorted by line once parsing is over, and any error makes
 * config_load() fail.
 *
 * Side effects: none besides reading the configuration file, each
 * api_key_file, opening ca_file to check it is readable, and getenv() for
 * api_key_env.  Secrets (api_key values, key file contents, header values,
 * sha256 values) never appear in a diagnostic; api keys are wiped before
 * their memory is freed.
 *
 * Threads: config_load() keeps no global state, but getenv() must not race
 * a setenv(); main calls it once at startup, before any thread exists.
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

#include "config.h"

#define CONFIG_ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))
#define CONFIG_MAX_DIRECTIVES	64
#define CONFIG_SECRET_MAX	(64 * 1024)	/* larger api_key_file: a mistake */
#define CONFIG_KEY_MAX		4000		/* real keys are a few hundred */

#define CONFIG_REQUIRED		0x1u
#define CONFIG_REPEATABLE	0x2u

const char *const provider_type_names[] = {
	[PROVIDER_OPENAI] = "openai",
	[PROVIDER_ANTHROPIC] = "anthropic",
};

static const char *const config_log_level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

enum config_kind {
	CONFIG_KIND_SERVER,
	CONFIG_KIND_UPSTREAM,
	CONFIG_KIND_EVENTS,
	CONFIG_KIND_TRACE,
	CONFIG_KIND_PROVIDER,
	CONFIG_KIND_ENVIRONMENT,
	CONFIG_KIND_KEY,
};

struct config_kind_info {
	const char *name;
	bool named;			/* "[provider NAME]" rather than "[server]" */
};

static const struct config_kind_info config_kinds[] = {
	[CONFIG_KIND_SERVER] = { "server", false },
	[CONFIG_KIND_UPSTREAM] = { "upstream", false },
	[CONFIG_KIND_EVENTS] = { "events", false },
	[CONFIG_KIND_TRACE] = { "trace", false },
	[CONFIG_KIND_PROVIDER] = { "provider", true },
	[CONFIG_KIND_ENVIRONMENT] = { "environment", true },
	[CONFIG_KIND_KEY] = { "key", true },
};

/* Parse-time state of one section; the object itself lives in the config. */
struct config_section {
	enum config_kind kind;
	char *name;			/* NULL for [server] and [upstream] */
	int line;
	size_t index;			/* into the config's array of that kind */
	int seen[CONFIG_MAX_DIRECTIVES];	/* line a directive was first set */
	char **refs;			/* names resolved by config_finish() */
	size_t nrefs;
	int refs_line;
	bool sha256_ok;
};

struct config_diag {
	int line;			/* 0 = the whole file */
	size_t seq;			/* keeps the sort stable */
	bool warning;
	char *text;
};

/* A node of the per-kind name index (tsearch(3)): thousands of keys. */
struct config_name {
	const char *name;		/* the section's own copy; "" if unnamed */
	size_t section;			/* index into the parser's sections */
};

struct config_parser {
	struct config *cfg;		/* owned until handed to the caller */
	const char *path;
	char *dir;			/* of path, for relative names; NULL = "." */
	FILE *file;
	char *line;			/* getline() buffer */
	size_t linesize;
	int lineno;
	struct config_section *sections;
	size_t nsections;
	void *names[CONFIG_KIND_KEY + 1];	/* tsearch roots, by kind */
	struct config_section *cur;	/* NULL outside a valid section */
	bool skipping;			/* after a rejected header: ignore keys */
	struct config_diag *diags;
	size_t ndiags;
	unsigned nerrors;
};

struct config_directive {
	const char *name;
	enum config_kind kind;
	unsigned flags;			/* CONFIG_REQUIRED, CONFIG_REPEATABLE */
	void (*set)(struct config_parser *p, struct config_section *sec,
	    const struct config_directive *d, const char *value);
	size_t offset;			/* field of struct config, generic setters */
	unsigned long long min, max;
};

/* Allocation: small and bounded, so failure aborts (STYLE.md). */

static void *
config_xrealloc(void *ptr, size_t n, size_t size)
{
	void *p;

	if (size != 0 && n > SIZE_MAX / size)
		abort();
	p = realloc(ptr, n * size != 0 ? n * size : 1);
	if (p == NULL)
		abort();
	return p;
}

/*
 * Room for element n of an array that grows only through here, one element
 * at a time: its capacity is the next power of two, so pushes stay O(1).
 */
static void *
config_grow(void *ptr, size_t n, size_t size)
{
	if (n != 0 && (n & (n - 1)) != 0)
		return ptr;
	return config_xrealloc(ptr, n == 0 ? 1 : 2 * n, size);
}

static char *
config_xstrndup(const char *s, size_t len)
{
	char *p = strndup(s, len);

	if (p == NULL)
		abort();
	return p;
}

static char *
config_xstrdup(const char *s)
{
	return config_xstrndup(s, strlen(s));
}

static void
config_free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Character classes, ASCII only whatever the locale. */

static bool
config_is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	    c == '\f';
}

static bool
config_is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
config_hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Section, provider, environment and key names: [A-Za-z0-9._-]+ */
static bool
config_is_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!config_is_alnum(*s) && strchr("._-", *s) == NULL)
			return false;
	}
	return true;
}

/* RFC 9110 5.6.2: token = 1*tchar */
static bool
config_is_token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!config_is_alnum(s[i]) && strchr("!#$%&'*+-.^_`|~", s[i]) == NULL)
			return false;
	}
	return true;
}

static bool
config_is_env_name(const char *s)
{
	if (!(*s == '_' || (config_is_alnum(*s) && !(*s >= '0' && *s <= '9'))))
		return false;
	for (s++; *s != '\0'; s++) {
		if (!config_is_alnum(*s) && *s != '_')
			return false;
	}
	return true;
}

/* An API key goes into a request header: visible ASCII, no spaces. */
static bool
config_is_secret(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	}
	return true;
}

/* Trim [*s, *e) in place of the pointers. */
static void
config_trim(const char **s, const char **e)
{
	while (*s < *e && config_is_space(**s))
		(*s)++;
	while (*e > *s && config_is_space((*e)[-1]))
		(*e)--;
}

/* Diagnostics */

static void __attribute__((format(printf, 4, 0)))
config_vdiag(struct config_parser *p, int line, bool warning, const char *fmt,
    va_list ap)
{
	struct config_diag *d;
	char *text;

	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	/* Values are echoed in messages: keep control bytes off the tty. */
	for (char *s = text; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
	p->diags = config_grow(p->diags, p->ndiags, sizeof(*p->diags));
	d = &p->diags[p->ndiags];
	d->line = line;
	d->seq = p->ndiags++;
	d->warning = warning;
	d->text = text;
	if (!warning)
		p->nerrors++;
}

static void __attribute__((format(printf, 3, 4)))
config_error(struct config_parser *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vdiag(p, line, false, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
config_warning(struct config_parser *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vdiag(p, line, true, fmt, ap);
	va_end(ap);
}

static int
config_diag_cmp(const void *a, const void *b)
{
	const struct config_diag *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
config_print_diags(struct config_parser *p, FILE *errs)
{
	if (p->ndiags > 1)
		qsort(p->diags, p->ndiags, sizeof(*p->diags), config_diag_cmp);
	for (size_t i = 0; errs != NULL && i < p->ndiags; i++) {
		fprintf(errs, "%s:%d: %s%s\n", p->path, p->diags[i].line,
		    p->diags[i].warning ? "warning: " : "", p->diags[i].text);
	}
	if (errs != NULL)
		fflush(errs);
}

/* Value parsers */

/* Decimal digits only (no sign, no spaces), at most max. */
static int
config_parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned digit = (unsigned)(*s - '0');

		if (*s < '0' || *s > '9')
			return -1;
		if (v > max / 10 || digit > max - v * 10)
			return -1;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}

/*
 * Split "123suffix" and parse the number; *suffix points at the rest.  The
 * number is bounded by max; the caller scales it.
 */
static int
config_parse_number(const char *s, unsigned long long max,
    unsigned long long *v, const char **suffix)
{
	size_t n = strspn(s, "0123456789");
	char digits[32];

	if (n == 0 || n >= sizeof(digits))
		return -1;
	memcpy(digits, s, n);
	digits[n] = '\0';
	*suffix = s + n;
	return config_parse_ull(digits, max, v);
}

int
config_parse_duration(const char *s, unsigned *ms)
{
	unsigned long long v, scale;
	const char *suffix;

	if (config_parse_number(s, UINT_MAX, &v, &suffix) < 0)
		return -1;
	if (strcasecmp(suffix, "ms") == 0)
		scale = 1;
	else if (*suffix == '\0' || strcasecmp(suffix, "s") == 0)
		scale = 1000;
	else if (strcasecmp(suffix, "m") == 0)
		scale = 60 * 1000;
	else
		return -1;
	if (v > UINT_MAX / scale)
		return -1;
	*ms = (unsigned)(v * scale);
	return 0;
}

int
config_parse_size(const char *s, size_t *bytes)
{
	unsigned long long v;
	size_t scale;
	const char *suffix;

	if (config_parse_number(s, SIZE_MAX, &v, &suffix) < 0)
		return -1;
	if (*suffix == '\0')
		scale = 1;
	else if (strcasecmp(suffix, "K") == 0)
		scale = (size_t)1 << 10;
	else if (strcasecmp(suffix, "M") == 0)
		scale = (size_t)1 << 20;
	else if (strcasecmp(suffix, "G") == 0)
		scale = (size_t)1 << 30;
	else
		return -1;
	if (v > SIZE_MAX / scale)
		return -1;
	*bytes = (size_t)v * scale;
	return 0;
}

int
config_parse_bool(const char *s, bool *b)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < CONFIG_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b = false;
			return 0;
		}
	}
	return -1;
}

/* "32M", "1K", or "1000 bytes": for range messages. */
static void
config_format_size(unsigned long long v, char *buf, size_t size)
{
	static const char units[] = "GMK";

	for (int i = 0; i < 3; i++) {
		unsigned long long scale = 1ull << (10 * (3 - i));

		if (v != 0 && v % scale == 0) {
			snprintf(buf, size, "%llu%c", v / scale, units[i]);
			return;
		}
	}
	snprintf(buf, size, "%llu byte%s", v, v == 1 ? "" : "s");
}

/* A relative file name is relative to the directory of the config file. */
static char *
config_resolve_path(struct config_parser *p, const char *name)
{
	char *path;

	if (name[0] == '/' || p->dir == NULL)
		return config_xstrdup(name);
	if (asprintf(&path, "%s/%s", p->dir, name) < 0)
		abort();
	return path;
}

/* Cross references between sections */

static size_t config_directive_index(enum config_kind kind, const char *name);

static struct provider *
config_provider_of(struct config_parser *p, struct config_section *sec)
{
	return &p->cfg->providers[sec->index];
}

static struct environment *
config_environment_of(struct config_parser *p, struct config_section *sec)
{
	return &p->cfg->environments[sec->index];
}

static struct apikey *
config_key_of(struct config_parser *p, struct config_section *sec)
{
	return &p->cfg->keys[sec->index];
}

/* "server" or "provider openai", as in messages. */
static const char *
config_section_label(const struct config_section *sec, char *buf, size_t size)
{
	if (sec->name == NULL)
		snprintf(buf, size, "%s", config_kinds[sec->kind].name);
	else
		snprintf(buf, size, "%s %s", config_kinds[sec->kind].name, sec->name);
	return buf;
}

/* Setters for [server] and [upstream]: fields of struct config at an offset */

static void
config_set_uint(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	unsigned long long v;

	(void)sec;
	if (config_parse_ull(value, d->max, &v) < 0 || v < d->min) {
		config_error(p, p->lineno, "%s: expected a whole number from %llu "
		    "to %llu, got '%s'", d->name, d->min, d->max, value);
		return;
	}
	*(unsigned *)(void *)((char *)p->cfg + d->offset) = (unsigned)v;
}

static void
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

static void
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
static int
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

static void
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

static void
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

static char *config_read_secret(struct config_parser *p, const char *path, const char *name);

static void
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

static void
config_set_spool_dir(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	(void)sec;
	(void)d;
	free(p->cfg->events_spool_dir);
	p->cfg->events_spool_dir = *value == '\0' ? NULL :
	    config_resolve_path(p, value);
}

static void
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

static void
config_set_ulong(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	unsigned long long v;

	(void)sec;
	if (config_parse_ull(value, d->max, &v) < 0 || v < d->min) {
		config_error(p, p->lineno, "%s: expected a whole number from %llu "
		    "to %llu, got '%s'", d->name, d->min, d->max, value);
		return;
	}
	*(unsigned long *)(void *)((char *)p->cfg + d->offset) = (unsigned long)v;
}

static void
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
static void
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

static void
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

static void
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
static void
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
static int
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

static void
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
static void
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

static void
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

/* Setters for [provider NAME] */

static void
config_set_type(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	int i = config_keyword(p, d, value, provider_type_names,
	    CONFIG_ARRAY_LEN(provider_type_names),
	    "openai or anthropic");

	if (i >= 0)
		config_provider_of(p, sec)->type = (enum provider_type)i;
}

/*
 * http(s)://authority[/path], stored without trailing slashes: paths such
 * as "/chat/completions" are appended to it.  The URL is never echoed: a
 * query string may hold a credential.
 */
static void
config_set_base_url(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	const char *authority;
	size_t len, alen;

	(void)d;
	if (strncasecmp(value, "http://", 7) == 0)
		authority = value + 7;
	else if (strncasecmp(value, "https://", 8) == 0)
		authority = value + 8;
	else {
		config_error(p, p->lineno, "base_url: must start with http:// or "
		    "https://");
		return;
	}
	alen = strcspn(authority, "/?#");
	if (!config_is_secret(value, strlen(value)))
		config_error(p, p->lineno, "base_url: must not contain spaces, "
		    "control or non-ASCII characters");
	else if (alen == 0)
		config_error(p, p->lineno, "base_url: missing host name");
	else if (memchr(authority, '@', alen) != NULL)
		config_error(p, p->lineno, "base_url: must not contain user "
		    "credentials; use api_key_file, api_key_env or api_key");
	else if (strpbrk(authority, "?#") != NULL)
		config_error(p, p->lineno, "base_url: must not contain a query or "
		    "fragment");
	else {
		len = strlen(value);
		while (value[len - 1] == '/')
			len--;
		config_provider_of(p, sec)->base_url = config_xstrndup(value, len);
	}
}

/* api_key_file, api_key_env and api_key exclude each other. */
static bool
config_credential_conflict(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d)
{
	static const char *const names[] = { "api_key_file", "api_key_env",
	    "api_key" };
	char label[128];

	for (size_t i = 0; i < CONFIG_ARRAY_LEN(names); i++) {
		size_t j = config_directive_index(CONFIG_KIND_PROVIDER, names[i]);

		if (strcmp(names[i], d->name) == 0 || sec->seen[j] == 0)
			continue;
		config_error(p, p->lineno, "%s: %s already has %s (line %d); use "
		    "only one of api_key_file, api_key_env and api_key", d->name,
		    config_section_label(sec, label, sizeof(label)), names[i],
		    sec->seen[j]);
		return true;
	}
	return false;
}

/*
 * Read a key file: surrounding whitespace is dropped, what remains must be
 * one printable token.  Returns the key or NULL after reporting why.
 */
static char *
config_read_secret(struct config_parser *p, const char *path, const char *name)
{
	char *buf = NULL, *key = NULL;
	const char *s, *e;
	size_t len = 0;
	struct stat st;
	ssize_t n;
	int fd;

	fd = config_open_file(path, &st);
	if (fd < 0) {
		config_error(p, p->lineno, "%s: cannot read '%s': %s",
		    name, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		config_error(p, p->lineno, "%s: '%s' is not a regular "
		    "file", name, path);
		goto out;
	}
	buf = config_xrealloc(NULL, CONFIG_SECRET_MAX + 1, 1);
	while (len <= CONFIG_SECRET_MAX) {
		n = read(fd, buf + len, CONFIG_SECRET_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			config_error(p, p->lineno, "%s: cannot read "
			    "'%s': %s", name, path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	s = buf;
	e = buf + len;
	config_trim(&s, &e);
	if (len > CONFIG_SECRET_MAX)
		config_error(p, p->lineno, "%s: '%s' is larger than "
		    "64K; it should hold only the key", name, path);
	else if (s == e)
		config_error(p, p->lineno, "%s: '%s' is empty", name, path);
	else if (e - s > CONFIG_KEY_MAX)
		config_error(p, p->lineno, "%s: the key in '%s' is longer "
		    "than %d characters", name, path, CONFIG_KEY_MAX);
	else if (!config_is_secret(s, (size_t)(e - s)))
		config_error(p, p->lineno, "%s: the key in '%s' contains "
		    "spaces, control or non-ASCII characters", name, path);
	else
		key = config_xstrndup(s, (size_t)(e - s));
out:
	if (buf != NULL) {
		explicit_bzero(buf, CONFIG_SECRET_MAX + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return key;
}

static void
config_set_api_key_file(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	char *path;

	if (config_credential_conflict(p, sec, d))
		return;
	if (*value == '\0') {
		config_error(p, p->lineno, "api_key_file: empty value");
		return;
	}
	path = config_resolve_path(p, value);
	config_provider_of(p, sec)->api_key = config_read_secret(p, path, d->name);
	free(path);
}

static void
config_set_api_key_env(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	const char *s, *e;

	if (config_credential_conflict(p, sec, d))
		return;
	if (!config_is_env_name(value)) {
		/* Not echoed: this is where a pasted key would end up. */
		config_error(p, p->lineno, "api_key_env: expected the name of an "
		    "environment variable (letters, digits and '_')");
		return;
	}
	s = getenv(value);
	e = s != NULL ? s + strlen(s) : NULL;
	if (s != NULL)
		config_trim(&s, &e);
	if (s == NULL || s == e)
		config_warning(p, p->lineno, "environment variable %s is not set; "
		    "provider %s will send no credentials", value, sec->name);
	else if (e - s > CONFIG_KEY_MAX)
		config_error(p, p->lineno, "api_key_env: environment variable %s is "
		    "longer than %d characters", value, CONFIG_KEY_MAX);
	else if (!config_is_secret(s, (size_t)(e - s)))
		config_error(p, p->lineno, "api_key_env: environment variable %s "
		    "contains spaces, control or non-ASCII characters", value);
	else
		config_provider_of(p, sec)->api_key =
		    config_xstrndup(s, (size_t)(e - s));
}

static void
config_set_api_key(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	if (config_credential_conflict(p, sec, d))
		return;
	if (*value == '\0')
		config_error(p, p->lineno, "api_key: empty value");
	else if (!config_is_secret(value, strlen(value)))
		config_error(p, p->lineno, "api_key: the key contains spaces, "
		    "control or non-ASCII characters");
	else
		config_provider_of(p, sec)->api_key = config_xstrdup(value);
}

/* Split value at whitespace and append each word to *list. */
static size_t
config_split_append(const char *value, char ***list, size_t *n)
{
	size_t added = 0;

	for (;;) {
		size_t len;

		value += strspn(value, " \t");
		len = strcspn(value, " \t");
		if (len == 0)
			return added;
		*list = config_grow(*list, *n, sizeof(**list));
		(*list)[(*n)++] = config_xstrndup(value, len);
		value += len;
		added++;
	}
}

static void
config_set_models(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	struct provider *pr = config_provider_of(p, sec);

	(void)d;
	if (config_split_append(value, &pr->models, &pr->nmodels) == 0)
		config_error(p, p->lineno, "models: empty list");
}

/* Headers that the proxy itself sets, or that are hop-by-hop (RFC 9110 7.6.1). */
static const char *const config_reserved_headers[] = {
	"Host", "Content-Length", "Transfer-Encoding", "Connection",
	"Authorization", "x-api-key", "Keep-Alive", "Proxy-Connection", "TE",
	"Trailer", "Upgrade",
};

/* "Name: value".  The value may be a credential: it is never echoed. */
static void
config_set_header(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	struct provider *pr = config_provider_of(p, sec);
	const char *colon = strchr(value, ':');
	const char *ns = value, *ne, *vs, *ve;
	struct config_header *h;

	(void)d;
	if (colon == NULL || colon == value) {
		config_error(p, p->lineno, "header: expected 'Name: value'");
		return;
	}
	ne = colon;
	config_trim(&ns, &ne);
	if (!config_is_token(ns, (size_t)(ne - ns))) {
		config_error(p, p->lineno, "header: the name before ':' is not a "
		    "valid header name (letters, digits and !#$%%&'*+-.^_`|~)");
		return;
	}
	for (size_t i = 0; i < CONFIG_ARRAY_LEN(config_reserved_headers); i++) {
		if (strlen(config_reserved_headers[i]) == (size_t)(ne - ns) &&
		    strncasecmp(ns, config_reserved_headers[i], (size_t)(ne - ns)) == 0) {
			config_error(p, p->lineno, "header: %.*s is set by the proxy "
			    "and cannot be configured", (int)(ne - ns), ns);
			return;
		}
	}
	vs = colon + 1;
	ve = vs + strlen(vs);
	config_trim(&vs, &ve);
	if (vs == ve) {
		config_error(p, p->lineno, "header %.*s: empty value",
		    (int)(ne - ns), ns);
		return;
	}
	pr->headers = config_grow(pr->headers, pr->nheaders, sizeof(*pr->headers));
	h = &pr->headers[pr->nheaders++];
	h->name = config_xstrndup(ns, (size_t)(ne - ns));
	h->value = config_xstrndup(vs, (size_t)(ve - vs));
}

/* Setters for [environment NAME] */

static void
config_set_project(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	(void)d;
	if (*value == '\0')
		config_error(p, p->lineno, "project: empty value");
	else
		config_environment_of(p, sec)->project = config_xstrdup(value);
}

/* Names only; config_finish() resolves them once every provider is known. */
static void
config_set_providers(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	char label[128];

	(void)d;
	sec->refs_line = p->lineno;
	if (config_split_append(value, &sec->refs, &sec->nrefs) == 0) {
		config_error(p, p->lineno, "providers: empty list");
		return;
	}
	for (size_t i = 1; i < sec->nrefs; i++) {
		for (size_t j = 0; j < i; j++) {
			if (strcmp(sec->refs[i], sec->refs[j]) == 0) {
				config_error(p, p->lineno, "%s: provider '%s' is "
				    "listed twice", config_section_label(sec, label,
				    sizeof(label)), sec->refs[i]);
				break;
			}
		}
	}
}

/* Setters for [key NAME] */

static void
config_set_sha256(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	struct apikey *k = config_key_of(p, sec);

	(void)d;
	if (strlen(value) != 64 || strspn(value, "0123456789abcdefABCDEF") != 64) {
		config_error(p, p->lineno, "sha256: expected 64 hexadecimal digits "
		    "(as printed by whyops-proxy --new-key)");
		return;
	}
	for (size_t i = 0; i < 32; i++) {
		k->sha256[i] = (uint8_t)(config_hex_value(value[2 * i]) << 4 |
		    config_hex_value(value[2 * i + 1]));
	}
	sec->sha256_ok = true;
}

static void
config_set_key_environment(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	(void)d;
	sec->refs_line = p->lineno;
	if (*value == '\0') {
		config_error(p, p->lineno, "environment: empty value");
		return;
	}
	config_split_append(value, &sec->refs, &sec->nrefs);
	if (sec->nrefs != 1)
		config_error(p, p->lineno, "environment: expected one environment "
		    "name");
}

static void
config_set_agent(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	(void)d;
	if (*value == '\0')
		config_error(p, p->lineno, "agent: empty value");
	else
		config_key_of(p, sec)->agent = config_xstrdup(value);
}

#define CONFIG_FIELD(f)	offsetof(struct config, f)

static const struct config_directive config_directives[] = {
	{ "listen", CONFIG_KIND_SERVER, 0, config_set_listen, 0, 0, 0 },
	{ "metrics_listen", CONFIG_KIND_SERVER, 0, config_set_metrics_listen,
	    0, 0, 0 },
	{ "threads", CONFIG_KIND_SERVER, 0, config_set_uint,
	    CONFIG_FIELD(threads), 0, 256 },
	{ "max_connections", CONFIG_KIND_SERVER, 0, config_set_uint,
	    CONFIG_FIELD(max_connections), 1, 1000000 },
	{ "max_body_size", CONFIG_KIND_SERVER, 0, config_set_size,
	    CONFIG_FIELD(max_body_size), 1, SIZE_MAX },
	{ "max_header_size", CONFIG_KIND_SERVER, 0, config_set_size,
	    CONFIG_FIELD(max_header_size), 1024, 1024 * 1024 },
	{ "client_idle_timeout", CONFIG_KIND_SERVER, 0, config_set_duration,
	    CONFIG_FIELD(client_idle_timeout_ms), 1, UINT_MAX },
	{ "log_level", CONFIG_KIND_SERVER, 0, config_set_log_level, 0, 0, 0 },
	{ "drain_timeout", CONFIG_KIND_SERVER, 0, config_set_duration,
	    CONFIG_FIELD(drain_timeout_ms), 0, UINT_MAX },
	{ "tls_cert_file", CONFIG_KIND_SERVER, 0, config_set_tls_file,
	    CONFIG_FIELD(tls_cert_file), 0, 0 },
	{ "tls_key_file", CONFIG_KIND_SERVER, 0, config_set_tls_file,
	    CONFIG_FIELD(tls_key_file), 0, 0 },
	{ "tls_priorities", CONFIG_KIND_SERVER, 0, config_set_tls_priorities,
	    0, 0, 0 },
	{ "connect_timeout", CONFIG_KIND_UPSTREAM, 0, config_set_duration,
	    CONFIG_FIELD(connect_timeout_ms), 1, UINT_MAX },
	{ "first_byte_timeout", CONFIG_KIND_UPSTREAM, 0, config_set_duration,
	    CONFIG_FIELD(first_byte_timeout_ms), 1, UINT_MAX },
	{ "idle_timeout", CONFIG_KIND_UPSTREAM, 0, config_set_duration,
	    CONFIG_FIELD(idle_timeout_ms), 1, UINT_MAX },
	{ "ca_file", CONFIG_KIND_UPSTREAM, 0, config_set_ca_file, 0, 0, 0 },
	{ "force_stream_usage", CONFIG_KIND_UPSTREAM, 0, config_set_bool,
	    CONFIG_FIELD(force_stream_usage), 0, 0 },
	{ "max_event_size", CONFIG_KIND_UPSTREAM, 0, config_set_size,
	    CONFIG_FIELD(max_event_size), 1024, (size_t)1 << 30 },
	{ "sink", CONFIG_KIND_EVENTS, 0, config_set_sink, 0, 0, 0 },
	{ "file", CONFIG_KIND_EVENTS, 0, config_set_events_file, 0, 0, 0 },
	{ "queue_size", CONFIG_KIND_EVENTS, 0, config_set_uint,
	    CONFIG_FIELD(events_queue_size), 16, 16777216 },
	{ "capture", CONFIG_KIND_EVENTS, 0, config_set_capture, 0, 0, 0 },
	{ "redis", CONFIG_KIND_EVENTS, 0, config_set_events_string,
	    CONFIG_FIELD(events_redis), 0, 0 },
	{ "redis_user", CONFIG_KIND_EVENTS, 0, config_set_events_string,
	    CONFIG_FIELD(events_redis_user), 0, 0 },
	{ "redis_password_file", CONFIG_KIND_EVENTS, 0,
	    config_set_redis_password_file, 0, 0, 0 },
	{ "redis_db", CONFIG_KIND_EVENTS, 0, config_set_uint,
	    CONFIG_FIELD(events_redis_db), 0, 100000 },
	{ "redis_timeout", CONFIG_KIND_EVENTS, 0, config_set_duration,
	    CONFIG_FIELD(events_redis_timeout_ms), 1, UINT_MAX },
	{ "stream", CONFIG_KIND_EVENTS, 0, config_set_events_string,
	    CONFIG_FIELD(events_stream), 0, 0 },
	{ "stream_maxlen", CONFIG_KIND_EVENTS, 0, config_set_ulong,
	    CONFIG_FIELD(events_stream_maxlen), 0, 4000000000ULL },
	{ "spool_dir", CONFIG_KIND_EVENTS, 0, config_set_spool_dir, 0, 0, 0 },
	{ "spool_max_size", CONFIG_KIND_EVENTS, 0, config_set_size,
	    CONFIG_FIELD(events_spool_max), 1024 * 1024, SIZE_MAX },
	{ "signature", CONFIG_KIND_TRACE, 0, config_set_bool,
	    CONFIG_FIELD(trace_signature), 0, 0 },
	{ "map_size", CONFIG_KIND_TRACE, 0, config_set_uint,
	    CONFIG_FIELD(trace_map_size), 1, 100000000 },
	{ "map_ttl", CONFIG_KIND_TRACE, 0, config_set_duration,
	    CONFIG_FIELD(trace_map_ttl_ms), 1000, UINT_MAX },
	{ "type", CONFIG_KIND_PROVIDER, CONFIG_REQUIRED, config_set_type, 0, 0, 0 },
	{ "base_url", CONFIG_KIND_PROVIDER, CONFIG_REQUIRED, config_set_base_url,
	    0, 0, 0 },
	{ "api_key_file", CONFIG_KIND_PROVIDER, 0, config_set_api_key_file,
	    0, 0, 0 },
	{ "api_key_env", CONFIG_KIND_PROVIDER, 0, config_set_api_key_env, 0, 0, 0 },
	{ "api_key", CONFIG_KIND_PROVIDER, 0, config_set_api_key, 0, 0, 0 },
	{ "models", CONFIG_KIND_PROVIDER, CONFIG_REPEATABLE, config_set_models,
	    0, 0, 0 },
	{ "header", CONFIG_KIND_PROVIDER, CONFIG_REPEATABLE, config_set_header,
	    0, 0, 0 },
	{ "project", CONFIG_KIND_ENVIRONMENT, 0, config_set_project, 0, 0, 0 },
	{ "providers", CONFIG_KIND_ENVIRONMENT, CONFIG_REQUIRED,
	    config_set_providers, 0, 0, 0 },
	{ "sha256", CONFIG_KIND_KEY, CONFIG_REQUIRED, config_set_sha256, 0, 0, 0 },
	{ "environment", CONFIG_KIND_KEY, CONFIG_REQUIRED,
	    config_set_key_environment, 0, 0, 0 },
	{ "agent", CONFIG_KIND_KEY, 0, config_set_agent, 0, 0, 0 },
};

static const size_t config_ndirectives = CONFIG_ARRAY_LEN(config_directives);

_Static_assert(CONFIG_ARRAY_LEN(config_directives) <= CONFIG_MAX_DIRECTIVES,
    "raise CONFIG_MAX_DIRECTIVES");

/* Index of a directive in the table, also the index into seen[]. */
static size_t
config_directive_index(enum config_kind kind, const char *name)
{
	for (size_t i = 0; i < config_ndirectives; i++) {
		if (config_directives[i].kind == kind &&
		    strcmp(config_directives[i].name, name) == 0)
			return i;
	}
	return config_ndirectives;
}

/* inih handler: one name = value pair of the line the reader returned last */
static int
config_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct config_parser *p = user;
	struct config_section *sec = p->cur;
	char label[128];
	size_t i;

	(void)section;			/* see config_reader() */
	if (p->skipping)
		return 1;
	if (sec == NULL) {
		config_error(p, p->lineno, "'%s' is outside of any section", name);
		return 1;
	}
	if (*name == '\0') {
		config_error(p, p->lineno, "missing key name before '='");
		return 1;
	}
	i = config_directive_index(sec->kind, name);
	if (i == config_ndirectives) {
		config_error(p, p->lineno, "unknown key '%s' in [%s]", name,
		    config_section_label(sec, label, sizeof(label)));
		return 1;
	}
	if (sec->seen[i] != 0 && !(config_directives[i].flags & CONFIG_REPEATABLE)) {
		config_error(p, p->lineno, "duplicate key '%s' in [%s] (first set "
		    "at line %d)", name, config_section_label(sec, label,
		    sizeof(label)), sec->seen[i]);
		return 1;
	}
	if (sec->seen[i] == 0)
		sec->seen[i] = p->lineno;
	for (const char *c = value; *c != '\0'; c++) {
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
			/* Not echoed: the value may be a secret. */
			config_error(p, p->lineno, "%s: the value contains control "
			    "characters", name);
			return 1;
		}
	}
	config_directives[i].set(p, sec, &config_directives[i], value);
	return 1;
}

/* Sections */

static size_t
config_object_new(struct config *cfg, enum config_kind kind, const char *name,
    int line)
{
	size_t i = 0;

	switch (kind) {
	case CONFIG_KIND_PROVIDER:
		cfg->providers = config_grow(cfg->providers, cfg->nproviders,
		    sizeof(*cfg->providers));
		i = cfg->nproviders++;
		memset(&cfg->providers[i], 0, sizeof(cfg->providers[i]));
		cfg->providers[i].name = config_xstrdup(name);
		cfg->providers[i].line = line;
		break;
	case CONFIG_KIND_ENVIRONMENT:
		cfg->environments = config_grow(cfg->environments,
		    cfg->nenvironments, sizeof(*cfg->environments));
		i = cfg->nenvironments++;
		memset(&cfg->environments[i], 0, sizeof(cfg->environments[i]));
		cfg->environments[i].name = config_xstrdup(name);
		cfg->environments[i].line = line;
		break;
	case CONFIG_KIND_KEY:
		cfg->keys = config_grow(cfg->keys, cfg->nkeys, sizeof(*cfg->keys));
		i = cfg->nkeys++;
		memset(&cfg->keys[i], 0, sizeof(cfg->keys[i]));
		cfg->keys[i].name = config_xstrdup(name);
		cfg->keys[i].line = line;
		break;
	case CONFIG_KIND_SERVER:
	case CONFIG_KIND_UPSTREAM:
	case CONFIG_KIND_EVENTS:
	case CONFIG_KIND_TRACE:
		break;
	}
	return i;
}

static int
config_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct config_name *)a)->name,
	    ((const struct config_name *)b)->name);
}

/* The section [kind name]; name is NULL for [server] and [upstream]. */
static struct config_section *
config_section_find(struct config_parser *p, enum config_kind kind,
    const char *name)
{
	struct config_name key = { name != NULL ? name : "", 0 };
	struct config_name **found;

	found = tfind(&key, &p->names[kind], config_name_cmp);
	return found != NULL ? &p->sections[(*found)->section] : NULL;
}

static void
config_section_push(struct config_parser *p, enum config_kind kind,
    const char *name)
{
	struct config_section *sec;
	struct config_name *n;

	p->sections = config_grow(p->sections, p->nsections,
	    sizeof(*p->sections));
	sec = &p->sections[p->nsections];
	memset(sec, 0, sizeof(*sec));
	sec->kind = kind;
	sec->name = name != NULL ? config_xstrdup(name) : NULL;
	sec->line = p->lineno;
	sec->index = config_object_new(p->cfg, kind, name, p->lineno);
	n = config_xrealloc(NULL, 1, sizeof(*n));
	n->name = sec->name != NULL ? sec->name : "";
	n->section = p->nsections++;
	if (tsearch(n, &p->names[kind], config_name_cmp) == NULL)
		abort();
	p->cur = sec;
	p->skipping = false;
}

/* Check "[kind name]" and open the section; -1 after reporting a problem. */
static int
config_section_check(struct config_parser *p, char *content)
{
	const char *s = content, *e = content + strlen(content);
	const struct config_kind_info *k = NULL;
	struct config_section *dup;
	char *name;
	size_t i;

	config_trim(&s, &e);
	content[e - content] = '\0';
	content += s - content;
	name = content + strcspn(content, " \t");
	if (*name != '\0')
		*name++ = '\0';
	name += strspn(name, " \t");
	for (i = 0; i < CONFIG_ARRAY_LEN(config_kinds); i++) {
		if (strcmp(content, config_kinds[i].name) == 0) {
			k = &config_kinds[i];
			break;
		}
	}
	if (k == NULL) {
		config_error(p, p->lineno, "unknown section [%s] (expected [server], "
		    "[upstream], [events], [trace], [provider NAME], [environment NAME] "
		    "or [key NAME])", content);
		return -1;
	}
	if (k->named && *name == '\0') {
		config_error(p, p->lineno, "section [%s] needs a name, as in "
		    "[%s NAME]", k->name, k->name);
		return -1;
	}
	if (!k->named && *name != '\0') {
		config_error(p, p->lineno, "section [%s] takes no name", k->name);
		return -1;
	}
	if (k->named && !config_is_name(name)) {
		config_error(p, p->lineno, "invalid %s name '%s' (use letters, "
		    "digits, '.', '_' and '-')", k->name, name);
		return -1;
	}
	dup = config_section_find(p, (enum config_kind)i, k->named ? name : NULL);
	if (dup != NULL) {
		config_error(p, p->lineno, "duplicate section [%s%s%s] (first at "
		    "line %d)", k->name, k->named ? " " : "", name, dup->line);
		return -1;
	}
	config_section_push(p, (enum config_kind)i, k->named ? name : NULL);
	return 0;
}

/* A "[...]" line, trimmed.  Returns 0 when it opened a section, else -1. */
static int
config_section_begin(struct config_parser *p, const char *line)
{
	const char *end = strchr(line, ']');
	const char *rest;
	char *content;
	int ret;

	p->cur = NULL;			/* until the header proves good */
	p->skipping = true;
	if (end == NULL) {
		config_error(p, p->lineno, "missing ']' in section header");
		return -1;
	}
	rest = end + 1 + strspn(end + 1, " \t");
	if (*rest != '\0' && *rest != ';' && *rest != '#') {
		config_error(p, p->lineno, "unexpected text after ']'");
		return -1;
	}
	content = config_xstrndup(line + 1, (size_t)(end - line - 1));
	ret = config_section_check(p, content);
	free(content);
	return ret;
}

/*
 * Whether inih will find a '=' or ':' on this line: its
 * find_chars_or_comment(), which stops at an inline comment too.
 */
static bool
config_has_separator(const char *s)
{
	bool was_space = false;

	for (; *s != '\0'; s++) {
		if (*s == '=' || *s == ':')
			return true;
		if (was_space && *s == ';')
			return false;
		was_space = config_is_space(*s);
	}
	return false;
}

/*
 * Check a trimmed line of length len; size is inih's buffer.  Returns 0
 * when inih may have it, -1 when inih gets an empty line instead: for a
 * comment (so that its length does not matter) or after reporting an error.
 */
static int
config_line_check(struct config_parser *p, const char *s, size_t len, int size)
{
	if (*s == ';' || *s == '#')
		return -1;
	if (len >= (size_t)size) {
		config_error(p, p->lineno, "line too long (the limit is %d "
		    "characters)", size - 1);
		if (*s == '[') {
			p->cur = NULL;
			p->skipping = true;
		}
		return -1;
	}
	if (*s == '\0')
		return 0;
	if (*s == '[')
		return config_section_begin(p, s);
	if (!config_has_separator(s)) {
		config_error(p, p->lineno, "syntax error: expected 'name = value', "
		    "'[section]' or a comment");
		return -1;
	}
	return 0;
}

/* inih reader: one physical line per call, counted, trimmed and checked. */
static char *
config_reader(char *buf, int size, void *stream)
{
	struct config_parser *p = stream;
	const char *s, *e;
	ssize_t n;

	errno = 0;
	n = getline(&p->line, &p->linesize, p->file);
	if (n < 0) {
		if (ferror(p->file))
			config_error(p, 0, "cannot read configuration file: %s",
			    strerror(errno));
		return NULL;
	}
	p->lineno++;
	s = p->line;
	e = s + n;
	if (p->lineno == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;			/* UTF-8 byte order mark */
	config_trim(&s, &e);
	p->line[e - p->line] = '\0';
	if (memchr(p->line, '\0', (size_t)(e - p->line)) != NULL) {
		config_error(p, p->lineno, "line contains a NUL byte");
		s = e;
	} else if (config_line_check(p, s, (size_t)(e - s), size) < 0) {
		s = e;
	}
	memcpy(buf, s, (size_t)(e - s) + 1);
	return buf;
}

/* Whole-file checks and cross references */

static void
config_check_required(struct config_parser *p, struct config_section *sec)
{
	char label[128];

	for (size_t i = 0; i < config_ndirectives; i++) {
		const struct config_directive *d = &config_directives[i];

		if (d->kind == sec->kind && (d->flags & CONFIG_REQUIRED) &&
		    sec->seen[i] == 0)
			config_error(p, sec->line, "%s: missing required key '%s'",
			    config_section_label(sec, label, sizeof(label)), d->name);
	}
}

static void
config_resolve_environment(struct config_parser *p, struct config_section *sec)
{
	struct environment *env = config_environment_of(p, sec);
	struct config_section *ps;

	if (env->project == NULL)
		env->project = config_xstrdup(env->name);
	env->providers = config_xrealloc(NULL, sec->nrefs, sizeof(*env->providers));
	for (size_t i = 0; i < sec->nrefs; i++) {
		ps = config_section_find(p, CONFIG_KIND_PROVIDER, sec->refs[i]);
		if (ps == NULL) {
			config_error(p, sec->refs_line, "environment %s: provider "
			    "'%s' is not defined", sec->name, sec->refs[i]);
			continue;
		}
		env->providers[env->nproviders++] = config_provider_of(p, ps);
	}
}

static void
config_resolve_key(struct config_parser *p, struct config_section *sec)
{
	struct config_section *es;

	if (sec->nrefs != 1)
		return;			/* missing or already reported */
	es = config_section_find(p, CONFIG_KIND_ENVIRONMENT, sec->refs[0]);
	if (es == NULL)
		config_error(p, sec->refs_line, "key %s: environment '%s' is not "
		    "defined", sec->name, sec->refs[0]);
	else
		config_key_of(p, sec)->env = config_environment_of(p, es);
}

struct config_key_ref {
	const uint8_t *sha256;
	const struct config_section *sec;
};

static int
config_key_cmp(const void *a, const void *b)
{
	const struct config_key_ref *x = a, *y = b;
	int c = memcmp(x->sha256, y->sha256, 32);

	if (c != 0)
		return c;
	return x->sec->line < y->sec->line ? -1 : x->sec->line > y->sec->line;
}

/* Two keys with one hash: each later one is reported, at its sha256 line. */
static void
config_check_duplicate_keys(struct config_parser *p)
{
	size_t n = 0, first = 0;
	size_t sha = config_directive_index(CONFIG_KIND_KEY, "sha256");
	struct config_key_ref *v;

	v = config_xrealloc(NULL, p->nsections, sizeof(*v));
	for (size_t i = 0; i < p->nsections; i++) {
		if (p->sections[i].kind == CONFIG_KIND_KEY && p->sections[i].sha256_ok) {
			v[n].sha256 = p->cfg->keys[p->sections[i].index].sha256;
			v[n++].sec = &p->sections[i];
		}
	}
	qsort(v, n, sizeof(*v), config_key_cmp);
	for (size_t i = 1; i < n; i++) {
		if (memcmp(v[first].sha256, v[i].sha256, 32) != 0) {
			first = i;
			continue;
		}
		config_error(p, v[i].sec->seen[sha], "key %s: same sha256 as key %s "
		    "(line %d)", v[i].sec->name, v[first].sec->name,
		    v[first].sec->line);
	}
	free(v);
}

/*
 * Both TLS files or neither; when both, they must load as a PEM certificate
 * chain and its private key (into a scratch credential, thrown away).
 */
static void
config_check_tls(struct config_parser *p)
{
	struct config *cfg = p->cfg;
	gnutls_certificate_credentials_t cred;
	int rc;

	if (cfg->tls_cert_file == NULL && cfg->tls_key_file == NULL)
		return;
	if (cfg->tls_cert_file == NULL || cfg->tls_key_file == NULL) {
		config_error(p, cfg->tls_line, "[server] %s is set but %s is not: "
		    "HTTPS needs both", cfg->tls_cert_file ? "tls_cert_file" :
		    "tls_key_file", cfg->tls_cert_file ? "tls_key_file" :
		    "tls_cert_file");
		return;
	}
	if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS)
		abort();
	rc = gnutls_certificate_set_x509_key_file2(cred, cfg->tls_cert_file,
	    cfg->tls_key_file, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0)
		config_error(p, cfg->tls_line, "[server] tls_cert_file '%s' and "
		    "tls_key_file '%s' do not load as a PEM certificate (chain) and "
		    "its private key: %s", cfg->tls_cert_file, cfg->tls_key_file,
		    rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ?
		    "the key does not match the certificate" : gnutls_strerror(rc));
	gnutls_certificate_free_credentials(cred);
}

/* Port 0 (any free port) may be both: the kernel picks two ports. */
static void
config_check_metrics_listen(struct config_parser *p)
{
	const struct config *cfg = p->cfg;

	if (cfg->metrics_listen_host != NULL && cfg->metrics_listen_port != 0 &&
	    cfg->metrics_listen_port == cfg->listen_port)
		config_error(p, cfg->metrics_listen_line, "[server] metrics_listen: "
		    "port %u is listen's port too; the metrics listener needs a "
		    "port of its own", (unsigned)cfg->metrics_listen_port);
}

static void
config_finish(struct config_parser *p)
{
	for (size_t i = 0; i < p->nsections; i++) {
		struct config_section *sec = &p->sections[i];

		config_check_required(p, sec);
		if (sec->kind == CONFIG_KIND_ENVIRONMENT)
			config_resolve_environment(p, sec);
		else if (sec->kind == CONFIG_KIND_KEY)
			config_resolve_key(p, sec);
	}
	config_check_duplicate_keys(p);
	config_check_tls(p);
	config_check_metrics_listen(p);
}

/* Loading */

static struct config *
config_new(const char *path)
{
	struct config *cfg = config_xrealloc(NULL, 1, sizeof(*cfg));

	memset(cfg, 0, sizeof(*cfg));
	atomic_init(&cfg->refs, 1);
	cfg->path = config_xstrdup(path);
	cfg->listen_host = config_xstrdup("127.0.0.1");
	cfg->listen_port = 8080;
	cfg->threads = 0;
	cfg->max_connections = 10000;
	cfg->max_body_size = (size_t)32 << 20;
	cfg->max_header_size = (size_t)32 << 10;
	cfg->client_idle_timeout_ms = 60 * 1000;
	cfg->drain_timeout_ms = 30 * 1000;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->tls_priorities = config_xstrdup(CONFIG_DEFAULT_TLS_PRIORITIES);
	cfg->connect_timeout_ms = 10 * 1000;
	cfg->first_byte_timeout_ms = 300 * 1000;
	cfg->idle_timeout_ms = 120 * 1000;
	cfg->force_stream_usage = true;
	cfg->max_event_size = (size_t)4 << 20;
	cfg->events_sink = EVENTS_SINK_FILE;
	cfg->events_file = config_xstrdup(CONFIG_DEFAULT_EVENTS_FILE);
	cfg->events_queue_size = 65536;
	cfg->events_capture_content = true;
	cfg->events_redis = config_xstrdup("127.0.0.1:6379");
	cfg->events_stream = config_xstrdup("whyops:events");
	cfg->events_stream_maxlen = 200000;
	cfg->events_redis_timeout_ms = 1000;
	cfg->events_spool_dir = config_xstrdup(CONFIG_DEFAULT_SPOOL_DIR);
	cfg->events_spool_max = (size_t)1 << 30;
	cfg->trace_signature = true;
	cfg->trace_map_size = 100000;
	cfg->trace_map_ttl_ms = 24u * 3600 * 1000;
	return cfg;
}

static void
config_parser_free(struct config_parser *p)
{
	for (size_t i = 0; i < p->nsections; i++) {
		for (size_t j = 0; j < p->sections[i].nrefs; j++)
			free(p->sections[i].refs[j]);
		free(p->sections[i].refs);
		free(p->sections[i].name);
	}
	free(p->sections);
	for (size_t i = 0; i < CONFIG_ARRAY_LEN(p->names); i++)
		tdestroy(p->names[i], free);
	for (size_t i = 0; i < p->ndiags; i++)
		free(p->diags[i].text);
	free(p->diags);
	if (p->line != NULL)
		explicit_bzero(p->line, p->linesize);	/* may hold api_key */
	free(p->line);
	free(p->dir);
	if (p->file != NULL)
		fclose(p->file);
	config_free(p->cfg);
}

int
config_load(const char *path, struct config **out, FILE *errs)
{
	struct config_parser p;
	const char *slash;
	int ret = -1, rc;

	*out = NULL;
	memset(&p, 0, sizeof(p));
	p.path = path;
	p.cfg = config_new(path);
	if ((slash = strrchr(path, '/')) != NULL)
		p.dir = config_xstrndup(path, (size_t)(slash - path));
	p.file = fopen(path, "re");
	if (p.file == NULL) {
		config_error(&p, 0, "cannot open configuration file: %s",
		    strerror(errno));
		goto out;
	}
	rc = ini_parse_stream(config_reader, &p, config_handler, &p);
	if (rc == -2)
		abort();		/* inih could not allocate */
	if (rc > 0 && p.nerrors == 0)	/* the reader should have caught it */
		config_error(&p, rc, "syntax error");
	config_finish(&p);
	if (p.nerrors == 0) {
		*out = p.cfg;
		p.cfg = NULL;
		ret = 0;
	}
out:
	config_print_diags(&p, errs);
	config_parser_free(&p);
	return ret;
}

static void
config_free_provider(struct provider *pr)
{
	free(pr->name);
	free(pr->base_url);
	config_free_secret(pr->api_key);
	for (size_t i = 0; i < pr->nmodels; i++)
		free(pr->models[i]);
	free(pr->models);
	for (size_t i = 0; i < pr->nheaders; i++) {
		free(pr->headers[i].name);
		config_free_secret(pr->headers[i].value);
	}
	free(pr->headers);
}

const struct config *
config_ref(const struct config *cfg)
{
	atomic_fetch_add(&((struct config *)cfg)->refs, 1);
	return cfg;
}

void
config_unref(const struct config *cfg)
{
	if (cfg != NULL && atomic_fetch_sub(&((struct config *)cfg)->refs, 1) == 1)
		config_free((struct config *)cfg);
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	if (cfg->gen_free != NULL)
		cfg->gen_free(cfg->gen_data);
	for (size_t i = 0; i < cfg->nproviders; i++)
		config_free_provider(&cfg->providers[i]);
	free(cfg->providers);
	for (size_t i = 0; i < cfg->nenvironments; i++) {
		free(cfg->environments[i].name);
		free(cfg->environments[i].project);
		free(cfg->environments[i].providers);
	}
	free(cfg->environments);
	for (size_t i = 0; i < cfg->nkeys; i++) {
		free(cfg->keys[i].name);
		free(cfg->keys[i].agent);
	}
	free(cfg->keys);
	free(cfg->ca_file);
	free(cfg->events_file);
	free(cfg->events_redis);
	free(cfg->events_redis_user);
	config_free_secret(cfg->events_redis_password);
	free(cfg->events_stream);
	free(cfg->events_spool_dir);
	free(cfg->tls_cert_file);
	free(cfg->tls_key_file);
	free(cfg->tls_priorities);
	free(cfg->listen_host);
	free(cfg->metrics_listen_host);
	free(cfg->path);
	free(cfg);
}
