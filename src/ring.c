/*
 * ring.c - bounded lock-free MPSC ring of pointers (see ring.h).
 *
 * This is Dmitry Vyukov's bounded MPMC queue with the consumer side
 * reduced to one thread.  Every slot carries a sequence number that says
 * whose turn it is:
 *
 *   seq == pos            free: the producer that claims position pos may
 *                         fill it
 *   seq == pos + 1        filled: the consumer at position pos may take it
 *   seq == pos + capacity emptied: free again for the next lap
 *
 * Producers claim a position by advancing head with a CAS, fill the slot,
 * then publish it by storing seq = pos + 1.  The consumer alone advances
 * tail, so it needs no CAS: it takes slots while their seq says "filled"
 * and hands each back by storing seq = pos + capacity.  Positions are
 * size_t counters that only grow; slot = pos & mask.  A capacity of 1 is
 * not possible (seq == pos + 1 would mean both "filled" and "free for the
 * next lap"), hence the minimum of 2.
 *
 * Progress: a producer never waits for another thread.  Its CAS fails only
 * because another producer claimed a position in between (so the system as
 * a whole made progress); a slot that is not free for this lap means the
 * ring is full, reported at once.  The consumer stops at a slot that is
 * claimed but not yet published rather than waiting for it.
 *
 * Memory ordering:
 *  - slot->seq: the producer's store of pos + 1 is a release and the
 *    consumer's load an acquire, so the producer's write of slot->val (and
 *    everything it did to the item before pushing) is visible to the
 *    consumer.  In the other direction the consumer's store of
 *    pos + capacity is a release and the producer's load an acquire, so the
 *    consumer's read of slot->val happens before the next lap's write.
 *    slot->val itself is a plain pointer: these two edges order every
 *    access to it.
 *  - head: relaxed.  It only hands out positions; the CAS makes each
 *    position unique and the data is ordered by slot->seq, not by head.
 *  - tail: written by the consumer only, once per batch; producers and
 *    ring_depth() read it (relaxed) to estimate the depth, nothing more.
 *  - high_water: a relaxed atomic max; it is a statistic.
 * head, tail and high_water sit on separate cache lines so that producers
 * claiming positions do not bounce the consumer's line and vice versa.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ring.h"

#define RING_CACHELINE 64

struct ring_slot {
	_Atomic size_t seq;
	void *val;
};

struct ring {
	struct ring_slot *slots;
	size_t mask;				/* capacity - 1 */
	alignas(RING_CACHELINE) _Atomic size_t head;	/* next position to
						 * claim (producers) */
	alignas(RING_CACHELINE) _Atomic size_t tail;	/* next position to
						 * pop (consumer) */
	alignas(RING_CACHELINE) _Atomic size_t high_water;
};

static size_t
ring_round_capacity(size_t capacity)
{
	size_t cap = 2;

	while (cap < capacity && cap <= RING_MAX_CAPACITY)
		cap <<= 1;
	return cap;
}

struct ring *
ring_new(size_t capacity)
{
	struct ring *ring = NULL;
	size_t cap, i;

	cap = ring_round_capacity(capacity);
	if (cap > RING_MAX_CAPACITY)
		goto fail;
	ring = aligned_alloc(alignof(struct ring), sizeof(*ring));
	if (ring == NULL)
		goto fail;
	ring->slots = calloc(cap, sizeof(*ring->slots));
	if (ring->slots == NULL)
		goto fail;
	ring->mask = cap - 1;
	for (i = 0; i < cap; i++) {
		atomic_init(&ring->slots[i].seq, i);
		ring->slots[i].val = NULL;
	}
	atomic_init(&ring->head, 0);
	atomic_init(&ring->tail, 0);
	atomic_init(&ring->high_water, 0);
	return ring;
fail:
	free(ring);
	return NULL;
}

void
ring_free(struct ring *ring)
{
	if (ring == NULL)
		return;
	free(ring->slots);
	free(ring);
}

/* Called by a producer right after publishing position pos. */
static void
ring_note_depth(struct ring *ring, size_t pos)
{
	size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	size_t depth, hw;

	/* The consumer may already have taken this item and more; or it may
	 * be inside a batch, having freed slots without storing tail yet
	 * (tail lags): the depth is at most the capacity. */
	if ((intptr_t)(tail - pos) > 0)
		return;
	depth = pos + 1 - tail;
	if (depth > ring->mask + 1)
		depth = ring->mask + 1;
	hw = atomic_load_explicit(&ring->high_water, memory_order_relaxed);
	while (depth > hw &&
	    !atomic_compare_exchange_weak_explicit(&ring->high_water, &hw,
	    depth, memory_order_relaxed, memory_order_relaxed))
		;
}

bool
ring_push(struct ring *ring, void *p)
{
	struct ring_slot *slot;
	size_t pos, seq;
	intptr_t dif;

	pos = atomic_load_explicit(&ring->head, memory_order_relaxed);
	for (;;) {
		slot = &ring->slots[pos & ring->mask];
		seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
		dif = (intptr_t)(seq - pos);
		if (dif == 0) {
			/* Free for this lap: claim it.  On failure pos is
			 * reloaded with the position another producer left. */
			if (atomic_compare_exchange_weak_explicit(&ring->head,
			    &pos, pos + 1, memory_order_relaxed,
			    memory_order_relaxed))
				break;
		} else if (dif < 0) {
			/* Still holds the item of the previous lap: full. */
			return false;
		} else {
			/* Another producer took pos already. */
			pos = atomic_load_explicit(&ring->head,
			    memory_order_relaxed);
		}
	}
	slot->val = p;
	atomic_store_explicit(&slot->seq, pos + 1, memory_order_release);
	ring_note_depth(ring, pos);
	return true;
}

size_t
ring_pop_batch(struct ring *ring, void **out, size_t max)
{
	struct ring_slot *slot;
	size_t pos, n = 0;

	pos = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	while (n < max) {
		slot = &ring->slots[pos & ring->mask];
		if (atomic_load_explicit(&slot->seq, memory_order_acquire) !=
		    pos + 1)
			break;		/* empty, or claimed and not filled */
		out[n++] = slot->val;
		atomic_store_explicit(&slot->seq, pos + ring->mask + 1,
		    memory_order_release);
		pos++;
	}
	if (n > 0)
		atomic_store_explicit(&ring->tail, pos, memory_order_relaxed);
	return n;
}

size_t
ring_depth(const struct ring *ring)
{
	/* Two relaxed loads are not a snapshot: clamp to [0, capacity]. */
	size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);

	if ((intptr_t)(head - tail) <= 0)
		return 0;
	if (head - tail > ring->mask + 1)
		return ring->mask + 1;
	return head - tail;
}

size_t
ring_high_water(const struct ring *ring)
{
	return atomic_load_explicit(&ring->high_water, memory_order_relaxed);
}

size_t
ring_capacity(const struct ring *ring)
{
	return ring->mask + 1;
}
