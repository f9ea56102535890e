/*
 * jsonv.c - in-place reading of validated JSON text (see jsonv.h).
 *
 * Everything here trusts the text to be valid JSON (jsonscan_validate()
 * ran on it), so a scan only needs to find where values end: strings end
 * at the first quote not escaped (memchr, then the backslashes before it
 * are counted), containers at the bracket that closes the depth they
 * opened, scalars at the next delimiter.  Out-of-range positions are still
 * checked, so a wrong caller reads "absent" rather than past the text.
 */
#include "jsonv.h"

#include <stdlib.h>
#include <string.h>

static inline bool
jv_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t
jv_ws(const char *s, size_t n, size_t i)
{
	while (i < n && jv_blank(s[i]))
		i++;
	return i;
}

/* s[i] == '"': the index just past the closing quote (n if none). */
static size_t
jv_skip_string(const char *s, size_t n, size_t i)
{
	size_t stop = i + 1 + 24 < n ? i + 1 + 24 : n;

	/* most strings are short keys and values: a plain loop first */
	for (i++; i < stop; i++) {
		if (s[i] == '"')
			return i + 1;
		if (s[i] == '\\')
			i++;
	}
	if (i >= n)
		return n;
	/* long ones: memchr to each quote, then count the backslashes
	 * before it (i is never inside an escape here) */
	for (; i < n;) {
		const char *q = memchr(s + i, '"', n - i);
		size_t j, bs = 0;

		if (q == NULL)
			return n;
		j = (size_t)(q - s);
		while (j - bs > i && s[j - bs - 1] == '\\')
			bs++;
		if (bs % 2 == 0)
			return j + 1;
		i = j + 1;
	}
	return n;
}

/* The index just past the value that starts at s[i]. */
static size_t
jv_skip(const char *s, size_t n, size_t i)
{
	int depth = 0;

	if (i >= n)
		return n;
	if (s[i] == '"')
		return jv_skip_string(s, n, i);
	if (s[i] != '{' && s[i] != '[') {
		while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
		    !jv_blank(s[i]))
			i++;
		return i;
	}
	while (i < n) {
		char c = s[i];

		if (c == '"') {
			i = jv_skip_string(s, n, i);
			continue;
		}
		if (c == '{' || c == '[')
			depth++;
		else if ((c == '}' || c == ']') && --depth == 0)
			return i + 1;
		i++;
	}
	return n;
}

struct jv
jv_text(const char *p, size_t n)
{
	size_t b = jv_ws(p, n, 0), e = n;

	while (e > b && jv_blank(p[e - 1]))
		e--;
	return e > b ? (struct jv){ p + b, e - b } : JV_ABSENT;
}

/* Whether the key literal s[kb - 1 .. ke) (quotes included) is key. */
static bool
jv_key_is(const char *s, size_t kb, size_t ke, const char *key, size_t klen)
{
	struct jv lit = { s + kb - 1, ke - kb + 1 };
	char buf[64];

	if (ke - 1 - kb == klen && memcmp(s + kb, key, klen) == 0)
		return true;
	/* an escaped spelling of the same key */
	if (memchr(s + kb, '\\', ke - 1 - kb) == NULL || ke - 1 - kb > sizeof(buf))
		return false;
	return jv_str_decode(lit, buf) == klen && memcmp(buf, key, klen) == 0;
}

void
jv_get_many(struct jv obj, const char *const *keys, size_t nkeys,
    struct jv *out)
{
	const char *s = obj.p;
	size_t n = obj.n, i, k, klens[16];

	for (k = 0; k < nkeys; k++)
		out[k] = JV_ABSENT;
	if (!jv_is_object(obj) || nkeys > 16)
		return;
	for (k = 0; k < nkeys; k++)
		klens[k] = strlen(keys[k]);
	for (i = 1;;) {
		size_t kb, ke, vb, ve;

		i = jv_ws(s, n, i);
		if (i >= n || s[i] != '"')
			return;
		kb = i + 1;
		ke = jv_skip_string(s, n, i);
		i = jv_ws(s, n, ke);
		if (i >= n || s[i] != ':')
			return;
		vb = jv_ws(s, n, i + 1);
		ve = jv_skip(s, n, vb);
		for (k = 0; k < nkeys; k++)
			if (jv_key_is(s, kb, ke, keys[k], klens[k]))
				out[k] = (struct jv){ s + vb, ve - vb };
		i = jv_ws(s, n, ve);
		if (i >= n || s[i] != ',')
			return;
		i++;
	}
}

struct jv
jv_get(struct jv obj, const char *key)
{
	struct jv v;

	jv_get_many(obj, &key, 1, &v);
	return v;
}

