/*
 * test_events.c - the telemetry pipeline end to end with a fake builder:
 * records submitted from several threads reach the file sink exactly once
 * as one JSON line each; a full ring drops, counts and logs (rate-limited)
 * without blocking; sink failures (open, write) are reported; reopen
 * switches files; stop drains and also works on an empty ring.
 *
 * The fake builder stands in for event_build (event.h): one envelope line
 * {"requestId": ..., "enqueuedAt": now_ms} per record, two for project
 * "two", fewer lines than it claims for project "bad" (the dispatcher
 * must drop what it wrote), and a failure (-1) for a record without
 * request_id.  It can be held at a gate so that
 * the dispatcher blocks while the test fills the ring.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* asprintf */
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "events.h"
#include "record.h"
#include "sink.h"

#define THREADS		4
#define PER_THREAD	5000

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool closed;		/* builder waits while the gate is closed */
	unsigned entered;	/* builder calls so far */
} gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0 };

static char dir[64];
static char path[PATH_MAX];
static int saved_stderr = -1;

static int
fake_build(const struct record *r, int64_t now_ms, struct buf *out)
{
	char *line;
	int n;

	pthread_mutex_lock(&gate.mu);
	gate.entered++;
	pthread_cond_broadcast(&gate.cv);
	while (gate.closed)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
	if (r->request_id == NULL)
		return -1;
	if (r->project != NULL && strcmp(r->project, "bad") == 0) {
		/* two lines written, three claimed: none of them counts */
		buf_append(out, "{}", 3);
		buf_append(out, "{}", 3);
		return 3;
	}
	n = asprintf(&line, "{\"requestId\":\"%s\",\"enqueuedAt\":%lld}",
	    r->request_id, (long long)now_ms);
	ck_assert_int_gt(n, 0);
	buf_append(out, line, (size_t)n + 1);
	free(line);
	if (r->project != NULL && strcmp(r->project, "two") == 0) {
		n = asprintf(&line, "{\"requestId\":\"%s\",\"second\":"
		    "\"yes\"}", r->request_id);
		ck_assert_int_gt(n, 0);
		buf_append(out, line, (size_t)n + 1);
		free(line);
	}
	return r->project != NULL && strcmp(r->project, "two") == 0 ? 2 : 1;
}

