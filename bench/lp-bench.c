// SPDX-License-Identifier: MIT
/*
 * lp-bench: lazy restore measured against the kernel's own demand paging and an eager copy.
 *
 * For each checkpoint size it writes a one-process checkpoint (one private anonymous VMA,
 * every page lazy), then plays the restored process against a real `lazypages daemon`
 * (the same socket protocol as criu restore) and measures:
 *   - fault latency of random and sequential touches before the finish word (no fill)
 *     and of random touches while the background fill runs;
 *   - time until fully resident with no touches (fill GB/s), from the daemon's stats,
 *     counted from the uffd's handover (the fill starts there);
 *   - a sequential touch of all memory while the fill runs;
 * and the same touches on a MAP_PRIVATE mapping of the pages file (the kernel's demand
 * paging, the practical limit) and an eager copy (pread of the whole file).
 * Prints a table, writes results.csv and, when gnuplot is there, a PNG plot.
 */
#define LOG_PREFIX "bench: "
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "magic.h"
#include "uffd-abi.h"
#include "writer.h"
#include "restore-side.h"

#define PG	 4096ULL
#define BASE	 0x300000000000ULL
#define NSAMPLES 20000

struct opts {
	const char *daemon;
	const char *dir;
	const char *out;
	const char *daemon_args;
	uint64_t sizes[16];
	int nsizes;
	int reps;
	unsigned only; /* --only: a mask of 1 << experiment, 0 for all */
};

/* What one measurement run reports back from the restored-process child. */
struct result {
	double seq_nofill_p50, seq_nofill_p99; /* µs per faulting touch */
	double rand_nofill_p50, rand_nofill_p99;
	double rand_fill_p50, rand_fill_p99;
	uint64_t rand_fill_faults;
	/* the daemon's view of the random touches with the fill running (its stats) */
	double fill_wait_p99, chunk_p99, chunk_max; /* µs */
	double seq_all_s;   /* sequential touch of all memory, fill running */
	double resident_s;  /* uffd handed over -> fully resident, no touches (the fill starts
			     * there; the finish word follows at once) */
	double fill_copy_s; /* the same run: the fill threads' copies, added up */
	double kern_seq_read_s, kern_seq_write_s, kern_rand_p50, kern_rand_p99;
	double eager_s;
	double ws_plain_s, ws_prefetch_s; /* finish word -> working set touched */
	int bad;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline uint64_t page_word(uint64_t addr)
{
	return addr * 0x9E3779B97F4A7C15ULL + 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void percentiles(double *v, size_t n, double *p50, double *p99)
{
	if (!n) {
		*p50 = *p99 = -1;
		return;
	}
	qsort(v, n, sizeof(*v), cmp_double);
	*p50 = v[n / 2];
	*p99 = v[(size_t)(n * 0.99)];
}

static int write_ckpt(const char *dir, uint64_t size)
{
	struct lp_images im;
	uint32_t th = 1;
	struct lp_task t = {.pid = 1, .pgid = 1, .sid = 1, .nr_threads = 1, .threads = &th};
	struct lp_pstree pt = {.nr = 1, .tasks = &t};
	struct lp_vma v = {.start = BASE,
			   .end = BASE + size,
			   .prot = PROT_READ | PROT_WRITE,
			   .flags = MAP_PRIVATE | MAP_ANONYMOUS,
			   .status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE};
	struct lp_mm mm = {.nr = 1, .vmas = &v};
	struct lp_pme e = {.vaddr = BASE, .nr_pages = size / PG, .flags = PE_LAZY | PE_PRESENT};
	struct lp_img_writer w;
	uint64_t *buf;
	size_t chunk = 4 << 20;
	int ret;

	mkdir(dir, 0755);
	if (lp_images_open_dir(&im, dir))
		return -1;
	ret = lp_write_inventory(&im) ?: lp_write_pstree(&im, &pt) ?:
	      lp_write_core(&im, 1, TASK_ALIVE, "bench") ?: lp_write_mm(&im, 1, &mm, NULL, 0) ?:
	      lp_write_pagemap(&im, 1, 1, &e, 1, LP_PM_BOTH);
	buf = malloc(chunk);
	lp_img_create(&im, "pages-1.img", RAW_IMAGE_MAGIC, &w);
	for (uint64_t off = 0; !ret && off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		for (size_t p = 0; p < n; p += PG)
			for (size_t k = 0; k < PG / 8; k += 64)
				buf[(p + k * 8) / 8] = page_word(BASE + off + p + k * 8);
		ret = lp_img_write_raw(&w, buf, n);
	}
	ret = lp_img_writer_close(&w) ?: ret;
	free(buf);
	lp_images_close(&im);
	return ret;
}

/* Start the daemon, wait until it listens. */
static pid_t start_daemon(const struct opts *o, const char *stats, const char *extra)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid == 0) {
		char fd[16], cmd[4096];

		close(pfd[0]);
		snprintf(fd, sizeof(fd), "%d", pfd[1]);
		snprintf(
			cmd, sizeof(cmd),
			"exec %s daemon -D %s --status-fd %s --stats-file %s -o %s/daemon.log %s %s",
			o->daemon, o->dir, fd, stats, o->out, o->daemon_args ?: "", extra);
		execl("/bin/sh", "sh", "-c", cmd, NULL);
		_exit(127);
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1) {
		fprintf(stderr, "bench: the daemon did not come up (see %s/daemon.log)\n", o->out);
		close(pfd[0]);
		return -1;
	}
	close(pfd[0]);
	return pid;
}

