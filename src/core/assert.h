/*
 * assert.h — assertions that are always compiled in.
 *
 * For a ledger a wrong answer is worse than a restart: ASSERT() aborts with the file, line and
 * expression in every build. DEBUG_ASSERT() is for checks too expensive for production; it is
 * compiled in only when LEDGERD_DEBUG is defined (the sanitizer build defines it).
 */
#ifndef LEDGERD_CORE_ASSERT_H
#define LEDGERD_CORE_ASSERT_H

/* Prints "assertion failed: EXPR at FILE:LINE" to stderr and aborts. Never returns. */
_Noreturn void core_assert_fail(const char *expr, const char *file, int line);

#define ASSERT(expr) ((expr) ? (void)0 : core_assert_fail(#expr, __FILE__, __LINE__))

#ifdef LEDGERD_DEBUG
#define DEBUG_ASSERT(expr) ASSERT(expr)
#else
#define DEBUG_ASSERT(expr) ((void)0)
#endif

#endif
