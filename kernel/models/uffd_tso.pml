/*
 * uffd_tso.pml - the userfaultfd lost-wakeup race on an x86-TSO machine.
 *
 * Two CPUs.  CPU 0 runs a thread that faults on a missing page
 * (handle_userfault()), CPU 1 runs the installer (UFFDIO_COPY: PTE store
 * under the PT lock, then wake_userfault()).  Memory follows x86-TSO: every
 * CPU owns a FIFO store buffer; a plain store goes into it, a load looks in
 * the own buffer first (store forwarding) and then in memory, a separate
 * Flusher process moves the oldest buffered store to memory whenever it
 * likes.  MFENCE and LOCK-prefixed read-modify-writes wait until the own
 * buffer is empty and then act on memory directly.
 *
 * The bug shape is store buffering (Dekker):
 *	faulter:   store WQ=1 ; full barrier ; load PTE   (==0 -> sleep)
 *	installer: store PTE=1 ; [barrier?] ; load WQ     (==0 -> no wake)
 * Both loads returning 0 leaves the faulter asleep although its page is
 * there, and nothing will ever wake it.
 *
 * Knobs (spin -DNAME=VALUE):
 *	WAKER_MB=1   smp_mb() at the top of wake_userfault() (the kernel's fix)
 *	SC=1         sequential consistency: no store buffers at all
 *	UNLOCK_RMW=1 a LOCK-prefixed RMW between the PTE store and the
 *	             waitqueue check (x86 up_read()/vma_end_read()/mmput())
 *
 * Properties: the Monitor asserts that the faulter never sits in schedule()
 * in TASK_INTERRUPTIBLE after the installer has finished; the ltl formula
 * fault_completes (check with pan -a) says the faulting access always
 * completes.
 */

#ifndef WAKER_MB
#define WAKER_MB 1
#endif
#ifndef SC
#define SC 0
#endif
#ifndef UNLOCK_RMW
#define UNLOCK_RMW 0
#endif

/* Memory locations. */
#define PTE	0	/* the page table entry of the faulting address */
#define WQ	1	/* fault_pending_wqh non-empty (waitqueue_active()) */
#define PTL	2	/* the PT spinlock */
#define WQL	3	/* fault_pending_wqh.lock */
#define TSTATE	4	/* the faulting task's __state: 0 RUNNING, 1 INTERRUPTIBLE */
#define SCRATCH	5	/* target of the RMW of UNLOCK_RMW (map_changing_lock) */
#define NLOC	6

#define NCPU	2
#define SBSZ	4	/* store buffer entries per CPU; more are never needed */

byte mem[NLOC];
byte sb_loc[NCPU * SBSZ];
byte sb_val[NCPU * SBSZ];
byte sb_len[NCPU];

bool in_schedule;	/* faulter called schedule() */
bool fault_done;	/* faulter returned VM_FAULT_RETRY and saw its page */
bool waker_done;	/* installer finished wake_userfault() */

/* A plain store: into the store buffer (TSO) or straight to memory (SC). */
inline st(cpu, loc, v)
{
#if SC
	mem[loc] = v
#else
	d_step {
		assert(sb_len[cpu] < SBSZ);
		sb_loc[cpu * SBSZ + sb_len[cpu]] = loc;
		sb_val[cpu * SBSZ + sb_len[cpu]] = v;
		sb_len[cpu]++
	}
#endif
}

/* A plain load with store forwarding: the newest own buffered store wins. */
inline ld(cpu, loc, r)
{
	d_step {
		r = mem[loc];
		i = 0;
		do
		:: i < sb_len[cpu] ->
			if
			:: sb_loc[cpu * SBSZ + i] == loc -> r = sb_val[cpu * SBSZ + i]
			:: else -> skip
			fi;
			i++
		:: else -> break
		od;
		i = 0
	}
}

/* MFENCE: wait until the Flusher has emptied this CPU's buffer. */
inline mfence(cpu)
{
	(sb_len[cpu] == 0)
}

