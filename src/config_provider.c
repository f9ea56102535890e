/*
 * config_provider.c - the directives of [provider NAME], [environment
 * NAME] and [key NAME].  Secrets (api_key values, key files, header
 * values, sha256 values) never appear in a diagnostic, and api keys are
 * wiped before their memory is freed.  Names of other sections are kept
 * as written; config.c resolves them once the whole file is read.
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
#include "hexdig.h"

const char *const provider_type_names[] = {
	[PROVIDER_OPENAI] = "openai",
	[PROVIDER_ANTHROPIC] = "anthropic",
};


/* Setters for [provider NAME] */

void
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
void
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
char *
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

void
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

void
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

void
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

void
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
void
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

void
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
void
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

void
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
		k->sha256[i] = (uint8_t)(hexdig_value(value[2 * i]) << 4 |
		    hexdig_value(value[2 * i + 1]));
	}
	sec->sha256_ok = true;
}

void
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

void
config_set_agent(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value)
{
	(void)d;
	if (*value == '\0')
		config_error(p, p->lineno, "agent: empty value");
	else
		config_key_of(p, sec)->agent = config_xstrdup(value);
}
