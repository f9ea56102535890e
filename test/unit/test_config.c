/*
 * test_config.c - unit tests for config.c: every directive, its default and
 * every diagnostic, asserted as the exact "FILE:LINE: message" text.
 *
 * Each test runs in its own forked child (Check's default) with a fresh
 * temporary directory (the checked fixture); load() writes the config text
 * to a mkstemp() file there and captures the diagnostics with
 * open_memstream().  In captured output the config file's path reads "F"
 * and the temporary directory reads "D", so expectations stay literal.
 * The per-test directories live under one root that main() removes after
 * the run: a failed assertion ends the child before its teardown.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE			/* asprintf(), nftw() */
#endif
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static char tmproot[] = "/tmp/whyops-test-config-XXXXXX";
static char tmpdir[sizeof(tmproot) + 16];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/t-XXXXXX", tmproot);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Write len bytes to tmpdir/name; returns the path (caller frees). */
static char *
write_file(const char *name, const char *data, size_t len)
{
	char *path;
	FILE *f;

	ck_assert_int_ge(asprintf(&path, "%s/%s", tmpdir, name), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

/* Replace every occurrence of from in s (freed) by to. */
static char *
replace_all(char *s, const char *from, const char *to)
{
	size_t flen = strlen(from), n = 0;
	char *out, *o, *p;

	for (p = s; (p = strstr(p, from)) != NULL; p += flen)
		n++;
	out = malloc(strlen(s) + n * strlen(to) + 1);
	ck_assert_ptr_nonnull(out);
	o = out;
	for (p = s; *p != '\0';) {
		if (strncmp(p, from, flen) == 0) {
			o = stpcpy(o, to);
			p += flen;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	free(s);
	return out;
}

static int
load_path(const char *path, struct config **cfg, char **errs)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	*cfg = (struct config *)1;	/* must be overwritten */
	rc = config_load(path, cfg, f);
	ck_assert_int_eq(fclose(f), 0);
	buf = replace_all(buf, path, "F");
	*errs = replace_all(buf, tmpdir, "D");
	return rc;
}

static int
load_n(const char *text, size_t len, struct config **cfg, char **errs)
{
	char *path;
	int fd, rc;

	ck_assert_int_ge(asprintf(&path, "%s/conf-XXXXXX", tmpdir), 0);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	rc = load_path(path, cfg, errs);
	free(path);
	return rc;
}

static int
load(const char *text, struct config **cfg, char **errs)
{
	return load_n(text, strlen(text), cfg, errs);
}

/* Loading text must succeed with exactly this output; returns the config. */
static struct config *
expect_ok(const char *text, const char *output)
{
	struct config *cfg;
	char *errs;
	int rc;

	rc = load(text, &cfg, &errs);
	ck_assert_msg(rc == 0, "config_load failed for:\n%s\noutput:\n%s", text,
	    errs);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(errs, output);
	free(errs);
	return cfg;
}

/* Loading text must fail with exactly this output. */
static void
expect_errors(const char *text, const char *output)
{
	struct config *cfg;
	char *errs;
	int rc;

	rc = load(text, &cfg, &errs);
	ck_assert_msg(rc == -1, "config_load returned %d for:\n%s", rc, text);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(errs, output);
	free(errs);
}

static const char provider_ok[] =
    "[provider p]\n"
    "type = openai\n"
    "base_url = https://example.com/v1\n";

static const char hash_a[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char hash_b[] =
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/* Value parsers */

START_TEST(test_parse_duration_valid)
{
	static const struct {
		const char *s;
		unsigned ms;
	} cases[] = {
		{ "0", 0 }, { "10", 10000 }, { "250ms", 250 }, { "10s", 10000 },
		{ "2m", 120000 }, { "0ms", 0 }, { "007s", 7000 }, { "1MS", 1 },
		{ "3S", 3000 }, { "1M", 60000 },
		{ "4294967295ms", 4294967295u }, { "4294967s", 4294967000u },
		{ "71582m", 4294920000u },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned ms = 12345;

		ck_assert_msg(config_parse_duration(cases[i].s, &ms) == 0,
		    "'%s' rejected", cases[i].s);
		ck_assert_uint_eq(ms, cases[i].ms);
	}
}
END_TEST

START_TEST(test_parse_duration_invalid)
{
	static const char *const cases[] = {
		"", "ms", "s", "-1", "+1", "-1s", "1.5s", "10h", "10 s", " 10",
		"10 ", "1sms", "s10", "abc", "0x10", "4294967296ms", "4294968s",
		"71583m", "99999999999999999999999999", "18446744073709551616ms",
		"1e3",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned ms = 12345;

		ck_assert_msg(config_parse_duration(cases[i], &ms) == -1,
		    "'%s' accepted", cases[i]);
		ck_assert_uint_eq(ms, 12345);
	}
}
END_TEST

START_TEST(test_parse_size_valid)
{
	static const struct {
		const char *s;
		size_t bytes;
	} cases[] = {
		{ "0", 0 }, { "512", 512 }, { "32K", 32768 }, { "32k", 32768 },
		{ "32M", 33554432 }, { "1G", 1073741824 }, { "1g", 1073741824 },
		{ "0K", 0 }, { "18446744073709551615", SIZE_MAX },
		{ "17179869183G", (size_t)17179869183u << 30 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t bytes = 12345;

		ck_assert_msg(config_parse_size(cases[i].s, &bytes) == 0,
		    "'%s' rejected", cases[i].s);
		ck_assert_uint_eq(bytes, cases[i].bytes);
	}
}
END_TEST

START_TEST(test_parse_size_invalid)
{
	static const char *const cases[] = {
		"", "K", "-1", "+1", "1T", "1.5M", "1KB", "1KiB", "1 K", " 1",
		"1 ", "0x10", "18446744073709551616", "17179869184G",
		"18014398509481984K", "abc",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t bytes = 12345;

		ck_assert_msg(config_parse_size(cases[i], &bytes) == -1,
		    "'%s' accepted", cases[i]);
		ck_assert_uint_eq(bytes, 12345);
	}
}
END_TEST

START_TEST(test_parse_bool)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES",
	    "True", "ON" };
	static const char *const no[] = { "no", "false", "off", "0", "NO",
	    "False", "Off" };
	static const char *const bad[] = { "", "y", "n", "2", "maybe", " yes",
	    "yes ", "enabled", "01" };
	bool b;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		ck_assert_msg(config_parse_bool(yes[i], &b) == 0 && b, "%s", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		b = true;
		ck_assert_msg(config_parse_bool(no[i], &b) == 0 && !b, "%s", no[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = true;
		ck_assert_msg(config_parse_bool(bad[i], &b) == -1 && b, "'%s'",
		    bad[i]);
	}
}
END_TEST

START_TEST(test_provider_type_names)
{
	ck_assert_str_eq(provider_type_names[PROVIDER_OPENAI], "openai");
	ck_assert_str_eq(provider_type_names[PROVIDER_ANTHROPIC], "anthropic");
}
END_TEST

/* Defaults and file-level syntax */

START_TEST(test_defaults)
{
	struct config *cfg = expect_ok("", "");

	ck_assert_str_eq(cfg->listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg->listen_port, 8080);
	ck_assert_ptr_null(cfg->metrics_listen_host);
	ck_assert_uint_eq(cfg->threads, 0);
	ck_assert_uint_eq(cfg->max_connections, 10000);
	ck_assert_uint_eq(cfg->max_body_size, 32 * 1024 * 1024);
	ck_assert_uint_eq(cfg->max_header_size, 16 * 1024);
	ck_assert_uint_eq(cfg->client_idle_timeout_ms, 60000);
	ck_assert_uint_eq(cfg->drain_timeout_ms, 30000);
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_INFO);
	ck_assert_uint_eq(cfg->connect_timeout_ms, 10000);
	ck_assert_uint_eq(cfg->first_byte_timeout_ms, 300000);
	ck_assert_uint_eq(cfg->idle_timeout_ms, 120000);
	ck_assert_ptr_null(cfg->ca_file);
	ck_assert(cfg->force_stream_usage);
	ck_assert_uint_eq(cfg->max_event_size, 4 * 1024 * 1024);
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_FILE);
	/* Not checked at load time: /var/lib/whyops need not exist here. */
	ck_assert_str_eq(cfg->events_file, "/var/lib/whyops/events.jsonl");
	ck_assert_uint_eq(cfg->events_queue_size, 65536);
	ck_assert(cfg->events_capture_content);
	ck_assert_str_eq(cfg->events_redis, "127.0.0.1:6379");
	ck_assert_ptr_null(cfg->events_redis_user);
	ck_assert_ptr_null(cfg->events_redis_password);
	ck_assert_uint_eq(cfg->events_redis_db, 0);
	ck_assert_uint_eq(cfg->events_redis_timeout_ms, 1000);
	ck_assert_str_eq(cfg->events_stream, "whyops:events");
	ck_assert_uint_eq(cfg->events_stream_maxlen, 200000);
	/* Not created at load time either. */
	ck_assert_str_eq(cfg->events_spool_dir, "/var/lib/whyops/spool");
	ck_assert_uint_eq(cfg->events_spool_max, (size_t)1 << 30);
	ck_assert(cfg->trace_signature);
	ck_assert_uint_eq(cfg->trace_map_size, 100000);
	ck_assert_uint_eq(cfg->trace_map_ttl_ms, 24u * 60 * 60 * 1000);
	ck_assert_uint_eq(cfg->nproviders, 0);
	ck_assert_uint_eq(cfg->nenvironments, 0);
	ck_assert_uint_eq(cfg->nkeys, 0);
	ck_assert_ptr_nonnull(strstr(cfg->path, "/conf-"));
	config_free(cfg);

	/* Empty sections change nothing either. */
	cfg = expect_ok("[server]\n[upstream]\n[events]\n[trace]\n", "");
	ck_assert_uint_eq(cfg->listen_port, 8080);
	ck_assert_uint_eq(cfg->idle_timeout_ms, 120000);
	ck_assert(cfg->force_stream_usage);
	ck_assert_uint_eq(cfg->max_event_size, 4 * 1024 * 1024);
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_FILE);
	ck_assert_str_eq(cfg->events_file, "/var/lib/whyops/events.jsonl");
	ck_assert_uint_eq(cfg->events_queue_size, 65536);
	ck_assert(cfg->events_capture_content);
	ck_assert_uint_eq(cfg->drain_timeout_ms, 30000);
	ck_assert_str_eq(cfg->events_redis, "127.0.0.1:6379");
	ck_assert_ptr_null(cfg->events_redis_user);
	ck_assert_ptr_null(cfg->events_redis_password);
	ck_assert_uint_eq(cfg->events_redis_db, 0);
	ck_assert_uint_eq(cfg->events_redis_timeout_ms, 1000);
	ck_assert_str_eq(cfg->events_stream, "whyops:events");
	ck_assert_uint_eq(cfg->events_stream_maxlen, 200000);
	ck_assert_str_eq(cfg->events_spool_dir, "/var/lib/whyops/spool");
	ck_assert_uint_eq(cfg->events_spool_max, (size_t)1 << 30);
	ck_assert(cfg->trace_signature);
	ck_assert_uint_eq(cfg->trace_map_size, 100000);
	ck_assert_uint_eq(cfg->trace_map_ttl_ms, 86400000);
	config_free(cfg);

	/* sink = redis changes no other default. */
	cfg = expect_ok("[events]\nsink = redis\n", "");
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_REDIS);
	ck_assert_str_eq(cfg->events_redis, "127.0.0.1:6379");
	ck_assert_ptr_null(cfg->events_redis_password);
	ck_assert_str_eq(cfg->events_stream, "whyops:events");
	ck_assert_str_eq(cfg->events_spool_dir, "/var/lib/whyops/spool");
	ck_assert_uint_eq(cfg->events_spool_max, (size_t)1 << 30);
	config_free(cfg);
}
END_TEST

START_TEST(test_comments_whitespace_crlf_bom)
{
	struct config *cfg;

	cfg = expect_ok(
	    "\xEF\xBB\xBF; leading comment after a byte order mark\r\n"
	    "# hash comment\r\n"
	    "\r\n"
	    "   [server]   ; trailing comment\r\n"
	    "\tthreads\t=\t4\t; inline comment\r\n"
	    "  max_connections: 12\r\n"
	    "    ; indented comment\r\n"
	    "log_level = debug ;comment\r\n", "");
	ck_assert_uint_eq(cfg->threads, 4);
	ck_assert_uint_eq(cfg->max_connections, 12);
	config_free(cfg);

	/* ';' right after a value is part of it; so the value is bad here. */
	expect_errors("[server]\nlog_level = debug;x\n",
	    "F:2: log_level: expected error, warn, info or debug, got "
	    "'debug;x'\n");
}
END_TEST

START_TEST(test_long_comment_is_fine)
{
	char text[1200];
	struct config *cfg;

	memset(text, 0, sizeof(text));
	strcpy(text, "; ");
	memset(text + 2, 'c', 1000);
	strcat(text, "\n[server]\nthreads = 3\n");
	cfg = expect_ok(text, "");
	ck_assert_uint_eq(cfg->threads, 3);
	config_free(cfg);
}
END_TEST

START_TEST(test_syntax_errors)
{
	char text[600], expect[200];

	expect_errors(
	    "[server]\n"
	    "threads\n"
	    "threads 4 ; = 5\n"
	    "  [upstream\n"
	    "[server] junk\n"
	    "= 4\n",
	    "F:2: syntax error: expected 'name = value', '[section]' or a "
	    "comment\n"
	    "F:3: syntax error: expected 'name = value', '[section]' or a "
	    "comment\n"
	    "F:4: missing ']' in section header\n"
	    "F:5: unexpected text after ']'\n");

	/* No continuation lines: an indented line is a line of its own. */
	expect_errors(
	    "[provider p]\n"
	    "type = openai\n"
	    "base_url = https://example.com\n"
	    "models = a*\n"
	    "    b*\n",
	    "F:5: syntax error: expected 'name = value', '[section]' or a "
	    "comment\n");

	/* A key line longer than inih's buffer. */
	strcpy(text, "[provider p]\ntype = openai\nbase_url = https://e.com\n"
	    "models = ");
	memset(text + strlen(text), 'm', 300);
	strcat(text, "\n");
	snprintf(expect, sizeof(expect),
	    "F:4: line too long (the limit is 199 characters)\n");
	expect_errors(text, expect);
}
END_TEST

START_TEST(test_empty_key_name)
{
	expect_errors("[server]\n= 4\n", "F:2: missing key name before '='\n");
}
END_TEST

START_TEST(test_nul_byte)
{
	static const char text[] = "[server]\nthreads = 4\0junk\nthreads = 5\n";
	struct config *cfg;
	char *errs;

	ck_assert_int_eq(load_n(text, sizeof(text) - 1, &cfg, &errs), -1);
	ck_assert_str_eq(errs, "F:2: line contains a NUL byte\n");
	free(errs);
}
END_TEST

START_TEST(test_cannot_open)
{
	struct config *cfg;
	char *errs, *path;

	ck_assert_int_ge(asprintf(&path, "%s/missing.conf", tmpdir), 0);
	ck_assert_int_eq(load_path(path, &cfg, &errs), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(errs, "F:0: cannot open configuration file: No such "
	    "file or directory\n");
	free(errs);
	free(path);

	ck_assert_int_eq(load_path(tmpdir, &cfg, &errs), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(errs, "F:0: cannot read configuration file: Is a "
	    "directory\n");
	free(errs);
}
END_TEST

START_TEST(test_errs_null_and_free_null)
{
	struct config *cfg;
	char *path = write_file("x.conf", "[bogus]\n", 8);

	ck_assert_int_eq(config_load(path, &cfg, NULL), -1);
	ck_assert_ptr_null(cfg);
	free(path);
	config_free(NULL);
}
END_TEST

/* Sections */

START_TEST(test_section_errors)
{
	expect_errors(
	    "[bogus]\n"
	    "anything = goes\n"
	    "[provider]\n"
	    "type = x\n"
	    "[server main]\n"
	    "[provider bad/name]\n"
	    "[environment two words]\n"
	    "[key]\n"
	    "[ upstream ]\n"
	    "[upstream]\n"
	    "threads = 1\n"
	    "[Server]\n",
	    "F:1: unknown section [bogus] (expected [server], [upstream], [events], [trace], "
	    "[provider NAME], [environment NAME] or [key NAME])\n"
	    "F:3: section [provider] needs a name, as in [provider NAME]\n"
	    "F:5: section [server] takes no name\n"
	    "F:6: invalid provider name 'bad/name' (use letters, digits, '.', "
	    "'_' and '-')\n"
	    "F:7: invalid environment name 'two words' (use letters, digits, "
	    "'.', '_' and '-')\n"
	    "F:8: section [key] needs a name, as in [key NAME]\n"
	    "F:10: duplicate section [upstream] (first at line 9)\n"
	    "F:12: unknown section [Server] (expected [server], [upstream], [events], [trace], "
	    "[provider NAME], [environment NAME] or [key NAME])\n");
}
END_TEST

START_TEST(test_duplicate_sections)
{
	char text[1024];

	snprintf(text, sizeof(text),
	    "[server]\n"
	    "threads = 1\n"
	    "[server]\n"
	    "threads = 2\n"
	    "%s"
	    "[provider p]\n"
	    "type = bogus\n"
	    "[environment e]\n"
	    "providers = p\n"
	    "[environment e]\n"
	    "[key k]\n"
	    "sha256 = %s\n"
	    "environment = e\n"
	    "[key k]\n",
	    provider_ok, hash_a);
	/* The keys of a rejected section are ignored, not reported. */
	expect_errors(text,
	    "F:3: duplicate section [server] (first at line 1)\n"
	    "F:8: duplicate section [provider p] (first at line 5)\n"
	    "F:12: duplicate section [environment e] (first at line 10)\n"
	    "F:16: duplicate section [key k] (first at line 13)\n");
}
END_TEST

START_TEST(test_key_outside_section)
{
	expect_errors("threads = 4\n[server]\n",
	    "F:1: 'threads' is outside of any section\n");
}
END_TEST

START_TEST(test_unknown_and_duplicate_keys)
{
	char text[1024];

	snprintf(text, sizeof(text),
	    "[server]\n"
	    "threads = 2\n"
	    "thread = 2\n"
	    "threads = 3\n"
	    "[upstream]\n"
	    "listen = 1.2.3.4:5\n"
	    "%s"
	    "type = anthropic\n"
	    "base_url = https://example.com\n"
	    "model = x\n"
	    "[environment e]\n"
	    "providers = p\n"
	    "providers = p\n"
	    "project = a\n"
	    "project = b\n"
	    "[key k]\n"
	    "sha256 = %s\n"
	    "environment = e\n"
	    "environment = e\n"
	    "agent = a\n"
	    "agent = b\n"
	    "sha = x\n",
	    provider_ok, hash_a);
	expect_errors(text,
	    "F:3: unknown key 'thread' in [server]\n"
	    "F:4: duplicate key 'threads' in [server] (first set at line 2)\n"
	    "F:6: unknown key 'listen' in [upstream]\n"
	    "F:10: duplicate key 'type' in [provider p] (first set at line 8)\n"
	    "F:11: duplicate key 'base_url' in [provider p] (first set at line "
	    "9)\n"
	    "F:12: unknown key 'model' in [provider p]\n"
	    "F:15: duplicate key 'providers' in [environment e] (first set at "
	    "line 14)\n"
	    "F:17: duplicate key 'project' in [environment e] (first set at "
	    "line 16)\n"
	    "F:21: duplicate key 'environment' in [key k] (first set at line "
	    "20)\n"
	    "F:23: duplicate key 'agent' in [key k] (first set at line 22)\n"
	    "F:24: unknown key 'sha' in [key k]\n");
}
END_TEST

/* [server] */

START_TEST(test_server_all)
{
	struct config *cfg = expect_ok(
	    "[server]\n"
	    "listen = [::1]:9000\n"
	    "threads = 256\n"
	    "max_connections = 1000000\n"
	    "max_body_size = 1G\n"
	    "max_header_size = 1M\n"
	    "client_idle_timeout = 1500ms\n"
	    "drain_timeout = 2m\n"
	    "log_level = debug\n", "");

	ck_assert_str_eq(cfg->listen_host, "::1");
	ck_assert_uint_eq(cfg->listen_port, 9000);
	ck_assert_uint_eq(cfg->threads, 256);
	ck_assert_uint_eq(cfg->max_connections, 1000000);
	ck_assert_uint_eq(cfg->max_body_size, 1024 * 1024 * 1024);
	ck_assert_uint_eq(cfg->max_header_size, 1024 * 1024);
	ck_assert_uint_eq(cfg->client_idle_timeout_ms, 1500);
	ck_assert_uint_eq(cfg->drain_timeout_ms, 120000);
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_DEBUG);
	config_free(cfg);

	cfg = expect_ok("[server]\nmax_connections = 1\nmax_header_size = 1K\n"
	    "max_body_size = 1\nclient_idle_timeout = 1ms\n", "");
	ck_assert_uint_eq(cfg->max_connections, 1);
	ck_assert_uint_eq(cfg->max_header_size, 1024);
	ck_assert_uint_eq(cfg->max_body_size, 1);
	ck_assert_uint_eq(cfg->client_idle_timeout_ms, 1);
	config_free(cfg);

	/* drain_timeout: 0 is allowed (open requests are cut off at once),
	 * up to the longest duration. */
	cfg = expect_ok("[server]\ndrain_timeout = 0\n", "");
	ck_assert_uint_eq(cfg->drain_timeout_ms, 0);
	config_free(cfg);
	cfg = expect_ok("[server]\ndrain_timeout = 250ms\n", "");
	ck_assert_uint_eq(cfg->drain_timeout_ms, 250);
	config_free(cfg);
	cfg = expect_ok("[server]\ndrain_timeout = 45\n", "");
	ck_assert_uint_eq(cfg->drain_timeout_ms, 45000);
	config_free(cfg);
	cfg = expect_ok("[server]\ndrain_timeout = 4294967295ms\n", "");
	ck_assert_uint_eq(cfg->drain_timeout_ms, 4294967295u);
	config_free(cfg);
}
END_TEST

START_TEST(test_listen_forms)
{
	static const struct {
		const char *value, *host;
		unsigned port;
	} cases[] = {
		{ "127.0.0.1:8080", "127.0.0.1", 8080 },
		{ "0.0.0.0:0", "0.0.0.0", 0 },
		{ "*:80", "0.0.0.0", 80 },
		{ "10.1.2.3:65535", "10.1.2.3", 65535 },
		{ "[::]:443", "::", 443 },
		{ "[::1]:8080", "::1", 8080 },
		{ "[2001:db8::7]:1", "2001:db8::7", 1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[128];
		struct config *cfg;

		snprintf(text, sizeof(text), "[server]\nlisten = %s\n",
		    cases[i].value);
		cfg = expect_ok(text, "");
		ck_assert_str_eq(cfg->listen_host, cases[i].host);
		ck_assert_uint_eq(cfg->listen_port, cases[i].port);
		config_free(cfg);
	}
}
END_TEST

START_TEST(test_listen_errors)
{
	static const struct {
		const char *value, *message;
	} cases[] = {
		{ "localhost:80", "listen: 'localhost' is not an IPv4 address, "
		    "[IPv6 address] or *" },
		{ "1.2.3:80", "listen: '1.2.3' is not an IPv4 address, [IPv6 "
		    "address] or *" },
		{ "127.0.0.1", "listen: expected ADDRESS:PORT, "
		    "[IPV6-ADDRESS]:PORT or *:PORT, got '127.0.0.1'" },
		{ ":80", "listen: expected ADDRESS:PORT, [IPV6-ADDRESS]:PORT or "
		    "*:PORT, got ':80'" },
		{ "[::1]80", "listen: expected ADDRESS:PORT, [IPV6-ADDRESS]:PORT "
		    "or *:PORT, got '[::1]80'" },
		{ "[::1", "listen: expected ADDRESS:PORT, [IPV6-ADDRESS]:PORT or "
		    "*:PORT, got '[::1'" },
		{ "127.0.0.1:65536", "listen: invalid port '65536' (expected 0 to "
		    "65535)" },
		{ "127.0.0.1:", "listen: invalid port '' (expected 0 to 65535)" },
		{ "127.0.0.1:-1", "listen: invalid port '-1' (expected 0 to "
		    "65535)" },
		{ "*:http", "listen: invalid port 'http' (expected 0 to 65535)" },
		{ "[::1]:80x", "listen: invalid port '80x' (expected 0 to 65535)" },
		{ "::1:8080", "listen: an IPv6 address must be in brackets, as in "
		    "[::1]:8080" },
		{ "[zz]:80", "listen: 'zz' is not an IPv6 address" },
		{ "[127.0.0.1]:80", "listen: '127.0.0.1' is not an IPv6 address" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[128], expect[256];

		snprintf(text, sizeof(text), "[server]\nlisten = %s\n",
		    cases[i].value);
		snprintf(expect, sizeof(expect), "F:2: %s\n", cases[i].message);
		expect_errors(text, expect);
	}
}
END_TEST

/* metrics_listen: listen's syntax, its own messages, a port of its own. */
START_TEST(test_metrics_listen)
{
	static const struct {
		const char *value, *host;
		unsigned port;
	} ok[] = {
		{ "127.0.0.1:9464", "127.0.0.1", 9464 },
		{ "*:9464", "0.0.0.0", 9464 },
		{ "[::1]:9464", "::1", 9464 },
		{ "10.0.0.5:0", "10.0.0.5", 0 },
	};
	struct config *cfg = expect_ok("", "");

	ck_assert_ptr_null(cfg->metrics_listen_host);
	ck_assert_uint_eq(cfg->metrics_listen_port, 0);
	config_free(cfg);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char text[128];

		snprintf(text, sizeof(text), "[server]\nmetrics_listen = %s\n",
		    ok[i].value);
		cfg = expect_ok(text, "");
		ck_assert_str_eq(cfg->metrics_listen_host, ok[i].host);
		ck_assert_uint_eq(cfg->metrics_listen_port, ok[i].port);
		ck_assert_str_eq(cfg->listen_host, "127.0.0.1");	/* untouched */
		ck_assert_uint_eq(cfg->listen_port, 8080);
		config_free(cfg);
	}
	/* Empty: unset, as by default. */
	cfg = expect_ok("[server]\nmetrics_listen =\n", "");
	ck_assert_ptr_null(cfg->metrics_listen_host);
	config_free(cfg);
	/* Port 0 on both: the kernel picks two different ports. */
	cfg = expect_ok("[server]\nlisten = 127.0.0.1:0\n"
	    "metrics_listen = 127.0.0.1:0\n", "");
	ck_assert_str_eq(cfg->metrics_listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg->metrics_listen_port, 0);
	config_free(cfg);
	/* Same address, another port. */
	cfg = expect_ok("[server]\nlisten = 127.0.0.1:8080\n"
	    "metrics_listen = 127.0.0.1:8081\n", "");
	ck_assert_uint_eq(cfg->metrics_listen_port, 8081);
	config_free(cfg);
}
END_TEST

START_TEST(test_metrics_listen_errors)
{
	static const struct {
		const char *value, *message;
	} cases[] = {
		{ "localhost:9464", "metrics_listen: 'localhost' is not an IPv4 "
		    "address, [IPv6 address] or *" },
		{ "9464", "metrics_listen: expected ADDRESS:PORT, "
		    "[IPV6-ADDRESS]:PORT or *:PORT, got '9464'" },
		{ "127.0.0.1:99999", "metrics_listen: invalid port '99999' "
		    "(expected 0 to 65535)" },
		{ "::1:9464", "metrics_listen: an IPv6 address must be in "
		    "brackets, as in [::1]:8080" },
		{ "[zz]:9464", "metrics_listen: 'zz' is not an IPv6 address" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[128], expect[256];

		snprintf(text, sizeof(text), "[server]\nmetrics_listen = %s\n",
		    cases[i].value);
		snprintf(expect, sizeof(expect), "F:2: %s\n", cases[i].message);
		expect_errors(text, expect);
	}
	/* listen's port, whichever comes first, and the default 8080; the
	 * line is metrics_listen's. */
	expect_errors("[server]\nmetrics_listen = 127.0.0.1:8080\n",
	    "F:2: [server] metrics_listen: port 8080 is listen's port too; the "
	    "metrics listener needs a port of its own\n");
	expect_errors("[server]\nthreads = 2\nmetrics_listen = [::1]:9000\n"
	    "listen = 127.0.0.1:9000\n",
	    "F:3: [server] metrics_listen: port 9000 is listen's port too; the "
	    "metrics listener needs a port of its own\n");
	expect_errors("[server]\nlisten = *:9464\nmetrics_listen = 10.0.0.1:9464\n",
	    "F:3: [server] metrics_listen: port 9464 is listen's port too; the "
	    "metrics listener needs a port of its own\n");
	expect_errors("[server]\nmetrics_listen = 127.0.0.1:9464\n"
	    "metrics_listen = 127.0.0.1:9465\n",
	    "F:3: duplicate key 'metrics_listen' in [server] (first set at line "
	    "2)\n");
	expect_errors("[upstream]\nmetrics_listen = 127.0.0.1:9464\n",
	    "F:2: unknown key 'metrics_listen' in [upstream]\n");
}
END_TEST

START_TEST(test_server_value_errors)
{
	static const struct {
		const char *line, *message;
	} cases[] = {
		{ "threads = 257", "threads: expected a whole number from 0 to "
		    "256, got '257'" },
		{ "threads = -1", "threads: expected a whole number from 0 to "
		    "256, got '-1'" },
		{ "threads = four", "threads: expected a whole number from 0 to "
		    "256, got 'four'" },
		{ "threads =", "threads: expected a whole number from 0 to 256, "
		    "got ''" },
		{ "threads = 99999999999999999999999", "threads: expected a whole "
		    "number from 0 to 256, got '99999999999999999999999'" },
		{ "max_connections = 0", "max_connections: expected a whole "
		    "number from 1 to 1000000, got '0'" },
		{ "max_connections = 1000001", "max_connections: expected a "
		    "whole number from 1 to 1000000, got '1000001'" },
		{ "max_body_size = 0", "max_body_size: must be at least 1 byte" },
		{ "max_body_size = 32X", "max_body_size: invalid size '32X' "
		    "(expected bytes or a number with a K, M or G suffix, as in "
		    "32K)" },
		{ "max_body_size = -1M", "max_body_size: invalid size '-1M' "
		    "(expected bytes or a number with a K, M or G suffix, as in "
		    "32K)" },
		{ "max_header_size = 1023", "max_header_size: must be between 1K "
		    "and 1M" },
		{ "max_header_size = 1025K", "max_header_size: must be between 1K "
		    "and 1M" },
		{ "max_header_size =", "max_header_size: invalid size '' "
		    "(expected bytes or a number with a K, M or G suffix, as in "
		    "32K)" },
		{ "client_idle_timeout = 0", "client_idle_timeout: must be "
		    "greater than 0" },
		{ "client_idle_timeout = 1h", "client_idle_timeout: invalid "
		    "duration '1h' (expected a number of seconds, or a number with "
		    "an ms, s or m suffix, as in 500ms)" },
		{ "drain_timeout = 1h", "drain_timeout: invalid duration '1h' "
		    "(expected a number of seconds, or a number with an ms, s or m "
		    "suffix, as in 500ms)" },
		{ "drain_timeout = -1", "drain_timeout: invalid duration '-1' "
		    "(expected a number of seconds, or a number with an ms, s or m "
		    "suffix, as in 500ms)" },
		{ "drain_timeout = 4294967296ms", "drain_timeout: invalid duration "
		    "'4294967296ms' (expected a number of seconds, or a number with "
		    "an ms, s or m suffix, as in 500ms)" },
		{ "drain_timeout =", "drain_timeout: invalid duration '' (expected "
		    "a number of seconds, or a number with an ms, s or m suffix, as "
		    "in 500ms)" },
		{ "log_level = verbose", "log_level: expected error, warn, info or "
		    "debug, got 'verbose'" },
		{ "log_level = warning", "log_level: expected error, warn, info "
		    "or debug, got 'warning'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[128], expect[256];

		snprintf(text, sizeof(text), "[server]\n%s\n", cases[i].line);
		snprintf(expect, sizeof(expect), "F:2: %s\n", cases[i].message);
		expect_errors(text, expect);
	}
}
END_TEST

START_TEST(test_log_levels)
{
	static const struct {
		const char *s;
		enum log_level level;
	} cases[] = {
		{ "error", LOG_LEVEL_ERROR }, { "warn", LOG_LEVEL_WARN },
		{ "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG },
		{ "DEBUG", LOG_LEVEL_DEBUG },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[64];
		struct config *cfg;

		snprintf(text, sizeof(text), "[server]\nlog_level = %s\n",
		    cases[i].s);
		cfg = expect_ok(text, "");
		ck_assert_int_eq(cfg->log_level, cases[i].level);
		config_free(cfg);
	}
}
END_TEST

/* [upstream] */

START_TEST(test_upstream_all)
{
	char text[512], *ca = write_file("ca.pem", "x\n", 2);
	struct config *cfg;

	snprintf(text, sizeof(text),
	    "[upstream]\n"
	    "connect_timeout = 2s\n"
	    "first_byte_timeout = 10m\n"
	    "idle_timeout = 30\n"
	    "ca_file = %s\n", ca);
	cfg = expect_ok(text, "");
	ck_assert_uint_eq(cfg->connect_timeout_ms, 2000);
	ck_assert_uint_eq(cfg->first_byte_timeout_ms, 600000);
	ck_assert_uint_eq(cfg->idle_timeout_ms, 30000);
	ck_assert_str_eq(cfg->ca_file, ca);
	config_free(cfg);
	free(ca);

	/* Empty: the system trust store. */
	cfg = expect_ok("[upstream]\nca_file =\n", "");
	ck_assert_ptr_null(cfg->ca_file);
	config_free(cfg);
}
END_TEST

START_TEST(test_ca_file_relative)
{
	char *ca = write_file("ca.pem", "x\n", 2);
	struct config *cfg = expect_ok("[upstream]\nca_file = ca.pem\n", "");

	/* Relative to the directory of the configuration file. */
	ck_assert_str_eq(cfg->ca_file, ca);
	config_free(cfg);
	free(ca);
}
END_TEST

START_TEST(test_upstream_errors)
{
	char *sub;

	ck_assert_int_ge(asprintf(&sub, "%s/sub", tmpdir), 0);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	free(sub);
	expect_errors(
	    "[upstream]\n"
	    "connect_timeout = 0\n"
	    "first_byte_timeout = 5 s\n"
	    "idle_timeout = -1s\n"
	    "ca_file = /nonexistent/ca.pem\n",
	    "F:2: connect_timeout: must be greater than 0\n"
	    "F:3: first_byte_timeout: invalid duration '5 s' (expected a number "
	    "of seconds, or a number with an ms, s or m suffix, as in 500ms)\n"
	    "F:4: idle_timeout: invalid duration '-1s' (expected a number of "
	    "seconds, or a number with an ms, s or m suffix, as in 500ms)\n"
	    "F:5: ca_file: cannot read '/nonexistent/ca.pem': No such file or "
	    "directory\n");
	expect_errors("[upstream]\nca_file = sub\n",
	    "F:2: ca_file: 'D/sub' is not a regular file\n");
	expect_errors("[upstream]\nca_file = missing.pem\n",
	    "F:2: ca_file: cannot read 'D/missing.pem': No such file or "
	    "directory\n");
}
END_TEST

START_TEST(test_force_stream_usage)
{
	static const struct {
		const char *s;
		bool b;
	} cases[] = {
		{ "yes", true }, { "no", false }, { "true", true },
		{ "false", false }, { "on", true }, { "off", false },
		{ "1", true }, { "0", false }, { "YES", true }, { "Off", false },
	};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg;

		snprintf(text, sizeof(text), "[upstream]\nforce_stream_usage = "
		    "%s\n", cases[i].s);
		cfg = expect_ok(text, "");
		ck_assert_msg(cfg->force_stream_usage == cases[i].b,
		    "force_stream_usage = %s", cases[i].s);
		config_free(cfg);
	}
}
END_TEST

START_TEST(test_max_event_size)
{
	static const struct {
		const char *s;
		size_t bytes;
	} cases[] = {
		{ "1K", 1024 }, { "1024", 1024 }, { "16M", 16 << 20 },
		{ "4m", 4 << 20 }, { "1G", (size_t)1 << 30 },
		{ "1048576K", (size_t)1 << 30 },
	};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg;

		snprintf(text, sizeof(text), "[upstream]\nmax_event_size = %s\n",
		    cases[i].s);
		cfg = expect_ok(text, "");
		ck_assert_uint_eq(cfg->max_event_size, cases[i].bytes);
		config_free(cfg);
	}
}
END_TEST

START_TEST(test_upstream_stream_errors)
{
	static const char *const too_small_or_large[] = {
		"0", "1023", "1025M", "2G", "1048577K",
	};
	char text[128];

	expect_errors(
	    "[upstream]\n"
	    "force_stream_usage = maybe\n"
	    "max_event_size = 1023\n"
	    "force_stream_usage = yes\n",
	    "F:2: force_stream_usage: expected yes or no, got 'maybe'\n"
	    "F:3: max_event_size: must be between 1K and 1G\n"
	    "F:4: duplicate key 'force_stream_usage' in [upstream] (first set "
	    "at line 2)\n");
	expect_errors("[upstream]\nforce_stream_usage =\n",
	    "F:2: force_stream_usage: expected yes or no, got ''\n");
	expect_errors("[upstream]\nforce_stream_usage = yes please\n",
	    "F:2: force_stream_usage: expected yes or no, got 'yes please'\n");
	expect_errors("[upstream]\nforce_stream_usage = y\n",
	    "F:2: force_stream_usage: expected yes or no, got 'y'\n");
	for (size_t i = 0; i < sizeof(too_small_or_large) /
	    sizeof(too_small_or_large[0]); i++) {
		snprintf(text, sizeof(text), "[upstream]\nmax_event_size = %s\n",
		    too_small_or_large[i]);
		expect_errors(text, "F:2: max_event_size: must be between 1K and "
		    "1G\n");
	}
	expect_errors("[upstream]\nmax_event_size = 4MB\n",
	    "F:2: max_event_size: invalid size '4MB' (expected bytes or a "
	    "number with a K, M or G suffix, as in 32K)\n");
	expect_errors("[upstream]\nmax_event_size =\n",
	    "F:2: max_event_size: invalid size '' (expected bytes or a "
	    "number with a K, M or G suffix, as in 32K)\n");
	/* Each key belongs to its own section. */
	expect_errors(
	    "[server]\n"
	    "max_event_size = 4M\n"
	    "[events]\n"
	    "force_stream_usage = yes\n"
	    "[upstream]\n"
	    "sink = none\n",
	    "F:2: unknown key 'max_event_size' in [server]\n"
	    "F:4: unknown key 'force_stream_usage' in [events]\n"
	    "F:6: unknown key 'sink' in [upstream]\n");
}
END_TEST

/* [events] */

START_TEST(test_events_all)
{
	char text[512], *path;
	struct config *cfg;

	ck_assert_int_ge(asprintf(&path, "%s/ev.jsonl", tmpdir), 0);
	snprintf(text, sizeof(text),
	    "[events]\n"
	    "sink = none\n"
	    "file = %s\n"
	    "queue_size = 16\n"
	    "capture = metadata\n", path);
	cfg = expect_ok(text, "");
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_NONE);
	ck_assert_str_eq(cfg->events_file, path);
	ck_assert_uint_eq(cfg->events_queue_size, 16);
	ck_assert(!cfg->events_capture_content);
	config_free(cfg);
	/* Loading has no side effects: the file is created by the sink. */
	ck_assert_int_ne(access(path, F_OK), 0);
	free(path);

	/* Words in either case; the other ends of the ranges. */
	cfg = expect_ok(
	    "[events]\n"
	    "sink = FILE\n"
	    "queue_size = 16777216\n"
	    "capture = Full\n", "");
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_FILE);
	ck_assert_str_eq(cfg->events_file, "/var/lib/whyops/events.jsonl");
	ck_assert_uint_eq(cfg->events_queue_size, 16777216);
	ck_assert(cfg->events_capture_content);
	config_free(cfg);

	cfg = expect_ok("[events]\nsink = None\ncapture = METADATA\n", "");
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_NONE);
	ck_assert(!cfg->events_capture_content);
	config_free(cfg);

	/* A file in the root directory: the directory "/" exists. */
	cfg = expect_ok("[events]\nfile = /events.jsonl\n", "");
	ck_assert_str_eq(cfg->events_file, "/events.jsonl");
	config_free(cfg);
}
END_TEST

START_TEST(test_events_file_relative)
{
	static const char ok[] = "[events]\nfile = sub/e.jsonl\n";
	static const char bad[] = "[events]\nfile = nosub/e.jsonl\n";
	char *sub, *want, *errs, *conf, cwd[4096];
	struct config *cfg;

	ck_assert_int_ge(asprintf(&sub, "%s/sub", tmpdir), 0);
	ck_assert_int_eq(mkdir(sub, 0700), 0);

	/* Relative to the directory of the configuration file. */
	cfg = expect_ok("[events]\nfile = events.jsonl\n", "");
	ck_assert_int_ge(asprintf(&want, "%s/events.jsonl", tmpdir), 0);
	ck_assert_str_eq(cfg->events_file, want);
	free(want);
	config_free(cfg);

	cfg = expect_ok("[events]\nfile = sub/e.jsonl\n", "");
	ck_assert_int_ge(asprintf(&want, "%s/e.jsonl", sub), 0);
	ck_assert_str_eq(cfg->events_file, want);
	free(want);
	config_free(cfg);

	/* The directory is looked for there too, not in the cwd. */
	expect_errors("[events]\nfile = nosub/e.jsonl\n",
	    "F:2: file: directory 'D/nosub' does not exist\n");

	/*
	 * A configuration named without a directory: its directory is the
	 * cwd, and the names stay as written.
	 */
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(tmpdir), 0);
	conf = write_file("w.ini", ok, strlen(ok));
	ck_assert_int_eq(load_path("w.ini", &cfg, &errs), 0);
	ck_assert_str_eq(errs, "");
	ck_assert_str_eq(cfg->events_file, "sub/e.jsonl");
	free(errs);
	config_free(cfg);
	free(conf);
	conf = write_file("w.ini", bad, strlen(bad));
	ck_assert_int_eq(load_path("w.ini", &cfg, &errs), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(errs, "F:2: file: directory 'nosub' does not exist\n");
	free(errs);
	free(conf);
	ck_assert_int_eq(chdir(cwd), 0);
	free(sub);
}
END_TEST

START_TEST(test_events_errors)
{
	static const char *const bad_queue[] = {
		"0", "15", "16777217", "-1", "+64", "64K", " ", "1e6",
		"99999999999999999999999",
	};
	char *plain = write_file("plain", "x", 1);
	char text[128], want[256];

	expect_errors(
	    "[events]\n"
	    "sink = kafka\n"
	    "file =\n"
	    "queue_size = 15\n"
	    "capture = none\n",
	    "F:2: sink: expected redis, file or none, got 'kafka'\n"
	    "F:3: file: empty value\n"
	    "F:4: queue_size: expected a whole number from 16 to 16777216, "
	    "got '15'\n"
	    "F:5: capture: expected full or metadata, got 'none'\n");
	expect_errors("[events]\nsink =\n",
	    "F:2: sink: expected redis, file or none, got ''\n");
	expect_errors("[events]\ncapture =\n",
	    "F:2: capture: expected full or metadata, got ''\n");
	expect_errors("[events]\ncapture = content\n",
	    "F:2: capture: expected full or metadata, got 'content'\n");
	expect_errors("[events]\nfile = /nonexistent/dir/e.jsonl\n",
	    "F:2: file: directory '/nonexistent/dir' does not exist\n");
	expect_errors("[events]\nfile = missing/e.jsonl\n",
	    "F:2: file: directory 'D/missing' does not exist\n");
	/* A path through a regular file: not a directory. */
	expect_errors("[events]\nfile = plain/e.jsonl\n",
	    "F:2: file: directory 'D/plain' does not exist\n");
	/* Checked whatever the sink. */
	expect_errors("[events]\nsink = none\nfile = missing/e.jsonl\n",
	    "F:3: file: directory 'D/missing' does not exist\n");
	for (size_t i = 0; i < sizeof(bad_queue) / sizeof(bad_queue[0]); i++) {
		snprintf(text, sizeof(text), "[events]\nqueue_size = %s\n",
		    bad_queue[i]);
		/* inih trims the value: " " arrives as "". */
		snprintf(want, sizeof(want), "F:2: queue_size: expected a whole "
		    "number from 16 to 16777216, got '%s'\n",
		    strcmp(bad_queue[i], " ") == 0 ? "" : bad_queue[i]);
		expect_errors(text, want);
	}
	free(plain);
}
END_TEST

START_TEST(test_events_section)
{
	expect_errors("[events main]\nsink = none\n",
	    "F:1: section [events] takes no name\n");
	expect_errors(
	    "[events]\n"
	    "sink = none\n"
	    "[events]\n"
	    "sink = file\n",
	    "F:3: duplicate section [events] (first at line 1)\n");
	expect_errors(
	    "[events]\n"
	    "path = /tmp/e.jsonl\n"
	    "sink = file\n"
	    "sink = none\n"
	    "file = a.jsonl\n"
	    "file = b.jsonl\n"
	    "queue_size = 16\n"
	    "queue_size = 32\n"
	    "capture = full\n"
	    "capture = full\n",
	    "F:2: unknown key 'path' in [events]\n"
	    "F:4: duplicate key 'sink' in [events] (first set at line 3)\n"
	    "F:6: duplicate key 'file' in [events] (first set at line 5)\n"
	    "F:8: duplicate key 'queue_size' in [events] (first set at line "
	    "7)\n"
	    "F:10: duplicate key 'capture' in [events] (first set at line "
	    "9)\n");
}
END_TEST

/* [events]: the redis sink and the spool */

START_TEST(test_events_redis_all)
{
	static const char pw[] = "s3cret-pw";
	char text[1024], *pwpath, *spool;
	struct config *cfg;

	pwpath = write_file("redis.pw", pw, sizeof(pw) - 1);
	ck_assert_int_ge(asprintf(&spool, "%s/spool", tmpdir), 0);
	snprintf(text, sizeof(text),
	    "[events]\n"
	    "sink = redis\n"
	    "redis = 10.0.0.5:6380\n"
	    "redis_user = whyops\n"
	    "redis_password_file = %s\n"
	    "redis_db = 15\n"
	    "redis_timeout = 250ms\n"
	    "stream = acme:llm-events\n"
	    "stream_maxlen = 0\n"
	    "spool_dir = %s\n"
	    "spool_max_size = 1M\n", pwpath, spool);
	cfg = expect_ok(text, "");
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_REDIS);
	ck_assert_str_eq(cfg->events_redis, "10.0.0.5:6380");
	ck_assert_str_eq(cfg->events_redis_user, "whyops");
	ck_assert_str_eq(cfg->events_redis_password, "s3cret-pw");
	ck_assert_uint_eq(cfg->events_redis_db, 15);
	ck_assert_uint_eq(cfg->events_redis_timeout_ms, 250);
	ck_assert_str_eq(cfg->events_stream, "acme:llm-events");
	ck_assert_uint_eq(cfg->events_stream_maxlen, 0);
	ck_assert_str_eq(cfg->events_spool_dir, spool);
	ck_assert_uint_eq(cfg->events_spool_max, 1024 * 1024);
	/* The file sink's settings keep their defaults. */
	ck_assert_str_eq(cfg->events_file, "/var/lib/whyops/events.jsonl");
	config_free(cfg);
	/* Loading has no side effects: the spool is created at startup. */
	ck_assert_int_ne(access(spool, F_OK), 0);

	/* The other ends of the ranges; words in either case. */
	cfg = expect_ok(
	    "[events]\n"
	    "sink = REDIS\n"
	    "redis_db = 100000\n"
	    "redis_timeout = 1ms\n"
	    "stream_maxlen = 4000000000\n"
	    "spool_max_size = 10G\n", "");
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_REDIS);
	ck_assert_uint_eq(cfg->events_redis_db, 100000);
	ck_assert_uint_eq(cfg->events_redis_timeout_ms, 1);
	ck_assert_uint_eq(cfg->events_stream_maxlen, 4000000000UL);
	ck_assert_uint_eq(cfg->events_spool_max, (size_t)10 << 30);
	config_free(cfg);

	cfg = expect_ok("[events]\nsink = Redis\nredis_timeout = 2m\n"
	    "spool_max_size = 1048576\nstream_maxlen = 1\n", "");
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_REDIS);
	ck_assert_uint_eq(cfg->events_redis_timeout_ms, 120000);
	ck_assert_uint_eq(cfg->events_spool_max, 1024 * 1024);
	ck_assert_uint_eq(cfg->events_stream_maxlen, 1);
	config_free(cfg);

	/* Every address form the sink takes is stored as written. */
	static const char *const addrs[] = {
		"127.0.0.1:6379", "redis.internal", "redis.internal:7000",
		"[::1]:6379", "[2001:db8::5]", "/run/redis/redis-server.sock",
	};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		snprintf(text, sizeof(text), "[events]\nsink = redis\nredis = %s\n",
		    addrs[i]);
		cfg = expect_ok(text, "");
		ck_assert_str_eq(cfg->events_redis, addrs[i]);
		config_free(cfg);
	}

	/* The redis keys are accepted, and ignored, with the other sinks. */
	cfg = expect_ok("[events]\nsink = none\nredis = 10.1.1.1\n"
	    "stream = s\n", "");
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_NONE);
	ck_assert_str_eq(cfg->events_redis, "10.1.1.1");
	ck_assert_str_eq(cfg->events_stream, "s");
	config_free(cfg);
	free(spool);
	free(pwpath);
}
END_TEST

