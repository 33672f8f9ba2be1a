// SPDX-License-Identifier: MIT
/*
 * mkckpt: write a synthetic CRIU checkpoint for lazy-restore tests.
 *
 * The checkpoint has what a regular `criu dump` leaves for `criu lazy-pages` and
 * `criu restore --lazy-pages`: inventory, pstree, core-<tid> for every thread, and for every
 * live process mm-<pid>, pagemap-<pid> and pages-<id> (plus pagemap-shmem-<shmid> for shared
 * anonymous VMAs). Private anonymous pages are PE_LAZY|PE_PRESENT, except a mix of
 * PE_PRESENT-only pages (like the pages under a thread's stack pointer) and never-dumped
 * holes; MAP_LOCKED and MAP_SHARED VMAs are never lazy. Pagemap runs merge across adjacent
 * VMAs when their flags agree, as CRIU's page pipes do, so consumers must split them.
 *
 * Page contents come from test/restore-double/pattern.h: a function of (pid, address, seed).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "magic.h"
#include "mm.h"
#include "pagemap.h"
#include "pagemap.pb-c.h"
#include "pstree.h"
#include "writer.h"
#include "restore-double/pattern.h"

#define PROT_R	0x1U
#define PROT_RW 0x3U

/* Where process memory goes: clear of PIE binaries (0x55..), ASan's shadow (below
 * 0x1000_8000_0000) and allocator (0x6000_0000_0000), and the mmap area (0x7f..). */
#define ADDR_LO	 0x200000000000ULL
#define ADDR_HI	 0x500000000000ULL
#define MAX_VMAS 30000

enum layout { LAYOUT_RANDOM, LAYOUT_ONE, LAYOUT_MANY };
enum vkind { VK_LAZY, VK_SHARED, VK_LOCKED };

struct opts {
	const char *dir;
	uint64_t seed;
	unsigned int procs, zombies, threads, vmas, shared, locked, max_run, img_version;
	int shared_set, locked_set, ro_set;
	uint64_t size;
	enum lp_pm_encoding enc;
	enum layout layout;
	double holes, nonlazy, readonly;
	uint32_t pid_base;
	bool quiet;
};

struct shm {
	uint64_t shmid;
	uint32_t pages_id;
	size_t vma; /* index into the process's VMAs */
	struct lp_pme *e;
	size_t nr, cap;
};

struct proc {
	uint32_t pid;
	int parent; /* index, -1 for the root */
	bool zombie;
	uint32_t nr_threads;
	uint32_t *tids;
	struct lp_vma *vmas;
	size_t nr_vmas;
	struct lp_pme *e;
	size_t nr_e, cap_e;
	uint32_t pages_id;
	struct shm *shm;
	size_t nr_shm;
	/* counts, in pages */
	uint64_t vma_pages, lazy, nonlazy, holes, shared, shared_holes, locked;
};

struct totals {
	uint64_t vmas, vma_pages, lazy, nonlazy, holes, shared, shared_holes, locked, present;
	uint64_t entries, crossing;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mkckpt -D DIR [OPTIONS]\n"
		"Write a synthetic CRIU checkpoint (regular dump, lazy-eligible pages PE_LAZY|PE_PRESENT).\n"
		"\n"
		"  -D, --dir DIR          output directory (created if missing)\n"
		"  -s, --seed N           seed for layout and page contents (default 1)\n"
		"  -p, --procs N          live processes, their ppids forming a tree (default 1)\n"
		"  -z, --zombies N        zombie processes (core task_state 2, no mm/pagemap) (default 0)\n"
		"  -t, --threads N        threads per live process (default 1)\n"
		"  -n, --vmas N           lazy-eligible VMAs per process, random layout (default 8)\n"
		"  -S, --size SIZE        bytes of lazy-eligible VMAs per process, K/M/G (default 4M)\n"
		"  -e, --encoding E       pagemap nr_pages: compat (field 2), both, v42 (field 5 only)\n"
		"  -l, --layout L         random | one (one big VMA) | many (many 1-4 page VMAs)\n"
		"      --holes F          fraction of never-dumped pages (default 0.1)\n"
		"      --nonlazy F        fraction of PE_PRESENT-only pages in lazy VMAs (default 0.05)\n"
		"      --readonly F       fraction of read-only lazy VMAs (default 0.25, 0 for one)\n"
		"      --shared N         MAP_SHARED anonymous VMAs per process (default 1, 0 for one/many)\n"
		"      --locked N         MAP_PRIVATE|MAP_LOCKED VMAs per process (default 1, 0 for one/many)\n"
		"      --max-run N        longest run of pages with one state (default 64)\n"
		"      --pid-base N       first pid (default 1000)\n"
		"      --img-version N    inventory img_version 1 or 2 (default 2)\n"
		"  -q, --quiet            no summary line\n");
}

