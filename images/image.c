// SPDX-License-Identifier: MIT
/* Checkpoint directory, image magics and length-framed protobuf entries. */
#define LOG_PREFIX "image: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "inventory.pb-c.h"
#include "log.h"
#include "magic.h"

int lp_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

int lp_read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= n;
	}
	return 0;
}

static int open_dir_at(struct lp_images *im, int base, const char *path, const char *display)
{
	struct stat st;

	memset(im, 0, sizeof(*im));
	im->dirfd = openat(base, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (im->dirfd < 0) {
		int e = -errno;

		pr_err("cannot open images directory %s: %s", display, strerror(-e));
		return e;
	}
	im->path = strdup(display);
	if (!im->path) {
		close(im->dirfd);
		return -ENOMEM;
	}
	im->img_version = CRTOOLS_IMAGES_V1_1;
	im->has_parent = fstatat(im->dirfd, "parent", &st, 0) == 0 && S_ISDIR(st.st_mode);
	return 0;
}

int lp_images_open_dir(struct lp_images *im, const char *path)
{
	return open_dir_at(im, AT_FDCWD, path, path);
}

static int check_inventory(struct lp_images *im, const char *path);

int lp_images_open(struct lp_images *im, const char *path)
{
	int ret = lp_images_open_dir(im, path);

	return ret ?: check_inventory(im, path);
}

int lp_images_open_sub(struct lp_images *im, const struct lp_images *base, const char *name)
{
	char display[4096];
	int ret;

	snprintf(display, sizeof(display), "%s/%s", base->path, name);
	ret = open_dir_at(im, base->dirfd, name, display);
	return ret ?: check_inventory(im, display);
}

static int check_inventory(struct lp_images *im, const char *path)
{
	InventoryEntry *inv = NULL;
	int ret;

	ret = lp_img_read_one(im, "inventory.img", INVENTORY_MAGIC, &inventory_entry__descriptor,
			      (void **)&inv);
	if (ret == -ENOENT)
		pr_err("%s/inventory.img: missing: is %s a checkpoint directory (criu dump -D)?",
		       path, path);
	if (ret)
		goto err;
	if (inv->img_version != CRTOOLS_IMAGES_V1 && inv->img_version != CRTOOLS_IMAGES_V1_1) {
		pr_err("%s/inventory.img: unsupported img_version %u (expected 1 or 2)", path,
		       inv->img_version);
		ret = -EINVAL;
		goto err;
	}
	im->img_version = inv->img_version;
	im->fdinfo_per_id = inv->has_fdinfo_per_id && inv->fdinfo_per_id;
	lp_pb_free(inv);
	return 0;
err:
	lp_pb_free(inv);
	lp_images_close(im);
	return ret;
}

void lp_images_close(struct lp_images *im)
{
	if (im->dirfd >= 0)
		close(im->dirfd);
	free(im->path);
	im->path = NULL;
	im->dirfd = -1;
}

static const char *magic_name(uint32_t magic)
{
	switch (magic) {
	case INVENTORY_MAGIC:
		return "inventory";
	case PSTREE_MAGIC:
		return "pstree";
	case CORE_MAGIC:
		return "core";
	case IDS_MAGIC:
		return "ids";
	case MM_MAGIC:
		return "mm";
	case PAGEMAP_MAGIC:
		return "pagemap";
	case IMG_COMMON_MAGIC:
		return "common";
	case IMG_SERVICE_MAGIC:
		return "service";
	}
	return "unknown";
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Check the magic(s) at the start of IMG and position it at the first entry. */
static int check_magic(struct lp_img *img, uint32_t img_version, uint32_t magic)
{
	uint32_t m;

	if (magic != INVENTORY_MAGIC && img_version == CRTOOLS_IMAGES_V1_1) {
		if (img->size < 4) {
			pr_err("%s/%s: truncated: %zu bytes, no room for the common magic",
			       img->dir, img->name, img->size);
			return -EINVAL;
		}
		m = get_u32(img->buf);
		if (m != IMG_COMMON_MAGIC && m != IMG_SERVICE_MAGIC) {
			pr_err("%s/%s: bad common magic %#x (expected %#x): not a CRIU image, or "
			       "a damaged one",
			       img->dir, img->name, m, IMG_COMMON_MAGIC);
			return -EINVAL;
		}
		img->off = 4;
	}
	if (img->size < img->off + 4) {
		pr_err("%s/%s: truncated: %zu bytes, no room for the %s magic", img->dir, img->name,
		       img->size, magic_name(magic));
		return -EINVAL;
	}
	m = get_u32(img->buf + img->off);
	if (m != magic) {
		pr_err("%s/%s: bad magic %#x (%s), expected %#x (%s)", img->dir, img->name, m,
		       magic_name(m), magic, magic_name(magic));
		return -EINVAL;
	}
	img->off += 4;
	return 0;
}

int lp_img_open_buf(const char *name, uint32_t img_version, uint32_t magic, uint8_t *buf,
		    size_t size, struct lp_img *img)
{
	int ret;

	memset(img, 0, sizeof(*img));
	snprintf(img->name, sizeof(img->name), "%s", name);
	img->dir = ".";
	img->buf = buf;
	img->size = size;
	ret = check_magic(img, img_version, magic);
	if (ret)
		lp_img_close(img);
	return ret;
}

int lp_img_open(const struct lp_images *im, const char *name, uint32_t magic, struct lp_img *img)
{
	struct stat st;
	int fd, ret;

	memset(img, 0, sizeof(*img));
	snprintf(img->name, sizeof(img->name), "%s", name);
	img->dir = im->path;
	fd = openat(im->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret != -ENOENT)
			pr_err("%s/%s: cannot open: %s", im->path, name, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		pr_err("%s/%s: stat: %s", im->path, name, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > IMG_MAX_FILE_SIZE) {
		pr_err("%s/%s: not a regular file or larger than %lu MiB", im->path, name,
		       IMG_MAX_FILE_SIZE >> 20);
		ret = -EFBIG;
		goto out;
	}
	img->size = st.st_size;
	img->buf = malloc(img->size ? img->size : 1);
	if (!img->buf) {
		ret = -ENOMEM;
		goto out;
	}
	ret = lp_read_full(fd, img->buf, img->size);
	if (ret) {
		pr_err("%s/%s: read: %s", im->path, name,
		       ret == -ENODATA ? "file shrank while reading" : strerror(-ret));
		goto out;
	}
	ret = check_magic(img, im->img_version, magic);
out:
	close(fd);
	if (ret)
		lp_img_close(img);
	return ret;
}

void lp_img_close(struct lp_img *img)
{
	free(img->buf);
	img->buf = NULL;
	img->size = img->off = 0;
}

int lp_img_read_pb(struct lp_img *img, const ProtobufCMessageDescriptor *desc, void **msg)
{
	size_t left = img->size - img->off;
	uint32_t len;

	*msg = NULL;
	if (left == 0)
		return 0;
	if (left < 4) {
		pr_err("%s/%s: truncated entry header at offset %zu (%zu bytes left, need 4)",
		       img->dir, img->name, img->off, left);
		return -EINVAL;
	}
	len = get_u32(img->buf + img->off);
	if (len > left - 4) {
		pr_err("%s/%s: entry %u at offset %zu: length %u runs past the end of the file "
		       "(%zu bytes left): truncated or corrupt image",
		       img->dir, img->name, img->nr_read, img->off, len, left - 4);
		return -EINVAL;
	}
	*msg = protobuf_c_message_unpack(desc, NULL, len, img->buf + img->off + 4);
	if (!*msg) {
		pr_err("%s/%s: entry %u at offset %zu: cannot decode %u bytes as %s", img->dir,
		       img->name, img->nr_read, img->off, len, desc->name);
		return -EINVAL;
	}
	img->off += 4 + len;
	img->nr_read++;
	return 1;
}

int lp_img_read_one(const struct lp_images *im, const char *name, uint32_t magic,
		    const ProtobufCMessageDescriptor *desc, void **msg)
{
	struct lp_img img;
	int ret;

	*msg = NULL;
	ret = lp_img_open(im, name, magic, &img);
	if (ret)
		return ret;
	ret = lp_img_read_pb(&img, desc, msg);
	if (ret == 0) {
		pr_err("%s/%s: no entry (empty image)", im->path, name);
		ret = -EINVAL;
	} else if (ret > 0) {
		ret = 0;
		if (img.off != img.size)
			pr_warn("%s/%s: %zu trailing bytes after the entry ignored", im->path, name,
				img.size - img.off);
	}
	lp_img_close(&img);
	return ret;
}

int lp_img_create(const struct lp_images *im, const char *name, uint32_t magic,
		  struct lp_img_writer *w)
{
	uint32_t hdr[2];
	size_t n = 0;

	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->fd = openat(im->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		w->err = -errno;
		pr_err("%s/%s: cannot create: %s", im->path, name, strerror(errno));
		return w->err;
	}
	if (magic == RAW_IMAGE_MAGIC)
		return 0;
	if (magic != INVENTORY_MAGIC && im->img_version == CRTOOLS_IMAGES_V1_1)
		hdr[n++] = IMG_COMMON_MAGIC;
	hdr[n++] = magic;
	return lp_img_write_raw(w, hdr, n * 4);
}

int lp_img_write_raw(struct lp_img_writer *w, const void *buf, size_t len)
{
	int ret;

	if (w->err)
		return w->err;
	ret = lp_write_full(w->fd, buf, len);
	if (ret) {
		pr_err("%s: write: %s", w->name, strerror(-ret));
		w->err = ret;
	}
	return ret;
}

int lp_img_write_pb(struct lp_img_writer *w, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t stackbuf[512], *buf = stackbuf;
	uint32_t l32 = len;
	int ret;

	if (len > UINT32_MAX)
		return w->err = -EFBIG;
	if (len > sizeof(stackbuf)) {
		buf = malloc(len);
		if (!buf)
			return w->err = -ENOMEM;
	}
	protobuf_c_message_pack(msg, buf);
	ret = lp_img_write_raw(w, &l32, 4);
	if (!ret)
		ret = lp_img_write_raw(w, buf, len);
	if (buf != stackbuf)
		free(buf);
	return ret;
}

int lp_img_writer_close(struct lp_img_writer *w)
{
	int ret = w->err;

	if (w->fd >= 0 && close(w->fd) < 0 && !ret)
		ret = -errno;
	w->fd = -1;
	return ret;
}
