/*
 * test_signature.c - the invisible signature codec.
 *
 * Expected encodings are built here independently of the codec: marks are
 * written as string literals, bit by bit with a plain mask loop, and the
 * first byte of the reference id is spelled out by hand.  Texts are built
 * with a small appender so a case reads as the pieces it is made of.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signature.h"

#define ZS "\xe2\x80\x8b"	/* U+200B start */
#define Z1 "\xe2\x80\x8c"	/* U+200C bit 1 */
#define Z0 "\xe2\x80\x8d"	/* U+200D bit 0 */
#define ZE "\xe2\x80\x8e"	/* U+200E end */

#define ALPHABET "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
	"0123456789._:-"

struct text {
	char s[16384];
	size_t len;
};

static void
put(struct text *t, const char *s)
{
	size_t n = strlen(s);

	ck_assert_uint_lt(t->len + n, sizeof(t->s));
	memcpy(t->s + t->len, s, n + 1);
	t->len += n;
}

/* Marks for the bytes of id, with the given spellings of 1 and 0. */
static void
put_bits(struct text *t, const char *id, size_t len, const char *one,
    const char *zero)
{
	size_t i;
	unsigned mask;

	for (i = 0; i < len; i++)
		for (mask = 0x80; mask != 0; mask >>= 1)
			put(t, ((unsigned char)id[i] & mask) ? one : zero);
}

/* A signature spelled independently: raw, or JSON-escaped. */
static void
put_sig(struct text *t, const char *id)
{
	put(t, ZS);
	put_bits(t, id, strlen(id), Z1, Z0);
	put(t, ZE);
}

static void
put_sig_esc(struct text *t, const char *id, int upper)
{
	put(t, upper ? "\\u200B" : "\\u200b");
	put_bits(t, id, strlen(id), upper ? "\\u200C" : "\\u200c",
	    upper ? "\\u200D" : "\\u200d");
	put(t, upper ? "\\u200E" : "\\u200e");
}

static size_t
find(const struct text *t, char *id)
{
	return signature_find_last(t->s, t->len, id);
}

START_TEST(reference_encoding)
{
	const char *id = "thread_V1StGXR8Z5jdHi6B";
	char out[1024];
	struct text want = { .len = 0 };
	size_t n;

	put_sig(&want, id);
	ck_assert_uint_eq(strlen(id), 23);
	ck_assert_uint_eq(signature_encoded_len(23), 186 * 3);
	n = signature_encode(id, strlen(id), out);
	ck_assert_uint_eq(n, 186 * 3);
	ck_assert_uint_eq(want.len, 186 * 3);
	ck_assert(memcmp(out, want.s, n) == 0);
	/* 't' = 0x74 = 0111 0100, by hand */
	ck_assert(memcmp(out, ZS Z0 Z1 Z1 Z1 Z0 Z1 Z0 Z0, 27) == 0);
	ck_assert(memcmp(out + n - 3, ZE, 3) == 0);
	/* every character is one of the four marks, 3 bytes each */
	for (size_t i = 0; i < n; i += 3) {
		ck_assert_uint_eq((unsigned char)out[i], 0xe2);
		ck_assert_uint_eq((unsigned char)out[i + 1], 0x80);
		ck_assert_uint_ge((unsigned char)out[i + 2], 0x8b);
		ck_assert_uint_le((unsigned char)out[i + 2], 0x8e);
	}
}
END_TEST

START_TEST(round_trips)
{
	char id[SIGNATURE_ID_MAX + 1], got[SIGNATURE_ID_MAX + 1];
	char enc[(8 * SIGNATURE_ID_MAX + 2) * 3];
	unsigned seed = 12345;
	size_t len, n, i, round;

	for (round = 0; round < 2000; round++) {
		len = round < SIGNATURE_ID_MAX ? round + 1 :
		    1 + (seed >> 8) % SIGNATURE_ID_MAX;
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			id[i] = ALPHABET[(seed >> 16) % (sizeof(ALPHABET) - 1)];
		}
		id[len] = '\0';
		n = signature_encode(id, len, enc);
		ck_assert_uint_eq(n, signature_encoded_len(len));
		memset(got, 'x', sizeof(got));
		ck_assert_uint_eq(signature_find_last(enc, n, got), len);
		ck_assert_str_eq(got, id);
		ck_assert_uint_eq(signature_find_last_json(enc, n, got), len);
		ck_assert_str_eq(got, id);
		ck_assert_uint_eq(signature_strip(enc, n), 0);
	}
}
END_TEST

