/*
 * spool.c - the disk spool of event lines (see spool.h).
 *
 * Frames.  A segment is a series of frames, each a 16-byte header and the
 * line's bytes:
 *
 *   0  magic   ff 57 53 50 ("\xffWSP": 0xff never occurs in UTF-8, so a
 *              JSON line cannot contain the marker)
 *   4  len     payload length, u32 little-endian, <= SPOOL_MAX_LINE
 *   8  dcrc    CRC-32C of the payload
 *   12 hcrc    CRC-32C of bytes 0..11
 *
 * The header has its own checksum so that a damaged length is never
 * trusted: without it a flipped bit in len would make the frame run past
 * the end of the file and everything after it would look like a torn tail.
 *
 * Damage.  Replay reads a frame at the current offset; if it does not
 * check out (bad magic or header checksum, a length past the end of the
 * file, a bad payload checksum) it scans forward for the next offset that
 * starts a valid frame (magic, header and payload checksums).  Found: the
 * bytes in between are corruption in the middle (counted, with the number
 * of frame markers inside as the estimate of the lines lost, at least
 * one).  Not found: the damage runs to the end of the segment, which is
 * what a crash during an append leaves (a torn tail); it is counted apart.
 * Either way every valid frame before and after is replayed, and the
 * damage is logged once.  Appending never goes on after damage: a segment
 * is appended to only by the process that created it (spool_open() starts
 * a new one), and a failed write is truncated away or, failing that, ends
 * the segment.
 *
 * Durability (the choice: one fdatasync per batch).  spool_append() writes
 * the batch with writev() and calls fdatasync() once per segment it
 * touched, so that lines reported stored survive a crash or a power loss;
 * the dispatcher spools in batches (up to a few hundred lines), so the
 * cost is one sync per batch, paid only while the sink is failing.
 * Creating a segment also syncs the directory (its name must survive).
 * The replay position is written to spool.ack.tmp, synced and renamed over
 * spool.ack without a directory sync: if a crash loses the rename, the
 * previous position comes back and the lines acknowledged since are
 * replayed again, which at-least-once delivery allows; a position file
 * that does not check out is ignored the same way (replay from the oldest
 * segment).  Deleting a delivered segment is not synced either: if it
 * comes back, its lines are older than the saved position, or it is
 * replayed again.
 *
 * Segments.  Appends go to the newest segment until it would pass
 * segment_bytes; replay reads the oldest.  Replay never reads a file that
 * is still being appended to: when it reaches the segment being written,
 * that segment is closed first and the next append opens a new one.  The
 * cap max_bytes is on the sum of the segment sizes (what the disk holds),
 * so the delivered part of the oldest segment counts until the segment is
 * deleted as a whole.  Segment numbers are never reused: the next one is
 * above every segment on disk and the one in spool.ack.
 *
 * Threads: none of its own; one owner thread (spool.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

#define SPOOL_HDR		16
#define SPOOL_READ_CHUNK	((size_t)256 << 10)	/* replay reads */
#define SPOOL_BATCH_BYTES	((size_t)4 << 20)	/* replay batch size */
#define SPOOL_LOG_INTERVAL_MS	10000
#define SPOOL_ACK_SIZE		24
#define SPOOL_ACK		"spool.ack"
#define SPOOL_ACK_TMP		"spool.ack.tmp"
#define SPOOL_SEG_FMT		"spool-%016" PRIu64 ".log"
#define SPOOL_SEG_NAME_LEN	(6 + 16 + 4)
#define SPOOL_FILE_MODE		0640
#define SPOOL_DIR_MODE		0750

static const unsigned char spool_magic[4] = { 0xff, 'W', 'S', 'P' };
static const unsigned char spool_ack_magic[4] = { 'W', 'S', 'A', 'K' };

/* What spool_frame_at() found. */
enum spool_frame {
	SPOOL_FRAME_OK,
	SPOOL_FRAME_SHORT,	/* the frame runs past the end of the file */
	SPOOL_FRAME_BAD,
	SPOOL_FRAME_IOERR,
};

struct spool_seg {
	uint64_t seq;
	uint64_t size;
};

