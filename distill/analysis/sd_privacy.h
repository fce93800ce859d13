/*
 * sd_privacy.h - the privacy audit of a distilled set (docs/design.md,
 * docs/privacy.md): what an approver sees before a bundle may leave.
 *
 * Three measurements, each set against a reference drawn from held-out data
 * rather than an absolute threshold:
 *
 *  1. Nearest training sample of every synthetic image, by
 *     - normalised pixel distance: each image standardised to zero mean and
 *       unit variance over all its values, then the RMS difference
 *       (0 = identical up to brightness/contrast, sqrt(2) = uncorrelated,
 *       2 = negative);
 *     - SSIM: each image rescaled to [0,1] by its own min and max, then the
 *       mean over 8x8 windows (one window grid covering the image, see
 *       sd_ssim) of the SSIM index with C1 = 0.01^2, C2 = 0.03^2.  Block
 *       windows make the exhaustive search a few GEMMs (the window
 *       covariances are dot products), so the nearest by SSIM is exact, not
 *       a re-ranking of pixel candidates.
 *     Images larger than 64 pixels on a side are compared after area
 *     averaging by an integer factor down to at most 64 (what is
 *     recognisable survives that; 299x299 patches would otherwise cost 20x
 *     more).  The search covers all training samples, or an evenly spaced
 *     deterministic sample of them bounded by max_train and max_work
 *     (the number searched is reported).
 *  2. The reference: the same nearest-training distance and SSIM for
 *     held-out (validation) samples, which were never seen.  Each synthetic
 *     image gets its percentile in that distribution; quantiles of it are
 *     reported.
 *  3. Membership inference on the replayed model: a loss-threshold attack
 *     (per-sample cross-entropy, inference mode with theta_bn), training
 *     members against held-out non-members, as an AUC stratified by class.
 *
 * Percentiles are tail shares on the SIMILAR side: pixel_pct is the share
 * of held-out samples whose nearest training distance is smaller (ties
 * count half), ssim_pct the share whose best SSIM is larger.  0 means
 * "closer to the training data than every unseen sample": a red flag.
 * Quantiles follow the same convention: at level q, the distance below
 * which a share q of held-out samples lies and the SSIM above which a share
 * q lies.
 *
 * All host memory, float32 throughout the search (CBLAS sgemm) whatever
 * sd_real is; the figures reported for synthetic images are recomputed in
 * double on the chosen pairs.
 */
#ifndef SD_PRIVACY_H
#define SD_PRIVACY_H

#include <stddef.h>
#include <stdint.h>

#include "sd_distill.h"

#define SD_PRIVACY_NQ       4  /* quantile levels 0.01, 0.05, 0.25, 0.50 */
#define SD_SSIM_WINDOW      8  /* SSIM window side */
#define SD_PRIVACY_MAX_SIDE 64 /* larger images are area-averaged below this */

typedef enum sd_privacy_verdict {
    SD_PRIVACY_PASS = 0,
    SD_PRIVACY_WARN = 1,
    SD_PRIVACY_BLOCK = 2
} sd_privacy_verdict;

/* The release policy.  An image blocks when pixel_pct < block_distance_pct
 * AND its best SSIM > block_ssim; it warns when pixel_pct <
 * warn_distance_pct OR ssim_pct < warn_ssim_pct.  The model blocks when the
 * membership AUC > block_auc and warns when > warn_auc.  The verdict is the
 * worst of all.  Defaults (sd_privacy_policy_defaults): 0.01, 0.90, 0.05,
 * 0.01, 0.60, 0.80. */
typedef struct sd_privacy_policy {
    double block_distance_pct;
    double block_ssim;
    double warn_distance_pct;
    double warn_ssim_pct;
    double warn_auc;
    double block_auc;
} sd_privacy_policy;

typedef struct sd_privacy_config {
    sd_privacy_policy policy;
    int64_t max_train;   /* training samples searched (60000; 0 = all) */
    int64_t max_heldout; /* held-out reference samples (1000; 0 = all) */
    int64_t max_members; /* samples per side of the membership audit (1000; 0 = all) */
    /* bound on the search's work, counted as queries (images + held-out) x
     * training samples x compared values; the training sample shrinks to
     * fit (1e11: all of Fashion-MNIST, about 24,000 64x64 patches; about
     * 10 s on two cores).  <= 0: no bound. */
    double max_work;
    int chunk; /* training samples per search block (1024, fewer for large images) */
} sd_privacy_config;

void sd_privacy_policy_defaults(sd_privacy_policy *p);
void sd_privacy_config_defaults(sd_privacy_config *cfg);

/* Set policy fields from "key=value[,key=value...]" with the field names
 * above (e.g. "block_ssim=0.95,warn_auc=0.65"), for config files and
 * command lines.  Unknown keys and values outside [0,1] are refused. */
int sd_privacy_policy_parse(sd_privacy_policy *p, const char *text, sd_error *err) SD_WUR;
/* One line describing p and how it was applied (for the payload's
 * PrivacyReport.policy and for logs). */
void sd_privacy_policy_describe(const sd_privacy_policy *p, char *buf, size_t len);

typedef struct sd_privacy_image {
    int64_t pixel_index; /* nearest training sample by distance (index in the train view) */
    int pixel_label;
    double pixel_distance; /* its normalised RMS distance */
    double pixel_ssim;     /* SSIM with it */
    double pixel_pct;      /* share of held-out samples closer to training (0..1) */
    int64_t ssim_index;    /* training sample with the highest SSIM */
    int ssim_label;
    double ssim;             /* that SSIM */
    double ssim_distance;    /* distance to it */
    double ssim_pct;         /* share of held-out samples with a higher best SSIM */
    sd_privacy_verdict flag; /* this image under the policy */
} sd_privacy_image;

