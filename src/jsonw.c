/*
 * jsonw.c - the JSON writer (see jsonw.h).
 *
 * Strings are copied in runs between the bytes that need an escape, found
 * with a 256-entry table; integers are formatted by hand.  U+2028 and
 * U+2029 are escaped although RFC 8259 does not require it, so that a line
 * can be embedded in JavaScript as is.  The UTF-8 check is the one jansson
 * applies in json_stringn(), which the events were built with before: a
 * string that fails it has its non-ASCII bytes replaced, the same as then.
 */
#include <stdint.h>
#include <string.h>

#include "jsonw.h"

#include "jsonscan.h"

/* 1: escape (control, '"', '\\'); 2: 0xe2, the lead of U+2028/U+2029;
 * 3: a byte >= 0x80 of a string that is not valid UTF-8. */
static const unsigned char jsonw_special[256] = {
	[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0xe2] = 2,
};
static const unsigned char jsonw_special_ascii[256] = {
	[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 3,
};

void
jsonw_lit(struct buf *b, const char *lit)
{
	buf_append(b, lit, strlen(lit));
}

void
jsonw_elem(struct buf *b)
{
	char last = b->len > 0 ? b->data[b->len - 1] : '[';

	if (last != '{' && last != '[')
		buf_append(b, ",", 1);
}

void
jsonw_key(struct buf *b, const char *key)
{
	size_t n = strlen(key);
	char *p;

	jsonw_elem(b);
	buf_reserve(b, n + 3);
	p = b->data + b->len;
	p[0] = '"';
	memcpy(p + 1, key, n);
	p[n + 1] = '"';
	p[n + 2] = ':';
	b->len += n + 3;
	b->data[b->len] = '\0';
}

int
jsonw_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len;

	while (i < n) {
		if (p[i] < 0x80) {
			uint64_t w;

			/* ASCII eight bytes at a time */
			for (i++; n - i >= 8; i += 8) {
				memcpy(&w, p + i, 8);
				if (w & 0x8080808080808080ULL)
					break;
			}
			continue;
		}
		if ((len = jsonscan_utf8_len(p + i, n - i)) == 0)
			return 0;
		i += len;
	}
	return 1;
}

/* The escape of byte c (< 0x20, '"' or '\\') into out; its length. */
static size_t
jsonw_escape(unsigned char c, char *out)
{
	static const char hex[] = "0123456789abcdef";

	out[0] = '\\';
	switch (c) {
	case '"': out[1] = '"'; return 2;
	case '\\': out[1] = '\\'; return 2;
	case '\b': out[1] = 'b'; return 2;
	case '\f': out[1] = 'f'; return 2;
	case '\n': out[1] = 'n'; return 2;
	case '\r': out[1] = 'r'; return 2;
	case '\t': out[1] = 't'; return 2;
	}
	memcpy(out + 1, "u00", 3);
	out[4] = hex[c >> 4];
	out[5] = hex[c & 15];
	return 6;
}

void
jsonw_str(struct buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *tbl = jsonw_utf8_valid(s, n) ? jsonw_special :
	    jsonw_special_ascii;
	size_t i = 0, start;
	char *o;

	buf_reserve(b, n + 2);
	o = b->data + b->len;
	*o++ = '"';
	for (;;) {
		for (start = i; i < n && !tbl[p[i]]; i++)
			;
		memcpy(o, s + start, i - start);
		o += i - start;
		if (i >= n)
			break;
		/* room for the longest escape, the rest and the quote */
		b->len = (size_t)(o - b->data);
		buf_reserve(b, 6 + (n - i) + 1);
		o = b->data + b->len;
		if (tbl[p[i]] == 3) {		/* invalid UTF-8: '?' */
			*o++ = '?';
			i++;
		} else if (tbl[p[i]] == 2) {
			/* U+2028 is e2 80 a8, U+2029 e2 80 a9 */
			if (n - i >= 3 && p[i + 1] == 0x80 &&
			    (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
				memcpy(o, p[i + 2] == 0xa8 ? "\\u2028" :
				    "\\u2029", 6);
				o += 6;
				i += 3;
			} else {
				*o++ = (char)p[i++];
			}
		} else {
			o += jsonw_escape(p[i++], o);
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
}

void
jsonw_cstr(struct buf *b, const char *s)
{
	if (s == NULL)
		jsonw_lit(b, "null");
	else
		jsonw_str(b, s, strlen(s));
}

/* Decimal digits of v into the end of out[20]; returns the first. */
static char *
jsonw_utoa(uint64_t v, char *end)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	return end;
}

void
jsonw_int(struct buf *b, int64_t v)
{
	char out[24], *end = out + sizeof(out), *p;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	p = jsonw_utoa(u, end);
	if (v < 0)
		*--p = '-';
	buf_append(b, p, (size_t)(end - p));
}

void
jsonw_bool(struct buf *b, int v)
{
	if (v)
		buf_append(b, "true", 4);
	else
		buf_append(b, "false", 5);
}

void
jsonw_milli(struct buf *b, int64_t k)
{
	char out[48], *end = out + sizeof(out), *p;
	uint64_t u = k < 0 ? (uint64_t)0 - (uint64_t)k : (uint64_t)k;
	int dropped = 0, nf = 3;
	uint64_t scale = 1000;

	/* 15 significant digits at most, rounded half up */
	while (u >= 1000000000000000ULL) {
		u = (u + 5) / 10;
		dropped++;
	}
	if (dropped > 3) {		/* an integer: u followed by zeros */
		end -= 2;
		memcpy(end, ".0", 2);
		for (; dropped > 3; dropped--)
			*--end = '0';
		scale = 1;
		nf = 0;
	} else {
		for (; dropped > 0; dropped--) {
			scale /= 10;
			nf--;
		}
	}
	uint64_t ip = u / scale, fp = u % scale;

	if (scale > 1) {
		while (nf > 0 && fp % 10 == 0) {
			fp /= 10;
			nf--;
		}
		if (nf == 0) {
			end -= 2;
			memcpy(end, ".0", 2);
		} else {
			for (int i = 0; i < nf; i++) {
				*--end = (char)('0' + fp % 10);
				fp /= 10;
			}
			*--end = '.';
		}
	} else if (nf == 0 && end == out + sizeof(out)) {
		end -= 2;
		memcpy(end, ".0", 2);
	}
	p = jsonw_utoa(ip, end);
	if (k < 0)
		*--p = '-';
	buf_append(b, p, (size_t)(out + sizeof(out) - p));
}

void
jsonw_raw(struct buf *b, const char *s, size_t n)
{
	size_t i = 0, j, k, bs;
	const char *q;
	char *o;

	buf_reserve(b, n);		/* the copy is never longer */
	o = b->data + b->len;
	while (i < n) {
		char c = s[i];

		if (c == '"') {		/* the whole string at once */
			for (j = i + 1;; j = k + 1) {
				q = memchr(s + j, '"', n - j);
				if (q == NULL) {
					j = n;
					break;
				}
				k = (size_t)(q - s);
				for (bs = 0; k - bs > i + 1 &&
				    s[k - bs - 1] == '\\'; bs++)
					;
				if (bs % 2 == 0) {
					j = k + 1;
					break;
				}
			}
			memcpy(o, s + i, j - i);
			o += j - i;
			i = j;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			i++;
		} else {
			*o++ = c;
			i++;
		}
	}
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
}
