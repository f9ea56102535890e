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
 * The parser is four files (config_parser.h, their shared types, lists
 * them): this one drives it and holds the directive table; the setters of
 * the fixed sections and of the named ones, and the shared helpers, are
 * in files of their own.
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

#include "config_parser.h"

static const struct config_kind_info config_kinds[] = {
	[CONFIG_KIND_SERVER] = { "server", false },
	[CONFIG_KIND_UPSTREAM] = { "upstream", false },
	[CONFIG_KIND_EVENTS] = { "events", false },
	[CONFIG_KIND_TRACE] = { "trace", false },
	[CONFIG_KIND_PROVIDER] = { "provider", true },
	[CONFIG_KIND_ENVIRONMENT] = { "environment", true },
	[CONFIG_KIND_KEY] = { "key", true },
};


/* Cross references between sections */


struct provider *
config_provider_of(struct config_parser *p, struct config_section *sec)
{
	return &p->cfg->providers[sec->index];
}

struct environment *
config_environment_of(struct config_parser *p, struct config_section *sec)
{
	return &p->cfg->environments[sec->index];
}

struct apikey *
config_key_of(struct config_parser *p, struct config_section *sec)
{
	return &p->cfg->keys[sec->index];
}

/* "server" or "provider openai", as in messages. */
const char *
config_section_label(const struct config_section *sec, char *buf, size_t size)
{
	if (sec->name == NULL)
		snprintf(buf, size, "%s", config_kinds[sec->kind].name);
	else
		snprintf(buf, size, "%s %s", config_kinds[sec->kind].name, sec->name);
	return buf;
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
	{ "redis", CONFIG_KIND_EVENTS, 0, config_set_redis,
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
size_t
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
	cfg->max_header_size = (size_t)16 << 10;
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
