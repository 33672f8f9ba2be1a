/* SPDX-License-Identifier: MIT */
/* A process's memory layout from mm-<pid>.img. */
#ifndef LP_MM_H
#define LP_MM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* vma_entry.status bits */
#define VMA_AREA_REGULAR  (1U << 0)
#define VMA_AREA_STACK	  (1U << 1)
#define VMA_AREA_VSYSCALL (1U << 2)
#define VMA_AREA_VDSO	  (1U << 3)
#define VMA_AREA_HEAP	  (1U << 5)
#define VMA_FILE_PRIVATE  (1U << 6)
#define VMA_FILE_SHARED	  (1U << 7)
#define VMA_ANON_SHARED	  (1U << 8)
#define VMA_ANON_PRIVATE  (1U << 9)
#define VMA_AREA_SYSVIPC  (1U << 10)
#define VMA_AREA_SOCKET	  (1U << 11)
#define VMA_AREA_VVAR	  (1U << 12)
#define VMA_AREA_AIORING  (1U << 13)
#define VMA_AREA_MEMFD	  (1U << 14)
#define VMA_AREA_SHSTK	  (1U << 15)
#define VMA_AREA_GUARD	  (1U << 16) /* CRIU 4.2+: a fake VMA, not a mapping */
#define VMA_AREA_UPROBES  (1U << 17)

/* vma_entry.flags are mmap() flags */
#define LP_MAP_SHARED	 0x01U
#define LP_MAP_PRIVATE	 0x02U
#define LP_MAP_ANONYMOUS 0x20U
#define LP_MAP_GROWSDOWN 0x100U
#define LP_MAP_LOCKED	 0x2000U
#define LP_MAP_NORESERVE 0x4000U
#define LP_MAP_HUGETLB	 0x40000U

struct lp_vma {
	uint64_t start, end; /* [start, end), page aligned */
	uint64_t pgoff;
	uint64_t shmid;
	uint32_t prot;
	uint32_t flags;
	uint32_t status;
	bool has_madv;
	uint64_t madv;
};

struct lp_mm {
	size_t nr; /* real VMAs, sorted by start, non-overlapping */
	struct lp_vma *vmas;
	size_t nr_guard; /* GUARD fakes seen and skipped */
};

int lp_mm_load(const struct lp_images *im, uint32_t pid, struct lp_mm *mm);
/*
 * Parse an already-opened mm image (positioned after the magic): its one mm_entry.
 * Used by the loader and fuzzers. Initialises *MM; on error nothing is left to free.
 */
int lp_mm_parse(struct lp_img *img, struct lp_mm *mm);
void lp_mm_free(struct lp_mm *mm);
/* The VMA containing ADDR, or NULL. */
const struct lp_vma *lp_mm_find(const struct lp_mm *mm, uint64_t addr);

/* May CRIU restore this VMA lazily? (private anonymous, not locked/hugetlb/vdso/vvar) */
bool lp_vma_can_be_lazy(const struct lp_vma *v);
/* A short human name for the VMA's kind: "anon", "heap", "stack", "file", "shmem", ... */
const char *lp_vma_kind(const struct lp_vma *v);

#endif