/* The restored process's side: mapping, uffd, registration, handing it over. */
static uint8_t *restore_side(const struct opts *o, uint64_t size, int *sk)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct uffdio_api api = {.api = UFFD_API, .features = LP_UFFD_CRIU_FEATURES};
	struct uffdio_register reg = {.range = {.start = BASE, .len = size},
				      .mode = UFFDIO_REGISTER_MODE_MISSING};
	int32_t pid = 1;
	uint8_t *m;
	int uffd;

	m = mmap((void *)BASE, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	madvise(m, size, MADV_NOHUGEPAGE);
	uffd = lp_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg))
		return NULL;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/lazy-pages.socket", o->dir);
	*sk = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(*sk, (struct sockaddr *)&sa, sizeof(sa)))
		return NULL;
	if (lpt_send_uffd(*sk, pid, uffd))
		return NULL;
	close(uffd);
	return m;
}

static void finish(int sk)
{
	uint32_t fin = 0x52535446;

	if (send(sk, &fin, 4, 0) != 4)
		perror("send finish word");
}

static bool resident(const uint8_t *p)
{
	unsigned char v = 0;

	mincore((void *)p, PG, &v);
	return v & 1;
}

/* Touch one page (read its first word), checking the content. */
static inline int touch(const uint8_t *m, uint64_t i)
{
	return *(volatile const uint64_t *)(m + i * PG) != page_word(BASE + i * PG);
}

static double stats_value(const char *path, const char *key)
{
	char buf[4096], *p;
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strstr(buf, key);
	if (!p)
		return -1;
	p = strchr(p, ':');
	return p ? strtod(p + 1, NULL) : -1;
}

enum exp {
	EXP_SEQ_NOFILL,
	EXP_RAND_NOFILL,
	EXP_RAND_FILL,
	EXP_SEQ_ALL,
	EXP_RESIDENT,
	EXP_WS_RECORD,	 /* on-demand, --record-ws: learn the working set */
	EXP_WS_PLAIN,	 /* time to touch the working set, plain daemon */
	EXP_WS_PREFETCH, /* the same with --prefetch */
};
#define EXP_NR (EXP_WS_PREFETCH + 1) /* and for --only, the baselines */

/* The "first useful work": a fixed 5 % of the pages, in a fixed random order. */
static double touch_working_set(const uint8_t *m, uint64_t n, int *bad)
{
	uint64_t seed = 0xabcdef, k = n / 20;
	double t0 = now();

	for (uint64_t j = 0; j < k; j++)
		*bad |= touch(m, rnd(&seed) % n);
	return now() - t0;
}

