// SPDX-License-Identifier: MIT
/*
 * The image library (images/) against images it wrote itself, hand-built protobuf bytes,
 * the crit-encoded fixture checkpoint and corrupt inputs.
 *
 *   test_images [CASE...]              run the unit cases (all by default)
 *   test_images gen-crit DIR VERSION   write the sample checkpoint run.sh decodes with crit
 *   test_images check-fixture DIR VER  assert what the library reads from the fixture
 *                                      checkpoint run.sh built from fixtures/ with crit
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "image.h"
#include "log.h"
#include "magic.h"
#include "mm.h"
#include "mm.pb-c.h"
#include "pagemap.h"
#include "pagemap.pb-c.h"
#include "pages.h"
#include "pstree.h"
#include "pstree.pb-c.h"
#include "writer.h"

#define PG   LP_PAGE_SIZE
#define OMIT UINT64_MAX

/* ---- raw protobuf and image bytes ------------------------------------------------------- */

struct rb {
	uint8_t *p;
	size_t len, cap;
};

static void rb_put(struct rb *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		ASSERT_NOT_NULL(b->p);
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void rb_u32(struct rb *b, uint32_t v)
{
	rb_put(b, &v, 4);
}

static void rb_varint(struct rb *b, uint64_t v)
{
	do {
		uint8_t c = v & 0x7f;

		v >>= 7;
		if (v)
			c |= 0x80;
		rb_put(b, &c, 1);
	} while (v);
}

static void rb_key(struct rb *b, unsigned int field, unsigned int wire_type)
{
	rb_varint(b, (uint64_t)field << 3 | wire_type);
}

/* A varint field. */
static void rb_fv(struct rb *b, unsigned int field, uint64_t v)
{
	rb_key(b, field, 0);
	rb_varint(b, v);
}

/* A length-delimited field. */
static void rb_fbytes(struct rb *b, unsigned int field, const void *d, size_t n)
{
	rb_key(b, field, 2);
	rb_varint(b, n);
	rb_put(b, d, n);
}

static void rb_free(struct rb *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Append MSG to IMG as one entry (u32 length, then the bytes) and empty MSG. */
static void rb_entry(struct rb *img, struct rb *msg)
{
	rb_u32(img, msg->len);
	rb_put(img, msg->p, msg->len);
	msg->len = 0;
}

/* Append a message packed by protobuf-c as one entry. */
static void rb_pb(struct rb *img, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n + 1);

	ASSERT_NOT_NULL(buf);
	ASSERT_UINT_EQ(protobuf_c_message_pack(m, buf), n);
	rb_u32(img, n);
	rb_put(img, buf, n);
	free(buf);
}

/* The magic(s) an image of VERSION starts with. */
static void rb_magic(struct rb *b, uint32_t version, uint32_t magic)
{
	if (version == CRTOOLS_IMAGES_V1_1 && magic != INVENTORY_MAGIC)
		rb_u32(b, IMG_COMMON_MAGIC);
	rb_u32(b, magic);
}

/* A pagemap image header: magics and pagemap_head. */
static void rb_pm_head(struct rb *b, uint32_t version, uint32_t pages_id)
{
	struct rb m = {0};

	rb_magic(b, version, PAGEMAP_MAGIC);
	rb_fv(&m, 1, pages_id);
	rb_entry(b, &m);
	rb_free(&m);
}

/* A pagemap_entry; fields set to OMIT are left out. */
static void rb_pme(struct rb *b, uint64_t vaddr, uint64_t f2, uint64_t in_parent, uint64_t flags,
		   uint64_t f5)
{
	struct rb m = {0};

	rb_fv(&m, 1, vaddr);
	if (f2 != OMIT)
		rb_fv(&m, 2, f2);
	if (in_parent != OMIT)
		rb_fv(&m, 3, in_parent);
	if (flags != OMIT)
		rb_fv(&m, 4, flags);
	if (f5 != OMIT)
		rb_fv(&m, 5, f5);
	rb_entry(b, &m);
	rb_free(&m);
}

/* ---- parsing buffers, with the log captured --------------------------------------------- */

enum kind { K_PAGEMAP, K_MM, K_PSTREE };

static const char *kind_file(enum kind k)
{
	return k == K_PAGEMAP ? "pagemap-9.img" : k == K_MM ? "mm-9.img" : "pstree.img";
}

static uint32_t kind_magic(enum kind k)
{
	return k == K_PAGEMAP ? PAGEMAP_MAGIC : k == K_MM ? MM_MAGIC : PSTREE_MAGIC;
}

/*
 * Parse B (its buffer is handed over and B emptied) as an image of kind K. Returns what
 * the library returns; the log lines it wrote go to *LOG (malloc'd). Whatever was parsed
 * is left in PM/MM/PT for the caller, who frees it.
 */
static int parse(enum kind k, struct rb *b, uint32_t version, struct lp_pagemap *pm,
		 struct lp_mm *mm, struct lp_pstree *pt, char **log)
{
	struct lpt_capture cap;
	struct lp_img img;
	int ret;

	if (pm) {
		memset(pm, 0, sizeof(*pm));
		snprintf(pm->name, sizeof(pm->name), "%s", kind_file(k));
	}
	lpt_capture_start(&cap, STDERR_FILENO);
	ret = lp_img_open_buf(kind_file(k), version, kind_magic(k), b->p, b->len, &img);
	b->p = NULL;
	b->len = b->cap = 0;
	if (!ret) {
		if (k == K_PAGEMAP)
			ret = lp_pagemap_parse(&img, pm);
		else if (k == K_MM)
			ret = lp_mm_parse(&img, mm);
		else
			ret = lp_pstree_parse(&img, pt);
		lp_img_close(&img);
	}
	*log = lpt_capture_end(&cap);
	return ret;
}

/* Parsing B as kind K must fail with WANT_RET and log a line containing WANT_MSG. */
static void expect_error(enum kind k, struct rb *b, uint32_t version, int want_ret,
			 const char *want_msg)
{
	struct lp_pagemap pm;
	struct lp_mm mm = {0};
	struct lp_pstree pt = {0};
	char *log;
	int ret;

	fprintf(stderr, "-- expecting \"%s\"\n", want_msg);
	ret = parse(k, b, version, &pm, &mm, &pt, &log);
	ASSERT_EQ(ret, want_ret);
	ASSERT_STR_CONTAINS(log, want_msg);
	/* Every message names the file it is about. */
	ASSERT_STR_CONTAINS(log, kind_file(k));
	free(log);
	lp_pagemap_free(&pm);
	lp_mm_free(&mm);
	lp_pstree_free(&pt);
}

/* The contents we give the page dumped from VADDR (in pages-<PAGES_ID>.img). */
static void page_pattern(uint8_t *p, uint64_t vaddr, uint32_t pages_id)
{
	memcpy(p, &vaddr, 8);
	memcpy(p + 8, &pages_id, 4);
	memcpy(p + 12, "LPTP", 4);
	for (size_t i = 16; i < PG; i++)
		p[i] = (uint8_t)((vaddr >> 12) * 31 + pages_id * 7 + i);
}

/* Every PE_PRESENT page of PM holds page_pattern() at its pages_off in PG_. */
static void check_page_contents(const struct lp_pagemap *pm, const struct lp_pages *pg)
{
	uint8_t want[PG];

	for (size_t i = 0; i < pm->nr; i++) {
		const struct lp_pme *e = &pm->e[i];

		if (!(e->flags & PE_PRESENT))
			continue;
		for (uint64_t n = 0; n < e->nr_pages; n++) {
			const uint8_t *got = lp_pages_ptr(pg, e->pages_off + n * PG, PG);

			ASSERT_NOT_NULL(got);
			page_pattern(want, e->vaddr + n * PG, pm->pages_id);
			if (memcmp(got, want, PG)) {
				uint64_t v;

				memcpy(&v, got, 8);
				LPT_FAIL("%s: page %#llx (entry %zu, +%llu) at offset %#llx holds "
					 "the page of %#llx",
					 pm->name, (unsigned long long)(e->vaddr + n * PG), i,
					 (unsigned long long)n,
					 (unsigned long long)(e->pages_off + n * PG),
					 (unsigned long long)v);
			}
		}
	}
}

/* Write pages-<PAGES_ID>.img in DIR for the PE_PRESENT runs of E, in order. */
static uint64_t write_pages(const char *dir, uint32_t pages_id, const struct lp_pme *e, size_t nr)
{
	struct rb b = {0};
	uint8_t page[PG];
	char name[64];
	uint64_t len;

	for (size_t i = 0; i < nr; i++) {
		if (!(e[i].flags & PE_PRESENT))
			continue;
		for (uint64_t n = 0; n < e[i].nr_pages; n++) {
			page_pattern(page, e[i].vaddr + n * PG, pages_id);
			rb_put(&b, page, PG);
		}
	}
	snprintf(name, sizeof(name), "pages-%u.img", pages_id);
	lpt_write_file(dir, name, b.p, b.len);
	len = b.len;
	rb_free(&b);
	return len;
}

/* Run F with stderr captured; returns the captured text. */
#define CAPTURE(log, stmt)                               \
	do {                                             \
		struct lpt_capture cap_;                 \
		lpt_capture_start(&cap_, STDERR_FILENO); \
		stmt;                                    \
		(log) = lpt_capture_end(&cap_);          \
	} while (0)

/* ---- a sample checkpoint written by the library ----------------------------------------- */

static uint32_t sample_threads_10[] = {10, 11};
static uint32_t sample_threads_12[] = {12};
static struct lp_task sample_tasks[] = {
	{.pid = 10,
	 .ppid = 0,
	 .pgid = 10,
	 .sid = 10,
	 .nr_threads = 2,
	 .threads = sample_threads_10},
	{.pid = 12,
	 .ppid = 10,
	 .pgid = 10,
	 .sid = 10,
	 .nr_threads = 1,
	 .threads = sample_threads_12},
};

static struct lp_vma sample_vmas[] = {
	{.start = 0x400000,
	 .end = 0x401000,
	 .shmid = 3,
	 .prot = 5,
	 .flags = LP_MAP_PRIVATE,
	 .status = VMA_AREA_REGULAR | VMA_FILE_PRIVATE},
	{.start = 0x1000000,
	 .end = 0x1003000,
	 .prot = 3,
	 .flags = LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
	 .status = VMA_AREA_REGULAR | VMA_AREA_HEAP | VMA_ANON_PRIVATE},
	{.start = 0x7f0000000000,
	 .end = 0x7f0000400000,
	 .prot = 3,
	 .flags = LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
	 .status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE,
	 .has_madv = true,
	 .madv = 0x10000},
	{.start = 0x7ffffffde000,
	 .end = 0x7ffffffff000,
	 .prot = 3,
	 .flags = LP_MAP_PRIVATE | LP_MAP_ANONYMOUS | LP_MAP_GROWSDOWN,
	 .status = VMA_AREA_REGULAR | VMA_AREA_STACK | VMA_ANON_PRIVATE},
};

static struct lp_vma sample_guards[] = {
	{.start = 0x7f0000010000,
	 .end = 0x7f0000011000,
	 .flags = LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
	 .status = VMA_AREA_REGULAR | VMA_ANON_PRIVATE},
};

static struct lp_pme sample_pmes[] = {
	{.vaddr = 0x400000, .nr_pages = 1, .flags = PE_PRESENT},
	{.vaddr = 0x1000000, .nr_pages = 3, .flags = PE_LAZY | PE_PRESENT},
	{.vaddr = 0x7f0000000000, .nr_pages = 16, .flags = PE_LAZY | PE_PRESENT},
	{.vaddr = 0x7f0000011000, .nr_pages = 300, .flags = PE_LAZY | PE_PRESENT},
	{.vaddr = 0x7f0000200000, .nr_pages = 2, .flags = PE_LAZY},
	{.vaddr = 0x7fffffffe000, .nr_pages = 1, .flags = PE_PRESENT},
};

#define ARRAY_SIZE(a)  (sizeof(a) / sizeof((a)[0]))
#define NR_SAMPLE_PMES ARRAY_SIZE(sample_pmes)

/*
 * The sample checkpoint: pstree (10 with threads 10 11, zombie 12), cores, mm-10 with one
 * GUARD VMA, and the same page map three times: pagemap-10 (LP_PM_COMPAT), pagemap-20
 * (LP_PM_BOTH), pagemap-30 (LP_PM_V42). test/images/crit_check.py knows these values.
 */
static void write_sample(struct lp_images *im)
{
	struct lp_pstree pt = {.nr = ARRAY_SIZE(sample_tasks), .tasks = sample_tasks};
	struct lp_mm mm = {.nr = ARRAY_SIZE(sample_vmas), .vmas = sample_vmas};

	ASSERT_OK(lp_write_inventory(im));
	ASSERT_OK(lp_write_pstree(im, &pt));
	ASSERT_OK(lp_write_core(im, 10, TASK_ALIVE, "lp-main"));
	ASSERT_OK(lp_write_core(im, 12, TASK_DEAD, "lp-zombie"));
	ASSERT_OK(lp_write_mm(im, 10, &mm, sample_guards, ARRAY_SIZE(sample_guards)));
	ASSERT_OK(lp_write_pagemap(im, 10, 1, sample_pmes, NR_SAMPLE_PMES, LP_PM_COMPAT));
	ASSERT_OK(lp_write_pagemap(im, 20, 2, sample_pmes, NR_SAMPLE_PMES, LP_PM_BOTH));
	ASSERT_OK(lp_write_pagemap(im, 30, 3, sample_pmes, NR_SAMPLE_PMES, LP_PM_V42));
}

/* Read the sample back and check every value. */
static void check_sample(const char *dir, uint32_t version)
{
	struct lp_images im;
	struct lp_pstree pt;
	struct lp_mm mm;
	uint32_t state = 0;
	static const struct {
		uint32_t pid;
		enum lp_pm_encoding enc;
	} pms[] = {{10, LP_PM_COMPAT}, {20, LP_PM_BOTH}, {30, LP_PM_V42}};

	ASSERT_OK(lp_images_open(&im, dir));
	ASSERT_EQ(im.img_version, version);
	ASSERT_TRUE(im.fdinfo_per_id);

	ASSERT_OK(lp_pstree_load(&im, &pt));
	ASSERT_EQ(pt.nr, 2);
	for (size_t i = 0; i < pt.nr; i++) {
		ASSERT_EQ(pt.tasks[i].pid, sample_tasks[i].pid);
		ASSERT_EQ(pt.tasks[i].ppid, sample_tasks[i].ppid);
		ASSERT_EQ(pt.tasks[i].pgid, sample_tasks[i].pgid);
		ASSERT_EQ(pt.tasks[i].sid, sample_tasks[i].sid);
		ASSERT_EQ(pt.tasks[i].nr_threads, sample_tasks[i].nr_threads);
		ASSERT_MEM_EQ(pt.tasks[i].threads, sample_tasks[i].threads,
			      sample_tasks[i].nr_threads * sizeof(uint32_t));
	}
	ASSERT_PTR_EQ(lp_pstree_find(&pt, 12), &pt.tasks[1]);
	ASSERT_NULL(lp_pstree_find(&pt, 11)); /* a thread, not a process */
	lp_pstree_free(&pt);

	ASSERT_OK(lp_core_task_state(&im, 10, &state));
	ASSERT_EQ(state, TASK_ALIVE);
	ASSERT_OK(lp_core_task_state(&im, 12, &state));
	ASSERT_EQ(state, TASK_DEAD);

	ASSERT_OK(lp_mm_load(&im, 10, &mm));
	ASSERT_EQ(mm.nr, ARRAY_SIZE(sample_vmas));
	ASSERT_EQ(mm.nr_guard, 1);
	for (size_t i = 0; i < mm.nr; i++) {
		const struct lp_vma *v = &mm.vmas[i], *w = &sample_vmas[i];

		ASSERT_UINT_EQ(v->start, w->start);
		ASSERT_UINT_EQ(v->end, w->end);
		ASSERT_UINT_EQ(v->pgoff, w->pgoff);
		ASSERT_UINT_EQ(v->shmid, w->shmid);
		ASSERT_UINT_EQ(v->prot, w->prot);
		ASSERT_UINT_EQ(v->flags, w->flags);
		ASSERT_UINT_EQ(v->status, w->status);
		ASSERT_EQ(v->has_madv, w->has_madv);
		ASSERT_UINT_EQ(v->madv, w->madv);
	}
	/* The GUARD range is not a mapping of its own: the address is in the anon VMA. */
	ASSERT_PTR_EQ(lp_mm_find(&mm, sample_guards[0].start), &mm.vmas[2]);
	lp_mm_free(&mm);

	for (size_t k = 0; k < ARRAY_SIZE(pms); k++) {
		struct lp_pagemap pm;
		uint64_t off = 0;

		ASSERT_OK(lp_pagemap_load(&im, pms[k].pid, &pm));
		ASSERT_EQ(pm.pages_id, k + 1);
		ASSERT_EQ(pm.nr, NR_SAMPLE_PMES);
		ASSERT_EQ(pm.nr_field5, pms[k].enc == LP_PM_COMPAT ? 0 : NR_SAMPLE_PMES);
		for (size_t i = 0; i < pm.nr; i++) {
			ASSERT_UINT_EQ(pm.e[i].vaddr, sample_pmes[i].vaddr);
			ASSERT_UINT_EQ(pm.e[i].nr_pages, sample_pmes[i].nr_pages);
			ASSERT_UINT_EQ(pm.e[i].flags, sample_pmes[i].flags);
			if (pm.e[i].flags & PE_PRESENT) {
				ASSERT_UINT_EQ(pm.e[i].pages_off, off);
				off += pm.e[i].nr_pages * PG;
			}
		}
		ASSERT_UINT_EQ(pm.present_bytes, (1 + 3 + 16 + 300 + 1) * PG);
		ASSERT_UINT_EQ(pm.nr_pages, 1 + 3 + 16 + 300 + 2 + 1);
		ASSERT_UINT_EQ(pm.nr_lazy, 3 + 16 + 300 + 2);
		lp_pagemap_free(&pm);
	}
	lp_images_close(&im);
}

/* How the writer encoded each entry, seen through the raw protobuf messages. */
static void check_sample_encoding(const char *dir)
{
	struct lp_images im;
	static const struct {
		const char *name;
		enum lp_pm_encoding enc;
	} f[] = {{"pagemap-10.img", LP_PM_COMPAT},
		 {"pagemap-20.img", LP_PM_BOTH},
		 {"pagemap-30.img", LP_PM_V42}};

	ASSERT_OK(lp_images_open(&im, dir));
	for (size_t k = 0; k < ARRAY_SIZE(f); k++) {
		struct lp_img img;
		void *msg;
		size_t i = 0;

		ASSERT_OK(lp_img_open(&im, f[k].name, PAGEMAP_MAGIC, &img));
		ASSERT_EQ(lp_img_read_pb(&img, &pagemap_head__descriptor, &msg), 1);
		lp_pb_free(msg);
		while (lp_img_read_pb(&img, &pagemap_entry__descriptor, &msg) == 1) {
			PagemapEntry *pe = msg;

			ASSERT_LT(i, NR_SAMPLE_PMES);
			ASSERT_TRUE(pe->has_flags);
			ASSERT_FALSE(pe->has_in_parent);
			ASSERT_EQ(pe->has_nr_pages, f[k].enc != LP_PM_COMPAT);
			ASSERT_UINT_EQ(pe->compat_nr_pages,
				       f[k].enc == LP_PM_V42 ? 0 : sample_pmes[i].nr_pages);
			if (pe->has_nr_pages)
				ASSERT_UINT_EQ(pe->nr_pages, sample_pmes[i].nr_pages);
			lp_pb_free(pe);
			i++;
		}
		ASSERT_EQ(i, NR_SAMPLE_PMES);
		ASSERT_UINT_EQ(img.off, img.size);
		lp_img_close(&img);
	}
	lp_images_close(&im);
}

static uint32_t first_u32(const char *dir, const char *name)
{
	size_t len;
	uint8_t *b = lpt_read_file(dir, name, &len);
	uint32_t v;

	ASSERT_UINT_GE(len, 4);
	memcpy(&v, b, 4);
	free(b);
	return v;
}

static void test_writer_roundtrip(void)
{
	char *dir = lpt_mkdtemp("writer");
	struct lp_images im;

	ASSERT_OK(lp_images_open_dir(&im, dir));
	write_sample(&im);
	lp_images_close(&im);
	/* v1.1 layout: inventory has only its own magic, the others the common one first. */
	ASSERT_UINT_EQ(first_u32(dir, "inventory.img"), INVENTORY_MAGIC);
	ASSERT_UINT_EQ(first_u32(dir, "pstree.img"), IMG_COMMON_MAGIC);
	ASSERT_UINT_EQ(first_u32(dir, "pagemap-10.img"), IMG_COMMON_MAGIC);
	check_sample(dir, CRTOOLS_IMAGES_V1_1);
	check_sample_encoding(dir);
	lpt_rm_rf(dir);
	free(dir);
}

static void test_writer_v1(void)
{
	char *dir = lpt_mkdtemp("writer-v1");
	struct lp_images im;

	ASSERT_OK(lp_images_open_dir(&im, dir));
	im.img_version = CRTOOLS_IMAGES_V1;
	write_sample(&im);
	lp_images_close(&im);
	/* img_version 1: no common magic anywhere. */
	ASSERT_UINT_EQ(first_u32(dir, "inventory.img"), INVENTORY_MAGIC);
	ASSERT_UINT_EQ(first_u32(dir, "pstree.img"), PSTREE_MAGIC);
	ASSERT_UINT_EQ(first_u32(dir, "mm-10.img"), MM_MAGIC);
	ASSERT_UINT_EQ(first_u32(dir, "pagemap-30.img"), PAGEMAP_MAGIC);
	ASSERT_UINT_EQ(first_u32(dir, "core-12.img"), CORE_MAGIC);
	check_sample(dir, CRTOOLS_IMAGES_V1);
	lpt_rm_rf(dir);
	free(dir);
}

/* ---- CRIU's reading rules on hand-built pagemaps ---------------------------------------- */

static void build_rules_pagemap(struct rb *b, uint32_t version)
{
	struct rb m = {0};
	uint64_t fixed64 = 0x1122334455667788ULL;
	uint32_t fixed32 = 0xaabbccdd;

	rb_pm_head(b, version, 77);
	/* 0: CRIU <= 4.1: count in field 2 */
	rb_pme(b, 0x1000, 1, OMIT, PE_LAZY | PE_PRESENT, OMIT);
	/* 1: CRIU >= 4.2: field 2 = 0, count in field 5 */
	rb_pme(b, 0x2000, 0, OMIT, PE_LAZY | PE_PRESENT, 2);
	/* 2: both, disagreeing: field 5 wins */
	rb_pme(b, 0x4000, 7, OMIT, PE_PRESENT, 3);
	/* 3: no flags at all (pre-flags image): PE_PRESENT */
	rb_pme(b, 0x7000, 1, OMIT, OMIT, OMIT);
	/* 4: in_parent and no flags: PE_PARENT, no bytes in the pages file */
	rb_pme(b, 0x8000, 2, 1, OMIT, OMIT);
	/* 5: in_parent = false is not a parent marker */
	rb_pme(b, 0xa000, 1, 0, PE_LAZY, OMIT);
	/* 6: in_parent adds PE_PARENT to the flags given */
	rb_pme(b, 0xb000, 1, 1, PE_LAZY, OMIT);
	/* 7: unknown fields of every wire type, before and after the known ones */
	rb_fv(&m, 20, 12345);
	rb_fv(&m, 1, 0xc000);
	rb_fbytes(&m, 21, "not for us", 10);
	rb_fv(&m, 2, 1);
	rb_key(&m, 22, 1);
	rb_put(&m, &fixed64, 8);
	rb_fv(&m, 4, PE_LAZY | PE_PRESENT);
	rb_key(&m, 23, 5);
	rb_put(&m, &fixed32, 4);
	rb_fbytes(&m, 1000, "", 0);
	rb_entry(b, &m);
	rb_free(&m);
	/* 8: multi-byte varints in field 5 */
	rb_pme(b, 0x7f0000000000, 0, OMIT, PE_LAZY | PE_PRESENT, 300);
	/* 9: a count that only fits field 5 (uint64), lazy-only: no bytes */
	rb_pme(b, 0x7f0000200000, 0, OMIT, PE_LAZY, 1ULL << 33);
	/* 10: explicit flags = 0: neither present nor lazy */
	rb_pme(b, 0xa00000000000, 1, OMIT, 0, OMIT);
}

static void check_rules_pagemap(uint32_t version)
{
	static const struct {
		uint64_t vaddr, nr;
		uint32_t flags;
		uint64_t off; /* in pages, PE_PRESENT only */
	} want[] = {
		{0x1000, 1, PE_LAZY | PE_PRESENT, 0},
		{0x2000, 2, PE_LAZY | PE_PRESENT, 1},
		{0x4000, 3, PE_PRESENT, 3},
		{0x7000, 1, PE_PRESENT, 6},
		{0x8000, 2, PE_PARENT, 0},
		{0xa000, 1, PE_LAZY, 0},
		{0xb000, 1, PE_PARENT | PE_LAZY, 0},
		{0xc000, 1, PE_LAZY | PE_PRESENT, 7},
		{0x7f0000000000, 300, PE_LAZY | PE_PRESENT, 8},
		{0x7f0000200000, 1ULL << 33, PE_LAZY, 0},
		{0xa00000000000, 1, 0, 0},
	};
	struct lp_pagemap pm;
	struct rb b = {0};
	char *log;

	build_rules_pagemap(&b, version);
	ASSERT_OK(parse(K_PAGEMAP, &b, version, &pm, NULL, NULL, &log));
	ASSERT_STR_EQ(log, ""); /* nothing to complain about */
	free(log);
	ASSERT_EQ(pm.pages_id, 77);
	ASSERT_EQ(pm.nr, ARRAY_SIZE(want));
	for (size_t i = 0; i < pm.nr; i++) {
		fprintf(stderr, "entry %zu\n", i);
		ASSERT_UINT_EQ(pm.e[i].vaddr, want[i].vaddr);
		ASSERT_UINT_EQ(pm.e[i].nr_pages, want[i].nr);
		ASSERT_UINT_EQ(pm.e[i].flags, want[i].flags);
		if (want[i].flags & PE_PRESENT)
			ASSERT_UINT_EQ(pm.e[i].pages_off, want[i].off * PG);
	}
	ASSERT_EQ(pm.nr_field5, 4);
	ASSERT_UINT_EQ(pm.present_bytes, 308 * PG);
	ASSERT_UINT_EQ(pm.nr_pages, 1 + 2 + 3 + 1 + 2 + 1 + 1 + 1 + 300 + (1ULL << 33) + 1);
	ASSERT_UINT_EQ(pm.nr_lazy, 1 + 2 + 1 + 1 + 1 + 300 + (1ULL << 33));

	/* lookups */
	ASSERT_NULL(lp_pagemap_find(&pm, 0));
	ASSERT_NULL(lp_pagemap_find(&pm, 0xfff));
	ASSERT_PTR_EQ(lp_pagemap_find(&pm, 0x1000), &pm.e[0]);
	ASSERT_PTR_EQ(lp_pagemap_find(&pm, 0x1fff), &pm.e[0]);
	ASSERT_PTR_EQ(lp_pagemap_find(&pm, 0x3fff), &pm.e[1]);
	ASSERT_PTR_EQ(lp_pagemap_find(&pm, 0x6fff), &pm.e[2]);
	ASSERT_PTR_EQ(lp_pagemap_find(&pm, 0x9000), &pm.e[4]);
	ASSERT_NULL(lp_pagemap_find(&pm, 0xd000)); /* a gap */
	ASSERT_EQ(lp_pagemap_lower_bound(&pm, 0xd000), 8);
	ASSERT_PTR_EQ(lp_pagemap_find(&pm, 0x7f0000000000 + 299 * PG), &pm.e[8]);
	ASSERT_NULL(lp_pagemap_find(&pm, 0x7f0000000000 + 300 * PG));
	ASSERT_PTR_EQ(lp_pagemap_find(&pm, 0x7f0000200000 + (1ULL << 45) - 1), &pm.e[9]);
	ASSERT_NULL(lp_pagemap_find(&pm, 0xffffffffffffffffULL));
	ASSERT_EQ(lp_pagemap_lower_bound(&pm, 0xffffffffffffffffULL), pm.nr);
	lp_pagemap_free(&pm);
}

static void test_pagemap_rules(void)
{
	check_rules_pagemap(CRTOOLS_IMAGES_V1_1);
}

static void test_pagemap_rules_v1(void)
{
	check_rules_pagemap(CRTOOLS_IMAGES_V1);
}

/* A pagemap with a head and no entries is valid: nothing was dumped. */
static void test_pagemap_empty(void)
{
	struct lp_pagemap pm;
	struct rb b = {0};
	char *log;

	rb_pm_head(&b, 2, 5);
	ASSERT_OK(parse(K_PAGEMAP, &b, 2, &pm, NULL, NULL, &log));
	free(log);
	ASSERT_EQ(pm.nr, 0);
	ASSERT_EQ(pm.pages_id, 5);
	ASSERT_UINT_EQ(pm.present_bytes, 0);
	ASSERT_NULL(lp_pagemap_find(&pm, 0x1000));
	lp_pagemap_free(&pm);
}

/* ---- the pages file --------------------------------------------------------------------- */

static void test_pages_offsets(void)
{
	/* Only PE_PRESENT runs take room in the pages file: runs 0, 3 and 4 here. */
	static const struct lp_pme e[] = {
		{.vaddr = 0x10000, .nr_pages = 2, .flags = PE_LAZY | PE_PRESENT},
		{.vaddr = 0x12000, .nr_pages = 1, .flags = PE_LAZY},
		{.vaddr = 0x13000, .nr_pages = 3, .flags = PE_PARENT},
		{.vaddr = 0x20000, .nr_pages = 4, .flags = PE_PRESENT},
		{.vaddr = 0x30000, .nr_pages = 1, .flags = PE_LAZY | PE_PRESENT},
	};
	static const uint64_t want_off[] = {0, 0, 0, 2 * PG, 6 * PG};
	char *dir = lpt_mkdtemp("pages");
	struct lp_images im;
	struct lp_pagemap pm;
	struct lp_pages pg;
	uint8_t want[PG];
	char *log;

	ASSERT_OK(lp_images_open_dir(&im, dir));
	ASSERT_OK(lp_write_inventory(&im));
	ASSERT_OK(lp_write_pagemap(&im, 1, 5, e, ARRAY_SIZE(e), LP_PM_BOTH));
	ASSERT_UINT_EQ(write_pages(dir, 5, e, ARRAY_SIZE(e)), 7 * PG);
	lp_images_close(&im);

	ASSERT_OK(lp_images_open(&im, dir));
	ASSERT_OK(lp_pagemap_load(&im, 1, &pm));
	ASSERT_EQ(pm.nr, ARRAY_SIZE(e));
	for (size_t i = 0; i < pm.nr; i++)
		if (pm.e[i].flags & PE_PRESENT)
			ASSERT_UINT_EQ(pm.e[i].pages_off, want_off[i]);
	ASSERT_UINT_EQ(pm.present_bytes, 7 * PG);
	ASSERT_OK(lp_pages_open(&im, pm.pages_id, pm.present_bytes, &pg));
	ASSERT_UINT_EQ(pg.size, 7 * PG);
	check_page_contents(&pm, &pg);
	/* spot checks, independent of the loop above */
	page_pattern(want, 0x20000 + 3 * PG, 5);
	ASSERT_MEM_EQ(lp_pages_ptr(&pg, 5 * PG, PG), want, PG);
	page_pattern(want, 0x30000, 5);
	ASSERT_MEM_EQ(lp_pages_ptr(&pg, 6 * PG, PG), want, PG);
	/* bounds */
	ASSERT_NOT_NULL(lp_pages_ptr(&pg, 6 * PG, PG));
	ASSERT_NULL(lp_pages_ptr(&pg, 6 * PG + 1, PG));
	ASSERT_NULL(lp_pages_ptr(&pg, 7 * PG, 1));
	ASSERT_NOT_NULL(lp_pages_ptr(&pg, 7 * PG, 0));
	ASSERT_NULL(lp_pages_ptr(&pg, UINT64_MAX, 2));
	ASSERT_NULL(lp_pages_ptr(&pg, 1, UINT64_MAX));
	lp_pages_close(&pg);

	/* A pages file shorter than the pagemap says. */
	snprintf((char *)want, sizeof(want), "%s/pages-5.img", dir);
	ASSERT_OK(truncate((char *)want, 7 * PG - 1) < 0 ? -errno : 0);
	CAPTURE(log, ASSERT_EQ(lp_pages_open(&im, pm.pages_id, pm.present_bytes, &pg), -EINVAL));
	ASSERT_STR_CONTAINS(log, "/pages-5.img: holds 28671 bytes but the pagemap says 28672: "
				 "truncated pages file");
	free(log);

	/* No pages file: fine when nothing is present, an error otherwise. */
	CAPTURE(log, ASSERT_OK(lp_pages_open(&im, 6, 0, &pg)));
	ASSERT_STR_EQ(log, "");
	free(log);
	ASSERT_NULL(lp_pages_ptr(&pg, 0, 1));
	lp_pages_close(&pg);
	CAPTURE(log, ASSERT_EQ(lp_pages_open(&im, 6, PG, &pg), -ENOENT));
	ASSERT_STR_CONTAINS(log, "/pages-6.img: cannot open: No such file or directory");
	free(log);

	lp_pagemap_free(&pm);
	lp_images_close(&im);
	lpt_rm_rf(dir);
	free(dir);
}

/* ---- VMAs ------------------------------------------------------------------------------- */

static void test_mm_rules(void)
{
	static const struct lp_vma v[] = {
		{0x400000, 0x401000, 0, 1, 5, LP_MAP_PRIVATE, VMA_AREA_REGULAR | VMA_FILE_PRIVATE},
		{0x500000, 0x501000, 0, 1, 3, LP_MAP_SHARED, VMA_AREA_REGULAR | VMA_FILE_SHARED},
		{0x601000, 0x604000, 0, 0, 3, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
		 VMA_AREA_REGULAR | VMA_AREA_HEAP | VMA_ANON_PRIVATE},
		{0x7f0000000000, 0x7f0000010000, 0, 0, 3, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
		 VMA_AREA_REGULAR | VMA_ANON_PRIVATE},
		{0x7f0000010000, 0x7f0000020000, 0, 0, 3,
		 LP_MAP_PRIVATE | LP_MAP_ANONYMOUS | LP_MAP_LOCKED,
		 VMA_AREA_REGULAR | VMA_ANON_PRIVATE},
		{0x7f0000020000, 0x7f0000220000, 0, 0, 3,
		 LP_MAP_PRIVATE | LP_MAP_ANONYMOUS | LP_MAP_HUGETLB,
		 VMA_AREA_REGULAR | VMA_ANON_PRIVATE},
		{0x7f0000300000, 0x7f0000310000, 0, 9, 3, LP_MAP_SHARED | LP_MAP_ANONYMOUS,
		 VMA_AREA_REGULAR | VMA_ANON_SHARED},
		{0x7f0000400000, 0x7f0000401000, 0, 0, 3, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
		 VMA_AREA_REGULAR | VMA_ANON_PRIVATE | VMA_AREA_UPROBES | (1U << 26)},
		{0x7ffff7fc0000, 0x7ffff7fc4000, 0, 0, 1, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
		 VMA_AREA_REGULAR | VMA_AREA_VVAR},
		{0x7ffff7fc4000, 0x7ffff7fc6000, 0, 0, 5, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
		 VMA_AREA_REGULAR | VMA_AREA_VDSO},
		{0x7ffffffde000, 0x7ffffffff000, 0, 0, 3,
		 LP_MAP_PRIVATE | LP_MAP_ANONYMOUS | LP_MAP_GROWSDOWN,
		 VMA_AREA_REGULAR | VMA_AREA_STACK | VMA_ANON_PRIVATE},
		{0xffffffffff600000, 0xffffffffff601000, 0, 0, 4, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS,
		 VMA_AREA_VSYSCALL},
	};
	static const bool lazy[] = {false, false, true,	 true,	false, false,
				    false, true,  false, false, true,  false};
	static const char *const kind[] = {"file",  "file", "heap", "anon", "anon",  "anon",
					   "shmem", "anon", "vvar", "vdso", "stack", "vsyscall"};
	/* GUARD fakes overlap real VMAs and come unsorted, after them. */
	static const struct lp_vma guard[] = {
		{.start = 0x7f0000004000, .end = 0x7f0000005000},
		{.start = 0x601000, .end = 0x602000},
		{.start = 0x1001, .end = 0x1000}, /* even a malformed one is just skipped */
	};
	struct lp_mm in = {.nr = ARRAY_SIZE(v), .vmas = (struct lp_vma *)v}, mm;
	char *dir = lpt_mkdtemp("mm");
	struct lp_images im;

	ASSERT_OK(lp_images_open_dir(&im, dir));
	ASSERT_OK(lp_write_mm(&im, 4, &in, guard, ARRAY_SIZE(guard)));
	ASSERT_OK(lp_mm_load(&im, 4, &mm));
	ASSERT_EQ(mm.nr, ARRAY_SIZE(v));
	ASSERT_EQ(mm.nr_guard, ARRAY_SIZE(guard));
	for (size_t i = 0; i < mm.nr; i++) {
		fprintf(stderr, "vma %zu\n", i);
		ASSERT_UINT_EQ(mm.vmas[i].start, v[i].start);
		ASSERT_UINT_EQ(mm.vmas[i].status, v[i].status);
		ASSERT_EQ(lp_vma_can_be_lazy(&mm.vmas[i]), lazy[i]);
		ASSERT_STR_EQ(lp_vma_kind(&mm.vmas[i]), kind[i]);
		ASSERT_PTR_EQ(lp_mm_find(&mm, v[i].start), &mm.vmas[i]);
		ASSERT_PTR_EQ(lp_mm_find(&mm, v[i].end - 1), &mm.vmas[i]);
	}
	ASSERT_NULL(lp_mm_find(&mm, 0));
	ASSERT_NULL(lp_mm_find(&mm, 0x401000));
	ASSERT_NULL(lp_mm_find(&mm, 0x7f0000220000));
	ASSERT_NULL(lp_mm_find(&mm, 0xfffffffffffff000ULL));
	lp_mm_free(&mm);

	/* The zero-VMA mm is valid. */
	in.nr = 0;
	ASSERT_OK(lp_write_mm(&im, 5, &in, NULL, 0));
	ASSERT_OK(lp_mm_load(&im, 5, &mm));
	ASSERT_EQ(mm.nr, 0);
	ASSERT_NULL(lp_mm_find(&mm, 0x1000));
	lp_mm_free(&mm);

	lp_images_close(&im);
	lpt_rm_rf(dir);
	free(dir);
}

/* ---- corrupt inputs ---------------------------------------------------------------------- */

static void test_corrupt_magic(void)
{
	struct rb b = {0};

	/* wrong common magic */
	rb_u32(&b, 0xdeadbeef);
	rb_u32(&b, PAGEMAP_MAGIC);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL, "./pagemap-9.img: bad common magic 0xdeadbeef");
	/* the per-type magic of another image */
	rb_magic(&b, 2, MM_MAGIC);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: bad magic 0x57492820 (mm), expected 0x56084025 (pagemap)");
	rb_magic(&b, 2, 0x12345678);
	expect_error(K_PSTREE, &b, 2, -EINVAL,
		     "./pstree.img: bad magic 0x12345678 (unknown), expected 0x50273030 (pstree)");
	/* a v1.1 image where the inventory said v1: the common magic is not a type magic */
	rb_magic(&b, 2, MM_MAGIC);
	expect_error(K_MM, &b, 1, -EINVAL,
		     "./mm-9.img: bad magic 0x54564319 (common), expected 0x57492820 (mm)");
	/* truncated magics */
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: truncated: 0 bytes, no room for the common magic");
	rb_put(&b, "\x19\x43\x56", 3);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: truncated: 3 bytes, no room for the common magic");
	rb_u32(&b, IMG_COMMON_MAGIC);
	rb_put(&b, "\x25\x40", 2);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: truncated: 6 bytes, no room for the pagemap magic");
	rb_put(&b, "\x30\x30", 2);
	expect_error(K_PSTREE, &b, 1, -EINVAL,
		     "./pstree.img: truncated: 2 bytes, no room for the pstree magic");
}

