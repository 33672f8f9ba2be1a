/* SPDX-License-Identifier: MIT */
/*
 * Logging: levels as in CRIU (-v0..-v4), one sink per process (stderr or -o FILE).
 *
 * Each .c file defines LOG_PREFIX before including this header, so every line says
 * which subsystem wrote it:
 *	#define LOG_PREFIX "uffd: "
 */
#ifndef LP_LOG_H
#define LP_LOG_H

#include <errno.h>
#include <stdarg.h>
#include <string.h>

enum lp_loglevel {
	LOG_MSG = 0, /* always printed: results, summaries */
	LOG_ERROR = 1,
	LOG_WARN = 2,
	LOG_INFO = 3,
	LOG_DEBUG = 4,
};

#define LOG_DEFAULT_LEVEL LOG_WARN

#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

/* Set the level; returns the previous one. */
int log_set_level(int level);
int log_get_level(void);
/* Send log lines to FILE (appending a fresh file). Returns 0 or -errno. */
int log_open_file(const char *path);
/* Use an already-open fd (for tests); -1 restores stderr. */
void log_set_fd(int fd);
int log_get_fd(void);
void log_close(void);

void log_printf(int level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define pr_msg(fmt, ...)   log_printf(LOG_MSG, NULL, 0, fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...)   log_printf(LOG_ERROR, __FILE__, __LINE__, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...)  log_printf(LOG_WARN, NULL, 0, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...)  log_printf(LOG_INFO, NULL, 0, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) log_printf(LOG_DEBUG, NULL, 0, LOG_PREFIX fmt, ##__VA_ARGS__)

/* pr_perror: like pr_err, appends ": strerror(errno)". Keeps errno intact. */
#define pr_perror(fmt, ...)                                                                     \
	do {                                                                                    \
		int __e = errno;                                                                \
		log_printf(LOG_ERROR, __FILE__, __LINE__, LOG_PREFIX fmt ": %s", ##__VA_ARGS__, \
			   strerror(__e));                                                      \
		errno = __e;                                                                    \
	} while (0)

#endif
