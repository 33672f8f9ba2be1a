/* SPDX-License-Identifier: MIT */
/*
 * The daemon's link to its page server, kept alive across a lost connection.
 *
 * A reset, a close or a stall (replies due, nothing received for `stall` seconds) makes
 * the link "lost": requests keep queueing, faulting threads keep waiting in the kernel,
 * and the loop thread reconnects with a backoff (50 ms doubling to 1 s) until `deadline`
 * seconds after the loss. Requests whose replies had not arrived whole are sent again on
 * the new connection (PS_IOV_GET is idempotent). Past the deadline lp_pslink_tick()
 * returns -EHOSTDOWN and the caller ends the restored processes (lp_session_abandon()):
 * they must not run on with pages missing.
 *
 * Loop thread only. Each connection attempt blocks it for at most one second.
 */
#ifndef LP_PSLINK_H
#define LP_PSLINK_H

#include <stdbool.h>

#include "remote.h"
#include "session.h"

struct lp_pslink {
	struct lp_remote_opts ro;
	double deadline_s; /* give up this long after a loss (0: at once) */
	double stall_s;	   /* replies due and nothing received this long: lost */

	struct lp_session *s; /* s->remote is the remote */
	int epfd;
	struct lp_ev ev;
	int fd;	       /* registered in epfd, or -1 */
	bool want_out; /* EPOLLOUT asked for */

	double lost_at;	 /* 0: connected */
	double next_try; /* next connection attempt */
	int backoff_ms;
	unsigned int attempts;
	int why; /* the error that lost the connection */
};

/*
 * Connect for session S (s->remote is set). A first connection that fails is a loss like
 * any other: the link keeps trying until the deadline. -errno only for a bad setting.
 */
int lp_pslink_open(struct lp_pslink *l, struct lp_session *s, int epfd);
/* The remote's fd reported EVENTS. 0, or a fatal -errno (a protocol error). */
int lp_pslink_ready(struct lp_pslink *l, uint32_t events);
/*
 * After each loop pass: notice stalls and losses, try to reconnect when due, keep the
 * epoll registration right. 0, -EHOSTDOWN past the deadline, or another fatal -errno.
 */
int lp_pslink_tick(struct lp_pslink *l);
/* How long the loop may sleep before lp_pslink_tick() has something to do (-1: forever). */
int lp_pslink_timeout_ms(const struct lp_pslink *l);
/* CLOSE handshake (when connected) and free. Returns lp_remote_close()'s result. */
int lp_pslink_close(struct lp_pslink *l);

#endif
