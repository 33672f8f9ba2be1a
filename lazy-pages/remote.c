// SPDX-License-Identifier: MIT
/* Page-server client: pipelined GETs, FIFO replies, CLOSE handshake. */
#define LOG_PREFIX "remote: "
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "pagemap.h"
#include "remote.h"

#define DEFAULT_TIMEOUT_MS 10000
#define OBATCH		   32 /* headers encoded (and so committed to the wire order) at once */

struct rq {
	uint32_t pid;
	uint64_t vaddr;
	uint64_t nr;
	void *cookie;
	bool urgent;
};

struct rq_fifo {
	struct rq *v;
	size_t head, n, cap;
};

struct lp_remote {
	struct lp_conn c;
	struct lp_tls *tls;
	int hdr_size;
	int timeout_ms;
	lp_remote_done_fn done;
	int err;   /* fatal error, sticky; or why the connection was lost */
	bool lost; /* err is a lost connection: lp_remote_reconnect() may cure it */
	char *address;
	int port;
	long last_rx_ms; /* last byte received, or when the first reply came due */

	struct rq_fifo urgent, bg; /* not yet on the wire */
	struct rq_fifo sent;	   /* committed to the wire, reply due */
	uint8_t obuf[OBATCH * PS_HDR_MAX];
	size_t olen, ooff;

	/* reply being received */
	uint8_t rhdr[PS_HDR_MAX];
	size_t rhdr_len;
	bool in_data;
	struct ps_iov reply;
	uint8_t *data;
	size_t data_cap, data_len, data_need;

	uint64_t nr_replies, nr_pages;
};

/* ---- request queues ----------------------------------------------------------------- */

static int fifo_push(struct rq_fifo *f, const struct rq *x)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct rq *v = malloc(cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < f->n; i++)
			v[i] = f->v[(f->head + i) % f->cap];
		free(f->v);
		f->v = v;
		f->cap = cap;
		f->head = 0;
	}
	f->v[(f->head + f->n) % f->cap] = *x;
	f->n++;
	return 0;
}

static struct rq *fifo_peek(const struct rq_fifo *f)
{
	return f->n ? &f->v[f->head] : NULL;
}

static void fifo_pop(struct rq_fifo *f)
{
	f->head = (f->head + 1) % f->cap;
	f->n--;
}

static void fifo_free(struct rq_fifo *f)
{
	free(f->v);
	memset(f, 0, sizeof(*f));
}

/* ---- errors --------------------------------------------------------------------------- */

/* The peer broke the protocol, or we ran out of memory: no reconnect helps. */
static int fatal(struct lp_remote *r, int err)
{
	if (!r->err)
		r->err = err;
	return r->err;
}

/* The transport failed (reset, closed, timed out): a new connection may help. */
static int lost(struct lp_remote *r, int err)
{
	if (!r->err) {
		r->err = err;
		r->lost = true;
	}
	return r->err;
}

/* ---- sending -------------------------------------------------------------------------- */

/* Encode the next batch of queued requests (urgent first) into the output buffer. */
static int commit(struct lp_remote *r)
{
	r->olen = r->ooff = 0;
	while (r->olen + r->hdr_size <= sizeof(r->obuf)) {
		struct rq_fifo *f = r->urgent.n ? &r->urgent : &r->bg;
		struct rq *q = fifo_peek(f);
		struct ps_iov iov;
		int ret;

		if (!q)
			break;
		iov.cmd = PS_IOV_GET;
		iov.nr_pages = q->nr;
		iov.vaddr = q->vaddr;
		iov.dst_id = q->pid;
		if (!r->sent.n)
			r->last_rx_ms = lp_now_ms(); /* a reply is due from now on */
		ret = fifo_push(&r->sent, q);
		if (ret)
			return ret;
		ps_encode(r->hdr_size, &iov, r->obuf + r->olen);
		r->olen += r->hdr_size;
		fifo_pop(f);
	}
	return 0;
}

