/*
 * test_ring.c - the MPSC ring: single-thread semantics (empty, full,
 * capacity rounding, FIFO order across many laps, depth and high water)
 * and a concurrent run of RING_PRODUCERS producers against one consumer in
 * which every value must arrive exactly once and each producer's values in
 * the order it pushed them.  Run under TSan and ASan as well.
 */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include "ring.h"

#define RING_PRODUCERS	4
#define RING_PER	200000

/* values are never NULL: producer p, item i -> p * RING_PER + i + 1 */
static void *
tag(size_t p, size_t i)
{
	return (void *)(uintptr_t)(p * RING_PER + i + 1);
}

START_TEST(capacity_rounding)
{
	static const size_t in[] = { 0, 1, 2, 3, 4, 5, 1000, 1024, 1025 };
	static const size_t out[] = { 2, 2, 2, 4, 4, 8, 1024, 1024, 2048 };
	struct ring *r;
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		r = ring_new(in[i]);
		ck_assert_ptr_nonnull(r);
		ck_assert_uint_eq(ring_capacity(r), out[i]);
		ring_free(r);
	}
	r = ring_new(RING_MAX_CAPACITY + 1);
	ck_assert_ptr_null(r);
	r = ring_new(SIZE_MAX);
	ck_assert_ptr_null(r);
	ring_free(NULL);
}
END_TEST

START_TEST(empty_and_full)
{
	struct ring *r = ring_new(8);
	void *out[16];
	size_t i;

	ck_assert_uint_eq(ring_pop_batch(r, out, 16), 0);
	ck_assert_uint_eq(ring_depth(r), 0);
	for (i = 0; i < 8; i++)
		ck_assert(ring_push(r, tag(0, i)));
	ck_assert_uint_eq(ring_depth(r), 8);
	ck_assert(!ring_push(r, tag(0, 8)));
	ck_assert(!ring_push(r, tag(0, 9)));
	ck_assert_uint_eq(ring_depth(r), 8);
	ck_assert_uint_eq(ring_high_water(r), 8);

	/* a batch stops at max; one freed slot takes one more push */
	ck_assert_uint_eq(ring_pop_batch(r, out, 3), 3);
	for (i = 0; i < 3; i++)
		ck_assert_ptr_eq(out[i], tag(0, i));
	ck_assert_uint_eq(ring_depth(r), 5);
	ck_assert(ring_push(r, tag(0, 8)));
	ck_assert(ring_push(r, tag(0, 9)));
	ck_assert(ring_push(r, tag(0, 10)));
	ck_assert(!ring_push(r, tag(0, 11)));
	ck_assert_uint_eq(ring_pop_batch(r, out, 16), 8);
	for (i = 0; i < 8; i++)
		ck_assert_ptr_eq(out[i], tag(0, i + 3));
	ck_assert_uint_eq(ring_pop_batch(r, out, 16), 0);
	ck_assert_uint_eq(ring_depth(r), 0);
	ck_assert_uint_eq(ring_high_water(r), 8);
	/* NULL is a value like any other; max 0 pops nothing */
	ck_assert(ring_push(r, NULL));
	ck_assert_uint_eq(ring_pop_batch(r, out, 0), 0);
	ck_assert_uint_eq(ring_pop_batch(r, out, 16), 1);
	ck_assert_ptr_null(out[0]);
	ring_free(r);
}
END_TEST

/* Capacity 2 (the smallest) and 4, many laps with batch sizes and push
 * counts that keep changing the phase against the slot index. */
