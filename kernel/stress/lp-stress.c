// SPDX-License-Identifier: MIT
/*
 * lp-stress: the real lazypages daemon against the real kernel, with a restored process
 * that does everything at once.
 *
 * It writes a checkpoint of one process with one private anonymous lazy VMA of -n pages
 * (every page's content is a function of its address), then, once per round, starts
 * `lazypages daemon` on it and plays `criu restore --lazy-pages`: it maps the VMA at its
 * address, opens a uffd with CRIU's features (0x4e), registers it MISSING, hands it over
 * (pid, then the uffd in SCM_RIGHTS) and sends the finish word at the start of the round or
 * after a short random delay, so that the daemon's background fill races with the faults.
 * One daemon serves one restore and exits when every page is in place, so a round is one
 * daemon run. During a round:
 *
 *   -t N   faulting threads read and verify every page, each in its own random order
 *   -m     a thread discards random pages with MADV_DONTNEED (REMOVE events); a discarded
 *          page must read as zeros afterwards, never as image data
 *   -f     a thread forks children that read and verify random pages, then exit (FORK)
 *   -s     a thread sends SIGUSR1 to the faulting threads (interrupted fault waits, duplicate
 *          fault messages); the forking thread signals its children too
 *
 * The main thread is a watchdog. Every access publishes its page and its start time. One
 * blocked longer than -w ms is classified with mincore() (children: /proc/PID/pagemap):
 * page present means LOST WAKEUP (kernel or protocol bug), page missing means UNSERVED FAULT
 * (daemon bug). The thread is then released with UFFDIO_WAKE on a copy of the uffd that a
 * helper process keeps (see keeper_main() for why that deviation from CRIU is harmless);
 * a stuck child is killed. A madvise() or fork() blocked that long means the daemon does
 * not read events, and the round is aborted: daemon killed, uffd closed, which releases
 * everyone. Nothing can hang: a round that outlives -T seconds is aborted the same way.
 *
 * At the end of each round: every page is verified again, and the daemon's --stats-file
 * must show every lazy page installed exactly once:
 *   pages_faulted + pages_filled + pages_dropped + pages_orphaned == lazy_pages + fork_pages
 * cross-checked with what the process saw itself (pages found missing when touched, pages
 * discarded while missing).
 *
 *   -b     self-test: the daemon runs with --inject-bug dontwake (the broken protocol of
 *          uffd_daemon.pml POLICY 1); the watchdog must catch lost wakeups
 *
 * Exit: 0 pass, 2 the watchdog fired (or a round hung), 3 wrong data or a broken invariant,
 * 1 setup error, 77 userfaultfd not available to this user.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "magic.h"
#include "uffd-abi.h"
#include "writer.h"
#include "restore-side.h"

#define PG	    4096ULL
#define BASE	    0x220000000000ULL
#define MAX_PAGES   (1ULL << 22) /* 16 GiB */
#define IMG_PID	    1
#define FINISH_WORD 0x52535446U /* "RSTF" */
#define NCHILD	    2		/* children alive at once */
#define CHILD_PAGES 128		/* pages each child reads */
#define MAX_REPORT  20		/* wrong-data messages printed per round */
#define MAX_ADDRS   8		/* addresses looked up in the daemon log per round */

enum { EXIT_PASS = 0, EXIT_SETUP = 1, EXIT_WATCHDOG = 2, EXIT_VERIFY = 3, EXIT_SKIP = 77 };

/* Per-page discard state, written by the discarding thread only. */
#define DS_DONE	    1 /* discarded: reads as zeros from now on */
#define DS_INFLIGHT 2 /* madvise() under way: zeros or image data */

static struct {
	const char *lazypages;
	unsigned int threads;
	uint64_t npages;
	unsigned int rounds;
	bool madv, fork, sig, bug, keep, quiet;
	unsigned int wd_ms;
	unsigned int timeout_s;
	unsigned int max_delay_ms;
	unsigned int fault_around; /* 0: vary per round */
	const char *fill_chunk;	   /* NULL: vary per round */
	int fill_threads;	   /* -1: vary per round */
	int verbosity;
	uint64_t seed;
} o = {
	.threads = 4,
	.npages = 4096,
	.rounds = 5,
	.wd_ms = 2000,
	.timeout_s = 60,
	.max_delay_ms = 20,
	.fill_threads = -1,
	.verbosity = 4,
};

static char topdir[PATH_MAX], imgdir[PATH_MAX + 8], workdir[PATH_MAX + 8];

/* ---- what one round observed ------------------------------------------------------------- */

struct dstats {
	uint64_t lazy_pages, fork_pages, pages_faulted, pages_filled, pages_zero, pages_dropped,
		pages_orphaned, eexist, fault_messages, procs, forks, exited, ev_fork, ev_remove;
};

struct round {
	unsigned int nr;
	uint64_t t0, t_daemon_exit; /* round start, daemon seen exiting (ns) */
	unsigned int fa, fill_threads;
	const char *chunk;
	uint64_t fin_delay_ns;

	atomic_ulong accesses, touch_missing, errors, reported;
	atomic_ulong madvises, discard_pages, discard_first_missing, zapped;
	atomic_ulong forks, child_missing, child_errors, children_killed, sigs_sent;
	atomic_ulong child_sigs;
	unsigned long wd_wakes, wd_lost, wd_unserved, wd_spin, wd_child, wd_event, wd_hang;
	unsigned long inv_errors, holes;
	uint64_t touched_distinct;
	bool aborted, have_stats;
	int daemon_status;
	struct dstats st;
	double secs;
	uint64_t addrs[MAX_ADDRS];
	unsigned int naddrs;
	char log[PATH_MAX + 32], stats[PATH_MAX + 32];
};

static struct {
	unsigned long rounds, pages, faulted, filled, zero, dropped, orphaned, inherited, eexist,
		faults, madvises, discard_pages, forks, sigs, hits, lost, unserved, child, event,
		hang, spin, errors, inv_errors, bad_rounds, accesses, touch_missing;
	double secs;
} tot;

/* ---- shared by the threads of a round ------------------------------------------------------ */

static uint8_t *mem;		 /* the lazy VMA at BASE */
static _Atomic uint8_t *dstate;	 /* per page: DS_* */
static _Atomic uint8_t *touched; /* per page: a faulting thread found it missing */
static _Atomic uint64_t *dtime;	 /* per page: when its last madvise() started, ns */
static pthread_barrier_t start_line;
static atomic_int stop_storms;
static atomic_uint faulters_done, storms_done;
static atomic_int daemon_alive;
static atomic_ulong signals_seen;
static int sk = -1; /* the restore socket */
static pid_t dpid;  /* the daemon (its process group) */

struct slot { /* a faulting thread */
	pthread_t th;
	pid_t tid;
	uint32_t *perm;
	struct round *r;
	_Atomic uint64_t since; /* ns, 0: not in an access */
	_Atomic uint64_t page;
	atomic_int done;
	/* watchdog's own bookkeeping */
	uint64_t wd_since, lw_seen;
	unsigned int wd_reports;
};

struct cslot { /* a forked child, in shared memory */
	_Atomic pid_t pid;
	_Atomic uint64_t since, page;
	atomic_int kill_req;
	_Atomic uint64_t missing, errors, sigs, bad_page, bad_word, bad_val;
	_Atomic uint8_t bad_state;
	uint64_t wd_since, lw_seen; /* watchdog's (parent only) */
	uint64_t fork_t0, fork_t1;  /* parent: fork() called, fork() returned */
	_Atomic uint64_t bad_t;	    /* child: when it read the bad page */
	_Atomic uint8_t bad_was_missing;
	char bad_flags[96]; /* child: VmFlags of the VMA holding the bad page */
};

enum { EV_MADV, EV_FORK, NR_EV };
struct evslot { /* a thread inside a syscall that raises a uffd event */
	const char *what;
	_Atomic uint64_t since, page;
	uint64_t wd_since;
};

static struct slot *slots;
static struct cslot *cslots;
static struct evslot evs[NR_EV] = {{.what = "madvise(MADV_DONTNEED)"}, {.what = "fork()"}};

/* ---- small helpers ----------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000ULL, .tv_nsec = ns % 1000000000ULL};

	nanosleep(&ts, NULL);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t z = a + b * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	z ^= z >> 31;
	return z ? z : 1;
}

/* The image's content: word K of the page at ADDR. */
static uint64_t word(uint64_t addr, unsigned int k)
{
	uint64_t x =
		addr * 0x9E3779B97F4A7C15ULL + k * 0xBF58476D1CE4E5B9ULL + 0x5851F42D4C957F2DULL;

	x ^= x >> 29;
	return x ? x : 1; /* never 0: zeros and image data are always told apart */
}

