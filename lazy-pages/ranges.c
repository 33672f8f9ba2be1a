// SPDX-License-Identifier: MIT
/* Range map: run-time address -> image address, one "missing" bit per page. */
#define LOG_PREFIX "ranges: "
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pagemap.h"
#include "ranges.h"

#define PG     LP_PAGE_SIZE
#define PSHIFT LP_PAGE_SHIFT

static inline uint64_t seg_pages(const struct lp_seg *s)
{
	return (s->end - s->start) >> PSHIFT;
}

static inline size_t bitmap_words(uint64_t nbits)
{
	return (nbits + 63) / 64;
}

/*
 * Bits are read and cleared atomically: fill workers clear bits of the same map at once
 * (under the process's read lock), the loop thread changes the map's shape only under
 * the write lock.
 */
static inline bool test_bit(const uint64_t *b, uint64_t i)
{
	return __atomic_load_n(&b[i / 64], __ATOMIC_RELAXED) >> (i % 64) & 1;
}

/* Clear bit I; true if this call cleared it. */
static inline bool clear_bit(uint64_t *b, uint64_t i)
{
	uint64_t m = 1ULL << (i % 64);

	return __atomic_fetch_and(&b[i / 64], ~m, __ATOMIC_RELAXED) & m;
}

void rm_init(struct lp_range_map *m)
{
	memset(m, 0, sizeof(*m));
}

void rm_free(struct lp_range_map *m)
{
	for (size_t i = 0; i < m->nr; i++)
		free(m->seg[i].bits);
	free(m->seg);
	rm_init(m);
}

static int reserve(struct lp_range_map *m, size_t n)
{
	struct lp_seg *s;
	size_t cap;

	if (m->nr + n <= m->cap)
		return 0;
	cap = m->cap ? m->cap * 2 : 16;
	while (cap < m->nr + n)
		cap *= 2;
	s = realloc(m->seg, cap * sizeof(*s));
	if (!s)
		return -ENOMEM;
	m->seg = s;
	m->cap = cap;
	return 0;
}

