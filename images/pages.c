// SPDX-License-Identifier: MIT
/* pages-<id>.img: mapped read-only; page data is never copied into a buffer of ours. */
#define LOG_PREFIX "pages: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "pages.h"

int lp_pages_open(const struct lp_images *im, uint32_t pages_id, uint64_t need, struct lp_pages *pg)
{
	struct stat st;
	int ret;

	memset(pg, 0, sizeof(*pg));
	snprintf(pg->name, sizeof(pg->name), "pages-%u.img", pages_id);
	pg->fd = openat(im->dirfd, pg->name, O_RDONLY | O_CLOEXEC);
	if (pg->fd < 0) {
		ret = -errno;
		if (ret == -ENOENT && need == 0)
			return 0; /* nothing present, nothing to read */
		pr_err("%s/%s: cannot open: %s", im->path, pg->name, strerror(-ret));
		return ret;
	}
	if (fstat(pg->fd, &st) < 0) {
		ret = -errno;
		pr_err("%s/%s: stat: %s", im->path, pg->name, strerror(-ret));
		goto err;
	}
	pg->size = st.st_size;
	if (pg->size < need) {
		pr_err("%s/%s: holds %llu bytes but the pagemap says %llu: truncated pages file",
		       im->path, pg->name, (unsigned long long)pg->size, (unsigned long long)need);
		ret = -EINVAL;
		goto err;
	}
	if (pg->size) {
		void *m = mmap(NULL, pg->size, PROT_READ, MAP_SHARED, pg->fd, 0);

		if (m == MAP_FAILED) {
			ret = -errno;
			pr_err("%s/%s: mmap %llu bytes: %s", im->path, pg->name,
			       (unsigned long long)pg->size, strerror(-ret));
			goto err;
		}
		pg->map = m;
	}
	return 0;
err:
	close(pg->fd);
	pg->fd = -1;
	return ret;
}

void lp_pages_close(struct lp_pages *pg)
{
	if (pg->map)
		munmap((void *)pg->map, pg->size);
	if (pg->fd >= 0)
		close(pg->fd);
	pg->map = NULL;
	pg->fd = -1;
}
