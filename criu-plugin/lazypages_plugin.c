// SPDX-License-Identifier: MIT
/*
 * lazypages_plugin.so: a CRIU plugin that starts `lazypages daemon` for a lazy restore.
 *
 * `criu restore --lazy-pages` connects to lazy-pages.socket in its work dir and aborts when
 * nothing listens there. Loaded into CRIU (its plugin dir, --libdir DIR or CRIU_LIBS_DIR),
 * this plugin starts the daemon when the restore needs one and none is running:
 *
 *  1. init(CR_PLUGIN_STAGE__RESTORE) runs after CRIU chdir()ed to the work dir and before
 *     it connects to the socket (CRIU 3.17.1, cr_restore_tasks()).
 *  2. Is the restore lazy? The plugin API (0.2) has no accessor for CRIU's options, so the
 *     plugin reads command lines (see detect_lazy()): CRIU's own for `criu restore
 *     --lazy-pages`; for an RPC restore (`criu swrk`, as runc runs it) its parent's, where
 *     runc has `restore --lazy-pages`. LAZYPAGES_PLUGIN=lazy|off overrides the guess.
 *  3. Does a daemon already listen on ./lazy-pages.socket? A connect() would be accepted
 *     as *the* restore connection (the daemon accepts exactly one), so the plugin never
 *     connects: it asks the kernel which UNIX sockets listen (sock_diag, matching the
 *     socket file's device and inode; /proc/net/unix when sock_diag is unavailable).
 *  4. If none: start `lazypages daemon -D IMAGES -W WORKDIR --status-fd 3 -o LOG -vN`
 *     double-forked (CRIU aborts a restore when one of its direct children exits) in a
 *     session of its own, and wait for its readiness byte (LAZYPAGES_PLUGIN_TIMEOUT
 *     seconds, default 30). The log goes next to CRIU's log file (lazy-pages.log).
 *     Under runc (RPC), criu runs in the new container's cgroup: the daemon moves to the
 *     cgroup of criu's parent, so that the container's memory limit, freezer and `runc
 *     kill --all` / `runc delete -f` leave it alone (cgroup v2).
 *  5. exit(): if the restore ended without connecting (it failed early, or was not lazy
 *     after all), stop the daemon this plugin started instead of leaving it waiting.
 *
 * Environment (CRIU passes its environment on; runc passes its own to `criu swrk`):
 *   LAZYPAGES_BIN            the lazypages binary (default: LP_BINDIR/lazypages, then PATH)
 *   LAZYPAGES_PLUGIN         auto (default) | lazy (always start a daemon) | off
 *   LAZYPAGES_PAGE_SERVER    ADDR:PORT: the daemon fetches pages from this page server
 *                            (lazy migration: `criu dump --lazy-pages --port P` on the source)
 *   LAZYPAGES_DAEMON_ARGS    more daemon options, split on blanks (e.g. "--fill-threads 2")
 *   LAZYPAGES_LOG_FILE       the daemon's log file (default: next to CRIU's log)
 *   LAZYPAGES_PLUGIN_TIMEOUT seconds to wait for the daemon to listen (default 30)
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criu/criu-plugin.h>

#ifndef LP_BINDIR
#define LP_BINDIR "/usr/local/bin"
#endif

#define PLUGIN_NAME   "lazypages"
#define SOCK_NAME     "lazy-pages.socket"
#define DAEMON_LOG    "lazy-pages.log"
#define STATUS_FD     3
#define MAX_ARGS      64
#define CMDLINE_MAX   65536
#define TCP_LISTEN_ST 10

/* CRIU's log levels (criu/include/log.h), for print_on_level(). */
enum { L_MSG, L_ERROR, L_WARN, L_INFO, L_DEBUG };

/*
 * Exported by the criu binary. Weak, so that the plugin also loads into a program that is
 * not CRIU (a test harness); each use checks for NULL.
 */
extern void print_on_level(unsigned int loglevel, const char *format, ...)
	__attribute__((weak, format(printf, 2, 3)));
extern unsigned int log_get_loglevel(void) __attribute__((weak));
extern int log_get_fd(void) __attribute__((weak));
extern int criu_get_image_dir(void) __attribute__((weak));

