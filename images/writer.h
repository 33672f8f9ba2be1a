/* SPDX-License-Identifier: MIT */
/*
 * Writing checkpoint images. Tests build checkpoints with it; the output reads back with
 * CRIU 3.17.1 (pagemap field 2 filled) and with CRIU 4.2+ (field 5 too, on request).
 */
#ifndef LP_WRITER_H
#define LP_WRITER_H

#include "image.h"
#include "mm.h"
#include "pagemap.h"
#include "pstree.h"

enum lp_pm_encoding {
	LP_PM_COMPAT = 0, /* field 2 only: what CRIU <= 4.1 writes */
	LP_PM_BOTH = 1,	  /* field 2 and field 5: readable by every CRIU */
	LP_PM_V42 = 2,	  /* field 2 = 0, field 5: what CRIU >= 4.2 writes */
};

int lp_write_inventory(const struct lp_images *im);
int lp_write_pstree(const struct lp_images *im, const struct lp_pstree *pt);
int lp_write_core(const struct lp_images *im, uint32_t pid, uint32_t task_state, const char *comm);
/* VMAs as given, then NR_GUARD fake GUARD VMAs appended the way CRIU 4.2+ does. */
int lp_write_mm(const struct lp_images *im, uint32_t pid, const struct lp_mm *mm,
		const struct lp_vma *guard, size_t nr_guard);
int lp_write_pagemap(const struct lp_images *im, uint32_t pid, uint32_t pages_id,
		     const struct lp_pme *e, size_t nr, enum lp_pm_encoding enc);

#endif
