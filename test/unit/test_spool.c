/*
 * test_spool.c - unit tests for spool.c: append and replay in order across
 * segment rotation, partial acknowledgements, resuming after a reopen,
 * torn tails (a file cut at every offset inside its last frame), damage
 * in the middle (payload and header bytes flipped), the size cap, the
 * directory lock, a damaged position file, and a randomised run checked
 * against a model queue.
 *
 * Each test runs in its own forked child (Check's default) with a fresh
 * temporary directory; the spool directory is DIR/sp.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool.h"

#define MB ((uint64_t)1 << 20)

#define TMPDIR_TEMPLATE "/tmp/whyops-test-spool-XXXXXX"
static char tmpdir[sizeof(TMPDIR_TEMPLATE)];
static char spdir[sizeof(tmpdir) + 8];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	memcpy(tmpdir, TMPDIR_TEMPLATE, sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(spdir, sizeof(spdir), "%s/sp", tmpdir);
}

static void
teardown(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Line i of a test: "line-<i>-" then filler up to a length that varies
 * with i (so frames straddle segment boundaries differently). */
static size_t
make_line(char *buf, size_t size, unsigned i)
{
	size_t len, n;

	n = (size_t)snprintf(buf, size, "{\"line\":%u,\"pad\":\"", i);
	len = n + (i * 7) % 53;
	while (n < len && n < size - 3)
		buf[n++] = 'a' + (char)(i % 26);
	buf[n++] = '"';
	buf[n++] = '}';
	buf[n] = '\0';
	return n;
}

/* Appends lines first..first+n-1 in one batch; returns how many stored. */
static size_t
append_range(struct spool *sp, unsigned first, unsigned n)
{
	char **lines = calloc(n, sizeof(*lines));
	size_t *lens = calloc(n, sizeof(*lens)), stored;
	unsigned i;

	ck_assert(lines != NULL && lens != NULL);
	for (i = 0; i < n; i++) {
		lines[i] = malloc(128);
		ck_assert_ptr_nonnull(lines[i]);
		lens[i] = make_line(lines[i], 128, first + i);
	}
	stored = spool_append(sp, lines, lens, n);
	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(lens);
	return stored;
}

/*
 * Replays everything in batches of batch lines, acknowledging all of each,
 * and checks that it is exactly the lines in want[0..nwant) (line numbers)
 * in that order.
 */
static void
replay_expect(struct spool *sp, const unsigned *want, size_t nwant,
    size_t batch)
{
	char *lines[64], exp[128];
	size_t lens[64], got = 0, len;
	int n, i;

	ck_assert_uint_le(batch, 64);
	while ((n = spool_replay_next(sp, lines, lens, batch)) > 0) {
		for (i = 0; i < n; i++, got++) {
			ck_assert_uint_lt(got, nwant);
			len = make_line(exp, sizeof(exp), want[got]);
			ck_assert_uint_eq(lens[i], len);
			ck_assert_int_eq(lines[i][len], '\0');
			ck_assert_msg(memcmp(lines[i], exp, len) == 0,
			    "line %zu: got %.*s want %s", got, (int)len,
			    lines[i], exp);
			lines[i][len] = '\n';	/* allowed by the contract */
		}
		ck_assert_int_eq(spool_ack(sp, (size_t)n), 0);
	}
	ck_assert_int_eq(n, 0);
	ck_assert_uint_eq(got, nwant);
	ck_assert_uint_eq(spool_pending_bytes(sp), 0);
}

static void
replay_range(struct spool *sp, unsigned first, unsigned n, size_t batch)
{
	unsigned *want = malloc((n ? n : 1) * sizeof(*want)), i;

	ck_assert_ptr_nonnull(want);
	for (i = 0; i < n; i++)
		want[i] = first + i;
	replay_expect(sp, want, n, batch);
	free(want);
}

static int
count_segments(void)
{
	struct dirent *de;
	DIR *d = opendir(spdir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "spool-", 6) == 0)
			n++;
	closedir(d);
	return n;
}

