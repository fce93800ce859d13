/*
 * test_pool.c - the engine's task pool (sd_pool.h): every task runs once,
 * the lowest failing task is the one reported whatever the thread count and
 * timing, no task is handed out after a failure, runs started from inside a
 * task are sequential, and the CPU backend's be->parallel keeps its contract
 * on top of it.
 */
#include <string.h>
#include <time.h>

#include "sd_backend.h"
#include "sd_pool.h"
#include "../sd_test.h"

#define N_TASKS 2000

typedef struct job {
    int runs[N_TASKS];
    int value[N_TASKS];
    int fail_a, fail_b; /* failing tasks (-1: none) */
    int slow_task;      /* sleeps before failing, so that fail_b fails first in time */
    int nested_ok;
} job;

static void nap(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

static int task(void *arg, int t, sd_error *err)
{
    job *j = arg;
    __atomic_add_fetch(&j->runs[t], 1, __ATOMIC_RELAXED);
    j->value[t] = t * 7 + 1;
    if (t == j->slow_task)
        nap(20 * 1000 * 1000);
    if (t == j->fail_a)
        return sd_error_set(err, SD_EIO, "task %d failed", t);
    if (t == j->fail_b)
        return SD_EFORMAT; /* no message: the code is still reported */
    return 0;
}

static void job_init(job *j)
{
    memset(j, 0, sizeof *j);
    j->fail_a = j->fail_b = j->slow_task = -1;
}

static void test_all_once(void)
{
    for (int workers = 0; workers <= 3; workers++) {
        sd_pool *p = NULL;
        sd_error err = {0};
        if (workers)
            CHECKF(sd_pool_create(&p, workers, &err) == 0, "%s", err.msg);
        static job j;
        for (int rep = 0; rep < 3; rep++) {
            job_init(&j);
            CHECK(sd_pool_run(p, N_TASKS, task, &j, &err) == 0);
            int once = 1, right = 1;
            for (int t = 0; t < N_TASKS; t++) {
                once &= j.runs[t] == 1;
                right &= j.value[t] == t * 7 + 1;
            }
            CHECKF(once && right, "%d workers", workers);
        }
        sd_pool_destroy(p);
    }
}

/* Task 40 fails late (it sleeps first), task 900 at once: the report is
 * task 40's, with its message, for every thread count. */
static void test_lowest_failure(void)
{
    for (int threads = 1; threads <= 4; threads++) {
        static job j;
        job_init(&j);
        j.fail_a = 40;
        j.slow_task = 40;
        j.fail_b = 900;
        sd_error err = {0};
        int rc = sd_pool_run_once(threads, N_TASKS, task, &j, &err);
        CHECKF(rc == SD_EIO && err.code == SD_EIO && !strcmp(err.msg, "task 40 failed"),
               "%d threads: rc %d, %s", threads, rc, err.msg);
        job_init(&j);
        j.fail_b = 5;
        rc = sd_pool_run_once(threads, N_TASKS, task, &j, &err);
        CHECKF(rc == SD_EFORMAT && err.code == SD_EFORMAT, "%d threads: rc %d", threads, rc);
    }
}

static int slow_task(void *arg, int t, sd_error *err)
{
    job *j = arg;
    __atomic_add_fetch(&j->runs[t], 1, __ATOMIC_RELAXED);
    if (t == 0)
        return sd_error_set(err, SD_EIO, "first task fails");
    nap(1000 * 1000);
    return 0;
}

/* After task 0 fails, only tasks already claimed still run. */
static void test_stop_after_failure(void)
{
    sd_pool *p = NULL;
    sd_error err = {0};
    CHECKF(sd_pool_create(&p, 3, &err) == 0, "%s", err.msg);
    static job j;
    job_init(&j);
    CHECK(sd_pool_run(p, N_TASKS, slow_task, &j, &err) == SD_EIO);
    int ran = 0;
    for (int t = 0; t < N_TASKS; t++)
        ran += j.runs[t];
    CHECKF(ran < N_TASKS / 4, "%d of %d tasks ran after the first failed", ran, N_TASKS);
    job_init(&j);
    CHECK(sd_pool_run(NULL, N_TASKS, slow_task, &j, &err) == SD_EIO && j.runs[1] == 0);
    sd_pool_destroy(p);
}

typedef struct nest {
    sd_pool *p;
    int outer_in_task[8];
    int inner_sum[8];
} nest;

static int inner_task(void *arg, int t, sd_error *err)
{
    int *sum = arg;
    *sum += t; /* unsynchronised: safe only because a nested run is sequential */
    return 0;
}

static int outer_task(void *arg, int t, sd_error *err)
{
    nest *n = arg;
    n->outer_in_task[t] = sd_pool_in_task();
    return sd_pool_run(n->p, 1000, inner_task, &n->inner_sum[t], err);
}

static void test_nested(void)
{
    nest n;
    memset(&n, 0, sizeof n);
    sd_error err = {0};
    CHECKF(sd_pool_create(&n.p, 2, &err) == 0, "%s", err.msg);
    CHECK(!sd_pool_in_task());
    CHECK(sd_pool_run(n.p, 8, outer_task, &n, &err) == 0);
    for (int t = 0; t < 8; t++)
        CHECKF(n.outer_in_task[t] == 1 && n.inner_sum[t] == 999 * 1000 / 2, "task %d", t);
    CHECK(!sd_pool_in_task());
    sd_pool_destroy(n.p);
}

static int backend_task(void *arg, int t)
{
    int *hits = arg;
    __atomic_add_fetch(&hits[t], 1, __ATOMIC_RELAXED);
    return t == 3 || t == 11 ? -100 - t : 0;
}

/* be->parallel: the result of the lowest-numbered failing task. */
static void test_backend_parallel(void)
{
    for (int threads = 1; threads <= 3; threads++) {
        sd_backend *be = NULL;
        sd_error err = {0};
        CHECKF(sd_backend_cpu_create(&be, threads, &err) == 0, "%s", err.msg);
        if (!be)
            continue;
        int hits[16] = {0};
        CHECK(be->parallel(be, 16, backend_task, hits) == -103);
        CHECK(hits[0] == 1 && hits[3] == 1);
        int ok[16] = {0};
        CHECK(be->parallel(be, 3, backend_task, ok) == 0 && ok[0] + ok[1] + ok[2] == 3);
        sd_backend_destroy(be);
    }
}

int main(void)
{
    test_all_once();
    test_lowest_failure();
    test_stop_after_failure();
    test_nested();
    test_backend_parallel();
    return sd_test_finish();
}