static uint64_t page_addr(uint64_t i)
{
	return BASE + i * PG;
}

/* The access: read all of page I. */
static void read_page(uint64_t i, uint64_t *buf)
{
	const volatile uint64_t *p = (const volatile uint64_t *)(mem + i * PG);

	for (unsigned int k = 0; k < PG / 8; k++)
		buf[k] = p[k];
}

/*
 * Does BUF hold what page I may hold, given its discard state before (S1) and after (S2)
 * the read? Discarded before the read: zeros only (image data would be stale data brought
 * back after MADV_DONTNEED). A discard during the read: each word zero or image. No discard:
 * image data only. Returns the first bad word, or -1.
 */
static int bad_word(uint64_t i, const uint64_t *buf, uint8_t s1, uint8_t s2)
{
	uint64_t a = page_addr(i);

	for (unsigned int k = 0; k < PG / 8; k++) {
		uint64_t want = word(a, k);
		bool ok;

		if (s1 & DS_DONE)
			ok = buf[k] == 0;
		else if (s1 | s2)
			ok = buf[k] == 0 || buf[k] == want;
		else
			ok = buf[k] == want;
		if (!ok)
			return (int)k;
	}
	return -1;
}

static const char *expected(uint8_t s1, uint8_t s2)
{
	if (s1 & DS_DONE)
		return "zeros (discarded before the read)";
	if (s1 | s2)
		return "image data or zeros (discarded during the read)";
	return "image data";
}

static void note_addr(struct round *r, uint64_t addr)
{
	if (r->naddrs < MAX_ADDRS)
		r->addrs[r->naddrs++] = addr;
}

static void bad_data(struct round *r, const char *who, pid_t tid, uint64_t i, int k, uint64_t got,
		     uint8_t s1, uint8_t s2)
{
	atomic_fetch_add(&r->errors, 1);
	if (atomic_fetch_add(&r->reported, 1) >= MAX_REPORT)
		return;
	fprintf(stderr,
		"round %u: WRONG DATA: %s (pid %d, tid %d) page %llu (%#llx) word %d: %#llx; "
		"expected %s, image word %#llx\n",
		r->nr, who, getpid(), tid, (unsigned long long)i, (unsigned long long)page_addr(i),
		k, (unsigned long long)got, expected(s1, s2),
		(unsigned long long)word(page_addr(i), k));
}

static bool page_missing(uint64_t i)
{
	unsigned char vec = 0;

	return mincore(mem + i * PG, PG, &vec) == 0 && !(vec & 1);
}

/* A task's state letter and wait channel, for watchdog reports. */
static void task_state(pid_t pid, pid_t tid, char *state, char *wchan, size_t wlen)
{
	char path[96], buf[512];
	ssize_t n;
	int fd;

	*state = '?';
	snprintf(wchan, wlen, "?");
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			char *p;

			buf[n] = 0;
			p = strrchr(buf, ')');
			if (p && p[1] == ' ')
				*state = p[2];
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			size_t l = (size_t)n < wlen - 1 ? (size_t)n : wlen - 1;

			memcpy(wchan, buf, l);
			wchan[l] = 0;
		}
	}
}

/* Is the page at ADDR present in process PID? (-1: cannot tell) */
static int present_in(pid_t pid, uint64_t addr)
{
	char path[64];
	uint64_t e;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pread(fd, &e, sizeof(e), (off_t)(addr / PG * 8)) != sizeof(e)) {
		close(fd);
		return -1;
	}
	close(fd);
	return !!(e & (1ULL << 63));
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the checkpoint ------------------------------------------------------------------------ */

static int write_ckpt(void)
{
	uint32_t th[1] = {IMG_PID};
	struct lp_task t = {
		.pid = IMG_PID, .pgid = IMG_PID, .sid = IMG_PID, .nr_threads = 1, .threads = th};
	struct lp_pstree pt = {.nr = 1, .tasks = &t};
	struct lp_vma v = {.start = BASE,
			   .end = BASE + o.npages * PG,
			   .prot = PROT_READ | PROT_WRITE,
			   .flags = MAP_PRIVATE | MAP_ANONYMOUS,
			   .status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE};
	struct lp_mm mm = {.nr = 1, .vmas = &v};
	struct lp_pme e = {.vaddr = BASE, .nr_pages = o.npages, .flags = PE_LAZY | PE_PRESENT};
	const uint64_t batch = 64;
	struct lp_img_writer w;
	struct lp_images im;
	uint64_t *buf;
	int ret;

	if (mkdir(imgdir, 0755) || mkdir(workdir, 0755)) {
		perror("lp-stress: mkdir");
		return -errno;
	}
	buf = malloc(batch * PG);
	if (!buf)
		return -ENOMEM;
	ret = lp_images_open_dir(&im, imgdir);
	if (ret) {
		free(buf);
		return ret;
	}
	ret = lp_write_inventory(&im) ?: lp_write_pstree(&im, &pt) ?:
	      lp_write_core(&im, IMG_PID, TASK_ALIVE, "lp-stress") ?:
	      lp_write_mm(&im, IMG_PID, &mm, NULL, 0) ?:
	      lp_write_pagemap(&im, IMG_PID, 1, &e, 1, LP_PM_BOTH);
	lp_img_create(&im, "pages-1.img", RAW_IMAGE_MAGIC, &w);
	for (uint64_t i = 0; !ret && i < o.npages; i += batch) {
		uint64_t n = o.npages - i < batch ? o.npages - i : batch;

		for (uint64_t j = 0; j < n; j++)
			for (unsigned int k = 0; k < PG / 8; k++)
				buf[j * (PG / 8) + k] = word(page_addr(i + j), k);
		ret = lp_img_write_raw(&w, buf, n * PG);
	}
	ret = lp_img_writer_close(&w) ?: ret;
	lp_images_close(&im);
	free(buf);
	return ret;
}

/* ---- the daemon ---------------------------------------------------------------------------- */

