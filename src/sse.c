/*
 * sse.c - incremental text/event-stream parser (WHATWG HTML, 9.2.6).
 *
 * The upstream thread feeds each chunk libcurl hands it.  The parser scans
 * the chunk for line terminators with memchr (the next CR and the next LF are
 * each looked up once and remembered, so a chunk is scanned in linear time)
 * and interprets complete lines straight out of the caller's buffer.  Only a
 * line cut by the end of a chunk is copied, into p->line.  Field values go
 * into the data / event type / last event ID buffers the standard describes;
 * they are reused from event to event, so a steady stream allocates nothing.
 *
 * Spec points and the choices made where it leaves room:
 *  - "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE
 *    FEED (CRLF) character pair, a single U+000A LINE FEED (LF) character,
 *    or a single U+000D CARRIAGE RETURN (CR) character."  A CR ends its line
 *    at once; if the next byte, possibly in the next chunk, is LF it is
 *    swallowed as the rest of that terminator (p->cr).
 *  - An event's end offset is taken just past the CR of a CRLF terminator,
 *    so that it does not depend on whether the LF has arrived yet: offsets
 *    stay identical however the stream is split, and dispatch never waits
 *    for the next chunk.  The LF then counts towards the following bytes.
 *  - "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark";
 *    a BOM split over chunks is recognised; a partial BOM is line content.
 *    Other bytes are passed through undecoded: the decoders above parse the
 *    data as JSON, which validates UTF-8 itself.
 *  - "If the line starts with a U+003A COLON character (:) - Ignore the
 *    line."  "If the line contains a U+003A COLON character - Collect the
 *    characters on the line before the first U+003A COLON character, and let
 *    field be that string.  Collect the characters on the line after the
 *    first U+003A COLON character, and let value be that string.  If value
 *    starts with a U+0020 SPACE character, remove it from value."  A line
 *    without colon is a field name with an empty value.
 *  - "If the data buffer is an empty string, set the data buffer and the
 *    event type buffer to the empty string and return."  "If the field value
 *    does not contain U+0000 NULL, then set the last event ID buffer to the
 *    field value."  retry: "If the field value consists of only ASCII
 *    digits" - an empty value is ignored, like browsers do; large values
 *    saturate.
 *  - "If the file ends in the middle of an event, before the final empty
 *    line, the incomplete event is not dispatched."
 *
 * Size bound: the bytes of an event's lines (terminators not counted, partial
 * lines counted as they arrive) are summed in p->event_bytes.  Past
 * max_event_size the event is dropped: buffers are emptied and the parser
 * only watches for the blank line that ends it.  Every buffer is clamped to
 * max_event_size + 1 bytes.  Whether an event overflows depends only on its
 * bytes, not on how they were chunked.
 */
#include "sse.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_BOM_DONE 4u

struct sse_buf {
	char *p;
	size_t len;
	size_t cap;
};

struct sse_parser {
	void (*on_event)(void *ud, const struct sse_event *ev);
	void *ud;
	size_t max;		/* max_event_size */
	struct sse_buf line;	/* a line cut by the end of a chunk */
	struct sse_buf data;	/* data buffer */
	struct sse_buf type;	/* event type buffer */
	struct sse_buf id;	/* last event ID buffer */
	int64_t retry;
	uint64_t offset;	/* stream offset of the next byte fed */
	uint64_t boundary;	/* offset past the last blank line */
	size_t event_bytes;	/* line bytes of the current event so far */
	size_t line_len;	/* bytes of the current, unterminated line */
	unsigned bom;		/* BOM bytes matched, or SSE_BOM_DONE */
	bool cr;		/* a CR ended the last line: swallow one LF */
	bool skipping;		/* current event is oversized */
	bool dirty;		/* a field line was seen in this event */
	bool finished;
	struct sse_stats stats;
};

static const unsigned char sse_bom[3] = { 0xEF, 0xBB, 0xBF };

static void *
sse_xrealloc(void *ptr, size_t n)
{
	void *q = realloc(ptr, n);

	if (q == NULL) {
		fprintf(stderr, "sse: out of memory (%zu bytes)\n", n);
		abort();
	}
	return q;
}