static int parse_uint(const char *s, unsigned int *v)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(s, &end, 0);
	if (errno || end == s || *end || x > 1000000000UL)
		return -1;
	*v = x;
	return 0;
}

static int parse_frac(const char *s, double *v)
{
	char *end;

	*v = strtod(s, &end);
	return (end == s || *end || *v < 0 || *v > 1) ? -1 : 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"dir", required_argument, NULL, 'D'},
		{"seed", required_argument, NULL, 's'},
		{"procs", required_argument, NULL, 'p'},
		{"zombies", required_argument, NULL, 'z'},
		{"threads", required_argument, NULL, 't'},
		{"vmas", required_argument, NULL, 'n'},
		{"size", required_argument, NULL, 'S'},
		{"encoding", required_argument, NULL, 'e'},
		{"layout", required_argument, NULL, 'l'},
		{"holes", required_argument, NULL, 1},
		{"nonlazy", required_argument, NULL, 2},
		{"readonly", required_argument, NULL, 3},
		{"shared", required_argument, NULL, 4},
		{"locked", required_argument, NULL, 5},
		{"max-run", required_argument, NULL, 6},
		{"pid-base", required_argument, NULL, 7},
		{"img-version", required_argument, NULL, 8},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned int u;
	int c;

	*o = (struct opts){.seed = 1,
			   .procs = 1,
			   .threads = 1,
			   .vmas = 8,
			   .size = 4 << 20,
			   .holes = 0.1,
			   .nonlazy = 0.05,
			   .readonly = 0.25,
			   .max_run = 64,
			   .pid_base = 1000,
			   .img_version = 2};
	while ((c = getopt_long(argc, argv, "D:s:p:z:t:n:S:e:l:qh", lo, NULL)) != -1) {
		switch (c) {
		case 'D':
			o->dir = optarg;
			break;
		case 's': {
			char *end;

			errno = 0;
			o->seed = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg)
				goto bad;
			break;
		}
		case 'p':
			if (parse_uint(optarg, &o->procs) || !o->procs)
				goto bad;
			break;
		case 'z':
			if (parse_uint(optarg, &o->zombies))
				goto bad;
			break;
		case 't':
			if (parse_uint(optarg, &o->threads) || !o->threads || o->threads > 1000)
				goto bad;
			break;
		case 'n':
			if (parse_uint(optarg, &o->vmas) || !o->vmas || o->vmas > MAX_VMAS)
				goto bad;
			break;
		case 'S':
			if (lpt_parse_size(optarg, &o->size) || o->size < LPT_PAGE)
				goto bad;
			break;
		case 'e':
			if (!strcmp(optarg, "compat"))
				o->enc = LP_PM_COMPAT;
			else if (!strcmp(optarg, "both"))
				o->enc = LP_PM_BOTH;
			else if (!strcmp(optarg, "v42"))
				o->enc = LP_PM_V42;
			else
				goto bad;
			break;
		case 'l':
			if (!strcmp(optarg, "random"))
				o->layout = LAYOUT_RANDOM;
			else if (!strcmp(optarg, "one"))
				o->layout = LAYOUT_ONE;
			else if (!strcmp(optarg, "many"))
				o->layout = LAYOUT_MANY;
			else
				goto bad;
			break;
		case 1:
			if (parse_frac(optarg, &o->holes))
				goto bad;
			break;
		case 2:
			if (parse_frac(optarg, &o->nonlazy))
				goto bad;
			break;
		case 3:
			if (parse_frac(optarg, &o->readonly))
				goto bad;
			o->ro_set = 1;
			break;
		case 4:
			if (parse_uint(optarg, &o->shared) || o->shared > 1000)
				goto bad;
			o->shared_set = 1;
			break;
		case 5:
			if (parse_uint(optarg, &o->locked) || o->locked > 1000)
				goto bad;
			o->locked_set = 1;
			break;
		case 6:
			if (parse_uint(optarg, &o->max_run) || !o->max_run)
				goto bad;
			break;
		case 7:
			if (parse_uint(optarg, &u) || !u)
				goto bad;
			o->pid_base = u;
			break;
		case 8:
			if (parse_uint(optarg, &o->img_version) ||
			    (o->img_version != 1 && o->img_version != 2))
				goto bad;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		continue;
	bad:
		for (const struct option *p = lo; p->name; p++)
			if (p->val == c)
				fprintf(stderr, "mkckpt: bad value for --%s: '%s'\n", p->name,
					optarg);
		return -1;
	}
	if (optind != argc || !o->dir) {
		fprintf(stderr, "mkckpt: %s\n",
			o->dir ? "unexpected argument" : "-D DIR is required");
		usage(stderr);
		return -1;
	}
	if (o->holes + o->nonlazy > 1) {
		fprintf(stderr, "mkckpt: --holes + --nonlazy must not exceed 1\n");
		return -1;
	}
	if (!o->shared_set)
		o->shared = o->layout == LAYOUT_RANDOM ? 1 : 0;
	if (!o->locked_set)
		o->locked = o->layout == LAYOUT_RANDOM ? 1 : 0;
	if (!o->ro_set && o->layout == LAYOUT_ONE)
		o->readonly = 0;
	return 0;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "mkckpt: out of memory\n");
		exit(1);
	}
	return q;
}

