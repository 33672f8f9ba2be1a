// SPDX-License-Identifier: MIT
/*
 * lp-restore: a test double for `criu restore --lazy-pages`.
 *
 * It plays restore's side of the restore <-> lazy-pages daemon protocol
 * (docs: criu-lazy-protocol.md section 3) and then checks every page of the restored memory:
 *
 *   parent: read the images, chdir(WORKDIR), connect to lazy-pages.socket, fork one child
 *           per live pstree process, hand out turns (one task's messages at a time, like
 *           CRIU's shared mutex), send -pid for zombies, send the finish word (RSTF) when
 *           every child has registered, release the children, wait with a watchdog.
 *   child:  map the VMAs at their dump-time addresses, fill the non-lazy pages, open a uffd
 *           (UFFDIO_API 0xAA, features 0x4e), on its turn send pid + uffd (SCM_RIGHTS),
 *           register the lazy-eligible VMAs (MODE_MISSING), close its uffd, wait for the
 *           release, then verify: threads touching pages in different orders (reads,
 *           write faults, writes after reads), events (MADV_DONTNEED, mremap move/grow,
 *           munmap), forks that verify the parent's untouched pages, fork storms, signal
 *           storms, pages left for the daemon's background fill and checked later.
 *
 * --no-lazy fills every page itself (no daemon, no uffd) and runs the same checks.
 *
 * Exit: 0 all verified, 1 a page did not match (or a child failed), 2 setup or usage error,
 * 3 watchdog timeout, 4 no page mismatched but a process was killed by a signal (e.g. the
 * daemon ended the restore), 77 userfaultfd unavailable.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "magic.h"
#include "mm.h"
#include "pagemap.h"
#include "pages.h"
#include "pstree.h"
#include "uffd-abi.h"
#include "restore-double/pattern.h"

#define PAGE	  LPT_PAGE
#define SOCK_NAME "lazy-pages.socket"
#define RSTF	  0x52535446U

#define EX_OK	   0
#define EX_FAIL	   1
#define EX_SETUP   2
#define EX_TIMEOUT 3
#define EX_KILLED  4
#define EX_SKIP	   77

#define MAX_THREADS    64
#define MAX_FORK_SLOTS 16
#define NR_SLOTS       (MAX_THREADS + 2 + MAX_FORK_SLOTS)
#define SLOT_MAIN      MAX_THREADS
#define SLOT_FORKER    (MAX_THREADS + 1)
#define SLOT_FORK0     (MAX_THREADS + 2)
#define MAX_REPORTS    10

enum order { ORDER_MIX, ORDER_SEQ, ORDER_REV, ORDER_RAND };
enum ev { EV_DONTNEED, EV_MREMAP, EV_MUNMAP, EV_GROW, NR_EV };
static const char *const ev_names[NR_EV] = {"dontneed", "mremap", "munmap", "grow"};
static const char *const order_names[] = {"mix", "seq", "rev", "rand"};

struct opts {
	const char *dir, *workdir, *stats_file, *progress_file;
	bool no_lazy, shuffle, keep_socket, register_first, no_finish, no_verify, signals;
	bool check_pattern, quiet, image_pids;
	unsigned int threads, forks, fork_storm, event_count, events;
	unsigned int register_delay_ms, late_delay_ms, timeout, touch_delay_us, finish_delay_ms;
	enum order order;
	double touch_fraction, write_fraction, modify_fraction;
	uint64_t seed;
	bool pattern_seed_set;
	uint64_t pattern_seed;
	int daemon_pid;
};

/* ---- state shared between the parent and the children (one MAP_SHARED region) ---------- */

struct thr_slot {
	_Atomic uint64_t addr; /* page being touched, 0 when none */
	_Atomic uint64_t since_ns;
	_Atomic uint64_t checks;
	_Atomic int used;
};

enum phase {
	PH_START,
	PH_SETUP,
	PH_WAIT_TURN,
	PH_SEND,
	PH_REGISTER,
	PH_WAIT_RUN,
	PH_VERIFY,
	PH_LATE_WAIT,
	PH_LATE,
	PH_FORKS,
	PH_FINAL,
	PH_DONE,
};
static const char *const phase_names[] = {"start",
					  "setup (mapping, filling)",
					  "waiting for its turn",
					  "sending pid+uffd",
					  "registering",
					  "waiting for release",
					  "verifying",
					  "waiting before the late check",
					  "late check",
					  "waiting for fork children",
					  "final pass",
					  "done"};

struct slot {
	int32_t img_pid;
	_Atomic int32_t real_pid;
	_Atomic int phase;
	_Atomic uint64_t phase_ns;
	uint64_t pages, lazy, nonlazy, holes, shared, locked;
	_Atomic uint64_t checks, missing_at_start, untouched, untouched_lazy, filled_bg;
	_Atomic uint64_t forks, storm, signals, events[NR_EV], mismatches;
	_Atomic uint64_t first_touches; /* first-phase checks planned (all verifier threads) */
	unsigned int nthreads;
	double secs;
	struct thr_slot thr[NR_SLOTS];
	char err[512];
};

/* ---- images ------------------------------------------------------------------------------ */

struct shmimg {
	uint64_t shmid;
	struct lp_pagemap pm;
	struct lp_pages pages;
};

struct task {
	uint32_t pid, state, nr_threads;
	bool zombie;
	struct lp_mm mm;
	struct lp_pagemap pm;
	struct lp_pages pages;
	struct shmimg **vshm; /* per VMA, NULL unless MAP_SHARED */
	pid_t real;
	int c2p, p2c; /* parent's ends */
	struct slot *slot;
	int status;
	bool reaped;
};

static struct opts O;
static struct lp_images IM;
static struct lp_pstree PT;
static struct task *T;
static struct slot *SLOTS;
static uint64_t uffd_features;
static uint64_t pattern_seed;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void sleep_ms(double ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Messages go out with one write(2): safe in fork children and signal-heavy threads. */
static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "lp-restore: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	if (buf[n - 1] != '\n')
		buf[n++] = '\n';
	if (write(2, buf, n) < 0) {
		/* nowhere to report it */
	}
}

/* ---- the child: what it knows about its memory ------------------------------------------ */

#define PG_WRITABLE 0x01 /* private and writable: may be modified */
#define PG_LAZY	    0x02 /* PE_LAZY in a lazy-eligible VMA: the daemon must deliver it */
#define PG_RESERVED 0x04 /* set aside for an event */
#define PG_TOUCH    0x08 /* touched in the first phase */
#define PG_SHARED   0x10
#define PG_LOCKED   0x20
#define PG_NONLAZY  0x40 /* dumped, filled eagerly by restore */

enum { MOD_CLEAN = 0, MOD_MODIFYING = 1, MOD_MODIFIED = 2 };

struct pg {
	uint64_t addr;
	const uint8_t *img; /* expected bytes, NULL = zeros */
	uint32_t vma;
	uint32_t flags;
};

struct resv {
	enum ev kind;
	size_t first; /* index into pg[] */
	size_t n;
	uint64_t grow; /* pages added by EV_GROW */
};

/* Memory whose content follows an event: cur address -> pg[] index (or zeros). */
struct seg {
	uint64_t start;
	size_t n;
	ssize_t first; /* -1: zeros */
};

static struct child {
	struct task *t;
	struct slot *slot;
	struct pg *pg;
	size_t npg;
	_Atomic uint8_t *mod;
	uint32_t *touch, *untouched;
	size_t ntouch, nuntouched, nstatic;
	uint32_t *statics; /* every non-reserved page */
	struct resv *resv;
	size_t nresv;
	struct seg *seg;
	size_t nseg, capseg;
	unsigned int nthreads;
	_Atomic pid_t tids[MAX_THREADS];
	pid_t main_tid;
	atomic_int stop;
	atomic_int reports;
	atomic_int phase1_done;
	atomic_uint sig_counter;
	uint64_t fork_step;
	int sk;
} C;

static void set_phase(struct slot *s, enum phase ph)
{
	atomic_store(&s->phase, ph);
	atomic_store(&s->phase_ns, now_ns());
}

static void child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void child_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(C.slot->err, sizeof(C.slot->err), fmt, ap);
	va_end(ap);
	say("pid %u (real %d): %s", C.t->pid, getpid(), C.slot->err);
	_exit(EX_SETUP);
}

