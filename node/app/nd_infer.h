/*
 * nd_infer.h - a ready-to-predict gastric patch classifier and what is done
 * with it: detection on whole images (paper §3.3, Eq. 9) and evaluation on
 * labelled images (Eqs. 10-12, ROC, AUC, best delta).
 *
 * The classifier is an engine weights object (sd_weights.h: model, theta,
 * theta_bn on a backend) from a distilled payload (replayed with Algorithm
 * 2: theta_0 rebuilt from the seed, the T steps replayed, prediction with
 * theta_bn), from a trained-weights file (nd_weights.h; a node stores each
 * imported bundle's theta_opt as one) or from training.  Either way it
 * carries the input geometry it was made for - patch size, stride, resize
 * and the training normalisation - so a caller never has to supply them and
 * cannot get them wrong.  Used by `sldd detect`, `sldd evaluate`,
 * `sldd train` and the daemon's detection.
 */
#ifndef ND_INFER_H
#define ND_INFER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nd_payload.h"
#include "nd_weights.h"
#include "sd_dataset.h"
#include "sd_detect.h"
#include "sd_metrics.h"
#include "sd_model.h"
#include "sd_weights.h"

typedef struct nd_infer {
    sd_weights *w;     /* model, theta and theta_bn on the backend (owned) */
    sd_backend *be;    /* borrowed: w->be */
    const sd_model *m; /* borrowed: w->m */
    sd_exec *ex;       /* prediction exec for batches of up to cap */
    sd_real *xbuf;     /* backend batch buffer */
    int cap;
    /* the input the model was made for */
    int psize, stride, osize; /* patch grid and network input size (0: not patch data) */
    double mean, std;         /* normalisation on the [0,1] scale */
    double mm_per_pixel;      /* the images' grid (payloads that record one); 0 unknown */
    /* provenance for reports (payloads; empty / NaN otherwise) */
    char sender[72];
    char theta0_sha256[65]; /* hex */
    double dp_epsilon;      /* NaN: no differential-privacy guarantee */
    int synthetic;          /* made from synthetic data (weights files say so) */
    char kind[16];          /* "payload" or "weights" */
    char label[384];        /* one line for people: model and origin */
    sd_task task;           /* what it classifies (labels == 0: gastric, sd_task.h) */
    sd_error err;           /* why the last nd_infer_classify call failed */
} nd_infer;

/* From a parsed payload: replay d (Algorithm 2) on be; the geometry and the
 * sender come from info.  -1 with err. */
int nd_infer_from_distilled(nd_infer *inf, const sd_distilled *d, const nd_payload_info *info,
                            sd_backend *be, sd_error *err);
/* From payload bytes (nd_payload_parse, then the replay above).  -1 with err. */
int nd_infer_from_payload(nd_infer *inf, const uint8_t *buf, size_t len, sd_backend *be,
                          sd_error *err);
int nd_infer_from_payload_file(nd_infer *inf, const char *path, sd_backend *be, sd_error *err);
/* From a weights file written by `sldd train` (or a stored theta_opt,
 * nd_detect.h).  -1 with err. */
int nd_infer_from_weights_file(nd_infer *inf, const char *path, sd_backend *be, sd_error *err);
/* From weights-file bytes already read and checked (nd_weights_decode). */
int nd_infer_from_weights(nd_infer *inf, const nd_weights *wf, sd_backend *be, sd_error *err);
/* From weights already in backend memory (theta is copied; bn host, may be
 * NULL without BN) and the geometry given (training). */
int nd_infer_from_theta(nd_infer *inf, const sd_model_spec *spec, const sd_real *theta,
                        const float *bn, int psize, int stride, int osize, double mean, double std,
                        sd_backend *be, sd_error *err);
void nd_infer_free(nd_infer *inf); /* accepts a zeroed struct */

/* The classifier as a weights file (theta downloaded from the backend):
 * what a node stores as a bundle's theta_opt.  wf owns its arrays (free
 * with nd_weights_free).  -1 with err. */
int nd_infer_to_weights(const nd_infer *inf, nd_weights *wf, sd_error *err);

/* Refuse (with a message) a classifier that cannot run gastric detection:
 * not 1 input channel, not 3 classes (I, N, P), no patch geometry. */
int nd_infer_check_gastric(const nd_infer *inf, sd_error *err);

/* Detection parameters of this classifier at threshold delta. */
void nd_infer_params(const nd_infer *inf, double delta, sd_detect_params *p);

/* The sd_patch_classify_fn for sd_detect_image (ctx = the nd_infer). */
int nd_infer_classify(void *ctx, const sd_real *patches, int n, int *classes_out);

/* Eq. 9 on one image (w x h, 0..65535 scale). */
int nd_infer_detect(nd_infer *inf, const uint16_t *pix, int w, int h, double delta,
                    sd_detect_result *res, sd_error *err);

/* ---- evaluation on a labelled data set (one split) ---- */

typedef struct nd_split_eval {
    int split;
    /* patch level: images of the split with masks, on this classifier's grid */
    int64_t patches;
    double accuracy;
    int classes;                                                  /* K: the task's patch classes */
    int64_t confusion[SD_TASK_MAX_CLASSES * SD_TASK_MAX_CLASSES]; /* KxK, row = truth */
    /* image level */
    int images;
    double *r;                    /* per image (NaN: undetermined); malloc'ed */
    int *label;                   /* per image */
    int *index;                   /* dataset image index per entry */
    int *decision;                /* per image: the image class decided (-1 undetermined) */
    int num[SD_TASK_MAX_CLASSES]; /* predicted patches of each class over all images */
    int correct;                  /* images whose decision is their label */
} nd_split_eval;

/* Classify every loaded image of split (and, where masks exist, its labelled
 * patches).  Images smaller than one patch count as undetermined. */
int nd_infer_eval_split(nd_infer *inf, const sd_dataset *ds, int split, nd_split_eval *ev,
                        sd_error *err);
void nd_split_eval_free(nd_split_eval *ev);

#endif