static pid_t start_daemon(struct round *r)
{
	char fa[16], ft[16], v[8];
	const char *argv[32];
	int pfd[2], n = 0;
	char c;
	struct pollfd p;
	pid_t pid;

	snprintf(fa, sizeof(fa), "%u", r->fa);
	snprintf(ft, sizeof(ft), "%u", r->fill_threads);
	snprintf(v, sizeof(v), "-v%d", o.verbosity);
	argv[n++] = o.lazypages;
	argv[n++] = "daemon";
	argv[n++] = "-D";
	argv[n++] = imgdir;
	argv[n++] = "-W";
	argv[n++] = workdir;
	argv[n++] = "--status-fd";
	argv[n++] = "3";
	argv[n++] = "-o";
	argv[n++] = r->log;
	argv[n++] = v;
	argv[n++] = "--stats-file";
	argv[n++] = r->stats;
	argv[n++] = "--fault-around";
	argv[n++] = fa;
	argv[n++] = "--fill-chunk";
	argv[n++] = r->chunk;
	argv[n++] = "--fill-threads";
	argv[n++] = ft;
	if (o.bug) {
		argv[n++] = "--inject-bug";
		argv[n++] = "dontwake";
	}
	argv[n] = NULL;

	if (pipe2(pfd, O_CLOEXEC)) {
		perror("lp-stress: pipe");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		perror("lp-stress: fork");
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		/* Its own process group: an abort kills the supervisor and its server at once. */
		setpgid(0, 0);
		if (pfd[1] == 3)
			fcntl(3, F_SETFD, 0);
		else if (dup2(pfd[1], 3) < 0)
			_exit(127);
		execv(o.lazypages, (char **)argv);
		fprintf(stderr, "lp-stress: cannot run %s: %s\n", o.lazypages, strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(pfd[1]);
	p.fd = pfd[0];
	p.events = POLLIN;
	if (poll(&p, 1, 20000) != 1 || read(pfd[0], &c, 1) != 1) {
		int st;

		fprintf(stderr, "lp-stress: round %u: the daemon did not get ready (log: %s)\n",
			r->nr, r->log);
		kill(-pid, SIGKILL);
		waitpid(pid, &st, 0);
		close(pfd[0]);
		return -1;
	}
	close(pfd[0]);
	return pid;
}

static bool daemon_exited(void)
{
	siginfo_t si = {0};

	return !waitid(P_PID, dpid, &si, WEXITED | WNOHANG | WNOWAIT) && si.si_pid == dpid;
}

static void kill_daemon(void)
{
	if (atomic_load(&daemon_alive))
		kill(-dpid, SIGKILL);
}


/*
 * The keeper: a helper process that holds a copy of the uffd for the watchdog.
 *
 * Deviation from CRIU: the restored process closes its uffd once it has sent it; the
 * daemon then holds the only reference. The watchdog wants one more, to UFFDIO_WAKE a
 * thread it has classified as stuck. That copy must not live in the restored process
 * itself: fork() copies the file table before the memory, so a child being forked would
 * hold a reference too, and if the daemon exits while that fork waits for its FORK event
 * to be read, the uffd never dies and the fork never returns. So the copy lives in a
 * separate process, forked before the VMA is registered (no FORK event, no uffd in the
 * restored process's file table). It is harmless: only the watchdog uses it, only after
 * classifying an access as stuck, and the daemon sees exactly what criu sends. The keeper
 * is killed the moment the daemon exits (from then on criu's semantics hold exactly:
 * nobody holds the uffd) and when a round is aborted (every waiter is then released).
 */
static pid_t keeper_pid = -1;
static int keeper_fd = -1; /* our end of the socket to the keeper */

static void __attribute__((noreturn)) keeper_main(int uffd, int fd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) {
		struct uffdio_range rg = {.len = PG};
		int32_t e;

		if (read(fd, &rg.start, sizeof(rg.start)) != sizeof(rg.start))
			_exit(0);
		e = ioctl(uffd, UFFDIO_WAKE, &rg) ? errno : 0;
		if (write(fd, &e, sizeof(e)) != sizeof(e))
			_exit(0);
	}
}

static int start_keeper(int uffd)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	keeper_pid = fork();
	if (keeper_pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (keeper_pid == 0) {
		close(sv[0]);
		keeper_main(uffd, sv[1]);
	}
	close(sv[1]);
	keeper_fd = sv[0];
	return 0;
}

/* UFFDIO_WAKE of the page at ADDR, through the keeper. Returns 0 or -errno. */
static int keeper_wake(uint64_t addr)
{
	struct pollfd p = {.fd = keeper_fd, .events = POLLIN};
	int32_t e;

	if (keeper_fd < 0)
		return -EBADF;
	if (send(keeper_fd, &addr, sizeof(addr), MSG_NOSIGNAL) != sizeof(addr))
		return -errno;
	if (poll(&p, 1, 1000) != 1 || read(keeper_fd, &e, sizeof(e)) != sizeof(e))
		return -EIO;
	return -e;
}

/* Kill the keeper: from now on nobody but the daemon holds the uffd. */
static void stop_keeper(void)
{
	if (keeper_pid > 0)
		kill(keeper_pid, SIGKILL);
	if (keeper_fd >= 0)
		close(keeper_fd);
	keeper_fd = -1;
}

static void reap_keeper(void)
{
	stop_keeper();
	if (keeper_pid > 0)
		waitpid(keeper_pid, NULL, 0);
	keeper_pid = -1;
}

/*
 * Register the VMA like criu's restorer does and hand the uffd over. Returns 0, -EPERM
 * when this user may not use userfaultfd with these features, or another -errno.
 */
static int hand_over(void)
{
	struct uffdio_api api = {.api = UFFD_API, .features = LP_UFFD_CRIU_FEATURES};
	struct uffdio_register reg = {.range = {.start = BASE, .len = o.npages * PG},
				      .mode = UFFDIO_REGISTER_MODE_MISSING};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int uffd, ret;

	if (strlen(workdir) + sizeof("/lazy-pages.socket") > sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, workdir, strlen(workdir));
	memcpy(sa.sun_path + strlen(workdir), "/lazy-pages.socket", sizeof("/lazy-pages.socket"));
	uffd = lp_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return -errno;
	ret = ioctl(uffd, UFFDIO_API, &api) ? -errno : 0;
	if (!ret)
		ret = start_keeper(uffd); /* before registering: see keeper_main() */
	if (!ret && ioctl(uffd, UFFDIO_REGISTER, &reg))
		ret = -errno;
	if (!ret) {
		sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (sk < 0 || connect(sk, (struct sockaddr *)&sa, sizeof(sa)))
			ret = -errno;
	}
	if (!ret)
		ret = lpt_send_uffd(sk, IMG_PID, uffd);
	close(uffd); /* as criu does */
	return ret;
}

/* ---- the restored process's threads ------------------------------------------------------- */

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add_explicit(&signals_seen, 1, memory_order_relaxed);
}

static void *faulter(void *arg)
{
	struct slot *sl = arg;
	struct round *r = sl->r;
	uint64_t buf[PG / 8], missing = 0;

	sl->tid = gettid();
	pthread_barrier_wait(&start_line);
	for (uint64_t j = 0; j < o.npages; j++) {
		uint64_t i = sl->perm[j];
		uint8_t s1, s2;
		int k;

		s1 = atomic_load(&dstate[i]);
		if (page_missing(i)) {
			atomic_store_explicit(&touched[i], 1, memory_order_relaxed);
			missing++;
		}
		atomic_store_explicit(&sl->page, i, memory_order_relaxed);
		atomic_store_explicit(&sl->since, now_ns(), memory_order_release);
		read_page(i, buf);
		atomic_store_explicit(&sl->since, 0, memory_order_release);
		atomic_thread_fence(memory_order_seq_cst);
		s2 = atomic_load(&dstate[i]);
		k = bad_word(i, buf, s1, s2);
		if (k >= 0)
			bad_data(r, "faulting thread", sl->tid, i, k, buf[k], s1, s2);
	}
	atomic_fetch_add(&r->accesses, o.npages);
	atomic_fetch_add(&r->touch_missing, missing);
	atomic_store(&sl->done, 1);
	atomic_fetch_add(&faulters_done, 1);
	return NULL;
}

static void *discarder(void *arg)
{
	struct round *r = arg;
	uint64_t seed = mix(o.seed, r->nr * 1000 + 901), distinct = 0;
	uint64_t limit = o.npages / 8 ? o.npages / 8 : 1;

	pthread_barrier_wait(&start_line);
	while (!atomic_load(&stop_storms) && distinct < limit) {
		uint64_t i = rnd(&seed) % o.npages, len = 1 + rnd(&seed) % 4;
		unsigned char vec[4] = {0};

		if (len > o.npages - i)
			len = o.npages - i;
		mincore(mem + i * PG, len * PG, vec);
		for (uint64_t j = 0; j < len; j++) {
			if (!(atomic_load(&dstate[i + j]) & DS_DONE)) {
				/* First discard of this page: the daemon may drop it only if missing. */
				distinct++;
				if (!(vec[j] & 1))
					atomic_fetch_add(&r->discard_first_missing, 1);
			}
			atomic_fetch_or(&dstate[i + j], DS_INFLIGHT);
			atomic_store(&dtime[i + j], now_ns());
		}
		atomic_store(&evs[EV_MADV].page, i);
		atomic_store(&evs[EV_MADV].since, now_ns());
		if (madvise(mem + i * PG, len * PG, MADV_DONTNEED))
			fprintf(stderr, "round %u: madvise(%#llx, %llu pages): %s\n", r->nr,
				(unsigned long long)page_addr(i), (unsigned long long)len,
				strerror(errno));
		atomic_store(&evs[EV_MADV].since, 0);
		atomic_fetch_add(&r->zapped, len);
		for (uint64_t j = 0; j < len; j++)
			atomic_store(&dstate[i + j], DS_DONE);
		atomic_fetch_add(&r->madvises, 1);
		sleep_ns(100000 + rnd(&seed) % 900000);
	}
	atomic_store(&r->discard_pages, distinct);
	atomic_fetch_add(&storms_done, 1);
	return NULL;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * The VmFlags line of the VMA holding ADDR, from /proc/self/smaps ("um": still registered
 * with userfaultfd in MISSING mode). No allocation: also used by forked children.
 */
static void vma_flags(uint64_t addr, char *out, size_t len)
{
	char buf[4096], line[256];
	size_t ll = 0;
	bool in = false;
	ssize_t n;
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);

	snprintf(out, len, "?");
	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			unsigned long long a, b;
			char perms[8];

			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = 0;
			ll = 0;
			if (sscanf(line, "%llx-%llx %7s", &a, &b, perms) == 3 && strlen(perms) == 4)
				in = addr >= a && addr < b; /* a VMA's first line */
			else if (in && !strncmp(line, "VmFlags:", 8)) {
				size_t l = strlen(line + 9) < len - 1 ? strlen(line + 9) : len - 1;

				memcpy(out, line + 9, l);
				out[l] = 0;
				close(fd);
				return;
			}
		}
	}
	close(fd);
}