static void test_corrupt_framing(void)
{
	struct rb b = {0};
	uint8_t junk[] = {0xff, 0xff, 0xff};

	/* a magic and nothing else: no pagemap_head */
	rb_magic(&b, 2, PAGEMAP_MAGIC);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL, "./pagemap-9.img: empty: no pagemap_head");
	/* truncated entry header */
	rb_pm_head(&b, 2, 1);
	rb_put(&b, "\x05\x00", 2);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: truncated entry header at offset 14 (2 bytes left, "
		     "need 4)");
	/* an entry whose length runs past EOF */
	rb_pm_head(&b, 2, 1);
	rb_u32(&b, 100);
	rb_put(&b, "\x08\x80\x20\x10\x01\x20\x06", 7);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 1 at offset 14: length 100 runs past the end of "
		     "the file (7 bytes left)");
	/* the absurd length */
	rb_magic(&b, 2, PSTREE_MAGIC);
	rb_u32(&b, 0xffffffff);
	rb_put(&b, "\x08\x01\x10\x00", 4);
	expect_error(K_PSTREE, &b, 2, -EINVAL,
		     "./pstree.img: entry 0 at offset 8: length 4294967295 runs past the end of "
		     "the file (4 bytes left)");
	/* the head's own length past EOF */
	rb_magic(&b, 1, PAGEMAP_MAGIC);
	rb_u32(&b, 3);
	rb_put(&b, "\x08", 1);
	expect_error(K_PAGEMAP, &b, 1, -EINVAL, "./pagemap-9.img: entry 0 at offset 4: length 3");
	/* undecodable bytes */
	rb_pm_head(&b, 2, 1);
	rb_u32(&b, sizeof(junk));
	rb_put(&b, junk, sizeof(junk));
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 1 at offset 14: cannot decode 3 bytes as "
		     "pagemap_entry");
	/* a required field missing (vaddr) */
	{
		struct rb m = {0};

		rb_pm_head(&b, 2, 1);
		rb_fv(&m, 2, 1);
		rb_fv(&m, 4, PE_PRESENT);
		rb_entry(&b, &m);
		rb_free(&m);
	}
	expect_error(K_PAGEMAP, &b, 2, -EINVAL, "cannot decode 4 bytes as pagemap_entry");
	/* a known field with the wrong wire type (vaddr as bytes) */
	{
		struct rb m = {0};

		rb_pm_head(&b, 2, 1);
		rb_fbytes(&m, 1, "\x00\x10", 2);
		rb_fv(&m, 2, 1);
		rb_entry(&b, &m);
		rb_free(&m);
	}
	expect_error(K_PAGEMAP, &b, 2, -EINVAL, "cannot decode 6 bytes as pagemap_entry");
	/* a broken pagemap_head */
	rb_magic(&b, 2, PAGEMAP_MAGIC);
	rb_u32(&b, 2);
	rb_put(&b, "\x10\x01", 2); /* field 2, pages_id (field 1) missing */
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 0 at offset 8: cannot decode 2 bytes as pagemap_head");
	/* pstree entry missing pid */
	{
		struct rb m = {0};

		rb_magic(&b, 2, PSTREE_MAGIC);
		rb_fv(&m, 2, 0);
		rb_fv(&m, 3, 1);
		rb_fv(&m, 4, 1);
		rb_entry(&b, &m);
		rb_free(&m);
	}
	expect_error(K_PSTREE, &b, 2, -EINVAL, "./pstree.img: entry 0 at offset 8: cannot decode");
}

