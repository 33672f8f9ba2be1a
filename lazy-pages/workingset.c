// SPDX-License-Identifier: MIT
/*
 * Working sets: the image pages a restore faulted, in the order it first needed them.
 * `lazypages daemon --record-ws FILE` writes one; `--prefetch FILE` installs those pages
 * first in a later restore of the same checkpoint. The file is text, a page a line:
 *	<pid> <image address in hex>
 */
#define LOG_PREFIX "workingset: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pagemap.h"
#include "session.h"

int lp_ws_add(struct lp_ws *ws, uint32_t pid, uint64_t img)
{
	if (ws->nr == ws->cap) {
		size_t cap = ws->cap ? ws->cap * 2 : 1024;
		struct lp_ws_page *n = realloc(ws->p, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ws->p = n;
		ws->cap = cap;
	}
	ws->p[ws->nr].pid = pid;
	ws->p[ws->nr].img = img;
	ws->nr++;
	return 0;
}

void lp_ws_free(struct lp_ws *ws)
{
	free(ws->p);
	memset(ws, 0, sizeof(*ws));
}

static int cmp_page(const void *a, const void *b)
{
	const struct lp_ws_page *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->img < y->img ? -1 : x->img > y->img;
}

int lp_ws_load(struct lp_ws *ws, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[128];
	unsigned int lineno = 0;
	int ret = 0;

	memset(ws, 0, sizeof(*ws));
	if (!f) {
		ret = -errno;
		pr_err("cannot read working set %s: %s", path, strerror(-ret));
		return ret;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long addr;
		unsigned int pid;

		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%u %llx", &pid, &addr) != 2 || (addr & (LP_PAGE_SIZE - 1))) {
			pr_err("%s:%u: expected '<pid> <page address in hex>'", path, lineno);
			ret = -EINVAL;
			break;
		}
		ret = lp_ws_add(ws, pid, addr);
		if (ret)
			break;
	}
	fclose(f);
	if (ret) {
		lp_ws_free(ws);
		return ret;
	}
	/*
	 * The whole set goes in first anyway: in address order, neighbours make one copy
	 * instead of one each (faults meanwhile are served at once by the fault loop).
	 */
	qsort(ws->p, ws->nr, sizeof(*ws->p), cmp_page);
	pr_info("working set %s: %zu pages", path, ws->nr);
	return 0;
}

int lp_ws_save(const struct lp_ws *ws, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		int e = -errno;

		pr_err("cannot write working set %s: %s", path, strerror(-e));
		return e;
	}
	fprintf(f, "# lazypages working set: <pid> <image page address>, in fault order\n");
	for (size_t i = 0; i < ws->nr; i++)
		fprintf(f, "%u %llx\n", ws->p[i].pid, (unsigned long long)ws->p[i].img);
	if (fclose(f)) {
		int e = -errno;

		pr_err("cannot write working set %s: %s", path, strerror(-e));
		return e;
	}
	pr_info("working set: %zu pages written to %s", ws->nr, path);
	return 0;
}
