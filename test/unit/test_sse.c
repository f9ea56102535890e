/*
 * test_sse.c - the text/event-stream parser against the WHATWG rules.
 *
 * Every case is fed whole, one byte at a time, and split in two and in
 * three at every position; all feedings must dispatch the same events with
 * the same offsets and report the same end-of-stream state.  Events are
 * rendered to one line each ("type|data|id|retry|end" with bytes escaped)
 * so a case reads as its expected output.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

struct collect {
	char *out;
	size_t len;
	size_t cap;
};

static void
collect_put(struct collect *c, const char *s, size_t n)
{
	if (c->len + n + 1 > c->cap) {
		c->cap = (c->len + n + 1) * 2;
		c->out = realloc(c->out, c->cap);
		ck_assert_ptr_nonnull(c->out);
	}
	memcpy(c->out + c->len, s, n);
	c->len += n;
	c->out[c->len] = '\0';
}

static void
collect_esc(struct collect *c, const char *s, size_t n)
{
	char hex[8];
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\n')
			collect_put(c, "\\n", 2);
		else if (ch == '|' || ch == '\\' || ch < 0x20 || ch >= 0x7f) {
			snprintf(hex, sizeof(hex), "\\x%02x", ch);
			collect_put(c, hex, strlen(hex));
		} else
			collect_put(c, s + i, 1);
	}
}

static void
on_event(void *ud, const struct sse_event *ev)
{
	struct collect *c = ud;
	char num[64];

	ck_assert_uint_eq(ev->data[ev->data_len], '\0');
	collect_esc(c, ev->type, ev->type_len);
	collect_put(c, "|", 1);
	collect_esc(c, ev->data, ev->data_len);
	collect_put(c, "|", 1);
	collect_esc(c, ev->id, ev->id_len);
	snprintf(num, sizeof(num), "|%lld|%llu\n", (long long)ev->retry,
	    (unsigned long long)ev->end);
	collect_put(c, num, strlen(num));
}

/* Feed in pieces ending at cuts[0..ncuts), then finish; returns the render
 * plus a trailer with the end state. */
static char *
run(const char *in, size_t len, size_t max, const size_t *cuts, size_t ncuts)
{
	struct collect c = { 0 };
	struct sse_parser *p = sse_new(max, on_event, &c);
	struct sse_stats st;
	size_t from = 0, i;
	char tail[128];
	int partial;

	for (i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		ck_assert_int_eq(sse_feed(p, in + from, to - from), 0);
		from = to;
		ck_assert_uint_le(sse_memory(p), 4 * (max + 1));
	}
	partial = sse_finish(p);
	ck_assert_int_eq(sse_feed(p, "x", 1), -1);
	sse_stats(p, &st);
	ck_assert_uint_eq(st.bytes, len);
	snprintf(tail, sizeof(tail), "partial=%d oversized=%llu boundary=%llu",
	    partial, (unsigned long long)st.oversized,
	    (unsigned long long)sse_boundary(p));
	collect_put(&c, tail, strlen(tail));
	sse_free(p);
	if (c.out == NULL)
		collect_put(&c, "", 0);
	return c.out;
}

/* Parse every way and check all agree; return the whole-feed render. */
static char *
parse_all_ways(const char *in, size_t len, size_t max)
{
	char *whole = run(in, len, max, NULL, 0), *got;
	size_t *cuts = malloc((len + 1) * sizeof(*cuts));
	size_t i, j;

	for (i = 0; i < len; i++)
		cuts[i] = i + 1;
	got = run(in, len, max, cuts, len > 0 ? len - 1 : 0);
	ck_assert_str_eq(got, whole);
	free(got);
	for (i = 0; i <= len; i++) {
		got = run(in, len, max, &i, 1);
		ck_assert_msg(strcmp(got, whole) == 0, "split at %zu:\n%s\n"
		    "whole:\n%s", i, got, whole);
		free(got);
	}
	for (i = 0; i <= len && len <= 200; i++) {
		for (j = i; j <= len; j++) {
			size_t two[2] = { i, j };

			got = run(in, len, max, two, 2);
			ck_assert_str_eq(got, whole);
			free(got);
		}
	}
	free(cuts);
	return whole;
}

