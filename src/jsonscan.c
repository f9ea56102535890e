/*
 * jsonscan.c - locate a top-level member's value in JSON text (jsonscan.h).
 *
 * A single forward pass that understands just enough JSON (RFC 8259) to
 * skip values: strings with escapes, nested objects and arrays, literals.
 * No allocation.
 */
#include <string.h>

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
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
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
jsonscan_member(const char *s, size_t n, const char *key, size_t *vbeg,
    size_t *vend)
{
	size_t klen = strlen(key), i = jsonscan_ws(s, n, 0);
	int found = -1;

	if (i >= n || s[i] != '{')
		return -1;
	i++;
	for (;;) {
		i = jsonscan_ws(s, n, i);
		if (i >= n || s[i] != '"')
			return found;
		size_t kb = i + 1, ke = jsonscan_string(s, n, i);
		int match = ke - 1 - kb == klen && memcmp(s + kb, key, klen) == 0;
		i = jsonscan_ws(s, n, ke);
		if (i >= n || s[i] != ':')
			return found;
		i = jsonscan_ws(s, n, i + 1);
		size_t ve = jsonscan_value(s, n, i);
		if (match) {
			*vbeg = i;
			*vend = ve;
			found = 0;
		}
		i = jsonscan_ws(s, n, ve);
		if (i >= n || s[i] != ',')
			return found;
		i++;
	}
}
