// SPDX-License-Identifier: MIT
/* The crash journal in shared memory. */
#define LOG_PREFIX "journal: "
#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

#include "journal.h"
#include "log.h"

static size_t journal_size(uint64_t cap)
{
	return offsetof(struct lp_journal, e) + cap * sizeof(struct lp_jent);
}

struct lp_journal *lp_journal_create(uint64_t cap)
{
	/* MAP_NORESERVE: only the pages written are ever backed. */
	struct lp_journal *j = mmap(NULL, journal_size(cap), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (j == MAP_FAILED) {
		pr_perror("cannot map a journal of %llu entries", (unsigned long long)cap);
		return NULL;
	}
	j->cap = cap;
	for (int i = 0; i < LP_JOURNAL_SLOTS; i++)
		j->slot_fd[i] = -1;
	return j;
}

void lp_journal_destroy(struct lp_journal *j)
{
	if (j)
		munmap(j, journal_size(j->cap));
}

int lp_journal_add(struct lp_journal *j, const struct lp_jent *e)
{
	uint64_t n = j->committed;

	if (n >= j->cap) {
		if (n == j->cap)
			pr_warn("journal full (%llu entries): a crash from now on cannot be "
				"recovered",
				(unsigned long long)j->cap);
		return -ENOSPC;
	}
	j->e[n] = *e;
	__atomic_store_n(&j->committed, n + 1, __ATOMIC_RELEASE);
	return 0;
}
