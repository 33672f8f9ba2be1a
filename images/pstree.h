/* SPDX-License-Identifier: MIT */
/* The process tree of a checkpoint (pstree.img) and each task's state (core-<pid>.img). */
#ifndef LP_PSTREE_H
#define LP_PSTREE_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

struct lp_task {
	uint32_t pid, ppid, pgid, sid; /* as seen inside the dumped pid namespace */
	uint32_t nr_threads;
	uint32_t *threads; /* threads[0] is the leader */
};

struct lp_pstree {
	size_t nr;
	struct lp_task *tasks;
};

int lp_pstree_load(const struct lp_images *im, struct lp_pstree *pt);
/*
 * Parse an already-opened pstree image (positioned after the magic). Used by the loader
 * and fuzzers. Initialises *PT; on error nothing is left to free.
 */
int lp_pstree_parse(struct lp_img *img, struct lp_pstree *pt);
void lp_pstree_free(struct lp_pstree *pt);
const struct lp_task *lp_pstree_find(const struct lp_pstree *pt, uint32_t pid);

/*
 * task_state (TASK_ALIVE, TASK_DEAD, ...) of PID from core-<pid>.img.
 * A missing core image gives -ENOENT, without a message.
 */
int lp_core_task_state(const struct lp_images *im, uint32_t pid, uint32_t *state);

#endif
