// SPDX-License-Identifier: MIT
/*
 * lazypages check: can this machine serve a lazy (post-copy) restore, and if not, why not.
 *
 * criu restore creates the userfaultfd inside each restored task with
 * userfaultfd(O_CLOEXEC | O_NONBLOCK), asks UFFDIO_API for the event set it knows
 * (EVENT_FORK|REMAP|REMOVE|UNMAP, masked by what the kernel reports), registers the
 * lazy VMAs in MISSING mode and hands the fd to the daemon. This command repeats those
 * steps in the calling process, then serves two real faults (one taken by user code,
 * one inside a write(2)) to show the whole path works. Run it with the privileges
 * criu restore will have.
 */
#define LOG_PREFIX "check: "
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "uffd-abi.h"

#define FAULT_TIMEOUT_MS 2000

/* ------------------------------------------------------------------ names */

static const char *const feature_names[64] = {
	[0] = "PAGEFAULT_FLAG_WP",
	[1] = "EVENT_FORK",
	[2] = "EVENT_REMAP",
	[3] = "EVENT_REMOVE",
	[4] = "MISSING_HUGETLBFS",
	[5] = "MISSING_SHMEM",
	[6] = "EVENT_UNMAP",
	[7] = "SIGBUS",
	[8] = "THREAD_ID",
	[9] = "MINOR_HUGETLBFS",
	[10] = "MINOR_SHMEM",
	[11] = "EXACT_ADDRESS",
	[12] = "WP_HUGETLBFS_SHMEM",
	[13] = "WP_UNPOPULATED",
	[14] = "POISON",
	[15] = "WP_ASYNC",
	[16] = "MOVE",
};

/* The bit of each ioctl in uffdio_api.ioctls / uffdio_register.ioctls is its _IOC_NR. */
static const char *const ioctl_names[64] = {
	[_UFFDIO_REGISTER] = "REGISTER",
	[_UFFDIO_UNREGISTER] = "UNREGISTER",
	[_UFFDIO_WAKE] = "WAKE",
	[_UFFDIO_COPY] = "COPY",
	[_UFFDIO_ZEROPAGE] = "ZEROPAGE",
	[_UFFDIO_MOVE] = "MOVE",
	[_UFFDIO_WRITEPROTECT] = "WRITEPROTECT",
	[_UFFDIO_CONTINUE] = "CONTINUE",
	[_UFFDIO_POISON] = "POISON",
	[_UFFDIO_API] = "API",
};

/* Compile-time check that the table above matches the ABI header. */
_Static_assert(UFFD_FEATURE_MOVE == 1ULL << 16, "feature bits");
_Static_assert(UFFD_FEATURE_EVENT_UNMAP == 1ULL << 6, "feature bits");
_Static_assert(LP_UFFD_CRIU_FEATURES == 0x4e, "CRIU feature set");

#define RANGE_NEEDED ((1ULL << _UFFDIO_WAKE) | (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE))

/* "NAME NAME bitN" for the set bits of MASK, into BUF. */
static const char *bit_names(uint64_t mask, const char *const names[64], char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int b = 0; b < 64; b++) {
		if (!(mask & (1ULL << b)))
			continue;
		int n;
		if (names[b])
			n = snprintf(buf + off, len - off, "%s%s", off ? " " : "", names[b]);
		else
			n = snprintf(buf + off, len - off, "%sbit%d", off ? " " : "", b);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	if (!off)
		snprintf(buf, len, "(none)");
	return buf;
}

/* ----------------------------------------------------------------- report */

enum need {
	NEED_REQUIRED, /* lazy restore cannot work without it */
	NEED_WANTED,   /* works, but some processes cannot be restored lazily */
	NEED_INFO,     /* explains the other results */
};

enum status { ST_OK, ST_FAIL, ST_SKIP, ST_INFO };

static const char *const status_word[] = {"ok", "FAIL", "skip", "info"};

struct check {
	const char *name;  /* machine name */
	const char *title; /* what was tried */
	enum need need;
	enum status status;
	char detail[256];
	char fix[384];
};

enum check_id {
	C_SYSCALL,
	C_USER_MODE_ONLY,
	C_DEVICE,
	C_API,
	C_CRIU_FEATURES,
	C_REGISTER,
	C_FAULT,
	C_SYSCTL,
	NR_CHECKS
};

struct cap_info {
	const char *name;
	int value;
	const char *why;
	bool known; /* the running kernel has this capability */
	bool effective;
	bool permitted;
};