/* The path of the only (or the first) segment file. */
static void
first_segment(char *buf, size_t size)
{
	struct dirent *de;
	char best[NAME_MAX + 1] = "";
	DIR *d = opendir(spdir);

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "spool-", 6) == 0 &&
		    (best[0] == '\0' || strcmp(de->d_name, best) < 0))
			snprintf(best, sizeof(best), "%s", de->d_name);
	closedir(d);
	ck_assert(best[0] != '\0');
	snprintf(buf, size, "%s/%s", spdir, best);
}

static off_t
file_size(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

static void
flip_byte(const char *path, off_t off)
{
	unsigned char c;
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x20;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* Offset of frame i in a segment holding lines 0.. of this test. */
static off_t
frame_offset(unsigned i)
{
	char buf[128];
	off_t off = 0;
	unsigned k;

	for (k = 0; k < i; k++)
		off += 16 + (off_t)make_line(buf, sizeof(buf), k);
	return off;
}

START_TEST(crc32c_vectors)
{
	unsigned char zeros[32] = { 0 }, ones[32];

	memset(ones, 0xff, sizeof(ones));
	/* RFC 3720 B.4 and the usual check value */
	ck_assert_uint_eq(spool_crc32c(0, "123456789", 9), 0xe3069283);
	ck_assert_uint_eq(spool_crc32c(0, zeros, 32), 0x8a9136aa);
	ck_assert_uint_eq(spool_crc32c(0, ones, 32), 0x62a8ab43);
	ck_assert_uint_eq(spool_crc32c(spool_crc32c(0, "1234", 4),
	    "56789", 5), 0xe3069283);
	ck_assert_uint_eq(spool_crc32c(0, "", 0), 0);
}
END_TEST

START_TEST(order_across_rotation)
{
	struct spool *sp;
	struct spool_stats st;

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 300, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 40), 40);
	ck_assert_uint_eq(append_range(sp, 40, 1), 1);
	ck_assert_uint_eq(append_range(sp, 41, 59), 59);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.appended, 100);
	ck_assert_uint_gt(st.segments, 10);
	ck_assert_int_eq(count_segments(), (int)st.segments);
	ck_assert_uint_eq(spool_pending_bytes(sp), st.disk_bytes);
	replay_range(sp, 0, 100, 7);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.replayed, 100);
	ck_assert_uint_eq(st.segments, 0);
	ck_assert_uint_eq(st.disk_bytes, 0);
	ck_assert_uint_eq(st.dropped + st.corrupt_records + st.torn_tail, 0);
	ck_assert_int_eq(count_segments(), 0);
	spool_close(sp);
}
END_TEST

/* A line longer than segment_bytes gets a segment of its own; an empty
 * line round-trips; one over the hard limit is dropped. */
START_TEST(odd_sizes)
{
	static char big[5000];
	char *lines[4], empty[1] = "";
	size_t lens[4];
	struct spool *sp;
	struct spool_stats st;
	char *out[8];
	size_t olens[8];

	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1000, &sp), 0);
	lines[0] = (char *)"small";
	lens[0] = 5;
	lines[1] = big;
	lens[1] = sizeof(big);
	lines[2] = empty;
	lens[2] = 0;
	lines[3] = (char *)"too long";
	lens[3] = SPOOL_MAX_LINE + 1;	/* refused before it is read */
	ck_assert_uint_eq(spool_append(sp, lines, lens, 4), 3);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.dropped, 1);
	ck_assert_uint_eq(st.segments, 3);	/* small | big | empty */
	ck_assert_int_eq(spool_replay_next(sp, out, olens, 8), 1);
	ck_assert_str_eq(out[0], "small");
	ck_assert_int_eq(spool_ack(sp, 1), 0);
	ck_assert_int_eq(spool_replay_next(sp, out, olens, 8), 1);
	ck_assert_uint_eq(olens[0], sizeof(big));
	ck_assert(memcmp(out[0], big, sizeof(big)) == 0);
	ck_assert_int_eq(spool_ack(sp, 1), 0);
	ck_assert_int_eq(spool_replay_next(sp, out, olens, 8), 1);
	ck_assert_uint_eq(olens[0], 0);
	ck_assert_str_eq(out[0], "");
	ck_assert_int_eq(spool_ack(sp, 1), 0);
	ck_assert_int_eq(spool_replay_next(sp, out, olens, 8), 0);
	spool_close(sp);
}
END_TEST