/*
 * A forked child: read CHILD_PAGES distinct pages and check them against the discard state
 * it inherited (its copy of dstate is frozen at the fork). Never returns.
 */
static void __attribute__((noreturn)) child_main(struct cslot *cs, uint64_t seed)
{
	uint64_t buf[PG / 8], n = o.npages, cnt = n < CHILD_PAGES ? n : CHILD_PAGES;
	uint64_t start = rnd(&seed) % n, stride = 1 + rnd(&seed) % n, missing = 0, errors = 0;

	/* Not ours: the restore socket, the keeper's socket. */
	if (keeper_fd >= 0)
		close(keeper_fd);
	if (sk >= 0)
		close(sk);
	atomic_store(&cs->pid, getpid());
	atomic_store(&signals_seen, 0);
	while (gcd(stride, n) != 1)
		stride++;
	for (uint64_t j = 0; j < cnt; j++) {
		uint64_t i = (start + j * stride) % n;
		uint8_t s = atomic_load(&dstate[i]);
		bool was_missing = page_missing(i);
		int k;

		if (was_missing)
			missing++;
		atomic_store(&cs->page, i);
		atomic_store(&cs->since, now_ns());
		read_page(i, buf);
		atomic_store(&cs->since, 0);
		k = bad_word(i, buf, s, s);
		if (k >= 0 && !errors++) {
			atomic_store(&cs->bad_t, now_ns());
			atomic_store(&cs->bad_was_missing, was_missing);
			vma_flags(page_addr(i), cs->bad_flags, sizeof(cs->bad_flags));
			atomic_store(&cs->bad_page, i);
			atomic_store(&cs->bad_word, (uint64_t)k);
			atomic_store(&cs->bad_val, buf[k]);
			atomic_store(&cs->bad_state, s);
		}
	}
	atomic_store(&cs->missing, missing);
	atomic_store(&cs->errors, errors);
	atomic_store(&cs->sigs, atomic_load(&signals_seen)); /* this child's own count */
	_exit(errors ? EXIT_VERIFY : 0);
}

/* Account for a reaped child. */
static void child_reaped(struct round *r, struct cslot *cs, pid_t pid, int st)
{
	atomic_fetch_add(&r->child_missing, atomic_load(&cs->missing));
	atomic_fetch_add(&r->child_sigs, atomic_load(&cs->sigs));
	if (atomic_load(&cs->kill_req)) {
		atomic_fetch_add(&r->children_killed, 1);
		return;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_VERIFY) {
		uint64_t i = atomic_load(&cs->bad_page);
		uint8_t s = atomic_load(&cs->bad_state);

		uint64_t dt = atomic_load(&dtime[i]);

		atomic_fetch_add(&r->child_errors, atomic_load(&cs->errors));
		atomic_fetch_add(&r->errors, atomic_load(&cs->errors));
		note_addr(r, page_addr(i));
		fprintf(stderr,
			"round %u: child %d: forked at +%.3f ms (fork took %llu us), read the bad page "
			"at +%.3f ms, page was %s before the read, VMA flags now: %s\n",
			r->nr, pid, (cs->fork_t0 - r->t0) / 1e6,
			(unsigned long long)(cs->fork_t1 - cs->fork_t0) / 1000,
			(atomic_load(&cs->bad_t) - r->t0) / 1e6,
			atomic_load(&cs->bad_was_missing) ? "missing" : "present", cs->bad_flags);
		if (dt)
			fprintf(stderr,
				"round %u: the parent discarded page %llu (madvise started %+lld us "
				"from the start of the fork, which took %llu us)\n",
				r->nr, (unsigned long long)i, (long long)(dt - cs->fork_t0) / 1000,
				(unsigned long long)(cs->fork_t1 - cs->fork_t0) / 1000);
		fprintf(stderr,
			"round %u: WRONG DATA: forked child pid %d: %llu bad pages, first page %llu "
			"(%#llx) word %llu: %#llx; expected %s, image word %#llx\n",
			r->nr, pid, (unsigned long long)atomic_load(&cs->errors),
			(unsigned long long)i, (unsigned long long)page_addr(i),
			(unsigned long long)atomic_load(&cs->bad_word),
			(unsigned long long)atomic_load(&cs->bad_val), expected(s, s),
			(unsigned long long)word(page_addr(i), atomic_load(&cs->bad_word)));
		return;
	}
	atomic_fetch_add(&r->errors, 1);
	fprintf(stderr, "round %u: forked child pid %d ended with status %#x\n", r->nr, pid, st);
}

static void *forker(void *arg)
{
	struct round *r = arg;
	uint64_t seed = mix(o.seed, r->nr * 1000 + 902);

	pthread_barrier_wait(&start_line);
	while (!atomic_load(&stop_storms)) {
		pid_t pids[NCHILD];
		unsigned int live = 0;

		for (unsigned int c = 0; c < NCHILD; c++) {
			struct cslot *cs = &cslots[c];
			uint64_t cseed = rnd(&seed);

			memset(cs, 0, sizeof(*cs));
			cs->fork_t0 = now_ns();
			atomic_store(&evs[EV_FORK].since, cs->fork_t0);
			pids[c] = fork();
			if (pids[c] == 0)
				child_main(cs, cseed);
			cs->fork_t1 = now_ns();
			atomic_store(&evs[EV_FORK].since, 0);
			if (pids[c] < 0) {
				fprintf(stderr, "round %u: fork: %s\n", r->nr, strerror(errno));
				break;
			}
			atomic_store(&cs->pid, pids[c]);
			atomic_fetch_add(&r->forks, 1);
			live |= 1U << c;
		}
		/* Only this thread reaps or signals its children: their pids cannot be reused. */
		while (live) {
			for (unsigned int c = 0; c < NCHILD; c++) {
				struct cslot *cs = &cslots[c];
				int st;

				if (!(live & (1U << c)))
					continue;
				if (waitpid(pids[c], &st, WNOHANG) == pids[c]) {
					child_reaped(r, cs, pids[c], st);
					live &= ~(1U << c);
					continue;
				}
				if (atomic_load(&cs->kill_req) == 1) {
					kill(pids[c], SIGKILL);
					atomic_store(&cs->kill_req, 2);
				} else if (o.sig && rnd(&seed) % 4 == 0) {
					kill(pids[c], SIGUSR1);
					atomic_fetch_add(&r->sigs_sent, 1);
				}
			}
			if (live)
				sleep_ns(100000);
		}
		sleep_ns(rnd(&seed) % 2000000);
	}
	atomic_fetch_add(&storms_done, 1);
	return NULL;
}

static void *signaller(void *arg)
{
	struct round *r = arg;
	uint64_t seed = mix(o.seed, r->nr * 1000 + 903);

	pthread_barrier_wait(&start_line);
	while (!atomic_load(&stop_storms)) {
		struct slot *sl = &slots[rnd(&seed) % o.threads];

		/* A finished thread still exists until it is joined: its tid is still its own. */
		if (!atomic_load(&sl->done)) {
			syscall(SYS_tgkill, getpid(), sl->tid, SIGUSR1);
			atomic_fetch_add(&r->sigs_sent, 1);
		}
		sleep_ns(20000 + rnd(&seed) % 180000);
	}
	atomic_fetch_add(&storms_done, 1);
	return NULL;
}

/* ---- the watchdog ------------------------------------------------------------------------- */

static void abort_round(struct round *r, const char *why)
{
	if (r->aborted)
		return;
	r->aborted = true;
	fprintf(stderr,
		"round %u: ABORT: %s: killing the daemon and closing the uffd, which releases "
		"every waiter (pages still missing become zero pages)\n",
		r->nr, why);
	kill_daemon();
	stop_keeper();
	for (unsigned int c = 0; c < NCHILD; c++)
		if (!atomic_load(&cslots[c].kill_req))
			atomic_store(&cslots[c].kill_req, 1);
}

/* A thread asleep in handle_userfault(): what a thread waiting for its page looks like. */
static bool in_userfault(char state, const char *wchan)
{
	return state == 'S' && strstr(wchan, "userfault");
}

/*
 * How long a thread may sleep in handle_userfault() on a page that is already present
 * before it counts as a lost wakeup, with a second look at least as long after the first.
 * An installer wakes the range right after its copy; a multi-page copy wakes at its end.
 */
static uint64_t lw_ns(uint64_t wd)
{
	return wd / 2 < 100000000ULL ? wd / 2 : 100000000ULL;
}