struct report {
	struct check c[NR_CHECKS];
	struct utsname uts;
	int sysctl;  /* vm.unprivileged_userfaultfd, -1 if absent */
	int seccomp; /* /proc/self/status Seccomp:, -1 unknown */
	bool userns; /* not in the initial user namespace: our capabilities do not count */
	bool have_api;
	uint64_t api, features, api_ioctls;
	bool have_range;
	uint64_t range_ioctls;
	const char *probe_fd; /* which kind of uffd the features come from */
	struct cap_info caps[4];
	int nr_caps;
	bool cap_ok; /* libcap could read our capabilities */
};

static void set(struct check *c, enum status st, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set(struct check *c, enum status st, const char *fix, const char *fmt, ...)
{
	va_list ap;

	c->status = st;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	snprintf(c->fix, sizeof(c->fix), "%s", fix ? fix : "");
}

static bool cap_effective(const struct report *r, int value)
{
	for (int i = 0; i < r->nr_caps; i++)
		if (r->caps[i].value == value)
			return r->caps[i].effective;
	return false;
}

/* ---------------------------------------------------------------- probing */

enum uffd_kind { UFFD_SYSCALL, UFFD_SYSCALL_UMO, UFFD_DEVICE };

static const char *const kind_name[] = {
	[UFFD_SYSCALL] = "userfaultfd(2)",
	[UFFD_SYSCALL_UMO] = "userfaultfd(2) UFFD_USER_MODE_ONLY",
	[UFFD_DEVICE] = "/dev/userfaultfd",
};

/* A new uffd of the given kind: fd, or -errno. */
static int open_uffd(enum uffd_kind kind)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd, dev;

	switch (kind) {
	case UFFD_SYSCALL:
		fd = lp_userfaultfd(flags);
		break;
	case UFFD_SYSCALL_UMO:
		fd = lp_userfaultfd(flags | UFFD_USER_MODE_ONLY);
		break;
	case UFFD_DEVICE:
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return -errno;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
		if (fd < 0) {
			int e = errno;
			close(dev);
			return -e;
		}
		close(dev);
		return fd;
	default:
		return -EINVAL;
	}
	return fd < 0 ? -errno : fd;
}

/* UFFDIO_API on FD: 0 or -errno; fills *api. */
static int uffd_api(int fd, uint64_t features, struct uffdio_api *api)
{
	memset(api, 0, sizeof(*api));
	api->api = UFFD_API;
	api->features = features;
	return ioctl(fd, UFFDIO_API, api) ? -errno : 0;
}

static int read_int_file(const char *path, int *val)
{
	FILE *f = fopen(path, "re");
	int ok;

	if (!f)
		return -errno;
	ok = fscanf(f, "%d", val) == 1;
	fclose(f);
	return ok ? 0 : -EINVAL;
}

static int seccomp_mode(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int mode = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	fclose(f);
	return mode;
}

/* The initial user namespace maps all 2^32 uids onto themselves. */
static bool in_user_namespace(void)
{
	FILE *f = fopen("/proc/self/uid_map", "re");
	unsigned long inner, outer, count;
	bool init_ns = false;

	if (!f)
		return false;
	if (fscanf(f, "%lu %lu %lu", &inner, &outer, &count) == 3)
		init_ns = inner == 0 && outer == 0 && count == 4294967295UL;
	fclose(f);
	return !init_ns;
}

static void probe_caps(struct report *r)
{
	static const struct {
		const char *name;
		int value;
		const char *why;
	} want[] = {
		{"CAP_SYS_PTRACE", CAP_SYS_PTRACE,
		 "userfaultfd(2) that handles kernel-mode faults while vm.unprivileged_userfaultfd=0 "
		 "(Linux >= 5.11), and UFFD_FEATURE_EVENT_FORK (Linux >= 5.4)"},
		{"CAP_SYS_ADMIN", CAP_SYS_ADMIN,
		 "criu restore itself: namespaces, mounts, PR_SET_MM_MAP, restoring pids"},
		{"CAP_SYS_RESOURCE", CAP_SYS_RESOURCE,
		 "criu restore of rlimits above the hard limit and prctl(PR_SET_MM) without "
		 "PR_SET_MM_MAP"},
#ifdef CAP_CHECKPOINT_RESTORE
		{"CAP_CHECKPOINT_RESTORE", CAP_CHECKPOINT_RESTORE,
		 "criu --unprivileged (Linux >= 5.9): choosing pids, map_files, the exe link"},
#endif
	};
	cap_t caps = cap_get_proc();
	int max = CAP_LAST_CAP;

#if defined(LIBCAP_MAJOR)
	max = (int)cap_max_bits() - 1;
#endif
	r->cap_ok = caps != NULL;
	if (!caps)
		pr_perror("cap_get_proc");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct cap_info *ci = &r->caps[r->nr_caps++];
		cap_flag_value_t v;

		ci->name = want[i].name;
		ci->value = want[i].value;
		ci->why = want[i].why;
		ci->known = want[i].value <= max;
		if (caps && ci->known) {
			ci->effective = !cap_get_flag(caps, want[i].value, CAP_EFFECTIVE, &v) &&
					v == CAP_SET;
			ci->permitted = !cap_get_flag(caps, want[i].value, CAP_PERMITTED, &v) &&
					v == CAP_SET;
		}
	}
	if (caps)
		cap_free(caps);
}