START_TEST(whole_alphabet)
{
	char enc[(8 * SIGNATURE_ID_MAX + 2) * 3], got[SIGNATURE_ID_MAX + 1];
	size_t n, i;

	ck_assert_uint_eq(strlen(ALPHABET), 66);
	n = signature_encode(ALPHABET, strlen(ALPHABET), enc);
	ck_assert_uint_eq(signature_find_last(enc, n, got), strlen(ALPHABET));
	ck_assert_str_eq(got, ALPHABET);
	for (i = 0; i < strlen(ALPHABET); i++) {
		n = signature_encode(ALPHABET + i, 1, enc);
		ck_assert_uint_eq(n, 30);
		ck_assert_uint_eq(signature_find_last(enc, n, got), 1);
		ck_assert_int_eq(got[0], ALPHABET[i]);
		ck_assert_int_eq(got[1], '\0');
	}
}
END_TEST

START_TEST(id_validity)
{
	char longid[SIGNATURE_ID_MAX + 2], enc[16];

	memset(longid, 'a', sizeof(longid));
	ck_assert(signature_id_valid(longid, SIGNATURE_ID_MAX));
	ck_assert(!signature_id_valid(longid, SIGNATURE_ID_MAX + 1));
	ck_assert(!signature_id_valid("", 0));
	ck_assert(!signature_id_valid("a b", 3));
	ck_assert(!signature_id_valid("a/b", 3));
	ck_assert(!signature_id_valid("a\0b", 3));
	ck_assert(!signature_id_valid("\xc3\xa9", 2));
	ck_assert(signature_id_valid("req_1.2:3-x", 11));
	/* encode refuses, writing nothing */
	memset(enc, 0, sizeof(enc));
	ck_assert_uint_eq(signature_encode("a b", 3, enc), 0);
	ck_assert_uint_eq(signature_encode("", 0, enc), 0);
	ck_assert_uint_eq(enc[0], 0);
}
END_TEST

START_TEST(truncated)
{
	char enc[1024], got[SIGNATURE_ID_MAX + 1];
	size_t n = signature_encode("trace_abc", 9, enc), cut;

	/* every prefix that ends before the end mark is complete */
	for (cut = 0; cut < n; cut++) {
		strcpy(got, "untouched");
		ck_assert_uint_eq(signature_find_last(enc, cut, got), 0);
		ck_assert_str_eq(got, "untouched");
	}
	ck_assert_uint_eq(signature_find_last(enc, n, got), 9);
}
END_TEST

