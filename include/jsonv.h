/*
 * jsonv.h - read validated JSON text in place, without building a tree.
 *
 * A struct jv is the span of one JSON value inside a text that has already
 * passed jsonscan_validate() (jsonscan.h); reading it allocates nothing.
 * This is how the stream decoders read every event of an answer: a
 * chat.completion.chunk is looked at once, for a handful of members, and
 * then thrown away, so building a jansson tree of it (a malloc per value,
 * a hash table per object) cost more than the rest of the request path
 * together.  Members are found by one forward scan of the object (nested
 * values are skipped, not parsed; jsonscan.h does the scanning); strings
 * are decoded only when a caller asks, and a string without escapes is
 * used where it lies.
 *
 * What jansson would do is the reference: a repeated member's last value
 * wins; integers are numbers without fraction or exponent that fit in
 * int64_t; strings may hold U+0000 (decoded lengths count it).
 *
 * Threads: none of this has state.
 */
#ifndef WHYOPS_JSONV_H
#define WHYOPS_JSONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One JSON value: p[0..n).  n == 0: absent (a missing member, a value of
 * the wrong kind asked for). */
struct jv {
	const char *p;
	size_t n;
};

#define JV_ABSENT ((struct jv){ NULL, 0 })

enum jv_kind {
	JV_NONE,		/* absent */
	JV_NULL,
	JV_BOOL,
	JV_NUMBER,
	JV_STRING,
	JV_ARRAY,
	JV_OBJECT,
};

/* A whole validated text (leading and trailing blanks allowed). */
struct jv jv_text(const char *p, size_t n);

static inline enum jv_kind
jv_kind(struct jv v)
{
	if (v.n == 0)
		return JV_NONE;
	switch (v.p[0]) {
	case '"': return JV_STRING;
	case '{': return JV_OBJECT;
	case '[': return JV_ARRAY;
	case 'n': return JV_NULL;
	case 't': case 'f': return JV_BOOL;
	default: return JV_NUMBER;
	}
}

static inline bool jv_is_string(struct jv v) { return jv_kind(v) == JV_STRING; }
static inline bool jv_is_object(struct jv v) { return jv_kind(v) == JV_OBJECT; }
static inline bool jv_is_array(struct jv v) { return jv_kind(v) == JV_ARRAY; }

/* The member key of object obj (absent when obj is not an object or has
 * no such member; the last one when repeated). */
struct jv jv_get(struct jv obj, const char *key);

/* Several members (at most 16) in one scan: out[i] is the member keys[i]. */
void jv_get_many(struct jv obj, const char *const *keys, size_t nkeys,
    struct jv *out);

/* Array iteration: *pos starts at 0; true and *item set for each element
 * in order, false at the end (or when arr is not an array). */
bool jv_next(struct jv arr, size_t *pos, struct jv *item);

/* Number of elements of an array (0 for anything else). */
size_t jv_count(struct jv arr);

/* An integer (no '.', 'e' or 'E') that fits int64_t: true and *out set. */
bool jv_int(struct jv v, int64_t *out);

/* Strings.  jv_str_len_max() bounds the decoded length (the literal minus
 * its quotes); jv_str_decode() writes the decoded bytes to out (room for
 * jv_str_len_max(v) bytes; no NUL added) and returns their number; 0 for
 * anything but a string.  jv_str_raw() gives the bytes between the quotes
 * when they hold no escape (they are then the value itself). */
static inline size_t jv_str_len_max(struct jv v) { return jv_is_string(v) ? v.n - 2 : 0; }
size_t jv_str_decode(struct jv v, char *out);
bool jv_str_raw(struct jv v, const char **p, size_t *n);

/* Whether v is a string equal to s. */
bool jv_str_eq(struct jv v, const char *s);

/* The decoded string in a new NUL-terminated buffer (free()); NULL for
 * anything but a string.  *len (may be NULL) gets its length. */
char *jv_str_dup(struct jv v, size_t *len);

#endif
