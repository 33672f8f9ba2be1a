// SPDX-License-Identifier: MIT
/*
 * lazypages page-server: a drop-in for `criu page-server --lazy-pages`.
 *
 * Serves the present pages of a regular dump over CRIU's page-server protocol to
 * `criu lazy-pages --page-server` and `lazypages daemon --page-server`. Unlike CRIU it
 * keeps accepting sessions, one after another and several at once (--single: exit after
 * one, as CRIU does), so one checkpoint can be restored many times. Page data goes out
 * straight from the read-only mapped pages files. See docs/page-server.md.
 *
 * One thread, one epoll loop. Every session has its own input buffer and a bounded queue
 * of replies; a session whose peer does not read stops being read from (so its queue
 * stays bounded) and never blocks the others.
 */
#define LOG_PREFIX "page-server: "
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"
#include "criu-opts.h"
#include "log.h"
#include "service.h"
#include "ps-proto.h"
#include "ps-store.h"
#include "tls.h"

#define PS_INBUF	4096	   /* request bytes buffered per session */
#define PS_OUTQ		64	   /* replies queued per session before it stops reading */
#define PS_BUDGET	(4U << 20) /* bytes a session may send per turn before others */
#define PS_MAX_SESSIONS 256
#define PS_BACKLOG	64
#define PS_IOV_BATCH	32 /* iovecs per sendmsg */

struct ps_opts {
	struct lp_svc_opts svc;
	const char *address;
	int port;
	int ps_socket;
	int hdr_size;
	unsigned int max_sessions;
	bool lazy;
	bool single;
	struct lp_tls_opts tls;
};

enum ps_ev_kind { PS_EV_LISTEN, PS_EV_SIGNAL, PS_EV_SESS };

struct ps_ev {
	enum ps_ev_kind kind;
	void *obj;
};

struct ps_out {
	uint8_t hdr[PS_HDR_MAX];
	uint8_t hdr_len;
	const uint8_t *data;
	uint64_t len;
	uint64_t off; /* bytes of hdr + data already sent */
};

struct ps_server;

struct ps_sess {
	struct ps_server *srv;
	struct ps_ev ev;
	struct lp_conn c;
	unsigned int id;
	char name[96];	   /* "session 3 (127.0.0.1:40000)" */
	uint32_t interest; /* epoll events registered */
	uint8_t in[PS_INBUF];
	size_t in_len;
	struct ps_out q[PS_OUTQ];
	unsigned int qhead, qn;
	bool closing;  /* CLOSE answered: wait for the peer to close */
	bool force;    /* FORCE_CLOSE answered: end once the reply is out */
	bool peer_eof; /* the peer shut down its side: send what is queued, then end */
	bool again;    /* has work left without a new epoll event */
	bool done;
	int err;
	uint64_t nr_gets, nr_pages;
	struct ps_sess *next;
};

struct ps_server {
	struct ps_opts o;
	struct lp_images im;
	struct lp_pstree pt;
	struct ps_store store;
	struct lp_tls *tls;
	int epfd;
	int listen_fd;
	int sig_fd;
	struct ps_ev listen_ev, sig_ev;
	struct ps_sess *sessions;
	unsigned int nr_sessions, next_id;
	bool stop;
	int result; /* --single: how the session ended */
	uint64_t total_sessions, total_pages;
};

