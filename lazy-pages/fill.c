// SPDX-License-Identifier: MIT
/*
 * Background fill workers: after restore finishes, threads copy the remaining pages of
 * every process, a chunk at a time, while the loop thread keeps serving faults and events.
 *
 * A worker holds a process's read lock only for one chunk; the loop thread takes the
 * write lock to read that process's uffd, so a fault waits behind at most one chunk per
 * worker, and chunks restart small after every fault.
 */
#define LOG_PREFIX "fill: "
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "session.h"

/*
 * A worker's priority follows the faults. While faults come at random (served away from
 * the workers' front in the last FAULTS_RECENT_NS), workers run at nice 19, so that a
 * fault's wake-up preempts them at once instead of waiting for their time slice: at the
 * daemon's own priority, bench/'s random-touch p99 with the fill running went to 3-6 ms
 * at 64 MiB. Otherwise they run at the daemon's priority, as CRIU's fill does: always at
 * nice 19, they starved whenever a reader following the fill and the loop thread kept
 * every CPU busy, and the loop thread ended up filling alone (a sequential touch of
 * 1 GiB: 0.21-0.44 s against 0.18-0.24 s). Going back up needs CAP_SYS_NICE or
 * RLIMIT_NICE; without them a worker stays at nice 19 once it got there.
 */
#define FAULTS_RECENT_NS (10 * 1000 * 1000)

struct prio {
	int base;   /* the daemon's nice value */
	bool high;  /* at the daemon's nice value now */
	bool stuck; /* could not go back up */
	bool idle;  /* stuck at SCHED_IDLE (stand_by) */
};

static bool random_faults(struct lp_session *s)
{
	uint64_t last = __atomic_load_n(&s->away_fault_ns, __ATOMIC_RELAXED);

	return last && lp_now_ns() - last < FAULTS_RECENT_NS;
}

static void follow_faults(struct lp_session *s, struct prio *pr, bool random)
{
	bool high = !pr->stuck && !random;
	int nice = high ? pr->base : 19;

	if (high == pr->high)
		return;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), nice)) {
		pr_debug("setpriority(%d): %s", nice, strerror(errno));
		if (high)
			pr->stuck = true;
		return;
	}
	pr->high = high;
	if (high)
		STAT_ADD(s, nice_raises, 1);
	else
		STAT_ADD(s, nice_drops, 1);
}

static void wake_loop(struct lp_session *s)
{
	uint64_t one = 1;

	if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_perror("eventfd");
}

/*
 * The next process with pages for workers, round robin; NULL if none. One whose VMAs
 * restore has not registered yet waits its turn: *RETRY_NS says until when. s->mu held.
 */
static struct lp_proc *pick(struct lp_session *s, struct lp_proc **cursor, uint64_t *retry_ns)
{
	struct lp_proc *start = *cursor ? *cursor : s->procs, *p = start;
	uint64_t now = lp_now_ns();

	if (!p)
		return NULL;
	do {
		uint64_t after = __atomic_load_n(&p->fill_after_ns, __ATOMIC_RELAXED);
		bool missing = !__atomic_load_n(&p->exited, __ATOMIC_ACQUIRE) &&
			       !__atomic_load_n(&p->gone, __ATOMIC_ACQUIRE) &&
			       __atomic_load_n(&p->map.nr_missing, __ATOMIC_RELAXED) && !s->remote;

		if (missing && after <= now) {
			*cursor = p->next;
			return p;
		}
		if (missing && (!*retry_ns || after < *retry_ns))
			*retry_ns = after;
		p = p->next ? p->next : s->procs;
	} while (p != start);
	return NULL;
}

/*
 * With a worker on every CPU, a thread that faults at random and the loop thread that
 * serves it preempt workers holding the process's read lock, and the next fault waits
 * for them: bench/'s random-touch p99 with the fill running went from about 120 µs to
 * 400-2000 µs. So while such faults come (random_faults()), the last worker leaves
 * its CPU to them. Faults at the fill's front or continuing a sequential stream (a
 * reader going through memory) do not count: there every worker helps (docs/daemon.md).
 */