/* Lines not acknowledged come again; ack(0) changes nothing. */
START_TEST(partial_ack_redelivers)
{
	struct spool *sp;
	char *lines[8], exp[128];
	size_t lens[8];

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 4096, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 10), 10);
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 5), 5);
	ck_assert_int_eq(spool_ack(sp, 0), 0);
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 5), 5);
	make_line(exp, sizeof(exp), 0);
	ck_assert_str_eq(lines[0], exp);
	ck_assert_int_eq(spool_ack(sp, 2), 0);
	/* a replay without ack starts at the same place again */
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 3), 3);
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 3), 3);
	make_line(exp, sizeof(exp), 2);
	ck_assert_str_eq(lines[0], exp);
	ck_assert_int_eq(spool_ack(sp, 1), 0);
	replay_range(sp, 3, 7, 4);
	spool_close(sp);
}
END_TEST

/* Replays and acknowledges exactly k lines (batches stop at segment ends). */
static void
deliver(struct spool *sp, size_t k)
{
	char *lines[64];
	size_t lens[64];
	int n;

	while (k > 0) {
		n = spool_replay_next(sp, lines, lens, k < 64 ? k : 64);
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(spool_ack(sp, (size_t)n), 0);
		k -= (size_t)n;
	}
}

START_TEST(reopen_resumes)
{
	struct spool *sp;
	struct spool_stats st;
	char *lines[8];
	size_t lens[8];
	int n;

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 500, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 30), 30);
	deliver(sp, 8);
	n = spool_replay_next(sp, lines, lens, 8);
	ck_assert_int_ge(n, 2);
	ck_assert_int_eq(spool_ack(sp, 1), 0);		/* 0..8 delivered */
	deliver(sp, 2);					/* 0..10 */
	ck_assert_int_gt(spool_replay_next(sp, lines, lens, 8), 0);
	spool_close(sp);				/* not acked: kept */

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 500, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 30, 5), 5);	/* after the old */
	replay_range(sp, 11, 24, 5);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.replayed, 24);
	ck_assert_uint_eq(st.corrupt_records + st.torn_tail, 0);
	spool_close(sp);

	/* nothing left, and segment numbers go on rising */
	ck_assert_int_eq(spool_open(spdir, 10 * MB, 500, &sp), 0);
	ck_assert_uint_eq(spool_pending_bytes(sp), 0);
	ck_assert_uint_eq(append_range(sp, 100, 3), 3);
	spool_close(sp);
	ck_assert_int_eq(spool_open(spdir, 10 * MB, 500, &sp), 0);
	replay_range(sp, 100, 3, 8);
	spool_close(sp);
}
END_TEST

/* Appends between replays: the segment being written is sealed when
 * replay reaches it, and nothing is lost or reordered. */
START_TEST(interleaved)
{
	struct spool *sp;
	char *lines[8];
	size_t lens[8];
	unsigned want[] = { 3, 4, 5, 6, 7, 8, 9 };

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 5), 5);
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 3), 3);
	ck_assert_int_eq(spool_ack(sp, 3), 0);
	ck_assert_uint_eq(append_range(sp, 5, 2), 2);
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 8), 2);
	ck_assert_uint_eq(append_range(sp, 7, 3), 3);	/* mid-batch */
	ck_assert_int_eq(spool_ack(sp, 2), 0);
	ck_assert_uint_eq(count_segments(), 1);
	replay_expect(sp, want + 2, 5, 8);
	spool_close(sp);
}
END_TEST

/*
 * Cut the segment at every length inside its last frame: the first nine
 * lines replay, the cut is one torn tail, nothing counts as corrupt.
 */