/* Why userfaultfd(2) without UFFD_USER_MODE_ONLY failed, and what to do about it. */
static void explain_syscall_error(const struct report *r, int err, char *fix, size_t len)
{
	/* userfaultfd checks CAP_SYS_PTRACE in the initial user namespace. */
	bool ptrace = cap_effective(r, CAP_SYS_PTRACE) && !r->userns;
	const char *sc =
		r->seccomp == 2
			? " A seccomp filter is active (Seccomp: 2): a container runtime may "
			  "block userfaultfd; allow it in the profile (docker/podman: "
			  "--security-opt seccomp=<profile allowing userfaultfd>)."
			: "";

	switch (err) {
	case EPERM:
		if (r->sysctl == 0 && r->userns)
			snprintf(fix, len,
				 "this process runs in a user namespace, where capabilities do not "
				 "count for userfaultfd: run criu restore in the initial user "
				 "namespace as root, or set vm.unprivileged_userfaultfd=1 on the "
				 "host.%s",
				 sc);
		else if (r->sysctl == 0 && !ptrace)
			snprintf(
				fix, len,
				"sysctl -w vm.unprivileged_userfaultfd=1, or run criu restore as root "
				"/ grant CAP_SYS_PTRACE (e.g. setcap cap_sys_ptrace+ep, or "
				"--cap-add SYS_PTRACE in a container).%s",
				sc);
		else
			snprintf(fix, len,
				 "permission is denied although %s; a seccomp filter or LSM policy "
				 "(SELinux/AppArmor) denies userfaultfd: allow it for criu.%s",
				 ptrace ? "CAP_SYS_PTRACE is effective"
					: "vm.unprivileged_userfaultfd allows it",
				 sc);
		break;
	case ENOSYS:
		snprintf(
			fix, len,
			"the kernel has no userfaultfd: lazy restore needs Linux >= 4.11 built with "
			"CONFIG_USERFAULTFD=y.%s",
			sc);
		break;
	case EMFILE:
	case ENFILE:
		snprintf(fix, len, "out of file descriptors: raise ulimit -n.");
		break;
	default:
		snprintf(fix, len, "unexpected error; see dmesg.%s", sc);
		break;
	}
}

static void check_open(struct report *r, enum uffd_kind kind, int *fd_out)
{
	static const enum check_id id[] = {
		[UFFD_SYSCALL] = C_SYSCALL,
		[UFFD_SYSCALL_UMO] = C_USER_MODE_ONLY,
		[UFFD_DEVICE] = C_DEVICE,
	};
	struct check *c = &r->c[id[kind]];
	int fd = open_uffd(kind);
	char fix[384];

	*fd_out = fd;
	if (fd >= 0) {
		switch (kind) {
		case UFFD_SYSCALL:
			set(c, ST_OK, NULL,
			    "works; handles faults in user code and inside syscalls");
			break;
		case UFFD_SYSCALL_UMO:
			set(c, ST_OK, NULL,
			    "works (not enough for a restore: faults taken inside syscalls are not "
			    "handled)");
			break;
		case UFFD_DEVICE:
			set(c, ST_OK, NULL, "works (criu restore does not use it)");
			break;
		}
		return;
	}
	switch (kind) {
	case UFFD_SYSCALL:
		explain_syscall_error(r, -fd, fix, sizeof(fix));
		set(c, ST_FAIL, fix, "%s", strerror(-fd));
		break;
	case UFFD_SYSCALL_UMO:
		if (-fd == EINVAL)
			set(c, ST_INFO, NULL, "not supported (flag added in Linux 5.11)");
		else
			set(c, ST_INFO, NULL, "%s", strerror(-fd));
		break;
	case UFFD_DEVICE:
		if (-fd == ENOENT)
			set(c, ST_INFO, NULL, "absent (added in Linux 6.1)");
		else if (-fd == EACCES || -fd == EPERM)
			set(c, ST_INFO,
			    "grant access to /dev/userfaultfd (udev rule or ACL) if a tool needs it; "
			    "criu restore does not use it",
			    "%s", strerror(-fd));
		else
			set(c, ST_INFO, NULL, "%s", strerror(-fd));
		break;
	}
}