/* ---- layout --------------------------------------------------------------------------- */

struct vspec {
	enum vkind kind;
	uint64_t pages;
	uint32_t prot;
};

static void add_entry(struct lp_pme **e, size_t *nr, size_t *cap, uint64_t addr, uint64_t n,
		      uint32_t flags)
{
	if (*nr && lp_pme_end(&(*e)[*nr - 1]) == addr && (*e)[*nr - 1].flags == flags) {
		(*e)[*nr - 1].nr_pages += n;
		return;
	}
	if (*nr == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*e = xrealloc(*e, *cap * sizeof(**e));
	}
	(*e)[(*nr)++] = (struct lp_pme){.vaddr = addr, .nr_pages = n, .flags = flags};
}

static uint64_t run_len(struct lpt_rng *r, const struct opts *o)
{
	/* Mostly short runs, some up to --max-run. */
	if (lpt_chance(r, 0.5))
		return 1 + lpt_below(r, o->max_run < 8 ? o->max_run : 8);
	return 1 + lpt_below(r, o->max_run);
}

/* Decide which pages of VMA V were dumped and how. */
static void gen_pages(struct proc *p, size_t vi, struct lpt_rng *r, const struct opts *o,
		      bool sp_page)
{
	const struct lp_vma *v = &p->vmas[vi];
	uint64_t npages = (v->end - v->start) / LPT_PAGE;
	struct shm *sh = NULL;
	enum vkind kind = (v->flags & LP_MAP_SHARED)   ? VK_SHARED
			  : (v->flags & LP_MAP_LOCKED) ? VK_LOCKED
						       : VK_LAZY;

	if (kind == VK_SHARED) {
		for (size_t i = 0; i < p->nr_shm; i++)
			if (p->shm[i].vma == vi)
				sh = &p->shm[i];
	}
	p->vma_pages += npages;
	for (uint64_t pg = 0; pg < npages;) {
		uint64_t n = run_len(r, o), addr = v->start + pg * LPT_PAGE;
		double x = (double)(lpt_rand(r) >> 11) * (1.0 / 9007199254740992.0);
		uint32_t flags;

		if (n > npages - pg)
			n = npages - pg;
		if (x < o->holes)
			flags = 0;
		else if (kind == VK_LAZY && x < o->holes + o->nonlazy)
			flags = PE_PRESENT;
		else
			flags = kind == VK_LAZY ? (PE_LAZY | PE_PRESENT) : PE_PRESENT;
		/* The page under the stack pointer is never lazy. */
		if (sp_page && pg + n == npages && flags == (PE_LAZY | PE_PRESENT)) {
			if (n > 1) {
				add_entry(&p->e, &p->nr_e, &p->cap_e, addr, n - 1, flags);
				p->lazy += n - 1;
				addr += (n - 1) * LPT_PAGE;
				pg += n - 1;
				n = 1;
			}
			flags = PE_PRESENT;
		}
		if (!flags) {
			if (kind == VK_SHARED)
				p->shared_holes += n;
			else
				p->holes += n;
		} else if (kind == VK_SHARED) {
			add_entry(&sh->e, &sh->nr, &sh->cap, addr - v->start, n, flags);
			p->shared += n;
		} else {
			add_entry(&p->e, &p->nr_e, &p->cap_e, addr, n, flags);
			if (flags & PE_LAZY)
				p->lazy += n;
			else if (kind == VK_LOCKED)
				p->locked += n;
			else
				p->nonlazy += n;
		}
		pg += n;
	}
}

