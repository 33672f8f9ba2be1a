// SPDX-License-Identifier: MIT
/* Logging sink: one per process, timestamps relative to start, CRIU-like line shapes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/*
 * The one process-wide piece of state: where log lines go and how many of them.
 * Everything else in lazypages lives in explicit structs.
 */
static struct {
	int level;
	int fd;
	int owned;
	struct timespec start;
} lg = {.level = LOG_DEFAULT_LEVEL, .fd = 2};

int log_set_level(int level)
{
	int old = lg.level;

	if (level < LOG_MSG)
		level = LOG_MSG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	lg.level = level;
	return old;
}

int log_get_level(void)
{
	return lg.level;
}

int log_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	log_close();
	lg.fd = fd;
	lg.owned = 1;
	return 0;
}

void log_set_fd(int fd)
{
	log_close();
	lg.fd = fd < 0 ? 2 : fd;
}

int log_get_fd(void)
{
	return lg.fd;
}

void log_close(void)
{
	if (lg.owned)
		close(lg.fd);
	lg.owned = 0;
	lg.fd = 2;
}

void log_printf(int level, const char *file, int line, const char *fmt, ...)
{
	char buf[2048];
	struct timespec now;
	size_t n = 0;
	va_list ap;
	int saved = errno;

	if (level > lg.level)
		return;
	if (!lg.start.tv_sec && !lg.start.tv_nsec)
		clock_gettime(CLOCK_MONOTONIC, &lg.start);
	clock_gettime(CLOCK_MONOTONIC, &now);

	if (level != LOG_MSG) {
		long us = (now.tv_sec - lg.start.tv_sec) * 1000000L +
			  (now.tv_nsec - lg.start.tv_nsec) / 1000;
		n = snprintf(buf, sizeof(buf), "(%02ld.%06ld) ", us / 1000000, us % 1000000);
		if (level == LOG_ERROR && file) {
			const char *base = strrchr(file, '/');

			n += snprintf(buf + n, sizeof(buf) - n,
				      "Error (%s:%d): ", base ? base + 1 : file, line);
		} else if (level == LOG_WARN) {
			n += snprintf(buf + n, sizeof(buf) - n, "Warn: ");
		}
	}
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n >= sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	if (n == 0 || buf[n - 1] != '\n')
		buf[n++] = '\n';

	for (size_t off = 0; off < n;) {
		ssize_t w = write(lg.fd, buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
	errno = saved;
}