/* What init() did, for exit(). Only the criu process that ran init() acts on it. */
static struct {
	pid_t owner;	/* the criu process */
	pid_t daemon;	/* the daemon this plugin started (its session), or 0 */
	dev_t sock_dev; /* its socket file */
	ino_t sock_ino;
	bool rpc; /* CRIU serves an RPC request (runc) */
	char log[PATH_MAX];
} st;

static void plog(unsigned int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plog(unsigned int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (print_on_level)
		print_on_level(level, "lazypages-plugin: %s%s\n", level == L_ERROR ? "Error: " : "",
			       buf);
	else if (level <= L_WARN)
		fprintf(stderr, "lazypages-plugin: %s%s\n", level == L_ERROR ? "Error: " : "", buf);
}

/* out = a/b; -ENAMETOOLONG when it does not fit */
static int path_join(char *out, size_t size, const char *a, const char *b)
{
	int n = snprintf(out, size, "%s/%s", a, b);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* ---- is this restore lazy? ----------------------------------------------------------- */

/* Reads /proc/PID/cmdline into buf (NUL-separated); returns its length or -errno. */
static ssize_t read_cmdline(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n, len = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((size_t)len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

/* Does S have W as a blank-separated word? */
static bool has_word(const char *s, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = strstr(s, w); p; p = strstr(p + 1, w))
		if ((p == s || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
	return false;
}

/* Splits a cmdline buffer into argv (at most max - 1 entries, NULL-terminated). */
static int split_cmdline(char *buf, ssize_t len, char **argv, int max)
{
	int argc = 0;

	for (ssize_t i = 0; i < len && argc < max - 1; i += strlen(buf + i) + 1)
		argv[argc++] = buf + i;
	argv[argc] = NULL;
	return argc;
}

/*
 * CRIU parses its options with getopt_long(), which also takes an unambiguous prefix
 * ("--lazy" is the shortest that is not also --libdir or --log-file).
 */
static bool criu_arg_is_lazy(const char *a)
{
	static const char opt[] = "--lazy-pages";
	size_t n = strlen(a);

	return n >= 6 && n <= sizeof(opt) - 1 && !strncmp(a, opt, n);
}

/* runc (Go, urfave/cli): -lazy-pages, --lazy-pages, --lazy-pages=true|1|t; not =false. */
static bool go_arg_is_lazy(const char *a)
{
	const char *v;

	if (*a++ != '-')
		return false;
	if (*a == '-')
		a++;
	if (strncmp(a, "lazy-pages", 10))
		return false;
	v = a + 10;
	if (!*v)
		return true;
	if (*v++ != '=')
		return false;
	return !strcmp(v, "1") || !strcasecmp(v, "t") || !strcasecmp(v, "true");
}

/*
 * Decides whether this `criu restore` is lazy. Returns 1 (lazy), 0 (not lazy) and says
 * why in why[].
 *   LAZYPAGES_PLUGIN=lazy|on|force  lazy;   =off|0|no  not lazy (the plugin stays idle)
 *   criu ... restore ... --lazy-pages   (the CRIU command line)
 *   RPC: `criu swrk N` serves one request of its parent, whose options we cannot read
 *     (CRIU has by then overwritten its command line with "restore --rpc -D DIR"); the
 *     parent's command line tells: runc's `restore --lazy-pages` (or -lazy-pages,
 *     --lazy-pages=true). libcriu callers and `criu service` (whose request runs in a
 *     child of the service) must set LAZYPAGES_PLUGIN=lazy.
 */
static int detect_lazy(char *why, size_t whysz)
{
	static char buf[CMDLINE_MAX];
	char *argv[4096];
	const char *mode = getenv("LAZYPAGES_PLUGIN");
	bool rpc = false;
	ssize_t len;
	int argc;

	if (mode && *mode && strcmp(mode, "auto")) {
		if (!strcmp(mode, "lazy") || !strcmp(mode, "on") || !strcmp(mode, "force") ||
		    !strcmp(mode, "1")) {
			snprintf(why, whysz, "LAZYPAGES_PLUGIN=%s", mode);
			return 1;
		}
		if (!strcmp(mode, "off") || !strcmp(mode, "0") || !strcmp(mode, "no")) {
			snprintf(why, whysz, "LAZYPAGES_PLUGIN=%s", mode);
			return 0;
		}
		plog(L_WARN, "LAZYPAGES_PLUGIN=%s is not auto, lazy or off: using auto", mode);
	}

	len = read_cmdline(getpid(), buf, sizeof(buf));
	if (len < 0) {
		snprintf(why, whysz,
			 "cannot read /proc/self/cmdline (%s); set LAZYPAGES_PLUGIN=lazy to start "
			 "a daemon anyway",
			 strerror((int)-len));
		return 0;
	}
	argc = split_cmdline(buf, len, argv, (int)(sizeof(argv) / sizeof(argv[0])));
	/* before the request: criu swrk N; serving it: one string "restore --rpc -D DIR" */
	for (int i = 0; i < argc && !rpc; i++)
		rpc = has_word(argv[i], "--rpc") || (i == 1 && !strcmp(argv[i], "swrk"));
	st.rpc = rpc;
	if (rpc) {
		pid_t ppid = getppid();
		char comm[64] = "?";

		len = read_cmdline(ppid, buf, sizeof(buf));
		if (len < 0) {
			snprintf(
				why, whysz,
				"criu RPC: cannot read the command line of its parent (pid %d: %s); "
				"set LAZYPAGES_PLUGIN=lazy to start a daemon anyway",
				(int)ppid, strerror((int)-len));
			return 0;
		}
		argc = split_cmdline(buf, len, argv, (int)(sizeof(argv) / sizeof(argv[0])));
		if (argc > 0)
			snprintf(comm, sizeof(comm), "%s", argv[0]);
		for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
			if (go_arg_is_lazy(argv[i])) {
				snprintf(why, whysz, "criu RPC: its parent (pid %d, %s) has %s",
					 (int)ppid, comm, argv[i]);
				return 1;
			}
		}
		snprintf(why, whysz,
			 "criu RPC: its parent (pid %d, %s) has no --lazy-pages option (the "
			 "options of a libcriu caller or of `criu service` are not visible: set "
			 "LAZYPAGES_PLUGIN=lazy)",
			 (int)ppid, comm);
		return 0;
	}
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (criu_arg_is_lazy(argv[i])) {
			snprintf(why, whysz, "criu command line has %s", argv[i]);
			return 1;
		}
	}
	snprintf(why, whysz, "no --lazy-pages on the criu command line");
	return 0;
}

/* ---- does a daemon listen? ----------------------------------------------------------- */

/*
 * sock_diag: is a listening UNIX socket bound to the file with this device and inode?
 * Returns 1 yes, 0 no, -errno when sock_diag cannot answer (no unix_diag module). With a
 * listener, *pending = connections waiting in its accept queue.
 */
static int diag_listener(dev_t dev, ino_t ino, int *pending)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg = {
		.nlh = {.nlmsg_len = sizeof(msg),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			.nlmsg_seq = 1},
		.req = {.sdiag_family = AF_UNIX,
			.udiag_states = 1U << TCP_LISTEN_ST,
			.udiag_show = UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN},
	};
	struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
	long buf[8192 / sizeof(long)];
	int fd, found = 0, ret = -EIO;

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			goto out;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct unix_diag_msg *m;
			struct rtattr *a;
			int alen, queued = -1;
			bool match = false;

			if (h->nlmsg_type == NLMSG_DONE) {
				ret = found;
				goto out;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				ret = e->error ? e->error : -EIO;
				goto out;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
				continue;
			m = NLMSG_DATA(h);
			alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
			for (a = (struct rtattr *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
				if (a->rta_type == UNIX_DIAG_VFS) {
					struct unix_diag_vfs *v = RTA_DATA(a);
					/* the superblock's s_dev: major << 20 | minor */
					unsigned int kmaj = v->udiag_vfs_dev >> 20;
					unsigned int kmin = v->udiag_vfs_dev & 0xfffff;

					match = v->udiag_vfs_ino == ino && kmaj == major(dev) &&
						kmin == minor(dev);
				} else if (a->rta_type == UNIX_DIAG_RQLEN) {
					struct unix_diag_rqlen *q = RTA_DATA(a);

					queued = (int)q->udiag_rqueue;
				}
			}
			if (match) {
				found = 1;
				if (pending)
					*pending = queued;
			}
		}
	}
out:
	close(fd);
	return ret;
}

/* Is socket inode SKINO held by a process whose cwd + REL is PATH? (for relative binds) */
static bool owner_resolves(unsigned long skino, const char *rel, const char *path)
{
	char want[64], p[PATH_MAX], l[PATH_MAX];
	struct dirent *pe, *fe;
	bool hit = false;
	DIR *proc, *fds;

	snprintf(want, sizeof(want), "socket:[%lu]", skino);
	proc = opendir("/proc");
	if (!proc)
		return false;
	while (!hit && (pe = readdir(proc))) {
		if (!isdigit((unsigned char)pe->d_name[0]))
			continue;
		snprintf(p, sizeof(p), "/proc/%s/fd", pe->d_name);
		fds = opendir(p);
		if (!fds)
			continue;
		while ((fe = readdir(fds))) {
			ssize_t n;

			snprintf(p, sizeof(p), "/proc/%s/fd/%s", pe->d_name, fe->d_name);
			n = readlink(p, l, sizeof(l) - 1);
			if (n < 0)
				continue;
			l[n] = '\0';
			if (strcmp(l, want))
				continue;
			snprintf(p, sizeof(p), "/proc/%s/cwd", pe->d_name);
			n = readlink(p, l, sizeof(l) - 1);
			if (n > 0) {
				l[n] = '\0';
				hit = !path_join(p, sizeof(p), l, rel) && !strcmp(p, path);
			}
			break;
		}
		closedir(fds);
	}
	closedir(proc);
	return hit;
}

/*
 * /proc/net/unix: a listening socket (flag __SO_ACCEPTCON) bound to PATH, either by its
 * absolute name or relative to the cwd of the process holding it. Returns 1, 0 or -errno.
 */
static int procfs_listener(const char *path)
{
	char line[PATH_MAX + 128];
	FILE *f = fopen("/proc/net/unix", "re");
	int found = 0;

	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) { /* header */
		fclose(f);
		return -EIO;
	}
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned int ref, proto, flags, type, state;
		unsigned long skino;
		char name[PATH_MAX];
		const char *base;

		name[0] = '\0';
		if (sscanf(line, "%*s %x %x %x %x %x %lu %4095s", &ref, &proto, &flags, &type,
			   &state, &skino, name) < 7)
			continue;
		if (!(flags & 0x10000) || name[0] == '@')
			continue;
		if (name[0] == '/') {
			found = !strcmp(name, path);
			continue;
		}
		base = strrchr(name, '/');
		base = base ? base + 1 : name;
		if (!strcmp(base, SOCK_NAME))
			found = owner_resolves(skino, name, path);
	}
	fclose(f);
	return found;
}

