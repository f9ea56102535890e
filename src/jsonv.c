/*
 * jsonv.c - in-place reading of validated JSON text (see jsonv.h): a thin
 * layer of value spans over jsonscan's readers, which do the scanning.
 */
#include "jsonv.h"

#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

static inline bool
jv_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

struct jv
jv_text(const char *p, size_t n)
{
	size_t b = 0, e = n;

	while (b < n && jv_blank(p[b]))
		b++;
	while (e > b && jv_blank(p[e - 1]))
		e--;
	return e > b ? (struct jv){ p + b, e - b } : JV_ABSENT;
}

void
jv_get_many(struct jv obj, const char *const *keys, size_t nkeys,
    struct jv *out)
{
	size_t vb[16], ve[16], k;

	for (k = 0; k < nkeys; k++)
		out[k] = JV_ABSENT;
	if (!jv_is_object(obj) || nkeys > 16)
		return;
	jsonscan_get_many(obj.p, obj.n, keys, nkeys, vb, ve);
	for (k = 0; k < nkeys; k++)
		if (ve[k] > vb[k])
			out[k] = (struct jv){ obj.p + vb[k], ve[k] - vb[k] };
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
	size_t b, e;

	if (!jv_is_array(arr) ||
	    jsonscan_next_item(arr.p, arr.n, pos, &b, &e) != 0)
		return false;
	*item = (struct jv){ arr.p + b, e - b };
	return true;
}

size_t
jv_count(struct jv arr)
{
	return jv_is_array(arr) ? jsonscan_count_items(arr.p, arr.n) : 0;
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

size_t
jv_str_decode(struct jv v, char *out)
{
	return jv_is_string(v) ? jsonscan_string_decode(v.p, v.n, out) : 0;
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
	return jv_is_string(v) && jsonscan_str_eq(v.p, v.n, s);
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
