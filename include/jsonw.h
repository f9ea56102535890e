/*
 * jsonw.h - a small JSON writer that appends text to a struct buf.
 *
 * The telemetry dispatcher writes every envelope straight into one byte
 * buffer with these calls instead of building a jansson tree and dumping
 * it: no allocation per value, no printf per number.  The output is
 * compact RFC 8259 JSON.  Commas are implied: jsonw_key() and jsonw_elem()
 * put one before the member or element unless the buffer ends in '{' or
 * '[' (so a container must be opened with jsonw_lit(b, "{") or "[").
 *
 * Not thread safe (the buffer's owner calls it); nothing fails: the buffer
 * grows and aborts on allocation failure (buf.h).
 */
#ifndef WHYOPS_JSONW_H
#define WHYOPS_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Raw text: "{", "}", "null", "true"... (no comma handling). */
void jsonw_lit(struct buf *b, const char *lit);
/* A comma unless b ends in '{' or '['. */
void jsonw_elem(struct buf *b);
/* ,"key": — key is a literal that needs no escaping. */
void jsonw_key(struct buf *b, const char *key);

/*
 * A string from n bytes (NUL bytes allowed).  Escapes '"', '\\', every
 * control character and U+2028/U+2029.  When the bytes are not valid UTF-8
 * (RFC 3629: no overlong forms, surrogates or values above U+10FFFF) every
 * byte >= 0x80 is written as '?': the rule event_string() always had.
 */
void jsonw_str(struct buf *b, const char *p, size_t n);
/* A C string, or null for NULL. */
void jsonw_cstr(struct buf *b, const char *s);
void jsonw_int(struct buf *b, int64_t v);
void jsonw_bool(struct buf *b, int v);
/* The real number k / 1000, e.g. 412.5 for 412500 (always with a '.'
 * so that it stays a real).  |k| below 1e15 is exact; beyond that it is
 * rounded to 15 significant digits, as %.15g would. */
void jsonw_milli(struct buf *b, int64_t k);
/* Validated JSON text s[0..n), copied without the whitespace outside
 * strings; everything else byte for byte (numbers keep their spelling). */
void jsonw_raw(struct buf *b, const char *s, size_t n);

/* 1 when p[0..n) is valid UTF-8 (RFC 3629), else 0. */
int jsonw_utf8_valid(const char *p, size_t n);

#endif
