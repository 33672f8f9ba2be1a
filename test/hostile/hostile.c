// SPDX-License-Identifier: MIT
/*
 * Hostile inputs on the restore socket: each case starts the real daemon
 * (`lazypages daemon -D DIR --status-fd N -o LOG -v4`), plays a misbehaving
 * `criu restore --lazy-pages` on lazy-pages.socket and checks what the daemon does:
 * its exit code (1 for a fatal protocol error before the finish word, 0 where serving
 * can go on), a message in its log naming the pid and the problem, no crash (no
 * sanitizer report, no restart of the serving process), no hang (every wait is bounded;
 * a daemon that does not exit is killed and the case fails) and no fd leak where the
 * daemon keeps running.
 *
 * Real uffds come from restoree processes: a child maps the checkpoint's VMAs at their
 * addresses, creates a userfaultfd (O_CLOEXEC | O_NONBLOCK, UFFDIO_API with CRIU's
 * features 0x4e), registers MISSING ranges as CRIU's restorer does and hands the uffd
 * to the test, which plays the socket protocol with it. The restoree then reads its
 * memory on request and compares every page with the images.
 *
 *   hostile [CASE...]     LP_BIN=path/to/lazypages (default: next to this build)
 */
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "helpers.h"
#include "image.h"
#include "magic.h"
#include "restore-double/pattern.h"
#include "restore-side.h"
#include "uffd-abi.h"
#include "writer.h"

#define PG	 4096ULL
#define BASE	 0x210000000000ULL /* clear of ASan's shadow and allocator */
#define SEED	 11
#define FINISH	 0x52535446U
#define WAIT_MS	 20000 /* any single wait; the case's own limit is LPT_TIMEOUT */
#define MAX_FDS	 512
#define MAX_ARGS 16

/* ---- checkpoints ------------------------------------------------------------------------ */

struct vspec {
	uint64_t start, npages;
};

struct tspec {
	uint32_t pid;
	bool zombie;
	bool no_images; /* in pstree.img (alive), but no mm/pagemap/pages */
	const struct vspec *v;
	size_t nv;
};

/* Every VMA private anonymous, every page lazy with pattern data (pid, address, SEED). */
static void write_ckpt(const char *dir, const struct tspec *t, size_t n)
{
	struct lp_task tasks[8];
	uint32_t tids[8];
	struct lp_pstree pt = {.nr = n, .tasks = tasks};
	struct lp_images im;

	if (n > 8)
		LPT_FAIL("too many tasks");
	ASSERT_OK(lp_images_open_dir(&im, dir));
	for (size_t i = 0; i < n; i++) {
		tids[i] = t[i].pid;
		tasks[i] = (struct lp_task){.pid = t[i].pid,
					    .ppid = i ? t[0].pid : 0,
					    .pgid = t[0].pid,
					    .sid = t[0].pid,
					    .nr_threads = 1,
					    .threads = &tids[i]};
	}
	ASSERT_OK(lp_write_inventory(&im));
	ASSERT_OK(lp_write_pstree(&im, &pt));
	for (size_t i = 0; i < n; i++) {
		struct lp_vma vmas[8];
		struct lp_pme e[8];
		struct lp_mm mm = {.nr = t[i].nv, .vmas = vmas};
		struct lp_img_writer w;
		uint8_t page[PG];
		char name[64];
		uint64_t off = 0;

		ASSERT_OK(lp_write_core(&im, t[i].pid, t[i].zombie ? TASK_DEAD : TASK_ALIVE,
					"hostile"));
		if (t[i].zombie || t[i].no_images)
			continue;
		if (t[i].nv > 8)
			LPT_FAIL("too many VMAs");
		for (size_t k = 0; k < t[i].nv; k++) {
			vmas[k] = (struct lp_vma){.start = t[i].v[k].start,
						  .end = t[i].v[k].start + t[i].v[k].npages * PG,
						  .prot = PROT_READ | PROT_WRITE,
						  .flags = MAP_PRIVATE | MAP_ANONYMOUS,
						  .status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE};
			e[k] = (struct lp_pme){.vaddr = t[i].v[k].start,
					       .nr_pages = t[i].v[k].npages,
					       .flags = PE_LAZY | PE_PRESENT,
					       .pages_off = off};
			off += t[i].v[k].npages * PG;
		}
		ASSERT_OK(lp_write_mm(&im, t[i].pid, &mm, NULL, 0));
		ASSERT_OK(lp_write_pagemap(&im, t[i].pid, i + 1, e, t[i].nv, LP_PM_BOTH));
		snprintf(name, sizeof(name), "pages-%zu.img", i + 1);
		ASSERT_OK(lp_img_create(&im, name, RAW_IMAGE_MAGIC, &w));
		for (size_t k = 0; k < t[i].nv; k++) {
			for (uint64_t p = 0; p < t[i].v[k].npages; p++) {
				lpt_pattern_page(page, t[i].pid, t[i].v[k].start + p * PG, SEED);
				ASSERT_OK(lp_img_write_raw(&w, page, PG));
			}
		}
		ASSERT_OK(lp_img_writer_close(&w));
	}
	lp_images_close(&im);
}

/* ---- time ------------------------------------------------------------------------------- */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the daemon ------------------------------------------------------------------------- */

struct lpd {
	pid_t pid; /* the supervisor: the process we started; the server is its child */
	char *dir, *log, *err;
	bool reaped;
	int status;
};

static char *lp_bin(void)
{
	char exe[PATH_MAX], *p;
	ssize_t n;
	const char *b;

	if (getenv("LP_BIN"))
		return strdup(getenv("LP_BIN"));
	/* $B/test/hostile/hostile -> $B/lazypages */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		for (int i = 0; i < 3 && (p = strrchr(exe, '/')); i++)
			*p = 0;
		if (asprintf(&p, "%s/lazypages", exe) < 0)
			LPT_FAIL("asprintf");
		if (!access(p, X_OK))
			return p;
		free(p);
	}
	b = getenv("B");
	if (asprintf(&p, "%s/lazypages", b && *b ? b : "build") < 0)
		LPT_FAIL("asprintf");
	return p;
}

