/*
 * ring.h - a bounded lock-free multi-producer single-consumer ring of
 * pointers.
 *
 * Request threads push finished records; the one dispatcher thread pops
 * them in batches (events.c).  Pushing never blocks and never waits for
 * another thread: a full ring is reported at once and the caller decides
 * what to do with the item (the events pipeline counts and drops it).
 *
 * Threads: ring_push() from any number of threads at once; ring_pop_batch()
 * from one thread only (the consumer); ring_depth(), ring_high_water() and
 * ring_capacity() from any thread.  ring_new() and ring_free() are called
 * while no other thread uses the ring.  The ring stores the pointers only:
 * whoever pops an item owns it, and ring_free() does not look at items left
 * inside.
 */
#ifndef WHYOPS_RING_H
#define WHYOPS_RING_H

#include <stdbool.h>
#include <stddef.h>

/* Largest capacity ring_new() accepts (after rounding). */
#define RING_MAX_CAPACITY ((size_t)1 << 30)

struct ring;

/* A ring for at least capacity items: capacity is rounded up to a power of
 * two, at least 2.  NULL when that exceeds RING_MAX_CAPACITY or memory is
 * short (the size comes from the configuration). */
struct ring *ring_new(size_t capacity);
void ring_free(struct ring *ring);

/* Any thread.  true: p is in the ring; false: the ring was full and p was
 * not stored (it still belongs to the caller). */
bool ring_push(struct ring *ring, void *p);

/* Consumer thread only.  Moves up to max items, oldest first, into out and
 * returns how many; 0 when nothing is ready.  An item whose producer has
 * claimed a slot but not yet filled it stops the batch there: the items
 * behind it come with a later call. */
size_t ring_pop_batch(struct ring *ring, void **out, size_t max);

/* Items pushed and not yet popped (approximate while threads are busy;
 * includes slots claimed but not yet filled). */
size_t ring_depth(const struct ring *ring);
/* The largest depth a producer has seen right after its push. */
size_t ring_high_water(const struct ring *ring);
size_t ring_capacity(const struct ring *ring);

#endif
