// SPDX-License-Identifier: MIT
/*
 * A restore session: the restore socket's messages (pid, uffd, zombie, finish word),
 * the processes they bring, background fill scheduling and completion.
 *
 * The socket carries, per task, an int32 pid and then one byte with the uffd in
 * SCM_RIGHTS, or a negative pid alone for a zombie; after every task the uint32
 * finish word. Each uffd is served as soon as it arrives.
 */
#define LOG_PREFIX "session: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "journal.h"
#include "proc.h"
#include "session.h"
#include "supervisor.h"
#include "uffd.h"

int lp_session_init(struct lp_session *s, const struct lp_config *cfg, const struct lp_images *im,
		    const struct lp_pstree *pt, int epfd, int conn)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->im = im;
	s->pt = pt;
	s->epfd = epfd;
	s->conn = conn;
	s->fill_chunk = cfg->fill_chunk_min;
	s->st.t_start = lp_now();
	s->seen = calloc(pt->nr ? pt->nr : 1, sizeof(*s->seen));
	if (!s->seen)
		return -ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	lp_warm_init(&s->warm);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		int e = -errno;

		pr_perror("eventfd");
		free(s->seen);
		return e;
	}
	s->wake_ev.kind = LP_EV_WAKE;
	s->wake_ev.obj = s;
	ev.events = EPOLLIN;
	ev.data.ptr = &s->wake_ev;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->wake_fd, &ev))
		goto err;
	s->conn_ev.kind = LP_EV_CONN;
	s->conn_ev.obj = s;
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = &s->conn_ev;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &ev))
		goto err;
	return 0;
err : {
	int e = -errno;

	pr_perror("epoll_ctl");
	close(s->wake_fd);
	free(s->seen);
	return e;
}
}

void lp_session_fini(struct lp_session *s)
{
	lp_session_stop_workers(s);
	lp_warm_stop(&s->warm);
	if (s->cfg->record_ws)
		lp_ws_save(&s->ws, s->cfg->record_ws);
	lp_ws_free(&s->ws);
	while (s->procs) {
		struct lp_proc *p = s->procs;

		s->procs = p->next;
		if (p->uffd >= 0)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->uffd, NULL);
		lp_proc_free(p);
	}
	while (s->imgs) {
		struct lp_pidimg *img = s->imgs;

		s->imgs = img->next;
		lp_pidimg_free(img);
	}
	if (s->conn >= 0) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->conn, NULL);
		close(s->conn);
		s->conn = -1;
	}
	free(s->seen);
	s->seen = NULL;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->wake_fd, NULL);
	close(s->wake_fd);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}

static void session_fail(struct lp_session *s, int err)
{
	if (!s->error)
		s->error = err;
}

static void conn_close(struct lp_session *s)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->conn, NULL);
	close(s->conn);
	s->conn = -1;
}

/* Which pstree entry is PID? Marks it seen; complains about strangers and repeats. */
static int claim_pid(struct lp_session *s, uint32_t pid, bool zombie)
{
	for (size_t i = 0; i < s->pt->nr; i++) {
		if (s->pt->tasks[i].pid != pid)
			continue;
		if (s->seen[i]) {
			pr_err("restore sent pid %u twice", pid);
			return -EPROTO;
		}
		s->seen[i] = true;
		return 0;
	}
	pr_err("restore sent %s pid %u, which is not in %s/pstree.img: wrong images directory "
	       "(-D) or work dir (-W)?",
	       zombie ? "zombie" : "task", pid, s->im->path);
	return -EPROTO;
}

