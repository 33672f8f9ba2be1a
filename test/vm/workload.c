// SPDX-License-Identifier: MIT
/*
 * workload: the process the VM tier checkpoints and restores lazily.
 *
 * It fills N MiB of anonymous memory with a per-page pattern (every 8-byte word of page p
 * is base(p) + i * K, base(p) a hash of the seed and p), prints READY, then re-checks every
 * page each round (two words per page, one of them rotating) and prints "tick N". Any
 * mismatch prints CORRUPT and exits 3.
 *
 * SIGUSR1 tells it that it has just been restored: it then runs the after-restore actions
 * of its mode, verifies every word of every page it owns (VERIFY line, PASS/FAIL), and
 * goes on ticking. SIGTERM makes it verify everything once more, print FINAL and exit
 * (0 pass, 3 corruption).
 *
 * Modes (may be combined):
 *   -t N   N checker threads, each owning a slice of the memory (default: main thread only)
 *   -f     after restore, fork a child that verifies every page and exits 0 or 3
 *   -x     after restore: MADV_DONTNEED one part (must read zeros), mremap-move and grow
 *          another (content follows, the growth reads zeros), munmap a third (the rest
 *          must stay intact), swap two more by mremap through a fifth's place
 *   -f -x  as zdtm's uffd-events: fork first, then parent and child both do the -x
 *          actions on their own memory; the child verifies and exits 0 or 3
 *   -F     as zdtm's transition/fork tests: a thread forks all the time (before, during
 *          and after the dump and the restore); each child checks 64 random pages
 *   -u N   as zdtm's futex tests: N threads asleep on a mutex in lazy memory through the
 *          dump and the restore, released after it; each must get the mutex
 *   -H     as zdtm's lazy-thp: the memory is huge-page aligned and MADV_HUGEPAGE, and each
 *          round stores to every other page (write faults on pages still missing)
 *   -P N   a tree of N processes sharing the memory copy-on-write at the dump; each
 *          checks its own copy, and the root's VERIFY and FINAL count all of them
 * In -f and -x modes some ranges are "cold": not touched between the dump and the
 * after-restore actions, so those actions meet pages the lazy daemon has not sent yet.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define WORDS (PAGE / sizeof(uint64_t))
#define K_STEP 0x9e3779b97f4a7c15ULL
#define MAX_THREADS 64
#define THP_SIZE (2UL << 20)

static uint64_t seed = 0x6c617a7970616765ULL; /* "lazypage" */
static size_t npages;
static uint8_t *mem;
static int interval_ms = 200;
static int do_thp; /* -H: huge pages, and a store to every other page each round */
static int nthreads;

static volatile sig_atomic_t got_restore, got_term;

/* One verification range: pages [first, first+n) of the pattern, now at addr. */
enum expect { EXP_PATTERN, EXP_ZERO, EXP_GONE };
struct range {
	const char *name;
	size_t first, n; /* pattern page numbers */
	uint8_t *addr;
	enum expect exp;
	int cold; /* skipped by the ticking loop until the after-restore actions ran */
};
#define MAX_RANGES 16
static struct range ranges[MAX_RANGES];
static int nranges;
static int cold_active = 1; /* cold ranges are still untouched (atomic accesses) */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* one write per line: lines of threads and children never interleave (O_APPEND) */
	if (write(1, buf, n) < 0)
		_exit(4);
}

