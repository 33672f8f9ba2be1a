// SPDX-License-Identifier: MIT
/* The range map against a page-by-page reference model, under random operations. */
#include "helpers.h"
#include "pagemap.h"
#include "ranges.h"

#define PG LP_PAGE_SIZE
#define NPAGES 512
#define BASE 0x100000000ULL

/* Reference: for each run-time page, the image address it maps to, or 0 if not missing. */
struct model {
	uint64_t img[NPAGES * 4]; /* run-time window: BASE .. BASE + 4*NPAGES pages */
};

static uint64_t idx_addr(size_t i)
{
	return BASE + i * PG;
}

static void check(const struct lp_range_map *m, const struct model *ref)
{
	uint64_t n = 0;

	for (size_t i = 0; i < NPAGES * 4; i++) {
		long k = rm_find(m, idx_addr(i));
		bool missing = k >= 0 && rm_missing(&m->seg[k], idx_addr(i));

		if (ref->img[i]) {
			n++;
			ASSERT_TRUE(missing);
			ASSERT_EQ(m->seg[k].img + (idx_addr(i) - m->seg[k].start), ref->img[i]);
			ASSERT_EQ((uint64_t)(uintptr_t)m->seg[k].data + (idx_addr(i) - m->seg[k].start),
				  ref->img[i] + 1);
		} else {
			ASSERT_FALSE(missing);
		}
	}
	ASSERT_EQ(m->nr_missing, n);
	for (size_t k = 1; k < m->nr; k++)
		ASSERT_TRUE(m->seg[k - 1].end <= m->seg[k].start);
}

static void test_random_ops(void)
{
	static struct model ref, tmp;
	struct lp_range_map m, c;
	uint64_t seed = 42;

	for (int round = 0; round < 40; round++) {
		rm_init(&m);
		memset(&ref, 0, sizeof(ref));
		/* segments in the first quarter, with gaps; image address = run-time address */
		for (size_t i = 0; i < NPAGES;) {
			size_t len = 1 + (seed = seed * 6364136223846793005ULL + 1) % 40;
			size_t gap = (seed >> 33) % 5;

			if (i + len > NPAGES)
				len = NPAGES - i;
			ASSERT_EQ(rm_add(&m, idx_addr(i), idx_addr(i + len), idx_addr(i),
					 (const uint8_t *)(uintptr_t)(idx_addr(i) + 1)),
				  0);
			for (size_t k = i; k < i + len; k++)
				ref.img[k] = idx_addr(k);
			i += len + gap;
		}
		check(&m, &ref);
		for (int op = 0; op < 60; op++) {
			uint64_t r = (seed = seed * 6364136223846793005ULL + 1) >> 20;
			size_t a = r % (NPAGES * 2), len = 1 + (r >> 12) % 64;

			switch (r >> 30 & 3) {
			case 0: { /* done: pages installed */
				long k = rm_find(&m, idx_addr(a));

				if (k >= 0) {
					uint64_t n = rm_run(&m.seg[k], idx_addr(a), len);

					rm_done(&m, k, idx_addr(a), n);
					for (size_t i = a; i < a + n; i++)
						ref.img[i] = 0;
				}
				break;
			}
			case 1: /* cut */
				ASSERT_EQ(rm_cut(&m, idx_addr(a), idx_addr(a + len)), 0);
				for (size_t i = a; i < a + len; i++)
					ref.img[i] = 0;
				break;
			case 2: { /* remap to somewhere in the window, possibly overlapping */
				size_t to = (r >> 40) % (NPAGES * 4 - len);

				ASSERT_EQ(rm_remap(&m, idx_addr(a), idx_addr(to), len * PG), 0);
				memcpy(&tmp, &ref, sizeof(ref));
				for (size_t i = 0; i < len; i++)
					tmp.img[a + i] = 0;
				for (size_t i = 0; i < len; i++)
					tmp.img[to + i] = ref.img[a + i];
				memcpy(&ref, &tmp, sizeof(ref));
				break;
			}
			case 3: { /* fork: the clone must equal the original */
				ASSERT_EQ(rm_clone(&c, &m), 0);
				check(&c, &ref);
				rm_free(&m);
				m = c;
				break;
			}
			}
			check(&m, &ref);
		}
		/* draining by first runs removes everything in ascending order */
		{
			size_t idx;
			uint64_t addr, nr, last = 0;

			while (rm_first_run(&m, 7, &idx, &addr, &nr)) {
				ASSERT_TRUE(nr >= 1 && nr <= 7);
				ASSERT_TRUE(addr >= last);
				last = addr;
				rm_done(&m, idx, addr, nr);
			}
			ASSERT_EQ(m.nr_missing, 0);
		}
		rm_free(&m);
	}
}

static void test_add_rejects_overlap(void)
{
	struct lp_range_map m;

	rm_init(&m);
	ASSERT_EQ(rm_add(&m, BASE, BASE + 4 * PG, BASE, NULL), 0);
	ASSERT_EQ(rm_add(&m, BASE + 3 * PG, BASE + 5 * PG, BASE, NULL), -EEXIST);
	ASSERT_EQ(rm_add(&m, BASE + 5 * PG, BASE + 5 * PG, BASE, NULL), -EINVAL);
	ASSERT_EQ(rm_add(&m, BASE + 5 * PG + 1, BASE + 6 * PG, BASE, NULL), -EINVAL);
	ASSERT_EQ(m.nr_missing, 4);
	rm_free(&m);
}

static const struct lpt_case cases[] = {
	LPT_CASE(test_random_ops),
	LPT_CASE(test_add_rejects_overlap),
	LPT_END,
};

int main(int argc, char **argv)
{
	return lpt_main(cases, argc, argv);
}
