/*
 * sd_synth.h - synthetic double-contrast barium stomach phantoms (docs/data.md §5).
 *
 * Real gastric X-ray data is private, so the project ships a generator of
 * phantoms with stomach masks and image labels.  A phantom is a J-shaped,
 * gas-filled stomach with a bright barium rim, longitudinal folds and a
 * mucosal texture, inside a body-shaped background (soft tissue, liver,
 * spine, ribs, bowel gas) with quantum noise and vignetting:
 *
 *   non-gastritis (label 0): straight, thin, regular folds and a fine,
 *                            uniform reticular mucosal pattern;
 *   gastritis (label 1):     tortuous, thickened, beaded folds and a coarse,
 *                            nodular mucosal pattern.
 *
 * Severity varies smoothly inside each stomach (gastritis is patchy, a few
 * non-gastritis stomachs have mild changes) and patients differ in stomach
 * shape, position, size, fold count, texture scale, contrast and noise, so
 * the two classes overlap a little at the patch level.  All geometry is in
 * units of the image size, so a phantom looks the same at any resolution.
 *
 * Output is fully determined by (width, height, label, seed): the random
 * numbers come from splitmix64 and counter-based hashes, never rand().
 * Pixel values are computed in double precision with the C library's exp,
 * sin and sqrt, so bit-identical output across different libm versions is
 * not promised (the same build always reproduces its output).
 *
 * Everything generated here is SYNTHETIC and is labelled so wherever it is
 * written (PNG comment chunks, the dataset README, heat maps).
 */
#ifndef SD_SYNTH_H
#define SD_SYNTH_H

#include <stdint.h>

#include "sd_error.h"

/* Comment stored in every phantom PNG. */
#define SD_SYNTH_COMMENT "SYNTHETIC gastric X-ray phantom (sldd); not patient data"

typedef struct sd_synth_opts {
    int width, height; /* pixels, each 16..16384 */
    int label;         /* 0 non-gastritis, 1 gastritis */
    uint64_t seed;     /* the patient */
} sd_synth_opts;

/* Generate one phantom.  img: width*height 8-bit gray; mask: width*height,
 * 255 inside the stomach and 0 outside (may be NULL). */
int sd_synth_generate(const sd_synth_opts *o, uint8_t *img, uint8_t *mask, sd_error *err) SD_WUR;

/* A whole dataset on disk in the format sd_dataset reads:
 *   out_dir/images/ID.png, out_dir/masks/ID.png, out_dir/labels.csv
 *   (id,label,split) and out_dir/README.txt (first line "SYNTHETIC ...").
 * Labels: round(count*gastritis_fraction) images are gastritis, chosen by a
 * seeded shuffle.  Splits are stratified by label: each class is divided in
 * the proportions split[0..2] (train, val, test) by largest remainders. */
typedef struct sd_synth_dataset_opts {
    const char *out_dir;
    int count; /* number of images, >= 1 */
    int size;  /* width = height in pixels */
    uint64_t seed;
    double gastritis_fraction; /* in [0,1] */
    double split[3];           /* train, val, test fractions, >= 0, sum > 0 */
    int threads;               /* <= 0: one per online CPU */
    int force;                 /* overwrite an existing dataset in out_dir */
    /* optional progress callback, called after each image (any thread,
     * serialised) */
    void (*progress)(void *ctx, int done, int total);
    void *progress_ctx;
} sd_synth_dataset_opts;

int sd_synth_dataset_write(const sd_synth_dataset_opts *o, sd_error *err) SD_WUR;

/* The id the dataset writer gives image i of count (zero-padded, e.g.
 * "synth0007"); buf must hold at least 32 bytes. */
void sd_synth_image_id(char *buf, int i, int count);

#endif
