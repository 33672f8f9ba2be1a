// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the page-server client (lazy-pages/remote.c) reading replies. The
 * input is what a server sends: byte 0 picks the header layout (bit 0) and how many GETs
 * are outstanding (bits 1-3, 1..8); byte 1 their sizes; the rest goes down a socketpair to
 * lp_remote_ready() until it reports the end of the stream or an error.
 *
 * Invariants: done() gets only what was asked (pid, address, 1..asked pages, readable
 * data), replies in request order, never after a fatal error; nothing leaks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "pagemap.h"
#include "remote.h"

struct req {
	uint32_t pid;
	uint64_t vaddr, nr;
	int seq;
};

struct state {
	struct lp_remote *r;
	int next; /* sequence number the next done() must carry */
	int dead;
	struct req reqs[64];
	int nr_reqs;
};

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_ps_client: invariant broken: %s\n", what);
		abort();
	}
}

static struct state *g_st;

static void ask(struct state *s, uint32_t pid, uint64_t vaddr, uint64_t nr)
{
	struct req *q;

	if (s->nr_reqs == 64)
		return;
	q = &s->reqs[s->nr_reqs];
	*q = (struct req){pid, vaddr, nr, s->nr_reqs};
	if (lp_remote_request(s->r, pid, vaddr, nr, q, false) == 0)
		s->nr_reqs++;
}

static void done(void *cookie, uint32_t pid, uint64_t vaddr, uint64_t nr, const void *data, int err)
{
	struct state *s = g_st;
	const struct req *q = cookie;
	const uint8_t *d = data;
	unsigned int sum = 0;

	check(!s->dead, "no callback after an error");
	check(err == 0, "err");
	check(q->seq == s->next, "request order");
	s->next++;
	check(pid == q->pid && vaddr == q->vaddr, "pid and address");
	check(nr >= 1 && nr <= q->nr, "page count");
	for (uint64_t i = 0; i < nr * LP_PAGE_SIZE; i += 512)
		sum += d[i];
	sum += d[nr * LP_PAGE_SIZE - 1];
	(void)sum;
	if (nr < q->nr) /* short: ask for the rest, as the daemon does */
		ask(s, pid, vaddr + nr * LP_PAGE_SIZE, q->nr - nr);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len)
{
	struct lp_remote_opts o = {.timeout_ms = 1000};
	struct state s = {0};
	int sv[2], n, ret = 0;

	log_set_level(LOG_MSG);
	if (len < 2)
		return 0;
	o.hdr_size = in[0] & 1 ? PS_HDR_V2 : PS_HDR_V1;
	n = 1 + ((in[0] >> 1) & 7);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	if (lp_remote_open_fd(&s.r, sv[0], &o, done)) {
		close(sv[1]);
		return 0;
	}
	g_st = &s;
	for (int i = 0; i < n; i++)
		ask(&s, 100 + i % 2, 0x7f0000000000ULL + (uint64_t)i * 0x100000,
		    1 + ((in[1] >> (i % 4 * 2)) & 3));
	/* the server's bytes, then its end of the stream */
	for (size_t off = 2; off < len;) {
		ssize_t w = send(sv[1], in + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w <= 0)
			break; /* more than the socket holds: the rest is dropped */
		off += w;
	}
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 1000 && !ret; i++)
		ret = lp_remote_ready(s.r, 0);
	check(ret < 0, "the end of the stream is an error");
	s.dead = 1;
	check(lp_remote_ready(s.r, 0) == ret, "errors are sticky");
	check(lp_remote_close(s.r) == ret, "close reports the error");
	close(sv[1]);
	return 0;
}
