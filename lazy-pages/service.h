/* SPDX-License-Identifier: MIT */
/* What every long-running lazypages command does the CRIU way: -d, --pidfile, --status-fd. */
#ifndef LP_SERVICE_H
#define LP_SERVICE_H

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>

/* The options every long-running command takes, as CRIU's: -D -W -o -v -d --pidfile --status-fd. */
struct lp_svc_opts {
	const char *images_dir;
	const char *work_dir;
	const char *log_file;
	const char *pidfile;
	int status_fd; /* -1: none */
	bool daemonize;
	char ignored[256];	   /* CRIU options taken and ignored (criu-opts.h), for the log */
	char images_abs[PATH_MAX]; /* images_dir made absolute by lp_svc_enter() */
};

enum { LP_OPT_STATUS_FD = 900, LP_OPT_PIDFILE };

#define LP_SVC_SHORT_OPTIONS "D:W:do:v::"
#define LP_SVC_LONG_OPTIONS                                                                       \
	{"images-dir", required_argument, NULL, 'D'}, {"work-dir", required_argument, NULL, 'W'}, \
		{"status-fd", required_argument, NULL, LP_OPT_STATUS_FD},                         \
		{"daemon", no_argument, NULL, 'd'},                                               \
		{"pidfile", required_argument, NULL, LP_OPT_PIDFILE},                             \
		{"log-file", required_argument, NULL, 'o'},                                       \
	{                                                                                         \
		"verbosity", optional_argument, NULL, 'v'                                         \
	}

void lp_svc_opts_init(struct lp_svc_opts *o);
/*
 * Option C (from getopt_long) with ARG: 1 if it was one of these and was taken, 0 if it
 * is not one of them, -EINVAL for a bad value (said on stderr).
 */
int lp_svc_opt(struct lp_svc_opts *o, int c, const char *arg);
/*
 * Option C from getopt_long (LONGOPTS[IDX] its entry, IDX < 0 for a short one): if it is
 * one of CRIU's options that do not apply (criu-opts.h), remember its name for the log
 * (lp_svc_enter() names them) and return true.
 */
bool lp_svc_ignore(struct lp_svc_opts *o, const struct option *longopts, int idx, int c);
/* After parsing: -D defaults to ".", -W to the images dir. */
void lp_svc_opts_finish(struct lp_svc_opts *o);
/*
 * Start the CRIU way: make the images dir absolute, chdir to the work dir, open the log
 * there (-o), and name the ignored CRIU options in it. 0 or -errno (said on stderr).
 */
int lp_svc_enter(struct lp_svc_opts *o);

/*
 * -d: fork; the parent writes PIDFILE (if any) with the child's pid and exits 0; the
 * child starts a new session with stdin/stdout (and stderr unless KEEP_STDERR) on
 * /dev/null. Returns 0 in the child, -errno if the fork failed.
 */
int lp_detach(const char *pidfile, bool keep_stderr);
/* --status-fd: one \0 byte once listening, then close it (*fd becomes -1). */
void lp_signal_ready(int *fd);

#endif
