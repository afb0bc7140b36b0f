/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A minimal test harness for the C tests: each test_*.c is one program.
 *
 *   TEST(name) { CHECK(x == 1); CHECKF(rc == 0, "rc=%d", rc); }
 *
 * Tests register themselves; main() runs them in order (or those named on
 * the command line) and ends with the plain line CI recognises:
 *   N passed, N failed
 * A failed CHECK ends its test; the program exits 1 if any test failed.
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*harness_fn)(void);

struct harness_test {
    const char *name;
    harness_fn fn;
};

#define HARNESS_MAX_TESTS 256
static struct harness_test harness_tests[HARNESS_MAX_TESTS];
static int harness_nr_tests;
static int harness_failed_current;

static inline void harness_register(const char *name, harness_fn fn)
{
    if ( harness_nr_tests < HARNESS_MAX_TESTS )
        harness_tests[harness_nr_tests++] = (struct harness_test){ name, fn };
}

#define TEST(name)                                                          \
    static void name(void);                                                 \
    __attribute__((constructor)) static void harness_reg_##name(void)       \
    { harness_register(#name, name); }                                      \
    static void name(void)

#define CHECKF(cond, fmt, ...)                                              \
    do {                                                                    \
        if ( !(cond) )                                                      \
        {                                                                   \
            fprintf(stderr, "  FAIL %s:%d: %s: " fmt "\n", __FILE__,        \
                    __LINE__, #cond, ##__VA_ARGS__);                        \
            harness_failed_current = 1;                                     \
            return;                                                         \
        }                                                                   \
    } while ( 0 )

#define CHECK(cond) CHECKF(cond, "%s", "")

#ifndef HARNESS_NO_MAIN
int main(int argc, char **argv)
{
    int passed = 0, failed = 0, i, a;

    for ( i = 0; i < harness_nr_tests; i++ )
    {
        struct timespec t0, t1;
        int selected = argc < 2;

        for ( a = 1; a < argc; a++ )
            selected |= strcmp(argv[a], harness_tests[i].name) == 0;
        if ( !selected )
            continue;
        harness_failed_current = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        harness_tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%s %s (%.2fs)\n", harness_failed_current ? "FAIL" : "ok  ",
               harness_tests[i].name,
               (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
        fflush(stdout);
        if ( harness_failed_current )
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
#endif

#endif /* TESTS_HARNESS_H */
