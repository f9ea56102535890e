/* Unit tests: header filtering (hdr.c), auth (auth.c), error bodies
 * (apierr.c) and JSON member spans (jsonscan.c). */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "apierr.h"
#include "auth.h"
#include "hdr.h"
#include "jsonscan.h"

START_TEST(client_headers)
{
	const char *pass[] = { "anthropic-version", "Anthropic-Beta", "openai-organization",
	    "OpenAI-Project", "openai-beta", "Idempotency-Key", "content-type", "ACCEPT" };
	const char *drop[] = { "Authorization", "x-api-key", "Host", "Cookie", "User-Agent",
	    "Connection", "Content-Length", "Transfer-Encoding", "X-Request-Id",
	    "Proxy-Authorization", "Accept-Encoding", "X-Trace-Id" };

	for (size_t i = 0; i < sizeof(pass) / sizeof(*pass); i++)
		ck_assert_msg(hdr_client_passthrough(pass[i]), "%s should pass", pass[i]);
	for (size_t i = 0; i < sizeof(drop) / sizeof(*drop); i++)
		ck_assert_msg(!hdr_client_passthrough(drop[i]), "%s should not pass", drop[i]);
}
END_TEST

START_TEST(response_headers)
{
	const char *hop[] = { "Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
	    "Transfer-Encoding", "Upgrade", "Proxy-Authenticate" };

	for (size_t i = 0; i < sizeof(hop) / sizeof(*hop); i++)
		ck_assert_msg(!hdr_response_passthrough(hop[i], NULL, false), "%s", hop[i]);
	ck_assert(!hdr_response_passthrough("Content-Length", NULL, false));
	ck_assert(!hdr_response_passthrough("Date", NULL, false));
	ck_assert(hdr_response_passthrough("Content-Type", NULL, false));
	ck_assert(hdr_response_passthrough("x-ratelimit-remaining-requests", NULL, false));
	ck_assert(hdr_response_passthrough("Cache-Control", NULL, false));
	ck_assert(!hdr_response_passthrough("Cache-Control", NULL, true));
	ck_assert(!hdr_response_passthrough("X-Accel-Buffering", NULL, true));
	/* Headers named by Connection are hop-by-hop too (RFC 9110 7.6.1). */
	ck_assert(!hdr_response_passthrough("X-Hop", "close, x-hop", false));
	ck_assert(!hdr_response_passthrough("X-Hop", " X-HOP ", false));
	ck_assert(hdr_response_passthrough("X-Hop2", "x-hop", false));
	ck_assert(hdr_list_has("a, b ,c", "b", 1));
	ck_assert(!hdr_list_has("ab, bc", "b", 1));
	ck_assert(!hdr_list_has("", "b", 1));
}
END_TEST

START_TEST(auth_extract_forms)
{
	size_t n = 0;
	const char *k;

	k = auth_extract("Bearer abc", NULL, &n);
	ck_assert(k && n == 3 && memcmp(k, "abc", 3) == 0);
	k = auth_extract("bearer   abc  ", NULL, &n);
	ck_assert(k && n == 3 && memcmp(k, "abc", 3) == 0);
	k = auth_extract("BEARER\tabc", NULL, &n);
	ck_assert(k && n == 3);
	ck_assert_ptr_null(auth_extract("Basic abc", NULL, &n));
	ck_assert_ptr_null(auth_extract("Bearer", NULL, &n));
	ck_assert_ptr_null(auth_extract("Bearer   ", NULL, &n));
	ck_assert_ptr_null(auth_extract("Bearerabc", NULL, &n));
	k = auth_extract(NULL, " xyz ", &n);
	ck_assert(k && n == 3 && memcmp(k, "xyz", 3) == 0);
	/* Authorization wins when both are sent; a bad one falls back. */
	k = auth_extract("Bearer one", "two", &n);
	ck_assert(k && memcmp(k, "one", 3) == 0);
	k = auth_extract("Basic one", "two", &n);
	ck_assert(k && memcmp(k, "two", 3) == 0);
	ck_assert_ptr_null(auth_extract(NULL, NULL, &n));
	ck_assert_ptr_null(auth_extract(NULL, "", &n));
}
END_TEST

