// SPDX-License-Identifier: MIT
/* The page-server link: connect, watch for stalls, reconnect with backoff, give up. */
#define LOG_PREFIX "pslink: "
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

#include "log.h"
#include "proc.h"
#include "pslink.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

static void unregister(struct lp_pslink *l)
{
	if (l->fd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	l->fd = -1;
	l->want_out = false;
}

/* Keep epoll on the current socket, with EPOLLOUT only while requests wait to go out. */
static int update(struct lp_pslink *l)
{
	struct lp_remote *r = l->s->remote;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->ev};
	int fd = lp_remote_fd(r);
	bool w = lp_remote_want_write(r);

	if (lp_remote_lost(r) || fd < 0) {
		unregister(l);
		return 0;
	}
	if (w)
		ev.events |= EPOLLOUT;
	if (fd != l->fd) {
		unregister(l);
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			pr_perror("epoll_ctl(page-server socket)");
			return -errno;
		}
		l->fd = fd;
	} else if (w != l->want_out) {
		epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
	}
	l->want_out = w;
	return 0;
}

static void note_loss(struct lp_pslink *l, int why)
{
	unregister(l);
	l->lost_at = lp_now();
	l->next_try = l->lost_at;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->attempts = 0;
	l->why = why;
	pr_err("page server %s:%d lost (%s): reconnecting for up to %g s; faulting threads "
	       "wait",
	       l->ro.address, l->ro.port, strerror(-why), l->deadline_s);
}

/* One connection attempt, if one is due. */
static int try_reconnect(struct lp_pslink *l)
{
	double now = lp_now(), left = l->lost_at + l->deadline_s - now;
	int timeout = left * 1000 < BACKOFF_MAX_MS ? (int)(left * 1000) : BACKOFF_MAX_MS;
	size_t resent;
	int ret;

	if (now < l->next_try)
		return 0;
	l->attempts++;
	ret = lp_remote_reconnect(l->s->remote, timeout > 10 ? timeout : 10, &resent);
	now = lp_now();
	if (ret) {
		if (!lp_remote_lost(l->s->remote))
			return ret; /* out of memory: not something to wait out */
		l->why = ret;
		l->next_try = now + l->backoff_ms / 1000.0;
		l->backoff_ms =
			l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
		pr_info("page server %s:%d: attempt %u: %s", l->ro.address, l->ro.port, l->attempts,
			strerror(-ret));
		return 0;
	}
	if (l->s->st.t_first_uffd > 0 || l->s->procs) {
		l->s->st.ps_reconnects++;
		pr_warn("page server %s:%d back after %.2f s (%u attempt%s); sending %zu "
			"request%s again or for the first time",
			l->ro.address, l->ro.port, now - l->lost_at, l->attempts,
			l->attempts == 1 ? "" : "s", resent, resent == 1 ? "" : "s");
	} else {
		pr_warn("page server %s:%d reached after %.2f s (%u attempts)", l->ro.address,
			l->ro.port, now - l->lost_at, l->attempts);
	}
	l->s->st.ps_outage_s += now - l->lost_at;
	l->lost_at = 0;
	return update(l);
}

int lp_pslink_open(struct lp_pslink *l, struct lp_session *s, int epfd)
{
	size_t resent;
	int ret;

	l->s = s;
	l->epfd = epfd;
	l->fd = -1;
	l->ev.kind = LP_EV_REMOTE;
	l->ev.obj = l;
	ret = lp_remote_new(&s->remote, &l->ro, lp_proc_remote_done);
	if (ret)
		return ret;
	ret = lp_remote_reconnect(s->remote, l->ro.timeout_ms ? l->ro.timeout_ms : 10000, &resent);
	if (!ret)
		return update(l);
	if (!lp_remote_lost(s->remote) || ret == -EINVAL)
		return ret;
	if (l->deadline_s <= 0) {
		pr_err("cannot reach the page server at %s:%d: %s", l->ro.address, l->ro.port,
		       strerror(-ret));
		return ret;
	}
	note_loss(l, ret);
	l->next_try = lp_now() + BACKOFF_MIN_MS / 1000.0;
	return 0;
}

int lp_pslink_ready(struct lp_pslink *l, uint32_t events)
{
	int ret = lp_remote_ready(l->s->remote, events);

	if (!ret || lp_remote_lost(l->s->remote))
		return 0; /* a loss is taken care of by lp_pslink_tick() */
	pr_err("page server %s:%d: %s", l->ro.address, l->ro.port, strerror(-ret));
	return ret;
}

int lp_pslink_tick(struct lp_pslink *l)
{
	struct lp_remote *r = l->s ? l->s->remote : NULL;
	long idle;

	if (!r)
		return 0;
	if (!l->lost_at && !lp_remote_lost(r) && l->stall_s > 0 &&
	    (idle = lp_remote_idle_ms(r)) > l->stall_s * 1000) {
		pr_err("page server %s:%d: no reply for %.1f s with %zu request(s) outstanding",
		       l->ro.address, l->ro.port, idle / 1000.0, lp_remote_inflight(r));
		lp_remote_drop(r, -ETIMEDOUT);
	}
	if (!l->lost_at && lp_remote_lost(r)) {
		int why = lp_remote_ready(r, 0);

		if (l->deadline_s <= 0) {
			pr_err("page server %s:%d lost (%s) and --ps-deadline is 0", l->ro.address,
			       l->ro.port, strerror(-why));
			return -EHOSTDOWN;
		}
		note_loss(l, why);
	}
	if (l->lost_at) {
		int ret;

		if (lp_now() - l->lost_at >= l->deadline_s) {
			pr_err("page server %s:%d unreachable for %g s (%u attempts, last: %s): "
			       "ending the restored processes",
			       l->ro.address, l->ro.port, l->deadline_s, l->attempts,
			       strerror(-l->why));
			l->s->st.ps_outage_s += lp_now() - l->lost_at;
			return -EHOSTDOWN;
		}
		ret = try_reconnect(l);
		if (ret)
			return ret;
		return 0;
	}
	return update(l);
}

int lp_pslink_timeout_ms(const struct lp_pslink *l)
{
	double t;

	if (!l->s || !l->s->remote)
		return -1;
	if (l->lost_at) {
		t = l->next_try;
		if (t > l->lost_at + l->deadline_s)
			t = l->lost_at + l->deadline_s;
		t -= lp_now();
		return t <= 0 ? 0 : (int)(t * 1000) + 1;
	}
	if (l->stall_s > 0 && lp_remote_inflight(l->s->remote))
		return 250; /* look for a stall now and then */
	return -1;
}

int lp_pslink_close(struct lp_pslink *l)
{
	int ret;

	if (!l->s || !l->s->remote)
		return 0;
	unregister(l);
	if (l->lost_at || lp_remote_lost(l->s->remote)) {
		lp_remote_close(l->s->remote); /* nobody to say goodbye to */
		ret = 0;
	} else {
		ret = lp_remote_close(l->s->remote);
	}
	l->s->remote = NULL;
	return ret;
}