/* One lazy experiment: fresh daemon, fresh restored process. */
static int run_lazy(const struct opts *o, uint64_t size, enum exp e, struct result *r)
{
	uint64_t n = size / PG, ns = n < NSAMPLES ? n : NSAMPLES, seed = 0x1234567 + e;
	char stats[512];
	double *lat = malloc(ns * sizeof(double));
	size_t nl = 0;
	pid_t d, c;
	int st, sk = -1, bad = 0, done[2];
	struct result *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	snprintf(stats, sizeof(stats), "%s/stats.json", o->out);
	unlink(stats);
	{
		char extra[600] = "";

		if (e == EXP_WS_RECORD)
			snprintf(extra, sizeof(extra), "--on-demand --record-ws %s/ws", o->out);
		else if (e == EXP_WS_PREFETCH)
			snprintf(extra, sizeof(extra), "--prefetch %s/ws", o->out);
		d = start_daemon(o, stats, extra);
	}
	if (d < 0)
		return -1;
	*shared = *r;
	/* the daemon is not the child's child: the parent says when it ended (EOF) */
	if (pipe(done)) {
		perror("bench: pipe");
		kill(d, SIGKILL);
		waitpid(d, NULL, 0);
		return -1;
	}
	c = fork();
	if (c == 0) {
		char b;

		uint8_t *m = restore_side(o, size, &sk);
		double t0;

		if (!m) {
			perror("bench: restore side");
			_exit(1);
		}
		switch (e) {
		case EXP_SEQ_NOFILL:
			for (uint64_t i = 0; i < ns; i++) {
				t0 = now();
				bad |= touch(m, i);
				lat[nl++] = (now() - t0) * 1e6;
			}
			percentiles(lat, nl, &shared->seq_nofill_p50, &shared->seq_nofill_p99);
			finish(sk);
			break;
		case EXP_RAND_NOFILL:
		case EXP_RAND_FILL:
			if (e == EXP_RAND_FILL)
				finish(sk);
			for (uint64_t k = 0; k < ns; k++) {
				uint64_t i = rnd(&seed) % n;

				if (resident(m + i * PG))
					continue;
				t0 = now();
				bad |= touch(m, i);
				lat[nl++] = (now() - t0) * 1e6;
			}
			if (e == EXP_RAND_FILL) {
				percentiles(lat, nl, &shared->rand_fill_p50,
					    &shared->rand_fill_p99);
				shared->rand_fill_faults = nl;
			} else {
				percentiles(lat, nl, &shared->rand_nofill_p50,
					    &shared->rand_nofill_p99);
				finish(sk);
			}
			break;
		case EXP_SEQ_ALL:
			t0 = now();
			finish(sk);
			for (uint64_t i = 0; i < n; i++)
				bad |= touch(m, i);
			shared->seq_all_s = now() - t0;
			break;
		case EXP_RESIDENT:
			finish(sk);
			break;
		case EXP_WS_RECORD:
		case EXP_WS_PLAIN:
		case EXP_WS_PREFETCH:
			/*
			 * Time to first useful work, counted from the handover of the uffd:
			 * criu restore needs a while after that before it sends the finish word
			 * (0.3-0.6 s for a small process in the VM tier); 20 ms here.
			 */
			t0 = now();
			usleep(20000);
			finish(sk);
			touch_working_set(m, n, &bad);
			if (e == EXP_WS_PLAIN)
				shared->ws_plain_s = now() - t0;
			else if (e == EXP_WS_PREFETCH)
				shared->ws_prefetch_s = now() - t0;
			if (e == EXP_WS_RECORD) { /* on-demand: exit now, nothing else needed */
				shared->bad |= bad;
				_exit(bad ? 3 : 0);
			}
			break;
		}
		/* stay alive until the daemon is done, then check everything */
		close(done[1]);
		while (read(done[0], &b, 1) < 0 && errno == EINTR)
			;
		for (uint64_t i = 0; i < n; i++)
			bad |= touch(m, i);
		shared->bad |= bad;
		_exit(bad ? 3 : 0);
	}
	close(done[0]);
	if (waitpid(d, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		close(done[1]);
		fprintf(stderr, "bench: daemon failed (status %#x), see %s/daemon.log\n", st,
			o->out);
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
		return -1;
	}
	close(done[1]);
	waitpid(c, &st, 0);
	*r = *shared;
	if (e == EXP_RESIDENT) {
		r->resident_s = stats_value(stats, "seconds_to_resident_after_first_uffd");
		r->fill_copy_s = stats_value(stats, "fill_copy_seconds");
	}
	if (e == EXP_RAND_FILL) {
		r->fill_wait_p99 = stats_value(stats, "fault_wait_p99_us");
		r->chunk_p99 = stats_value(stats, "fill_chunk_p99_us");
		r->chunk_max = stats_value(stats, "fill_chunk_max_us");
	}
	munmap(shared, sizeof(*shared));
	free(lat);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr,
			"bench: restored process failed (status %#x): memory did not verify\n", st);
		return -1;
	}
	return 0;
}