/* The 1-byte message carrying the uffd. Returns 1 when done, 0 for "try later", <0 error. */
static int recv_uffd(struct lp_session *s)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {0};
	struct iovec iov;
	struct cmsghdr *c;
	char byte;
	int fds[4], nfds = 0;
	ssize_t n;
	int ret;

	iov.iov_base = &byte;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	n = recvmsg(s->conn, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0) {
		pr_err("restore closed the connection after pid %d, before sending its uffd",
		       s->cur_pid);
		return -EPIPE;
	}
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && nfds < 4; k++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
	}
	ret = 0;
	if (mh.msg_flags & MSG_CTRUNC) {
		pr_err("pid %d: control message truncated: restore sent more than one fd",
		       s->cur_pid);
		ret = -EPROTO;
	} else if (nfds != 1) {
		pr_err("pid %d: expected exactly one uffd in SCM_RIGHTS, got %d fds", s->cur_pid,
		       nfds);
		ret = -EPROTO;
	}
	if (ret) {
		for (int k = 0; k < nfds; k++)
			close(fds[k]);
		return ret;
	}
	{
		char link[64], path[32];
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
		l = readlink(path, link, sizeof(link) - 1);
		link[l > 0 ? l : 0] = 0;
		/* Exactly: a FIFO or file merely named "userfaultfd" is not one. */
		if (strcmp(link, "anon_inode:[userfaultfd]")) {
			pr_err("pid %d: the fd restore sent is not a userfaultfd (%s)", s->cur_pid,
			       l > 0 ? link : "unknown");
			close(fds[0]);
			return -EPROTO;
		}
	}
	/* Before UFFDIO_API every other ioctl fails with EINVAL; a wake is harmless. */
	if (lp_uffd_wake(fds[0], 1ULL << 30, 4096) == -EINVAL) {
		pr_err("pid %d: its userfaultfd was not set up with UFFDIO_API", s->cur_pid);
		close(fds[0]);
		return -EPROTO;
	}
	{
		struct lp_proc *p;

		if (!s->st.t_first_uffd)
			s->st.t_first_uffd = lp_now();
		ret = lp_proc_new(s, (uint32_t)s->cur_pid, fds[0], &p);
		if (ret) {
			pr_err("pid %d: cannot serve it: %s", s->cur_pid, strerror(-ret));
			return ret;
		}
		pr_info("pid %d: uffd received, %llu lazy pages", s->cur_pid,
			(unsigned long long)p->map.nr_missing);
		/*
		 * The working set (and with --fill-early the whole fill) goes in as soon as
		 * restore registers the VMAs, while it restores the rest: the restored task
		 * waits for the finish word. Without workers the loop thread prefetches.
		 */
		if (s->cfg->fill_early) {
			ret = lp_session_start_workers(s);
			if (ret)
				return ret;
		}
		if (s->cfg->prefetch && !s->cfg->on_demand && !s->nr_workers)
			s->prefetching = true;
		if (s->sup) {
			ret = lp_sup_reserve(s->sup);
			if (ret >= 0) {
				p->slot = ret;
				lp_sup_log(s->sup, J_PROC, p->slot, 0, p->pid, 0, 0, 0);
				lp_sup_handover(s->sup, p->uffd, p->slot);
			}
		}
	}
	return 1;
}

/* A complete 4-byte word from the restore socket. */
static int handle_word(struct lp_session *s, uint32_t w)
{
	int32_t pid = (int32_t)w;
	int ret;

	if (s->finished) {
		pr_err("restore sent data after the finish word (%#x): ignoring the rest of the "
		       "connection",
		       w);
		return -EPROTO;
	}
	if (s->nr_msgs == s->pt->nr) {
		if (w != LP_RESTORE_FINISHED) {
			pr_err("restore sent %#x where the finish word %#x was due (all %zu tasks "
			       "were announced)",
			       w, LP_RESTORE_FINISHED, s->pt->nr);
			return -EPROTO;
		}
		__atomic_store_n(&s->finished, true, __ATOMIC_RELEASE);
		s->st.t_finished = lp_now();
		s->st.pages_before_finish = __atomic_load_n(&s->st.pages_filled, __ATOMIC_RELAXED);
		/* With fill workers they take over the prefetch; else the loop thread goes on. */
		if (s->cfg->fill_threads)
			s->prefetching = false;
		lp_sup_log(s->sup, J_FINISHED, 0, 0, 0, 0, 0, 0);
		pr_info("restore finished: %s",
			s->nr_workers ? "the fill goes on" : "background fill starts");
		return lp_session_start_workers(s);
	}
	if (w == LP_RESTORE_FINISHED) {
		pr_err("restore finished after %zu of %zu tasks sent their uffd", s->nr_msgs,
		       s->pt->nr);
		return -EPROTO;
	}
	if (pid == 0 || pid == INT32_MIN) {
		pr_err("restore sent an invalid pid %d", pid);
		return -EPROTO;
	}
	if (pid < 0) {
		ret = claim_pid(s, (uint32_t)-pid, true);
		if (ret)
			return ret;
		s->nr_msgs++;
		s->st.zombies++;
		lp_sup_log(s->sup, J_ZOMBIE, 0, 0, (uint32_t)-pid, 0, 0, 0);
		pr_info("pid %d: zombie, nothing to serve", -pid);
		return 0;
	}
	ret = claim_pid(s, (uint32_t)pid, false);
	if (ret)
		return ret;
	s->cur_pid = pid;
	return 0;
}

void lp_session_conn_ready(struct lp_session *s, uint32_t events)
{
	(void)events;
	while (s->conn >= 0 && !s->error) {
		ssize_t n;
		int ret;

		if (s->cur_pid) {
			ret = recv_uffd(s);
			if (ret <= 0) {
				if (ret < 0)
					session_fail(s, ret);
				return;
			}
			s->cur_pid = 0;
			s->nr_msgs++;
			continue;
		}
		n = recv(s->conn, s->word + s->word_len, 4 - s->word_len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			pr_perror("restore socket");
			if (!s->finished)
				session_fail(s, -errno);
			conn_close(s);
			return;
		}
		if (n == 0) {
			if (s->finished) {
				pr_info("restore closed the connection");
			} else {
				if (s->word_len)
					pr_err("restore closed the connection after %zu of the 4 "
					       "bytes of a pid or the finish word",
					       s->word_len);
				pr_err("restore closed the connection before it finished (%zu of "
				       "%zu tasks announced): did criu restore fail? See its log",
				       s->nr_msgs, s->pt->nr);
				session_fail(s, -EPIPE);
			}
			conn_close(s);
			return;
		}
		s->word_len += n;
		if (s->word_len < 4)
			continue;
		s->word_len = 0;
		{
			uint32_t w;

			memcpy(&w, s->word, 4);
			ret = handle_word(s, w);
		}
		if (ret) {
			if (!s->finished)
				session_fail(s, ret);
			conn_close(s);
			return;
		}
	}
}

