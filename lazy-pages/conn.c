// SPDX-License-Identifier: MIT
/* Page-server connections: TCP (IPv4/IPv6) with optional TLS, non-blocking I/O. */
#define LOG_PREFIX "conn: "
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"

void lp_conn_init(struct lp_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, len, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "socket");
	}
}

static void set_nodelay(int fd)
{
	int one = 1;

	/* Headers and small replies go out at once; bulk data fills segments anyway. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

long lp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

int lp_wait_fd(int fd, short events, long deadline)
{
	for (;;) {
		long left = deadline - lp_now_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int tls_attach(struct lp_conn *c, struct lp_tls *t)
{
	int ret;

	c->handshaken = !t;
	if (!t)
		return 0;
	ret = lp_tls_conn_new(t, c->fd, c->peer, &c->tls);
	return ret;
}

static int connect_one(const struct addrinfo *ai, long deadline, int *fdp)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	socklen_t len = sizeof(int);
	int err = 0, ret;

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = lp_wait_fd(fd, POLLOUT, deadline);
	if (!ret && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		ret = -errno;
	if (!ret && err)
		ret = -err;
	if (ret) {
		close(fd);
		return ret;
	}
	*fdp = fd;
	return 0;
}

/* An error, or only information when LVL says the caller will retry. */
#define say(lvl, fmt, ...)                                                              \
	log_printf(lvl, (lvl) == LOG_ERROR ? __FILE__ : NULL, __LINE__, LOG_PREFIX fmt, \
		   ##__VA_ARGS__)

static int conn_connect(struct lp_conn *c, const char *address, int port, struct lp_tls *t,
			int timeout_ms, int lvl)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	long deadline = lp_now_ms() + timeout_ms;
	char service[16];
	int ret = -EHOSTUNREACH;

	lp_conn_init(c);
	if (!address || !*address) {
		pr_err("no page-server address given (--address)");
		return -EINVAL;
	}
	if (port <= 0 || port > 65535) {
		pr_err("bad page-server port %d (--port 1..65535)", port);
		return -EINVAL;
	}
	snprintf(service, sizeof(service), "%d", port);
	ret = getaddrinfo(address, service, &hints, &res);
	if (ret == EAI_NONAME || ret == EAI_ADDRFAMILY) {
		/* AI_ADDRCONFIG hides ::1 / 127.0.0.1 on hosts with only a loopback. */
		hints.ai_flags = 0;
		ret = getaddrinfo(address, service, &hints, &res);
	}
	if (ret) {
		say(lvl, "cannot resolve %s: %s", address, gai_strerror(ret));
		return -EHOSTUNREACH;
	}
	ret = -EHOSTUNREACH;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char where[64];

		addr_str(ai->ai_addr, where, sizeof(where));
		ret = connect_one(ai, deadline, &c->fd);
		if (!ret) {
			snprintf(c->peer, sizeof(c->peer), "%s", where);
			break;
		}
		pr_info("connect to %s: %s", where, strerror(-ret));
	}
	freeaddrinfo(res);
	if (ret) {
		say(lvl, "cannot connect to %s port %d: %s", address, port, strerror(-ret));
		return ret;
	}
	set_nodelay(c->fd);
	ret = tls_attach(c, t);
	while (!ret && !c->handshaken) {
		ret = lp_conn_handshake(c);
		if (ret == -EAGAIN) {
			ret = lp_wait_fd(c->fd, lp_conn_want_write(c) ? POLLOUT : POLLIN, deadline);
			if (ret == -ETIMEDOUT)
				say(lvl, "TLS handshake with %s: no answer within %d ms", c->peer,
				    timeout_ms);
		}
	}
	if (ret) {
		lp_conn_close(c, false);
		return ret;
	}
	pr_info("connected to %s%s", c->peer, t ? " (TLS)" : "");
	return 0;
}

int lp_conn_connect(struct lp_conn *c, const char *address, int port, struct lp_tls *t,
		    int timeout_ms)
{
	return conn_connect(c, address, port, t, timeout_ms, LOG_ERROR);
}

int lp_conn_connect_quiet(struct lp_conn *c, const char *address, int port, struct lp_tls *t,
			  int timeout_ms)
{
	return conn_connect(c, address, port, t, timeout_ms, LOG_INFO);
}

static int bind_listen(int family, const struct sockaddr *sa, socklen_t salen, int backlog,
		       bool dual)
{
	int one = 1, zero = 0;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, salen) || listen(fd, backlog)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