START_TEST(auth_lookup_keys)
{
	struct apikey keys[3] = { { .name = "a" }, { .name = "b" }, { .name = "c" } };
	struct config cfg = { .keys = keys, .nkeys = 3 };

	auth_sha256("key-a", 5, keys[0].sha256);
	auth_sha256("key-b", 5, keys[1].sha256);
	auth_sha256("key-c", 5, keys[2].sha256);
	ck_assert_ptr_eq(auth_lookup(&cfg, "key-a", 5), &keys[0]);
	ck_assert_ptr_eq(auth_lookup(&cfg, "key-b", 5), &keys[1]);
	ck_assert_ptr_eq(auth_lookup(&cfg, "key-c", 5), &keys[2]);
	ck_assert_ptr_null(auth_lookup(&cfg, "key-d", 5));
	ck_assert_ptr_null(auth_lookup(&cfg, "key-a ", 6));
	ck_assert_ptr_null(auth_lookup(&cfg, "", 0));
	cfg.nkeys = 0;
	ck_assert_ptr_null(auth_lookup(&cfg, "key-a", 5));
}
END_TEST

START_TEST(auth_sha256_vector)
{
	uint8_t h[32];
	char hex[65];

	auth_sha256("abc", 3, h);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", h[i]);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(auth_new_keys)
{
	char a[AUTH_KEY_LEN + 1], b[AUTH_KEY_LEN + 1];

	ck_assert_int_eq(auth_new_key(a), 0);
	ck_assert_int_eq(auth_new_key(b), 0);
	ck_assert_uint_eq(strlen(a), 39);
	ck_assert(strncmp(a, "whyops_", 7) == 0);
	for (size_t i = 7; i < strlen(a); i++)
		ck_assert(strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", a[i]));
	ck_assert_str_ne(a, b);
}
END_TEST

static json_t *
parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	ck_assert_msg(j != NULL, "invalid JSON %s: %s", s, e.text);
	return j;
}

START_TEST(apierr_shapes)
{
	size_t len;
	char *b = apierr_body(API_OPENAI, 401, "invalid_api_key", "bad \"key\"", &len);
	json_t *j = parse(b);

	ck_assert_uint_eq(len, strlen(b));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "bad \"key\"");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "type")), "invalid_request_error");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "invalid_api_key");
	ck_assert(json_is_null(json_object_get(json_object_get(j, "error"), "param")));
	json_decref(j);
	free(b);

	b = apierr_body(API_OPENAI, 502, NULL, "m", &len);
	j = parse(b);
	ck_assert(json_is_null(json_object_get(json_object_get(j, "error"), "code")));
	json_decref(j);
	free(b);

	b = apierr_body(API_ANTHROPIC, 413, "ignored", "too big", &len);
	j = parse(b);
	ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "error");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "type")), "request_too_large");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "too big");
	ck_assert_uint_eq(json_object_size(json_object_get(j, "error")), 2);
	json_decref(j);
	free(b);

	ck_assert_str_eq(apierr_type(API_ANTHROPIC, 401), "authentication_error");
	ck_assert_str_eq(apierr_type(API_ANTHROPIC, 404), "not_found_error");
	ck_assert_str_eq(apierr_type(API_ANTHROPIC, 403), "permission_error");
	ck_assert_str_eq(apierr_type(API_ANTHROPIC, 500), "api_error");
	ck_assert_str_eq(apierr_type(API_OPENAI, 418), "invalid_request_error");
}
END_TEST

/* A message quoting a client's bytes: never a failed json_pack (abort). */
START_TEST(apierr_invalid_utf8)
{
	size_t len;
	char *b = apierr_body(API_OPENAI, 404, "not_found", "unknown path /\xff\xc3", &len);
	json_t *j = parse(b);

	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
	    "unknown path /??");
	json_decref(j);
	free(b);
	b = apierr_body(API_ANTHROPIC, 400, NULL, "model 'a\xed\xa0\x80\xc3\xa9'", &len);
	j = parse(b);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
	    "model 'a???\xc3\xa9'");
	json_decref(j);
	free(b);

	char m[] = "a\nb\x1b[31m\x7f\xf0\x9f\x98\x80\xf0\x9f";
	apierr_sanitize(m, true);
	ck_assert_str_eq(m, "a?b?[31m?\xf0\x9f\x98\x80??");
}
END_TEST

static void
span(const char *s, const char *key, const char *want)
{
	size_t b = 0, e = 0;
	int r = jsonscan_member(s, strlen(s), key, &b, &e);

	if (want == NULL) {
		ck_assert_int_eq(r, -1);
		return;
	}
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(e - b, strlen(want));
	ck_assert(memcmp(s + b, want, e - b) == 0);
}

