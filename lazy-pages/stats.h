/* SPDX-License-Identifier: MIT */
/* Counters of a restore session and the summary printed at exit. */
#ifndef LP_STATS_H
#define LP_STATS_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

/*
 * How long something took, in power-of-two microsecond buckets: bucket 0 holds < 1 µs,
 * bucket k < 2^k µs, the last one the rest. Filled from several threads (atomics).
 */
#define LP_HIST_BUCKETS 24
struct lp_hist {
	uint64_t n[LP_HIST_BUCKETS];
	uint64_t count;
	uint64_t max_ns;
	uint64_t sum_ns;
};

void lp_hist_add(struct lp_hist *h, double seconds);
/* The upper bound (µs) of the bucket holding quantile Q (0..1), the max for the last; -1 if empty. */
double lp_hist_pct(const struct lp_hist *h, double q);

struct lp_stats {
	uint64_t lazy_pages;		  /* missing when the processes arrived */
	uint64_t fork_pages;		  /* inherited as missing by forked children */
	uint64_t pages_faulted;		  /* installed to answer a fault */
	uint64_t pages_filled;		  /* installed by the background fill */
	uint64_t pages_prefetched;	  /* of those, from the --prefetch working set */
	uint64_t pages_before_finish;	  /* of those, in before the finish word */
	uint64_t pages_zero;		  /* zero pages for addresses the images do not hold */
	uint64_t pages_dropped;		  /* unmapped or discarded before we got to them */
	uint64_t pages_orphaned;	  /* left when their process exited */
	uint64_t eexist;		  /* pages already there when we tried */
	uint64_t bytes;			  /* image bytes installed */
	uint64_t faults;		  /* fault messages read */
	uint64_t faults_behind_fill;	  /* uffd wake-ups a fill chunk answered before the read */
	uint64_t nice_drops, nice_raises; /* fill workers to nice 19 for random faults, and back */
	uint64_t standby_ns;		  /* a worker stepped aside kept its CPU awake (fill.c) */
	uint64_t ev_fork, ev_remap, ev_remove, ev_unmap;
	uint32_t procs, zombies, forks, exited;
	uint32_t ps_reconnects;	 /* page-server connections replaced */
	double ps_outage_s;	 /* seconds without a page-server connection, in all */
	uint64_t pages_poisoned; /* made to SIGBUS when the restore had to be given up */
	uint32_t killed;	 /* restored processes ended for that reason */
	double t_start, t_first_uffd, t_finished, t_resident; /* monotonic seconds */
	struct lp_hist fault_wait; /* loop thread: waiting for fill chunks before reading a uffd */
	struct lp_hist fill_chunk; /* one background copy (a fill chunk) */
};

double lp_now(void);
uint64_t lp_now_ns(void); /* the same clock, in nanoseconds */
/* *TS = CLOCK_REALTIME now + NS nanoseconds: a pthread_cond_timedwait() deadline. */
void lp_deadline(struct timespec *ts, long ns);
void lp_stats_print(const struct lp_stats *st, int level);
int lp_stats_write_json(const struct lp_stats *st, const char *path);

#endif