static int gen_layout(struct proc *p, struct lpt_rng *r, const struct opts *o, uint64_t *shmid)
{
	uint64_t size_pages = o->size / LPT_PAGE, extent = 0, base, addr;
	struct vspec *vs = NULL;
	size_t nv = 0, nlazy;
	uint32_t prev_prot = 0;
	enum vkind prev_kind = VK_LAZY;
	ssize_t stack_vma = -1;

	/* The lazy-eligible VMAs. */
	switch (o->layout) {
	case LAYOUT_ONE:
		vs = xrealloc(vs, sizeof(*vs));
		vs[nv++] = (struct vspec){VK_LAZY, size_pages, PROT_RW};
		break;
	case LAYOUT_MANY:
		for (uint64_t left = size_pages; left;) {
			uint64_t n = 1 + lpt_below(r, 4);

			if (n > left)
				n = left;
			if (nv >= MAX_VMAS) {
				fprintf(stderr,
					"mkckpt: --layout many with --size %llu gives more than %d VMAs; "
					"use a smaller size or --layout random\n",
					(unsigned long long)o->size, MAX_VMAS);
				free(vs);
				return -1;
			}
			if (!(nv & (nv - 1)) || nv == 0)
				vs = xrealloc(vs, (nv ? nv * 2 : 1) * sizeof(*vs));
			vs[nv++] = (struct vspec){VK_LAZY, n, PROT_RW};
			left -= n;
		}
		break;
	case LAYOUT_RANDOM: {
		uint64_t n = o->vmas < size_pages ? o->vmas : size_pages, sum = 0, used = 0;
		uint64_t *w = xrealloc(NULL, n * sizeof(*w));

		vs = xrealloc(vs, n * sizeof(*vs));
		for (uint64_t i = 0; i < n; i++)
			sum += w[i] = 1 + lpt_below(r, 100);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t pg = (size_pages - n) * w[i] / sum + 1;

			if (i == n - 1)
				pg = size_pages - used;
			used += pg;
			vs[nv++] = (struct vspec){VK_LAZY, pg, PROT_RW};
		}
		free(w);
		break;
	}
	}
	nlazy = nv;
	for (size_t i = 0; i < nlazy; i++)
		if (o->readonly > 0 && lpt_chance(r, o->readonly))
			vs[i].prot = PROT_R;
	/* Non-lazy-eligible VMAs. */
	vs = xrealloc(vs, (nv + o->shared + o->locked) * sizeof(*vs));
	for (unsigned int i = 0; i < o->shared; i++)
		vs[nv++] = (struct vspec){VK_SHARED, 1 + lpt_below(r, 16), PROT_RW};
	for (unsigned int i = 0; i < o->locked; i++)
		vs[nv++] = (struct vspec){VK_LOCKED, 1 + lpt_below(r, 16), PROT_RW};
	if (o->layout == LAYOUT_RANDOM) {
		for (size_t i = nv - 1; i > 0; i--) {
			size_t j = lpt_below(r, i + 1);
			struct vspec t = vs[i];

			vs[i] = vs[j];
			vs[j] = t;
		}
	}

	for (size_t i = 0; i < nv; i++)
		extent += vs[i].pages + 65;
	extent *= LPT_PAGE;
	if (extent > ADDR_HI - ADDR_LO) {
		fprintf(stderr, "mkckpt: %llu bytes of VMAs do not fit the address range\n",
			(unsigned long long)extent);
		free(vs);
		return -1;
	}
	base = ADDR_LO + lpt_below(r, (ADDR_HI - ADDR_LO - extent) >> 21) * (2ULL << 20);

	p->vmas = xrealloc(NULL, nv * sizeof(*p->vmas));
	p->shm = xrealloc(NULL, (o->shared ? o->shared : 1) * sizeof(*p->shm));
	addr = base;
	for (size_t i = 0; i < nv; i++) {
		struct lp_vma *v = &p->vmas[i];
		bool adjacent = i > 0 && lpt_chance(r, o->layout == LAYOUT_MANY ? 0.25 : 0.33);

		/* Adjacent VMAs must differ, or the kernel would have merged them. */
		if (adjacent && vs[i].kind == prev_kind && vs[i].kind == VK_LAZY)
			vs[i].prot = prev_prot == PROT_RW ? PROT_R : PROT_RW;
		else if (adjacent && vs[i].kind == prev_kind)
			adjacent = false;
		if (i > 0 && !adjacent)
			addr += (1 + lpt_below(r, o->layout == LAYOUT_MANY ? 3 : 64)) * LPT_PAGE;
		memset(v, 0, sizeof(*v));
		v->start = addr;
		v->end = addr + vs[i].pages * LPT_PAGE;
		v->prot = vs[i].prot;
		switch (vs[i].kind) {
		case VK_LAZY:
			v->flags = LP_MAP_PRIVATE | LP_MAP_ANONYMOUS;
			v->status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
			break;
		case VK_LOCKED:
			v->flags = LP_MAP_PRIVATE | LP_MAP_ANONYMOUS | LP_MAP_LOCKED;
			v->status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE;
			break;
		case VK_SHARED:
			v->flags = LP_MAP_SHARED | LP_MAP_ANONYMOUS;
			v->status = VMA_AREA_REGULAR | VMA_ANON_SHARED;
			v->shmid = (*shmid)++;
			p->shm[p->nr_shm++] = (struct shm){.shmid = v->shmid, .vma = i};
			break;
		}
		addr = v->end;
		prev_kind = vs[i].kind;
		prev_prot = vs[i].prot;
	}
	p->nr_vmas = nv;
	/* A heap and a stack, like a real process has, in the random layout. */
	if (o->layout == LAYOUT_RANDOM && nlazy >= 3) {
		ssize_t first = -1;

		for (size_t i = 0; i < nv; i++) {
			if (p->vmas[i].flags != (LP_MAP_PRIVATE | LP_MAP_ANONYMOUS))
				continue;
			if (first < 0)
				first = i;
			stack_vma = i;
		}
		p->vmas[first].status |= VMA_AREA_HEAP;
		if (stack_vma != first) {
			p->vmas[stack_vma].status |= VMA_AREA_STACK;
		} else {
			stack_vma = -1;
		}
	}
	/* Adjacent VMAs must not look mergeable. */
	for (size_t i = 1; i < nv; i++) {
		struct lp_vma *a = &p->vmas[i - 1], *b = &p->vmas[i];

		if (a->end == b->start && a->prot == b->prot && a->flags == b->flags)
			b->prot = b->prot == PROT_RW ? PROT_R : PROT_RW;
	}
	for (size_t i = 0; i < nv; i++)
		gen_pages(p, i, r, o, (ssize_t)i == stack_vma);
	free(vs);
	return 0;
}