typedef struct sd_privacy_report {
    int c, h, w;      /* image shape as given */
    int cmp_h, cmp_w; /* compared at (after area averaging) */
    size_t n_images;
    sd_privacy_image *images;
    /* the nearest training samples themselves (n_images*c*h*w each, the
     * view's normalised input space), for the picture */
    float *pixel_nearest, *ssim_nearest;
    int64_t train_count, train_searched;
    int64_t heldout_count, heldout_used;
    double levels[SD_PRIVACY_NQ];
    double heldout_distance_q[SD_PRIVACY_NQ]; /* at levels, similar side */
    double heldout_ssim_q[SD_PRIVACY_NQ];
    /* membership inference */
    int membership_done;
    double membership_auc; /* NaN when not measured */
    int64_t members, nonmembers;
    double member_loss, nonmember_loss; /* mean cross-entropy of each side */
    /* decision */
    sd_privacy_policy policy;
    sd_privacy_verdict verdict;
    char reason[384]; /* the first finding that set the verdict */
    double seconds;
} sd_privacy_report;

void sd_privacy_report_free(sd_privacy_report *r); /* accepts a zeroed report */
/* The policy line followed by what was searched ("...; 8x8-window SSIM at
 * 64x64; searched 20000 of 98000 training samples; 1000 held-out; membership
 * 2000 v 2000"), for PrivacyReport.policy. */
void sd_privacy_report_describe(const sd_privacy_report *r, char *buf, size_t len);
const char *sd_privacy_verdict_name(sd_privacy_verdict v); /* "pass", "warn", "block" */

/* ---- the pieces ---- */

/* Normalised RMS distance between two images of n values (see above). */
double sd_privacy_distance(const float *a, const float *b, size_t n);

/* SSIM of two c x h x w images (each rescaled to [0,1] by its own range):
 * the mean over channels and windows of
 *   (2 mx my + C1)(2 sxy + C2) / ((mx^2 + my^2 + C1)(sx^2 + sy^2 + C2))
 * with biased (population) moments over each window.  Windows are
 * SD_SSIM_WINDOW square (the side itself when smaller); along an axis of
 * size L there are ceil(L/8) of them starting at round(i (L-8)/(k-1)), so
 * they cover every pixel and overlap only where L is not a multiple of 8.
 * A constant image counts as 0.5 everywhere.  Identical images give 1. */
double sd_ssim(const float *a, const float *b, int c, int h, int w);

/* Nearest-training search for n images (host, n*c*h*w, the same
 * normalised space as the views' samples) and for up to max_heldout
 * held-out samples; fills everything in r but the membership fields and
 * the decision.  The views' shapes must match. */
int sd_privacy_nearest(sd_privacy_report *r, const float *images, size_t n, int c, int h, int w,
                       const sd_data_view *train, const sd_data_view *heldout, sd_backend *be,
                       const sd_privacy_config *cfg, sd_error *err) SD_WUR;

/* Loss-threshold membership attack AUC of a model (theta on the backend,
 * bn_stats on the host, NULL when the model has no BN): per-sample
 * cross-entropy in inference mode on up to max samples of members and of
 * nonmembers (evenly spaced), AUC of "lower loss = member" computed within
 * each class and averaged with weights n_member(c) * n_nonmember(c).
 * 0.5 = no leakage.  Fills r's membership fields. */
int sd_privacy_membership(sd_privacy_report *r, const sd_model *m, sd_backend *be,
                          const sd_real *theta, const float *bn_stats, const sd_data_view *members,
                          const sd_data_view *nonmembers, int64_t max, sd_error *err) SD_WUR;

/* Per-sample cross-entropy of the model in inference mode on n samples of
 * v spread evenly over it (all of them when n = v->count, in order):
 * loss[n], label[n]. */
int sd_privacy_losses(const sd_model *m, sd_backend *be, const sd_real *theta,
                      const float *bn_stats, const sd_data_view *v, int64_t n, double *loss,
                      int *label, sd_error *err) SD_WUR;

/* The stratified Mann-Whitney AUC used above: P(member loss < nonmember
 * loss) + P(tie)/2 over same-class pairs.  NaN when no class has both. */
double sd_privacy_loss_auc(const double *loss_in, const int *label_in, size_t n_in,
                           const double *loss_out, const int *label_out, size_t n_out);

/* Apply policy p to r: per-image flags, verdict and reason. */
void sd_privacy_decide(sd_privacy_report *r, const sd_privacy_policy *p);

/* ---- the whole audit ---- */

/* Replay d (Algorithm 2), run the membership audit with d's theta_bn, the
 * nearest-training search of d's images, and decide with cfg->policy.
 * heldout must hold samples (SD_EINVAL otherwise). */
int sd_privacy_audit(sd_privacy_report *r, const sd_distilled *d, sd_backend *be,
                     const sd_data_view *train, const sd_data_view *heldout,
                     const sd_privacy_config *cfg, sd_error *err) SD_WUR;

/* The approver's picture: the verdict in the title, the membership AUC and
 * held-out quantiles, then every synthetic image (first channel) beside its
 * nearest training samples by pixel distance and by SSIM with their
 * figures as captions; flagged images framed in orange (warn) or red
 * (block).  Beyond max_shown images (<= 0: 120) the most similar ones are
 * shown and the title says so.  synthetic marks data from the phantom
 * generator; class_names (may be NULL) label the training samples. */
int sd_privacy_picture_png(const char *path, const sd_privacy_report *r, const float *images,
                           const char *const *class_names, int synthetic, int max_shown,
                           sd_error *err) SD_WUR;

#endif
