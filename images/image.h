/* SPDX-License-Identifier: MIT */
/*
 * A checkpoint directory and the length-framed protobuf images in it.
 *
 * Every function returns 0 (or a count) on success and a negative errno on failure,
 * after logging a message that names the file and what is wrong with it.
 */
#ifndef LP_IMAGE_H
#define LP_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/* Images bigger than this are refused as corrupt (pages files are mapped, not read). */
#define IMG_MAX_FILE_SIZE (256UL << 20)

struct lp_images {
	int dirfd;
	char *path;
	uint32_t img_version; /* 1 or 2, from inventory.img */
	bool fdinfo_per_id;
	bool has_parent; /* a "parent" link: pre-dump chain */
};

/* Open DIR and check inventory.img. */
int lp_images_open(struct lp_images *im, const char *path);
/* Open directory NAME inside BASE (e.g. "parent") and check its inventory. */
int lp_images_open_sub(struct lp_images *im, const struct lp_images *base, const char *name);
/* Open DIR without an inventory (the checkpoint being written). */
int lp_images_open_dir(struct lp_images *im, const char *path);
void lp_images_close(struct lp_images *im);

/* One protobuf image read into memory, consumed entry by entry. */
struct lp_img {
	char name[96]; /* file name inside the directory, for messages */
	const char *dir;
	uint8_t *buf;
	size_t size;
	size_t off;
	unsigned int nr_read; /* entries consumed so far */
};

/*
 * Open image NAME with per-type MAGIC (checks the common magic first for img_version 2).
 * Returns -ENOENT, silently, when the file does not exist: callers decide whether that
 * is an empty image or an error.
 */
int lp_img_open(const struct lp_images *im, const char *name, uint32_t magic, struct lp_img *img);
/* Same, for a buffer in memory (fuzzing, tests). Takes ownership of BUF (malloc'd). */
int lp_img_open_buf(const char *name, uint32_t img_version, uint32_t magic, uint8_t *buf,
		    size_t size, struct lp_img *img);
void lp_img_close(struct lp_img *img);

/* Next entry as a message of type DESC. Returns 1 with *msg set, 0 at EOF, or -errno. */
int lp_img_read_pb(struct lp_img *img, const ProtobufCMessageDescriptor *desc, void **msg);
/* Read exactly one entry (single-entry images: inventory, mm, core, ids). */
int lp_img_read_one(const struct lp_images *im, const char *name, uint32_t magic,
		    const ProtobufCMessageDescriptor *desc, void **msg);
static inline void lp_pb_free(void *msg)
{
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
}

/* Writing: magics, then entries. */
struct lp_img_writer {
	char name[96];
	int fd;
	int err;
};

int lp_img_create(const struct lp_images *im, const char *name, uint32_t magic,
		  struct lp_img_writer *w);
int lp_img_write_pb(struct lp_img_writer *w, const ProtobufCMessage *msg);
/* Raw bytes as they are (for building corrupt images in tests). */
int lp_img_write_raw(struct lp_img_writer *w, const void *buf, size_t len);
/* Closes the file; returns the first error seen while writing, if any. */
int lp_img_writer_close(struct lp_img_writer *w);

int lp_write_full(int fd, const void *buf, size_t len);
int lp_read_full(int fd, void *buf, size_t len);

#endif