/* ---- writing -------------------------------------------------------------------------- */

#define WBUF (8ULL << 20)

static int write_pages(const struct lp_images *im, uint32_t pages_id, uint32_t pid,
		       const struct lp_pme *e, size_t nr, uint64_t addr_base, uint64_t seed,
		       uint8_t *buf, uint64_t *bytes)
{
	struct lp_img_writer w;
	char name[64];
	size_t fill = 0;
	int ret;

	snprintf(name, sizeof(name), "pages-%u.img", pages_id);
	ret = lp_img_create(im, name, RAW_IMAGE_MAGIC, &w);
	if (ret)
		return ret;
	for (size_t i = 0; i < nr; i++) {
		if (!(e[i].flags & PE_PRESENT))
			continue;
		for (uint64_t pg = 0; pg < e[i].nr_pages; pg++) {
			lpt_pattern_page(buf + fill, pid, addr_base + e[i].vaddr + pg * LPT_PAGE,
					 seed);
			fill += LPT_PAGE;
			if (fill == WBUF) {
				lp_img_write_raw(&w, buf, fill);
				*bytes += fill;
				fill = 0;
			}
		}
	}
	if (fill)
		lp_img_write_raw(&w, buf, fill);
	*bytes += fill;
	return lp_img_writer_close(&w);
}