START_TEST(test_events_spool_dir)
{
	char *want;
	struct config *cfg;

	/* Relative to the directory of the configuration file. */
	cfg = expect_ok("[events]\nspool_dir = spool\n", "");
	ck_assert_int_ge(asprintf(&want, "%s/spool", tmpdir), 0);
	ck_assert_str_eq(cfg->events_spool_dir, want);
	free(want);
	config_free(cfg);

	cfg = expect_ok("[events]\nspool_dir = a/b/spool\n", "");
	ck_assert_int_ge(asprintf(&want, "%s/a/b/spool", tmpdir), 0);
	ck_assert_str_eq(cfg->events_spool_dir, want);
	free(want);
	config_free(cfg);

	/* Not checked at load time: it is created (or refused) at startup,
	 * and by whyops-proxy -t. */
	cfg = expect_ok("[events]\nspool_dir = /nonexistent/dir/spool\n", "");
	ck_assert_str_eq(cfg->events_spool_dir, "/nonexistent/dir/spool");
	config_free(cfg);

	/* Empty: no spool. */
	cfg = expect_ok("[events]\nsink = redis\nspool_dir =\n", "");
	ck_assert_ptr_null(cfg->events_spool_dir);
	config_free(cfg);
}
END_TEST

START_TEST(test_events_redis_errors)
{
	static const struct {
		const char *line, *message;
	} cases[] = {
		{ "redis =", "redis: empty value" },
		{ "redis_user =", "redis_user: empty value" },
		{ "redis_password_file =", "redis_password_file: empty value" },
		{ "stream =", "stream: empty value" },
		{ "redis_db = 100001", "redis_db: expected a whole number from 0 "
		    "to 100000, got '100001'" },
		{ "redis_db = -1", "redis_db: expected a whole number from 0 to "
		    "100000, got '-1'" },
		{ "redis_db = one", "redis_db: expected a whole number from 0 to "
		    "100000, got 'one'" },
		{ "redis_db =", "redis_db: expected a whole number from 0 to "
		    "100000, got ''" },
		{ "redis_timeout = 0", "redis_timeout: must be greater than 0" },
		{ "redis_timeout = 0ms", "redis_timeout: must be greater than 0" },
		{ "redis_timeout = 1h", "redis_timeout: invalid duration '1h' "
		    "(expected a number of seconds, or a number with an ms, s or m "
		    "suffix, as in 500ms)" },
		{ "redis_timeout = 1.5s", "redis_timeout: invalid duration '1.5s' "
		    "(expected a number of seconds, or a number with an ms, s or m "
		    "suffix, as in 500ms)" },
		{ "redis_timeout =", "redis_timeout: invalid duration '' (expected "
		    "a number of seconds, or a number with an ms, s or m suffix, as "
		    "in 500ms)" },
		{ "stream_maxlen = 4000000001", "stream_maxlen: expected a whole "
		    "number from 0 to 4000000000, got '4000000001'" },
		{ "stream_maxlen = -1", "stream_maxlen: expected a whole number "
		    "from 0 to 4000000000, got '-1'" },
		{ "stream_maxlen = 1K", "stream_maxlen: expected a whole number "
		    "from 0 to 4000000000, got '1K'" },
		{ "stream_maxlen = 99999999999999999999999", "stream_maxlen: "
		    "expected a whole number from 0 to 4000000000, got "
		    "'99999999999999999999999'" },
		{ "stream_maxlen =", "stream_maxlen: expected a whole number from 0 "
		    "to 4000000000, got ''" },
		{ "spool_max_size = 1023K", "spool_max_size: must be at least 1M" },
		{ "spool_max_size = 0", "spool_max_size: must be at least 1M" },
		{ "spool_max_size = 1048575", "spool_max_size: must be at least "
		    "1M" },
		{ "spool_max_size = 1T", "spool_max_size: invalid size '1T' "
		    "(expected bytes or a number with a K, M or G suffix, as in "
		    "32K)" },
		{ "spool_max_size = -1G", "spool_max_size: invalid size '-1G' "
		    "(expected bytes or a number with a K, M or G suffix, as in "
		    "32K)" },
		{ "spool_max_size =", "spool_max_size: invalid size '' (expected "
		    "bytes or a number with a K, M or G suffix, as in 32K)" },
		{ "sink = Redis Streams", "sink: expected redis, file or none, got "
		    "'Redis Streams'" },
		/* The address is checked by the parser, with its line, not
		 * only when the sink opens (a log line without one). */
		{ "redis = a:b:c", "redis: 'a:b:c' is not host:port, host, "
		    "[IPv6-address]:port or the absolute path of a unix socket" },
		{ "redis = ::1", "redis: '::1' is not host:port, host, "
		    "[IPv6-address]:port or the absolute path of a unix socket" },
		{ "redis = [::1", "redis: '[::1' is not host:port, host, "
		    "[IPv6-address]:port or the absolute path of a unix socket" },
		{ "redis = :6379", "redis: ':6379' is not host:port, host, "
		    "[IPv6-address]:port or the absolute path of a unix socket" },
		{ "redis = host:0", "redis: 'host:0' is not host:port, host, "
		    "[IPv6-address]:port or the absolute path of a unix socket" },
		{ "redis = host:65536", "redis: 'host:65536' is not host:port, "
		    "host, [IPv6-address]:port or the absolute path of a unix "
		    "socket" },
		{ "redis = host:port", "redis: 'host:port' is not host:port, host, "
		    "[IPv6-address]:port or the absolute path of a unix socket" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[160], expect[320];

		snprintf(text, sizeof(text), "[events]\n%s\n", cases[i].line);
		snprintf(expect, sizeof(expect), "F:2: %s\n", cases[i].message);
		expect_errors(text, expect);
	}

	/* All of them in one file, each on its line. */
	expect_errors(
	    "[events]\n"
	    "sink = redis\n"
	    "redis =\n"
	    "redis_db = 100001\n"
	    "redis_timeout = 0\n"
	    "stream =\n"
	    "stream_maxlen = -1\n"
	    "spool_max_size = 1K\n",
	    "F:3: redis: empty value\n"
	    "F:4: redis_db: expected a whole number from 0 to 100000, got "
	    "'100001'\n"
	    "F:5: redis_timeout: must be greater than 0\n"
	    "F:6: stream: empty value\n"
	    "F:7: stream_maxlen: expected a whole number from 0 to 4000000000, "
	    "got '-1'\n"
	    "F:8: spool_max_size: must be at least 1M\n");
}
END_TEST

START_TEST(test_events_redis_section)
{
	expect_errors(
	    "[events]\n"
	    "redis = a\n"
	    "redis = b\n"
	    "redis_user = u\n"
	    "redis_user = v\n"
	    "redis_db = 1\n"
	    "redis_db = 2\n"
	    "redis_timeout = 1s\n"
	    "redis_timeout = 2s\n"
	    "stream = s\n"
	    "stream = t\n"
	    "stream_maxlen = 1\n"
	    "stream_maxlen = 2\n"
	    "spool_dir = a\n"
	    "spool_dir = b\n"
	    "spool_max_size = 1M\n"
	    "spool_max_size = 2M\n",
	    "F:3: duplicate key 'redis' in [events] (first set at line 2)\n"
	    "F:5: duplicate key 'redis_user' in [events] (first set at line "
	    "4)\n"
	    "F:7: duplicate key 'redis_db' in [events] (first set at line 6)\n"
	    "F:9: duplicate key 'redis_timeout' in [events] (first set at line "
	    "8)\n"
	    "F:11: duplicate key 'stream' in [events] (first set at line 10)\n"
	    "F:13: duplicate key 'stream_maxlen' in [events] (first set at "
	    "line 12)\n"
	    "F:15: duplicate key 'spool_dir' in [events] (first set at line "
	    "14)\n"
	    "F:17: duplicate key 'spool_max_size' in [events] (first set at "
	    "line 16)\n");
	/* Each in its own section only. */
	expect_errors(
	    "[server]\n"
	    "redis = 127.0.0.1:6379\n"
	    "spool_dir = /tmp\n"
	    "[upstream]\n"
	    "drain_timeout = 1s\n"
	    "stream = s\n"
	    "[events]\n"
	    "drain_timeout = 1s\n"
	    "redis_password = hunter2\n"
	    "redis_host = localhost\n",
	    "F:2: unknown key 'redis' in [server]\n"
	    "F:3: unknown key 'spool_dir' in [server]\n"
	    "F:5: unknown key 'drain_timeout' in [upstream]\n"
	    "F:6: unknown key 'stream' in [upstream]\n"
	    "F:8: unknown key 'drain_timeout' in [events]\n"
	    "F:9: unknown key 'redis_password' in [events]\n"
	    "F:10: unknown key 'redis_host' in [events]\n");
	expect_errors("[server]\ndrain_timeout = 1s\ndrain_timeout = 2s\n",
	    "F:3: duplicate key 'drain_timeout' in [server] (first set at line "
	    "2)\n");
}
END_TEST

START_TEST(test_redis_password_file_trimmed)
{
	static const char pw[] = " \n\t rEd1s-p@ss:word!#$ \r\n\n\n";
	char text[512], *path = write_file("redis.pw", pw, sizeof(pw) - 1);
	struct config *cfg;

	snprintf(text, sizeof(text), "[events]\nredis_password_file = %s\n",
	    path);
	cfg = expect_ok(text, "");
	ck_assert_str_eq(cfg->events_redis_password, "rEd1s-p@ss:word!#$");
	ck_assert_ptr_null(cfg->events_redis_user);
	config_free(cfg);

	/* A relative path is relative to the configuration file; the file
	 * is read whatever the sink. */
	cfg = expect_ok("[events]\nsink = none\nredis_password_file = "
	    "redis.pw\n", "");
	ck_assert_str_eq(cfg->events_redis_password, "rEd1s-p@ss:word!#$");
	config_free(cfg);

	/* No newline at all; the longest password. */
	free(write_file("bare.pw", "pw", 2));
	cfg = expect_ok("[events]\nredis_password_file = bare.pw\n", "");
	ck_assert_str_eq(cfg->events_redis_password, "pw");
	config_free(cfg);
	{
		char *max = malloc(4000);

		ck_assert_ptr_nonnull(max);
		memset(max, 'p', 4000);
		free(write_file("max.pw", max, 4000));
		cfg = expect_ok("[events]\nredis_password_file = max.pw\n", "");
		ck_assert_uint_eq(strlen(cfg->events_redis_password), 4000);
		ck_assert_int_eq(memcmp(cfg->events_redis_password, max, 4000),
		    0);
		config_free(cfg);
		free(max);
	}
	free(path);
}
END_TEST

/*
 * The password file is read at load time, with the checks of
 * api_key_file; the messages name the directive that was written.
 */
START_TEST(test_redis_password_file_errors)
{
	static const struct {
		const char *file, *message;
	} cases[] = {
		{ "missing.pw", "redis_password_file: cannot read "
		    "'D/missing.pw': No such file or directory" },
		{ "empty.pw", "redis_password_file: 'D/empty.pw' is empty" },
		{ "blank.pw", "redis_password_file: 'D/blank.pw' is empty" },
		{ "inner.pw", "redis_password_file: the key in 'D/inner.pw' "
		    "contains spaces, control or non-ASCII characters" },
		{ "ctl.pw", "redis_password_file: the key in 'D/ctl.pw' "
		    "contains spaces, control or non-ASCII characters" },
		{ "dir.pw", "redis_password_file: 'D/dir.pw' is not a regular "
		    "file" },
		{ "big.pw", "redis_password_file: 'D/big.pw' is larger than 64K; "
		    "it should hold only the key" },
		{ "long.pw", "redis_password_file: the key in 'D/long.pw' is "
		    "longer than 4000 characters" },
	};
	char *big, *path;

	free(write_file("empty.pw", "", 0));
	free(write_file("blank.pw", " \n\r\n\t\n", 6));
	free(write_file("inner.pw", "two words\n", 10));
	free(write_file("ctl.pw", "pass\x01word\n", 10));
	big = malloc(70000);
	ck_assert_ptr_nonnull(big);
	memset(big, 'p', 70000);
	free(write_file("big.pw", big, 70000));
	free(write_file("long.pw", big, 4001));
	free(big);
	ck_assert_int_ge(asprintf(&path, "%s/dir.pw", tmpdir), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	free(path);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[160], expect[320];

		snprintf(text, sizeof(text), "[events]\nsink = redis\n"
		    "redis_password_file = %s\n", cases[i].file);
		snprintf(expect, sizeof(expect), "F:3: %s\n", cases[i].message);
		expect_errors(text, expect);
	}
}
END_TEST

START_TEST(test_redis_password_never_printed)
{
	static const char good[] = "\n  SECRET-redis-good-pw  \n";
	static const char spaced[] = "SECRET-redis part two\n";
	static const char ctl[] = "SECRET-redis\x7f-pw\n";
	static const char text[] =
	    "[server]\n"
	    "threads = many\n"
	    "[events]\n"
	    "sink = redis\n"
	    "redis_password_file = good.pw\n"
	    "redis_user = SECRET-redis\x01user\n"
	    "redis_db = x\n";
	struct config *cfg;
	char *errs;

	free(write_file("good.pw", good, sizeof(good) - 1));
	free(write_file("spaced.pw", spaced, sizeof(spaced) - 1));
	free(write_file("ctl.pw", ctl, sizeof(ctl) - 1));

	/* A good password next to errors elsewhere in the file. */
	ck_assert_int_eq(load(text, &cfg, &errs), -1);
	ck_assert_msg(strstr(errs, "SECRET") == NULL, "a secret leaked:\n%s",
	    errs);
	ck_assert_ptr_nonnull(strstr(errs, "F:2: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:6: redis_user: the value "
	    "contains control characters\n"));
	ck_assert_ptr_nonnull(strstr(errs, "F:7: "));
	free(errs);

	/* Passwords that are refused are not echoed either. */
	ck_assert_int_eq(load("[events]\nredis_password_file = spaced.pw\n",
	    &cfg, &errs), -1);
	ck_assert_msg(strstr(errs, "SECRET") == NULL, "a secret leaked:\n%s",
	    errs);
	ck_assert_ptr_nonnull(strstr(errs, "F:2: "));
	free(errs);
	ck_assert_int_eq(load("[events]\nredis_password_file = ctl.pw\n",
	    &cfg, &errs), -1);
	ck_assert_msg(strstr(errs, "SECRET") == NULL, "a secret leaked:\n%s",
	    errs);
	ck_assert_ptr_nonnull(strstr(errs, "F:2: "));
	free(errs);

	/* And the good one loads, with no output. */
	cfg = expect_ok("[events]\nredis_password_file = good.pw\n", "");
	ck_assert_str_eq(cfg->events_redis_password, "SECRET-redis-good-pw");
	config_free(cfg);
}
END_TEST

/* [trace] */

START_TEST(test_trace_all)
{
	struct config *cfg;

	cfg = expect_ok(
	    "[trace]\n"
	    "signature = no\n"
	    "map_size = 1\n"
	    "map_ttl = 1s\n", "");
	ck_assert(!cfg->trace_signature);
	ck_assert_uint_eq(cfg->trace_map_size, 1);
	ck_assert_uint_eq(cfg->trace_map_ttl_ms, 1000);
	config_free(cfg);

	/* The other ends of the ranges; the default written out. */
	cfg = expect_ok(
	    "[trace]\n"
	    "signature = YES\n"
	    "map_size = 100000000\n"
	    "map_ttl = 1440m\n", "");
	ck_assert(cfg->trace_signature);
	ck_assert_uint_eq(cfg->trace_map_size, 100000000);
	ck_assert_uint_eq(cfg->trace_map_ttl_ms, 86400000);
	config_free(cfg);

	/* One key alone leaves the others at their defaults. */
	cfg = expect_ok("[trace]\nmap_ttl = 4294967295ms\n", "");
	ck_assert(cfg->trace_signature);
	ck_assert_uint_eq(cfg->trace_map_size, 100000);
	ck_assert_uint_eq(cfg->trace_map_ttl_ms, 4294967295u);
	config_free(cfg);
}
END_TEST

START_TEST(test_trace_values)
{
	static const struct {
		const char *line;
		bool signature;
		unsigned map_size, map_ttl_ms;
	} cases[] = {
		{ "signature = yes", true, 100000, 86400000 },
		{ "signature = true", true, 100000, 86400000 },
		{ "signature = on", true, 100000, 86400000 },
		{ "signature = 1", true, 100000, 86400000 },
		{ "signature = no", false, 100000, 86400000 },
		{ "signature = false", false, 100000, 86400000 },
		{ "signature = Off", false, 100000, 86400000 },
		{ "signature = 0", false, 100000, 86400000 },
		{ "map_size = 007", true, 7, 86400000 },
		{ "map_size = 2000000", true, 2000000, 86400000 },
		{ "map_ttl = 90", true, 100000, 90000 },
		{ "map_ttl = 1000ms", true, 100000, 1000 },
		{ "map_ttl = 3600S", true, 100000, 3600000 },
		{ "map_ttl = 10m", true, 100000, 600000 },
		{ "map_ttl = 71582m", true, 100000, 4294920000u },
	};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg;

		snprintf(text, sizeof(text), "[trace]\n%s\n", cases[i].line);
		cfg = expect_ok(text, "");
		ck_assert_msg(cfg->trace_signature == cases[i].signature, "%s",
		    cases[i].line);
		ck_assert_uint_eq(cfg->trace_map_size, cases[i].map_size);
		ck_assert_uint_eq(cfg->trace_map_ttl_ms, cases[i].map_ttl_ms);
		config_free(cfg);
	}
}
END_TEST

