// SPDX-License-Identifier: MIT
/*
 * lazypages daemon (alias: lazy-pages): a drop-in for `criu lazy-pages`.
 *
 * Listens on <work-dir>/lazy-pages.socket, takes one `criu restore --lazy-pages`
 * connection, serves every uffd as it arrives and fills the rest in the background
 * after restore finishes. Exits 0 once every page is in place (or its process gone).
 */
#define LOG_PREFIX "daemon: "
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "criu-opts.h"
#include "daemon.h"
#include "log.h"
#include "service.h"
#include "session.h"
#include "ps-proto.h"
#include "tls.h"
#include "uffd-abi.h"
#include "uffd.h"

static void daemon_usage(FILE *f)
{
	fprintf(f,
		"Usage: lazypages daemon [OPTIONS]      (also: lazypages lazy-pages)\n\n"
		"Serve the lazy pages of a `criu restore --lazy-pages` from checkpoint images.\n"
		"Start it first, then run criu restore with the same work dir.\n\n"
		"  -D, --images-dir DIR   checkpoint images (default: .)\n"
		"  -W, --work-dir DIR     where lazy-pages.socket is created (default: images dir)\n"
		"      --status-fd N      write one \\0 byte to fd N once listening, then close it\n"
		"  -d, --daemon           detach once listening\n"
		"      --pidfile FILE     with -d: write the daemon's pid here\n"
		"  -o, --log-file FILE    log here instead of stderr (relative to the work dir)\n"
		"  -v[N], --verbosity N   log level 0 (results only) .. 4 (debug); default 2\n"
		"      --stats-file FILE  write the summary as JSON at exit\n"
		"      --fault-around N   pages installed per fault, at most (default 1)\n"
		"      --fill-chunk BYTES largest background copy (default 4M; K/M/G suffixes)\n"
		"      --fill-threads N   background fill threads (default: one per CPU, at most 8;\n"
		"                         0: the fault loop fills between faults)\n"
		"      --restores N       serve N restores of this checkpoint, each as it connects\n"
		"                         (0: until killed); --stats-file F becomes F.1, F.2, ...\n"
		"      --fill-early       start the background fill as soon as restore has\n"
		"                         registered a process's memory, not at its finish word:\n"
		"                         a head start for trees of many processes, at some cost\n"
		"                         to restore's own time (64 KiB copies until the finish)\n"
		"      --on-demand        serve only what the processes touch: no background fill;\n"
		"                         exit when every lazy page is in or its process is gone\n"
		"      --record-ws FILE   write the pages the restore faulted, in order, to FILE\n"
		"      --prefetch FILE    install FILE's pages (from --record-ws) first, right after\n"
		"                         restore finishes, then serve faults and fill the rest\n"
		"      --busy-poll USEC   after activity, poll this long before the loop thread\n"
		"                         sleeps: a fault that follows soon is served without a\n"
		"                         wake-up (default 50; 0: off, and no fill thread spins\n"
		"                         to keep a CPU awake for random faults either)\n"
		"      --no-supervise     no supervisor: if the serving process dies, pages still\n"
		"                         missing become zero pages (criu lazy-pages behaviour)\n"
		"      --page-server      fetch pages from a page server (--address, --port):\n"
		"                         criu dump --lazy-pages, criu page-server --lazy-pages\n"
		"                         or lazypages page-server\n"
		"      --address A, --port P\n"
		"      --ps-header 24|32  page-server header: 24 for CRIU <= 4.1 (default), 32 for 4.2+\n"
		"      --ps-deadline SEC  a lost page server is reconnected to (faulting threads\n"
		"                         wait) for up to SEC seconds (default 60); past that the\n"
		"                         restored processes are killed, never left on zero pages\n"
		"      --ps-stall SEC     replies due and nothing received for SEC seconds counts as\n"
		"                         a lost connection (default 10; 0: never)\n" LP_TLS_USAGE
		"CRIU's other options (--shell-job, --timeout N, ...) are accepted and ignored.\n\n"
		"Exit status: 0 when every lazy page was delivered (or its process exited),\n"
		"1 on a fatal error (the message names the pid, address and cause), 2 on bad usage.\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	}
	if (*end || !v)
		return -EINVAL;
	*out = v;
	return 0;
}

enum {
	OPT_STATS_FILE = 1000,
	OPT_PAGE_SERVER,
	OPT_ADDRESS,
	OPT_PORT,
	OPT_FAULT_AROUND,
	OPT_FILL_CHUNK,
	OPT_INJECT_BUG,
	OPT_FILL_THREADS,
	OPT_NO_SUPERVISE,
	OPT_PS_HEADER,
	OPT_ON_DEMAND,
	OPT_FILL_EARLY,
	OPT_RESTORES,
	OPT_RECORD_WS,
	OPT_PREFETCH,
	OPT_PS_DEADLINE,
	OPT_PS_STALL,
	OPT_BUSY_POLL,
};

static int parse_opts(int argc, char **argv, struct daemon_opts *o)
{
	static const struct option opts[] = {
		LP_SVC_LONG_OPTIONS,
		{"stats-file", required_argument, NULL, OPT_STATS_FILE},
		{"page-server", no_argument, NULL, OPT_PAGE_SERVER},
		{"address", required_argument, NULL, OPT_ADDRESS},
		{"port", required_argument, NULL, OPT_PORT},
		{"fault-around", required_argument, NULL, OPT_FAULT_AROUND},
		{"fill-chunk", required_argument, NULL, OPT_FILL_CHUNK},
		{"inject-bug", required_argument, NULL, OPT_INJECT_BUG},
		{"fill-threads", required_argument, NULL, OPT_FILL_THREADS},
		{"ps-header", required_argument, NULL, OPT_PS_HEADER},
		{"ps-deadline", required_argument, NULL, OPT_PS_DEADLINE},
		{"ps-stall", required_argument, NULL, OPT_PS_STALL},
		{"busy-poll", required_argument, NULL, OPT_BUSY_POLL},
		LP_TLS_LONG_OPTIONS,
		{"no-supervise", no_argument, NULL, OPT_NO_SUPERVISE},
		{"on-demand", no_argument, NULL, OPT_ON_DEMAND},
		{"fill-early", no_argument, NULL, OPT_FILL_EARLY},
		{"restores", required_argument, NULL, OPT_RESTORES},
		{"record-ws", required_argument, NULL, OPT_RECORD_WS},
		{"prefetch", required_argument, NULL, OPT_PREFETCH},
		{"help", no_argument, NULL, 'h'},
		/* CRIU options that mean nothing to the lazy-pages daemon */
		{"lazy-pages", no_argument, NULL, LP_OPT_CRIU_IGNORED},
		LP_CRIU_IGNORED_LONG_OPTIONS,
		{},
	};
	int c, idx;

	memset(o, 0, sizeof(*o));
	lp_svc_opts_init(&o->svc);
	o->cfg.fill_chunk_min = 64 << 10;
	o->cfg.fill_chunk_max = 4 << 20;
	o->cfg.fault_around = 1;
	o->ps_hdr_size = 24;
	o->ps_deadline = 60;
	o->ps_stall = 10;
	o->busy_poll_us = 50;
	o->supervise = true;
	o->restores = 1;
	{
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		/*
		 * One per CPU: they run at nice 19, so the loop thread and the restored
		 * processes preempt them, and with faults served beside them (not
		 * between their chunks) one fewer leaves a CPU idle (docs/daemon.md).
		 */
		o->cfg.fill_threads = n > 1 ? (n > 8 ? 8 : n) : 1;
	}
	optind = 1;
	for (idx = -1; (c = getopt_long(argc, argv, LP_SVC_SHORT_OPTIONS "h" LP_CRIU_IGNORED_SHORT,
					opts, &idx)) != -1;
	     idx = -1) {
		int taken = lp_svc_opt(&o->svc, c, optarg);

		if (taken < 0)
			return taken;
		if (taken || lp_svc_ignore(&o->svc, opts, idx, c))
			continue;
		switch (c) {
		case OPT_STATS_FILE:
			o->stats_file = optarg;
			break;
		case OPT_PAGE_SERVER:
			o->page_server = true;
			break;
		case OPT_ADDRESS:
			o->address = optarg;
			break;
		case OPT_PORT:
			o->port = atoi(optarg);
			break;
		case OPT_FAULT_AROUND:
			o->cfg.fault_around = atoi(optarg);
			if (o->cfg.fault_around < 1 || o->cfg.fault_around > 4096) {
				fprintf(stderr, "lazypages: --fault-around wants 1..4096 pages\n");
				return -EINVAL;
			}
			break;
		case OPT_FILL_CHUNK:
			if (parse_size(optarg, &o->cfg.fill_chunk_max) ||
			    o->cfg.fill_chunk_max < 4096) {
				fprintf(stderr, "lazypages: --fill-chunk wants a size >= 4K\n");
				return -EINVAL;
			}
			if (o->cfg.fill_chunk_min > o->cfg.fill_chunk_max)
				o->cfg.fill_chunk_min = o->cfg.fill_chunk_max;
			break;
		case OPT_RESTORES:
			o->restores = atoi(optarg);
			break;
		case OPT_FILL_EARLY:
			o->cfg.fill_early = true;
			break;
		case OPT_ON_DEMAND:
			o->cfg.on_demand = true;
			break;
		case OPT_RECORD_WS:
			o->cfg.record_ws = optarg;
			break;
		case OPT_PREFETCH:
			o->prefetch_file = optarg;
			break;
		case OPT_PS_HEADER:
			o->ps_hdr_size = ps_parse_hdr_size(optarg);
			if (o->ps_hdr_size <= 0) {
				fprintf(stderr,
					"lazypages: --ps-header wants 24 (CRIU <= 4.1) or 32 "
					"(CRIU >= 4.2)\n");
				return -EINVAL;
			}
			break;
		case OPT_PS_DEADLINE:
		case OPT_PS_STALL: {
			char *end;
			double v = strtod(optarg, &end);

			if (end == optarg || *end || v < 0 || v > 86400) {
				fprintf(stderr,
					"lazypages: --%s wants seconds (0..86400), not '%s'\n",
					opts[idx].name, optarg);
				return -EINVAL;
			}
			*(c == OPT_PS_DEADLINE ? &o->ps_deadline : &o->ps_stall) = v;
			break;
		}
		case OPT_BUSY_POLL:
			o->busy_poll_us = atoi(optarg);
			if (o->busy_poll_us < 0 || o->busy_poll_us > 100000) {
				fprintf(stderr, "lazypages: --busy-poll wants 0..100000 µs\n");
				return -EINVAL;
			}
			break;
		case OPT_NO_SUPERVISE:
			o->supervise = false;
			break;
		case OPT_FILL_THREADS:
			o->cfg.fill_threads = atoi(optarg);
			if (o->cfg.fill_threads > 256) {
				fprintf(stderr, "lazypages: --fill-threads wants 0..256\n");
				return -EINVAL;
			}
			break;
		case OPT_INJECT_BUG:
			/* Test-only: break the wake protocol so the stress test must notice. */
			if (!strcmp(optarg, "dontwake")) {
				o->cfg.inject |= LP_FILL_BUG_DONTWAKE | LP_FILL_BUG_NO_EEXIST_WAKE;
			} else {
				fprintf(stderr, "lazypages: --inject-bug knows only 'dontwake'\n");
				return -EINVAL;
			}
			break;
		case 'h':
			daemon_usage(stdout);
			exit(0);
		default:
			if (lp_tls_opt(&o->tls, c, optarg))
				break;
			daemon_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lazypages: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	lp_svc_opts_finish(&o->svc);
	return 0;
}

static int listen_socket(struct lp_daemon *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(LP_SOCKET_NAME);
	int fd;

	memcpy(sa.sun_path, LP_SOCKET_NAME, strlen(LP_SOCKET_NAME));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		pr_perror("socket");
		return -errno;
	}
	unlink(LP_SOCKET_NAME);
	if (bind(fd, (struct sockaddr *)&sa, len) || listen(fd, 10)) {
		int e = -errno;

		pr_err("cannot listen on %s/%s: %s", d->o.svc.work_dir, LP_SOCKET_NAME,
		       strerror(-e));
		close(fd);
		return e;
	}
	d->listen_fd = fd;
	pr_info("listening on %s/%s", d->o.svc.work_dir, LP_SOCKET_NAME);
	return 0;
}

#include "proc.h"
#include "pslink.h"

/* Wait for criu restore. One restore per daemon, as with criu lazy-pages. */
static int accept_restore(struct lp_daemon *d)
{
	int conn;

	do
		conn = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	while (conn < 0 && errno == EINTR);
	if (conn < 0) {
		pr_perror("accept on %s/%s", d->o.svc.work_dir, LP_SOCKET_NAME);
		return -errno;
	}
	close(d->listen_fd);
	d->listen_fd = -1;
	pr_info("restore connected");
	return conn;
}

static int serve(struct lp_daemon *d)
{
	struct epoll_event evs[32];
	struct lp_session *s = &d->sess;
	double busy_until = 0;

	for (;;) {
		bool work = lp_session_has_work(s);
		bool probing = s->cfg->on_demand && s->finished;
		int tmo = work ? 0 : s->prefetching ? 1 : probing ? 200 : -1;
		int ltmo = lp_pslink_timeout_ms(&d->link);
		int n;

		if (ltmo >= 0 && (tmo < 0 || ltmo < tmo))
			tmo = ltmo;
		/*
		 * Busy polling: right after a fault, the next one tends to follow within
		 * microseconds. Polling for --busy-poll µs spares it the wake-up of a
		 * sleeping loop thread, the largest part of a fault's round trip.
		 */
		if (tmo != 0 && d->o.busy_poll_us && lp_now() < busy_until)
			tmo = 0;
		n = epoll_wait(d->epfd, evs, 32, tmo);
		if (n > 0 && d->o.busy_poll_us)
			busy_until = lp_now() + d->o.busy_poll_us / 1e6;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_perror("epoll_wait");
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct lp_ev *ev = evs[i].data.ptr;
			int ret;

			switch (ev->kind) {
			case LP_EV_LISTEN:
				break;
			case LP_EV_CONN:
				lp_session_conn_ready(ev->obj, evs[i].events);
				break;
			case LP_EV_UFFD:
				lp_proc_uffd_ready(ev->obj, evs[i].events);
				break;
			case LP_EV_WAKE:
				lp_session_wake_ready(ev->obj);
				break;
			case LP_EV_REMOTE:
				ret = lp_pslink_ready(&d->link, evs[i].events);
				if (ret)
					return ret;
				break;
			}
			if (s->error)
				return s->error;
		}
		if (lp_session_has_work(s))
			lp_session_work(s);
		if (probing && lp_now() - s->last_probe > 0.2)
			lp_session_probe(s);
		if (s->error)
			return s->error;
		{
			int ret = lp_pslink_tick(&d->link);

			if (ret)
				return ret;
		}
		if (lp_session_done(s)) {
			if (!s->st.t_resident)
				s->st.t_resident = lp_now();
			return 0;
		}
	}
}

/*
 * The serving process: its own epoll loop over the restore socket CONN, the uffds and
 * the page server. SUP links it to a supervisor (or NULL): a restarted server first
 * replays the journal. Returns the exit code.
 */
int lp_daemon_serve(struct lp_daemon *d, int conn, struct lp_sup *sup)
{
	int ret;

	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0) {
		pr_perror("epoll_create1");
		close(conn);
		return 1;
	}
	ret = lp_session_init(&d->sess, &d->o.cfg, &d->im, &d->pt, d->epfd, conn);
	if (ret) {
		close(conn);
		close(d->epfd);
		return 1;
	}
	d->have_session = true;
	d->sess.sup = sup;
	ret = 0;
	if (d->o.page_server) {
		d->link.ro.address = d->o.address;
		d->link.ro.port = d->o.port;
		d->link.ro.hdr_size = d->o.ps_hdr_size;
		d->link.ro.tls = d->o.tls;
		d->link.deadline_s = d->o.ps_deadline;
		d->link.stall_s = d->o.ps_stall;
		ret = lp_pslink_open(&d->link, &d->sess, d->epfd);
	}
	if (!ret && sup)
		ret = lp_session_replay(&d->sess);
	if (!ret)
		ret = serve(d);
	{
		int r2 = lp_pslink_close(&d->link);

		if (!ret)
			ret = r2 > 0 ? 0 : r2;
	}
	/* Workers finish and count their last chunk before anything is reported. */
	lp_session_stop_workers(&d->sess);
	if (ret)
		lp_session_abandon(&d->sess, ret);
	lp_stats_print(&d->sess.st, LOG_MSG);
	if (d->o.stats_file)
		lp_stats_write_json(&d->sess.st, d->o.stats_file);
	if (ret)
		pr_err("lazy restore failed: %s",
		       ret == -EHOSTDOWN ? "the page server stayed unreachable" : strerror(-ret));
	lp_session_fini(&d->sess);
	d->have_session = false;
	close(d->epfd);
	d->epfd = -1;
	return ret ? 1 : 0;
}

