// SPDX-License-Identifier: MIT
/* UFFDIO_COPY / ZEROPAGE / WAKE / UNREGISTER with the EEXIST, partial and EAGAIN rules. */
#define LOG_PREFIX "uffd: "
#include <errno.h>
#include <string.h>

#include "log.h"
#include "pagemap.h"
#include "uffd-abi.h"
#include "uffd.h"

const uint8_t lp_zero_page[4096] __attribute__((aligned(4096)));

int lp_uffd_wake(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = {.start = start, .len = len};

	if (ioctl(uffd, UFFDIO_WAKE, &r))
		return -errno;
	return 0;
}

int lp_uffd_unregister(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = {.start = start, .len = len};

	if (ioctl(uffd, UFFDIO_UNREGISTER, &r))
		return -errno;
	return 0;
}

/* One ioctl. Returns bytes done (>= 0) or -errno; *partial set when it stopped early. */
static int64_t fill_once(int uffd, uint64_t dst, const void *src, uint64_t len, unsigned int flags)
{
	if (src) {
		struct uffdio_copy c = {
			.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .mode = 0};

		if (flags & LP_FILL_BUG_DONTWAKE)
			c.mode = UFFDIO_COPY_MODE_DONTWAKE;

		if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
			return len;
		if (c.copy > 0)
			return c.copy; /* partial: EAGAIN with progress */
		return c.copy < 0 ? c.copy : -errno;
	} else {
		struct uffdio_zeropage z = {.range = {.start = dst, .len = len}, .mode = 0};

		if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0)
			return len;
		if (z.zeropage > 0)
			return z.zeropage;
		return z.zeropage < 0 ? z.zeropage : -errno;
	}
}

int lp_uffd_fill(int uffd, uint64_t dst, const void *src, uint64_t len, unsigned int flags,
		 struct lp_uffd_res *res)
{
	uint64_t off = 0;

	res->copied = res->eexist = 0;
	while (off < len) {
		int64_t n = fill_once(uffd, dst + off, src ? (const uint8_t *)src + off : NULL,
				      len - off, flags);

		if (n > 0) {
			off += n;
			res->copied += n;
			continue;
		}
		switch (n) {
		case -EEXIST:
			/*
			 * Installed by someone else (a racing fill, or a fault served twice).
			 * Its installer woke the waiters, but a wake is cheap and makes that
			 * independent of how the page got there.
			 */
			if (!(flags & LP_FILL_BUG_NO_EEXIST_WAKE))
				lp_uffd_wake(uffd, dst + off, LP_PAGE_SIZE);
			res->eexist++;
			off += LP_PAGE_SIZE;
			continue;
		case -ENOSPC:
			return -ESRCH;
		case 0:
			return -EIO; /* no progress and no error: never loop forever */
		default:
			return (int)n;
		}
	}
	return 0;
}
