// SPDX-License-Identifier: MIT
/*
 * Page-server tests: the protocol helpers, the client library (lazy-pages/remote.c)
 * against scripted and lying servers, and `lazypages page-server` itself (started from
 * $B/lazypages per case) against the client library and raw sockets: conformance in both
 * header layouts, plain and TLS, and hostile peers.
 *
 *	ps-test GROUP [CASE...]     GROUP: proto remote serve tls hostile
 *
 * Every page fetched is compared with the pages file it came from. After each case that
 * started a server, the server must still serve a fresh session correctly, stop with exit
 * status 0 on SIGTERM, and have logged no sanitizer report.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "helpers.h"

#include "image.h"
#include "log.h"
#include "magic.h"
#include "pagemap.h"
#include "pages.h"
#include "ps-proto.h"
#include "ps-store.h"
#include "pstree.h"
#include "remote.h"
#include "writer.h"

#define PG LP_PAGE_SIZE

static const char *bdir(void)
{
	const char *b = getenv("B");

	return b && *b ? b : "build";
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

struct ck_task {
	uint32_t pid;
	bool alive;
	struct lp_pagemap pm;
	struct lp_pages pg;
};

struct ckpt {
	char *dir;
	struct lp_images im;
	struct lp_pstree pt;
	struct ck_task *t;
	size_t nr;
};

/* The hand-made checkpoint: run boundaries where the tests want them. */
#define HM_A	0x10000000ULL /* 4 pages LAZY|PRESENT, then B adjacent: one run of 6 */
#define HM_B	0x10004000ULL /* 2 pages PRESENT */
#define HM_C	0x10010000ULL /* 3 pages LAZY only: no data */
#define HM_D	0x10020000ULL /* 1 page PARENT: no data */
#define HM_E	0x10100000ULL /* 300 pages LAZY|PRESENT */
#define HM_F	0x10300000ULL /* 1 page LAZY|PRESENT */
#define HM_G	0x20000000ULL /* pid 11: 50 pages */
#define HM_H	0x20040000ULL /* pid 11: 7 pages */
#define HM_P1	10U
#define HM_P2	11U
#define HM_DEAD 12U

static uint8_t pattern(uint32_t pid, uint64_t addr, size_t i)
{
	uint64_t x = (addr + i) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)pid << 40;

	x ^= x >> 29;
	return (uint8_t)(x * 0xBF58476D1CE4E5B9ULL >> 56);
}

static void write_pages(const char *dir, uint32_t id, uint32_t pid, const struct lp_pme *e,
			size_t n)
{
	char name[64];
	size_t len = 0, off = 0;
	uint8_t *buf;

	for (size_t i = 0; i < n; i++)
		if (e[i].flags & PE_PRESENT)
			len += e[i].nr_pages * PG;
	buf = malloc(len ? len : 1);
	ASSERT_NOT_NULL(buf);
	for (size_t i = 0; i < n; i++) {
		if (!(e[i].flags & PE_PRESENT))
			continue;
		for (size_t b = 0; b < e[i].nr_pages * PG; b++)
			buf[off + b] = pattern(pid, e[i].vaddr, b);
		off += e[i].nr_pages * PG;
	}
	snprintf(name, sizeof(name), "pages-%u.img", id);
	lpt_write_file(dir, name, buf, len);
	free(buf);
}

static char *make_handmade(void)
{
	static const struct lp_pme e1[] = {
		{HM_A, 4, PE_LAZY | PE_PRESENT, 0},
		{HM_B, 2, PE_PRESENT, 0},
		{HM_C, 3, PE_LAZY, 0},
		{HM_D, 1, PE_PARENT, 0},
		{HM_E, 300, PE_LAZY | PE_PRESENT, 0},
		{HM_F, 1, PE_LAZY | PE_PRESENT, 0},
	};
	static const struct lp_pme e2[] = {
		{HM_G, 50, PE_LAZY | PE_PRESENT, 0},
		{HM_H, 7, PE_LAZY | PE_PRESENT, 0},
	};
	struct lp_task tasks[3] = {
		{.pid = HM_P1}, {.pid = HM_P2, .ppid = HM_P1}, {.pid = HM_DEAD, .ppid = HM_P1}};
	uint32_t th[3] = {HM_P1, HM_P2, HM_DEAD};
	struct lp_pstree pt = {.nr = 3, .tasks = tasks};
	struct lp_images im;
	char *dir = lpt_mkdtemp("ps-ckpt");

	for (int i = 0; i < 3; i++) {
		tasks[i].nr_threads = 1;
		tasks[i].threads = &th[i];
		tasks[i].pgid = tasks[i].sid = HM_P1;
	}
	ASSERT_OK(lp_images_open_dir(&im, dir));
	im.img_version = 2;
	ASSERT_OK(lp_write_inventory(&im));
	ASSERT_OK(lp_write_pstree(&im, &pt));
	ASSERT_OK(lp_write_core(&im, HM_P1, TASK_ALIVE, "hm1"));
	ASSERT_OK(lp_write_core(&im, HM_P2, TASK_ALIVE, "hm2"));
	ASSERT_OK(lp_write_core(&im, HM_DEAD, TASK_DEAD, "hm3"));
	ASSERT_OK(lp_write_pagemap(&im, HM_P1, 1, e1, 6, LP_PM_BOTH));
	ASSERT_OK(lp_write_pagemap(&im, HM_P2, 2, e2, 2, LP_PM_COMPAT));
	lp_images_close(&im);
	write_pages(dir, 1, HM_P1, e1, 6);
	write_pages(dir, 2, HM_P2, e2, 2);
	return dir;
}

/* A checkpoint from $B/mkckpt (several processes, a zombie, random runs), or NULL. */
static char *make_mkckpt(const char *extra)
{
	char *dir, *cmd, *bin;

	if (asprintf(&bin, "%s/mkckpt", bdir()) < 0)
		LPT_FAIL("asprintf");
	if (access(bin, X_OK)) {
		free(bin);
		return NULL;
	}
	dir = lpt_mkdtemp("ps-mkckpt");
	if (asprintf(&cmd, "%s -q -D %s -p 3 -z 1 -t 2 %s", bin, dir, extra) < 0)
		LPT_FAIL("asprintf");
	if (system(cmd) != 0)
		LPT_FAIL("%s failed", cmd);
	free(cmd);
	free(bin);
	return dir;
}

static void ck_load(struct ckpt *ck, const char *dir)
{
	memset(ck, 0, sizeof(*ck));
	ck->dir = strdup(dir);
	ASSERT_OK(lp_images_open(&ck->im, dir));
	ASSERT_OK(lp_pstree_load(&ck->im, &ck->pt));
	ck->t = calloc(ck->pt.nr, sizeof(*ck->t));
	ASSERT_NOT_NULL(ck->t);
	for (size_t i = 0; i < ck->pt.nr; i++) {
		struct ck_task *t = &ck->t[ck->nr];
		uint32_t state;

		t->pid = ck->pt.tasks[i].pid;
		ASSERT_OK(lp_core_task_state(&ck->im, t->pid, &state));
		t->alive = state == TASK_ALIVE;
		if (!t->alive)
			continue;
		ASSERT_OK(lp_pagemap_load(&ck->im, t->pid, &t->pm));
		ASSERT_OK(lp_pages_open(&ck->im, t->pm.pages_id, t->pm.present_bytes, &t->pg));
		ck->nr++;
	}
}

static void ck_free(struct ckpt *ck)
{
	for (size_t i = 0; i < ck->nr; i++) {
		lp_pagemap_free(&ck->t[i].pm);
		lp_pages_close(&ck->t[i].pg);
	}
	free(ck->t);
	lp_pstree_free(&ck->pt);
	lp_images_close(&ck->im);
	lpt_rm_rf(ck->dir);
	free(ck->dir);
}

static const struct ck_task *ck_task(const struct ckpt *ck, uint32_t pid)
{
	for (size_t i = 0; i < ck->nr; i++)
		if (ck->t[i].pid == pid)
			return &ck->t[i];
	return NULL;
}

/* The pages file's copy of the page at ADDR of PID. */
static const uint8_t *ck_page(const struct ckpt *ck, uint32_t pid, uint64_t addr)
{
	const struct ck_task *t = ck_task(ck, pid);
	const struct lp_pme *e;
	const uint8_t *p;

	if (!t)
		LPT_FAIL("pid %u is not a live task of the checkpoint", pid);
	e = lp_pagemap_find(&t->pm, addr);
	if (!e || !(e->flags & PE_PRESENT))
		LPT_FAIL("pid %u: no present page at %#" PRIx64, pid, addr);
	p = lp_pages_ptr(&t->pg, e->pages_off + (addr - e->vaddr), PG);
	ASSERT_NOT_NULL(p);
	return p;
}

static void check_pages(const struct ckpt *ck, uint32_t pid, uint64_t addr, uint64_t nr,
			const void *data)
{
	for (uint64_t i = 0; i < nr; i++) {
		const uint8_t *want = ck_page(ck, pid, addr + i * PG);
		const uint8_t *got = (const uint8_t *)data + i * PG;

		if (memcmp(want, got, PG)) {
			size_t b = 0;

			while (want[b] == got[b])
				b++;
			LPT_FAIL("pid %u page %#" PRIx64
				 ": byte %zu is %#x, the pages file has %#x",
				 pid, (uint64_t)(addr + i * PG), b, got[b], want[b]);
		}
	}
}

/* ---- the server under test ---------------------------------------------------------------- */

struct srv {
	pid_t pid;
	int port;
	int hdr;
	char log[PATH_MAX];
	char addr[64];
	bool tls;
};

static int free_port(const char *addr)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd, port;

	if (strchr(addr, ':')) {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &a->sin_addr);
		sl = sizeof(*a);
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	ASSERT_GE(fd, 0);
	if (bind(fd, (struct sockaddr *)&ss, sl))
		LPT_FAIL("bind %s: %s", addr, strerror(errno));
	ASSERT_EQ(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					      : ((struct sockaddr_in *)&ss)->sin_port);
	close(fd);
	return port;
}

static char *srv_log_text(const struct srv *s)
{
	FILE *f = fopen(s->log, "r");
	char *buf;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, n + 1);
	if (n > 0 && fread(buf, 1, n, f) != (size_t)n)
		n = 0;
	fclose(f);
	return buf;
}

static void srv_dump_log(const struct srv *s)
{
	char *t = srv_log_text(s);
	size_t len = strlen(t);
	const char *from = len > 12000 ? t + len - 12000 : t;

	fprintf(stderr, "---- server log %s%s ----\n%s---- end of server log ----\n", s->log,
		from != t ? " (last 12000 bytes)" : "", from);
	free(t);
}

static bool srv_log_has(const struct srv *s, const char *needle)
{
	char *t = srv_log_text(s);
	bool has = strstr(t, needle) != NULL;

	free(t);
	return has;
}

