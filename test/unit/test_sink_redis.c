/*
 * test_sink_redis.c - the Redis Streams sink against a real redis-server
 * that each test starts on a free port (or a unix socket) and stops:
 * a pipelined batch lands as stream entries whose payload is the line, a
 * consumer group reads them, MAXLEN ~ trims, AUTH (password, ACL user)
 * and SELECT work, a killed server makes write return 0 at once and the
 * sink reconnects after a backoff once the server is back (logging each
 * state change once), a stalled server (SIGSTOP) costs one timeout, an
 * error reply does not drop the connection; and, without a server,
 * address parsing and the backoff schedule.
 *
 * Each test runs in its own forked child (Check's default); a server it
 * starts gets PR_SET_PDEATHSIG so that it dies with the child whatever the
 * test does.  Without redis-server in PATH the tests that need it are
 * skipped with a notice.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "events.h"
#include "sink.h"
#include "sink_redis.h"

#define TMPDIR_TEMPLATE "/tmp/whyops-test-redis-XXXXXX"
static char tmpdir[sizeof(TMPDIR_TEMPLATE)];

struct server {
	pid_t pid;
	int port;			/* TCP, or 0 with sock */
	char sock[PATH_MAX];
	char addr[PATH_MAX];		/* for sink_redis_config.addr */
	const char *password;		/* for the test's own client */
};

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
	memcpy(tmpdir, TMPDIR_TEMPLATE, sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A TCP port nothing listens on right now (bind port 0, read it back). */
static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static bool
redis_installed(void)
{
	const char *path = getenv("PATH");
	char *dirs, *dir, *save, buf[PATH_MAX];
	bool found = false;

	if (path == NULL)
		return false;
	dirs = strdup(path);
	for (dir = strtok_r(dirs, ":", &save); dir != NULL && !found;
	    dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, sizeof(buf), "%s/redis-server", dir);
		found = access(buf, X_OK) == 0;
	}
	free(dirs);
	return found;
}

/* The test's own connection (with AUTH when the server has a password). */
static redisContext *
client(const struct server *sv)
{
	struct timeval tv = { 2, 0 };
	redisContext *c;
	redisReply *r;

	c = sv->sock[0] ? redisConnectUnixWithTimeout(sv->sock, tv) :
	    redisConnectWithTimeout("127.0.0.1", sv->port, tv);
	if (c == NULL || c->err) {
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (sv->password != NULL) {
		r = redisCommand(c, "AUTH %s", sv->password);
		ck_assert_ptr_nonnull(r);
		freeReplyObject(r);
	}
	return c;
}

static void
server_wait_ready(const struct server *sv)
{
	int64_t end = now_ms() + 10000;
	redisContext *c;
	redisReply *r;

	while (now_ms() < end) {
		if ((c = client(sv)) != NULL) {
			r = redisCommand(c, "PING");
			redisFree(c);
			if (r != NULL && r->type == REDIS_REPLY_STATUS) {
				freeReplyObject(r);
				return;
			}
			if (r != NULL)
				freeReplyObject(r);
		}
		sleep_ms(10);
	}
	ck_abort_msg("redis-server did not come up");
}

/* Starts redis-server with extra arguments (NULL-terminated list). */
static void
server_start(struct server *sv, const char *const *extra)
{
	const char *argv[40];
	char port[16];
	int n = 0, fd;
	pid_t parent = getpid();

	if (sv->port == 0 && sv->sock[0] == '\0')
		sv->port = free_port();
	snprintf(port, sizeof(port), "%d", sv->port);
	if (sv->sock[0])
		snprintf(sv->addr, sizeof(sv->addr), "%s", sv->sock);
	else
		snprintf(sv->addr, sizeof(sv->addr), "127.0.0.1:%d", sv->port);
	argv[n++] = "redis-server";
	argv[n++] = "--port";
	argv[n++] = port;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	if (sv->sock[0]) {
		argv[n++] = "--unixsocket";
		argv[n++] = sv->sock;
	}
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	argv[n++] = "--dir";
	argv[n++] = tmpdir;
	while (extra != NULL && *extra != NULL && n < 38)
		argv[n++] = *extra++;
	argv[n] = NULL;
	sv->pid = fork();
	ck_assert_int_ge(sv->pid, 0);
	if (sv->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		signal(SIGPIPE, SIG_DFL);
		fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp("redis-server", (char *const *)argv);
		_exit(127);
	}
	server_wait_ready(sv);
}

static void
server_stop(struct server *sv, int sig)
{
	int status;

	if (sv->pid <= 0)
		return;
	kill(sv->pid, sig);
	if (sig == SIGSTOP || sig == SIGCONT)
		return;
	waitpid(sv->pid, &status, 0);
	sv->pid = 0;
}

static long long
cmd_int(redisContext *c, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;
	long long v;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "reply type %d: %s",
	    r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
	v = r->integer;
	freeReplyObject(r);
	return v;
}

/* n event lines numbered from first, with quotes, escapes and UTF-8. */
struct lines {
	char **v;
	size_t *lens;
	size_t n;
};

static void
lines_make(struct lines *l, size_t first, size_t n)
{
	size_t i;
	int len;

	l->v = calloc(n, sizeof(*l->v));
	l->lens = calloc(n, sizeof(*l->lens));
	l->n = n;
	ck_assert(l->v != NULL && l->lens != NULL);
	for (i = 0; i < n; i++) {
		len = asprintf(&l->v[i], "{\"eventId\":\"e%zu\",\"text\":"
		    "\"h\xc3\xa9llo \\\"q\\\"\\n\",\"n\":%zu}", first + i,
		    first + i);
		ck_assert_int_gt(len, 0);
		l->lens[i] = (size_t)len;
	}
}

static void
lines_free(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->lens);
}