/* UFFDIO_API with features 0 reports everything the kernel offers. */
static void check_api(struct report *r, int fd, enum uffd_kind kind)
{
	struct check *c = &r->c[C_API];
	struct uffdio_api api;
	int ret;

	ret = uffd_api(fd, 0, &api);
	if (ret) {
		set(c, ST_FAIL, "the kernel's userfaultfd is unusable; use Linux >= 4.11",
		    "UFFDIO_API(api=0x%llx): %s", (unsigned long long)UFFD_API, strerror(-ret));
		return;
	}
	r->have_api = true;
	r->api = api.api;
	r->features = api.features;
	r->api_ioctls = api.ioctls;
	r->probe_fd = kind_name[kind];
	set(c, ST_OK, NULL, "api 0x%llx, features 0x%llx (probed with %s)",
	    (unsigned long long)api.api, (unsigned long long)api.features, kind_name[kind]);
}

/* What criu restore would ask for: the four non-cooperative events the kernel offers. */
static void check_criu_features(struct report *r, enum uffd_kind kind)
{
	struct check *c = &r->c[C_CRIU_FEATURES];
	uint64_t want = LP_UFFD_CRIU_FEATURES & r->features;
	uint64_t missing = LP_UFFD_CRIU_FEATURES & ~r->features;
	char names[128], fix[384];
	struct uffdio_api api;
	int fd, ret;

	c->need = NEED_WANTED;
	if (!r->have_api) {
		set(c, ST_SKIP, NULL, "no UFFDIO_API");
		return;
	}
	fd = open_uffd(kind);
	if (fd < 0) {
		set(c, ST_SKIP, NULL, "cannot open a second uffd: %s", strerror(-fd));
		return;
	}
	ret = uffd_api(fd, want, &api);
	close(fd);
	if (ret == -EPERM && (want & UFFD_FEATURE_EVENT_FORK)) {
		/* criu restore asks for EVENT_FORK whenever the kernel reports it: it would fail. */
		c->need = NEED_REQUIRED;
		fd = open_uffd(kind);
		ret = fd < 0 ? fd : uffd_api(fd, want & ~UFFD_FEATURE_EVENT_FORK, &api);
		if (fd >= 0)
			close(fd);
		snprintf(
			fix, sizeof(fix),
			"UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE (Linux >= 5.4) and criu restore "
			"asks for it whenever the kernel offers it: run criu restore as root or grant "
			"CAP_SYS_PTRACE%s%s",
			r->userns ? " in the initial user namespace (criu issues this ioctl "
				    "through its usernsd helper)"
				  : "",
			ret ? "" : " (the other three events work)");
		set(c, ST_FAIL, fix, "UFFDIO_API(features=0x%" PRIx64 "): %s", want,
		    strerror(EPERM));
		return;
	}
	if (ret) {
		c->need = NEED_REQUIRED;
		set(c, ST_FAIL, "unexpected; see dmesg", "UFFDIO_API(features=0x%" PRIx64 "): %s",
		    want, strerror(-ret));
		return;
	}
	if (missing) {
		snprintf(fix, sizeof(fix),
			 "Linux >= 4.11 has all four events; without them processes that fork, "
			 "mremap, munmap or madvise(MADV_DONTNEED) lazy memory cannot be restored "
			 "lazily (criu check --feature uffd-noncoop fails)");
		set(c, ST_FAIL, fix, "kernel lacks %s",
		    bit_names(missing, feature_names, names, sizeof(names)));
		return;
	}
	set(c, ST_OK, NULL, "%s accepted",
	    bit_names(LP_UFFD_CRIU_FEATURES, feature_names, names, sizeof(names)));
}

/* Register an anonymous private range in MISSING mode, as the restorer does. */
static void check_register(struct report *r, int fd)
{
	struct check *c = &r->c[C_REGISTER];
	long page = sysconf(_SC_PAGESIZE);
	struct uffdio_register reg = {0};
	char names[160];
	void *area;

	if (!r->have_api) {
		set(c, ST_SKIP, NULL, "no UFFDIO_API");
		return;
	}
	area = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		pr_perror("mmap");
		set(c, ST_FAIL, "out of memory?", "mmap: %s", strerror(errno));
		return;
	}
	reg.range.start = (uintptr_t)area;
	reg.range.len = (uint64_t)page;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
		int e = errno;
		set(c, ST_FAIL, "unexpected; the kernel refuses anonymous memory (see dmesg)",
		    "UFFDIO_REGISTER: %s", strerror(e));
		munmap(area, (size_t)page);
		return;
	}
	r->have_range = true;
	r->range_ioctls = reg.ioctls;
	munmap(area, (size_t)page);
	if ((reg.ioctls & RANGE_NEEDED) != RANGE_NEEDED)
		set(c, ST_FAIL, "the daemon needs WAKE, COPY and ZEROPAGE: use Linux >= 4.11",
		    "range ioctls lack %s",
		    bit_names(RANGE_NEEDED & ~reg.ioctls, ioctl_names, names, sizeof(names)));
	else
		set(c, ST_OK, NULL, "WAKE COPY ZEROPAGE available");
}

