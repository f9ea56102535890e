/*
 * test_jsonv.c - in-place JSON reading (jsonv.h), checked against jansson
 * (the reference for member lookup, integers and string decoding).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonscan.h"
#include "jsonv.h"

static struct jv
text(const char *s)
{
	size_t at;
	const char *err;

	ck_assert_msg(jsonscan_validate(s, strlen(s), &at, &err) == 0,
	    "test text is not valid JSON: %s", s);
	return jv_text(s, strlen(s));
}

static int
span_is(struct jv v, const char *want)
{
	return v.n == strlen(want) && memcmp(v.p, want, v.n) == 0;
}

START_TEST(members)
{
	struct jv o = text(" {\"a\": 1, \"b\" :{\"a\":2,\"s\":\"}\\\"{\"} ,"
	    "\"c\":[1,[2,{\"x\":\"]\"}]], \"d\":\"q\\\\\", \"a\":\"last\"} ");
	static const char *const keys[] = { "a", "b", "c", "d", "zz" };
	struct jv m[5];

	ck_assert_int_eq(jv_kind(o), JV_OBJECT);
	ck_assert(span_is(jv_get(o, "a"), "\"last\""));	/* last one wins */
	ck_assert(span_is(jv_get(o, "b"), "{\"a\":2,\"s\":\"}\\\"{\"}"));
	ck_assert(span_is(jv_get(jv_get(o, "b"), "a"), "2"));
	ck_assert(span_is(jv_get(o, "c"), "[1,[2,{\"x\":\"]\"}]]"));
	ck_assert(span_is(jv_get(o, "d"), "\"q\\\\\""));
	ck_assert_uint_eq(jv_get(o, "x").n, 0);	/* nested keys are not members */
	ck_assert_uint_eq(jv_get(jv_get(o, "c"), "x").n, 0);	/* not an object */
	ck_assert_uint_eq(jv_get(JV_ABSENT, "a").n, 0);
	jv_get_many(o, keys, 5, m);
	ck_assert(span_is(m[0], "\"last\""));
	ck_assert(span_is(m[2], "[1,[2,{\"x\":\"]\"}]]"));
	ck_assert_uint_eq(m[4].n, 0);
	/* a key spelled with an escape is the same key, as in jansson */
	ck_assert(span_is(jv_get(text("{\"\\u0069d\":7}"), "id"), "7"));
	ck_assert_uint_eq(jv_get(text("{}"), "a").n, 0);
}
END_TEST

START_TEST(arrays)
{
	struct jv a = text("[ 1 , \"x,]\" ,{\"k\":[]}, [ ] ,null]"), it;
	const char *want[] = { "1", "\"x,]\"", "{\"k\":[]}", "[ ]", "null" };
	size_t pos = 0, k = 0;

	while (jv_next(a, &pos, &it)) {
		ck_assert_uint_lt(k, 5);
		ck_assert_msg(span_is(it, want[k]), "item %zu: %.*s", k,
		    (int)it.n, it.p);
		k++;
	}
	ck_assert_uint_eq(k, 5);
	ck_assert_uint_eq(jv_count(a), 5);
	ck_assert_uint_eq(jv_count(text("[]")), 0);
	ck_assert_uint_eq(jv_count(text("[ ]")), 0);
	ck_assert_uint_eq(jv_count(text("{\"a\":1}")), 0);
	pos = 0;
	ck_assert(!jv_next(text("\"[1]\""), &pos, &it));
}
END_TEST

START_TEST(integers)
{
	static const char *const good[] = { "0", "-0", "42", "-7",
	    "9223372036854775807", "-9223372036854775808" };
	static const char *const bad[] = { "1.0", "1e2", "2E1", "-1.5",
	    "9223372036854775808", "-9223372036854775809", "\"1\"", "null",
	    "true" };
	int64_t v;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		json_t *j = json_loads(good[i], JSON_DECODE_ANY, NULL);

		ck_assert_msg(jv_int(text(good[i]), &v), "%s", good[i]);
		ck_assert(json_is_integer(j));
		ck_assert_int_eq(v, json_integer_value(j));
		json_decref(j);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!jv_int(text(bad[i]), &v), "%s", bad[i]);
	ck_assert(!jv_int(JV_ABSENT, &v));
}
END_TEST

/* Every decoded string equals jansson's decoding of the same literal. */
START_TEST(strings)
{
	static const char *const lits[] = {
		"\"\"", "\"plain\"", "\"a\\\"b\"", "\"\\\\\"", "\"\\/\"",
		"\"\\b\\f\\n\\r\\t\"", "\"\\u00e9\\u20ac\"", "\"\\ud83d\\ude00\"",
		"\"caf\xc3\xa9 \xe2\x80\x8b\"", "\"nul:\\u0000:\"",
		"\"mixed \\u0041\\n\xf0\x9f\x98\x80 end\"",
	};
	size_t i, n;
	char out[256];

	for (i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		json_t *j = json_loads(lits[i], JSON_DECODE_ANY | JSON_ALLOW_NUL,
		    NULL);
		struct jv v = text(lits[i]);
		char *dup;

		ck_assert_msg(json_is_string(j), "%s", lits[i]);
		ck_assert_uint_le(json_string_length(j), jv_str_len_max(v));
		n = jv_str_decode(v, out);
		ck_assert_msg(n == json_string_length(j) &&
		    memcmp(out, json_string_value(j), n) == 0, "%s", lits[i]);
		dup = jv_str_dup(v, &n);
		ck_assert_uint_eq(n, json_string_length(j));
		ck_assert_int_eq(memcmp(dup, json_string_value(j), n), 0);
		ck_assert_int_eq(dup[n], '\0');
		free(dup);
		json_decref(j);
	}
	ck_assert_uint_eq(jv_str_decode(text("12"), out), 0);
	ck_assert_ptr_null(jv_str_dup(text("12"), NULL));
}
END_TEST

START_TEST(raw_and_eq)
{
	const char *p;
	size_t n;

	ck_assert(jv_str_raw(text("\"abc\""), &p, &n));
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(memcmp(p, "abc", 3), 0);
	ck_assert(!jv_str_raw(text("\"a\\nb\""), &p, &n));
	ck_assert(!jv_str_raw(text("[]"), &p, &n));
	ck_assert(jv_str_eq(text("\"response.created\""), "response.created"));
	ck_assert(jv_str_eq(text("\"\\u0074ext\""), "text"));
	ck_assert(!jv_str_eq(text("\"text\""), "tex"));
	ck_assert(!jv_str_eq(text("\"tex\""), "text"));
	ck_assert(!jv_str_eq(text("1"), "1"));
	ck_assert(!jv_str_eq(JV_ABSENT, ""));
}
END_TEST


static Suite *
jsonv_suite(void)
{
	Suite *s = suite_create("jsonv");
	TCase *tc = tcase_create("read");

	tcase_add_test(tc, members);
	tcase_add_test(tc, arrays);
	tcase_add_test(tc, integers);
	tcase_add_test(tc, strings);
	tcase_add_test(tc, raw_and_eq);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(jsonv_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