static void ps_usage(FILE *f)
{
	fprintf(f,
		"Usage: lazypages page-server -D DIR --lazy-pages [--address A] --port P [OPTIONS]\n\n"
		"Serve the lazy pages of a regular dump in DIR over CRIU's page-server protocol,\n"
		"to `criu lazy-pages --page-server` or `lazypages daemon --page-server`.\n"
		"Keeps serving sessions (several at once) until SIGTERM/SIGINT, unless --single.\n\n"
		"  -D, --images-dir DIR   checkpoint images (default: .)\n"
		"  -W, --work-dir DIR     log file and pidfile are relative to it (default: DIR)\n"
		"      --lazy-pages       serve pages to a lazy-pages daemon (required)\n"
		"      --address A        listen on this address only (default: all)\n"
		"      --port P           TCP port (0 or none: the kernel picks; it is logged)\n"
		"      --ps-header 24|32  header layout: 24 for CRIU 3.17.1..4.1.x (default),\n"
		"                         32 for CRIU 4.2 and later\n"
		"      --single           exit after one session, like criu page-server\n"
		"      --ps-socket FD     serve this connected socket instead (implies --single)\n"
		"      --max-sessions N   concurrent sessions; more are refused (default %d)\n"
		"      --status-fd N      write one \\0 byte to fd N once listening, then close it\n"
		"  -d, --daemon           detach once listening\n"
		"      --pidfile FILE     with -d: write the server's pid here\n"
		"  -o, --log-file FILE    log here instead of stderr (relative to the work dir)\n"
		"  -v[N], --verbosity N   log level 0..4; default 2\n" LP_TLS_USAGE
		"CRIU's other options (--shell-job, --timeout N, ...) are accepted and ignored.\n\n"
		"Exit status: 0 after SIGTERM/SIGINT (or, with --single, after a clean session),\n"
		"1 on errors, 2 on bad usage.\n",
		PS_MAX_SESSIONS);
}

enum {
	OPT_ADDRESS = 1000,
	OPT_PORT,
	OPT_LAZY,
	OPT_SINGLE,
	OPT_PS_SOCKET,
	OPT_PS_HEADER,
	OPT_MAX_SESSIONS,
};

