// SPDX-License-Identifier: MIT
/*
 * lp-crashtest: plays `criu restore --lazy-pages` for one process while a driver kills
 * the daemon's serving process again and again (test/crash/run.sh). Every page must
 * still come back with the image's content, discarded ranges must read as zeros, a
 * forked child must see the image too.
 *
 *   lp-crashtest write DIR          write the checkpoint
 *   lp-crashtest restore DIR        be the restored process (daemon already listening)
 *
 * Pre-copy + post-copy (test/modes): `write-parent DIR` writes DIR/parent, a full
 * checkpoint with older contents, and DIR whose first half is PE_PARENT; `restore-parent
 * DIR` leaves those pages missing (as CRIU may, issue 2853) and `restore-parent-eager DIR`
 * fills them itself and then changes some: either way every page must end up right.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image.h"
#include "magic.h"
#include "uffd-abi.h"
#include "writer.h"
#include "restore-side.h"

#define PG	      4096ULL
#define NP	      8192ULL /* 32 MiB */
#define BASE	      0x210000000000ULL
#define HOLE_START    5000 /* never dumped: must read as zeros */
#define HOLE_LEN      32
#define DISCARD_START 3000 /* MADV_DONTNEED during the restore */
#define DISCARD_LEN   64
#define NTHREADS      4

static uint64_t word(uint64_t addr, unsigned int k)
{
	uint64_t x = addr * 0x9E3779B97F4A7C15ULL + k * 0xBF58476D1CE4E5B9ULL;

	return x ^ (x >> 29);
}

static int parent_mode; /* 0: none, 1: parent pages left to the daemon, 2: restore fills them */

static bool is_parent(uint64_t i)
{
	return parent_mode && i < NP / 2;
}

/* Content of page I, word K, as the process had it at the final dump. */
static uint64_t expect(uint64_t i, unsigned int k)
{
	uint64_t w = word(BASE + i * PG, k);

	if (is_parent(i))
		w ^= 0x5555555555555555ULL; /* unchanged since the pre-dump */
	if (parent_mode == 2 && is_parent(i) && i % 16 == 0 && k == 0)
		w = 0x600d; /* written by the restored process before the finish word */
	return w;
}

static bool is_hole(uint64_t i)
{
	return i >= HOLE_START && i < HOLE_START + HOLE_LEN;
}

static int write_pages(struct lp_images *im, bool old, uint64_t from, uint64_t to)
{
	struct lp_img_writer w;
	uint64_t buf[PG / 8];
	int ret = 0;

	lp_img_create(im, "pages-1.img", RAW_IMAGE_MAGIC, &w);
	for (uint64_t i = from; !ret && i < to; i++) {
		if (is_hole(i))
			continue;
		for (unsigned int k = 0; k < PG / 8; k++)
			buf[k] = word(BASE + i * PG, k) ^ (old ? 0x5555555555555555ULL : 0);
		ret = lp_img_write_raw(&w, buf, PG);
	}
	return lp_img_writer_close(&w) ?: ret;
}

/* One checkpoint level in DIR: the test's task and VMA, pagemap PE[N], pages FROM..TO. */
static int write_level(const char *dir, const struct lp_pme *pe, size_t n, bool old, uint64_t from,
		       uint64_t to)
{
	struct lp_images im;
	uint32_t th[NTHREADS + 1] = {1, 2, 3, 4, 5};
	struct lp_task t = {
		.pid = 1, .pgid = 1, .sid = 1, .nr_threads = NTHREADS + 1, .threads = th};
	struct lp_pstree pt = {.nr = 1, .tasks = &t};
	struct lp_vma v = {.start = BASE,
			   .end = BASE + NP * PG,
			   .prot = PROT_READ | PROT_WRITE,
			   .flags = MAP_PRIVATE | MAP_ANONYMOUS,
			   .status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE};
	struct lp_mm mm = {.nr = 1, .vmas = &v};
	int ret;

	mkdir(dir, 0755);
	if (lp_images_open_dir(&im, dir))
		return 1;
	ret = lp_write_inventory(&im) ?: lp_write_pstree(&im, &pt) ?:
	      lp_write_core(&im, 1, TASK_ALIVE, "crashtest") ?: lp_write_mm(&im, 1, &mm, NULL, 0) ?:
	      lp_write_pagemap(&im, 1, 1, pe, n, LP_PM_BOTH) ?: write_pages(&im, old, from, to);
	lp_images_close(&im);
	return ret ? 1 : 0;
}

/* The lazy pages: all but the hole. */
static const struct lp_pme lazy_all[2] = {
	{.vaddr = BASE, .nr_pages = HOLE_START, .flags = PE_LAZY | PE_PRESENT},
	{.vaddr = BASE + (HOLE_START + HOLE_LEN) * PG,
	 .nr_pages = NP - HOLE_START - HOLE_LEN,
	 .flags = PE_LAZY | PE_PRESENT},
};

