/* SPDX-License-Identifier: MIT */
/* Sub-commands of the lazypages binary. Each returns the process exit code. */
#ifndef LP_CLI_H
#define LP_CLI_H

int cmd_show(int argc, char **argv);
int cmd_daemon(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_page_server(int argc, char **argv);

/* Parse -v / -vN / --verbosity N style values; returns the level. */
int cli_verbosity(const char *arg, int current);

#endif