static const char *page_kind(const struct pg *p)
{
	if (p->flags & PG_SHARED)
		return p->img ? "shared anon (eager)" : "shared anon, never dumped";
	if (p->flags & PG_LOCKED)
		return p->img ? "MAP_LOCKED (eager)" : "MAP_LOCKED, never dumped";
	if (p->flags & PG_LAZY)
		return "lazy (PE_LAZY)";
	if (p->flags & PG_NONLAZY)
		return "non-lazy (PE_PRESENT only)";
	return "never dumped (must read as zeros)";
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static void hex16(char *out, const uint8_t *b, size_t off)
{
	size_t base = off & ~15UL;

	for (size_t i = 0; i < 16; i++)
		out += sprintf(out, "%s%02x", i ? " " : "", b[base + i]);
}

static void report(const char *who, uint64_t addr, const uint8_t *got, const uint8_t *exp,
		   const struct pg *p, const char *ctx)
{
	char e[64], g[64], where[256] = "";
	size_t off = 0;
	const struct lp_vma *v = NULL;
	const char *hint = "";

	atomic_fetch_add(&C.slot->mismatches, 1);
	atomic_store(&C.stop, 1);
	if (atomic_fetch_add(&C.reports, 1) >= MAX_REPORTS)
		return;
	while (off < PAGE && got[off] == exp[off])
		off++;
	if (off == PAGE)
		off = 0;
	hex16(e, exp, off);
	hex16(g, got, off);
	if (p) {
		v = &C.t->mm.vmas[p->vma];
		snprintf(where, sizeof(where),
			 "; page %s, image address %#" PRIx64 ", VMA [%#" PRIx64 ", %#" PRIx64
			 ") %s prot %#x",
			 page_kind(p), p->addr, v->start, v->end, lp_vma_kind(v), v->prot);
	}
	if (all_zero(got, PAGE))
		hint = "; the page reads as zeros (never delivered, or zero-filled?)";
	else if (!memcmp(got + 8, exp + 8, PAGE - 8))
		hint = "; only the first word differs";
	say("MISMATCH pid %u (real %d, %s, %s): address %#" PRIx64 " offset %zu (%#" PRIx64
	    "): expected [%s] actual [%s] (16 bytes from offset %zu)%s%s",
	    C.t->pid, getpid(), who, ctx, addr, off, addr + off, e, g, off & ~15UL, where, hint);
	if (!C.slot->err[0])
		snprintf(C.slot->err, sizeof(C.slot->err),
			 "mismatch at %#" PRIx64 " offset %zu (%s, %s)", addr, off, who, ctx);
}

/*
 * Check the page at ADDR against IMG (NULL: zeros). MOD (may be NULL) says whether the first
 * word was incremented by a writer: the word may be img+1 only if the writer had started.
 */
static int check_page(const char *who, uint64_t addr, const uint8_t *img, _Atomic uint8_t *mod,
		      const struct pg *p, const char *ctx)
{
	uint64_t got[PAGE / 8], exp[PAGE / 8];
	int s0 = mod ? atomic_load(mod) : MOD_CLEAN, s1;
	uint64_t w0, e0 = 0;
	bool rest_ok, w_ok;

	w0 = __atomic_load_n((uint64_t *)addr, __ATOMIC_ACQUIRE);
	memcpy((uint8_t *)got + 8, (const void *)(addr + 8), PAGE - 8);
	s1 = mod ? atomic_load(mod) : MOD_CLEAN;
	if (img) {
		memcpy(&e0, img, 8);
		rest_ok = !memcmp((uint8_t *)got + 8, img + 8, PAGE - 8);
	} else {
		rest_ok = all_zero((uint8_t *)got + 8, PAGE - 8);
	}
	if (s0 == MOD_MODIFIED)
		w_ok = w0 == e0 + 1;
	else if (s1 == MOD_CLEAN)
		w_ok = w0 == e0;
	else
		w_ok = w0 == e0 || w0 == e0 + 1;
	if (rest_ok && w_ok)
		return 0;
	got[0] = w0;
	if (img)
		memcpy(exp, img, PAGE);
	else
		memset(exp, 0, PAGE);
	if (s0 == MOD_MODIFIED || (s1 != MOD_CLEAN && w0 == e0 + 1))
		exp[0] = e0 + 1;
	report(who, addr, (uint8_t *)got, (uint8_t *)exp, p, ctx);
	return 1;
}

static int check_static(const char *who, size_t i, struct thr_slot *ts, const char *ctx)
{
	const struct pg *p = &C.pg[i];
	int r;

	if (ts) {
		atomic_store(&ts->since_ns, now_ns());
		atomic_store(&ts->addr, p->addr);
	}
	r = check_page(who, p->addr, p->img, &C.mod[i], p, ctx);
	if (ts) {
		atomic_store(&ts->addr, 0);
		atomic_fetch_add(&ts->checks, 1);
	}
	atomic_fetch_add(&C.slot->checks, 1);
	return r;
}

/* ---- building the address space ----------------------------------------------------------- */

static const uint8_t *image_ptr(const struct lp_pagemap *pm, const struct lp_pages *pages,
				uint64_t addr, uint32_t *flags)
{
	const struct lp_pme *e = lp_pagemap_find(pm, addr);

	*flags = e ? e->flags : 0;
	if (!e || !(e->flags & PE_PRESENT))
		return NULL;
	return lp_pages_ptr(pages, e->pages_off + (addr - e->vaddr), PAGE);
}

static bool vma_lazy(const struct lp_vma *v)
{
	return !O.no_lazy && lp_vma_can_be_lazy(v);
}

static void map_vmas(void)
{
	const struct lp_mm *mm = &C.t->mm;

	for (size_t i = 0; i < mm->nr; i++) {
		const struct lp_vma *v = &mm->vmas[i];
		int fl = MAP_FIXED_NOREPLACE | MAP_ANONYMOUS;
		void *m;

		if (!(v->flags & LP_MAP_ANONYMOUS))
			child_fail("VMA [%#" PRIx64 ", %#" PRIx64
				   ") is a %s mapping: file-backed VMAs "
				   "are not supported by the double",
				   v->start, v->end, lp_vma_kind(v));
		if (v->flags & LP_MAP_HUGETLB)
			child_fail("VMA [%#" PRIx64 ", %#" PRIx64 "): MAP_HUGETLB is not supported",
				   v->start, v->end);
		fl |= (v->flags & LP_MAP_SHARED) ? MAP_SHARED : MAP_PRIVATE;
		if (v->flags & LP_MAP_NORESERVE)
			fl |= MAP_NORESERVE;
		if (v->flags & LP_MAP_LOCKED)
			fl |= MAP_LOCKED;
		m = mmap((void *)v->start, v->end - v->start, PROT_READ | PROT_WRITE, fl, -1, 0);
		if (m == MAP_FAILED && (fl & MAP_LOCKED) && (errno == EAGAIN || errno == EPERM)) {
			say("pid %u: MAP_LOCKED refused (%s, RLIMIT_MEMLOCK?): mapping [%#" PRIx64
			    ", %#" PRIx64 ") unlocked; it stays non-lazy",
			    C.t->pid, strerror(errno), v->start, v->end);
			m = mmap((void *)v->start, v->end - v->start, PROT_READ | PROT_WRITE,
				 fl & ~MAP_LOCKED, -1, 0);
		}
		if (m == MAP_FAILED)
			child_fail("cannot map VMA [%#" PRIx64 ", %#" PRIx64
				   ") at its dump-time address: "
				   "%s%s",
				   v->start, v->end, strerror(errno),
				   errno == EEXIST
					   ? " (already mapped in the double: checkpoint "
					     "addresses collide with lp-restore's own mappings)"
					   : "");
		if ((uint64_t)m != v->start)
			child_fail("mmap placed VMA [%#" PRIx64 ", %#" PRIx64
				   ") at %p (kernel without "
				   "MAP_FIXED_NOREPLACE?)",
				   v->start, v->end, m);
	}
}

/* Copy LEN bytes of image data to ADDR (inside one VMA). */
static void fill_span(uint64_t addr, const uint8_t *src, uint64_t len)
{
	memcpy((void *)addr, src, len);
}

static void fill_pages(void)
{
	const struct lp_mm *mm = &C.t->mm;
	const struct lp_pagemap *pm = &C.t->pm;
	uint64_t skipped = 0;

	for (size_t i = 0; i < pm->nr; i++) {
		const struct lp_pme *e = &pm->e[i];

		if (e->flags & PE_PARENT)
			child_fail("%s entry %zu at %#" PRIx64
				   ": PE_PARENT (pre-dump chains) is not "
				   "supported by the double",
				   pm->name, i, e->vaddr);
		if (!(e->flags & PE_PRESENT))
			child_fail(
				"%s entry %zu at %#" PRIx64 ": flags %#x without PE_PRESENT: the "
				"page data is not in this checkpoint (dump --lazy-pages?), so the "
				"double cannot know what the pages must contain",
				pm->name, i, e->vaddr, e->flags);
		/* Split the entry at VMA boundaries: it may cross them. */
		for (uint64_t a = e->vaddr; a < lp_pme_end(e);) {
			const struct lp_vma *v = lp_mm_find(mm, a);
			uint64_t end = lp_pme_end(e), len;
			const uint8_t *src;

			if (!v)
				child_fail("%s entry %zu: page %#" PRIx64
					   " is outside every VMA of "
					   "mm-%u.img",
					   pm->name, i, a, C.t->pid);
			if (end > v->end)
				end = v->end;
			len = end - a;
			if ((e->flags & PE_LAZY) && vma_lazy(v)) {
				skipped += len / PAGE;
				a = end;
				continue;
			}
			if ((e->flags & PE_LAZY) && !O.no_lazy)
				say("pid %u: %s entry %zu marks %#" PRIx64
				    " lazy but its VMA is not "
				    "lazy-eligible (%s): filled eagerly",
				    C.t->pid, pm->name, i, a, lp_vma_kind(v));
			src = lp_pages_ptr(&C.t->pages, e->pages_off + (a - e->vaddr), len);
			if (!src)
				child_fail("%s entry %zu: data for %#" PRIx64
					   " is past the end of %s",
					   pm->name, i, a, C.t->pages.name);
			fill_span(a, src, len);
			a = end;
		}
	}
	for (size_t i = 0; i < mm->nr; i++) {
		const struct lp_vma *v = &mm->vmas[i];
		const struct shmimg *sh = C.t->vshm[i];

		if (!sh)
			continue;
		for (size_t j = 0; j < sh->pm.nr; j++) {
			const struct lp_pme *e = &sh->pm.e[j];
			uint64_t off = e->vaddr, len = e->nr_pages * PAGE;
			const uint8_t *src;

			if (!(e->flags & PE_PRESENT))
				continue;
			if (off >= v->end - v->start)
				continue;
			if (len > v->end - v->start - off)
				len = v->end - v->start - off;
			src = lp_pages_ptr(&sh->pages, e->pages_off, len);
			if (!src)
				child_fail("%s: entry %zu is past the end of %s", sh->pm.name, j,
					   sh->pages.name);
			fill_span(v->start + off, src, len);
		}
	}
	for (size_t i = 0; i < mm->nr; i++) {
		const struct lp_vma *v = &mm->vmas[i];
		int prot = v->prot & (PROT_READ | PROT_WRITE | PROT_EXEC);

		if (prot != (PROT_READ | PROT_WRITE) &&
		    mprotect((void *)v->start, v->end - v->start, prot))
			child_fail("mprotect [%#" PRIx64 ", %#" PRIx64 ") to %#x: %s", v->start,
				   v->end, prot, strerror(errno));
	}
	(void)skipped;
}

/* The per-page table: every page of every VMA, what it must contain. */
static void build_table(void)
{
	const struct lp_mm *mm = &C.t->mm;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < mm->nr; i++)
		n += (mm->vmas[i].end - mm->vmas[i].start) / PAGE;
	C.pg = calloc(n ? n : 1, sizeof(*C.pg));
	C.mod = calloc(n ? n : 1, sizeof(*C.mod));
	if (!C.pg || !C.mod)
		child_fail("out of memory for %zu pages", n);
	C.npg = n;
	for (size_t i = 0; i < mm->nr; i++) {
		const struct lp_vma *v = &mm->vmas[i];
		const struct shmimg *sh = C.t->vshm[i];
		bool lazy = lp_vma_can_be_lazy(v);

		for (uint64_t a = v->start; a < v->end; a += PAGE, k++) {
			struct pg *p = &C.pg[k];
			uint32_t fl = 0;

			p->addr = a;
			p->vma = i;
			if (sh) {
				p->img = image_ptr(&sh->pm, &sh->pages, a - v->start, &fl);
				p->flags |= PG_SHARED;
			} else {
				p->img = image_ptr(&C.t->pm, &C.t->pages, a, &fl);
				if ((v->prot & PROT_WRITE))
					p->flags |= PG_WRITABLE;
				if (v->flags & LP_MAP_LOCKED)
					p->flags |= PG_LOCKED;
			}
			if ((fl & PE_LAZY) && lazy && !sh)
				p->flags |= PG_LAZY;
			else if (p->img && !sh && !(v->flags & LP_MAP_LOCKED))
				p->flags |= PG_NONLAZY;
			if (p->img)
				C.slot->lazy += !!(p->flags & PG_LAZY);
			C.slot->nonlazy += !!(p->flags & PG_NONLAZY);
			C.slot->holes += !p->img;
			C.slot->shared += !!(p->flags & PG_SHARED);
			C.slot->locked += !!(p->flags & PG_LOCKED);
		}
	}
	C.slot->pages = n;
}

