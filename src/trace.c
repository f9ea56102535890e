/*
 * trace.c - trace ids: validation, traceparent, UUIDv7, and the id maps.
 *
 * The id maps answer "which trace did this tool call id come from?" for
 * calls whose history carries neither a signature nor tagged arguments
 * (streamed tool-call-only answers cannot be tagged).  One hash table with
 * chaining, under one mutex: lookups happen once per request that has tool
 * history, inserts once per tool call id or response id the proxy sees.
 * Entries live in a FIFO ring as well: when the map is full the oldest entry
 * goes, and an entry past its ttl is treated as absent.  Memory is bounded
 * by max_entries * (key + trace) bytes.
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace.h"

const char *const trace_source_names[] = {
	[TRACE_SRC_GENERATED] = "generated",
	[TRACE_SRC_HEADER] = "header",
	[TRACE_SRC_SIGNATURE] = "signature",
	[TRACE_SRC_TOOL_ARGS] = "tool_args",
	[TRACE_SRC_CALL_ID] = "call_id",
	[TRACE_SRC_PREVIOUS_RESPONSE] = "previous_response_id",
};

bool
trace_id_valid(const char *s, size_t len)
{
	if (len == 0 || len > TRACE_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
		    c == '-'))
			return false;
	}
	return true;
}

static bool
trace_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/* W3C Trace Context: version "00"-trace-id-parent-id-flags, lowercase hex. */
int
trace_from_traceparent(const char *v, char *out)
{
	size_t n = strlen(v);

	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	if (n < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
	    !trace_hex(v, 2) || !trace_hex(v + 3, 32) || !trace_hex(v + 36, 16) ||
	    !trace_hex(v + 53, 2) || memcmp(v, "ff", 2) == 0 ||
	    (memcmp(v, "00", 2) == 0 && n != 55))
		return -1;
	if (strspn(v + 3, "0") >= 32)
		return -1;		/* all-zero trace id is invalid */
	memcpy(out, v + 3, 32);
	out[32] = '\0';
	return 0;
}

void
trace_hex_text(const uint8_t *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		*out++ = hex[b[i] >> 4];
		*out++ = hex[b[i] & 15];
	}
}

void
trace_uuid_text(const uint8_t b[16], char *out)
{
	trace_hex_text(b, 4, out);
	out[8] = '-';
	trace_hex_text(b + 4, 2, out + 9);
	out[13] = '-';
	trace_hex_text(b + 6, 2, out + 14);
	out[18] = '-';
	trace_hex_text(b + 8, 2, out + 19);
	out[23] = '-';
	trace_hex_text(b + 10, 6, out + 24);
}

void
trace_new_uuid7(int64_t ms, char *out)
{
	uint8_t b[16];

	gnutls_rnd(GNUTLS_RND_NONCE, b, sizeof(b));
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
	trace_uuid_text(b, out);
	out[36] = '\0';
}

/* --- the id maps --------------------------------------------------------- */

struct trace_entry {
	struct trace_entry *next;	/* hash chain */
	int64_t expires;		/* monotonic ms */
	char trace[TRACE_ID_MAX + 1];
	char key[];			/* NUL-terminated */
};

static struct {
	pthread_mutex_t lock;
	struct trace_entry **buckets;
	size_t nbuckets;
	struct trace_entry **fifo;	/* insertion order, for eviction */
	size_t max, head, count;
	unsigned ttl_ms;
} tm = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int64_t
trace_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t
trace_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return (size_t)h;
}

int
trace_map_init(size_t max_entries, unsigned ttl_ms)
{
	if (max_entries == 0)
		max_entries = 1;
	tm.max = max_entries;
	tm.ttl_ms = ttl_ms;
	tm.nbuckets = 1;
	while (tm.nbuckets < max_entries)
		tm.nbuckets <<= 1;
	tm.buckets = calloc(tm.nbuckets, sizeof(*tm.buckets));
	tm.fifo = calloc(max_entries, sizeof(*tm.fifo));
	tm.head = tm.count = 0;
	return tm.buckets && tm.fifo ? 0 : -1;
}

/* Unlinks e from its chain; lock held. */
static void
trace_unlink(struct trace_entry *e)
{
	struct trace_entry **pp = &tm.buckets[trace_hash(e->key, strlen(e->key)) &
	    (tm.nbuckets - 1)];

	for (; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			return;
		}
	}
}

void
trace_map_free(void)
{
	for (size_t i = 0; i < tm.count; i++)
		free(tm.fifo[(tm.head + i) % tm.max]);
	free(tm.fifo);
	free(tm.buckets);
	tm.fifo = NULL;
	tm.buckets = NULL;
	tm.count = tm.head = 0;
}

static struct trace_entry *
trace_find(const char *key, size_t klen)
{
	struct trace_entry *e = tm.buckets[trace_hash(key, klen) & (tm.nbuckets - 1)];

	for (; e != NULL; e = e->next) {
		if (strlen(e->key) == klen && memcmp(e->key, key, klen) == 0)
			return e;
	}
	return NULL;
}

void
trace_map_put(const char *key, size_t klen, const char *trace)
{
	struct trace_entry *e;

	if (tm.buckets == NULL || klen == 0 || klen > 512)
		return;
	pthread_mutex_lock(&tm.lock);
	if ((e = trace_find(key, klen)) != NULL) {
		snprintf(e->trace, sizeof(e->trace), "%s", trace);
		e->expires = trace_now_ms() + tm.ttl_ms;
		pthread_mutex_unlock(&tm.lock);
		return;
	}
	if (tm.count == tm.max) {		/* evict the oldest */
		struct trace_entry *old = tm.fifo[tm.head];
		trace_unlink(old);
		free(old);
		tm.head = (tm.head + 1) % tm.max;
		tm.count--;
	}
	e = malloc(sizeof(*e) + klen + 1);
	if (e == NULL)
		abort();
	memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	snprintf(e->trace, sizeof(e->trace), "%s", trace);
	e->expires = trace_now_ms() + tm.ttl_ms;
	size_t b = trace_hash(key, klen) & (tm.nbuckets - 1);
	e->next = tm.buckets[b];
	tm.buckets[b] = e;
	tm.fifo[(tm.head + tm.count) % tm.max] = e;
	tm.count++;
	pthread_mutex_unlock(&tm.lock);
}

bool
trace_map_get(const char *key, char *out)
{
	struct trace_entry *e;
	bool found = false;

	if (tm.buckets == NULL)
		return false;
	pthread_mutex_lock(&tm.lock);
	e = trace_find(key, strlen(key));
	if (e != NULL && e->expires > trace_now_ms()) {
		memcpy(out, e->trace, sizeof(e->trace));
		found = true;
	}
	pthread_mutex_unlock(&tm.lock);
	return found;
}

size_t
trace_map_size(void)
{
	size_t n;

	pthread_mutex_lock(&tm.lock);
	n = tm.count;
	pthread_mutex_unlock(&tm.lock);
	return n;
}
