// SPDX-License-Identifier: MIT
/*
 * Surviving a crash of the serving process.
 *
 * With CRIU, a dead lazy-pages daemon closes the uffds, the kernel unregisters them and
 * every page still missing becomes a zero page: the restored processes run on with
 * corrupted memory. Here the process that accepted the restore becomes a supervisor: it
 * forks the server, keeps a copy of every uffd the server gets and, if the server dies,
 * forks a new one. The new server replays the journal (processes, forks, remaps, removed
 * ranges, exits, the finish word), starts again from the images, and wakes every waiting
 * thread so faults whose messages died with the old server are asked again. Pages that
 * were already installed answer EEXIST. The restored processes only pause.
 */
#define LOG_PREFIX "supervisor: "
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "supervisor.h"

#define JOURNAL_CAP  (1ULL << 22) /* 4M entries, 128 MiB virtual, backed as written */
#define MAX_RESTARTS 1000

struct slot_msg {
	uint32_t slot;
};

int lp_sup_reserve(struct lp_sup *sup)
{
	if (sup->j->nr_slots >= LP_JOURNAL_SLOTS)
		return -ENOSPC;
	return sup->j->nr_slots++;
}

int lp_sup_handover(struct lp_sup *sup, int fd, uint32_t slot)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} ctl;
	struct slot_msg m;
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	m.slot = slot;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	while (sendmsg(sup->sock, &mh, 0) < 0) {
		if (errno != EINTR) {
			pr_perror("handing uffd %d to the supervisor", fd);
			return -errno;
		}
	}
	return 0;
}

void lp_sup_log(struct lp_sup *sup, uint32_t type, uint32_t slot, uint32_t parent, uint32_t pid,
		uint64_t a, uint64_t b, uint64_t c)
{
	struct lp_jent e = {
		.type = type, .slot = slot, .parent = parent, .pid = pid, .a = a, .b = b, .c = c};

	if (sup)
		lp_journal_add(sup->j, &e);
}

/* Take the uffds the server handed over; returns 0 when the socket is drained. */
static int collect_fds(struct lp_journal *j, int sock)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 4)];
			struct cmsghdr a;
		} ctl;
		struct slot_msg m;
		struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf)};
		struct cmsghdr *c;
		ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			return 0;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			int fd;

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
			if (n != sizeof(m) || m.slot >= LP_JOURNAL_SLOTS ||
			    j->slot_fd[m.slot] >= 0) {
				close(fd);
				continue;
			}
			/* Not close-on-exec relevant: servers are forked, never exec'd. */
			j->slot_fd[m.slot] = fd;
		}
	}
}

static pid_t start_server(struct lp_daemon *d, int conn, struct lp_journal *j, int sk[2], int sfd)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct lp_sup sup = {.j = j, .sock = sk[1]};
		sigset_t none;

		close(sk[0]);
		close(sfd);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		_exit(lp_daemon_serve(d, conn, &sup));
	}
	if (pid < 0)
		pr_perror("fork");
	else
		pr_info("serving process %d started", pid);
	return pid;
}

int lp_supervise(struct lp_daemon *d, int conn)
{
	struct lp_journal *j = lp_journal_create(JOURNAL_CAP);
	int sk[2], sfd, ret = 1;
	sigset_t mask;
	pid_t pid;

	if (!j)
		return lp_daemon_serve(d, conn, NULL);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sk)) {
		pr_perror("socketpair");
		lp_journal_destroy(j);
		return lp_daemon_serve(d, conn, NULL);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		pr_perror("signalfd");
		goto out;
	}
	pid = start_server(d, conn, j, sk, sfd);
	if (pid < 0)
		goto out;
	for (;;) {
		struct pollfd pfd[2] = {{.fd = sk[0], .events = POLLIN},
					{.fd = sfd, .events = POLLIN}};
		struct signalfd_siginfo si;
		int st;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			pr_perror("poll");
			break;
		}
		if (pfd[0].revents & POLLIN)
			collect_fds(j, sk[0]);
		if (!(pfd[1].revents & POLLIN))
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			/* Stop: the server exits with its summary. */
			kill(pid, si.ssi_signo);
			continue;
		}
		if (waitpid(pid, &st, WNOHANG) != pid)
			continue;
		collect_fds(j, sk[0]); /* what the dead server sent before dying */
		if (WIFEXITED(st)) {
			ret = WEXITSTATUS(st);
			break;
		}
		if (WTERMSIG(st) == SIGTERM || WTERMSIG(st) == SIGINT) {
			ret = 1;
			break;
		}
		if (++j->restarts > MAX_RESTARTS) {
			pr_err("the serving process died %u times; giving up (pages still missing "
			       "become zero pages)",
			       j->restarts);
			break;
		}
		pr_err("the serving process %d died (%s): starting a new one from the images; "
		       "restored processes only pause (restart %u)",
		       pid, strsignal(WTERMSIG(st)), j->restarts);
		pid = start_server(d, conn, j, sk, sfd);
		if (pid < 0)
			break;
	}
out:
	if (sfd >= 0)
		close(sfd);
	close(sk[0]);
	close(sk[1]);
	close(conn);
	for (uint32_t i = 0; i < j->nr_slots && i < LP_JOURNAL_SLOTS; i++)
		if (j->slot_fd[i] >= 0)
			close(j->slot_fd[i]);
	lp_journal_destroy(j);
	return ret;
}