static int serve_one(struct lp_daemon *d, int conn)
{
	int ret = d->o.supervise ? lp_supervise(d, conn) : lp_daemon_serve(d, conn, NULL);

	return ret ? -EIO : 0; /* the failure was logged with its reason */
}

/*
 * --restores N: serve N restores of the same checkpoint (0: until killed), each in its
 * own process as soon as it connects; they share the pages files through the page cache.
 * Exit 0 when every one of them succeeded.
 */
static int serve_many(struct lp_daemon *d)
{
	unsigned int started = 0, failed = 0, live = 0;
	const char *stats = d->o.stats_file;
	char stats_k[4096];

	while (!d->o.restores || started < d->o.restores) {
		int conn, st;
		pid_t pid;

		/* reap what has finished meanwhile */
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			live--;
			failed += !WIFEXITED(st) || WEXITSTATUS(st);
		}
		do
			conn = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		while (conn < 0 && errno == EINTR);
		if (conn < 0) {
			pr_perror("accept on %s/%s", d->o.svc.work_dir, LP_SOCKET_NAME);
			break;
		}
		started++;
		pr_info("restore %u connected", started);
		pid = fork();
		if (pid < 0) {
			pr_perror("fork for restore %u", started);
			close(conn);
			failed++;
			continue;
		}
		if (pid == 0) {
			close(d->listen_fd);
			d->listen_fd = -1;
			if (stats) {
				snprintf(stats_k, sizeof(stats_k), "%s.%u", stats, started);
				d->o.stats_file = stats_k;
			}
			_exit(serve_one(d, conn) ? 1 : 0);
		}
		close(conn);
		live++;
	}
	while (live) {
		int st;

		if (waitpid(-1, &st, 0) < 0)
			break;
		live--;
		failed += !WIFEXITED(st) || WEXITSTATUS(st);
	}
	pr_msg("served %u restore%s, %u failed", started, started == 1 ? "" : "s", failed);
	return failed ? -EIO : 0;
}