/* Entries are numbered as crit shows them: entry 0 is the pagemap_head. */
static void test_corrupt_pagemap(void)
{
	struct rb b = {0};

	/* out of order */
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0x3000, 1, OMIT, PE_PRESENT, OMIT);
	rb_pme(&b, 0x1000, 1, OMIT, PE_PRESENT, OMIT);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 2 at 0x1000 comes before entry 1 [0x3000, 0x4000)");
	/* overlapping */
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0x1000, 1, OMIT, PE_PRESENT, OMIT);
	rb_pme(&b, 0x2000, 0, OMIT, PE_PRESENT, 4);
	rb_pme(&b, 0x4000, 0, OMIT, PE_LAZY, 1);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 3 at 0x4000 overlaps entry 2 [0x2000, 0x6000)");
	/* the same address twice */
	rb_pm_head(&b, 1, 1);
	rb_pme(&b, 0x1000, 1, OMIT, PE_PRESENT, OMIT);
	rb_pme(&b, 0x1000, 1, OMIT, PE_PRESENT, OMIT);
	expect_error(K_PAGEMAP, &b, 1, -EINVAL, "entry 2 at 0x1000 overlaps entry 1");
	/* zero pages: old encoding, and a 4.2 entry read without its field 5 */
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0x1000, 0, OMIT, PE_PRESENT, OMIT);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 1 at 0x1000: bad page count 0 (a CRIU 4.2+ image "
		     "read as an old one?)");
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0x1000, 1, OMIT, PE_PRESENT, OMIT);
	rb_pme(&b, 0x2000, 5, OMIT, PE_PRESENT, 0);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 2 at 0x2000: bad page count 0");
	/* more pages than an address space, and a run that wraps around */
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0x1000, 0, OMIT, PE_LAZY, (1ULL << 35) + 1);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 1 at 0x1000: bad page count 34359738369");
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0xffffffffffffe000ULL, 2, OMIT, PE_LAZY, OMIT);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 1 at 0xffffffffffffe000: bad page count 2");
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0xffffffffffff0000ULL, 0, OMIT, PE_LAZY, 1ULL << 63);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL, "bad page count 9223372036854775808");
	/* unaligned */
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0x1000, 1, OMIT, PE_PRESENT, OMIT);
	rb_pme(&b, 0x2010, 1, OMIT, PE_PRESENT, OMIT);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 2: vaddr 0x2010 is not page aligned");
	/* contradicting flags */
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0x1000, 1, OMIT, PE_PARENT | PE_PRESENT, OMIT);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL,
		     "./pagemap-9.img: entry 1 at 0x1000: both PE_PARENT and PE_PRESENT");
	rb_pm_head(&b, 2, 1);
	rb_pme(&b, 0x1000, 1, 1, PE_PRESENT, OMIT);
	expect_error(K_PAGEMAP, &b, 2, -EINVAL, "both PE_PARENT and PE_PRESENT");
}

