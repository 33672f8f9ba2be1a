// SPDX-License-Identifier: MIT
/* lazypages: command dispatch. */
#define LOG_PREFIX "main: "
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

#ifndef LP_VERSION
#define LP_VERSION "0.1"
#endif

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{"show", cmd_show, "summarise a checkpoint directory (--json for machines)"},
	{"daemon", cmd_daemon, "serve a lazy restore from images (drop-in for criu lazy-pages)"},
	{"lazy-pages", cmd_daemon, "same as daemon, under CRIU's name"},
	{"check", cmd_check, "can this machine do lazy restore? (--json)"},
	{"page-server", cmd_page_server, "serve a checkpoint's lazy pages (criu page-server)"},
};

int cli_verbosity(const char *arg, int current)
{
	char *end;
	long v;

	if (!arg || !*arg)
		return current + 1;
	v = strtol(arg, &end, 10);
	if (*end) /* -vvv */
		return current + 1 + (int)strspn(arg, "v");
	return (int)v;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: lazypages COMMAND [OPTIONS]\n\n"
		   "Post-copy (lazy) restore of CRIU checkpoints on userfaultfd.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'lazypages COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("lazypages %s\n", LP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "lazypages: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