START_TEST(jsonscan_members)
{
	span("{\"model\":\"gpt\"}", "model", "\"gpt\"");
	span(" { \"a\" : 1 , \"model\" : \"x\\\"y\" } ", "model", "\"x\\\"y\"");
	span("{\"a\":{\"model\":\"inner\"},\"model\":\"outer\"}", "model", "\"outer\"");
	span("{\"a\":[\"model\",{\"model\":1}],\"b\":\"}\"}", "model", NULL);
	span("{\"a\":\"\\\\\",\"model\":null}", "model", "null");
	span("{\"model\":1,\"model\":2}", "model", "2");
	span("{\"models\":1}", "model", NULL);
	span("[{\"model\":1}]", "model", NULL);
	span("{\"n\":-1.5e3,\"model\":true}", "model", "true");
	span("{}", "model", NULL);
}
END_TEST

static void
valid(const char *s)
{
	size_t at = 0;
	const char *err = NULL;

	ck_assert_msg(jsonscan_validate(s, strlen(s), &at, &err) == 0,
	    "'%s' should be valid: %s at %zu", s, err, at);
}

static void
invalid(const char *s, size_t want_at)
{
	size_t at = 0;
	const char *err = NULL;

	ck_assert_msg(jsonscan_validate(s, strlen(s), &at, &err) == -1, "'%s' should be invalid", s);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(at == want_at, "'%s': error at %zu, want %zu (%s)", s, at, want_at, err);
}

/* Long plain runs are scanned 8 bytes at a time: a special byte at every
 * offset of a word, in runs of every length, is still seen. */
/* Strings are skipped with a short plain loop, then memchr: escaped
 * quotes and backslash runs on either side of the switch, in strings of
 * every length, end where a plain reading ends them. */
START_TEST(jsonscan_skip_strings)
{
	static const char *const pieces[] = { "a", "\\\"", "\\\\", "\\n",
	    "\xc3\xa9", "\\u0041", "\\\\\\\"", "bb" };
	char obj[256], str[160];
	size_t i, k, n, len, pos, kb, ke, vb, ve;
	unsigned seed = 7;

	for (i = 0; i < 50000; i++) {
		len = 0;
		seed = seed * 1103515245 + 12345;
		for (k = (seed >> 16) % 24; k > 0; k--) {
			seed = seed * 1103515245 + 12345;
			const char *pc = pieces[(seed >> 16) % 8];
			memcpy(str + len, pc, strlen(pc));
			len += strlen(pc);
		}
		/* {"<str>":"<str>","z":7} */
		n = (size_t)snprintf(obj, sizeof(obj), "{\"%.*s\":\"%.*s\","
		    "\"z\":7}", (int)len, str, (int)len, str);
		pos = 0;
		ck_assert_int_eq(jsonscan_next_member(obj, n, &pos, &kb, &ke,
		    &vb, &ve), 0);
		ck_assert_uint_eq(ke - kb, len + 2);
		ck_assert_uint_eq(ve - vb, len + 2);
		ck_assert_int_eq(jsonscan_next_member(obj, n, &pos, &kb, &ke,
		    &vb, &ve), 0);
		ck_assert_msg(ke - kb == 3 && memcmp(obj + kb, "\"z\"", 3) == 0,
		    "%s", obj);
		ck_assert(ve - vb == 1 && obj[vb] == '7');
	}
}
END_TEST

START_TEST(jsonscan_validation_runs)
{
	static const struct {
		const char *ins;	/* put into a run of 'a' */
		bool ok;
		int at;			/* error offset from the insertion */
	} cases[] = {
		{ "\x01", false, 0 }, { "\x1f", false, 0 }, { "\x7f", true, 0 },
		{ " ", true, 0 }, { "\x80", false, 0 }, { "\xff", false, 0 },
		{ "\xc3\xa9", true, 0 }, { "\xc3", false, 0 },
		{ "\\n", true, 0 }, { "\\q", false, 1 }, { "\"", false, 1 },
		{ "!", true, 0 }, { "#", true, 0 }, { "[", true, 0 },
		{ "]", true, 0 }, { "\\\\", true, 0 }, { "\\\"", true, 0 },
	};
	char s[64];
	size_t c, len, k, n, at;
	const char *err;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		for (len = 0; len <= 24; len++)
			for (k = 0; k <= len; k++) {
				/* "aaa<ins>aaa", the insertion at offset k */
				n = 0;
				s[n++] = '"';
				memset(s + n, 'a', k);
				n += k;
				memcpy(s + n, cases[c].ins, strlen(cases[c].ins));
				n += strlen(cases[c].ins);
				memset(s + n, 'a', len - k);
				n += len - k;
				s[n++] = '"';
				s[n] = '\0';
				at = 0;
				err = NULL;
				if (cases[c].ok) {
					ck_assert_msg(jsonscan_validate(s, n, &at,
					    &err) == 0, "case %zu at %zu/%zu: %s",
					    c, k, len, err);
					continue;
				}
				ck_assert_msg(jsonscan_validate(s, n, &at, &err)
				    == -1, "case %zu at %zu/%zu valid", c, k, len);
				ck_assert_msg(at == 1 + k + (size_t)cases[c].at,
				    "case %zu at %zu/%zu: error at %zu (%s)", c,
				    k, len, at, err);
			}
}
END_TEST

