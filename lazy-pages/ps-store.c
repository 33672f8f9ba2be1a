// SPDX-License-Identifier: MIT
/* The page server's view of a checkpoint: runs of present pages, and request answers. */
#define LOG_PREFIX "page-server: "
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "magic.h"
#include "ps-store.h"

static struct ps_task *find_task(const struct ps_store *st, uint32_t pid)
{
	size_t lo = 0, hi = st->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->tasks[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < st->nr && st->tasks[lo].pid == pid ? &st->tasks[lo] : NULL;
}

/* Insert a task for PID at its sorted place; NULL if it exists or on ENOMEM. */
static struct ps_task *insert_task(struct ps_store *st, uint32_t pid, int *err)
{
	struct ps_task *n;
	size_t i = 0;

	if (find_task(st, pid)) {
		*err = -EEXIST;
		return NULL;
	}
	n = realloc(st->tasks, (st->nr + 1) * sizeof(*n));
	if (!n) {
		*err = -ENOMEM;
		return NULL;
	}
	st->tasks = n;
	while (i < st->nr && st->tasks[i].pid < pid)
		i++;
	memmove(&st->tasks[i + 1], &st->tasks[i], (st->nr - i) * sizeof(*n));
	st->nr++;
	memset(&st->tasks[i], 0, sizeof(*n));
	st->tasks[i].pid = pid;
	st->tasks[i].pages.fd = -1;
	return &st->tasks[i];
}

static void free_task(struct ps_task *t)
{
	free(t->runs);
	t->runs = NULL;
	t->nr_runs = 0;
	if (t->pages.fd >= 0)
		lp_pages_close(&t->pages);
}

static void remove_task(struct ps_store *st, struct ps_task *t)
{
	size_t i = t - st->tasks;

	free_task(t);
	memmove(&st->tasks[i], &st->tasks[i + 1], (st->nr - i - 1) * sizeof(*t));
	st->nr--;
}

static int build_runs(struct ps_task *t, const struct lp_pme *e, size_t nr, const uint8_t *data,
		      uint64_t len, uint64_t *nr_pages)
{
	size_t cap = 0;

	for (size_t i = 0; i < nr; i++) {
		const uint64_t bytes = e[i].nr_pages << LP_PAGE_SHIFT;
		const uint8_t *d;
		struct ps_run *last = t->nr_runs ? &t->runs[t->nr_runs - 1] : NULL;

		if (!(e[i].flags & PE_PRESENT))
			continue;
		if (!data || e[i].pages_off > len || bytes > len - e[i].pages_off) {
			pr_err("pid %u: entry at %#" PRIx64 ": its %" PRIu64 " pages lie beyond "
			       "the %" PRIu64 " bytes of page data",
			       t->pid, e[i].vaddr, e[i].nr_pages, len);
			return -EINVAL;
		}
		d = data + e[i].pages_off;
		if (last && e[i].vaddr >= last->vaddr &&
		    e[i].vaddr - last->vaddr == last->nr_pages << LP_PAGE_SHIFT &&
		    d == last->data + (last->nr_pages << LP_PAGE_SHIFT)) {
			last->nr_pages += e[i].nr_pages;
		} else {
			if (last && e[i].vaddr < last->vaddr + (last->nr_pages << LP_PAGE_SHIFT)) {
				pr_err("pid %u: entry at %#" PRIx64 " is out of order", t->pid,
				       e[i].vaddr);
				return -EINVAL;
			}
			if (t->nr_runs == cap) {
				void *n;

				cap = cap ? cap * 2 : 16;
				n = realloc(t->runs, cap * sizeof(*t->runs));
				if (!n)
					return -ENOMEM;
				t->runs = n;
			}
			t->runs[t->nr_runs++] = (struct ps_run){e[i].vaddr, e[i].nr_pages, d};
		}
		*nr_pages += e[i].nr_pages;
	}
	return 0;
}

int ps_store_add(struct ps_store *st, uint32_t pid, const struct lp_pme *e, size_t nr,
		 const uint8_t *data, uint64_t len)
{
	uint64_t pages = 0;
	struct ps_task *t;
	int ret = 0;

	t = insert_task(st, pid, &ret);
	if (!t)
		return ret;
	ret = build_runs(t, e, nr, data, len, &pages);
	if (ret) {
		remove_task(st, t);
		return ret;
	}
	st->nr_pages += pages;
	return 0;
}

static int add_dead(struct ps_store *st, uint32_t pid)
{
	uint32_t *n = realloc(st->dead, (st->nr_dead + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	st->dead = n;
	st->dead[st->nr_dead++] = pid;
	return 0;
}

static int load_task(struct ps_store *st, const struct lp_images *im, uint32_t pid)
{
	struct lp_pagemap pm;
	struct lp_pages pg;
	struct ps_task *t;
	int ret;

	ret = lp_pagemap_load(im, pid, &pm);
	if (ret)
		return ret;
	ret = lp_pages_open(im, pm.pages_id, pm.present_bytes, &pg);
	if (ret) {
		lp_pagemap_free(&pm);
		return ret;
	}
	ret = ps_store_add(st, pid, pm.e, pm.nr, pg.map, pg.size);
	if (!ret) {
		t = find_task(st, pid);
		t->pages = pg;
		pr_info("pid %u: %zu runs, %" PRIu64 " present of %" PRIu64 " pages (%" PRIu64
			" lazy) from %s",
			pid, t->nr_runs, pm.present_bytes >> LP_PAGE_SHIFT, pm.nr_pages, pm.nr_lazy,
			pg.name);
	} else {
		lp_pages_close(&pg);
	}
	lp_pagemap_free(&pm);
	return ret;
}

int ps_store_load(struct ps_store *st, const struct lp_images *im, const struct lp_pstree *pt)
{
	int ret = 0;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < pt->nr && !ret; i++) {
		uint32_t pid = pt->tasks[i].pid, state;

		ret = lp_core_task_state(im, pid, &state);
		if (ret == -ENOENT)
			pr_err("%s/core-%u.img: missing: cannot tell whether pid %u is alive",
			       im->path, pid, pid);
		if (ret)
			break;
		if (state != TASK_ALIVE && state != TASK_STOPPED) {
			pr_info("pid %u: task_state %u, not alive: nothing to serve", pid, state);
			ret = add_dead(st, pid);
			continue;
		}
		ret = load_task(st, im, pid);
	}
	if (ret)
		ps_store_free(st);
	return ret;
}

void ps_store_free(struct ps_store *st)
{
	for (size_t i = 0; i < st->nr; i++)
		free_task(&st->tasks[i]);
	free(st->tasks);
	free(st->dead);
	memset(st, 0, sizeof(*st));
}

static bool is_dead(const struct ps_store *st, uint64_t pid)
{
	for (size_t i = 0; i < st->nr_dead; i++)
		if (st->dead[i] == pid)
			return true;
	return false;
}

/* The run of T holding VADDR, or NULL. */
static const struct ps_run *find_run(const struct ps_task *t, uint64_t vaddr)
{
	size_t lo = 0, hi = t->nr_runs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->runs[mid].vaddr <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	if (vaddr - t->runs[lo - 1].vaddr < t->runs[lo - 1].nr_pages << LP_PAGE_SHIFT)
		return &t->runs[lo - 1];
	return NULL;
}

static int answer_get(const struct ps_store *st, const struct ps_iov *req, const char *peer,
		      struct ps_answer *a)
{
	const struct ps_task *t = req->dst_id <= UINT32_MAX ? find_task(st, req->dst_id) : NULL;
	const struct ps_run *r;
	uint64_t off, avail, nr;

	if (req->vaddr & (LP_PAGE_SIZE - 1)) {
		pr_err("%s: GET pid %" PRIu64 " vaddr %#" PRIx64 " nr_pages %" PRIu64
		       ": vaddr is not page aligned; dropping the session",
		       peer, req->dst_id, req->vaddr, req->nr_pages);
		return -EINVAL;
	}
	if (!req->nr_pages) {
		pr_err("%s: GET pid %" PRIu64 " vaddr %#" PRIx64 " asks for 0 pages; dropping "
		       "the session",
		       peer, req->dst_id, req->vaddr);
		return -EINVAL;
	}
	if (!t) {
		pr_err("%s: GET pid %" PRIu64 " vaddr %#" PRIx64 " nr_pages %" PRIu64
		       ": unknown pid (%s); dropping the session",
		       peer, req->dst_id, req->vaddr, req->nr_pages,
		       is_dead(st, req->dst_id) ? "not alive in the checkpoint"
						: "not in pstree.img");
		return -ENOENT;
	}
	r = find_run(t, req->vaddr);
	if (!r) {
		pr_err("%s: GET pid %" PRIu64 " vaddr %#" PRIx64 " nr_pages %" PRIu64
		       ": no page data at this address in pagemap-%u.img (not dumped, or not "
		       "PE_PRESENT); dropping the session",
		       peer, req->dst_id, req->vaddr, req->nr_pages, t->pid);
		return -ENOENT;
	}
	off = req->vaddr - r->vaddr;
	avail = r->nr_pages - (off >> LP_PAGE_SHIFT);
	nr = req->nr_pages < avail ? req->nr_pages : avail;
	a->act = PS_ACT_PAGES;
	a->hdr.cmd = PS_GET_REPLY_CMD;
	a->hdr.nr_pages = nr;
	a->hdr.vaddr = req->vaddr;
	a->hdr.dst_id = req->dst_id;
	a->data = r->data + off;
	a->len = nr << LP_PAGE_SHIFT;
	pr_debug("%s: GET pid %u vaddr %#" PRIx64 " nr_pages %" PRIu64 " -> %" PRIu64, peer, t->pid,
		 req->vaddr, req->nr_pages, nr);
	return 0;
}

int ps_store_answer(const struct ps_store *st, const struct ps_iov *req, const char *peer,
		    struct ps_answer *a)
{
	uint32_t op = ps_cmd_op(req->cmd);
	const char *name = ps_cmd_name(op);

	memset(a, 0, sizeof(*a));
	switch (op) {
	case PS_IOV_GET:
		return answer_get(st, req, peer, a);
	case PS_IOV_CLOSE:
		a->act = PS_ACT_CLOSE;
		return 0;
	case PS_IOV_FORCE_CLOSE:
		a->act = PS_ACT_FORCE_CLOSE;
		return 0;
	}
	if (name)
		pr_err("%s: command %s (cmd %#x) writes a dump into a page server; this one "
		       "only serves lazy pages (GET, CLOSE); dropping the session",
		       peer, name, req->cmd);
	else
		pr_err("%s: unknown command %#x (cmd %#x, nr_pages %" PRIu64 ", vaddr %#" PRIx64
		       ", dst_id %#" PRIx64 "): wrong --ps-header layout, or not a CRIU peer; "
		       "dropping the session",
		       peer, op, req->cmd, req->nr_pages, req->vaddr, req->dst_id);
	return -EINVAL;
}
