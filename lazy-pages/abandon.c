// SPDX-License-Identifier: MIT
/*
 * Giving up a restore without letting anyone read zeros.
 *
 * When pages can no longer be delivered (the page server stayed away past --ps-deadline,
 * or any other fatal error), the daemon will exit and the kernel will then fill every
 * page still missing with zeros: a process would run on with corrupted memory. So, for
 * every process still missing pages:
 *
 *  1. UFFDIO_POISON its missing runs (Linux 6.6+): a touch raises SIGBUS, in children it
 *     forks too, and after the uffd is closed;
 *  2. SIGKILL it. The restore socket gives pids as seen inside the checkpoint's pid
 *     namespace, so a process is taken for ours only if the last NSpid field of
 *     /proc/N/status equals that pid and one of its VMAs registered for missing-page
 *     faults ("um" in smaps VmFlags) overlaps the ranges this daemon serves. Children
 *     forked after restore (no pid known) are found as descendants of those with the same
 *     VMA test.
 */
#define LOG_PREFIX "abandon: "
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pagemap.h"
#include "ranges.h"
#include "session.h"
#include "uffd-abi.h"

#define PG LP_PAGE_SIZE

/* Poison P's missing pages. Pages poisoned, or -errno if the kernel cannot. */
static long poison(struct lp_proc *p)
{
	uint64_t from = 0, addr, nr;
	size_t idx;
	long done = 0;

	while (rm_next_run(&p->map, from, 1ULL << 30, &idx, &addr, &nr)) {
		struct uffdio_poison up = {.range = {.start = addr, .len = nr * PG}};

		from = addr + nr * PG;
		if (!ioctl(p->uffd, UFFDIO_POISON, &up)) {
			done += nr;
			continue;
		}
		switch (errno) {
		case EEXIST: /* a page is there after all: poison past it */
			done += up.updated > 0 ? up.updated / PG : 0;
			from = addr + (up.updated > 0 ? up.updated : 0) + PG;
			break;
		case EAGAIN: /* an event is pending; the process is being killed anyway */
		case ENOENT: /* unmapped meanwhile */
			break;
		case ESRCH:
			return done;
		default:
			return -errno;
		}
	}
	return done;
}

struct task {
	int pid, ppid, nspid; /* nspid: the innermost pid namespace's */
	bool ours;
};

static int read_status(int pid, struct task *t)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	t->pid = pid;
	t->ppid = -1;
	t->nspid = pid;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "PPid:", 5)) {
			t->ppid = atoi(line + 5);
		} else if (!strncmp(line, "NSpid:", 6)) {
			char *last = NULL, *tok, *save;

			for (tok = strtok_r(line + 6, " \t\n", &save); tok;
			     tok = strtok_r(NULL, " \t\n", &save))
				last = tok;
			if (last)
				t->nspid = atoi(last);
		}
	}
	fclose(f);
	return 0;
}

/* Does PID have a uffd-registered VMA ("um") that overlaps what P serves? */
static bool serves(int pid, const struct lp_proc *p)
{
	char path[64], line[512];
	unsigned long long start = 0, end = 0;
	bool hit = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!hit && fgets(line, sizeof(line), f)) {
		if (isxdigit((unsigned char)line[0]) && strchr(line, '-')) {
			sscanf(line, "%llx-%llx", &start, &end);
		} else if (!strncmp(line, "VmFlags:", 8) && strstr(line, " um")) {
			for (size_t k = 0; k < p->map.nr && !hit; k++)
				hit = p->map.seg[k].start < end && start < p->map.seg[k].end;
		}
	}
	fclose(f);
	return hit;
}

static bool serves_any(int pid, const struct lp_session *s)
{
	for (const struct lp_proc *p = s->procs; p; p = p->next)
		if (!p->exited && p->map.nr_missing && serves(pid, p))
			return true;
	return false;
}

static struct task *scan(size_t *nr)
{
	DIR *d = opendir("/proc");
	struct task *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;

	*nr = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		int pid = atoi(e->d_name);

		if (pid <= 0)
			continue;
		if (n == cap) {
			struct task *nv = realloc(v, (cap = cap ? cap * 2 : 256) * sizeof(*v));

			if (!nv)
				break;
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		if (!read_status(pid, &v[n]))
			n++;
	}
	closedir(d);
	*nr = n;
	return v;
}

static const struct task *find(const struct task *v, size_t n, int pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].pid == pid)
			return &v[i];
	return NULL;
}

/* Is an ancestor of T (within a few generations) one of ours? */
static bool descends(const struct task *v, size_t n, const struct task *t)
{
	for (int depth = 0; depth < 16 && t && t->ppid > 1; depth++) {
		t = find(v, n, t->ppid);
		if (t && t->ours)
			return true;
	}
	return false;
}

static void kill_ours(struct lp_session *s)
{
	size_t n, nkilled = 0;
	struct task *v = scan(&n);
	char list[512];
	int len = 0;

	if (!v) {
		pr_err("cannot list /proc: %s; restored processes were not killed",
		       strerror(errno));
		return;
	}
	/* Processes the restore named, then whatever they forked. */
	for (const struct lp_proc *p = s->procs; p; p = p->next) {
		if (p->exited || p->forked || !p->map.nr_missing)
			continue;
		for (size_t i = 0; i < n; i++)
			if (!v[i].ours && v[i].nspid == (int)p->pid && v[i].pid != getpid() &&
			    serves(v[i].pid, p))
				v[i].ours = true;
	}
	for (bool more = true; more;) {
		more = false;
		for (size_t i = 0; i < n; i++)
			if (!v[i].ours && v[i].pid != getpid() && descends(v, n, &v[i]) &&
			    serves_any(v[i].pid, s))
				v[i].ours = more = true;
	}
	list[0] = 0;
	for (size_t i = 0; i < n; i++) {
		if (!v[i].ours)
			continue;
		if (kill(v[i].pid, SIGKILL)) {
			pr_warn("kill %d: %s", v[i].pid, strerror(errno));
			continue;
		}
		nkilled++;
		if (len < (int)sizeof(list) - 16)
			len += snprintf(list + len, sizeof(list) - len, " %d", v[i].pid);
	}
	s->st.killed += nkilled;
	if (nkilled)
		pr_err("killed %zu restored process%s still missing pages:%s", nkilled,
		       nkilled == 1 ? "" : "es", list);
	free(v);
}

void lp_session_abandon(struct lp_session *s, int why)
{
	size_t nr = 0;
	long poisoned = 0;
	int perr = 0;

	for (struct lp_proc *p = s->procs; p; p = p->next) {
		long k;

		if (p->exited || !p->map.nr_missing)
			continue;
		nr++;
		if (perr)
			continue;
		k = poison(p);
		if (k < 0)
			perr = (int)k;
		else
			poisoned += k;
	}
	if (!nr)
		return;
	pr_err("the restore cannot be completed (%s): ending %zu process%s still missing pages "
	       "rather than letting them read zeros",
	       why == -EHOSTDOWN ? "the page server stayed unreachable" : strerror(-why), nr,
	       nr == 1 ? "" : "es");
	s->st.pages_poisoned += poisoned;
	if (perr)
		pr_warn("UFFDIO_POISON: %s (Linux 6.6+ poisons missing pages so that a touch "
			"gets SIGBUS); relying on SIGKILL alone",
			strerror(-perr));
	kill_ours(s);
}