/* ---- the protocol, child side ------------------------------------------------------------- */

static void child_write(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(EX_SETUP);
}

static char child_read(int fd)
{
	char c;
	ssize_t r;

	do
		r = read(fd, &c, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		_exit(EX_SETUP); /* the parent is gone */
	return c;
}

static int open_uffd(void)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features = uffd_features & LP_UFFD_CRIU_FEATURES};
	int fd = lp_userfaultfd(O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		child_fail("userfaultfd: %s", strerror(errno));
	if (ioctl(fd, UFFDIO_API, &api))
		child_fail("UFFDIO_API (features %#llx): %s", (unsigned long long)api.features,
			   strerror(errno));
	return fd;
}

static void send_uffd(int sk, int uffd)
{
	int32_t pid = (int32_t)C.t->pid;
	char byte = 0;
	struct iovec iov = {&byte, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm;
	ssize_t r;

	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &uffd, sizeof(int));
	r = send(sk, &pid, sizeof(pid), MSG_NOSIGNAL);
	if (r != sizeof(pid))
		child_fail("sending pid %d to the daemon: %s", pid,
			   r < 0 ? strerror(errno) : "short send");
	r = sendmsg(sk, &mh, MSG_NOSIGNAL);
	if (r != 1)
		child_fail("sending the uffd of pid %d to the daemon: %s", pid,
			   r < 0 ? strerror(errno) : "short send");
}

static void register_vmas(int uffd)
{
	const struct lp_mm *mm = &C.t->mm;
	const uint64_t need =
		(1ULL << _UFFDIO_WAKE) | (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE);

	for (size_t i = 0; i < mm->nr; i++) {
		const struct lp_vma *v = &mm->vmas[i];
		struct uffdio_register reg = {.range = {v->start, v->end - v->start},
					      .mode = UFFDIO_REGISTER_MODE_MISSING};

		if (!vma_lazy(v))
			continue;
		if (ioctl(uffd, UFFDIO_REGISTER, &reg))
			child_fail("UFFDIO_REGISTER [%#" PRIx64 ", %#" PRIx64 "): %s", v->start,
				   v->end, strerror(errno));
		if ((reg.ioctls & need) != need)
			child_fail("UFFDIO_REGISTER [%#" PRIx64 ", %#" PRIx64
				   "): ioctls %#llx lack "
				   "WAKE|COPY|ZEROPAGE",
				   v->start, v->end, (unsigned long long)reg.ioctls);
	}
}

/* ---- verification ------------------------------------------------------------------------- */

static void shuffle_u32(uint32_t *a, size_t n, struct lpt_rng *r)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = lpt_below(r, i);
		uint32_t x = a[i - 1];

		a[i - 1] = a[j];
		a[j] = x;
	}
}

static void seg_add(uint64_t start, size_t n, ssize_t first)
{
	if (C.nseg == C.capseg) {
		C.capseg = C.capseg ? 2 * C.capseg : 16;
		C.seg = realloc(C.seg, C.capseg * sizeof(*C.seg));
		if (!C.seg)
			child_fail("out of memory");
	}
	C.seg[C.nseg++] = (struct seg){start, n, first};
}

static bool overlaps_resv(size_t first, size_t n)
{
	for (size_t i = 0; i < C.nresv; i++)
		if (first < C.resv[i].first + C.resv[i].n && C.resv[i].first < first + n)
			return true;
	return false;
}

/* Set aside page ranges of lazy-eligible VMAs for the events. */
static void pick_reserved(struct lpt_rng *r)
{
	const struct lp_mm *mm = &C.t->mm;
	size_t want = 0, *vstart;
	size_t nlazy = 0;

	for (int k = 0; k < NR_EV; k++)
		if (O.events & (1U << k))
			want += O.event_count;
	if (!want)
		return;
	C.resv = calloc(want, sizeof(*C.resv));
	vstart = calloc(mm->nr + 1, sizeof(*vstart));
	if (!C.resv || !vstart)
		child_fail("out of memory");
	for (size_t i = 0, k = 0; i < mm->nr; i++) {
		vstart[i] = k;
		k += (mm->vmas[i].end - mm->vmas[i].start) / PAGE;
		nlazy += lp_vma_can_be_lazy(&mm->vmas[i]);
	}
	if (!nlazy) {
		free(vstart);
		return;
	}
	for (int k = 0; k < NR_EV; k++) {
		if (!(O.events & (1U << k)))
			continue;
		for (unsigned int c = 0; c < O.event_count; c++) {
			for (int tries = 0; tries < 200; tries++) {
				size_t vi = lpt_below(r, mm->nr), vp, n, first;
				const struct lp_vma *v = &mm->vmas[vi];

				if (!lp_vma_can_be_lazy(v))
					continue;
				vp = (v->end - v->start) / PAGE;
				n = 1 + lpt_below(r, vp < 64 ? vp : 32);
				first = vstart[vi] + lpt_below(r, vp - n + 1);
				if (overlaps_resv(first, n))
					continue;
				C.resv[C.nresv++] =
					(struct resv){(enum ev)k, first, n, 1 + lpt_below(r, 16)};
				for (size_t i = 0; i < n; i++)
					C.pg[first + i].flags |= PG_RESERVED;
				break;
			}
		}
	}
	free(vstart);
}

static void prepare_sets(void)
{
	struct lpt_rng r;

	lpt_rng_init(&r, O.seed ^ ((uint64_t)C.t->pid << 20));
	pick_reserved(&r);
	C.touch = malloc((C.npg ? C.npg : 1) * sizeof(*C.touch));
	C.untouched = malloc((C.npg ? C.npg : 1) * sizeof(*C.untouched));
	C.statics = malloc((C.npg ? C.npg : 1) * sizeof(*C.statics));
	if (!C.touch || !C.untouched || !C.statics)
		child_fail("out of memory");
	for (size_t i = 0; i < C.npg; i++) {
		if (C.pg[i].flags & PG_RESERVED)
			continue;
		C.statics[C.nstatic++] = i;
		if (O.touch_fraction >= 1 || lpt_chance(&r, O.touch_fraction)) {
			C.pg[i].flags |= PG_TOUCH;
			C.touch[C.ntouch++] = i;
		} else {
			C.untouched[C.nuntouched++] = i;
		}
	}
	/* A step coprime with the page count: fork children walk pages in a scattered order
	 * without allocating after fork. */
	C.fork_step = 1;
	if (C.nstatic > 2) {
		uint64_t s = C.nstatic / 2 + 1 + lpt_below(&r, C.nstatic / 3 + 1);

		for (;; s++) {
			uint64_t a = s, b = C.nstatic;

			while (b) {
				uint64_t t = a % b;

				a = b;
				b = t;
			}
			if (a == 1)
				break;
		}
		C.fork_step = s % C.nstatic;
	}
}

static uint64_t count_missing(const uint32_t *idx, size_t n, uint32_t need_flags)
{
	uint64_t missing = 0;
	unsigned char vec;

	for (size_t i = 0; i < n; i++) {
		const struct pg *p = &C.pg[idx[i]];

		if ((p->flags & need_flags) != need_flags)
			continue;
		if (mincore((void *)p->addr, PAGE, &vec) == 0 && !(vec & 1))
			missing++;
	}
	return missing;
}

struct vthread {
	unsigned int id;
	enum order order;
	pthread_t th;
	int failed;
};

static void *verifier(void *arg)
{
	struct vthread *vt = arg;
	struct thr_slot *ts = &C.slot->thr[vt->id];
	struct lpt_rng r;
	uint32_t *perm = NULL;
	char who[48];

	atomic_store(&C.tids[vt->id], (pid_t)syscall(SYS_gettid));
	atomic_store(&ts->used, 1);
	snprintf(who, sizeof(who), "thread %u (%s)", vt->id, order_names[vt->order]);
	lpt_rng_init(&r, O.seed ^ C.t->pid ^ ((uint64_t)vt->id << 40));
	if (vt->order == ORDER_RAND) {
		perm = malloc((C.ntouch ? C.ntouch : 1) * sizeof(*perm));
		if (!perm) {
			vt->failed = 1;
			return NULL;
		}
		memcpy(perm, C.touch, C.ntouch * sizeof(*perm));
		shuffle_u32(perm, C.ntouch, &r);
	}
	for (size_t k = 0; k < C.ntouch && !atomic_load(&C.stop); k++) {
		size_t i = vt->order == ORDER_RAND  ? perm[k]
			   : vt->order == ORDER_REV ? C.touch[C.ntouch - 1 - k]
						    : C.touch[k];
		struct pg *p = &C.pg[i];
		bool writable = p->flags & PG_WRITABLE;
		bool modify = writable && i % C.nthreads == vt->id &&
			      atomic_load(&C.mod[i]) == MOD_CLEAN &&
			      lpt_chance(&r, O.modify_fraction);

		if (writable && lpt_chance(&r, O.write_fraction)) {
			/* A write fault that leaves the content as it is. */
			uint64_t *w = (uint64_t *)(p->addr + 8 * (1 + lpt_below(&r, PAGE / 8 - 1)));

			atomic_store(&ts->since_ns, now_ns());
			atomic_store(&ts->addr, p->addr);
			__atomic_fetch_add(w, 0, __ATOMIC_RELAXED);
		}
		vt->failed |= check_static(who, i, ts, "first touch");
		if (modify) {
			atomic_store(&C.mod[i], MOD_MODIFYING);
			__atomic_fetch_add((uint64_t *)p->addr, 1, __ATOMIC_SEQ_CST);
			atomic_store(&C.mod[i], MOD_MODIFIED);
		}
		if (O.touch_delay_us)
			sleep_ms(O.touch_delay_us / 1000.0);
	}
	free(perm);
	return NULL;
}

static void on_sigusr1(int sig)
{
	unsigned int n = atomic_fetch_add(&C.sig_counter, 1);

	(void)sig;
	/* Touch a page from inside the handler: a fault nested in an interrupted one. */
	if (C.ntouch && !(n & 7)) {
		const struct pg *p = &C.pg[C.touch[lpt_mix64(n) % C.ntouch]];

		(void)*(volatile uint8_t *)(p->addr + (n % PAGE));
	}
}

