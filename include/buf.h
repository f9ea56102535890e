/*
 * buf.h - a growable byte buffer.
 *
 * The owner of a struct buf owns its memory; buf_free() releases it.  Growth
 * aborts the process on allocation failure (small, bounded sizes only: every
 * size that comes from the network is checked against a configured limit
 * before it reaches a buffer).  A buffer is not thread safe; callers lock.
 */
#ifndef WHYOPS_BUF_H
#define WHYOPS_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t off;		/* bytes already consumed from the front */
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_appends(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Bytes not yet consumed. */
static inline size_t buf_avail(const struct buf *b) { return b->len - b->off; }
static inline const char *buf_head(const struct buf *b) { return b->data + b->off; }
/* Marks n bytes consumed; the space is reclaimed when the buffer empties. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Hands the data (NUL-terminated) to the caller, leaving b empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