/*
 * Does a daemon listen on PATH (./lazy-pages.socket)? 1 yes, 0 no. Never connects: the
 * daemon accepts exactly one connection, and it must be CRIU's. *pending (if asked): the
 * connections not accepted yet, -1 when unknown (no sock_diag).
 */
static int listener_on(const char *path, dev_t *dev, ino_t *ino, int *pending)
{
	struct stat s;
	int r;

	if (pending)
		*pending = -1;
	if (lstat(path, &s)) {
		if (errno != ENOENT)
			plog(L_WARN, "cannot stat %s: %s", path, strerror(errno));
		return 0;
	}
	if (!S_ISSOCK(s.st_mode))
		return 0;
	if (dev)
		*dev = s.st_dev;
	if (ino)
		*ino = s.st_ino;
	/* LAZYPAGES_PLUGIN_NO_DIAG=1: the /proc/net/unix path only (for the plugin's tests) */
	r = getenv("LAZYPAGES_PLUGIN_NO_DIAG") ? -ENOSYS
					       : diag_listener(s.st_dev, s.st_ino, pending);
	if (r >= 0)
		return r;
	plog(L_DEBUG, "sock_diag cannot list UNIX sockets (%s): reading /proc/net/unix",
	     strerror(-r));
	r = procfs_listener(path);
	if (r >= 0)
		return r;
	plog(L_WARN,
	     "cannot tell whether a daemon listens on %s (/proc/net/unix: %s): "
	     "assuming none",
	     path, strerror(-r));
	return 0;
}

