// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the restore-socket parser (lazy-pages/session.c:
 * lp_session_conn_ready, handle_word, recv_uffd), linked with the daemon's own objects.
 *
 * The parser reads the daemon's end of a socketpair; the input is a script for the other
 * end, what a broken `criu restore --lazy-pages` might do. Each step is an op byte (low
 * 3 bits) and its operands:
 *   0 N BYTES...   send N % 16 + 1 raw bytes
 *   1 WORD         send a 4-byte word: the low 3 bits of the next byte pick a likely one
 *                  (live pid 1 or 2, zombie -3, pid 4 without images, a stranger, 0, the
 *                  finish word) or the 4 bytes after it
 *   2 K N          send N % 3 + 1 bytes with K % 5 + 1 fds in SCM_RIGHTS, each fd's kind
 *                  from a further byte: /dev/null, a pipe, a userfaultfd (UFFDIO_API done or
 *                  not), a FIFO named "userfaultfd"
 *   3              send one byte with SCM_CREDENTIALS
 *   4              hang up (shutdown) and stop
 *   else           let the parser run now
 * The parser runs after every 4th step and at the end. Besides "no crash, no leak, no
 * hang", the session's state must stay consistent, every process it took must hold a
 * real userfaultfd, and the process's fd table must be as before after every input.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "image.h"
#include "log.h"
#include "magic.h"
#include "proc.h"
#include "pstree.h"
#include "restore-side.h"
#include "session.h"
#include "uffd-abi.h"
#include "writer.h"

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

