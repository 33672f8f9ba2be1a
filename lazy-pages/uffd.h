/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd operations with the rules the kernel leaves to userspace in one place
 * (docs/kernel.md):
 *  - EEXIST: somebody installed the page already; wake it anyway and go on.
 *  - a partial copy (EAGAIN with copy > 0) is resumed where it stopped.
 *  - EAGAIN with nothing copied (mmap_changing): the caller must read the uffd's
 *    pending events before trying again.
 *  - DONTWAKE is never used, so no wake is ever owed.
 */
#ifndef LP_UFFD_H
#define LP_UFFD_H

#include <stdint.h>

struct lp_uffd_res {
	uint64_t copied; /* bytes installed by this call */
	uint64_t eexist; /* pages that were already there */
};

/*
 * Install LEN bytes at DST from SRC (SRC NULL: zeros by UFFDIO_ZEROPAGE).
 * Returns 0 when the whole range is in place, or:
 *   -EAGAIN  the mm is changing: drain events, retry from DST + res->copied + eexist pages
 *   -ENOENT  no registered VMA at the next page
 *   -ESRCH   the process is gone (also for -ENOSPC from old kernels)
 *   other    unexpected: fatal for the restore
 * res tells how far it got either way.
 */
int lp_uffd_fill(int uffd, uint64_t dst, const void *src, uint64_t len, unsigned int flags,
		 struct lp_uffd_res *res);

/*
 * Deliberately broken protocol, for the stress test's self-check only
 * (lazypages daemon --inject-bug): the watchdog must catch the lost wakeups.
 */
#define LP_FILL_BUG_DONTWAKE	   (1U << 0) /* copy with DONTWAKE and never wake */
#define LP_FILL_BUG_NO_EEXIST_WAKE (1U << 1) /* no wake after EEXIST */
int lp_uffd_wake(int uffd, uint64_t start, uint64_t len);
int lp_uffd_unregister(int uffd, uint64_t start, uint64_t len);

/* A page of zeros, for write faults on addresses the images do not hold. */
extern const uint8_t lp_zero_page[4096];

#endif
