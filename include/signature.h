/*
 * signature.h - the invisible signature: a trace id written as zero-width
 * Unicode characters.
 *
 * The proxy appends the signature of a call's trace id to the model's
 * answer; an agent sends that answer back in the history of its next
 * (stateless) call, where the proxy finds the id again and files the call
 * under the same trace.  The format is the one of the WhyOps proxy, byte
 * for byte:
 *
 *   U+200B, then every byte of the id as 8 bits, most significant first,
 *   1 as U+200C and 0 as U+200D, then U+200E.
 *
 * Trace ids are 1-SIGNATURE_ID_MAX characters of [A-Za-z0-9._:-].
 *
 * Two spellings of the text are handled: raw UTF-8 (a decoded string), and
 * the raw content of a JSON string literal (the *_json functions), where
 * each character may also appear as a \u200b..\u200e escape, hex digits in
 * either case.  The JSON functions follow escapes from left to right, so
 * "\\u200b" (an escaped backslash, then the text "u200b") is not mistaken
 * for U+200B; they work on a whole JSON text as well, since backslashes
 * occur only inside its strings.
 *
 * Nothing here allocates; every function may be called from any thread.
 */
#ifndef WHYOPS_SIGNATURE_H
#define WHYOPS_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>

/* Longest trace id; an id buffer needs SIGNATURE_ID_MAX + 1 bytes. */
#define SIGNATURE_ID_MAX 128

/* true when id[0..len) is a trace id: 1-128 characters of [A-Za-z0-9._:-]. */
bool signature_id_valid(const char *id, size_t len);

/* Bytes of UTF-8 that signature_encode() writes for an id of idlen bytes:
 * (8 * idlen + 2) characters of 3 bytes each. */
size_t signature_encoded_len(size_t idlen);

/*
 * Writes the signature of id[0..idlen) as UTF-8 to out, which has room for
 * signature_encoded_len(idlen) bytes (no NUL is written).  Returns the
 * number of bytes written, or 0 (writing nothing) when id is not a valid
 * trace id.
 */
size_t signature_encode(const char *id, size_t idlen, char *out);

/*
 * Finds the last (newest) well-formed signature in text[0..len) and writes
 * its id, NUL-terminated, to id (at least SIGNATURE_ID_MAX + 1 bytes).
 * Returns the id's length, or 0 when there is none (id is then left as it
 * was).  Text around a signature does not matter.  Malformed sequences are
 * skipped: a start without an end, any other character between start and
 * end, a bit count that is not a non-zero multiple of 8, an id longer than
 * SIGNATURE_ID_MAX or with a byte outside the id alphabet.
 */
size_t signature_find_last(const char *text, size_t len, char *id);

/* The same over the raw content of a JSON string literal (or a whole JSON
 * text), where each character is raw UTF-8 or a \u escape. */
size_t signature_find_last_json(const char *s, size_t len, char *id);

/*
 * Removes every U+200B, U+200C, U+200D and U+200E from text[0..len) in
 * place, whether part of a signature or not, and returns the new length.
 * Every other byte keeps its order.  Note that this includes U+200D inside
 * emoji sequences and U+200E marks in bidirectional text.
 */
size_t signature_strip(char *text, size_t len);

/* The same for JSON text: removes the raw characters and their \u escapes,
 * leaving other escapes (and "\\u200b") alone. */
size_t signature_strip_json(char *s, size_t len);

/* true when signature_strip_json() would remove something from s[0..len). */
bool signature_present_json(const char *s, size_t len);

#endif
