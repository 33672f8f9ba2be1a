// SPDX-License-Identifier: MIT
/* Source warm-up thread: populate the daemon's mappings of the pages files. */
#define LOG_PREFIX "warm: "
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "pagemap.h"
#include "warm.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

#define STEP (4UL << 20) /* per madvise: stop requests are seen within one step */

void lp_warm_init(struct lp_warm *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
}

static void populate(struct lp_warm *w, const uint8_t *p, size_t len)
{
	for (size_t off = 0; off < len; off += STEP) {
		size_t n = len - off < STEP ? len - off : STEP;

		if (__atomic_load_n(&w->stop, __ATOMIC_RELAXED))
			return;
		if (madvise((void *)(p + off), n, MADV_POPULATE_READ)) {
			if (errno != EINVAL) {
				pr_debug("MADV_POPULATE_READ: %s", strerror(errno));
				return;
			}
			/* an older kernel: read one word per page instead */
			for (size_t k = 0; k < n; k += LP_PAGE_SIZE)
				(void)*(volatile const uint8_t *)(p + off + k);
		}
		__atomic_add_fetch(&w->bytes, n, __ATOMIC_RELAXED);
	}
}

static void *warm_thread(void *arg)
{
	struct lp_warm *w = arg;

	pthread_setname_np(pthread_self(), "lp-warm");
	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct lp_warm_job j;

		while (!w->stop && w->next == w->n)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		j = w->q[w->next++];
		pthread_mutex_unlock(&w->mu);
		populate(w, j.p, j.len);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void lp_warm_add(struct lp_warm *w, const void *p, size_t len)
{
	if (!p || !len)
		return;
	pthread_mutex_lock(&w->mu);
	if (w->stop)
		goto out;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct lp_warm_job *q = realloc(w->q, cap * sizeof(*q));

		if (!q)
			goto out; /* only an optimisation */
		w->q = q;
		w->cap = cap;
	}
	w->q[w->n++] = (struct lp_warm_job){p, len};
	if (!w->running) {
		int ret = pthread_create(&w->thread, NULL, warm_thread, w);

		if (ret)
			pr_warn("no warm-up thread: %s", strerror(ret));
		else
			w->running = true;
	}
	pthread_cond_signal(&w->cv);
out:
	pthread_mutex_unlock(&w->mu);
}

void lp_warm_stop(struct lp_warm *w)
{
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (w->running) {
		pthread_join(w->thread, NULL);
		w->running = false;
		pr_debug("%zu MiB of pages files warmed", w->bytes >> 20);
	}
	free(w->q);
	w->q = NULL;
	w->n = w->cap = w->next = 0;
}
