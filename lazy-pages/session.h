/* SPDX-License-Identifier: MIT */
/*
 * A restore session: one connection from `criu restore --lazy-pages`, the processes it
 * hands over (each with its uffd and range map) and the page data they need.
 *
 * All of a session's state is touched only by the thread running its event loop.
 */
#ifndef LP_SESSION_H
#define LP_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "image.h"
#include "mm.h"
#include "pagemap.h"
#include "pages.h"
#include "pstree.h"
#include "ranges.h"
#include "stats.h"
#include "warm.h"

#define LP_RESTORE_FINISHED 0x52535446U /* "RSTF": criu restore is done */
#define LP_SOCKET_NAME	    "lazy-pages.socket"

struct lp_session;

/* A working set: image pages in the order a restore first faulted them. */
struct lp_ws_page {
	uint32_t pid;
	uint64_t img;
};
struct lp_ws {
	struct lp_ws_page *p;
	size_t nr, cap;
};
int lp_ws_add(struct lp_ws *ws, uint32_t pid, uint64_t img);
int lp_ws_load(struct lp_ws *ws, const char *path);
int lp_ws_save(const struct lp_ws *ws, const char *path);
void lp_ws_free(struct lp_ws *ws);

/* What an epoll event points at. */
enum lp_ev_kind { LP_EV_LISTEN, LP_EV_CONN, LP_EV_UFFD, LP_EV_REMOTE, LP_EV_WAKE };
struct lp_ev {
	enum lp_ev_kind kind;
	void *obj;
};

struct lp_config {
	uint64_t fill_chunk_min;   /* bytes; the fill chunk restarts here after a fault */
	uint64_t fill_chunk_max;   /* bytes; it doubles up to here while no fault comes */
	unsigned int fault_around; /* pages installed per fault, at most (>= 1) */
	unsigned int inject;	   /* LP_FILL_BUG_*: a broken protocol for the stress self-test */
	unsigned int fill_threads; /* background fill threads; 0: the loop thread fills */
	bool on_demand;		   /* no background fill: serve faults until the processes exit */
	bool fill_early;	   /* workers start at the first uffd, not at the finish word */
	bool spin; /* spend a CPU rather than sleep where a wake-up would cost a fault (--busy-poll) */
	const char *record_ws;	      /* write the faulted pages, in order, to this file */
	const struct lp_ws *prefetch; /* pages to install first, after the finish word */
};

/* The image data of one dumped process, shared by it and everything it forks. */
struct lp_pidimg {
	uint32_t pid;
	struct lp_mm mm;
	struct lp_pagemap pm;
	struct lp_pages pages;
	struct lp_images *pdir;	  /* the parent checkpoint (pre-dump chain), if any */
	struct lp_pidimg *parent; /* this pid's pagemap and pages there */
	struct lp_pidimg *next;
};

/* A page-server request in flight (remote page source). */
struct lp_req {
	struct lp_proc *p;
	uint64_t img;	     /* image address asked for */
	uint64_t nr;	     /* pages asked for */
	bool bg;	     /* background fill (else a fault) */
	uint64_t fault;	     /* run-time page that faulted (fault requests) */
	struct lp_req *next; /* in the process's list of requests in flight */
};

/*
 * Locking: lock is held for writing by the loop thread while it reads the uffd, applies
 * events and changes the map's shape; fill workers hold it for reading from choosing a
 * run until its copy is done, and so does the loop thread while it serves the faults it
 * has read (with workers; without, it keeps the write lock). fill_mu orders the
 * workers' cursor and counts their chunks for a loop thread waiting on chunk_cv.
 */
#define LP_STREAMS	    4	/* sequential fault streams tracked per process */
#define LP_FAULT_AROUND_MAX 256 /* pages: a stream's window grows to 1 MiB */

struct lp_stream {
	uint64_t next;	  /* where the stream's next fault is expected */
	unsigned int win; /* pages installed for its last fault */
};