START_TEST(torn_tail)
{
	char seg[4096];
	off_t full, last, cut;
	struct spool *sp;
	struct spool_stats st;

	for (cut = 1;; cut++) {
		ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
		ck_assert_uint_eq(append_range(sp, 0, 10), 10);
		spool_close(sp);
		first_segment(seg, sizeof(seg));
		full = file_size(seg);
		last = frame_offset(9);
		if (cut >= full - last)
			break;
		ck_assert_int_eq(truncate(seg, full - cut), 0);

		ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
		replay_range(sp, 0, 9, 4);
		spool_get_stats(sp, &st);
		ck_assert_uint_eq(st.torn_tail, 1);
		ck_assert_uint_eq(st.torn_bytes, (uint64_t)(full - cut - last));
		ck_assert_uint_eq(st.corrupt_records, 0);
		spool_close(sp);
		ck_assert_int_eq(count_segments(), 0);
	}
	/* the leftover untouched segment replays in full */
	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	replay_range(sp, 0, 10, 4);
	spool_close(sp);
}
END_TEST

/* A crash after the header of a frame went out but before its payload:
 * garbage (zeros, as a file system may leave) at the tail. */
START_TEST(torn_tail_zeros)
{
	char seg[4096], zeros[100] = { 0 };
	struct spool *sp;
	struct spool_stats st;
	int fd;

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 5), 5);
	spool_close(sp);
	first_segment(seg, sizeof(seg));
	fd = open(seg, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, zeros, sizeof(zeros)), sizeof(zeros));
	close(fd);
	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	replay_range(sp, 0, 5, 8);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.torn_tail, 1);
	ck_assert_uint_eq(st.torn_bytes, sizeof(zeros));
	spool_close(sp);
}
END_TEST

/*
 * Flip a payload byte of frame 3 and the length byte of frame 6: both are
 * reported as corrupt, every other line replays, in order, and replaying
 * the same region again (no ack) does not count it twice.
 */
START_TEST(corrupt_middle)
{
	char seg[4096], *lines[16];
	size_t lens[16];
	unsigned want[] = { 0, 1, 2, 4, 5, 7, 8, 9 };
	struct spool *sp;
	struct spool_stats st;

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 10), 10);
	spool_close(sp);
	first_segment(seg, sizeof(seg));
	flip_byte(seg, frame_offset(3) + 16 + 5);
	flip_byte(seg, frame_offset(6) + 4);

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 16), 8);
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 16), 8);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.corrupt_records, 2);
	ck_assert_uint_eq(st.corrupt_bytes,
	    (uint64_t)(frame_offset(4) - frame_offset(3) +
	    frame_offset(7) - frame_offset(6)));
	ck_assert_uint_eq(st.torn_tail, 0);
	replay_expect(sp, want, 8, 3);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.corrupt_records, 2);
	ck_assert_uint_eq(st.replayed, 8);
	spool_close(sp);
}
END_TEST

/* Damage at the very start of a segment, then a clean one after it. */
START_TEST(corrupt_first_frame)
{
	char seg[4096];
	unsigned want[] = { 1, 2, 3, 10, 11 };
	struct spool *sp;
	struct spool_stats st;

	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 4), 4);
	spool_close(sp);
	first_segment(seg, sizeof(seg));
	flip_byte(seg, 0);			/* the magic */
	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 10, 2), 2);
	replay_expect(sp, want, 5, 2);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.corrupt_records, 1);
	spool_close(sp);
}
END_TEST

START_TEST(cap_drops)
{
	struct spool *sp;
	struct spool_stats st;
	char line[100], *lines[20];
	size_t lens[20], i;

	memset(line, 'c', sizeof(line));
	for (i = 0; i < 20; i++) {
		lines[i] = line;
		lens[i] = sizeof(line);
	}
	/* frames of 116 bytes: 8 fit in 1000 */
	ck_assert_int_eq(spool_open(spdir, 1000, 300, &sp), 0);
	ck_assert_uint_eq(spool_append(sp, lines, lens, 20), 8);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.appended, 8);
	ck_assert_uint_eq(st.dropped, 12);
	ck_assert_uint_le(st.disk_bytes, 1000);
	ck_assert_uint_eq(spool_append(sp, lines, lens, 1), 0);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.dropped, 13);

	/* delivering the oldest segment makes room again */
	ck_assert_int_eq(spool_replay_next(sp, (char **)lines, lens, 2), 2);
	ck_assert_int_eq(spool_ack(sp, 2), 0);
	for (i = 0; i < 20; i++) {
		lines[i] = line;
		lens[i] = sizeof(line);
	}
	ck_assert_uint_eq(spool_append(sp, lines, lens, 3), 2);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.appended, 10);
	ck_assert_uint_eq(st.dropped, 14);
	spool_close(sp);
}
END_TEST