#define ASSERT_LOG(s, needle)                                              \
	do {                                                               \
		if (!srv_log_has((s), (needle))) {                         \
			srv_dump_log(s);                                   \
			LPT_FAIL("the server log lacks \"%s\"", (needle)); \
		}                                                          \
	} while (0)

/* Wait up to MS for the server log to contain NEEDLE. */
static void wait_log(const struct srv *s, const char *needle, int ms)
{
	long end = now_ms() + ms;

	while (!srv_log_has(s, needle)) {
		if (now_ms() > end) {
			srv_dump_log(s);
			LPT_FAIL("the server did not log \"%s\" within %d ms", needle, ms);
		}
		usleep(10000);
	}
}

static char *g_certs; /* test/ps/mkcerts.sh output, for the tls group */

static void cert_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", g_certs, name);
}

/* Start `lazypages page-server` on DIR; EXTRA: more arguments, NULL-terminated. */
static void srv_start_at(struct srv *s, const char *dir, int hdr, bool tls, const char *addr,
			 const char *const *extra)
{
	char bin[PATH_MAX];

	memset(s, 0, sizeof(*s));
	s->hdr = hdr;
	s->tls = tls;
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	snprintf(bin, sizeof(bin), "%s/lazypages", bdir());
	if (access(bin, X_OK))
		LPT_FAIL("%s not built", bin);
	snprintf(s->log, sizeof(s->log), "%s/server-%d.log", dir, (int)getpid());
	for (int attempt = 0; attempt < 5; attempt++) {
		char port[16], hs[8], ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
		const char *argv[48];
		int pfd[2], n = 0, status;
		char c;
		ssize_t r;
		struct pollfd p;

		s->port = free_port(addr);
		snprintf(port, sizeof(port), "%d", s->port);
		snprintf(hs, sizeof(hs), "%d", hdr);
		argv[n++] = bin;
		argv[n++] = "page-server";
		argv[n++] = "-D";
		argv[n++] = dir;
		argv[n++] = "--lazy-pages";
		argv[n++] = "--address";
		argv[n++] = addr;
		argv[n++] = "--port";
		argv[n++] = port;
		argv[n++] = "--ps-header";
		argv[n++] = hs;
		argv[n++] = "--status-fd";
		argv[n++] = "3";
		argv[n++] = "-v3";
		argv[n++] = "-o";
		argv[n++] = s->log;
		if (tls) {
			cert_path(ca, sizeof(ca), "ca.pem");
			cert_path(cert, sizeof(cert), "srv.pem");
			cert_path(key, sizeof(key), "srv-key.pem");
			argv[n++] = "--tls";
			argv[n++] = "--tls-cacert";
			argv[n++] = ca;
			argv[n++] = "--tls-cert";
			argv[n++] = cert;
			argv[n++] = "--tls-key";
			argv[n++] = key;
		}
		for (int i = 0; extra && extra[i]; i++)
			argv[n++] = extra[i];
		argv[n] = NULL;
		ASSERT_EQ(pipe(pfd), 0);
		fflush(NULL);
		s->pid = fork();
		ASSERT_GE(s->pid, 0);
		if (s->pid == 0) {
			/* a failed case exits at once: do not leave its server behind */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(pfd[0]);
			if (pfd[1] != 3) {
				dup2(pfd[1], 3);
				close(pfd[1]);
			}
			execv(bin, (char *const *)argv);
			_exit(127);
		}
		close(pfd[1]);
		p = (struct pollfd){.fd = pfd[0], .events = POLLIN};
		if (poll(&p, 1, 20000) <= 0) {
			kill(s->pid, SIGKILL);
			LPT_FAIL("page-server did not signal readiness in 20 s");
		}
		r = read(pfd[0], &c, 1);
		close(pfd[0]);
		if (r == 1)
			return;
		waitpid(s->pid, &status, 0);
		if (!srv_log_has(s, "Address already in use")) {
			srv_dump_log(s);
			LPT_FAIL("page-server exited at start (status %#x)", status);
		}
	}
	LPT_FAIL("no free port after 5 attempts");
}

static void srv_start(struct srv *s, const char *dir, int hdr, bool tls, const char *const *extra)
{
	srv_start_at(s, dir, hdr, tls, "127.0.0.1", extra);
}

static bool srv_alive(const struct srv *s)
{
	return waitpid(s->pid, NULL, WNOHANG) == 0;
}

static void srv_no_sanitizer_report(const struct srv *s)
{
	static const char *const bad[] = {"AddressSanitizer", "LeakSanitizer",
					  "runtime error:", "UndefinedBehaviorSanitizer"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (srv_log_has(s, bad[i])) {
			srv_dump_log(s);
			LPT_FAIL("the server log has a sanitizer report (%s)", bad[i]);
		}
}

/* Wait for the server to exit by itself within MS; returns its status. */
static int srv_wait(struct srv *s, int ms)
{
	long end = now_ms() + ms;
	int status;

	for (;;) {
		pid_t p = waitpid(s->pid, &status, WNOHANG);

		if (p == s->pid)
			break;
		if (now_ms() > end) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			srv_dump_log(s);
			LPT_FAIL("page-server did not exit within %d ms", ms);
		}
		usleep(10000);
	}
	s->pid = 0;
	return status;
}

static void srv_stop(struct srv *s)
{
	int status;

	if (!s->pid)
		return;
	if (!srv_alive(s)) {
		srv_dump_log(s);
		LPT_FAIL("page-server died during the test");
	}
	kill(s->pid, SIGTERM);
	status = srv_wait(s, 20000);
	srv_no_sanitizer_report(s);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		srv_dump_log(s);
		LPT_FAIL("page-server status %#x after SIGTERM (want exit 0)", status);
	}
}

/* ---- the client library as a test client ------------------------------------------------- */

struct fetch {
	const struct ckpt *ck;
	struct lp_remote *r;
	uint64_t pages, replies, short_replies;
};

struct freq {
	struct fetch *f;
	uint32_t pid;
	uint64_t vaddr, nr;
};

static void fetch_request(struct fetch *f, uint32_t pid, uint64_t vaddr, uint64_t nr, bool urgent)
{
	struct freq *q = malloc(sizeof(*q));

	ASSERT_NOT_NULL(q);
	*q = (struct freq){f, pid, vaddr, nr};
	ASSERT_OK(lp_remote_request(f->r, pid, vaddr, nr, q, urgent));
}

static void fetch_done(void *cookie, uint32_t pid, uint64_t addr, uint64_t nr, const void *data,
		       int err)
{
	struct freq *q = cookie;
	struct fetch *f = q->f;

	ASSERT_EQ(err, 0);
	ASSERT_UINT_EQ(pid, q->pid);
	ASSERT_UINT_EQ(addr, q->vaddr);
	ASSERT_UINT_GE(nr, 1);
	ASSERT_UINT_LE(nr, q->nr);
	check_pages(f->ck, pid, addr, nr, data);
	f->pages += nr;
	f->replies++;
	if (nr < q->nr) {
		f->short_replies++;
		fetch_request(f, pid, addr + nr * PG, q->nr - nr, false);
	}
	free(q);
}

/* Drive R until it has nothing in flight (or at most MAX_INFLIGHT when > 0). */
static void pump(struct lp_remote *r, size_t max_inflight, int ms)
{
	long end = now_ms() + ms;

	while (lp_remote_inflight(r) > max_inflight) {
		struct pollfd p = {.fd = lp_remote_fd(r), .events = POLLIN};
		int n;

		if (lp_remote_want_write(r))
			p.events |= POLLOUT;
		n = poll(&p, 1, 1000);
		ASSERT_GE(n, 0);
		if (n)
			ASSERT_OK(lp_remote_ready(r, p.revents));
		if (now_ms() > end)
			LPT_FAIL("%zu requests still in flight after %d ms", lp_remote_inflight(r),
				 ms);
	}
}

static void remote_opts(struct lp_remote_opts *o, const struct srv *s)
{
	static char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];

	memset(o, 0, sizeof(*o));
	o->address = s->addr;
	o->port = s->port;
	o->hdr_size = s->hdr;
	if (s->tls) {
		cert_path(ca, sizeof(ca), "ca.pem");
		cert_path(cert, sizeof(cert), "cli.pem");
		cert_path(key, sizeof(key), "cli-key.pem");
		o->tls.enabled = true;
		o->tls.cacert = ca;
		o->tls.cert = cert;
		o->tls.key = key;
	}
}

static void fetch_open(struct fetch *f, const struct ckpt *ck, const struct lp_remote_opts *o)
{
	memset(f, 0, sizeof(*f));
	f->ck = ck;
	ASSERT_OK(lp_remote_open(&f->r, o, fetch_done));
}

/*
 * Fetch every page of every pagemap entry with one of FLAGS of every live task, in
 * requests of up to CHUNK pages, at most WINDOW in flight. Returns the pages fetched.
 */
static uint64_t fetch_all(struct fetch *f, uint32_t flags, uint64_t chunk, size_t window)
{
	uint64_t want = 0, before = f->pages;

	for (size_t i = 0; i < f->ck->nr; i++) {
		const struct ck_task *t = &f->ck->t[i];

		for (size_t j = 0; j < t->pm.nr; j++) {
			const struct lp_pme *e = &t->pm.e[j];

			if (!(e->flags & flags) || !(e->flags & PE_PRESENT))
				continue;
			for (uint64_t p = 0; p < e->nr_pages; p += chunk) {
				uint64_t n = e->nr_pages - p < chunk ? e->nr_pages - p : chunk;

				fetch_request(f, t->pid, e->vaddr + p * PG, n,
					      (p / chunk) % 3 == 0);
				want += n;
				pump(f->r, window, 30000);
			}
		}
	}
	pump(f->r, 0, 30000);
	ASSERT_UINT_EQ(f->pages - before, want);
	return want;
}

static void fetch_close(struct fetch *f)
{
	ASSERT_OK(lp_remote_close(f->r));
	f->r = NULL;
}

/* A fresh session that fetches everything: the server still works. */
static void srv_check_fresh(const struct srv *s, const struct ckpt *ck)
{
	struct lp_remote_opts o;
	struct fetch f;

	if (!srv_alive(s)) {
		srv_dump_log(s);
		LPT_FAIL("page-server died");
	}
	remote_opts(&o, s);
	fetch_open(&f, ck, &o);
	ASSERT_UINT_GT(fetch_all(&f, PE_PRESENT, 16, 64), 0);
	fetch_close(&f);
}

/* ---- raw clients ---------------------------------------------------------------------------- */