static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct ps_opts *o)
{
	static const struct option opts[] = {
		LP_SVC_LONG_OPTIONS,
		{"address", required_argument, NULL, OPT_ADDRESS},
		{"port", required_argument, NULL, OPT_PORT},
		{"lazy-pages", no_argument, NULL, OPT_LAZY},
		{"single", no_argument, NULL, OPT_SINGLE},
		{"ps-socket", required_argument, NULL, OPT_PS_SOCKET},
		{"ps-header", required_argument, NULL, OPT_PS_HEADER},
		{"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
		{"help", no_argument, NULL, 'h'},
		LP_TLS_LONG_OPTIONS,
		LP_CRIU_IGNORED_LONG_OPTIONS,
		{},
	};
	int c, idx, v;

	memset(o, 0, sizeof(*o));
	lp_svc_opts_init(&o->svc);
	o->ps_socket = -1;
	o->hdr_size = PS_HDR_DEFAULT;
	o->max_sessions = PS_MAX_SESSIONS;
	optind = 1;
	for (idx = -1; (c = getopt_long(argc, argv, LP_SVC_SHORT_OPTIONS "h" LP_CRIU_IGNORED_SHORT,
					opts, &idx)) != -1;
	     idx = -1) {
		int taken = lp_svc_opt(&o->svc, c, optarg);

		if (taken < 0)
			return taken;
		if (taken || lp_tls_opt(&o->tls, c, optarg) || lp_svc_ignore(&o->svc, opts, idx, c))
			continue;
		switch (c) {
		case OPT_ADDRESS:
			o->address = optarg;
			break;
		case OPT_PORT:
			if (parse_int(optarg, 0, 65535, &o->port)) {
				fprintf(stderr, "lazypages: --port wants 0..65535\n");
				return -EINVAL;
			}
			break;
		case OPT_LAZY:
			o->lazy = true;
			break;
		case OPT_SINGLE:
			o->single = true;
			break;
		case OPT_PS_SOCKET:
			if (parse_int(optarg, 0, INT32_MAX, &o->ps_socket)) {
				fprintf(stderr, "lazypages: --ps-socket wants a file descriptor\n");
				return -EINVAL;
			}
			o->single = true;
			break;
		case OPT_PS_HEADER:
			o->hdr_size = ps_parse_hdr_size(optarg);
			if (o->hdr_size < 0) {
				fprintf(stderr,
					"lazypages: --ps-header wants 24 (CRIU 3.17.1..4.1.x) "
					"or 32 (CRIU 4.2+), not '%s'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_MAX_SESSIONS:
			if (parse_int(optarg, 1, 65536, &v)) {
				fprintf(stderr, "lazypages: --max-sessions wants 1..65536\n");
				return -EINVAL;
			}
			o->max_sessions = v;
			break;
		case 'h':
			ps_usage(stdout);
			exit(0);
		default:
			ps_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lazypages: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->lazy) {
		fprintf(stderr, "lazypages: page-server only serves lazy pages: pass --lazy-pages "
				"(receiving a dump, criu page-server without it, is not "
				"supported)\n");
		return -EINVAL;
	}
	lp_svc_opts_finish(&o->svc);
	return 0;
}

/* ---- sessions ------------------------------------------------------------------------- */

static void sess_set_interest(struct ps_sess *s)
{
	struct epoll_event ev = {.data.ptr = &s->ev};
	uint32_t want = 0;

	if (s->done)
		return;
	if (!s->c.handshaken) {
		want = lp_conn_want_write(&s->c) ? EPOLLOUT : EPOLLIN;
	} else {
		if (!s->force && !s->peer_eof && s->qn < PS_OUTQ)
			want |= EPOLLIN;
		if (s->qn)
			want |= EPOLLOUT;
	}
	if (want == s->interest)
		return;
	ev.events = want;
	if (epoll_ctl(s->srv->epfd, EPOLL_CTL_MOD, s->c.fd, &ev))
		pr_perror("%s: epoll_ctl", s->name);
	s->interest = want;
}

static void sess_end(struct ps_sess *s, int err, const char *why)
{
	if (s->done)
		return;
	s->done = true;
	s->err = err;
	epoll_ctl(s->srv->epfd, EPOLL_CTL_DEL, s->c.fd, NULL);
	if (err)
		pr_err("%s: session dropped after %" PRIu64 " GETs, %" PRIu64 " pages: %s", s->name,
		       s->nr_gets, s->nr_pages, why);
	else
		pr_info("%s: session ended after %" PRIu64 " GETs, %" PRIu64 " pages: %s", s->name,
			s->nr_gets, s->nr_pages, why);
	lp_conn_close(&s->c, err == 0);
	s->srv->total_pages += s->nr_pages;
}

static void sess_push(struct ps_sess *s, const struct ps_answer *a)
{
	struct ps_out *o = &s->q[(s->qhead + s->qn) % PS_OUTQ];

	memset(o, 0, sizeof(*o));
	if (a->act == PS_ACT_PAGES) {
		/* nr_pages <= the request's, so it fits the layout the request came in */
		o->hdr_len = ps_encode(s->srv->o.hdr_size, &a->hdr, o->hdr);
		o->data = a->data;
		o->len = a->len;
		s->nr_gets++;
		s->nr_pages += a->hdr.nr_pages;
	} else {
		int32_t status = 0;

		memcpy(o->hdr, &status, sizeof(status));
		o->hdr_len = sizeof(status);
	}
	s->qn++;
}

/* Answer the complete headers in the input buffer while the queue has room. */
static int sess_parse(struct ps_sess *s)
{
	const size_t hs = s->srv->o.hdr_size;
	size_t pos = 0;
	int ret = 0;

	while (s->in_len - pos >= hs && s->qn < PS_OUTQ && !s->force) {
		struct ps_iov req;
		struct ps_answer a;

		if (s->closing) {
			pr_err("%s: %zu bytes after PS_IOV_CLOSE (expected the peer to close)",
			       s->name, s->in_len - pos);
			ret = -EPROTO;
			break;
		}
		ps_decode(hs, s->in + pos, &req);
		pos += hs;
		ret = ps_store_answer(&s->srv->store, &req, s->name, &a);
		if (ret)
			break;
		sess_push(s, &a);
		if (a.act == PS_ACT_CLOSE)
			s->closing = true;
		else if (a.act == PS_ACT_FORCE_CLOSE)
			s->force = true;
	}
	if (!ret && s->closing && s->in_len > pos) {
		pr_err("%s: %zu bytes after PS_IOV_CLOSE (expected the peer to close)", s->name,
		       s->in_len - pos);
		ret = -EPROTO;
	}
	memmove(s->in, s->in + pos, s->in_len - pos);
	s->in_len -= pos;
	return ret;
}

/* Read and answer requests: bytes read (0 when blocked; *EOF at the end of stream) or -errno. */
static ssize_t sess_input(struct ps_sess *s, bool *eof)
{
	ssize_t total = 0;
	int ret;

	/* Requests left over when the reply queue was full come first. */
	ret = sess_parse(s);
	if (ret)
		return ret;
	while (!s->force && s->qn < PS_OUTQ && s->in_len < sizeof(s->in)) {
		ssize_t n = lp_conn_recv(&s->c, s->in + s->in_len, sizeof(s->in) - s->in_len);

		if (n == -EAGAIN)
			break;
		if (n < 0) {
			pr_err("%s: receive: %s", s->name, lp_conn_strerror(&s->c, n));
			return n;
		}
		if (n == 0) {
			*eof = true;
			break;
		}
		s->in_len += n;
		total += n;
		ret = sess_parse(s);
		if (ret)
			return ret;
	}
	return total;
}

/* Send queued replies. Returns bytes sent (0 when blocked) or -errno. */
static int64_t sess_flush(struct ps_sess *s, uint64_t budget)
{
	uint64_t sent = 0;

	while (s->qn && sent < budget) {
		struct iovec iov[PS_IOV_BATCH];
		int n = 0;
		ssize_t r;

		for (unsigned int i = 0; i < s->qn && n + 2 <= PS_IOV_BATCH; i++) {
			struct ps_out *o = &s->q[(s->qhead + i) % PS_OUTQ];

			if (o->off < o->hdr_len) {
				iov[n].iov_base = o->hdr + o->off;
				iov[n++].iov_len = o->hdr_len - o->off;
				if (o->len)
					iov[n++] = (struct iovec){(void *)o->data, o->len};
			} else {
				uint64_t d = o->off - o->hdr_len;

				iov[n++] = (struct iovec){(void *)(o->data + d), o->len - d};
			}
		}
		r = lp_conn_sendv(&s->c, iov, n);
		if (r == -EAGAIN)
			break;
		if (r < 0) {
			pr_err("%s: send: %s (the peer went away mid-reply?)", s->name,
			       lp_conn_strerror(&s->c, r));
			return r;
		}
		sent += r;
		while (r > 0) {
			struct ps_out *o = &s->q[s->qhead];
			uint64_t left = o->hdr_len + o->len - o->off;

			if ((uint64_t)r < left) {
				o->off += r;
				break;
			}
			r -= left;
			s->qhead = (s->qhead + 1) % PS_OUTQ;
			s->qn--;
		}
	}
	return sent;
}

static bool sess_end_of_input(struct ps_sess *s)
{
	if (s->in_len) {
		char why[96];

		snprintf(why, sizeof(why),
			 "peer closed the connection mid-header (%zu of %d bytes)", s->in_len,
			 s->srv->o.hdr_size);
		sess_end(s, -EPIPE, why);
		return true;
	}
	if (s->closing) {
		sess_end(s, 0, "closed after PS_IOV_CLOSE");
		return true;
	}
	if (!s->qn) {
		sess_end(s, 0,
			 lp_conn_unclean_eof(&s->c)
				 ? "peer closed without PS_IOV_CLOSE or TLS close_notify"
				 : "peer closed without PS_IOV_CLOSE");
		return true;
	}
	/* Half-closed: it may still read the replies it asked for. */
	s->peer_eof = true;
	return false;
}

/* Make whatever progress the socket allows, within this turn's budget. */
static void sess_run(struct ps_sess *s)
{
	uint64_t budget = PS_BUDGET;

	s->again = false;
	if (!s->c.handshaken) {
		int ret = lp_conn_handshake(&s->c);

		if (ret == -EAGAIN) {
			sess_set_interest(s);
			return;
		}
		if (ret) {
			sess_end(s, ret, "TLS handshake failed");
			return;
		}
	}
	for (;;) {
		int64_t out = sess_flush(s, budget);
		ssize_t in = 0;
		bool eof = false;

		if (out < 0) {
			sess_end(s, (int)out, "cannot send");
			return;
		}
		budget -= (uint64_t)out < budget ? (uint64_t)out : budget;
		if (!s->qn && s->force) {
			sess_end(s, 0, "FORCE_CLOSE");
			return;
		}
		if (!s->qn && s->peer_eof) {
			sess_end(s, 0, "peer closed without PS_IOV_CLOSE, replies sent");
			return;
		}
		if (!s->peer_eof) {
			in = sess_input(s, &eof);
			if (in < 0) {
				sess_end(s, (int)in, "bad request or receive error");
				return;
			}
			if (eof && sess_end_of_input(s))
				return;
		}
		if (!budget) {
			s->again = true; /* let the other sessions run first */
			break;
		}
		if (!out && !in && !eof)
			break;
	}
	/* Decrypted requests GnuTLS holds do not wake epoll: come back for them. */
	if (!s->force && !s->peer_eof && s->qn < PS_OUTQ && lp_conn_pending(&s->c))
		s->again = true;
	sess_set_interest(s);
}

static void sess_free(struct ps_sess *s)
{
	if (!s->done)
		sess_end(s, 0, "server exiting");
	free(s);
}

static int sess_add(struct ps_server *srv, struct lp_conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct ps_sess *s = calloc(1, sizeof(*s));

	if (!s) {
		pr_err("%s: out of memory for a session", c->peer);
		lp_conn_close(c, false);
		return -ENOMEM;
	}
	s->srv = srv;
	s->c = *c;
	s->id = ++srv->next_id;
	snprintf(s->name, sizeof(s->name), "session %u (%s)", s->id, c->peer);
	s->ev.kind = PS_EV_SESS;
	s->ev.obj = s;
	s->interest = EPOLLIN;
	ev.data.ptr = &s->ev;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, c->fd, &ev)) {
		int ret = -errno;

		pr_perror("%s: epoll_ctl", s->name);
		lp_conn_close(&s->c, false);
		free(s);
		return ret;
	}
	s->next = srv->sessions;
	srv->sessions = s;
	srv->nr_sessions++;
	srv->total_sessions++;
	pr_info("%s: connected%s", s->name, c->tls ? ", TLS handshake" : "");
	sess_run(s);
	return 0;
}

/* ---- the server ----------------------------------------------------------------------- */

static void stop_listening(struct ps_server *srv)
{
	if (srv->listen_fd < 0)
		return;
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->listen_fd, NULL);
	close(srv->listen_fd);
	srv->listen_fd = -1;
}

static void accept_all(struct ps_server *srv)
{
	for (;;) {
		struct lp_conn c;
		int ret = lp_conn_accept(&c, srv->listen_fd, srv->tls);

		if (ret == -EAGAIN)
			return;
		if (ret) {
			/* EMFILE and friends: keep the sessions we have */
			pr_err("accept: %s", strerror(-ret));
			return;
		}
		if (srv->nr_sessions >= srv->o.max_sessions) {
			pr_warn("%s: refused: %u sessions already (--max-sessions)", c.peer,
				srv->nr_sessions);
			lp_conn_close(&c, false);
			continue;
		}
		sess_add(srv, &c);
		if (srv->o.single) {
			/* criu page-server serves one connection */
			stop_listening(srv);
			return;
		}
	}
}

/* Free the sessions that ended; with --single, the first one ends the server. */
static void reap(struct ps_server *srv)
{
	for (struct ps_sess **pp = &srv->sessions; *pp;) {
		struct ps_sess *s = *pp;

		if (!s->done) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		srv->nr_sessions--;
		if (srv->o.single) {
			srv->result = s->err;
			srv->stop = true;
		}
		free(s);
	}
}

static int setup_signals(struct ps_server *srv)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->sig_ev};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL)) {
		pr_perror("sigprocmask");
		return -errno;
	}
	srv->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (srv->sig_fd < 0) {
		pr_perror("signalfd");
		return -errno;
	}
	srv->sig_ev.kind = PS_EV_SIGNAL;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->sig_fd, &ev)) {
		pr_perror("epoll_ctl(signalfd)");
		return -errno;
	}
	return 0;
}

