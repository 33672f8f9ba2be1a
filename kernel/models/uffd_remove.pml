/*
 * uffd_remove.pml - MADV_DONTNEED (UFFD_EVENT_REMOVE) against a page fill.
 *
 * One lazy page, still missing, whose daemon-side state says "fill from the
 * image".  The application calls madvise(MADV_DONTNEED) on it: after that
 * call returns, the page must read as zeros, never as the old image data.
 *
 * Kernel (userfaultfd_remove() and userfaultfd_event_wait_completion()):
 *	1. mmap_changing++ under down_write(map_changing_lock), which waits
 *	   for every UFFDIO_COPY already past its own check
 *	2. queue the REMOVE event, block until the manager has read() it
 *	3. mmap_changing--
 *	4. zap the range (a page copied in before this point is dropped)
 * UFFDIO_COPY checks mmap_changing and installs the PTE under
 * down_read(map_changing_lock): -EAGAIN while an event is unread, EEXIST
 * if the page is there.
 *
 * Daemon: a fill path (pre-copy or fault handler) decides from the page
 * state and then copies; an event path reads the event and marks the page
 * "removed" (later faults get a zero page, nobody copies image data).
 *
 * VARIANT 0  two threads, no serialisation                       (stale data)
 *         1  two threads; a rwlock held by the filler across check+copy,
 *            by the event reader only around the state update     (stale data)
 *         2  two threads; the event reader holds the write lock across
 *            read(uffd) and the state update                     (ok)
 *         3  one thread, like CRIU: events and fills in one loop; an
 *            EAGAIN copy goes back to the loop, which reads events first (ok)
 *         4  one thread that retries an EAGAIN copy on the spot: the event
 *            is never read, madvise() never returns             (livelock, pan -a)
 * In the two-thread variants the filler, after EAGAIN, waits until the
 * event queue has been drained and decides again.
 *
 * Properties: after madvise() returns and the daemon is done, the page is
 * not image data (assertion); madvise() returns (ltl madvise_returns).
 */

#ifndef VARIANT
#define VARIANT 2
#endif

#define NONE	0	/* pte_none: missing */
#define IMG	1	/* image data copied in by the daemon */

#define S_IMAGE		0	/* daemon state: fill from the image */
#define S_REMOVED	1	/* daemon state: discarded, zero on fault */

#define C_OK		0
#define C_EAGAIN	1
#define C_EEXIST	2

byte pte = NONE;
byte state = S_IMAGE;
byte mmap_changing;
bool ev_queued;		/* REMOVE event waiting in the uffd */
bool ev_read;		/* the manager has read it */
bool app_done;		/* madvise() returned */
byte daemon_done;	/* daemon threads finished */

byte readers;		/* the daemon's rwlock over the page state */
bool writer;

#if VARIANT >= 3
#define DAEMON_THREADS 1
#else
#define DAEMON_THREADS 2
#endif

inline read_lock()
{
	atomic { !writer -> readers++ }
}

inline read_unlock()
{
	readers--
}

inline write_lock()
{
	atomic { !writer && readers == 0 -> writer = 1 }
}

inline write_unlock()
{
	writer = 0
}

/* UFFDIO_COPY of the image page: the check and the install under the locks. */
inline uffdio_copy(res)
{
	atomic {
		if
		:: mmap_changing > 0 -> res = C_EAGAIN
		:: else ->
			if
			:: pte != NONE -> res = C_EEXIST
			:: else -> pte = IMG; res = C_OK
			fi
		fi
	}
}

/* read(uffd) returning the REMOVE event. */
inline read_event()
{
	atomic { ev_queued -> ev_queued = 0; ev_read = 1 }
}

proctype App()
{
	atomic { mmap_changing++; ev_queued = 1 }	/* userfaultfd_remove() */
	(ev_read);					/* event_wait_completion() */
	mmap_changing--;
	pte = NONE;					/* zap_page_range() */
	app_done = 1;
	(daemon_done == DAEMON_THREADS);
	assert(pte != IMG)				/* reads must see zeros */
}

#if VARIANT <= 2
proctype Filler()
{
	byte s, res;

again:
#if VARIANT >= 1
	read_lock();
#endif
	s = state;
	if
	:: s == S_IMAGE -> uffdio_copy(res)
	:: else -> res = C_OK	/* removed: nothing to copy (a fault would get a zero page) */
	fi;
#if VARIANT >= 1
	read_unlock();
#endif
	if
	:: res == C_EAGAIN ->
		(!ev_queued);	/* let the event path drain the uffd, then decide again */
		goto again
	:: else -> skip
	fi;
	daemon_done++
}

proctype EventReader()
{
#if VARIANT == 2
	(ev_queued);		/* poll() */
	write_lock();
	read_event();
	state = S_REMOVED;
	write_unlock();
#elif VARIANT == 1
	read_event();
	write_lock();
	state = S_REMOVED;
	write_unlock();
#else
	read_event();
	state = S_REMOVED;
#endif
	daemon_done++
}
#else
proctype Daemon()
{
	byte res;
	bool filled, seen_event;

	do
	:: ev_queued ->			/* events first */
		read_event();
		state = S_REMOVED;
		seen_event = 1
	:: !ev_queued && !filled ->
		if
		:: state == S_IMAGE ->
			uffdio_copy(res);
#if VARIANT == 4
			do
			:: res == C_EAGAIN -> uffdio_copy(res)	/* spin on the copy */
			:: else -> break
			od;
#endif
			filled = (res != C_EAGAIN)
		:: else -> filled = 1
		fi
	:: filled && seen_event -> break
	od;
	daemon_done++
}
#endif

init
{
	atomic {
		run App();
#if VARIANT <= 2
		run Filler();
		run EventReader()
#else
		run Daemon()
#endif
	}
}

ltl madvise_returns { <> app_done }