/* ---------------------------------------------------- fault round trip */

struct fault_probe {
	char *area; /* two registered pages */
	size_t page;
	int pipe_wr;
	ssize_t written; /* write(2) from page 0: a fault inside the syscall */
	int write_err;
	unsigned char first_byte; /* a load from page 1: a fault in user code */
	atomic_bool done;
};

static void *faulting_thread(void *arg)
{
	struct fault_probe *fp = arg;

	fp->written = write(fp->pipe_wr, fp->area, 64);
	fp->write_err = fp->written < 0 ? errno : 0;
	fp->first_byte = *(volatile unsigned char *)(fp->area + fp->page);
	atomic_store(&fp->done, true);
	return NULL;
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Serve faults on FD until the thread is done; returns faults served or -errno. */
static int serve_faults(int fd, struct fault_probe *fp, const char *src, int *eexist)
{
	struct timespec t0;
	int served = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!atomic_load(&fp->done)) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		struct uffd_msg msg[4];
		ssize_t n;

		if (elapsed_ms(&t0) > FAULT_TIMEOUT_MS)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		n = read(fd, msg, sizeof(msg));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
			uint64_t addr = msg[i].arg.pagefault.address & ~(uint64_t)(fp->page - 1);
			struct uffdio_copy cp = {0};

			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			if (addr < (uintptr_t)fp->area ||
			    addr >= (uintptr_t)fp->area + 2 * fp->page)
				return -EFAULT;
			cp.dst = addr;
			cp.src = (uintptr_t)(src + (addr - (uintptr_t)fp->area));
			cp.len = fp->page;
			if (ioctl(fd, UFFDIO_COPY, &cp)) {
				if (errno != EEXIST)
					return -errno;
				(*eexist)++;
				struct uffdio_range wr = {.start = addr, .len = fp->page};
				ioctl(fd, UFFDIO_WAKE, &wr);
			}
			served++;
		}
	}
	return served;
}