static void rb_mm(struct rb *b, const struct lp_vma *v, size_t nr)
{
	MmEntry e = MM_ENTRY__INIT;
	VmaEntry ve[8], *pv[8];

	ASSERT_LE(nr, 8);
	for (size_t i = 0; i < nr; i++) {
		vma_entry__init(&ve[i]);
		ve[i].start = v[i].start;
		ve[i].end = v[i].end;
		ve[i].prot = 3;
		ve[i].flags = LP_MAP_PRIVATE | LP_MAP_ANONYMOUS;
		ve[i].status = v[i].status;
		ve[i].fd = -1;
		pv[i] = &ve[i];
	}
	e.n_vmas = nr;
	e.vmas = pv;
	rb_magic(b, 2, MM_MAGIC);
	rb_pb(b, &e.base);
}

static void test_corrupt_mm(void)
{
	static const struct lp_vma unaligned[] = {{.start = 0x1000, .end = 0x2000},
						  {.start = 0x3000, .end = 0x4800}};
	static const struct lp_vma empty[] = {{.start = 0x5000, .end = 0x5000}};
	static const struct lp_vma overlap[] = {{.start = 0x1000, .end = 0x3000},
						{.start = 0x2000, .end = 0x4000}};
	static const struct lp_vma unsorted[] = {{.start = 0x5000, .end = 0x6000},
						 {.start = 0x1000, .end = 0x2000}};
	static const struct lp_vma ok[] = {{.start = 0x1000, .end = 0x2000}};
	struct rb b = {0};
	struct lp_mm mm;
	char *log;

	rb_magic(&b, 2, MM_MAGIC);
	expect_error(K_MM, &b, 2, -EINVAL, "./mm-9.img: no entry (empty image)");
	rb_mm(&b, unaligned, 2);
	expect_error(K_MM, &b, 2, -EINVAL,
		     "./mm-9.img: vma 1 [0x3000, 0x4800): empty or not page aligned");
	rb_mm(&b, empty, 1);
	expect_error(K_MM, &b, 2, -EINVAL,
		     "./mm-9.img: vma 0 [0x5000, 0x5000): empty or not page aligned");
	rb_mm(&b, overlap, 2);
	expect_error(K_MM, &b, 2, -EINVAL,
		     "./mm-9.img: vma 1 [0x2000, 0x4000) overlaps or precedes the one before it "
		     "(ending at 0x3000)");
	rb_mm(&b, unsorted, 2);
	expect_error(K_MM, &b, 2, -EINVAL,
		     "./mm-9.img: vma 1 [0x1000, 0x2000) overlaps or precedes");
	/* undecodable mm_entry: a vma_entry sub-message cut short */
	rb_magic(&b, 2, MM_MAGIC);
	rb_u32(&b, 4);
	rb_put(&b, "\x72\x08\x08\x01", 4);
	expect_error(K_MM, &b, 2, -EINVAL,
		     "./mm-9.img: entry 0 at offset 8: cannot decode 4 bytes as mm_entry");

	/* A second entry is ignored, with a warning (CRIU reads one). */
	rb_mm(&b, ok, 1);
	rb_u32(&b, 0);
	ASSERT_OK(parse(K_MM, &b, 2, NULL, &mm, NULL, &log));
	ASSERT_STR_CONTAINS(log, "./mm-9.img: 4 trailing bytes after the entry ignored");
	free(log);
	ASSERT_EQ(mm.nr, 1);
	lp_mm_free(&mm);
}