static char *slurp(const char *path)
{
	size_t len;
	char *dir = strdup(path), *slash = strrchr(dir, '/'), *s;

	*slash = 0;
	if (access(path, R_OK)) {
		free(dir);
		return strdup("");
	}
	s = lpt_read_file(dir, slash + 1, &len);
	free(dir);
	return s;
}

static void lpd_dump(const struct lpd *d)
{
	char *log = slurp(d->log), *err = slurp(d->err);

	fprintf(stderr, "---- daemon log (%s) ----\n%s---- daemon stderr ----\n%s----\n", d->log,
		log, err);
	free(log);
	free(err);
}

/* Start the daemon on DIR with EXTRA options (NULL-terminated) and wait until it listens. */
static void lpd_start(struct lpd *d, const char *dir, const char *const *extra)
{
	char *bin = lp_bin(), sfd[16];
	const char *argv[MAX_ARGS + 12];
	int st[2], i = 0;
	struct pollfd pfd;
	char c;

	memset(d, 0, sizeof(*d));
	d->dir = strdup(dir);
	if (asprintf(&d->log, "%s/daemon.log", dir) < 0 ||
	    asprintf(&d->err, "%s/daemon.err", dir) < 0)
		LPT_FAIL("asprintf");
	if (pipe2(st, O_CLOEXEC))
		LPT_FAIL("pipe: %s", strerror(errno));
	snprintf(sfd, sizeof(sfd), "%d", 100);
	argv[i++] = bin;
	argv[i++] = "daemon";
	argv[i++] = "-D";
	argv[i++] = dir;
	argv[i++] = "--status-fd";
	argv[i++] = sfd;
	argv[i++] = "-o";
	argv[i++] = d->log;
	argv[i++] = "-v4";
	for (int k = 0; extra && extra[k] && k < MAX_ARGS; k++)
		argv[i++] = extra[k];
	argv[i] = NULL;
	fflush(NULL);
	d->pid = fork();
	if (d->pid < 0)
		LPT_FAIL("fork: %s", strerror(errno));
	if (d->pid == 0) {
		int e = open(d->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		/* Own group, so a hung daemon and its server die together; dies with us. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (e < 0 || dup2(e, 2) < 0 || dup2(st[1], 100) < 0)
			_exit(127);
		execv(bin, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	setpgid(d->pid, d->pid);
	close(st[1]);
	pfd = (struct pollfd){.fd = st[0], .events = POLLIN};
	if (poll(&pfd, 1, WAIT_MS) != 1 || read(st[0], &c, 1) != 1) {
		lpd_dump(d);
		LPT_FAIL("the daemon (%s) did not signal readiness on --status-fd", bin);
	}
	close(st[0]);
	printf("  %s listening on %s\n", bin, dir);
	free(bin);
}

/* Has it exited? Reaps it once. */
static bool lpd_exited(struct lpd *d)
{
	if (!d->reaped && waitpid(d->pid, &d->status, WNOHANG) == d->pid)
		d->reaped = true;
	return d->reaped;
}

/* Wait for the exit, at most MS; a daemon still running then is killed and fails the case. */
static int lpd_wait(struct lpd *d, long ms)
{
	long end = now_ms() + ms;

	while (!lpd_exited(d)) {
		if (now_ms() > end) {
			kill(-d->pid, SIGKILL);
			waitpid(d->pid, &d->status, 0);
			d->reaped = true;
			lpd_dump(d);
			LPT_FAIL("the daemon did not exit within %ld ms: killed", ms);
		}
		sleep_ms(5);
	}
	if (WIFSIGNALED(d->status)) {
		lpd_dump(d);
		LPT_FAIL("the daemon died of signal %d (%s)", WTERMSIG(d->status),
			 strsignal(WTERMSIG(d->status)));
	}
	return WEXITSTATUS(d->status);
}

static bool lpd_log_has(const struct lpd *d, const char *needle)
{
	char *log = slurp(d->log);
	bool has = strstr(log, needle) != NULL;

	free(log);
	return has;
}

/* Wait until the log says NEEDLE (at most WAIT_MS). */
static void lpd_log_wait(struct lpd *d, const char *needle)
{
	long end = now_ms() + WAIT_MS;

	while (!lpd_log_has(d, needle)) {
		if (now_ms() > end || (lpd_exited(d) && !lpd_log_has(d, needle))) {
			lpd_dump(d);
			LPT_FAIL("the daemon's log never said \"%s\"%s", needle,
				 d->reaped ? " (it exited)" : "");
		}
		sleep_ms(2);
	}
}

/*
 * The daemon exited with WANT, said each of the NULL-terminated NEEDLES, never restarted
 * its serving process (a crash) and the sanitizers (SAN=1) had nothing to say.
 */
static void lpd_check_exit(struct lpd *d, int want, const char *const *needles)
{
	int rc = lpd_wait(d, WAIT_MS);
	char *log = slurp(d->log), *err = slurp(d->err);

	/* "supervisor: the serving process PID died (SIGNAL): starting a new one ..." */
	if (rc != want || strstr(log, "restart 1)") || strstr(err, "Sanitizer") ||
	    strstr(err, "runtime error"))
		lpd_dump(d);
	ASSERT_EQ(rc, want);
	ASSERT_STR_NOT_CONTAINS(log, "restart 1)");
	ASSERT_STR_NOT_CONTAINS(err, "Sanitizer");
	ASSERT_STR_NOT_CONTAINS(err, "runtime error");
	for (int i = 0; needles && needles[i]; i++)
		ASSERT_STR_CONTAINS(log, needles[i]);
	printf("  daemon exit %d; log says: %s\n", rc, needles && needles[0] ? needles[0] : "-");
	free(log);
	free(err);
}

#define EXPECT_EXIT(d, rc, ...) lpd_check_exit((d), (rc), (const char *const[]){__VA_ARGS__, NULL})

/* The serving process: the supervisor's child, forked once restore connected. */
static pid_t lpd_server(struct lpd *d)
{
	long end = now_ms() + WAIT_MS;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", d->pid, d->pid);
	for (;;) {
		FILE *f = fopen(path, "re");
		int child = 0;

		if (f) {
			if (fscanf(f, "%d", &child) != 1)
				child = 0;
			fclose(f);
		}
		if (child > 0)
			return child;
		if (now_ms() > end || lpd_exited(d)) {
			lpd_dump(d);
			LPT_FAIL("the daemon never started its serving process");
		}
		sleep_ms(2);
	}
}

static void lpd_free(struct lpd *d)
{
	if (!d->reaped) {
		kill(-d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
	}
	free(d->dir);
	free(d->log);
	free(d->err);
}

/* ---- fds of a process ------------------------------------------------------------------- */

struct fdset {
	int n;
	int fd[MAX_FDS];
	char what[MAX_FDS][80];
};

static void fdset_read(pid_t pid, struct fdset *s)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		LPT_FAIL("%s: %s", path, strerror(errno));
	s->n = 0;
	while ((de = readdir(d)) && s->n < MAX_FDS) {
		char p[320];
		ssize_t l;

		if (de->d_name[0] == '.')
			continue;
		s->fd[s->n] = atoi(de->d_name);
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		l = readlink(p, s->what[s->n], sizeof(s->what[0]) - 1);
		s->what[s->n][l > 0 ? l : 0] = 0;
		s->n++;
	}
	closedir(d);
}

static const char *fdset_find(const struct fdset *s, int fd)
{
	for (int i = 0; i < s->n; i++)
		if (s->fd[i] == fd)
			return s->what[i];
	return NULL;
}

/* Files the daemon opens for a moment on its own (/proc/sys/vm/mmap_min_addr, ...). */
static bool fd_transient(const char *what)
{
	return !strncmp(what, "/proc/", 6);
}

/*
 * Every fd in AFTER was in BEFORE, the same file (but for transient ones); returns how
 * many of BEFORE are gone.
 */
static int fdset_no_new(const char *who, const struct fdset *before, const struct fdset *after)
{
	int gone = 0;

	for (int i = 0; i < after->n; i++) {
		const char *was = fdset_find(before, after->fd[i]);

		if (fd_transient(after->what[i]))
			continue;
		if (!was || strcmp(was, after->what[i]))
			LPT_FAIL("%s: fd %d (%s) appeared (was: %s): the daemon kept an fd", who,
				 after->fd[i], after->what[i], was ? was : "closed");
	}
	for (int i = 0; i < before->n; i++) {
		const char *now = fdset_find(after, before->fd[i]);

		if (!fd_transient(before->what[i]) && (!now || strcmp(now, before->what[i]))) {
			printf("  %s closed fd %d (%s)\n", who, before->fd[i], before->what[i]);
			gone++;
		}
	}
	return gone;
}

/* Wait until the supervisor holds N uffds (the server hands each over after taking it). */
static void wait_sup_uffds(struct lpd *d, int n)
{
	long end = now_ms() + WAIT_MS;
	struct fdset *s = calloc(1, sizeof(*s));

	for (;;) {
		int have = 0;

		fdset_read(d->pid, s);
		for (int i = 0; i < s->n; i++)
			have += !strcmp(s->what[i], "anon_inode:[userfaultfd]");
		if (have >= n)
			break;
		if (now_ms() > end)
			LPT_FAIL("the supervisor holds %d uffds, not %d", have, n);
		sleep_ms(2);
	}
	free(s);
}

/* ---- the socket ------------------------------------------------------------------------- */

static int try_connect(const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (sk < 0)
		LPT_FAIL("socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/lazy-pages.socket", dir);
	if (connect(sk, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;

		close(sk);
		return -e;
	}
	return sk;
}

static int conn(const char *dir)
{
	int sk = try_connect(dir);

	if (sk < 0)
		LPT_FAIL("connect to %s/lazy-pages.socket: %s", dir, strerror(-sk));
	return sk;
}

static void send_bytes(int sk, const void *buf, size_t len)
{
	if (send(sk, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		LPT_FAIL("send %zu bytes: %s", len, strerror(errno));
}

static void send_word(int sk, uint32_t w)
{
	send_bytes(sk, &w, 4);
}

/* LEN bytes of BUF with NFDS fds in SCM_RIGHTS. */
static void send_fds(int sk, const void *buf, size_t len, const int *fds, int nfds)
{
	size_t clen = CMSG_SPACE(sizeof(int) * (nfds ? nfds : 1));
	char *ctl = calloc(1, clen);
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	if (nfds) {
		mh.msg_control = ctl;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(sk, &mh, MSG_NOSIGNAL) != (ssize_t)len)
		LPT_FAIL("sendmsg with %d fds: %s", nfds, strerror(errno));
	free(ctl);
}

/* What criu restore sends for a live task: the pid, then one byte carrying the uffd. */
static void send_task(int sk, int32_t pid, int uffd)
{
	char zero = 0;

	send_word(sk, (uint32_t)pid);
	send_fds(sk, &zero, 1, &uffd, 1);
}

/* ---- restorees: processes with registered memory ----------------------------------------- */

enum { R_CHECK = 1, R_ZERO, R_WRITE, R_EXIT };

struct rcmd {
	uint32_t op, pid;
	uint64_t start, npages;
};

struct restoree {
	pid_t pid;
	int sk; /* SOCK_SEQPACKET to the child */
};

struct rspec {
	const struct vspec *map; /* mapped, private anonymous, read-write */
	size_t nmap;
	const struct vspec *reg; /* registered MISSING with the uffd */
	size_t nreg;
	bool no_api; /* skip UFFDIO_API */
};

static void child_send(int sk, int32_t v, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} ctl;
	struct iovec iov = {.iov_base = &v, .iov_len = sizeof(v)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (sendmsg(sk, &mh, MSG_NOSIGNAL) < 0)
		_exit(3);
}

/* One command: the index of the first bad page, or -1 when every page was as expected. */
static int32_t child_do(const struct rcmd *c)
{
	uint8_t want[PG];

	for (uint64_t i = 0; i < c->npages; i++) {
		volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)(c->start + i * PG);

		switch (c->op) {
		case R_CHECK:
			lpt_pattern_page(want, c->pid, c->start + i * PG, SEED);
			if (memcmp((const void *)p, want, PG)) {
				fprintf(stderr, "restoree: page %#llx differs from the images\n",
					(unsigned long long)(c->start + i * PG));
				return (int32_t)i;
			}
			break;
		case R_ZERO:
			for (uint64_t k = 0; k < PG; k++) {
				if (p[k]) {
					fprintf(stderr, "restoree: page %#llx is not zero\n",
						(unsigned long long)(c->start + i * PG));
					return (int32_t)i;
				}
			}
			break;
		case R_WRITE: /* a write fault: the page must then hold what was written */
			p[8] = 0x5a;
			if (p[8] != 0x5a || p[0] || p[PG - 1])
				return (int32_t)i;
			break;
		}
	}
	return -1;
}

static void restoree_main(int sk, const struct rspec *rs)
{
	struct uffdio_api api = {.api = UFFD_API, .features = LP_UFFD_CRIU_FEATURES};
	int uffd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Only restore's tasks hold the restore socket; this one keeps just its link to us. */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != sk)
			close(fd);
	for (size_t i = 0; i < rs->nmap; i++) {
		void *m = mmap((void *)(uintptr_t)rs->map[i].start, rs->map[i].npages * PG,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (m != (void *)(uintptr_t)rs->map[i].start) {
			child_send(sk, -1000 - errno, -1);
			_exit(2);
		}
		madvise(m, rs->map[i].npages * PG, MADV_NOHUGEPAGE);
	}
	uffd = lp_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		child_send(sk, -errno, -1);
		_exit(2);
	}
	if (!rs->no_api && ioctl(uffd, UFFDIO_API, &api)) {
		child_send(sk, -errno, -1);
		_exit(2);
	}
	for (size_t i = 0; i < rs->nreg; i++) {
		struct uffdio_register reg = {
			.range = {.start = rs->reg[i].start, .len = rs->reg[i].npages * PG},
			.mode = UFFDIO_REGISTER_MODE_MISSING};

		if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
			child_send(sk, -1000 - errno, -1);
			_exit(2);
		}
	}
	child_send(sk, 0, uffd);
	close(uffd); /* as CRIU's restorer does: the daemon's copy is the only one */
	for (;;) {
		struct rcmd c;
		int32_t r;

		if (recv(sk, &c, sizeof(c), 0) != sizeof(c) || c.op == R_EXIT)
			_exit(0);
		r = child_do(&c);
		if (send(sk, &r, sizeof(r), MSG_NOSIGNAL) != sizeof(r))
			_exit(3);
	}
}

/* Start a restoree; returns its uffd (the test's copy, to send to the daemon). */
static int restoree_start(struct restoree *r, const struct rspec *rs)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} ctl;
	int32_t v = 0;
	struct iovec iov = {.iov_base = &v, .iov_len = sizeof(v)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	struct pollfd pfd;
	struct cmsghdr *c;
	int sv[2], fd = -1;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		LPT_FAIL("socketpair: %s", strerror(errno));
	fflush(NULL);
	r->pid = fork();
	if (r->pid < 0)
		LPT_FAIL("fork: %s", strerror(errno));
	if (r->pid == 0) {
		close(sv[0]);
		restoree_main(sv[1], rs);
	}
	close(sv[1]);
	r->sk = sv[0];
	pfd = (struct pollfd){.fd = r->sk, .events = POLLIN};
	if (poll(&pfd, 1, WAIT_MS) != 1 || recvmsg(r->sk, &mh, MSG_CMSG_CLOEXEC) != sizeof(v))
		LPT_FAIL("the restoree did not answer");
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	/* userfaultfd() or UFFDIO_API refused: -errno; mmap or UFFDIO_REGISTER: -1000 - errno */
	if (v <= -1000)
		LPT_FAIL("restoree: mmap or UFFDIO_REGISTER failed: %s", strerror(-1000 - v));
	if (v == -EPERM || v == -ENOSYS || v == -EINVAL)
		LPT_SKIP("no userfaultfd here (%s): cannot play restore", strerror(-v));
	if (v || fd < 0)
		LPT_FAIL("restoree setup failed: %s", strerror(-v));
	return fd;
}

/* Have the restoree read NPAGES at START (OP: R_CHECK against PID's images, R_ZERO, R_WRITE). */
static int32_t restoree_do(struct restoree *r, uint32_t op, uint32_t pid, uint64_t start,
			   uint64_t npages)
{
	struct rcmd c = {.op = op, .pid = pid, .start = start, .npages = npages};
	struct pollfd pfd = {.fd = r->sk, .events = POLLIN};
	int32_t res;

	if (send(r->sk, &c, sizeof(c), MSG_NOSIGNAL) != sizeof(c))
		LPT_FAIL("restoree gone: %s", strerror(errno));
	if (poll(&pfd, 1, WAIT_MS) != 1)
		LPT_FAIL("restoree: reading [%#llx, +%llu pages) hung for %d ms: nobody serves "
			 "its faults",
			 (unsigned long long)start, (unsigned long long)npages, WAIT_MS);
	if (recv(r->sk, &res, sizeof(res), 0) != sizeof(res))
		LPT_FAIL("restoree died reading [%#llx, +%llu pages)", (unsigned long long)start,
			 (unsigned long long)npages);
	return res;
}

#define ASSERT_PAGES(r, op, pid, start, n) \
	ASSERT_EQ(restoree_do((r), (op), (pid), (start), (n)), -1)

static void restoree_stop(struct restoree *r)
{
	struct rcmd c = {.op = R_EXIT};
	int st;

	if (r->pid <= 0)
		return;
	if (send(r->sk, &c, sizeof(c), MSG_NOSIGNAL) != sizeof(c))
		kill(r->pid, SIGKILL);
	close(r->sk);
	if (waitpid(r->pid, &st, 0) != r->pid || !WIFEXITED(st) || WEXITSTATUS(st))
		LPT_FAIL("restoree exited with status %#x", st);
	r->pid = 0;
}

static void restoree_kill(struct restoree *r)
{
	if (r->pid <= 0)
		return;
	kill(r->pid, SIGKILL);
	close(r->sk);
	waitpid(r->pid, NULL, 0);
	r->pid = 0;
}

/* ---- fixtures --------------------------------------------------------------------------- */

#define NP 64 /* pages of the main VMA */

static const struct vspec one_vma[] = {{BASE, NP}};
static const struct tspec one_task[] = {{.pid = 1, .v = one_vma, .nv = 1}};
static const struct tspec two_tasks[] = {{.pid = 1, .v = one_vma, .nv = 1},
					 {.pid = 2, .v = one_vma, .nv = 1}};
static const struct rspec plain = {.map = one_vma, .nmap = 1, .reg = one_vma, .nreg = 1};

struct env {
	char *dir;
	struct lpd d;
	struct restoree r;
};

static void env_start(struct env *e, const char *tag, const struct tspec *t, size_t n,
		      const char *const *extra)
{
	memset(e, 0, sizeof(*e));
	e->dir = lpt_mkdtemp(tag);
	write_ckpt(e->dir, t, n);
	lpd_start(&e->d, e->dir, extra);
}

/* Start the restoree (its memory set up as RS says) and send PID with its uffd on SK. */
static void send_restoree(struct env *e, int sk, int32_t pid, const struct rspec *rs)
{
	int uffd = restoree_start(&e->r, rs);

	send_task(sk, pid, uffd);
	close(uffd);
}

static void env_end(struct env *e)
{
	restoree_kill(&e->r);
	lpd_free(&e->d);
	lpt_rm_rf(e->dir);
	free(e->dir);
}

/* ---- cases: the protocol as CRIU speaks it ------------------------------------------------ */

/* Baseline: one live task and one zombie, faults before the finish word, then the fill. */
static void test_control(void)
{
	static const struct tspec t[] = {{.pid = 1, .v = one_vma, .nv = 1},
					 {.pid = 5, .zombie = true}};
	struct env e;
	int sk, uffd;

	env_start(&e, "control", t, 2, NULL);
	sk = conn(e.dir);
	uffd = restoree_start(&e.r, &plain);
	send_word(sk, (uint32_t)-5);
	send_task(sk, 1, uffd);
	close(uffd);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE + 3 * PG, 2); /* faults, served before the end */
	send_word(sk, FINISH);
	close(sk);
	EXPECT_EXIT(&e.d, 0, "pid 1: uffd received", "pid 5: zombie");
	/* The daemon is gone: every page must be there already (else it reads zero now). */
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, NP);
	restoree_stop(&e.r);
	env_end(&e);
}

/* The words trickle in one byte at a time: partial reads must be put together. */
static void test_dribble(void)
{
	struct env e;
	uint32_t w[2] = {1, FINISH};
	const uint8_t *b = (const uint8_t *)w;
	char zero = 0;
	int sk, uffd;

	env_start(&e, "dribble", one_task, 1, NULL);
	sk = conn(e.dir);
	uffd = restoree_start(&e.r, &plain);
	for (int i = 0; i < 4; i++) {
		send_bytes(sk, b + i, 1);
		sleep_ms(20);
	}
	send_fds(sk, &zero, 1, &uffd, 1);
	close(uffd);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, 1);
	for (int i = 4; i < 8; i++) {
		send_bytes(sk, b + i, 1);
		sleep_ms(20);
	}
	EXPECT_EXIT(&e.d, 0, "restore finished");
	close(sk);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, NP);
	restoree_stop(&e.r);
	env_end(&e);
}