START_TEST(test_trace_errors)
{
	static const struct {
		const char *line, *message;
	} cases[] = {
		{ "signature = maybe", "signature: expected yes or no, got "
		    "'maybe'" },
		{ "signature =", "signature: expected yes or no, got ''" },
		{ "signature = y", "signature: expected yes or no, got 'y'" },
		{ "signature = off please", "signature: expected yes or no, got "
		    "'off please'" },
		{ "map_size = 0", "map_size: expected a whole number from 1 to "
		    "100000000, got '0'" },
		{ "map_size = 100000001", "map_size: expected a whole number "
		    "from 1 to 100000000, got '100000001'" },
		{ "map_size = -1", "map_size: expected a whole number from 1 to "
		    "100000000, got '-1'" },
		{ "map_size = 100K", "map_size: expected a whole number from 1 "
		    "to 100000000, got '100K'" },
		{ "map_size = 1e5", "map_size: expected a whole number from 1 to "
		    "100000000, got '1e5'" },
		{ "map_size =", "map_size: expected a whole number from 1 to "
		    "100000000, got ''" },
		{ "map_size = 99999999999999999999999", "map_size: expected a "
		    "whole number from 1 to 100000000, got "
		    "'99999999999999999999999'" },
		{ "map_ttl = 0", "map_ttl: must be at least 1000 ms" },
		{ "map_ttl = 0m", "map_ttl: must be at least 1000 ms" },
		{ "map_ttl = 0ms", "map_ttl: must be at least 1000 ms" },
		{ "map_ttl = 1ms", "map_ttl: must be at least 1000 ms" },
		{ "map_ttl = 999ms", "map_ttl: must be at least 1000 ms" },
		{ "map_ttl = 24h", "map_ttl: invalid duration '24h' (expected a "
		    "number of seconds, or a number with an ms, s or m suffix, as "
		    "in 500ms)" },
		{ "map_ttl = 1d", "map_ttl: invalid duration '1d' (expected a "
		    "number of seconds, or a number with an ms, s or m suffix, as "
		    "in 500ms)" },
		{ "map_ttl = 1.5m", "map_ttl: invalid duration '1.5m' (expected "
		    "a number of seconds, or a number with an ms, s or m suffix, "
		    "as in 500ms)" },
		{ "map_ttl = 71583m", "map_ttl: invalid duration '71583m' "
		    "(expected a number of seconds, or a number with an ms, s or "
		    "m suffix, as in 500ms)" },
		{ "map_ttl =", "map_ttl: invalid duration '' (expected a number "
		    "of seconds, or a number with an ms, s or m suffix, as in "
		    "500ms)" },
	};
	char text[128], expect[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[trace]\n%s\n", cases[i].line);
		snprintf(expect, sizeof(expect), "F:2: %s\n", cases[i].message);
		expect_errors(text, expect);
	}
}
END_TEST

