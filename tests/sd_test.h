/*
 * sd_test.h - a minimal test harness shared by every test executable.
 *
 * CHECK records a failure and goes on; the executable returns
 * sd_test_finish(), which prints "N passed, N failed" and is non-zero when
 * anything failed.  A test that cannot run here (no GPU, missing tool)
 * returns SD_TEST_SKIP (77), which CTest reports as skipped.
 */
#ifndef SD_TEST_H
#define SD_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define SD_TEST_SKIP 77

static int sd_test_passed_, sd_test_failed_;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            sd_test_passed_++;                                                       \
        } else {                                                                     \
            sd_test_failed_++;                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECKF(cond, ...)                                                            \
    do {                                                                             \
        if (cond) {                                                                  \
            sd_test_passed_++;                                                       \
        } else {                                                                     \
            sd_test_failed_++;                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

/* Relative error of a against reference b, guarded against tiny references. */
static inline double sd_test_relerr(double a, double b, double floor_)
{
    double d = fabs(a - b), m = fabs(b) > floor_ ? fabs(b) : floor_;
    return d / m;
}

static inline int sd_test_finish(void)
{
    printf("%d passed, %d failed\n", sd_test_passed_, sd_test_failed_);
    return sd_test_failed_ ? 1 : 0;
}

#endif
