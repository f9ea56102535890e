/*
 * test_jsonw.c - the JSON writer (jsonw.h) and the in-place readers of
 * jsonscan.h that the event builder uses.
 *
 * Every string the writer produces is parsed back with jansson and must
 * give the bytes that went in (or, for invalid UTF-8, the bytes with
 * everything >= 0x80 turned into '?', as event_string() did).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "jsonscan.h"
#include "jsonw.h"

/* Writes p[0..n) as a string, checks the text is one JSON string that
 * decodes to want[0..wn), returns the text (caller frees the buf). */
static void
roundtrip(struct buf *b, const char *p, size_t n, const char *want,
    size_t wn)
{
	json_error_t err;
	json_t *v;

	buf_reset(b);
	jsonw_str(b, p, n);
	ck_assert_uint_eq(strlen(b->data), b->len);	/* no raw NUL */
	v = json_loadb(b->data, b->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	ck_assert_msg(v != NULL, "%s: %s", err.text, b->data);
	ck_assert(json_is_string(v));
	ck_assert_uint_eq(json_string_length(v), wn);
	ck_assert(memcmp(json_string_value(v), want, wn) == 0);
	json_decref(v);
}

START_TEST(escapes)
{
	struct buf b = { 0 };
	char all[32];
	int i;

	for (i = 0; i < 32; i++)
		all[i] = (char)i;
	roundtrip(&b, all, 32, all, 32);
	ck_assert_str_eq(b.data, "\"\\u0000\\u0001\\u0002\\u0003\\u0004"
	    "\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
	    "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
	    "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\"");
	roundtrip(&b, "a\"b\\c/d\x7f", 8, "a\"b\\c/d\x7f", 8);
	ck_assert_str_eq(b.data, "\"a\\\"b\\\\c/d\x7f\"");
	/* U+2028 / U+2029 escaped; other three-byte sequences as they are */
	roundtrip(&b, "x\xe2\x80\xa8y\xe2\x80\xa9z\xe2\x82\xac", 12,
	    "x\xe2\x80\xa8y\xe2\x80\xa9z\xe2\x82\xac", 12);
	ck_assert_str_eq(b.data, "\"x\\u2028y\\u2029z\xe2\x82\xac\"");
	roundtrip(&b, "", 0, "", 0);
	ck_assert_str_eq(b.data, "\"\"");
	roundtrip(&b, "\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80", 4);
	buf_free(&b);
}
END_TEST

START_TEST(invalid_utf8)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "caf\xe9", "caf?" },
		{ "\xc3\xa9 \xff", "?? ?" },		/* one bad byte: all */
		{ "\xc0\xaf", "??" },			/* overlong */
		{ "\xe0\x80\xaf", "???" },		/* overlong */
		{ "\xed\xa0\x80", "???" },		/* surrogate */
		{ "\xf4\x90\x80\x80", "????" },		/* > U+10FFFF */
		{ "\xe2\x80", "??" },			/* cut short */
		{ "\xe2\x80\xa8\x80", "????" },		/* stray continuation */
	};
	struct buf b = { 0 };
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert(!jsonw_utf8_valid(cases[i].in, strlen(cases[i].in)));
		roundtrip(&b, cases[i].in, strlen(cases[i].in), cases[i].out,
		    strlen(cases[i].out));
	}
	ck_assert(jsonw_utf8_valid("\xf4\x8f\xbf\xbf \xc2\x80", 7));
	buf_free(&b);
}
END_TEST

START_TEST(long_string)
{
	struct buf b = { 0 };
	size_t n = 1 << 20, i;
	char *s = malloc(n);

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < n; i++)
		s[i] = i % 1000 == 999 ? '\n' : i % 7 == 0 ? '"' :
		    (char)('a' + i % 26);
	roundtrip(&b, s, n, s, n);
	free(s);
	buf_free(&b);
}
END_TEST

static void
expect_int(int64_t v, const char *want)
{
	struct buf b = { 0 };

	jsonw_int(&b, v);
	ck_assert_str_eq(b.data, want);
	buf_free(&b);
}

