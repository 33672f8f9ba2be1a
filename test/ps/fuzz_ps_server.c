// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the page server's request side. The input is a selector byte, then
 * a byte stream from a client: headers in the selected layout, each answered by
 * ps_store_answer() the way a session does, until one is refused (which ends a session).
 *
 * Selector bit 0: 32-byte headers (else 24). Bit 1: the next 64 bytes describe the store's
 * pagemap (8 entries of 8 bytes) instead of the built-in one, so that run building is
 * fuzzed too.
 *
 * Invariants checked: a PAGES answer echoes vaddr and pid, has 1..requested pages that lie
 * inside the page data, and re-encodes in the request's layout; CLOSE answers carry no data.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pagemap.h"
#include "ps-proto.h"
#include "ps-store.h"

#define NR_DATA_PAGES 64

static uint8_t data[NR_DATA_PAGES * LP_PAGE_SIZE];

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_ps_server: invariant broken: %s\n", what);
		abort();
	}
}

static void default_store(struct ps_store *st)
{
	static const struct lp_pme e1[] = {
		{0x1000, 2, PE_LAZY | PE_PRESENT, 0},
		{0x3000, 1, PE_PRESENT, 2 * LP_PAGE_SIZE},
		{0x4000, 1, PE_LAZY, 0},
		{0x8000, 3, PE_LAZY | PE_PRESENT, 3 * LP_PAGE_SIZE},
		{0x7f0000000000ULL, 16, PE_LAZY | PE_PRESENT, 6 * LP_PAGE_SIZE},
	};
	static const struct lp_pme e2[] = {
		{0x10000, 40, PE_LAZY | PE_PRESENT, 22 * LP_PAGE_SIZE},
	};

	ps_store_add(st, 1, e1, 5, data, sizeof(data));
	ps_store_add(st, 2, e2, 1, data, sizeof(data));
}

/* 8 entries from 64 bytes: vaddr page (u16), nr (1..16), flags (3 bits), data page (u8) */
static void fuzzed_store(struct ps_store *st, const uint8_t *in)
{
	struct lp_pme e[8];

	for (int i = 0; i < 8; i++, in += 8) {
		uint16_t page;

		memcpy(&page, in, 2);
		e[i].vaddr = (uint64_t)page << LP_PAGE_SHIFT;
		e[i].nr_pages = 1 + in[2] % 16;
		e[i].flags = in[3] & 7;
		e[i].pages_off = (uint64_t)(in[4] % NR_DATA_PAGES) << LP_PAGE_SHIFT;
	}
	ps_store_add(st, in[-1] & 3, e, 8, data, sizeof(data)); /* may refuse: fine */
	ps_store_add(st, 3, e, 4, data, sizeof(data));
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
	struct ps_store st = {0};
	int hdr;

	log_set_level(LOG_MSG); /* refusals are the point; do not print them */
	if (len < 1)
		return 0;
	hdr = in[0] & 1 ? PS_HDR_V2 : PS_HDR_V1;
	if (in[0] & 2) {
		if (len < 65)
			return 0;
		fuzzed_store(&st, in + 1);
		in += 64;
		len -= 64;
	} else {
		default_store(&st);
	}
	in++;
	len--;
	for (size_t pos = 0; pos + hdr <= len; pos += hdr) {
		struct ps_iov req;
		struct ps_answer a;
		uint8_t out[PS_HDR_MAX];

		check(ps_decode(hdr, in + pos, &req) == 0, "decode");
		if (ps_store_answer(&st, &req, "fuzz", &a))
			break;
		if (a.act != PS_ACT_PAGES) {
			check(a.data == NULL && a.len == 0, "CLOSE carries no data");
			if (a.act == PS_ACT_FORCE_CLOSE)
				break;
			continue;
		}
		check(a.hdr.cmd == PS_GET_REPLY_CMD, "reply cmd");
		check(a.hdr.vaddr == req.vaddr && a.hdr.dst_id == req.dst_id, "echo");
		check(a.hdr.nr_pages >= 1 && a.hdr.nr_pages <= req.nr_pages, "page count");
		check(a.len == a.hdr.nr_pages << LP_PAGE_SHIFT, "length");
		check(a.data >= data && a.len <= sizeof(data) &&
			      (size_t)(a.data - data) <= sizeof(data) - a.len,
		      "data inside the pages");
		check(ps_encode(hdr, &a.hdr, out) == hdr, "reply encodes");
		{
			/* read the first and the last byte: ASan checks them */
			volatile uint8_t x = a.data[0];

			x = a.data[a.len - 1];
			(void)x;
		}
	}
	ps_store_free(&st);
	return 0;
}
