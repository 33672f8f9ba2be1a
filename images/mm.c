// SPDX-License-Identifier: MIT
/* mm-<pid>.img: the VMA list. */
#define LOG_PREFIX "mm: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "magic.h"
#include "mm.h"
#include "mm.pb-c.h"

#define PAGE_MASK_4K 4095ULL

bool lp_vma_can_be_lazy(const struct lp_vma *v)
{
	return (v->flags & LP_MAP_ANONYMOUS) && (v->flags & LP_MAP_PRIVATE) &&
	       !(v->flags & (LP_MAP_LOCKED | LP_MAP_HUGETLB)) &&
	       !(v->status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL));
}

const char *lp_vma_kind(const struct lp_vma *v)
{
	if (v->status & VMA_AREA_VDSO)
		return "vdso";
	if (v->status & VMA_AREA_VVAR)
		return "vvar";
	if (v->status & VMA_AREA_VSYSCALL)
		return "vsyscall";
	if (v->status & VMA_AREA_STACK)
		return "stack";
	if (v->status & VMA_AREA_HEAP)
		return "heap";
	if (v->status & (VMA_AREA_SYSVIPC | VMA_AREA_MEMFD | VMA_ANON_SHARED))
		return "shmem";
	if (v->status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED))
		return "file";
	if (v->flags & LP_MAP_ANONYMOUS)
		return (v->flags & LP_MAP_SHARED) ? "shmem" : "anon";
	return "other";
}

int lp_mm_parse(struct lp_img *img, struct lp_mm *mm)
{
	MmEntry *e;
	int ret;

	memset(mm, 0, sizeof(*mm));
	ret = lp_img_read_pb(img, &mm_entry__descriptor, (void **)&e);
	if (ret == 0) {
		pr_err("%s/%s: no entry (empty image)", img->dir, img->name);
		return -EINVAL;
	}
	if (ret < 0)
		return ret;
	ret = 0;
	if (img->off != img->size)
		pr_warn("%s/%s: %zu trailing bytes after the entry ignored", img->dir, img->name,
			img->size - img->off);
	mm->vmas = calloc(e->n_vmas ? e->n_vmas : 1, sizeof(*mm->vmas));
	if (!mm->vmas) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < e->n_vmas; i++) {
		const VmaEntry *ve = e->vmas[i];
		struct lp_vma *v;

		if (ve->status & VMA_AREA_GUARD) {
			mm->nr_guard++;
			continue;
		}
		if (ve->start >= ve->end || (ve->start & PAGE_MASK_4K) ||
		    (ve->end & PAGE_MASK_4K)) {
			pr_err("%s/%s: vma %zu [%#llx, %#llx): empty or not page aligned", img->dir,
			       img->name, i, (unsigned long long)ve->start,
			       (unsigned long long)ve->end);
			ret = -EINVAL;
			goto out;
		}
		if (mm->nr && ve->start < mm->vmas[mm->nr - 1].end) {
			pr_err("%s/%s: vma %zu [%#llx, %#llx) overlaps or precedes the one before "
			       "it (ending at %#llx)",
			       img->dir, img->name, i, (unsigned long long)ve->start,
			       (unsigned long long)ve->end,
			       (unsigned long long)mm->vmas[mm->nr - 1].end);
			ret = -EINVAL;
			goto out;
		}
		v = &mm->vmas[mm->nr++];
		v->start = ve->start;
		v->end = ve->end;
		v->pgoff = ve->pgoff;
		v->shmid = ve->shmid;
		v->prot = ve->prot;
		v->flags = ve->flags;
		v->status = ve->status;
		v->has_madv = ve->has_madv;
		v->madv = ve->madv;
	}
out:
	lp_pb_free(e);
	if (ret)
		lp_mm_free(mm);
	return ret;
}

int lp_mm_load(const struct lp_images *im, uint32_t pid, struct lp_mm *mm)
{
	struct lp_img img;
	char name[64];
	int ret;

	memset(mm, 0, sizeof(*mm));
	snprintf(name, sizeof(name), "mm-%u.img", pid);
	ret = lp_img_open(im, name, MM_MAGIC, &img);
	if (ret == -ENOENT)
		pr_err("%s/%s: missing: no memory layout for pid %u", im->path, name, pid);
	if (ret)
		return ret;
	ret = lp_mm_parse(&img, mm);
	lp_img_close(&img);
	return ret;
}

void lp_mm_free(struct lp_mm *mm)
{
	free(mm->vmas);
	mm->vmas = NULL;
	mm->nr = 0;
}

const struct lp_vma *lp_mm_find(const struct lp_mm *mm, uint64_t addr)
{
	size_t lo = 0, hi = mm->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < mm->vmas[mid].start)
			hi = mid;
		else if (addr >= mm->vmas[mid].end)
			lo = mid + 1;
		else
			return &mm->vmas[mid];
	}
	return NULL;
}