START_TEST(dir_locked)
{
	struct spool *a, *b;

	ck_assert_int_eq(spool_open(spdir, MB, MB, &a), 0);
	ck_assert_int_eq(spool_open(spdir, MB, MB, &b), -1);
	ck_assert_ptr_null(b);
	spool_close(a);
	ck_assert_int_eq(spool_open(spdir, MB, MB, &b), 0);
	spool_close(b);
	ck_assert_int_eq(spool_open("", MB, MB, &b), -1);
	ck_assert_int_eq(spool_open(spdir, 0, MB, &b), -1);
}
END_TEST

/* A position file that does not check out: replay from the oldest
 * segment (duplicates, never loss). */
START_TEST(damaged_ack_file)
{
	struct spool *sp;
	char *lines[8], path[4096];
	size_t lens[8];

	ck_assert_int_eq(spool_open(spdir, MB, MB, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 6), 6);
	ck_assert_int_eq(spool_replay_next(sp, lines, lens, 2), 2);
	ck_assert_int_eq(spool_ack(sp, 2), 0);
	spool_close(sp);
	snprintf(path, sizeof(path), "%s/spool.ack", spdir);
	flip_byte(path, 14);
	ck_assert_int_eq(spool_open(spdir, MB, MB, &sp), 0);
	replay_range(sp, 0, 6, 8);
	spool_close(sp);
}
END_TEST

/*
 * Random appends, replays, partial acks and reopens against a model queue
 * of line numbers: the spool must hand out exactly the model's head.
 */
START_TEST(random_model)
{
	unsigned *model, next = 0, head = 0, tail = 0, seed = 12345;
	char *lines[32], exp[128];
	size_t lens[32], k, i;
	struct spool *sp;
	int n, step;

	model = malloc(100000 * sizeof(*model));
	ck_assert_ptr_nonnull(model);
	ck_assert_int_eq(spool_open(spdir, 10 * MB, 700, &sp), 0);
	for (step = 0; step < 3000; step++) {
		switch (rand_r(&seed) % 8) {
		case 0: case 1:
			k = 1 + rand_r(&seed) % 20;
			ck_assert_uint_eq(append_range(sp, next, k), k);
			for (i = 0; i < k; i++)
				model[tail++] = next++;
			break;
		case 7:
			if (rand_r(&seed) % 4 == 0) {
				spool_close(sp);
				ck_assert_int_eq(spool_open(spdir, 10 * MB,
				    700, &sp), 0);
			}
			break;
		default:
			n = spool_replay_next(sp, lines, lens,
			    1 + rand_r(&seed) % 32);
			ck_assert_int_ge(n, 0);
			ck_assert_uint_eq((size_t)n > 0, head < tail);
			for (i = 0; i < (size_t)n; i++) {
				ck_assert_uint_lt(head + i, tail);
				make_line(exp, sizeof(exp), model[head + i]);
				ck_assert_str_eq(lines[i], exp);
			}
			k = n > 0 ? rand_r(&seed) % ((size_t)n + 1) : 0;
			ck_assert_int_eq(spool_ack(sp, k), 0);
			head += (unsigned)k;
			break;
		}
	}
	while ((n = spool_replay_next(sp, lines, lens, 32)) > 0) {
		for (i = 0; i < (size_t)n; i++) {
			make_line(exp, sizeof(exp), model[head + i]);
			ck_assert_str_eq(lines[i], exp);
		}
		head += (unsigned)n;
		ck_assert_int_eq(spool_ack(sp, (size_t)n), 0);
	}
	ck_assert_uint_eq(head, tail);
	ck_assert_int_eq(count_segments(), 0);
	spool_close(sp);
	free(model);
}
END_TEST