/* Send what the socket takes. 0 (maybe blocked) or a fatal -errno. */
static int flush(struct lp_remote *r)
{
	for (;;) {
		size_t len;
		ssize_t n;

		if (r->ooff == r->olen) {
			int ret = commit(r);

			if (ret)
				return fatal(r, ret);
			if (!r->olen)
				return 0;
		}
		/* TLS: one header per record (CRIU reads a header with one record receive) */
		len = r->c.tls ? (size_t)r->hdr_size - r->ooff % r->hdr_size : r->olen - r->ooff;
		n = lp_conn_send(&r->c, r->obuf + r->ooff, len);
		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			pr_err("page server %s: send: %s", r->c.peer, lp_conn_strerror(&r->c, n));
			return lost(r, (int)n);
		}
		r->ooff += n;
	}
}

/* ---- receiving ------------------------------------------------------------------------ */

static int check_reply(struct lp_remote *r, const struct rq *q)
{
	const struct ps_iov *p = &r->reply;

	if (!q) {
		pr_err("page server %s: reply (cmd %#x, pid %" PRIu64 ", vaddr %#" PRIx64
		       ", nr_pages %" PRIu64 ") without a request outstanding",
		       r->c.peer, p->cmd, p->dst_id, p->vaddr, p->nr_pages);
		return -EPROTO;
	}
	if (ps_cmd_op(p->cmd) != PS_IOV_ADD_F || !(ps_cmd_flags(p->cmd) & PE_PRESENT) ||
	    (ps_cmd_flags(p->cmd) & PE_PARENT)) {
		pr_err("page server %s: reply cmd %#x (%s) to GET pid %u vaddr %#" PRIx64
		       " nr_pages %" PRIu64 ": expected %#x (ADD_F with PE_PRESENT); wrong "
		       "--ps-header layout (this side uses %d bytes)?",
		       r->c.peer, p->cmd,
		       ps_cmd_name(ps_cmd_op(p->cmd)) ? ps_cmd_name(ps_cmd_op(p->cmd)) : "unknown",
		       q->pid, q->vaddr, q->nr, PS_GET_REPLY_CMD, r->hdr_size);
		return -EPROTO;
	}
	if (p->vaddr != q->vaddr || p->dst_id != q->pid) {
		pr_err("page server %s: reply for pid %" PRIu64 " vaddr %#" PRIx64
		       " does not match the oldest request, pid %u vaddr %#" PRIx64
		       " nr_pages %" PRIu64 " (replies must come in request order)",
		       r->c.peer, p->dst_id, p->vaddr, q->pid, q->vaddr, q->nr);
		return -EPROTO;
	}
	if (p->nr_pages == 0 || p->nr_pages > q->nr) {
		pr_err("page server %s: reply with %" PRIu64 " pages to GET pid %u vaddr %#" PRIx64
		       " nr_pages %" PRIu64 ": must be 1..%" PRIu64,
		       r->c.peer, p->nr_pages, q->pid, q->vaddr, q->nr, q->nr);
		return -EPROTO;
	}
	return 0;
}

/* A header is complete: check it and get ready for its data. */
static int start_data(struct lp_remote *r)
{
	int ret;

	ps_decode(r->hdr_size, r->rhdr, &r->reply);
	ret = check_reply(r, fifo_peek(&r->sent));
	if (ret)
		return ret;
	r->data_need = r->reply.nr_pages << LP_PAGE_SHIFT;
	if (r->data_need > r->data_cap) {
		uint8_t *d = realloc(r->data, r->data_need);

		if (!d)
			return -ENOMEM;
		r->data = d;
		r->data_cap = r->data_need;
	}
	r->data_len = 0;
	r->in_data = true;
	return 0;
}

/*
 * Read replies until the socket has nothing more. DELIVER: call done() for each, else
 * discard them (closing). STOP_AT_EMPTY: return once no reply is due (closing).
 */
