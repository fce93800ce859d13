/*
 * sd_pool.h - the engine's one task pool: run tasks 0..count-1 on a few
 * threads and the caller.
 *
 * Used by the CPU backend (be->parallel and its split loops), by data-set
 * loading (sd_dataset.c) and by the synthetic data-set writer (sd_synth.c).
 * Tasks are handed out in index order, one at a time; the caller claims
 * tasks too and returns when every claimed task has finished.  Which thread
 * runs a task is never visible in a result: a task must compute the same
 * thing whoever runs it, so results do not depend on the thread count.
 *
 * Failure: once a task fails no further task is handed out; the tasks
 * already claimed finish.  Every task below the lowest failing one has been
 * claimed (they are handed out in order), so the run reports the lowest
 * failing task whatever the timing: its status and its sd_error.
 */
#ifndef SD_POOL_H
#define SD_POOL_H

#include "sd_error.h"

typedef struct sd_pool sd_pool;

/* A task: 0 on success, else a negative SD_E* code with err filled in (err
 * starts cleared for each task; its code is set to the status if left 0). */
typedef int (*sd_pool_task)(void *arg, int t, sd_error *err);

/* A pool of `workers` threads besides the caller (workers >= 1).  SD_ENOMEM
 * or SD_EBACKEND (a thread could not start; none is left running). */
int sd_pool_create(sd_pool **out, int workers, sd_error *err) SD_WUR;

/* Stops and joins the workers.  NULL is accepted. */
void sd_pool_destroy(sd_pool *p);

/* Run fn(arg, t, .) for t = 0..count-1 and return 0, or the status of the
 * lowest-numbered failing task with its message in err (err may be NULL).
 * p NULL, count <= 1, or a call from inside a task of any pool: the tasks run
 * in order on the calling thread (no nested parallel regions), stopping at
 * the first failure.  One run at a time per pool. */
int sd_pool_run(sd_pool *p, int count, sd_pool_task fn, void *arg, sd_error *err);

/* Run on a pool of `threads` threads in all (the caller included), made for
 * this call and destroyed after it; threads <= 0 means one per online core.
 * At most `count` and 64 threads.  If no worker can be started the tasks run
 * on the caller alone (same results). */
int sd_pool_run_once(int threads, int count, sd_pool_task fn, void *arg, sd_error *err);

/* Whether the calling thread is running a pool task. */
int sd_pool_in_task(void);

#endif
