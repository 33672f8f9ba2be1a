/* SPDX-License-Identifier: MIT */
/* pages-<id>.img: raw page data, mapped read-only so that copies come straight from it. */
#ifndef LP_PAGES_H
#define LP_PAGES_H

#include <stdint.h>

#include "image.h"

struct lp_pages {
	char name[64];
	int fd;
	const uint8_t *map; /* NULL for an empty file */
	uint64_t size;
};

/* Open pages-<pages_id>.img; fails if it holds fewer than NEED bytes. */
int lp_pages_open(const struct lp_images *im, uint32_t pages_id, uint64_t need,
		  struct lp_pages *pg);
void lp_pages_close(struct lp_pages *pg);

/* Pointer to LEN bytes at OFF, or NULL if out of range. */
static inline const void *lp_pages_ptr(const struct lp_pages *pg, uint64_t off, uint64_t len)
{
	if (!pg->map || off > pg->size || len > pg->size - off)
		return NULL;
	return pg->map + off;
}

#endif