/* ---- cases: broken task messages (fatal before the finish word) ------------------------- */

static void test_short_pid(void)
{
	struct env e;
	int sk;

	env_start(&e, "shortpid", one_task, 1, NULL);
	sk = conn(e.dir);
	send_bytes(sk, "\x01\x00", 2);
	close(sk);
	EXPECT_EXIT(&e.d, 1, "restore closed the connection before it finished (0 of 1 tasks",
		    "after 2 of the 4 bytes of a pid");
	env_end(&e);
}

static void test_pid_then_hangup(void)
{
	struct env e;
	int sk;

	env_start(&e, "pidhup", one_task, 1, NULL);
	sk = conn(e.dir);
	send_word(sk, 1);
	close(sk);
	EXPECT_EXIT(&e.d, 1, "after pid 1, before sending its uffd");
	env_end(&e);
}

static void test_pid_no_fd(void)
{
	struct env e;
	int sk;

	env_start(&e, "nofd", one_task, 1, NULL);
	sk = conn(e.dir);
	send_word(sk, 1);
	send_bytes(sk, "", 1); /* the byte, no SCM_RIGHTS */
	EXPECT_EXIT(&e.d, 1, "pid 1: expected exactly one uffd in SCM_RIGHTS, got 0 fds");
	close(sk);
	env_end(&e);
}

