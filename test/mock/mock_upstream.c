/*
 * mock_upstream.c - scripted HTTP/1.1 upstream for integration tests and
 * benchmarks; it stands in for OpenAI and Anthropic.
 *
 * Every request selects a scenario file (test/mock/README.md documents the
 * selection rules and the directives) that says what to answer and how to
 * deliver it: status, headers, body, framing, how the body is cut into
 * separate send() calls, pauses between the pieces, stalls, resets, early
 * closes, garbage instead of HTTP, or no answer at all.  With -r every request
 * and the end of its response are written to RECORD_DIR as JSON files that a
 * test can assert on.
 *
 * Shape: an accept thread plus one detached thread per connection (small
 * stack) doing blocking I/O.  "Send a piece, sleep, send a piece, reset" is
 * then straight-line code, and a few thousand threads are cheap.  The main
 * thread only waits for SIGINT/SIGTERM, which every thread has blocked, and
 * exits.
 *
 * Shared data: the opt_* globals are set before any thread starts and are
 * read-only afterwards; the counters are atomics; parsed scenarios live in a
 * mutex-protected cache and are immutable once published and never freed, so
 * a thread may use one without holding the lock.  Everything else belongs to
 * one connection thread.
 *
 * Single file on purpose: tests and benchmarks build it with one cc command
 * and it needs nothing but libc and pthreads.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HDR_MAX		(256u * 1024)		/* request line + headers */
#define BODY_MAX	(64u * 1024 * 1024)	/* decoded request body */
#define BUF_INIT	(8u * 1024)
#define BUF_MAX		(HDR_MAX + 16u * 1024)
#define NAME_MAX_LEN	200			/* scenario names */
#define SLICE_MS	50			/* peer check interval */
#define LINGER_MS	1000			/* drain time after our FIN */
#define NEG_CACHE_MS	1000			/* re-probe missing files */
#define LISTEN_BACKLOG	4096
#define CACHE_BUCKETS	256

/* Sanitizers need much more stack per frame than plain builds. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define THREAD_STACK	(1024u * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define THREAD_STACK	(1024u * 1024)
#endif
#endif
#ifndef THREAD_STACK
#define THREAD_STACK	(128u * 1024)
#endif

static const char *opt_scn_dir;		/* -d, NULL: echo only */
static const char *opt_rec_dir;		/* -r, NULL: no recording */

static atomic_long n_conn_open;
static atomic_long n_conn_total;
static atomic_long n_requests;
static atomic_ullong last_seq;

/* ---- small utilities ---------------------------------------------------- */

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
log_msg(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "mock-upstream: %s\n", line);
}

static void *
oom_check(void *p)
{
	if (p == NULL) {
		fputs("mock-upstream: out of memory\n", stderr);
		abort();
	}
	return p;
}

static void *
xrealloc(void *p, size_t n)
{
	return oom_check(realloc(p, n ? n : 1));
}

static void *
xmalloc(size_t n)
{
	return oom_check(malloc(n ? n : 1));
}