START_TEST(test_trace_section)
{
	expect_errors("[trace main]\nsignature = no\n",
	    "F:1: section [trace] takes no name\n");
	expect_errors(
	    "[trace]\n"
	    "map_size = 10\n"
	    "[trace]\n"
	    "map_size = 20\n",
	    "F:3: duplicate section [trace] (first at line 1)\n");
	expect_errors(
	    "[trace]\n"
	    "signatures = no\n"
	    "map_ttl_ms = 1000\n"
	    "signature = no\n"
	    "signature = yes\n"
	    "map_size = 10\n"
	    "map_size = 10\n"
	    "map_ttl = 1m\n"
	    "map_ttl = 2m\n",
	    "F:2: unknown key 'signatures' in [trace]\n"
	    "F:3: unknown key 'map_ttl_ms' in [trace]\n"
	    "F:5: duplicate key 'signature' in [trace] (first set at line 4)\n"
	    "F:7: duplicate key 'map_size' in [trace] (first set at line 6)\n"
	    "F:9: duplicate key 'map_ttl' in [trace] (first set at line 8)\n");
	/* The keys belong to [trace] only. */
	expect_errors(
	    "[server]\n"
	    "signature = no\n"
	    "[events]\n"
	    "map_size = 10\n"
	    "[upstream]\n"
	    "map_ttl = 1m\n"
	    "[trace]\n"
	    "sink = none\n",
	    "F:2: unknown key 'signature' in [server]\n"
	    "F:4: unknown key 'map_size' in [events]\n"
	    "F:6: unknown key 'map_ttl' in [upstream]\n"
	    "F:8: unknown key 'sink' in [trace]\n");
	/* Every error of the section in one run. */
	expect_errors(
	    "[trace]\n"
	    "signature = sometimes\n"
	    "map_size = 0\n"
	    "map_ttl = 0\n",
	    "F:2: signature: expected yes or no, got 'sometimes'\n"
	    "F:3: map_size: expected a whole number from 1 to 100000000, got "
	    "'0'\n"
	    "F:4: map_ttl: must be at least 1000 ms\n");
}
END_TEST

