/*
 * nd_data.h - the data sets the CLI distils, trains on and evaluates with:
 * Fashion-MNIST (Debian's dataset-fashion-mnist) or a gastric data set
 * prepared by `sldd dataset prepare`, behind the engine's sd_data_view.
 *
 * For gastric data the samples are patches cut on the fly from images held
 * once in memory (labels I / N / P); evaluation is at two levels: patch
 * accuracy, and image-level detection (Eq. 9) with Sen, Spe, HM and AUC.
 * Any other prepared image set is handled the same way with its declared
 * task (sd_task.h): its patch classes and names, and its image-level rule
 * (two classes: the ratio rule with Sen/Spe/HM/AUC of the second class;
 * more: the majority rule with image accuracy).
 */
#ifndef ND_DATA_H
#define ND_DATA_H

#include <stdio.h>

#include "nd_payload.h"
#include "sd_dataset.h"
#include "sd_dataview.h"
#include "sd_imageset.h"

typedef struct nd_patch_source {
    const sd_dataset *ds;
    const sd_patch_index *ix;
    int osize;
    double mean, std;
    sd_real *host; /* one batch */
    int32_t *tri;  /* n x (img, y, x) */
    int64_t *off;  /* per image: first pixel in ds->pix */
    int32_t *w;    /* per image: width */
    int cap;
} nd_patch_source;

typedef struct nd_data {
    int gastric; /* a prepared image set (patches; any declared task), not Fashion-MNIST */
    int synthetic;
    const char *default_arch;
    const char *const *class_names;
    const char *source; /* "fashion-mnist" or the directory */
    sd_data_view train, val, test;
    sd_data_view train_full; /* before --train-limit */
    /* Fashion-MNIST */
    sd_imageset fm[3];
    sd_array_data arr[3];
    /* gastric */
    sd_dataset *ds;
    sd_prepared prep; /* prep.task: the declared task */
    const char *task_names[SD_TASK_MAX_CLASSES];
    sd_patch_index ix[3];
    nd_patch_source src[3];
    sd_subset_data sub;
    int64_t *sub_index;
} nd_data;

/* The normalisation of a differentially private run on gastric data:
 * public constants, not computed from any data (the prepared set's mean and
 * standard deviation are statistics of the training patches, which a DP
 * release may not carry unaccounted).  Fashion-MNIST uses fixed constants
 * anyway. */
#define ND_PUBLIC_NORM_MEAN 0.5
#define ND_PUBLIC_NORM_STD  0.25
void nd_data_public_norm(nd_data *d);

/* Open "fashion-mnist" or a prepared gastric directory.  train_limit > 0
 * keeps only that many training samples (spread over the set). */
int nd_data_open(nd_data *d, const char *source, long long train_limit, sd_error *err);
void nd_data_close(nd_data *d);
/* The class of training sample i (0 <= i < d->train.count) without cutting
 * or fetching it. */
int nd_data_train_label(const nd_data *d, int64_t i);

#define ND_EVAL_ROC_MAX 200

typedef struct nd_eval {
    double accuracy;        /* sample (patch) accuracy on the evaluation split */
    int64_t confusion[100]; /* K x K, row = truth (K <= 10) */
    int64_t samples;
    const char *split;
    /* gastric image level */
    int images;
    double sen, spe, hm, auc, delta; /* two-class tasks; NaN for the majority rule */
    double image_accuracy;           /* images whose decision is their label */
    int undetermined;
    /* the image-level ROC curve behind auc, from (0,0) to (1,1), at most
     * ND_EVAL_ROC_MAX points (evenly thinned, the ends kept); 0 without
     * images of both labels */
    int roc_n;
    float roc_fpr[ND_EVAL_ROC_MAX], roc_tpr[ND_EVAL_ROC_MAX];
} nd_eval;

/* The input normalisation a model was trained with ([0,1] scale). */
typedef struct nd_norm {
    double mean, std;
} nd_norm;

/* The one evaluation: w on split of ds, gastric patches standardised with
 * norm (NULL: the data set's own statistics; a payload's model needs the
 * sender's).  Fashion-MNIST: patch level only; gastric: patches and images
 * (Eq. 9 at delta 0.4).  ds is not changed. */
int nd_data_evaluate_weights(nd_data *ds, const sd_weights *w, const nd_norm *norm, int split,
                             nd_eval *ev, sd_error *err);
/* Replay d (Algorithm 2) and evaluate it with the data set's statistics:
 * Fashion-MNIST on the test split; gastric on the validation split. */
int nd_data_evaluate(nd_data *ds, const sd_distilled *d, sd_backend *be, nd_eval *ev,
                     sd_error *err);
/* Evaluate weights theta (backend, copied into a weights object) with
 * theta_bn (host) and the data set's statistics. */
int nd_data_evaluate_theta(nd_data *ds, const sd_model *m, const sd_real *theta,
                           const float *theta_bn, sd_backend *be, int split, nd_eval *ev,
                           sd_error *err);
/* The evaluation as text; an undefined figure (no samples, images of one
 * label only) is printed as "undefined", never as nan or 0. */
void nd_eval_print(const nd_data *ds, const nd_eval *ev, FILE *f);
/* Payload metadata describing this data set and evaluation (strings point
 * into static or ds-owned memory). */
void nd_data_meta(const nd_data *ds, const nd_eval *ev, nd_payload_meta *meta);

/* Pictures of a distilled result: the image grid with soft labels and step
 * sizes, and the loss / validation-accuracy curves. */
int nd_picture_grid(const char *path, const sd_distilled *d, const char *const *class_names,
                    int synthetic, sd_error *err);
int nd_picture_curves(const char *path, const double *iter, const double *loss, const double *acc,
                      int n, sd_error *err);

#endif