static int write_shmem_pagemap(const struct lp_images *im, const struct shm *sh,
			       enum lp_pm_encoding enc)
{
	PagemapHead h = PAGEMAP_HEAD__INIT;
	struct lp_img_writer w;
	char name[96];

	snprintf(name, sizeof(name), "pagemap-shmem-%llu.img", (unsigned long long)sh->shmid);
	lp_img_create(im, name, PAGEMAP_MAGIC, &w);
	h.pages_id = sh->pages_id;
	lp_img_write_pb(&w, &h.base);
	for (size_t i = 0; i < sh->nr; i++) {
		PagemapEntry e = PAGEMAP_ENTRY__INIT;

		e.vaddr = sh->e[i].vaddr;
		e.has_flags = true;
		e.flags = sh->e[i].flags;
		if (enc != LP_PM_V42)
			e.compat_nr_pages = sh->e[i].nr_pages;
		if (enc != LP_PM_COMPAT) {
			e.has_nr_pages = true;
			e.nr_pages = sh->e[i].nr_pages;
		}
		lp_img_write_pb(&w, &e.base);
	}
	return lp_img_writer_close(&w);
}

/* Pre-order walk, the order CRIU writes pstree.img in. */
static void dfs(struct proc *procs, size_t n, int at, size_t *order, size_t *k)
{
	order[(*k)++] = at;
	for (size_t i = 0; i < n; i++)
		if (procs[i].parent == at)
			dfs(procs, n, i, order, k);
}

