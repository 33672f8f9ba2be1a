/* SPDX-License-Identifier: MIT */
/* pagemap-<pid>.img: which pages were dumped, with what flags, and where their data is. */
#ifndef LP_PAGEMAP_H
#define LP_PAGEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

#define LP_PAGE_SIZE  4096ULL
#define LP_PAGE_SHIFT 12

#define PE_PARENT  (1U << 0) /* data lives in the parent checkpoint */
#define PE_LAZY	   (1U << 1) /* may be restored lazily */
#define PE_PRESENT (1U << 2) /* data is in pages-<pages_id>.img */

struct lp_pme {
	uint64_t vaddr; /* dump-time address, page aligned */
	uint64_t nr_pages;
	uint32_t flags;	    /* PE_* after CRIU's compatibility rules */
	uint64_t pages_off; /* offset of vaddr's data in the pages file (PE_PRESENT only) */
};

static inline uint64_t lp_pme_end(const struct lp_pme *e)
{
	return e->vaddr + (e->nr_pages << LP_PAGE_SHIFT);
}

struct lp_pagemap {
	char name[64]; /* pagemap-<pid>.img */
	uint32_t pages_id;
	size_t nr;
	struct lp_pme *e;	    /* sorted by vaddr, non-overlapping */
	uint64_t present_bytes;	    /* bytes the pages file must hold */
	uint64_t nr_pages, nr_lazy; /* sums over all and over PE_LAZY entries */
	unsigned int nr_field5;	    /* entries whose count came from field 5 (CRIU 4.2+) */
};

/* Upper bound for one entry: the whole 47-bit user address space. */
#define LP_PME_MAX_PAGES (1ULL << 35)

int lp_pagemap_load(const struct lp_images *im, uint32_t pid, struct lp_pagemap *pm);
/* Parse an already-opened image (positioned after the magic). Used by the loader and fuzzers. */
int lp_pagemap_parse(struct lp_img *img, struct lp_pagemap *pm);
void lp_pagemap_free(struct lp_pagemap *pm);
/* The entry containing ADDR, or NULL. */
const struct lp_pme *lp_pagemap_find(const struct lp_pagemap *pm, uint64_t addr);
/* Index of the first entry that ends after ADDR (nr if none). */
size_t lp_pagemap_lower_bound(const struct lp_pagemap *pm, uint64_t addr);

#endif