static void
gate_set(bool closed)
{
	pthread_mutex_lock(&gate.mu);
	gate.closed = closed;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

static void
gate_wait_entered(unsigned n)
{
	pthread_mutex_lock(&gate.mu);
	while (gate.entered < n)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
}

/* A record owning a bit of everything record_free() must free. */
static struct record *
make_record(const char *id, const char *project)
{
	struct record *r = record_new();

	r->request_id = id ? strdup(id) : NULL;
	r->project = project ? strdup(project) : NULL;
	r->endpoint = strdup("chat.completions");
	r->request_body = strdup("{\"model\":\"m\"}");
	r->request_len = strlen(r->request_body);
	r->result = llm_result_new(NULL);
	llm_str_set(r->result, &r->result->model, "m", 1);
	return r;
}

static void
setup(void)
{
	strcpy(dir, "/tmp/test_events.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/events.log", dir);
	gate.closed = false;
	gate.entered = 0;
	umask(022);
}

static void
teardown(void)
{
	static const char *const names[] = {
		"events.log", "events.log.1", "stderr", "notadir", "fifo",
	};
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

static char *
slurp(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	char *data;
	long n;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(data);
	ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	if (len != NULL)
		*len = (size_t)n;
	return data;
}

/* Log lines go to fd 2 with one write each: send them to a file. */
static void
capture_start(void)
{
	char p[PATH_MAX];
	int fd;

	snprintf(p, sizeof(p), "%s/stderr", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static char *
capture_end(void)
{
	char p[PATH_MAX];

	dup2(saved_stderr, 2);
	close(saved_stderr);
	saved_stderr = -1;
	snprintf(p, sizeof(p), "%s/stderr", dir);
	return slurp(p, NULL);
}

static unsigned
count_substr(const char *hay, const char *needle)
{
	unsigned n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/*
 * Splits a file into lines, each of which must be a JSON object with a
 * string requestId; returns the ids in file order (strdup'ed) and their
 * number.  The file must end with a newline.
 */
static char **
read_ids(const char *file, size_t *count)
{
	size_t len, n = 0, cap = 16;
	char **ids = malloc(cap * sizeof(*ids));
	char *data = slurp(file, &len), *line, *nl;
	json_error_t err;
	json_t *obj;

	ck_assert(len == 0 || data[len - 1] == '\n');
	for (line = data; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		obj = json_loads(line, 0, &err);
		ck_assert_msg(obj != NULL, "line %zu: %s: %s", n + 1,
		    err.text, line);
		ck_assert(json_is_object(obj));
		ck_assert(json_is_string(json_object_get(obj, "requestId")));
		if (n == cap)
			ids = realloc(ids, (cap *= 2) * sizeof(*ids));
		ids[n++] = strdup(json_string_value(json_object_get(obj,
		    "requestId")));
		json_decref(obj);
	}
	free(data);
	*count = n;
	return ids;
}

static void
free_ids(char **ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static void
wait_written(uint64_t n)
{
	struct events_stats st;
	int i;

	for (i = 0; i < 2000; i++) {
		events_get_stats(&st);
		if (st.written >= n)
			return;
		usleep(5000);
	}
	ck_abort_msg("written stayed at %llu, wanted %llu",
	    (unsigned long long)st.written, (unsigned long long)n);
}

struct submitter {
	unsigned id;
	unsigned long refused;
};

/* Submits PER_THREAD records; a refused one is made again and retried. */
static void *
submitter_main(void *arg)
{
	struct submitter *s = arg;
	char id[32];
	unsigned i;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf(id, sizeof(id), "t%u-%u", s->id, i);
		while (!events_submit(make_record(id, NULL))) {
			s->refused++;
			usleep(100);
		}
	}
	return NULL;
}

START_TEST(file_many_threads)
{
	struct events_config cfg = { .sink = EVENTS_SINK_FILE, .file = path, .queue_size = 1024 };
	struct submitter sub[THREADS];
	pthread_t tid[THREADS];
	unsigned next[THREADS] = { 0 };
	unsigned long refused = 0;
	struct events_stats st;
	unsigned char *seen;
	struct stat sb;
	unsigned t, i;
	char **ids;
	size_t n, k;

	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	for (t = 0; t < THREADS; t++) {
		sub[t] = (struct submitter){ t, 0 };
		ck_assert_int_eq(pthread_create(&tid[t], NULL, submitter_main,
		    &sub[t]), 0);
	}
	for (t = 0; t < THREADS; t++) {
		pthread_join(tid[t], NULL);
		refused += sub[t].refused;
	}
	events_stop();

	events_get_stats(&st);
	ck_assert_uint_eq(st.queued, THREADS * PER_THREAD);
	ck_assert_uint_eq(st.written, THREADS * PER_THREAD);
	ck_assert_uint_eq(st.dropped_full, refused);
	ck_assert_uint_eq(st.dropped_sink, 0);
	ck_assert_uint_eq(st.built_failed, 0);
	ck_assert_uint_eq(st.depth, 0);
	ck_assert_uint_ge(st.high_water, 1);
	ck_assert_uint_le(st.high_water, 1024);

	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 0777, 0640);
	ids = read_ids(path, &n);
	ck_assert_uint_eq(n, THREADS * PER_THREAD);
	seen = calloc(THREADS * PER_THREAD, 1);
	for (k = 0; k < n; k++) {
		ck_assert_int_eq(sscanf(ids[k], "t%u-%u", &t, &i), 2);
		ck_assert_uint_lt(t, THREADS);
		ck_assert_uint_lt(i, PER_THREAD);
		ck_assert_uint_eq(seen[t * PER_THREAD + i], 0);
		seen[t * PER_THREAD + i] = 1;
		/* one thread's records keep their order */
		ck_assert_uint_eq(i, next[t]);
		next[t]++;
	}
	free(seen);
	free_ids(ids, n);
}
END_TEST

START_TEST(full_ring_drops)
{
	struct events_config cfg = { .sink = EVENTS_SINK_FILE, .file = path, .queue_size = 4 };
	static const char *const want[] = { "first", "q0", "q1", "q2", "q3" };
	struct events_stats st;
	char id[32], *log;
	char **ids;
	size_t n, k;
	int i;

	capture_start();
	gate_set(true);
	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	/* the dispatcher takes "first" and blocks in the builder */
	ck_assert(events_submit(make_record("first", NULL)));
	gate_wait_entered(1);
	for (i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "q%d", i);
		ck_assert(events_submit(make_record(id, NULL)));
	}
	for (i = 0; i < 10; i++)
		ck_assert(!events_submit(make_record("dropped", NULL)));
	events_get_stats(&st);
	ck_assert_uint_eq(st.queued, 5);
	ck_assert_uint_eq(st.dropped_full, 10);
	ck_assert_uint_eq(st.depth, 4);
	ck_assert_uint_eq(st.high_water, 4);
	ck_assert_uint_eq(st.written, 0);

	gate_set(false);
	events_stop();
	log = capture_end();
	events_get_stats(&st);
	ck_assert_uint_eq(st.written, 5);
	ck_assert_uint_eq(st.dropped_full, 10);
	ck_assert_uint_eq(st.depth, 0);
	ck_assert_uint_eq(st.high_water, 4);

	/* the first drop is logged at once, the other nine once, later */
	ck_assert_uint_eq(count_substr(log, "queue full"), 2);
	ck_assert_uint_eq(count_substr(log,
	    "queue full (4 records), 1 dropped since the last report\n"), 1);
	ck_assert_uint_eq(count_substr(log,
	    "queue full (4 records), 9 dropped since the last report\n"), 1);
	free(log);

	ids = read_ids(path, &n);
	ck_assert_uint_eq(n, 5);
	for (k = 0; k < n; k++)
		ck_assert_str_eq(ids[k], want[k]);
	free_ids(ids, n);
}
END_TEST

START_TEST(sink_open_failure)
{
	struct events_config cfg = { .sink = EVENTS_SINK_FILE, .file = NULL, .queue_size = 16 };
	struct events_config none = { .sink = EVENTS_SINK_NONE, .file = NULL, .queue_size = 16 };
	struct events_stats st;
	char notadir[128], want[PATH_MAX + 64], *log;
	int fd;

	snprintf(notadir, sizeof(notadir), "%s/notadir", dir);
	fd = open(notadir, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/events.log", notadir);
	cfg.file = path;

	capture_start();
	ck_assert_int_eq(events_start(&cfg, fake_build), -1);
	cfg.file = NULL;
	ck_assert_int_eq(events_start(&cfg, fake_build), -1);
	cfg.file = path;
	cfg.sink = 7;
	ck_assert_int_eq(events_start(&cfg, fake_build), -1);
	log = capture_end();
	snprintf(want, sizeof(want), "cannot open file: %s: %s\n", path,
	    strerror(ENOTDIR));
	ck_assert_msg(strstr(log, want) != NULL, "log: %s", log);
	ck_assert_ptr_nonnull(strstr(log, "the file sink needs a file path"));
	free(log);

	/* nothing runs: submit frees and refuses, stop does nothing */
	ck_assert(!events_submit(make_record("x", NULL)));
	events_stop();
	events_get_stats(&st);
	ck_assert_uint_eq(st.queued + st.written + st.dropped_full, 0);

	/* and a later start works */
	ck_assert_int_eq(events_start(&none, fake_build), 0);
	ck_assert(events_submit(make_record("y", NULL)));
	events_stop();
	events_get_stats(&st);
	ck_assert_uint_eq(st.written, 1);
}
END_TEST

START_TEST(stop_empty)
{
	struct events_config cfg = { .sink = EVENTS_SINK_FILE, .file = path, .queue_size = 16 };
	struct events_stats st;
	struct timespec t0, t1;
	struct stat sb;
	double ms;

	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	usleep(150 * 1000);	/* let the dispatcher go to sleep */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	events_stop();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	/* woken by stop, not by the 100 ms poll timeout */
	ck_assert_msg(ms < 80, "stop took %.1f ms", ms);
	events_get_stats(&st);
	ck_assert_uint_eq(st.queued, 0);
	ck_assert_uint_eq(st.written, 0);
	ck_assert_uint_eq(st.high_water, 0);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_size, 0);
	events_stop();		/* twice is harmless */
}
END_TEST

/* Sleeping dispatcher: a lone submit is written promptly (the wake-up
 * works, not just the 100 ms poll timeout). */
START_TEST(wakeup_latency)
{
	struct events_config cfg = { .sink = EVENTS_SINK_NONE, .file = NULL, .queue_size = 16 };
	struct events_stats st;
	struct timespec t0, t1;
	double ms, worst = 0;
	int i, j, slow = 0;

	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	for (i = 0; i < 20; i++) {
		usleep(20 * 1000);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ck_assert(events_submit(make_record("w", NULL)));
		for (j = 0; j < 100000; j++) {
			events_get_stats(&st);
			if (st.written == (uint64_t)i + 1)
				break;
			usleep(50);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (ms > worst)
			worst = ms;
		if (ms >= 50)
			slow++;
	}
	events_stop();
	/* a missed wake-up would show as up to 100 ms most of the time;
	 * allow a scheduling hiccup or two */
	ck_assert_msg(slow <= 2, "%d of 20 slow, worst %.1f ms", slow, worst);
}
END_TEST

START_TEST(none_sink_counts)
{
	struct events_config cfg = { .sink = EVENTS_SINK_NONE, .file = NULL, .queue_size = 256 };
	struct events_stats st;
	int i;

	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	for (i = 0; i < 100; i++)
		ck_assert(events_submit(make_record("n", NULL)));
	ck_assert(events_submit(make_record("two", "two")));	/* 2 lines */
	ck_assert(events_submit(make_record("bad", "bad")));	/* dropped */
	ck_assert(events_submit(make_record(NULL, NULL)));	/* failed */
	events_stop();
	events_get_stats(&st);
	ck_assert_uint_eq(st.queued, 103);
	ck_assert_uint_eq(st.written, 102);
	ck_assert_uint_eq(st.built_failed, 2);
	ck_assert_uint_eq(st.dropped_sink, 0);
	ck_assert_uint_eq(st.dropped_full, 0);
}
END_TEST

/* /dev/full: every write fails with ENOSPC. */
START_TEST(write_error_counted)
{
	struct events_config cfg = { .sink = EVENTS_SINK_FILE, .file = "/dev/full", .queue_size = 16 };
	struct events_stats st;
	char *log;
	int i;

	capture_start();
	gate_set(true);
	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	ck_assert(events_submit(make_record("a", NULL)));
	gate_wait_entered(1);
	for (i = 0; i < 4; i++)
		ck_assert(events_submit(make_record("b", NULL)));
	gate_set(false);
	events_stop();
	log = capture_end();
	events_get_stats(&st);
	ck_assert_uint_eq(st.written, 0);
	ck_assert_uint_eq(st.dropped_sink, 5);
	/* logged once, the rest summed up at close */
	ck_assert_uint_eq(count_substr(log, "cannot write file"), 1);
	ck_assert_ptr_nonnull(strstr(log, "cannot write file: /dev/full: "
	    "No space left on device (1 events dropped)\n"));
	ck_assert_ptr_nonnull(strstr(log, "events: file /dev/full: 4 more "
	    "events dropped since the last report\n"));
	free(log);
}
END_TEST

START_TEST(reopen_switches_file)
{
	struct events_config cfg = { .sink = EVENTS_SINK_FILE, .file = path, .queue_size = 16 };
	char old[PATH_MAX + 8];
	char **ids;
	size_t n;

	snprintf(old, sizeof(old), "%s.1", path);
	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	ck_assert(events_submit(make_record("r1", "two")));
	ck_assert(events_submit(make_record("r2", NULL)));
	wait_written(3);
	ck_assert_int_eq(rename(path, old), 0);	/* logrotate */
	events_reopen();
	ck_assert(events_submit(make_record("r3", NULL)));
	events_stop();

	ids = read_ids(old, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(ids[0], "r1");
	ck_assert_str_eq(ids[1], "r1");
	ck_assert_str_eq(ids[2], "r2");
	free_ids(ids, n);
	ids = read_ids(path, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(ids[0], "r3");
	free_ids(ids, n);
}
END_TEST

/*
 * events_reconfigure() while four threads submit: the sink switches between
 * two files many times; every record is in exactly one of them, each
 * thread's records in order within a file, and a record submitted after
 * the call returned is in the new file.
 */
START_TEST(reconfigure_under_load)
{
	struct events_config cfg = { .sink = EVENTS_SINK_FILE, .file = path, .queue_size = 1024 };
	struct events_config other = cfg;
	struct submitter sub[THREADS];
	pthread_t tid[THREADS];
	unsigned char *seen;
	struct events_stats st;
	char alt[PATH_MAX + 8];
	char **ids;
	size_t n, k, total = 0;
	unsigned t, i, f, last[2][THREADS];
	const char *files[2] = { path, alt };

	snprintf(alt, sizeof(alt), "%s.1", path);
	other.file = alt;
	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	ck_assert(events_submit(make_record("first", NULL)));
	wait_written(1);
	for (t = 0; t < THREADS; t++) {
		sub[t] = (struct submitter){ t, 0 };
		ck_assert_int_eq(pthread_create(&tid[t], NULL, submitter_main,
		    &sub[t]), 0);
	}
	for (i = 0; i < 40; i++) {
		events_reconfigure(i % 2 == 0 ? &other : &cfg);
		usleep(2000);
	}
	for (t = 0; t < THREADS; t++)
		pthread_join(tid[t], NULL);
	events_reconfigure(&other);	/* ends on alt */
	ck_assert(events_submit(make_record("last", NULL)));
	events_stop();
	events_get_stats(&st);
	ck_assert_uint_eq(st.written, THREADS * PER_THREAD + 2);
	ck_assert_uint_eq(st.dropped_sink, 0);

	seen = calloc(THREADS * PER_THREAD, 1);
	for (f = 0; f < 2; f++) {
		for (t = 0; t < THREADS; t++)
			last[f][t] = 0;
		ids = read_ids(files[f], &n);
		total += n;
		for (k = 0; k < n; k++) {
			if (strcmp(ids[k], "first") == 0) {
				ck_assert_uint_eq(f, 0);
				continue;
			}
			if (strcmp(ids[k], "last") == 0) {
				ck_assert_uint_eq(f, 1);
				continue;
			}
			ck_assert_int_eq(sscanf(ids[k], "t%u-%u", &t, &i), 2);
			ck_assert_uint_eq(seen[t * PER_THREAD + i], 0);
			seen[t * PER_THREAD + i] = 1;
			ck_assert_uint_ge(i + 1, last[f][t]);
			last[f][t] = i + 1;
		}
		free_ids(ids, n);
	}
	ck_assert_uint_eq(total, THREADS * PER_THREAD + 2);
	free(seen);
}
END_TEST

/* The spool's cap in the stats follows a reload (readiness judges it). */
static bool
wait_spool_max(uint64_t want)
{
	struct events_stats st;

	for (int i = 0; i < 400; i++) {
		events_get_stats(&st);
		if (st.spool_max == want)
			return true;
		usleep(5000);
	}
	return false;
}

START_TEST(reconfigure_spool_limits)
{
	char sp[PATH_MAX + 8];
	struct events_config cfg = { .sink = EVENTS_SINK_NONE,
	    .queue_size = 16, .spool_dir = sp, .spool_max = 1 << 20 };
	struct events_stats st;

	snprintf(sp, sizeof(sp), "%s/sp", dir);
	ck_assert_int_eq(events_start(&cfg, fake_build), 0);
	events_get_stats(&st);
	ck_assert_uint_eq(st.spool_max, 1 << 20);
	ck_assert_uint_eq(st.capacity, 16);
	cfg.spool_max = 2 << 20;
	events_reconfigure(&cfg);
	ck_assert(wait_spool_max(2 << 20));
	cfg.spool_dir = NULL;
	events_reconfigure(&cfg);
	ck_assert(wait_spool_max(0));
	events_stop();
	rmdir(sp);
}
END_TEST

/*
 * The file sink on its own against a FIFO whose reader drains slowly and
 * sends the writer a signal (handler without SA_RESTART) after every read:
 * writev() then returns short counts or fails with EINTR, and the sink
 * must still deliver every byte, in order.  3000 lines also exceed
 * IOV_MAX, so the batch takes several writev calls.
 */
#define FIFO_LINES 3000

static volatile sig_atomic_t signals;

static void
on_usr1(int sig)
{
	signals++;
}

struct fifo_writer {
	struct sink *sink;
	char **lines;
	size_t *lens;
	int wrote;
};

static void *
fifo_writer_main(void *arg)
{
	struct fifo_writer *w = arg;

	w->wrote = w->sink->ops->write(w->sink, w->lines, w->lens,
	    FIFO_LINES);
	return NULL;
}

START_TEST(sink_file_partial_writes)
{
	struct events_config cfg = { .sink = EVENTS_SINK_FILE, .file = path, .queue_size = 0 };
	struct sink sink = { &sink_file_ops, NULL };
	struct fifo_writer w = { &sink, NULL, NULL, -1 };
	struct sigaction sa;
	char *expect, *got, buf[4096];
	size_t total = 0, have = 0, i, k;
	pthread_t tid;
	ssize_t r;
	int rfd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;		/* no SA_RESTART: EINTR and short writes */
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);

	w.lines = calloc(FIFO_LINES, sizeof(*w.lines));
	w.lens = calloc(FIFO_LINES, sizeof(*w.lens));
	for (i = 0; i < FIFO_LINES; i++) {
		size_t pad = i % 500;

		w.lines[i] = malloc(pad + 32);
		w.lens[i] = (size_t)snprintf(w.lines[i], pad + 32,
		    "{\"i\":%zu,\"p\":\"%*s\"}", i, (int)pad, "");
		total += w.lens[i] + 1;
	}
	expect = malloc(total);
	for (i = 0, k = 0; i < FIFO_LINES; i++) {
		memcpy(expect + k, w.lines[i], w.lens[i]);
		k += w.lens[i];
		expect[k++] = '\n';
	}

	snprintf(path, sizeof(path), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	rfd = open(path, O_RDONLY | O_NONBLOCK);
	ck_assert_int_ge(rfd, 0);
	ck_assert_int_eq(sink.ops->open(&sink, &cfg), 0);
	ck_assert_int_eq(fcntl(rfd, F_SETFL, 0), 0);

	ck_assert_int_eq(pthread_create(&tid, NULL, fifo_writer_main, &w), 0);
	got = malloc(total);
	while (have < total) {
		r = read(rfd, buf, sizeof(buf));
		ck_assert_int_gt(r, 0);
		ck_assert_uint_le(have + (size_t)r, total);
		memcpy(got + have, buf, (size_t)r);
		have += (size_t)r;
		if (have < total)
			pthread_kill(tid, SIGUSR1);
	}
	pthread_join(tid, NULL);
	ck_assert_int_eq(w.wrote, FIFO_LINES);
	ck_assert(memcmp(got, expect, total) == 0);
	ck_assert_int_gt(signals, 0);
	sink.ops->close(&sink);
	ck_assert_ptr_null(sink.priv);
	close(rfd);
	for (i = 0; i < FIFO_LINES; i++)
		free(w.lines[i]);
	free(w.lines);
	free(w.lens);
	free(expect);
	free(got);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("events");
	TCase *tc = tcase_create("events");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);	/* TSan */
	tcase_add_test(tc, file_many_threads);
	tcase_add_test(tc, full_ring_drops);
	tcase_add_test(tc, sink_open_failure);
	tcase_add_test(tc, stop_empty);
	tcase_add_test(tc, wakeup_latency);
	tcase_add_test(tc, none_sink_counts);
	tcase_add_test(tc, write_error_counted);
	tcase_add_test(tc, reopen_switches_file);
	tcase_add_test(tc, reconfigure_under_load);
	tcase_add_test(tc, reconfigure_spool_limits);
	tcase_add_test(tc, sink_file_partial_writes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
