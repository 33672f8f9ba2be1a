// SPDX-License-Identifier: MIT
/* Detaching and readiness, as criu lazy-pages and criu page-server do them. */
#define LOG_PREFIX "service: "
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "service.h"

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