static bool steps_aside(const struct lp_session *s, unsigned int idx)
{
	return idx && idx + 1 == s->cfg->fill_threads;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * The worker that steps aside keeps its CPU awake rather than sleeping: it spins at
 * SCHED_IDLE, which any thread that wakes there preempts at once. A vCPU left idle
 * halts, and waking a thread on a halted vCPU (the loop thread once a chunk ends and
 * the lock is free, or the faulting thread once its page is in) costs tens of µs in a
 * VM: the loop thread's wait for the lock had p50 32 µs with chunks of p50 4 µs.
 * bench/'s random-touch p99 with the fill running went from 70-113 µs to 39-64 µs at
 * 256 MiB and from 96-208 µs to 25-81 µs at 1 GiB (docs/daemon.md). --busy-poll 0
 * turns this off with busy polling: the worker then sleeps in steps of 1 ms. Without
 * the right to leave SCHED_IDLE again (CAP_SYS_NICE or RLIMIT_NICE), the worker stays
 * there and fills at that priority.
 */
static void stand_by(struct lp_session *s, struct prio *pr)
{
	struct sched_param sp = {0};
	uint64_t t0;

	if (!s->cfg->spin || pr->idle || sched_setscheduler(0, SCHED_IDLE, &sp)) {
		if (s->cfg->spin && !pr->idle)
			pr_debug("SCHED_IDLE: %s", strerror(errno));
		usleep(1000);
		return;
	}
	t0 = lp_now_ns();
	while (random_faults(s) && !__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		cpu_relax();
	STAT_ADD(s, standby_ns, lp_now_ns() - t0);
	if (sched_setscheduler(0, SCHED_OTHER, &sp)) {
		pr_debug("back to SCHED_OTHER: %s", strerror(errno));
		pr->idle = true;
	}
}

static void *worker(void *arg)
{
	struct lp_session *s = arg;
	struct lp_proc *cursor = NULL;
	unsigned int idx = __atomic_fetch_add(&s->worker_seq, 1, __ATOMIC_RELAXED);
	struct prio pr = {0};
	char name[16];

	snprintf(name, sizeof(name), "lp-fill/%u", idx);
	pthread_setname_np(pthread_self(), name); /* for top -H, ps -L, perf */
	errno = 0;
	pr.base = getpriority(PRIO_PROCESS, (id_t)gettid());
	if (errno)
		pr.base = 0;
	pr.high = true;

	for (;;) {
		struct lp_proc *p = NULL;
		uint64_t chunk, retry_ns = 0;
		bool random;
		long n;

		random = random_faults(s);
		follow_faults(s, &pr, random);
		if (random && steps_aside(s, idx)) {
			if (__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
				break;
			stand_by(s, &pr);
			continue;
		}

		pthread_mutex_lock(&s->mu);
		while (!s->stop && !(p = pick(s, &cursor, &retry_ns))) {
			int64_t wait = 20 * 1000 * 1000;
			struct timespec ts;

			/* Nothing for workers: the loop thread may be able to finish. */
			if (!retry_ns)
				wake_loop(s);
			else if ((int64_t)(retry_ns - lp_now_ns()) < wait)
				wait = (int64_t)(retry_ns - lp_now_ns());
			retry_ns = 0;
			if (wait > 0) {
				lp_deadline(&ts, wait);
				pthread_cond_timedwait(&s->cv, &s->mu, &ts);
			}
		}
		pthread_mutex_unlock(&s->mu);
		if (s->stop)
			break;

		chunk = __atomic_load_n(&s->fill_chunk, __ATOMIC_RELAXED);
		/*
		 * --fill-early: a copy holds the process's mmap_lock, which the restorer
		 * still needs for writing (munmap, mprotect, madvise): small ones until the
		 * finish word.
		 */
		if (!__atomic_load_n(&s->finished, __ATOMIC_ACQUIRE))
			chunk = s->cfg->fill_chunk_min;
		n = lp_proc_fill_worker(p, chunk);
		if (n > 0 && chunk < s->cfg->fill_chunk_max)
			__atomic_compare_exchange_n(&s->fill_chunk, &chunk, chunk * 2, false,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		if (__atomic_load_n(&p->gone, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&p->unregistered, __ATOMIC_RELAXED) ||
		    !__atomic_load_n(&p->map.nr_missing, __ATOMIC_RELAXED) || s->error)
			wake_loop(s);
	}
	return NULL;
}

int lp_session_start_workers(struct lp_session *s)
{
	unsigned int n = s->cfg->fill_threads;

	if (!n || s->workers || s->remote || s->cfg->on_demand)
		return 0;
	s->workers = calloc(n, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	for (; s->nr_workers < n; s->nr_workers++) {
		int ret = pthread_create(&s->workers[s->nr_workers], NULL, worker, s);

		if (ret) {
			pr_err("cannot start fill thread %u: %s", s->nr_workers, strerror(ret));
			return s->nr_workers ? 0 : -ret;
		}
	}
	pr_info("%u fill thread%s started", n, n == 1 ? "" : "s");
	return 0;
}

void lp_session_stop_workers(struct lp_session *s)
{
	lp_warm_stop(&s->warm);
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (unsigned int i = 0; i < s->nr_workers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	s->workers = NULL;
	s->nr_workers = 0;
}

void lp_session_wake_ready(struct lp_session *s)
{
	uint64_t v;

	if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_perror("eventfd");
	for (struct lp_proc *p = s->procs; p; p = p->next)
		lp_proc_settle(p);
}