static int receive(struct lp_remote *r, bool deliver)
{
	for (;;) {
		ssize_t n;

		if (!deliver && !r->sent.n && !r->in_data && !r->rhdr_len)
			return 0;
		if (!r->in_data)
			n = lp_conn_recv(&r->c, r->rhdr + r->rhdr_len, r->hdr_size - r->rhdr_len);
		else
			n = lp_conn_recv(&r->c, r->data + r->data_len, r->data_need - r->data_len);
		if (n == -EAGAIN)
			return 0;
		if (n == 0) {
			pr_err("page server %s closed the connection%s with %zu request(s) "
			       "outstanding",
			       r->c.peer, r->in_data || r->rhdr_len ? " mid-reply" : "",
			       r->sent.n + r->urgent.n + r->bg.n);
			return lost(r, -ECONNRESET);
		}
		if (n < 0) {
			pr_err("page server %s: receive: %s", r->c.peer,
			       lp_conn_strerror(&r->c, n));
			return lost(r, (int)n);
		}
		r->last_rx_ms = lp_now_ms();
		if (!r->in_data) {
			int ret;

			r->rhdr_len += n;
			if (r->rhdr_len < (size_t)r->hdr_size)
				continue;
			ret = start_data(r);
			if (ret)
				return fatal(r, ret);
		} else {
			r->data_len += n;
		}
		if (r->data_len == r->data_need) {
			struct rq q = *fifo_peek(&r->sent);

			fifo_pop(&r->sent);
			r->in_data = false;
			r->rhdr_len = 0;
			r->nr_replies++;
			r->nr_pages += r->reply.nr_pages;
			if (deliver) {
				r->done(q.cookie, q.pid, q.vaddr, r->reply.nr_pages, r->data, 0);
				if (r->err) /* the callback's request hit a fatal error */
					return r->err;
			}
		}
	}
}

/* ---- the API -------------------------------------------------------------------------- */

