/* SPDX-License-Identifier: MIT */
/*
 * What a lazy page server can serve: the present pages of every live task of a regular
 * dump, as contiguous runs pointing into the read-only mapped pages files, and the
 * answer to one request header (docs/page-server.md).
 *
 * A run is a maximal sequence of address-adjacent PE_PRESENT pagemap entries (their data
 * is contiguous in the pages file too); a GET is answered with
 * min(requested, pages from vaddr to the end of its run).
 */
#ifndef LP_PS_STORE_H
#define LP_PS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "pagemap.h"
#include "pages.h"
#include "ps-proto.h"
#include "pstree.h"

struct ps_run {
	uint64_t vaddr;
	uint64_t nr_pages;
	const uint8_t *data; /* nr_pages pages */
};

struct ps_task {
	uint32_t pid;
	struct ps_run *runs; /* sorted by vaddr */
	size_t nr_runs;
	struct lp_pages pages; /* fd -1 when the data is not ours (ps_store_add) */
};

struct ps_store {
	struct ps_task *tasks; /* sorted by pid */
	size_t nr;
	uint32_t *dead; /* pids in pstree.img that are not alive: never served */
	size_t nr_dead;
	uint64_t nr_pages; /* pages that can be served */
};

/* Load every live task of PT from IM: pagemap-<pid>.img and pages-<id>.img. */
int ps_store_load(struct ps_store *st, const struct lp_images *im, const struct lp_pstree *pt);
/*
 * Add task PID with pagemap entries E (sorted, as lp_pagemap_parse() leaves them) whose
 * PE_PRESENT data is DATA (LEN bytes, pages_off as in E). DATA must outlive the store.
 * For tests and fuzzers; ps_store_load() uses it too.
 */
int ps_store_add(struct ps_store *st, uint32_t pid, const struct lp_pme *e, size_t nr,
		 const uint8_t *data, uint64_t len);
void ps_store_free(struct ps_store *st);

enum ps_action {
	PS_ACT_PAGES,	    /* send hdr, then data (hdr.nr_pages pages) */
	PS_ACT_CLOSE,	    /* send int32 0, then wait for the peer to close */
	PS_ACT_FORCE_CLOSE, /* send int32 0, then close */
};

struct ps_answer {
	enum ps_action act;
	struct ps_iov hdr;
	const uint8_t *data;
	uint64_t len;
};

/*
 * The answer to request REQ from PEER (named in messages). Returns 0, or after logging
 * why: -EINVAL for a malformed or unsupported request, -ENOENT for an unknown pid or an
 * address without page data. Either error ends the session (docs/page-server.md).
 */
int ps_store_answer(const struct ps_store *st, const struct ps_iov *req, const char *peer,
		    struct ps_answer *a);

#endif
