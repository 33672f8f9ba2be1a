/* SPDX-License-Identifier: MIT */
/* What every long-running lazypages command does the CRIU way: -d, --pidfile, --status-fd. */
#ifndef LP_SERVICE_H
#define LP_SERVICE_H

#include <stdbool.h>

/*
 * -d: fork; the parent writes PIDFILE (if any) with the child's pid and exits 0; the
 * child starts a new session with stdin/stdout (and stderr unless KEEP_STDERR) on
 * /dev/null. Returns 0 in the child, -errno if the fork failed.
 */
int lp_detach(const char *pidfile, bool keep_stderr);
/* --status-fd: one \0 byte once listening, then close it (*fd becomes -1). */
void lp_signal_ready(int *fd);

#endif