/* The kernel's own demand paging of a MAP_PRIVATE file mapping, and an eager copy. */
static int run_baselines(const struct opts *o, uint64_t size, struct result *r)
{
	char path[512];
	uint64_t n = size / PG, ns = n < NSAMPLES ? n : NSAMPLES, seed = 99;
	double *lat = malloc(ns * sizeof(double)), t0;
	size_t nl = 0;
	uint8_t *m, *buf;
	int fd, bad = 0;

	snprintf(path, sizeof(path), "%s/pages-1.img", o->dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;

	m = mmap((void *)BASE, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd,
		 0);
	t0 = now();
	for (uint64_t i = 0; i < n; i++)
		bad |= touch(m, i);
	r->kern_seq_read_s = now() - t0;
	munmap(m, size);

	m = mmap((void *)BASE, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd,
		 0);
	t0 = now();
	for (uint64_t i = 0; i < n; i++) {
		bad |= touch(m, i);
		m[i * PG + 8] = 1; /* a write: the private copy */
	}
	r->kern_seq_write_s = now() - t0;
	munmap(m, size);

	/* mincore() reports the page cache for file mappings: time every first touch. */
	m = mmap((void *)BASE, size, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
	for (uint64_t k = 0; k < ns; k++) {
		uint64_t i = rnd(&seed) % n;

		t0 = now();
		bad |= touch(m, i);
		lat[nl++] = (now() - t0) * 1e6;
	}
	percentiles(lat, nl, &r->kern_rand_p50, &r->kern_rand_p99);
	munmap(m, size);

	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t0 = now();
	for (uint64_t off = 0; off < size;) {
		ssize_t k =
			pread(fd, buf + off, size - off > (64 << 20) ? 64 << 20 : size - off, off);

		if (k <= 0)
			break;
		off += k;
	}
	r->eager_s = now() - t0;
	bad |= *(uint64_t *)buf != page_word(BASE);
	munmap(buf, size);
	close(fd);
	free(lat);
	r->bad |= bad;
	return bad ? -1 : 0;
}

/* The experiments by name, for --only; the baselines are "kernel". */
static const char *const exp_names[] = {
	[EXP_SEQ_NOFILL] = "seq",  [EXP_RAND_NOFILL] = "rand",	[EXP_RAND_FILL] = "rand-fill",
	[EXP_SEQ_ALL] = "seq-all", [EXP_RESIDENT] = "resident", [EXP_WS_RECORD] = "ws",
	[EXP_WS_PLAIN] = "ws",	   [EXP_WS_PREFETCH] = "ws",	[EXP_NR] = "kernel",
};

static bool wanted(const struct opts *o, int e)
{
	return !o->only || (o->only & (1u << e));
}

static int run_once(const struct opts *o, uint64_t size, struct result *r)
{
	if (wanted(o, EXP_NR) && run_baselines(o, size, r))
		return -1;
	for (int e = 0; e < EXP_NR; e++)
		if (wanted(o, e) && run_lazy(o, size, e, r))
			return -1;
	return 0;
}

/*
 * --reps N: the whole set of experiments N times in turn (each one side by side with its
 * baselines), then the median of every figure: one noisy run on a shared machine moves
 * no ratio.
 */
static int run_reps(const struct opts *o, uint64_t size, struct result *out)
{
	static const size_t fields[] = {
		offsetof(struct result, seq_nofill_p50),  offsetof(struct result, seq_nofill_p99),
		offsetof(struct result, rand_nofill_p50), offsetof(struct result, rand_nofill_p99),
		offsetof(struct result, rand_fill_p50),	  offsetof(struct result, rand_fill_p99),
		offsetof(struct result, seq_all_s),	  offsetof(struct result, resident_s),
		offsetof(struct result, kern_seq_read_s), offsetof(struct result, kern_seq_write_s),
		offsetof(struct result, kern_rand_p50),	  offsetof(struct result, kern_rand_p99),
		offsetof(struct result, eager_s),	  offsetof(struct result, ws_plain_s),
		offsetof(struct result, ws_prefetch_s),	  offsetof(struct result, fill_wait_p99),
		offsetof(struct result, chunk_p99),	  offsetof(struct result, chunk_max),
		offsetof(struct result, fill_copy_s),
	};
	int n = o->reps > 0 ? o->reps : 1;
	struct result *rr = calloc(n, sizeof(*rr));
	double *v = calloc(n, sizeof(*v));

	if (!rr || !v) {
		free(rr);
		free(v);
		return -1;
	}
	for (int k = 0; k < n; k++) {
		if (run_once(o, size, &rr[k])) {
			free(rr);
			free(v);
			return -1;
		}
	}
	*out = rr[0];
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		for (int k = 0; k < n; k++)
			v[k] = *(double *)((char *)&rr[k] + fields[f]);
		qsort(v, n, sizeof(*v), cmp_double);
		*(double *)((char *)out + fields[f]) =
			n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	}
	free(rr);
	free(v);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: lp-bench --daemon PATH [--sizes 64M,256M,1G] [--dir TMP] [--out DIR]\n"
		   "                [--daemon-args 'ARGS'] [--reps N]\n"
		   "                [--only kernel,seq,rand,rand-fill,seq-all,resident,ws]\n");
}