static void
expect_n(const char *in, size_t len, size_t max, const char *want)
{
	char *got = parse_all_ways(in, len, max);

	ck_assert_msg(strcmp(got, want) == 0, "input:\n%s\ngot:\n%s\nwant:\n%s",
	    in, got, want);
	free(got);
}

static void
expect(const char *in, const char *want)
{
	expect_n(in, strlen(in), 1 << 20, want);
}

START_TEST(test_basic)
{
	expect("data: hello\n\n",
	    "message|hello||-1|13\npartial=0 oversized=0 boundary=13");
	expect("data: a\n\ndata: b\n\n",
	    "message|a||-1|9\nmessage|b||-1|18\n"
	    "partial=0 oversized=0 boundary=18");
	expect("", "partial=0 oversized=0 boundary=0");
	expect("\n\n\n", "partial=0 oversized=0 boundary=3");
}
END_TEST

START_TEST(test_multiline_data)
{
	expect("data: a\ndata: b\n\n",
	    "message|a\\nb||-1|17\npartial=0 oversized=0 boundary=17");
	/* only the last LF goes: an empty last data line keeps one */
	expect("data: a\ndata:\n\n",
	    "message|a\\n||-1|15\npartial=0 oversized=0 boundary=15");
	expect("data\ndata\n\n",
	    "message|\\n||-1|11\npartial=0 oversized=0 boundary=11");
}
END_TEST

START_TEST(test_line_endings)
{
	expect("data: a\r\n\r\n",
	    "message|a||-1|10\npartial=0 oversized=0 boundary=10");
	expect("data: a\r\rdata: b\r\r",
	    "message|a||-1|9\nmessage|b||-1|18\n"
	    "partial=0 oversized=0 boundary=18");
	/* CRLF split between CR and LF is still one line ending */
	expect("data: a\r\ndata: b\r\n\r\n",
	    "message|a\\nb||-1|19\npartial=0 oversized=0 boundary=19");
	/* mixed */
	expect("data: a\ndata: b\r\ndata: c\r\n\ndata: d\r\r",
	    "message|a\\nb\\nc||-1|27\nmessage|d||-1|36\n"
	    "partial=0 oversized=0 boundary=36");
	/* LF CR is two line endings: a blank line after the first */
	expect("data: a\n\rdata: b\n\n",
	    "message|a||-1|9\nmessage|b||-1|18\n"
	    "partial=0 oversized=0 boundary=18");
}
END_TEST

START_TEST(test_bom)
{
	expect("\xEF\xBB\xBF" "data: x\n\n",
	    "message|x||-1|12\npartial=0 oversized=0 boundary=12");
	/* only one BOM is stripped: the second is part of the field name */
	expect("\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n",
	    "partial=0 oversized=0 boundary=15");
	/* a partial BOM is content */
	expect("\xEF\xBB" "data: x\n\n", "partial=0 oversized=0 boundary=11");
	expect("\xEF" "\n" "data: x\n\n",
	    "message|x||-1|11\npartial=0 oversized=0 boundary=11");
	expect("\xEF\xBB", "partial=1 oversized=0 boundary=0");
	/* a BOM later in the stream is data */
	expect("data: \xEF\xBB\xBFx\n\n",
	    "message|\\xef\\xbb\\xbfx||-1|12\npartial=0 oversized=0 boundary=12");
}
END_TEST

