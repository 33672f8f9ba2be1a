/*
 * uffd_refile.pml - read(uffd) refiling a fault while UFFDIO_COPY wakes.
 *
 * A fault waits on ctx->fault_pending_wqh until the manager read()s its
 * message; userfaultfd_ctx_read() then moves the entry to ctx->fault_wqh
 * (list_del() from one queue, add_wait_queue() on the other, under the
 * pending queue's lock).  wake_userfault() checks both queues without
 * taking any lock.  If its two checks fall between the list_del() and the
 * add_wait_queue(), both queues look empty, the wake is skipped and the
 * faulting thread sleeps forever with its page present.
 *
 * The kernel's fix is ctx->refile_seq: the refile runs inside
 * write_seqcount_begin/end and the waker retries its two checks while the
 * count is odd or has changed.  The TSO model (uffd_tso.pml) already shows
 * the barrier side, so memory here is sequentially consistent and the
 * "PTE re-check then queue" step of the fault is one atomic step.
 *
 * Knob: USE_SEQ=1 the refile_seq seqcount (kernel), 0 without it (bug).
 */

#ifndef USE_SEQ
#define USE_SEQ 1
#endif

bool pte;		/* the page is installed */
bool pending;		/* the fault's entry is on fault_pending_wqh */
bool refiled;		/* ... on fault_wqh (message already read) */
bool pending_lock;	/* fault_pending_wqh.lock */
bool fwq_lock;		/* fault_wqh.lock */
byte seq;		/* ctx->refile_seq */
bool asleep;		/* the faulting task sleeps in schedule() */
bool waker_done;
bool fault_done;	/* the faulting access completed */

inline spin_lock(l)
{
	atomic { !l -> l = 1 }
}

inline spin_unlock(l)
{
	l = 0
}

/* handle_userfault(): queue, re-check the PTE, sleep; retry the access when woken. */
proctype Faulter()
{
	atomic {
		if
		:: pte -> skip		/* installed already: no fault */
		:: else -> pending = 1; asleep = 1
		fi
	}
	(!asleep);
	assert(pte);
	fault_done = 1
}

/* userfaultfd_ctx_read(): take the oldest pending fault and refile it. */
proctype Reader()
{
end:
	atomic { pending && !pending_lock -> pending_lock = 1 }
#if USE_SEQ
	seq++;				/* write_seqcount_begin() */
#endif
	pending = 0;			/* list_del(&uwq->wq.entry) */
	spin_lock(fwq_lock);		/* add_wait_queue(&ctx->fault_wqh) */
	refiled = 1;
	spin_unlock(fwq_lock);
#if USE_SEQ
	seq++;				/* write_seqcount_end() */
#endif
	spin_unlock(pending_lock)
	/* the message goes to user space; the handler may now copy the page too */
}

/* UFFDIO_COPY from another thread (pre-copy, a second handler): install, wake. */
proctype Waker()
{
	bool a, b, need;
	byte s;

	pte = 1;			/* PTE installed; smp_mb() is implied by SC */
#if USE_SEQ
again:
	atomic { (seq % 2) == 0 -> s = seq }	/* read_seqcount_begin() */
#endif
	a = pending;			/* waitqueue_active(&ctx->fault_pending_wqh) */
	b = refiled;			/* waitqueue_active(&ctx->fault_wqh) */
	need = a || b;
#if USE_SEQ
	if
	:: seq != s -> goto again	/* read_seqcount_retry() */
	:: else -> skip
	fi;
#endif
	if
	:: need ->			/* __wake_userfault(): both queues, under their locks */
		spin_lock(pending_lock);
		if
		:: pending -> pending = 0; asleep = 0
		:: else -> skip
		fi;
		spin_lock(fwq_lock);
		if
		:: refiled -> refiled = 0; asleep = 0
		:: else -> skip
		fi;
		spin_unlock(fwq_lock);
		spin_unlock(pending_lock)
	:: else -> skip
	fi;
	waker_done = 1
}

/* Nothing can wake the faulter once the only waker is gone. */
active proctype Monitor()
{
end:
	atomic { waker_done && asleep -> assert(false) }
}

init
{
	atomic {
		run Faulter();
		run Reader();
		run Waker()
	}
}

ltl fault_completes { <> fault_done }
