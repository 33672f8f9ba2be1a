// SPDX-License-Identifier: MIT
/*
 * Per-process work: building the range map from the images, reading the uffd, serving
 * faults, applying FORK/REMAP/REMOVE/UNMAP, and filling in the background.
 *
 * The loop thread reads the uffds and applies events under each process's write lock,
 * and fill workers copy under its read lock, so reading an event, updating the range
 * map and deciding what to copy never interleave (docs/kernel.md, obligation 5;
 * docs/daemon.md, "Concurrency").
 */
#define LOG_PREFIX "proc: "
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "journal.h"
#include "proc.h"
#include "supervisor.h"
#include "remote.h"
#include "uffd-abi.h"
#include "uffd.h"

#define PG LP_PAGE_SIZE

#define proc_err(p, fmt, ...)  pr_err("pid %u (uffd %d): " fmt, (p)->pid, (p)->uffd, ##__VA_ARGS__)
#define proc_warn(p, fmt, ...) pr_warn("pid %u (uffd %d): " fmt, (p)->pid, (p)->uffd, ##__VA_ARGS__)
#define proc_debug(p, fmt, ...) \
	pr_debug("pid %u (uffd %d): " fmt, (p)->pid, (p)->uffd, ##__VA_ARGS__)

/* ---- image data --------------------------------------------------------------------- */

void lp_pidimg_free(struct lp_pidimg *img)
{
	if (img->parent)
		lp_pidimg_free(img->parent);
	if (img->pdir) {
		lp_images_close(img->pdir);
		free(img->pdir);
	}
	lp_mm_free(&img->mm);
	lp_pagemap_free(&img->pm);
	lp_pages_close(&img->pages);
	free(img);
}

/*
 * The pre-dump chain: DIR/parent is the previous checkpoint; its pagemap-<pid>.img and
 * pages hold the data of this checkpoint's PE_PARENT entries (recursively). Page data
 * of a parent always comes from local images, also in remote mode.
 */
static int load_parent(const struct lp_images *im, struct lp_pidimg *img, int depth)
{
	struct lp_pidimg *par;
	int ret;

	if (depth > 32) {
		pr_err("%s: parent chain deeper than 32: a loop of parent links?", im->path);
		return -ELOOP;
	}
	img->pdir = calloc(1, sizeof(*img->pdir));
	par = calloc(1, sizeof(*par));
	if (!img->pdir || !par) {
		free(par);
		return -ENOMEM;
	}
	img->pdir->dirfd = -1;
	ret = lp_images_open_sub(img->pdir, im, "parent");
	if (ret) {
		free(par);
		free(img->pdir);
		img->pdir = NULL;
		return ret;
	}
	par->pid = img->pid;
	par->pages.fd = -1;
	ret = lp_pagemap_load(img->pdir, img->pid, &par->pm);
	if (!ret)
		ret = lp_pages_open(img->pdir, par->pm.pages_id, par->pm.present_bytes,
				    &par->pages);
	if (!ret && img->pdir->has_parent)
		ret = load_parent(img->pdir, par, depth + 1);
	if (ret) {
		lp_pidimg_free(par);
		return ret;
	}
	img->parent = par;
	return 0;
}

/*
 * Where the data of ADDR lives along the parent chain of IMG: returns a pointer and, in
 * *run, how many bytes from ADDR the same entry covers; NULL if no level has it.
 */
static const uint8_t *parent_data(const struct lp_pidimg *img, uint64_t addr, uint64_t *run)
{
	for (const struct lp_pidimg *p = img->parent; p; p = p->parent) {
		const struct lp_pme *e = lp_pagemap_find(&p->pm, addr);
		uint64_t left;

		if (!e) {
			size_t i = lp_pagemap_lower_bound(&p->pm, addr);

			/* nothing here: skip to the next entry of this level */
			*run = i < p->pm.nr ? p->pm.e[i].vaddr - addr : UINT64_MAX;
			return NULL;
		}
		left = lp_pme_end(e) - addr;
		if (left < *run)
			*run = left;
		if (e->flags & PE_PRESENT)
			return lp_pages_ptr(&p->pages, e->pages_off + (addr - e->vaddr), *run);
		if (!(e->flags & PE_PARENT))
			return NULL; /* lazy-only in the parent: nobody has it */
	}
	return NULL;
}

/* PE_PARENT range [a, b) of a lazy VMA: the daemon serves what the chain holds. */
static int add_parent_range(struct lp_proc *p, uint64_t a, uint64_t b)
{
	while (a < b) {
		uint64_t run = b - a;
		const uint8_t *data = parent_data(p->img, a, &run);
		int ret;

		if (run > b - a)
			run = b - a;
		if (data) {
			ret = rm_add(&p->map, a, a + run, a, data);
			if (ret)
				return ret;
		}
		a += run;
	}
	return 0;
}

int lp_pidimg_get(struct lp_session *s, uint32_t pid, struct lp_pidimg **out)
{
	struct lp_pidimg *img;
	int ret;

	for (img = s->imgs; img; img = img->next) {
		if (img->pid == pid) {
			*out = img;
			return 0;
		}
	}
	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->pid = pid;
	img->pages.fd = -1;
	ret = lp_mm_load(s->im, pid, &img->mm);
	if (!ret)
		ret = lp_pagemap_load(s->im, pid, &img->pm);
	if (!ret && !s->remote) {
		ret = lp_pages_open(s->im, img->pm.pages_id, img->pm.present_bytes, &img->pages);
		if (!ret)
			lp_warm_add(&s->warm, img->pages.map, img->pages.size);
	}
	if (!ret && s->im->has_parent)
		ret = load_parent(s->im, img, 1);
	if (ret) {
		lp_pidimg_free(img);
		return ret;
	}
	img->next = s->imgs;
	s->imgs = img;
	*out = img;
	return 0;
}

/* Lazy pagemap entries, cut at VMA boundaries, become the process's missing ranges. */
static int build_map(struct lp_proc *p)
{
	const struct lp_pidimg *img = p->img;
	const struct lp_mm *mm = &img->mm;
	size_t v = 0;

	for (size_t i = 0; i < img->pm.nr; i++) {
		const struct lp_pme *e = &img->pm.e[i];
		uint64_t end = lp_pme_end(e);

		if (!(e->flags & PE_LAZY) && !((e->flags & PE_PARENT) && img->parent))
			continue;
		if (!(e->flags & (PE_PRESENT | PE_PARENT)) && !p->s->remote) {
			pr_err("%s/%s: lazy pages at %#llx (%llu pages) are not in the images: they "
			       "were dumped with --lazy-pages and must come from the source's page "
			       "server (use --page-server --address A --port P)",
			       p->s->im->path, img->pm.name, (unsigned long long)e->vaddr,
			       (unsigned long long)e->nr_pages);
			return -EINVAL;
		}
		while (v < mm->nr && mm->vmas[v].end <= e->vaddr)
			v++;
		for (size_t k = v; k < mm->nr && mm->vmas[k].start < end; k++) {
			const struct lp_vma *vma = &mm->vmas[k];
			uint64_t a = vma->start > e->vaddr ? vma->start : e->vaddr;
			uint64_t b = vma->end < end ? vma->end : end;
			const uint8_t *data;
			int ret;

			if (!lp_vma_can_be_lazy(vma)) {
				proc_warn(p,
					  "lazy pages [%#llx, %#llx) lie in a %s VMA that restore "
					  "does not register: left to restore",
					  (unsigned long long)a, (unsigned long long)b,
					  lp_vma_kind(vma));
				continue;
			}
			if (e->flags & PE_PARENT) {
				/*
				 * Restore fills parent pages itself, unless it took them for
				 * lazy (CRIU issue 2853); serving them is safe either way: a
				 * page already there answers EEXIST.
				 */
				ret = add_parent_range(p, a, b);
				if (ret)
					return ret;
				continue;
			}
			/* Remote mode: everything lazy comes from the page server. */
			data = p->s->remote ? NULL
					    : lp_pages_ptr(&img->pages,
							   e->pages_off + (a - e->vaddr), b - a);
			if (!data && !p->s->remote) {
				proc_err(p, "%s: no data for [%#llx, %#llx)", img->pages.name,
					 (unsigned long long)a, (unsigned long long)b);
				return -EINVAL;
			}
			ret = rm_add(&p->map, a, b, a, data);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static void proc_locks_init(struct lp_proc *p)
{
	pthread_rwlockattr_t a;

	/* The loop thread (writer) must not starve behind a stream of fill chunks. */
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&p->lock, &a);
	pthread_rwlockattr_destroy(&a);
	pthread_mutex_init(&p->fill_mu, NULL);
	pthread_cond_init(&p->chunk_cv, NULL);
}

static int proc_watch(struct lp_proc *p)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->ev};

	p->ev.kind = LP_EV_UFFD;
	p->ev.obj = p;
	if (epoll_ctl(p->s->epfd, EPOLL_CTL_ADD, p->uffd, &ev)) {
		int e = -errno;

		proc_err(p, "epoll_ctl: %s", strerror(-e));
		return e;
	}
	return 0;
}

static void proc_link(struct lp_proc *p)
{
	struct lp_session *s = p->s;
	struct lp_proc **pp;

	pthread_mutex_lock(&s->mu);
	pp = &s->procs;
	while (*pp) /* arrival order: fill serves processes in that order */
		pp = &(*pp)->next;
	*pp = p;
	s->nr_live++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

int lp_proc_new(struct lp_session *s, uint32_t pid, int uffd, struct lp_proc **out)
{
	struct lp_proc *p = calloc(1, sizeof(*p));
	int ret;

	if (!p) {
		close(uffd);
		return -ENOMEM;
	}
	p->s = s;
	p->pid = pid;
	p->uffd = uffd;
	rm_init(&p->map);
	proc_locks_init(p);
	ret = lp_pidimg_get(s, pid, &p->img);
	if (!ret)
		ret = build_map(p);
	if (!ret)
		ret = proc_watch(p);
	if (ret) {
		lp_proc_free(p);
		return ret;
	}
	proc_link(p);
	s->st.lazy_pages += p->map.nr_missing;
	s->st.procs++;
	proc_debug(p, "%zu ranges, %llu pages to serve", p->map.nr,
		   (unsigned long long)p->map.nr_missing);
	*out = p;
	return 0;
}

void lp_proc_free(struct lp_proc *p)
{
	if (p->uffd >= 0)
		close(p->uffd);
	rm_free(&p->map);
	free(p->retry);
	pthread_rwlock_destroy(&p->lock);
	pthread_mutex_destroy(&p->fill_mu);
	free(p);
}

/* The process is gone (ESRCH): nothing to serve any more. */
static void proc_exit(struct lp_proc *p)
{
	struct lp_session *s = p->s;

	if (p->exited)
		return;
	lp_sup_log(s->sup, J_EXIT, p->slot, 0, p->pid, 0, 0, 0);
	proc_debug(p, "exited, %llu pages never needed", (unsigned long long)p->map.nr_missing);
	s->st.pages_orphaned += p->map.nr_missing;
	s->st.exited++;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->uffd, NULL);
	close(p->uffd);
	p->uffd = -1;
	rm_free(&p->map);
	if (p->nr_retry)
		s->nr_retry_procs--;
	p->nr_retry = 0;
	__atomic_store_n(&p->exited, true, __ATOMIC_RELEASE);
	s->nr_live--;
}

/* Write lock held: end a process a copy found gone (ESRCH). */
static void finish_locked(struct lp_proc *p)
{
	if (__atomic_exchange_n(&p->gone, false, __ATOMIC_ACQ_REL))
		proc_exit(p);
}

static void proc_fatal(struct lp_proc *p, int err, uint64_t addr, const char *what)
{
	proc_err(p, "%s at %#llx failed: %s", what, (unsigned long long)addr, strerror(-err));
	if (!p->s->error)
		p->s->error = err;
}

static void defer_fault(struct lp_proc *p, uint64_t page)
{
	if (p->nr_retry == p->cap_retry) {
		size_t cap = p->cap_retry ? p->cap_retry * 2 : 16;
		uint64_t *n = realloc(p->retry, cap * sizeof(*n));

		if (!n) {
			proc_fatal(p, -ENOMEM, page, "deferring a fault");
			return;
		}
		p->retry = n;
		p->cap_retry = cap;
	}
	if (!p->nr_retry)
		p->s->nr_retry_procs++;
	p->retry[p->nr_retry++] = page;
}

/* ---- remote pages ------------------------------------------------------------------ */

static bool img_in_flight(const struct lp_proc *p, uint64_t img)
{
	for (const struct lp_req *r = p->reqs; r; r = r->next)
		if (img >= r->img && img < r->img + r->nr * PG)
			return true;
	return false;
}

static int remote_request(struct lp_proc *p, uint64_t img, uint64_t nr, bool bg, uint64_t fault)
{
	struct lp_req *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return -ENOMEM;
	r->p = p;
	r->img = img;
	r->nr = nr;
	r->bg = bg;
	r->fault = fault;
	ret = lp_remote_request(p->s->remote, p->pid, img, nr, r, !bg);
	if (ret) {
		free(r);
		return ret;
	}
	r->next = p->reqs;
	p->reqs = r;
	if (bg)
		p->bg_busy = true;
	return 0;
}

static void unlink_req(struct lp_proc *p, struct lp_req *r)
{
	for (struct lp_req **pp = &p->reqs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	if (r->bg)
		p->bg_busy = false;
}

/*
 * Install pages that arrived for image range [img, img + nr pages) wherever they now
 * live at run time (mremap may have moved them), skipping pages no longer missing.
 * Returns 0, -EAGAIN (pages left missing: mm changing) or a fatal/ESRCH error.
 */
static int install_remote(struct lp_proc *p, uint64_t img, uint64_t nr, const uint8_t *data,
			  bool bg, uint64_t *installed)
{
	struct lp_session *s = p->s;
	uint64_t iend = img + nr * PG;
	int ret = 0;

	*installed = 0;
	for (size_t k = 0; k < p->map.nr && !ret;) {
		struct lp_seg *seg = &p->map.seg[k];
		uint64_t sa = seg->img, se = seg->img + (seg->end - seg->start);
		uint64_t a = sa > img ? sa : img, b = se < iend ? se : iend, at;
		struct lp_uffd_res res;
		size_t nr_before = p->map.nr;

		if (a >= b) {
			k++;
			continue;
		}
		at = seg->start + (a - sa);
		while (at < seg->start + (b - sa)) {
			uint64_t run = rm_run(seg, at, (seg->start + (b - sa) - at) / PG);

			if (!run) {
				at += PG;
				continue;
			}
			ret = lp_uffd_fill(p->uffd, at, data + (seg->img + (at - seg->start) - img),
					   run * PG, bg ? s->cfg->inject : 0, &res);
			*installed += res.copied / PG;
			STAT_ADD(s, bytes, res.copied);
			STAT_ADD(s, eexist, res.eexist);
			if (bg)
				STAT_ADD(s, pages_filled, res.copied / PG);
			else
				STAT_ADD(s, pages_faulted, res.copied / PG);
			rm_done(&p->map, k, at, res.copied / PG + res.eexist);
			if (ret || p->map.nr != nr_before)
				break; /* the segment may be gone: look it up again */
			at += run * PG;
		}
		if (ret == -ENOENT) /* unmapped meanwhile: an event is on its way */
			ret = 0;
		if (p->map.nr == nr_before)
			k++;
		else
			k = 0; /* segments moved: restart; done pages are skipped */
	}
	return ret;
}

static void remote_done_locked(struct lp_proc *p, struct lp_req *r, uint64_t img, uint64_t nr,
			       const void *data, int err);

void lp_proc_remote_done(void *cookie, uint32_t pid, uint64_t img, uint64_t nr, const void *data,
			 int err)
{
	struct lp_req *r = cookie;
	struct lp_proc *p = r->p;

	(void)pid;
	pthread_rwlock_wrlock(&p->lock);
	remote_done_locked(p, r, img, nr, data, err);
	pthread_rwlock_unlock(&p->lock);
}

static void remote_done_locked(struct lp_proc *p, struct lp_req *r, uint64_t img, uint64_t nr,
			       const void *data, int err)
{
	uint64_t installed = 0, want = r->img, fault = r->fault;
	bool bg = r->bg;
	int ret;

	unlink_req(p, r);
	free(r);
	if (err || p->exited)
		return;
	if (img != want || !nr) {
		proc_err(p, "page server answered %llu pages at %#llx to a request for %#llx",
			 (unsigned long long)nr, (unsigned long long)img, (unsigned long long)want);
		p->s->error = p->s->error ?: -EPROTO;
		return;
	}
	ret = install_remote(p, img, nr, data, bg, &installed);
	switch (ret) {
	case 0:
		break;
	case -EAGAIN:
		/* Pages stay missing; a fault's page is asked for again after the events. */
		if (!bg)
			defer_fault(p, fault | 1);
		break;
	case -ESRCH:
		proc_exit(p);
		break;
	default:
		proc_fatal(p, ret, img, "installing pages from the page server");
	}
}

/* ---- faults ------------------------------------------------------------------------- */

/*
 * How many pages to install for a fault at PAGE: the configured minimum, or more when
 * the fault continues one of the process's recent sequential streams (a thread reading
 * through memory). Each hit doubles that stream's window up to LP_FAULT_AROUND_MAX.
 */
static unsigned int fault_window(struct lp_proc *p, uint64_t page, int *stream)
{
	unsigned int n = p->s->cfg->fault_around;

	for (int k = 0; k < LP_STREAMS; k++) {
		struct lp_stream *st = &p->streams[k];

		if (st->next && page >= st->next && page < st->next + 8 * PG) {
			st->win = st->win * 2 > LP_FAULT_AROUND_MAX ? LP_FAULT_AROUND_MAX
								    : st->win * 2;
			*stream = k;
			return st->win > n ? st->win : n;
		}
	}
	*stream = p->stream_rr;
	p->stream_rr = (p->stream_rr + 1) % LP_STREAMS;
	p->streams[*stream].win = 1;
	return n;
}

/*
 * Is PAGE where the workers are copying: at most a few chunks below their cursor, or
 * just past it? A reader going through memory faults there once it has caught up.
 */
#define FILL_FRONT_BELOW (8ULL << 20)
#define FILL_FRONT_ABOVE (1ULL << 20)

static bool at_fill_front(struct lp_proc *p, uint64_t page)
{
	uint64_t pos = __atomic_load_n(&p->fill_pos, __ATOMIC_RELAXED);

	if (!p->s->nr_workers)
		return false;
	return page + FILL_FRONT_BELOW >= pos && page < pos + FILL_FRONT_ABOVE;
}

/*
 * A sequential reader has got ahead of the workers' cursor: they go on from the end of
 * the window just installed for it, so that they copy ahead of it rather than behind.
 * What they skip is picked up when they wrap around.
 */
static void fill_jump(struct lp_proc *p, uint64_t to)
{
	if (to <= __atomic_load_n(&p->fill_pos, __ATOMIC_RELAXED))
		return; /* not ahead of the workers: no lock needed */
	pthread_mutex_lock(&p->fill_mu);
	if (to > p->fill_pos)
		__atomic_store_n(&p->fill_pos, to, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->fill_mu);
}

static void serve_fault(struct lp_proc *p, uint64_t addr, bool write)
{
	struct lp_session *s = p->s;
	uint64_t page = addr & ~(PG - 1);
	struct lp_uffd_res res;
	long idx = rm_find(&p->map, page);
	const char *what;
	int ret;

	if (idx >= 0 && rm_missing(&p->map.seg[idx], page) && !p->map.seg[idx].data) {
		const struct lp_seg *seg = &p->map.seg[idx];
		uint64_t img = seg->img + (page - seg->start);

		uint64_t n;
		int k;

		__atomic_store_n(&s->fill_chunk, s->cfg->fill_chunk_min, __ATOMIC_RELAXED);
		if (img_in_flight(p, img))
			return; /* asked for already: its arrival wakes this fault */
		n = rm_run(seg, page, fault_window(p, page, &k));
		p->streams[k].next = page + n * PG;
		if (s->cfg->record_ws)
			lp_ws_add(&s->ws, p->pid, img);
		ret = remote_request(p, img, n, false, page);
		if (ret)
			proc_fatal(p, ret, page, "asking the page server for a fault");
		return;
	}
	if (idx >= 0 && rm_missing(&p->map.seg[idx], page)) {
		const struct lp_seg *seg = &p->map.seg[idx];
		int k;
		uint64_t n = rm_run(seg, page, fault_window(p, page, &k));

		p->streams[k].next = page + n * PG;
		p->front = at_fill_front(p, page);
		if (s->nr_workers && p->streams[k].win > 1)
			fill_jump(p, page + n * PG);
		else if (s->nr_workers && !p->front)
			/* fill.c: while random faults come, workers make way for them */
			__atomic_store_n(&s->away_fault_ns, lp_now_ns(), __ATOMIC_RELAXED);
		if (s->cfg->record_ws)
			lp_ws_add(&s->ws, p->pid, seg->img + (page - seg->start));
		what = "copy for a fault";
		ret = lp_uffd_fill(p->uffd, page, seg->data + (page - seg->start), n * PG,
				   s->cfg->inject & LP_FILL_BUG_NO_EEXIST_WAKE, &res);
		/* the map's shape may not change here: fill workers may be reading it */
		rm_clear(&p->map, &p->map.seg[idx], page, res.copied / PG + res.eexist);
		STAT_ADD(s, pages_faulted, res.copied / PG);
		STAT_ADD(s, bytes, res.copied);
	} else {
		/*
		 * Not in the images (never dumped), or already installed and this is a
		 * duplicate message. A read gets the shared zero page; a write gets a
		 * private zero page at once, sparing it a second (COW) fault.
		 */
		what = "zero page for a fault";
		ret = lp_uffd_fill(p->uffd, page, write ? lp_zero_page : NULL, PG,
				   s->cfg->inject & LP_FILL_BUG_NO_EEXIST_WAKE, &res);
		s->st.pages_zero += res.copied / PG;
	}
	STAT_ADD(s, eexist, res.eexist);
	__atomic_store_n(&s->fill_chunk, s->cfg->fill_chunk_min, __ATOMIC_RELAXED);

	switch (ret) {
	case 0:
		break;
	case -EAGAIN: /* an event is pending: read it, then serve again */
		defer_fault(p, page | write);
		break;
	case -ENOENT:
		/*
		 * No registered VMA there any more: an unmap or remap is on its way, or
		 * was applied after this fault was queued. The faulting thread is woken and
		 * will fault again wherever its memory now is.
		 */
		proc_debug(p, "fault at %#llx: no registered VMA", (unsigned long long)page);
		lp_uffd_wake(p->uffd, page, PG);
		break;
	case -ESRCH: /* ended under the write lock, by the caller */
		__atomic_store_n(&p->gone, true, __ATOMIC_RELEASE);
		break;
	default:
		proc_fatal(p, ret, page, what);
	}
}

static void retry_locked(struct lp_proc *p)
{
	size_t n = p->nr_retry;
	uint64_t *pages;

	if (!n || p->exited)
		return;
	pages = malloc(n * sizeof(*pages));
	if (!pages)
		return;
	memcpy(pages, p->retry, n * sizeof(*pages));
	p->nr_retry = 0;
	p->s->nr_retry_procs--;
	for (size_t i = 0; i < n && !p->exited; i++)
		serve_fault(p, pages[i] & ~(PG - 1), pages[i] & 1);
	free(pages);
}

void lp_proc_retry(struct lp_proc *p)
{
	pthread_rwlock_wrlock(&p->lock);
	retry_locked(p);
	finish_locked(p);
	pthread_rwlock_unlock(&p->lock);
}

/* ---- events ------------------------------------------------------------------------- */

static void handle_fork(struct lp_proc *p, int ufd, uint32_t slot)
{
	struct lp_session *s = p->s;
	struct lp_proc *c = calloc(1, sizeof(*c));
	int ret;

	s->st.ev_fork++;
	if (!c) {
		close(ufd);
		proc_fatal(p, -ENOMEM, 0, "fork");
		return;
	}
	c->s = s;
	c->pid = p->pid;
	c->forked = true;
	c->uffd = ufd;
	c->slot = slot;
	c->img = p->img;
	proc_locks_init(c);
	/* Everything the parent still misses, the child misses too. */
	ret = rm_clone(&c->map, &p->map);
	if (!ret)
		ret = proc_watch(c);
	if (ret) {
		lp_proc_free(c);
		proc_fatal(p, ret, 0, "taking over a forked child");
		return;
	}
	proc_link(c);
	s->st.forks++;
	s->st.fork_pages += c->map.nr_missing;
	proc_debug(p, "forked a child: uffd %d, %llu pages to serve", ufd,
		   (unsigned long long)c->map.nr_missing);
}

static void drop_range(struct lp_proc *p, uint64_t start, uint64_t end)
{
	uint64_t before = p->map.nr_missing;
	int ret = rm_cut(&p->map, start, end);

	if (ret)
		proc_fatal(p, ret, start, "dropping a range");
	p->s->st.pages_dropped += before - p->map.nr_missing;
}

static void handle_msg(struct lp_proc *p, const struct uffd_msg *m, uint32_t slot)
{
	struct lp_session *s = p->s;
	int ret;

	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		s->st.faults++;
		serve_fault(p, m->arg.pagefault.address,
			    m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
		break;
	case UFFD_EVENT_FORK:
		handle_fork(p, (int)m->arg.fork.ufd, slot);
		break;
	case UFFD_EVENT_REMAP:
		s->st.ev_remap++;
		proc_debug(
			p, "remap [%#llx, +%#llx) -> %#llx", (unsigned long long)m->arg.remap.from,
			(unsigned long long)m->arg.remap.len, (unsigned long long)m->arg.remap.to);
		ret = rm_remap(&p->map, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		if (ret)
			proc_fatal(p, ret, m->arg.remap.from, "remap");
		break;
	case UFFD_EVENT_REMOVE:
		/*
		 * MADV_DONTNEED/REMOVE: the range reads as zeros from now on. Unregister it
		 * so the kernel serves it, and never fill it from the images again.
		 */
		s->st.ev_remove++;
		ret = lp_uffd_unregister(p->uffd, m->arg.remove.start,
					 m->arg.remove.end - m->arg.remove.start);
		if (ret == -ESRCH || ret == -ENOMEM) {
			proc_exit(p);
			return;
		}
		if (ret)
			proc_warn(p, "unregister [%#llx, %#llx) after madvise: %s",
				  (unsigned long long)m->arg.remove.start,
				  (unsigned long long)m->arg.remove.end, strerror(-ret));
		drop_range(p, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP:
		s->st.ev_unmap++;
		drop_range(p, m->arg.remove.start, m->arg.remove.end);
		break;
	default:
		proc_err(p, "unexpected uffd event %#x", m->event);
		if (!s->error)
			s->error = -EPROTO;
	}
}

/*
 * Before acting on a batch, journal its events (and hand new uffds from forks to the
 * supervisor), so that a crash while acting loses none of them.
 */
static void journal_events(struct lp_proc *p, const struct uffd_msg *m, size_t n, uint32_t *slots)
{
	struct lp_sup *sup = p->s->sup;

	for (size_t i = 0; i < n; i++) {
		slots[i] = 0;
		if (!sup)
			continue;
		switch (m[i].event) {
		case UFFD_EVENT_FORK: {
			int slot = lp_sup_reserve(sup);

			if (slot >= 0) {
				slots[i] = slot;
				lp_sup_log(sup, J_FORK, slot, p->slot, p->pid, 0, 0, 0);
				lp_sup_handover(sup, (int)m[i].arg.fork.ufd, slot);
			}
			break;
		}
		case UFFD_EVENT_REMAP:
			lp_sup_log(sup, J_REMAP, p->slot, 0, p->pid, m[i].arg.remap.from,
				   m[i].arg.remap.to, m[i].arg.remap.len);
			break;
		case UFFD_EVENT_REMOVE:
			lp_sup_log(sup, J_REMOVE, p->slot, 0, p->pid, m[i].arg.remove.start,
				   m[i].arg.remove.end, 0);
			break;
		case UFFD_EVENT_UNMAP:
			lp_sup_log(sup, J_UNMAP, p->slot, 0, p->pid, m[i].arg.remove.start,
				   m[i].arg.remove.end, 0);
			break;
		}
	}
}

/*
 * Write lock held: read one batch, journal it, apply its events, serve deferred faults.
 * Returns the number of messages read (their faults still to serve), 0 if none or the
 * process is gone.
 */
static ssize_t read_batch(struct lp_proc *p, struct uffd_msg *msgs, uint32_t *slots)
{
	ssize_t n;

	if (p->exited || p->s->error || __atomic_load_n(&p->gone, __ATOMIC_ACQUIRE))
		return 0;
	do
		n = read(p->uffd, msgs, 64 * sizeof(*msgs));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN)
			proc_fatal(p, -errno, 0, "reading the uffd");
		return 0;
	}
	if (n == 0 || n % sizeof(msgs[0])) {
		proc_fatal(p, -EIO, 0, "reading the uffd (short message)");
		return 0;
	}
	n /= sizeof(msgs[0]);
	journal_events(p, msgs, n, slots);
	/*
	 * read() returns pending faults before events, so every fault of a batch is older
	 * than its events. Apply the events first: a FORK must clone the map as it was
	 * when the child's page tables were copied, before this batch's faults are
	 * installed in the parent only (the child would lose those pages). A fault served
	 * after a REMAP/REMOVE/UNMAP of its address is re-checked against the updated map
	 * and woken if it has gone.
	 */
	for (ssize_t i = 0; i < n && !p->exited; i++)
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			handle_msg(p, &msgs[i], slots[i]);
	if (p->exited)
		return 0;
	if (p->nr_retry)
		retry_locked(p);
	return n;
}

/*
 * Read and apply everything the uffd has, with the write lock held: no fill worker can
 * be between choosing a run and copying it while an event changes the map.
 */
static void read_events(struct lp_proc *p)
{
	struct uffd_msg msgs[64];
	uint32_t slots[64];

	while (!p->exited && !p->s->error) {
		ssize_t n = read_batch(p, msgs, slots);

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && !p->exited; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				handle_msg(p, &msgs[i], slots[i]);
	}
	finish_locked(p);
}

/*
 * With fill workers. Faults away from the workers' front (a thread touching memory at
 * random) are served as without them: under the write lock, reading on until the uffd
 * is empty, so faults that follow each other closely are served without waiting for
 * fill chunks again. A batch whose faults are all at the front (a reader following the
 * fill) is served under the read lock instead, beside the workers, which lose nothing:
 * such a copy, like theirs, only clears bits of the map, and no decision straddles a
 * read(uffd), since only this thread reads and it takes the write lock first. If more
 * is queued, epoll says so again. Called with the write lock held; releases it.
 */
static void read_with_workers(struct lp_proc *p)
{
	struct uffd_msg msgs[64];
	uint32_t slots[64];
	ssize_t n;

	while ((n = read_batch(p, msgs, slots)) > 0) {
		bool front = true;

		for (ssize_t i = 0; i < n && front; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				front = at_fill_front(p, msgs[i].arg.pagefault.address & ~(PG - 1));
		if (front)
			break;
		for (ssize_t i = 0; i < n && !p->exited; i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				handle_msg(p, &msgs[i], slots[i]);
	}
	finish_locked(p);
	pthread_rwlock_unlock(&p->lock);
	if (n <= 0 || p->exited)
		return;
	pthread_rwlock_rdlock(&p->lock);
	for (ssize_t i = 0; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			handle_msg(p, &msgs[i], slots[i]);
	pthread_rwlock_unlock(&p->lock);
	if (__atomic_load_n(&p->gone, __ATOMIC_ACQUIRE)) {
		pthread_rwlock_wrlock(&p->lock);
		finish_locked(p);
		pthread_rwlock_unlock(&p->lock);
	}
}

/*
 * A thread reading through memory as fast as it can (a checker, a copy, a scan) soon
 * catches up with the fill and then faults on pages whose chunk is being copied, or is
 * next: that copy wakes it, and its message is gone before anyone reads it. Taking the
 * write lock to read such a fault stops every worker for nothing, once per chunk,
 * leaving one copy at a time. So while the last fault served was at the workers' front
 * (at_fill_front), the loop thread first waits for the chunks in flight, and then for
 * the next ones, to end (workers carry on), and reads only if a message is still
 * there. Other faults are read at once: for a random one the wait would only add to
 * its latency, and the next fault elsewhere ends the waiting.
 */
#define BEHIND_FILL_WAIT_NS (20 * 1000 * 1000) /* never longer than this */
#define BEHIND_FILL_ROUNDS  2

static bool resolved_by_fill(struct lp_proc *p)
{
	struct pollfd pfd = {.fd = p->uffd, .events = POLLIN};
	struct timespec ts;
	bool resolved = false;

	lp_deadline(&ts, BEHIND_FILL_WAIT_NS);
	pthread_mutex_lock(&p->fill_mu);
	/*
	 * The chunks in flight now; if the fault is still there, it is most likely just
	 * past them, where the workers go next: one more round of chunks.
	 */
	for (int round = 0; round < BEHIND_FILL_ROUNDS && !resolved; round++) {
		uint64_t want = p->chunks_begun;
		int ret = 0;

		if (p->chunks_ended >= want)
			break; /* nothing in flight: read at once */
		p->loop_waits = true;
		while (p->chunks_ended < want && ret != ETIMEDOUT)
			ret = pthread_cond_timedwait(&p->chunk_cv, &p->fill_mu, &ts);
		p->loop_waits = false;
		pthread_mutex_unlock(&p->fill_mu);
		resolved = poll(&pfd, 1, 0) == 0;
		pthread_mutex_lock(&p->fill_mu);
		if (ret == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&p->fill_mu);
	return resolved;
}

void lp_proc_uffd_ready(struct lp_proc *p, uint32_t events)
{
	double t0 = lp_now();

	(void)events;
	if (p->s->nr_workers && p->front && resolved_by_fill(p)) {
		lp_hist_add(&p->s->st.fault_wait, lp_now() - t0);
		p->s->st.faults_behind_fill++;
		return;
	}
	pthread_rwlock_wrlock(&p->lock);
	/* What faults pay for the fill: bench/ and the summary report it. */
	lp_hist_add(&p->s->st.fault_wait, lp_now() - t0);
	/* a remote session has no workers, and its callbacks take the write lock */
	if (p->s->nr_workers) {
		read_with_workers(p); /* releases the lock */
		return;
	}
	read_events(p);
	pthread_rwlock_unlock(&p->lock);
}

/* ---- background fill ---------------------------------------------------------------- */

/*
 * AT is in the map but the kernel says no VMA is registered there. Either an unmap or
 * remap event is queued (read it; then the map is right), or the images disagree with
 * what restore registered: then drop the rest of the segment, loudly. Write lock held.
 */
static void check_unregistered(struct lp_proc *p, uint64_t at)
{
	struct lp_session *s = p->s;
	struct lp_uffd_res r2;
	const struct lp_seg *seg;
	long idx;
	int ret;

	read_events(p);
	if (p->exited)
		return;
	idx = rm_find(&p->map, at);
	if (idx < 0 || !rm_missing(&p->map.seg[idx], at))
		return;
	seg = &p->map.seg[idx];
	ret = lp_uffd_fill(p->uffd, at, seg->data + (at - seg->start), PG, s->cfg->inject, &r2);
	if (ret == -ENOENT) {
		proc_warn(p,
			  "%#llx is in the images but not registered with userfaultfd: restore "
			  "and images disagree; dropping [%#llx, %#llx)",
			  (unsigned long long)at, (unsigned long long)at,
			  (unsigned long long)seg->end);
		drop_range(p, at, seg->end);
		return;
	}
	rm_done(&p->map, idx, at, r2.copied / PG + r2.eexist);
	STAT_ADD(s, pages_filled, r2.copied / PG);
	STAT_ADD(s, bytes, r2.copied);
	STAT_ADD(s, eexist, r2.eexist);
	if (ret == -ESRCH)
		proc_exit(p);
	else if (ret && ret != -EAGAIN)
		proc_fatal(p, ret, at, "background copy");
}

static uint64_t fill_locked(struct lp_proc *p, uint64_t max)
{
	struct lp_session *s = p->s;
	struct lp_uffd_res res;
	uint64_t addr, nr;
	double t0;
	size_t idx;
	const struct lp_seg *seg;
	int ret;

	if (p->exited || !rm_first_run(&p->map, max / PG ? max / PG : 1, &idx, &addr, &nr))
		return 0;
	seg = &p->map.seg[idx];
	if (!seg->data) {
		if (p->bg_busy)
			return 0;
		ret = remote_request(p, seg->img + (addr - seg->start), nr, true, 0);
		if (ret)
			proc_fatal(p, ret, addr, "asking the page server for background pages");
		return 0;
	}
	t0 = lp_now();
	ret = lp_uffd_fill(p->uffd, addr, seg->data + (addr - seg->start), nr * PG, s->cfg->inject,
			   &res);
	lp_hist_add(&s->st.fill_chunk, lp_now() - t0);
	rm_done(&p->map, idx, addr, res.copied / PG + res.eexist);
	STAT_ADD(s, pages_filled, res.copied / PG);
	STAT_ADD(s, bytes, res.copied);
	STAT_ADD(s, eexist, res.eexist);

	switch (ret) {
	case 0:
	case -EAGAIN: /* events first; the rest stays missing and is tried again */
		break;
	case -ENOENT:
		check_unregistered(p, addr + res.copied + res.eexist * PG);
		break;
	case -ESRCH:
		proc_exit(p);
		break;
	default:
		proc_fatal(p, ret, addr, "background copy");
	}
	return res.copied / PG;
}

uint64_t lp_proc_fill(struct lp_proc *p, uint64_t max)
{
	uint64_t n;

	pthread_rwlock_wrlock(&p->lock);
	n = fill_locked(p, max);
	pthread_rwlock_unlock(&p->lock);
	return n;
}

/*
 * Work a fill worker reported: the process is gone, or a copy found no registered VMA.
 * Loop thread only.
 */
void lp_proc_settle(struct lp_proc *p)
{
	uint64_t at;

	if (!__atomic_load_n(&p->gone, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&p->unregistered, __ATOMIC_ACQUIRE))
		return;
	pthread_rwlock_wrlock(&p->lock);
	finish_locked(p);
	at = __atomic_exchange_n(&p->unregistered, 0, __ATOMIC_ACQ_REL);
	if (at && !p->exited)
		check_unregistered(p, at);
	pthread_rwlock_unlock(&p->lock);
}

/*
 * The next run of the --prefetch working set for this process (fill_mu held, read lock
 * held). Returns -1 when the working set is used up, 0 for an entry that needs nothing,
 * else the run's page count with *idx, *addr, *nr set.
 */
static long prefetch_claim(struct lp_proc *p, size_t *idx, uint64_t *addr, uint64_t *nr)
{
	const struct lp_ws *ws = p->s->cfg->prefetch;

	while (p->prefetch_pos < ws->nr) {
		const struct lp_ws_page *w = &ws->p[p->prefetch_pos];
		uint64_t n = 1, img = w->img;
		const struct lp_seg *seg;
		long k;

		p->prefetch_pos++;
		if (w->pid != p->pid)
			continue;
		while (p->prefetch_pos < ws->nr && n < 256 &&
		       ws->p[p->prefetch_pos].pid == p->pid &&
		       ws->p[p->prefetch_pos].img == img + n * PG) {
			n++;
			p->prefetch_pos++;
		}
		k = rm_find(&p->map, img);
		if (k < 0)
			return 0;
		seg = &p->map.seg[k];
		if (!seg->data || seg->img + (img - seg->start) != img || !rm_missing(seg, img))
			return 0; /* moved, remote, or already there */
		*idx = k;
		*addr = img;
		*nr = rm_run(seg, img, n);
		return *nr;
	}
	return -1;
}

/* A worker's chunk is copied: the loop thread may be waiting for that. */
static void chunk_ended(struct lp_proc *p)
{
	pthread_mutex_lock(&p->fill_mu);
	p->chunks_ended++;
	if (p->loop_waits)
		pthread_cond_signal(&p->chunk_cv);
	pthread_mutex_unlock(&p->fill_mu);
}

/*
 * ENOENT at AT before the finish word (--fill-early): restore registers each VMA only
 * once it is in its final place. Not an unmap (that is an event): come back to AT in a
 * while, and to the working-set entry PF_AT if the copy was one (else SIZE_MAX), so it
 * stays first. Returns false after the finish word, when ENOENT means what it does for
 * a running process.
 */
#define NOT_REGISTERED_RETRY_NS (1000 * 1000)

static bool not_registered_yet(struct lp_proc *p, uint64_t at, size_t pf_at)
{
	if (__atomic_load_n(&p->s->finished, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&p->fill_mu);
	if (p->fill_pos > at)
		__atomic_store_n(&p->fill_pos, at, __ATOMIC_RELAXED);
	if (p->prefetch_pos > pf_at)
		p->prefetch_pos = pf_at;
	pthread_mutex_unlock(&p->fill_mu);
	__atomic_store_n(&p->fill_after_ns, lp_now_ns() + NOT_REGISTERED_RETRY_NS,
			 __ATOMIC_RELAXED);
	return true;
}

/*
 * One chunk of background fill from a fill worker thread: under the read lock, claim the
 * next missing run after the process's fill cursor, copy it, mark it present.
 * Returns pages installed, or -1 if the process has nothing left for workers.
 */
long lp_proc_fill_worker(struct lp_proc *p, uint64_t max)
{
	struct lp_session *s = p->s;
	struct lp_uffd_res res;
	uint64_t addr, nr;
	struct lp_seg *seg;
	size_t idx, pf_at = SIZE_MAX;
	bool found;
	double t0;
	int ret;

	pthread_rwlock_rdlock(&p->lock);
	if (p->exited || __atomic_load_n(&p->gone, __ATOMIC_ACQUIRE)) {
		pthread_rwlock_unlock(&p->lock);
		return -1;
	}
	pthread_mutex_lock(&p->fill_mu);
	if (s->cfg->prefetch && !s->cfg->on_demand) {
		size_t at = p->prefetch_pos;
		long n = prefetch_claim(p, &idx, &addr, &nr);

		if (n >= 0) {
			pthread_mutex_unlock(&p->fill_mu);
			if (n == 0) { /* that entry is no longer missing */
				pthread_rwlock_unlock(&p->lock);
				return 0;
			}
			seg = &p->map.seg[idx];
			t0 = lp_now();
			ret = lp_uffd_fill(p->uffd, addr, seg->data + (addr - seg->start), nr * PG,
					   s->cfg->inject, &res);
			rm_clear(&p->map, seg, addr, res.copied / PG + res.eexist);
			STAT_ADD(s, pages_prefetched, res.copied / PG);
			pf_at = at;
			goto account;
		}
	}
	found = rm_next_run(&p->map, p->fill_pos, max / PG ? max / PG : 1, &idx, &addr, &nr);
	if (!found && p->fill_pos) {
		/* wrap: pick up what an EAGAIN or ENOENT left behind */
		__atomic_store_n(&p->fill_pos, 0, __ATOMIC_RELAXED);
		found = rm_next_run(&p->map, 0, max / PG ? max / PG : 1, &idx, &addr, &nr);
	}
	if (found) {
		__atomic_store_n(&p->fill_pos, addr + nr * PG, __ATOMIC_RELAXED);
		if (p->map.seg[idx].data) /* a copy follows; chunk_ended() counts its end */
			p->chunks_begun++;
	}
	pthread_mutex_unlock(&p->fill_mu);
	if (!found || !p->map.seg[idx].data) {
		pthread_rwlock_unlock(&p->lock);
		return -1;
	}
	seg = &p->map.seg[idx];
	t0 = lp_now();
	ret = lp_uffd_fill(p->uffd, addr, seg->data + (addr - seg->start), nr * PG, s->cfg->inject,
			   &res);
	rm_clear(&p->map, seg, addr, res.copied / PG + res.eexist);
	chunk_ended(p);
account:
	lp_hist_add(&s->st.fill_chunk, lp_now() - t0);
	STAT_ADD(s, pages_filled, res.copied / PG);
	STAT_ADD(s, bytes, res.copied);
	STAT_ADD(s, eexist, res.eexist);
	switch (ret) {
	case 0:
	case -EAGAIN: /* the loop thread reads the event; the rest comes on the next pass */
		break;
	case -ENOENT: {
		uint64_t at = addr + res.copied + res.eexist * PG;

		if (not_registered_yet(p, at, pf_at))
			break;
		__atomic_store_n(&p->unregistered, at, __ATOMIC_RELEASE);
		pthread_mutex_lock(&p->fill_mu);
		__atomic_store_n(&p->fill_pos, seg->end, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&p->fill_mu);
		break;
	}
	case -ESRCH:
		__atomic_store_n(&p->gone, true, __ATOMIC_RELEASE);
		break;
	default:
		proc_fatal(p, ret, addr, "background copy");
	}
	pthread_rwlock_unlock(&p->lock);
	return res.copied / PG;
}

/* ---- restart after a crash ------------------------------------------------------------ */

static struct lp_proc *proc_by_slot(struct lp_session *s, uint32_t slot)
{
	for (struct lp_proc *p = s->procs; p; p = p->next)
		if (p->slot == slot)
			return p;
	return NULL;
}

int lp_proc_replay(struct lp_session *s, const struct lp_jent *e)
{
	const struct lp_journal *j = s->sup->j;
	struct lp_proc *p = proc_by_slot(s, e->type == J_FORK ? e->parent : e->slot);

	if (!p) {
		pr_err("journal: entry type %u names slot %u, which no process has", e->type,
		       e->type == J_FORK ? e->parent : e->slot);
		return -EINVAL;
	}
	if (p->exited)
		return 0;
	switch (e->type) {
	case J_FORK:
		if (e->slot >= j->nr_slots || j->slot_fd[e->slot] < 0) {
			proc_err(p, "a forked child's uffd died with the previous server; its "
				    "missing pages read as zeros now");
			break;
		}
		handle_fork(p, j->slot_fd[e->slot], e->slot);
		break;
	case J_REMAP:
		s->st.ev_remap++;
		return rm_remap(&p->map, e->a, e->b, e->c);
	case J_REMOVE:
		s->st.ev_remove++;
		lp_uffd_unregister(p->uffd, e->a, e->b - e->a);
		drop_range(p, e->a, e->b);
		break;
	case J_UNMAP:
		s->st.ev_unmap++;
		drop_range(p, e->a, e->b);
		break;
	case J_EXIT:
		proc_exit(p);
		break;
	default:
		pr_err("journal: unknown entry type %u", e->type);
		return -EINVAL;
	}
	return s->error;
}

void lp_proc_wake_all(struct lp_proc *p)
{
	static const uint64_t task_top = 0x7ffffffff000ULL; /* x86_64, 4-level paging */
	uint64_t start = 0x10000;
	FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r");
	unsigned long long v;

	if (f) {
		if (fscanf(f, "%llu", &v) == 1)
			start = (v + PG - 1) & ~(PG - 1);
		fclose(f);
	}
	if (start < task_top && lp_uffd_wake(p->uffd, start, task_top - start))
		proc_warn(p, "waking its waiting threads failed: %s", strerror(errno));
}

/* ---- on-demand liveness, prefetch ----------------------------------------------------- */

/* A page at or above mmap_min_addr that no lazy VMA of the images covers. */
static uint64_t pick_probe_addr(const struct lp_proc *p)
{
	uint64_t a = 0x10000;
	FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r");
	unsigned long long v;

	if (f) {
		if (fscanf(f, "%llu", &v) == 1 && v > a)
			a = (v + PG - 1) & ~(PG - 1);
		fclose(f);
	}
	for (size_t i = 0; i < p->img->mm.nr; i++) {
		const struct lp_vma *vma = &p->img->mm.vmas[i];

		if (a >= vma->start && a < vma->end)
			a = vma->end;
	}
	return a;
}

void lp_proc_probe(struct lp_proc *p)
{
	struct lp_uffd_res res;
	int ret;

	if (p->exited)
		return;
	pthread_rwlock_wrlock(&p->lock);
	if (!p->probe_addr)
		p->probe_addr = pick_probe_addr(p);
	/*
	 * A copy to a page that is not registered: ENOENT while the process lives,
	 * ESRCH once its mm is gone. Nothing is ever installed.
	 */
	ret = lp_uffd_fill(p->uffd, p->probe_addr, lp_zero_page, PG, 0, &res);
	if (ret == -ESRCH)
		proc_exit(p);
	else if (!ret || res.copied)
		proc_warn(p,
			  "liveness probe at %#llx installed a zero page: that address is "
			  "registered although no lazy VMA of the images covers it",
			  (unsigned long long)p->probe_addr);
	pthread_rwlock_unlock(&p->lock);
}

bool lp_proc_prefetch(struct lp_proc *p, uint64_t max_pages)
{
	const struct lp_ws *ws = p->s->cfg->prefetch;
	struct lp_session *s = p->s;
	uint64_t done = 0;

	if (!ws || p->exited)
		return false;
	pthread_rwlock_wrlock(&p->lock);
	while (done < max_pages && !p->exited) {
		size_t at = p->prefetch_pos, idx;
		uint64_t addr, nr;
		struct lp_uffd_res res;
		const struct lp_seg *seg;
		long n = prefetch_claim(p, &idx, &addr, &nr);
		int ret;

		if (n < 0)
			break;
		if (n == 0)
			continue;
		seg = &p->map.seg[idx];
		ret = lp_uffd_fill(p->uffd, addr, seg->data + (addr - seg->start), nr * PG, 0,
				   &res);
		rm_done(&p->map, idx, addr, res.copied / PG + res.eexist);
		STAT_ADD(s, pages_prefetched, res.copied / PG);
		STAT_ADD(s, pages_filled, res.copied / PG);
		STAT_ADD(s, bytes, res.copied);
		STAT_ADD(s, eexist, res.eexist);
		done += nr;
		if (ret == -ENOENT && !s->finished) {
			/* Restore has not registered the VMA yet: try again a little later. */
			p->prefetch_pos = at;
			s->prefetch_after = lp_now() + 0.001;
			break;
		}
		if (ret == -ESRCH)
			proc_exit(p);
		else if (ret && ret != -EAGAIN && ret != -ENOENT)
			proc_fatal(p, ret, addr, "prefetch");
	}
	pthread_rwlock_unlock(&p->lock);
	return p->prefetch_pos < ws->nr && !p->exited;
}
