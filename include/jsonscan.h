/*
 * jsonscan.h - byte positions inside JSON text, for minimal body edits.
 *
 * The proxy forwards request bodies byte for byte and, when it must change
 * one value (the model name after "slug/"), splices just that value so that
 * every other byte (number formatting, key order, whitespace) stays as the
 * client wrote it.  The text must already have been validated
 * (jsonscan_validate()).
 */
#ifndef WHYOPS_JSONSCAN_H
#define WHYOPS_JSONSCAN_H

#include <stddef.h>

/*
 * Finds the value of the top-level member named key in the JSON object text
 * s[0..n).  Keys are compared decoded ("\u006dodel" is "model"), as a JSON
 * parser would, so the proxy reads the member the upstream will.  On
 * success stores the value's span [*vbeg, *vend) (the last occurrence if
 * repeated) and returns 0; returns -1 if absent or if s is not an object.
 */
int jsonscan_member(const char *s, size_t n, const char *key, size_t *vbeg,
    size_t *vend);

/*
 * Iterates the elements of the JSON array text s[0..n) (validated input):
 * *pos starts at 0; each call stores the next element's span and returns 0,
 * or returns -1 at the end (or if s is not an array).
 */
int jsonscan_next_item(const char *s, size_t n, size_t *pos, size_t *vbeg,
    size_t *vend);

/*
 * Validates s[0..n) as one JSON text (RFC 8259: strict grammar, UTF-8,
 * nesting at most JSONSCAN_MAX_DEPTH) without allocating.  Returns 0, or -1
 * with *err_at set to the byte offset of the first error and *err to a
 * static description.  Roughly ten times cheaper than building a jansson
 * tree, which is why the request path uses it.
 */
#define JSONSCAN_MAX_DEPTH 512
int jsonscan_validate(const char *s, size_t n, size_t *err_at, const char **err);

/*
 * Decodes the JSON string literal s[0..n) (quotes included) into out (at
 * most outlen - 1 bytes, NUL-terminated).  Returns the decoded length, or -1
 * if it is not a string or does not fit or decodes to a NUL byte.
 */
long jsonscan_string_value(const char *s, size_t n, char *out, size_t outlen);

/* The length (2..4) of the UTF-8 sequence at p (p[0] >= 0x80, left bytes
 * available), or 0 when it is not one RFC 3629 allows (overlong forms,
 * surrogates, values above U+10FFFF, a cut sequence). */
size_t jsonscan_utf8_len(const unsigned char *p, size_t left);

/* ---- reading validated text in place (the event dispatcher) ---- */

/*
 * Iterates the members of the JSON object text s[0..n) (validated input):
 * *pos starts at 0; each call stores the key's span (quotes included) and
 * the value's span and returns 0, or returns -1 at the end.
 */
int jsonscan_next_member(const char *s, size_t n, size_t *pos, size_t *kbeg,
    size_t *kend, size_t *vbeg, size_t *vend);

/* Several members of the object s[0..n) in one scan: keys[i]'s value
 * span in vbeg[i], vend[i] (both 0 when absent), compared as by
 * jsonscan_member(); no key may start with a backslash. */
void jsonscan_get_many(const char *s, size_t n, const char *const *keys,
    size_t nkeys, size_t *vbeg, size_t *vend);

/* 1 when the string literal s[0..n) decodes to exactly the C string c. */
int jsonscan_str_eq(const char *s, size_t n, const char *c);

/*
 * Decodes the string literal s[0..n) (validated, quotes included) into
 * out, which has room for n bytes (decoding never grows); returns the
 * length.  U+0000 is kept as a NUL byte.
 */
size_t jsonscan_string_decode(const char *s, size_t n, char *out);

/* The number of elements of the array text s[0..n) (0 if not an array). */
size_t jsonscan_count_items(const char *s, size_t n);

/* 1 when the number s[0..n) has no fraction and no exponent. */
int jsonscan_is_integer(const char *s, size_t n);

#endif