static int raw_connect_to(const char *addr, int port)
{
	struct sockaddr_storage ss = {0};
	struct timeval tv = {.tv_sec = 20};
	socklen_t sl;
	int fd;

	if (strchr(addr, ':')) {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		inet_pton(AF_INET, addr, &a->sin_addr);
		sl = sizeof(*a);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(fd, 0);
	if (connect(fd, (struct sockaddr *)&ss, sl))
		LPT_FAIL("connect %s:%d: %s", addr, port, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static int raw_connect(const struct srv *s)
{
	return raw_connect_to(s->addr, s->port);
}

static void raw_send(int fd, const void *buf, size_t len)
{
	ASSERT_OK(lp_write_full(fd, buf, len));
}

static void raw_hdr(int fd, int hdr, uint32_t cmd, uint64_t nr, uint64_t vaddr, uint64_t dst)
{
	struct ps_iov iov = {cmd, nr, vaddr, dst};
	uint8_t b[PS_HDR_MAX];

	ASSERT_EQ(ps_encode(hdr, &iov, b), hdr);
	raw_send(fd, b, hdr);
}

static void raw_recv(int fd, void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, (uint8_t *)buf + off, len - off);

		if (n <= 0)
			LPT_FAIL("read %zu of %zu bytes, then %s", off, len,
				 n ? strerror(errno) : "end of stream");
		off += n;
	}
}

/* The server closes the connection (reads return 0 or ECONNRESET) within 20 s. */
static void raw_expect_closed(int fd)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return;
		if (n < 0)
			LPT_FAIL("waiting for the server to close: %s", strerror(errno));
	}
}

/* GET and check the reply header and data. */
static void raw_get_check(int fd, int hdr, const struct ckpt *ck, uint32_t pid, uint64_t vaddr,
			  uint64_t nr, uint64_t want_nr)
{
	uint8_t b[PS_HDR_MAX];
	struct ps_iov rep;
	uint8_t *data;

	raw_hdr(fd, hdr, PS_IOV_GET, nr, vaddr, pid);
	raw_recv(fd, b, hdr);
	ASSERT_OK(ps_decode(hdr, b, &rep));
	ASSERT_UINT_EQ(rep.cmd, PS_GET_REPLY_CMD);
	ASSERT_UINT_EQ(rep.nr_pages, want_nr);
	ASSERT_UINT_EQ(rep.vaddr, vaddr);
	ASSERT_UINT_EQ(rep.dst_id, pid);
	data = malloc(want_nr * PG);
	ASSERT_NOT_NULL(data);
	raw_recv(fd, data, want_nr * PG);
	check_pages(ck, pid, vaddr, want_nr, data);
	free(data);
}

static void raw_close_handshake(int fd, int hdr, uint32_t cmd)
{
	int32_t status = -1;

	raw_hdr(fd, hdr, cmd, 0, 0, 0);
	raw_recv(fd, &status, sizeof(status));
	ASSERT_EQ(status, 0);
}

/* ==== group proto: headers and the server's request logic ================================== */

static void test_encode_examples(void)
{
	/* criu-lazy-protocol.md §4.2: GET pid 1234, 1 page at 0x7f0000001000 */
	static const uint8_t v1[] = {0x07, 0,	 0, 0, 0x01, 0,	   0, 0, 0, 0x10, 0, 0,
				     0,	   0x7f, 0, 0, 0xd2, 0x04, 0, 0, 0, 0,	  0, 0};
	static const uint8_t v2[] = {0x07, 0,	 0, 0, 0, 0,	0, 0, 0x01, 0,	  0, 0, 0, 0, 0, 0,
				     0,	   0x10, 0, 0, 0, 0x7f, 0, 0, 0xd2, 0x04, 0, 0, 0, 0, 0, 0};
	struct ps_iov iov = {PS_IOV_GET, 1, 0x7f0000001000ULL, 1234}, back;
	uint8_t b[PS_HDR_MAX];

	ASSERT_EQ(ps_encode(PS_HDR_V1, &iov, b), 24);
	ASSERT_MEM_EQ(b, v1, 24);
	ASSERT_EQ(ps_encode(PS_HDR_V2, &iov, b), 32);
	ASSERT_MEM_EQ(b, v2, 32);
	ASSERT_OK(ps_decode(PS_HDR_V1, v1, &back));
	ASSERT_UINT_EQ(back.cmd, PS_IOV_GET);
	ASSERT_UINT_EQ(back.nr_pages, 1);
	ASSERT_UINT_EQ(back.vaddr, 0x7f0000001000ULL);
	ASSERT_UINT_EQ(back.dst_id, 1234);
	ASSERT_OK(ps_decode(PS_HDR_V2, v2, &back));
	ASSERT_UINT_EQ(back.nr_pages, 1);
	ASSERT_UINT_EQ(back.vaddr, 0x7f0000001000ULL);
	ASSERT_UINT_EQ(PS_GET_REPLY_CMD, 0x40006);
	ASSERT_UINT_EQ(PS_IOV_CLOSE, 0x1023);
	ASSERT_UINT_EQ(PS_IOV_FORCE_CLOSE, 0x1024);
}

static void test_encode_limits(void)
{
	struct ps_iov iov = {PS_IOV_GET, 1ULL << 40, 0x1000, 1}, back;
	uint8_t b[PS_HDR_MAX];

	ASSERT_EQ(ps_encode(PS_HDR_V1, &iov, b), -EOVERFLOW);
	ASSERT_EQ(ps_encode(PS_HDR_V2, &iov, b), 32);
	ASSERT_OK(ps_decode(PS_HDR_V2, b, &back));
	ASSERT_UINT_EQ(back.nr_pages, 1ULL << 40);
	b[4] = 0xff; /* padding is ignored */
	ASSERT_OK(ps_decode(PS_HDR_V2, b, &back));
	ASSERT_UINT_EQ(back.cmd, PS_IOV_GET);
	ASSERT_EQ(ps_encode(28, &iov, b), -EINVAL);
	ASSERT_EQ(ps_decode(16, b, &back), -EINVAL);
	ASSERT_EQ(ps_parse_hdr_size("24"), 24);
	ASSERT_EQ(ps_parse_hdr_size("32"), 32);
	ASSERT_EQ(ps_parse_hdr_size("v2"), 32);
	ASSERT_EQ(ps_parse_hdr_size("33"), -EINVAL);
	ASSERT_EQ(ps_parse_hdr_size(""), -EINVAL);
	ASSERT_STR_EQ(ps_cmd_name(PS_IOV_GET), "GET");
	ASSERT_NULL(ps_cmd_name(99));
}

static void test_store_answers(void)
{
	static const struct lp_pme e[] = {
		{0x1000, 2, PE_LAZY | PE_PRESENT, 0},
		{0x3000, 1, PE_PRESENT, 2 * PG},
		{0x4000, 1, PE_LAZY, 0},
		{0x8000, 3, PE_LAZY | PE_PRESENT, 3 * PG},
	};
	static uint8_t data[6 * PG];
	struct ps_store st = {0};
	struct ps_answer a;
	struct ps_iov q = {PS_IOV_GET, 100, 0x1000, 7};
	struct lpt_capture cap;
	char *msg;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i / PG + 1);
	ASSERT_OK(ps_store_add(&st, 7, e, 4, data, sizeof(data)));
	ASSERT_EQ(ps_store_add(&st, 7, e, 4, data, sizeof(data)), -EEXIST);
	ASSERT_EQ(ps_store_add(&st, 8, e, 4, data, 4 * PG), -EINVAL); /* data too short */
	ASSERT_EQ(st.nr, 1);
	ASSERT_UINT_EQ(st.nr_pages, 6);
	ASSERT_EQ(st.tasks[0].nr_runs, 2); /* 0x1000-0x4000 merged, 0x8000 */

	/* clamped to the end of the run 0x1000..0x4000, across the entry boundary */
	ASSERT_OK(ps_store_answer(&st, &q, "t", &a));
	ASSERT_EQ(a.act, PS_ACT_PAGES);
	ASSERT_UINT_EQ(a.hdr.cmd, PS_GET_REPLY_CMD);
	ASSERT_UINT_EQ(a.hdr.nr_pages, 3);
	ASSERT_UINT_EQ(a.hdr.vaddr, 0x1000);
	ASSERT_UINT_EQ(a.hdr.dst_id, 7);
	ASSERT_PTR_EQ(a.data, data);
	ASSERT_UINT_EQ(a.len, 3 * PG);
	q.vaddr = 0x2000;
	q.nr_pages = 1;
	ASSERT_OK(ps_store_answer(&st, &q, "t", &a));
	ASSERT_UINT_EQ(a.hdr.nr_pages, 1);
	ASSERT_PTR_EQ(a.data, data + PG);
	q.vaddr = 0x9000;
	q.nr_pages = 1ULL << 40;
	ASSERT_OK(ps_store_answer(&st, &q, "t", &a));
	ASSERT_UINT_EQ(a.hdr.nr_pages, 2);
	ASSERT_PTR_EQ(a.data, data + 4 * PG);

	lpt_capture_start(&cap, STDERR_FILENO);
	q.vaddr = 0x4000; /* PE_LAZY only: no data */
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -ENOENT);
	q.vaddr = 0xb000; /* after the last run */
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -ENOENT);
	q.vaddr = 0; /* before the first */
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -ENOENT);
	q.vaddr = 0x1001;
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -EINVAL);
	q.vaddr = 0x1000;
	q.dst_id = 8;
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -ENOENT);
	q.dst_id = (1ULL << 32) | 7;
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -ENOENT);
	q.dst_id = 7;
	q.nr_pages = 0;
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -EINVAL);
	q.cmd = 99;
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -EINVAL);
	q.cmd = PS_IOV_OPEN2;
	ASSERT_EQ(ps_store_answer(&st, &q, "peer-x", &a), -EINVAL);
	msg = lpt_capture_end(&cap);
	ASSERT_STR_CONTAINS(msg,
			    "peer-x: GET pid 7 vaddr 0x4000 nr_pages 1099511627776: no page data");
	ASSERT_STR_CONTAINS(msg, "vaddr 0x1001 nr_pages 1099511627776: vaddr is not page aligned");
	ASSERT_STR_CONTAINS(msg, "GET pid 8 vaddr 0x1000 nr_pages 1099511627776: unknown pid");
	ASSERT_STR_CONTAINS(msg, "asks for 0 pages");
	ASSERT_STR_CONTAINS(msg, "unknown command 0x63");
	ASSERT_STR_CONTAINS(msg, "command OPEN2");
	free(msg);

	q.cmd = PS_IOV_CLOSE;
	ASSERT_OK(ps_store_answer(&st, &q, "t", &a));
	ASSERT_EQ(a.act, PS_ACT_CLOSE);
	q.cmd = PS_IOV_FORCE_CLOSE;
	ASSERT_OK(ps_store_answer(&st, &q, "t", &a));
	ASSERT_EQ(a.act, PS_ACT_FORCE_CLOSE);
	ps_store_free(&st);
}