/* DIR/parent: everything, older content; DIR: first half PE_PARENT, second half new. */
static int write_parent_ckpt(const char *dir)
{
	char pdir[4096];
	struct lp_pme te[3] = {
		{.vaddr = BASE, .nr_pages = NP / 2, .flags = PE_PARENT},
		{.vaddr = BASE + NP / 2 * PG,
		 .nr_pages = HOLE_START - NP / 2,
		 .flags = PE_LAZY | PE_PRESENT},
		lazy_all[1],
	};

	parent_mode = 1;
	mkdir(dir, 0755);
	snprintf(pdir, sizeof(pdir), "%s/parent", dir);
	return write_level(pdir, lazy_all, 2, true, 0, NP)
		       ?: write_level(dir, te, 3, false, NP / 2, NP);
}

static int write_ckpt(const char *dir)
{
	return write_level(dir, lazy_all, 2, false, 0, NP);
}

static uint8_t *mem;
static int failures;

/* Check page I; ZERO: it must read as zeros. */
static void check(uint64_t i, bool zero, const char *who)
{
	const uint64_t *p = (const uint64_t *)(mem + i * PG);

	for (unsigned int k = 0; k < PG / 8; k += 37) {
		uint64_t want = zero ? 0 : expect(i, k);

		if (p[k] != want) {
			fprintf(stderr, "%s: page %llu (%#llx) word %u: %#llx, expected %#llx\n",
				who, (unsigned long long)i, (unsigned long long)(BASE + i * PG), k,
				(unsigned long long)p[k], (unsigned long long)want);
			__atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
			return;
		}
	}
}

static bool discarded(uint64_t i)
{
	return i >= DISCARD_START && i < DISCARD_START + DISCARD_LEN;
}

static void *toucher(void *arg)
{
	uint64_t id = (uintptr_t)arg, seed = id * 7919 + 1;

	/* Slowly, in a thread-specific order, so the daemon dies with faults in flight. */
	for (uint64_t n = 0; n < NP / 2; n++) {
		uint64_t i;

		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		i = seed % NP;
		if (!discarded(i))
			check(i, is_hole(i), "toucher");
		if (n % 64 == 0)
			usleep(3000);
	}
	return NULL;
}

static void forking(const char *dir, bool on)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/FORKING", dir);
	if (on)
		close(open(path, O_CREAT | O_WRONLY, 0644));
	else
		unlink(path);
}

static int restore(const char *dir)
{
	struct uffdio_api api = {.api = UFFD_API, .features = LP_UFFD_CRIU_FEATURES};
	struct uffdio_register reg = {.range = {.start = BASE, .len = NP * PG},
				      .mode = UFFDIO_REGISTER_MODE_MISSING};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint32_t fin = 0x52535446;
	pthread_t th[NTHREADS];
	int uffd, sk, st;
	pid_t child;

	mem = mmap((void *)BASE, NP * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	madvise(mem, NP * PG, MADV_NOHUGEPAGE);
	if (parent_mode == 2) /* restore fills parent pages eagerly (before registering) */
		for (uint64_t i = 0; i < NP / 2; i++)
			for (unsigned int k = 0; k < PG / 8; k++)
				((uint64_t *)(mem + i * PG))[k] =
					word(BASE + i * PG, k) ^ 0x5555555555555555ULL;
	uffd = lp_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		perror("userfaultfd");
		return 2;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/lazy-pages.socket", dir);
	sk = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(sk, (struct sockaddr *)&sa, sizeof(sa)) || lpt_send_uffd(sk, 1, uffd)) {
		perror("handing the uffd to the daemon");
		return 2;
	}
	close(uffd);

	if (parent_mode == 2) /* the process changes some restored pages */
		for (uint64_t i = 0; i < NP / 2; i += 16)
			*(uint64_t *)(mem + i * PG) = 0x600d;
	/* Before the finish word: faults only, events, a fork. */
	for (uintptr_t t = 0; t < NTHREADS; t++)
		pthread_create(&th[t], NULL, toucher, (void *)t);
	usleep(20000);
	madvise(mem + DISCARD_START * PG, DISCARD_LEN * PG, MADV_DONTNEED);
	/*
	 * A kill in the microseconds between the daemon reading this FORK event and
	 * journaling it loses the child's uffd (docs/daemon.md): the driver does not kill
	 * while FORKING exists.
	 */
	forking(dir, true);
	child = fork();
	if (child == 0) {
		for (uint64_t i = 6000; i < 6400; i++)
			check(i, false, "forked child");
		_exit(failures ? 1 : 0);
	}
	usleep(5000); /* let the daemon journal the fork */
	forking(dir, false);
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "the forked child saw wrong memory (status %#x)\n", st);
		failures++;
	}
	/* Finish word: the background fill joins in; then check everything. */
	if (send(sk, &fin, 4, 0) != 4)
		perror("finish word");
	for (uint64_t i = 0; i < NP; i++)
		check(i, is_hole(i) || discarded(i), "final check");
	close(sk);
	printf("lp-crashtest: %llu pages checked, %d failures\n", (unsigned long long)NP, failures);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "write"))
		return write_ckpt(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "restore"))
		return restore(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "write-parent"))
		return write_parent_ckpt(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "restore-parent")) {
		parent_mode = 1;
		return restore(argv[2]);
	}
	if (argc == 3 && !strcmp(argv[1], "restore-parent-eager")) {
		parent_mode = 2;
		return restore(argv[2]);
	}
	fprintf(stderr, "usage: lp-crashtest write|restore DIR\n");
	return 2;
}
