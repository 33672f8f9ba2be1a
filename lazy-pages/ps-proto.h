/* SPDX-License-Identifier: MIT */
/*
 * CRIU's page-server protocol: command values and the two wire layouts of its header
 * (struct page_server_iov), docs/page-server.md and criu-lazy-protocol.md §4.
 *
 * There is no version negotiation on the wire: both ends must agree on the layout
 * (--ps-header 24|32). All fields are in host byte order, as CRIU sends them.
 *
 *	24 bytes (CRIU 3.17.1 .. 4.1.x): u32 cmd, u32 nr_pages, u64 vaddr, u64 dst_id
 *	32 bytes (CRIU 4.2+):            u32 cmd, 4 pad, u64 nr_pages, u64 vaddr, u64 dst_id
 */
#ifndef LP_PS_PROTO_H
#define LP_PS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PS_IOV_ADD	   1U
#define PS_IOV_HOLE	   2U
#define PS_IOV_OPEN	   3U
#define PS_IOV_OPEN2	   4U
#define PS_IOV_PARENT	   5U
#define PS_IOV_ADD_F	   6U
#define PS_IOV_GET	   7U
#define PS_IOV_CLOSE	   0x1023U
#define PS_IOV_FORCE_CLOSE 0x1024U

/* cmd = (flags << PS_CMD_BITS) | command; flags are PE_* bits */
#define PS_CMD_BITS 16
#define PS_CMD_MASK ((1U << PS_CMD_BITS) - 1)

/* dst_id of OPEN/ADD-style commands = (id << PS_TYPE_BITS) | type. GET uses the raw pid. */
#define PS_TYPE_BITS  8
#define PS_TYPE_PID   1U
#define PS_TYPE_SHMEM 2U

#define PS_HDR_V1      24 /* CRIU 3.17.1 .. 4.1.x */
#define PS_HDR_V2      32 /* CRIU 4.2 and later */
#define PS_HDR_MAX     32
#define PS_HDR_DEFAULT PS_HDR_V1

/* The cmd of a GET reply: PS_IOV_ADD_F with PE_PRESENT (4) in the flags. */
#define PS_GET_REPLY_CMD ((4U << PS_CMD_BITS) | PS_IOV_ADD_F)

/* The reply to CLOSE and FORCE_CLOSE: an int32 status, 0 for success. */
#define PS_CLOSE_REPLY_SIZE 4

struct ps_iov {
	uint32_t cmd;
	uint64_t nr_pages;
	uint64_t vaddr;
	uint64_t dst_id;
};

static inline uint32_t ps_cmd_op(uint32_t cmd)
{
	return cmd & PS_CMD_MASK;
}

static inline uint32_t ps_cmd_flags(uint32_t cmd)
{
	return cmd >> PS_CMD_BITS;
}

static inline bool ps_hdr_size_valid(int size)
{
	return size == PS_HDR_V1 || size == PS_HDR_V2;
}

/*
 * Parse a --ps-header value: "24" or "32" (also "v1"/"v2", "3.17"/"4.2" as aliases).
 * Returns the header size or -EINVAL.
 */
int ps_parse_hdr_size(const char *s);

/*
 * Encode IOV in layout HDR_SIZE into BUF (at least HDR_SIZE bytes); returns HDR_SIZE,
 * -EINVAL for a bad layout or -EOVERFLOW when nr_pages does not fit the 24-byte layout.
 */
int ps_encode(int hdr_size, const struct ps_iov *iov, uint8_t *buf);
/* Decode one header of HDR_SIZE bytes. Returns 0 or -EINVAL (bad layout). */
int ps_decode(int hdr_size, const uint8_t *buf, struct ps_iov *iov);

/* "GET", "CLOSE", ... or NULL for a value that is no command. */
const char *ps_cmd_name(uint32_t op);

#endif