/* Work for the loop thread itself (workers do the local fill when there are any). */
bool lp_session_has_work(const struct lp_session *s)
{
	if (s->nr_retry_procs || (s->prefetching && lp_now() >= s->prefetch_after))
		return true;
	if (!s->finished || s->nr_workers || s->cfg->on_demand)
		return false;
	for (const struct lp_proc *p = s->procs; p; p = p->next)
		if (!p->exited && p->map.nr_missing && !p->bg_busy)
			return true;
	return false;
}

bool lp_session_work(struct lp_session *s)
{
	struct lp_proc *p;

	if (s->nr_retry_procs)
		for (p = s->procs; p; p = p->next)
			if (p->nr_retry)
				lp_proc_retry(p);
	if (s->prefetching && lp_now() >= s->prefetch_after) {
		bool more = false;

		for (p = s->procs; p; p = p->next)
			more |= lp_proc_prefetch(p, 256);
		s->prefetching = more;
		return true;
	}
	if (!s->finished || s->nr_workers || s->cfg->on_demand)
		return s->nr_retry_procs;
	/* One chunk for one process, round robin in arrival order. */
	p = s->fill_cursor ? s->fill_cursor : s->procs;
	for (struct lp_proc *start = p; p;) {
		if (!p->exited && p->map.nr_missing && !p->bg_busy) {
			lp_proc_fill(p, s->fill_chunk);
			if (s->fill_chunk < s->cfg->fill_chunk_max)
				__atomic_store_n(&s->fill_chunk, s->fill_chunk * 2,
						 __ATOMIC_RELAXED);
			s->fill_cursor = p->next;
			break;
		}
		p = p->next ? p->next : s->procs;
		if (p == start)
			break;
	}
	if (lp_session_done(s) && !s->st.t_resident)
		s->st.t_resident = lp_now();
	return lp_session_has_work(s);
}

bool lp_session_done(const struct lp_session *s)
{
	if (!s->finished)
		return false;
	for (const struct lp_proc *p = s->procs; p; p = p->next)
		if (!__atomic_load_n(&p->exited, __ATOMIC_ACQUIRE) &&
		    (__atomic_load_n(&p->map.nr_missing, __ATOMIC_RELAXED) || p->reqs ||
		     __atomic_load_n(&p->unregistered, __ATOMIC_RELAXED)))
			return false;
	return true;
}

int lp_session_replay(struct lp_session *s)
{
	const struct lp_journal *j = s->sup->j;
	uint64_t n = __atomic_load_n(&j->committed, __ATOMIC_ACQUIRE);
	int ret = 0;

	if (!n && !j->restarts)
		return 0;
	pr_warn("restart %u: replaying %llu journal entries", j->restarts, (unsigned long long)n);
	for (uint64_t i = 0; i < n && !ret; i++) {
		const struct lp_jent *e = &j->e[i];
		struct lp_proc *p;

		switch (e->type) {
		case J_PROC:
			ret = claim_pid(s, e->pid, false);
			if (ret)
				break;
			s->nr_msgs++;
			if (e->slot >= j->nr_slots || j->slot_fd[e->slot] < 0) {
				/* The server died between journaling it and handing it over. */
				pr_err("journal: pid %u: its uffd died with the previous server; its "
				       "missing pages read as zeros now",
				       e->pid);
				break;
			}
			if (!s->st.t_first_uffd)
				s->st.t_first_uffd = lp_now();
			ret = lp_proc_new(s, e->pid, j->slot_fd[e->slot], &p);
			if (!ret)
				p->slot = e->slot;
			break;
		case J_ZOMBIE:
			ret = claim_pid(s, e->pid, true);
			s->nr_msgs++;
			s->st.zombies++;
			break;
		case J_FINISHED:
			__atomic_store_n(&s->finished, true, __ATOMIC_RELEASE);
			s->st.t_finished = lp_now();
			break;
		default:
			ret = lp_proc_replay(s, e);
		}
	}
	if (ret) {
		pr_err("cannot replay the journal: %s", strerror(-ret));
		return ret;
	}
	/* Faults whose messages the dead server read are asked again. */
	for (struct lp_proc *p = s->procs; p; p = p->next)
		if (!p->exited)
			lp_proc_wake_all(p);
	if (s->finished || (s->procs && s->cfg->fill_early))
		ret = lp_session_start_workers(s);
	return ret;
}

void lp_session_probe(struct lp_session *s)
{
	s->last_probe = lp_now();
	for (struct lp_proc *p = s->procs; p; p = p->next)
		if (!p->exited && p->map.nr_missing)
			lp_proc_probe(p);
}
