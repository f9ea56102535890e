/*
 * config_parser.h - the parser's own types and helpers, shared by the files
 * of the configuration parser only (src/config*.c); everything else uses
 * config.h.
 *
 *   config.c           the file, its sections, the directive table, the
 *                      whole-file checks, loading and freeing
 *   config_util.c      allocation, diagnostics, value syntax (numbers,
 *                      durations, sizes, names, secrets)
 *   config_set.c       directives of [server], [upstream], [events], [trace]
 *   config_provider.c  directives of [provider], [environment], [key]
 *
 * Threads: as config.h (one thread parses).
 */
#ifndef WHYOPS_CONFIG_PARSER_H
#define WHYOPS_CONFIG_PARSER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

struct stat;

#define CONFIG_ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))
#define CONFIG_MAX_DIRECTIVES	64
#define CONFIG_SECRET_MAX	(64 * 1024)	/* larger api_key_file: a mistake */
#define CONFIG_KEY_MAX		4000		/* real keys are a few hundred */

#define CONFIG_REQUIRED		0x1u
#define CONFIG_REPEATABLE	0x2u

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

/* config.c */
struct provider *config_provider_of(struct config_parser *p,
    struct config_section *sec);
struct environment *config_environment_of(struct config_parser *p,
    struct config_section *sec);
struct apikey *config_key_of(struct config_parser *p,
    struct config_section *sec);
const char *config_section_label(const struct config_section *sec,
    char *buf, size_t size);
size_t config_directive_index(enum config_kind kind, const char *name);

/* config_util.c */
void *config_xrealloc(void *ptr, size_t n, size_t size);
void *config_grow(void *ptr, size_t n, size_t size);
char *config_xstrndup(const char *s, size_t len);
char *config_xstrdup(const char *s);
void config_free_secret(char *s);
bool config_is_space(int c);
bool config_is_name(const char *s);
bool config_is_token(const char *s, size_t len);
bool config_is_env_name(const char *s);
bool config_is_secret(const char *s, size_t len);
void config_trim(const char **s, const char **e);
void config_error(struct config_parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void config_warning(struct config_parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void config_print_diags(struct config_parser *p, FILE *errs);
int config_parse_ull(const char *s, unsigned long long max,
    unsigned long long *out);
void config_format_size(unsigned long long v, char *buf, size_t size);
char *config_resolve_path(struct config_parser *p, const char *name);

/* config_set.c */
void config_set_uint(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_size(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_duration(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
int config_keyword(struct config_parser *p, const struct config_directive *d,
    const char *value, const char *const *words, size_t n,
    const char *expected);
void config_set_bool(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_sink(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_events_string(struct config_parser *p,
    struct config_section *sec, const struct config_directive *d,
    const char *value);
void config_set_redis(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_spool_dir(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_redis_password_file(struct config_parser *p,
    struct config_section *sec, const struct config_directive *d,
    const char *value);
void config_set_ulong(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_capture(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_events_file(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_log_level(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_listen(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_metrics_listen(struct config_parser *p,
    struct config_section *sec, const struct config_directive *d,
    const char *value);
int config_open_file(const char *path, struct stat *st);
void config_set_ca_file(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_tls_file(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_tls_priorities(struct config_parser *p,
    struct config_section *sec, const struct config_directive *d,
    const char *value);

/* config_provider.c */
void config_set_type(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_base_url(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
char *config_read_secret(struct config_parser *p, const char *path,
    const char *name);
void config_set_api_key_file(struct config_parser *p,
    struct config_section *sec, const struct config_directive *d,
    const char *value);
void config_set_api_key_env(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_api_key(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_models(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_header(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_project(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_providers(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_sha256(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);
void config_set_key_environment(struct config_parser *p,
    struct config_section *sec, const struct config_directive *d,
    const char *value);
void config_set_agent(struct config_parser *p, struct config_section *sec,
    const struct config_directive *d, const char *value);

#endif
