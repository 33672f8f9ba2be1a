// SPDX-License-Identifier: MIT
/* lazypages show: what a checkpoint holds, for people (default) or machines (--json). */
#define LOG_PREFIX "show: "
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "magic.h"
#include "mm.h"
#include "pagemap.h"
#include "pages.h"
#include "pstree.h"

#define NR_KINDS 10
static const char *const kinds[NR_KINDS] = {"anon", "heap", "stack",	"file",	 "shmem",
					    "vdso", "vvar", "vsyscall", "other", NULL};

struct proc_summary {
	uint32_t pid, ppid, threads;
	const char *state;
	size_t vmas, lazy_vmas, guard_vmas;
	size_t kind_count[NR_KINDS];
	uint64_t vma_bytes;
	size_t pagemap_entries;
	uint64_t pages, lazy_pages, present_pages, parent_pages, lazy_only_pages;
	uint32_t pages_id;
	uint64_t pages_file_bytes;
	bool has_mm;
};

static const char *state_name(uint32_t s)
{
	switch (s) {
	case TASK_ALIVE:
		return "alive";
	case TASK_DEAD:
		return "zombie";
	case TASK_STOPPED:
		return "stopped";
	}
	return "unknown";
}

static int kind_index(const char *k)
{
	for (int i = 0; kinds[i]; i++)
		if (!strcmp(kinds[i], k))
			return i;
	return NR_KINDS - 2;
}