/* ---- starting the daemon ------------------------------------------------------------- */

/* PID's cgroup v2 path ("0::PATH" in /proc/PID/cgroup), or -ENOENT */
static int cgroup2_of(pid_t pid, char *out, size_t size)
{
	char p[64], line[PATH_MAX + 8];
	int ret = -ENOENT, n;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
	f = fopen(p, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		n = snprintf(out, size, "%s", line + 3);
		ret = n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
		break;
	}
	fclose(f);
	return ret;
}

/*
 * Under runc, criu (and so the daemon it starts) runs in the restored container's cgroup.
 * Move the daemon (before it forks its server) to the cgroup of criu's parent. Best effort.
 */
static void leave_container_cgroup(pid_t daemon)
{
	static const char *const roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	char mine[PATH_MAX], theirs[PATH_MAX], procs[PATH_MAX + 64], pid[16];
	int fd = -1, n;

	if (cgroup2_of(getpid(), mine, sizeof(mine)) ||
	    cgroup2_of(getppid(), theirs, sizeof(theirs)) || !strcmp(mine, theirs))
		return;
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]) && fd < 0; i++) {
		snprintf(procs, sizeof(procs), "%s%s/cgroup.procs", roots[i], theirs);
		fd = open(procs, O_WRONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		plog(L_WARN, "the daemon stays in criu's cgroup %s (cannot open %s: %s)", mine,
		     procs, strerror(errno));
		return;
	}
	n = snprintf(pid, sizeof(pid), "%d", (int)daemon);
	if (write(fd, pid, n) != n)
		plog(L_WARN, "the daemon stays in criu's cgroup %s (writing %s: %s)", mine, procs,
		     strerror(errno));
	else
		plog(L_INFO,
		     "moved the daemon from cgroup %s (the container's) to %s (criu's "
		     "parent's)",
		     mine, theirs);
	close(fd);
}