static int
write_lines(struct sink *s, const struct lines *l)
{
	return s->ops->write(s, l->v, l->lens, l->n);
}

static void
open_sink(struct sink *s, const struct server *sv, const char *stream,
    unsigned long maxlen, unsigned timeout_ms)
{
	struct sink_redis_config cfg = {
		.addr = sv->addr, .stream = stream, .maxlen = maxlen,
		.timeout_ms = timeout_ms,
	};

	ck_assert_int_eq(sink_redis_open(s, &cfg), 0);
}

/* Checks that the stream holds exactly l's lines, from entry skip on, as
 * the "payload" field of each entry, in order. */
static void
expect_stream(redisContext *c, const char *stream, const struct lines *l,
    size_t skip)
{
	redisReply *r, *e, *f;
	size_t i;

	r = redisCommand(c, "XRANGE %s - +", stream);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(r->elements, skip + l->n);
	for (i = 0; i < l->n; i++) {
		e = r->element[skip + i];
		ck_assert_uint_eq(e->elements, 2);
		f = e->element[1];
		ck_assert_uint_eq(f->elements, 2);
		ck_assert_str_eq(f->element[0]->str, "payload");
		ck_assert_uint_eq(f->element[1]->len, l->lens[i]);
		ck_assert(memcmp(f->element[1]->str, l->v[i], l->lens[i]) == 0);
	}
	freeReplyObject(r);
}

/* ---- without a server ------------------------------------------------- */

START_TEST(config_errors)
{
	static const char *const bad[] = {
		"", "host:", "host:0", "host:65536", "host:12x", "::1",
		"[::1", "[::1]x", "[]:6379", ":6379", "host:-1",
	};
	struct events_config ecfg = { 0 };
	struct sink_redis_config cfg = { .stream = "s" };
	struct sink s = { 0 };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.addr = bad[i];
		ck_assert_msg(sink_redis_open(&s, &cfg) == -1, "%s", bad[i]);
	}
	cfg.addr = "127.0.0.1:6379";
	cfg.stream = NULL;
	ck_assert_int_eq(sink_redis_open(&s, &cfg), -1);
	cfg.stream = "";
	ck_assert_int_eq(sink_redis_open(&s, &cfg), -1);
	ck_assert_int_eq(sink_redis_ops.open(&s, &ecfg), -1);
	ck_assert_ptr_null(sink_redis_ops.reopen);
}
END_TEST

