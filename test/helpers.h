/* SPDX-License-Identifier: MIT */
/*
 * Small helpers for C test programs: assertions that print both operands, a runner that
 * gives each test case its own process, stderr capture and scratch directories.
 *
 *	static void test_foo(void)
 *	{
 *		ASSERT_EQ(foo(2), 4);
 *		ASSERT_STR_CONTAINS(msg, "pagemap-1.img: bad magic");
 *	}
 *
 *	static const struct lpt_case cases[] = { LPT_CASE(test_foo), LPT_END };
 *
 *	int main(int argc, char **argv)
 *	{
 *		return lpt_main(cases, argc, argv);
 *	}
 *
 * A failed assertion prints "file:line: ..." with the expressions and their values and ends
 * the case with status 1; LPT_SKIP() ends it with 77. The program exits 0 when every case
 * passed (or was skipped, if at least one passed), 77 when all were skipped, 1 otherwise,
 * which is what test/run.sh expects.
 *
 * Environment: LPT_NOFORK=1 runs the cases in-process (for gdb), LPT_TIMEOUT=N sets the
 * per-case limit in seconds (default 120).
 */
#ifndef LP_TEST_HELPERS_H
#define LP_TEST_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LPT_EXIT_FAIL 1
#define LPT_EXIT_SKIP 77

/* ---- failing ------------------------------------------------------------------------ */

static inline void __attribute__((noreturn, format(printf, 3, 4)))
lpt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s:%d: assertion failed: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	/* _exit: no atexit handlers, so a leak checker does not pile on after a failure. */
	_exit(LPT_EXIT_FAIL);
}

#define LPT_FAIL(...) lpt_fail(__FILE__, __LINE__, __VA_ARGS__)

/* End the current case as skipped, with a reason. */
#define LPT_SKIP(...)                                  \
	do {                                           \
		fflush(stdout);                        \
		fprintf(stderr, "SKIP: " __VA_ARGS__); \
		fputc('\n', stderr);                   \
		fflush(stderr);                        \
		_exit(LPT_EXIT_SKIP);                  \
	} while (0)

/* ---- assertions ----------------------------------------------------------------------- */

enum lpt_op { LPT_EQ, LPT_NE, LPT_LT, LPT_LE, LPT_GT, LPT_GE };

static inline const char *lpt_op_str(enum lpt_op op)
{
	static const char *const s[] = {"==", "!=", "<", "<=", ">", ">="};

	return s[op];
}

#define LPT_HOLDS(op, a, b)            \
	((op) == LPT_EQ	  ? (a) == (b) \
	 : (op) == LPT_NE ? (a) != (b) \
	 : (op) == LPT_LT ? (a) < (b)  \
	 : (op) == LPT_LE ? (a) <= (b) \
	 : (op) == LPT_GT ? (a) > (b)  \
			  : (a) >= (b))

static inline void lpt_check_int(const char *file, int line, enum lpt_op op, const char *ea,
				 const char *eb, intmax_t a, intmax_t b)
{
	if (!LPT_HOLDS(op, a, b))
		lpt_fail(file, line, "%s %s %s: %jd %s %jd", ea, lpt_op_str(op), eb, a,
			 lpt_op_str(op), b);
}

static inline void lpt_check_uint(const char *file, int line, enum lpt_op op, const char *ea,
				  const char *eb, uintmax_t a, uintmax_t b)
{
	if (!LPT_HOLDS(op, a, b))
		lpt_fail(file, line, "%s %s %s: %ju (%#jx) %s %ju (%#jx)", ea, lpt_op_str(op), eb,
			 a, a, lpt_op_str(op), b, b);
}

static inline void lpt_check_ptr(const char *file, int line, enum lpt_op op, const char *ea,
				 const char *eb, const void *a, const void *b)
{
	if (!LPT_HOLDS(op, (uintptr_t)a, (uintptr_t)b))
		lpt_fail(file, line, "%s %s %s: %p %s %p", ea, lpt_op_str(op), eb, a,
			 lpt_op_str(op), b);
}

static inline void lpt_check_str(const char *file, int line, bool eq, const char *ea,
				 const char *eb, const char *a, const char *b)
{
	bool same = (a && b) ? strcmp(a, b) == 0 : a == b;

	if (same != eq)
		lpt_fail(file, line, "%s %s %s: \"%s\" %s \"%s\"", ea, eq ? "==" : "!=", eb,
			 a ? a : "(null)", eq ? "==" : "!=", b ? b : "(null)");
}

static inline void lpt_check_contains(const char *file, int line, bool want, const char *eh,
				      const char *en, const char *hay, const char *needle)
{
	bool has = hay && needle && strstr(hay, needle);

	if (has != want)
		lpt_fail(file, line, "%s %s %s\n  looked for: \"%s\"\n  in: \"%s\"", eh,
			 want ? "contains" : "does not contain", en, needle ? needle : "(null)",
			 hay ? hay : "(null)");
}