static int setup(struct lp_remote **out, const struct lp_remote_opts *o, lp_remote_done_fn done)
{
	struct lp_remote *r;
	int ret;

	*out = NULL;
	if (o->hdr_size && !ps_hdr_size_valid(o->hdr_size)) {
		pr_err("page-server header size %d: must be 24 or 32", o->hdr_size);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	lp_conn_init(&r->c);
	r->hdr_size = o->hdr_size ? o->hdr_size : PS_HDR_DEFAULT;
	r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	r->done = done;
	r->port = o->port;
	if (o->address && !(r->address = strdup(o->address))) {
		free(r);
		return -ENOMEM;
	}
	if (o->tls.enabled) {
		ret = lp_tls_new(&r->tls, &o->tls, false, o->address);
		if (ret) {
			free(r->address);
			free(r);
			return ret;
		}
	}
	*out = r;
	return 0;
}

static void destroy(struct lp_remote *r)
{
	lp_conn_close(&r->c, false);
	lp_tls_free(r->tls);
	fifo_free(&r->urgent);
	fifo_free(&r->bg);
	fifo_free(&r->sent);
	free(r->data);
	free(r->address);
	free(r);
}

int lp_remote_open(struct lp_remote **out, const struct lp_remote_opts *o, lp_remote_done_fn done)
{
	struct lp_remote *r;
	int ret = setup(&r, o, done);

	*out = NULL;
	if (ret)
		return ret;
	ret = lp_conn_connect(&r->c, o->address, o->port, r->tls, r->timeout_ms);
	if (ret) {
		destroy(r);
		return ret;
	}
	pr_info("page server %s: connected, %d-byte headers%s", r->c.peer, r->hdr_size,
		r->tls ? ", TLS" : "");
	*out = r;
	return 0;
}

/* Wait for the socket (blocking set-up and close). */
static int wait_sock(struct lp_remote *r, short events, long deadline)
{
	return lp_wait_fd(r->c.fd, events, deadline);
}

int lp_remote_open_fd(struct lp_remote **out, int fd, const struct lp_remote_opts *o,
		      lp_remote_done_fn done)
{
	struct lp_remote *r;
	long deadline;
	int ret = setup(&r, o, done);

	*out = NULL;
	if (ret) {
		close(fd);
		return ret;
	}
	ret = lp_conn_adopt(&r->c, fd, r->tls);
	if (ret) {
		destroy(r);
		return ret;
	}
	deadline = lp_now_ms() + r->timeout_ms;
	while (!r->c.handshaken) {
		ret = lp_conn_handshake(&r->c);
		if (ret == -EAGAIN)
			ret = wait_sock(r, lp_conn_want_write(&r->c) ? POLLOUT : POLLIN, deadline);
		if (ret) {
			destroy(r);
			return ret;
		}
	}
	*out = r;
	return 0;
}

int lp_remote_fd(const struct lp_remote *r)
{
	return r->c.fd;
}

bool lp_remote_want_write(const struct lp_remote *r)
{
	return !r->err && (r->ooff < r->olen || r->urgent.n || r->bg.n);
}

int lp_remote_request(struct lp_remote *r, uint32_t pid, uint64_t img_addr, uint64_t nr_pages,
		      void *cookie, bool urgent)
{
	struct rq q = {
		.pid = pid, .vaddr = img_addr, .nr = nr_pages, .cookie = cookie, .urgent = urgent};
	int ret;

	if (r->err && !r->lost)
		return r->err;
	if (!nr_pages || nr_pages > LP_REMOTE_MAX_PAGES || (img_addr & (LP_PAGE_SIZE - 1)) ||
	    (r->hdr_size == PS_HDR_V1 && nr_pages > UINT32_MAX)) {
		pr_err("page server %s: bad request: pid %u vaddr %#" PRIx64 " nr_pages %" PRIu64
		       " (1..%u pages at a page-aligned address)",
		       r->c.peer, pid, img_addr, nr_pages, LP_REMOTE_MAX_PAGES);
		return -EINVAL;
	}
	ret = fifo_push(urgent ? &r->urgent : &r->bg, &q);
	if (ret)
		return ret;
	if (r->lost)
		return 0; /* sent once a new connection is up */
	ret = flush(r);
	return r->lost ? 0 : ret;
}

int lp_remote_ready(struct lp_remote *r, uint32_t events)
{
	int ret;

	(void)events; /* every step below copes with a socket that is not ready */
	if (r->err)
		return r->err;
	ret = flush(r);
	if (!ret)
		ret = receive(r, true);
	if (!ret)
		ret = flush(r); /* what done() queued */
	return ret;
}

size_t lp_remote_inflight(const struct lp_remote *r)
{
	return r->sent.n + r->urgent.n + r->bg.n;
}

/* ---- losing the connection and getting a new one ---------------------------------------- */

int lp_remote_new(struct lp_remote **out, const struct lp_remote_opts *o, lp_remote_done_fn done)
{
	int ret = setup(out, o, done);

	if (!ret) {
		(*out)->err = -ENOTCONN;
		(*out)->lost = true;
	}
	return ret;
}

bool lp_remote_lost(const struct lp_remote *r)
{
	return r->lost;
}

long lp_remote_idle_ms(const struct lp_remote *r)
{
	if (r->err || (!r->sent.n && !r->in_data && !r->rhdr_len))
		return 0;
	return lp_now_ms() - r->last_rx_ms;
}

void lp_remote_drop(struct lp_remote *r, int err)
{
	lost(r, err);
}

/* Put the requests whose replies never came back in front of those not sent yet. */
static int requeue(struct lp_remote *r, size_t *nr)
{
	struct rq_fifo u = {0}, b = {0};
	struct rq *q;
	int ret = 0;

	*nr = r->sent.n;
	for (; (q = fifo_peek(&r->sent)); fifo_pop(&r->sent))
		if ((ret = fifo_push(q->urgent ? &u : &b, q)))
			goto out;
	for (; (q = fifo_peek(&r->urgent)); fifo_pop(&r->urgent))
		if ((ret = fifo_push(&u, q)))
			goto out;
	for (; (q = fifo_peek(&r->bg)); fifo_pop(&r->bg))
		if ((ret = fifo_push(&b, q)))
			goto out;
	fifo_free(&r->urgent);
	fifo_free(&r->bg);
	r->urgent = u;
	r->bg = b;
	return 0;
out:
	fifo_free(&u);
	fifo_free(&b);
	return ret;
}

int lp_remote_reconnect(struct lp_remote *r, int timeout_ms, size_t *resent)
{
	int ret;

	*resent = 0;
	if (!r->lost)
		return r->err;
	if (r->c.fd >= 0)
		lp_conn_close(&r->c, false);
	/* A reply cut short is asked for again whole; so are the batch's headers. */
	r->olen = r->ooff = 0;
	r->rhdr_len = 0;
	r->in_data = false;
	ret = requeue(r, resent);
	if (ret)
		return fatal(r, ret);
	*resent = r->urgent.n + r->bg.n;
	ret = lp_conn_connect_quiet(&r->c, r->address, r->port, r->tls, timeout_ms);
	if (ret == -EKEYREJECTED || ret == -EPROTO || ret == -EINVAL) {
		/* a certificate refused, a peer that is no TLS server: trying again won't help */
		r->lost = false;
		r->err = ret;
		return ret;
	}
	if (ret)
		return ret;
	r->err = 0;
	r->lost = false;
	r->last_rx_ms = lp_now_ms();
	pr_info("page server %s: connected, %d-byte headers%s", r->c.peer, r->hdr_size,
		r->tls ? ", TLS" : "");
	ret = flush(r);
	return ret;
}

/* Send LEN bytes of BUF before DEADLINE (the same buffer again after -EAGAIN: TLS). */
static int send_all(struct lp_remote *r, const uint8_t *buf, size_t len, long deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = lp_conn_send(&r->c, buf + off, len - off);

		if (n == -EAGAIN) {
			int ret = wait_sock(r, POLLOUT, deadline);

			if (ret)
				return ret;
			continue;
		}
		if (n < 0)
			return (int)n;
		off += n;
	}
	return 0;
}

