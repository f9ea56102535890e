/*
 * signature.c - the invisible signature codec (see signature.h).
 *
 * Everything is built on one tokenizer, sig_unit(), that reads the text
 * as a sequence of units: one of the four marks (U+200B start, U+200C
 * bit 1, U+200D bit 0, U+200E end) or "something else" with its byte
 * length.  In raw text a mark is its 3 UTF-8 bytes (E2 80 8B..8E) and
 * anything else is one byte: E2 is a lead byte, never a continuation, so a
 * mark cannot start in the middle of another character of valid UTF-8.  In
 * JSON text a mark may also be a 6-byte \u200b..\u200e escape, and every
 * other escape is one unit (\uXXXX six bytes, the rest two), which is how
 * backslash parity is kept: the scan always knows whether a backslash
 * opens an escape or was itself escaped.
 *
 * Finding walks forward once and remembers the last signature that
 * decodes; a malformed attempt is abandoned at the first unit that does not
 * fit and the scan resumes at that unit, so a stray start followed by a
 * good signature still finds the good one, and the whole pass stays linear.
 * Decoding goes into a local buffer and reaches the caller's only when the
 * signature is complete and valid.
 *
 * Stripping removes every mark, not only well-formed signatures: a cut
 * signature or a stray mark left in a history would otherwise travel
 * upstream and come back in the next answer.  The cost is that legitimate
 * uses of these characters (U+200D joining emoji, U+200E in bidirectional
 * text) are removed too; the WhyOps proxy does the same.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "hexdig.h"
#include "signature.h"

enum sig_mark {
	SIG_OTHER = -1,
	SIG_START = 0,		/* U+200B */
	SIG_ONE = 1,		/* U+200C */
	SIG_ZERO = 2,		/* U+200D */
	SIG_END = 3,		/* U+200E */
};

/* UTF-8 of U+200B..U+200E: these two bytes, then 0x8B + mark. */
#define SIG_LEAD0 0xE2
#define SIG_LEAD1 0x80
#define SIG_LAST0 0x8B
#define SIG_CHAR_LEN 3

static bool
sig_id_char(unsigned c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
	    c == '-';
}

bool
signature_id_valid(const char *id, size_t len)
{
	size_t i;

	if (len == 0 || len > SIGNATURE_ID_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!sig_id_char((unsigned char)id[i]))
			return false;
	return true;
}

size_t
signature_encoded_len(size_t idlen)
{
	return (8 * idlen + 2) * SIG_CHAR_LEN;
}

static char *
sig_put(char *out, enum sig_mark m)
{
	out[0] = (char)SIG_LEAD0;
	out[1] = (char)SIG_LEAD1;
	out[2] = (char)(SIG_LAST0 + m);
	return out + SIG_CHAR_LEN;
}

size_t
signature_encode(const char *id, size_t idlen, char *out)
{
	char *p = out;
	size_t i;
	int bit;

	if (!signature_id_valid(id, idlen))
		return 0;
	p = sig_put(p, SIG_START);
	for (i = 0; i < idlen; i++)
		for (bit = 7; bit >= 0; bit--)
			p = sig_put(p, ((unsigned char)id[i] >> bit) & 1 ?
			    SIG_ONE : SIG_ZERO);
	p = sig_put(p, SIG_END);
	return (size_t)(p - out);
}

/* The unit at s[i] (i < len): its mark, and its length in *ulen. */
static enum sig_mark
sig_unit(const char *s, size_t len, size_t i, bool json, size_t *ulen)
{
	const unsigned char *u = (const unsigned char *)s + i;
	size_t left = len - i;

	*ulen = 1;
	if (u[0] == SIG_LEAD0) {
		if (left >= SIG_CHAR_LEN && u[1] == SIG_LEAD1 &&
		    u[2] >= SIG_LAST0 && u[2] <= SIG_LAST0 + SIG_END) {
			*ulen = SIG_CHAR_LEN;
			return (enum sig_mark)(u[2] - SIG_LAST0);
		}
		return SIG_OTHER;
	}
	if (!json || u[0] != '\\' || left < 2)
		return SIG_OTHER;
	if (u[1] != 'u') {
		*ulen = 2;
		return SIG_OTHER;
	}
	*ulen = left < 6 ? left : 6;
	if (left >= 6 && u[2] == '2' && u[3] == '0' && u[4] == '0') {
		int h = hexdig_value(u[5]);

		if (h >= 0xB && h <= 0xE)
			return (enum sig_mark)(h - 0xB);
	}
	return SIG_OTHER;
}

/*
 * Tries to decode a signature whose start mark ends just before s[*pos].
 * Advances *pos past the end mark when there is one, else to the first
 * unit that does not belong (which the caller scans next).  Returns the
 * id's length in cur, or 0 when malformed.
 */
static size_t
sig_decode(const char *s, size_t len, size_t *pos, bool json, char *cur)
{
	size_t i = *pos, nbits = 0, ul = 0;
	unsigned acc = 0;
	bool ok = true;
	enum sig_mark m = SIG_OTHER;

	while (i < len) {
		m = sig_unit(s, len, i, json, &ul);
		if (m != SIG_ONE && m != SIG_ZERO)
			break;
		i += ul;
		acc = (acc << 1) | (m == SIG_ONE);
		if (++nbits % 8 != 0)
			continue;
		if (nbits / 8 > SIGNATURE_ID_MAX || !sig_id_char(acc))
			ok = false;
		else
			cur[nbits / 8 - 1] = (char)acc;
		acc = 0;
	}
	*pos = i;
	if (i >= len || m != SIG_END)
		return 0;
	*pos = i + ul;
	if (!ok || nbits == 0 || nbits % 8 != 0)
		return 0;
	cur[nbits / 8] = '\0';
	return nbits / 8;
}

static size_t
sig_find_last(const char *s, size_t len, bool json, char *id)
{
	char cur[SIGNATURE_ID_MAX + 1];
	size_t i = 0, ul, n, found = 0;

	while (i < len) {
		if (sig_unit(s, len, i, json, &ul) != SIG_START) {
			i += ul;
			continue;
		}
		i += ul;
		if ((n = sig_decode(s, len, &i, json, cur)) > 0) {
			memcpy(id, cur, n + 1);
			found = n;
		}
	}
	return found;
}

size_t
signature_find_last(const char *text, size_t len, char *id)
{
	return sig_find_last(text, len, false, id);
}

size_t
signature_find_last_json(const char *s, size_t len, char *id)
{
	return sig_find_last(s, len, true, id);
}

static size_t
sig_strip(char *s, size_t len, bool json)
{
	size_t i = 0, w = 0, ul;

	while (i < len) {
		if (sig_unit(s, len, i, json, &ul) == SIG_OTHER) {
			if (w != i)
				memmove(s + w, s + i, ul);
			w += ul;
		}
		i += ul;
	}
	return w;
}

size_t
signature_strip(char *text, size_t len)
{
	return sig_strip(text, len, false);
}

size_t
signature_strip_json(char *s, size_t len)
{
	return sig_strip(s, len, true);
}

bool
signature_present_json(const char *s, size_t len)
{
	size_t i = 0, ul;

	while (i < len) {
		if (sig_unit(s, len, i, true, &ul) != SIG_OTHER)
			return true;
		i += ul;
	}
	return false;
}