/* The pid and the uffd byte in one message: the fd rides on the pid, whose read drops it. */
static void test_pid_and_fd_glued(void)
{
	struct env e;
	uint8_t msg[5] = {1, 0, 0, 0, 0};
	int sk, uffd;

	env_start(&e, "glued", one_task, 1, NULL);
	sk = conn(e.dir);
	uffd = restoree_start(&e.r, &plain);
	send_fds(sk, msg, sizeof(msg), &uffd, 1);
	close(uffd);
	EXPECT_EXIT(&e.d, 1, "pid 1: expected exactly one uffd in SCM_RIGHTS, got 0 fds");
	close(sk);
	env_end(&e);
}

/* Our copy of a pipe's read end sees EOF: nobody (the daemon) holds the write end any more. */
static void expect_eof(int rd, const char *what)
{
	struct pollfd pfd = {.fd = rd, .events = POLLIN};
	char c;

	if (poll(&pfd, 1, WAIT_MS) != 1 || read(rd, &c, 1) != 0)
		LPT_FAIL("%s: the write end of the pipe is still open somewhere", what);
	close(rd);
}

static void test_several_fds(void)
{
	struct env e;
	char zero = 0;
	int sk, p[2], fds[3];

	env_start(&e, "severalfds", one_task, 1, NULL);
	sk = conn(e.dir);
	fds[0] = restoree_start(&e.r, &plain);
	if (pipe2(p, O_CLOEXEC))
		LPT_FAIL("pipe");
	fds[1] = p[1];
	fds[2] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	send_word(sk, 1);
	send_fds(sk, &zero, 1, fds, 3);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	EXPECT_EXIT(&e.d, 1, "pid 1: expected exactly one uffd in SCM_RIGHTS, got 3 fds");
	expect_eof(p[0], "extra fds");
	close(sk);
	env_end(&e);
}