static uint64_t parse_size(const char *s)
{
	char *e;
	uint64_t v = strtoull(s, &e, 10);

	if (*e == 'M' || *e == 'm')
		v <<= 20;
	else if (*e == 'G' || *e == 'g')
		v <<= 30;
	return v & ~(PG - 1);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"daemon", required_argument, NULL, 'd'},
		{"sizes", required_argument, NULL, 's'},
		{"dir", required_argument, NULL, 'D'},
		{"out", required_argument, NULL, 'o'},
		{"daemon-args", required_argument, NULL, 'a'},
		{"reps", required_argument, NULL, 'r'},
		{"only", required_argument, NULL, 'O'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	struct opts o = {.dir = "/dev/shm/lp-bench", .out = "bench/out", .reps = 1};
	char csv[512], *tok, *save = NULL, sizes[] = "64M,256M,1G,2G", *sz = sizes;
	FILE *f;
	int c, fails = 0;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.daemon = optarg;
			break;
		case 's':
			sz = optarg;
			break;
		case 'D':
			o.dir = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'a':
			o.daemon_args = optarg;
			break;
		case 'r':
			o.reps = atoi(optarg);
			break;
		case 'O':
			for (char *t = strtok_r(optarg, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				unsigned int got = 0;

				for (int e = 0; e <= EXP_NR; e++)
					if (!strcmp(t, exp_names[e]))
						got |= 1u << e;
				o.only |= got;
				if (!got) {
					fprintf(stderr,
						"bench: --only: no experiment called '%s'\n", t);
					return 2;
				}
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.daemon) {
		usage(stderr);
		return 2;
	}
	for (tok = strtok_r(sz, ",", &save); tok && o.nsizes < 16; tok = strtok_r(NULL, ",", &save))
		o.sizes[o.nsizes++] = parse_size(tok);
	mkdir(o.out, 0755);
	snprintf(csv, sizeof(csv), "%s/results.csv", o.out);
	f = fopen(csv, "w");
	if (!f) {
		perror(csv);
		return 1;
	}
	fprintf(f,
		"size_mib,seq_nofill_p50_us,seq_nofill_p99_us,rand_nofill_p50_us,rand_nofill_p99_us,"
		"rand_fill_p50_us,rand_fill_p99_us,seq_all_s,resident_s,fill_gbps,kern_seq_read_s,"
		"kern_seq_write_s,kern_rand_p50_us,kern_rand_p99_us,eager_s,ws_plain_s,ws_prefetch_s,"
		"fill_wait_p99_us,fill_chunk_p99_us,fill_chunk_max_us,fill_copy_s\n");
	printf("%8s | %15s | %15s | %15s | %9s | %9s %6s | %9s %9s | %9s | %8s\n", "size",
	       "seq p50/p99 µs", "rand p50/p99", "rand+fill p50/99", "seq all s", "resident",
	       "GB/s", "kern rd s", "kern wr s", "kern rand", "eager s");
	for (int i = 0; i < o.nsizes; i++) {
		struct result r = {0};
		uint64_t size = o.sizes[i];
		double gbps;

		if (write_ckpt(o.dir, size)) {
			fprintf(stderr, "bench: cannot write a %llu MiB checkpoint in %s\n",
				(unsigned long long)(size >> 20), o.dir);
			return 1;
		}
		if (run_reps(&o, size, &r)) {
			fails++;
			continue;
		}
		gbps = r.resident_s > 0 ? size / r.resident_s / 1e9 : -1;
		printf("%5llu MiB | %6.1f / %6.1f | %6.1f / %6.1f | %6.1f / %6.1f | %9.3f | %9.3f %6.2f | "
		       "%9.3f %9.3f | %4.1f/%4.1f | %8.3f\n",
		       (unsigned long long)(size >> 20), r.seq_nofill_p50, r.seq_nofill_p99,
		       r.rand_nofill_p50, r.rand_nofill_p99, r.rand_fill_p50, r.rand_fill_p99,
		       r.seq_all_s, r.resident_s, gbps, r.kern_seq_read_s, r.kern_seq_write_s,
		       r.kern_rand_p50, r.kern_rand_p99, r.eager_s);
		printf("          ratios: rand p99 fill/nofill %.2f (target <= 2), seq-all / kernel "
		       "read %.2f, / kernel write %.2f (target <= 1.5)\n",
		       r.rand_fill_p99 / r.rand_nofill_p99, r.seq_all_s / r.kern_seq_read_s,
		       r.seq_all_s / r.kern_seq_write_s);
		printf("          time to first useful work (uffd handed over, 20 ms restore, then 5%% "
		       "of pages at random): %.4f s plain, %.4f s with --prefetch: %.2fx faster\n",
		       r.ws_plain_s, r.ws_prefetch_s, r.ws_plain_s / r.ws_prefetch_s);
		printf("          rand+fill, the daemon's side: the loop thread waited for fill chunks "
		       "p99 <%.0f µs before reading the uffd; a chunk took p99 <%.0f µs, max %.0f µs\n",
		       r.fill_wait_p99, r.chunk_p99, r.chunk_max);
		printf("          fill alone: its copies took %.3f s added up, %.2f copying at once "
		       "on average\n",
		       r.fill_copy_s, r.resident_s > 0 ? r.fill_copy_s / r.resident_s : 0);
		fflush(stdout);
		fprintf(f,
			"%llu,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.4f,%.4f,%.3f,%.4f,%.4f,%.2f,%.2f,%.4f,"
			"%.4f,%.4f,%.1f,%.1f,%.1f,%.4f\n",
			(unsigned long long)(size >> 20), r.seq_nofill_p50, r.seq_nofill_p99,
			r.rand_nofill_p50, r.rand_nofill_p99, r.rand_fill_p50, r.rand_fill_p99,
			r.seq_all_s, r.resident_s, gbps, r.kern_seq_read_s, r.kern_seq_write_s,
			r.kern_rand_p50, r.kern_rand_p99, r.eager_s, r.ws_plain_s, r.ws_prefetch_s,
			r.fill_wait_p99, r.chunk_p99, r.chunk_max, r.fill_copy_s);
		fflush(f);
	}
	fclose(f);
	{
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", o.dir);
		if (system(cmd))
			fprintf(stderr, "bench: could not remove %s\n", o.dir);
	}
	return fails ? 1 : 0;
}