struct spool_line {
	uint64_t end;		/* segment offset after the frame */
	size_t off;		/* in the arena */
	size_t len;
};

struct spool {
	char *dir;
	int dfd;			/* the directory, flock()ed */
	uint64_t max_bytes;
	uint64_t segment_bytes;

	struct spool_seg *segs;		/* on disk, oldest first */
	size_t nsegs, segs_cap;
	uint64_t disk_bytes;		/* sum of segs[].size */
	uint64_t next_seq;

	/* appending: to segs[nsegs - 1] while wfd >= 0 */
	int wfd;
	struct iovec *iov;
	unsigned char (*hdr)[SPOOL_HDR];
	size_t frames_cap;		/* of hdr; iov has twice as many */

	/* replay: segs[0], read through rfd once opened */
	int rfd;
	uint64_t ack_off;		/* delivered up to here in segs[0] */
	uint64_t counted_to;		/* damage before it was counted */
	uint64_t saved_seq, saved_off;	/* what spool.ack says */
	unsigned char *rbuf;		/* bytes rbuf_off.. of segs[0] */
	size_t rbuf_len, rbuf_cap;
	uint64_t rbuf_off;

	/* the last batch handed out */
	char *arena;
	size_t arena_cap;
	struct spool_line *batch;
	size_t batch_n, batch_cap;

	struct spool_stats st;
	bool failing;			/* appends refused since the last log */
	uint64_t drops_unlogged;
	int64_t drops_logged_ms;
};

/* ---- CRC-32C ---------------------------------------------------------- */

static uint32_t spool_crc_table[256];
static pthread_once_t spool_crc_once = PTHREAD_ONCE_INIT;

static void
spool_crc_init(void)
{
	uint32_t c;
	int i, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		spool_crc_table[i] = c;
	}
}

uint32_t
spool_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	pthread_once(&spool_crc_once, spool_crc_init);
	crc = ~crc;
	while (len-- > 0)
		crc = spool_crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- small helpers ---------------------------------------------------- */

static void *
spool_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL) {
		fprintf(stderr, "spool: out of memory\n");
		abort();
	}
	return p;
}

static void
spool_put32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

