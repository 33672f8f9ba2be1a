// SPDX-License-Identifier: MIT
/* Detaching and readiness, as criu lazy-pages and criu page-server do them. */
#define LOG_PREFIX "service: "
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "criu-opts.h"
#include "log.h"
#include "service.h"

void lp_svc_opts_init(struct lp_svc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->status_fd = -1;
}

int lp_svc_opt(struct lp_svc_opts *o, int c, const char *arg)
{
	char *end;
	long v;

	switch (c) {
	case 'D':
		o->images_dir = arg;
		return 1;
	case 'W':
		o->work_dir = arg;
		return 1;
	case 'd':
		o->daemonize = true;
		return 1;
	case 'o':
		o->log_file = arg;
		return 1;
	case 'v':
		log_set_level(cli_verbosity(arg, log_get_level()));
		return 1;
	case LP_OPT_PIDFILE:
		o->pidfile = arg;
		return 1;
	case LP_OPT_STATUS_FD:
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno || end == arg || *end || v < 0 || v > INT_MAX) {
			fprintf(stderr,
				"lazypages: --status-fd wants a file descriptor, not '%s'\n", arg);
			return -EINVAL;
		}
		o->status_fd = (int)v;
		return 1;
	}
	return 0;
}

bool lp_svc_ignore(struct lp_svc_opts *o, const struct option *longopts, int idx, int c)
{
	char name[64];
	size_t len = strlen(o->ignored);

	if (c == LP_OPT_CRIU_IGNORED && idx >= 0)
		snprintf(name, sizeof(name), " --%s", longopts[idx].name);
	else if (c > 0 && c < 128 && c != ':' && strchr(LP_CRIU_IGNORED_SHORT, c))
		snprintf(name, sizeof(name), " -%c", c);
	else
		return false;
	if (strstr(o->ignored, name))
		return true;
	if (len + strlen(name) < sizeof(o->ignored) - 4)
		strcat(o->ignored, name);
	else if (!strstr(o->ignored, " ..."))
		strcat(o->ignored, " ...");
	return true;
}

void lp_svc_opts_finish(struct lp_svc_opts *o)
{
	if (!o->images_dir)
		o->images_dir = ".";
	if (!o->work_dir)
		o->work_dir = o->images_dir;
}

int lp_svc_enter(struct lp_svc_opts *o)
{
	int ret;

	/* After the chdir a relative -D would name another directory. */
	bool abs = realpath(o->images_dir, o->images_abs) != NULL;

	if (chdir(o->work_dir)) {
		ret = -errno;
		pr_perror("cannot use work dir %s", o->work_dir);
		return ret;
	}
	if (o->log_file) {
		ret = log_open_file(o->log_file);
		if (ret) {
			pr_err("cannot open log file %s (in %s): %s", o->log_file, o->work_dir,
			       strerror(-ret));
			return ret;
		}
	}
	if (o->ignored[0])
		pr_info("CRIU options that do not apply here, ignored:%s", o->ignored);
	/* One that cannot be resolved keeps its name, and opening it says why it fails. */
	if (abs)
		o->images_dir = o->images_abs;
	return 0;
}

int lp_detach(const char *pidfile, bool keep_stderr)
{
	pid_t pid = fork();
	int null;

	if (pid < 0) {
		pr_perror("fork");
		return -errno;
	}
	if (pid > 0) {
		if (pidfile) {
			FILE *f = fopen(pidfile, "w");

			if (!f || fprintf(f, "%d", pid) < 0 || fclose(f)) {
				pr_perror("cannot write pidfile %s", pidfile);
				kill(pid, SIGKILL);
				_exit(1);
			}
		}
		_exit(0);
	}
	setsid();
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		if (!keep_stderr)
			dup2(null, 2);
		if (null > 2)
			close(null);
	}
	return 0;
}

void lp_signal_ready(int *fd)
{
	char zero = 0;

	if (*fd < 0)
		return;
	if (write(*fd, &zero, 1) != 1)
		pr_perror("cannot write to --status-fd %d", *fd);
	close(*fd);
	*fd = -1;
}
