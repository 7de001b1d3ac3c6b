/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * testlib.h - the small test framework shared by tests/ and vmtests/.
 *
 *   TEST(name) { ASSERT_EQ(a, b, "what"); ... }
 *
 * Tests register themselves; main() (defined here, one per binary) runs them
 * in order, each in a forked child so a crash or sanitizer abort fails only
 * that test. Output is one line per test ("PASS name", "FAIL name: why",
 * "SKIP name: why") and a closing "N passed, N failed, N skipped".
 * Arguments select tests by substring. A test that needs something the
 * machine lacks calls SKIP(reason): it is reported skipped, never passed.
 */
#ifndef KGATE_TESTLIB_H
#define KGATE_TESTLIB_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct kt_test {
	const char *name;
	void (*fn)(void);
};

#define KT_MAX_TESTS 512
static struct kt_test kt_tests[KT_MAX_TESTS];
static int kt_ntests;
static int kt_failed_here;	/* assertions failed in the current test */
/* Set by a binary's constructor when it needs set-up shared by its tests:
 * main() runs it once, in the parent, just before the first selected test
 * (not at all when a filter selects none of the binary's tests). */
static void (*kt_before_tests)(void);

#define TEST(name)							\
	static void kt_fn_##name(void);					\
	__attribute__((constructor)) static void kt_reg_##name(void)	\
	{								\
		if (kt_ntests < KT_MAX_TESTS)				\
			kt_tests[kt_ntests++] = (struct kt_test){ #name, kt_fn_##name }; \
	}								\
	static void kt_fn_##name(void)

/* exit code 77 from a test child = skipped */
#define KT_SKIP_CODE 77

#define SKIP(...) do {							\
		printf("  skip reason: ");				\
		printf(__VA_ARGS__);					\
		printf("\n");						\
		fflush(stdout);						\
		_exit(KT_SKIP_CODE);					\
	} while (0)

static inline void kt_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline void kt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	kt_failed_here++;
	printf("  %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

#define ASSERT_TRUE(cond, what) ({					\
		bool ___ok = !!(cond);					\
		if (!___ok)						\
			kt_fail(__FILE__, __LINE__, "%s: expected true: %s (errno %d %s)", \
				what, #cond, errno, strerror(errno));	\
		___ok; })

#define ASSERT_FALSE(cond, what) ASSERT_TRUE(!(cond), what)

#define ASSERT_EQ(a, b, what) ({					\
		long long ___a = (long long)(a), ___b = (long long)(b); \
		bool ___ok = ___a == ___b;				\
		if (!___ok)						\
			kt_fail(__FILE__, __LINE__, "%s: %s == %lld, expected %s == %lld", \
				what, #a, ___a, #b, ___b);		\
		___ok; })

#define ASSERT_NEQ(a, b, what) ({					\
		long long ___a = (long long)(a), ___b = (long long)(b); \
		bool ___ok = ___a != ___b;				\
		if (!___ok)						\
			kt_fail(__FILE__, __LINE__, "%s: %s == %lld, expected != %s", \
				what, #a, ___a, #b);			\
		___ok; })

#define ASSERT_GE(a, b, what) ({					\
		long long ___a = (long long)(a), ___b = (long long)(b); \
		bool ___ok = ___a >= ___b;				\
		if (!___ok)						\
			kt_fail(__FILE__, __LINE__, "%s: %s == %lld, expected >= %lld", \
				what, #a, ___a, ___b);			\
		___ok; })

#define ASSERT_OK(x, what) ASSERT_EQ(x, 0, what)

#define ASSERT_STREQ(a, b, what) ({					\
		const char *___a = (a), *___b = (b);			\
		bool ___ok = ___a && ___b && !strcmp(___a, ___b);	\
		if (!___ok)						\
			kt_fail(__FILE__, __LINE__, "%s: \"%s\" != \"%s\"", \
				what, ___a ? ___a : "(null)", ___b ? ___b : "(null)"); \
		___ok; })

#define ASSERT_HAS_SUBSTR(hay, needle, what) ({				\
		const char *___h = (hay), *___n = (needle);		\
		bool ___ok = ___h && ___n && strstr(___h, ___n);	\
		if (!___ok)						\
			kt_fail(__FILE__, __LINE__, "%s: \"%s\" does not contain \"%s\"", \
				what, ___h ? ___h : "(null)", ___n ? ___n : "(null)"); \
		___ok; })

/* Expect a syscall-style failure: ret < 0 and errno == e */
#define ASSERT_ERRNO(ret, e, what) ({					\
		long ___r = (long)(ret); int ___e = errno;		\
		bool ___ok = ___r < 0 && ___e == (e);			\
		if (!___ok)						\
			kt_fail(__FILE__, __LINE__, "%s: got ret=%ld errno=%d (%s), expected errno %d (%s)", \
				what, ___r, ___r < 0 ? ___e : 0, ___r < 0 ? strerror(___e) : "none", \
				(e), strerror(e));			\
		___ok; })

/* Does this machine run 32-bit `int $0x80` system calls at all?  Some
 * hypervisors (and kernels booted with ia32_emulation=0) kill every such
 * call with SIGSEGV before any seccomp filter is consulted; a test of the
 * filter's architecture check then has nothing to observe and must skip. */
static inline bool kt_int80_available(void)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		long ret;

		signal(SIGSEGV, SIG_DFL);	/* not the sanitizer's report */
		__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");	/* getpid */
		_exit(ret > 0 ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static inline bool kt_selected(int argc, char **argv, const char *name)
{
	int i;

	if (argc < 2)
		return true;
	for (i = 1; i < argc; i++)
		if (strstr(name, argv[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < kt_ntests; i++) {
		const struct kt_test *t = &kt_tests[i];
		int status = 0;
		pid_t pid;

		if (!kt_selected(argc, argv, t->name))
			continue;
		if (kt_before_tests) {
			void (*before)(void) = kt_before_tests;

			kt_before_tests = NULL;
			before();
		}
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			kt_failed_here = 0;
			t->fn();
			fflush(stdout);
			_exit(kt_failed_here ? 1 : 0);
		}
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("PASS %s\n", t->name);
			passed++;
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == KT_SKIP_CODE) {
			printf("SKIP %s\n", t->name);
			skipped++;
		} else {
			if (WIFSIGNALED(status))
				printf("FAIL %s: killed by signal %d\n", t->name, WTERMSIG(status));
			else
				printf("FAIL %s: exit %d\n", t->name, WEXITSTATUS(status));
			failed++;
		}
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}

#endif