static void test_store_load(void)
{
	char *dir = make_handmade();
	struct lp_images im;
	struct lp_pstree pt;
	struct ps_store st;
	struct ps_answer a;
	struct ps_iov q = {PS_IOV_GET, 1, HM_A, HM_P1};
	struct lpt_capture cap;
	char *msg;

	ASSERT_OK(lp_images_open(&im, dir));
	ASSERT_OK(lp_pstree_load(&im, &pt));
	ASSERT_OK(ps_store_load(&st, &im, &pt));
	ASSERT_EQ(st.nr, 2);
	ASSERT_EQ(st.nr_dead, 1);
	ASSERT_UINT_EQ(st.nr_pages, 4 + 2 + 300 + 1 + 50 + 7);
	ASSERT_OK(ps_store_answer(&st, &q, "t", &a));
	ASSERT_EQ(pattern(HM_P1, HM_A, 0), a.data[0]);
	lpt_capture_start(&cap, STDERR_FILENO);
	q.dst_id = HM_DEAD;
	ASSERT_EQ(ps_store_answer(&st, &q, "t", &a), -ENOENT);
	msg = lpt_capture_end(&cap);
	ASSERT_STR_CONTAINS(msg, "not alive in the checkpoint");
	free(msg);
	ps_store_free(&st);
	lp_pstree_free(&pt);
	lp_images_close(&im);
	lpt_rm_rf(dir);
	free(dir);
}

/* clang-format off */
static const struct lpt_case proto_cases[] = {
	LPT_CASE(test_encode_examples),
	LPT_CASE(test_encode_limits),
	LPT_CASE(test_store_answers),
	LPT_CASE(test_store_load),
	LPT_END,
};
/* clang-format on */

/* ==== group remote: the client library against scripted servers ========================== */

/* A scripted server in a child process on the other end of a socketpair. */
typedef void (*script_fn)(int fd, int hdr, void *arg);

struct scripted {
	pid_t pid;
	int fd; /* our end */
};

static void scripted_start(struct scripted *s, script_fn fn, int hdr, void *arg)
{
	int sv[2];

	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fflush(NULL);
	s->pid = fork();
	ASSERT_GE(s->pid, 0);
	if (s->pid == 0) {
		close(sv[0]);
		fn(sv[1], hdr, arg);
		_exit(0);
	}
	close(sv[1]);
	s->fd = sv[0];
}

