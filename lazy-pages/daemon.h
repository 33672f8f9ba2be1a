/* SPDX-License-Identifier: MIT */
/* The lazy-pages daemon's process-level state, shared by the CLI and the supervisor. */
#ifndef LP_DAEMON_H
#define LP_DAEMON_H

#include <stdbool.h>

#include "image.h"
#include "pstree.h"
#include "pslink.h"
#include "service.h"
#include "session.h"
#include "tls.h"

struct daemon_opts {
	struct lp_svc_opts svc; /* -D -W -o -v -d --pidfile --status-fd */
	const char *stats_file;
	bool supervise;	       /* keep uffds in a supervisor and restart a dead server */
	unsigned int restores; /* restores to serve, each in its own process (0: no limit) */
	bool page_server;
	const char *address;
	int port;
	int ps_hdr_size;    /* page-server header: 24 (CRIU <= 4.1) or 32 (CRIU >= 4.2) */
	double ps_deadline; /* seconds to keep reconnecting to a lost page server */
	double ps_stall;    /* seconds of silence with replies due that count as a loss */
	int busy_poll_us;   /* keep polling this long after activity before sleeping */
	const char *prefetch_file;
	struct lp_tls_opts tls;
	struct lp_config cfg;
};

struct lp_daemon {
	struct daemon_opts o;
	struct lp_images im;
	struct lp_pstree pt;
	int epfd;
	int listen_fd;
	struct lp_session sess;
	bool have_session;
	struct lp_pslink link;
	struct lp_ws prefetch;
};

struct lp_sup;

/* Serve the restore on CONN in this process (SUP: link to a supervisor, or NULL). */
int lp_daemon_serve(struct lp_daemon *d, int conn, struct lp_sup *sup);
/* Run servers in child processes, holding every uffd, restarting any that dies. */
int lp_supervise(struct lp_daemon *d, int conn);

#endif