/* [provider NAME] */

START_TEST(test_provider_all)
{
	struct config *cfg = expect_ok(
	    "[provider openai.main_1-x]\n"
	    "type = openai\n"
	    "base_url = https://api.openai.com/v1/\n"
	    "api_key = sk-inline-key\n"
	    "models = gpt-* o1*\n"
	    "models =   o3*\tchatgpt-*  \n"
	    "header = OpenAI-Organization: org-123\n"
	    "header = X-Extra:   a value: with colon  \n"
	    "header = X-Extra: again\n"
	    "[provider claude]\n"
	    "type = Anthropic\n"
	    "base_url = HTTP://localhost:8081\n", "");
	struct provider *p = &cfg->providers[0];

	ck_assert_uint_eq(cfg->nproviders, 2);
	ck_assert_str_eq(p->name, "openai.main_1-x");
	ck_assert_int_eq(p->type, PROVIDER_OPENAI);
	ck_assert_str_eq(p->base_url, "https://api.openai.com/v1");
	ck_assert_str_eq(p->api_key, "sk-inline-key");
	ck_assert_uint_eq(p->nmodels, 4);
	ck_assert_str_eq(p->models[0], "gpt-*");
	ck_assert_str_eq(p->models[1], "o1*");
	ck_assert_str_eq(p->models[2], "o3*");
	ck_assert_str_eq(p->models[3], "chatgpt-*");
	ck_assert_uint_eq(p->nheaders, 3);
	ck_assert_str_eq(p->headers[0].name, "OpenAI-Organization");
	ck_assert_str_eq(p->headers[0].value, "org-123");
	ck_assert_str_eq(p->headers[1].name, "X-Extra");
	ck_assert_str_eq(p->headers[1].value, "a value: with colon");
	ck_assert_str_eq(p->headers[2].value, "again");
	ck_assert_int_eq(p->line, 1);

	p = &cfg->providers[1];
	ck_assert_str_eq(p->name, "claude");
	ck_assert_int_eq(p->type, PROVIDER_ANTHROPIC);
	ck_assert_str_eq(p->base_url, "HTTP://localhost:8081");
	ck_assert_ptr_null(p->api_key);
	ck_assert_uint_eq(p->nmodels, 0);
	ck_assert_ptr_null(p->models);
	ck_assert_uint_eq(p->nheaders, 0);
	ck_assert_int_eq(p->line, 10);
	config_free(cfg);
}
END_TEST