static void check_fault(struct report *r, int fd, enum uffd_kind kind)
{
	struct check *c = &r->c[C_FAULT];
	struct fault_probe fp = {.page = (size_t)sysconf(_SC_PAGESIZE)};
	struct uffdio_register reg = {0};
	char *src = NULL, got[64];
	int pipefd[2] = {-1, -1}, served, eexist = 0, ret;
	pthread_t th;
	bool user_ok, kernel_ok;

	if (!r->have_api || !r->have_range) {
		set(c, ST_SKIP, NULL, "no usable uffd");
		return;
	}
	if (kind != UFFD_SYSCALL)
		c->need = NEED_INFO; /* criu restore would not get this far */

	fp.area =
		mmap(NULL, 2 * fp.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, 2 * fp.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fp.area == MAP_FAILED || src == MAP_FAILED) {
		pr_perror("mmap");
		set(c, ST_FAIL, "out of memory?", "mmap: %s", strerror(errno));
		goto out;
	}
	memset(src, 'K', fp.page);
	memset(src + fp.page, 'U', fp.page);
	snprintf(src, 64, "lazypages check: this page came through UFFDIO_COPY");
	if (pipe2(pipefd, O_CLOEXEC)) {
		pr_perror("pipe2");
		set(c, ST_FAIL, "raise ulimit -n", "pipe2: %s", strerror(errno));
		goto out;
	}
	reg.range.start = (uintptr_t)fp.area;
	reg.range.len = 2 * fp.page;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
		set(c, ST_FAIL, "unexpected; see dmesg", "UFFDIO_REGISTER: %s", strerror(errno));
		goto out;
	}
	fp.pipe_wr = pipefd[1];
	ret = pthread_create(&th, NULL, faulting_thread, &fp);
	if (ret) {
		errno = ret;
		pr_perror("pthread_create");
		set(c, ST_FAIL, "raise the thread limit", "pthread_create: %s", strerror(ret));
		goto out;
	}
	served = serve_faults(fd, &fp, src, &eexist);
	if (served < 0) {
		/* Unregistering wakes the thread; its retried access then gets a zero page. */
		ioctl(fd, UFFDIO_UNREGISTER, &reg.range);
	}
	pthread_join(th, NULL);
	if (served < 0) {
		set(c, ST_FAIL,
		    served == -ETIMEDOUT ? "faults are not delivered: check dmesg, seccomp and LSM "
					   "policies for ioctl/read on the uffd"
					 : "unexpected; see dmesg",
		    "%s", served == -ETIMEDOUT ? "no fault message within 2 s" : strerror(-served));
		goto out;
	}

	kernel_ok = fp.written == 64 && read(pipefd[0], got, sizeof(got)) == (ssize_t)sizeof(got) &&
		    !memcmp(got, src, sizeof(got));
	user_ok = fp.first_byte == 'U';
	if (user_ok && kernel_ok)
		set(c, ST_OK, NULL, "%d fault%s served (user code and inside write(2))%s", served,
		    served == 1 ? "" : "s", eexist ? ", EEXIST seen and woken" : "");
	else if (user_ok && kind == UFFD_SYSCALL_UMO)
		set(c, ST_FAIL,
		    "criu restore needs a uffd that handles faults inside syscalls: see the "
		    "userfaultfd(2) line",
		    "user-code fault served; the fault inside write(2) failed: %s (expected with "
		    "UFFD_USER_MODE_ONLY)",
		    fp.written < 0 ? strerror(fp.write_err) : "short write");
	else
		set(c, ST_FAIL, "unexpected; see dmesg",
		    "user-code fault %s, fault inside write(2) %s%s%s",
		    user_ok ? "ok" : "wrong data", kernel_ok ? "ok" : "failed",
		    fp.written < 0 ? ": " : "", fp.written < 0 ? strerror(fp.write_err) : "");
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (fp.area && fp.area != MAP_FAILED)
		munmap(fp.area, 2 * fp.page);
	if (src && src != MAP_FAILED)
		munmap(src, 2 * fp.page);
}

static void check_sysctl(struct report *r)
{
	struct check *c = &r->c[C_SYSCTL];
	bool ptrace = cap_effective(r, CAP_SYS_PTRACE) && !r->userns;

	if (r->sysctl < 0) {
		set(c, ST_INFO, NULL, "absent (before Linux 5.2 everybody may use userfaultfd)");
		return;
	}
	if (r->sysctl == 1) {
		set(c, ST_INFO, NULL, "1: anybody may create a uffd that handles kernel faults");
		return;
	}
	if (ptrace) {
		set(c, ST_INFO, NULL, "0: only CAP_SYS_PTRACE holders (we are one) get full uffds");
		return;
	}
	set(c, r->c[C_SYSCALL].status == ST_OK ? ST_INFO : ST_FAIL,
	    "sysctl -w vm.unprivileged_userfaultfd=1 (persist in /etc/sysctl.d/), or run criu "
	    "restore as root / with CAP_SYS_PTRACE",
	    "0: without CAP_SYS_PTRACE only UFFD_USER_MODE_ONLY uffds may be created");
}

/* -------------------------------------------------------------- output */

