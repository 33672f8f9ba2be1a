// SPDX-License-Identifier: MIT
/*
 * broken-daemon: a lazy-pages daemon that fails on purpose, the VM tier's negative control.
 * It takes the options of `criu lazy-pages` that the harness passes (-D, -W, --status-fd,
 * anything else is ignored), listens on lazy-pages.socket, signals readiness, accepts
 * `criu restore`, and then:
 *   --mode=exit  reads the first message (pid and its userfaultfd) and exits 1
 *   --mode=hang  receives every userfaultfd, keeps them open and never serves a page
 * A correct harness must turn either into a FAILED scenario within its time limits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *dir = ".", *wdir = NULL, *mode = "exit";
	int status_fd = -1, lfd, cfd;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if ((!strcmp(a, "-D") || !strcmp(a, "--images-dir")) && i + 1 < argc)
			dir = argv[++i];
		else if ((!strcmp(a, "-W") || !strcmp(a, "--work-dir")) && i + 1 < argc)
			wdir = argv[++i];
		else if (!strcmp(a, "--status-fd") && i + 1 < argc)
			status_fd = atoi(argv[++i]);
		else if (!strncmp(a, "--mode=", 7))
			mode = a + 7;
		else if ((!strcmp(a, "-o") || !strcmp(a, "--stats-file")) && i + 1 < argc)
			i++;
	}
	if (chdir(wdir ? wdir : dir)) {
		perror("broken-daemon: chdir");
		return 1;
	}
	strcpy(sa.sun_path, "lazy-pages.socket");
	unlink(sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 10)) {
		perror("broken-daemon: socket");
		return 1;
	}
	if (status_fd >= 0) {
		if (write(status_fd, "", 1) != 1)
			perror("broken-daemon: status-fd");
		close(status_fd);
	}
	fprintf(stderr, "broken-daemon: listening, mode=%s\n", mode);
	cfd = accept(lfd, NULL, NULL);
	if (cfd < 0) {
		perror("broken-daemon: accept");
		return 1;
	}
	close(lfd);
	for (int n = 0;; n++) {
		char buf[64], cbuf[CMSG_SPACE(sizeof(int) * 4)];
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		ssize_t r = recvmsg(cfd, &mh, 0);

		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			fprintf(stderr, "broken-daemon: restore closed the socket after %d reads\n", n);
			break;
		}
		fprintf(stderr, "broken-daemon: read %zd bytes%s\n", r,
			CMSG_FIRSTHDR(&mh) ? " with a file descriptor" : "");
		if (!strcmp(mode, "exit")) {
			fprintf(stderr, "broken-daemon: exiting on purpose\n");
			return 1;
		}
	}
	/* hang: hold every userfaultfd and never answer a fault */
	fprintf(stderr, "broken-daemon: holding the userfaultfds, serving nothing\n");
	for (;;)
		pause();
}