static void test_corrupt_pstree(void)
{
	PstreeEntry e = PSTREE_ENTRY__INIT;
	uint32_t th[] = {5, 6};
	struct lp_pstree pt;
	struct rb b = {0}, m = {0};
	char *log;

	/* no processes */
	rb_magic(&b, 2, PSTREE_MAGIC);
	expect_error(K_PSTREE, &b, 2, -EINVAL, "./pstree.img: no processes in the tree");
	/* the same pid twice */
	e.pid = 5;
	e.n_threads = 2;
	e.threads = th;
	rb_magic(&b, 2, PSTREE_MAGIC);
	rb_pb(&b, &e.base);
	rb_pb(&b, &e.base);
	expect_error(K_PSTREE, &b, 2, -EINVAL, "./pstree.img: entry 1: pid 5 appears twice");

	/* Threads as a packed repeated field (legal protobuf, though CRIU writes unpacked). */
	rb_magic(&b, 2, PSTREE_MAGIC);
	rb_fv(&m, 1, 7);
	rb_fv(&m, 2, 0);
	rb_fv(&m, 3, 7);
	rb_fv(&m, 4, 7);
	rb_fbytes(&m, 5, "\x07\x08\x89\x01", 4);
	rb_entry(&b, &m);
	rb_free(&m);
	ASSERT_OK(parse(K_PSTREE, &b, 2, NULL, NULL, &pt, &log));
	free(log);
	ASSERT_EQ(pt.nr, 1);
	ASSERT_EQ(pt.tasks[0].nr_threads, 3);
	ASSERT_EQ(pt.tasks[0].threads[0], 7);
	ASSERT_EQ(pt.tasks[0].threads[1], 8);
	ASSERT_EQ(pt.tasks[0].threads[2], 137);
	lp_pstree_free(&pt);
}

