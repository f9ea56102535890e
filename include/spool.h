/*
 * spool.h - an append-only, crash-safe disk spool of event lines.
 *
 * The dispatcher (events.c) puts here the events its sink could not take
 * (Redis down or slow, the ring filling up) and replays them, oldest first,
 * once the sink takes events again.  Delivery is at least once: a crash
 * between a sink write and the acknowledgement here replays that batch
 * again (events carry an eventId for consumers to drop duplicates).
 *
 * On disk, in one directory owned by one process (flock):
 *   spool-%016llu.log   segments, numbered in append order; each a series
 *                       of frames (see spool.c), rotated at segment_bytes
 *   spool.ack           how far replay got: segment number and offset,
 *                       with a checksum, replaced by rename()
 *
 * Threads: a struct spool belongs to one thread (the dispatcher); nothing
 * here locks.
 */
#ifndef WHYOPS_SPOOL_H
#define WHYOPS_SPOOL_H

#include <stddef.h>
#include <stdint.h>

/* Largest line spool_append() stores; longer ones count as dropped. */
#define SPOOL_MAX_LINE ((size_t)256 << 20)

struct spool;

/*
 * Counters since spool_open().  Units: appended, replayed and dropped
 * count lines; corrupt_records counts the frames lost to damage in the
 * middle of a segment (estimated from the frame markers inside the damaged
 * bytes, at least one per damaged region), corrupt_bytes those bytes;
 * torn_tail counts segments whose end was unreadable (a write cut short by
 * a crash), torn_bytes the bytes skipped there.  Damage is counted once,
 * when replay first reads past it.
 */
struct spool_stats {
	uint64_t appended;	/* lines stored */
	uint64_t replayed;	/* lines acknowledged by spool_ack() */
	uint64_t dropped;	/* lines refused: size cap, too long, I/O error */
	uint64_t corrupt_records;
	uint64_t corrupt_bytes;
	uint64_t torn_tail;
	uint64_t torn_bytes;
	uint64_t segments;	/* segment files on disk now */
	uint64_t disk_bytes;	/* their total size, what max_bytes caps */
};

/*
 * Opens (creating it if missing, mode 0750) the spool directory dir and
 * locks it against other processes.  max_bytes caps the total size of the
 * segment files; segment_bytes is the size at which appending moves to a
 * new segment (a line larger than that gets a segment of its own).
 * Appending always starts a new segment: a file left by an earlier run is
 * only read, so a torn tail is never followed by new frames.
 * 0 and *out set, or -1 with the reason logged.
 */
int spool_open(const char *dir, uint64_t max_bytes, uint64_t segment_bytes,
    struct spool **out);

/* New caps for an open spool (a configuration reload); 0 keeps a value.
 * A cap below what is on disk refuses appends until replay frees room. */
void spool_set_limits(struct spool *sp, uint64_t max_bytes,
    uint64_t segment_bytes);

/*
 * Appends lines[0..n) (lens[i] bytes each; any bytes) in order and makes
 * them durable (one fdatasync per segment touched) before returning.
 * Returns how many lines, from the first, were stored; the rest (the first
 * that would pass max_bytes, is longer than SPOOL_MAX_LINE or met a write
 * error, and all after it) are counted in stats.dropped and logged
 * (rate-limited).  The caller keeps ownership of the lines.
 */
size_t spool_append(struct spool *sp, char *const *lines, const size_t *lens,
    size_t n);

/*
 * Replay.  spool_replay_next() fills lines/lens with up to max lines, the
 * oldest not yet acknowledged, in append order, and returns how many (0:
 * nothing pending; -1: read error, logged, try again later).  A batch
 * comes from one segment and holds about 4 MiB at most (always at least
 * one line).  The lines are NUL-terminated copies owned by the spool: the
 * caller may overwrite lines[i][lens[i]]; they stay valid until the next
 * spool_replay_next(), spool_ack() or spool_close().  Appending in between
 * is allowed.
 *
 * spool_ack(sp, k) says that the first k lines of the last batch were
 * delivered (k <= the batch size; 0 is fine): the next batch starts after
 * them, so lines not acknowledged come again.  The position is made
 * durable (a small file replaced by rename()); a segment fully delivered
 * is deleted.  0, or -1 if the position could not be saved (logged; the
 * spool goes on, a crash would replay those lines again).
 */
int spool_replay_next(struct spool *sp, char **lines, size_t *lens,
    size_t max);
int spool_ack(struct spool *sp, size_t k);

/* Bytes on disk not yet acknowledged (frames and any damaged bytes not yet
 * read past): 0 when there is nothing to replay. */
uint64_t spool_pending_bytes(const struct spool *sp);

void spool_get_stats(const struct spool *sp, struct spool_stats *st);

/* Syncs and closes the spool; what was not acknowledged stays on disk for
 * the next spool_open().  NULL is fine. */
void spool_close(struct spool *sp);

/* CRC-32C (Castagnoli, reflected, as in iSCSI and ext4) of buf, continuing
 * from crc (0 to start).  Exposed for the tests. */
uint32_t spool_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
