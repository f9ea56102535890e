/*
 * jsonscan.h - byte positions inside JSON text, for minimal body edits.
 *
 * The proxy forwards request bodies byte for byte and, when it must change
 * one value (the model name after "slug/"), splices just that value so that
 * every other byte (number formatting, key order, whitespace) stays as the
 * client wrote it.  The text must already have been validated (jansson).
 */
#ifndef WHYOPS_JSONSCAN_H
#define WHYOPS_JSONSCAN_H

#include <stddef.h>

/*
 * Finds the value of the top-level member named key (compared raw, without
 * unescaping) in the JSON object text s[0..n).  On success stores the value's
 * span [*vbeg, *vend) (the last occurrence if repeated) and returns 0;
 * returns -1 if absent or if s is not an object.
 */
int jsonscan_member(const char *s, size_t n, const char *key, size_t *vbeg,
    size_t *vend);

#endif