/*
 * Nothing listens: open succeeds, the sink is down, writes return 0 at
 * once, and connects are retried with a backoff that doubles from 100 ms
 * (waits drawn from [b/2, b]): within 2 s the attempts are the first one
 * plus 4..6 retries.
 */
START_TEST(down_backoff)
{
	struct server sv = { 0 };
	struct sink_redis_stats st;
	struct sink s;
	struct lines l;
	int64_t t0, t, slowest = 0;

	sv.port = free_port();
	snprintf(sv.addr, sizeof(sv.addr), "127.0.0.1:%d", sv.port);
	lines_make(&l, 0, 3);
	open_sink(&s, &sv, "s", 0, 500);
	ck_assert(!sink_redis_connected(&s));
	t0 = now_ms();
	while (now_ms() - t0 < 2000) {
		t = now_ms();
		ck_assert_int_eq(write_lines(&s, &l), 0);
		if (now_ms() - t > slowest)
			slowest = now_ms() - t;
		sleep_ms(5);
	}
	ck_assert_int_lt(slowest, 100);
	sink_redis_get_stats(&s, &st);
	ck_assert_uint_ge(st.connect_failures, 5);
	ck_assert_uint_le(st.connect_failures, 7);
	ck_assert_uint_eq(st.connects, 0);
	ck_assert_uint_eq(st.written, 0);
	ck_assert_uint_gt(st.failed, 100);
	ck_assert(!sink_redis_poll(&s));
	s.ops->flush(&s);
	s.ops->close(&s);
	ck_assert_ptr_null(s.priv);
	lines_free(&l);
}
END_TEST

/* ---- with a server ---------------------------------------------------- */

START_TEST(xadd_batch)
{
	struct server sv = { 0 };
	struct sink_redis_stats st;
	struct lines a, b;
	redisContext *c;
	struct sink s;

	server_start(&sv, NULL);
	open_sink(&s, &sv, "whyops:events", 0, 2000);
	ck_assert(sink_redis_connected(&s));
	lines_make(&a, 0, 100);
	ck_assert_int_eq(write_lines(&s, &a), 100);
	c = client(&sv);
	ck_assert_ptr_nonnull(c);
	expect_stream(c, "whyops:events", &a, 0);
	/* a batch far larger than the socket buffers */
	lines_make(&b, 100, 20000);
	ck_assert_int_eq(write_lines(&s, &b), 20000);
	ck_assert_int_eq(cmd_int(c, "XLEN whyops:events"), 20100);
	expect_stream(c, "whyops:events", &b, 100);
	ck_assert_int_eq(s.ops->write(&s, a.v, a.lens, 0), 0);
	sink_redis_get_stats(&s, &st);
	ck_assert_uint_eq(st.written, 20100);
	ck_assert_uint_eq(st.failed + st.error_replies, 0);
	ck_assert_uint_eq(st.connects, 1);
	s.ops->close(&s);
	redisFree(c);
	lines_free(&a);
	lines_free(&b);
	server_stop(&sv, SIGTERM);
}
END_TEST

START_TEST(consumer_group)
{
	struct server sv = { 0 };
	redisReply *r, *entries;
	struct lines l;
	redisContext *c;
	struct sink s;
	size_t i;

	server_start(&sv, NULL);
	c = client(&sv);
	ck_assert_ptr_nonnull(c);
	r = redisCommand(c, "XGROUP CREATE ev workers $ MKSTREAM");
	ck_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
	open_sink(&s, &sv, "ev", 0, 1000);
	lines_make(&l, 0, 10);
	ck_assert_int_eq(write_lines(&s, &l), 10);
	r = redisCommand(c, "XREADGROUP GROUP workers c1 COUNT 100 "
	    "STREAMS ev >");
	ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(r->elements, 1);
	ck_assert_str_eq(r->element[0]->element[0]->str, "ev");
	entries = r->element[0]->element[1];
	ck_assert_uint_eq(entries->elements, 10);
	for (i = 0; i < 10; i++) {
		ck_assert_str_eq(entries->element[i]->element[1]->element[0]->str,
		    "payload");
		ck_assert_str_eq(entries->element[i]->element[1]->element[1]->str,
		    l.v[i]);
	}
	freeReplyObject(r);
	r = redisCommand(c, "XPENDING ev workers");
	ck_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
	ck_assert_int_eq(r->element[0]->integer, 10);
	freeReplyObject(r);
	s.ops->close(&s);
	redisFree(c);
	lines_free(&l);
	server_stop(&sv, SIGTERM);
}
END_TEST