static void on_signal(struct ps_server *srv)
{
	struct signalfd_siginfo si;

	while (read(srv->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		pr_info("signal %u (%s): stopping with %u session(s) open", si.ssi_signo,
			strsignal(si.ssi_signo), srv->nr_sessions);
		srv->stop = true;
	}
}

static int serve(struct ps_server *srv)
{
	struct epoll_event evs[64];

	for (;;) {
		bool again = false;
		int n;

		reap(srv); /* a session may end before the first wait (--ps-socket) */
		if (srv->stop)
			break;
		for (struct ps_sess *s = srv->sessions; s; s = s->next)
			again |= s->again && !s->done;
		n = epoll_wait(srv->epfd, evs, 64, again ? 0 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_perror("epoll_wait");
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct ps_ev *ev = evs[i].data.ptr;

			switch (ev->kind) {
			case PS_EV_LISTEN:
				accept_all(srv);
				break;
			case PS_EV_SIGNAL:
				on_signal(srv);
				break;
			case PS_EV_SESS:
				if (!((struct ps_sess *)ev->obj)->done)
					sess_run(ev->obj);
				break;
			}
		}
		if (again) {
			for (struct ps_sess *s = srv->sessions; s; s = s->next)
				if (s->again && !s->done)
					sess_run(s);
		}
	}
	return 0;
}

static int start(struct ps_server *srv)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->listen_ev};
	int ret, port;

	if (srv->o.ps_socket >= 0) {
		struct lp_conn c;

		ret = lp_conn_adopt(&c, srv->o.ps_socket, srv->tls);
		if (ret) {
			pr_err("--ps-socket %d: %s", srv->o.ps_socket, strerror(-ret));
			return ret;
		}
		return sess_add(srv, &c);
	}
	ret = lp_conn_listen(srv->o.address, srv->o.port, srv->o.single ? 1 : PS_BACKLOG, &port);
	if (ret < 0)
		return ret;
	srv->listen_fd = ret;
	srv->listen_ev.kind = PS_EV_LISTEN;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev)) {
		pr_perror("epoll_ctl(listen)");
		return -errno;
	}
	if (!srv->o.port)
		pr_msg("Using %d port", port);
	pr_info("listening on %s port %d, %d-byte headers%s%s",
		srv->o.address ? srv->o.address : "*", port, srv->o.hdr_size,
		srv->tls ? ", TLS" : "", srv->o.single ? ", one session" : "");
	return 0;
}

