/* SPDX-License-Identifier: MIT */
/*
 * The daemon's page-server client: pipelined PS_IOV_GET requests to `criu page-server
 * --lazy-pages`, `criu dump --lazy-pages` or `lazypages page-server`, over TCP or TLS.
 *
 *	lp_remote_open()      connect (+ TLS handshake), blocking with a timeout
 *	lp_remote_request()   queue a GET; urgent ones (faults) overtake queued background ones
 *	lp_remote_ready()     on epoll events: send what waits, read replies, call done()
 *	lp_remote_close()     PS_IOV_CLOSE handshake, close, free
 *
 * Replies come back in the order the requests went out (the server is sequential); a
 * reply may be short (fewer pages than asked, up to the end of a contiguous run on the
 * server): done() gets what came and the caller asks again for the rest. A reply that
 * does not match the oldest outstanding request (address, pid, more pages than asked,
 * unknown command) is a fatal error naming the peer and the values.
 *
 * Not thread-safe: one thread drives a remote, done() runs on that thread.
 */
#ifndef LP_REMOTE_H
#define LP_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ps-proto.h"
#include "tls.h"

/* Largest request, in pages (the receive buffer grows to the largest reply). */
#define LP_REMOTE_MAX_PAGES (1U << 16)

struct lp_remote_opts {
	const char *address;
	int port;
	int hdr_size;		/* PS_HDR_V1 (24, CRIU <= 4.1.x) or PS_HDR_V2 (32, 4.2+); 0: 24 */
	struct lp_tls_opts tls; /* tls.enabled false: plain TCP */
	int timeout_ms;		/* connect + handshake, and lp_remote_close(); 0: 10 s */
};

/*
 * A reply (ERR == 0): NR_PAGES (1 .. the number asked for) pages at image address
 * IMG_ADDR of PID in DATA, valid only during the call. COOKIE is the request's.
 * The callback may call lp_remote_request(), not lp_remote_close().
 */
typedef void (*lp_remote_done_fn)(void *cookie, uint32_t pid, uint64_t img_addr, uint64_t nr_pages,
				  const void *data, int err);

struct lp_remote;

/* Connect to o->address:o->port. The fd is non-blocking afterwards. 0 or -errno (logged). */
int lp_remote_open(struct lp_remote **r, const struct lp_remote_opts *o, lp_remote_done_fn done);
/*
 * The same over an already-connected stream socket FD (CRIU's --ps-socket; tests,
 * fuzzers); FD is owned by the remote from then on, even on failure. o->address is only
 * used as the name TLS checks, o->port is ignored.
 */
int lp_remote_open_fd(struct lp_remote **r, int fd, const struct lp_remote_opts *o,
		      lp_remote_done_fn done);

/* For the caller's epoll: always EPOLLIN, plus EPOLLOUT while lp_remote_want_write(). */
int lp_remote_fd(const struct lp_remote *r);
bool lp_remote_want_write(const struct lp_remote *r);

/*
 * Queue a GET for NR_PAGES (1..LP_REMOTE_MAX_PAGES) pages of PID at image address
 * IMG_ADDR (page aligned) and send what the socket takes now. URGENT requests go out
 * before background requests that have not been sent yet. Returns 0, -EINVAL for a bad
 * request, or the connection's fatal error.
 */
int lp_remote_request(struct lp_remote *r, uint32_t pid, uint64_t img_addr, uint64_t nr_pages,
		      void *cookie, bool urgent);

/*
 * Progress after epoll reported EVENTS (0 is fine too): send, receive, and call done()
 * for each complete reply, reading until the socket has nothing more (so that TLS data
 * buffered in user space is not left behind). Returns 0, or -errno for a fatal error (the
 * peer closed, a bad reply, ...) after logging it; done() is not called after that, and
 * every later call returns the same error.
 */
int lp_remote_ready(struct lp_remote *r, uint32_t events);

/* Requests sent or queued whose replies have not been delivered. */
size_t lp_remote_inflight(const struct lp_remote *r);

/*
 * Surviving a lost connection. A send or receive failure, or the end of the stream, marks
 * the remote lost (lp_remote_ready() returns the error and lp_remote_lost() is true);
 * protocol errors are not "lost" and stay fatal. While lost, lp_remote_request() queues
 * and returns 0, and lp_remote_fd() is -1 once lp_remote_reconnect() has run.
 *
 *	lp_remote_new()        a remote not connected yet (lost, -ENOTCONN)
 *	lp_remote_reconnect()  close the old socket, queue again every request whose reply
 *	                       did not arrive whole (*RESENT: all requests queued now,
 *	                       those and the ones made while lost), connect within
 *	                       TIMEOUT_MS: 0, or -errno (still lost; call again later)
 *	lp_remote_idle_ms()    how long replies have been due with nothing received (0:
 *	                       none due), to catch a peer that vanished without a reset
 *	lp_remote_drop()       declare the connection lost (after such a stall)
 */
int lp_remote_new(struct lp_remote **r, const struct lp_remote_opts *o, lp_remote_done_fn done);
bool lp_remote_lost(const struct lp_remote *r);
int lp_remote_reconnect(struct lp_remote *r, int timeout_ms, size_t *resent);
long lp_remote_idle_ms(const struct lp_remote *r);
void lp_remote_drop(struct lp_remote *r, int err);

/*
 * Send PS_IOV_CLOSE (after any request already partly sent; unsent ones are dropped and
 * replies still due are read and discarded, without done()), wait for its int32 status,
 * close (TLS close_notify first) and free. Returns 0, the fatal error seen earlier, or
 * -errno. NULL is fine.
 */
int lp_remote_close(struct lp_remote *r);

#endif