/* MAXLEN ~ 100: Redis trims whole nodes (100 entries by default), so the
 * stream keeps at least 100 and not many more; maxlen 0 trims nothing. */
START_TEST(maxlen_trims)
{
	struct server sv = { 0 };
	struct sink s, t;
	struct lines l;
	redisContext *c;
	long long len;
	redisReply *r;
	int i;

	server_start(&sv, NULL);
	open_sink(&s, &sv, "trimmed", 100, 1000);
	open_sink(&t, &sv, "whole", 0, 1000);
	lines_make(&l, 0, 100);
	for (i = 0; i < 20; i++) {
		ck_assert_int_eq(write_lines(&s, &l), 100);
		ck_assert_int_eq(write_lines(&t, &l), 100);
	}
	c = client(&sv);
	ck_assert_ptr_nonnull(c);
	len = cmd_int(c, "XLEN trimmed");
	ck_assert_int_ge(len, 100);
	ck_assert_int_le(len, 300);
	ck_assert_int_eq(cmd_int(c, "XLEN whole"), 2000);
	r = redisCommand(c, "XREVRANGE trimmed + - COUNT 1");
	ck_assert(r != NULL && r->elements == 1);
	ck_assert_str_eq(r->element[0]->element[1]->element[1]->str,
	    l.v[99]);
	freeReplyObject(r);
	s.ops->close(&s);
	t.ops->close(&t);
	redisFree(c);
	lines_free(&l);
	server_stop(&sv, SIGTERM);
}
END_TEST

START_TEST(auth_and_select)
{
	static const char *const extra[] = {
		"--requirepass", "s3cret",
		"--user", "alice", "on", ">alicepw", "~*", "&*", "+@all",
		NULL,
	};
	struct server sv = { .password = "s3cret" };
	struct sink_redis_config cfg = { .stream = "ev", .timeout_ms = 1000 };
	struct sink_redis_stats st;
	struct lines l;
	redisContext *c;
	redisReply *r;
	struct sink s;

	server_start(&sv, extra);
	cfg.addr = sv.addr;
	lines_make(&l, 0, 5);

	/* the default user's password */
	cfg.password = "s3cret";
	ck_assert_int_eq(sink_redis_open(&s, &cfg), 0);
	ck_assert(sink_redis_connected(&s));
	ck_assert_int_eq(write_lines(&s, &l), 5);
	s.ops->close(&s);

	/* an ACL user, and SELECT */
	cfg.user = "alice";
	cfg.password = "alicepw";
	cfg.db = 5;
	ck_assert_int_eq(sink_redis_open(&s, &cfg), 0);
	ck_assert_int_eq(write_lines(&s, &l), 5);
	s.ops->close(&s);
	c = client(&sv);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(cmd_int(c, "XLEN ev"), 5);
	r = redisCommand(c, "SELECT 5");
	freeReplyObject(r);
	ck_assert_int_eq(cmd_int(c, "XLEN ev"), 5);
	redisFree(c);

	/* a wrong password: open works, the sink is down */
	cfg.user = NULL;
	cfg.password = "wrong";
	cfg.db = 0;
	ck_assert_int_eq(sink_redis_open(&s, &cfg), 0);
	ck_assert(!sink_redis_connected(&s));
	ck_assert_int_eq(write_lines(&s, &l), 0);
	sink_redis_get_stats(&s, &st);
	ck_assert_uint_eq(st.connects, 0);
	ck_assert_uint_ge(st.connect_failures, 1);
	s.ops->close(&s);

	/* no password: NOAUTH drops the connection */
	cfg.password = NULL;
	ck_assert_int_eq(sink_redis_open(&s, &cfg), 0);
	ck_assert_int_eq(write_lines(&s, &l), 0);
	ck_assert(!sink_redis_connected(&s));
	s.ops->close(&s);

	/* SELECT of a database that does not exist */
	cfg.password = "s3cret";
	cfg.db = 99;
	ck_assert_int_eq(sink_redis_open(&s, &cfg), 0);
	ck_assert(!sink_redis_connected(&s));
	s.ops->close(&s);
	lines_free(&l);
	server_stop(&sv, SIGTERM);
}
END_TEST