static int mkdir_p(const char *path)
{
	char *tmp = strdup(path);
	int ret = 0;

	if (!tmp)
		return -ENOMEM;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) && errno != EEXIST)
			ret = -errno;
		*p = '/';
	}
	if (!ret && mkdir(tmp, 0755) && errno != EEXIST)
		ret = -errno;
	free(tmp);
	return ret;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct lpt_rng r;
	struct lp_images im;
	struct lp_pstree pt = {0};
	struct proc *procs;
	size_t n, *order, k = 0;
	uint32_t next_pid, pages_id = 1;
	uint64_t shmid = 0x2c000 + 1, bytes = 0;
	struct totals t = {0};
	uint8_t *buf;
	struct timespec t0, t1;
	char path[4096];
	FILE *info;
	int ret;

	if (parse_opts(argc, argv, &o))
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	lpt_rng_init(&r, o.seed);
	ret = mkdir_p(o.dir);
	if (ret) {
		fprintf(stderr, "mkckpt: cannot create %s: %s\n", o.dir, strerror(-ret));
		return 1;
	}
	if (lp_images_open_dir(&im, o.dir))
		return 1;
	im.img_version = o.img_version;

	/* The process tree: live processes first get random parents among earlier ones, then
	 * zombies hang off random live processes. */
	n = o.procs + o.zombies;
	procs = xrealloc(NULL, n * sizeof(*procs));
	memset(procs, 0, n * sizeof(*procs));
	next_pid = o.pid_base;
	for (size_t i = 0; i < n; i++) {
		struct proc *p = &procs[i];

		p->zombie = i >= o.procs;
		p->parent = i == 0 ? -1 : (int)lpt_below(&r, i < o.procs ? i : o.procs);
		p->pid = next_pid;
		p->nr_threads = p->zombie ? 1 : o.threads;
		p->tids = xrealloc(NULL, p->nr_threads * sizeof(*p->tids));
		for (uint32_t j = 0; j < p->nr_threads; j++)
			p->tids[j] = next_pid + j;
		next_pid += p->nr_threads + 1 + lpt_below(&r, 5);
		if (!p->zombie && gen_layout(p, &r, &o, &shmid))
			return 1;
	}
	order = xrealloc(NULL, n * sizeof(*order));
	dfs(procs, n, 0, order, &k);

	pt.nr = n;
	pt.tasks = xrealloc(NULL, n * sizeof(*pt.tasks));
	for (size_t i = 0; i < n; i++) {
		const struct proc *p = &procs[order[i]];

		pt.tasks[i] = (struct lp_task){.pid = p->pid,
					       .ppid = p->parent < 0 ? 0 : procs[p->parent].pid,
					       .pgid = procs[0].pid,
					       .sid = procs[0].pid,
					       .nr_threads = p->nr_threads,
					       .threads = p->tids};
	}
	buf = mmap(NULL, WBUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("mkckpt: mmap");
		return 1;
	}
	ret = lp_write_inventory(&im);
	ret = ret ?: lp_write_pstree(&im, &pt);
	for (size_t i = 0; i < n && !ret; i++) {
		struct proc *p = &procs[order[i]];
		struct lp_mm mm = {.nr = p->nr_vmas, .vmas = p->vmas};

		for (uint32_t j = 0; j < p->nr_threads && !ret; j++)
			ret = lp_write_core(&im, p->tids[j], p->zombie ? TASK_DEAD : TASK_ALIVE,
					    "mkckpt");
		if (p->zombie || ret)
			continue;
		p->pages_id = pages_id++;
		ret = lp_write_mm(&im, p->pid, &mm, NULL, 0);
		ret = ret ?: lp_write_pagemap(&im, p->pid, p->pages_id, p->e, p->nr_e, o.enc);
		ret = ret
			      ?: write_pages(&im, p->pages_id, p->pid, p->e, p->nr_e, 0, o.seed,
					     buf, &bytes);
		for (size_t s = 0; s < p->nr_shm && !ret; s++) {
			struct shm *sh = &p->shm[s];

			sh->pages_id = pages_id++;
			ret = write_shmem_pagemap(&im, sh, o.enc);
			ret = ret
				      ?: write_pages(&im, sh->pages_id, p->pid, sh->e, sh->nr,
						     p->vmas[sh->vma].start, o.seed, buf, &bytes);
		}
		t.vmas += p->nr_vmas;
		t.vma_pages += p->vma_pages;
		t.lazy += p->lazy;
		t.nonlazy += p->nonlazy;
		t.holes += p->holes;
		t.shared += p->shared;
		t.shared_holes += p->shared_holes;
		t.locked += p->locked;
		t.entries += p->nr_e;
		for (size_t j = 0; j < p->nr_e; j++) {
			const struct lp_vma *v = NULL;

			for (size_t m = 0; m < p->nr_vmas && !v; m++)
				if (p->vmas[m].start <= p->e[j].vaddr &&
				    p->e[j].vaddr < p->vmas[m].end)
					v = &p->vmas[m];
			if (v && lp_pme_end(&p->e[j]) > v->end)
				t.crossing++;
		}
	}
	if (ret) {
		fprintf(stderr, "mkckpt: writing %s failed: %s\n", o.dir, strerror(-ret));
		return 1;
	}
	t.present = t.lazy + t.nonlazy + t.locked + t.shared;

	snprintf(path, sizeof(path), "%s/%s", o.dir, LPT_INFO_FILE);
	info = fopen(path, "w");
	if (!info) {
		perror(path);
		return 1;
	}
	fprintf(info,
		"seed %llu\nprocs %u\nzombies %u\nthreads %u\nvmas %llu\nvma_pages %llu\n"
		"lazy_pages %llu\nnonlazy_pages %llu\nhole_pages %llu\nshared_pages %llu\n"
		"shared_hole_pages %llu\nlocked_pages %llu\npresent_pages %llu\nentries %llu\n"
		"crossing_entries %llu\n",
		(unsigned long long)o.seed, o.procs, o.zombies, o.threads,
		(unsigned long long)t.vmas, (unsigned long long)t.vma_pages,
		(unsigned long long)t.lazy, (unsigned long long)t.nonlazy,
		(unsigned long long)t.holes, (unsigned long long)t.shared,
		(unsigned long long)t.shared_holes, (unsigned long long)t.locked,
		(unsigned long long)t.present, (unsigned long long)t.entries,
		(unsigned long long)t.crossing);
	for (size_t i = 0; i < n; i++) {
		const struct proc *p = &procs[order[i]];

		fprintf(info, "proc %u %s lazy %llu vma_pages %llu\n", p->pid,
			p->zombie ? "zombie" : "alive", (unsigned long long)p->lazy,
			(unsigned long long)p->vma_pages);
	}
	if (fclose(info)) {
		perror(path);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!o.quiet)
		printf("mkckpt: %s: %u process%s (+%u zombie%s), %llu VMAs, %llu pages: %llu lazy, "
		       "%llu non-lazy, %llu holes, %llu shared, %llu locked; %llu pagemap entries "
		       "(%llu cross a VMA boundary); %.1f MiB of pages in %.2f s\n",
		       o.dir, o.procs, o.procs == 1 ? "" : "es", o.zombies,
		       o.zombies == 1 ? "" : "s", (unsigned long long)t.vmas,
		       (unsigned long long)t.vma_pages, (unsigned long long)t.lazy,
		       (unsigned long long)t.nonlazy, (unsigned long long)t.holes,
		       (unsigned long long)t.shared, (unsigned long long)t.locked,
		       (unsigned long long)t.entries, (unsigned long long)t.crossing,
		       bytes / 1048576.0,
		       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);

	munmap(buf, WBUF);
	for (size_t i = 0; i < n; i++) {
		free(procs[i].tids);
		free(procs[i].vmas);
		free(procs[i].e);
		for (size_t s = 0; s < procs[i].nr_shm; s++)
			free(procs[i].shm[s].e);
		free(procs[i].shm);
	}
	free(procs);
	free(order);
	free(pt.tasks);
	lp_images_close(&im);
	return 0;
}