/* First index whose segment ends after ADDR. */
static size_t lower_bound(const struct lp_range_map *m, uint64_t addr)
{
	size_t lo = 0, hi = m->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->seg[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int insert_at(struct lp_range_map *m, size_t idx, const struct lp_seg *s)
{
	int ret = reserve(m, 1);

	if (ret)
		return ret;
	memmove(&m->seg[idx + 1], &m->seg[idx], (m->nr - idx) * sizeof(*s));
	m->seg[idx] = *s;
	m->nr++;
	m->nr_missing += s->nr_missing;
	return 0;
}

static void remove_at(struct lp_range_map *m, size_t idx)
{
	m->nr_missing -= m->seg[idx].nr_missing;
	free(m->seg[idx].bits);
	memmove(&m->seg[idx], &m->seg[idx + 1], (m->nr - idx - 1) * sizeof(m->seg[0]));
	m->nr--;
}

int rm_add(struct lp_range_map *m, uint64_t start, uint64_t end, uint64_t img, const uint8_t *data)
{
	struct lp_seg s = {.start = start, .end = end, .img = img, .data = data};
	uint64_t n = (end - start) >> PSHIFT;
	size_t idx = lower_bound(m, start);
	int ret;

	if (start >= end || (start | end) & (PG - 1))
		return -EINVAL;
	if (idx < m->nr && m->seg[idx].start < end)
		return -EEXIST;
	s.bits = malloc(bitmap_words(n) * 8);
	if (!s.bits)
		return -ENOMEM;
	memset(s.bits, 0xff, bitmap_words(n) * 8);
	if (n % 64)
		s.bits[n / 64] = (1ULL << (n % 64)) - 1;
	s.nr_missing = n;
	ret = insert_at(m, idx, &s);
	if (ret)
		free(s.bits);
	return ret;
}

int rm_clone(struct lp_range_map *dst, const struct lp_range_map *src)
{
	rm_init(dst);
	if (reserve(dst, src->nr ? src->nr : 1))
		return -ENOMEM;
	for (size_t i = 0; i < src->nr; i++) {
		struct lp_seg s = src->seg[i];
		size_t sz = bitmap_words(seg_pages(&s)) * 8;

		s.bits = malloc(sz);
		if (!s.bits) {
			rm_free(dst);
			return -ENOMEM;
		}
		memcpy(s.bits, src->seg[i].bits, sz);
		dst->seg[dst->nr++] = s;
	}
	dst->nr_missing = src->nr_missing;
	return 0;
}

long rm_find(const struct lp_range_map *m, uint64_t addr)
{
	size_t i = lower_bound(m, addr);

	if (i < m->nr && m->seg[i].start <= addr)
		return (long)i;
	return -1;
}

bool rm_missing(const struct lp_seg *s, uint64_t addr)
{
	return test_bit(s->bits, (addr - s->start) >> PSHIFT);
}

uint64_t rm_run(const struct lp_seg *s, uint64_t addr, uint64_t max)
{
	uint64_t i = (addr - s->start) >> PSHIFT, n = seg_pages(s), k = 0;

	while (i + k < n && k < max && test_bit(s->bits, i + k))
		k++;
	return k;
}

void rm_done(struct lp_range_map *m, size_t idx, uint64_t addr, uint64_t nr)
{
	struct lp_seg *s = &m->seg[idx];

	if (!rm_clear(m, s, addr, nr))
		remove_at(m, idx);
}

uint64_t rm_clear(struct lp_range_map *m, struct lp_seg *s, uint64_t addr, uint64_t nr)
{
	uint64_t i = (addr - s->start) >> PSHIFT, n = 0;

	for (uint64_t k = 0; k < nr && i + k < seg_pages(s); k++)
		n += clear_bit(s->bits, i + k);
	__atomic_fetch_sub(&m->nr_missing, n, __ATOMIC_RELAXED);
	return __atomic_sub_fetch(&s->nr_missing, n, __ATOMIC_RELAXED);
}

bool rm_next_run(const struct lp_range_map *m, uint64_t from, uint64_t max, size_t *idx,
		 uint64_t *addr, uint64_t *nr)
{
	for (size_t k = lower_bound(m, from); k < m->nr; k++) {
		const struct lp_seg *s = &m->seg[k];
		uint64_t n = seg_pages(s);
		uint64_t i = from > s->start ? (from - s->start) >> PSHIFT : 0;

		if (!__atomic_load_n(&s->nr_missing, __ATOMIC_RELAXED))
			continue;
		while (i < n && !test_bit(s->bits, i)) {
			if (!(i % 64) && !__atomic_load_n(&s->bits[i / 64], __ATOMIC_RELAXED))
				i += 64;
			else
				i++;
		}
		if (i >= n)
			continue;
		*idx = k;
		*addr = s->start + (i << PSHIFT);
		*nr = rm_run(s, *addr, max);
		return true;
	}
	return false;
}

/* Copy NBITS bits of SRC starting at bit FROM into a fresh bitmap; count the set ones. */
static uint64_t *bits_slice(const uint64_t *src, uint64_t from, uint64_t nbits, uint64_t *set)
{
	uint64_t *b = calloc(bitmap_words(nbits) ? bitmap_words(nbits) : 1, 8);

	*set = 0;
	if (!b)
		return NULL;
	for (uint64_t i = 0; i < nbits; i++) {
		if (test_bit(src, from + i)) {
			b[i / 64] |= 1ULL << (i % 64);
			(*set)++;
		}
	}
	return b;
}

/* Make a segment boundary at ADDR (if ADDR falls strictly inside a segment). */
static int split_at(struct lp_range_map *m, uint64_t addr)
{
	long i = rm_find(m, addr);
	struct lp_seg *s, lo, hi;
	uint64_t k, n;

	if (i < 0 || m->seg[i].start == addr)
		return 0;
	s = &m->seg[i];
	k = (addr - s->start) >> PSHIFT;
	n = seg_pages(s);
	lo = *s;
	hi = *s;
	lo.end = addr;
	lo.bits = bits_slice(s->bits, 0, k, &lo.nr_missing);
	hi.start = addr;
	hi.img = s->img + (addr - s->start);
	hi.data = s->data ? s->data + (addr - s->start) : NULL;
	hi.bits = bits_slice(s->bits, k, n - k, &hi.nr_missing);
	lo.hint = hi.hint = 0;
	if (!lo.bits || !hi.bits || reserve(m, 1)) {
		free(lo.bits);
		free(hi.bits);
		return -ENOMEM;
	}
	s = &m->seg[i];
	free(s->bits);
	*s = lo;
	memmove(&m->seg[i + 2], &m->seg[i + 1], (m->nr - i - 1) * sizeof(*s));
	m->seg[i + 1] = hi;
	m->nr++;
	return 0;
}

/* Drop segments (or empty pieces) entirely inside [start, end) after splitting. */
static int cut_out(struct lp_range_map *m, uint64_t start, uint64_t end, struct lp_seg **out,
		   size_t *nout)
{
	size_t i, j;
	int ret;

	if (start >= end)
		return 0;
	ret = split_at(m, start);
	if (!ret)
		ret = split_at(m, end);
	if (ret)
		return ret;
	i = lower_bound(m, start);
	for (j = i; j < m->nr && m->seg[j].start < end; j++)
		;
	if (out) {
		*nout = j - i;
		*out = malloc((j - i ? j - i : 1) * sizeof(**out));
		if (!*out)
			return -ENOMEM;
		memcpy(*out, &m->seg[i], (j - i) * sizeof(**out));
	} else {
		for (size_t k = i; k < j; k++)
			free(m->seg[k].bits);
	}
	for (size_t k = i; k < j; k++)
		m->nr_missing -= m->seg[k].nr_missing;
	memmove(&m->seg[i], &m->seg[j], (m->nr - j) * sizeof(m->seg[0]));
	m->nr -= j - i;
	return 0;
}

int rm_cut(struct lp_range_map *m, uint64_t start, uint64_t end)
{
	return cut_out(m, start & ~(PG - 1), (end + PG - 1) & ~(PG - 1), NULL, NULL);
}

int rm_remap(struct lp_range_map *m, uint64_t from, uint64_t to, uint64_t len)
{
	struct lp_seg *moved = NULL;
	size_t n = 0;
	int ret;

	len = (len + PG - 1) & ~(PG - 1);
	ret = cut_out(m, from, from + len, &moved, &n);
	if (ret)
		return ret;
	/* Whatever the map had at the destination was unmapped by the kernel. */
	ret = rm_cut(m, to, to + len);
	for (size_t k = 0; k < n; k++) {
		struct lp_seg s = moved[k];

		if (ret || !s.nr_missing) {
			free(s.bits);
			continue;
		}
		s.start = s.start - from + to;
		s.end = s.end - from + to;
		ret = insert_at(m, lower_bound(m, s.start), &s);
		if (ret)
			free(s.bits);
	}
	free(moved);
	return ret;
}

bool rm_first_run(struct lp_range_map *m, uint64_t max, size_t *idx, uint64_t *addr, uint64_t *nr)
{
	while (m->nr) {
		struct lp_seg *s = &m->seg[0];
		uint64_t n = seg_pages(s), i = s->hint;

		while (i < n && !test_bit(s->bits, i)) {
			if (!(i % 64) && !s->bits[i / 64])
				i += 64;
			else
				i++;
		}
		if (i >= n) { /* emptied by a split: drop it */
			remove_at(m, 0);
			continue;
		}
		s->hint = i;
		*idx = 0;
		*addr = s->start + (i << PSHIFT);
		*nr = rm_run(s, *addr, max);
		return true;
	}
	return false;
}
