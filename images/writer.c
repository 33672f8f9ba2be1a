// SPDX-License-Identifier: MIT
/* Writing inventory, pstree, core, mm and pagemap images. */
#define LOG_PREFIX "writer: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.pb-c.h"
#include "inventory.pb-c.h"
#include "log.h"
#include "magic.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "writer.h"

static int write_one(const struct lp_images *im, const char *name, uint32_t magic,
		     const ProtobufCMessage *msg)
{
	struct lp_img_writer w;

	lp_img_create(im, name, magic, &w);
	lp_img_write_pb(&w, msg);
	return lp_img_writer_close(&w);
}

int lp_write_inventory(const struct lp_images *im)
{
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	TaskKobjIdsEntry ids = TASK_KOBJ_IDS_ENTRY__INIT;

	inv.img_version = im->img_version;
	inv.has_fdinfo_per_id = true;
	inv.fdinfo_per_id = true;
	ids.vm_id = 1;
	ids.files_id = 1;
	ids.fs_id = 1;
	ids.sighand_id = 1;
	inv.root_ids = &ids;
	return write_one(im, "inventory.img", INVENTORY_MAGIC, &inv.base);
}

int lp_write_pstree(const struct lp_images *im, const struct lp_pstree *pt)
{
	struct lp_img_writer w;

	lp_img_create(im, "pstree.img", PSTREE_MAGIC, &w);
	for (size_t i = 0; i < pt->nr; i++) {
		PstreeEntry e = PSTREE_ENTRY__INIT;
		const struct lp_task *t = &pt->tasks[i];

		e.pid = t->pid;
		e.ppid = t->ppid;
		e.pgid = t->pgid;
		e.sid = t->sid;
		e.n_threads = t->nr_threads;
		e.threads = t->threads;
		lp_img_write_pb(&w, &e.base);
	}
	return lp_img_writer_close(&w);
}

int lp_write_core(const struct lp_images *im, uint32_t pid, uint32_t task_state, const char *comm)
{
	CoreEntry core = CORE_ENTRY__INIT;
	TaskCoreEntry tc = TASK_CORE_ENTRY__INIT;
	char name[64];

	core.mtype = MARCH__X86_64;
	tc.task_state = task_state;
	tc.comm = (char *)(comm ? comm : "lp-test");
	core.tc = &tc;
	snprintf(name, sizeof(name), "core-%u.img", pid);
	return write_one(im, name, CORE_MAGIC, &core.base);
}

static void fill_vma(VmaEntry *ve, const struct lp_vma *v)
{
	vma_entry__init(ve);
	ve->start = v->start;
	ve->end = v->end;
	ve->pgoff = v->pgoff;
	ve->shmid = v->shmid;
	ve->prot = v->prot;
	ve->flags = v->flags;
	ve->status = v->status;
	ve->fd = -1;
	ve->has_madv = v->has_madv;
	ve->madv = v->madv;
}

int lp_write_mm(const struct lp_images *im, uint32_t pid, const struct lp_mm *mm,
		const struct lp_vma *guard, size_t nr_guard)
{
	MmEntry e = MM_ENTRY__INIT;
	size_t n = mm->nr + nr_guard;
	VmaEntry *ves = calloc(n ? n : 1, sizeof(*ves));
	VmaEntry **pv = calloc(n ? n : 1, sizeof(*pv));
	char name[64];
	int ret;

	if (!ves || !pv) {
		free(ves);
		free(pv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (i < mm->nr) {
			fill_vma(&ves[i], &mm->vmas[i]);
		} else {
			fill_vma(&ves[i], &guard[i - mm->nr]);
			ves[i].status |= VMA_AREA_GUARD;
		}
		pv[i] = &ves[i];
	}
	e.n_vmas = n;
	e.vmas = pv;
	snprintf(name, sizeof(name), "mm-%u.img", pid);
	ret = write_one(im, name, MM_MAGIC, &e.base);
	free(ves);
	free(pv);
	return ret;
}

int lp_write_pagemap(const struct lp_images *im, uint32_t pid, uint32_t pages_id,
		     const struct lp_pme *pe, size_t nr, enum lp_pm_encoding enc)
{
	PagemapHead h = PAGEMAP_HEAD__INIT;
	struct lp_img_writer w;
	char name[64];

	snprintf(name, sizeof(name), "pagemap-%u.img", pid);
	lp_img_create(im, name, PAGEMAP_MAGIC, &w);
	h.pages_id = pages_id;
	lp_img_write_pb(&w, &h.base);
	for (size_t i = 0; i < nr; i++) {
		PagemapEntry e = PAGEMAP_ENTRY__INIT;

		e.vaddr = pe[i].vaddr;
		e.has_flags = true;
		e.flags = pe[i].flags;
		if (enc != LP_PM_V42) {
			if (pe[i].nr_pages > UINT32_MAX) {
				pr_err("%s: entry %zu: %llu pages do not fit the 32-bit field 2",
				       name, i, (unsigned long long)pe[i].nr_pages);
				lp_img_writer_close(&w);
				return -EOVERFLOW;
			}
			e.compat_nr_pages = pe[i].nr_pages;
		}
		if (enc != LP_PM_COMPAT) {
			e.has_nr_pages = true;
			e.nr_pages = pe[i].nr_pages;
		}
		lp_img_write_pb(&w, &e.base);
	}
	return lp_img_writer_close(&w);
}