bool
jv_next(struct jv arr, size_t *pos, struct jv *item)
{
	const char *s = arr.p;
	size_t n = arr.n, i = *pos, e;

	if (!jv_is_array(arr))
		return false;
	if (i == 0)
		i = 1;
	i = jv_ws(s, n, i);
	if (i < n && s[i] == ',')
		i = jv_ws(s, n, i + 1);
	if (i >= n || s[i] == ']')
		return false;
	e = jv_skip(s, n, i);
	*item = (struct jv){ s + i, e - i };
	*pos = e;
	return true;
}

size_t
jv_count(struct jv arr)
{
	struct jv item;
	size_t pos = 0, k = 0;

	while (jv_next(arr, &pos, &item))
		k++;
	return k;
}

bool
jv_int(struct jv v, int64_t *out)
{
	uint64_t acc = 0, lim;
	size_t i = 0;
	bool neg;

	if (jv_kind(v) != JV_NUMBER)
		return false;
	neg = v.p[0] == '-';
	if (neg)
		i++;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (i >= v.n)
		return false;
	for (; i < v.n; i++) {
		unsigned d;

		if (v.p[i] < '0' || v.p[i] > '9')
			return false;	/* '.', 'e', 'E': a real */
		d = (unsigned)(v.p[i] - '0');
		if (acc > (lim - d) / 10)
			return false;
		acc = acc * 10 + d;
	}
	*out = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN :
	    -(int64_t)acc) : (int64_t)acc;
	return true;
}

static int
jv_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

static unsigned
jv_hex4(const char *p)
{
	return (unsigned)(jv_hex(p[0]) << 12 | jv_hex(p[1]) << 8 |
	    jv_hex(p[2]) << 4 | jv_hex(p[3]));
}

static size_t
jv_utf8(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t
jv_str_decode(struct jv v, char *out)
{
	const char *s = v.p, *end, *bs;
	size_t o = 0;

	if (!jv_is_string(v) || v.n < 2)
		return 0;
	end = s + v.n - 1;
	for (s++; s < end;) {
		bs = memchr(s, '\\', (size_t)(end - s));
		if (bs == NULL)
			bs = end;
		memcpy(out + o, s, (size_t)(bs - s));
		o += (size_t)(bs - s);
		if (bs >= end)
			break;
		s = bs + 1;
		switch (*s) {
		case 'b': out[o++] = '\b'; s++; break;
		case 'f': out[o++] = '\f'; s++; break;
		case 'n': out[o++] = '\n'; s++; break;
		case 'r': out[o++] = '\r'; s++; break;
		case 't': out[o++] = '\t'; s++; break;
		case 'u': {
			unsigned cp = jv_hex4(s + 1), lo;

			s += 5;
			if (cp >= 0xd800 && cp <= 0xdbff && end - s >= 6 &&
			    s[0] == '\\' && s[1] == 'u' &&
			    (lo = jv_hex4(s + 2)) >= 0xdc00 && lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				s += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				cp = 0xfffd;	/* a lone surrogate */
			}
			/* 6 or 12 bytes of escape make at most 3 or 4 */
			o += jv_utf8(out + o, cp);
			break;
		}
		default:		/* \" \\ \/ */
			out[o++] = *s++;
			break;
		}
	}
	return o;
}

bool
jv_str_raw(struct jv v, const char **p, size_t *n)
{
	if (!jv_is_string(v) || memchr(v.p + 1, '\\', v.n - 2) != NULL)
		return false;
	*p = v.p + 1;
	*n = v.n - 2;
	return true;
}

bool
jv_str_eq(struct jv v, const char *s)
{
	size_t len = strlen(s), n;
	const char *p;
	char buf[128];

	if (jv_str_raw(v, &p, &n))
		return n == len && memcmp(p, s, n) == 0;
	if (!jv_is_string(v) || jv_str_len_max(v) > sizeof(buf))
		return false;
	return jv_str_decode(v, buf) == len && memcmp(buf, s, len) == 0;
}

char *
jv_str_dup(struct jv v, size_t *len)
{
	char *out;
	size_t n;

	if (!jv_is_string(v))
		return NULL;
	if ((out = malloc(jv_str_len_max(v) + 1)) == NULL)
		abort();
	n = jv_str_decode(v, out);
	out[n] = '\0';
	if (len != NULL)
		*len = n;
	return out;
}

size_t
jv_minify(struct jv v, char *out)
{
	const char *s = v.p;
	size_t i = 0, o = 0, e;

	while (i < v.n) {
		if (s[i] == '"') {
			e = jv_skip_string(s, v.n, i);
			memcpy(out + o, s + i, e - i);
			o += e - i;
			i = e;
		} else if (jv_blank(s[i])) {
			i++;
		} else {
			out[o++] = s[i++];
		}
	}
	return o;
}