/*
 * Append n bytes and keep the buffer NUL-terminated.  The caller has checked
 * that len + n <= p->max, so capacity never exceeds max + 1.
 */
static void
sse_buf_put(const struct sse_parser *p, struct sse_buf *b, const char *s,
    size_t n)
{
	size_t need = b->len + n + 1;

	if (need > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;

		if (cap < need)
			cap = need;
		if (cap > p->max + 1)
			cap = p->max + 1;
		if (cap < need)		/* not reached: callers check */
			cap = need;
		b->p = sse_xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sse_buf_set(const struct sse_parser *p, struct sse_buf *b, const char *s,
    size_t n)
{
	b->len = 0;
	sse_buf_put(p, b, s, n);
}

/* Count n more bytes of the current event; false once it is oversized. */
static bool
sse_account(struct sse_parser *p, size_t n)
{
	if (p->skipping)
		return false;
	if (n > p->max - p->event_bytes) {
		p->skipping = true;
		p->stats.oversized++;
		p->data.len = 0;
		p->type.len = 0;
		p->line.len = 0;
		return false;
	}
	p->event_bytes += n;
	return true;
}

static void
sse_dispatch(struct sse_parser *p, uint64_t end)
{
	struct sse_event ev;

	if (p->data.len == 0)
		return;
	p->data.len--;			/* the LF after the last data line */
	p->data.p[p->data.len] = '\0';
	memset(&ev, 0, sizeof(ev));
	if (p->type.len > 0) {
		ev.type = p->type.p;
		ev.type_len = p->type.len;
	} else {
		ev.type = "message";
		ev.type_len = 7;
	}
	ev.data = p->data.p;
	ev.data_len = p->data.len;
	ev.id = p->id.len > 0 ? p->id.p : "";
	ev.id_len = p->id.len;
	ev.retry = p->retry;
	ev.end = end;
	p->stats.events++;
	p->on_event(p->ud, &ev);
}

static void
sse_blank_line(struct sse_parser *p, uint64_t end)
{
	if (!p->skipping)
		sse_dispatch(p, end);
	p->data.len = 0;
	p->type.len = 0;
	p->skipping = false;
	p->dirty = false;
	p->event_bytes = 0;
	p->boundary = end;
}

static void
sse_retry(struct sse_parser *p, const char *v, size_t n)
{
	int64_t ms = 0;
	size_t i;

	if (n == 0)
		return;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return;
		if (ms <= (INT64_MAX - 9) / 10)
			ms = ms * 10 + (v[i] - '0');
		else
			ms = INT64_MAX;
	}
	p->retry = ms;
}

static void
sse_field(struct sse_parser *p, const char *name, size_t nlen, const char *v,
    size_t vlen)
{
	if (nlen == 4 && memcmp(name, "data", 4) == 0) {
		sse_buf_put(p, &p->data, v, vlen);
		sse_buf_put(p, &p->data, "\n", 1);
	} else if (nlen == 5 && memcmp(name, "event", 5) == 0) {
		sse_buf_set(p, &p->type, v, vlen);
	} else if (nlen == 2 && memcmp(name, "id", 2) == 0) {
		if (memchr(v, '\0', vlen) == NULL)
			sse_buf_set(p, &p->id, v, vlen);
	} else if (nlen == 5 && memcmp(name, "retry", 5) == 0) {
		sse_retry(p, v, vlen);
	}
	/* "Otherwise: The field is ignored." */
}

/* Interpret one complete, non-empty line of an event within bounds. */
static void
sse_line(struct sse_parser *p, const char *s, size_t n)
{
	const char *colon;
	const char *v = "";
	size_t nlen = n, vlen = 0;

	if (s[0] == ':')
		return;
	p->dirty = true;
	colon = memchr(s, ':', n);
	if (colon != NULL) {
		nlen = (size_t)(colon - s);
		v = colon + 1;
		vlen = n - nlen - 1;
		if (vlen > 0 && v[0] == ' ') {
			v++;
			vlen--;
		}
	}
	sse_field(p, s, nlen, v, vlen);
}

/*
 * A line terminator was found: s[0..n) is the tail of the current line (the
 * rest, if any, is in p->line) and end the offset past the terminator.
 */
static void
sse_end_line(struct sse_parser *p, const char *s, size_t n, uint64_t end)
{
	bool carried = p->line_len > 0;

	if (!carried && n == 0) {
		sse_blank_line(p, end);
		return;
	}
	p->line_len = 0;
	if (!sse_account(p, n)) {
		p->line.len = 0;
		return;
	}
	if (carried) {
		sse_buf_put(p, &p->line, s, n);
		sse_line(p, p->line.p, p->line.len);
		p->line.len = 0;
	} else {
		sse_line(p, s, n);
	}
}

/* The chunk ended inside a line: keep its bytes for the next feed. */
static void
sse_partial(struct sse_parser *p, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (sse_account(p, n))
		sse_buf_put(p, &p->line, s, n);
	p->line_len += n;
}

/* Strip a leading BOM, which may arrive split over several feeds. */
static size_t
sse_skip_bom(struct sse_parser *p, const char *buf, size_t len)
{
	size_t i = 0;

	while (p->bom < 3 && i < len) {
		if ((unsigned char)buf[i] != sse_bom[p->bom]) {
			/* Not a BOM: what matched so far is line content. */
			sse_partial(p, (const char *)sse_bom, p->bom);
			p->bom = SSE_BOM_DONE;
			return i;
		}
		p->bom++;
		i++;
	}
	if (p->bom == 3)
		p->bom = SSE_BOM_DONE;
	return i;
}

static size_t
sse_next(const char *buf, size_t from, size_t len, char c)
{
	const char *q = memchr(buf + from, c, len - from);

	return q != NULL ? (size_t)(q - buf) : len;
}

int
sse_feed(struct sse_parser *p, const char *buf, size_t len)
{
	uint64_t base = p->offset;
	size_t i = 0, lf = 0, cr = 0, eol;
	bool lf_ok = false, cr_ok = false;

	if (p->finished)
		return -1;
	p->offset += len;
	p->stats.bytes += len;
	if (p->bom != SSE_BOM_DONE)
		i = sse_skip_bom(p, buf, len);
	if (p->cr && i < len) {
		p->cr = false;
		if (buf[i] == '\n')
			i++;
	}
	while (i < len) {
		if (!lf_ok || lf < i) {
			lf = sse_next(buf, i, len, '\n');
			lf_ok = true;
		}
		if (!cr_ok || cr < i) {
			cr = sse_next(buf, i, len, '\r');
			cr_ok = true;
		}
		eol = lf < cr ? lf : cr;
		if (eol == len) {
			sse_partial(p, buf + i, len - i);
			break;
		}
		sse_end_line(p, buf + i, eol - i, base + eol + 1);
		i = eol + 1;
		if (buf[eol] == '\r') {
			if (i == len)
				p->cr = true;
			else if (buf[i] == '\n')
				i++;
		}
	}
	return 0;
}

int
sse_finish(struct sse_parser *p)
{
	bool partial;

	if (p->finished)
		return 0;
	p->finished = true;
	partial = p->skipping || p->dirty ||
	    (p->bom > 0 && p->bom < 3) ||
	    (p->line_len > 0 && !(p->line.len > 0 && p->line.p[0] == ':'));
	p->data.len = 0;
	p->type.len = 0;
	p->line.len = 0;
	p->line_len = 0;
	return partial ? 1 : 0;
}

struct sse_parser *
sse_new(size_t max_event_size,
    void (*on_event)(void *ud, const struct sse_event *ev), void *ud)
{
	struct sse_parser *p = sse_xrealloc(NULL, sizeof(*p));

	memset(p, 0, sizeof(*p));
	p->on_event = on_event;
	p->ud = ud;
	p->max = max_event_size > 0 ? max_event_size : 1;
	p->retry = -1;
	return p;
}

void
sse_free(struct sse_parser *p)
{
	if (p == NULL)
		return;
	free(p->line.p);
	free(p->data.p);
	free(p->type.p);
	free(p->id.p);
	free(p);
}

void
sse_stats(const struct sse_parser *p, struct sse_stats *st)
{
	*st = p->stats;
}

uint64_t
sse_boundary(const struct sse_parser *p)
{
	return p->boundary;
}

size_t
sse_memory(const struct sse_parser *p)
{
	return p->line.cap + p->data.cap + p->type.cap + p->id.cap;
}
