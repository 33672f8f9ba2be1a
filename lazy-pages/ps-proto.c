// SPDX-License-Identifier: MIT
/* Page-server protocol headers: the 24- and 32-byte layouts. */
#include <errno.h>
#include <string.h>

#include "ps-proto.h"

int ps_parse_hdr_size(const char *s)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "24") || !strcmp(s, "v1") || !strcmp(s, "3.17"))
		return PS_HDR_V1;
	if (!strcmp(s, "32") || !strcmp(s, "v2") || !strcmp(s, "4.2"))
		return PS_HDR_V2;
	return -EINVAL;
}

/* Fields are copied byte-wise: the buffer need not be aligned. */
static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

int ps_encode(int hdr_size, const struct ps_iov *iov, uint8_t *buf)
{
	switch (hdr_size) {
	case PS_HDR_V1:
		if (iov->nr_pages > UINT32_MAX)
			return -EOVERFLOW;
		put32(buf, iov->cmd);
		put32(buf + 4, (uint32_t)iov->nr_pages);
		put64(buf + 8, iov->vaddr);
		put64(buf + 16, iov->dst_id);
		return PS_HDR_V1;
	case PS_HDR_V2:
		put32(buf, iov->cmd);
		put32(buf + 4, 0);
		put64(buf + 8, iov->nr_pages);
		put64(buf + 16, iov->vaddr);
		put64(buf + 24, iov->dst_id);
		return PS_HDR_V2;
	}
	return -EINVAL;
}

int ps_decode(int hdr_size, const uint8_t *buf, struct ps_iov *iov)
{
	switch (hdr_size) {
	case PS_HDR_V1:
		iov->cmd = get32(buf);
		iov->nr_pages = get32(buf + 4);
		iov->vaddr = get64(buf + 8);
		iov->dst_id = get64(buf + 16);
		return 0;
	case PS_HDR_V2:
		/* bytes 4..7 are padding; CRIU ignores them and so do we */
		iov->cmd = get32(buf);
		iov->nr_pages = get64(buf + 8);
		iov->vaddr = get64(buf + 16);
		iov->dst_id = get64(buf + 24);
		return 0;
	}
	return -EINVAL;
}

const char *ps_cmd_name(uint32_t op)
{
	switch (op) {
	case PS_IOV_ADD:
		return "ADD";
	case PS_IOV_HOLE:
		return "HOLE";
	case PS_IOV_OPEN:
		return "OPEN";
	case PS_IOV_OPEN2:
		return "OPEN2";
	case PS_IOV_PARENT:
		return "PARENT";
	case PS_IOV_ADD_F:
		return "ADD_F";
	case PS_IOV_GET:
		return "GET";
	case PS_IOV_CLOSE:
		return "CLOSE";
	case PS_IOV_FORCE_CLOSE:
		return "FORCE_CLOSE";
	}
	return NULL;
}