/* spin_lock(): a LOCK CMPXCHG, so the buffer is empty when it succeeds. */
inline lock(cpu, l)
{
	atomic { sb_len[cpu] == 0 && mem[l] == 0 -> mem[l] = 1 }
}

/* spin_unlock() on x86 is a plain MOV: it goes through the buffer. */
inline unlock(cpu, l)
{
	st(cpu, l, 0)
}

/* A LOCK-prefixed RMW that writes v (XCHG, LOCK XADD): drains, then acts on memory. */
inline xchg(cpu, loc, v)
{
	atomic { sb_len[cpu] == 0 -> mem[loc] = v }
}

proctype Flusher(byte cpu)
{
	byte k;
end:
	do
	:: d_step {
		sb_len[cpu] > 0 ->
		mem[sb_loc[cpu * SBSZ]] = sb_val[cpu * SBSZ];
		k = 1;
		do
		:: k < sb_len[cpu] ->
			sb_loc[cpu * SBSZ + k - 1] = sb_loc[cpu * SBSZ + k];
			sb_val[cpu * SBSZ + k - 1] = sb_val[cpu * SBSZ + k];
			k++
		:: else -> break
		od;
		sb_len[cpu]--;
		sb_loc[cpu * SBSZ + sb_len[cpu]] = 0;
		sb_val[cpu * SBSZ + sb_len[cpu]] = 0;
		k = 0
	   }
	od
}

/* handle_userfault() on CPU 0 for a missing page. */
proctype Faulter()
{
	byte i, r;

	lock(0, WQL);			/* spin_lock_irq(&ctx->fault_pending_wqh.lock) */
	st(0, WQ, 1);			/* __add_wait_queue() */
	xchg(0, TSTATE, 1);		/* set_current_state(): smp_store_mb() = XCHG on x86 */
	unlock(0, WQL);			/* spin_unlock_irq() */

	ld(0, PTE, r);			/* userfaultfd_must_wait(): lockless PTE walk */
	if
	:: r == 0 ->
		in_schedule = 1;	/* schedule(): sleeps while __state != RUNNING */
		(mem[TSTATE] == 0);
		in_schedule = 0
	:: else ->
		st(0, TSTATE, 0);	/* __set_current_state(TASK_RUNNING) */
		lock(0, WQL);		/* not woken: take ourselves off the queue */
		st(0, WQ, 0);
		unlock(0, WQL)
	fi;

	/* VM_FAULT_RETRY: the access is retried; the page must be there now. */
	ld(0, PTE, r);
	assert(r == 1);
	fault_done = 1
}

/* UFFDIO_COPY on CPU 1: install the PTE, then wake_userfault(). */
proctype Installer()
{
	byte i, r;

	lock(1, PTL);			/* pte_offset_map_lock() */
	st(1, PTE, 1);			/* set_pte_at() */
	unlock(1, PTL);			/* pte_unmap_unlock(): release only */
#if UNLOCK_RMW
	xchg(1, SCRATCH, 1);		/* up_read(&ctx->map_changing_lock): LOCK XADD */
#endif
#if WAKER_MB
	mfence(1);			/* smp_mb() in wake_userfault() */
#endif
	ld(1, WQ, r);			/* waitqueue_active(&ctx->fault_pending_wqh) */
	if
	:: r == 1 ->			/* __wake_userfault() */
		lock(1, WQL);
		ld(1, WQ, r);
		if
		:: r == 1 ->
			st(1, WQ, 0);		/* autoremove wake function */
			xchg(1, TSTATE, 0)	/* try_to_wake_up() */
		:: else -> skip
		fi;
		unlock(1, WQL)
	:: else -> skip			/* "nobody waits": no wake */
	fi;
	waker_done = 1
}

/* A lost wakeup: asleep, page present, and no wake will ever come. */
active proctype Monitor()
{
end:
	atomic { in_schedule && mem[TSTATE] == 1 && waker_done -> assert(false) }
}

init
{
	atomic {
#if !SC
		run Flusher(0);
		run Flusher(1);
#endif
		run Faulter();
		run Installer()
	}
}

ltl fault_completes { <> fault_done }
