/*
 * jsonscan.c - JSON text without a tree (see jsonscan.h).
 *
 * The request path needs three things from a request body: is it valid
 * JSON, where is the top-level "model" value, and what does it say.  A
 * jansson tree costs an allocation per value (about 20% of the proxy's CPU
 * per small request when it was used here); these single forward passes
 * allocate nothing.  Validation follows RFC 8259 strictly, including UTF-8
 * (RFC 3629) inside strings; member lookup assumes validated input.
 * The event dispatcher reads the same body later with the in-place readers
 * at the end of this file (member and item iteration, decoded key
 * comparison, string decoding), again without a tree.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hexdig.h"
#include "jsonscan.h"

static size_t
jsonscan_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* s[i] == '"'; returns the index just past the closing quote, or n. */
static size_t
jsonscan_string(const char *s, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		const char *q = memchr(s + i, '"', n - i);

		if (q == NULL)
			return n;
		/* The quote ends the string unless an odd run of backslashes
		 * precedes it. */
		size_t j = (size_t)(q - s), bs = 0;
		while (j - bs > i && s[j - bs - 1] == '\\')
			bs++;
		i = j;
		if (bs % 2 == 0)
			return j + 1;
	}
	return n;
}

/* Returns the index just past the value starting at s[i]. */
static size_t
jsonscan_value(const char *s, size_t n, size_t i)
{
	int depth = 0;

	if (i >= n)
		return n;
	if (s[i] == '"')
		return jsonscan_string(s, n, i);
	if (s[i] != '{' && s[i] != '[') {
		while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
		    s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			i++;
		return i;
	}
	while (i < n) {
		char c = s[i];

		if (c == '"') {
			i = jsonscan_string(s, n, i);
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


int
jsonscan_next_item(const char *s, size_t n, size_t *pos, size_t *vbeg,
    size_t *vend)
{
	size_t i = *pos;

	if (i == 0) {
		i = jsonscan_ws(s, n, 0);
		if (i >= n || s[i] != '[')
			return -1;
		i++;
	}
	i = jsonscan_ws(s, n, i);
	if (i < n && s[i] == ',')
		i = jsonscan_ws(s, n, i + 1);
	if (i >= n || s[i] == ']')
		return -1;
	*vbeg = i;
	*vend = jsonscan_value(s, n, i);
	*pos = *vend;
	return 0;
}

/* --- validation --------------------------------------------------------- */

struct jsonscan_v {
	const unsigned char *s;
	size_t n, i;
	const char *err;
};

static int
jsonscan_fail(struct jsonscan_v *v, const char *err)
{
	if (v->err == NULL)
		v->err = err;
	return -1;
}

static void
jsonscan_vws(struct jsonscan_v *v)
{
	v->i = jsonscan_ws((const char *)v->s, v->n, v->i);
}

size_t
jsonscan_utf8_len(const unsigned char *p, size_t left)
{
	unsigned c = p[0];
	size_t len;
	uint32_t cp;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (left < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* One UTF-8 sequence starting at v->i (a byte >= 0x80). */
static int
jsonscan_utf8(struct jsonscan_v *v)
{
	size_t len = jsonscan_utf8_len(v->s + v->i, v->n - v->i);

	if (len == 0)
		return jsonscan_fail(v, "invalid UTF-8");
	v->i += len;
	return 0;
}

static int
jsonscan_hex4(struct jsonscan_v *v)
{
	if (v->n - v->i < 4)
		return jsonscan_fail(v, "invalid \\u escape");
	for (int k = 0; k < 4; k++) {
		if (hexdig_value((unsigned char)v->s[v->i + (size_t)k]) < 0)
			return jsonscan_fail(v, "invalid \\u escape");
	}
	v->i += 4;
	return 0;
}

/* Bytes that end a run of plain string content: '"', '\\', controls, and
 * every byte >= 0x80 (UTF-8 is checked sequence by sequence). */
static const unsigned char jsonscan_special[256] = {
	[0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1,
};

/*
 * Whether one of the 8 bytes at p is special (above), for long runs of
 * plain text: a byte equal to '"' or '\\' (the has-zero test on w xor the
 * byte), below 0x20 (the has-less test) or with its top bit set.  Exact:
 * the tests give no false positives for bytes below 0x80.
 */
static inline bool
jsonscan_word_special(const unsigned char *p)
{
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t highs = 0x8080808080808080ULL;
	uint64_t w, q, b;

	memcpy(&w, p, sizeof(w));
	q = w ^ (ones * '"');
	b = w ^ (ones * '\\');
	return ((((q - ones) & ~q) | ((b - ones) & ~b) |
	    ((w - ones * 0x20) & ~w) | w) & highs) != 0;
}

static int
jsonscan_vstring(struct jsonscan_v *v)
{
	v->i++;				/* opening quote */
	while (v->i < v->n) {
		unsigned char c = v->s[v->i];

		if (!jsonscan_special[c]) {	/* fast path: plain ASCII */
			const unsigned char *p = v->s + v->i + 1, *end = v->s + v->n;
			while (end - p >= 8 && !jsonscan_word_special(p))
				p += 8;
			while (p < end && !jsonscan_special[*p])
				p++;
			v->i = (size_t)(p - v->s);
			continue;
		}

		if (c == '"') {
			v->i++;
			return 0;
		}
		if (c < 0x20)
			return jsonscan_fail(v, "control character in string");
		if (c == '\\') {
			if (++v->i >= v->n)
				break;
			c = v->s[v->i++];
			if (c == 'u') {
				if (jsonscan_hex4(v) < 0)
					return -1;
			} else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
				v->i--;
				return jsonscan_fail(v, "invalid escape");
			}
			continue;
		}
		if (c >= 0x80) {
			if (jsonscan_utf8(v) < 0)
				return -1;
			continue;
		}
		v->i++;
	}
	return jsonscan_fail(v, "unterminated string");
}

static size_t
jsonscan_digits(struct jsonscan_v *v)
{
	size_t start = v->i;

	while (v->i < v->n && v->s[v->i] >= '0' && v->s[v->i] <= '9')
		v->i++;
	return v->i - start;
}

static int
jsonscan_vnumber(struct jsonscan_v *v)
{
	if (v->s[v->i] == '-')
		v->i++;
	if (v->i < v->n && v->s[v->i] == '0')
		v->i++;
	else if (jsonscan_digits(v) == 0)
		return jsonscan_fail(v, "invalid number");
	if (v->i < v->n && v->s[v->i] == '.') {
		v->i++;
		if (jsonscan_digits(v) == 0)
			return jsonscan_fail(v, "invalid number");
	}
	if (v->i < v->n && (v->s[v->i] == 'e' || v->s[v->i] == 'E')) {
		v->i++;
		if (v->i < v->n && (v->s[v->i] == '+' || v->s[v->i] == '-'))
			v->i++;
		if (jsonscan_digits(v) == 0)
			return jsonscan_fail(v, "invalid number");
	}
	return 0;
}

static int
jsonscan_vliteral(struct jsonscan_v *v, const char *lit)
{
	size_t len = strlen(lit);

	if (v->n - v->i < len || memcmp(v->s + v->i, lit, len) != 0)
		return jsonscan_fail(v, "invalid literal");
	v->i += len;
	return 0;
}

/*
 * Iterative value parser: the stack holds '{' or '[' per open container so
 * that hostile nesting costs no C stack.
 */
static int
jsonscan_vvalue(struct jsonscan_v *v)
{
	char stack[JSONSCAN_MAX_DEPTH];
	int depth = 0;

	for (;;) {
		jsonscan_vws(v);
		if (v->i >= v->n)
			return jsonscan_fail(v, "unexpected end of input");
		unsigned char c = v->s[v->i];
		int r;

		if (c == '{' || c == '[') {
			if (depth == JSONSCAN_MAX_DEPTH)
				return jsonscan_fail(v, "nested too deeply");
			stack[depth++] = (char)c;
			v->i++;
			jsonscan_vws(v);
			if (v->i < v->n && v->s[v->i] == (c == '{' ? '}' : ']')) {
				v->i++;
				depth--;
				goto after_value;
			}
			if (c == '{')
				goto object_key;
			continue;
		}
		if (c == '"')
			r = jsonscan_vstring(v);
		else if (c == '-' || (c >= '0' && c <= '9'))
			r = jsonscan_vnumber(v);
		else if (c == 't')
			r = jsonscan_vliteral(v, "true");
		else if (c == 'f')
			r = jsonscan_vliteral(v, "false");
		else if (c == 'n')
			r = jsonscan_vliteral(v, "null");
		else
			return jsonscan_fail(v, "unexpected character");
		if (r < 0)
			return -1;
after_value:
		jsonscan_vws(v);
		if (depth == 0)
			return 0;
		if (v->i >= v->n)
			return jsonscan_fail(v, "unexpected end of input");
		c = v->s[v->i];
		if (c == (stack[depth - 1] == '{' ? '}' : ']')) {
			v->i++;
			depth--;
			goto after_value;
		}
		if (c != ',')
			return jsonscan_fail(v, "expected ',' or a closing bracket");
		v->i++;
		if (stack[depth - 1] == '[')
			continue;
object_key:
		jsonscan_vws(v);
		if (v->i >= v->n || v->s[v->i] != '"')
			return jsonscan_fail(v, "expected an object key");
		if (jsonscan_vstring(v) < 0)
			return -1;
		jsonscan_vws(v);
		if (v->i >= v->n || v->s[v->i] != ':')
			return jsonscan_fail(v, "expected ':'");
		v->i++;
	}
}

int
jsonscan_validate(const char *s, size_t n, size_t *err_at, const char **err)
{
	struct jsonscan_v v = { (const unsigned char *)s, n, 0, NULL };

	if (jsonscan_vvalue(&v) == 0) {
		jsonscan_vws(&v);
		if (v.i == n)
			return 0;
		jsonscan_fail(&v, "trailing characters after the JSON value");
	}
	*err_at = v.i;
	*err = v.err;
	return -1;
}

/* The four hex digits at p as a number, or -1 if one is not a hex digit. */
static int32_t
jsonscan_hex4s(const char *p)
{
	int32_t cp = 0;

	for (int k = 0; k < 4; k++) {
		int d = hexdig_value((unsigned char)p[k]);
		if (d < 0)
			return -1;
		cp = cp << 4 | d;
	}
	return cp;
}

long
jsonscan_string_value(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return -1;
	for (size_t i = 1; i < n - 1; i++) {
		char buf[4];
		size_t blen = 1;
		unsigned char c = (unsigned char)s[i];

		buf[0] = (char)c;
		if (c == '\\') {
			c = (unsigned char)s[++i];
			switch (c) {
			case 'b': buf[0] = '\b'; break;
			case 'f': buf[0] = '\f'; break;
			case 'n': buf[0] = '\n'; break;
			case 'r': buf[0] = '\r'; break;
			case 't': buf[0] = '\t'; break;
			case 'u': {
				/* Not necessarily validated: the digits are checked. */
				int32_t cp = i + 4 < n - 1 ? jsonscan_hex4s(s + i + 1) : -1;
				if (cp < 0)
					return -1;
				i += 4;
				if (cp >= 0xd800 && cp <= 0xdbff && i + 6 < n &&
				    s[i + 1] == '\\' && s[i + 2] == 'u') {
					int32_t lo = jsonscan_hex4s(s + i + 3);
					if (lo >= 0xdc00 && lo <= 0xdfff) {
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
						i += 6;
					}
				}
				if (cp == 0)
					return -1;
				if (cp < 0x80) {
					buf[0] = (char)cp;
				} else if (cp < 0x800) {
					buf[0] = (char)(0xc0 | cp >> 6);
					buf[1] = (char)(0x80 | (cp & 0x3f));
					blen = 2;
				} else if (cp < 0x10000) {
					buf[0] = (char)(0xe0 | cp >> 12);
					buf[1] = (char)(0x80 | (cp >> 6 & 0x3f));
					buf[2] = (char)(0x80 | (cp & 0x3f));
					blen = 3;
				} else {
					buf[0] = (char)(0xf0 | cp >> 18);
					buf[1] = (char)(0x80 | (cp >> 12 & 0x3f));
					buf[2] = (char)(0x80 | (cp >> 6 & 0x3f));
					buf[3] = (char)(0x80 | (cp & 0x3f));
					blen = 4;
				}
				break;
			}
			default: buf[0] = (char)c; break;
			}
		}
		if (o + blen >= outlen)
			return -1;
		memcpy(out + o, buf, blen);
		o += blen;
	}
	out[o] = '\0';
	return (long)o;
}

/* --- reading validated text in place ------------------------------------ */

int
jsonscan_next_member(const char *s, size_t n, size_t *pos, size_t *kbeg,
    size_t *kend, size_t *vbeg, size_t *vend)
{
	size_t i = *pos;

	if (i == 0) {
		i = jsonscan_ws(s, n, 0);
		if (i >= n || s[i] != '{')
			return -1;
		i++;
	}
	i = jsonscan_ws(s, n, i);
	if (i < n && s[i] == ',')
		i = jsonscan_ws(s, n, i + 1);
	if (i >= n || s[i] != '"')
		return -1;
	*kbeg = i;
	*kend = jsonscan_string(s, n, i);
	i = jsonscan_ws(s, n, *kend);
	if (i >= n || s[i] != ':')
		return -1;
	i = jsonscan_ws(s, n, i + 1);
	*vbeg = i;
	*vend = jsonscan_value(s, n, i);
	*pos = *vend;
	return 0;
}

void
jsonscan_get_many(const char *s, size_t n, const char *const *keys,
    size_t nkeys, size_t *vbeg, size_t *vend)
{
	size_t pos = 0, kb, ke, vb, ve, i;

	for (i = 0; i < nkeys; i++)
		vbeg[i] = vend[i] = 0;
	while (jsonscan_next_member(s, n, &pos, &kb, &ke, &vb, &ve) == 0) {
		for (i = 0; i < nkeys; i++) {
			/* cheap first test: the first character of the key */
			if (s[kb + 1] != keys[i][0] && s[kb + 1] != '\\')
				continue;
			if (jsonscan_str_eq(s + kb, ke - kb, keys[i])) {
				vbeg[i] = vb;
				vend[i] = ve;
				break;
			}
		}
	}
}

int
jsonscan_str_eq(const char *s, size_t n, const char *c)
{
	size_t clen = strlen(c);
	char tmp[256];

	if (n < 2 || s[0] != '"')
		return 0;
	if (memchr(s + 1, '\\', n - 2) == NULL)
		return n - 2 == clen && memcmp(s + 1, c, clen) == 0;
	/* an escape decodes to at least one byte per six */
	if ((n - 2) / 6 > clen || n > sizeof(tmp))
		return 0;
	size_t len = jsonscan_string_decode(s, n, tmp);
	return len == clen && memcmp(tmp, c, clen) == 0;
}

int
jsonscan_member(const char *s, size_t n, const char *key, size_t *vbeg,
    size_t *vend)
{
	size_t pos = 0, kb, ke, vb, ve;
	int found = -1;

	while (jsonscan_next_member(s, n, &pos, &kb, &ke, &vb, &ve) == 0) {
		if (jsonscan_str_eq(s + kb, ke - kb, key)) {
			*vbeg = vb;
			*vend = ve;
			found = 0;
		}
	}
	return found;
}

static uint32_t
jsonscan_hex4v(const char *p)
{
	uint32_t cp = 0;

	for (int k = 0; k < 4; k++)
		cp = cp << 4 | (uint32_t)hexdig_value(p[k]);
	return cp;
}

static size_t
jsonscan_put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t
jsonscan_string_decode(const char *s, size_t n, char *out)
{
	size_t o = 0, i = 1, end = n - 1, run;

	if (n < 2)
		return 0;
	while (i < end) {
		const char *bs = memchr(s + i, '\\', end - i);

		run = bs != NULL ? (size_t)(bs - s) : end;
		memcpy(out + o, s + i, run - i);
		o += run - i;
		if ((i = run) >= end)
			break;
		char c = s[i + 1];
		i += 2;
		switch (c) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			uint32_t cp = jsonscan_hex4v(s + i), lo;

			i += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= end &&
			    s[i] == '\\' && s[i + 1] == 'u' &&
			    (lo = jsonscan_hex4v(s + i + 2)) >= 0xdc00 &&
			    lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
				i += 6;
			}
			o += jsonscan_put_utf8(out + o, cp);
			break;
		}
		default: out[o++] = c; break;
		}
	}
	return o;
}

size_t
jsonscan_count_items(const char *s, size_t n)
{
	size_t pos = 0, vb, ve, count = 0;

	while (jsonscan_next_item(s, n, &pos, &vb, &ve) == 0)
		count++;
	return count;
}

int
jsonscan_is_integer(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
			return 0;
	return n > 0;
}
