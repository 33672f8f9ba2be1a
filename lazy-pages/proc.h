/* SPDX-License-Identifier: MIT */
/* One restored process: its uffd, its range map, its faults, events and fill. */
#ifndef LP_PROC_H
#define LP_PROC_H

#include "session.h"

/* The image data of PID (loaded once per session, shared by forks). */
int lp_pidimg_get(struct lp_session *s, uint32_t pid, struct lp_pidimg **out);
void lp_pidimg_free(struct lp_pidimg *img);

/* A process from the restore socket: takes ownership of UFFD. */
int lp_proc_new(struct lp_session *s, uint32_t pid, int uffd, struct lp_proc **out);
void lp_proc_free(struct lp_proc *p);

/* Install up to MAX bytes of the process's lowest missing run. Returns pages installed. */
uint64_t lp_proc_fill(struct lp_proc *p, uint64_t max);
/* Serve faults deferred by an EAGAIN copy. */
void lp_proc_retry(struct lp_proc *p);
/* Fill worker thread: one chunk under the read lock. */
long lp_proc_fill_worker(struct lp_proc *p, uint64_t max);
/* Loop thread: act on what a fill worker reported (process gone, unregistered range). */
void lp_proc_settle(struct lp_proc *p);

/* On-demand mode: is the process still there? (ends it if not) */
void lp_proc_probe(struct lp_proc *p);
/* Install up to MAX_PAGES of the process's pages from the --prefetch working set. */
bool lp_proc_prefetch(struct lp_proc *p, uint64_t max_pages);

struct lp_jent;
/* Replay a journaled fork, remap, remove, unmap or exit (restarted server). */
int lp_proc_replay(struct lp_session *s, const struct lp_jent *e);
/* Wake every thread waiting on the process's uffd: they fault again if still missing. */
void lp_proc_wake_all(struct lp_proc *p);

/* lp_remote completion callback: COOKIE is the struct lp_req of the request. */
void lp_proc_remote_done(void *cookie, uint32_t pid, uint64_t img, uint64_t nr, const void *data,
			 int err);

#define lp_proc_pending(p) ((p)->map.nr_missing)

#endif