START_TEST(jsonscan_validation)
{
	char deep[2 * JSONSCAN_MAX_DEPTH + 8];

	valid("{}");
	valid(" [ ] ");
	valid("{\"a\":[1,-2.5e+3,0,0.1,1E9,true,false,null,\"x\\n\\u00e9\\/\"],\"b\":{}}");
	valid("\"\xc3\xa9\xe2\x80\x8b\xf0\x9f\x98\x80\"");
	valid("3");
	invalid("", 0);
	invalid("{", 1);
	invalid("{\"a\"}", 4);
	invalid("{\"a\":1,}", 7);
	invalid("[1,]", 3);
	invalid("[01]", 2);
	invalid("[1.]", 3);
	invalid("[-]", 2);
	invalid("{a:1}", 1);
	invalid("[tru]", 1);
	invalid("\"abc", 4);
	invalid("\"a\\x\"", 3);
	invalid("\"\\u12g4\"", 3);
	invalid("\"\x01\"", 1);
	invalid("\"\xc3\"", 1);
	invalid("\"\xed\xa0\x80\"", 1);	/* UTF-16 surrogate in UTF-8 */
	invalid("\"\xc0\x80\"", 1);		/* overlong */
	invalid("{} {}", 3);
	invalid("[1 2]", 3);
	memset(deep, '[', JSONSCAN_MAX_DEPTH + 1);
	deep[JSONSCAN_MAX_DEPTH + 1] = '\0';
	invalid(deep, JSONSCAN_MAX_DEPTH);
}
END_TEST

START_TEST(jsonscan_strings)
{
	char out[64];

	ck_assert_int_eq(jsonscan_string_value("\"gpt-4o\"", 8, out, sizeof(out)), 6);
	ck_assert_str_eq(out, "gpt-4o");
	ck_assert_int_eq(jsonscan_string_value("\"a\\/b\\u00e9\\ud83d\\ude00\"", 24, out, sizeof(out)), 9);
	ck_assert_str_eq(out, "a/b\xc3\xa9\xf0\x9f\x98\x80");
	ck_assert_int_eq(jsonscan_string_value("\"\\u0000\"", 8, out, sizeof(out)), -1);
	ck_assert_int_eq(jsonscan_string_value("12", 2, out, sizeof(out)), -1);
	ck_assert_int_eq(jsonscan_string_value("\"abcdef\"", 8, out, 4), -1);
	/* Unvalidated input: bad or cut-short \u escapes are refused, and no
	 * byte past the token is read (the token's copy has nothing after it). */
	static const char *const bad[] = { "\"\\u\"", "\"\\u12\"", "\"\\u123\"",
	    "\"gpt-\\uZZZZ\"", "\"\\u00g1\"", "\"\\u!!!!\"" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		size_t n = strlen(bad[k]);
		char *tok = malloc(n);

		memcpy(tok, bad[k], n);		/* not NUL-terminated */
		ck_assert_int_eq(jsonscan_string_value(tok, n, out, sizeof(out)), -1);
		free(tok);
	}
	/* A high surrogate followed by a bad escape: refused too. */
	ck_assert_int_eq(jsonscan_string_value("\"\\ud83d\\u00zz\"", 14, out, sizeof(out)), -1);
	ck_assert_int_eq(jsonscan_string_value("\"\\u0041\\u00E9\"", 14, out, sizeof(out)), 3);
	ck_assert_str_eq(out, "A\xc3\xa9");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, client_headers);
	tcase_add_test(tc, response_headers);
	tcase_add_test(tc, auth_extract_forms);
	tcase_add_test(tc, auth_lookup_keys);
	tcase_add_test(tc, auth_sha256_vector);
	tcase_add_test(tc, auth_new_keys);
	tcase_add_test(tc, apierr_shapes);
	tcase_add_test(tc, apierr_invalid_utf8);
	tcase_add_test(tc, jsonscan_members);
	tcase_add_test(tc, jsonscan_validation);
	tcase_add_test(tc, jsonscan_validation_runs);
	tcase_add_test(tc, jsonscan_skip_strings);
	tcase_add_test(tc, jsonscan_strings);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
