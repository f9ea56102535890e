/*
 * config_util.c - what the parser's files share: allocation (small and
 * bounded, so failure aborts), character classes, diagnostics (collected,
 * printed sorted by line) and the syntax of values (numbers, durations,
 * sizes, booleans).  See config.c for the parser as a whole.
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

/* Allocation: small and bounded, so failure aborts (STYLE.md). */

void *
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
void *
config_grow(void *ptr, size_t n, size_t size)
{
	if (n != 0 && (n & (n - 1)) != 0)
		return ptr;
	return config_xrealloc(ptr, n == 0 ? 1 : 2 * n, size);
}

char *
config_xstrndup(const char *s, size_t len)
{
	char *p = strndup(s, len);

	if (p == NULL)
		abort();
	return p;
}

char *
config_xstrdup(const char *s)
{
	return config_xstrndup(s, strlen(s));
}

void
config_free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Character classes, ASCII only whatever the locale. */

bool
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

/* Section, provider, environment and key names: [A-Za-z0-9._-]+ */
bool
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
bool
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

bool
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
bool
config_is_secret(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	}
	return true;
}

/* Trim [*s, *e) in place of the pointers. */
void
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

void __attribute__((format(printf, 3, 4)))
config_error(struct config_parser *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_vdiag(p, line, false, fmt, ap);
	va_end(ap);
}

void __attribute__((format(printf, 3, 4)))
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

void
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
int
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
void
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
char *
config_resolve_path(struct config_parser *p, const char *name)
{
	char *path;

	if (name[0] == '/' || p->dir == NULL)
		return config_xstrdup(name);
	if (asprintf(&path, "%s/%s", p->dir, name) < 0)
		abort();
	return path;
}
