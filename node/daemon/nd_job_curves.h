/*
 * nd_job_curves.h - the curves of a distillation job, for the dashboard's
 * Node page (docs/dashboard.md): the loss of every progress report and, once
 * the job is done, the image-level ROC curve of the model rebuilt from its
 * bundle on this node's validation images.
 *
 * Both are small text files in the job's folder (NODE/jobs/N/): loss.txt,
 * one "ITERATION LOSS" line per progress report, appended (a job resumed
 * from its checkpoint goes on in the same file; capped at 1 MiB), and
 * roc.txt, "auc A" then one "FPR TPR" line per point, written once at the
 * end.  The admin API renders them as one JSON object
 * (GET /v1/jobs/N/curves).
 */
#ifndef ND_JOB_CURVES_H
#define ND_JOB_CURVES_H

#include <stdint.h>

#include "nd_buf.h"
#include "nd_data.h"
#include "sc_error.h"

#define ND_CURVES_LOSS_MAX_BYTES (1u << 20)
#define ND_CURVES_LOSS_POINTS    400 /* at most this many loss points in the JSON */

/* Append one loss point to job_dir/loss.txt (nothing once it is full; a
 * loss that is not finite is skipped). */
int nd_curves_loss_append(const char *job_dir, int64_t iter, double loss, sc_error *e) SC_WUR;

/* Write job_dir/roc.txt from an evaluation (nothing when it has no ROC). */
int nd_curves_roc_write(const char *job_dir, const nd_eval *ev, sc_error *e) SC_WUR;

/* {"job":N,"loss":[[iter,loss],...],"roc":{"auc":A,"points":[[fpr,tpr],...]}}
 * from NODE/jobs/N; "roc" is null before the job is done (or without images
 * of both labels), "loss" is thinned evenly to ND_CURVES_LOSS_POINTS (the
 * last point kept).  Lines that do not parse are skipped. */
int nd_curves_json(const char *node_dir, int64_t job, nd_buf *out, sc_error *e) SC_WUR;

#endif