/* More fds than the daemon's control buffer holds: MSG_CTRUNC. */
static void test_many_fds(void)
{
	struct env e;
	char zero = 0;
	int sk, fds[64];

	env_start(&e, "manyfds", one_task, 1, NULL);
	sk = conn(e.dir);
	for (int i = 0; i < 64; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	send_word(sk, 1);
	send_fds(sk, &zero, 1, fds, 64);
	for (int i = 0; i < 64; i++)
		close(fds[i]);
	EXPECT_EXIT(&e.d, 1, "pid 1: control message truncated");
	close(sk);
	env_end(&e);
}

static void test_creds_cmsg(void)
{
	struct ucred cr = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
	struct env e;
	int sk;

	env_start(&e, "creds", one_task, 1, NULL);
	sk = conn(e.dir);
	send_word(sk, 1);
	if (lpt_send_cmsg(sk, SCM_CREDENTIALS, &cr, sizeof(cr), MSG_NOSIGNAL) != 1)
		LPT_FAIL("sendmsg SCM_CREDENTIALS: %s", strerror(errno));
	EXPECT_EXIT(&e.d, 1, "pid 1: expected exactly one uffd in SCM_RIGHTS, got 0 fds");
	close(sk);
	env_end(&e);
}

static void send_one_fd_case(const char *tag, int fd, const char *needle)
{
	struct env e;
	int sk;

	env_start(&e, tag, one_task, 1, NULL);
	sk = conn(e.dir);
	send_task(sk, 1, fd);
	close(fd);
	EXPECT_EXIT(&e.d, 1, needle);
	close(sk);
	env_end(&e);
}

static void test_fd_pipe(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC))
		LPT_FAIL("pipe");
	send_one_fd_case("pipe", p[1], "pid 1: the fd restore sent is not a userfaultfd (pipe:[");
	expect_eof(p[0], "pipe sent as uffd");
}