/* Directory-level errors: missing files, versions, sizes. */
static void test_dir_errors(void)
{
	char *dir = lpt_mkdtemp("dir");
	struct lp_images im;
	struct lp_pstree pt;
	struct lp_pagemap pm;
	struct lp_mm mm;
	uint32_t state;
	char *log, *path;
	int fd;

	CAPTURE(log, ASSERT_EQ(lp_images_open(&im, dir), -ENOENT));
	ASSERT_STR_CONTAINS(log, "/inventory.img: missing: is ");
	ASSERT_STR_CONTAINS(log, dir);
	free(log);

	ASSERT_OK(lp_images_open_dir(&im, dir));
	im.img_version = 3;
	ASSERT_OK(lp_write_inventory(&im));
	lp_images_close(&im);
	CAPTURE(log, ASSERT_EQ(lp_images_open(&im, dir), -EINVAL));
	ASSERT_STR_CONTAINS(log, "/inventory.img: unsupported img_version 3 (expected 1 or 2)");
	free(log);

	ASSERT_OK(lp_images_open_dir(&im, dir));
	ASSERT_OK(lp_write_inventory(&im));
	lp_images_close(&im);
	ASSERT_OK(lp_images_open(&im, dir));

	CAPTURE(log, ASSERT_EQ(lp_pstree_load(&im, &pt), -ENOENT));
	ASSERT_STR_CONTAINS(log, "/pstree.img: missing: the checkpoint has no process tree");
	free(log);
	CAPTURE(log, ASSERT_EQ(lp_mm_load(&im, 7, &mm), -ENOENT));
	ASSERT_STR_CONTAINS(log, "/mm-7.img: missing: no memory layout for pid 7");
	free(log);
	CAPTURE(log, ASSERT_EQ(lp_pagemap_load(&im, 7, &pm), -ENOENT));
	ASSERT_STR_CONTAINS(log, "/pagemap-7.img: missing: no page map for pid 7");
	free(log);
	/* A missing core is for the caller to judge: no message. */
	CAPTURE(log, ASSERT_EQ(lp_core_task_state(&im, 7, &state), -ENOENT));
	ASSERT_STR_EQ(log, "");
	free(log);

	/* An empty file where a single-entry image should be. */
	lpt_write_file(dir, "core-8.img", "\x19\x43\x56\x54\x47\x38\x05\x55", 8);
	CAPTURE(log, ASSERT_EQ(lp_core_task_state(&im, 8, &state), -EINVAL));
	ASSERT_STR_CONTAINS(log, "/core-8.img: no entry (empty image)");
	free(log);
	/* A core without task_core_entry (a thread's core, asked as a process). */
	lpt_write_file(dir, "core-9.img",
		       "\x19\x43\x56\x54\x47\x38\x05\x55\x02\x00\x00\x00\x08\x01", 14);
	CAPTURE(log, ASSERT_EQ(lp_core_task_state(&im, 9, &state), -EINVAL));
	ASSERT_STR_CONTAINS(log, "/core-9.img: no task_core_entry (tc)");
	free(log);

	/* Not a regular file; and too big to be an image (sparse, costs nothing). */
	ASSERT_OK(asprintf(&path, "%s/pagemap-8.img", dir) < 0 ? -ENOMEM : 0);
	ASSERT_OK(mkdir(path, 0755) < 0 ? -errno : 0);
	CAPTURE(log, ASSERT_EQ(lp_pagemap_load(&im, 8, &pm), -EFBIG));
	ASSERT_STR_CONTAINS(log, "/pagemap-8.img: not a regular file or larger than 256 MiB");
	free(log);
	free(path);
	ASSERT_OK(asprintf(&path, "%s/mm-8.img", dir) < 0 ? -ENOMEM : 0);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	ASSERT_GE(fd, 0);
	ASSERT_OK(ftruncate(fd, IMG_MAX_FILE_SIZE + 1) < 0 ? -errno : 0);
	close(fd);
	CAPTURE(log, ASSERT_EQ(lp_mm_load(&im, 8, &mm), -EFBIG));
	ASSERT_STR_CONTAINS(log, "/mm-8.img: not a regular file or larger than 256 MiB");
	free(log);
	free(path);

	lp_images_close(&im);
	lpt_rm_rf(dir);
	free(dir);
}