int lp_conn_listen(const char *address, int port, int backlog, int *bound)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -EADDRNOTAVAIL;

	if (port < 0 || port > 65535) {
		pr_err("bad port %d (--port 0..65535)", port);
		return -EINVAL;
	}
	if (!address || !*address) {
		struct sockaddr_in6 any6 = {.sin6_family = AF_INET6,
					    .sin6_port = htons(port),
					    .sin6_addr = IN6ADDR_ANY_INIT};
		struct sockaddr_in any4 = {.sin_family = AF_INET,
					   .sin_port = htons(port),
					   .sin_addr.s_addr = htonl(INADDR_ANY)};

		/* Dual-stack where IPv6 exists, else IPv4 only. */
		fd = bind_listen(AF_INET6, (struct sockaddr *)&any6, sizeof(any6), backlog, true);
		if (fd < 0)
			fd = bind_listen(AF_INET, (struct sockaddr *)&any4, sizeof(any4), backlog,
					 false);
		if (fd < 0) {
			pr_err("cannot listen on port %d: %s", port, strerror(-fd));
			return fd;
		}
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
		struct addrinfo *res = NULL;
		char service[16];
		int ret;

		snprintf(service, sizeof(service), "%d", port);
		ret = getaddrinfo(address, service, &hints, &res);
		if (ret) {
			pr_err("cannot resolve --address %s: %s", address, gai_strerror(ret));
			return -EADDRNOTAVAIL;
		}
		for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			fd = bind_listen(ai->ai_family, ai->ai_addr, ai->ai_addrlen, backlog,
					 false);
			if (fd >= 0)
				break;
		}
		freeaddrinfo(res);
		if (fd < 0) {
			pr_err("cannot listen on %s port %d: %s", address, port, strerror(-fd));
			return fd;
		}
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							: ((struct sockaddr_in *)&ss)->sin_port);
	else
		*bound = port;
	return fd;
}

int lp_conn_accept(struct lp_conn *c, int lfd, struct lp_tls *t)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd, ret;

	lp_conn_init(c);
	fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED)
			return -EAGAIN;
		return -errno;
	}
	c->fd = fd;
	addr_str((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
	set_nodelay(fd);
	ret = tls_attach(c, t);
	if (ret)
		lp_conn_close(c, false);
	return ret;
}

int lp_conn_adopt(struct lp_conn *c, int fd, struct lp_tls *t)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int ret;

	lp_conn_init(c);
	c->fd = fd;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_str((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
	else
		snprintf(c->peer, sizeof(c->peer), "fd %d", fd);
	ret = set_nonblock(fd, true);
	if (!ret)
		ret = tls_attach(c, t);
	if (ret)
		lp_conn_close(c, false);
	return ret;
}

int lp_conn_handshake(struct lp_conn *c)
{
	int ret;

	if (c->handshaken)
		return 0;
	ret = lp_tls_handshake(c->tls);
	if (!ret)
		c->handshaken = true;
	return ret;
}

bool lp_conn_want_write(const struct lp_conn *c)
{
	return c->tls && !c->handshaken && lp_tls_want_write(c->tls);
}

ssize_t lp_conn_send(struct lp_conn *c, const void *buf, size_t len)
{
	ssize_t n;

	if (c->tls)
		return lp_tls_send(c->tls, buf, len);
	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

ssize_t lp_conn_sendv(struct lp_conn *c, const struct iovec *iov, int n)
{
	struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};
	ssize_t r;

	if (c->tls) {
		for (int i = 0; i < n; i++)
			if (iov[i].iov_len)
				return lp_tls_send(c->tls, iov[i].iov_base, iov[i].iov_len);
		return 0;
	}
	do
		r = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return r;
}

ssize_t lp_conn_recv(struct lp_conn *c, void *buf, size_t len)
{
	ssize_t n;

	if (c->tls)
		return lp_tls_recv(c->tls, buf, len);
	do
		n = recv(c->fd, buf, len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

bool lp_conn_pending(const struct lp_conn *c)
{
	return c->tls && c->handshaken && lp_tls_pending(c->tls) > 0;
}

bool lp_conn_unclean_eof(const struct lp_conn *c)
{
	return c->tls && lp_tls_unclean_eof(c->tls);
}

const char *lp_conn_strerror(const struct lp_conn *c, int err)
{
	if (c->tls && err == -EPROTO)
		return lp_tls_strerror(c->tls);
	return strerror(-err);
}

void lp_conn_close(struct lp_conn *c, bool clean)
{
	if (c->tls) {
		if (clean && c->handshaken)
			lp_tls_bye(c->tls);
		lp_tls_conn_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->handshaken = false;
}