#define PG   4096ULL
#define BASE 0x210000000000ULL

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* daemon.c (linked for the supervisor's sake) parses -v with main.c's helper. */
int cli_verbosity(const char *arg, int current)
{
	(void)arg;
	return current;
}

static char dir[] = "/tmp/lp-fuzz-sock-XXXXXX";
static char fifo[sizeof(dir) + 16];
static struct lp_images im;
static struct lp_pstree pt;

static void cleanup(void)
{
	char cmd[sizeof(dir) + 16];

	lp_pstree_free(&pt);
	lp_images_close(&im);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* pstree: 1 and 2 alive with one small lazy VMA each, 3 a zombie, 4 alive without images. */
static int write_images(void)
{
	static uint32_t tids[4] = {1, 2, 3, 4};
	struct lp_task t[4];
	struct lp_pstree tree = {.nr = 4, .tasks = t};
	struct lp_vma v = {.start = BASE,
			   .end = BASE + 4 * PG,
			   .prot = 3,
			   .flags = 0x22,
			   .status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE};
	struct lp_mm mm = {.nr = 1, .vmas = &v};
	struct lp_pme e = {.vaddr = BASE, .nr_pages = 4, .flags = PE_LAZY | PE_PRESENT};
	struct lp_images w;
	uint8_t page[PG];
	int ret;

	for (int i = 0; i < 4; i++)
		t[i] = (struct lp_task){.pid = tids[i],
					.ppid = i ? 1 : 0,
					.pgid = 1,
					.sid = 1,
					.nr_threads = 1,
					.threads = &tids[i]};
	if (lp_images_open_dir(&w, dir))
		return -1;
	ret = lp_write_inventory(&w) ?: lp_write_pstree(&w, &tree);
	for (uint32_t pid = 1; pid <= 4 && !ret; pid++)
		ret = lp_write_core(&w, pid, pid == 3 ? TASK_DEAD : TASK_ALIVE, "fuzz");
	for (uint32_t pid = 1; pid <= 2 && !ret; pid++) {
		struct lp_img_writer pw;
		char name[32];

		ret = lp_write_mm(&w, pid, &mm, NULL, 0)
			      ?: lp_write_pagemap(&w, pid, pid, &e, 1, LP_PM_BOTH);
		snprintf(name, sizeof(name), "pages-%u.img", pid);
		ret = ret ?: lp_img_create(&w, name, RAW_IMAGE_MAGIC, &pw);
		for (int i = 0; i < 4 && !ret; i++) {
			memset(page, 'a' + i, sizeof(page));
			ret = lp_img_write_raw(&pw, page, PG);
		}
		ret = ret ?: lp_img_writer_close(&pw);
	}
	lp_images_close(&w);
	return ret;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	(void)argc;
	(void)argv;
	/* Format every message (it is code too), but do not print them. */
	if (fd >= 0)
		log_set_fd(fd);
	log_set_level(LOG_DEBUG);
	if (!mkdtemp(dir) || write_images() || lp_images_open(&im, dir) ||
	    lp_pstree_load(&im, &pt)) {
		fprintf(stderr, "fuzz_restore_sock: cannot write the test images in %s\n", dir);
		exit(1);
	}
	snprintf(fifo, sizeof(fifo), "%s/userfaultfd", dir);
	if (mkfifo(fifo, 0600)) {
		perror("mkfifo");
		exit(1);
	}
	atexit(cleanup);
	return 0;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	CHECK(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Reads the next byte of the script; 0 once it ran out. */
struct script {
	const uint8_t *p;
	size_t left;
};

static uint8_t next(struct script *sc)
{
	if (!sc->left)
		return 0;
	sc->left--;
	return *sc->p++;
}

static int make_uffd(bool api)
{
	struct uffdio_api a = {.api = UFFD_API, .features = LP_UFFD_CRIU_FEATURES};
	int fd = lp_userfaultfd(O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		fd = lp_userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd >= 0 && api && ioctl(fd, UFFDIO_API, &a)) {
		a.features = 0;
		if (ioctl(fd, UFFDIO_API, &a)) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* An fd of kind K; any second fd it needs (the other end of a pipe) goes to *EXTRA. */
static int make_fd(uint8_t k, int *extra)
{
	int p[2];

	*extra = -1;
	switch (k % 5) {
	case 0:
		return open("/dev/null", O_RDONLY | O_CLOEXEC);
	case 1:
		if (pipe2(p, O_CLOEXEC))
			return -1;
		*extra = p[0];
		return p[1];
	case 2:
		return make_uffd(true);
	case 3:
		return make_uffd(false);
	default:
		return open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	}
}

static void send_fds(int sk, struct script *sc)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 5)];
		struct cmsghdr a;
	} ctl;
	int nfds = next(sc) % 5 + 1, fds[5], extra[5], n = 0;
	char bytes[3] = {0};
	struct iovec iov = {.iov_base = bytes, .iov_len = next(sc) % 3 + 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf};
	struct cmsghdr *c;

	for (int i = 0; i < nfds; i++) {
		fds[n] = make_fd(next(sc), &extra[n]);
		if (fds[n] >= 0)
			n++;
	}
	if (n) {
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	if (sendmsg(sk, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN &&
	    errno != EPIPE && errno != ECONNRESET)
		CHECK(!"sendmsg");
	for (int i = 0; i < n; i++) {
		close(fds[i]);
		if (extra[i] >= 0)
			close(extra[i]);
	}
}

static void send_creds(int sk)
{
	struct ucred cr = {.pid = getpid(), .uid = getuid(), .gid = getgid()};

	if (lpt_send_cmsg(sk, SCM_CREDENTIALS, &cr, sizeof(cr), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
	    errno != EAGAIN && errno != EPIPE && errno != ECONNRESET)
		CHECK(!"sendmsg creds");
}

static void send_raw(int sk, const void *buf, size_t len)
{
	if (send(sk, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN &&
	    errno != EPIPE && errno != ECONNRESET)
		CHECK(!"send");
}

static bool is_uffd(int fd)
{
	char path[32], link[64];
	ssize_t l;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	l = readlink(path, link, sizeof(link) - 1);
	if (l <= 0)
		return false;
	link[l] = 0;
	return !strcmp(link, "anon_inode:[userfaultfd]");
}

/* Run the parser and check what it left. */
static void parse(struct lp_session *s)
{
	size_t procs = 0;

	if (s->conn >= 0 && !s->error)
		lp_session_conn_ready(s, EPOLLIN);
	CHECK(s->word_len < 4);
	CHECK(s->nr_msgs <= pt.nr);
	CHECK(!s->finished || s->nr_msgs == pt.nr);
	CHECK(!s->cur_pid || (s->cur_pid > 0 && lp_pstree_find(&pt, s->cur_pid)));
	for (const struct lp_proc *p = s->procs; p; p = p->next) {
		CHECK(p->pid == 1 || p->pid == 2);
		CHECK(is_uffd(p->uffd));
		procs++;
	}
	CHECK(procs <= s->nr_msgs);
	CHECK(s->error <= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t words[] = {1, 2, (uint32_t)-3, 4, 77, 0, LP_RESTORE_FINISHED};
	struct lp_config cfg = {
		.fill_chunk_min = 64 << 10, .fill_chunk_max = 4 << 20, .fault_around = 1};
	struct script sc = {.p = data, .left = size};
	struct lp_session s;
	int sv[2], epfd, steps = 0, base_fds;
	bool hup = false;

	base_fds = count_fds(); /* libFuzzer opens files of its own between inputs */
	epfd = epoll_create1(EPOLL_CLOEXEC);
	CHECK(epfd >= 0);
	CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv));
	CHECK(!lp_session_init(&s, &cfg, &im, &pt, epfd, sv[0]));

	while (sc.left && !hup && s.conn >= 0 && !s.error) {
		uint8_t op = next(&sc), buf[16];
		uint32_t w;

		switch (op & 7) {
		case 0: {
			size_t n = next(&sc) % 16 + 1;

			for (size_t i = 0; i < n; i++)
				buf[i] = next(&sc);
			send_raw(sv[1], buf, n);
			break;
		}
		case 1:
			w = next(&sc) & 7;
			if (w < sizeof(words) / sizeof(words[0])) {
				w = words[w];
			} else {
				for (int i = 0; i < 4; i++)
					buf[i] = next(&sc);
				memcpy(&w, buf, 4);
			}
			send_raw(sv[1], &w, 4);
			break;
		case 2:
			send_fds(sv[1], &sc);
			break;
		case 3:
			send_creds(sv[1]);
			break;
		case 4:
			shutdown(sv[1], SHUT_WR);
			hup = true;
			break;
		default:
			parse(&s);
			continue;
		}
		if (++steps % 4 == 0)
			parse(&s);
	}
	parse(&s);
	if (hup)
		CHECK(s.conn < 0 || s.error);

	lp_session_fini(&s);
	close(sv[1]);
	close(epfd);
	{
		int n = count_fds();

		if (n != base_fds) {
			fprintf(stderr, "fd leak: %d open fds, %d before\n", n, base_fds);
			CHECK(n == base_fds);
		}
	}
	return 0;
}
