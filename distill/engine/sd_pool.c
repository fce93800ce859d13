/*
 * sd_pool.c - the task pool of sd_pool.h.
 *
 * Workers sleep on `start` until a new job generation, claim tasks one at a
 * time under the mutex, and the caller (who claims tasks too) waits on
 * `done` until every claimed task has finished.  The lowest failing task's
 * status and message are kept under the mutex.
 */
#include "sd_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define POOL_MAX_THREADS 64

struct sd_pool {
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    pthread_t *th;
    int nth, stop;
    unsigned long gen;
    sd_pool_task fn;
    void *arg;
    int count, next, claimed, finished;
    int fail_task, fail_rc;
    sd_error fail_err;
};

/* Set while this thread runs a task: a run started from a task is
 * sequential (no nested parallel regions). */
static _Thread_local int pool_in_task;

int sd_pool_in_task(void)
{
    return pool_in_task;
}

/* Claim and run tasks of the current job; called and returns with mu held. */
static void pool_work(sd_pool *p)
{
    while (p->next < p->count && p->fail_task < 0) {
        int t = p->next++;
        p->claimed++;
        sd_pool_task fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        sd_error e;
        e.code = 0;
        e.msg[0] = '\0';
        pool_in_task = 1;
        int rc = fn(arg, t, &e);
        pool_in_task = 0;
        if (rc && !e.code)
            e.code = rc;
        pthread_mutex_lock(&p->mu);
        if (rc && (p->fail_task < 0 || t < p->fail_task)) {
            p->fail_task = t;
            p->fail_rc = rc;
            p->fail_err = e;
        }
        if (++p->finished == p->claimed && (p->next >= p->count || p->fail_task >= 0))
            pthread_cond_signal(&p->done);
    }
}

static void *pool_main(void *arg)
{
    sd_pool *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->start, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        pool_work(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void sd_pool_destroy(sd_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p);
}

int sd_pool_create(sd_pool **out, int workers, sd_error *err)
{
    *out = NULL;
    if (workers < 1)
        return sd_error_set(err, SD_EINVAL, "task pool: %d workers", workers);
    sd_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->th = calloc((size_t)workers, sizeof *p->th))) {
        free(p);
        return sd_error_set(err, SD_ENOMEM, "task pool: out of memory");
    }
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p->th);
        free(p);
        return sd_error_set(err, SD_EBACKEND, "task pool: pthread_mutex_init failed");
    }
    if (pthread_cond_init(&p->start, NULL)) {
        pthread_mutex_destroy(&p->mu);
        free(p->th);
        free(p);
        return sd_error_set(err, SD_EBACKEND, "task pool: pthread_cond_init failed");
    }
    if (pthread_cond_init(&p->done, NULL)) {
        pthread_cond_destroy(&p->start);
        pthread_mutex_destroy(&p->mu);
        free(p->th);
        free(p);
        return sd_error_set(err, SD_EBACKEND, "task pool: pthread_cond_init failed");
    }
    for (; p->nth < workers; p->nth++)
        if (pthread_create(&p->th[p->nth], NULL, pool_main, p)) {
            int started = p->nth;
            sd_pool_destroy(p);
            return sd_error_set(err, SD_EBACKEND, "task pool: cannot start worker thread %d",
                                started + 1);
        }
    *out = p;
    return SD_OK;
}

static int run_here(int count, sd_pool_task fn, void *arg, sd_error *err)
{
    for (int t = 0; t < count; t++) {
        sd_error e;
        e.code = 0;
        e.msg[0] = '\0';
        int rc = fn(arg, t, &e);
        if (rc) {
            if (!e.code)
                e.code = rc;
            if (err)
                *err = e;
            return rc;
        }
    }
    return SD_OK;
}

int sd_pool_run(sd_pool *p, int count, sd_pool_task fn, void *arg, sd_error *err)
{
    if (!p || count <= 1 || pool_in_task)
        return run_here(count, fn, arg, err);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->count = count;
    p->next = 0;
    p->claimed = 0;
    p->finished = 0;
    p->fail_task = -1;
    p->fail_rc = 0;
    p->gen++;
    pthread_cond_broadcast(&p->start);
    pool_work(p);
    while (p->finished < p->claimed)
        pthread_cond_wait(&p->done, &p->mu);
    int rc = p->fail_rc;
    if (rc && err)
        *err = p->fail_err;
    p->count = 0;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int sd_pool_run_once(int threads, int count, sd_pool_task fn, void *arg, sd_error *err)
{
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)cpus : 1;
    }
    if (threads > count)
        threads = count;
    if (threads > POOL_MAX_THREADS)
        threads = POOL_MAX_THREADS;
    sd_pool *p = NULL;
    if (threads > 1 && sd_pool_create(&p, threads - 1, NULL))
        p = NULL; /* no worker: the caller runs every task */
    int rc = sd_pool_run(p, count, fn, arg, err);
    sd_pool_destroy(p);
    return rc;
}
