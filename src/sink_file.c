/*
 * sink_file.c - the file sink: appends one JSON envelope per line.
 *
 * Threads: everything here runs on the dispatcher thread (events.c), so
 * the state needs no lock and a slow disk delays only telemetry, never a
 * request.
 *
 * The file is opened O_APPEND (each writev lands at the current end even
 * if another process appends too) with mode 0640: events can hold prompts
 * and answers.  A batch goes out in one writev: the dispatcher leaves a NUL
 * after every line, which is overwritten with the '\n', so a line is one
 * iovec (a batch of more than IOV_MAX lines takes several calls).  Partial
 * writes continue where they stopped and EINTR is retried.
 *
 * On a write error the lines not written are reported to the caller, which
 * counts them as dropped; the error is logged at once and then at most once
 * per SINK_FILE_LOG_INTERVAL_MS with the number dropped meanwhile, and
 * recovery is logged.  If the error cut a line in the middle, the next
 * write starts with a newline so that the torn line stays alone on its
 * line and every later line parses.
 *
 * Log rotation: reopen() opens the path again (the old file has been
 * renamed) and switches to it; if that fails, writing goes on to the old
 * file and the failure is logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "log.h"
#include "sink.h"

#define SINK_FILE_LOG_INTERVAL_MS 10000
#define SINK_FILE_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY)
#define SINK_FILE_MODE 0640

struct sink_file {
	char *path;
	int fd;
	bool torn;		/* the last write stopped inside a line */
	bool failing;		/* since the last successful write */
	uint64_t unlogged;	/* lines dropped since the last log line */
	int64_t logged_ms;	/* monotonic time of that line */
	struct iovec iov[IOV_MAX];
};

static int64_t
sink_file_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
sink_file_open(struct sink *s, const struct events_config *cfg)
{
	struct sink_file *f;

	if (cfg->file == NULL || cfg->file[0] == '\0') {
		log_error("events: the file sink needs a file path");
		return -1;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL || (f->path = strdup(cfg->file)) == NULL) {
		fprintf(stderr, "sink_file: out of memory\n");
		abort();
	}
	f->fd = open(f->path, SINK_FILE_FLAGS, SINK_FILE_MODE);
	if (f->fd < 0) {
		log_error("events: cannot open file: %s: %s", f->path,
		    strerror(errno));
		free(f->path);
		free(f);
		return -1;
	}
	s->priv = f;
	return 0;
}

/* Writes all of iov[0..cnt), retrying partial writes and EINTR; iov is
 * consumed in place.  Adds the bytes written to *done.  0, or -1 with
 * errno set. */
static int
sink_file_writev_all(int fd, struct iovec *iov, int cnt, size_t *done)
{
	ssize_t r;

	while (cnt > 0) {
		r = writev(fd, iov, cnt);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;	/* no progress: give up */
			return -1;
		}
		*done += (size_t)r;
		while (cnt > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static void
sink_file_log_error(struct sink_file *f, int err, uint64_t lost)
{
	int64_t now = sink_file_now_ms();

	f->unlogged += lost;
	if (f->failing && now - f->logged_ms < SINK_FILE_LOG_INTERVAL_MS)
		return;
	log_error("events: cannot write file: %s: %s (%" PRIu64
	    " events dropped)", f->path, strerror(err), f->unlogged);
	f->failing = true;
	f->unlogged = 0;
	f->logged_ms = now;
}

static void
sink_file_log_recovery(struct sink_file *f)
{
	if (!f->failing)
		return;
	log_info("events: writing file %s again (%" PRIu64
	    " more events dropped before)", f->path, f->unlogged);
	f->failing = false;
	f->unlogged = 0;
}

/*
 * After a failed write of lines[from..from+nlines) (preceded by a "\n" when
 * f->torn was set, prefix bytes), counts the lines written in full and
 * notes whether the write stopped inside a line.
 */
static size_t
sink_file_count_written(struct sink_file *f, const size_t *lens,
    size_t nlines, size_t prefix, size_t bytes)
{
	size_t i;

	if (bytes < prefix)
		return 0;		/* still torn */
	bytes -= prefix;
	f->torn = false;
	for (i = 0; i < nlines && bytes >= lens[i] + 1; i++)
		bytes -= lens[i] + 1;
	if (i < nlines && bytes > 0)
		f->torn = true;
	return i;
}

static int
sink_file_write(struct sink *s, char *const *lines, const size_t *lens,
    size_t n)
{
	static char newline[] = "\n";
	struct sink_file *f = s->priv;
	size_t done = 0, bytes, prefix, i;
	int cnt;

	while (done < n) {
		cnt = 0;
		prefix = 0;
		if (f->torn) {
			f->iov[cnt++] = (struct iovec){ newline, 1 };
			prefix = 1;
		}
		for (i = done; i < n && cnt < IOV_MAX; i++) {
			lines[i][lens[i]] = '\n';
			f->iov[cnt++] = (struct iovec){ lines[i], lens[i] + 1 };
		}
		bytes = 0;
		if (sink_file_writev_all(f->fd, f->iov, cnt, &bytes) < 0) {
			int err = errno;

			done += sink_file_count_written(f, lens + done,
			    i - done, prefix, bytes);
			sink_file_log_error(f, err, n - done);
			return (int)done;
		}
		f->torn = false;
		done = i;
	}
	sink_file_log_recovery(f);
	return (int)done;
}

/* Nothing is buffered in the process: each batch went to the kernel. */
static void
sink_file_flush(struct sink *s)
{
}

static void
sink_file_close(struct sink *s)
{
	struct sink_file *f = s->priv;

	if (f == NULL)
		return;
	if (f->unlogged > 0)
		log_error("events: file %s: %" PRIu64 " more events dropped "
		    "since the last report", f->path, f->unlogged);
	if (close(f->fd) < 0)
		log_error("events: closing file: %s: %s", f->path,
		    strerror(errno));
	free(f->path);
	free(f);
	s->priv = NULL;
}

static void
sink_file_reopen(struct sink *s)
{
	struct sink_file *f = s->priv;
	int fd;

	fd = open(f->path, SINK_FILE_FLAGS, SINK_FILE_MODE);
	if (fd < 0) {
		log_error("events: cannot reopen file: %s: %s (still writing "
		    "to the old file)", f->path, strerror(errno));
		return;
	}
	close(f->fd);
	f->fd = fd;
	f->torn = false;
	log_info("events: reopened file %s", f->path);
}

const struct sink_ops sink_file_ops = {
	.name = "file",
	.open = sink_file_open,
	.write = sink_file_write,
	.flush = sink_file_flush,
	.close = sink_file_close,
	.reopen = sink_file_reopen,
};