int cmd_daemon(int argc, char **argv)
{
	struct lp_daemon d = {.epfd = -1, .listen_fd = -1};
	int ret;

	if (parse_opts(argc, argv, &d.o))
		return 2;
	if (d.o.page_server && (!d.o.address || d.o.port <= 0)) {
		pr_err("--page-server needs --address and --port");
		return 2;
	}
	d.o.cfg.spin = d.o.busy_poll_us > 0;
	if (d.o.prefetch_file) {
		if (lp_ws_load(&d.prefetch, d.o.prefetch_file))
			return 1;
		d.o.cfg.prefetch = &d.prefetch;
	}
	/* As CRIU: the log opens in the work dir before the images are read, so it says
	 * what is wrong with them. */
	if (lp_svc_enter(&d.o.svc) || lp_images_open(&d.im, d.o.svc.images_dir)) {
		lp_ws_free(&d.prefetch);
		log_close();
		return 1;
	}
	if (lp_pstree_load(&d.im, &d.pt)) {
		ret = -EINVAL;
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	ret = listen_socket(&d);
	if (ret)
		goto out;
	if (d.o.svc.daemonize) {
		ret = lp_detach(d.o.svc.pidfile, d.o.svc.log_file != NULL);
		if (ret)
			goto out;
	}
	lp_signal_ready(&d.o.svc.status_fd);
	pr_info("serving %s: %zu task%s in pstree.img", d.im.path, d.pt.nr,
		d.pt.nr == 1 ? "" : "s");
	if (d.o.restores != 1) {
		ret = serve_many(&d);
		goto out;
	}
	ret = accept_restore(&d);
	if (ret < 0)
		goto out;
	ret = serve_one(&d, ret);
out:
	if (d.listen_fd >= 0)
		close(d.listen_fd);
	lp_pstree_free(&d.pt);
	lp_images_close(&d.im);
	lp_ws_free(&d.prefetch);
	log_close();
	return ret ? 1 : 0;
}
