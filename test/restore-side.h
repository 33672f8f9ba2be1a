/* SPDX-License-Identifier: MIT */
/*
 * The restored task's side of the restore socket, as criu restore speaks it: an int32 pid,
 * then one byte carrying the uffd in SCM_RIGHTS. For test programs that play restore.
 */
#ifndef LP_TEST_RESTORE_SIDE_H
#define LP_TEST_RESTORE_SIDE_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * One byte with one SOL_SOCKET control message of TYPE carrying LEN (at most 64) bytes of
 * DATA: SCM_RIGHTS fds, or the SCM_CREDENTIALS a hostile peer sends instead. Returns what
 * sendmsg() returns.
 */
static inline ssize_t lpt_send_cmsg(int sk, int type, const void *data, size_t len, int flags)
{
	union {
		char buf[CMSG_SPACE(64)];
		struct cmsghdr a;
	} ctl;
	char byte = 0;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = CMSG_SPACE(len)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	if (len > 64) {
		errno = EINVAL;
		return -1;
	}
	memset(&ctl, 0, sizeof(ctl));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(len);
	memcpy(CMSG_DATA(c), data, len);
	return sendmsg(sk, &mh, flags);
}

static inline int lpt_send_uffd(int sk, int32_t pid, int uffd)
{
	if (send(sk, &pid, 4, MSG_NOSIGNAL) != 4 ||
	    lpt_send_cmsg(sk, SCM_RIGHTS, &uffd, sizeof(uffd), MSG_NOSIGNAL) != 1)
		return -errno;
	return 0;
}

#endif