static void scripted_wait(struct scripted *s)
{
	int status;

	ASSERT_EQ(waitpid(s->pid, &status, 0), s->pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		LPT_FAIL("scripted server: status %#x", status);
}

static void s_read_hdr(int fd, int hdr, struct ps_iov *iov)
{
	uint8_t b[PS_HDR_MAX];

	raw_recv(fd, b, hdr);
	ASSERT_OK(ps_decode(hdr, b, iov));
}

static void s_reply(int fd, int hdr, uint32_t cmd, uint64_t nr, uint64_t vaddr, uint64_t dst,
		    uint64_t data_pages)
{
	uint8_t *d = calloc(data_pages ? data_pages : 1, PG);

	for (uint64_t i = 0; i < data_pages * PG; i++)
		d[i] = pattern((uint32_t)dst, vaddr, i);
	raw_hdr(fd, hdr, cmd, nr, vaddr, dst);
	if (data_pages)
		raw_send(fd, d, data_pages * PG);
	free(d);
}

/* Serve NR GETs correctly, SHORT pages at most per reply, then CLOSE. */
struct honest {
	int nr;
	uint64_t short_max;
	int32_t close_status;
};

static void script_honest(int fd, int hdr, void *arg)
{
	struct honest *h = arg;

	for (int i = 0; i < h->nr; i++) {
		struct ps_iov q;
		uint64_t n;

		s_read_hdr(fd, hdr, &q);
		ASSERT_UINT_EQ(q.cmd, PS_IOV_GET);
		n = q.nr_pages < h->short_max ? q.nr_pages : h->short_max;
		s_reply(fd, hdr, PS_GET_REPLY_CMD, n, q.vaddr, q.dst_id, n);
	}
	{
		struct ps_iov q;

		s_read_hdr(fd, hdr, &q);
		ASSERT_UINT_EQ(q.cmd, PS_IOV_CLOSE);
		raw_send(fd, &h->close_status, 4);
	}
}

struct got {
	int n;
	uint32_t pid[64];
	uint64_t addr[64], nr[64];
	int cookie[64];
	bool bad_data;
};

/* Cookies: the struct got to fill and the request's index. */
struct ck {
	struct got *g;
	int idx;
};

static void got_done(void *cookie, uint32_t pid, uint64_t addr, uint64_t nr, const void *data,
		     int err)
{
	const struct ck *c = cookie;
	struct got *g = c->g;
	int i = g->n++;

	ASSERT_EQ(err, 0);
	ASSERT_LT(i, 64);
	g->pid[i] = pid;
	g->addr[i] = addr;
	g->nr[i] = nr;
	g->cookie[i] = c->idx;
	for (uint64_t b = 0; b < nr * PG; b++)
		if (((const uint8_t *)data)[b] != pattern(pid, addr, b))
			g->bad_data = true;
}

static void remote_on(struct lp_remote **r, int fd, int hdr)
{
	struct lp_remote_opts o = {.hdr_size = hdr, .timeout_ms = 5000};

	ASSERT_OK(lp_remote_open_fd(r, fd, &o, got_done));
}

/* Drive R until DONE callbacks reach N or the call fails; returns the last result. */
static int remote_until(struct lp_remote *r, struct got *g, int n)
{
	long end = now_ms() + 10000;

	while (g->n < n) {
		struct pollfd p = {.fd = lp_remote_fd(r), .events = POLLIN};
		int ret;

		if (lp_remote_want_write(r))
			p.events |= POLLOUT;
		poll(&p, 1, 1000);
		ret = lp_remote_ready(r, p.revents);
		if (ret)
			return ret;
		if (now_ms() > end)
			LPT_FAIL("%d of %d replies after 10 s", g->n, n);
	}
	return 0;
}

static void remote_short_replies(int hdr)
{
	struct honest h = {.nr = 3, .short_max = 2};
	struct scripted s;
	struct lp_remote *r;
	struct got g = {0};
	struct ck c[3] = {{&g, 0}, {&g, 1}, {&g, 2}};

	scripted_start(&s, script_honest, hdr, &h);
	remote_on(&r, s.fd, hdr);
	ASSERT_OK(lp_remote_request(r, 5, 0x10000, 5, &c[0], false));
	ASSERT_OK(lp_remote_request(r, 6, 0x20000, 1, &c[1], false));
	ASSERT_OK(lp_remote_request(r, 5, 0x30000, 2, &c[2], true));
	ASSERT_EQ(lp_remote_inflight(r), 3);
	ASSERT_OK(remote_until(r, &g, 3));
	ASSERT_EQ(lp_remote_inflight(r), 0);
	ASSERT_FALSE(g.bad_data);
	ASSERT_UINT_EQ(g.addr[0], 0x10000);
	ASSERT_UINT_EQ(g.nr[0], 2); /* short: the caller asks again */
	ASSERT_UINT_EQ(g.pid[1], 6);
	ASSERT_UINT_EQ(g.nr[1], 1);
	ASSERT_UINT_EQ(g.nr[2], 2);
	ASSERT_OK(lp_remote_close(r));
	scripted_wait(&s);
}

static void test_remote_short_v1(void)
{
	remote_short_replies(PS_HDR_V1);
}

static void test_remote_short_v2(void)
{
	remote_short_replies(PS_HDR_V2);
}

static void test_remote_close_status(void)
{
	struct honest h = {.nr = 0, .close_status = 5};
	struct scripted s;
	struct lp_remote *r;
	struct lpt_capture cap;
	char *msg;

	scripted_start(&s, script_honest, PS_HDR_V1, &h);
	remote_on(&r, s.fd, PS_HDR_V1);
	lpt_capture_start(&cap, STDERR_FILENO);
	ASSERT_EQ(lp_remote_close(r), -EPROTO);
	msg = lpt_capture_end(&cap);
	ASSERT_STR_CONTAINS(msg, "answered CLOSE with status 5");
	free(msg);
	scripted_wait(&s);
}

/* Replies still due at close are read and dropped before the CLOSE status. */
static void script_late(int fd, int hdr, void *arg)
{
	struct ps_iov q[2];

	(void)arg;
	s_read_hdr(fd, hdr, &q[0]);
	s_read_hdr(fd, hdr, &q[1]);
	ASSERT_UINT_EQ(q[1].cmd, PS_IOV_CLOSE);
	s_reply(fd, hdr, PS_GET_REPLY_CMD, q[0].nr_pages, q[0].vaddr, q[0].dst_id, q[0].nr_pages);
	raw_send(fd, &(int32_t){0}, 4);
	/* the client closes: we see the end of the stream */
	ASSERT_EQ(read(fd, &q[0], 1), 0);
}

static void test_remote_close_drains(void)
{
	struct scripted s;
	struct lp_remote *r;
	struct got g = {0};
	struct ck c = {&g, 0};

	scripted_start(&s, script_late, PS_HDR_V2, NULL);
	remote_on(&r, s.fd, PS_HDR_V2);
	ASSERT_OK(lp_remote_request(r, 9, 0x40000, 3, &c, true));
	ASSERT_OK(lp_remote_close(r));
	ASSERT_EQ(g.n, 0); /* no callback from close */
	scripted_wait(&s);
}

/* Lying servers: each answers the first GET wrongly. */
enum lie {
	LIE_VADDR,
	LIE_PID,
	LIE_TOO_MANY,
	LIE_ZERO,
	LIE_CMD,
	LIE_EOF_DATA,
	LIE_EOF_HDR,
	LIE_UNASKED
};

/* The client hangs up once it sees the lie: writes after that may fail, never mind. */
static void s_reply_try(int fd, int hdr, uint32_t cmd, uint64_t nr, uint64_t vaddr, uint64_t dst,
			uint64_t data_pages)
{
	struct ps_iov iov = {cmd, nr, vaddr, dst};
	uint8_t b[PS_HDR_MAX];
	uint8_t *d = calloc(data_pages ? data_pages : 1, PG);

	ASSERT_EQ(ps_encode(hdr, &iov, b), hdr);
	if (send(fd, b, hdr, MSG_NOSIGNAL) == hdr && data_pages)
		lp_write_full(fd, d, data_pages * PG);
	free(d);
}

static void script_liar(int fd, int hdr, void *arg)
{
	enum lie lie = *(enum lie *)arg;
	struct ps_iov q;

	if (lie == LIE_UNASKED) {
		s_reply_try(fd, hdr, PS_GET_REPLY_CMD, 1, 0x5000, 3, 1);
		usleep(300000);
		return;
	}
	s_read_hdr(fd, hdr, &q);
	switch (lie) {
	case LIE_VADDR:
		s_reply_try(fd, hdr, PS_GET_REPLY_CMD, 1, q.vaddr + PG, q.dst_id, 1);
		break;
	case LIE_PID:
		s_reply_try(fd, hdr, PS_GET_REPLY_CMD, 1, q.vaddr, q.dst_id + 1, 1);
		break;
	case LIE_TOO_MANY:
		s_reply_try(fd, hdr, PS_GET_REPLY_CMD, q.nr_pages + 1, q.vaddr, q.dst_id, 0);
		break;
	case LIE_ZERO:
		s_reply_try(fd, hdr, PS_GET_REPLY_CMD, 0, q.vaddr, q.dst_id, 0);
		break;
	case LIE_CMD:
		s_reply_try(fd, hdr, 0x1234, 1, q.vaddr, q.dst_id, 1);
		break;
	case LIE_EOF_DATA:
		s_reply_try(fd, hdr, PS_GET_REPLY_CMD, 1, q.vaddr, q.dst_id, 0);
		send(fd, "abc", 3, MSG_NOSIGNAL);
		break;
	case LIE_EOF_HDR:
		send(fd, "\x06\x00\x04", 3, MSG_NOSIGNAL);
		break;
	default:
		break;
	}
	usleep(300000); /* then close */
}

static void remote_lie(enum lie lie, const char *want1, const char *want2)
{
	struct scripted s;
	struct lp_remote *r;
	struct got g = {0};
	struct ck c = {&g, 0};
	struct lpt_capture cap;
	int ret;
	char *msg;

	scripted_start(&s, script_liar, PS_HDR_V1, &lie);
	remote_on(&r, s.fd, PS_HDR_V1);
	if (lie != LIE_UNASKED)
		ASSERT_OK(lp_remote_request(r, 77, 0x7f0000001000ULL, 2, &c, true));
	lpt_capture_start(&cap, STDERR_FILENO);
	ret = remote_until(r, &g, 1);
	msg = lpt_capture_end(&cap);
	ASSERT_LT(ret, 0);
	ASSERT_EQ(g.n, 0); /* nothing delivered */
	ASSERT_STR_CONTAINS(msg, "page server socket");
	ASSERT_STR_CONTAINS(msg, want1);
	if (want2)
		ASSERT_STR_CONTAINS(msg, want2);
	/* sticky: later calls fail the same way, without callbacks */
	ASSERT_EQ(lp_remote_ready(r, POLLIN), ret);
	if (lie == LIE_EOF_HDR || lie == LIE_EOF_DATA) {
		/* a lost connection, not a lie: requests queue for the next connection */
		ASSERT(lp_remote_lost(r));
		ASSERT_EQ(lp_remote_request(r, 77, 0x1000, 1, &c, true), 0);
		ASSERT_EQ(lp_remote_inflight(r), 2);
	} else {
		ASSERT(!lp_remote_lost(r));
		ASSERT_EQ(lp_remote_request(r, 77, 0x1000, 1, &c, true), ret);
	}
	ASSERT_EQ(lp_remote_close(r), ret);
	free(msg);
	scripted_wait(&s);
}

static void test_remote_lie_vaddr(void)
{
	remote_lie(LIE_VADDR, "reply for pid 77 vaddr 0x7f0000002000 does not match",
		   "pid 77 vaddr 0x7f0000001000 nr_pages 2");
}

static void test_remote_lie_pid(void)
{
	remote_lie(LIE_PID, "reply for pid 78 vaddr 0x7f0000001000 does not match", NULL);
}

static void test_remote_lie_too_many(void)
{
	remote_lie(LIE_TOO_MANY, "reply with 3 pages to GET pid 77 vaddr 0x7f0000001000", NULL);
}

static void test_remote_lie_zero(void)
{
	remote_lie(LIE_ZERO, "reply with 0 pages", NULL);
}

static void test_remote_lie_cmd(void)
{
	remote_lie(LIE_CMD, "reply cmd 0x1234 (unknown)", "wrong --ps-header layout");
}

static void test_remote_lie_eof_data(void)
{
	remote_lie(LIE_EOF_DATA, "closed the connection mid-reply", NULL);
}

static void test_remote_lie_eof_hdr(void)
{
	remote_lie(LIE_EOF_HDR, "closed the connection mid-reply", NULL);
}

static void test_remote_lie_unasked(void)
{
	remote_lie(LIE_UNASKED, "without a request outstanding", NULL);
}

static void test_remote_bad_requests(void)
{
	struct honest h = {.nr = 0};
	struct scripted s;
	struct lp_remote *r;
	struct lp_remote_opts o = {.hdr_size = 28};
	struct lpt_capture cap;
	int sv[2];
	char *msg;

	lpt_capture_start(&cap, STDERR_FILENO);
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	ASSERT_EQ(lp_remote_open_fd(&r, sv[0], &o, got_done), -EINVAL); /* closes sv[0] */
	scripted_start(&s, script_honest, PS_HDR_V1, &h);
	remote_on(&r, s.fd, PS_HDR_V1);
	ASSERT_EQ(lp_remote_request(r, 1, 0x1000, 0, NULL, false), -EINVAL);
	ASSERT_EQ(lp_remote_request(r, 1, 0x1001, 1, NULL, false), -EINVAL);
	ASSERT_EQ(lp_remote_request(r, 1, 0x1000, LP_REMOTE_MAX_PAGES + 1, NULL, false), -EINVAL);
	msg = lpt_capture_end(&cap);
	ASSERT_STR_CONTAINS(msg, "header size 28");
	ASSERT_STR_CONTAINS(msg, "bad request: pid 1 vaddr 0x1001");
	free(msg);
	ASSERT_EQ(lp_remote_inflight(r), 0);
	ASSERT_OK(lp_remote_close(r));
	scripted_wait(&s);
	ASSERT_OK(lp_remote_close(NULL));
}

/* Urgent requests overtake background ones that are still queued. */
struct order {
	int total;
};

static void script_order(int fd, int hdr, void *arg)
{
	struct order *o = arg;
	struct ps_iov *q = calloc(o->total, sizeof(*q));
	int urgent_at = -1;

	usleep(200000); /* let the client's socket buffer fill */
	for (int i = 0; i < o->total; i++) {
		s_read_hdr(fd, hdr, &q[i]);
		if (q[i].dst_id == 2)
			urgent_at = i;
	}
	/* background requests (pid 1) went out in order; the urgent one (pid 2) overtook some */
	for (int i = 0, last = -1; i < o->total; i++) {
		if (q[i].dst_id != 1)
			continue;
		ASSERT_GT((int)(q[i].vaddr / PG), last);
		last = (int)(q[i].vaddr / PG);
	}
	ASSERT_GE(urgent_at, 0);
	ASSERT_LT(urgent_at, o->total - 1);
	for (int i = 0; i < o->total; i++)
		s_reply(fd, hdr, PS_GET_REPLY_CMD, 1, q[i].vaddr, q[i].dst_id, 1);
	s_read_hdr(fd, hdr, &q[0]);
	ASSERT_UINT_EQ(q[0].cmd, PS_IOV_CLOSE);
	free(q);
	raw_send(fd, &(int32_t){0}, 4);
}

struct order_got {
	int n, total, urgent_at;
	uint64_t last_bg;
	bool fifo_ok;
};

static void order_done(void *cookie, uint32_t pid, uint64_t addr, uint64_t nr, const void *data,
		       int err)
{
	struct order_got *g = cookie;

	(void)data;
	ASSERT_EQ(err, 0);
	ASSERT_UINT_EQ(nr, 1);
	if (pid == 2)
		g->urgent_at = g->n;
	else if (addr / PG != g->last_bg + 1)
		g->fifo_ok = false;
	else
		g->last_bg = addr / PG;
	g->n++;
}

static void test_remote_urgent_first(void)
{
	struct order o;
	struct order_got g = {.last_bg = 0, .fifo_ok = true};
	struct scripted s;
	struct lp_remote *r;
	struct lp_remote_opts opts = {.hdr_size = PS_HDR_V1, .timeout_ms = 5000};
	int sv[2], n = 0, small = 4096;
	long end;

	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	ASSERT_OK(lp_remote_open_fd(&r, sv[0], &opts, order_done));
	/* queue background requests until the socket is full, then some more */
	while (!lp_remote_want_write(r)) {
		ASSERT_OK(lp_remote_request(r, 1, (uint64_t)(n + 1) * PG, 1, &g, false));
		n++;
		ASSERT_LT(n, 100000);
	}
	for (int i = 0; i < 100; i++, n++)
		ASSERT_OK(lp_remote_request(r, 1, (uint64_t)(n + 1) * PG, 1, &g, false));
	ASSERT_TRUE(lp_remote_want_write(r));
	ASSERT_OK(lp_remote_request(r, 2, 0x100000000ULL, 1, &g, true));
	n++;
	o.total = n;
	fflush(NULL);
	s.pid = fork();
	ASSERT_GE(s.pid, 0);
	if (s.pid == 0) {
		close(sv[0]);
		script_order(sv[1], PS_HDR_V1, &o);
		_exit(0);
	}
	close(sv[1]);
	g.total = n;
	end = now_ms() + 20000;
	while (g.n < n) {
		struct pollfd p = {.fd = lp_remote_fd(r), .events = POLLIN};

		if (lp_remote_want_write(r))
			p.events |= POLLOUT;
		poll(&p, 1, 1000);
		ASSERT_OK(lp_remote_ready(r, p.revents));
		ASSERT_LT(now_ms(), end);
	}
	ASSERT_TRUE(g.fifo_ok);
	ASSERT_LT(g.urgent_at, n - 1);
	ASSERT_OK(lp_remote_close(r));
	scripted_wait(&s);
}

/* clang-format off */
static const struct lpt_case remote_cases[] = {
	LPT_CASE(test_remote_short_v1),
	LPT_CASE(test_remote_short_v2),
	LPT_CASE(test_remote_close_status),
	LPT_CASE(test_remote_close_drains),
	LPT_CASE(test_remote_lie_vaddr),
	LPT_CASE(test_remote_lie_pid),
	LPT_CASE(test_remote_lie_too_many),
	LPT_CASE(test_remote_lie_zero),
	LPT_CASE(test_remote_lie_cmd),
	LPT_CASE(test_remote_lie_eof_data),
	LPT_CASE(test_remote_lie_eof_hdr),
	LPT_CASE(test_remote_lie_unasked),
	LPT_CASE(test_remote_bad_requests),
	LPT_CASE(test_remote_urgent_first),
	LPT_END,
};
/* clang-format on */

/* ==== group serve: lazypages page-server conformance (plain TCP) =========================== */

/* Every lazy page of a mkckpt checkpoint (or the hand-made one), in HDR layout. */
static void serve_fetch_all(int hdr, bool tls)
{
	char *dir = make_mkckpt(hdr == PS_HDR_V2 ? "-e v42 -s 7" : "-s 3");
	struct lp_remote_opts o;
	struct ckpt ck;
	struct fetch f;
	struct srv s;
	uint64_t lazy = 0, n;

	if (!dir)
		dir = make_handmade();
	ck_load(&ck, dir);
	srv_start(&s, dir, hdr, tls, NULL);
	remote_opts(&o, &s);
	for (size_t i = 0; i < ck.nr; i++)
		lazy += ck.t[i].pm.nr_lazy;
	fetch_open(&f, &ck, &o);
	n = fetch_all(&f, PE_LAZY, 1, 64); /* fault-sized */
	ASSERT_UINT_EQ(n, lazy);
	n = fetch_all(&f, PE_LAZY, 64, 16); /* background-sized */
	ASSERT_UINT_EQ(n, lazy);
	n = fetch_all(&f, PE_PRESENT, 1024, 4); /* every present page, lazy or not */
	ASSERT_UINT_GE(n, lazy);
	fetch_close(&f);
	wait_log(&s, "closed after PS_IOV_CLOSE", 5000);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void test_serve_fetch_all_v1(void)
{
	serve_fetch_all(PS_HDR_V1, false);
}

static void test_serve_fetch_all_v2(void)
{
	serve_fetch_all(PS_HDR_V2, false);
}

static void test_serve_repeat(void)
{
	char *dir = make_handmade();
	struct lp_remote_opts o;
	struct ckpt ck;
	struct fetch f;
	struct srv s;

	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V1, false, NULL);
	remote_opts(&o, &s);
	for (int sess = 0; sess < 3; sess++) {
		fetch_open(&f, &ck, &o);
		for (int i = 0; i < 200; i++) {
			fetch_request(&f, HM_P1, HM_E + 17 * PG, 1, true);
			if (i % 7 == 0)
				pump(f.r, 0, 10000);
		}
		pump(f.r, 0, 10000);
		ASSERT_UINT_EQ(f.pages, 200);
		fetch_close(&f);
	}
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void serve_clamp(int hdr)
{
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;
	int fd;

	ck_load(&ck, dir);
	srv_start(&s, dir, hdr, false, NULL);
	fd = raw_connect(&s);
	raw_get_check(fd, hdr, &ck, HM_P1, HM_A, 100, 6); /* A+B: one run of 6 */
	raw_get_check(fd, hdr, &ck, HM_P1, HM_A + 2 * PG, 10, 4);
	raw_get_check(fd, hdr, &ck, HM_P1, HM_B + PG, 1, 1);
	raw_get_check(fd, hdr, &ck, HM_P1, HM_E + 299 * PG, 5, 1);
	raw_get_check(fd, hdr, &ck, HM_P1, HM_E, hdr == PS_HDR_V2 ? 1ULL << 40 : UINT32_MAX, 300);
	raw_get_check(fd, hdr, &ck, HM_P1, HM_F, 2, 1);
	raw_get_check(fd, hdr, &ck, HM_P2, HM_G + 49 * PG, 8, 1);
	raw_get_check(fd, hdr, &ck, HM_P2, HM_H, 7, 7);
	raw_close_handshake(fd, hdr, PS_IOV_CLOSE);
	close(fd);
	wait_log(&s, "closed after PS_IOV_CLOSE", 5000);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void test_serve_clamp_v1(void)
{
	serve_clamp(PS_HDR_V1);
}

static void test_serve_clamp_v2(void)
{
	serve_clamp(PS_HDR_V2);
}

/* Requests pipelined on a raw socket, then read back: replies in request order. */
static void test_serve_pipelined_raw(void)
{
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;
	int fd;

	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V2, false, NULL);
	fd = raw_connect(&s);
	for (int i = 0; i < 40; i++)
		raw_hdr(fd, PS_HDR_V2, PS_IOV_GET, 3, HM_E + (uint64_t)i * 7 * PG, HM_P1);
	for (int i = 0; i < 40; i++) {
		uint8_t b[PS_HDR_MAX], data[3 * PG];
		struct ps_iov rep;

		raw_recv(fd, b, PS_HDR_V2);
		ASSERT_OK(ps_decode(PS_HDR_V2, b, &rep));
		ASSERT_UINT_EQ(rep.vaddr, HM_E + (uint64_t)i * 7 * PG);
		ASSERT_UINT_EQ(rep.nr_pages, 3);
		raw_recv(fd, data, sizeof(data));
		check_pages(&ck, HM_P1, rep.vaddr, 3, data);
	}
	/* half-close: the replies to what was asked still come */
	raw_hdr(fd, PS_HDR_V2, PS_IOV_GET, 2, HM_G, HM_P2);
	shutdown(fd, SHUT_WR);
	{
		uint8_t b[PS_HDR_MAX], data[2 * PG];

		raw_recv(fd, b, PS_HDR_V2);
		raw_recv(fd, data, sizeof(data));
		check_pages(&ck, HM_P2, HM_G, 2, data);
	}
	raw_expect_closed(fd);
	close(fd);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void test_serve_close_force(void)
{
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;
	int fd;

	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V1, false, NULL);
	/* CLOSE: int32 0, then the server waits for us to close */
	fd = raw_connect(&s);
	raw_get_check(fd, PS_HDR_V1, &ck, HM_P1, HM_A, 1, 1);
	raw_close_handshake(fd, PS_HDR_V1, PS_IOV_CLOSE);
	usleep(100000);
	{
		struct pollfd p = {.fd = fd, .events = POLLIN};

		ASSERT_EQ(poll(&p, 1, 200), 0); /* still open from the server's side */
	}
	close(fd);
	wait_log(&s, "closed after PS_IOV_CLOSE", 5000);
	/* FORCE_CLOSE: int32 0, then the server closes */
	fd = raw_connect(&s);
	raw_close_handshake(fd, PS_HDR_V1, PS_IOV_FORCE_CLOSE);
	raw_expect_closed(fd);
	close(fd);
	wait_log(&s, "FORCE_CLOSE", 5000);
	/* data after CLOSE is a protocol error */
	fd = raw_connect(&s);
	raw_close_handshake(fd, PS_HDR_V1, PS_IOV_CLOSE);
	raw_send(fd, "x", 1);
	raw_expect_closed(fd);
	close(fd);
	wait_log(&s, "bytes after PS_IOV_CLOSE", 5000);
	srv_check_fresh(&s, &ck);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void test_serve_concurrent(void)
{
	char *dir = make_mkckpt("-s 11");
	struct lp_remote_opts o;
	struct fetch f[4];
	struct ckpt ck;
	struct srv s;
	uint64_t want = 0;

	if (!dir)
		dir = make_handmade();
	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V1, false, NULL);
	remote_opts(&o, &s);
	for (int i = 0; i < 4; i++)
		fetch_open(&f[i], &ck, &o);
	/* interleave: each session gets every fourth request, all in flight together */
	for (size_t t = 0; t < ck.nr; t++) {
		const struct ck_task *tk = &ck.t[t];

		for (size_t j = 0; j < tk->pm.nr; j++) {
			const struct lp_pme *e = &tk->pm.e[j];

			if (!(e->flags & PE_PRESENT))
				continue;
			for (uint64_t p = 0; p < e->nr_pages; p++) {
				fetch_request(&f[(j + p) % 4], tk->pid, e->vaddr + p * PG, 1,
					      false);
				want++;
			}
		}
	}
	for (long end = now_ms() + 30000;;) {
		struct pollfd p[4];
		size_t left = 0;

		for (int i = 0; i < 4; i++) {
			p[i] = (struct pollfd){.fd = lp_remote_fd(f[i].r), .events = POLLIN};
			if (lp_remote_want_write(f[i].r))
				p[i].events |= POLLOUT;
			left += lp_remote_inflight(f[i].r);
		}
		if (!left)
			break;
		ASSERT_GE(poll(p, 4, 1000), 0);
		for (int i = 0; i < 4; i++)
			if (p[i].revents)
				ASSERT_OK(lp_remote_ready(f[i].r, p[i].revents));
		ASSERT_LT(now_ms(), end);
	}
	ASSERT_UINT_EQ(f[0].pages + f[1].pages + f[2].pages + f[3].pages, want);
	for (int i = 0; i < 4; i++)
		fetch_close(&f[i]);
	/* and sequential sessions */
	for (int i = 0; i < 5; i++)
		srv_check_fresh(&s, &ck);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void test_serve_single(void)
{
	static const char *const single[] = {"--single", NULL};
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;
	int fd, status;

	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V1, false, single);
	srv_check_fresh(&s, &ck);
	status = srv_wait(&s, 10000);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	srv_no_sanitizer_report(&s);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	{
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(s.port)};

		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		ASSERT_NE(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	}
	close(fd);
	/* a session that ends with an error ends a --single server with status 1 */
	srv_start(&s, dir, PS_HDR_V1, false, single);
	fd = raw_connect(&s);
	raw_hdr(fd, PS_HDR_V1, 99, 0, 0, 0);
	raw_expect_closed(fd);
	close(fd);
	status = srv_wait(&s, 10000);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 1);
	srv_no_sanitizer_report(&s);
	ck_free(&ck);
	free(dir);
}

static void test_serve_ipv6(void)
{
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)))
		LPT_SKIP("no IPv6 loopback here");
	close(fd);
	ck_load(&ck, dir);
	srv_start_at(&s, dir, PS_HDR_V2, false, "::1", NULL);
	srv_check_fresh(&s, &ck);
	ASSERT_LOG(&s, "[::1]:");
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