static char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* Growable byte buffer; p is NUL-terminated after every append. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void
sb_reserve(struct sbuf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 256;

	if (b->cap > b->len && b->cap - b->len > extra)
		return;
	while (cap - b->len <= extra)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void
sb_add(struct sbuf *b, const void *data, size_t n)
{
	sb_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_adds(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void
sb_addc(struct sbuf *b, char ch)
{
	sb_add(b, &ch, 1);
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sb_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void
sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static int64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static bool
is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* ---- JSON strings ------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (RFC 3629 table 3-7), 0 if none. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;	/* no surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;	/* nothing above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/*
 * Raw bytes as a JSON string: valid UTF-8 goes out as is, '"' and '\' are
 * backslash-escaped, control characters and every byte of invalid UTF-8
 * become \u00XX.  So in the output \u0080..\u00ff always stands for one
 * invalid input byte (valid U+0080..U+00FF is never escaped).
 */
static void
json_str(struct sbuf *b, const void *data, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = data;
	size_t i = 0, run = 0, k;
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };

	sb_addc(b, '"');
	while (i < n) {
		unsigned char ch = s[i];

		if (ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\') {
			i++;
			continue;
		}
		if (ch >= 0x80 && (k = utf8_len(s + i, n - i)) != 0) {
			i += k;
			continue;
		}
		sb_add(b, s + run, i - run);
		if (ch == '"' || ch == '\\') {
			esc[1] = (char)ch;
			sb_add(b, esc, 2);
			esc[1] = 'u';
		} else {
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			sb_add(b, esc, 6);
		}
		run = ++i;
	}
	sb_add(b, s + run, i - run);
	sb_addc(b, '"');
}

/* ---- scenarios ---------------------------------------------------------- */

enum framing {
	FRAMING_LENGTH,
	FRAMING_CHUNKED,
	FRAMING_CLOSE,
	FRAMING__COUNT
};

static const char *const framing_names[] = {
	[FRAMING_LENGTH] = "length",
	[FRAMING_CHUNKED] = "chunked",
	[FRAMING_CLOSE] = "close",
};

/* Sorted by (off, kind): at one offset stalls run before a close or reset. */
enum act_kind {
	ACT_STALL,
	ACT_CLOSE,
	ACT_RESET,
};

struct action {
	uint64_t off;		/* body bytes written before it fires */
	uint64_t ms;		/* ACT_STALL only */
	enum act_kind kind;
};

/*
 * A parsed scenario file.  Immutable once published in the cache.  If error
 * is set the file was bad and every request selecting it gets a 500 with
 * error as the body; the other fields are then meaningless.
 */
struct scenario {
	char *error;
	int status;
	struct sbuf headers;	/* "Name: value\r\n" lines, in file order */
	bool has_ctype, has_clen, has_te, has_conn, conn_close;
	struct sbuf body;
	struct sbuf raw;
	bool echo, hang, is_raw, split_events, stamp;
	enum framing framing;
	uint64_t delay_ms, pace_ms, first_delay_ms;
	uint64_t split_n;
	uint64_t *split_at;	/* sorted */
	size_t n_split_at;
	struct action *acts;	/* sorted by (off, kind) */
	size_t n_acts;
};

/* The answer when no scenario file applies. */
static const struct scenario builtin_echo = {
	.status = 200,
	.echo = true,
	.framing = FRAMING_LENGTH,
};

/* body/raw text: \n \r \t \\ \" and \xHH are decoded, other escapes kept. */
static void
decode_escapes(const char *s, struct sbuf *out)
{
	static const char from[] = "nrt\\\"", to[] = "\n\r\t\\\"";
	const char *m;

	while (*s) {
		if (s[0] != '\\' || s[1] == '\0') {
			sb_addc(out, *s++);
		} else if ((m = strchr(from, s[1])) != NULL) {
			sb_addc(out, to[m - from]);
			s += 2;
		} else if (s[1] == 'x' && isxdigit((unsigned char)s[2]) &&
		    isxdigit((unsigned char)s[3])) {
			char hx[3] = { s[2], s[3], '\0' };

			sb_addc(out, (char)strtoul(hx, NULL, 16));
			s += 4;
		} else {
			sb_addc(out, *s++);
		}
	}
}

static int
read_whole_file(const char *path, struct sbuf *out)
{
	char chunk[8192];
	ssize_t n;
	int fd, rc = -1, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (;;) {
		n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		sb_add(out, chunk, (size_t)n);
	}
	sb_add(out, "", 0);
	rc = 0;
out:
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static void
add_action(struct scenario *s, uint64_t off, uint64_t ms, enum act_kind kind)
{
	s->acts = xrealloc(s->acts, (s->n_acts + 1) * sizeof *s->acts);
	s->acts[s->n_acts].off = off;
	s->acts[s->n_acts].ms = ms;
	s->acts[s->n_acts].kind = kind;
	s->n_acts++;
}

/* Directive parsers: 0 or -1 with a message in err. */

static int
d_status(struct scenario *s, char *arg, struct sbuf *err)
{
	uint64_t v;

	if (parse_u64(arg, &v) < 0 || v < 100 || v > 999) {
		sb_adds(err, "expected a status code 100..999");
		return -1;
	}
	s->status = (int)v;
	return 0;
}

static int
d_header(struct scenario *s, char *arg, struct sbuf *err)
{
	char *colon = strchr(arg, ':'), *p;

	if (colon == NULL || colon == arg) {
		sb_adds(err, "expected \"Name: value\"");
		return -1;
	}
	*colon = '\0';
	for (p = arg; *p; p++) {
		if (!is_tchar((unsigned char)*p)) {
			sb_printf(err, "bad header name \"%s\"", arg);
			return -1;
		}
	}
	p = trim(colon + 1);
	sb_printf(&s->headers, "%s: %s\r\n", arg, p);
	if (strcasecmp(arg, "Content-Type") == 0)
		s->has_ctype = true;
	else if (strcasecmp(arg, "Content-Length") == 0)
		s->has_clen = true;
	else if (strcasecmp(arg, "Transfer-Encoding") == 0)
		s->has_te = true;
	else if (strcasecmp(arg, "Connection") == 0) {
		s->has_conn = true;
		s->conn_close = s->conn_close || strcasestr(p, "close") != NULL;
	}
	return 0;
}

static int
d_body(struct scenario *s, char *arg, struct sbuf *err)
{
	(void)err;
	decode_escapes(arg, &s->body);
	return 0;
}

static int
d_body_file(struct scenario *s, char *arg, struct sbuf *err)
{
	struct sbuf path = { 0 };
	int rc;

	if (*arg == '\0') {
		sb_adds(err, "expected a file name");
		return -1;
	}
	if (arg[0] == '/' || opt_scn_dir == NULL)
		sb_adds(&path, arg);
	else
		sb_printf(&path, "%s/%s", opt_scn_dir, arg);
	rc = read_whole_file(path.p, &s->body);
	if (rc < 0)
		sb_printf(err, "cannot read %s: %s", path.p, strerror(errno));
	sb_free(&path);
	return rc;
}

static int
d_framing(struct scenario *s, char *arg, struct sbuf *err)
{
	int i;

	for (i = 0; i < FRAMING__COUNT; i++) {
		if (strcmp(arg, framing_names[i]) == 0) {
			s->framing = (enum framing)i;
			return 0;
		}
	}
	sb_adds(err, "expected length, chunked or close");
	return -1;
}

static int
d_number(uint64_t *dst, char *arg, struct sbuf *err)
{
	if (parse_u64(arg, dst) < 0) {
		sb_adds(err, "expected a non-negative integer");
		return -1;
	}
	return 0;
}

static int
d_delay(struct scenario *s, char *arg, struct sbuf *err)
{
	return d_number(&s->delay_ms, arg, err);
}

static int
d_pace(struct scenario *s, char *arg, struct sbuf *err)
{
	return d_number(&s->pace_ms, arg, err);
}

static int
d_first_delay(struct scenario *s, char *arg, struct sbuf *err)
{
	return d_number(&s->first_delay_ms, arg, err);
}

static int
d_split(struct scenario *s, char *arg, struct sbuf *err)
{
	if (d_number(&s->split_n, arg, err) < 0)
		return -1;
	if (s->split_n == 0) {
		sb_adds(err, "piece size must be at least 1");
		return -1;
	}
	return 0;
}

static int
d_split_at(struct scenario *s, char *arg, struct sbuf *err)
{
	char *save = NULL, *tok;
	uint64_t v;

	for (tok = strtok_r(arg, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (d_number(&v, trim(tok), err) < 0)
			return -1;
		s->split_at = xrealloc(s->split_at,
		    (s->n_split_at + 1) * sizeof *s->split_at);
		s->split_at[s->n_split_at++] = v;
	}
	return 0;
}

static int
d_split_events(struct scenario *s, char *arg, struct sbuf *err)
{
	(void)arg, (void)err;
	s->split_events = true;
	return 0;
}

static int
d_stall_at(struct scenario *s, char *arg, struct sbuf *err)
{
	char *ms = arg + strcspn(arg, " \t");
	uint64_t off, v;

	if (*ms == '\0') {
		sb_adds(err, "expected OFFSET MS");
		return -1;
	}
	*ms++ = '\0';
	if (d_number(&off, arg, err) < 0 || d_number(&v, trim(ms), err) < 0)
		return -1;
	add_action(s, off, v, ACT_STALL);
	return 0;
}

static int
d_reset_at(struct scenario *s, char *arg, struct sbuf *err)
{
	uint64_t off;

	if (d_number(&off, arg, err) < 0)
		return -1;
	add_action(s, off, 0, ACT_RESET);
	return 0;
}

static int
d_close_at(struct scenario *s, char *arg, struct sbuf *err)
{
	uint64_t off;

	if (d_number(&off, arg, err) < 0)
		return -1;
	add_action(s, off, 0, ACT_CLOSE);
	return 0;
}

static int
d_echo(struct scenario *s, char *arg, struct sbuf *err)
{
	(void)arg, (void)err;
	s->echo = true;
	return 0;
}

static int
d_raw(struct scenario *s, char *arg, struct sbuf *err)
{
	(void)err;
	s->is_raw = true;
	decode_escapes(arg, &s->raw);
	return 0;
}

static int
d_hang(struct scenario *s, char *arg, struct sbuf *err)
{
	(void)arg, (void)err;
	s->hang = true;
	return 0;
}

/* "stamp": each 16-character run of '@' in a body piece becomes the time of
 * its send() in microseconds (CLOCK_REALTIME, zero-padded), so a client on
 * the same machine can measure per-event delay. */
static int
d_stamp(struct scenario *s, char *arg, struct sbuf *err)
{
	(void)arg, (void)err;
	s->stamp = true;
	return 0;
}

/*
 * verbatim: the argument is the rest of the line after one space or tab,
 * leading and trailing blanks kept (body text); otherwise it is trimmed.
 */
static const struct directive {
	const char *name;
	bool verbatim;
	bool no_arg;
	int (*parse)(struct scenario *, char *, struct sbuf *);
} directives[] = {
	{ "status",		false,	false,	d_status },
	{ "header",		false,	false,	d_header },
	{ "body",		true,	false,	d_body },
	{ "body-file",		false,	false,	d_body_file },
	{ "echo",		false,	true,	d_echo },
	{ "delay",		false,	false,	d_delay },
	{ "framing",		false,	false,	d_framing },
	{ "split",		false,	false,	d_split },
	{ "split-at",		false,	false,	d_split_at },
	{ "split-events",	false,	true,	d_split_events },
	{ "pace",		false,	false,	d_pace },
	{ "first-piece-delay",	false,	false,	d_first_delay },
	{ "stall-at",		false,	false,	d_stall_at },
	{ "reset-at",		false,	false,	d_reset_at },
	{ "close-at",		false,	false,	d_close_at },
	{ "raw",		true,	false,	d_raw },
	{ "hang",		false,	true,	d_hang },
	{ "stamp",		false,	true,	d_stamp },
};

static const struct directive *
directive_find(const char *word, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof directives / sizeof directives[0]; i++)
		if (strlen(directives[i].name) == len &&
		    memcmp(directives[i].name, word, len) == 0)
			return &directives[i];
	return NULL;
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int
action_cmp(const void *a, const void *b)
{
	const struct action *x = a, *y = b;

	if (x->off != y->off)
		return (x->off > y->off) - (x->off < y->off);
	return (int)x->kind - (int)y->kind;
}

/* Parse one line; 0, or -1 with s->error set. */
static int
scenario_line(struct scenario *s, char *line, const char *path, unsigned lineno)
{
	const struct directive *d;
	struct sbuf err = { 0 };
	char *p = line, *word, *arg;
	size_t wlen;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	word = p;
	wlen = strcspn(p, " \t");
	d = directive_find(word, wlen);
	if (d == NULL) {
		sb_printf(&err, "mock-upstream: %s:%u: unknown directive "
		    "\"%.*s\" in line: %s\n", path, lineno, (int)wlen, word,
		    line);
		goto fail;
	}
	arg = word + wlen;
	if (d->verbatim && (*arg == ' ' || *arg == '\t'))
		arg++;
	else if (!d->verbatim)
		arg = trim(arg);
	if (d->no_arg && *arg != '\0') {
		sb_printf(&err, "mock-upstream: %s:%u: %s takes no "
		    "argument\n", path, lineno, d->name);
		goto fail;
	}
	if (d->parse(s, arg, &err) == 0)
		return 0;
	/* Prefix the directive's own message with the location. */
	{
		struct sbuf msg = { 0 };

		sb_printf(&msg, "mock-upstream: %s:%u: %s: %s\n", path,
		    lineno, d->name, err.p);
		sb_free(&err);
		err = msg;
	}
fail:
	s->error = err.p;
	return -1;
}

static void
scenario_parse(struct scenario *s, char *text, const char *path)
{
	unsigned lineno = 0;
	char *line = text, *nl;
	size_t n;

	s->status = 200;
	s->framing = FRAMING_LENGTH;
	while (line != NULL && *line != '\0') {
		lineno++;
		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		n = strlen(line);
		if (n > 0 && line[n - 1] == '\r')
			line[n - 1] = '\0';
		if (scenario_line(s, line, path, lineno) < 0)
			return;
		line = nl != NULL ? nl + 1 : NULL;
	}
	if (s->n_split_at)
		qsort(s->split_at, s->n_split_at, sizeof *s->split_at, u64_cmp);
	if (s->n_acts)
		qsort(s->acts, s->n_acts, sizeof *s->acts, action_cmp);
}

static void
scenario_free(struct scenario *s)
{
	if (s == NULL)
		return;
	free(s->error);
	sb_free(&s->headers);
	sb_free(&s->body);
	sb_free(&s->raw);
	free(s->split_at);
	free(s->acts);
	free(s);
}

/* Load and parse path; NULL if there is no such file. */
static struct scenario *
scenario_load(const char *path)
{
	struct sbuf text = { 0 };
	struct scenario *s;
	int rc;

	rc = read_whole_file(path, &text);
	if (rc < 0 && (errno == ENOENT || errno == ENOTDIR)) {
		sb_free(&text);
		return NULL;
	}
	s = xmalloc(sizeof *s);
	memset(s, 0, sizeof *s);
	if (rc < 0) {
		struct sbuf err = { 0 };

		sb_printf(&err, "mock-upstream: %s: cannot read: %s\n", path,
		    strerror(errno));
		s->error = err.p;
	} else {
		scenario_parse(s, text.p, path);
	}
	sb_free(&text);
	return s;
}

/*
 * Scenario cache, keyed by file path.  Found scenarios stay forever (no
 * reload); a missing file is remembered for NEG_CACHE_MS so that a test may
 * still create it after the mock started, yet a benchmark does not probe the
 * disk on every request.  Loading happens outside the lock; if two threads
 * race, the first insert wins and the loser frees its copy.
 */
struct cache_ent {
	struct cache_ent *next;
	char *path;
	struct scenario *scn;		/* NULL: file missing */
	int64_t retry_at_ms;		/* when scn == NULL */
};

static struct cache_ent *cache_tab[CACHE_BUCKETS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static struct cache_ent **
cache_slot(const char *path)
{
	uint32_t h = 2166136261u;
	const char *p;
	struct cache_ent **e;

	for (p = path; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (e = &cache_tab[h % CACHE_BUCKETS]; *e; e = &(*e)->next)
		if (strcmp((*e)->path, path) == 0)
			break;
	return e;
}

static const struct scenario *
cache_get(const char *path)
{
	struct cache_ent **slot, *e;
	struct scenario *s;
	int64_t now = clock_ms(CLOCK_MONOTONIC);

	pthread_mutex_lock(&cache_lock);
	e = *cache_slot(path);
	if (e != NULL && (e->scn != NULL || now < e->retry_at_ms)) {
		s = e->scn;
		pthread_mutex_unlock(&cache_lock);
		return s;
	}
	pthread_mutex_unlock(&cache_lock);

	s = scenario_load(path);

	pthread_mutex_lock(&cache_lock);
	slot = cache_slot(path);
	if (*slot == NULL) {
		e = xmalloc(sizeof *e);
		memset(e, 0, sizeof *e);
		e->path = xstrndup(path, strlen(path));
		*slot = e;
	}
	e = *slot;
	if (e->scn != NULL) {
		scenario_free(s);
		s = e->scn;
	} else {
		e->scn = s;
		e->retry_at_ms = now + NEG_CACHE_MS;
	}
	pthread_mutex_unlock(&cache_lock);
	return s;
}

static bool
valid_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return memmem(s, n, "..", 2) == NULL;
}

static const struct scenario *
scenario_lookup(const char *name, size_t n)
{
	char path[PATH_MAX];
	int len;

	len = snprintf(path, sizeof path, "%s/%.*s.scn", opt_scn_dir, (int)n,
	    name);
	if (len < 0 || (size_t)len >= sizeof path)
		return NULL;
	return cache_get(path);
}

/* ---- reading requests --------------------------------------------------- */

struct hdr {
	const char *name, *value;
};

/* One request; all strings point into head, which it owns. */
struct request {
	char *head;
	const char *method, *path, *query;	/* query: "" if none */
	int minor;				/* HTTP/1.minor */
	struct hdr *hdrs;
	size_t n_hdrs;
	char *body;				/* NUL-terminated */
	size_t body_len;
	bool keep_alive, head_only;
	uint64_t seq;
	int64_t received_at_ms;
};

/* buf[start, end) holds received bytes not yet consumed. */
struct conn {
	int fd;
	char *buf;
	size_t cap, start, end, scan;
	struct sbuf out;		/* response head, reused */
	struct request rq;
};

enum rd {
	RD_OK,
	RD_EOF,		/* closed between requests */
	RD_ERR,		/* closed or failed in the middle of a request */
	RD_BAD,		/* 400 */
	RD_HDR_BIG,	/* 431 */
	RD_BODY_BIG,	/* 413 */
};

static void
request_free(struct request *rq)
{
	free(rq->head);
	free(rq->hdrs);
	free(rq->body);
	memset(rq, 0, sizeof *rq);
}

/* Receive more bytes into the buffer; like recv(). */
static ssize_t
conn_recv(struct conn *c)
{
	ssize_t n;

	if (c->start == c->end)
		c->start = c->end = 0;
	if (c->end == c->cap && c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->end == c->cap) {
		if (c->cap >= BUF_MAX)
			return -1;
		c->cap *= 2;
		c->buf = xrealloc(c->buf, c->cap);
	}
	do
		n = recv(c->fd, c->buf + c->end, c->cap - c->end, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		c->end += (size_t)n;
	return n;
}

/*
 * Wait for a complete head (up to the empty line; bare LF line ends are
 * accepted, RFC 9112 section 2.2) and return its length in *len.  c->scan
 * remembers how far we looked so that a slow sender costs linear time.
 */
static enum rd
read_head(struct conn *c, size_t *len)
{
	char *p;
	size_t i, j;
	ssize_t n;

	for (;;) {
		/* RFC 9112 2.2: ignore empty lines before the request line. */
		while (c->scan == 0 && c->start < c->end &&
		    (c->buf[c->start] == '\r' || c->buf[c->start] == '\n'))
			c->start++;
		i = c->start + c->scan;
		while ((p = memchr(c->buf + i, '\n', c->end - i)) != NULL) {
			j = (size_t)(p - c->buf);
			if (j + 1 < c->end && c->buf[j + 1] == '\n') {
				*len = j + 2 - c->start;
				return RD_OK;
			}
			if (j + 2 < c->end && c->buf[j + 1] == '\r' &&
			    c->buf[j + 2] == '\n') {
				*len = j + 3 - c->start;
				return RD_OK;
			}
			if (j + 2 >= c->end)
				break;	/* need more bytes to decide */
			i = j + 1;
		}
		j = p != NULL ? (size_t)(p - c->buf) : c->end;
		c->scan = j - c->start;
		if (c->end - c->start >= HDR_MAX)
			return RD_HDR_BIG;
		n = conn_recv(c);
		if (n <= 0)
			return c->start == c->end && n == 0 ? RD_EOF : RD_ERR;
	}
}

static int
parse_request_line(struct request *rq, char *line)
{
	char *target, *version, *q;
	const char *p;

	target = strchr(line, ' ');
	if (target == NULL)
		return -1;
	*target++ = '\0';
	version = strchr(target, ' ');
	if (version == NULL)
		return -1;
	*version++ = '\0';
	if (*line == '\0' || target[0] != '/')
		return -1;
	for (p = line; *p; p++)
		if (!is_tchar((unsigned char)*p))
			return -1;
	if (strcmp(version, "HTTP/1.1") == 0)
		rq->minor = 1;
	else if (strcmp(version, "HTTP/1.0") == 0)
		rq->minor = 0;
	else
		return -1;
	rq->method = line;
	rq->head_only = strcmp(line, "HEAD") == 0;
	q = strchr(target, '?');
	if (q != NULL)
		*q++ = '\0';
	rq->path = target;
	rq->query = q != NULL ? q : "";
	return 0;
}

/* Split rq->head (len bytes) into request line and header fields. */
static int
parse_head(struct request *rq, size_t len)
{
	char *line = rq->head, *end = rq->head + len, *nl, *colon, *p;
	size_t cap = 0;

	if (memchr(rq->head, '\0', len) != NULL)
		return -1;
	for (; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		*nl = '\0';
		if (nl > line && nl[-1] == '\r')
			nl[-1] = '\0';
		if (line == rq->head) {
			if (parse_request_line(rq, line) < 0)
				return -1;
			continue;
		}
		if (*line == '\0')
			break;
		if (*line == ' ' || *line == '\t')
			return -1;	/* obs-fold, RFC 9112 5.2 */
		colon = strchr(line, ':');
		if (colon == NULL || colon == line)
			return -1;
		*colon = '\0';
		for (p = line; *p; p++)
			if (!is_tchar((unsigned char)*p))
				return -1;
		if (rq->n_hdrs == cap) {
			cap = cap ? cap * 2 : 16;
			rq->hdrs = xrealloc(rq->hdrs, cap * sizeof *rq->hdrs);
		}
		rq->hdrs[rq->n_hdrs].name = line;
		rq->hdrs[rq->n_hdrs].value = trim(colon + 1);
		rq->n_hdrs++;
	}
	return 0;
}

static bool
has_token(const char *list, const char *token)
{
	size_t tl = strlen(token), n;

	while (*list) {
		list += strspn(list, " \t,");
		n = strcspn(list, ",");
		while (n > 0 && (list[n - 1] == ' ' || list[n - 1] == '\t'))
			n--;
		if (n == tl && strncasecmp(list, token, tl) == 0)
			return true;
		list += strcspn(list, ",");
	}
	return false;
}

/* Content-Length: 1*DIGIT, possibly repeated as a list of equal values. */
static int
parse_content_length(const char *v, int64_t *cl)
{
	char item[32];
	uint64_t n;
	size_t len;

	while (*v) {
		v += strspn(v, " \t,");
		if (*v == '\0')
			break;
		len = strcspn(v, ",");
		while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= sizeof item)
			return -1;
		memcpy(item, v, len);
		item[len] = '\0';
		if (parse_u64(item, &n) < 0 || n > INT64_MAX ||
		    (*cl >= 0 && (uint64_t)*cl != n))
			return -1;
		*cl = (int64_t)n;
		v += strcspn(v, ",");
	}
	return 0;
}

struct framing_info {
	int64_t content_length;		/* -1: none */
	bool chunked, expect_continue;
};

static enum rd
analyze_head(struct request *rq, struct framing_info *fi)
{
	bool close = false, keep = false, te = false;
	const char *last;
	size_t i;

	fi->content_length = -1;
	for (i = 0; i < rq->n_hdrs; i++) {
		const char *name = rq->hdrs[i].name, *v = rq->hdrs[i].value;

		if (strcasecmp(name, "Content-Length") == 0) {
			if (parse_content_length(v, &fi->content_length) < 0)
				return RD_BAD;
		} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
			/* RFC 9112 6.1: chunked must be the final coding. */
			last = strrchr(v, ',');
			last = last != NULL ? last + 1 : v;
			last += strspn(last, " \t");
			te = true;
			fi->chunked = strncasecmp(last, "chunked", 7) == 0 &&
			    last[7 + strspn(last + 7, " \t")] == '\0';
		} else if (strcasecmp(name, "Connection") == 0) {
			close = close || has_token(v, "close");
			keep = keep || has_token(v, "keep-alive");
		} else if (strcasecmp(name, "Expect") == 0) {
			fi->expect_continue =
			    strcasecmp(v, "100-continue") == 0;
		}
	}
	if (te && !fi->chunked)
		return RD_BAD;
	if (fi->chunked)
		fi->content_length = -1;	/* RFC 9112 6.3: TE wins */
	if (fi->content_length > (int64_t)BODY_MAX)
		return RD_BODY_BIG;
	rq->keep_alive = !close && (rq->minor == 1 || keep);
	return RD_OK;
}

/* Incremental chunked decoder, RFC 9112 section 7.1. */
enum chunk_state {
	CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
	CH_TRAILER_START, CH_TRAILER, CH_FINAL_LF, CH_DONE
};

struct chunk_dec {
	enum chunk_state st;
	uint64_t size;
	int digits;
	size_t trailer_bytes;
};

/* Feed n bytes; *used is set to what was consumed.  RD_OK means done. */
static enum rd
chunk_feed(struct chunk_dec *d, const char *p, size_t n, struct sbuf *body,
    size_t *used, bool *done)
{
	size_t i = 0, take;
	int hv;

	while (i < n && d->st != CH_DONE) {
		char ch = p[i];

		switch (d->st) {
		case CH_SIZE:
			if (isxdigit((unsigned char)ch)) {
				hv = isdigit((unsigned char)ch) ? ch - '0' :
				    (tolower((unsigned char)ch) - 'a' + 10);
				d->size = d->size * 16 + (uint64_t)hv;
				if (d->size > BODY_MAX)
					return RD_BODY_BIG;
				d->digits++;
			} else if (d->digits == 0) {
				return RD_BAD;
			} else if (ch == ';' || ch == ' ' || ch == '\t') {
				d->st = CH_EXT;
			} else if (ch == '\r') {
				d->st = CH_SIZE_LF;
			} else if (ch == '\n') {
				goto size_done;
			} else {
				return RD_BAD;
			}
			i++;
			continue;
		case CH_EXT:
			i++;
			if (ch == '\n')
				goto size_done;
			continue;
		case CH_SIZE_LF:
			if (ch != '\n')
				return RD_BAD;
			i++;
			goto size_done;
		case CH_DATA:
			take = n - i < d->size ? n - i : (size_t)d->size;
			if (body->len + take > BODY_MAX)
				return RD_BODY_BIG;
			sb_add(body, p + i, take);
			i += take;
			d->size -= take;
			if (d->size == 0)
				d->st = CH_DATA_CR;
			continue;
		case CH_DATA_CR:
			if (ch != '\r' && ch != '\n')
				return RD_BAD;
			d->st = ch == '\r' ? CH_DATA_LF : CH_SIZE;
			i++;
			continue;
		case CH_DATA_LF:
			if (ch != '\n')
				return RD_BAD;
			d->st = CH_SIZE;
			i++;
			continue;
		case CH_TRAILER_START:
			d->st = ch == '\r' ? CH_FINAL_LF :
			    ch == '\n' ? CH_DONE : CH_TRAILER;
			i++;
			continue;
		case CH_TRAILER:
			if (++d->trailer_bytes > HDR_MAX)
				return RD_HDR_BIG;
			if (ch == '\n')
				d->st = CH_TRAILER_START;
			i++;
			continue;
		case CH_FINAL_LF:
			if (ch != '\n')
				return RD_BAD;
			d->st = CH_DONE;
			i++;
			continue;
		case CH_DONE:
			break;
		}
		continue;
size_done:
		if (d->size == 0 && d->digits > 0) {
			d->st = CH_TRAILER_START;
		} else {
			d->st = CH_DATA;
			d->digits = 0;
		}
	}
	*used = i;
	*done = d->st == CH_DONE;
	return RD_OK;
}

static enum rd
read_body_chunked(struct conn *c, struct request *rq)
{
	struct chunk_dec d = { 0 };
	struct sbuf body = { 0 };
	enum rd r = RD_ERR;
	size_t used;
	bool done = false;

	sb_add(&body, "", 0);
	for (;;) {
		if (c->start < c->end) {
			r = chunk_feed(&d, c->buf + c->start, c->end - c->start,
			    &body, &used, &done);
			if (r != RD_OK)
				goto out;
			c->start += used;
			if (done)
				break;
		}
		if (conn_recv(c) <= 0) {
			r = RD_ERR;
			goto out;
		}
	}
	rq->body = body.p;
	rq->body_len = body.len;
	body.p = NULL;
	r = RD_OK;
out:
	sb_free(&body);
	return r;
}

static enum rd
read_body_length(struct conn *c, struct request *rq, size_t cl)
{
	size_t have = c->end - c->start;
	ssize_t n;

	if (have > cl)
		have = cl;
	rq->body = xmalloc(cl + 1);
	memcpy(rq->body, c->buf + c->start, have);
	c->start += have;
	while (have < cl) {
		n = recv(c->fd, rq->body + have, cl - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return RD_ERR;
		have += (size_t)n;
	}
	rq->body[cl] = '\0';
	rq->body_len = cl;
	return RD_OK;
}

static int send_all(int fd, struct iovec *iov, int cnt);

static enum rd
read_request(struct conn *c)
{
	struct request *rq = &c->rq;
	struct framing_info fi = { 0 };
	size_t len;
	enum rd r;

	r = read_head(c, &len);
	if (r != RD_OK)
		return r;
	rq->head = xstrndup(c->buf + c->start, len);
	c->start += len;
	c->scan = 0;
	if (parse_head(rq, len) < 0)
		return RD_BAD;
	r = analyze_head(rq, &fi);
	if (r != RD_OK)
		return r;
	if (fi.expect_continue && rq->minor == 1 &&
	    (fi.chunked || fi.content_length > 0) &&
	    c->end - c->start < (fi.chunked ? 1 : (size_t)fi.content_length)) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		struct iovec iov = { (void *)cont, sizeof cont - 1 };

		if (send_all(c->fd, &iov, 1) < 0)
			return RD_ERR;
	}
	if (fi.chunked)
		return read_body_chunked(c, rq);
	return read_body_length(c, rq,
	    fi.content_length > 0 ? (size_t)fi.content_length : 0);
}

/* ---- recording ---------------------------------------------------------- */

/* The request as JSON: the record file and the echo body. */
static void
request_json(struct sbuf *o, const struct request *rq, const char *scenario)
{
	size_t i;

	sb_printf(o, "{\"seq\":%" PRIu64 ",\"method\":", rq->seq);
	json_str(o, rq->method, strlen(rq->method));
	sb_adds(o, ",\"path\":");
	json_str(o, rq->path, strlen(rq->path));
	sb_adds(o, ",\"query\":");
	json_str(o, rq->query, strlen(rq->query));
	sb_adds(o, ",\"headers\":[");
	for (i = 0; i < rq->n_hdrs; i++) {
		sb_adds(o, i ? ",[" : "[");
		json_str(o, rq->hdrs[i].name, strlen(rq->hdrs[i].name));
		sb_addc(o, ',');
		json_str(o, rq->hdrs[i].value, strlen(rq->hdrs[i].value));
		sb_addc(o, ']');
	}
	sb_adds(o, "],\"body\":");
	json_str(o, rq->body, rq->body_len);
	sb_adds(o, ",\"scenario\":");
	json_str(o, scenario, strlen(scenario));
	sb_printf(o, ",\"received_at_ms\":%" PRId64 "}", rq->received_at_ms);
}

/* Write RECORD_DIR/NNNNNN.ext via a hidden temp file and rename(). */
static void
record_write(uint64_t seq, const char *ext, const char *data, size_t len)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	ssize_t n;
	size_t off = 0;
	int fd;

	snprintf(tmp, sizeof tmp, "%s/.%06" PRIu64 ".%s.tmp", opt_rec_dir,
	    seq, ext);
	snprintf(dst, sizeof dst, "%s/%06" PRIu64 ".%s", opt_rec_dir, seq, ext);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			goto fail;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0 || rename(tmp, dst) < 0)
		goto fail;
	return;
fail:
	log_msg("cannot write %s: %s", dst, strerror(errno));
	unlink(tmp);
}

/* ---- sending responses -------------------------------------------------- */

/* Why a response ended, as written to the .done file. */
enum done_reason {
	DONE_COMPLETE,
	DONE_PEER_CLOSED,
	DONE_RESET,
	DONE_CLOSED,
	DONE_HANG_ENDED,
};

static const char *const done_reason_names[] = {
	[DONE_COMPLETE] = "complete",
	[DONE_PEER_CLOSED] = "peer-closed",
	[DONE_RESET] = "reset",
	[DONE_CLOSED] = "closed",
	[DONE_HANG_ENDED] = "hang-ended",
};

/* What to do with the connection after a response. */
enum conn_end {
	CE_KEEP,	/* read the next request */
	CE_CLOSE,	/* FIN, drain, close */
	CE_ABORT,	/* RST */
	CE_DROP,	/* peer is gone: just close */
};

static const struct {
	int code;
	const char *text;
} status_texts[] = {
	{ 100, "Continue" }, { 200, "OK" }, { 201, "Created" },
	{ 202, "Accepted" }, { 204, "No Content" },
	{ 301, "Moved Permanently" }, { 302, "Found" },
	{ 304, "Not Modified" }, { 400, "Bad Request" },
	{ 401, "Unauthorized" }, { 403, "Forbidden" }, { 404, "Not Found" },
	{ 405, "Method Not Allowed" }, { 408, "Request Timeout" },
	{ 409, "Conflict" }, { 413, "Content Too Large" },
	{ 415, "Unsupported Media Type" }, { 422, "Unprocessable Content" },
	{ 429, "Too Many Requests" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
	{ 502, "Bad Gateway" }, { 503, "Service Unavailable" },
	{ 504, "Gateway Timeout" }, { 529, "Overloaded" },
};

static const char *
status_text(int code)
{
	size_t i;

	for (i = 0; i < sizeof status_texts / sizeof status_texts[0]; i++)
		if (status_texts[i].code == code)
			return status_texts[i].text;
	return "Unknown";
}

/* One logical write: sendmsg() until everything went out. */
static int
send_all(int fd, struct iovec *iov, int cnt)
{
	struct msghdr m = { 0 };
	ssize_t w;

	m.msg_iov = iov;
	m.msg_iovlen = (size_t)cnt;
	while (m.msg_iovlen > 0) {
		w = sendmsg(fd, &m, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		while (m.msg_iovlen > 0 && (size_t)w >= m.msg_iov->iov_len) {
			w -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen > 0) {
			m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + w;
			m.msg_iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Gone = orderly shutdown (recv 0) or an error other than "no data yet". */
static bool
peer_gone(int fd)
{
	char ch;
	ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0)
		return false;
	if (n == 0)
		return true;
	return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/*
 * Sleep ms in slices of at most SLICE_MS, checking the peer between slices;
 * -1 as soon as it is gone.  The slice itself is a poll() for POLLRDHUP, so a
 * FIN or RST usually ends it at once.
 */
static int
sleep_watch(int fd, uint64_t ms)
{
	int64_t deadline = clock_ms(CLOCK_MONOTONIC) + (int64_t)ms, left;
	struct pollfd pf;

	for (;;) {
		left = deadline - clock_ms(CLOCK_MONOTONIC);
		if (left <= 0)
			return 0;
		pf.fd = fd;
		pf.events = POLLRDHUP;
		pf.revents = 0;
		if (poll(&pf, 1, left < SLICE_MS ? (int)left : SLICE_MS) > 0 &&
		    (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
			return -1;
		if (peer_gone(fd))
			return -1;
	}
}

/* "hang": read and discard whatever arrives until the peer goes away. */
static void
hang_until_gone(int fd)
{
	char scratch[1024];
	struct pollfd pf;
	ssize_t n;
	int r;

	for (;;) {
		pf.fd = fd;
		pf.events = POLLIN | POLLRDHUP;
		pf.revents = 0;
		r = poll(&pf, 1, SLICE_MS);
		if (r < 0 && errno != EINTR)
			return;
		if (r <= 0)
			continue;
		if (pf.revents & (POLLHUP | POLLERR | POLLNVAL))
			return;
		n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return;
	}
}

/* State of one response while it is being written. */
struct tx {
	int fd;
	const struct scenario *s;
	bool chunked;
	size_t act_i;		/* next action in s->acts */
	uint64_t sent;		/* body bytes handed to the kernel */
	enum done_reason reason;
	enum conn_end end;
};

static int
tx_stop(struct tx *t, enum done_reason reason, enum conn_end end)
{
	t->reason = reason;
	t->end = end;
	return -1;
}

/*
 * One send(): an optional prefix (the response head), n body bytes (one
 * chunk if chunked) and, if term, the chunked terminator.
 */
static int
tx_send(struct tx *t, const char *pre, size_t pre_len, const char *data,
    size_t n, bool term)
{
	static const char crlf[] = "\r\n", last[] = "0\r\n\r\n";
	struct iovec iov[5];
	char size[24];
	int k = 0;

	if (pre_len > 0)
		iov[k++] = (struct iovec){ (void *)pre, pre_len };
	char *stamped = NULL;

	if (n > 0 && t->s->stamp) {
		static const char mark[] = "@@@@@@@@@@@@@@@@";
		struct timespec ts;
		char now[17];
		char *p;

		stamped = malloc(n + 1);
		if (stamped != NULL) {
			memcpy(stamped, data, n);
			stamped[n] = '\0';
			clock_gettime(CLOCK_REALTIME, &ts);
			snprintf(now, sizeof now, "%016llu", (unsigned long long)
			    ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
			for (p = stamped; (p = strstr(p, mark)) != NULL; p += 16)
				memcpy(p, now, 16);
			data = stamped;
		}
	}
	if (n > 0 && t->chunked)
		iov[k++] = (struct iovec){ size,
		    (size_t)snprintf(size, sizeof size, "%zx\r\n", n) };
	if (n > 0)
		iov[k++] = (struct iovec){ (void *)data, n };
	if (n > 0 && t->chunked)
		iov[k++] = (struct iovec){ (void *)crlf, 2 };
	if (term)
		iov[k++] = (struct iovec){ (void *)last, sizeof last - 1 };
	if (k > 0 && send_all(t->fd, iov, k) < 0) {
		free(stamped);
		return tx_stop(t, DONE_PEER_CLOSED, CE_DROP);
	}
	free(stamped);
	t->sent += n;
	return 0;
}

static int
tx_sleep(struct tx *t, uint64_t ms)
{
	if (ms > 0 && sleep_watch(t->fd, ms) < 0)
		return tx_stop(t, DONE_PEER_CLOSED, CE_DROP);
	return 0;
}

/* Run the actions due now that pos body bytes went out. */
static int
tx_actions(struct tx *t, size_t pos)
{
	const struct scenario *s = t->s;

	while (t->act_i < s->n_acts && s->acts[t->act_i].off < pos)
		t->act_i++;
	while (t->act_i < s->n_acts && s->acts[t->act_i].off == pos) {
		const struct action *a = &s->acts[t->act_i++];

		switch (a->kind) {
		case ACT_STALL:
			if (tx_sleep(t, a->ms) < 0)
				return -1;
			break;
		case ACT_CLOSE:
			return tx_stop(t, DONE_CLOSED, CE_CLOSE);
		case ACT_RESET:
			return tx_stop(t, DONE_RESET, CE_ABORT);
		}
	}
	return 0;
}

/* Where the body piece starting at pos ends. */
struct cutter {
	const struct scenario *s;
	const char *body;
	size_t len, at_i;
};

/* End of the first SSE event boundary after pos and before limit, or 0. */
static size_t
event_end(const char *b, size_t len, size_t pos, size_t limit)
{
	size_t i = pos >= 3 ? pos - 3 : 0, e;

	for (; i < limit; i++) {
		if (i + 4 <= len && memcmp(b + i, "\r\n\r\n", 4) == 0)
			e = i + 4;
		else if (i + 2 <= len && (memcmp(b + i, "\n\n", 2) == 0 ||
		    memcmp(b + i, "\r\r", 2) == 0))
			e = i + 2;
		else
			continue;
		if (e > pos)
			return e;
	}
	return 0;
}

static size_t
cut_next(struct cutter *k, size_t pos)
{
	const struct scenario *s = k->s;
	size_t end = k->len, e;

	if (s->split_n > 0 && s->split_n < k->len) {
		e = pos - pos % s->split_n + s->split_n;
		if (e < end)
			end = e;
	}
	while (k->at_i < s->n_split_at && s->split_at[k->at_i] <= pos)
		k->at_i++;
	if (k->at_i < s->n_split_at && s->split_at[k->at_i] < end)
		end = s->split_at[k->at_i];
	if (s->split_events) {
		e = event_end(k->body, k->len, pos, end);
		if (e != 0 && e < end)
			end = e;
	}
	return end;
}

/*
 * Head and body.  Pieces come from the split directives; an action offset
 * inside a piece cuts it there (two sends, two chunks, no pace between).
 * Without pieces, actions and first-piece-delay, head and body share one
 * send, which is what benchmarks want.
 */
static int
tx_body(struct tx *t, const char *head, size_t head_len, const char *body,
    size_t len)
{
	const struct scenario *s = t->s;
	struct cutter k = { s, body, len, 0 };
	size_t pos = 0, pend, sub;
	bool first = true, term = false;

	if (s->n_acts == 0 && (len == 0 ||
	    (s->first_delay_ms == 0 && cut_next(&k, 0) == len)))
		return tx_send(t, head, head_len, body, len, t->chunked);
	k.at_i = 0;
	if (tx_send(t, head, head_len, NULL, 0, false) < 0 ||
	    tx_actions(t, 0) < 0)
		return -1;
	if (len > 0 && tx_sleep(t, s->first_delay_ms) < 0)
		return -1;
	while (pos < len) {
		pend = cut_next(&k, pos);
		if (!first && tx_sleep(t, s->pace_ms) < 0)
			return -1;
		first = false;
		while (pos < pend) {
			sub = pend;
			if (t->act_i < s->n_acts && s->acts[t->act_i].off < sub)
				sub = (size_t)s->acts[t->act_i].off;
			term = t->chunked && sub == len && !(t->act_i <
			    s->n_acts && s->acts[t->act_i].off == len);
			if (tx_send(t, NULL, 0, body + pos, sub - pos,
			    term) < 0)
				return -1;
			pos = sub;
			if (tx_actions(t, pos) < 0)
				return -1;
		}
	}
	if (t->chunked && !term)
		return tx_send(t, NULL, 0, NULL, 0, true);
	return 0;
}

static void
build_head(struct sbuf *o, const struct scenario *s, const struct request *rq,
    size_t body_len, bool bodyless, bool close)
{
	o->len = 0;
	sb_printf(o, "HTTP/1.1 %d %s\r\n", s->status, status_text(s->status));
	sb_add(o, s->headers.p, s->headers.len);
	if (s->echo && !s->has_ctype)
		sb_adds(o, "Content-Type: application/json\r\n");
	if (!bodyless || rq->head_only) {
		if (s->framing == FRAMING_LENGTH && !s->has_clen)
			sb_printf(o, "Content-Length: %zu\r\n", body_len);
		else if (s->framing == FRAMING_CHUNKED && !s->has_te)
			sb_adds(o, "Transfer-Encoding: chunked\r\n");
	}
	if (!s->has_conn && close)
		sb_adds(o, "Connection: close\r\n");
	else if (!s->has_conn && rq->minor == 0)
		sb_adds(o, "Connection: keep-alive\r\n");
	sb_adds(o, "\r\n");
}

/* Play scenario s; the outcome is left in t->reason and t->end. */
static void
respond(struct conn *c, struct tx *t, const struct scenario *s,
    const struct sbuf *echo)
{
	const struct request *rq = &c->rq;
	const char *body = s->echo ? echo->p : s->body.p;
	size_t len = s->echo ? echo->len : s->body.len;
	bool bodyless, close;

	if (s->hang) {
		hang_until_gone(c->fd);
		tx_stop(t, DONE_HANG_ENDED, CE_DROP);
		return;
	}
	if (tx_sleep(t, s->delay_ms) < 0)
		return;
	if (s->is_raw) {
		if (tx_body(t, NULL, 0, s->raw.p, s->raw.len) == 0)
			t->end = CE_CLOSE;
		return;
	}
	bodyless = rq->head_only || s->status < 200 || s->status == 204 ||
	    s->status == 304;
	close = !rq->keep_alive || s->framing == FRAMING_CLOSE || s->conn_close;
	t->chunked = s->framing == FRAMING_CHUNKED && !bodyless;
	build_head(&c->out, s, rq, len, bodyless, close);
	if (tx_body(t, c->out.p, c->out.len, body, bodyless ? 0 : len) == 0)
		t->end = close ? CE_CLOSE : CE_KEEP;
}

/* A fixed answer (errors, stats); CE_* for what follows. */
static enum conn_end
send_simple(struct conn *c, int status, const char *ctype, const char *body,
    bool close)
{
	struct iovec iov[2];
	size_t len = strlen(body);

	c->out.len = 0;
	sb_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%s\r\n", status, status_text(status), ctype,
	    len, close ? "Connection: close\r\n" :
	    c->rq.minor == 0 ? "Connection: keep-alive\r\n" : "");
	iov[0] = (struct iovec){ c->out.p, c->out.len };
	iov[1] = (struct iovec){ (void *)body, len };
	if (send_all(c->fd, iov, len > 0 ? 2 : 1) < 0)
		return CE_DROP;
	return close ? CE_CLOSE : CE_KEEP;
}

/* ---- handling requests -------------------------------------------------- */

static bool
query_param(const char *q, const char *key, const char **val, size_t *vlen)
{
	size_t kl = strlen(key), seg;
	const char *amp;

	for (; *q; q = amp + 1) {
		amp = strchr(q, '&');
		seg = amp != NULL ? (size_t)(amp - q) : strlen(q);
		if (seg >= kl && memcmp(q, key, kl) == 0 &&
		    (seg == kl || q[kl] == '=')) {
			*val = q + kl + (seg > kl);
			*vlen = seg - kl - (seg > kl);
			return true;
		}
		if (amp == NULL)
			break;
	}
	return false;
}

static size_t
skip_ws(const char *b, size_t n, size_t i)
{
	while (i < n && strchr(" \t\r\n", b[i]) != NULL && b[i] != '\0')
		i++;
	return i;
}

/*
 * The top-level "model" string of a JSON object, found by a scan that only
 * tracks string literals and nesting depth; no full JSON parse.  A model
 * value with escapes is ignored (it could not be a valid name anyway).
 */
static bool
json_model(const char *b, size_t n, const char **val, size_t *vlen)
{
	size_t i = skip_ws(b, n, 0), s0, j;
	int depth = 0;
	bool esc;

	if (i >= n || b[i] != '{')
		return false;
	for (; i < n; i++) {
		if (b[i] == '{' || b[i] == '[') {
			depth++;
		} else if (b[i] == '}' || b[i] == ']') {
			if (--depth <= 0)
				return false;
		} else if (b[i] == '"') {
			esc = false;
			for (s0 = ++i; i < n && b[i] != '"'; i++) {
				if (b[i] == '\\') {
					esc = true;
					i++;
				}
			}
			if (i >= n)
				return false;
			if (depth != 1 || esc || i - s0 != 5 ||
			    memcmp(b + s0, "model", 5) != 0)
				continue;
			j = skip_ws(b, n, i + 1);
			if (j >= n || b[j] != ':')
				continue;	/* a value, not a key */
			j = skip_ws(b, n, j + 1);
			if (j >= n || b[j] != '"')
				return false;
			s0 = ++j;
			while (j < n && b[j] != '"' && b[j] != '\\')
				j++;
			if (j >= n || b[j] != '"')
				return false;
			*val = b + s0;
			*vlen = j - s0;
			return true;
		}
	}
	return false;
}

struct selection {
	const struct scenario *scn;	/* NULL: built-in echo */
	struct sbuf name;		/* for the record */
	int err_status;			/* non-zero: answer this ... */
	struct sbuf err;		/* ... with this text */
};

/* Selection rules, first match wins; see README.md. */
static void
select_scenario(const struct request *rq, struct selection *sel)
{
	const char *v;
	size_t n;

	if (query_param(rq->query, "mock", &v, &n)) {
		sb_add(&sel->name, v, n > NAME_MAX_LEN ? NAME_MAX_LEN : n);
		if (!valid_name(v, n)) {
			sel->err_status = 400;
			sb_printf(&sel->err, "mock-upstream: invalid scenario "
			    "name \"%s\"\n", sel->name.p);
		} else if (opt_scn_dir == NULL) {
			sel->err_status = 500;
			sb_printf(&sel->err, "mock-upstream: mock=%s but no "
			    "scenario directory (-d)\n", sel->name.p);
		} else if ((sel->scn = scenario_lookup(v, n)) == NULL) {
			sel->err_status = 500;
			sb_printf(&sel->err, "mock-upstream: no scenario file "
			    "%s/%s.scn\n", opt_scn_dir, sel->name.p);
		}
		return;
	}
	if (opt_scn_dir != NULL) {
		if (json_model(rq->body, rq->body_len, &v, &n) &&
		    valid_name(v, n) && (sel->scn = scenario_lookup(v, n))) {
			sb_add(&sel->name, v, n);
			return;
		}
		if ((sel->scn = scenario_lookup("default", 7)) != NULL) {
			sb_adds(&sel->name, "default");
			return;
		}
	}
	sb_adds(&sel->name, "echo");
}

static enum conn_end
handle_stats(struct conn *c)
{
	char body[192];

	snprintf(body, sizeof body, "{\"connections_open\":%ld,"
	    "\"connections_total\":%ld,\"requests_total\":%ld}",
	    atomic_load(&n_conn_open), atomic_load(&n_conn_total),
	    atomic_load(&n_requests));
	return send_simple(c, 200, "application/json", body, !c->rq.keep_alive);
}

static void
record_done(const struct request *rq, const struct tx *t)
{
	char buf[256];
	int n;

	n = snprintf(buf, sizeof buf, "{\"seq\":%" PRIu64 ",\"completed\":%s,"
	    "\"bytes_sent\":%" PRIu64 ",\"ended_at_ms\":%" PRId64 ","
	    "\"reason\":\"%s\"}", rq->seq,
	    t->reason == DONE_COMPLETE ? "true" : "false", t->sent,
	    clock_ms(CLOCK_REALTIME), done_reason_names[t->reason]);
	record_write(rq->seq, "done", buf, (size_t)n);
}

/*
 * One request: select, record, answer, record the end.  The .done file is
 * written before the connection is closed or reset, so a client that sees
 * the close finds it in place.
 */
static enum conn_end
handle_request(struct conn *c)
{
	struct request *rq = &c->rq;
	struct selection sel = { 0 };
	struct sbuf rec = { 0 };
	const struct scenario *s;
	struct tx t = { .fd = c->fd, .reason = DONE_COMPLETE, .end = CE_KEEP };
	const char *msg;

	if (strcmp(rq->method, "GET") == 0 &&
	    strcmp(rq->path, "/__mock/stats") == 0)
		return handle_stats(c);
	rq->seq = atomic_fetch_add(&last_seq, 1) + 1;
	atomic_fetch_add(&n_requests, 1);
	rq->received_at_ms = clock_ms(CLOCK_REALTIME);
	select_scenario(rq, &sel);
	s = sel.scn != NULL ? sel.scn : &builtin_echo;
	t.s = s;
	if (opt_rec_dir != NULL || (s->echo && s->error == NULL))
		request_json(&rec, rq, sel.name.p);
	if (opt_rec_dir != NULL)
		record_write(rq->seq, "json", rec.p, rec.len);
	if (sel.err_status != 0 || s->error != NULL) {
		msg = sel.err_status != 0 ? sel.err.p : s->error;
		t.end = send_simple(c, sel.err_status ? sel.err_status : 500,
		    "text/plain", msg, !rq->keep_alive);
		if (t.end == CE_DROP)
			t.reason = DONE_PEER_CLOSED;
	} else {
		respond(c, &t, s, &rec);
	}
	if (opt_rec_dir != NULL)
		record_done(rq, &t);
	sb_free(&rec);
	sb_free(&sel.name);
	sb_free(&sel.err);
	return t.end;
}

/* ---- connections -------------------------------------------------------- */

static void
conn_finish(int fd, enum conn_end end)
{
	struct linger lg = { 1, 0 };
	struct pollfd pf;
	char scratch[1024];
	int64_t deadline, left;

	switch (end) {
	case CE_ABORT:
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		break;
	case CE_CLOSE:
		/*
		 * Closing with unread input makes the kernel send RST, which
		 * can destroy our answer in the peer's buffers; so half-close
		 * and drain until the peer closes or LINGER_MS pass.
		 */
		shutdown(fd, SHUT_WR);
		deadline = clock_ms(CLOCK_MONOTONIC) + LINGER_MS;
		while ((left = deadline - clock_ms(CLOCK_MONOTONIC)) > 0) {
			pf.fd = fd;
			pf.events = POLLIN;
			if (poll(&pf, 1, (int)left) <= 0 ||
			    recv(fd, scratch, sizeof scratch, 0) <= 0)
				break;
		}
		break;
	case CE_KEEP:
	case CE_DROP:
		break;
	}
	close(fd);
}

static void *
conn_thread(void *arg)
{
	struct conn *c = arg;
	enum conn_end end = CE_DROP;
	enum rd r;

	for (;;) {
		r = read_request(c);
		if (r == RD_BAD)
			end = send_simple(c, 400, "text/plain",
			    "mock-upstream: bad request\n", true);
		else if (r == RD_HDR_BIG)
			end = send_simple(c, 431, "text/plain",
			    "mock-upstream: request head too large\n", true);
		else if (r == RD_BODY_BIG)
			end = send_simple(c, 413, "text/plain",
			    "mock-upstream: request body too large\n", true);
		else if (r == RD_OK)
			end = handle_request(c);
		else
			end = CE_DROP;
		request_free(&c->rq);
		if (r != RD_OK || end != CE_KEEP)
			break;
	}
	conn_finish(c->fd, end);
	free(c->buf);
	sb_free(&c->out);
	free(c);
	atomic_fetch_sub(&n_conn_open, 1);
	return NULL;
}

static void *
accept_thread(void *arg)
{
	int lfd = *(int *)arg, fd, one = 1;
	pthread_attr_t attr;
	pthread_t tid;
	struct conn *c;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED) {
				log_msg("accept: %s", strerror(errno));
				usleep(10000);	/* EMFILE and friends */
			}
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c = xmalloc(sizeof *c);
		memset(c, 0, sizeof *c);
		c->fd = fd;
		c->cap = BUF_INIT;
		c->buf = xmalloc(c->cap);
		atomic_fetch_add(&n_conn_open, 1);
		atomic_fetch_add(&n_conn_total, 1);
		errno = pthread_create(&tid, &attr, conn_thread, c);
		if (errno != 0) {
			log_msg("pthread_create: %s", strerror(errno));
			atomic_fetch_sub(&n_conn_open, 1);
			close(fd);
			free(c->buf);
			free(c);
		}
	}
	return NULL;
}

/* ---- startup ------------------------------------------------------------ */

static void
usage(void)
{
	fputs("usage: mock-upstream [-H host] [-p port] [-d scenario_dir] "
	    "[-r record_dir]\n", stderr);
	exit(2);
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && rl.rlim_max == RLIM_INFINITY) {
		rl.rlim_cur = 1048576;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Bind and listen; returns the socket and the bound port in *port. */
static int
listen_on(const char *host, const char *port_str, unsigned *port)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int fd = -1, one = 1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port_str, &hints, &res);
	if (rc != 0) {
		log_msg("%s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, LISTEN_BACKLOG) == 0)
			break;
		rc = errno;
		close(fd);
		fd = -1;
		errno = rc;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_msg("cannot listen on %s port %s: %s", host, port_str,
		    strerror(errno));
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static bool
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * Order: parse options, check directories, ignore SIGPIPE, raise the fd
 * limit, listen, print the port, block SIGINT/SIGTERM (inherited by every
 * thread created afterwards), start accepting, then wait for a signal and
 * exit(0).  Connections in flight are simply cut off by the exit.
 */
int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *port_str = "0";
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t set;
	unsigned port;
	uint64_t pv;
	int lfd, opt, sig;

	while ((opt = getopt(argc, argv, "H:p:d:r:h")) != -1) {
		switch (opt) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			if (parse_u64(optarg, &pv) < 0 || pv > 65535)
				usage();
			port_str = optarg;
			break;
		case 'd':
			opt_scn_dir = optarg;
			break;
		case 'r':
			opt_rec_dir = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (opt_scn_dir != NULL && !is_dir(opt_scn_dir)) {
		log_msg("%s: not a directory", opt_scn_dir);
		return 1;
	}
	if (opt_rec_dir != NULL && mkdir(opt_rec_dir, 0755) < 0 &&
	    errno != EEXIST) {
		log_msg("%s: %s", opt_rec_dir, strerror(errno));
		return 1;
	}
	if (opt_rec_dir != NULL && (!is_dir(opt_rec_dir) ||
	    access(opt_rec_dir, W_OK) < 0)) {
		log_msg("%s: not a writable directory", opt_rec_dir);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	lfd = listen_on(host, port_str, &port);
	if (lfd < 0)
		return 1;
	printf("%u\n", port);
	fflush(stdout);

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	errno = pthread_create(&tid, &attr, accept_thread, &lfd);
	if (errno != 0) {
		log_msg("pthread_create: %s", strerror(errno));
		return 1;
	}
	while (sigwait(&set, &sig) != 0)
		;
	exit(0);
}