static const char *verdict_of(const struct report *r, int *exit_code)
{
	bool limited = false;

	for (int i = 0; i < NR_CHECKS; i++) {
		const struct check *c = &r->c[i];

		if (c->status != ST_FAIL)
			continue;
		if (c->need == NEED_REQUIRED) {
			*exit_code = 1;
			return "no";
		}
		if (c->need == NEED_WANTED)
			limited = true;
	}
	*exit_code = 0;
	return limited ? "limited" : "ok";
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_names(FILE *f, uint64_t mask, const char *const names[64])
{
	bool first = true;

	fputc('[', f);
	for (int b = 0; b < 64; b++) {
		char tmp[16];

		if (!(mask & (1ULL << b)))
			continue;
		if (!names[b])
			snprintf(tmp, sizeof(tmp), "bit%d", b);
		fputs(first ? "" : ", ", f);
		json_str(f, names[b] ? names[b] : tmp);
		first = false;
	}
	fputc(']', f);
}

static void print_json(const struct report *r, const char *verdict)
{
	FILE *f = stdout;

	fprintf(f, "{\n  \"kernel\": ");
	json_str(f, r->uts.release);
	fprintf(f, ",\n  \"machine\": ");
	json_str(f, r->uts.machine);
	fprintf(f, ",\n  \"uid\": %u,\n  \"unprivileged_userfaultfd\": ", (unsigned)geteuid());
	if (r->sysctl < 0)
		fprintf(f, "null");
	else
		fprintf(f, "%d", r->sysctl);
	fprintf(f, ",\n  \"seccomp\": %d,\n  \"user_namespace\": %s,\n", r->seccomp,
		r->userns ? "true" : "false");
	if (r->have_api) {
		fprintf(f, "  \"api\": %" PRIu64 ",\n  \"probed_with\": ", r->api);
		json_str(f, r->probe_fd);
		fprintf(f, ",\n  \"features_mask\": \"0x%" PRIx64 "\",\n  \"features\": ",
			r->features);
		json_names(f, r->features, feature_names);
		fprintf(f, ",\n  \"ioctls\": {\"api_mask\": \"0x%" PRIx64 "\", \"api\": ",
			r->api_ioctls);
		json_names(f, r->api_ioctls, ioctl_names);
		if (r->have_range) {
			fprintf(f, ", \"range_mask\": \"0x%" PRIx64 "\", \"range\": ",
				r->range_ioctls);
			json_names(f, r->range_ioctls, ioctl_names);
		} else {
			fprintf(f, ", \"range_mask\": null, \"range\": null");
		}
		fprintf(f, "},\n");
	} else {
		fprintf(f, "  \"api\": null,\n  \"features_mask\": null,\n  \"features\": null,\n"
			   "  \"ioctls\": null,\n");
	}
	fprintf(f, "  \"capabilities\": {");
	for (int i = 0; i < r->nr_caps; i++) {
		const struct cap_info *ci = &r->caps[i];

		fprintf(f, "%s\n    ", i ? "," : "");
		json_str(f, ci->name);
		fprintf(f, ": {\"effective\": %s, \"permitted\": %s, \"known\": %s, \"why\": ",
			ci->effective ? "true" : "false", ci->permitted ? "true" : "false",
			ci->known ? "true" : "false");
		json_str(f, ci->why);
		fputc('}', f);
	}
	fprintf(f, "\n  },\n  \"checks\": [");
	for (int i = 0; i < NR_CHECKS; i++) {
		const struct check *c = &r->c[i];
		static const char *const need[] = {"required", "wanted", "info"};

		fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
		json_str(f, c->name);
		fprintf(f, ", \"title\": ");
		json_str(f, c->title);
		fprintf(f, ", \"need\": \"%s\", \"status\": \"%s\", \"ok\": %s, \"detail\": ",
			need[c->need], c->status == ST_FAIL ? "fail" : status_word[c->status],
			c->status == ST_FAIL ? "false" : "true");
		json_str(f, c->detail);
		fprintf(f, ", \"fix\": ");
		if (c->fix[0])
			json_str(f, c->fix);
		else
			fprintf(f, "null");
		fputc('}', f);
	}
	fprintf(f, "\n  ],\n  \"verdict\": \"%s\"\n}\n", verdict);
}

static void print_text(const struct report *r, const char *verdict)
{
	char names[512];

	printf("lazypages check: can this machine serve a lazy (post-copy) restore?\n\n");
	printf("kernel %s %s, euid %u%s, seccomp %s\n\n", r->uts.release, r->uts.machine,
	       (unsigned)geteuid(), r->userns ? " (in a user namespace)" : "",
	       r->seccomp == 0	 ? "off"
	       : r->seccomp == 1 ? "strict"
	       : r->seccomp == 2 ? "filter"
				 : "unknown");
	for (int i = 0; i < NR_CHECKS; i++) {
		const struct check *c = &r->c[i];

		printf("  %-4s  %-42s %s\n", status_word[c->status], c->title, c->detail);
		if (c->status == ST_FAIL && c->fix[0])
			printf("        fix: %s\n", c->fix);
		else if (c->status != ST_OK && c->fix[0])
			printf("        note: %s\n", c->fix);
	}
	if (r->have_api) {
		printf("\nfeatures 0x%" PRIx64 ": %s\n", r->features,
		       bit_names(r->features, feature_names, names, sizeof(names)));
		printf("api ioctls 0x%" PRIx64 ": %s\n", r->api_ioctls,
		       bit_names(r->api_ioctls, ioctl_names, names, sizeof(names)));
	}
	if (r->have_range)
		printf("range ioctls (anonymous, MISSING) 0x%" PRIx64 ": %s\n", r->range_ioctls,
		       bit_names(r->range_ioctls, ioctl_names, names, sizeof(names)));
	printf("\ncapabilities (effective)%s%s:\n", r->cap_ok ? "" : " [libcap failed]",
	       r->userns ? ", inside a user namespace: they do not count for userfaultfd" : "");
	for (int i = 0; i < r->nr_caps; i++) {
		const struct cap_info *ci = &r->caps[i];

		printf("  %-22s %-4s %s\n", ci->name,
		       !ci->known      ? "n/a"
		       : ci->effective ? "yes"
				       : "no",
		       ci->why);
	}
	printf("\nverdict: %s - %s\n", verdict,
	       !strcmp(verdict, "ok") ? "lazy restore can work on this machine"
	       : !strcmp(verdict, "limited")
		       ? "lazy restore works, but not for every process"
		       : "lazy restore cannot work here; apply the fixes above");
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lazypages check [--json]\n\n"
		"Tell whether this machine can serve a lazy (post-copy) restore, and what to\n"
		"change if it cannot. Run it with the privileges criu restore will have: it\n"
		"opens a userfaultfd the way criu restore does, lists the kernel's features and\n"
		"ioctls, asks for CRIU's events, registers memory and serves two real faults.\n\n"
		"  --json      one JSON object: features, ioctls, capabilities, checks, verdict\n"
		"  -h, --help  this text\n\n"
		"Exit status: 0 verdict ok or limited, 1 lazy restore cannot work, 2 usage.\n");
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const struct {
		const char *name, *title;
		enum need need;
	} defs[NR_CHECKS] = {
		[C_SYSCALL] = {"userfaultfd", "userfaultfd(2), as criu restore opens it",
			       NEED_REQUIRED},
		[C_USER_MODE_ONLY] = {"userfaultfd_user_mode_only",
				      "userfaultfd(2) with UFFD_USER_MODE_ONLY", NEED_INFO},
		[C_DEVICE] = {"dev_userfaultfd", "/dev/userfaultfd (USERFAULTFD_IOC_NEW)",
			      NEED_INFO},
		[C_API] = {"uffdio_api", "UFFDIO_API handshake", NEED_REQUIRED},
		[C_CRIU_FEATURES] = {"criu_features", "CRIU's event set 0x4e", NEED_WANTED},
		[C_REGISTER] = {"register_anon", "register anonymous memory, MISSING mode",
				NEED_REQUIRED},
		[C_FAULT] = {"fault_round_trip", "serve faults (user code, inside a syscall)",
			     NEED_REQUIRED},
		[C_SYSCTL] = {"unprivileged_userfaultfd", "vm.unprivileged_userfaultfd", NEED_INFO},
	};
	struct report *r;
	int fds[3], probe = -1, opt, code;
	enum uffd_kind kind = UFFD_SYSCALL;
	bool json = false;
	const char *verdict;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lazypages check: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	r = calloc(1, sizeof(*r));
	if (!r) {
		pr_perror("calloc");
		return 1;
	}
	for (int i = 0; i < NR_CHECKS; i++) {
		r->c[i].name = defs[i].name;
		r->c[i].title = defs[i].title;
		r->c[i].need = defs[i].need;
		set(&r->c[i], ST_SKIP, NULL, "not run");
	}
	uname(&r->uts);
	if (read_int_file("/proc/sys/vm/unprivileged_userfaultfd", &r->sysctl))
		r->sysctl = -1;
	r->seccomp = seccomp_mode();
	r->userns = in_user_namespace();
	probe_caps(r);

	check_open(r, UFFD_SYSCALL, &fds[UFFD_SYSCALL]);
	check_open(r, UFFD_SYSCALL_UMO, &fds[UFFD_SYSCALL_UMO]);
	check_open(r, UFFD_DEVICE, &fds[UFFD_DEVICE]);

	/* Features and ioctls from the best uffd we could get: the one criu uses first. */
	for (int k = UFFD_SYSCALL; k <= UFFD_DEVICE; k++) {
		static const enum uffd_kind order[] = {UFFD_SYSCALL, UFFD_DEVICE, UFFD_SYSCALL_UMO};
		if (fds[order[k]] >= 0) {
			kind = order[k];
			probe = fds[kind];
			break;
		}
	}
	if (probe >= 0) {
		check_api(r, probe, kind);
		check_criu_features(r, kind);
		check_register(r, probe);
		check_fault(r, probe, kind);
	} else {
		set(&r->c[C_API], ST_FAIL, "see the userfaultfd(2) line",
		    "no uffd could be opened");
	}
	check_sysctl(r);

	for (int k = UFFD_SYSCALL; k <= UFFD_DEVICE; k++)
		if (fds[k] >= 0)
			close(fds[k]);

	verdict = verdict_of(r, &code);
	if (json)
		print_json(r, verdict);
	else
		print_text(r, verdict);
	fflush(stdout);
	free(r);
	return code;
}