static int close_handshake(struct lp_remote *r)
{
	long deadline = lp_now_ms() + r->timeout_ms;
	struct ps_iov iov = {.cmd = PS_IOV_CLOSE};
	uint8_t hdr[PS_HDR_MAX];
	int32_t status;
	size_t got = 0;
	int ret;

	/* Requests not on the wire yet are dropped; committed ones must go out whole. */
	r->urgent.n = r->bg.n = 0;
	while (r->ooff < r->olen) {
		ret = flush(r);
		if (ret)
			return ret;
		if (r->ooff < r->olen) {
			ret = wait_sock(r, POLLOUT, deadline);
			if (ret)
				goto timeout;
		}
	}
	ps_encode(r->hdr_size, &iov, hdr);
	ret = send_all(r, hdr, r->hdr_size, deadline);
	if (ret == -ETIMEDOUT)
		goto timeout;
	if (ret) {
		pr_err("page server %s: sending CLOSE: %s", r->c.peer,
		       lp_conn_strerror(&r->c, ret));
		return ret;
	}
	/* Replies still due come first; nobody wants them now. */
	while (r->sent.n || r->in_data || r->rhdr_len) {
		ret = receive(r, false);
		if (ret)
			return ret;
		if (r->sent.n || r->in_data || r->rhdr_len) {
			ret = wait_sock(r, POLLIN, deadline);
			if (ret)
				goto timeout;
		}
	}
	while (got < sizeof(status)) {
		ssize_t n = lp_conn_recv(&r->c, (uint8_t *)&status + got, sizeof(status) - got);

		if (n == -EAGAIN) {
			ret = wait_sock(r, POLLIN, deadline);
			if (ret)
				goto timeout;
			continue;
		}
		if (n <= 0) {
			pr_err("page server %s: no answer to CLOSE: %s", r->c.peer,
			       n ? lp_conn_strerror(&r->c, n) : "connection closed");
			return n ? (int)n : -ECONNRESET;
		}
		got += n;
	}
	if (status) {
		pr_err("page server %s answered CLOSE with status %d", r->c.peer, status);
		return -EPROTO;
	}
	return 0;
timeout:
	pr_err("page server %s: CLOSE handshake not done within %d ms", r->c.peer, r->timeout_ms);
	return -ETIMEDOUT;
}

int lp_remote_close(struct lp_remote *r)
{
	int ret;

	if (!r)
		return 0;
	ret = r->err;
	if (!ret && r->c.fd >= 0) {
		ret = close_handshake(r);
		if (!ret)
			pr_info("page server %s: closed after %" PRIu64 " replies, %" PRIu64
				" pages",
				r->c.peer, r->nr_replies, r->nr_pages);
		lp_conn_close(&r->c, ret == 0);
	}
	destroy(r);
	return ret;
}