/* PID exists and is not a zombie waiting for a reaper that may not be there. */
static bool running(pid_t pid)
{
	char path[64], line[128];
	bool zombie = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "State:", 6))
			zombie = strchr(line, 'Z') != NULL;
	fclose(f);
	return !zombie;
}

/* -d --pidfile: the server detaches once listening and keeps serving. */
static void test_serve_daemonize(void)
{
	char *dir = make_handmade();
	char cmd[PATH_MAX * 3], pidfile[PATH_MAX];
	struct ckpt ck;
	struct srv s;
	long pid = 0;
	FILE *f;

	ck_load(&ck, dir);
	memset(&s, 0, sizeof(s));
	s.hdr = PS_HDR_V1;
	snprintf(s.addr, sizeof(s.addr), "127.0.0.1");
	snprintf(s.log, sizeof(s.log), "%s/server-d.log", dir);
	snprintf(pidfile, sizeof(pidfile), "%s/ps.pid", dir);
	s.port = free_port(s.addr);
	snprintf(cmd, sizeof(cmd),
		 "%s/lazypages page-server -D %s --lazy-pages --address 127.0.0.1 --port %d -d "
		 "--pidfile %s -o %s -v3",
		 bdir(), dir, s.port, pidfile, s.log);
	ASSERT_EQ(system(cmd), 0); /* returns once the server listens */
	f = fopen(pidfile, "r");
	ASSERT_NOT_NULL(f);
	ASSERT_EQ(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	ASSERT_GT(pid, 1);
	ASSERT_EQ(kill((pid_t)pid, 0), 0);
	/* not our child: check it through a session, then stop it by its pid */
	{
		struct lp_remote_opts o;
		struct fetch fe;

		remote_opts(&o, &s);
		fetch_open(&fe, &ck, &o);
		ASSERT_UINT_GT(fetch_all(&fe, PE_LAZY, 4, 16), 0);
		fetch_close(&fe);
	}
	ASSERT_EQ(kill((pid_t)pid, SIGTERM), 0);
	for (int i = 0; i < 500 && running((pid_t)pid); i++)
		usleep(10000);
	ASSERT_FALSE(running((pid_t)pid));
	ASSERT_LOG(&s, "signal 15");
	srv_no_sanitizer_report(&s);
	ck_free(&ck);
	free(dir);
}

/* --ps-socket FD: serve one already-connected socket, then exit. */
static void test_serve_ps_socket(void)
{
	char *dir = make_handmade();
	char bin[PATH_MAX], fdarg[16], log[PATH_MAX];
	struct lp_remote_opts o = {.hdr_size = PS_HDR_V2};
	struct ckpt ck;
	struct fetch f;
	struct srv s;
	int sv[2], status;

	ck_load(&ck, dir);
	ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	snprintf(bin, sizeof(bin), "%s/lazypages", bdir());
	snprintf(fdarg, sizeof(fdarg), "%d", sv[1]);
	snprintf(log, sizeof(log), "%s/server-sock.log", dir);
	memset(&s, 0, sizeof(s));
	snprintf(s.log, sizeof(s.log), "%s", log);
	fflush(NULL);
	s.pid = fork();
	ASSERT_GE(s.pid, 0);
	if (s.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		execl(bin, bin, "page-server", "-D", dir, "--lazy-pages", "--ps-socket", fdarg,
		      "--ps-header", "32", "-o", log, "-v3", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	memset(&f, 0, sizeof(f));
	f.ck = &ck;
	ASSERT_OK(lp_remote_open_fd(&f.r, sv[0], &o, fetch_done));
	ASSERT_UINT_GT(fetch_all(&f, PE_PRESENT, 7, 8), 0);
	fetch_close(&f);
	status = srv_wait(&s, 10000);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	srv_no_sanitizer_report(&s);
	ck_free(&ck);
	free(dir);
}

static void test_serve_usage(void)
{
	char cmd[PATH_MAX + 200];

	snprintf(cmd, sizeof(cmd), "%s/lazypages page-server --help | grep -q -- --ps-header",
		 bdir());
	ASSERT_EQ(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/lazypages page-server -D /nonexistent --port 1 2>/dev/null",
		 bdir());
	ASSERT_EQ(WEXITSTATUS(system(cmd)), 2); /* no --lazy-pages */
	snprintf(cmd, sizeof(cmd),
		 "%s/lazypages page-server --lazy-pages --ps-header 30 2>/dev/null", bdir());
	ASSERT_EQ(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd),
		 "%s/lazypages page-server --lazy-pages -D /nonexistent --port 1 2>/dev/null",
		 bdir());
	ASSERT_EQ(WEXITSTATUS(system(cmd)), 1);
}

/* clang-format off */
static const struct lpt_case serve_cases[] = {
	LPT_CASE(test_serve_fetch_all_v1),
	LPT_CASE(test_serve_fetch_all_v2),
	LPT_CASE(test_serve_repeat),
	LPT_CASE(test_serve_clamp_v1),
	LPT_CASE(test_serve_clamp_v2),
	LPT_CASE(test_serve_pipelined_raw),
	LPT_CASE(test_serve_close_force),
	LPT_CASE(test_serve_concurrent),
	LPT_CASE(test_serve_single),
	LPT_CASE(test_serve_ipv6),
	LPT_CASE(test_serve_daemonize),
	LPT_CASE(test_serve_ps_socket),
	LPT_CASE(test_serve_usage),
	LPT_END,
};
/* clang-format on */

/* ==== group tls ============================================================================== */

static void test_tls_fetch_all_v1(void)
{
	serve_fetch_all(PS_HDR_V1, true);
}

static void test_tls_fetch_all_v2(void)
{
	serve_fetch_all(PS_HDR_V2, true);
}

/* Open a TLS client with the given files; returns lp_remote_open()'s result, messages in *MSG. */
static int tls_try(const struct srv *s, const char *ca, const char *cert, const char *key,
		   bool no_cn, char **msg, struct lp_remote **out)
{
	static char pca[PATH_MAX], pcert[PATH_MAX], pkey[PATH_MAX];
	struct lp_remote_opts o;
	struct lpt_capture cap;
	struct lp_remote *r = NULL;
	int ret;

	remote_opts(&o, s);
	cert_path(pca, sizeof(pca), ca);
	cert_path(pcert, sizeof(pcert), cert);
	cert_path(pkey, sizeof(pkey), key);
	o.tls.cacert = pca;
	o.tls.cert = pcert;
	o.tls.key = pkey;
	o.tls.no_cn_verify = no_cn;
	lpt_capture_start(&cap, STDERR_FILENO);
	ret = lp_remote_open(&r, &o, fetch_done);
	if (!ret && !out) {
		/* TLS 1.3: the server judges our certificate after our side is done */
		struct pollfd p = {.fd = lp_remote_fd(r), .events = POLLIN};

		if (poll(&p, 1, 5000) > 0)
			ret = lp_remote_ready(r, p.revents);
		if (!ret)
			ret = lp_remote_close(r);
		else
			lp_remote_close(r);
		r = NULL;
	}
	*msg = lpt_capture_end(&cap);
	if (out)
		*out = r;
	return ret;
}

static void test_tls_wrong_ca(void)
{
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;
	char *msg;

	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V1, true, NULL);
	/* we do not trust the server's CA */
	ASSERT_EQ(tls_try(&s, "ca2.pem", "cli.pem", "cli-key.pem", false, &msg, NULL),
		  -EKEYREJECTED);
	ASSERT_STR_CONTAINS(msg, "TLS handshake with 127.0.0.1:");
	ASSERT_STR_CONTAINS(msg, "the server's certificate was rejected");
	ASSERT_STR_CONTAINS(msg, "issuer is unknown");
	free(msg);
	/* the server does not trust ours */
	ASSERT_NE(tls_try(&s, "ca.pem", "cli2.pem", "cli2-key.pem", false, &msg, NULL), 0);
	ASSERT_STR_CONTAINS(msg, "rejected our certificate");
	free(msg);
	/* GnuTLS clients offer no certificate the server's CA list does not cover */
	wait_log(&s, "the client sent no certificate issued by a CA this server trusts", 5000);
	ASSERT_LOG(&s, "TLS alert from the peer: Certificate is bad");
	srv_check_fresh(&s, &ck);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void test_tls_cn_verify(void)
{
	char cert[PATH_MAX], key[PATH_MAX];
	const char *other[] = {"--tls-cert", cert, "--tls-key", key, NULL};
	char *dir = make_handmade();
	struct lp_remote *r;
	struct ckpt ck;
	struct fetch f;
	struct srv s;
	char *msg;

	cert_path(cert, sizeof(cert), "other.pem");
	cert_path(key, sizeof(key), "other-key.pem");
	ck_load(&ck, dir);
	/* the server's certificate is for other.example, not 127.0.0.1 */
	srv_start(&s, dir, PS_HDR_V2, true, other);
	ASSERT_EQ(tls_try(&s, "ca.pem", "cli.pem", "cli-key.pem", false, &msg, NULL),
		  -EKEYREJECTED);
	ASSERT_STR_CONTAINS(msg, "name in the certificate does not match");
	ASSERT_STR_CONTAINS(msg, "Expected name: 127.0.0.1");
	free(msg);
	/* --tls-no-cn-verify: chain only */
	ASSERT_OK(tls_try(&s, "ca.pem", "cli.pem", "cli-key.pem", true, &msg, &r));
	free(msg);
	memset(&f, 0, sizeof(f));
	f.ck = &ck;
	f.r = r;
	/* fetch_done is the callback tls_try passed */
	ASSERT_UINT_GT(fetch_all(&f, PE_LAZY, 8, 8), 0);
	fetch_close(&f);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void test_tls_crl_and_defaults(void)
{
	char path[PATH_MAX];
	const char *crl[] = {"--tls-cacrl", path, NULL};
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;

	cert_path(path, sizeof(path), "ca-crl.pem");
	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V1, true, crl);
	ASSERT_LOG(&s, "1 CRL(s) from");
	srv_check_fresh(&s, &ck);
	srv_stop(&s);
	/* a missing certificate file is a start-up error that names it */
	{
		char cmd[PATH_MAX * 2];

		snprintf(cmd, sizeof(cmd),
			 "%s/lazypages page-server --lazy-pages -D %s --port 0 --tls --tls-cacert "
			 "%s/ca.pem --tls-cert /nonexistent.pem --tls-key /nonexistent-key.pem "
			 "2>&1 | grep -q 'cannot load certificate /nonexistent.pem'",
			 bdir(), dir, g_certs);
		ASSERT_EQ(system(cmd), 0);
	}
	ck_free(&ck);
	free(dir);
}

static void test_tls_plain_peer(void)
{
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;
	int fd;

	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V1, true, NULL);
	/* a plain-TCP client sends a GET where a ClientHello belongs */
	fd = raw_connect(&s);
	raw_hdr(fd, PS_HDR_V1, PS_IOV_GET, 1, HM_A, HM_P1);
	raw_expect_closed(fd);
	close(fd);
	wait_log(&s, "TLS handshake failed", 5000);
	/* one that connects and says nothing does not hold up the others */
	fd = raw_connect(&s);
	srv_check_fresh(&s, &ck);
	srv_check_fresh(&s, &ck);
	close(fd);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

static void test_tls_concurrent(void)
{
	char *dir = make_handmade();
	struct lp_remote_opts o;
	struct fetch f[3];
	struct ckpt ck;
	struct srv s;

	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V2, true, NULL);
	remote_opts(&o, &s);
	for (int i = 0; i < 3; i++)
		fetch_open(&f[i], &ck, &o);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 3; i++)
			fetch_all(&f[i], PE_PRESENT, 1 + i * 50, 32);
	for (int i = 0; i < 3; i++)
		fetch_close(&f[i]);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

/* clang-format off */
static const struct lpt_case tls_cases[] = {
	LPT_CASE(test_tls_fetch_all_v1),
	LPT_CASE(test_tls_fetch_all_v2),
	LPT_CASE(test_tls_wrong_ca),
	LPT_CASE(test_tls_cn_verify),
	LPT_CASE(test_tls_crl_and_defaults),
	LPT_CASE(test_tls_plain_peer),
	LPT_CASE(test_tls_concurrent),
	LPT_END,
};
/* clang-format on */

/* ==== group hostile: broken and malicious clients ========================================= */

struct hostile {
	char *dir;
	struct ckpt ck;
	struct srv s;
};

static void hostile_start(struct hostile *h, int hdr)
{
	h->dir = make_handmade();
	ck_load(&h->ck, h->dir);
	srv_start(&h->s, h->dir, hdr, false, NULL);
}

static void hostile_end(struct hostile *h)
{
	srv_check_fresh(&h->s, &h->ck);
	srv_stop(&h->s);
	ck_free(&h->ck);
	free(h->dir);
}

static void test_hostile_short_header(void)
{
	struct hostile h;
	int fd;

	hostile_start(&h, PS_HDR_V2);
	fd = raw_connect(&h.s);
	raw_send(fd, "\x07\x00\x00\x00\x00\x00\x00\x00\x01\x00", 10);
	close(fd);
	wait_log(&h.s, "mid-header (10 of 32 bytes)", 5000);
	hostile_end(&h);
}

static void test_hostile_unknown_command(void)
{
	struct hostile h;
	int fd;

	hostile_start(&h, PS_HDR_V1);
	fd = raw_connect(&h.s);
	raw_get_check(fd, PS_HDR_V1, &h.ck, HM_P1, HM_A, 1, 1);
	raw_hdr(fd, PS_HDR_V1, 0xdead, 1, HM_A, HM_P1);
	raw_expect_closed(fd);
	close(fd);
	wait_log(&h.s, "unknown command 0xdead", 5000);
	fd = raw_connect(&h.s);
	raw_hdr(fd, PS_HDR_V1, PS_IOV_ADD_F | (PE_PRESENT << PS_CMD_BITS), 1, HM_A, HM_P1);
	raw_expect_closed(fd);
	close(fd);
	wait_log(&h.s, "command ADD_F", 5000);
	hostile_end(&h);
}

static void test_hostile_layout_mismatch(void)
{
	struct hostile h;
	int fd;

	/* a 32-byte client on a 24-byte server: nr_pages reads as the padding, 0 */
	hostile_start(&h, PS_HDR_V1);
	fd = raw_connect(&h.s);
	raw_hdr(fd, PS_HDR_V2, PS_IOV_GET, 1, HM_A, HM_P1);
	raw_expect_closed(fd);
	close(fd);
	wait_log(&h.s, "dropping the session", 5000);
	hostile_end(&h);
}

static void test_hostile_huge_nr(void)
{
	struct hostile h;
	int fd;

	hostile_start(&h, PS_HDR_V2);
	fd = raw_connect(&h.s);
	raw_get_check(fd, PS_HDR_V2, &h.ck, HM_P1, HM_E, 1ULL << 40, 300);
	raw_get_check(fd, PS_HDR_V2, &h.ck, HM_P1, HM_E + 10 * PG, UINT64_MAX, 290);
	raw_close_handshake(fd, PS_HDR_V2, PS_IOV_CLOSE);
	close(fd);
	hostile_end(&h);
}

static void hostile_get_drops(struct hostile *h, uint32_t pid, uint64_t vaddr, const char *log)
{
	int fd = raw_connect(&h->s);

	raw_get_check(fd, h->s.hdr, &h->ck, HM_P1, HM_A, 1, 1);
	raw_hdr(fd, h->s.hdr, PS_IOV_GET, 1, vaddr, pid);
	raw_expect_closed(fd);
	close(fd);
	wait_log(&h->s, log, 5000);
}

static void test_hostile_unknown_pid(void)
{
	struct hostile h;

	hostile_start(&h, PS_HDR_V1);
	hostile_get_drops(&h, 4242, HM_A, "GET pid 4242 vaddr 0x10000000 nr_pages 1: unknown pid");
	hostile_get_drops(&h, HM_DEAD, HM_A, "not alive in the checkpoint");
	hostile_end(&h);
}

static void test_hostile_bad_address(void)
{
	struct hostile h;

	hostile_start(&h, PS_HDR_V2);
	hostile_get_drops(&h, HM_P1, 0x50000000, "vaddr 0x50000000 nr_pages 1: no page data");
	hostile_get_drops(&h, HM_P1, HM_C, "vaddr 0x10010000 nr_pages 1: no page data");
	hostile_get_drops(&h, HM_P1, HM_D, "vaddr 0x10020000 nr_pages 1: no page data");
	hostile_get_drops(&h, HM_P1, HM_A + 1, "not page aligned");
	hostile_get_drops(&h, HM_P2, HM_A, "pid 11 vaddr 0x10000000 nr_pages 1: no page data");
	hostile_end(&h);
}

static void test_hostile_garbage(void)
{
	struct hostile h;
	uint8_t buf[65536];
	uint64_t x = 88172645463325252ULL;

	hostile_start(&h, PS_HDR_V1);
	for (int round = 0; round < 20; round++) {
		int fd = raw_connect(&h.s);

		for (size_t i = 0; i < sizeof(buf); i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = (uint8_t)x;
		}
		/* the server may drop us before it all went out */
		send(fd, buf, 1 + (x % sizeof(buf)), MSG_NOSIGNAL);
		close(fd);
	}
	hostile_end(&h);
}

static long rss_anon_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* GETs without reading the replies: the server keeps serving others, memory stays flat. */
static void test_hostile_never_reads(void)
{
	struct hostile h;
	long rss0, rss1;
	uint64_t sent = 0;
	int fd[3];

	hostile_start(&h, PS_HDR_V1);
	srv_check_fresh(&h.s, &h.ck);
	rss0 = rss_anon_kb(h.s.pid);
	for (int c = 0; c < 3; c++) {
		int small = 4096;

		fd[c] = raw_connect(&h.s);
		setsockopt(fd[c], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	/* each asks for 300 pages (1.2 MB) again and again until the server stops reading */
	for (int c = 0; c < 3; c++) {
		uint8_t b[PS_HDR_V1];
		struct ps_iov q = {PS_IOV_GET, 300, HM_E, HM_P1};
		long end = now_ms() + 3000;

		ps_encode(PS_HDR_V1, &q, b);
		while (now_ms() < end) {
			ssize_t n = send(fd[c], b, sizeof(b), MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n < 0 && errno == EAGAIN) {
				struct pollfd p = {.fd = fd[c], .events = POLLOUT};

				if (poll(&p, 1, 500) == 0)
					break; /* the server stopped reading from us */
				continue;
			}
			ASSERT_GT(n, 0);
			sent++;
			if (n < (ssize_t)sizeof(b)) {
				/* the rest of a split header, if the server still reads */
				struct pollfd p = {.fd = fd[c], .events = POLLOUT};

				if (poll(&p, 1, 500) == 0)
					break;
				raw_send(fd[c], b + n, sizeof(b) - n);
			}
		}
	}
	fprintf(stderr, "non-readers: %" PRIu64 " GETs (%" PRIu64 " MB asked for)\n", sent,
		(uint64_t)(sent * 300 * PG >> 20));
	ASSERT_UINT_GT(sent, 100);
	/* others are served meanwhile */
	for (int i = 0; i < 3; i++)
		srv_check_fresh(&h.s, &h.ck);
	rss1 = rss_anon_kb(h.s.pid);
	fprintf(stderr, "server RssAnon: %ld kB before, %ld kB with 3 stalled readers\n", rss0,
		rss1);
	ASSERT_GT(rss0, 0);
	ASSERT_LT(rss1 - rss0, 16 * 1024);
	for (int c = 0; c < 3; c++)
		close(fd[c]);
	hostile_end(&h);
}

static void test_hostile_disconnect_mid_reply(void)
{
	struct hostile h;

	hostile_start(&h, PS_HDR_V1);
	for (int i = 0; i < 20; i++) {
		int fd = raw_connect(&h.s), small = 4096;
		uint8_t buf[5000];

		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		for (int k = 0; k < 20; k++)
			raw_hdr(fd, PS_HDR_V1, PS_IOV_GET, 300, HM_E, HM_P1);
		raw_recv(fd, buf, sizeof(buf));
		if (i % 2) {
			struct linger l = {.l_onoff = 1, .l_linger = 0};

			setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)); /* RST */
		}
		close(fd);
	}
	wait_log(&h.s, "session dropped after", 5000);
	hostile_end(&h);
}

static void test_hostile_connection_flood(void)
{
	struct hostile h;
	int fd[100];

	hostile_start(&h, PS_HDR_V1);
	for (int i = 0; i < 100; i++)
		fd[i] = raw_connect(&h.s);
	srv_check_fresh(&h.s, &h.ck);
	for (int i = 0; i < 100; i++)
		close(fd[i]);
	hostile_end(&h);
}

static void test_hostile_max_sessions(void)
{
	static const char *const max[] = {"--max-sessions", "2", NULL};
	char *dir = make_handmade();
	struct ckpt ck;
	struct srv s;
	int a, b, c;

	ck_load(&ck, dir);
	srv_start(&s, dir, PS_HDR_V1, false, max);
	a = raw_connect(&s);
	b = raw_connect(&s);
	c = raw_connect(&s);
	raw_expect_closed(c);
	wait_log(&s, "refused: 2 sessions already", 5000);
	close(a);
	close(b);
	close(c);
	usleep(200000);
	srv_check_fresh(&s, &ck);
	srv_stop(&s);
	ck_free(&ck);
	free(dir);
}

/* clang-format off */
static const struct lpt_case hostile_cases[] = {
	LPT_CASE(test_hostile_short_header),
	LPT_CASE(test_hostile_unknown_command),
	LPT_CASE(test_hostile_layout_mismatch),
	LPT_CASE(test_hostile_huge_nr),
	LPT_CASE(test_hostile_unknown_pid),
	LPT_CASE(test_hostile_bad_address),
	LPT_CASE(test_hostile_garbage),
	LPT_CASE(test_hostile_never_reads),
	LPT_CASE(test_hostile_disconnect_mid_reply),
	LPT_CASE(test_hostile_connection_flood),
	LPT_CASE(test_hostile_max_sessions),
	LPT_END,
};
/* clang-format on */

/* ==== main ================================================================================= */

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		const struct lpt_case *cases;
	} groups[] = {
		{"proto", proto_cases}, {"remote", remote_cases},   {"serve", serve_cases},
		{"tls", tls_cases},	{"hostile", hostile_cases},
	};
	int ret;

	if (argc < 2) {
		fprintf(stderr, "usage: %s proto|remote|serve|tls|hostile [CASE...]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_INFO);
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		if (strcmp(argv[1], groups[g].name))
			continue;
		if (!strcmp(argv[1], "tls")) {
			char cmd[PATH_MAX];

			g_certs = lpt_mkdtemp("ps-certs");
			snprintf(cmd, sizeof(cmd), "test/ps/mkcerts.sh %s", g_certs);
			ret = system(cmd);
			if (WEXITSTATUS(ret) == 77) {
				fprintf(stderr, "SKIP: certtool (gnutls-bin) is not installed\n");
				return 77;
			}
			if (ret) {
				fprintf(stderr, "test/ps/mkcerts.sh failed\n");
				return 1;
			}
		}
		ret = lpt_main(groups[g].cases, argc - 1, argv + 1);
		if (g_certs) {
			lpt_rm_rf(g_certs);
			free(g_certs);
		}
		return ret;
	}
	fprintf(stderr, "unknown group '%s'\n", argv[1]);
	return 2;
}