START_TEST(malformed)
{
	struct text t;
	char got[SIGNATURE_ID_MAX + 1], big[SIGNATURE_ID_MAX + 2];

	/* a bit short: 7 bits in the last byte */
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, "ab", 2, Z1, Z0);
	t.len -= 3;
	put(&t, ZE);
	ck_assert_uint_eq(find(&t, got), 0);
	/* a bit too many */
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, "ab", 2, Z1, Z0);
	put(&t, Z0 ZE);
	ck_assert_uint_eq(find(&t, got), 0);
	/* a byte outside the alphabet: space, NUL, 0xff */
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, "a b", 3, Z1, Z0);
	put(&t, ZE);
	ck_assert_uint_eq(find(&t, got), 0);
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, "a\0", 2, Z1, Z0);
	put(&t, ZE);
	ck_assert_uint_eq(find(&t, got), 0);
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, "\xff", 1, Z1, Z0);
	put(&t, ZE);
	ck_assert_uint_eq(find(&t, got), 0);
	/* another character inside: a letter, a start, a space */
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, "a", 1, Z1, Z0);
	put(&t, "x");
	put_bits(&t, "b", 1, Z1, Z0);
	put(&t, ZE);
	ck_assert_uint_eq(find(&t, got), 0);
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, "a", 1, Z1, Z0);
	put(&t, " " ZE);
	ck_assert_uint_eq(find(&t, got), 0);
	/* empty, end alone, start alone, reversed */
	t = (struct text){ .len = 0 };
	put(&t, "x" ZS ZE "y" ZE ZS "z");
	ck_assert_uint_eq(find(&t, got), 0);
	/* 129 bytes */
	memset(big, 'a', sizeof(big));
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, big, SIGNATURE_ID_MAX + 1, Z1, Z0);
	put(&t, ZE);
	ck_assert_uint_eq(find(&t, got), 0);
	/* 128 bytes is fine */
	t = (struct text){ .len = 0 };
	put(&t, ZS);
	put_bits(&t, big, SIGNATURE_ID_MAX, Z1, Z0);
	put(&t, ZE);
	ck_assert_uint_eq(find(&t, got), SIGNATURE_ID_MAX);
	/* lone bits, no start */
	t = (struct text){ .len = 0 };
	put_bits(&t, "abc", 3, Z1, Z0);
	put(&t, ZE);
	ck_assert_uint_eq(find(&t, got), 0);
}
END_TEST

START_TEST(newest_wins)
{
	struct text t = { .len = 0 };
	char got[SIGNATURE_ID_MAX + 1];

	put(&t, "first ");
	put_sig(&t, "old_trace");
	put(&t, " then ");
	put_sig(&t, "new_trace");
	put(&t, " end");
	ck_assert_uint_eq(find(&t, got), 9);
	ck_assert_str_eq(got, "new_trace");

	/* a malformed one after a good one does not hide it */
	t = (struct text){ .len = 0 };
	put_sig(&t, "good");
	put(&t, ZS);
	put_bits(&t, "bad", 3, Z1, Z0);
	put(&t, "oops");
	ck_assert_uint_eq(find(&t, got), 4);
	ck_assert_str_eq(got, "good");

	/* a stray start right before a good signature */
	t = (struct text){ .len = 0 };
	put(&t, ZS Z1 Z0 Z1);
	put_sig(&t, "after_stray");
	ck_assert_uint_eq(find(&t, got), 11);
	ck_assert_str_eq(got, "after_stray");

	/* two signatures back to back */
	t = (struct text){ .len = 0 };
	put_sig(&t, "one");
	put_sig(&t, "two");
	ck_assert_uint_eq(find(&t, got), 3);
	ck_assert_str_eq(got, "two");
}
END_TEST

START_TEST(multibyte_neighbours)
{
	static const char *const around[] = {
		"\xc3\xa9",			/* é */
		"\xf0\x9f\x98\x80",		/* 😀 */
		"\xe4\xb8\xad\xe6\x96\x87",	/* 中文 */
		"\xe2\x80\x94",			/* — (E2 80 94) */
		"\xe2\x80",			/* a cut E2 80 */
		"\xe2",
	};
	size_t i, j;

	for (i = 0; i < sizeof(around) / sizeof(around[0]); i++)
		for (j = 0; j < sizeof(around) / sizeof(around[0]); j++) {
			struct text t = { .len = 0 };
			char got[SIGNATURE_ID_MAX + 1];

			put(&t, "Answer ");
			put(&t, around[i]);
			put_sig(&t, "trace_mb");
			put(&t, around[j]);
			ck_assert_uint_eq(find(&t, got), 8);
			ck_assert_str_eq(got, "trace_mb");
			ck_assert_uint_eq(signature_find_last_json(t.s, t.len,
			    got), 8);
			/* strip leaves the neighbours intact */
			t.len = signature_strip(t.s, t.len);
			t.s[t.len] = '\0';
			ck_assert_uint_eq(t.len, 7 + strlen(around[i]) +
			    strlen(around[j]));
			ck_assert(memcmp(t.s + 7, around[i],
			    strlen(around[i])) == 0);
		}
}
END_TEST