START_TEST(test_provider_missing_keys)
{
	expect_errors(
	    "[provider a]\n"
	    "\n"
	    "[provider b]\n"
	    "type = openai\n"
	    "[provider c]\n"
	    "base_url = https://x\n"
	    "[provider d]\n"
	    "type = nope\n",
	    "F:1: provider a: missing required key 'type'\n"
	    "F:1: provider a: missing required key 'base_url'\n"
	    "F:3: provider b: missing required key 'base_url'\n"
	    "F:5: provider c: missing required key 'type'\n"
	    "F:7: provider d: missing required key 'base_url'\n"
	    "F:8: type: expected openai or anthropic, got 'nope'\n");
}
END_TEST

START_TEST(test_base_url)
{
	static const struct {
		const char *value, *stored;
	} ok[] = {
		{ "https://api.openai.com/v1", "https://api.openai.com/v1" },
		{ "https://api.openai.com/v1///", "https://api.openai.com/v1" },
		{ "https://api.anthropic.com/", "https://api.anthropic.com" },
		{ "http://127.0.0.1:9999", "http://127.0.0.1:9999" },
		{ "http://[::1]:9999/x/", "http://[::1]:9999/x" },
	};
	static const struct {
		const char *value, *message;
	} bad[] = {
		{ "ftp://x", "base_url: must start with http:// or https://" },
		{ "api.openai.com/v1", "base_url: must start with http:// or "
		    "https://" },
		{ "", "base_url: must start with http:// or https://" },
		{ "https://", "base_url: missing host name" },
		{ "https:///v1", "base_url: missing host name" },
		{ "https://user:pw@host/v1", "base_url: must not contain user "
		    "credentials; use api_key_file, api_key_env or api_key" },
		{ "https://host/v1?key=abc", "base_url: must not contain a query "
		    "or fragment" },
		{ "https://host/v1#x", "base_url: must not contain a query or "
		    "fragment" },
		{ "https://host/a b", "base_url: must not contain spaces, control "
		    "or non-ASCII characters" },
		{ "https://h\xc3\xa9st/", "base_url: must not contain spaces, "
		    "control or non-ASCII characters" },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char text[256];
		struct config *cfg;

		snprintf(text, sizeof(text), "[provider p]\ntype = openai\n"
		    "base_url = %s\n", ok[i].value);
		cfg = expect_ok(text, "");
		ck_assert_str_eq(cfg->providers[0].base_url, ok[i].stored);
		config_free(cfg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256], expect[256];

		snprintf(text, sizeof(text), "[provider p]\ntype = openai\n"
		    "base_url = %s\n", bad[i].value);
		snprintf(expect, sizeof(expect), "F:3: %s\n", bad[i].message);
		expect_errors(text, expect);
	}
}
END_TEST

START_TEST(test_api_key_file_trimmed)
{
	static const char key[] = " \n\t sk-file-key-123 \r\n\n\n";
	char text[512], *path = write_file("openai.key", key, sizeof(key) - 1);
	struct config *cfg;

	snprintf(text, sizeof(text), "%sapi_key_file = %s\n", provider_ok, path);
	cfg = expect_ok(text, "");
	ck_assert_str_eq(cfg->providers[0].api_key, "sk-file-key-123");
	config_free(cfg);

	/* A relative path is relative to the configuration file. */
	snprintf(text, sizeof(text), "%sapi_key_file = openai.key\n", provider_ok);
	cfg = expect_ok(text, "");
	ck_assert_str_eq(cfg->providers[0].api_key, "sk-file-key-123");
	config_free(cfg);
	free(path);
}
END_TEST

