// SPDX-License-Identifier: MIT
/* pagemap-<pid>.img: entries, CRIU's compatibility rules, the pages-file offset rule. */
#define LOG_PREFIX "pagemap: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "magic.h"
#include "pagemap.h"
#include "pagemap.pb-c.h"

int lp_pagemap_parse(struct lp_img *img, struct lp_pagemap *pm)
{
	PagemapHead *h;
	PagemapEntry *pe;
	size_t cap = 0;
	uint64_t off = 0;
	int ret;

	ret = lp_img_read_pb(img, &pagemap_head__descriptor, (void **)&h);
	if (ret == 0) {
		pr_err("%s/%s: empty: no pagemap_head", img->dir, img->name);
		return -EINVAL;
	}
	if (ret < 0)
		return ret;
	pm->pages_id = h->pages_id;
	lp_pb_free(h);

	while ((ret = lp_img_read_pb(img, &pagemap_entry__descriptor, (void **)&pe)) > 0) {
		struct lp_pme e = {.vaddr = pe->vaddr};
		/* numbered as in crit: entry 0 is the pagemap_head */
		unsigned int idx = img->nr_read - 1;

		if (pe->has_nr_pages) {
			e.nr_pages = pe->nr_pages;
			pm->nr_field5++;
		} else {
			e.nr_pages = pe->compat_nr_pages;
		}
		/* CRIU's rule: in_parent adds PE_PARENT to whatever flags say. */
		if (pe->has_in_parent && pe->in_parent)
			e.flags = (pe->has_flags ? pe->flags : 0) | PE_PARENT;
		else if (!pe->has_flags)
			e.flags = PE_PRESENT;
		else
			e.flags = pe->flags;
		lp_pb_free(pe);

		if (e.vaddr & (LP_PAGE_SIZE - 1)) {
			pr_err("%s/%s: entry %u: vaddr %#llx is not page aligned", img->dir,
			       img->name, idx, (unsigned long long)e.vaddr);
			return -EINVAL;
		}
		if (e.nr_pages == 0 || e.nr_pages > LP_PME_MAX_PAGES ||
		    e.vaddr + (e.nr_pages << LP_PAGE_SHIFT) < e.vaddr) {
			pr_err("%s/%s: entry %u at %#llx: bad page count %llu%s", img->dir,
			       img->name, idx, (unsigned long long)e.vaddr,
			       (unsigned long long)e.nr_pages,
			       e.nr_pages ? "" : " (a CRIU 4.2+ image read as an old one?)");
			return -EINVAL;
		}
		if (pm->nr && e.vaddr < lp_pme_end(&pm->e[pm->nr - 1])) {
			const struct lp_pme *p = &pm->e[pm->nr - 1];

			pr_err("%s/%s: entry %u at %#llx %s entry %u [%#llx, %#llx): entries must "
			       "be sorted and must not overlap",
			       img->dir, img->name, idx, (unsigned long long)e.vaddr,
			       e.vaddr < p->vaddr ? "comes before" : "overlaps", idx - 1,
			       (unsigned long long)p->vaddr, (unsigned long long)lp_pme_end(p));
			return -EINVAL;
		}
		if ((e.flags & PE_PARENT) && (e.flags & PE_PRESENT)) {
			pr_err("%s/%s: entry %u at %#llx: both PE_PARENT and PE_PRESENT", img->dir,
			       img->name, idx, (unsigned long long)e.vaddr);
			return -EINVAL;
		}
		if (e.flags & PE_PRESENT) {
			e.pages_off = off;
			off += e.nr_pages << LP_PAGE_SHIFT;
		}
		if (pm->nr == cap) {
			void *n;

			cap = cap ? cap * 2 : 16;
			n = realloc(pm->e, cap * sizeof(*pm->e));
			if (!n)
				return -ENOMEM;
			pm->e = n;
		}
		pm->e[pm->nr++] = e;
		pm->nr_pages += e.nr_pages;
		if (e.flags & PE_LAZY)
			pm->nr_lazy += e.nr_pages;
	}
	pm->present_bytes = off;
	return ret;
}

int lp_pagemap_load(const struct lp_images *im, uint32_t pid, struct lp_pagemap *pm)
{
	struct lp_img img;
	int ret;

	memset(pm, 0, sizeof(*pm));
	snprintf(pm->name, sizeof(pm->name), "pagemap-%u.img", pid);
	ret = lp_img_open(im, pm->name, PAGEMAP_MAGIC, &img);
	if (ret == -ENOENT)
		pr_err("%s/%s: missing: no page map for pid %u", im->path, pm->name, pid);
	if (ret)
		return ret;
	ret = lp_pagemap_parse(&img, pm);
	lp_img_close(&img);
	if (ret)
		lp_pagemap_free(pm);
	return ret;
}

void lp_pagemap_free(struct lp_pagemap *pm)
{
	free(pm->e);
	pm->e = NULL;
	pm->nr = 0;
}

size_t lp_pagemap_lower_bound(const struct lp_pagemap *pm, uint64_t addr)
{
	size_t lo = 0, hi = pm->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (lp_pme_end(&pm->e[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct lp_pme *lp_pagemap_find(const struct lp_pagemap *pm, uint64_t addr)
{
	size_t i = lp_pagemap_lower_bound(pm, addr);

	if (i < pm->nr && pm->e[i].vaddr <= addr)
		return &pm->e[i];
	return NULL;
}
