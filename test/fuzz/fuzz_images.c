// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the image parser.
 *
 * Input: one selector byte, then the bytes of an image file (magics included).
 *   bits 0-2 of the selector: 0 pagemap, 1 pstree, 2 mm, 3 core, 4 inventory, else pagemap
 *   bit 7: read as img_version 1 (no common magic) instead of 2
 * test/fuzz/run.sh builds seeds this way from real images.
 *
 * Besides "no crash, no leak, no UB", what the parsers accept must hold the invariants
 * their users rely on (sorted, non-overlapping, offsets consistent); violations abort.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.pb-c.h"
#include "image.h"
#include "inventory.pb-c.h"
#include "log.h"
#include "magic.h"
#include "mm.h"
#include "pagemap.h"
#include "pstree.h"

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	(void)argc;
	(void)argv;
	/* Format every message (it is code too), but do not print them. */
	if (fd >= 0)
		log_set_fd(fd);
	log_set_level(LOG_DEBUG);
	return 0;
}

static void check_pagemap(const struct lp_pagemap *pm)
{
	uint64_t off = 0, pages = 0, lazy = 0;

	for (size_t i = 0; i < pm->nr; i++) {
		const struct lp_pme *e = &pm->e[i];

		CHECK(e->nr_pages > 0 && e->nr_pages <= LP_PME_MAX_PAGES);
		CHECK((e->vaddr & (LP_PAGE_SIZE - 1)) == 0);
		CHECK(lp_pme_end(e) > e->vaddr);
		CHECK(!(e->flags & PE_PARENT) || !(e->flags & PE_PRESENT));
		if (i)
			CHECK(e->vaddr >= lp_pme_end(&pm->e[i - 1]));
		if (e->flags & PE_PRESENT) {
			CHECK(e->pages_off == off);
			off += e->nr_pages * LP_PAGE_SIZE;
		}
		pages += e->nr_pages;
		if (e->flags & PE_LAZY)
			lazy += e->nr_pages;
		CHECK(lp_pagemap_find(pm, e->vaddr) == e);
		CHECK(lp_pagemap_find(pm, lp_pme_end(e) - 1) == e);
		CHECK(lp_pagemap_lower_bound(pm, e->vaddr) == i);
		if (e->vaddr)
			CHECK(lp_pagemap_find(pm, e->vaddr - 1) != e);
	}
	CHECK(off == pm->present_bytes);
	CHECK(pages == pm->nr_pages);
	CHECK(lazy == pm->nr_lazy);
	CHECK(pm->nr_field5 <= pm->nr);
}

static void check_mm(const struct lp_mm *mm)
{
	for (size_t i = 0; i < mm->nr; i++) {
		const struct lp_vma *v = &mm->vmas[i];

		CHECK(v->start < v->end);
		CHECK(!(v->status & VMA_AREA_GUARD));
		if (i)
			CHECK(v->start >= mm->vmas[i - 1].end);
		CHECK(lp_mm_find(mm, v->start) == v);
		CHECK(lp_mm_find(mm, v->end - 1) == v);
		(void)lp_vma_can_be_lazy(v);
		CHECK(lp_vma_kind(v) != NULL);
	}
}

static void check_pstree(const struct lp_pstree *pt)
{
	CHECK(pt->nr > 0);
	for (size_t i = 0; i < pt->nr; i++) {
		CHECK(lp_pstree_find(pt, pt->tasks[i].pid) == &pt->tasks[i]);
		CHECK(pt->tasks[i].nr_threads == 0 || pt->tasks[i].threads);
	}
}

/* Every entry of a single- or multi-entry image of type DESC. */
static void read_all(struct lp_img *img, const ProtobufCMessageDescriptor *desc)
{
	void *msg;

	while (lp_img_read_pb(img, desc, &msg) > 0) {
		CHECK(msg);
		lp_pb_free(msg);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		const char *name;
		uint32_t magic;
	} kinds[] = {
		{"pagemap-1.img", PAGEMAP_MAGIC},
		{"pstree.img", PSTREE_MAGIC},
		{"mm-1.img", MM_MAGIC},
		{"core-1.img", CORE_MAGIC},
		{"inventory.img", INVENTORY_MAGIC},
	};
	unsigned int k, version;
	struct lp_img img;
	uint8_t *buf;

	if (size < 1)
		return 0;
	k = data[0] & 7;
	if (k >= sizeof(kinds) / sizeof(kinds[0]))
		k = 0;
	version = (data[0] & 0x80) ? CRTOOLS_IMAGES_V1 : CRTOOLS_IMAGES_V1_1;
	data++;
	size--;
	/* An exact-size copy, so ASan sees any read past the end of the file. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);
	if (lp_img_open_buf(kinds[k].name, version, kinds[k].magic, buf, size, &img))
		return 0; /* lp_img_open_buf freed buf */

	switch (k) {
	case 0: {
		struct lp_pagemap pm;

		memset(&pm, 0, sizeof(pm));
		if (lp_pagemap_parse(&img, &pm) == 0)
			check_pagemap(&pm);
		lp_pagemap_free(&pm);
		break;
	}
	case 1: {
		struct lp_pstree pt;

		if (lp_pstree_parse(&img, &pt) == 0) {
			check_pstree(&pt);
			lp_pstree_free(&pt);
		}
		break;
	}
	case 2: {
		struct lp_mm mm;

		if (lp_mm_parse(&img, &mm) == 0) {
			check_mm(&mm);
			lp_mm_free(&mm);
		}
		break;
	}
	case 3:
		read_all(&img, &core_entry__descriptor);
		break;
	case 4:
		read_all(&img, &inventory_entry__descriptor);
		break;
	}
	lp_img_close(&img);
	return 0;
}
