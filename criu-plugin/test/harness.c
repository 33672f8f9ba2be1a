// SPDX-License-Identifier: MIT
/*
 * harness: loads lazypages_plugin.so the way CRIU does and plays a criu restore around it,
 * so the plugin can be tested where CRIU cannot run.
 *
 * It exports what the plugin takes from the criu binary (criu_get_image_dir, log_get_fd,
 * log_get_loglevel, print_on_level), chdir()s to the work dir, calls init(RESTORE), then,
 * like criu restore, connects to ./lazy-pages.socket (unless TP_CONNECT=0) and calls exit().
 * Its own command line is what the plugin reads: run it as `harness restore --lazy-pages`.
 *
 * Env: TP_PLUGIN (the .so), TP_WORK (work dir), TP_IMAGES (images dir), TP_LOG (the "criu"
 * log file), TP_CONNECT (default 1), TP_STAGE (restore, the default, or dump).
 * Prints "pid N", "init R", "connect ok|failed: ERR"; exits 0 when init returned 0.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <criu/criu-plugin.h>

static int img_fd = -1, log_fd = -1;

int criu_get_image_dir(void)
{
	return img_fd;
}

int log_get_fd(void)
{
	return log_fd;
}

unsigned int log_get_loglevel(void)
{
	return 4;
}

void print_on_level(unsigned int loglevel, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
void print_on_level(unsigned int loglevel, const char *format, ...)
{
	va_list ap;

	dprintf(log_fd, "(%u) ", loglevel);
	va_start(ap, format);
	vdprintf(log_fd, format, ap);
	va_end(ap);
}

static const char *need(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v) {
		fprintf(stderr, "harness: set %s\n", name);
		exit(2);
	}
	return v;
}

int main(void)
{
	const char *so = need("TP_PLUGIN"), *work = need("TP_WORK");
	const char *conn = getenv("TP_CONNECT"), *stage_env = getenv("TP_STAGE");
	int stage = stage_env && !strcmp(stage_env, "dump") ? CR_PLUGIN_STAGE__DUMP
							    : CR_PLUGIN_STAGE__RESTORE;
	cr_plugin_desc_t *d;
	void *h;
	int ret;

	img_fd = open(need("TP_IMAGES"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	log_fd = open(need("TP_LOG"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (img_fd < 0 || log_fd < 0) {
		perror("harness: open TP_IMAGES or TP_LOG");
		return 2;
	}
	/* CRIU keeps its service fds high: move them there too */
	img_fd = fcntl(img_fd, F_DUPFD_CLOEXEC, 900);
	log_fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 901);
	h = dlopen(so, RTLD_LAZY);
	if (!h) {
		fprintf(stderr, "harness: %s\n", dlerror());
		return 2;
	}
	d = dlsym(h, "CR_PLUGIN_DESC");
	if (!d || d->version != CRIU_PLUGIN_VERSION || !d->init) {
		fprintf(stderr, "harness: %s has no usable CR_PLUGIN_DESC\n", so);
		return 2;
	}
	if (chdir(work)) {
		perror("harness: chdir");
		return 2;
	}
	printf("pid %d\n", (int)getpid());
	ret = d->init(stage);
	printf("init %d\n", ret);
	fflush(stdout);
	if (!ret && stage == CR_PLUGIN_STAGE__RESTORE && (!conn || strcmp(conn, "0"))) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		strcpy(sa.sun_path, "lazy-pages.socket");
		if (fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			printf("connect ok\n");
		else
			printf("connect failed: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	if (d->exit)
		d->exit(stage, ret);
	dlclose(h);
	return ret ? 1 : 0;
}