START_TEST(stray_marks)
{
	struct text t = { .len = 0 };
	char got[SIGNATURE_ID_MAX + 1];

	put(&t, "a" ZS "b" Z1 "c" Z0 "d" ZE "e");
	ck_assert_uint_eq(find(&t, got), 0);
	t.len = signature_strip(t.s, t.len);
	ck_assert_uint_eq(t.len, 5);
	ck_assert(memcmp(t.s, "abcde", 5) == 0);
	/* a family emoji loses its joiners: documented */
	t = (struct text){ .len = 0 };
	put(&t, "\xf0\x9f\x91\xa8" Z0 "\xf0\x9f\x91\xa9");
	t.len = signature_strip(t.s, t.len);
	ck_assert_uint_eq(t.len, 8);
	/* U+200A and U+200F are not ours */
	t = (struct text){ .len = 0 };
	put(&t, "\xe2\x80\x8a\xe2\x80\x8f");
	ck_assert_uint_eq(signature_strip(t.s, t.len), 6);
}
END_TEST

START_TEST(strip_raw)
{
	struct text t = { .len = 0 };

	put(&t, "Hello ");
	put_sig(&t, "trace_1");
	put(&t, " \xc3\xa9t\xc3\xa9 " Z1);
	put_sig(&t, "trace_2");
	put(&t, "\\u200b");	/* raw text, not an escape here */
	t.len = signature_strip(t.s, t.len);
	t.s[t.len] = '\0';
	ck_assert_str_eq(t.s, "Hello  \xc3\xa9t\xc3\xa9 \\u200b");
	ck_assert_uint_eq(signature_strip(t.s, 0), 0);
}
END_TEST

START_TEST(json_forms)
{
	struct text t = { .len = 0 };
	char got[SIGNATURE_ID_MAX + 1];

	put(&t, "Done.\\n");
	put_sig_esc(&t, "thread_esc", 0);
	ck_assert_uint_eq(signature_find_last_json(t.s, t.len, got), 10);
	ck_assert_str_eq(got, "thread_esc");
	/* the raw finder does not read escapes */
	ck_assert_uint_eq(signature_find_last(t.s, t.len, got), 0);
	ck_assert(signature_present_json(t.s, t.len));
	t.len = signature_strip_json(t.s, t.len);
	t.s[t.len] = '\0';
	ck_assert_str_eq(t.s, "Done.\\n");
	ck_assert(!signature_present_json(t.s, t.len));

	/* upper-case hex, then raw, newest wins */
	t = (struct text){ .len = 0 };
	put_sig_esc(&t, "upper", 1);
	put(&t, " \\\"q\\\" \\u00e9 ");
	put_sig(&t, "raw_last");
	ck_assert_uint_eq(signature_find_last_json(t.s, t.len, got), 8);
	ck_assert_str_eq(got, "raw_last");
	t.len = signature_strip_json(t.s, t.len);
	t.s[t.len] = '\0';
	ck_assert_str_eq(t.s, " \\\"q\\\" \\u00e9 ");

	/* mixed hex case, and forms mixed within one signature */
	t = (struct text){ .len = 0 };
	put(&t, "\\u200B");
	put_bits(&t, "m", 1, "\\u200C", Z0);
	put_bits(&t, "x", 1, Z1, "\\u200d");
	put(&t, "\\u200E");
	ck_assert_uint_eq(signature_find_last_json(t.s, t.len, got), 2);
	ck_assert_str_eq(got, "mx");

	/* other \u escapes inside a signature break it */
	t = (struct text){ .len = 0 };
	put(&t, "\\u200b");
	put_bits(&t, "a", 1, "\\u200c", "\\u200d");
	put(&t, "\\u200f\\u200e");
	ck_assert_uint_eq(signature_find_last_json(t.s, t.len, got), 0);
	t.len = signature_strip_json(t.s, t.len);
	t.s[t.len] = '\0';
	ck_assert_str_eq(t.s, "\\u200f");
}
END_TEST