START_TEST(test_comments)
{
	expect(": hello\ndata: x\n: more\n\n",
	    "message|x||-1|24\npartial=0 oversized=0 boundary=24");
	expect(":\n\n", "partial=0 oversized=0 boundary=3");
	/* a comment alone at the end is not a pending event */
	expect("data: x\n\n: keepalive",
	    "message|x||-1|9\npartial=0 oversized=0 boundary=9");
	expect("data: x\n\n: keepalive\n",
	    "message|x||-1|9\npartial=0 oversized=0 boundary=9");
}
END_TEST

START_TEST(test_fields)
{
	/* no colon: whole line is the name, value empty */
	expect("data\n\n", "message|||-1|6\npartial=0 oversized=0 boundary=6");
	/* one space stripped, not two; none needed */
	expect("data:x\n\ndata:  y\n\ndata: \n\n",
	    "message|x||-1|8\nmessage| y||-1|18\nmessage|||-1|26\n"
	    "partial=0 oversized=0 boundary=26");
	/* only the first colon splits */
	expect("data: a:b: c\n\n",
	    "message|a:b: c||-1|14\npartial=0 oversized=0 boundary=14");
	/* unknown and wrongly cased names are ignored */
	expect("foo: bar\nData: y\nDATA: z\ndata: x\n\n",
	    "message|x||-1|34\npartial=0 oversized=0 boundary=34");
	/* NUL bytes in data pass through */
	expect_n("data: a\0b\n\n", 11, 100,
	    "message|a\\x00b||-1|11\npartial=0 oversized=0 boundary=11");
}
END_TEST

START_TEST(test_event_type)
{
	expect("event: foo\ndata: x\n\ndata: y\n\n",
	    "foo|x||-1|20\nmessage|y||-1|29\npartial=0 oversized=0 boundary=29");
	/* empty data: not dispatched, but the type is reset */
	expect("event: foo\n\ndata: y\n\n",
	    "message|y||-1|21\npartial=0 oversized=0 boundary=21");
	expect("event: foo\nevent: bar\ndata: y\n\n",
	    "bar|y||-1|31\npartial=0 oversized=0 boundary=31");
	/* an empty event type means "message" */
	expect("event\ndata: y\n\n",
	    "message|y||-1|15\npartial=0 oversized=0 boundary=15");
}
END_TEST

START_TEST(test_id)
{
	expect("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
	    "message|a|1|-1|15\nmessage|b|1|-1|24\nmessage|c||-1|36\n"
	    "partial=0 oversized=0 boundary=36");
	/* an id containing NUL is ignored */
	expect_n("id: 7\n\nid: a\0b\ndata: x\n\n", 24, 100,
	    "message|x|7|-1|24\npartial=0 oversized=0 boundary=24");
	/* id set by an event with no data still sticks */
	expect("id: 9\n\ndata: x\n\n",
	    "message|x|9|-1|16\npartial=0 oversized=0 boundary=16");
}
END_TEST

START_TEST(test_retry)
{
	expect("retry: 1500\ndata: a\n\nretry: 15x\ndata: b\n\n"
	    "retry:\ndata: c\n\nretry: 20\ndata: d\n\n",
	    "message|a||1500|21\nmessage|b||1500|41\nmessage|c||1500|57\n"
	    "message|d||20|76\npartial=0 oversized=0 boundary=76");
	expect("retry: -1\ndata: a\n\nretry: 99999999999999999999999\n"
	    "data: b\n\n",
	    "message|a||-1|19\nmessage|b||9223372036854775807|59\n"
	    "partial=0 oversized=0 boundary=59");
}
END_TEST

START_TEST(test_unterminated)
{
	/* "the incomplete event is not dispatched" */
	expect("data: a\n", "partial=1 oversized=0 boundary=0");
	expect("data: a", "partial=1 oversized=0 boundary=0");
	expect("data: a\n\ndata: b\r\n",
	    "message|a||-1|9\npartial=1 oversized=0 boundary=9");
	expect("event: x\n", "partial=1 oversized=0 boundary=0");
	expect("data: a\n\n\r", "message|a||-1|9\npartial=0 oversized=0 "
	    "boundary=10");
}
END_TEST

