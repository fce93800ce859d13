/*
 * sd_plot.h - the PNG pictures the engine writes: the ROC curve, line plots
 * (loss and accuracy curves) and grids of grayscale images with captions
 * (distilled images with their soft labels, as in the paper's Figs. 4-6).
 * Drawn on sd_draw's canvas with its built-in font.
 */
#ifndef SD_PLOT_H
#define SD_PLOT_H

#include "sd_error.h"
#include "sd_metrics.h"
#include "sd_real.h"

/* ROC curve: axes with ticks at 0, 0.2, ..., 1, labels "1 - specificity" and
 * "sensitivity", the chance diagonal, the curve, its AUC, and (when
 * mark_delta is finite) the operating point of "gastritis iff r >= mark_delta":
 * the last curve point whose delta >= mark_delta.  title may be NULL; synthetic adds a "SYNTHETIC DATA"
 * note. */
int sd_plot_roc_png(const char *path, const sd_roc *roc, double mark_delta, const char *title,
                    int synthetic, sd_error *err) SD_WUR;

/* Line plot of nseries series over shared x values (n points each):
 * ys[s][i] is series s at x[i]; NaN values are skipped (gaps).  Axes are
 * scaled to the data with round tick steps; a legend lists names[s] (may be
 * NULL).  log_y plots log10 of positive values (for losses). */
int sd_plot_lines_png(const char *path, const char *title, const char *xlabel, const char *ylabel,
                      const double *x, int n, const double *const *ys, const char *const *names,
                      int nseries, int log_y, sd_error *err) SD_WUR;

/* Grid of n grayscale tiles (each h x w values, row-major, consecutive in
 * tiles), cols per row, each tile stretched from its own min..max to 0..255
 * and enlarged by an integer zoom (<= 0: chosen so a tile is about 128
 * pixels wide), with captions[i] (may be NULL, may hold '\n') under tile i
 * and an optional title.  E.g. captions "I .12 N .80 P .08\nlr 0.0213". */
int sd_plot_image_grid_png(const char *path, const sd_real *tiles, int n, int h, int w, int cols,
                           int zoom, const char *const *captions, const char *title,
                           sd_error *err) SD_WUR;

#endif