START_TEST(test_api_key_file_errors)
{
	static const char inner[] = "sk-SECRET-part-one sk-SECRET-part-two\n";
	char text[1024], *big, *path;

	free(write_file("empty.key", "", 0));
	free(write_file("blank.key", " \n\r\n\t\n", 6));
	free(write_file("inner.key", inner, sizeof(inner) - 1));
	big = malloc(70000);
	ck_assert_ptr_nonnull(big);
	memset(big, 'k', 70000);
	free(write_file("big.key", big, 70000));
	free(write_file("long.key", big, 4001));
	free(write_file("max.key", big, 4000));
	free(big);
	ck_assert_int_ge(asprintf(&path, "%s/dir.key", tmpdir), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	free(path);

	snprintf(text, sizeof(text),
	    "[provider a]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file = missing.key\n"
	    "[provider b]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file = empty.key\n"
	    "[provider c]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file = blank.key\n"
	    "[provider d]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file = inner.key\n"
	    "[provider e]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file = dir.key\n"
	    "[provider f]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file = big.key\n"
	    "[provider g]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file =\n"
	    "[provider h]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file = long.key\n"
	    "[provider i]\ntype = openai\nbase_url = http://a\n"
	    "api_key_file = max.key\n");
	expect_errors(text,
	    "F:4: api_key_file: cannot read 'D/missing.key': No such file or "
	    "directory\n"
	    "F:8: api_key_file: 'D/empty.key' is empty\n"
	    "F:12: api_key_file: 'D/blank.key' is empty\n"
	    "F:16: api_key_file: the key in 'D/inner.key' contains spaces, "
	    "control or non-ASCII characters\n"
	    "F:20: api_key_file: 'D/dir.key' is not a regular file\n"
	    "F:24: api_key_file: 'D/big.key' is larger than 64K; it should hold "
	    "only the key\n"
	    "F:28: api_key_file: empty value\n"
	    "F:32: api_key_file: the key in 'D/long.key' is longer than 4000 "
	    "characters\n");
}
END_TEST

START_TEST(test_api_key_env)
{
	char text[512];
	struct config *cfg;

	setenv("WHYOPS_TEST_KEY", "  sk-env-key\n", 1);
	snprintf(text, sizeof(text), "%sapi_key_env = WHYOPS_TEST_KEY\n",
	    provider_ok);
	cfg = expect_ok(text, "");
	ck_assert_str_eq(cfg->providers[0].api_key, "sk-env-key");
	config_free(cfg);

	/* Unset or empty: a warning, and the provider sends no credentials. */
	unsetenv("WHYOPS_TEST_KEY");
	cfg = expect_ok(text, "F:4: warning: environment variable "
	    "WHYOPS_TEST_KEY is not set; provider p will send no credentials\n");
	ck_assert_ptr_null(cfg->providers[0].api_key);
	config_free(cfg);

	setenv("WHYOPS_TEST_KEY", "", 1);
	cfg = expect_ok(text, "F:4: warning: environment variable "
	    "WHYOPS_TEST_KEY is not set; provider p will send no credentials\n");
	ck_assert_ptr_null(cfg->providers[0].api_key);
	config_free(cfg);

	setenv("WHYOPS_TEST_KEY", " \n ", 1);
	cfg = expect_ok(text, "F:4: warning: environment variable "
	    "WHYOPS_TEST_KEY is not set; provider p will send no credentials\n");
	config_free(cfg);
	unsetenv("WHYOPS_TEST_KEY");
}
END_TEST

START_TEST(test_api_key_env_errors)
{
	char text[512], *longkey = malloc(4002);

	ck_assert_ptr_nonnull(longkey);
	memset(longkey, 'k', 4001);
	longkey[4001] = '\0';
	setenv("WHYOPS_TEST_LONG", longkey, 1);
	free(longkey);
	setenv("WHYOPS_TEST_BAD", "sk-SECRET one\ntwo", 1);
	snprintf(text, sizeof(text),
	    "%sapi_key_env = WHYOPS_TEST_BAD\n"
	    "[provider q]\ntype = openai\nbase_url = http://q\n"
	    "api_key_env = sk-SECRET-pasted-by-mistake\n"
	    "[provider r]\ntype = openai\nbase_url = http://r\n"
	    "api_key_env = 1ABC\n"
	    "[provider s]\ntype = openai\nbase_url = http://s\n"
	    "api_key_env =\n"
	    "[provider t]\ntype = openai\nbase_url = http://t\n"
	    "api_key_env = WHYOPS_TEST_LONG\n", provider_ok);
	expect_errors(text,
	    "F:4: api_key_env: environment variable WHYOPS_TEST_BAD contains "
	    "spaces, control or non-ASCII characters\n"
	    "F:8: api_key_env: expected the name of an environment variable "
	    "(letters, digits and '_')\n"
	    "F:12: api_key_env: expected the name of an environment variable "
	    "(letters, digits and '_')\n"
	    "F:16: api_key_env: expected the name of an environment variable "
	    "(letters, digits and '_')\n"
	    "F:20: api_key_env: environment variable WHYOPS_TEST_LONG is longer "
	    "than 4000 characters\n");
	unsetenv("WHYOPS_TEST_BAD");
	unsetenv("WHYOPS_TEST_LONG");
}
END_TEST

START_TEST(test_api_key_inline_errors)
{
	char text[512];

	snprintf(text, sizeof(text),
	    "%sapi_key =\n"
	    "[provider q]\ntype = openai\nbase_url = http://q\n"
	    "api_key = sk-SECRET with-space\n"
	    "[provider r]\ntype = openai\nbase_url = http://r\n"
	    "api_key = sk-SECRET-\x01-ctl\n", provider_ok);
	expect_errors(text,
	    "F:4: api_key: empty value\n"
	    "F:8: api_key: the key contains spaces, control or non-ASCII "
	    "characters\n"
	    "F:12: api_key: the value contains control characters\n");
}
END_TEST

START_TEST(test_credentials_exclusive)
{
	char text[1024], *key = write_file("k", "sk-SECRET-file\n", 15);

	free(key);
	setenv("WHYOPS_TEST_KEY", "sk-SECRET-env", 1);
	snprintf(text, sizeof(text),
	    "%s"
	    "api_key = sk-SECRET-inline\n"
	    "api_key_env = WHYOPS_TEST_KEY\n"
	    "api_key_file = k\n"
	    "[provider q]\ntype = openai\nbase_url = http://q\n"
	    "api_key_file = k\n"
	    "api_key = sk-SECRET-inline\n"
	    "[provider r]\ntype = openai\nbase_url = http://r\n"
	    "api_key_env = WHYOPS_TEST_KEY\n"
	    "api_key_file = k\n", provider_ok);
	expect_errors(text,
	    "F:5: api_key_env: provider p already has api_key (line 4); use only "
	    "one of api_key_file, api_key_env and api_key\n"
	    "F:6: api_key_file: provider p already has api_key_env (line 5); use "
	    "only one of api_key_file, api_key_env and api_key\n"
	    "F:11: api_key: provider q already has api_key_file (line 10); use "
	    "only one of api_key_file, api_key_env and api_key\n"
	    "F:16: api_key_file: provider r already has api_key_env (line 15); "
	    "use only one of api_key_file, api_key_env and api_key\n");
	unsetenv("WHYOPS_TEST_KEY");
}
END_TEST

START_TEST(test_models_errors)
{
	char text[256];

	snprintf(text, sizeof(text), "%smodels =\nmodels = a*\nmodels =   \n",
	    provider_ok);
	expect_errors(text, "F:4: models: empty list\nF:6: models: empty list\n");
}
END_TEST

START_TEST(test_header_errors)
{
	static const struct {
		const char *value, *message;
	} cases[] = {
		{ "no-colon-here", "header: expected 'Name: value'" },
		{ ": value", "header: expected 'Name: value'" },
		{ "", "header: expected 'Name: value'" },
		{ "Bad Name: v", "header: the name before ':' is not a valid "
		    "header name (letters, digits and !#$%&'*+-.^_`|~)" },
		{ "Bad(Name): v", "header: the name before ':' is not a valid "
		    "header name (letters, digits and !#$%&'*+-.^_`|~)" },
		{ "  : v", "header: expected 'Name: value'" },
		{ "\"X\": v", "header: the name before ':' is not a valid header "
		    "name (letters, digits and !#$%&'*+-.^_`|~)" },
		{ "X-Empty:", "header X-Empty: empty value" },
		{ "X-Empty:   ", "header X-Empty: empty value" },
		{ "X-Ctl: sk-SECRET\x01", "header: the value contains control "
		    "characters" },
		{ "X-Tab: a\tb", NULL },
		{ "Host: example.com", "header: Host is set by the proxy and "
		    "cannot be configured" },
		{ "content-length: 5", "header: content-length is set by the "
		    "proxy and cannot be configured" },
		{ "Transfer-Encoding: chunked", "header: Transfer-Encoding is set "
		    "by the proxy and cannot be configured" },
		{ "CONNECTION: close", "header: CONNECTION is set by the proxy and "
		    "cannot be configured" },
		{ "Authorization: Bearer sk-SECRET", "header: Authorization is "
		    "set by the proxy and cannot be configured" },
		{ "X-Api-Key: sk-SECRET", "header: X-Api-Key is set by the proxy "
		    "and cannot be configured" },
		{ "Keep-Alive: 5", "header: Keep-Alive is set by the proxy and "
		    "cannot be configured" },
		{ "Upgrade: h2c", "header: Upgrade is set by the proxy and cannot "
		    "be configured" },
		{ "TE: trailers", "header: TE is set by the proxy and cannot be "
		    "configured" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256], expect[256];

		snprintf(text, sizeof(text), "%sheader = %s\n", provider_ok,
		    cases[i].value);
		if (cases[i].message == NULL) {
			config_free(expect_ok(text, ""));
			continue;
		}
		snprintf(expect, sizeof(expect), "F:4: %s\n", cases[i].message);
		expect_errors(text, expect);
	}
}
END_TEST

/* [environment NAME] */

START_TEST(test_environment)
{
	/* Providers may be defined after the environment that names them. */
	struct config *cfg = expect_ok(
	    "[environment production]\n"
	    "providers = b a\n"
	    "[environment staging]\n"
	    "project = acme-staging\n"
	    "providers = a\n"
	    "[provider a]\ntype = openai\nbase_url = http://a\n"
	    "[provider b]\ntype = anthropic\nbase_url = http://b\n", "");
	struct environment *e = &cfg->environments[0];

	ck_assert_uint_eq(cfg->nenvironments, 2);
	ck_assert_str_eq(e->name, "production");
	ck_assert_str_eq(e->project, "production");
	ck_assert_uint_eq(e->nproviders, 2);
	ck_assert_ptr_eq(e->providers[0], &cfg->providers[1]);
	ck_assert_ptr_eq(e->providers[1], &cfg->providers[0]);
	ck_assert_int_eq(e->line, 1);
	e = &cfg->environments[1];
	ck_assert_str_eq(e->name, "staging");
	ck_assert_str_eq(e->project, "acme-staging");
	ck_assert_uint_eq(e->nproviders, 1);
	ck_assert_ptr_eq(e->providers[0], &cfg->providers[0]);
	ck_assert_int_eq(e->line, 3);
	config_free(cfg);
}
END_TEST

START_TEST(test_control_characters)
{
	char text[512];

	snprintf(text, sizeof(text),
	    "[server]\nlog_level = de\x1b[2Jbug\n"
	    "%s"
	    "[environment e]\nproviders = p\nproject = ac\x7fme\n"
	    "[key k]\nsha256 = %s\nenvironment = e\nagent = a\x01b\n",
	    provider_ok, hash_a);
	expect_errors(text,
	    "F:2: log_level: the value contains control characters\n"
	    "F:8: project: the value contains control characters\n"
	    "F:12: agent: the value contains control characters\n");
}
END_TEST

START_TEST(test_environment_errors)
{
	char text[1024];

	snprintf(text, sizeof(text),
	    "%s"
	    "[environment production]\n"
	    "providers = p x\n"
	    "[environment twice]\n"
	    "providers = p p\n"
	    "[environment none]\n"
	    "project = acme\n"
	    "[environment empty]\n"
	    "providers =\n"
	    "project =\n", provider_ok);
	expect_errors(text,
	    "F:5: environment production: provider 'x' is not defined\n"
	    "F:7: environment twice: provider 'p' is listed twice\n"
	    "F:8: environment none: missing required key 'providers'\n"
	    "F:11: providers: empty list\n"
	    "F:12: project: empty value\n");
}
END_TEST

/* [key NAME] */

START_TEST(test_keys)
{
	char text[1024], upper[65];
	struct config *cfg;

	for (size_t i = 0; i < 64; i++)
		upper[i] = (char)toupper((unsigned char)hash_b[i]);
	upper[64] = '\0';
	snprintf(text, sizeof(text),
	    "%s"
	    "[environment e]\nproviders = p\n"
	    "[key ci-agent]\n"
	    "sha256 = %s\n"
	    "environment = e\n"
	    "agent = support-bot\n"
	    "[key other]\n"
	    "environment = e\n"
	    "sha256 = %s\n", provider_ok, hash_a, upper);
	cfg = expect_ok(text, "");
	ck_assert_uint_eq(cfg->nkeys, 2);
	ck_assert_str_eq(cfg->keys[0].name, "ci-agent");
	ck_assert_uint_eq(cfg->keys[0].sha256[0], 0x01);
	ck_assert_uint_eq(cfg->keys[0].sha256[1], 0x23);
	ck_assert_uint_eq(cfg->keys[0].sha256[31], 0xef);
	ck_assert_ptr_eq(cfg->keys[0].env, &cfg->environments[0]);
	ck_assert_str_eq(cfg->keys[0].agent, "support-bot");
	ck_assert_int_eq(cfg->keys[0].line, 6);
	ck_assert_str_eq(cfg->keys[1].name, "other");
	ck_assert_uint_eq(cfg->keys[1].sha256[0], 0xfe);
	ck_assert_uint_eq(cfg->keys[1].sha256[31], 0x10);
	ck_assert_ptr_null(cfg->keys[1].agent);
	ck_assert_int_eq(cfg->keys[1].line, 10);
	config_free(cfg);
}
END_TEST

START_TEST(test_key_errors)
{
	char text[2048];

	snprintf(text, sizeof(text),
	    "%s"
	    "[environment e]\nproviders = p\n"
	    "[key short]\n"
	    "sha256 = 0123abcd\n"
	    "environment = e\n"
	    "[key nothex]\n"
	    "sha256 = %.63sg\n"
	    "environment = e\n"
	    "[key nohash]\n"
	    "environment = e\n"
	    "[key noenv]\n"
	    "sha256 = %s\n"
	    "[key undefined]\n"
	    "sha256 = %s\n"
	    "environment = staging\n"
	    "[key two]\n"
	    "environment = e f\n"
	    "agent =\n"
	    "sha256 =\n",
	    provider_ok, hash_a, hash_a, hash_b);
	expect_errors(text,
	    "F:7: sha256: expected 64 hexadecimal digits (as printed by "
	    "whyops-proxy --new-key)\n"
	    "F:10: sha256: expected 64 hexadecimal digits (as printed by "
	    "whyops-proxy --new-key)\n"
	    "F:12: key nohash: missing required key 'sha256'\n"
	    "F:14: key noenv: missing required key 'environment'\n"
	    "F:18: key undefined: environment 'staging' is not defined\n"
	    "F:20: environment: expected one environment name\n"
	    "F:21: agent: empty value\n"
	    "F:22: sha256: expected 64 hexadecimal digits (as printed by "
	    "whyops-proxy --new-key)\n");
}
END_TEST

START_TEST(test_duplicate_sha256)
{
	char text[2048], upper[65];

	for (size_t i = 0; i < 64; i++)
		upper[i] = (char)toupper((unsigned char)hash_a[i]);
	upper[64] = '\0';
	snprintf(text, sizeof(text),
	    "%s"
	    "[environment e]\nproviders = p\n"
	    "[key one]\nsha256 = %s\nenvironment = e\n"
	    "[key two]\nsha256 = %s\nenvironment = e\n"
	    "[key three]\nenvironment = e\nsha256 = %s\n"
	    "[key four]\nsha256 = %s\nenvironment = e\n",
	    provider_ok, hash_b, hash_a, upper, hash_b);
	expect_errors(text,
	    "F:14: key three: same sha256 as key two (line 9)\n"
	    "F:16: key four: same sha256 as key one (line 6)\n");
}
END_TEST

/* Whole files */

START_TEST(test_no_keys_no_providers_is_valid)
{
	struct config *cfg = expect_ok("[server]\nlisten = 127.0.0.1:0\n", "");

	ck_assert_uint_eq(cfg->nproviders, 0);
	ck_assert_uint_eq(cfg->nkeys, 0);
	config_free(cfg);

	cfg = expect_ok(provider_ok, "");
	ck_assert_uint_eq(cfg->nproviders, 1);
	ck_assert_uint_eq(cfg->nenvironments, 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_many_errors_in_one_run)
{
	/* Errors found at the end (missing keys, references) are sorted in. */
	expect_errors(
	    "[server]\n"
	    "threads = lots\n"
	    "listen = nowhere\n"
	    "[provider a]\n"
	    "base_url = gopher://x\n"
	    "[environment e]\n"
	    "providers = a ghost\n"
	    "[key k]\n"
	    "sha256 = 00\n"
	    "environment = nowhere\n"
	    "[upstream]\n"
	    "connect_timeout = soon\n"
	    "bogus = 1\n"
	    "[wat]\n",
	    "F:2: threads: expected a whole number from 0 to 256, got 'lots'\n"
	    "F:3: listen: expected ADDRESS:PORT, [IPV6-ADDRESS]:PORT or *:PORT, "
	    "got 'nowhere'\n"
	    "F:4: provider a: missing required key 'type'\n"
	    "F:5: base_url: must start with http:// or https://\n"
	    "F:7: environment e: provider 'ghost' is not defined\n"
	    "F:9: sha256: expected 64 hexadecimal digits (as printed by "
	    "whyops-proxy --new-key)\n"
	    "F:10: key k: environment 'nowhere' is not defined\n"
	    "F:12: connect_timeout: invalid duration 'soon' (expected a number "
	    "of seconds, or a number with an ms, s or m suffix, as in 500ms)\n"
	    "F:13: unknown key 'bogus' in [upstream]\n"
	    "F:14: unknown section [wat] (expected [server], [upstream], [events], [trace], "
	    "[provider NAME], [environment NAME] or [key NAME])\n");
}
END_TEST

START_TEST(test_warning_with_errors)
{
	char text[512];

	unsetenv("WHYOPS_TEST_UNSET");
	snprintf(text, sizeof(text), "%sapi_key_env = WHYOPS_TEST_UNSET\n"
	    "[server]\nthreads = x\n", provider_ok);
	expect_errors(text,
	    "F:4: warning: environment variable WHYOPS_TEST_UNSET is not set; "
	    "provider p will send no credentials\n"
	    "F:6: threads: expected a whole number from 0 to 256, got 'x'\n");
}
END_TEST

START_TEST(test_secrets_never_printed)
{
	static const char file_key[] = "\nsk-SECRET-in-file but two words\n";
	char text[2048], *path;
	struct config *cfg;
	char *errs;

	path = write_file("bad.key", file_key, sizeof(file_key) - 1);
	free(path);
	setenv("WHYOPS_TEST_HIDDEN", "sk-SECRET-env\x01", 1);
	snprintf(text, sizeof(text),
	    "[provider a]\n"
	    "type = openai\n"
	    "base_url = https://user:sk-SECRET-url@example.com/v1?key=SECRET\n"
	    "api_key = sk-SECRET-inline\n"
	    "api_key = sk-SECRET-inline-again\n"
	    "api_key_file = sk-SECRET-inline\n"
	    "header = X-Token sk-SECRET: v\n"
	    "header = X-Token: sk-SECRET\x02\n"
	    "header = sk-SECRET-without-colon\n"
	    "[provider b]\n"
	    "type = openai\n"
	    "base_url = https://example.com/v1?SECRET\n"
	    "api_key = sk-SECRET with space\n"
	    "[provider c]\n"
	    "type = openai\n"
	    "base_url = https://example.com\n"
	    "api_key_file = bad.key\n"
	    "[provider d]\n"
	    "type = openai\n"
	    "base_url = https://example.com\n"
	    "api_key_env = WHYOPS_TEST_HIDDEN\n"
	    "[provider e]\n"
	    "type = openai\n"
	    "base_url = https://example.com\n"
	    "api_key_env = sk-SECRET-as-name\n"
	    "[key k]\n"
	    "sha256 = SECRET%s\n"
	    "environment = x\n", hash_a);
	ck_assert_int_eq(load(text, &cfg, &errs), -1);
	ck_assert_msg(strstr(errs, "SECRET") == NULL, "a secret leaked:\n%s",
	    errs);
	/* Every bad line was reported. */
	ck_assert_ptr_nonnull(strstr(errs, "F:3: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:5: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:6: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:7: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:8: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:9: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:12: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:13: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:17: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:21: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:25: "));
	ck_assert_ptr_nonnull(strstr(errs, "F:27: "));
	free(errs);
	unsetenv("WHYOPS_TEST_HIDDEN");
}
END_TEST

START_TEST(test_example_config)
{
	struct config *cfg;
	char *errs;

	unsetenv("OPENAI_API_KEY");
	unsetenv("ANTHROPIC_API_KEY");
	ck_assert_int_eq(load_path(SRCDIR "/etc/whyops.conf", &cfg, &errs), 0);
	/* Only the warnings for the two unset variables. */
	ck_assert_ptr_nonnull(strstr(errs, ": warning: environment variable "
	    "OPENAI_API_KEY is not set; provider openai will send no "
	    "credentials\n"));
	ck_assert_ptr_nonnull(strstr(errs, ": warning: environment variable "
	    "ANTHROPIC_API_KEY is not set; provider anthropic will send no "
	    "credentials\n"));
	ck_assert_ptr_eq(strchr(strchr(errs, '\n') + 1, '\n') + 1,
	    errs + strlen(errs));
	free(errs);
	config_free(cfg);

	setenv("OPENAI_API_KEY", "sk-test-openai", 1);
	setenv("ANTHROPIC_API_KEY", "sk-ant-test", 1);
	ck_assert_int_eq(load_path(SRCDIR "/etc/whyops.conf", &cfg, &errs), 0);
	ck_assert_str_eq(errs, "");
	free(errs);
	ck_assert_str_eq(cfg->listen_host, "127.0.0.1");
	ck_assert_uint_eq(cfg->listen_port, 8080);
	ck_assert_uint_eq(cfg->nproviders, 2);
	ck_assert_str_eq(cfg->providers[0].name, "openai");
	ck_assert_int_eq(cfg->providers[0].type, PROVIDER_OPENAI);
	ck_assert_str_eq(cfg->providers[0].base_url, "https://api.openai.com/v1");
	ck_assert_str_eq(cfg->providers[0].api_key, "sk-test-openai");
	ck_assert_uint_eq(cfg->providers[0].nmodels, 6);
	ck_assert_str_eq(cfg->providers[0].models[5], "text-embedding-*");
	ck_assert_str_eq(cfg->providers[1].name, "anthropic");
	ck_assert_int_eq(cfg->providers[1].type, PROVIDER_ANTHROPIC);
	ck_assert_str_eq(cfg->providers[1].base_url,
	    "https://api.anthropic.com/v1");
	ck_assert_str_eq(cfg->providers[1].api_key, "sk-ant-test");
	ck_assert_uint_eq(cfg->providers[1].nmodels, 1);
	ck_assert_str_eq(cfg->providers[1].models[0], "claude-*");
	ck_assert_uint_eq(cfg->nenvironments, 1);
	ck_assert_str_eq(cfg->environments[0].name, "production");
	ck_assert_uint_eq(cfg->environments[0].nproviders, 2);
	ck_assert_ptr_eq(cfg->environments[0].providers[0], &cfg->providers[0]);
	ck_assert_uint_eq(cfg->nkeys, 0);
	ck_assert(cfg->force_stream_usage);
	ck_assert_uint_eq(cfg->max_event_size, 4 * 1024 * 1024);
	ck_assert_uint_eq(cfg->drain_timeout_ms, 30000);
	/* Events go to the local Redis; the spool takes them meanwhile. */
	ck_assert_int_eq(cfg->events_sink, EVENTS_SINK_REDIS);
	ck_assert_str_eq(cfg->events_file, "/var/lib/whyops/events.jsonl");
	ck_assert_uint_eq(cfg->events_queue_size, 65536);
	ck_assert(cfg->events_capture_content);
	ck_assert_str_eq(cfg->events_redis, "127.0.0.1:6379");
	ck_assert_ptr_null(cfg->events_redis_user);
	ck_assert_ptr_null(cfg->events_redis_password);
	ck_assert_uint_eq(cfg->events_redis_db, 0);
	ck_assert_uint_eq(cfg->events_redis_timeout_ms, 1000);
	ck_assert_str_eq(cfg->events_stream, "whyops:events");
	ck_assert_uint_eq(cfg->events_stream_maxlen, 200000);
	ck_assert_str_eq(cfg->events_spool_dir, "/var/lib/whyops/spool");
	ck_assert_uint_eq(cfg->events_spool_max, (size_t)1 << 30);
	ck_assert(cfg->trace_signature);
	ck_assert_uint_eq(cfg->trace_map_size, 100000);
	ck_assert_uint_eq(cfg->trace_map_ttl_ms, 86400000);
	config_free(cfg);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("parsers");
	tcase_add_test(tc, test_parse_duration_valid);
	tcase_add_test(tc, test_parse_duration_invalid);
	tcase_add_test(tc, test_parse_size_valid);
	tcase_add_test(tc, test_parse_size_invalid);
	tcase_add_test(tc, test_parse_bool);
	tcase_add_test(tc, test_provider_type_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_comments_whitespace_crlf_bom);
	tcase_add_test(tc, test_long_comment_is_fine);
	tcase_add_test(tc, test_syntax_errors);
	tcase_add_test(tc, test_empty_key_name);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_cannot_open);
	tcase_add_test(tc, test_errs_null_and_free_null);
	tcase_add_test(tc, test_section_errors);
	tcase_add_test(tc, test_duplicate_sections);
	tcase_add_test(tc, test_key_outside_section);
	tcase_add_test(tc, test_unknown_and_duplicate_keys);
	tcase_add_test(tc, test_no_keys_no_providers_is_valid);
	tcase_add_test(tc, test_many_errors_in_one_run);
	tcase_add_test(tc, test_warning_with_errors);
	tcase_add_test(tc, test_secrets_never_printed);
	tcase_add_test(tc, test_example_config);
	suite_add_tcase(s, tc);

	tc = tcase_create("server");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_server_all);
	tcase_add_test(tc, test_listen_forms);
	tcase_add_test(tc, test_listen_errors);
	tcase_add_test(tc, test_metrics_listen);
	tcase_add_test(tc, test_metrics_listen_errors);
	tcase_add_test(tc, test_server_value_errors);
	tcase_add_test(tc, test_log_levels);
	tcase_add_test(tc, test_upstream_all);
	tcase_add_test(tc, test_ca_file_relative);
	tcase_add_test(tc, test_upstream_errors);
	tcase_add_test(tc, test_force_stream_usage);
	tcase_add_test(tc, test_max_event_size);
	tcase_add_test(tc, test_upstream_stream_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("events");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_events_all);
	tcase_add_test(tc, test_events_file_relative);
	tcase_add_test(tc, test_events_errors);
	tcase_add_test(tc, test_events_section);
	tcase_add_test(tc, test_events_redis_all);
	tcase_add_test(tc, test_events_spool_dir);
	tcase_add_test(tc, test_events_redis_errors);
	tcase_add_test(tc, test_events_redis_section);
	tcase_add_test(tc, test_redis_password_file_trimmed);
	tcase_add_test(tc, test_redis_password_file_errors);
	tcase_add_test(tc, test_redis_password_never_printed);
	suite_add_tcase(s, tc);

	tc = tcase_create("trace");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_trace_all);
	tcase_add_test(tc, test_trace_values);
	tcase_add_test(tc, test_trace_errors);
	tcase_add_test(tc, test_trace_section);
	suite_add_tcase(s, tc);

	tc = tcase_create("provider");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_provider_all);
	tcase_add_test(tc, test_provider_missing_keys);
	tcase_add_test(tc, test_base_url);
	tcase_add_test(tc, test_api_key_file_trimmed);
	tcase_add_test(tc, test_api_key_file_errors);
	tcase_add_test(tc, test_api_key_env);
	tcase_add_test(tc, test_api_key_env_errors);
	tcase_add_test(tc, test_api_key_inline_errors);
	tcase_add_test(tc, test_credentials_exclusive);
	tcase_add_test(tc, test_models_errors);
	tcase_add_test(tc, test_header_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("environment_key");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_environment);
	tcase_add_test(tc, test_environment_errors);
	tcase_add_test(tc, test_control_characters);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_key_errors);
	tcase_add_test(tc, test_duplicate_sha256);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (mkdtemp(tmproot) == NULL) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(tmproot, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