static void report_thread(struct round *r, unsigned int t, uint64_t since, uint64_t now, uint64_t i,
			  const char *what, const char *page, char state, const char *wchan)
{
	struct slot *sl = &slots[t];
	uint64_t a = page_addr(i);

	note_addr(r, a);
	fprintf(stderr,
		"round %u: WATCHDOG: %s: pid %d thread %u (tid %d) blocked %llu ms reading page "
		"%llu (%#llx); page %s; thread state %c (%s)%s\n",
		r->nr, what, getpid(), t, sl->tid, (unsigned long long)((now - since) / 1000000),
		(unsigned long long)i, (unsigned long long)a, page, state, wchan,
		keeper_fd >= 0 ? "; UFFDIO_WAKE sent" : "");
	if (keeper_fd >= 0) {
		int e = keeper_wake(a);

		if (e)
			fprintf(stderr, "round %u: UFFDIO_WAKE %#llx: %s\n", r->nr,
				(unsigned long long)a, strerror(-e));
		else
			r->wd_wakes++;
	}
}

/*
 * Watch the faulting threads. An access is classified once it has lasted -w ms: page
 * missing means UNSERVED FAULT, page present means LOST WAKEUP. Two cases are certain
 * earlier: a thread asleep in handle_userfault() on a present page, seen so twice lw_ns()
 * apart; and, AT_EXIT (the daemon has just exited, so no installer is left), any thread
 * asleep in handle_userfault() on a present page. The second matters because a lost wakeup
 * lasts only until the uffd is closed: the close wakes every waiter and hides it.
 */
static void watch_threads(struct round *r, uint64_t now, uint64_t wd, bool at_exit)
{
	uint64_t lw = lw_ns(wd);

	for (unsigned int t = 0; t < o.threads; t++) {
		struct slot *sl = &slots[t];
		uint64_t since = atomic_load_explicit(&sl->since, memory_order_acquire), i, age;
		char state, wchan[64];
		bool missing, slow, stuck;

		if (!since || since > now)
			continue;
		if (since != sl->wd_since) {
			sl->wd_since = since;
			sl->wd_reports = 0;
			sl->lw_seen = 0;
		}
		age = now - since;
		slow = age >= (sl->wd_reports + 1) * wd;
		if (!slow && !at_exit && (age < lw || sl->wd_reports))
			continue;
		i = atomic_load(&sl->page);
		missing = page_missing(i);
		task_state(getpid(), sl->tid, &state, wchan, sizeof(wchan));
		if (atomic_load(&sl->since) != since)
			continue; /* it got through meanwhile */
		stuck = !missing && in_userfault(state, wchan);
		if (!slow) {
			if (!stuck || sl->wd_reports) {
				sl->lw_seen = 0;
				continue;
			}
			if (!at_exit && !sl->lw_seen) {
				sl->lw_seen = now;
				continue;
			}
			if (!at_exit && now - sl->lw_seen < lw)
				continue;
			sl->wd_reports++;
			r->wd_lost++;
			report_thread(
				r, t, since, now, i, "LOST WAKEUP",
				at_exit ? "present, the daemon has exited: nobody woke the thread "
					  "(kernel or protocol bug)"
					: "present: nobody woke the thread (kernel or protocol bug)",
				state, wchan);
			continue;
		}
		if (!missing && !in_userfault(state, wchan) && sl->wd_reports < 4) {
			/* Present and not waiting for it: slow, not stuck. Look again later. */
			sl->wd_reports++;
			continue;
		}
		sl->wd_reports++;
		if (missing) {
			r->wd_unserved++;
			report_thread(r, t, since, now, i, "UNSERVED FAULT",
				      "missing: the daemon never served it (daemon bug)", state,
				      wchan);
		} else if (stuck) {
			r->wd_lost++;
			report_thread(r, t, since, now, i, "LOST WAKEUP",
				      "present: nobody woke the thread (kernel or protocol bug)",
				      state, wchan);
		} else {
			r->wd_spin++;
			report_thread(r, t, since, now, i, "NO PROGRESS",
				      "present, but the thread is not getting past it", state,
				      wchan);
		}
		if (sl->wd_reports >= 8)
			abort_round(r, "an access stays blocked after repeated wakes");
	}
}

static void watch_children(struct round *r, uint64_t now, uint64_t wd)
{
	uint64_t lw = lw_ns(wd);

	for (unsigned int c = 0; c < NCHILD; c++) {
		struct cslot *cs = &cslots[c];
		uint64_t since = atomic_load(&cs->since), i, a;
		pid_t pid = atomic_load(&cs->pid);
		char state, wchan[64];
		int present;
		bool stuck;

		if (!since || !pid || since == cs->wd_since || since > now || now - since < lw ||
		    atomic_load(&cs->kill_req))
			continue;
		i = atomic_load(&cs->page);
		a = page_addr(i);
		present = present_in(pid, a);
		task_state(pid, pid, &state, wchan, sizeof(wchan));
		if (atomic_load(&cs->since) != since)
			continue;
		stuck = present == 1 && in_userfault(state, wchan);
		if (now - since < wd) {
			/* Early only when certain: asleep on a present page, twice. */
			if (!stuck) {
				cs->lw_seen = 0;
				continue;
			}
			if (!cs->lw_seen || now - cs->lw_seen < lw) {
				if (!cs->lw_seen)
					cs->lw_seen = now;
				continue;
			}
		}
		cs->wd_since = since;
		note_addr(r, a);
		if (present == 1)
			r->wd_lost++;
		else
			r->wd_unserved++;
		r->wd_child++;
		fprintf(stderr,
			"round %u: WATCHDOG: %s: forked child pid %d blocked %llu ms reading page "
			"%llu (%#llx); page %s in the child; state %c (%s); child killed (its uffd "
			"is the daemon's)\n",
			r->nr, present == 1 ? "LOST WAKEUP" : "UNSERVED FAULT", pid,
			(unsigned long long)((now - since) / 1000000), (unsigned long long)i,
			(unsigned long long)a,
			present == 1 ? "present"
				     : (present == 0 ? "missing" : "unknown (pagemap unreadable)"),
			state, wchan);
		atomic_store(&cs->kill_req, 1);
	}
}

static void watch_events(struct round *r, uint64_t now, uint64_t wd)
{
	for (unsigned int e = 0; e < NR_EV; e++) {
		struct evslot *ev = &evs[e];
		uint64_t since = atomic_load(&ev->since);
		char why[160];

		if (!since || since == ev->wd_since || since > now || now - since < wd)
			continue;
		ev->wd_since = since;
		r->wd_event++;
		fprintf(stderr,
			"round %u: WATCHDOG: EVENT NOT READ: %s by pid %d blocked %llu ms (at %#llx): "
			"the kernel waits until the daemon reads the event (daemon bug)\n",
			r->nr, ev->what, getpid(), (unsigned long long)((now - since) / 1000000),
			e == EV_MADV ? (unsigned long long)page_addr(atomic_load(&ev->page))
				     : BASE);
		snprintf(why, sizeof(why), "%s blocked on an unread event", ev->what);
		abort_round(r, why);
	}
}

/* ---- one round ---------------------------------------------------------------------------- */

static int json_u64(const char *buf, const char *key, uint64_t *v)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(buf, pat);
	if (!p)
		return -1;
	*v = strtoull(p + strlen(pat), NULL, 10);
	return 0;
}

static int read_stats(struct round *r)
{
	struct dstats *s = &r->st;
	char buf[4096];
	size_t n;
	FILE *f = fopen(r->stats, "r");
	int bad = 0;

	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	bad |= json_u64(buf, "processes", &s->procs);
	bad |= json_u64(buf, "forks", &s->forks);
	bad |= json_u64(buf, "exited", &s->exited);
	bad |= json_u64(buf, "lazy_pages", &s->lazy_pages);
	bad |= json_u64(buf, "fork_pages", &s->fork_pages);
	bad |= json_u64(buf, "pages_faulted", &s->pages_faulted);
	bad |= json_u64(buf, "pages_filled", &s->pages_filled);
	bad |= json_u64(buf, "pages_zero", &s->pages_zero);
	bad |= json_u64(buf, "pages_dropped", &s->pages_dropped);
	bad |= json_u64(buf, "pages_orphaned", &s->pages_orphaned);
	bad |= json_u64(buf, "eexist", &s->eexist);
	bad |= json_u64(buf, "fault_messages", &s->fault_messages);
	bad |= json_u64(buf, "fork", &s->ev_fork);
	bad |= json_u64(buf, "remove", &s->ev_remove);
	return bad ? -EINVAL : 0;
}