/* ---- the crit-encoded fixture checkpoint (see run.sh and fixtures/) ---------------------- */

struct fx_pme {
	uint64_t vaddr, nr;
	uint32_t flags;
};

/* fixtures/pagemap-1.json, after CRIU's reading rules */
static const struct fx_pme fx_pm1[] = {
	{0x400000, 1, PE_PRESENT},
	{0x600000, 1, PE_PRESENT}, /* no flags in the image */
	{0x601000, 3, PE_LAZY | PE_PRESENT},
	{0x7f0000000000, 4, PE_LAZY | PE_PRESENT},
	{0x7f0000004000, 2, PE_PARENT}, /* in_parent */
	{0x7f0000006000, 2, PE_LAZY},
	{0x7f0000008000, 8, PE_LAZY | PE_PRESENT},
	{0x7f0000010000, 2, PE_PRESENT},
	{0x7ffff7fc4000, 2, PE_PRESENT},
	{0x7ffffffde000, 1, PE_LAZY | PE_PRESENT},
	{0x7fffffffd000, 2, PE_PRESENT},
};

/* fixtures/pagemap-2.v42.json, written by run.sh in the CRIU 4.2 encoding */
static const struct fx_pme fx_pm2[] = {
	{0x400000, 2, PE_PRESENT},
	{0x1000000, 4, PE_LAZY | PE_PRESENT},
	{0x7f1000000000, 16, PE_LAZY | PE_PRESENT},
	{0x7f1000011000, 200, PE_LAZY | PE_PRESENT},
	{0x7f1000200000, 16, PE_PRESENT},
	{0x7ffe0001e000, 2, PE_LAZY | PE_PRESENT},
	{0x7ffe00020000, 1, PE_PRESENT},
};