struct lp_proc {
	struct lp_session *s;
	struct lp_ev ev;
	pthread_rwlock_t lock;
	pthread_mutex_t fill_mu;
	uint64_t fill_pos;	 /* workers: next run at or after this (fill_mu; atomic) */
	pthread_cond_t chunk_cv; /* a chunk ended while the loop thread waits (fill_mu) */
	uint64_t chunks_begun;	 /* fill chunks claimed (fill_mu) */
	uint64_t chunks_ended;	 /* fill chunks copied (fill_mu) */
	bool loop_waits;	 /* the loop thread waits on chunk_cv (fill_mu) */
	uint64_t fill_after_ns;	 /* workers leave it alone until then (atomic): not registered */
	bool front;	       /* the last fault served was where the workers copy (loop thread) */
	bool gone;	       /* a worker saw ESRCH (atomic); the loop thread ends the process */
	uint64_t unregistered; /* a worker saw ENOENT here (atomic); the loop thread checks */
	uint32_t pid;	       /* image pid; a forked child keeps its ancestor's */
	bool forked;	       /* came from a FORK event: its own pid is unknown */
	int uffd;
	uint32_t slot; /* where the supervisor keeps a copy of the uffd */
	bool exited;
	struct lp_range_map map;
	struct lp_pidimg *img;
	uint64_t *retry; /* fault pages to serve again once pending events are read */
	size_t nr_retry, cap_retry;
	struct lp_stream streams[LP_STREAMS]; /* loop thread only */
	size_t prefetch_pos;		      /* next entry of cfg->prefetch to look at */
	uint64_t probe_addr; /* on-demand: a page never registered, to ask "alive?" */
	unsigned int stream_rr;
	struct lp_req *reqs; /* remote requests in flight */
	bool bg_busy;	     /* one background request at a time */
	struct lp_proc *next;
};

struct lp_session {
	const struct lp_config *cfg;
	const struct lp_images *im;
	const struct lp_pstree *pt;
	int epfd;

	/* restore socket and its message parser */
	int conn;
	struct lp_ev conn_ev;
	uint8_t word[4];
	size_t word_len;
	int32_t cur_pid; /* pid waiting for its uffd */
	size_t nr_msgs;	 /* task messages received (alive + zombie) */
	bool finished;	 /* the finish word arrived */
	bool *seen;	 /* per pstree entry: its message came */

	struct lp_proc *procs;
	struct lp_pidimg *imgs;
	struct lp_proc *fill_cursor;
	uint64_t fill_chunk;
	size_t nr_live; /* procs not exited */
	size_t nr_retry_procs;

	struct lp_remote *remote; /* page server, or NULL: pages come from the images */
	struct lp_sup *sup;	  /* supervisor link (crash journal), or NULL */

	/* background fill workers */
	pthread_mutex_t mu; /* procs list appends, worker sleep */
	pthread_cond_t cv;
	pthread_t *workers;
	unsigned int nr_workers;
	unsigned int worker_seq; /* numbers the workers as they start (atomic) */
	uint64_t away_fault_ns;	 /* when a fault away from the fill front was last read */
	bool stop;
	int wake_fd; /* eventfd: workers wake the loop thread */
	struct lp_ev wake_ev;

	struct lp_warm warm; /* populates the pages files' mappings early */

	struct lp_ws ws;       /* faults recorded for cfg->record_ws */
	bool prefetching;      /* the loop thread installs the --prefetch set */
	double prefetch_after; /* not before this time (VMAs not registered yet) */
	double last_probe;

	struct lp_stats st;
	int error; /* first fatal error, -errno */
};

/* Add to a session counter that the loop thread and the fill workers both update. */
#define STAT_ADD(s, field, v) __atomic_fetch_add(&(s)->st.field, (v), __ATOMIC_RELAXED)

int lp_session_init(struct lp_session *s, const struct lp_config *cfg, const struct lp_images *im,
		    const struct lp_pstree *pt, int epfd, int conn);
void lp_session_fini(struct lp_session *s);

/* Epoll callbacks. */
void lp_session_conn_ready(struct lp_session *s, uint32_t events);
void lp_proc_uffd_ready(struct lp_proc *p, uint32_t events);

/* A restarted server: rebuild the state the journal describes, wake every waiter. */
int lp_session_replay(struct lp_session *s);

/* Start the fill workers (cfg->fill_threads): at the finish word (or the first uffd). */
int lp_session_start_workers(struct lp_session *s);
void lp_session_stop_workers(struct lp_session *s);
void lp_session_wake_ready(struct lp_session *s);

/* On-demand mode: find out which processes exited (no copies tell us). */
void lp_session_probe(struct lp_session *s);

/* One step of background work (a fill chunk, deferred retries). True if more is pending. */
bool lp_session_work(struct lp_session *s);
bool lp_session_has_work(const struct lp_session *s);
/* Every page delivered (or its process gone) after the finish word. */
bool lp_session_done(const struct lp_session *s);

/*
 * The restore cannot be completed (WHY, -errno): end every process still missing pages,
 * so none runs on with memory the kernel would fill with zeros once the uffds close.
 * Loop thread, fill workers stopped.
 */
void lp_session_abandon(struct lp_session *s, int why);

#endif