static void *signaller(void *arg)
{
	pid_t me = getpid();

	(void)arg;
	while (!atomic_load(&C.phase1_done)) {
		for (unsigned int t = 0; t < C.nthreads; t++) {
			pid_t tid = atomic_load(&C.tids[t]);

			if (tid > 0 && !syscall(SYS_tgkill, me, tid, SIGUSR1))
				atomic_fetch_add(&C.slot->signals, 1);
		}
		/* The thread doing mremap/madvise/munmap gets its share. */
		if (!syscall(SYS_tgkill, me, C.main_tid, SIGUSR1))
			atomic_fetch_add(&C.slot->signals, 1);
		sleep_ms(0.05);
	}
	return NULL;
}

/* In a fork child: verify (a part of) the parent's untouched and touched static pages. */
static int fork_verify(unsigned int slotno, size_t count, uint64_t start, int depth, bool grand)
{
	struct thr_slot *ts = &C.slot->thr[slotno];
	char who[48];
	int bad = 0;
	pid_t gc = -1;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	atomic_store(&C.stop, 0);
	atomic_store(&ts->used, 1);
	snprintf(who, sizeof(who), "fork %schild %u (pid %d)", grand ? "grand" : "",
		 slotno - SLOT_FORK0, getpid());
	if (depth > 0) {
		gc = fork();
		if (gc == 0)
			_exit(fork_verify(slotno, count, start + 1, depth - 1, true));
	}
	for (size_t k = 0; k < count && k < C.nstatic; k++) {
		size_t i = C.statics[(start + k * C.fork_step) % C.nstatic];

		bad |= check_static(who, i, ts, "forked while its parent ran");
		if (bad && atomic_load(&C.reports) > MAX_REPORTS)
			break;
	}
	if (gc > 0) {
		int st;

		while (waitpid(gc, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			say("pid %u: fork grandchild %d failed (status %#x)", C.t->pid, gc, st);
			bad = 1;
		}
	}
	return bad ? EX_FAIL : EX_OK;
}

struct forker {
	pthread_t th;
	int failed;
};

/* fork(), marked in the slot: the parent waits in fork() until the daemon reads the
 * UFFD_EVENT_FORK, so a daemon that never reads it shows up here. */
static pid_t forker_fork(void)
{
	struct thr_slot *ts = &C.slot->thr[SLOT_FORKER];
	pid_t pid;

	atomic_store(&ts->since_ns, now_ns());
	atomic_store(&ts->addr, 1);
	pid = fork();
	if (pid != 0)
		atomic_store(&ts->addr, 0);
	return pid;
}

static void *forker(void *arg)
{
	struct forker *f = arg;
	struct lpt_rng r;
	pid_t kids[MAX_FORK_SLOTS], storm[8];
	unsigned int nk = 0, ns = 0;
	int st;

	lpt_rng_init(&r, O.seed ^ C.t->pid ^ 0xf0f0);
	atomic_store(&C.slot->thr[SLOT_FORKER].used, 1);
	for (unsigned int i = 0; i < O.forks && i < MAX_FORK_SLOTS; i++) {
		pid_t pid;

		sleep_ms(lpt_below(&r, 3000) / 1000.0);
		pid = forker_fork();
		if (pid < 0) {
			say("pid %u: fork: %s", C.t->pid, strerror(errno));
			f->failed = 1;
			break;
		}
		if (pid == 0)
			_exit(fork_verify(SLOT_FORK0 + i, C.nstatic, lpt_rand(&r), i == 0, false));
		kids[nk++] = pid;
		atomic_fetch_add(&C.slot->forks, 1);
	}
	for (unsigned int i = 0; i < O.fork_storm; i++) {
		pid_t pid;

		if (ns == 8) {
			while (waitpid(storm[i % 8], &st, 0) < 0 && errno == EINTR)
				;
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				say("pid %u: storm fork child %d failed (status %#x)", C.t->pid,
				    storm[i % 8], st);
				f->failed = 1;
			}
			ns--;
		}
		pid = forker_fork();
		if (pid < 0) {
			say("pid %u: fork: %s", C.t->pid, strerror(errno));
			f->failed = 1;
			break;
		}
		if (pid == 0) {
			/* Short-lived: a few pages, then gone (its uffd too). */
			int bad = 0;
			uint64_t s = lpt_rand(&r);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (unsigned int k = 0; k < 4 && C.nstatic; k++) {
				size_t i = C.statics[(s + k * 7919) % C.nstatic];

				bad |= check_page("storm fork child", C.pg[i].addr, C.pg[i].img,
						  &C.mod[i], &C.pg[i], "fork storm");
			}
			_exit(bad ? EX_FAIL : EX_OK);
		}
		storm[i % 8] = pid;
		ns++;
		atomic_fetch_add(&C.slot->storm, 1);
	}
	for (unsigned int k = 0; k < ns; k++) {
		pid_t pid = storm[(O.fork_storm - ns + k) % 8];

		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			say("pid %u: storm fork child %d failed (status %#x)", C.t->pid, pid, st);
			f->failed = 1;
		}
	}
	for (unsigned int k = 0; k < nk; k++) {
		while (waitpid(kids[k], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			say("pid %u: fork child %u (pid %d) failed (%s %d)", C.t->pid, k, kids[k],
			    WIFEXITED(st) ? "exit" : "signal",
			    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			f->failed = 1;
		}
	}
	return NULL;
}

static int check_seg_page(const char *ctx, uint64_t addr, ssize_t idx)
{
	struct thr_slot *ts = &C.slot->thr[SLOT_MAIN];
	int r;

	atomic_store(&ts->since_ns, now_ns());
	atomic_store(&ts->addr, addr);
	r = check_page("events", addr, idx < 0 ? NULL : C.pg[idx].img, NULL,
		       idx < 0 ? NULL : &C.pg[idx], ctx);
	atomic_store(&ts->addr, 0);
	atomic_fetch_add(&ts->checks, 1);
	atomic_fetch_add(&C.slot->checks, 1);
	return r;
}

static bool unmapped(uint64_t addr, uint64_t len)
{
	unsigned char vec[64];

	for (uint64_t a = addr; a < addr + len; a += PAGE)
		if (mincore((void *)a, PAGE, vec) == 0 || errno != ENOMEM)
			return false;
	return true;
}

static void *reserve(uint64_t len)
{
	void *m = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (m == MAP_FAILED)
		child_fail("mmap %llu bytes for an mremap target: %s", (unsigned long long)len,
			   strerror(errno));
	return m;
}

static int run_events(struct lpt_rng *r)
{
	int bad = 0;
	size_t *order = malloc((C.nresv ? C.nresv : 1) * sizeof(*order));

	if (!order)
		child_fail("out of memory");
	for (size_t i = 0; i < C.nresv; i++)
		order[i] = i;
	for (size_t i = C.nresv; i > 1; i--) {
		size_t j = lpt_below(r, i), x = order[i - 1];

		order[i - 1] = order[j];
		order[j] = x;
	}
	for (size_t o = 0; o < C.nresv && !atomic_load(&C.stop); o++) {
		struct resv *rv = &C.resv[order[o]];
		uint64_t start = C.pg[rv->first].addr, len = rv->n * PAGE;
		uint8_t *dst;

		/* Some pages arrive before the event, the rest are still missing. */
		for (size_t i = 0; i < rv->n; i++)
			if (lpt_chance(r, 0.5))
				bad |= check_seg_page("before the event", start + i * PAGE,
						      rv->first + i);
		switch (rv->kind) {
		case EV_DONTNEED:
			if (madvise((void *)start, len, MADV_DONTNEED))
				child_fail("madvise(%#" PRIx64 ", %llu, MADV_DONTNEED): %s", start,
					   (unsigned long long)len, strerror(errno));
			for (size_t i = 0; i < rv->n; i++)
				bad |= check_seg_page("after MADV_DONTNEED (must be zero)",
						      start + i * PAGE, -1);
			seg_add(start, rv->n, -1);
			break;
		case EV_MREMAP:
			dst = reserve(len);
			if (mremap((void *)start, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst) !=
			    dst)
				child_fail("mremap(%#" PRIx64 ", %llu -> %p): %s", start,
					   (unsigned long long)len, dst, strerror(errno));
			for (size_t i = 0; i < rv->n; i++)
				bad |= check_seg_page("moved by mremap", (uint64_t)dst + i * PAGE,
						      rv->first + i);
			if (!unmapped(start, len)) {
				say("pid %u: [%#" PRIx64 ", +%llu) still mapped after mremap",
				    C.t->pid, start, (unsigned long long)len);
				bad = 1;
			}
			seg_add((uint64_t)dst, rv->n, rv->first);
			break;
		case EV_GROW: {
			uint64_t glen = len + rv->grow * PAGE;

			dst = reserve(glen);
			if (mremap((void *)start, len, glen, MREMAP_MAYMOVE | MREMAP_FIXED, dst) !=
			    dst)
				child_fail("growing mremap(%#" PRIx64 ", %llu -> %p, %llu): %s",
					   start, (unsigned long long)len, dst,
					   (unsigned long long)glen, strerror(errno));
			for (size_t i = 0; i < rv->n; i++)
				bad |= check_seg_page("moved by a growing mremap",
						      (uint64_t)dst + i * PAGE, rv->first + i);
			for (size_t i = 0; i < rv->grow; i++)
				bad |= check_seg_page("new tail of a growing mremap (must be zero)",
						      (uint64_t)dst + len + i * PAGE, -1);
			seg_add((uint64_t)dst, rv->n, rv->first);
			seg_add((uint64_t)dst + len, rv->grow, -1);
			break;
		}
		case EV_MUNMAP:
			if (munmap((void *)start, len))
				child_fail("munmap(%#" PRIx64 ", %llu): %s", start,
					   (unsigned long long)len, strerror(errno));
			if (!unmapped(start, len)) {
				say("pid %u: [%#" PRIx64 ", +%llu) still mapped after munmap",
				    C.t->pid, start, (unsigned long long)len);
				bad = 1;
			}
			break;
		default:
			break;
		}
		atomic_fetch_add(&C.slot->events[rv->kind], 1);
		sleep_ms(lpt_below(r, 2000) / 1000.0);
	}
	free(order);
	return bad;
}

static int wait_daemon_exit(int pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd pfd;

	if (fd < 0) {
		if (errno == ESRCH)
			return 0; /* already gone */
		say("pid %u: pidfd_open(%d): %s", C.t->pid, pid, strerror(errno));
		return -1;
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	close(fd);
	return 0;
}

static int verify(void)
{
	struct vthread vt[MAX_THREADS];
	struct forker fk = {0};
	pthread_t sigth;
	struct lpt_rng r;
	struct sigaction sa = {.sa_handler = on_sigusr1, .sa_flags = SA_RESTART};
	int bad = 0;
	bool forking = O.forks || O.fork_storm;
	double t0 = now_s();

	lpt_rng_init(&r, O.seed ^ C.t->pid ^ 0xe7e7);
	C.main_tid = (pid_t)syscall(SYS_gettid);
	set_phase(C.slot, PH_VERIFY);
	C.slot->missing_at_start = count_missing(C.statics, C.nstatic, PG_LAZY);
	atomic_store(&C.slot->first_touches, (uint64_t)C.nthreads * C.ntouch);
	sigaction(SIGUSR1, &sa, NULL);
	for (unsigned int t = 0; t < C.nthreads; t++) {
		vt[t] = (struct vthread){.id = t, .order = O.order};
		if (O.order == ORDER_MIX)
			vt[t].order = t % 3 == 0 ? ORDER_RAND : t % 3 == 1 ? ORDER_SEQ : ORDER_REV;
		if (pthread_create(&vt[t].th, NULL, verifier, &vt[t]))
			child_fail("pthread_create: %s", strerror(errno));
	}
	if (O.signals && pthread_create(&sigth, NULL, signaller, NULL))
		child_fail("pthread_create: %s", strerror(errno));
	if (forking && pthread_create(&fk.th, NULL, forker, &fk))
		child_fail("pthread_create: %s", strerror(errno));

	bad |= run_events(&r);

	for (unsigned int t = 0; t < C.nthreads; t++) {
		pthread_join(vt[t].th, NULL);
		bad |= vt[t].failed;
	}
	atomic_store(&C.phase1_done, 1);
	if (O.signals)
		pthread_join(sigth, NULL);

	/* Pages nobody touched: the daemon's background fill must supply them. */
	if (C.nuntouched && !atomic_load(&C.stop)) {
		set_phase(C.slot, PH_LATE_WAIT);
		if (O.daemon_pid > 0)
			wait_daemon_exit(O.daemon_pid);
		else
			sleep_ms(O.late_delay_ms);
		set_phase(C.slot, PH_LATE);
		C.slot->untouched = C.nuntouched;
		for (size_t k = 0; k < C.nuntouched; k++)
			C.slot->untouched_lazy += !!(C.pg[C.untouched[k]].flags & PG_LAZY);
		{
			uint64_t miss = count_missing(C.untouched, C.nuntouched, PG_LAZY);

			C.slot->filled_bg = C.slot->untouched_lazy - miss;
			if (miss && O.daemon_pid > 0 && !O.no_lazy) {
				for (size_t k = 0; k < C.nuntouched; k++) {
					const struct pg *p = &C.pg[C.untouched[k]];
					unsigned char vec;

					if (!(p->flags & PG_LAZY) ||
					    mincore((void *)p->addr, PAGE, &vec) || (vec & 1))
						continue;
					say("pid %u (real %d): the daemon (pid %d) exited but %llu "
					    "untouched lazy pages were never delivered, the first at "
					    "%#" PRIx64,
					    C.t->pid, getpid(), O.daemon_pid,
					    (unsigned long long)miss, p->addr);
					break;
				}
				snprintf(C.slot->err, sizeof(C.slot->err),
					 "%llu lazy pages not delivered before the daemon exited",
					 (unsigned long long)miss);
				bad = 1;
			}
		}
		for (size_t k = 0; k < C.nuntouched && !atomic_load(&C.stop); k++)
			bad |= check_static("late check", C.untouched[k], &C.slot->thr[SLOT_MAIN],
					    "untouched until now");
	}
	if (forking) {
		set_phase(C.slot, PH_FORKS);
		pthread_join(fk.th, NULL);
		bad |= fk.failed;
	}

	/* Everything once more, strictly, now that nobody writes. */
	set_phase(C.slot, PH_FINAL);
	atomic_store(&C.stop, 0);
	for (size_t k = 0; k < C.nstatic && atomic_load(&C.reports) < MAX_REPORTS; k++)
		bad |= check_static("final pass", C.statics[k], &C.slot->thr[SLOT_MAIN],
				    "final pass");
	for (size_t s = 0; s < C.nseg; s++)
		for (size_t i = 0; i < C.seg[s].n; i++)
			bad |= check_seg_page(
				"final pass over event ranges", C.seg[s].start + i * PAGE,
				C.seg[s].first < 0 ? -1 : C.seg[s].first + (ssize_t)i);
	C.slot->secs = now_s() - t0;
	if (atomic_load(&C.slot->mismatches))
		bad = 1;
	return bad ? EX_FAIL : EX_OK;
}

static void __attribute__((noreturn)) child_main(struct task *t, int c2p, int p2c, int sk)
{
	int uffd = -1, code;
	char c;

	C.t = t;
	C.slot = t->slot;
	C.sk = sk;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	atomic_store(&C.slot->real_pid, getpid());
	set_phase(C.slot, PH_SETUP);
	C.nthreads = O.threads ? O.threads : t->nr_threads;
	if (C.nthreads < 1)
		C.nthreads = 1;
	if (C.nthreads > MAX_THREADS)
		C.nthreads = MAX_THREADS;
	C.slot->nthreads = C.nthreads;

	map_vmas();
	fill_pages();
	build_table();
	prepare_sets();
	if (!O.no_lazy)
		uffd = open_uffd();
	child_write(c2p, 'R');

	set_phase(C.slot, PH_WAIT_TURN);
	c = child_read(p2c);
	if (c != 'T')
		_exit(EX_SETUP);
	if (!O.no_lazy) {
		if (O.register_first) {
			set_phase(C.slot, PH_REGISTER);
			register_vmas(uffd);
		}
		set_phase(C.slot, PH_SEND);
		send_uffd(sk, uffd);
	}
	if (sk >= 0)
		close(sk); /* the restorer does not keep restore's socket */
	child_write(c2p, 'S');
	if (!O.no_lazy) {
		if (O.register_delay_ms)
			sleep_ms(O.register_delay_ms);
		if (!O.register_first) {
			set_phase(C.slot, PH_REGISTER);
			register_vmas(uffd);
		}
		close(uffd); /* the daemon's copy is the only one now */
	}
	child_write(c2p, 'G');

	set_phase(C.slot, PH_WAIT_RUN);
	c = child_read(p2c);
	if (c != 'X')
		_exit(EX_SETUP);
	code = O.no_verify ? EX_OK : verify();
	set_phase(C.slot, PH_DONE);
	_exit(code);
}

/* ---- the parent --------------------------------------------------------------------------- */

static int load_images(void)
{
	int ret;

	ret = lp_images_open(&IM, O.dir);
	if (ret)
		return ret;
	ret = lp_pstree_load(&IM, &PT);
	if (ret)
		return ret;
	T = calloc(PT.nr ? PT.nr : 1, sizeof(*T));
	if (!T)
		return -ENOMEM;
	for (size_t i = 0; i < PT.nr; i++) {
		struct task *t = &T[i];

		t->pid = PT.tasks[i].pid;
		t->nr_threads = PT.tasks[i].nr_threads;
		t->c2p = t->p2c = -1;
		t->pages.fd = -1;
		ret = lp_core_task_state(&IM, t->pid, &t->state);
		if (ret == -ENOENT) {
			say("%s/core-%u.img: missing: cannot tell whether pid %u is alive", O.dir,
			    t->pid, t->pid);
			return ret;
		}
		if (ret)
			return ret;
		t->zombie = t->state == TASK_DEAD;
		if (t->zombie)
			continue;
		ret = lp_mm_load(&IM, t->pid, &t->mm);
		ret = ret ?: lp_pagemap_load(&IM, t->pid, &t->pm);
		ret = ret ?: lp_pages_open(&IM, t->pm.pages_id, t->pm.present_bytes, &t->pages);
		if (ret)
			return ret;
		t->vshm = calloc(t->mm.nr ? t->mm.nr : 1, sizeof(*t->vshm));
		if (!t->vshm)
			return -ENOMEM;
		for (size_t v = 0; v < t->mm.nr; v++) {
			const struct lp_vma *vma = &t->mm.vmas[v];
			struct shmimg *sh;
			struct lp_img img;

			if (!(vma->flags & LP_MAP_SHARED))
				continue;
			sh = calloc(1, sizeof(*sh));
			if (!sh)
				return -ENOMEM;
			t->vshm[v] = sh;
			sh->shmid = vma->shmid;
			sh->pages.fd = -1;
			snprintf(sh->pm.name, sizeof(sh->pm.name), "pagemap-shmem-%llu.img",
				 (unsigned long long)vma->shmid);
			ret = lp_img_open(&IM, sh->pm.name, PAGEMAP_MAGIC, &img);
			if (ret == -ENOENT)
				continue; /* no pages dumped: an empty image, as CRIU reads it */
			if (ret)
				return ret;
			ret = lp_pagemap_parse(&img, &sh->pm);
			lp_img_close(&img);
			ret = ret
				      ?: lp_pages_open(&IM, sh->pm.pages_id, sh->pm.present_bytes,
						       &sh->pages);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static void free_images(void)
{
	for (size_t i = 0; T && i < PT.nr; i++) {
		struct task *t = &T[i];

		for (size_t v = 0; t->vshm && v < t->mm.nr; v++) {
			if (!t->vshm[v])
				continue;
			lp_pagemap_free(&t->vshm[v]->pm);
			lp_pages_close(&t->vshm[v]->pages);
			free(t->vshm[v]);
		}
		free(t->vshm);
		lp_mm_free(&t->mm);
		lp_pagemap_free(&t->pm);
		if (!t->zombie)
			lp_pages_close(&t->pages);
	}
	free(T);
	lp_pstree_free(&PT);
	lp_images_close(&IM);
}

static int read_seed(void)
{
	char path[4096], line[256];
	FILE *f;

	if (O.pattern_seed_set) {
		pattern_seed = O.pattern_seed;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%s", O.dir, LPT_INFO_FILE);
	f = fopen(path, "r");
	if (!f) {
		say("--check-pattern: cannot read %s (%s); pass --pattern-seed", path,
		    strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s;

		if (sscanf(line, "seed %llu", &s) == 1) {
			pattern_seed = s;
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	say("--check-pattern: no seed in %s", path);
	return -1;
}

/* Does every dumped page hold mkckpt's pattern? Checks mkckpt and the pagemap offset rule. */
static int check_pattern(void)
{
	uint64_t n = 0;

	if (read_seed())
		return -1;
	for (size_t i = 0; i < PT.nr; i++) {
		struct task *t = &T[i];

		if (t->zombie)
			continue;
		for (size_t j = 0; j < t->pm.nr; j++) {
			const struct lp_pme *e = &t->pm.e[j];

			if (!(e->flags & PE_PRESENT))
				continue;
			for (uint64_t k = 0; k < e->nr_pages; k++, n++) {
				const uint8_t *p =
					lp_pages_ptr(&t->pages, e->pages_off + k * PAGE, PAGE);
				uint64_t a = e->vaddr + k * PAGE;
				long off = p ? lpt_pattern_check(p, t->pid, a, pattern_seed) : 0;

				if (off >= 0) {
					say("pattern: pid %u page %#" PRIx64
					    " (%s at %llu): differs "
					    "from mkckpt's content at offset %ld",
					    t->pid, a, t->pages.name,
					    (unsigned long long)(e->pages_off + k * PAGE), off);
					return -1;
				}
			}
		}
		for (size_t v = 0; v < t->mm.nr; v++) {
			const struct shmimg *sh = t->vshm[v];

			for (size_t j = 0; sh && j < sh->pm.nr; j++) {
				const struct lp_pme *e = &sh->pm.e[j];

				for (uint64_t k = 0; k < e->nr_pages && (e->flags & PE_PRESENT);
				     k++, n++) {
					const uint8_t *p = lp_pages_ptr(
						&sh->pages, e->pages_off + k * PAGE, PAGE);
					uint64_t a = t->mm.vmas[v].start + e->vaddr + k * PAGE;

					if (!p ||
					    lpt_pattern_check(p, t->pid, a, pattern_seed) >= 0) {
						say("pattern: pid %u shared page %#" PRIx64 " (%s) "
						    "differs from mkckpt's content",
						    t->pid, a, sh->pm.name);
						return -1;
					}
				}
			}
		}
	}
	if (!O.quiet)
		say("pattern: %llu dumped pages match mkckpt's content (seed %llu)",
		    (unsigned long long)n, (unsigned long long)pattern_seed);
	return 0;
}

static int probe_uffd(void)
{
	struct uffdio_api api = {.api = UFFD_API, .features = 0};
	int fd = lp_userfaultfd(O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		say("userfaultfd unavailable: %s%s", strerror(errno),
		    errno == EPERM ? " (needs root/CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1)"
				   : "");
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		say("UFFDIO_API: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	uffd_features = api.features;
	if ((uffd_features & LP_UFFD_CRIU_FEATURES) != LP_UFFD_CRIU_FEATURES) {
		say("kernel uffd features %#llx lack EVENT_FORK|REMAP|REMOVE|UNMAP (%#x)",
		    (unsigned long long)uffd_features, LP_UFFD_CRIU_FEATURES);
		return -1;
	}
	return 0;
}

static int connect_daemon(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(SOCK_NAME);
	int sk;

	if (chdir(O.workdir)) {
		say("cannot chdir to the work dir %s: %s", O.workdir, strerror(errno));
		return -1;
	}
	memcpy(sun.sun_path, SOCK_NAME, strlen(SOCK_NAME));
	sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sk < 0) {
		say("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(sk, (struct sockaddr *)&sun, len)) {
		say("connect to %s/%s failed: %s: is the lazy-pages daemon running with the same "
		    "work dir (-W)?",
		    O.workdir, SOCK_NAME, strerror(errno));
		close(sk);
		return -1;
	}
	return sk;
}

static double deadline;
static bool timed_out;

static int parent_write(struct task *t, char c)
{
	ssize_t r;

	do
		r = write(t->p2c, &c, 1);
	while (r < 0 && errno == EINTR);
	return r == 1 ? 0 : -EPIPE;
}

/* Read one byte from a child's pipe, or -ETIMEDOUT / -EPIPE. */
static int wait_byte(int fd, char *out)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		double left = deadline - now_s();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			continue;
		r = read(fd, out, 1);
		if (r == 1)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		return -EPIPE;
	}
}

static void report_stuck(void)
{
	uint64_t t = now_ns();

	say("TIMEOUT after %u s", O.timeout);
	for (size_t i = 0; i < PT.nr; i++) {
		struct task *tk = &T[i];
		struct slot *s = tk->slot;
		int ph;

		if (tk->zombie || tk->reaped)
			continue;
		ph = atomic_load(&s->phase);
		say("  pid %u (real %d): %s for %.1f s, %llu page checks so far", tk->pid, tk->real,
		    phase_names[ph], (t - atomic_load(&s->phase_ns)) / 1e9,
		    (unsigned long long)atomic_load(&s->checks));
		for (int k = 0; k < NR_SLOTS; k++) {
			uint64_t a = atomic_load(&s->thr[k].addr);
			const char *who = k < MAX_THREADS    ? "verifier thread"
					  : k == SLOT_MAIN   ? "event/late/final checks"
					  : k == SLOT_FORKER ? "forker"
							     : "fork child";

			if (!a)
				continue;
			if (k == SLOT_FORKER) {
				say("    forking thread blocked in fork() for %.1f s (UFFD_EVENT_FORK "
				    "never read?)",
				    (t - atomic_load(&s->thr[k].since_ns)) / 1e9);
				continue;
			}
			char idx[16] = "";

			if (k < MAX_THREADS || k >= SLOT_FORK0)
				snprintf(idx, sizeof(idx), " %d",
					 k < MAX_THREADS ? k : k - SLOT_FORK0);
			say("    %s%s stuck at address %#" PRIx64 " for %.1f s (%llu pages "
			    "checked before)",
			    who, idx, a, (t - atomic_load(&s->thr[k].since_ns)) / 1e9,
			    (unsigned long long)atomic_load(&s->thr[k].checks));
		}
	}
}

static void kill_children(void)
{
	for (size_t i = 0; i < PT.nr; i++)
		if (!T[i].zombie && T[i].real > 0 && !T[i].reaped)
			kill(-T[i].real, SIGKILL), kill(T[i].real, SIGKILL);
	for (size_t i = 0; i < PT.nr; i++)
		if (!T[i].zombie && T[i].real > 0 && !T[i].reaped) {
			waitpid(T[i].real, &T[i].status, 0);
			T[i].reaped = true;
		}
}

static void explain_child(struct task *t)
{
	int st;

	if (!t->reaped && waitpid(t->real, &st, 0) == t->real) {
		t->status = st;
		t->reaped = true;
	}
	say("pid %u (real %d) failed during %s: %s%s%s", t->pid, t->real,
	    phase_names[atomic_load(&t->slot->phase)],
	    t->slot->err[0] ? t->slot->err : "no message",
	    t->reaped && WIFSIGNALED(t->status) ? "; killed by signal " : "",
	    t->reaped && WIFSIGNALED(t->status) ? strsignal(WTERMSIG(t->status)) : "");
}

/* A byte from every live task: 0, -ETIMEDOUT, or -EIO once the failing child is explained. */
static int wait_all_tasks(void)
{
	for (size_t i = 0; i < PT.nr; i++) {
		char c;
		int ret;

		if (T[i].zombie)
			continue;
		ret = wait_byte(T[i].c2p, &c);
		if (ret == -ETIMEDOUT)
			return ret;
		if (ret) {
			explain_child(&T[i]);
			return -EIO;
		}
	}
	return 0;
}

/* --progress-file: how far the first phase is, for tests that act in the middle of it. */
static void write_progress(void)
{
	uint64_t done = 0, planned = 0;
	unsigned int verifying = 0, procs = 0;
	char tmp[4096];
	FILE *f;

	if (!O.progress_file)
		return;
	for (size_t i = 0; i < PT.nr; i++) {
		struct slot *s = T[i].slot;

		if (T[i].zombie)
			continue;
		procs++;
		verifying += atomic_load(&s->phase) >= PH_VERIFY;
		planned += atomic_load(&s->first_touches);
		for (int k = 0; k < MAX_THREADS; k++)
			done += atomic_load(&s->thr[k].checks);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", O.progress_file);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "touched %llu of %llu (first phase), %u of %u processes verifying\n",
		(unsigned long long)done, (unsigned long long)planned, verifying, procs);
	if (fclose(f) == 0)
		rename(tmp, O.progress_file);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lp-restore -D DIR [-W WORKDIR] [OPTIONS]\n"
		"A test double for `criu restore --lazy-pages`: restores the checkpoint in DIR with\n"
		"the help of the lazy-pages daemon listening on WORKDIR/lazy-pages.socket, then\n"
		"verifies every page.\n"
		"\n"
		"Protocol:\n"
		"  -D, --images-dir DIR   checkpoint images\n"
		"  -W, --work-dir DIR     where lazy-pages.socket is (default: DIR)\n"
		"      --no-lazy          eager self-check: no daemon, no uffd, fill every page\n"
		"      --shuffle          tasks send their messages in a random order\n"
		"      --register-first   register the VMAs before sending the uffd (CRIU sends\n"
		"                         first and its restorer registers after)\n"
		"      --register-delay MS  wait between sending the uffd and registering\n"
		"      --finish-delay MS  wait between the last task's registration and the\n"
		"                         finish word (what criu restore still has to do)\n"
		"      --keep-socket      keep the socket open until the children finish\n"
		"                         (default: close it right after the finish word, like\n"
		"                         criu restore -d exiting)\n"
		"      --no-finish        never send the finish word (the daemon must fail)\n"
		"      --no-verify        children exit as soon as they are released\n"
		"      --image-pids       restored processes get their checkpoint pids, as with CRIU\n"
		"                         (ns_last_pid; root, in a pid namespace where they are free)\n"
		"Verification:\n"
		"  -t, --threads N        verifier threads per process (default: pstree threads)\n"
		"      --order O          seq | rev | rand | mix (default mix: per thread)\n"
		"      --touch-fraction F pages touched in the first phase (default 1); the rest\n"
		"                         are checked after --late-delay or after --daemon-pid exits\n"
		"      --late-delay MS    default 200\n"
		"      --daemon-pid PID   wait for the daemon to exit, then require every untouched\n"
		"                         lazy page to be resident (delivered by background fill)\n"
		"      --touch-delay-us N sleep N us after each first-phase page (a slow restore)\n"
		"      --write-fraction F write faults (atomic add 0) before a check (default 0.25)\n"
		"      --modify-fraction F writes after a check (default 0.1)\n"
		"      --fork N           fork N children that verify every page (default 0)\n"
		"      --fork-storm N     N short-lived forks while faults are in flight\n"
		"      --events LIST      dontneed,mremap,munmap,grow or all\n"
		"      --event-count N    ranges per event kind (default 2)\n"
		"      --signals          SIGUSR1 storm at the verifier threads\n"
		"      --seed N           orders and choices (default 1)\n"
		"      --check-pattern    also check the pages files against mkckpt's content\n"
		"      --pattern-seed N   mkckpt's seed (default: from DIR/" LPT_INFO_FILE ")\n"
		"      --timeout S        watchdog (default 120); a hang is reported and fails\n"
		"      --stats-file F     JSON summary\n"
		"      --progress-file F  rewritten every 50 ms: \"touched X of Y (first phase), P of\n"
		"                         N processes verifying\"\n"
		"  -q, --quiet            no per-process lines\n"
		"\n"
		"Exit: 0 verified, 1 mismatch or a child failed, 2 setup error, 3 timeout,\n"
		"4 no page mismatched but a process was killed by a signal, 77 userfaultfd\n"
		"unavailable.\n");
}

static int parse_frac(const char *s, double *v)
{
	char *end;

	*v = strtod(s, &end);
	return end == s || *end || *v < 0 || *v > 1;
}

static int parse_u(const char *s, unsigned int *v)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(s, &end, 0);
	if (errno || end == s || *end || x > 100000000UL)
		return 1;
	*v = x;
	return 0;
}

static int parse_events(const char *s)
{
	char *dup = strdup(s), *save = NULL;
	int ev = 0;

	if (!dup)
		return -1;
	for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int k;

		if (!strcmp(tok, "all")) {
			ev |= (1 << NR_EV) - 1;
			continue;
		}
		if (!strcmp(tok, "none"))
			continue;
		for (k = 0; k < NR_EV; k++)
			if (!strcmp(tok, ev_names[k]))
				break;
		if (k == NR_EV) {
			free(dup);
			return -1;
		}
		ev |= 1 << k;
	}
	free(dup);
	return ev;
}

static int parse_opts(int argc, char **argv)
{
	enum {
		OPT_NO_LAZY = 256,
		OPT_SHUFFLE,
		OPT_REG_FIRST,
		OPT_REG_DELAY,
		OPT_KEEP,
		OPT_NO_FINISH,
		OPT_NO_VERIFY,
		OPT_ORDER,
		OPT_TOUCH,
		OPT_LATE,
		OPT_FINISH_DELAY,
		OPT_DPID,
		OPT_WRITE,
		OPT_MODIFY,
		OPT_FORK,
		OPT_STORM,
		OPT_EVENTS,
		OPT_EVCOUNT,
		OPT_SIGNALS,
		OPT_SEED,
		OPT_PATTERN,
		OPT_PSEED,
		OPT_TIMEOUT,
		OPT_STATS,
		OPT_TOUCH_DELAY,
		OPT_PROGRESS,
		OPT_IMAGE_PIDS,
	};
	static const struct option lo[] = {
		{"images-dir", required_argument, NULL, 'D'},
		{"work-dir", required_argument, NULL, 'W'},
		{"no-lazy", no_argument, NULL, OPT_NO_LAZY},
		{"shuffle", no_argument, NULL, OPT_SHUFFLE},
		{"register-first", no_argument, NULL, OPT_REG_FIRST},
		{"register-delay", required_argument, NULL, OPT_REG_DELAY},
		{"keep-socket", no_argument, NULL, OPT_KEEP},
		{"no-finish", no_argument, NULL, OPT_NO_FINISH},
		{"no-verify", no_argument, NULL, OPT_NO_VERIFY},
		{"threads", required_argument, NULL, 't'},
		{"order", required_argument, NULL, OPT_ORDER},
		{"touch-fraction", required_argument, NULL, OPT_TOUCH},
		{"late-delay", required_argument, NULL, OPT_LATE},
		{"finish-delay", required_argument, NULL, OPT_FINISH_DELAY},
		{"daemon-pid", required_argument, NULL, OPT_DPID},
		{"write-fraction", required_argument, NULL, OPT_WRITE},
		{"modify-fraction", required_argument, NULL, OPT_MODIFY},
		{"fork", required_argument, NULL, OPT_FORK},
		{"fork-storm", required_argument, NULL, OPT_STORM},
		{"events", required_argument, NULL, OPT_EVENTS},
		{"event-count", required_argument, NULL, OPT_EVCOUNT},
		{"signals", no_argument, NULL, OPT_SIGNALS},
		{"seed", required_argument, NULL, OPT_SEED},
		{"check-pattern", no_argument, NULL, OPT_PATTERN},
		{"pattern-seed", required_argument, NULL, OPT_PSEED},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"stats-file", required_argument, NULL, OPT_STATS},
		{"touch-delay-us", required_argument, NULL, OPT_TOUCH_DELAY},
		{"progress-file", required_argument, NULL, OPT_PROGRESS},
		{"image-pids", no_argument, NULL, OPT_IMAGE_PIDS},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned int u;
	int c, e;

	O = (struct opts){.touch_fraction = 1,
			  .write_fraction = 0.25,
			  .modify_fraction = 0.1,
			  .late_delay_ms = 200,
			  .timeout = 120,
			  .seed = 1,
			  .event_count = 2};
	while ((c = getopt_long(argc, argv, "D:W:t:qh", lo, NULL)) != -1) {
		bool bad = false;

		switch (c) {
		case 'D':
			O.dir = optarg;
			break;
		case 'W':
			O.workdir = optarg;
			break;
		case OPT_NO_LAZY:
			O.no_lazy = true;
			break;
		case OPT_SHUFFLE:
			O.shuffle = true;
			break;
		case OPT_REG_FIRST:
			O.register_first = true;
			break;
		case OPT_REG_DELAY:
			bad = parse_u(optarg, &O.register_delay_ms);
			break;
		case OPT_KEEP:
			O.keep_socket = true;
			break;
		case OPT_NO_FINISH:
			O.no_finish = true;
			break;
		case OPT_NO_VERIFY:
			O.no_verify = true;
			break;
		case 't':
			bad = parse_u(optarg, &O.threads) || !O.threads || O.threads > MAX_THREADS;
			break;
		case OPT_ORDER:
			for (u = 0; u < 4; u++)
				if (!strcmp(optarg, order_names[u]))
					break;
			bad = u == 4;
			O.order = (enum order)u;
			break;
		case OPT_TOUCH:
			bad = parse_frac(optarg, &O.touch_fraction);
			break;
		case OPT_FINISH_DELAY:
			bad = parse_u(optarg, &O.finish_delay_ms);
			break;
		case OPT_LATE:
			bad = parse_u(optarg, &O.late_delay_ms);
			break;
		case OPT_DPID:
			bad = parse_u(optarg, &u) || !u;
			O.daemon_pid = (int)u;
			break;
		case OPT_WRITE:
			bad = parse_frac(optarg, &O.write_fraction);
			break;
		case OPT_MODIFY:
			bad = parse_frac(optarg, &O.modify_fraction);
			break;
		case OPT_FORK:
			bad = parse_u(optarg, &O.forks) || O.forks > MAX_FORK_SLOTS;
			break;
		case OPT_STORM:
			bad = parse_u(optarg, &O.fork_storm);
			break;
		case OPT_EVENTS:
			e = parse_events(optarg);
			bad = e < 0;
			O.events = e < 0 ? 0 : (unsigned int)e;
			break;
		case OPT_EVCOUNT:
			bad = parse_u(optarg, &O.event_count);
			break;
		case OPT_SIGNALS:
			O.signals = true;
			break;
		case OPT_SEED: {
			char *end;

			errno = 0;
			O.seed = strtoull(optarg, &end, 0);
			bad = errno || *end || end == optarg;
			break;
		}
		case OPT_PATTERN:
			O.check_pattern = true;
			break;
		case OPT_PSEED: {
			char *end;

			errno = 0;
			O.pattern_seed = strtoull(optarg, &end, 0);
			O.pattern_seed_set = true;
			bad = errno || *end || end == optarg;
			break;
		}
		case OPT_TIMEOUT:
			bad = parse_u(optarg, &O.timeout) || !O.timeout;
			break;
		case OPT_STATS:
			O.stats_file = optarg;
			break;
		case OPT_TOUCH_DELAY:
			bad = parse_u(optarg, &O.touch_delay_us) || O.touch_delay_us > 10000000;
			break;
		case OPT_PROGRESS:
			O.progress_file = optarg;
			break;
		case OPT_IMAGE_PIDS:
			O.image_pids = true;
			break;
		case 'q':
			O.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (bad) {
			for (const struct option *p = lo; p->name; p++)
				if (p->val == c)
					say("bad value for --%s: '%s'", p->name, optarg);
			return -1;
		}
	}
	if (optind != argc || !O.dir) {
		say("%s", O.dir ? "unexpected argument" : "-D DIR is required");
		usage(stderr);
		return -1;
	}
	if (!O.workdir)
		O.workdir = O.dir;
	return 0;
}

static void write_stats(int result, double secs)
{
	FILE *f;
	uint64_t pages = 0, lazy = 0, checks = 0, miss = 0, untouched = 0, filled = 0;
	uint64_t forks = 0, storm = 0, sigs = 0, ev[NR_EV] = {0}, mism = 0;
	unsigned int procs = 0, zombies = 0;

	for (size_t i = 0; i < PT.nr; i++) {
		struct slot *s = T[i].slot;

		if (T[i].zombie) {
			zombies++;
			continue;
		}
		procs++;
		pages += s->pages;
		lazy += s->lazy;
		checks += s->checks;
		miss += s->missing_at_start;
		untouched += s->untouched_lazy;
		filled += s->filled_bg;
		forks += s->forks;
		storm += s->storm;
		sigs += s->signals;
		mism += s->mismatches;
		for (int k = 0; k < NR_EV; k++)
			ev[k] += s->events[k];
	}
	say("%s: %u process%s + %u zombie%s, %llu pages (%llu lazy) verified with %llu "
	    "page checks, %llu lazy pages missing at release, %llu of %llu untouched lazy "
	    "pages filled before the late check, events %llu/%llu/%llu/%llu "
	    "(dontneed/mremap/munmap/grow), %llu forks + %llu storm forks, %llu signals, "
	    "%.2f s",
	    result == EX_OK	   ? "OK"
	    : result == EX_TIMEOUT ? "TIMEOUT"
	    : result == EX_KILLED  ? "KILLED (no mismatch)"
				   : "FAILED",
	    procs, procs == 1 ? "" : "es", zombies, zombies == 1 ? "" : "s",
	    (unsigned long long)pages, (unsigned long long)lazy, (unsigned long long)checks,
	    (unsigned long long)miss, (unsigned long long)filled, (unsigned long long)untouched,
	    (unsigned long long)ev[0], (unsigned long long)ev[1], (unsigned long long)ev[2],
	    (unsigned long long)ev[3], (unsigned long long)forks, (unsigned long long)storm,
	    (unsigned long long)sigs, secs);
	if (!O.stats_file)
		return;
	f = fopen(O.stats_file, "w");
	if (!f) {
		say("cannot write %s: %s", O.stats_file, strerror(errno));
		return;
	}
	fprintf(f,
		"{\n  \"result\": \"%s\",\n  \"processes\": %u,\n  \"zombies\": %u,\n"
		"  \"pages\": %llu,\n  \"lazy_pages\": %llu,\n  \"page_checks\": %llu,\n"
		"  \"missing_at_release\": %llu,\n  \"untouched_lazy\": %llu,\n"
		"  \"filled_before_late_check\": %llu,\n  \"mismatches\": %llu,\n"
		"  \"events\": {\"dontneed\": %llu, \"mremap\": %llu, \"munmap\": %llu, "
		"\"grow\": %llu},\n"
		"  \"forks\": %llu,\n  \"storm_forks\": %llu,\n  \"signals\": %llu,\n"
		"  \"seconds\": %.6f\n}\n",
		result == EX_OK	       ? "ok"
		: result == EX_TIMEOUT ? "timeout"
		: result == EX_KILLED  ? "killed"
				       : "failed",
		procs, zombies, (unsigned long long)pages, (unsigned long long)lazy,
		(unsigned long long)checks, (unsigned long long)miss, (unsigned long long)untouched,
		(unsigned long long)filled, (unsigned long long)mism, (unsigned long long)ev[0],
		(unsigned long long)ev[1], (unsigned long long)ev[2], (unsigned long long)ev[3],
		(unsigned long long)forks, (unsigned long long)storm, (unsigned long long)sigs,
		secs);
	fclose(f);
}

static int send_word(int sk, int32_t w, const char *what)
{
	ssize_t r = send(sk, &w, sizeof(w), MSG_NOSIGNAL);

	if (r != sizeof(w)) {
		say("sending %s to the daemon: %s", what, r < 0 ? strerror(errno) : "short send");
		return -1;
	}
	return 0;
}

#define NS_LAST_PID "/proc/sys/kernel/ns_last_pid"

static int write_last_pid(int v)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", v);
	int fd = open(NS_LAST_PID, O_WRONLY | O_CLOEXEC), e;

	if (fd >= 0 && write(fd, buf, len) == len) {
		close(fd);
		return 0;
	}
	e = errno;
	if (fd >= 0)
		close(fd);
	errno = e;
	return -1;
}

/*
 * --image-pids: fork a child whose pid is WANT, the way CRIU did before clone3: set
 * ns_last_pid to WANT - 1 and fork; a child that got another pid (someone else forked in
 * between) exits at once and we try again. ns_last_pid is put back afterwards, so that the
 * namespace's other processes do not go on taking the checkpoint's pids.
 */
static pid_t fork_as(pid_t want)
{
	pid_t pid = -1;
	int old = -1, e = EEXIST;
	FILE *f = fopen(NS_LAST_PID, "re");

	if (f) {
		if (fscanf(f, "%d", &old) != 1)
			old = -1;
		fclose(f);
	}
	for (int tries = 0; tries < 200; tries++) {
		if (write_last_pid(want - 1)) {
			e = errno;
			say("--image-pids: cannot write " NS_LAST_PID ": %s (needs CAP_SYS_ADMIN "
			    "or CAP_CHECKPOINT_RESTORE)",
			    strerror(e));
			break;
		}
		pid = fork();
		if (pid == 0 && getpid() != want)
			_exit(0);
		if (pid == 0)
			return 0;
		if (pid < 0 || pid == want) {
			e = errno;
			break;
		}
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		pid = -1;
		sleep_ms(1);
	}
	if (old >= 0 && old < want - 1)
		write_last_pid(old);
	if (pid < 0) {
		if (e == EEXIST)
			say("--image-pids: could not get pid %d (in use? run in a pid namespace of "
			    "its own)",
			    (int)want);
		errno = e;
	}
	return pid;
}

static int run(void)
{
	size_t *order;
	int sk = -1, result = EX_OK, wret;
	bool killed = false, failed = false;
	struct lpt_rng r;
	double t0 = now_s();
	char c;

	deadline = t0 + O.timeout;
	if (O.check_pattern && check_pattern())
		return EX_FAIL;
	if (!O.no_lazy) {
		if (probe_uffd())
			return EX_SKIP;
		sk = connect_daemon();
		if (sk < 0)
			return EX_SETUP;
	}
	SLOTS = mmap(NULL, (PT.nr ? PT.nr : 1) * sizeof(*SLOTS), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (SLOTS == MAP_FAILED) {
		say("mmap: %s", strerror(errno));
		return EX_SETUP;
	}
	fflush(stdout);
	fflush(stderr);
	for (size_t i = 0; i < PT.nr; i++) {
		struct task *t = &T[i];
		int a[2], b[2];

		t->slot = &SLOTS[i];
		t->slot->img_pid = t->pid;
		if (t->zombie)
			continue;
		if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC)) {
			say("pipe: %s", strerror(errno));
			return EX_SETUP;
		}
		t->real = O.image_pids ? fork_as(t->pid) : fork();
		if (t->real < 0) {
			say("fork: %s", strerror(errno));
			kill_children();
			return EX_SETUP;
		}
		if (t->real == 0) {
			close(a[0]);
			close(b[1]);
			for (size_t j = 0; j < i; j++) {
				if (T[j].c2p >= 0)
					close(T[j].c2p);
				if (T[j].p2c >= 0)
					close(T[j].p2c);
			}
			child_main(t, a[1], b[0], sk);
		}
		setpgid(t->real, t->real);
		close(a[1]);
		close(b[0]);
		t->c2p = a[0];
		t->p2c = b[1];
	}

	/* Every process restored its memory and holds a uffd. */
	wret = wait_all_tasks();
	if (wret)
		goto tasks_failed;

	/* One task's messages at a time. */
	order = malloc((PT.nr ? PT.nr : 1) * sizeof(*order));
	if (!order)
		return EX_SETUP;
	for (size_t i = 0; i < PT.nr; i++)
		order[i] = i;
	lpt_rng_init(&r, O.seed ^ 0x5eed);
	if (O.shuffle) {
		for (size_t i = PT.nr; i > 1; i--) {
			size_t j = lpt_below(&r, i), x = order[i - 1];

			order[i - 1] = order[j];
			order[j] = x;
		}
	}
	for (size_t k = 0; k < PT.nr; k++) {
		struct task *t = &T[order[k]];
		int ret;

		if (t->zombie) {
			if (!O.no_lazy && send_word(sk, -(int32_t)t->pid, "a zombie's -pid")) {
				free(order);
				result = EX_SETUP;
				goto out;
			}
			continue;
		}
		ret = parent_write(t, 'T');
		if (!ret)
			ret = wait_byte(t->c2p, &c);
		if (ret == -ETIMEDOUT) {
			free(order);
			goto timeout;
		}
		if (ret) {
			explain_child(t);
			free(order);
			result = EX_SETUP;
			goto out;
		}
	}
	free(order);
	wret = wait_all_tasks();
	if (wret)
		goto tasks_failed;
	if (!O.no_lazy) {
		if (O.finish_delay_ms)
			sleep_ms(O.finish_delay_ms);
		if (!O.no_finish && send_word(sk, (int32_t)RSTF, "the finish word (RSTF)")) {
			result = EX_SETUP;
			goto out;
		}
		if (!O.keep_socket || O.no_finish) {
			close(sk);
			sk = -1;
		}
	}
	for (size_t i = 0; i < PT.nr; i++) {
		if (!T[i].zombie && parent_write(&T[i], 'X')) {
			explain_child(&T[i]);
			result = EX_SETUP;
			goto out;
		}
	}

	/* Wait for everyone, watching the clock. */
	for (unsigned int turn = 0;; turn++) {
		bool left = false;

		for (size_t i = 0; i < PT.nr; i++) {
			struct task *t = &T[i];

			if (t->zombie || t->reaped)
				continue;
			if (waitpid(t->real, &t->status, WNOHANG) == t->real) {
				t->reaped = true;
				if (!WIFEXITED(t->status) || WEXITSTATUS(t->status)) {
					if (WIFSIGNALED(t->status) ||
					    WEXITSTATUS(t->status) != EX_FAIL)
						explain_child(t);
					if (WIFSIGNALED(t->status))
						killed = true;
					else
						failed = true;
					result = EX_FAIL;
				}
			} else {
				left = true;
			}
		}
		if (!left)
			break;
		if (now_s() > deadline)
			goto timeout;
		if (turn % 10 == 0)
			write_progress();
		sleep_ms(5);
	}
	write_progress();
	if (killed && !failed) {
		uint64_t mism = 0;

		for (size_t i = 0; i < PT.nr; i++)
			if (!T[i].zombie)
				mism += atomic_load(&T[i].slot->mismatches);
		if (!mism) {
			say("no page mismatched, but restored processes were killed by signals");
			result = EX_KILLED;
		}
	}
	if (!O.quiet || result) {
		for (size_t i = 0; i < PT.nr; i++) {
			struct task *t = &T[i];
			struct slot *s = t->slot;

			if (t->zombie) {
				if (!O.quiet)
					say("pid %u: zombie (sent -%u)", t->pid, t->pid);
				continue;
			}
			say("pid %u (real %d): %llu pages (%llu lazy, %llu non-lazy, %llu never "
			    "dumped, %llu shared, %llu locked), %llu checks by %u threads, %llu "
			    "lazy missing at release, %llu/%llu untouched lazy filled before the "
			    "late check, %.2f s: %s",
			    t->pid, t->real, (unsigned long long)s->pages,
			    (unsigned long long)s->lazy, (unsigned long long)s->nonlazy,
			    (unsigned long long)s->holes, (unsigned long long)s->shared,
			    (unsigned long long)s->locked, (unsigned long long)s->checks,
			    s->nthreads, (unsigned long long)s->missing_at_start,
			    (unsigned long long)s->filled_bg, (unsigned long long)s->untouched_lazy,
			    s->secs,
			    t->reaped && WIFEXITED(t->status) && !WEXITSTATUS(t->status)
				    ? "ok"
				    : (s->err[0] ? s->err : "FAILED"));
		}
	}
	goto out;

tasks_failed: /* wait_all_tasks() said WRET */
	if (wret != -ETIMEDOUT) {
		result = EX_SETUP;
		goto out;
	}
timeout:
	timed_out = true;
	report_stuck();
	kill_children();
	result = EX_TIMEOUT;
out:
	if (result == EX_SETUP)
		kill_children();
	if (sk >= 0)
		close(sk);
	for (size_t i = 0; i < PT.nr; i++) {
		if (T[i].c2p >= 0)
			close(T[i].c2p);
		if (T[i].p2c >= 0)
			close(T[i].p2c);
	}
	write_stats(result, now_s() - t0);
	munmap(SLOTS, (PT.nr ? PT.nr : 1) * sizeof(*SLOTS));
	return result;
}

int main(int argc, char **argv)
{
	int ret;

	if (parse_opts(argc, argv))
		return EX_SETUP;
	signal(SIGPIPE, SIG_IGN);
	if (load_images()) {
		say("cannot load the checkpoint in %s", O.dir);
		free_images();
		return EX_SETUP;
	}
	ret = run();
	free_images();
	return ret;
}