static inline void lpt_check_mem(const char *file, int line, const char *ea, const char *eb,
				 const void *a, const void *b, size_t len)
{
	const unsigned char *x = a, *y = b;

	for (size_t i = 0; i < len; i++)
		if (x[i] != y[i])
			lpt_fail(file, line,
				 "%s == %s (%zu bytes): first difference at offset %zu: %#04x != "
				 "%#04x",
				 ea, eb, len, i, x[i], y[i]);
}

/* Zero, or a value that reads as a negative errno when it is not. */
static inline void lpt_check_ok(const char *file, int line, const char *e, intmax_t v)
{
	if (v == 0)
		return;
	if (v < 0 && v > -4096)
		lpt_fail(file, line, "%s == 0: got %jd (%s)", e, v, strerror((int)-v));
	lpt_fail(file, line, "%s == 0: got %jd", e, v);
}

/* Signed integers (and small unsigned ones). */
#define ASSERT_EQ(a, b) lpt_check_int(__FILE__, __LINE__, LPT_EQ, #a, #b, (a), (b))
#define ASSERT_NE(a, b) lpt_check_int(__FILE__, __LINE__, LPT_NE, #a, #b, (a), (b))
#define ASSERT_LT(a, b) lpt_check_int(__FILE__, __LINE__, LPT_LT, #a, #b, (a), (b))
#define ASSERT_LE(a, b) lpt_check_int(__FILE__, __LINE__, LPT_LE, #a, #b, (a), (b))
#define ASSERT_GT(a, b) lpt_check_int(__FILE__, __LINE__, LPT_GT, #a, #b, (a), (b))
#define ASSERT_GE(a, b) lpt_check_int(__FILE__, __LINE__, LPT_GE, #a, #b, (a), (b))
/* Unsigned integers, printed in decimal and hex (addresses, sizes, flags). */
#define ASSERT_UINT_EQ(a, b) lpt_check_uint(__FILE__, __LINE__, LPT_EQ, #a, #b, (a), (b))
#define ASSERT_UINT_NE(a, b) lpt_check_uint(__FILE__, __LINE__, LPT_NE, #a, #b, (a), (b))
#define ASSERT_UINT_LT(a, b) lpt_check_uint(__FILE__, __LINE__, LPT_LT, #a, #b, (a), (b))
#define ASSERT_UINT_LE(a, b) lpt_check_uint(__FILE__, __LINE__, LPT_LE, #a, #b, (a), (b))
#define ASSERT_UINT_GT(a, b) lpt_check_uint(__FILE__, __LINE__, LPT_GT, #a, #b, (a), (b))
#define ASSERT_UINT_GE(a, b) lpt_check_uint(__FILE__, __LINE__, LPT_GE, #a, #b, (a), (b))
#define ASSERT_PTR_EQ(a, b)  lpt_check_ptr(__FILE__, __LINE__, LPT_EQ, #a, #b, (a), (b))
#define ASSERT_PTR_NE(a, b)  lpt_check_ptr(__FILE__, __LINE__, LPT_NE, #a, #b, (a), (b))
#define ASSERT_NULL(a)	     lpt_check_ptr(__FILE__, __LINE__, LPT_EQ, #a, "NULL", (a), NULL)
#define ASSERT_NOT_NULL(a)   lpt_check_ptr(__FILE__, __LINE__, LPT_NE, #a, "NULL", (a), NULL)
#define ASSERT_TRUE(a)	     lpt_check_int(__FILE__, __LINE__, LPT_NE, #a, "false", !!(a), 0)
#define ASSERT_FALSE(a)	     lpt_check_int(__FILE__, __LINE__, LPT_EQ, #a, "false", !!(a), 0)
#define ASSERT(a)	     ASSERT_TRUE(a)
/* 0 on success, negative errno on failure (printed with strerror). */
#define ASSERT_OK(e)	    lpt_check_ok(__FILE__, __LINE__, #e, (e))
#define ASSERT_STR_EQ(a, b) lpt_check_str(__FILE__, __LINE__, true, #a, #b, (a), (b))
#define ASSERT_STR_NE(a, b) lpt_check_str(__FILE__, __LINE__, false, #a, #b, (a), (b))
#define ASSERT_STR_CONTAINS(hay, needle) \
	lpt_check_contains(__FILE__, __LINE__, true, #hay, #needle, (hay), (needle))
#define ASSERT_STR_NOT_CONTAINS(hay, needle) \
	lpt_check_contains(__FILE__, __LINE__, false, #hay, #needle, (hay), (needle))
#define ASSERT_MEM_EQ(a, b, len) lpt_check_mem(__FILE__, __LINE__, #a, #b, (a), (b), (len))

/* ---- output capture --------------------------------------------------------------------- */

/* Redirect FD (e.g. STDERR_FILENO) into a temporary file until lpt_capture_end(). */
struct lpt_capture {
	int fd, saved, tmp;
};

static inline void lpt_capture_start(struct lpt_capture *c, int fd)
{
	char path[] = "/tmp/lpt-capture-XXXXXX";

	fflush(NULL);
	c->fd = fd;
	c->tmp = mkstemp(path);
	if (c->tmp < 0)
		LPT_FAIL("mkstemp: %s", strerror(errno));
	unlink(path);
	c->saved = dup(fd);
	if (c->saved < 0 || dup2(c->tmp, fd) < 0)
		LPT_FAIL("dup: %s", strerror(errno));
}

/*
 * Restore the fd and return what was written to it (malloc'd, NUL-terminated). The text is
 * echoed to the real fd too, so it shows in test logs.
 */
static inline char *lpt_capture_end(struct lpt_capture *c)
{
	off_t len;
	char *s;

	fflush(NULL);
	if (dup2(c->saved, c->fd) < 0)
		LPT_FAIL("dup2: %s", strerror(errno));
	close(c->saved);
	len = lseek(c->tmp, 0, SEEK_END);
	s = malloc(len + 1);
	if (!s || pread(c->tmp, s, len, 0) != len)
		LPT_FAIL("reading the captured output: %s", strerror(errno));
	s[len] = '\0';
	close(c->tmp);
	if (len) {
		ssize_t w = write(c->fd, s, len); /* the echo is only for people reading logs */

		(void)w;
	}
	return s;
}

/* ---- files and scratch directories ----------------------------------------------------- */

/* A fresh directory under $TMPDIR (or /tmp); malloc'd path. */
static inline char *lpt_mkdtemp(const char *tag)
{
	const char *t = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/lpt-%s-XXXXXX", t && *t ? t : "/tmp", tag) < 0)
		LPT_FAIL("asprintf");
	if (!mkdtemp(p))
		LPT_FAIL("mkdtemp %s: %s", p, strerror(errno));
	return p;
}

static inline int lpt_rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)type;
	(void)f;
	return remove(path) < 0 ? -1 : 0;
}

