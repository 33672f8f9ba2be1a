/* SPDX-License-Identifier: MIT */
/*
 * A page-server connection: plain TCP or TLS over TCP, non-blocking after set-up.
 *
 * send/recv never block and never raise SIGPIPE: they return what they could do, or
 * -EAGAIN. With TLS, a send that returned -EAGAIN must be repeated with the same buffer
 * and length, and a reader driven by epoll must read until -EAGAIN (or check
 * lp_conn_pending()), since GnuTLS may hold decrypted bytes that epoll cannot see.
 */
#ifndef LP_CONN_H
#define LP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "tls.h"

struct lp_conn {
	int fd;
	struct lp_tls_conn *tls; /* NULL: plain TCP */
	bool handshaken;	 /* TLS handshake done (always true for plain TCP) */
	char peer[64];		 /* "127.0.0.1:7000", "[::1]:7000": for messages */
};

/* Milliseconds on CLOCK_MONOTONIC, for deadlines. */
long lp_now_ms(void);
/* Wait until FD is ready for EVENTS (poll) or DEADLINE (lp_now_ms()) passes: 0, -ETIMEDOUT, -errno. */
int lp_wait_fd(int fd, short events, long deadline);

/* An unused connection (fd -1), safe to lp_conn_close(). */
void lp_conn_init(struct lp_conn *c);

/*
 * Connect to ADDRESS:PORT (every getaddrinfo() result in turn, IPv4 or IPv6), then with
 * TLS (T not NULL) do the handshake, within TIMEOUT_MS overall. The socket is
 * non-blocking with TCP_NODELAY afterwards. Logs and returns -errno on failure.
 */
int lp_conn_connect(struct lp_conn *c, const char *address, int port, struct lp_tls *t,
		    int timeout_ms);
/* The same for a caller that retries: failures are logged as information only. */
int lp_conn_connect_quiet(struct lp_conn *c, const char *address, int port, struct lp_tls *t,
			  int timeout_ms);

/*
 * Listen on ADDRESS (NULL: every local address, IPv6 and IPv4) and PORT (0: the kernel
 * picks; *BOUND gets the port in use). Returns a non-blocking listening fd or -errno.
 */
int lp_conn_listen(const char *address, int port, int backlog, int *bound);

/*
 * Accept one connection from LFD (non-blocking). Returns 0, -EAGAIN when none is
 * waiting, or -errno. With T, the server side of the handshake is still to be done
 * (lp_conn_handshake()).
 */
int lp_conn_accept(struct lp_conn *c, int lfd, struct lp_tls *t);

/* Wrap an already-connected socket FD (ownership passes to C); T as above. */
int lp_conn_adopt(struct lp_conn *c, int fd, struct lp_tls *t);

/* One handshake step: 0 done, -EAGAIN (wait for lp_conn_want_write() ? OUT : IN), -errno. */
int lp_conn_handshake(struct lp_conn *c);
bool lp_conn_want_write(const struct lp_conn *c);

/* Bytes sent (> 0), -EAGAIN, or -errno. TLS sends at most one record per call. */
ssize_t lp_conn_send(struct lp_conn *c, const void *buf, size_t len);
/*
 * Gathering send. Plain TCP: one sendmsg() of everything. TLS: only the first non-empty
 * piece, as one record, so that a protocol header never shares a record with data.
 */
ssize_t lp_conn_sendv(struct lp_conn *c, const struct iovec *iov, int n);
/* Bytes received (> 0), 0 at the end of the stream, -EAGAIN, or -errno. */
ssize_t lp_conn_recv(struct lp_conn *c, void *buf, size_t len);
/* Received bytes already buffered in user space (TLS). */
bool lp_conn_pending(const struct lp_conn *c);
/* The end of stream came without TLS close_notify. */
bool lp_conn_unclean_eof(const struct lp_conn *c);

/* A message for error ERR (-errno) from this connection (GnuTLS's text for -EPROTO). */
const char *lp_conn_strerror(const struct lp_conn *c, int err);

/* With CLEAN and TLS, send close_notify first. Then close the socket. */
void lp_conn_close(struct lp_conn *c, bool clean);

#endif