static void check_fixture_pagemap(const struct lp_images *im, uint32_t pid, const struct fx_pme *w,
				  size_t nr, unsigned int nr_field5, uint64_t pages, uint64_t lazy,
				  uint64_t present)
{
	struct lp_pagemap pm;
	struct lp_pages pg;
	struct lp_mm mm;
	uint64_t off = 0;

	ASSERT_OK(lp_pagemap_load(im, pid, &pm));
	ASSERT_EQ(pm.pages_id, pid);
	ASSERT_EQ(pm.nr, nr);
	ASSERT_EQ(pm.nr_field5, nr_field5);
	ASSERT_OK(lp_mm_load(im, pid, &mm));
	for (size_t i = 0; i < nr; i++) {
		const struct lp_pme *e = &pm.e[i];

		fprintf(stderr, "%s entry %zu\n", pm.name, i);
		ASSERT_UINT_EQ(e->vaddr, w[i].vaddr);
		ASSERT_UINT_EQ(e->nr_pages, w[i].nr);
		ASSERT_UINT_EQ(e->flags, w[i].flags);
		if (e->flags & PE_PRESENT) {
			ASSERT_UINT_EQ(e->pages_off, off);
			off += e->nr_pages * PG;
		}
		/* every run lies in a real VMA */
		ASSERT_NOT_NULL(lp_mm_find(&mm, e->vaddr));
		ASSERT_PTR_EQ(lp_mm_find(&mm, lp_pme_end(e) - 1), lp_mm_find(&mm, e->vaddr));
		ASSERT_PTR_EQ(lp_pagemap_find(&pm, lp_pme_end(e) - 1), e);
	}
	ASSERT_UINT_EQ(pm.nr_pages, pages);
	ASSERT_UINT_EQ(pm.nr_lazy, lazy);
	ASSERT_UINT_EQ(pm.present_bytes, present * PG);
	ASSERT_OK(lp_pages_open(im, pm.pages_id, pm.present_bytes, &pg));
	ASSERT_UINT_EQ(pg.size, present * PG);
	check_page_contents(&pm, &pg);
	lp_pages_close(&pg);
	lp_mm_free(&mm);
	lp_pagemap_free(&pm);
}

static int check_fixture(const char *dir, uint32_t version)
{
	static const uint64_t mm1_start[] = {0x400000,	     0x600000,	     0x601000,
					     0x7f0000000000, 0x7f0000010000, 0x7ffff7fc0000,
					     0x7ffff7fc4000, 0x7ffffffde000, 0xffffffffff600000};
	static const char *const mm1_kind[] = {"file", "file", "heap",	"anon",	   "shmem",
					       "vvar", "vdso", "stack", "vsyscall"};
	static const char *const mm2_kind[] = {"file", "heap", "anon", "anon", "stack"};
	static const uint32_t threads[][3] = {{1, 4}, {2, 5, 6}, {3}};
	struct lp_images im;
	struct lp_pstree pt;
	struct lp_mm mm;
	uint32_t state = 0;
	size_t nlazy;
	char *log;

	ASSERT_OK(lp_images_open(&im, dir));
	ASSERT_EQ(im.img_version, version);
	ASSERT_TRUE(im.fdinfo_per_id);

	ASSERT_OK(lp_pstree_load(&im, &pt));
	ASSERT_EQ(pt.nr, 3);
	for (uint32_t i = 0; i < 3; i++) {
		ASSERT_EQ(pt.tasks[i].pid, i + 1);
		ASSERT_EQ(pt.tasks[i].ppid, i ? 1 : 0);
		ASSERT_EQ(pt.tasks[i].pgid, i == 2 ? 3 : 1);
		ASSERT_EQ(pt.tasks[i].sid, 1);
		ASSERT_EQ(pt.tasks[i].nr_threads, 2 - (i == 2) + (i == 1));
		ASSERT_MEM_EQ(pt.tasks[i].threads, threads[i],
			      pt.tasks[i].nr_threads * sizeof(uint32_t));
	}
	lp_pstree_free(&pt);

	ASSERT_OK(lp_core_task_state(&im, 1, &state));
	ASSERT_EQ(state, TASK_ALIVE);
	ASSERT_OK(lp_core_task_state(&im, 2, &state));
	ASSERT_EQ(state, TASK_ALIVE);
	ASSERT_OK(lp_core_task_state(&im, 3, &state));
	ASSERT_EQ(state, TASK_DEAD);
	CAPTURE(log, ASSERT_EQ(lp_core_task_state(&im, 4, &state), -EINVAL));
	ASSERT_STR_CONTAINS(log, "/core-4.img: no task_core_entry");
	free(log);

	ASSERT_OK(lp_mm_load(&im, 1, &mm));
	ASSERT_EQ(mm.nr, 9);
	ASSERT_EQ(mm.nr_guard, 2);
	nlazy = 0;
	for (size_t i = 0; i < mm.nr; i++) {
		ASSERT_UINT_EQ(mm.vmas[i].start, mm1_start[i]);
		ASSERT_STR_EQ(lp_vma_kind(&mm.vmas[i]), mm1_kind[i]);
		nlazy += lp_vma_can_be_lazy(&mm.vmas[i]);
	}
	ASSERT_EQ(nlazy, 3); /* heap, anon, stack */
	ASSERT_UINT_EQ(mm.vmas[1].pgoff, 0x1000);
	ASSERT_UINT_EQ(mm.vmas[1].shmid, 7);
	ASSERT_UINT_EQ(mm.vmas[3].end, 0x7f0000010000);
	ASSERT_TRUE(mm.vmas[3].has_madv);
	ASSERT_UINT_EQ(mm.vmas[3].madv, 0x10000);
	ASSERT_FALSE(mm.vmas[2].has_madv);
	ASSERT_UINT_EQ(mm.vmas[4].shmid, 1234);
	ASSERT_UINT_EQ(mm.vmas[4].flags, LP_MAP_SHARED | LP_MAP_ANONYMOUS);
	ASSERT_UINT_EQ(mm.vmas[7].flags, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS | LP_MAP_GROWSDOWN);
	ASSERT_UINT_EQ(mm.vmas[7].prot, 3);
	ASSERT_UINT_EQ(mm.vmas[8].end, 0xffffffffff601000ULL);
	ASSERT_UINT_EQ(mm.vmas[8].status, VMA_AREA_VSYSCALL);
	lp_mm_free(&mm);

	ASSERT_OK(lp_mm_load(&im, 2, &mm));
	ASSERT_EQ(mm.nr, 5);
	ASSERT_EQ(mm.nr_guard, 1);
	nlazy = 0;
	for (size_t i = 0; i < mm.nr; i++) {
		ASSERT_STR_EQ(lp_vma_kind(&mm.vmas[i]), mm2_kind[i]);
		nlazy += lp_vma_can_be_lazy(&mm.vmas[i]);
	}
	ASSERT_EQ(nlazy, 3); /* heap, the MAP_NORESERVE anon, stack; not the MAP_LOCKED one */
	ASSERT_FALSE(lp_vma_can_be_lazy(&mm.vmas[3]));
	ASSERT_UINT_EQ(mm.vmas[3].flags, LP_MAP_PRIVATE | LP_MAP_ANONYMOUS | LP_MAP_LOCKED);
	lp_mm_free(&mm);

	check_fixture_pagemap(&im, 1, fx_pm1, ARRAY_SIZE(fx_pm1), 0, 28, 18, 24);
	check_fixture_pagemap(&im, 2, fx_pm2, ARRAY_SIZE(fx_pm2), ARRAY_SIZE(fx_pm2), 241, 222,
			      241);

	/* The zombie has no memory images. */
	CAPTURE(log, ASSERT_EQ(lp_mm_load(&im, 3, &mm), -ENOENT));
	free(log);
	lp_images_close(&im);
	printf("fixture %s (img_version %u): ok\n", dir, version);
	return 0;
}

/* ---- main ----------------------------------------------------------------------------- */

static const struct lpt_case cases[] = {
	LPT_CASE(test_writer_roundtrip), LPT_CASE(test_writer_v1),
	LPT_CASE(test_pagemap_rules),	 LPT_CASE(test_pagemap_rules_v1),
	LPT_CASE(test_pagemap_empty),	 LPT_CASE(test_pages_offsets),
	LPT_CASE(test_mm_rules),	 LPT_CASE(test_corrupt_magic),
	LPT_CASE(test_corrupt_framing),	 LPT_CASE(test_corrupt_pagemap),
	LPT_CASE(test_corrupt_mm),	 LPT_CASE(test_corrupt_pstree),
	LPT_CASE(test_dir_errors),	 LPT_END,
};

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "gen-crit")) {
		struct lp_images im;

		ASSERT_OK(lp_images_open_dir(&im, argv[2]));
		im.img_version = atoi(argv[3]);
		write_sample(&im);
		lp_images_close(&im);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "check-fixture"))
		return check_fixture(argv[2], atoi(argv[3]));
	return lpt_main(cases, argc, argv);
}