static uint32_t
spool_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void
spool_put64(unsigned char *p, uint64_t v)
{
	spool_put32(p, (uint32_t)v);
	spool_put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t
spool_get64(const unsigned char *p)
{
	return spool_get32(p) | (uint64_t)spool_get32(p + 4) << 32;
}

static int64_t
spool_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
spool_seg_name(char *buf, size_t size, uint64_t seq)
{
	snprintf(buf, size, SPOOL_SEG_FMT, seq);
}

/* "spool-" 16 digits ".log": 0 and *seq, or -1 for any other name. */
static int
spool_seg_parse(const char *name, uint64_t *seq)
{
	uint64_t v = 0;
	int i;

	if (strlen(name) != SPOOL_SEG_NAME_LEN ||
	    strncmp(name, "spool-", 6) != 0 ||
	    strcmp(name + 22, ".log") != 0)
		return -1;
	for (i = 6; i < 22; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*seq = v;
	return 0;
}

static void
spool_segs_push(struct spool *sp, uint64_t seq, uint64_t size)
{
	if (sp->nsegs == sp->segs_cap) {
		sp->segs_cap = sp->segs_cap ? sp->segs_cap * 2 : 16;
		sp->segs = spool_xrealloc(sp->segs,
		    sp->segs_cap * sizeof(*sp->segs));
	}
	sp->segs[sp->nsegs++] = (struct spool_seg){ seq, size };
	sp->disk_bytes += size;
}

static int
spool_seg_cmp(const void *a, const void *b)
{
	const struct spool_seg *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Writes all of iov[0..cnt) (consumed in place), IOV_MAX at a time,
 * retrying partial writes and EINTR.  0, or -1 with errno set. */
static int
spool_writev_all(int fd, struct iovec *iov, size_t cnt)
{
	ssize_t r;

	while (cnt > 0) {
		r = writev(fd, iov, cnt > IOV_MAX ? IOV_MAX : (int)cnt);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		while (cnt > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* ---- the replay position ---------------------------------------------- */

/* Reads spool.ack into *seq, *off; both 0 when it is missing or does not
 * check out (replay then starts at the oldest segment). */
static void
spool_ack_load(struct spool *sp, uint64_t *seq, uint64_t *off)
{
	unsigned char b[SPOOL_ACK_SIZE + 1];
	ssize_t r;
	int fd;

	*seq = 0;
	*off = 0;
	fd = openat(sp->dfd, SPOOL_ACK, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("spool: %s/%s: %s (replaying from the oldest "
			    "segment)", sp->dir, SPOOL_ACK, strerror(errno));
		return;
	}
	do
		r = read(fd, b, sizeof(b));
	while (r < 0 && errno == EINTR);
	close(fd);
	if (r != SPOOL_ACK_SIZE || memcmp(b, spool_ack_magic, 4) != 0 ||
	    spool_get32(b + 20) != spool_crc32c(0, b, 20)) {
		log_warn("spool: %s/%s is damaged (replaying from the oldest "
		    "segment)", sp->dir, SPOOL_ACK);
		return;
	}
	*seq = spool_get64(b + 4);
	*off = spool_get64(b + 12);
}

/* Saves (seq, off) as the replay position: 0, or -1 (logged). */
static int
spool_ack_save(struct spool *sp, uint64_t seq, uint64_t off)
{
	unsigned char b[SPOOL_ACK_SIZE];
	ssize_t r;
	int fd, rc = -1;

	memcpy(b, spool_ack_magic, 4);
	spool_put64(b + 4, seq);
	spool_put64(b + 12, off);
	spool_put32(b + 20, spool_crc32c(0, b, 20));
	fd = openat(sp->dfd, SPOOL_ACK_TMP,
	    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, SPOOL_FILE_MODE);
	if (fd < 0)
		goto out;
	do
		r = write(fd, b, sizeof(b));
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)sizeof(b)) {
		if (r >= 0)
			errno = ENOSPC;
		goto out;
	}
	if (fdatasync(fd) < 0)
		goto out;
	if (renameat(sp->dfd, SPOOL_ACK_TMP, sp->dfd, SPOOL_ACK) < 0)
		goto out;
	sp->saved_seq = seq;
	sp->saved_off = off;
	rc = 0;
out:
	if (rc < 0)
		log_error("spool: cannot save the replay position in %s/%s: "
		    "%s", sp->dir, SPOOL_ACK, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- open and close --------------------------------------------------- */

/* Lists the segments; deletes those before ack_seq (delivered). */
static int
spool_scan(struct spool *sp, uint64_t ack_seq)
{
	struct dirent *de;
	struct stat stb;
	uint64_t seq;
	DIR *d;
	int fd;

	fd = openat(sp->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		log_error("spool: cannot list %s: %s", sp->dir,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, SPOOL_ACK_TMP) == 0) {
			(void)unlinkat(sp->dfd, de->d_name, 0);
			continue;
		}
		if (spool_seg_parse(de->d_name, &seq) < 0)
			continue;
		if (seq < ack_seq) {
			(void)unlinkat(sp->dfd, de->d_name, 0);
			continue;
		}
		if (fstatat(sp->dfd, de->d_name, &stb, 0) < 0 ||
		    !S_ISREG(stb.st_mode))
			continue;
		spool_segs_push(sp, seq, (uint64_t)stb.st_size);
	}
	closedir(d);
	if (sp->nsegs > 1)
		qsort(sp->segs, sp->nsegs, sizeof(*sp->segs), spool_seg_cmp);
	return 0;
}

static int
spool_lock_dir(struct spool *sp)
{
	if (mkdir(sp->dir, SPOOL_DIR_MODE) < 0 && errno != EEXIST) {
		log_error("spool: cannot create %s: %s", sp->dir,
		    strerror(errno));
		return -1;
	}
	sp->dfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dfd < 0) {
		log_error("spool: cannot open %s: %s", sp->dir,
		    strerror(errno));
		return -1;
	}
	if (flock(sp->dfd, LOCK_EX | LOCK_NB) < 0) {
		log_error("spool: %s: %s", sp->dir, errno == EWOULDBLOCK ?
		    "in use by another process" : strerror(errno));
		return -1;
	}
	return 0;
}

int
spool_open(const char *dir, uint64_t max_bytes, uint64_t segment_bytes,
    struct spool **out)
{
	struct spool *sp;
	uint64_t ack_seq, ack_off;
	int rc = -1;

	*out = NULL;
	if (dir == NULL || dir[0] == '\0' || max_bytes == 0 ||
	    segment_bytes == 0) {
		log_error("spool: needs a directory and non-zero sizes");
		return -1;
	}
	sp = calloc(1, sizeof(*sp));
	if (sp == NULL || (sp->dir = strdup(dir)) == NULL) {
		fprintf(stderr, "spool: out of memory\n");
		abort();
	}
	sp->dfd = sp->wfd = sp->rfd = -1;
	sp->max_bytes = max_bytes;
	sp->segment_bytes = segment_bytes;
	sp->drops_logged_ms = spool_now_ms() - SPOOL_LOG_INTERVAL_MS;
	if (spool_lock_dir(sp) < 0)
		goto out;
	spool_ack_load(sp, &ack_seq, &ack_off);
	if (spool_scan(sp, ack_seq) < 0)
		goto out;
	if (sp->nsegs > 0 && sp->segs[0].seq == ack_seq)
		sp->ack_off = ack_off < sp->segs[0].size ? ack_off :
		    sp->segs[0].size;
	sp->saved_seq = ack_seq;
	sp->saved_off = ack_off;
	sp->counted_to = sp->ack_off;
	sp->next_seq = ack_seq + 1;
	if (sp->nsegs > 0 && sp->segs[sp->nsegs - 1].seq >= sp->next_seq)
		sp->next_seq = sp->segs[sp->nsegs - 1].seq + 1;
	if (spool_pending_bytes(sp) > 0)
		log_info("spool: %s: %" PRIu64 " bytes in %zu segments to "
		    "replay", sp->dir, spool_pending_bytes(sp), sp->nsegs);
	*out = sp;
	rc = 0;
out:
	if (rc < 0)
		spool_close(sp);
	return rc;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->wfd >= 0)
		close(sp->wfd);		/* every append was synced */
	if (sp->rfd >= 0)
		close(sp->rfd);
	/* damage skipped at the head is not read again next time */
	if (sp->nsegs > 0 && sp->ack_off > 0 &&
	    (sp->saved_seq != sp->segs[0].seq || sp->saved_off != sp->ack_off))
		(void)spool_ack_save(sp, sp->segs[0].seq, sp->ack_off);
	if (sp->drops_unlogged > 0)
		log_error("spool: %s: %" PRIu64 " more events dropped since "
		    "the last report", sp->dir, sp->drops_unlogged);
	if (sp->dfd >= 0)
		close(sp->dfd);		/* and the lock with it */
	free(sp->segs);
	free(sp->iov);
	free(sp->hdr);
	free(sp->rbuf);
	free(sp->arena);
	free(sp->batch);
	free(sp->dir);
	free(sp);
}

void
spool_set_limits(struct spool *sp, uint64_t max_bytes, uint64_t segment_bytes)
{
	if (max_bytes > 0)
		sp->max_bytes = max_bytes;
	if (segment_bytes > 0)
		sp->segment_bytes = segment_bytes;
}

/* ---- appending -------------------------------------------------------- */

/* Stops appending to the newest segment; the next append starts one. */
static void
spool_seal(struct spool *sp)
{
	if (sp->wfd < 0)
		return;
	close(sp->wfd);
	sp->wfd = -1;
}

/* Creates the next segment and makes its name durable.  0, or -1 with
 * errno set. */
static int
spool_seg_create(struct spool *sp)
{
	char name[SPOOL_SEG_NAME_LEN + 1];
	int fd;

	spool_seg_name(name, sizeof(name), sp->next_seq);
	fd = openat(sp->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND |
	    O_CLOEXEC, SPOOL_FILE_MODE);
	if (fd < 0)
		return -1;
	if (fsync(sp->dfd) < 0) {
		int err = errno;

		close(fd);
		(void)unlinkat(sp->dfd, name, 0);
		errno = err;
		return -1;
	}
	sp->wfd = fd;
	spool_segs_push(sp, sp->next_seq++, 0);
	return 0;
}

static void
spool_log_drops(struct spool *sp, uint64_t n, const char *why)
{
	int64_t now = spool_now_ms();

	sp->st.dropped += n;
	sp->drops_unlogged += n;
	if (sp->failing && now - sp->drops_logged_ms < SPOOL_LOG_INTERVAL_MS)
		return;
	log_error("spool: %s: %s (%" PRIu64 " events dropped)", sp->dir, why,
	    sp->drops_unlogged);
	sp->failing = true;
	sp->drops_unlogged = 0;
	sp->drops_logged_ms = now;
}

/*
 * Lines [from, end) that go together into one segment: the current one,
 * or a new one if the first does not fit there (the current one is then
 * sealed).  *why is set when lines[end] cannot be stored at all.
 */
static size_t
spool_plan(struct spool *sp, const size_t *lens, size_t from, size_t n,
    const char **why)
{
	uint64_t seg, grp = 0, f;
	size_t end;

	seg = sp->wfd >= 0 ? sp->segs[sp->nsegs - 1].size : 0;
	for (end = from; end < n; end++) {
		if (lens[end] > SPOOL_MAX_LINE) {
			*why = "event larger than the spool's line limit";
			break;
		}
		f = SPOOL_HDR + (uint64_t)lens[end];
		if (sp->disk_bytes + grp + f > sp->max_bytes) {
			*why = "spool full";
			break;
		}
		if (seg + grp > 0 && seg + grp + f > sp->segment_bytes) {
			if (end > from)
				break;		/* the next group rotates */
			spool_seal(sp);
			seg = 0;
		}
		grp += f;
	}
	return end;
}

/* Writes the frames of lines [from, end) to the current segment (created
 * if needed) and syncs them.  0, or -1 with errno set and the segment as
 * it was before (or sealed if it could not be restored). */
static int
spool_write_group(struct spool *sp, char *const *lines, const size_t *lens,
    size_t from, size_t end)
{
	struct spool_seg *seg;
	size_t i, k, cnt = 0, bytes = 0;
	int err;

	if (sp->wfd < 0 && spool_seg_create(sp) < 0)
		return -1;
	if (end - from > sp->frames_cap) {
		sp->frames_cap = end - from;
		sp->hdr = spool_xrealloc(sp->hdr,
		    sp->frames_cap * sizeof(*sp->hdr));
		sp->iov = spool_xrealloc(sp->iov,
		    2 * sp->frames_cap * sizeof(*sp->iov));
	}
	for (i = from, k = 0; i < end; i++, k++) {
		memcpy(sp->hdr[k], spool_magic, 4);
		spool_put32(sp->hdr[k] + 4, (uint32_t)lens[i]);
		spool_put32(sp->hdr[k] + 8, spool_crc32c(0, lines[i], lens[i]));
		spool_put32(sp->hdr[k] + 12, spool_crc32c(0, sp->hdr[k], 12));
		sp->iov[cnt++] = (struct iovec){ sp->hdr[k], SPOOL_HDR };
		if (lens[i] > 0)
			sp->iov[cnt++] = (struct iovec){ lines[i], lens[i] };
		bytes += SPOOL_HDR + lens[i];
	}
	seg = &sp->segs[sp->nsegs - 1];
	if (spool_writev_all(sp->wfd, sp->iov, cnt) == 0 &&
	    fdatasync(sp->wfd) == 0) {
		seg->size += bytes;
		sp->disk_bytes += bytes;
		return 0;
	}
	err = errno;
	/* no half frame may stay in front of the next append */
	if (ftruncate(sp->wfd, (off_t)seg->size) < 0) {
		struct stat stb;

		if (fstat(sp->wfd, &stb) == 0 &&
		    (uint64_t)stb.st_size > seg->size) {
			sp->disk_bytes += (uint64_t)stb.st_size - seg->size;
			seg->size = (uint64_t)stb.st_size;
		}
		spool_seal(sp);
	}
	errno = err;
	return -1;
}

size_t
spool_append(struct spool *sp, char *const *lines, const size_t *lens,
    size_t n)
{
	const char *why = NULL;
	char msg[160];
	size_t done = 0, end;

	while (done < n && why == NULL) {
		end = spool_plan(sp, lens, done, n, &why);
		if (end == done)
			break;
		if (spool_write_group(sp, lines, lens, done, end) < 0) {
			snprintf(msg, sizeof(msg), "cannot write: %s",
			    strerror(errno));
			why = msg;
			break;
		}
		done = end;
	}
	sp->st.appended += done;
	if (done < n) {
		spool_log_drops(sp, n - done, why);
	} else if (sp->failing) {
		if (sp->drops_unlogged > 0)
			log_info("spool: %s: storing events again (%" PRIu64
			    " more dropped before)", sp->dir,
			    sp->drops_unlogged);
		else
			log_info("spool: %s: storing events again", sp->dir);
		sp->failing = false;
		sp->drops_unlogged = 0;
	}
	return done;
}

/* ---- replay ----------------------------------------------------------- */

/*
 * The bytes [off, off + need) of segs[0], from the read buffer (refilled
 * from the file when they are not all in it).  NULL if they run past the
 * end of the segment (*ioerr false) or on a read error (*ioerr true,
 * logged).  Valid until the next call.
 */
static const unsigned char *
spool_read_at(struct spool *sp, uint64_t off, size_t need, bool *ioerr)
{
	uint64_t size = sp->segs[0].size;
	size_t want, got = 0;
	ssize_t r;

	*ioerr = false;
	if (off >= sp->rbuf_off && off + need <= sp->rbuf_off + sp->rbuf_len)
		return sp->rbuf + (off - sp->rbuf_off);
	if (off > size || need > size - off)
		return NULL;
	want = need > SPOOL_READ_CHUNK ? need : SPOOL_READ_CHUNK;
	if (want > size - off)
		want = (size_t)(size - off);
	if (want > sp->rbuf_cap) {
		sp->rbuf_cap = want;
		sp->rbuf = spool_xrealloc(sp->rbuf, want);
	}
	sp->rbuf_len = 0;
	r = 1;
	while (got < want) {
		r = pread(sp->rfd, sp->rbuf + got, want - got,
		    (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got < need) {
		log_error("spool: %s/" SPOOL_SEG_FMT ": read at %" PRIu64
		    ": %s", sp->dir, sp->segs[0].seq, off,
		    r < 0 ? strerror(errno) : "the file shrank");
		*ioerr = true;
		return NULL;
	}
	sp->rbuf_off = off;
	sp->rbuf_len = got;
	return sp->rbuf;
}

/* Checks the frame at off of segs[0]; *len is its payload length. */
static enum spool_frame
spool_frame_at(struct spool *sp, uint64_t off, uint32_t *len)
{
	const unsigned char *p;
	bool ioerr;

	p = spool_read_at(sp, off, SPOOL_HDR, &ioerr);
	if (p == NULL)
		return ioerr ? SPOOL_FRAME_IOERR : SPOOL_FRAME_SHORT;
	if (memcmp(p, spool_magic, 4) != 0 ||
	    spool_get32(p + 12) != spool_crc32c(0, p, 12))
		return SPOOL_FRAME_BAD;
	*len = spool_get32(p + 4);
	if (*len > SPOOL_MAX_LINE)
		return SPOOL_FRAME_BAD;
	p = spool_read_at(sp, off, SPOOL_HDR + (size_t)*len, &ioerr);
	if (p == NULL)
		return ioerr ? SPOOL_FRAME_IOERR : SPOOL_FRAME_SHORT;
	if (spool_get32(p + 8) != spool_crc32c(0, p + SPOOL_HDR, *len))
		return SPOOL_FRAME_BAD;
	return SPOOL_FRAME_OK;
}

/*
 * From the damaged offset from, finds the next valid frame of segs[0]:
 * *found is its offset, or the segment size if there is none (a torn
 * tail).  *marks counts the frame markers in [from, *found), the frames
 * lost there.  0, or -1 on a read error.
 */
static int
spool_resync(struct spool *sp, uint64_t from, uint64_t *found,
    uint64_t *marks)
{
	uint64_t size = sp->segs[0].size, q = from;
	const unsigned char *w, *m;
	enum spool_frame fr;
	uint32_t len;
	size_t wlen;
	bool ioerr;

	*marks = 0;
	while (q + SPOOL_HDR <= size) {
		wlen = size - q > SPOOL_READ_CHUNK ? SPOOL_READ_CHUNK :
		    (size_t)(size - q);
		w = spool_read_at(sp, q, wlen, &ioerr);
		if (w == NULL)
			return -1;
		m = memmem(w, wlen, spool_magic, sizeof(spool_magic));
		if (m == NULL) {
			q += wlen - (sizeof(spool_magic) - 1);
			continue;
		}
		q += (uint64_t)(m - w);
		if (q > from) {
			fr = spool_frame_at(sp, q, &len);
			if (fr == SPOOL_FRAME_OK) {
				*found = q;
				return 0;
			}
			if (fr == SPOOL_FRAME_IOERR)
				return -1;
		}
		(*marks)++;
		q++;
	}
	*found = size;
	return 0;
}

/* Counts and logs the damage [from, to) of segs[0], once. */
static void
spool_damage(struct spool *sp, uint64_t from, uint64_t to, uint64_t marks)
{
	uint64_t lost = marks > 0 ? marks : 1;

	if (from < sp->counted_to)
		return;
	sp->counted_to = to;
	if (to == sp->segs[0].size) {
		sp->st.torn_tail++;
		sp->st.torn_bytes += to - from;
		log_warn("spool: %s/" SPOOL_SEG_FMT ": torn tail at offset %"
		    PRIu64 ", %" PRIu64 " bytes skipped (a write cut short)",
		    sp->dir, sp->segs[0].seq, from, to - from);
		return;
	}
	sp->st.corrupt_records += lost;
	sp->st.corrupt_bytes += to - from;
	log_error("spool: %s/" SPOOL_SEG_FMT ": corrupt data at offset %"
	    PRIu64 ", %" PRIu64 " bytes (about %" PRIu64 " events lost) skipped",
	    sp->dir, sp->segs[0].seq, from, to - from, lost);
}

/*
 * Makes segs[0] readable: 0, 1 when there is nothing to replay, -1 on an
 * error (logged).  The segment being appended to is sealed first.
 */
static int
spool_reader_open(struct spool *sp)
{
	char name[SPOOL_SEG_NAME_LEN + 1];

	if (sp->rfd >= 0)
		return 0;
	if (sp->nsegs == 0)
		return 1;
	if (sp->nsegs == 1 && sp->wfd >= 0) {
		if (sp->segs[0].size <= sp->ack_off)
			return 1;
		spool_seal(sp);
	}
	spool_seg_name(name, sizeof(name), sp->segs[0].seq);
	sp->rfd = openat(sp->dfd, name, O_RDONLY | O_CLOEXEC);
	if (sp->rfd < 0) {
		log_error("spool: %s/%s: %s", sp->dir, name, strerror(errno));
		return -1;
	}
	sp->rbuf_off = 0;
	sp->rbuf_len = 0;
	return 0;
}

/* segs[0] is delivered: deletes it; replay goes on with the next one. */
static void
spool_seg_done(struct spool *sp)
{
	char name[SPOOL_SEG_NAME_LEN + 1];
	uint64_t seq = sp->segs[0].seq;

	if (sp->rfd >= 0)
		close(sp->rfd);
	sp->rfd = -1;
	if (sp->nsegs == 1 && sp->wfd >= 0)
		spool_seal(sp);
	spool_seg_name(name, sizeof(name), seq);
	if (unlinkat(sp->dfd, name, 0) < 0 && errno != ENOENT) {
		log_error("spool: cannot delete %s/%s: %s", sp->dir, name,
		    strerror(errno));
		/* the saved position then says it was delivered */
		(void)spool_ack_save(sp, seq + 1, 0);
	}
	sp->disk_bytes -= sp->segs[0].size;
	memmove(sp->segs, sp->segs + 1, --sp->nsegs * sizeof(*sp->segs));
	sp->ack_off = 0;
	sp->counted_to = 0;
	sp->rbuf_len = 0;
}

/* Copies the frame at off (checked, payload length len) into the batch. */
static void
spool_batch_add(struct spool *sp, uint64_t off, uint32_t len, size_t *used)
{
	const unsigned char *p;
	bool ioerr;

	p = spool_read_at(sp, off, SPOOL_HDR + (size_t)len, &ioerr);
	if (*used + len + 1 > sp->arena_cap) {
		sp->arena_cap = (*used + len + 1) * 2;
		sp->arena = spool_xrealloc(sp->arena, sp->arena_cap);
	}
	memcpy(sp->arena + *used, p + SPOOL_HDR, len);
	sp->arena[*used + len] = '\0';
	if (sp->batch_n == sp->batch_cap) {
		sp->batch_cap = sp->batch_cap ? sp->batch_cap * 2 : 64;
		sp->batch = spool_xrealloc(sp->batch,
		    sp->batch_cap * sizeof(*sp->batch));
	}
	sp->batch[sp->batch_n++] = (struct spool_line){
		.end = off + SPOOL_HDR + len, .off = *used, .len = len };
	*used += (size_t)len + 1;
}

/* Reads the next batch of up to max lines from segs[0] at ack_off; skips
 * and counts damage.  0 when the segment has no valid frame left; -1 on a
 * read error. */
static int
spool_batch_read(struct spool *sp, size_t max)
{
	uint64_t off = sp->ack_off, found, marks;
	enum spool_frame fr;
	size_t used = 0;
	uint32_t len;

	sp->batch_n = 0;
	while (sp->batch_n < max && used < SPOOL_BATCH_BYTES &&
	    off < sp->segs[0].size) {
		fr = spool_frame_at(sp, off, &len);
		if (fr == SPOOL_FRAME_IOERR)
			return -1;
		if (fr == SPOOL_FRAME_OK) {
			spool_batch_add(sp, off, len, &used);
			off += SPOOL_HDR + len;
			continue;
		}
		if (spool_resync(sp, off, &found, &marks) < 0)
			return -1;
		spool_damage(sp, off, found, marks);
		if (sp->batch_n == 0)
			sp->ack_off = found;	/* nothing to deliver before */
		off = found;
	}
	return 0;
}

int
spool_replay_next(struct spool *sp, char **lines, size_t *lens, size_t max)
{
	size_t i;
	int r;

	sp->batch_n = 0;
	if (max == 0)
		return 0;
	for (;;) {
		r = spool_reader_open(sp);
		if (r != 0)
			return r > 0 ? 0 : -1;
		if (spool_batch_read(sp, max) < 0)
			return -1;
		if (sp->batch_n > 0)
			break;
		spool_seg_done(sp);
	}
	for (i = 0; i < sp->batch_n; i++) {
		lines[i] = sp->arena + sp->batch[i].off;
		lens[i] = sp->batch[i].len;
	}
	return (int)sp->batch_n;
}

int
spool_ack(struct spool *sp, size_t k)
{
	if (k > sp->batch_n) {
		log_error("spool: acknowledging %zu lines of a batch of %zu",
		    k, sp->batch_n);
		k = sp->batch_n;
	}
	sp->batch_n = 0;
	if (k == 0)
		return 0;
	sp->ack_off = sp->batch[k - 1].end;
	sp->st.replayed += k;
	if (sp->ack_off >= sp->segs[0].size) {
		spool_seg_done(sp);
		return 0;
	}
	return spool_ack_save(sp, sp->segs[0].seq, sp->ack_off);
}

uint64_t
spool_pending_bytes(const struct spool *sp)
{
	return sp->nsegs > 0 ? sp->disk_bytes - sp->ack_off : 0;
}

void
spool_get_stats(const struct spool *sp, struct spool_stats *st)
{
	*st = sp->st;
	st->segments = sp->nsegs;
	st->disk_bytes = sp->disk_bytes;
}