int cmd_page_server(int argc, char **argv)
{
	struct ps_server srv = {.epfd = -1, .listen_fd = -1, .sig_fd = -1};
	int ret;

	if (parse_opts(argc, argv, &srv.o))
		return 2;
	if (lp_svc_enter(&srv.o.svc) || lp_images_open(&srv.im, srv.o.svc.images_dir)) {
		log_close();
		return 1;
	}
	ret = lp_pstree_load(&srv.im, &srv.pt);
	if (!ret)
		ret = ps_store_load(&srv.store, &srv.im, &srv.pt);
	if (ret)
		goto out;
	if (srv.o.tls.enabled) {
		ret = lp_tls_new(&srv.tls, &srv.o.tls, true, srv.o.address);
		if (ret)
			goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	srv.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv.epfd < 0) {
		ret = -errno;
		pr_perror("epoll_create1");
		goto out;
	}
	ret = start(&srv);
	if (!ret && srv.o.svc.daemonize)
		ret = lp_detach(srv.o.svc.pidfile, srv.o.svc.log_file != NULL);
	/* After the fork: a signalfd wakes epoll only in the process that registered it. */
	if (!ret)
		ret = setup_signals(&srv);
	if (ret)
		goto out;
	lp_signal_ready(&srv.o.svc.status_fd);
	pr_info("serving %s: %zu live task(s), %" PRIu64 " pages", srv.im.path, srv.store.nr,
		srv.store.nr_pages);
	ret = serve(&srv);
	if (!ret && srv.o.single)
		ret = srv.result;
	pr_info("%" PRIu64 " session(s), %" PRIu64 " pages served", srv.total_sessions,
		srv.total_pages);
out:
	while (srv.sessions) {
		struct ps_sess *s = srv.sessions;

		srv.sessions = s->next;
		sess_free(s);
	}
	stop_listening(&srv);
	if (srv.sig_fd >= 0)
		close(srv.sig_fd);
	if (srv.epfd >= 0)
		close(srv.epfd);
	lp_tls_free(srv.tls);
	ps_store_free(&srv.store);
	lp_pstree_free(&srv.pt);
	lp_images_close(&srv.im);
	log_close();
	return ret ? 1 : 0;
}
