/* SPDX-License-Identifier: MIT */
/*
 * The serving process's link to its supervisor: every uffd it gets is handed over (the
 * supervisor keeps a copy, so a crash of the server never closes it), and every fact
 * the images do not hold goes into the shared journal.
 */
#ifndef LP_SUPERVISOR_H
#define LP_SUPERVISOR_H

#include <stdint.h>

#include "journal.h"

struct lp_sup {
	struct lp_journal *j;
	int sock; /* SOCK_SEQPACKET to the supervisor */
};

/*
 * A slot for a new uffd (>= 0, or -ENOSPC). Journal the entry naming the slot first,
 * then hand the fd over: a crash in between leaves a slot without an fd, which a replay
 * can see, instead of an fd nobody serves (its process would hang).
 */
int lp_sup_reserve(struct lp_sup *sup);
int lp_sup_handover(struct lp_sup *sup, int fd, uint32_t slot);
void lp_sup_log(struct lp_sup *sup, uint32_t type, uint32_t slot, uint32_t parent, uint32_t pid,
		uint64_t a, uint64_t b, uint64_t c);

#endif