static bool executable(const char *p)
{
	struct stat s;

	return !stat(p, &s) && S_ISREG(s.st_mode) && !access(p, X_OK);
}

/* LAZYPAGES_BIN, else LP_BINDIR/lazypages, else PATH. Returns 0 or -ENOENT (reported). */
static int find_binary(char *out, size_t size)
{
	const char *env = getenv("LAZYPAGES_BIN"), *path = getenv("PATH");

	if (env && *env) {
		if (executable(env)) {
			snprintf(out, size, "%s", env);
			return 0;
		}
		plog(L_ERROR,
		     "LAZYPAGES_BIN=%s is not an executable file: point it at the "
		     "lazypages binary, or unset it to use %s/lazypages or PATH",
		     env, LP_BINDIR);
		return -ENOENT;
	}
	snprintf(out, size, "%s/lazypages", LP_BINDIR);
	if (executable(out))
		return 0;
	while (path && *path) {
		const char *end = strchrnul(path, ':');
		int n = (int)(end - path);

		if (n > 0 && (size_t)n + sizeof("/lazypages") <= size) {
			snprintf(out, size, "%.*s/lazypages", n, path);
			if (executable(out))
				return 0;
		}
		path = *end ? end + 1 : end;
	}
	plog(L_ERROR,
	     "cannot find the lazypages binary (not in %s, not in PATH=%s): install "
	     "lazypages (make install) or set LAZYPAGES_BIN=/path/to/lazypages",
	     LP_BINDIR, getenv("PATH") ? getenv("PATH") : "");
	return -ENOENT;
}

static int fd_path(int fd, char *out, size_t size)
{
	char p[64];
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	n = readlink(p, out, size - 1);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	return 0;
}

/* The daemon's log: LAZYPAGES_LOG_FILE, else lazy-pages.log beside CRIU's log file. */
static void log_path(const char *workdir, char *out, size_t size)
{
	const char *env = getenv("LAZYPAGES_LOG_FILE");
	char p[PATH_MAX];
	struct stat s;
	int fd;

	if (env && *env) {
		if (env[0] == '/')
			snprintf(out, size, "%s", env);
		else if (path_join(out, size, workdir, env))
			snprintf(out, size, "%s", env);
		return;
	}
	fd = log_get_fd ? log_get_fd() : -1;
	if (fd >= 0 && !fstat(fd, &s) && S_ISREG(s.st_mode) && !fd_path(fd, p, sizeof(p)) &&
	    p[0] == '/' && strrchr(p, '/')) {
		char *slash = strrchr(p, '/');

		if (slash == p)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (!path_join(out, size, strcmp(p, "/") ? p : "", DAEMON_LOG))
			return;
	}
	if (path_join(out, size, workdir, DAEMON_LOG))
		snprintf(out, size, "%s", DAEMON_LOG);
}