/*
 * A write error in the middle of a batch (RLIMIT_FSIZE makes writev stop
 * short, then fail with EFBIG): the half-written frames are cut off again,
 * the batch counts as dropped, and the segment stays clean for the next
 * append.
 */
START_TEST(write_error_truncates)
{
	struct rlimit rl, old;
	struct spool_stats st;
	struct spool *sp;
	char seg[4096];
	off_t before;
	unsigned want[] = { 0, 1, 2, 3, 4, 20, 21, 22 };

	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(spool_open(spdir, 10 * MB, 1 * MB, &sp), 0);
	ck_assert_uint_eq(append_range(sp, 0, 5), 5);
	first_segment(seg, sizeof(seg));
	before = file_size(seg);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = (rlim_t)before + 200;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	ck_assert_uint_eq(append_range(sp, 10, 10), 0);
	ck_assert_int_eq(file_size(seg), before);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.dropped, 10);
	ck_assert_uint_eq(st.appended, 5);
	ck_assert_uint_eq(append_range(sp, 20, 3), 3);
	replay_expect(sp, want, 8, 3);
	spool_get_stats(sp, &st);
	ck_assert_uint_eq(st.corrupt_records + st.torn_tail, 0);
	spool_close(sp);
}
END_TEST

/*
 * A process killed (SIGKILL) at a random moment while appending: after a
 * reopen every line it was told was stored replays, in order, with no gap
 * and nothing corrupt.
 */
START_TEST(kill_during_append)
{
	unsigned round, told, n, i, expect;
	char *lines[64];
	size_t lens[64];
	struct spool *sp;
	struct spool_stats st;
	int pfd[2], k;
	pid_t pid;
	ssize_t r;

	for (round = 0; round < 5; round++) {
		ck_assert_int_eq(pipe(pfd), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			if (spool_open(spdir, 100 * MB, 64 << 10, &sp) < 0)
				_exit(1);
			for (n = 0;; n += 50) {
				if (append_range(sp, n, 50) != 50)
					_exit(2);
				i = n + 49;
				if (write(pfd[1], &i, sizeof(i)) != sizeof(i))
					_exit(3);
			}
		}
		close(pfd[1]);
		/* let it append for a while: at least one batch */
		ck_assert_int_eq(read(pfd[0], &told, sizeof(told)),
		    sizeof(told));
		usleep(20000 + 15000 * round);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while ((r = read(pfd[0], &i, sizeof(i))) == sizeof(i))
			told = i;
		close(pfd[0]);

		ck_assert_int_eq(spool_open(spdir, 100 * MB, 64 << 10, &sp),
		    0);
		expect = 0;
		while ((k = spool_replay_next(sp, lines, lens, 64)) > 0) {
			for (i = 0; i < (unsigned)k; i++) {
				char exp[128];

				make_line(exp, sizeof(exp), expect++);
				ck_assert_str_eq(lines[i], exp);
			}
			ck_assert_int_eq(spool_ack(sp, (size_t)k), 0);
		}
		ck_assert_int_eq(k, 0);
		ck_assert_uint_ge(expect, told + 1);
		spool_get_stats(sp, &st);
		ck_assert_uint_eq(st.corrupt_records, 0);
		spool_close(sp);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("spool");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, crc32c_vectors);
	tcase_add_test(tc, order_across_rotation);
	tcase_add_test(tc, odd_sizes);
	tcase_add_test(tc, partial_ack_redelivers);
	tcase_add_test(tc, reopen_resumes);
	tcase_add_test(tc, interleaved);
	tcase_add_test(tc, torn_tail);
	tcase_add_test(tc, torn_tail_zeros);
	tcase_add_test(tc, corrupt_middle);
	tcase_add_test(tc, corrupt_first_frame);
	tcase_add_test(tc, cap_drops);
	tcase_add_test(tc, dir_locked);
	tcase_add_test(tc, damaged_ack_file);
	tcase_add_test(tc, random_model);
	tcase_add_test(tc, write_error_truncates);
	tcase_add_test(tc, kill_during_append);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
