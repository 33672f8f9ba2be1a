/* SPDX-License-Identifier: MIT */
/*
 * The crash journal: what a serving process learnt that the images do not say, kept in
 * memory shared with its supervisor so that a restarted server can pick up where the
 * dead one stopped (docs/daemon.md, "Surviving a crash").
 *
 * Journaled: each process handed over (and the slot of its uffd, which the supervisor
 * holds), zombies, forks, mremap/munmap/madvise events, exits, the finish word. Not
 * journaled: which pages were installed. A new server starts from the images, and every
 * page already in place answers EEXIST.
 *
 * One writer (the serving process's loop thread); entries become visible to a reader
 * when `committed` moves past them.
 */
#ifndef LP_JOURNAL_H
#define LP_JOURNAL_H

#include <stdint.h>

enum lp_jtype {
	J_PROC = 1, /* slot, pid: a task and its uffd */
	J_ZOMBIE,   /* pid */
	J_FORK,	    /* slot (child), parent (slot) */
	J_REMAP,    /* slot, a = from, b = to, c = len */
	J_REMOVE,   /* slot, a = start, b = end */
	J_UNMAP,    /* slot, a = start, b = end */
	J_EXIT,	    /* slot */
	J_FINISHED, /* the finish word came */
};

struct lp_jent {
	uint32_t type;
	uint32_t slot;
	uint32_t parent;
	uint32_t pid;
	uint64_t a, b, c;
};

#define LP_JOURNAL_SLOTS 65536

struct lp_journal {
	uint64_t committed; /* entries visible */
	uint64_t cap;	    /* entries that fit */
	uint32_t nr_slots;  /* uffd slots handed to the supervisor */
	uint32_t restarts;
	int slot_fd[LP_JOURNAL_SLOTS]; /* the supervisor's fd for each slot (inherited) */
	struct lp_jent e[];
};

/* A journal of CAP entries in fresh shared memory; NULL on failure. */
struct lp_journal *lp_journal_create(uint64_t cap);
void lp_journal_destroy(struct lp_journal *j);
/* Append; -ENOSPC when full (the server then runs on without crash protection). */
int lp_journal_add(struct lp_journal *j, const struct lp_jent *e);

#endif