/* Logs the last lines of the daemon's log (why it did not start). */
static void log_tail(const char *path)
{
	char buf[2048], *line, *save;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end;
	ssize_t n;

	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end > (off_t)sizeof(buf) - 1)
		lseek(fd, end - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	line = buf;
	if (end > (off_t)sizeof(buf) - 1) { /* skip a partial first line */
		line = strchr(buf, '\n');
		if (!line)
			return;
		line++;
	}
	for (line = strtok_r(line, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		plog(L_ERROR, "  daemon log: %s", line);
}

/* In the daemon process, before exec: fds 0-2 and STATUS_FD only, default signals. */
static void child_setup(int status_wr, const char *log)
{
	sigset_t none;
	int fd, hi;

	setsid();
	hi = fcntl(status_wr, F_DUPFD_CLOEXEC, 16);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		fd = open("/dev/null", O_WRONLY);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (hi >= 0)
		dup2(hi, STATUS_FD); /* dup2 leaves FD_CLOEXEC clear */
	if (syscall(SYS_close_range, STATUS_FD + 1, ~0U, 0)) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			int n = atoi(e->d_name);

			if (n > STATUS_FD && n != dirfd(d))
				close(n);
		}
		if (d)
			closedir(d);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
}

/* Splits LAZYPAGES_DAEMON_ARGS (a copy in buf) into argv[*argc...]. */
static int add_extra_args(char *buf, char **argv, int *argc)
{
	char *save, *t;

	for (t = strtok_r(buf, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save)) {
		if (*argc >= MAX_ARGS - 1) {
			plog(L_ERROR,
			     "LAZYPAGES_DAEMON_ARGS has too many words (at most %d "
			     "arguments in all)",
			     MAX_ARGS - 1);
			return -E2BIG;
		}
		argv[(*argc)++] = t;
	}
	return 0;
}

/* Waits up to TMO_MS for the status byte. 0 ready, -ETIMEDOUT, -EPIPE (closed first). */
static int wait_ready(int fd, int tmo_ms)
{
	struct timespec t0, t;
	char b;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left;
		ssize_t n;
		int r;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = tmo_ms -
		       ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = read(fd, &b, 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == 1 && b == 0)
			return 0;
		return -EPIPE;
	}
}

