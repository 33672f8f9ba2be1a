/* SPDX-License-Identifier: MIT */
/*
 * The range map of one restored process: which run-time addresses still lack their
 * image data, and where that data is.
 *
 * A segment covers [start, end) at run time and maps it to image addresses from img
 * on (mremap moves start/end, never img). A segment lies inside one VMA and one pagemap
 * entry, so a copy built from one segment never crosses either. Each page has one bit:
 * set while its data is still to be installed. Segments with no bit set are removed.
 *
 * Ownership: a map belongs to one process (struct lp_proc). Its shape (segments added,
 * split, moved, removed) changes only under the process's write lock, held by the loop
 * thread across reading the uffd and applying events. Fill workers hold the read lock
 * from choosing a run until its copy is done, and only clear bits (atomically). So an
 * event (REMOVE, UNMAP, REMAP, FORK) and a copy decision never interleave, as the kernel
 * requires (docs/kernel.md).
 */
#ifndef LP_RANGES_H
#define LP_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lp_seg {
	uint64_t start, end; /* run-time addresses, page aligned */
	uint64_t img;	     /* image address of start */
	const uint8_t *data; /* page data for img (local images), or NULL (remote) */
	uint64_t *bits;	     /* bit i set: page start + i*PAGE is still missing */
	uint64_t nr_missing;
	uint64_t hint; /* no bit below this index is set */
};

struct lp_range_map {
	struct lp_seg *seg; /* sorted by start, non-overlapping */
	size_t nr, cap;
	uint64_t nr_missing; /* sum over segments */
};

void rm_init(struct lp_range_map *m);
void rm_free(struct lp_range_map *m);
/* Add [start, end) -> img with every page missing. Must not overlap existing segments. */
int rm_add(struct lp_range_map *m, uint64_t start, uint64_t end, uint64_t img, const uint8_t *data);
/* Deep copy (fork: the child inherits everything the parent still misses). */
int rm_clone(struct lp_range_map *dst, const struct lp_range_map *src);

/* Index of the segment containing ADDR, or -1. */
long rm_find(const struct lp_range_map *m, uint64_t addr);
bool rm_missing(const struct lp_seg *s, uint64_t addr);
/* Number of consecutive missing pages from ADDR (inside its segment), at most MAX. */
uint64_t rm_run(const struct lp_seg *s, uint64_t addr, uint64_t max);
/* Mark NR pages from ADDR in segment IDX as present; removes the segment when empty. */
void rm_done(struct lp_range_map *m, size_t idx, uint64_t addr, uint64_t nr);

/*
 * Concurrent-safe part, for fill workers holding the process's read lock:
 * rm_clear marks pages present without removing an emptied segment (returns the pages
 * still missing in it); rm_next_run finds the first missing run at or after FROM.
 */
uint64_t rm_clear(struct lp_range_map *m, struct lp_seg *s, uint64_t addr, uint64_t nr);
bool rm_next_run(const struct lp_range_map *m, uint64_t from, uint64_t max, size_t *idx,
		 uint64_t *addr, uint64_t *nr);

/* Forget [start, end): munmap, MADV_DONTNEED. Splits segments at the edges. */
int rm_cut(struct lp_range_map *m, uint64_t start, uint64_t end);
/* mremap of [from, from+len) to [to, to+len): run-time addresses move, image ones stay. */
int rm_remap(struct lp_range_map *m, uint64_t from, uint64_t to, uint64_t len);

/* The lowest missing run: segment index, address and up to MAX pages. False if none. */
bool rm_first_run(struct lp_range_map *m, uint64_t max, size_t *idx, uint64_t *addr, uint64_t *nr);

#endif