static void test_fd_devnull(void)
{
	send_one_fd_case("devnull", open("/dev/null", O_RDONLY | O_CLOEXEC),
			 "pid 1: the fd restore sent is not a userfaultfd (/dev/null)");
}

/*
 * A FIFO whose name merely contains "userfaultfd" is no userfaultfd. Taken for one, with
 * one uffd_msg in it, a daemon would read it, then block reading it again.
 */
static void test_fd_named_userfaultfd(void)
{
	struct uffd_msg m = {.event = UFFD_EVENT_UNMAP};
	char *dir = lpt_mkdtemp("ufname"), *path;
	int fd;

	if (asprintf(&path, "%s/userfaultfd", dir) < 0)
		LPT_FAIL("asprintf");
	if (mkfifo(path, 0600))
		LPT_FAIL("mkfifo %s: %s", path, strerror(errno));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || write(fd, &m, sizeof(m)) != sizeof(m))
		LPT_FAIL("%s: %s", path, strerror(errno));
	send_one_fd_case("ufname", fd, "pid 1: the fd restore sent is not a userfaultfd (/");
	lpt_rm_rf(dir);
	free(path);
	free(dir);
}

/* A real userfaultfd on which restore never did UFFDIO_API. */
static void test_uffd_without_api(void)
{
	static const struct rspec noapi = {.map = one_vma, .nmap = 1, .no_api = true};
	struct env e;
	int sk;

	env_start(&e, "noapi", one_task, 1, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &noapi);
	EXPECT_EXIT(&e.d, 1, "pid 1: its userfaultfd was not set up with UFFDIO_API");
	close(sk);
	env_end(&e);
}

/* ---- cases: wrong pids ------------------------------------------------------------------ */

static void bad_word_case(const char *tag, uint32_t w, const char *needle)
{
	struct env e;
	int sk;

	env_start(&e, tag, one_task, 1, NULL);
	sk = conn(e.dir);
	send_word(sk, w);
	EXPECT_EXIT(&e.d, 1, needle);
	close(sk);
	env_end(&e);
}

static void test_pid_not_in_pstree(void)
{
	bad_word_case("stranger", 77, "restore sent task pid 77, which is not in");
}

static void test_zombie_not_in_pstree(void)
{
	bad_word_case("zstranger", (uint32_t)-77, "restore sent zombie pid 77, which is not in");
}

static void test_pid_zero(void)
{
	bad_word_case("pid0", 0, "restore sent an invalid pid 0");
}

static void test_pid_int_min(void)
{
	bad_word_case("pidmin", 0x80000000U, "restore sent an invalid pid -2147483648");
}

static void test_same_pid_twice(void)
{
	struct env e;
	int sk;

	env_start(&e, "twice", two_tasks, 2, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &plain);
	lpd_log_wait(&e.d, "pid 1: uffd received");
	send_word(sk, 1);
	EXPECT_EXIT(&e.d, 1, "restore sent pid 1 twice");
	close(sk);
	env_end(&e);
}

/* A zombie, then the same pid as a live task. */
static void test_zombie_then_alive(void)
{
	struct env e;
	int sk;

	env_start(&e, "zalive", two_tasks, 2, NULL);
	sk = conn(e.dir);
	send_word(sk, (uint32_t)-2);
	send_word(sk, 2);
	EXPECT_EXIT(&e.d, 1, "restore sent pid 2 twice");
	close(sk);
	env_end(&e);
}

