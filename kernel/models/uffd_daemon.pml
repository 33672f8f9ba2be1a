/*
 * uffd_daemon.pml - the wake obligations of a lazy-pages daemon.
 *
 * The kernel side is taken as proven by uffd_tso.pml and uffd_refile.pml:
 * a fault re-checks its PTE and queues itself in one atomic step, and a
 * wake reaches every thread queued on the page, whether its message was
 * read or not.  What is left is the daemon's protocol:
 *
 *	threads   T0 and T1 fault on page 0, T2 on page 1; a woken thread
 *	          retries the access and faults again if the page is missing
 *	handler   read(uffd) one message, UFFDIO_COPY its page
 *	pre-copy  UFFDIO_COPY of every page, racing with the faults; when it
 *	          has accounted for every page the daemon may close the uffd
 *	          (a page still missing then would be filled with zeros)
 *
 * UFFDIO_COPY: install the PTE under the PT lock or fail with EEXIST if the
 * page is there; wake the range afterwards unless MODE_DONTWAKE; an EEXIST
 * wakes nobody.  A multi-page copy stops at the first existing page and
 * returns -EAGAIN with the bytes copied so far, or -EEXIST if that was the
 * first page.
 *
 * Knobs:
 *	POLICY 0  nobody uses DONTWAKE, EEXIST is ignored               (ok)
 *	       1  pre-copy uses DONTWAKE and never wakes, EEXIST ignored (lost wakeup)
 *	       2  pre-copy uses DONTWAKE; every EEXIST is followed by a
 *	          UFFDIO_WAKE of that page                              (ok)
 *	       3  pre-copy uses DONTWAKE and wakes the whole range once
 *	          at the end; EEXIST ignored                             (ok)
 *	MULTI  1  pre-copy issues one UFFDIO_COPY for both pages
 *	RESUME 1  a partial or EEXIST result is resumed after the page that
 *	          stopped it; 0 counts the whole range as done           (MULTI=1 RESUME=0: bug)
 *
 * Properties: every thread's access completes (no invalid end state; ltl
 * all_done under pan -a), and no page is missing at the point where the
 * daemon would close the uffd.  The model keeps the uffd open after that
 * point: a real close() wakes every waiter, which would hide a lost wakeup
 * until the whole transfer is over.
 */

#ifndef POLICY
#define POLICY 0
#endif
#ifndef MULTI
#define MULTI 0
#endif
#ifndef RESUME
#define RESUME 1
#endif

#define NPAGES		2
#define NTHREADS	3
#define PAGE_OF(t)	((t) == 2 -> 1 : 0)

/* Results of UFFDIO_COPY. */
#define R_OK		0
#define R_EEXIST	1
#define R_PARTIAL	2	/* -EAGAIN, copy = bytes copied > 0 */

/* Per-thread kernel state: 0 running, 1 queued unread, 2 queued and read. */
byte st[NTHREADS];
bool pte[NPAGES];
byte ndone;		/* threads whose access completed */
bool complete;		/* the daemon believes every page is delivered */

/* wake_userfault() on [p, p + n): every waiter in range becomes runnable. */
inline wake(p, n)
{
	d_step {
		t = 0;
		do
		:: t < NTHREADS ->
			if
			:: st[t] != 0 && PAGE_OF(t) >= p && PAGE_OF(t) < p + n -> st[t] = 0
			:: else -> skip
			fi;
			t++
		:: else -> break
		od;
		t = 0
	}
}

/*
 * UFFDIO_COPY of [p, p + n): one atomic step per page (PT lock), then the
 * wake of what was copied.  Sets res and copied (pages).
 */
inline uffdio_copy(p, n, dontwake, res, copied)
{
	copied = 0;
	res = R_OK;
	do
	:: copied < n ->
		atomic {
			if
			:: pte[p + copied] ->
				res = (copied > 0 -> R_PARTIAL : R_EEXIST);
				break
			:: else -> pte[p + copied] = 1; copied++
			fi
		}
	:: else -> break
	od;
	if
	:: copied > 0 && !dontwake -> wake(p, copied)
	:: else -> skip
	fi
}

inline on_eexist(p)
{
#if POLICY == 2
	wake(p, 1)		/* UFFDIO_WAKE: the installer may have used DONTWAKE */
#else
	skip
#endif
}

proctype Thread(byte me)
{
	byte pg = PAGE_OF(me);

retry:
	atomic {		/* handle_userfault(): re-check, then queue and sleep */
		if
		:: pte[pg] -> goto done
		:: else -> st[me] = 1
		fi
	}
	(st[me] == 0);		/* asleep until woken; then VM_FAULT_RETRY */
	goto retry;
done:
	ndone++
}

proctype Handler()
{
	byte t, p, res, copied;

end:
	do
	:: atomic {		/* read(uffd): any unread message */
		if
		:: st[0] == 1 -> st[0] = 2; p = PAGE_OF(0)
		:: st[1] == 1 -> st[1] = 2; p = PAGE_OF(1)
		:: st[2] == 1 -> st[2] = 2; p = PAGE_OF(2)
		fi
	   }
		uffdio_copy(p, 1, 0, res, copied);
		if
		:: res == R_EEXIST -> on_eexist(p)
		:: else -> skip
		fi;
		res = 0; copied = 0; p = 0
	od
}

proctype Precopy()
{
	byte t, p, res, copied;
	bool dontwake = (POLICY != 0);

#if MULTI
	do
	:: p < NPAGES ->
		uffdio_copy(p, NPAGES - p, dontwake, res, copied);
		if
		:: res == R_OK -> p = NPAGES
		:: res == R_PARTIAL ->
#if RESUME
			p = p + copied	/* resume where the kernel stopped */
#else
			p = NPAGES	/* wrong: the rest of the range is not there */
#endif
		:: res == R_EEXIST ->
			on_eexist(p);
#if RESUME
			p++		/* skip the page somebody else installed */
#else
			p = NPAGES
#endif
		fi
	:: else -> break
	od;
#else
	do
	:: p < NPAGES ->
		uffdio_copy(p, 1, dontwake, res, copied);
		if
		:: res == R_EEXIST -> on_eexist(p)
		:: else -> skip
		fi;
		p++
	:: else -> break
	od;
#endif
#if POLICY == 3
	wake(0, NPAGES);	/* the batch UFFDIO_WAKE that DONTWAKE promised */
#endif
	/* Every page accounted for: this is where the daemon would close the uffd. */
	atomic {
		assert(pte[0] && pte[1]);
		complete = 1
	}
}

init
{
	atomic {
		run Thread(0);
		run Thread(1);
		run Thread(2);
		run Handler();
		run Precopy()
	}
}

ltl all_done { <> (ndone == NTHREADS) }