START_TEST(test_oversized)
{
	/* max 16 line bytes per event; terminators do not count */
	expect_n("data: 0123456789\n\ndata: 0123456789ab\n\ndata: ok\n\n",
	    48, 16,
	    "message|0123456789||-1|18\nmessage|ok||-1|48\n"
	    "partial=0 oversized=1 boundary=48");
	/* many small lines add up; the id seen before the overflow stays */
	expect_n("id: 1\ndata: aaaa\ndata: bbbb\n\ndata: ok\n\n", 39, 16,
	    "message|ok|1|-1|39\npartial=0 oversized=1 boundary=39");
	/* comments count too; the event after still arrives */
	expect_n(": 0123456789012345678\ndata: x\n\ndata: y\n\n", 40, 16,
	    "message|y||-1|40\npartial=0 oversized=1 boundary=40");
	/* oversized and never terminated */
	expect_n("data: x\n\ndata: 01234567890123456789", 35, 16,
	    "message|x||-1|9\npartial=1 oversized=1 boundary=9");
	/* two in a row, CRLF */
	expect_n("data: 01234567890123456789\r\n\r\n"
	    "data: 01234567890123456789\r\n\r\ndata: z\r\n\r\n", 71, 16,
	    "message|z||-1|70\npartial=0 oversized=2 boundary=70");
}
END_TEST

/* The bound holds for a huge event fed in small pieces. */
START_TEST(test_oversized_memory)
{
	struct collect c = { 0 };
	struct sse_parser *p = sse_new(1000, on_event, &c);
	struct sse_stats st;
	char chunk[97];
	int i;

	memset(chunk, 'a', sizeof(chunk));
	sse_feed(p, "data: ", 6);
	for (i = 0; i < 100000; i++) {
		sse_feed(p, chunk, sizeof(chunk));
		ck_assert_uint_le(sse_memory(p), 4 * 1001);
	}
	sse_feed(p, "\n\ndata: after\n\n", 15);
	ck_assert_int_eq(sse_finish(p), 0);
	sse_stats(p, &st);
	ck_assert_uint_eq(st.oversized, 1);
	ck_assert_uint_eq(st.events, 1);
	ck_assert_str_eq(c.out, "message|after||-1|9700021\n");
	sse_free(p);
	free(c.out);
}
END_TEST

/* A realistic stream, long enough to exercise buffer growth. */
START_TEST(test_long_stream)
{
	struct collect want = { 0 };
	char *in = NULL, line[64], *got;
	size_t len = 0;
	int i;

	for (i = 0; i < 120; i++) {
		int n = snprintf(line, sizeof(line),
		    "event: e%d\r\ndata: {\"n\":%d}\r\n\r\n", i % 7, i);

		in = realloc(in, len + (size_t)n + 1);
		memcpy(in + len, line, (size_t)n + 1);
		len += (size_t)n;
		snprintf(line, sizeof(line), "e%d|{\"n\":%d}||-1|%zu\n", i % 7,
		    i, len - 1);
		collect_put(&want, line, strlen(line));
	}
	snprintf(line, sizeof(line), "partial=0 oversized=0 boundary=%zu",
	    len - 1);
	collect_put(&want, line, strlen(line));
	got = parse_all_ways(in, len, 64);
	ck_assert_str_eq(got, want.out);
	free(got);
	free(want.out);
	free(in);
}
END_TEST

static Suite *
sse_suite(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_multiline_data);
	tcase_add_test(tc, test_line_endings);
	tcase_add_test(tc, test_bom);
	tcase_add_test(tc, test_comments);
	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_event_type);
	tcase_add_test(tc, test_id);
	tcase_add_test(tc, test_retry);
	tcase_add_test(tc, test_unterminated);
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_oversized_memory);
	tcase_add_test(tc, test_long_stream);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