static int summarise(const struct lp_images *im, const struct lp_task *t, struct proc_summary *s)
{
	struct lp_mm mm;
	struct lp_pagemap pm;
	struct lp_pages pg;
	uint32_t state = 0;
	int ret;

	memset(s, 0, sizeof(*s));
	s->pid = t->pid;
	s->ppid = t->ppid;
	s->threads = t->nr_threads;
	ret = lp_core_task_state(im, t->pid, &state);
	if (ret && ret != -ENOENT)
		return ret;
	s->state = ret ? "unknown" : state_name(state);
	if (state == TASK_DEAD)
		return 0; /* zombies have no memory */

	ret = lp_mm_load(im, t->pid, &mm);
	if (ret)
		return ret;
	s->has_mm = true;
	s->vmas = mm.nr;
	s->guard_vmas = mm.nr_guard;
	for (size_t i = 0; i < mm.nr; i++) {
		s->kind_count[kind_index(lp_vma_kind(&mm.vmas[i]))]++;
		s->vma_bytes += mm.vmas[i].end - mm.vmas[i].start;
		if (lp_vma_can_be_lazy(&mm.vmas[i]))
			s->lazy_vmas++;
	}
	lp_mm_free(&mm);

	ret = lp_pagemap_load(im, t->pid, &pm);
	if (ret)
		return ret;
	s->pagemap_entries = pm.nr;
	s->pages_id = pm.pages_id;
	s->pages = pm.nr_pages;
	s->lazy_pages = pm.nr_lazy;
	for (size_t i = 0; i < pm.nr; i++) {
		if (pm.e[i].flags & PE_PRESENT)
			s->present_pages += pm.e[i].nr_pages;
		if (pm.e[i].flags & PE_PARENT)
			s->parent_pages += pm.e[i].nr_pages;
		if ((pm.e[i].flags & (PE_LAZY | PE_PRESENT)) == PE_LAZY)
			s->lazy_only_pages += pm.e[i].nr_pages;
	}
	ret = lp_pages_open(im, pm.pages_id, pm.present_bytes, &pg);
	lp_pagemap_free(&pm);
	if (ret)
		return ret;
	s->pages_file_bytes = pg.size;
	lp_pages_close(&pg);
	return 0;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void print_json(FILE *f, const struct lp_images *im, const struct proc_summary *s, size_t n)
{
	uint64_t pages = 0, lazy = 0;

	fprintf(f, "{\n  \"dir\": ");
	json_str(f, im->path);
	fprintf(f, ",\n  \"img_version\": %u,\n  \"page_size\": %llu,\n  \"processes\": [",
		im->img_version, LP_PAGE_SIZE);
	for (size_t i = 0; i < n; i++, s++) {
		fprintf(f,
			"%s\n    {\"pid\": %u, \"ppid\": %u, \"state\": \"%s\", \"threads\": %u, ",
			i ? "," : "", s->pid, s->ppid, s->state, s->threads);
		fprintf(f,
			"\"vmas\": %zu, \"lazy_vmas\": %zu, \"guard_vmas\": %zu, \"vma_kinds\": {",
			s->vmas, s->lazy_vmas, s->guard_vmas);
		for (int k = 0, first = 1; kinds[k]; k++) {
			if (!s->kind_count[k])
				continue;
			fprintf(f, "%s\"%s\": %zu", first ? "" : ", ", kinds[k], s->kind_count[k]);
			first = 0;
		}
		fprintf(f,
			"}, \"pagemap_entries\": %zu, \"pages\": %llu, \"lazy_pages\": %llu, "
			"\"lazy_bytes\": %llu, \"present_pages\": %llu, \"parent_pages\": %llu, "
			"\"remote_only_pages\": %llu, \"pages_id\": %u, \"pages_file_bytes\": %llu}",
			s->pagemap_entries, (unsigned long long)s->pages,
			(unsigned long long)s->lazy_pages,
			(unsigned long long)(s->lazy_pages * LP_PAGE_SIZE),
			(unsigned long long)s->present_pages, (unsigned long long)s->parent_pages,
			(unsigned long long)s->lazy_only_pages, s->pages_id,
			(unsigned long long)s->pages_file_bytes);
		pages += s->pages;
		lazy += s->lazy_pages;
	}
	s -= n;
	fprintf(f,
		"\n  ],\n  \"totals\": {\"processes\": %zu, \"pages\": %llu, \"lazy_pages\": %llu, "
		"\"lazy_bytes\": %llu}\n}\n",
		n, (unsigned long long)pages, (unsigned long long)lazy,
		(unsigned long long)(lazy * LP_PAGE_SIZE));
}

static void human_bytes(char *buf, size_t len, uint64_t b)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = b;
	int i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void print_human(FILE *f, const struct lp_images *im, const struct proc_summary *s, size_t n)
{
	uint64_t pages = 0, lazy = 0, file = 0;
	size_t threads = 0;
	char b1[32], b2[32];

	fprintf(f, "Checkpoint %s (image version %u)\n", im->path, im->img_version);
	for (size_t i = 0; i < n; i++) {
		const struct proc_summary *p = &s[i];

		fprintf(f, "\npid %u (ppid %u), %s, %u thread%s\n", p->pid, p->ppid, p->state,
			p->threads, p->threads == 1 ? "" : "s");
		threads += p->threads;
		if (!p->has_mm)
			continue;
		human_bytes(b1, sizeof(b1), p->vma_bytes);
		fprintf(f, "  VMAs:   %zu (%s), %zu lazy-eligible", p->vmas, b1, p->lazy_vmas);
		if (p->guard_vmas)
			fprintf(f, ", %zu guard ranges", p->guard_vmas);
		fprintf(f, "\n          ");
		for (int k = 0, first = 1; kinds[k]; k++) {
			if (!p->kind_count[k])
				continue;
			fprintf(f, "%s%s %zu", first ? "" : ", ", kinds[k], p->kind_count[k]);
			first = 0;
		}
		human_bytes(b1, sizeof(b1), p->pages * LP_PAGE_SIZE);
		human_bytes(b2, sizeof(b2), p->lazy_pages * LP_PAGE_SIZE);
		fprintf(f, "\n  Pages:  %llu dumped (%s) in %zu runs, %llu lazy (%s)\n",
			(unsigned long long)p->pages, b1, p->pagemap_entries,
			(unsigned long long)p->lazy_pages, b2);
		if (p->lazy_only_pages)
			fprintf(f,
				"          %llu lazy pages are not in the images (dump "
				"--lazy-pages): they need the source page server\n",
				(unsigned long long)p->lazy_only_pages);
		if (p->parent_pages)
			fprintf(f, "          %llu pages live in the parent checkpoint\n",
				(unsigned long long)p->parent_pages);
		human_bytes(b1, sizeof(b1), p->pages_file_bytes);
		fprintf(f, "  File:   pages-%u.img, %s\n", p->pages_id, b1);
		pages += p->pages;
		lazy += p->lazy_pages;
		file += p->pages_file_bytes;
	}
	human_bytes(b1, sizeof(b1), lazy * LP_PAGE_SIZE);
	human_bytes(b2, sizeof(b2), file);
	fprintf(f,
		"\nTotal: %zu process%s, %zu thread%s, %llu pages dumped, %llu lazy (%s), "
		"pages files %s\n",
		n, n == 1 ? "" : "es", threads, threads == 1 ? "" : "s", (unsigned long long)pages,
		(unsigned long long)lazy, b1, b2);
}

static void show_usage(FILE *f)
{
	fprintf(f, "Usage: lazypages show [--json] [-v[N]] DIR\n\n"
		   "Summarise the checkpoint in DIR: processes, threads, VMAs by kind, pages\n"
		   "dumped, lazy pages and bytes, pages-file sizes. Exits non-zero, naming the\n"
		   "file and the problem, if an image is missing or damaged.\n\n"
		   "  --json           machine-readable output (a top-level \"processes\" array)\n"
		   "  -v, --verbosity  log level 0..4\n");
}

int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"verbosity", required_argument, NULL, 'v'},
		{"images-dir", required_argument, NULL, 'D'},
		{},
	};
	const char *dir = NULL;
	struct lp_images im;
	struct lp_pstree pt;
	struct proc_summary *s;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "hjv::D:", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'v':
			log_set_level(cli_verbosity(optarg, log_get_level()));
			break;
		case 'D':
			dir = optarg;
			break;
		case 'h':
			show_usage(stdout);
			return 0;
		default:
			show_usage(stderr);
			return 2;
		}
	}
	if (!dir && optind < argc)
		dir = argv[optind++];
	if (!dir || optind != argc) {
		show_usage(stderr);
		return 2;
	}
	if (lp_images_open(&im, dir))
		return 1;
	if (lp_pstree_load(&im, &pt)) {
		lp_images_close(&im);
		return 1;
	}
	s = calloc(pt.nr, sizeof(*s));
	ret = s ? 0 : -ENOMEM;
	for (size_t i = 0; !ret && i < pt.nr; i++)
		ret = summarise(&im, &pt.tasks[i], &s[i]);
	if (!ret) {
		if (json)
			print_json(stdout, &im, s, pt.nr);
		else
			print_human(stdout, &im, s, pt.nr);
	} else {
		pr_err("cannot summarise %s: %s", dir, strerror(-ret));
	}
	free(s);
	lp_pstree_free(&pt);
	lp_images_close(&im);
	return ret ? 1 : 0;
}