START_TEST(backslash_parity)
{
	struct text t = { .len = 0 };
	char got[SIGNATURE_ID_MAX + 1];

	/* \\u200b: an escaped backslash, then the text u200b */
	put(&t, "a\\\\u200bb");
	ck_assert(!signature_present_json(t.s, t.len));
	ck_assert_uint_eq(signature_strip_json(t.s, t.len), t.len);
	/* \\\u200b: an escaped backslash, then U+200B */
	t = (struct text){ .len = 0 };
	put(&t, "a\\\\\\u200bb");
	t.len = signature_strip_json(t.s, t.len);
	t.s[t.len] = '\0';
	ck_assert_str_eq(t.s, "a\\\\b");
	/* \\\\u200c: two escaped backslashes */
	t = (struct text){ .len = 0 };
	put(&t, "\\\\\\\\u200c");
	ck_assert_uint_eq(signature_strip_json(t.s, t.len), t.len);
	/* a signature whose marks are all behind escaped backslashes */
	t = (struct text){ .len = 0 };
	put(&t, "\\\\u200b");
	put_bits(&t, "ab", 2, "\\\\u200c", "\\\\u200d");
	put(&t, "\\\\u200e");
	ck_assert_uint_eq(signature_find_last_json(t.s, t.len, got), 0);
	/* \u escapes of other characters and a backslash at the very end */
	t = (struct text){ .len = 0 };
	put(&t, "\\u0041\\u200\\");
	ck_assert_uint_eq(signature_strip_json(t.s, t.len), t.len);
	ck_assert(!signature_present_json(t.s, t.len));
	/* an escape cut short at the end */
	t = (struct text){ .len = 0 };
	put(&t, "x\\u20");
	ck_assert_uint_eq(signature_strip_json(t.s, t.len), t.len);
}
END_TEST

/* Random mixtures of marks, escapes and text: no crash, nothing left. */
START_TEST(random_soup)
{
	static const char *const pieces[] = {
		ZS, Z1, Z0, ZE, "\\u200b", "\\u200C", "\\u200d", "\\u200E",
		"\\", "\\\\", "\\u", "\\u20", "\\u200", "a", "\xe2",
		"\xe2\x80", "\xc3\xa9", "\\n", "\\\"", "u200b",
	};
	unsigned seed = 7;
	size_t round, k, n;
	char got[SIGNATURE_ID_MAX + 1];

	for (round = 0; round < 20000; round++) {
		struct text t = { .len = 0 };

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % 40;
		for (k = 0; k < n; k++) {
			seed = seed * 1103515245u + 12345u;
			put(&t, pieces[(seed >> 16) %
			    (sizeof(pieces) / sizeof(pieces[0]))]);
		}
		(void)signature_find_last(t.s, t.len, got);
		(void)signature_find_last_json(t.s, t.len, got);
		t.len = signature_strip_json(t.s, t.len);
		ck_assert(!signature_present_json(t.s, t.len));
		ck_assert_uint_eq(signature_strip_json(t.s, t.len), t.len);
		t.len = signature_strip(t.s, t.len);
		ck_assert_uint_eq(signature_strip(t.s, t.len), t.len);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("signature");
	TCase *tc = tcase_create("codec");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, reference_encoding);
	tcase_add_test(tc, round_trips);
	tcase_add_test(tc, whole_alphabet);
	tcase_add_test(tc, id_validity);
	tcase_add_test(tc, truncated);
	tcase_add_test(tc, malformed);
	tcase_add_test(tc, newest_wins);
	tcase_add_test(tc, multibyte_neighbours);
	tcase_add_test(tc, stray_marks);
	tcase_add_test(tc, strip_raw);
	tcase_add_test(tc, json_forms);
	tcase_add_test(tc, backslash_parity);
	tcase_add_test(tc, random_soup);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