START_TEST(wraparound)
{
	static const size_t caps[] = { 2, 4, 16 };
	void *out[32];
	size_t c, lap, k, n, next_in, next_out, cap;
	struct ring *r;

	for (c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
		r = ring_new(caps[c]);
		cap = ring_capacity(r);
		next_in = next_out = 0;
		for (lap = 0; lap < 1000; lap++) {
			size_t want = lap % (cap + 2) + 1;

			for (k = 0; k < want; k++) {
				bool room = ring_depth(r) < cap;

				ck_assert(ring_push(r, tag(0, next_in)) == room);
				if (room)
					next_in++;
			}
			n = ring_pop_batch(r, out, lap % 5 + 1);
			for (k = 0; k < n; k++)
				ck_assert_ptr_eq(out[k], tag(0, next_out++));
		}
		while ((n = ring_pop_batch(r, out, 32)) > 0)
			for (k = 0; k < n; k++)
				ck_assert_ptr_eq(out[k], tag(0, next_out++));
		ck_assert_uint_eq(next_out, next_in);
		ck_assert_uint_gt(next_in, 1000);
		ck_assert_uint_eq(ring_high_water(r), cap);
		ring_free(r);
	}
}
END_TEST

struct producer {
	struct ring *ring;
	size_t id;
	pthread_barrier_t *go;
	unsigned long full;	/* pushes refused (retried) */
};

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	size_t i;

	pthread_barrier_wait(p->go);
	for (i = 0; i < RING_PER; i++) {
		while (!ring_push(p->ring, tag(p->id, i))) {
			p->full++;
			sched_yield();
		}
	}
	return NULL;
}

static void
mpsc_run(size_t capacity)
{
	struct producer prod[RING_PRODUCERS];
	pthread_t tid[RING_PRODUCERS];
	pthread_barrier_t go;
	size_t next[RING_PRODUCERS] = { 0 };
	unsigned char *seen;
	void *out[64];
	size_t total = 0, p, k, n, v;
	struct ring *r = ring_new(capacity);

	seen = calloc(RING_PRODUCERS * RING_PER + 1, 1);
	ck_assert_ptr_nonnull(seen);
	pthread_barrier_init(&go, NULL, RING_PRODUCERS + 1);
	for (p = 0; p < RING_PRODUCERS; p++) {
		prod[p] = (struct producer){ r, p, &go, 0 };
		ck_assert_int_eq(pthread_create(&tid[p], NULL, producer_main,
		    &prod[p]), 0);
	}
	pthread_barrier_wait(&go);
	while (total < RING_PRODUCERS * RING_PER) {
		n = ring_pop_batch(r, out, (total % 64) + 1);
		if (n == 0)
			sched_yield();
		for (k = 0; k < n; k++) {
			v = (size_t)(uintptr_t)out[k];
			ck_assert_uint_ge(v, 1);
			ck_assert_uint_le(v, RING_PRODUCERS * RING_PER);
			ck_assert_uint_eq(seen[v], 0);
			seen[v] = 1;
			p = (v - 1) / RING_PER;
			ck_assert_uint_eq((v - 1) % RING_PER, next[p]);
			next[p]++;
		}
		total += n;
	}
	for (p = 0; p < RING_PRODUCERS; p++) {
		pthread_join(tid[p], NULL);
		ck_assert_uint_eq(next[p], RING_PER);
	}
	ck_assert_uint_eq(ring_pop_batch(r, out, 64), 0);
	ck_assert_uint_eq(ring_depth(r), 0);
	ck_assert_uint_le(ring_high_water(r), ring_capacity(r));
	ck_assert_uint_ge(ring_high_water(r), 1);
	pthread_barrier_destroy(&go);
	free(seen);
	ring_free(r);
}

/* small ring: producers hit "full" all the time and slots wrap often */
START_TEST(mpsc_small)
{
	mpsc_run(64);
}
END_TEST

/* large ring: mostly the uncontended path */
START_TEST(mpsc_large)
{
	mpsc_run(1 << 16);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ring");
	TCase *tc = tcase_create("single");
	TCase *mt = tcase_create("threads");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, capacity_rounding);
	tcase_add_test(tc, empty_and_full);
	tcase_add_test(tc, wraparound);
	suite_add_tcase(s, tc);
	/* 800,000 values each; slow under TSan on two CPUs */
	tcase_set_timeout(mt, 300);
	tcase_add_test(mt, mpsc_small);
	tcase_add_test(mt, mpsc_large);
	suite_add_tcase(s, mt);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