static int start_daemon(const char *workdir)
{
	char bin[PATH_MAX], images[PATH_MAX], vflag[16], extra[4096], addr[256], port[16];
	char *argv[MAX_ARGS];
	const char *ps = getenv("LAZYPAGES_PAGE_SERVER"), *ex = getenv("LAZYPAGES_DAEMON_ARGS");
	const char *tmo_env = getenv("LAZYPAGES_PLUGIN_TIMEOUT");
	unsigned int level = log_get_loglevel ? log_get_loglevel() : 2;
	int argc = 0, status[2], pidp[2], ret, tmo = 30, imgfd;
	pid_t starter, daemon = -1;
	ssize_t n;

	if (find_binary(bin, sizeof(bin)))
		return -1;
	imgfd = criu_get_image_dir ? criu_get_image_dir() : -1;
	if (imgfd < 0 || (ret = fd_path(imgfd, images, sizeof(images))) || images[0] != '/') {
		plog(L_ERROR,
		     "cannot find the images dir (criu_get_image_dir() gave fd %d): "
		     "start `lazypages daemon -D IMAGES_DIR -W %s` by hand before the "
		     "restore",
		     imgfd, workdir);
		return -1;
	}
	if (tmo_env && *tmo_env) {
		tmo = atoi(tmo_env);
		if (tmo <= 0) {
			plog(L_ERROR, "LAZYPAGES_PLUGIN_TIMEOUT=%s is not a number of seconds > 0",
			     tmo_env);
			return -1;
		}
	}
	log_path(workdir, st.log, sizeof(st.log));
	snprintf(vflag, sizeof(vflag), "-v%u", level > 4 ? 4 : level);

	argv[argc++] = bin;
	argv[argc++] = "daemon";
	argv[argc++] = "-D";
	argv[argc++] = images;
	argv[argc++] = "-W";
	argv[argc++] = (char *)workdir;
	argv[argc++] = "--status-fd";
	argv[argc++] = "3";
	argv[argc++] = "-o";
	argv[argc++] = st.log;
	argv[argc++] = vflag;
	if (ps && *ps) {
		const char *colon = strrchr(ps, ':');
		const char *a = ps;
		size_t alen = colon ? (size_t)(colon - ps) : 0;

		if (alen && a[0] == '[' && a[alen - 1] == ']') { /* [v6addr]:port */
			a++;
			alen -= 2;
		}
		if (!colon || !alen || alen >= sizeof(addr) || atoi(colon + 1) <= 0 ||
		    atoi(colon + 1) > 65535) {
			plog(L_ERROR,
			     "LAZYPAGES_PAGE_SERVER=%s is not ADDRESS:PORT (the source's "
			     "`criu dump --lazy-pages --port PORT`)",
			     ps);
			return -1;
		}
		memcpy(addr, a, alen);
		addr[alen] = '\0';
		snprintf(port, sizeof(port), "%d", atoi(colon + 1));
		argv[argc++] = "--page-server";
		argv[argc++] = "--address";
		argv[argc++] = addr;
		argv[argc++] = "--port";
		argv[argc++] = port;
	}
	if (ex && *ex) {
		snprintf(extra, sizeof(extra), "%s", ex);
		if (add_extra_args(extra, argv, &argc))
			return -1;
	}
	argv[argc] = NULL;

	if (pipe2(status, O_CLOEXEC)) {
		plog(L_ERROR, "cannot create a pipe for the daemon's --status-fd: %s",
		     strerror(errno));
		return -1;
	}
	if (pipe2(pidp, O_CLOEXEC)) {
		plog(L_ERROR, "cannot create a pipe: %s", strerror(errno));
		close(status[0]);
		close(status[1]);
		return -1;
	}
	plog(L_INFO, "starting %s daemon -D %s -W %s --status-fd 3 -o %s %s%s%s", bin, images,
	     workdir, st.log, vflag, ps && *ps ? " --page-server " : "", ps && *ps ? ps : "");
	starter = fork();
	if (starter < 0) {
		plog(L_ERROR, "cannot fork to start the daemon: %s", strerror(errno));
		goto fail_pipes;
	}
	if (starter == 0) {
		/*
		 * The starter: forks the daemon and exits at once, so that the daemon is not a
		 * child of criu (criu restore aborts when a child of its exits).
		 */
		pid_t d = fork();
		int v = d < 0 ? -errno : d;

		if (d == 0) {
			child_setup(status[1], st.log);
			execv(bin, argv);
			dprintf(2, "lazypages-plugin: cannot execute %s: %s\n", bin,
				strerror(errno));
			_exit(127);
		}
		if (write(pidp[1], &v, sizeof(v)) != sizeof(v))
			_exit(1);
		_exit(0);
	}
	close(status[1]);
	close(pidp[1]);
	do
		n = read(pidp[0], &daemon, sizeof(daemon));
	while (n < 0 && errno == EINTR);
	close(pidp[0]);
	while (waitpid(starter, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(daemon) || daemon <= 0) {
		plog(L_ERROR, "cannot fork the daemon: %s",
		     n == sizeof(daemon) ? strerror(-daemon) : "the starter process died");
		close(status[0]);
		return -1;
	}
	ret = wait_ready(status[0], tmo * 1000);
	close(status[0]);
	if (ret == -ETIMEDOUT) {
		kill(-daemon, SIGKILL);
		plog(L_ERROR,
		     "lazypages daemon (pid %d) did not report ready within %d s; killed "
		     "it. See %s; raise LAZYPAGES_PLUGIN_TIMEOUT if the machine is just slow",
		     (int)daemon, tmo, st.log);
		log_tail(st.log);
		return -1;
	}
	if (ret) {
		kill(-daemon, SIGKILL);
		plog(L_ERROR,
		     "lazypages daemon (pid %d) exited before listening on %s/%s. Its "
		     "log (%s) says:",
		     (int)daemon, workdir, SOCK_NAME, st.log);
		log_tail(st.log);
		return -1;
	}
	st.daemon = daemon;
	if (st.rpc)
		leave_container_cgroup(daemon);
	{
		char sock[PATH_MAX + 32];
		struct stat s;

		snprintf(sock, sizeof(sock), "%s/%s", workdir, SOCK_NAME);
		if (!lstat(sock, &s)) {
			st.sock_dev = s.st_dev;
			st.sock_ino = s.st_ino;
		}
	}
	plog(L_INFO, "lazypages daemon pid %d listens on %s/%s; log %s", (int)daemon, workdir,
	     SOCK_NAME, st.log);
	return 0;

fail_pipes:
	close(status[0]);
	close(status[1]);
	close(pidp[0]);
	close(pidp[1]);
	return -1;
}

/* ---- plugin entry points ------------------------------------------------------------- */

static int lp_plugin_init(int stage)
{
	char workdir[PATH_MAX], sock[PATH_MAX + 32], why[512];

	if (stage != CR_PLUGIN_STAGE__RESTORE)
		return 0;
	memset(&st, 0, sizeof(st));
	st.owner = getpid();
	if (!detect_lazy(why, sizeof(why))) {
		plog(L_INFO, "not a lazy restore (%s): nothing to do", why);
		return 0;
	}
	if (!getcwd(workdir, sizeof(workdir))) {
		plog(L_ERROR,
		     "cannot get the work dir (getcwd: %s); start `lazypages daemon` by "
		     "hand in the restore's work dir",
		     strerror(errno));
		return -1;
	}
	snprintf(sock, sizeof(sock), "%s/%s", workdir, SOCK_NAME);
	if (listener_on(sock, NULL, NULL, NULL)) {
		plog(L_INFO, "lazy restore (%s); a daemon already listens on %s: using it", why,
		     sock);
		return 0;
	}
	plog(L_INFO, "lazy restore (%s) and no daemon listens on %s: starting one", why, sock);
	return start_daemon(workdir) ? -1 : 0;
}

/*
 * Did the restore connect to the daemon this plugin started? Once it accepted, the daemon
 * closes its listening socket; before, the connection waits in the accept queue. A lazy
 * restore connects long before it ends, so a daemon still listening with nothing queued at
 * the end was never used (the restore failed first, or was not lazy): stop it rather than
 * leave it waiting for ever.
 */
static bool never_connected(const char *sock, int ret)
{
	for (int i = 0;; i++) {
		dev_t dev = 0;
		ino_t ino = 0;
		int pending = -1;

		if (!listener_on(sock, &dev, &ino, &pending) || dev != st.sock_dev ||
		    ino != st.sock_ino || pending > 0)
			return false;
		/*
		 * A daemon that has just accepted still listens for a moment before it
		 * closes the listener: only a listener that stays idle for 1 s (2 s when
		 * the queue is unknown) means nobody came.
		 */
		if (ret || i >= (pending == 0 ? 20 : 40))
			return true;
		usleep(50000);
	}
}

static void lp_plugin_exit(int stage, int ret)
{
	char workdir[PATH_MAX], sock[PATH_MAX + 32];

	if (stage != CR_PLUGIN_STAGE__RESTORE || !st.daemon || getpid() != st.owner)
		return;
	if (getcwd(workdir, sizeof(workdir))) {
		snprintf(sock, sizeof(sock), "%s/%s", workdir, SOCK_NAME);
		if (never_connected(sock, ret)) {
			kill(-st.daemon, SIGTERM);
			plog(ret ? L_WARN : L_INFO,
			     "the restore (result %d) never connected to the lazypages daemon (pid "
			     "%d): stopped it",
			     ret, (int)st.daemon);
			st.daemon = 0;
			return;
		}
	}
	plog(L_INFO, "lazypages daemon pid %d serves the lazy pages; log %s", (int)st.daemon,
	     st.log);
	st.daemon = 0;
}

CR_PLUGIN_REGISTER(PLUGIN_NAME, lp_plugin_init, lp_plugin_exit)