static uint64_t page_base(size_t p)
{
	uint64_t z = seed ^ ((uint64_t)p * 0xd1b54a32d192ed03ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill_page(uint8_t *addr, size_t p)
{
	uint64_t *w = (uint64_t *)addr, b = page_base(p);

	for (size_t i = 0; i < WORDS; i++)
		w[i] = b + i * K_STEP;
}

static uint64_t want_word(const struct range *r, size_t p, size_t i)
{
	return r->exp == EXP_ZERO ? 0 : page_base(p) + i * K_STEP;
}

static void corrupt(const char *what, const struct range *r, size_t p, size_t i, uint64_t got)
{
	say("CORRUPT %s range=%s page=%zu word=%zu addr=%p got=%#llx want=%#llx", what, r->name, p,
	    i, (void *)(r->addr + (p - r->first) * PAGE + i * 8), (unsigned long long)got,
	    (unsigned long long)want_word(r, p, i));
}

/* Full check of pattern pages [from, to) of range r. Returns pages bad (reports the first). */
static size_t verify_full(const struct range *r, size_t from, size_t to)
{
	size_t bad = 0;

	if (r->exp == EXP_GONE)
		return 0;
	for (size_t p = from; p < to; p++) {
		const uint64_t *w = (const uint64_t *)(r->addr + (p - r->first) * PAGE);
		for (size_t i = 0; i < WORDS; i++) {
			if (w[i] != want_word(r, p, i)) {
				if (!bad)
					corrupt("verify", r, p, i, w[i]);
				bad++;
				break;
			}
		}
	}
	return bad;
}

/* Quick check of pattern pages [from, to): two words per page. Exits 3 on a mismatch. */
static void verify_quick(const struct range *r, size_t from, size_t to, unsigned long round)
{
	size_t j = (round * 7 + 1) % WORDS;

	if (r->cold && __atomic_load_n(&cold_active, __ATOMIC_ACQUIRE))
		return;
	if (r->exp == EXP_GONE)
		return;
	for (size_t p = from; p < to; p++) {
		uint64_t *w = (uint64_t *)(r->addr + (p - r->first) * PAGE);

		/*
		 * -H: a write to every other page, as zdtm's lazy-thp: a compare-and-swap of
		 * the word with itself, which writes (a write fault on a page still missing)
		 * and still sees a wrong value.
		 */
		if (do_thp && !(p & 1)) {
			uint64_t v = want_word(r, p, 0);

			if (!__atomic_compare_exchange_n(&w[0], &v, v, false, __ATOMIC_RELAXED,
							 __ATOMIC_RELAXED)) {
				corrupt("tick (write)", r, p, 0, v);
				exit(3);
			}
		}
		if (w[0] != want_word(r, p, 0)) {
			corrupt("tick", r, p, 0, w[0]);
			exit(3);
		}
		if (w[j] != want_word(r, p, j)) {
			corrupt("tick", r, p, j, w[j]);
			exit(3);
		}
	}
}

/* A thread that checks everything itself (no worker threads): every range, quickly. */
static void verify_quick_all(unsigned long round)
{
	for (int k = 0; k < nranges; k++)
		verify_quick(&ranges[k], ranges[k].first, ranges[k].first + ranges[k].n, round);
}

/* Thread t's share of every range: pattern pages [lo, hi) of range r. */
static void share(const struct range *r, int t, int nt, size_t *lo, size_t *hi)
{
	*lo = r->first + r->n * t / nt;
	*hi = r->first + r->n * (t + 1) / nt;
}

static size_t verify_all(int t, int nt, size_t *checked)
{
	size_t bad = 0;

	for (int k = 0; k < nranges; k++) {
		size_t lo, hi;

		share(&ranges[k], t, nt, &lo, &hi);
		bad += verify_full(&ranges[k], lo, hi);
		if (ranges[k].exp != EXP_GONE)
			*checked += hi - lo;
	}
	return bad;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* --- threads ------------------------------------------------------------------------- */

struct worker {
	pthread_t th;
	int idx;
	volatile unsigned long rounds;
	volatile int verify_gen; /* last verification request served */
	size_t bad, checked;
};
static struct worker workers[MAX_THREADS];
static volatile int verify_req; /* bumped by main to ask every worker for a full check */

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		int req = verify_req;

		if (req != w->verify_gen) {
			size_t checked = 0;

			w->bad = verify_all(w->idx, nthreads, &checked);
			w->checked = checked;
			__atomic_store_n(&w->verify_gen, req, __ATOMIC_RELEASE);
		}
		for (int k = 0; k < nranges; k++) {
			size_t lo, hi;

			share(&ranges[k], w->idx, nthreads, &lo, &hi);
			verify_quick(&ranges[k], lo, hi, w->rounds);
		}
		w->rounds++;
		sleep_ms(interval_ms);
	}
	return NULL;
}

/* Full check of everything, by the workers in parallel when there are some. */
static size_t verify_everything(size_t *checked)
{
	size_t bad = 0;

	*checked = 0;
	if (!nthreads)
		return verify_all(0, 1, checked);
	int req = __atomic_add_fetch(&verify_req, 1, __ATOMIC_ACQ_REL);
	for (int t = 0; t < nthreads; t++) {
		while (__atomic_load_n(&workers[t].verify_gen, __ATOMIC_ACQUIRE) != req)
			sleep_ms(10);
		bad += workers[t].bad;
		*checked += workers[t].checked;
	}
	return bad;
}

/* --- after-restore actions -------------------------------------------------------------- */

static struct range *find_range(const char *name)
{
	for (int k = 0; k < nranges; k++)
		if (!strcmp(ranges[k].name, name))
			return &ranges[k];
	return NULL;
}


/*
 * Swap two ranges through a third one's place, as zdtm's uffd-events does: the first
 * mremap(MREMAP_FIXED) lands on memory that is mapped and registered (an UNMAP of it,
 * then a REMAP onto it); the third range's place ends up unmapped.
 */
static int swap_actions(void)
{
	struct range *a = find_range("swap-a"), *b = find_range("swap-b"), *v = find_range("swap-v");
	size_t len = a->n * PAGE;
	uint8_t *pa = a->addr, *pb = b->addr, *pv = v->addr;

	if (mremap(pa, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, pv) != pv ||
	    mremap(pb, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, pa) != pa ||
	    mremap(pv, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, pb) != pb) {
		say("FAIL mremap (swap): %s", strerror(errno));
		return -1;
	}
	a->addr = pb;
	b->addr = pa;
	v->exp = EXP_GONE;
	say("ACTION mremap-swapped %zu pages %p <-> %p through %p (mapped there): content must "
	    "follow",
	    a->n, (void *)pa, (void *)pb, (void *)pv);
	return 0;
}

static int mm_actions(void)
{
	struct range *a = find_range("dontneed"), *b = find_range("moved"), *c = find_range("unmapped");
	struct range *bz = find_range("grown");
	size_t blen = b->n * PAGE;
	uint8_t *dst;

	if (madvise(a->addr, a->n * PAGE, MADV_DONTNEED)) {
		say("FAIL madvise(DONTNEED): %s", strerror(errno));
		return -1;
	}
	a->exp = EXP_ZERO;
	say("ACTION madvise(MADV_DONTNEED) %zu pages at %p: must read zeros", a->n, (void *)a->addr);

	/* Move the range to a fresh place and double it: content follows, the growth is zero. */
	dst = mmap(NULL, 2 * blen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED) {
		say("FAIL mmap: %s", strerror(errno));
		return -1;
	}
	if (mremap(b->addr, blen, 2 * blen, MREMAP_MAYMOVE | MREMAP_FIXED, dst) != dst) {
		say("FAIL mremap: %s", strerror(errno));
		return -1;
	}
	say("ACTION mremap %zu pages %p -> %p, grown to %zu pages: content must follow", b->n,
	    (void *)b->addr, (void *)dst, 2 * b->n);
	b->addr = dst;
	bz->addr = dst + blen;
	bz->exp = EXP_ZERO;

	if (munmap(c->addr, c->n * PAGE)) {
		say("FAIL munmap: %s", strerror(errno));
		return -1;
	}
	c->exp = EXP_GONE;
	say("ACTION munmap %zu pages at %p: the rest must stay intact", c->n, (void *)c->addr);
	return swap_actions();
}

/*
 * -f: fork a child that verifies every page and exits 0 or 3. With -x too (WITH_MM), as
 * zdtm's uffd-events: parent and child each do the -x actions on their own memory first
 * (the child's events come on the uffd of the FORK event).
 */
static int fork_child(int with_mm)
{
	pid_t pid = fork();
	int st, failed = 0;

	if (pid < 0) {
		say("FAIL fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		size_t checked = 0, bad;

		failed = with_mm && mm_actions();
		bad = verify_all(0, 1, &checked);
		say("CHILD pid=%d%s verified=%zu bad=%zu result=%s", getpid(),
		    !with_mm ? "" : failed ? " mm=FAIL" : " mm=ok", checked, bad,
		    bad || failed ? "FAIL" : "PASS");
		_exit(bad ? 3 : failed ? 1 : 0);
	}
	if (with_mm && mm_actions())
		failed = 1;
	if (waitpid(pid, &st, 0) < 0) {
		say("FAIL waitpid: %s", strerror(errno));
		return -1;
	}
	say("CHILD pid=%d exit=%d", pid, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return !failed && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/*
 * -F, as zdtm's transition/fork tests: a thread forks all the time, before the dump, while
 * the tree is dumped and restored, and after. Each child reads 64 random pages of the
 * pattern in full and exits 0 (3 on a mismatch); the parent reaps it only 20 ms later, so
 * a dump often holds a zombie, or a child still checking. Restored children of the dump
 * and new ones forked by the restored parent fault on pages still missing.
 */
static volatile unsigned long forks, fork_bad, forks_at_restore;

static int child_check(uint64_t rnd)
{
	for (int k = 0; k < 64; k++) {
		const struct range *r = &ranges[0];
		size_t p;
		const uint64_t *w;

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		p = r->first + (rnd >> 33) % r->n;
		w = (const uint64_t *)(r->addr + (p - r->first) * PAGE);
		for (size_t i = 0; i < WORDS; i++)
			if (w[i] != want_word(r, p, i))
				return 3;
	}
	return 0;
}

static void *forker_main(void *arg)
{
	(void)arg;
	for (;;) {
		pid_t pid = fork();
		int st;

		if (pid == 0)
			_exit(child_check((uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ forks));
		if (pid < 0) {
			say("FAIL fork (forker): %s", strerror(errno));
			sleep_ms(100);
			continue;
		}
		sleep_ms(20);
		while (waitpid(pid, &st, 0) < 0)
			if (errno != EINTR) {
				say("FAIL waitpid (forker) %d: %s", pid, strerror(errno));
				exit(1);
			}
		forks++;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fork_bad++;
			say("CORRUPT forker child pid=%d status=%#x: a random page did not match", pid,
			    st);
			exit(3);
		}
	}
	return NULL;
}

/*
 * -u N, as zdtm's futex tests: N threads block on a mutex the main thread holds, in a page
 * of its own (lazy, like the rest); at the restore they are asleep in futex(2) on it.
 * After the restore the main thread unlocks it: each waiter must get it in turn, and the
 * kernel-mode accesses to the futex word fault on a page the daemon has not sent yet.
 */
static pthread_mutex_t *fx_mutex;
static int fx_waiters, fx_got;

static void *fx_waiter(void *arg)
{
	(void)arg;
	pthread_mutex_lock(fx_mutex);
	__atomic_add_fetch(&fx_got, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(fx_mutex);
	return NULL;
}

static int futex_setup(void)
{
	pthread_t th;

	fx_mutex = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fx_mutex == MAP_FAILED || pthread_mutex_init(fx_mutex, NULL) ||
	    pthread_mutex_lock(fx_mutex)) {
		say("FAIL futex setup: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < fx_waiters; i++)
		if (pthread_create(&th, NULL, fx_waiter, NULL) || pthread_detach(th)) {
			say("FAIL pthread_create (futex waiter)");
			return -1;
		}
	return 0;
}

static int futex_release(void)
{
	int got = 0;

	pthread_mutex_unlock(fx_mutex);
	for (int ms = 0; ms < 20000; ms += 10) {
		got = __atomic_load_n(&fx_got, __ATOMIC_ACQUIRE);
		if (got == fx_waiters)
			break;
		sleep_ms(10);
	}
	say("FUTEX waiters=%d woke=%d result=%s", fx_waiters, got,
	    got == fx_waiters ? "PASS" : "FAIL");
	return got == fx_waiters ? 0 : -1;
}

/*
 * -P N: a tree of N processes. The first forks N-1 children once its memory is filled,
 * so every page is shared copy-on-write at the dump; each child keeps checking its own
 * copy. After the restore every process gets its pages from the daemon on its own uffd.
 * The root forwards SIGUSR1 and SIGTERM; each child answers with one byte on a pipe
 * (pages found bad, capped) and its exit code, which the root's VERIFY and FINAL count.
 */
static int tree_n = 1, tree_pipe[2] = {-1, -1};
static pid_t tree_kids[64];

static void child_loop(void)
{
	unsigned long round = 0;

	nthreads = 0;
	for (;;) {
		if (got_term) {
			size_t checked = 0, bad = verify_all(0, 1, &checked);

			_exit(bad ? 3 : 0);
		}
		if (got_restore) {
			size_t checked = 0, bad = verify_all(0, 1, &checked);
			unsigned char b = bad > 255 ? 255 : (unsigned char)bad;

			got_restore = 0;
			if (write(tree_pipe[1], &b, 1) != 1)
				_exit(1);
		}
		verify_quick_all(round);
		round++;
		sleep_ms(interval_ms);
	}
}

static int tree_start(void)
{
	if (pipe(tree_pipe)) {
		say("FAIL pipe: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < tree_n - 1; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			say("FAIL fork (tree): %s", strerror(errno));
			return -1;
		}
		if (pid == 0)
			child_loop();
		tree_kids[i] = pid;
	}
	return 0;
}

/* Every child's verification after a restore: pages found bad, or -1 if one did not answer. */
static long tree_verify(void)
{
	long bad = 0;

	for (int i = 0; i < tree_n - 1; i++)
		kill(tree_kids[i], SIGUSR1);
	for (int i = 0; i < tree_n - 1; i++) {
		struct pollfd pfd = {.fd = tree_pipe[0], .events = POLLIN};
		unsigned char b;

		if (poll(&pfd, 1, 120000) != 1 || read(tree_pipe[0], &b, 1) != 1) {
			say("FAIL child %d of %d did not answer after the restore", i + 1, tree_n - 1);
			return -1;
		}
		bad += b;
	}
	return bad;
}

/* SIGTERM to every child and their exit codes: how many did not exit 0. */
static int tree_end(void)
{
	int failed = 0;

	for (int i = 0; i < tree_n - 1; i++)
		kill(tree_kids[i], SIGTERM);
	for (int i = 0; i < tree_n - 1; i++) {
		int st;

		while (waitpid(tree_kids[i], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			say("FAIL tree child pid=%d status=%#x", tree_kids[i], st);
			failed++;
		}
	}
	return failed;
}

/* --- main ----------------------------------------------------------------------------- */

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_restore = 1;
	else
		got_term = 1;
}

static void add_range(const char *name, size_t first, size_t n, int cold)
{
	struct range *r = &ranges[nranges++];

	r->name = name;
	r->first = first;
	r->n = n;
	r->addr = mem + first * PAGE;
	r->exp = EXP_PATTERN;
	r->cold = cold;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: workload [-m MiB] [-t THREADS] [-f] [-x] [-i MS] [-p PIDFILE] [-s SEED]\n"
		   "  -m MiB      memory to fill (default 64)\n"
		   "  -t N        N checker threads (default 0: the main thread checks)\n"
		   "  -f          fork after restore; the child verifies every page\n"
		   "  -x          mremap/madvise(MADV_DONTNEED)/munmap after restore\n"
		   "  -F          a thread forks all the time; each child checks 64 random pages\n"
		   "  -u N        N threads asleep on a mutex in lazy memory, released after restore\n"
		   "  -H          MADV_HUGEPAGE memory; each round stores to every other page\n"
		   "  -P N        a tree of N processes sharing the memory copy-on-write\n"
		   "  -i MS       round interval (default 200)\n"
		   "  -p FILE     write the pid there once READY\n"
		   "  -C          corrupt one byte after restore (self-test: must FAIL)\n"
		   "SIGUSR1 = \"you were restored\", SIGTERM = verify, print FINAL and exit.\n"
		   "Exit: 0 pass, 3 memory corruption, 1 other failure, 2 usage.\n");
}

int main(int argc, char **argv)
{
	size_t mib = 64, verified = 0, bad;
	int do_fork = 0, do_mm = 0, do_corrupt = 0, do_forker = 0, opt, restores = 0, failed = 0;
	const char *pidfile = NULL;
	unsigned long round = 0;
	struct sigaction sa;

	while ((opt = getopt(argc, argv, "m:t:fFxu:HP:i:p:s:Ch")) != -1) {
		switch (opt) {
		case 'm': mib = strtoul(optarg, NULL, 0); break;
		case 't': nthreads = atoi(optarg); break;
		case 'f': do_fork = 1; break;
		case 'F': do_forker = 1; break;
		case 'u': fx_waiters = atoi(optarg); break;
		case 'H': do_thp = 1; break;
		case 'P': tree_n = atoi(optarg); break;
		case 'x': do_mm = 1; break;
		case 'i': interval_ms = atoi(optarg); break;
		case 'p': pidfile = optarg; break;
		case 'C': do_corrupt = 1; break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (mib < 8 || nthreads < 0 || nthreads > MAX_THREADS || interval_ms < 1 || tree_n < 1 ||
	    tree_n > 65) {
		usage(stderr);
		return 2;
	}
	npages = mib << 20 >> 12;
	mem = mmap(NULL, npages * PAGE + (do_thp ? THP_SIZE : 0), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem != MAP_FAILED && do_thp) {
		/* huge-page aligned, and huge pages asked for, as zdtm's lazy-thp */
		mem = (uint8_t *)(((uintptr_t)mem + THP_SIZE - 1) & ~(uintptr_t)(THP_SIZE - 1));
		if (madvise(mem, npages * PAGE, MADV_HUGEPAGE))
			say("WARN madvise(MADV_HUGEPAGE): %s", strerror(errno));
	}
	if (mem == MAP_FAILED) {
		say("FAIL mmap %zu MiB: %s", mib, strerror(errno));
		return 1;
	}
	for (size_t p = 0; p < npages; p++)
		fill_page(mem + p * PAGE, p);

	/* Split the memory into ranges (pattern page numbers stay those of the fill). */
	size_t u = npages / 16;
	if (do_mm) {
		add_range("hot0", 0, 2 * u, 0);
		add_range("dontneed", 2 * u, u, 1);
		add_range("hot1", 3 * u, u, 0);
		add_range("moved", 4 * u, u, 1);
		add_range("grown", 5 * u, u, 1); /* placeholder: the zero growth of "moved" */
		ranges[nranges - 1].exp = EXP_GONE;
		add_range("hot2", 5 * u, 3 * u, 0);
		add_range("unmapped", 8 * u, u, 1);
		add_range("swap-a", 9 * u, u, 1);
		add_range("swap-b", 10 * u, u, 1);
		add_range("swap-v", 11 * u, u, 1);
		add_range("hot3", 12 * u, npages - 12 * u, 0);
	} else if (do_fork) {
		add_range("hot", 0, npages / 2, 0);
		add_range("cold", npages / 2, npages - npages / 2, 1);
	} else {
		add_range("all", 0, npages, 0);
	}
	if (!do_fork && !do_mm)
		cold_active = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	{
		size_t checked = 0;
		/* before the cold ranges are excluded from ticking, check everything once */
		bad = verify_all(0, 1, &checked);
		if (bad) {
			say("FAIL self-check after fill: %zu bad pages", bad);
			return 3;
		}
	}
	/* -P: the children, forked before any thread is */
	if (tree_n > 1 && tree_start())
		return 1;
	for (int t = 0; t < nthreads; t++) {
		workers[t].idx = t;
		if (pthread_create(&workers[t].th, NULL, worker_main, &workers[t])) {
			say("FAIL pthread_create");
			return 1;
		}
	}
	if (fx_waiters > 0 && futex_setup())
		return 1;
	if (do_forker) {
		pthread_t th;

		if (pthread_create(&th, NULL, forker_main, NULL)) {
			say("FAIL pthread_create (forker)");
			return 1;
		}
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f)) {
			say("FAIL pidfile %s: %s", pidfile, strerror(errno));
			return 1;
		}
	}
	say("READY pid=%d pages=%zu mib=%zu threads=%d fork=%d mm=%d", getpid(), npages, mib,
	    nthreads, do_fork, do_mm);

	while (!got_term) {
		if (got_restore) {
			double t0, t1;
			struct timespec ts;

			got_restore = 0;
			restores++;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			t0 = ts.tv_sec + ts.tv_nsec / 1e9;
			say("RESTORED #%d at tick %lu", restores, round);
			forks_at_restore = forks;
			if (fx_waiters > 0 && restores == 1 && futex_release())
				failed = 1;
			if (do_mm && do_fork && restores == 1) {
				if (fork_child(1))
					failed = 1;
			} else {
				if (do_mm && restores == 1 && mm_actions())
					failed = 1;
				if (do_fork && fork_child(0))
					failed = 1;
			}
			__atomic_store_n(&cold_active, 0, __ATOMIC_RELEASE);
			if (do_corrupt) /* self-test of the checker: this must end in FAIL */
				mem[(npages - 1) * PAGE + 8] ^= 1;
			bad = verify_everything(&verified);
			if (tree_n > 1) {
				long tb = tree_verify();

				if (tb < 0)
					failed = 1;
				else
					bad += (size_t)tb;
			}
			clock_gettime(CLOCK_MONOTONIC, &ts);
			t1 = ts.tv_sec + ts.tv_nsec / 1e9;
			say("VERIFY pages=%zu bad=%zu seconds=%.2f processes=%d result=%s", verified,
			    bad, t1 - t0, tree_n, bad || failed ? "FAIL" : "PASS");
			if (bad)
				return 3;
			if (failed)
				return 1;
		}
		if (!nthreads)
			verify_quick_all(round);
		round++;
		if (nthreads) {
			/* the tick is the slowest worker's round count: it rises only if all do */
			unsigned long min = workers[0].rounds;
			char buf[256];
			int n = 0;

			for (int t = 0; t < nthreads && n < (int)sizeof(buf) - 24; t++) {
				unsigned long r = workers[t].rounds;

				if (r < min)
					min = r;
				n += snprintf(buf + n, sizeof(buf) - n, "%s%lu", t ? "," : "", r);
			}
			say("tick %lu threads=%s", min, buf);
		} else {
			say("tick %lu", round);
		}
		sleep_ms(interval_ms);
	}
	bad = verify_everything(&verified);
	if (tree_n > 1 && tree_end())
		failed = 1;
	if (do_forker && restores && forks == forks_at_restore) {
		say("FAIL the forker made no fork after the restore");
		failed = 1;
	}
	say("FINAL verified=%zu bad=%zu ticks=%lu restores=%d forks=%lu result=%s", verified, bad,
	    round, restores, forks, bad || failed ? "FAIL" : "PASS");
	return bad ? 3 : failed ? 1 : 0;
}
