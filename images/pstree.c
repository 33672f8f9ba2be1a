// SPDX-License-Identifier: MIT
/* pstree.img and the task state from core-<pid>.img. */
#define LOG_PREFIX "pstree: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.pb-c.h"
#include "log.h"
#include "magic.h"
#include "pstree.h"
#include "pstree.pb-c.h"

int lp_pstree_parse(struct lp_img *img, struct lp_pstree *pt)
{
	PstreeEntry *e;
	size_t cap = 0;
	int ret;

	memset(pt, 0, sizeof(*pt));
	while ((ret = lp_img_read_pb(img, &pstree_entry__descriptor, (void **)&e)) > 0) {
		struct lp_task *t;

		if (lp_pstree_find(pt, e->pid)) {
			pr_err("%s/%s: entry %u: pid %u appears twice", img->dir, img->name,
			       img->nr_read - 1, e->pid);
			lp_pb_free(e);
			ret = -EINVAL;
			break;
		}
		if (pt->nr == cap) {
			void *n;

			cap = cap ? cap * 2 : 8;
			n = realloc(pt->tasks, cap * sizeof(*pt->tasks));
			if (!n) {
				lp_pb_free(e);
				ret = -ENOMEM;
				break;
			}
			pt->tasks = n;
		}
		t = &pt->tasks[pt->nr];
		memset(t, 0, sizeof(*t));
		t->pid = e->pid;
		t->ppid = e->ppid;
		t->pgid = e->pgid;
		t->sid = e->sid;
		t->nr_threads = e->n_threads;
		if (e->n_threads) {
			t->threads = malloc(e->n_threads * sizeof(uint32_t));
			if (!t->threads) {
				lp_pb_free(e);
				ret = -ENOMEM;
				break;
			}
			memcpy(t->threads, e->threads, e->n_threads * sizeof(uint32_t));
		}
		pt->nr++;
		lp_pb_free(e);
	}
	if (ret == 0 && pt->nr == 0) {
		pr_err("%s/%s: no processes in the tree", img->dir, img->name);
		ret = -EINVAL;
	}
	if (ret < 0) {
		lp_pstree_free(pt);
		return ret;
	}
	return 0;
}

int lp_pstree_load(const struct lp_images *im, struct lp_pstree *pt)
{
	struct lp_img img;
	int ret;

	memset(pt, 0, sizeof(*pt));
	ret = lp_img_open(im, "pstree.img", PSTREE_MAGIC, &img);
	if (ret == -ENOENT)
		pr_err("%s/pstree.img: missing: the checkpoint has no process tree", im->path);
	if (ret)
		return ret;
	ret = lp_pstree_parse(&img, pt);
	lp_img_close(&img);
	return ret;
}

void lp_pstree_free(struct lp_pstree *pt)
{
	for (size_t i = 0; i < pt->nr; i++)
		free(pt->tasks[i].threads);
	free(pt->tasks);
	pt->tasks = NULL;
	pt->nr = 0;
}

const struct lp_task *lp_pstree_find(const struct lp_pstree *pt, uint32_t pid)
{
	for (size_t i = 0; i < pt->nr; i++)
		if (pt->tasks[i].pid == pid)
			return &pt->tasks[i];
	return NULL;
}

int lp_core_task_state(const struct lp_images *im, uint32_t pid, uint32_t *state)
{
	CoreEntry *core;
	char name[64];
	int ret;

	snprintf(name, sizeof(name), "core-%u.img", pid);
	ret = lp_img_read_one(im, name, CORE_MAGIC, &core_entry__descriptor, (void **)&core);
	if (ret)
		return ret;
	if (!core->tc) {
		pr_err("%s/%s: no task_core_entry (tc): cannot tell the task's state", im->path,
		       name);
		ret = -EINVAL;
	} else {
		*state = core->tc->task_state;
	}
	lp_pb_free(core);
	return ret;
}