/* In pstree.img, but restore says alive where the images have no memory for it. */
static void test_pid_without_images(void)
{
	static const struct tspec t[] = {{.pid = 1, .v = one_vma, .nv = 1},
					 {.pid = 2, .no_images = true}};
	struct env e;
	int sk;

	env_start(&e, "noimg", t, 2, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 2, &plain);
	EXPECT_EXIT(&e.d, 1, "pid 2: cannot serve it");
	close(sk);
	env_end(&e);
}

/* ---- cases: the finish word ------------------------------------------------------------- */

static void test_finish_early(void)
{
	struct env e;
	int sk;

	env_start(&e, "early", two_tasks, 2, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &plain);
	send_word(sk, FINISH);
	EXPECT_EXIT(&e.d, 1, "restore finished after 1 of 2 tasks sent their uffd");
	close(sk);
	env_end(&e);
}

static void test_finish_first(void)
{
	bad_word_case("finfirst", FINISH, "restore finished after 0 of 1 tasks");
}

static void test_no_finish_word(void)
{
	struct env e;
	int sk;

	env_start(&e, "notfin", one_task, 1, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &plain);
	send_word(sk, 0x12345678);
	EXPECT_EXIT(&e.d, 1, "restore sent 0x12345678 where the finish word 0x52535446 was due");
	close(sk);
	env_end(&e);
}

static void test_hangup_before_finish(void)
{
	struct env e;
	int sk;

	env_start(&e, "hup", two_tasks, 2, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &plain);
	lpd_log_wait(&e.d, "pid 1: uffd received");
	close(sk);
	EXPECT_EXIT(&e.d, 1, "restore closed the connection before it finished (1 of 2 tasks");
	env_end(&e);
}

/* Every task announced, then the hang-up instead of the finish word. */
static void test_hangup_instead_of_finish(void)
{
	struct env e;
	int sk;

	env_start(&e, "hup2", one_task, 1, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &plain);
	lpd_log_wait(&e.d, "pid 1: uffd received");
	close(sk);
	EXPECT_EXIT(&e.d, 1, "restore closed the connection before it finished (1 of 1 tasks");
	env_end(&e);
}

/*
 * Data after the finish word, with fds attached: logged, the connection closed, serving
 * goes on. With --on-demand the daemon stays until the restoree exits, so its fds can be
 * compared before and after, and a fault after the garbage must still be served.
 */
static void test_garbage_after_finish(void)
{
	static const char *const od[] = {"--on-demand", NULL};
	struct fdset *sb = calloc(1, sizeof(*sb)), *sa = calloc(1, sizeof(*sa));
	struct fdset *vb = calloc(1, sizeof(*vb)), *va = calloc(1, sizeof(*va));
	struct env e;
	int sk, p[2], fds[2];
	pid_t server;

	env_start(&e, "garbage", one_task, 1, od);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &plain);
	send_word(sk, FINISH);
	lpd_log_wait(&e.d, "restore finished");
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, 1);
	server = lpd_server(&e.d);
	wait_sup_uffds(&e.d, 1);
	fdset_read(server, sb);
	fdset_read(e.d.pid, vb);

	if (pipe2(p, O_CLOEXEC))
		LPT_FAIL("pipe");
	fds[0] = p[1];
	fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	send_fds(sk, "JUNKJUNK", 8, fds, 2);
	close(fds[0]);
	close(fds[1]);
	lpd_log_wait(&e.d, "restore sent data after the finish word (0x4b4e554a)");
	expect_eof(p[0], "fds sent after the finish word");
	ASSERT_FALSE(lpd_exited(&e.d));
	fdset_read(server, sa);
	fdset_read(e.d.pid, va);
	/* The server closed the connection and nothing else; the supervisor is unchanged. */
	ASSERT_EQ(fdset_no_new("server", sb, sa), 1);
	ASSERT_EQ(fdset_no_new("supervisor", vb, va), 0);

	/* Still serving: faults after the garbage get the images' pages. */
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE + PG, NP - 1);
	restoree_stop(&e.r);
	EXPECT_EXIT(&e.d, 0, "restore sent data after the finish word");
	close(sk);
	free(sb);
	free(sa);
	free(vb);
	free(va);
	env_end(&e);
}

/* The same with background fill: every page is in place when the daemon exits 0. */
static void test_garbage_after_finish_fill(void)
{
	struct env e;
	uint32_t w[3] = {FINISH, 0xdeadbeef, 7};
	int sk;

	env_start(&e, "garbage2", one_task, 1, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &plain);
	send_bytes(sk, w, sizeof(w));
	EXPECT_EXIT(&e.d, 0, "restore sent data after the finish word (0xdeadbeef)");
	close(sk);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, NP);
	restoree_stop(&e.r);
	env_end(&e);
}

/* ---- cases: a second restore ------------------------------------------------------------ */

/* While the first restore is active: refused, no fd in the daemon changes, restore goes on. */
static void test_second_connection(void)
{
	struct fdset *sb = calloc(1, sizeof(*sb)), *sa = calloc(1, sizeof(*sa));
	struct fdset *vb = calloc(1, sizeof(*vb)), *va = calloc(1, sizeof(*va));
	struct env e;
	int sk, sk2;
	pid_t server;

	env_start(&e, "second", one_task, 1, NULL);
	sk = conn(e.dir);
	lpd_log_wait(&e.d, "restore connected");
	server = lpd_server(&e.d);
	send_restoree(&e, sk, 1, &plain);
	lpd_log_wait(&e.d, "pid 1: uffd received");
	wait_sup_uffds(&e.d, 1);
	fdset_read(server, sb);
	fdset_read(e.d.pid, vb);

	sk2 = try_connect(e.dir);
	ASSERT_EQ(sk2, -ECONNREFUSED);
	sleep_ms(50);
	fdset_read(server, sa);
	fdset_read(e.d.pid, va);
	ASSERT_EQ(fdset_no_new("server", sb, sa), 0);
	ASSERT_EQ(fdset_no_new("supervisor", vb, va), 0);

	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE + 10 * PG, 5);
	send_word(sk, FINISH);
	EXPECT_EXIT(&e.d, 0, "restore finished");
	close(sk);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, NP);
	restoree_stop(&e.r);
	free(sb);
	free(sa);
	free(vb);
	free(va);
	env_end(&e);
}

