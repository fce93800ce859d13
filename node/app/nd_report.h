/*
 * nd_report.h - the evaluation report of a gastric patch classifier on a
 * labelled data set, shared by `sldd evaluate`, `sldd replay` and
 * `sldd train`: patch accuracy with per-class figures and the confusion
 * matrix; image-level Sen, Spe, HM (Eqs. 10-12) at delta; the ROC curve and
 * its AUC; and the delta that maximises HM on the validation split, with
 * what it gives on the evaluated split.
 */
#ifndef ND_REPORT_H
#define ND_REPORT_H

#include <stdio.h>

#include "nd_infer.h"

typedef struct nd_report {
    const char *model;    /* label (not owned) */
    char short_model[96]; /* "convnet-bn(d3,w16)", for picture titles */
    const char *data;     /* data set directory (not owned) */
    const char *bundle;   /* bundle id when the model came from a node's store, or NULL */
    int synthetic;
    nd_split_eval ev; /* the evaluated split */
    double delta;
    sd_confusion cf; /* at delta */
    double sen, spe, hm;
    int has_roc; /* both labels present */
    sd_roc roc;
    /* delta chosen on the validation split (has_best: val had both labels
     * and at least one determined image) */
    int has_best;
    double best_delta, best_val_hm;
    sd_confusion cf_best; /* the evaluated split at best_delta */
    double sen_best, spe_best, hm_best;
    double seconds; /* classification time of the evaluated split */
    sd_task task;   /* the classifier's task: names and rule of the report */
} nd_report;

/* Evaluate inf on split of ds (and on the validation split for the best
 * delta, unless split is val itself: then the same images are used). */
int nd_report_make(nd_report *rep, nd_infer *inf, const sd_dataset *ds, int split, double delta,
                   sd_error *err);
void nd_report_free(nd_report *rep);

/* Human-readable report. */
void nd_report_print(const nd_report *rep, FILE *f);
/* One JSON object (no trailing newline) with every figure. */
void nd_report_json(const nd_report *rep, FILE *f);

/* ROC curve PNG (operating point at rep->delta). */
int nd_report_roc_png(const nd_report *rep, const char *path, sd_error *err);

#endif
