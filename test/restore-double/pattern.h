/* SPDX-License-Identifier: MIT */
/*
 * Page contents of test checkpoints, shared by mkckpt (which writes them) and lp-restore
 * (which can check a pages file against them with --check-pattern).
 *
 * Every page is a stream of 512 64-bit words from a splitmix64 generator seeded by
 * (pid, dump-time address, seed): deterministic, never all-zero, never all-identical, and
 * different for every page of every process.
 */
#ifndef LP_TEST_PATTERN_H
#define LP_TEST_PATTERN_H

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LPT_PAGE       4096ULL
#define LPT_PAGE_WORDS (LPT_PAGE / 8)

/* The file mkckpt leaves in a checkpoint: "key value" lines (seed, page counts). */
#define LPT_INFO_FILE "mkckpt.info"

static inline uint64_t lpt_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t lpt_page_key(uint32_t pid, uint64_t addr, uint64_t seed)
{
	return lpt_mix64(addr ^ ((uint64_t)pid << 47) ^ lpt_mix64(seed + 0x9e3779b97f4a7c15ULL));
}

/* Fill one page with the content of page ADDR of process PID. */
static inline void lpt_pattern_page(void *dst, uint32_t pid, uint64_t addr, uint64_t seed)
{
	uint64_t s = lpt_page_key(pid, addr, seed), w[LPT_PAGE_WORDS];

	for (unsigned int i = 0; i < LPT_PAGE_WORDS; i++) {
		s += 0x9e3779b97f4a7c15ULL;
		w[i] = lpt_mix64(s);
	}
	memcpy(dst, w, sizeof(w));
}

/* Offset of the first byte of PAGE that differs from the pattern, or -1. */
static inline long lpt_pattern_check(const void *page, uint32_t pid, uint64_t addr, uint64_t seed)
{
	uint64_t want[LPT_PAGE_WORDS];
	const uint8_t *p = page, *q = (const uint8_t *)want;

	lpt_pattern_page(want, pid, addr, seed);
	if (!memcmp(page, want, LPT_PAGE))
		return -1;
	for (long i = 0; i < (long)LPT_PAGE; i++)
		if (p[i] != q[i])
			return i;
	return -1;
}

/* xorshift-style generator for layout and order decisions. */
struct lpt_rng {
	uint64_t s;
};

static inline void lpt_rng_init(struct lpt_rng *r, uint64_t seed)
{
	r->s = lpt_mix64(seed ^ 0x6a09e667f3bcc909ULL) | 1;
}

static inline uint64_t lpt_rand(struct lpt_rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	return lpt_mix64(r->s);
}

/* Uniform in [0, n) (n > 0). */
static inline uint64_t lpt_below(struct lpt_rng *r, uint64_t n)
{
	return n ? lpt_rand(r) % n : 0;
}

/* True with probability P. */
static inline int lpt_chance(struct lpt_rng *r, double p)
{
	return (double)(lpt_rand(r) >> 11) * (1.0 / 9007199254740992.0) < p;
}

/* "123", "4k", "64M", "1G", "0x1000": bytes. Returns 0 or -EINVAL. */
static inline int lpt_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (tolower((unsigned char)*end)) {
	case 'k':
		v <<= 10, end++;
		break;
	case 'm':
		v <<= 20, end++;
		break;
	case 'g':
		v <<= 30, end++;
		break;
	case 't':
		v <<= 40, end++;
		break;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

#endif
