/*
 * sink_none.c - the sink that discards: events are still built (so the
 * cost and the counters are the same as with a real sink) and then
 * dropped here.
 *
 * Threads: runs on the dispatcher thread only.  It keeps no state: the
 * discarded events are counted by the caller, as written (they reached
 * the destination the configuration chose).
 */
#include "events.h"
#include "sink.h"

static int
sink_none_open(struct sink *s, const struct events_config *cfg)
{
	s->priv = NULL;
	return 0;
}

static int
sink_none_write(struct sink *s, char *const *lines, const size_t *lens,
    size_t n)
{
	return (int)n;
}

static void
sink_none_flush(struct sink *s)
{
}

static void
sink_none_close(struct sink *s)
{
}

const struct sink_ops sink_none_ops = {
	.name = "none",
	.open = sink_none_open,
	.write = sink_none_write,
	.flush = sink_none_flush,
	.close = sink_none_close,
	.reopen = NULL,
};
