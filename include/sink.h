/*
 * sink.h - where events go: a small table of operations, one file per
 * sink (sink_file.c, sink_none.c), chosen by events_config.sink.
 *
 * Threads: a sink belongs to the dispatcher thread (events.c), which calls
 * every operation; open happens in events_start() before that thread
 * exists and close in events_stop() after it has been joined, so a sink
 * needs no locking.  A sink may block on its own target (disk, network):
 * only the dispatcher waits, never a request.
 */
#ifndef WHYOPS_SINK_H
#define WHYOPS_SINK_H

#include <stddef.h>

struct events_config;

struct sink {
	const struct sink_ops *ops;
	void *priv;		/* the sink's own state, set by open */
};

struct sink_ops {
	const char *name;
	/* Fills s->priv.  0, or -1 with the reason logged; nothing to close
	 * after a failure. */
	int (*open)(struct sink *s, const struct events_config *cfg);
	/*
	 * Writes n events in order.  Each line is one envelope JSON without
	 * trailing newline, lens[i] bytes, and NUL-terminated: the sink may
	 * overwrite lines[i][lens[i]] (the file sink puts its '\n' there).
	 * Returns how many of the lines, from the first, were written in full
	 * (0..n); the caller counts the rest as dropped.  Errors are logged
	 * by the sink, rate-limited.
	 */
	int (*write)(struct sink *s, char *const *lines, const size_t *lens,
	    size_t n);
	/* Pushes out anything buffered; called when the queue runs empty and
	 * before close. */
	void (*flush)(struct sink *s);
	/* Frees s->priv. */
	void (*close)(struct sink *s);
	/* Reopens the target (log rotation); NULL when it has none.  On
	 * failure the sink keeps its old target and logs why. */
	void (*reopen)(struct sink *s);
};

extern const struct sink_ops sink_file_ops;
extern const struct sink_ops sink_none_ops;

#endif