START_TEST(unix_socket)
{
	struct server sv = { 0 };
	struct lines l;
	redisContext *c;
	struct sink s;

	snprintf(sv.sock, sizeof(sv.sock), "%s/redis.sock", tmpdir);
	sv.port = free_port();
	server_start(&sv, NULL);
	ck_assert_int_eq(sv.addr[0], '/');
	open_sink(&s, &sv, "ev", 1000, 1000);
	ck_assert(sink_redis_connected(&s));
	lines_make(&l, 0, 50);
	ck_assert_int_eq(write_lines(&s, &l), 50);
	c = client(&sv);
	ck_assert_ptr_nonnull(c);
	expect_stream(c, "ev", &l, 0);
	redisFree(c);
	s.ops->close(&s);
	lines_free(&l);
	server_stop(&sv, SIGTERM);
}
END_TEST

/* Counts the lines of file path that contain needle. */
static int
count_in_file(const char *path, const char *needle)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}

/*
 * The server is killed: the next write returns 0 at once, later ones too
 * without any I/O while the backoff runs; the server comes back on the
 * same port: the sink reconnects by itself and writes again.  Each state
 * change is logged once, however many writes failed.
 */
START_TEST(server_killed_and_restarted)
{
	struct server sv = { 0 };
	struct sink_redis_stats st;
	struct lines l, one;
	char logpath[PATH_MAX];
	int64_t t, end;
	int saved, fd, writes = 0;
	redisContext *c;
	struct sink s;

	snprintf(logpath, sizeof(logpath), "%s/stderr.log", tmpdir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	saved = dup(2);
	dup2(fd, 2);
	close(fd);

	server_start(&sv, NULL);
	open_sink(&s, &sv, "ev", 0, 1000);
	lines_make(&l, 0, 10);
	lines_make(&one, 10, 1);
	ck_assert_int_eq(write_lines(&s, &l), 10);
	server_stop(&sv, SIGKILL);

	t = now_ms();
	ck_assert_int_eq(write_lines(&s, &l), 0);
	ck_assert_int_lt(now_ms() - t, 1000);
	ck_assert(!sink_redis_connected(&s));
	t = now_ms();
	ck_assert_int_eq(write_lines(&s, &l), 0);	/* in backoff: no I/O */
	ck_assert_int_lt(now_ms() - t, 20);

	for (end = now_ms() + 1500; now_ms() < end; writes++) {
		ck_assert_int_eq(write_lines(&s, &l), 0);
		sleep_ms(10);
	}
	server_start(&sv, NULL);			/* same port */
	for (end = now_ms() + 10000; now_ms() < end; writes++) {
		if (write_lines(&s, &one) == 1)
			break;
		sleep_ms(10);
	}
	ck_assert(sink_redis_connected(&s));
	ck_assert_int_eq(write_lines(&s, &l), 10);
	sink_redis_get_stats(&s, &st);
	ck_assert_uint_eq(st.connects, 2);
	ck_assert_uint_eq(st.written, 21);
	c = client(&sv);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(cmd_int(c, "XLEN ev"), 11);	/* a new, empty server */
	redisFree(c);
	s.ops->close(&s);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ck_assert_int_gt(writes, 100);
	ck_assert_int_eq(count_in_file(logpath, "connection lost"), 1);
	ck_assert_int_eq(count_in_file(logpath, "reconnected after"), 1);
	ck_assert_int_eq(count_in_file(logpath, "redis"), 3);
	lines_free(&l);
	lines_free(&one);
	server_stop(&sv, SIGTERM);
}
END_TEST

/* A stopped (SIGSTOP) server accepts the bytes and never answers: write
 * gives up after the timeout, and the sink recovers after SIGCONT. */
START_TEST(server_stalled)
{
	struct server sv = { 0 };
	struct lines l;
	int64_t t, end, took;
	struct sink s;
	int ok = 0;

	server_start(&sv, NULL);
	open_sink(&s, &sv, "ev", 0, 300);
	lines_make(&l, 0, 50);
	ck_assert_int_eq(write_lines(&s, &l), 50);
	server_stop(&sv, SIGSTOP);
	t = now_ms();
	ck_assert_int_eq(write_lines(&s, &l), 0);
	took = now_ms() - t;
	ck_assert_int_ge(took, 250);
	ck_assert_int_le(took, 450);
	ck_assert(!sink_redis_connected(&s));
	server_stop(&sv, SIGCONT);
	for (end = now_ms() + 10000; now_ms() < end && ok != 50; ) {
		ok = write_lines(&s, &l);
		sleep_ms(10);
	}
	ck_assert_int_eq(ok, 50);
	s.ops->close(&s);
	lines_free(&l);
	server_stop(&sv, SIGTERM);
}
END_TEST

/* An error reply (the key is not a stream) fails the batch but keeps the
 * connection; once the key is fixed the same connection writes. */
START_TEST(error_reply_keeps_connection)
{
	struct server sv = { 0 };
	struct sink_redis_stats st;
	struct lines l;
	redisContext *c;
	redisReply *r;
	struct sink s;

	server_start(&sv, NULL);
	c = client(&sv);
	ck_assert_ptr_nonnull(c);
	r = redisCommand(c, "SET ev notastream");
	freeReplyObject(r);
	open_sink(&s, &sv, "ev", 0, 1000);
	lines_make(&l, 0, 5);
	ck_assert_int_eq(write_lines(&s, &l), 0);
	ck_assert(sink_redis_connected(&s));
	ck_assert_int_eq(cmd_int(c, "DEL ev"), 1);
	ck_assert_int_eq(write_lines(&s, &l), 5);
	sink_redis_get_stats(&s, &st);
	ck_assert_uint_eq(st.error_replies, 5);
	ck_assert_uint_eq(st.connects, 1);
	ck_assert_uint_eq(st.written, 5);
	ck_assert_uint_eq(st.failed, 5);
	expect_stream(c, "ev", &l, 0);
	redisFree(c);
	s.ops->close(&s);
	lines_free(&l);
	server_stop(&sv, SIGTERM);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sink_redis");
	TCase *tc = tcase_create("no_server"), *ts;
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);	/* as main.c: a dead peer is EPIPE */
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, config_errors);
	tcase_add_test(tc, down_backoff);
	suite_add_tcase(s, tc);
	if (redis_installed()) {
		ts = tcase_create("redis_server");
		tcase_add_checked_fixture(ts, setup, teardown);
		tcase_set_timeout(ts, 60);
		tcase_add_test(ts, xadd_batch);
		tcase_add_test(ts, consumer_group);
		tcase_add_test(ts, maxlen_trims);
		tcase_add_test(ts, auth_and_select);
		tcase_add_test(ts, unix_socket);
		tcase_add_test(ts, server_killed_and_restarted);
		tcase_add_test(ts, server_stalled);
		tcase_add_test(ts, error_reply_keeps_connection);
		suite_add_tcase(s, ts);
	} else {
		printf("test_sink_redis: redis-server not found in PATH: "
		    "SKIPPING the tests that need a server\n");
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