#define INVARIANT(r, cond, ...)                                                       \
	do {                                                                          \
		if (!(cond)) {                                                        \
			(r)->inv_errors++;                                            \
			fprintf(stderr, "round %u: INVARIANT: %s: ", (r)->nr, #cond); \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
		}                                                                     \
	} while (0)

static void check_invariants(struct round *r)
{
	const struct dstats *s = &r->st;
	uint64_t installed = s->pages_faulted + s->pages_filled;
	uint64_t seen_missing = atomic_load(&r->touch_missing) + atomic_load(&r->child_missing);
	uint64_t sigs = atomic_load(&signals_seen) + atomic_load(&r->child_sigs);
	uint64_t msg_bound =
		seen_missing + sigs + r->wd_wakes + atomic_load(&r->zapped) * o.threads;

	INVARIANT(r, s->lazy_pages == o.npages,
		  "the daemon counted %llu lazy pages, the image has %llu",
		  (unsigned long long)s->lazy_pages, (unsigned long long)o.npages);
	/* Every lazy page, the parent's and the ones each child inherited, exactly once. */
	INVARIANT(r,
		  installed + s->pages_dropped + s->pages_orphaned == s->lazy_pages + s->fork_pages,
		  "%llu faulted + %llu filled + %llu dropped + %llu orphaned != %llu lazy + %llu "
		  "inherited by forks",
		  (unsigned long long)s->pages_faulted, (unsigned long long)s->pages_filled,
		  (unsigned long long)s->pages_dropped, (unsigned long long)s->pages_orphaned,
		  (unsigned long long)s->lazy_pages, (unsigned long long)s->fork_pages);
	/* The daemon may drop only pages we discarded while they were missing. */
	INVARIANT(r, s->pages_dropped <= atomic_load(&r->discard_first_missing),
		  "the daemon dropped %llu pages, we discarded only %llu pages while missing",
		  (unsigned long long)s->pages_dropped,
		  (unsigned long long)atomic_load(&r->discard_first_missing));
	/*
	 * First-touch observations against the daemon's fault messages. A fault message
	 * needs an access that found its page missing (we check with mincore() just before
	 * each access), or a refault of one: after a signal, after a watchdog wake, or
	 * because a page was zapped by MADV_DONTNEED while some thread was about to read it.
	 */
	INVARIANT(r, s->fault_messages <= msg_bound,
		  "%llu fault messages, but only %llu accesses found their page missing (+ %llu "
		  "signals, %lu watchdog wakes, %llu zapped pages x %u threads)",
		  (unsigned long long)s->fault_messages, (unsigned long long)seen_missing,
		  (unsigned long long)sigs, r->wd_wakes,
		  (unsigned long long)atomic_load(&r->zapped), o.threads);
	INVARIANT(r, s->procs == 1, "%llu processes came from the restore socket, we sent 1",
		  (unsigned long long)s->procs);
	INVARIANT(r, s->forks <= atomic_load(&r->forks), "the daemon saw %llu forks, we made %llu",
		  (unsigned long long)s->forks, (unsigned long long)atomic_load(&r->forks));
	INVARIANT(r, s->exited <= s->forks, "%llu forked children, %llu seen exiting",
		  (unsigned long long)s->forks, (unsigned long long)s->exited);
	/* One REMOVE per VMA a madvise() covers: never more than the pages it zapped. */
	INVARIANT(r, s->ev_remove <= atomic_load(&r->zapped),
		  "%llu REMOVE events for %llu discarded pages", (unsigned long long)s->ev_remove,
		  (unsigned long long)atomic_load(&r->zapped));
	if (!o.fork)
		INVARIANT(r, s->fork_pages == 0 && s->pages_orphaned == 0,
			  "no forks, yet %llu inherited and %llu orphaned pages",
			  (unsigned long long)s->fork_pages, (unsigned long long)s->pages_orphaned);
	if (!o.madv)
		INVARIANT(r, s->pages_dropped == 0, "no madvise, yet %llu pages dropped",
			  (unsigned long long)s->pages_dropped);
}

/* The final check, with the daemon gone and the uffd closed: nothing can block now. */
static void final_check(struct round *r)
{
	uint64_t buf[PG / 8];

	for (uint64_t i = 0; i < o.npages; i++) {
		uint8_t s = atomic_load(&dstate[i]);
		int k;

		if (!(s & DS_DONE) && page_missing(i)) {
			r->holes++;
			note_addr(r, page_addr(i));
			if (r->holes <= MAX_REPORT)
				fprintf(stderr,
					"round %u: HOLE: page %llu (%#llx) is not resident after the "
					"daemon finished, and was never discarded\n",
					r->nr, (unsigned long long)i,
					(unsigned long long)page_addr(i));
		}
		read_page(i, buf);
		k = bad_word(i, buf, s, s);
		if (k >= 0)
			bad_data(r, "final check", gettid(), i, k, buf[k], s, s);
		if (atomic_load_explicit(&touched[i], memory_order_relaxed))
			r->touched_distinct++;
	}
}

static void log_excerpt(const struct round *r)
{
	char line[1024];
	unsigned int shown = 0;
	FILE *f = fopen(r->log, "r");

	if (!f)
		return;
	fprintf(stderr,
		"round %u: daemon exited at +%.3f ms; its log %s (errors, warnings, the addresses "
		"above, summary):\n",
		r->nr, r->t_daemon_exit ? (r->t_daemon_exit - r->t0) / 1e6 : -1.0, r->log);
	while (fgets(line, sizeof(line), f)) {
		bool hit = strstr(line, "rror") || strstr(line, "warn") || strstr(line, "summary");

		for (unsigned int a = 0; a < r->naddrs && !hit; a++) {
			char hex[32];

			snprintf(hex, sizeof(hex), "%#llx", (unsigned long long)r->addrs[a]);
			hit = strstr(line, hex) != NULL;
		}
		if (hit && shown++ < 40)
			fprintf(stderr, "    %s", line);
	}
	fclose(f);
}

static unsigned long hits(const struct round *r)
{
	return r->wd_lost + r->wd_unserved + r->wd_spin + r->wd_event + r->wd_hang;
}

static void choose_knobs(struct round *r)
{
	static const unsigned int fas[] = {1, 1, 2, 8};
	static const char *const chunks[] = {"4K", "64K", "1M", "4M"};
	uint64_t seed = mix(o.seed, r->nr);

	r->fa = o.fault_around ? o.fault_around : fas[rnd(&seed) % 4];
	r->chunk = o.fill_chunk ? o.fill_chunk : chunks[rnd(&seed) % 4];
	r->fill_threads = o.fill_threads >= 0 ? (unsigned int)o.fill_threads : rnd(&seed) % 3;
	/* Half the rounds send the finish word at once; -b always does, to race the fill. */
	if (o.bug || rnd(&seed) % 2 || !o.max_delay_ms)
		r->fin_delay_ns = 0;
	else
		r->fin_delay_ns = rnd(&seed) % (o.max_delay_ms * 1000000ULL);
}

static int run_round(struct round *r)
{
	pthread_t storm[3];
	unsigned int nstorm = 0, nth = o.threads;
	uint64_t t0, fin_at, wd = o.wd_ms * 1000000ULL, t_abort = 0;
	bool fin_sent = false, stopped = false;
	int ret, st;

	choose_knobs(r);
	snprintf(r->log, sizeof(r->log), "%s/daemon.%u.log", topdir, r->nr);
	snprintf(r->stats, sizeof(r->stats), "%s/stats.%u.json", topdir, r->nr);

	mem = mmap((void *)BASE, o.npages * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("lp-stress: mmap of the lazy VMA");
		return EXIT_SETUP;
	}
	madvise(mem, o.npages * PG, MADV_NOHUGEPAGE);
	memset((void *)dstate, 0, o.npages);
	memset((void *)touched, 0, o.npages);
	memset((void *)dtime, 0, o.npages * sizeof(*dtime));
	memset(cslots, 0, NCHILD * sizeof(*cslots));
	for (unsigned int e = 0; e < NR_EV; e++) {
		atomic_store(&evs[e].since, 0);
		evs[e].wd_since = 0;
	}
	atomic_store(&stop_storms, 0);
	atomic_store(&signals_seen, 0);
	atomic_store(&faulters_done, 0);
	atomic_store(&storms_done, 0);

	dpid = start_daemon(r);
	if (dpid < 0) {
		munmap(mem, o.npages * PG);
		return EXIT_SETUP;
	}
	atomic_store(&daemon_alive, 1);
	ret = hand_over();
	if (ret) {
		fprintf(stderr, "lp-stress: registering and handing over the uffd: %s\n",
			strerror(-ret));
		kill_daemon();
		waitpid(dpid, &st, 0);
		atomic_store(&daemon_alive, 0);
		reap_keeper();
		if (sk >= 0)
			close(sk);
		sk = -1;
		munmap(mem, o.npages * PG);
		if (ret == -EPERM)
			printf("userfaultfd with criu's features is not allowed for this user "
			       "(root or CAP_SYS_PTRACE needed)\n");
		return ret == -EPERM ? EXIT_SKIP : EXIT_SETUP;
	}

	nstorm = o.madv + o.fork + o.sig;
	pthread_barrier_init(&start_line, NULL, nth + nstorm + 1);
	for (unsigned int t = 0; t < nth; t++) {
		struct slot *sl = &slots[t];
		uint64_t seed = mix(o.seed, r->nr * 1000 + t);

		memset(sl, 0, sizeof(*sl));
		sl->r = r;
		sl->perm = malloc(o.npages * sizeof(*sl->perm));
		if (!sl->perm) {
			fprintf(stderr, "lp-stress: out of memory\n");
			exit(EXIT_SETUP);
		}
		for (uint64_t j = 0; j < o.npages; j++)
			sl->perm[j] = (uint32_t)j;
		for (uint64_t j = o.npages - 1; j > 0; j--) {
			uint64_t k = rnd(&seed) % (j + 1);
			uint32_t x = sl->perm[j];

			sl->perm[j] = sl->perm[k];
			sl->perm[k] = x;
		}
		pthread_create(&sl->th, NULL, faulter, sl);
	}
	nstorm = 0;
	if (o.madv)
		pthread_create(&storm[nstorm++], NULL, discarder, r);
	if (o.fork)
		pthread_create(&storm[nstorm++], NULL, forker, r);
	if (o.sig)
		pthread_create(&storm[nstorm++], NULL, signaller, r);

	t0 = now_ns();
	r->t0 = t0;
	pthread_barrier_wait(&start_line);
	fin_at = t0 + r->fin_delay_ns;
	for (;;) {
		uint64_t now = now_ns();

		if (!fin_sent && now >= fin_at) {
			uint32_t w = FINISH_WORD;

			if (send(sk, &w, 4, MSG_NOSIGNAL) != 4 && atomic_load(&daemon_alive))
				fprintf(stderr, "round %u: sending the finish word: %s\n", r->nr,
					strerror(errno));
			fin_sent = true;
		}
		if (atomic_load(&daemon_alive) && daemon_exited()) {
			/* Still unreaped, so its group cannot be reused: end any server left. */
			kill(-dpid, SIGKILL);
			waitpid(dpid, &st, 0);
			atomic_store(&daemon_alive, 0);
			r->t_daemon_exit = now_ns();
			r->daemon_status = st;
			/* Last look before the uffd closes and wakes everyone. */
			watch_threads(r, now_ns(), wd, true);
			stop_keeper(); /* see keeper_main() */
			if (!r->aborted && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
				fprintf(stderr, "round %u: the daemon failed: %s %d\n", r->nr,
					WIFEXITED(st) ? "exit" : "signal",
					WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		}
		watch_threads(r, now, wd, false);
		if (o.fork)
			watch_children(r, now, wd);
		watch_events(r, now, wd);
		if (!stopped && atomic_load(&faulters_done) == nth) {
			atomic_store(&stop_storms, 1);
			stopped = true;
		}
		if (stopped && atomic_load(&storms_done) == nstorm && !atomic_load(&daemon_alive))
			break;
		if (!r->aborted && now - t0 > o.timeout_s * 1000000000ULL) {
			r->wd_hang++;
			fprintf(stderr,
				"round %u: WATCHDOG: HANG: the round is not over after %u s (%u of %u "
				"faulting threads done, daemon %s)\n",
				r->nr, o.timeout_s, atomic_load(&faulters_done), nth,
				atomic_load(&daemon_alive) ? "still running" : "exited");
			abort_round(r, "round timeout");
		}
		if (r->aborted && !t_abort)
			t_abort = now;
		if (t_abort && now - t_abort > 30000000000ULL) {
			fprintf(stderr,
				"round %u: still not over 30 s after the abort: giving up\n",
				r->nr);
			kill_daemon();
			_exit(EXIT_WATCHDOG);
		}
		sleep_ns(1000000);
	}
	for (unsigned int t = 0; t < nth; t++) {
		pthread_join(slots[t].th, NULL);
		free(slots[t].perm);
		slots[t].perm = NULL;
	}
	for (unsigned int s = 0; s < nstorm; s++)
		pthread_join(storm[s], NULL);
	pthread_barrier_destroy(&start_line);
	reap_keeper();
	close(sk);
	sk = -1;
	r->secs = (now_ns() - t0) / 1e9;

	final_check(r);
	if (!r->aborted && WIFEXITED(r->daemon_status) && WEXITSTATUS(r->daemon_status) == 0) {
		ret = read_stats(r);
		if (ret) {
			fprintf(stderr, "round %u: cannot read the daemon's stats %s: %s\n", r->nr,
				r->stats, strerror(-ret));
			r->inv_errors++;
		} else {
			r->have_stats = true;
			check_invariants(r);
		}
	} else if (!r->aborted) {
		r->inv_errors++;
	}
	munmap(mem, o.npages * PG);
	mem = NULL;
	return 0;
}

static void print_round(const struct round *r)
{
	const struct dstats *s = &r->st;
	bool bad = hits(r) || r->wd_child || atomic_load(&r->errors) || r->inv_errors || r->holes;

	if (o.quiet && !bad && r->nr % 100 && r->nr != o.rounds)
		return;
	printf("round %u: fa %u, chunk %s, fill threads %u, finish +%.1f ms, %.2f s | ", r->nr,
	       r->fa, r->chunk, r->fill_threads, r->fin_delay_ns / 1e6, r->secs);
	if (r->have_stats)
		printf("daemon: %llu lazy = %llu faulted + %llu filled + %llu dropped; %llu "
		       "inherited, %llu orphaned; %llu zero, %llu EEXIST, %llu fault msgs | ",
		       (unsigned long long)s->lazy_pages, (unsigned long long)s->pages_faulted,
		       (unsigned long long)s->pages_filled, (unsigned long long)s->pages_dropped,
		       (unsigned long long)s->fork_pages, (unsigned long long)s->pages_orphaned,
		       (unsigned long long)s->pages_zero, (unsigned long long)s->eexist,
		       (unsigned long long)s->fault_messages);
	else
		printf("daemon: no stats | ");
	printf("us: %llu found missing, %llu madvise (%llu pages, %llu missing), %llu forks, "
	       "%llu signals | watchdog %lu (lost %lu, unserved %lu, child %lu, event %lu) | "
	       "errors %lu%s\n",
	       (unsigned long long)r->touched_distinct,
	       (unsigned long long)atomic_load(&r->madvises),
	       (unsigned long long)atomic_load(&r->discard_pages),
	       (unsigned long long)atomic_load(&r->discard_first_missing),
	       (unsigned long long)atomic_load(&r->forks),
	       (unsigned long long)atomic_load(&r->sigs_sent), hits(r), r->wd_lost, r->wd_unserved,
	       r->wd_child, r->wd_event,
	       (unsigned long)(atomic_load(&r->errors) + r->inv_errors + r->holes),
	       r->aborted ? ", aborted" : "");
	fflush(stdout);
}

static void account(const struct round *r)
{
	const struct dstats *s = &r->st;
	unsigned long errs = atomic_load(&r->errors) + r->holes;

	tot.rounds++;
	tot.pages += s->lazy_pages;
	tot.faulted += s->pages_faulted;
	tot.filled += s->pages_filled;
	tot.zero += s->pages_zero;
	tot.dropped += s->pages_dropped;
	tot.orphaned += s->pages_orphaned;
	tot.inherited += s->fork_pages;
	tot.eexist += s->eexist;
	tot.faults += s->fault_messages;
	tot.accesses += atomic_load(&r->accesses);
	tot.touch_missing += atomic_load(&r->touch_missing) + atomic_load(&r->child_missing);
	tot.madvises += atomic_load(&r->madvises);
	tot.discard_pages += atomic_load(&r->discard_pages);
	tot.forks += atomic_load(&r->forks);
	tot.sigs += atomic_load(&r->sigs_sent);
	tot.lost += r->wd_lost;
	tot.unserved += r->wd_unserved;
	tot.child += r->wd_child;
	tot.event += r->wd_event;
	tot.hang += r->wd_hang;
	tot.spin += r->wd_spin;
	tot.hits += hits(r);
	tot.errors += errs;
	tot.inv_errors += r->inv_errors;
	tot.secs += r->secs;
	if (hits(r) || errs || r->inv_errors)
		tot.bad_rounds++;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lp-stress [OPTIONS] LAZYPAGES\n\n"
		"Stress the lazypages daemon LAZYPAGES (the binary) on the real kernel.\n\n"
		"  -t N      faulting threads (default 4)\n"
		"  -n N      pages in the lazy VMA (default 4096)\n"
		"  -r N      rounds, one daemon each (default 5)\n"
		"  -m        MADV_DONTNEED storm on random pages\n"
		"  -f        fork storm: children read and verify random pages\n"
		"  -s        SIGUSR1 storm at the faulting threads (and the children)\n"
		"  -b        self-test: the daemon runs with --inject-bug dontwake; exit 2 expected\n"
		"  -w MS     watchdog: an access blocked this long is reported (default 2000)\n"
		"  -T S      a round not over after S seconds is aborted (default 60)\n"
		"  -d MS     longest delay of the finish word (default 20; 0: always at once)\n"
		"  -a N      daemon --fault-around (default: varies per round: 1, 2, 8)\n"
		"  -c SIZE   daemon --fill-chunk (default: varies per round: 4K .. 4M)\n"
		"  -F N      daemon --fill-threads (default: varies per round: 0 .. 2)\n"
		"  -v N      daemon log level (default 4)\n"
		"  -S SEED   random seed (default: time)\n"
		"  -k        keep the work directory (checkpoint, daemon logs, stats)\n"
		"  -q        print only every 100th round and rounds with problems\n\n"
		"Exit: 0 pass, 2 watchdog fired, 3 wrong data or broken invariant, 1 setup error,\n"
		"77 userfaultfd not available.\n");
}

static int parse_args(int argc, char **argv)
{
	int c;

	while ((c = getopt_long(argc, argv, "t:n:r:mfsbw:T:d:a:c:F:v:S:kqh", NULL, NULL)) != -1) {
		switch (c) {
		case 't':
			o.threads = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			o.npages = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			o.rounds = strtoul(optarg, NULL, 0);
			break;
		case 'm':
			o.madv = true;
			break;
		case 'f':
			o.fork = true;
			break;
		case 's':
			o.sig = true;
			break;
		case 'b':
			o.bug = true;
			break;
		case 'w':
			o.wd_ms = strtoul(optarg, NULL, 0);
			break;
		case 'T':
			o.timeout_s = strtoul(optarg, NULL, 0);
			break;
		case 'd':
			o.max_delay_ms = strtoul(optarg, NULL, 0);
			break;
		case 'a':
			o.fault_around = strtoul(optarg, NULL, 0);
			break;
		case 'c':
			o.fill_chunk = optarg;
			break;
		case 'F':
			o.fill_threads = atoi(optarg);
			break;
		case 'v':
			o.verbosity = atoi(optarg);
			break;
		case 'S':
			o.seed = strtoull(optarg, NULL, 0);
			break;
		case 'k':
			o.keep = true;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -1;
	}
	o.lazypages = argv[optind];
	if (!o.threads || o.threads > 256 || !o.npages || o.npages > MAX_PAGES || !o.rounds ||
	    !o.wd_ms || !o.timeout_s || o.fault_around > 4096 || o.fill_threads > 256 ||
	    o.verbosity < 0 || o.verbosity > 4) {
		fprintf(stderr, "lp-stress: an option is out of range (see -h)\n");
		return -1;
	}
	if (!o.seed)
		o.seed = now_ns() ^ ((uint64_t)getpid() << 32);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
	const char *tmp = getenv("TMPDIR");
	char lp[PATH_MAX];
	int ret = 0, setup = 0;
	bool keep;

	if (parse_args(argc, argv))
		return EXIT_SETUP;
	if (!realpath(o.lazypages, lp) || access(lp, X_OK)) {
		fprintf(stderr, "lp-stress: %s: not an executable\n", o.lazypages);
		return EXIT_SETUP;
	}
	o.lazypages = lp;
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	snprintf(topdir, sizeof(topdir), "%s/lp-stress.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(topdir)) {
		perror("lp-stress: mkdtemp");
		return EXIT_SETUP;
	}
	snprintf(imgdir, sizeof(imgdir), "%s/img", topdir);
	snprintf(workdir, sizeof(workdir), "%s/work", topdir);
	dstate = calloc(o.npages, 1);
	touched = calloc(o.npages, 1);
	dtime = calloc(o.npages, sizeof(*dtime));
	slots = calloc(o.threads, sizeof(*slots));
	cslots = mmap(NULL, NCHILD * sizeof(*cslots), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!dstate || !touched || !dtime || !slots || cslots == MAP_FAILED) {
		fprintf(stderr, "lp-stress: out of memory\n");
		return EXIT_SETUP;
	}
	if (write_ckpt()) {
		fprintf(stderr, "lp-stress: cannot write the checkpoint to %s\n", imgdir);
		rm_rf(topdir);
		return EXIT_SETUP;
	}
	printf("lp-stress: seed %#llx, %u threads, %llu pages (%llu MiB), %u rounds, storms:%s%s%s%s, "
	       "watchdog %u ms, daemon %s%s, dir %s\n",
	       (unsigned long long)o.seed, o.threads, (unsigned long long)o.npages,
	       (unsigned long long)(o.npages * PG >> 20), o.rounds, o.madv ? " madvise" : "",
	       o.fork ? " fork" : "", o.sig ? " signals" : "",
	       !o.madv && !o.fork && !o.sig ? " none" : "", o.wd_ms, o.lazypages,
	       o.bug ? " --inject-bug dontwake" : "", topdir);

	keep = o.keep;
	for (unsigned int i = 1; i <= o.rounds; i++) {
		struct round *r = calloc(1, sizeof(*r));

		if (!r) {
			setup = EXIT_SETUP;
			break;
		}
		r->nr = i;
		ret = run_round(r);
		if (ret) {
			setup = ret;
			free(r);
			break;
		}
		print_round(r);
		account(r);
		/* With -b, lost wakeups are the expected outcome: keep only the unexpected. */
		if ((hits(r) && !o.bug) || atomic_load(&r->errors) || r->inv_errors || r->holes) {
			log_excerpt(r);
			keep = true;
		} else if (!o.keep) {
			unlink(r->log);
			unlink(r->stats);
		}
		free(r);
	}

	if (tot.rounds)
		printf("total: %lu rounds (%lu with problems), %.1f s; %lu lazy pages: %lu faulted + "
		       "%lu filled + %lu dropped, %lu inherited by %lu forks (%lu orphaned), %lu zero "
		       "pages, %lu EEXIST, %lu fault messages; %lu page reads verified, %lu found "
		       "their page missing; %lu madvise (%lu pages), %lu signals; watchdog %lu (lost "
		       "wakeup %lu, unserved %lu, in children %lu, unread event %lu, hang %lu, no "
		       "progress %lu); wrong data %lu, invariant failures %lu\n",
		       tot.rounds, tot.bad_rounds, tot.secs, tot.pages, tot.faulted, tot.filled,
		       tot.dropped, tot.inherited, tot.forks, tot.orphaned, tot.zero, tot.eexist,
		       tot.faults, tot.accesses, tot.touch_missing, tot.madvises, tot.discard_pages,
		       tot.sigs, tot.hits, tot.lost, tot.unserved, tot.child, tot.event, tot.hang,
		       tot.spin, tot.errors, tot.inv_errors);
	if (setup)
		ret = setup;
	else if (tot.hits)
		ret = EXIT_WATCHDOG;
	else if (tot.errors || tot.inv_errors)
		ret = EXIT_VERIFY;
	else
		ret = EXIT_PASS;
	if (ret != EXIT_SKIP && ret != EXIT_SETUP)
		printf("RESULT=%s%s\n", ret == EXIT_PASS ? "PASS" : "FAIL",
		       ret == EXIT_WATCHDOG ? " (watchdog)" : "");
	if (keep && ret != EXIT_SKIP) {
		printf("kept %s\n", topdir);
	} else {
		rm_rf(topdir);
	}
	munmap(cslots, NCHILD * sizeof(*cslots));
	free(slots);
	free((void *)touched);
	free((void *)dtime);
	free((void *)dstate);
	return ret;
}