START_TEST(integers)
{
	expect_int(0, "0");
	expect_int(7, "7");
	expect_int(-7, "-7");
	expect_int(1000000, "1000000");
	expect_int(INT64_MAX, "9223372036854775807");
	expect_int(INT64_MIN, "-9223372036854775808");
}
END_TEST

static void
expect_milli(int64_t k, const char *want)
{
	struct buf b = { 0 };
	json_t *v;

	jsonw_milli(&b, k);
	ck_assert_str_eq(b.data, want);
	v = json_loads(b.data, JSON_DECODE_ANY, NULL);
	ck_assert(json_is_real(v));
	json_decref(v);
	buf_free(&b);
}

START_TEST(reals)
{
	expect_milli(0, "0.0");
	expect_milli(412500, "412.5");
	expect_milli(120, "0.12");
	expect_milli(1, "0.001");
	expect_milli(130250, "130.25");
	expect_milli(5000, "5.0");
	expect_milli(-1500, "-1.5");
	expect_milli(999999999999999, "999999999999.999");
	/* 16 digits: rounded to 15, as %.15g */
	expect_milli(1234567890123456, "1234567890123.46");
	expect_milli(8999999999999999, "9000000000000.0");
}
END_TEST

START_TEST(structure_and_raw)
{
	struct buf b = { 0 };
	static const char doc[] = " { \"a\" : [ 1 , 2.50 , 1e2 ] ,\n\t\"b\" :"
	    " \"x y\\\" z\" , \"c\" : { } , \"d\" : [ ] , \"e\" : null } ";

	jsonw_lit(&b, "{");
	jsonw_key(&b, "k");
	jsonw_lit(&b, "[");
	jsonw_elem(&b);
	jsonw_int(&b, 1);
	jsonw_elem(&b);
	jsonw_cstr(&b, NULL);
	jsonw_elem(&b);
	jsonw_bool(&b, 1);
	jsonw_lit(&b, "]");
	jsonw_key(&b, "raw");
	jsonw_raw(&b, doc, sizeof(doc) - 1);
	jsonw_lit(&b, "}");
	ck_assert_str_eq(b.data, "{\"k\":[1,null,true],\"raw\":{\"a\":[1,2.50,"
	    "1e2],\"b\":\"x y\\\" z\",\"c\":{},\"d\":[],\"e\":null}}");
	buf_free(&b);
}
END_TEST

START_TEST(scan_readers)
{
	static const char obj[] = "{\"r\\u006fle\":\"\\u0075ser\", \"role\" :"
	    " \"x\", \"n\": [1, [2, 3], {\"a\": \"]\"}], \"s\": \"\\ud83d\\ude00"
	    "\\n\\\"\"}";
	size_t n = sizeof(obj) - 1, vb, ve;
	char out[64];

	/* decoded keys; the last occurrence wins */
	ck_assert_int_eq(jsonscan_member(obj, n, "role", &vb, &ve), 0);
	ck_assert(jsonscan_str_eq(obj + vb, ve - vb, "x"));
	ck_assert_int_eq(jsonscan_member(obj, n, "nope", &vb, &ve), -1);
	ck_assert_int_eq(jsonscan_member(obj, n, "n", &vb, &ve), 0);
	ck_assert_uint_eq(jsonscan_count_items(obj + vb, ve - vb), 3);
	ck_assert_int_eq(jsonscan_member(obj, n, "s", &vb, &ve), 0);
	ck_assert_uint_eq(jsonscan_string_decode(obj + vb, ve - vb, out), 6);
	ck_assert(memcmp(out, "\xf0\x9f\x98\x80\n\"", 6) == 0);
	ck_assert(jsonscan_str_eq("\"\\u0075ser\"", 11, "user"));
	ck_assert(!jsonscan_str_eq("\"\\u0075ser\"", 11, "users"));
	ck_assert(jsonscan_is_integer("-12", 3));
	ck_assert(!jsonscan_is_integer("1e2", 3));
	ck_assert(!jsonscan_is_integer("1.0", 3));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jsonw");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, escapes);
	tcase_add_test(tc, invalid_utf8);
	tcase_add_test(tc, long_string);
	tcase_add_test(tc, integers);
	tcase_add_test(tc, reals);
	tcase_add_test(tc, structure_and_raw);
	tcase_add_test(tc, scan_readers);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
