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

static inline int lpt_send_uffd(int sk, int32_t pid, int uffd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} ctl;
	char byte = 0;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	if (send(sk, &pid, 4, MSG_NOSIGNAL) != 4 || sendmsg(sk, &mh, MSG_NOSIGNAL) != 1)
		return -errno;
	return 0;
}

#endif
