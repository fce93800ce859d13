/*
 * nd_jobs.h - the job runner: distillation jobs on the node's own data set
 * in a worker thread, one at a time, in the order they were submitted.
 *
 * A job's options are `sldd distill` options (nd_distill.h) on top of the
 * node's defaults (node.conf `distill:`).  While it runs, its row in the
 * jobs table carries its progress: iteration, percent, ETA, outer loss,
 * validation accuracy and the image-level validation HM (computed at each
 * validation).  It checkpoints every checkpoint-every iterations and when
 * the daemon stops; a job found running at start-up (crash, kill -9) is
 * resumed from its last checkpoint (or from the start when it had none),
 * and the log says so.  A finished job leaves a node-signed bundle pending
 * approval (nd_approval.h) and the picture of its images.
 */
#ifndef ND_JOBS_H
#define ND_JOBS_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "nd_ctx.h"

typedef struct nd_jobs {
    nd_ctx *ctx;
    pthread_t thread;
    int started;
    sqlite3 *db;
    atomic_llong cancel_id; /* running job to cancel, 0 none */
    atomic_llong running_id;
} nd_jobs;

/* Mark jobs left running by a previous process as queued again (resume). */
int nd_jobs_recover(nd_ctx *c, sqlite3 *db, sc_error *e) SC_WUR;
int nd_jobs_start(nd_jobs *j, nd_ctx *c, sc_error *e) SC_WUR;
void nd_jobs_join(nd_jobs *j);

/* Queue a distillation job; options are checked now.  audience is a comma
 * list of peer ids ("" = every known peer). */
int nd_jobs_submit(nd_ctx *c, sqlite3 *db, const char *options, const char *audience, int64_t *id,
                   sc_error *e) SC_WUR;
/* Cancel a queued or running job. */
int nd_jobs_cancel(nd_jobs *j, sqlite3 *db, int64_t id, sc_error *e) SC_WUR;

#endif
