// SPDX-License-Identifier: MIT
/* Session counters: the summary line set and the --stats-file JSON. */
#define LOG_PREFIX "stats: "
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "log.h"
#include "pagemap.h"
#include "stats.h"

uint64_t lp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double lp_now(void)
{
	return lp_now_ns() / 1e9;
}

void lp_deadline(struct timespec *ts, long ns)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ns / 1000000000;
	ts->tv_nsec += ns % 1000000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

void lp_hist_add(struct lp_hist *h, double seconds)
{
	uint64_t ns = seconds > 0 ? (uint64_t)(seconds * 1e9) : 0, us = ns / 1000, old;
	unsigned int b = 0;

	while (us && b < LP_HIST_BUCKETS - 1) {
		us >>= 1;
		b++;
	}
	__atomic_add_fetch(&h->n[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->count, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&h->sum_ns, ns, __ATOMIC_RELAXED);
	old = __atomic_load_n(&h->max_ns, __ATOMIC_RELAXED);
	while (ns > old && !__atomic_compare_exchange_n(&h->max_ns, &old, ns, true,
							__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

double lp_hist_pct(const struct lp_hist *h, double q)
{
	uint64_t count = __atomic_load_n(&h->count, __ATOMIC_RELAXED), seen = 0;
	double max_us = __atomic_load_n(&h->max_ns, __ATOMIC_RELAXED) / 1e3;

	if (!count)
		return -1;
	for (unsigned int b = 0; b < LP_HIST_BUCKETS; b++) {
		seen += __atomic_load_n(&h->n[b], __ATOMIC_RELAXED);
		if (seen > q * count || seen == count) {
			double top = (double)(1ULL << b);

			return b == LP_HIST_BUCKETS - 1 || top > max_us ? max_us : top;
		}
	}
	return max_us;
}

static double since(double t, double from)
{
	return t > 0 && from > 0 ? t - from : -1;
}

/* CPU seconds this process has used so far, all threads (user, system). */
static void cpu_times(double *user, double *sys)
{
	struct rusage ru;

	*user = *sys = 0;
	if (getrusage(RUSAGE_SELF, &ru))
		return;
	*user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
	*sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

void lp_stats_print(const struct lp_stats *st, int level)
{
	uint64_t installed = st->pages_faulted + st->pages_filled;
	double cpu_user, cpu_sys;

	log_printf(level, NULL, 0,
		   "summary: %u process%s (%u zombie%s, %u forked, %u exited), %llu lazy pages "
		   "(%.1f MiB), %llu more inherited by forks",
		   st->procs, st->procs == 1 ? "" : "es", st->zombies, st->zombies == 1 ? "" : "s",
		   st->forks, st->exited, (unsigned long long)st->lazy_pages,
		   st->lazy_pages * (double)LP_PAGE_SIZE / (1 << 20),
		   (unsigned long long)st->fork_pages);
	log_printf(level, NULL, 0,
		   "summary: %llu faulted, %llu filled in the background (%llu before restore "
		   "finished), %llu zero-filled, %llu EEXIST, %llu dropped (munmap/madvise), %llu "
		   "left by exited processes",
		   (unsigned long long)st->pages_faulted, (unsigned long long)st->pages_filled,
		   (unsigned long long)st->pages_before_finish, (unsigned long long)st->pages_zero,
		   (unsigned long long)st->eexist, (unsigned long long)st->pages_dropped,
		   (unsigned long long)st->pages_orphaned);
	log_printf(level, NULL, 0,
		   "summary: %llu pages (%.1f MiB) installed, %llu fault messages; events: %llu "
		   "fork, %llu remap, %llu remove, %llu unmap",
		   (unsigned long long)installed, st->bytes / (double)(1 << 20),
		   (unsigned long long)st->faults, (unsigned long long)st->ev_fork,
		   (unsigned long long)st->ev_remap, (unsigned long long)st->ev_remove,
		   (unsigned long long)st->ev_unmap);
	if (st->ps_reconnects || st->ps_outage_s > 0)
		log_printf(level, NULL, 0,
			   "summary: page server reconnected %u time%s, %.2f s without it in all",
			   st->ps_reconnects, st->ps_reconnects == 1 ? "" : "s", st->ps_outage_s);
	if (st->killed || st->pages_poisoned)
		log_printf(level, NULL, 0,
			   "summary: restore given up: %u process%s killed, %llu missing pages "
			   "poisoned (SIGBUS on touch)",
			   st->killed, st->killed == 1 ? "" : "es",
			   (unsigned long long)st->pages_poisoned);
	if (st->fault_wait.count && st->fill_chunk.count)
		log_printf(
			level, NULL, 0,
			"summary: before reading a uffd the loop thread waited for fill chunks "
			"p50 <%.0f µs, p99 <%.0f µs, max %.0f µs; a fill chunk took p50 <%.0f µs, "
			"p99 <%.0f µs, max %.0f µs (%llu chunks)",
			lp_hist_pct(&st->fault_wait, 0.5), lp_hist_pct(&st->fault_wait, 0.99),
			lp_hist_pct(&st->fault_wait, 1), lp_hist_pct(&st->fill_chunk, 0.5),
			lp_hist_pct(&st->fill_chunk, 0.99), lp_hist_pct(&st->fill_chunk, 1),
			(unsigned long long)st->fill_chunk.count);
	if (st->fill_chunk.count)
		log_printf(level, NULL, 0,
			   "summary: fill chunks copied for %.3f s added up; %llu uffd wake-ups "
			   "were answered by a fill chunk before the read; fill threads went to "
			   "nice 19 for random faults %llu times and back %llu times, and one "
			   "kept its CPU awake for them for %.3f s",
			   st->fill_chunk.sum_ns / 1e9, (unsigned long long)st->faults_behind_fill,
			   (unsigned long long)st->nice_drops, (unsigned long long)st->nice_raises,
			   st->standby_ns / 1e9);
	if (st->t_resident > 0)
		log_printf(level, NULL, 0,
			   "summary: fully resident %.3f s after restore finished, %.3f s after "
			   "the first uffd arrived",
			   since(st->t_resident, st->t_finished),
			   since(st->t_resident, st->t_first_uffd));
	cpu_times(&cpu_user, &cpu_sys);
	log_printf(
		level, NULL, 0,
		"summary: this daemon process used %.2f s of CPU so far (%.2f user, %.2f system)",
		cpu_user + cpu_sys, cpu_user, cpu_sys);
}

int lp_stats_write_json(const struct lp_stats *st, const char *path)
{
	FILE *f = fopen(path, "w");
	double cpu_user, cpu_sys;

	if (!f) {
		int e = -errno;

		pr_perror("cannot write stats to %s", path);
		return e;
	}
	cpu_times(&cpu_user, &cpu_sys);
	fprintf(f,
		"{\n  \"processes\": %u,\n  \"zombies\": %u,\n  \"forks\": %u,\n  \"exited\": %u,\n"
		"  \"lazy_pages\": %llu,\n  \"fork_pages\": %llu,\n  \"pages_faulted\": %llu,\n  \"pages_filled\": %llu,\n  \"pages_prefetched\": %llu,\n"
		"  \"pages_filled_before_finish\": %llu,\n  \"pages_zero\": %llu,\n  \"pages_dropped\": %llu,\n  \"pages_orphaned\": %llu,\n"
		"  \"eexist\": %llu,\n  \"bytes\": %llu,\n  \"fault_messages\": %llu,\n"
		"  \"events\": {\"fork\": %llu, \"remap\": %llu, \"remove\": %llu, \"unmap\": %llu},\n"
		"  \"ps_reconnects\": %u,\n  \"ps_outage_seconds\": %.3f,\n"
		"  \"pages_poisoned\": %llu,\n  \"killed\": %u,\n"
		"  \"fault_waits\": %llu,\n  \"fault_wait_p50_us\": %.1f,\n"
		"  \"fault_wait_p99_us\": %.1f,\n  \"fault_wait_max_us\": %.1f,\n"
		"  \"fill_chunks\": %llu,\n  \"fill_chunk_p50_us\": %.1f,\n"
		"  \"fill_chunk_p99_us\": %.1f,\n  \"fill_chunk_max_us\": %.1f,\n"
		"  \"fault_wait_seconds\": %.6f,\n  \"fill_copy_seconds\": %.6f,\n"
		"  \"wakeups_resolved_by_fill\": %llu,\n"
		"  \"fill_priority_drops\": %llu,\n  \"fill_priority_raises\": %llu,\n"
		"  \"fill_standby_seconds\": %.6f,\n"
		"  \"seconds_to_resident_after_finish\": %.6f,\n"
		"  \"seconds_to_resident_after_first_uffd\": %.6f,\n"
		"  \"seconds_total\": %.6f,\n"
		"  \"cpu_user_seconds\": %.3f,\n  \"cpu_system_seconds\": %.3f\n}\n",
		st->procs, st->zombies, st->forks, st->exited, (unsigned long long)st->lazy_pages,
		(unsigned long long)st->fork_pages, (unsigned long long)st->pages_faulted,
		(unsigned long long)st->pages_filled, (unsigned long long)st->pages_prefetched,
		(unsigned long long)st->pages_before_finish, (unsigned long long)st->pages_zero,
		(unsigned long long)st->pages_dropped, (unsigned long long)st->pages_orphaned,
		(unsigned long long)st->eexist, (unsigned long long)st->bytes,
		(unsigned long long)st->faults, (unsigned long long)st->ev_fork,
		(unsigned long long)st->ev_remap, (unsigned long long)st->ev_remove,
		(unsigned long long)st->ev_unmap, st->ps_reconnects, st->ps_outage_s,
		(unsigned long long)st->pages_poisoned, st->killed,
		(unsigned long long)st->fault_wait.count, lp_hist_pct(&st->fault_wait, 0.5),
		lp_hist_pct(&st->fault_wait, 0.99), lp_hist_pct(&st->fault_wait, 1),
		(unsigned long long)st->fill_chunk.count, lp_hist_pct(&st->fill_chunk, 0.5),
		lp_hist_pct(&st->fill_chunk, 0.99), lp_hist_pct(&st->fill_chunk, 1),
		st->fault_wait.sum_ns / 1e9, st->fill_chunk.sum_ns / 1e9,
		(unsigned long long)st->faults_behind_fill, (unsigned long long)st->nice_drops,
		(unsigned long long)st->nice_raises, st->standby_ns / 1e9,
		since(st->t_resident, st->t_finished), since(st->t_resident, st->t_first_uffd),
		since(lp_now(), st->t_start), cpu_user, cpu_sys);
	if (fclose(f)) {
		int e = -errno;

		pr_perror("cannot write stats to %s", path);
		return e;
	}
	return 0;
}
