/*
 * sd_detect.h - gastritis detection on a whole X-ray image (paper §3.3,
 * Eq. 9) and its heat-map picture.
 *
 * The image is cut into the training patch grid (psize, stride), every patch
 * is classified as I / N / P by a caller-supplied classifier (in batches),
 * and
 *     r = Num(P) / (Num(N) + Num(P)),   gastritis iff r >= delta.
 * Irrelevant (I) patches do not vote.  When no patch is N or P the answer is
 * "undetermined" (SD_DETECT_UNDETERMINED, r = NaN), never a guess.
 *
 * That is the gastric task; params.task selects another (sd_task.h): its
 * patch classes, its region-outside class (which does not vote) and its
 * rule, and the decision is then the image class (0..K-1), so that for two
 * classes NEGATIVE / POSITIVE are the first / second class.
 */
#ifndef SD_DETECT_H
#define SD_DETECT_H

#include <stdint.h>

#include "sd_draw.h"
#include "sd_error.h"
#include "sd_real.h"
#include "sd_task.h"

#define SD_DETECT_DELTA 0.4 /* the paper's threshold */

enum { SD_DETECT_NEGATIVE = 0, SD_DETECT_POSITIVE = 1, SD_DETECT_UNDETERMINED = -1 };

/* Classify n patches (n,1,osize,osize), normalised as in training; write a
 * class 0..2 (SD_CLASS_I/N/P; other tasks 0..classes-1) per patch.  Returns 0 or a negative status
 * (which stops detection and is passed back). */
typedef int (*sd_patch_classify_fn)(void *ctx, const sd_real *patches, int n, int *classes_out);

typedef struct sd_detect_params {
    int psize, stride;   /* the training grid, e.g. 299 / 50 */
    int osize;           /* network input size (<= psize), e.g. 64 or 299 */
    double mean, std;    /* training normalisation */
    double delta;        /* decision threshold (SD_DETECT_DELTA) */
    int batch;           /* patches per classifier call; <= 0: 256 */
    const sd_task *task; /* NULL: the gastric task */
} sd_detect_params;

typedef struct sd_detect_result {
    int gh, gw;                   /* grid rows and columns */
    int *classes;                 /* gh*gw, row-major; malloc'ed, free with sd_detect_result_free */
    int num[SD_TASK_MAX_CLASSES]; /* patches per class: I, N, P (or the task's) */
    double r;                     /* Num(P)/(Num(N)+Num(P)); NaN when undetermined */
    int decision; /* SD_DETECT_NEGATIVE / _POSITIVE / _UNDETERMINED; the image class */
} sd_detect_result;

/* r and the decision from class counts (Eq. 9). */
int sd_detect_decide(int num_n, int num_p, double delta, double *r);

/* Run detection on one 16-bit image (w x h, 0..65535 scale). */
int sd_detect_image(const uint16_t *pix, int w, int h, const sd_detect_params *p,
                    sd_patch_classify_fn classify, void *ctx, sd_detect_result *res,
                    sd_error *err) SD_WUR;
void sd_detect_result_free(sd_detect_result *res);

/* Heat map: the image in gray (scaled so its longer side is at most
 * max_side pixels; <= 0: 1024), each grid cell's centre stride x stride
 * block tinted by its class (I none, N green, P red; other tasks: the
 * region-outside class none, the others one colour each), then a panel with
 * the legend (the task's class names), counts, r, delta and the decision, a title line (may be NULL) and
 * a "SYNTHETIC" banner when synthetic is non-zero. */
int sd_detect_heatmap_png(const char *path, const uint16_t *pix, int w, int h,
                          const sd_detect_params *p, const sd_detect_result *res, const char *title,
                          int synthetic, int max_side, sd_error *err) SD_WUR;
/* The same picture on a canvas (*out, free with sd_canvas_free), e.g. for
 * a DICOM Secondary Capture (docs/dicom.md). */
int sd_detect_heatmap_canvas(sd_canvas *out, const uint16_t *pix, int w, int h,
                             const sd_detect_params *p, const sd_detect_result *res,
                             const char *title, int synthetic, int max_side, sd_error *err) SD_WUR;

#endif