/* Two connections queued before the daemon accepts: the first is served, the second reset. */
static void test_second_connection_queued(void)
{
	struct pollfd pfd;
	struct env e;
	int sk, sk2;
	char c;
	ssize_t n;

	env_start(&e, "queued", one_task, 1, NULL);
	sk = conn(e.dir);
	sk2 = try_connect(e.dir);
	if (sk2 >= 0) {
		/* It got into the backlog: it must be dropped, whatever it says. */
		uint32_t junk[2] = {1, FINISH};

		printf("  the second connection got into the backlog\n");
		send(sk2, junk, sizeof(junk), MSG_NOSIGNAL);
		pfd = (struct pollfd){.fd = sk2, .events = POLLIN};
		ASSERT_EQ(poll(&pfd, 1, WAIT_MS), 1);
		n = recv(sk2, &c, 1, 0);
		ASSERT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET));
		close(sk2);
	} else {
		printf("  the second connection was refused\n");
		ASSERT_EQ(sk2, -ECONNREFUSED);
	}
	send_restoree(&e, sk, 1, &plain);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, 3);
	send_word(sk, FINISH);
	EXPECT_EXIT(&e.d, 0, "pid 1: uffd received");
	close(sk);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, NP);
	restoree_stop(&e.r);
	env_end(&e);
}

/* ---- cases: images that disagree with what restore registered --------------------------- */

#define VB (BASE + 0x1000000ULL) /* second VMA of the images */
#define VC (BASE + 0x2000000ULL) /* registered, in no VMA of the images */

/* (a) A lazy VMA of the images that the process did not register: warned, dropped. */
static void unregistered_case(const char *tag, const char *const *extra)
{
	static const struct vspec v[] = {{BASE, NP}, {VB, 32}};
	static const struct tspec t[] = {{.pid = 1, .v = v, .nv = 2}};
	static const struct rspec rs = {.map = v, .nmap = 2, .reg = v, .nreg = 1};
	struct env e;
	int sk;

	env_start(&e, tag, t, 1, extra);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &rs);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE + 7 * PG, 1);
	send_word(sk, FINISH);
	EXPECT_EXIT(&e.d, 0, "not registered with userfaultfd");
	ASSERT_TRUE(lpd_log_has(&e.d, "pid 1 (uffd"));
	close(sk);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, NP);
	ASSERT_PAGES(&e.r, R_ZERO, 1, VB, 32); /* nothing was put there */
	restoree_stop(&e.r);
	env_end(&e);
}

static void test_unregistered_vma(void)
{
	unregistered_case("unreg", NULL);
}

static void test_unregistered_vma_loop_fill(void)
{
	static const char *const o[] = {"--fill-threads", "0", NULL};

	unregistered_case("unreg0", o);
}

/* (b) Registered over addresses outside any VMA of the images: faults get zero pages. */
static void test_registered_outside_images(void)
{
	static const struct vspec map[] = {{BASE, NP}, {VC, 16}};
	static const struct rspec rs = {.map = map, .nmap = 2, .reg = map, .nreg = 2};
	struct env e;
	int sk;

	env_start(&e, "outside", one_task, 1, NULL);
	sk = conn(e.dir);
	send_restoree(&e, sk, 1, &rs);
	ASSERT_PAGES(&e.r, R_ZERO, 1, VC, 8);		/* read faults */
	ASSERT_PAGES(&e.r, R_WRITE, 1, VC + 8 * PG, 4); /* write faults */
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, 4);
	send_word(sk, FINISH);
	EXPECT_EXIT(&e.d, 0, "restore finished");
	close(sk);
	ASSERT_PAGES(&e.r, R_CHECK, 1, BASE, NP);
	ASSERT_PAGES(&e.r, R_ZERO, 1, VC, 8);
	restoree_stop(&e.r);
	env_end(&e);
}

static const struct lpt_case cases[] = {
	LPT_CASE(test_control),
	LPT_CASE(test_dribble),
	LPT_CASE(test_short_pid),
	LPT_CASE(test_pid_then_hangup),
	LPT_CASE(test_pid_no_fd),
	LPT_CASE(test_pid_and_fd_glued),
	LPT_CASE(test_several_fds),
	LPT_CASE(test_many_fds),
	LPT_CASE(test_creds_cmsg),
	LPT_CASE(test_fd_pipe),
	LPT_CASE(test_fd_devnull),
	LPT_CASE(test_fd_named_userfaultfd),
	LPT_CASE(test_uffd_without_api),
	LPT_CASE(test_pid_not_in_pstree),
	LPT_CASE(test_zombie_not_in_pstree),
	LPT_CASE(test_pid_zero),
	LPT_CASE(test_pid_int_min),
	LPT_CASE(test_same_pid_twice),
	LPT_CASE(test_zombie_then_alive),
	LPT_CASE(test_pid_without_images),
	LPT_CASE(test_finish_early),
	LPT_CASE(test_finish_first),
	LPT_CASE(test_no_finish_word),
	LPT_CASE(test_hangup_before_finish),
	LPT_CASE(test_hangup_instead_of_finish),
	LPT_CASE(test_garbage_after_finish),
	LPT_CASE(test_garbage_after_finish_fill),
	LPT_CASE(test_second_connection),
	LPT_CASE(test_second_connection_queued),
	LPT_CASE(test_unregistered_vma),
	LPT_CASE(test_unregistered_vma_loop_fill),
	LPT_CASE(test_registered_outside_images),
	LPT_END,
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return lpt_main(cases, argc, argv);
}