/* rm -rf PATH; frees nothing. Keeps the tree when LPT_KEEP is set, for post-mortems. */
static inline void lpt_rm_rf(const char *path)
{
	if (getenv("LPT_KEEP")) {
		fprintf(stderr, "LPT_KEEP: leaving %s\n", path);
		return;
	}
	if (nftw(path, lpt_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		LPT_FAIL("removing %s: %s", path, strerror(errno));
}

/* Write LEN bytes to DIR/NAME (created or truncated). */
static inline void lpt_write_file(const char *dir, const char *name, const void *buf, size_t len)
{
	char *p;
	int fd;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		LPT_FAIL("asprintf");
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (len && write(fd, buf, len) != (ssize_t)len))
		LPT_FAIL("writing %s: %s", p, strerror(errno));
	close(fd);
	free(p);
}

/* Contents of DIR/NAME (malloc'd, with a NUL after the data), length in *LEN. */
static inline void *lpt_read_file(const char *dir, const char *name, size_t *len)
{
	struct stat st;
	char *p, *buf;
	int fd;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		LPT_FAIL("asprintf");
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		LPT_FAIL("reading %s: %s", p, strerror(errno));
	buf = malloc(st.st_size + 1);
	if (!buf || read(fd, buf, st.st_size) != st.st_size)
		LPT_FAIL("reading %s: %s", p, strerror(errno));
	buf[st.st_size] = '\0';
	close(fd);
	free(p);
	*len = st.st_size;
	return buf;
}

/* ---- the runner ------------------------------------------------------------------------ */

struct lpt_case {
	const char *name;
	void (*fn)(void);
};

/* clang-format off */
#define LPT_CASE(fn) { #fn, fn }
#define LPT_END { NULL, NULL }
/* clang-format on */

static inline int lpt_run_case(const struct lpt_case *c)
{
	const char *t = getenv("LPT_TIMEOUT");
	int status;
	pid_t pid;

	if (getenv("LPT_NOFORK")) {
		c->fn();
		return 0;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		LPT_FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(t && *t ? (unsigned int)atoi(t) : 120);
		c->fn();
		exit(0); /* through atexit, so leak checkers see the case's leftovers */
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			LPT_FAIL("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: killed by signal %d (%s)\n", c->name, WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? "timeout" : strsignal(WTERMSIG(status)));
		return LPT_EXIT_FAIL;
	}
	return WEXITSTATUS(status);
}

/* Run CASES (all, or those named in ARGV); returns the program's exit status. */
static inline int lpt_main(const struct lpt_case *cases, int argc, char **argv)
{
	int pass = 0, fail = 0, skip = 0;

	for (const struct lpt_case *c = cases; c->name; c++) {
		bool wanted = argc < 2;
		int rc;

		for (int i = 1; i < argc; i++)
			wanted |= !strcmp(argv[i], c->name);
		if (!wanted)
			continue;
		rc = lpt_run_case(c);
		if (rc == 0) {
			pass++;
			printf("ok   %s\n", c->name);
		} else if (rc == LPT_EXIT_SKIP) {
			skip++;
			printf("skip %s\n", c->name);
		} else {
			fail++;
			printf("FAIL %s (exit %d)\n", c->name, rc);
		}
		fflush(stdout);
	}
	printf("%d passed, %d failed, %d skipped\n", pass, fail, skip);
	if (fail || pass + skip == 0)
		return LPT_EXIT_FAIL;
	return pass ? 0 : LPT_EXIT_SKIP;
}

#endif
