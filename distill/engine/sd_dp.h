/*
 * sd_dp.h - the differentially private outer gradient of distillation.
 *
 * With DP on (sd_distill_config.dp_noise > 0), each outer iteration is a
 * Poisson-subsampled Gaussian mechanism over the real training samples
 * (accounted by sd_rdp.h):
 *
 *   1. every training sample joins the batch independently with probability
 *      q = K / N (K the configured real batch, N the training samples);
 *   2. each member's gradient of the outer loss at theta_T is computed on its
 *      own (batch of one; batch norm frozen at statistics of the synthetic
 *      images, so no sample's gradient depends on another's) and clipped to
 *      L2 norm C;
 *   3. the clipped gradients are summed, N(0, sigma^2 C^2 I) is added and the
 *      sum divided by K, the expected batch size.
 *
 * theta_T is a function of the synthetic set and the public theta_0 only, so
 * one noisy vector per iteration is all the real data gives; pulling it back
 * through the T unrolled steps is post-processing.  Batch membership and
 * noise come from a key drawn from the kernel (getrandom) for each run and
 * never stored or released: with a public seed an observer could replay the
 * batches and the amplification by subsampling would be void.
 *
 * This module holds the pieces that touch real data; sd_distill.c calls them.
 */
#ifndef SD_DP_H
#define SD_DP_H

#include <stddef.h>
#include <stdint.h>

#include "sd_backend.h"
#include "sd_error.h"
#include "sd_model.h"

/* A secret 64-bit key from the kernel's random source. */
int sd_dp_secret_key(uint64_t *key, sd_error *e) SD_WUR;

/* Poisson sampling of iteration `iter`: idx gets the members of 0..n-1
 * (each with probability q, independently), *count their number.  idx must
 * hold n entries. */
void sd_dp_poisson(uint64_t key, int64_t iter, int64_t n, double q, int64_t *idx, int64_t *count);

/* The clipped per-sample sum over nb real samples (x: nb * img values, y:
 * nb * classes one-hot rows, backend memory) at theta, batch norm frozen at
 * theta_bn (NULL for models without batch norm):
 *   sum += sum_i  g_i * min(1, clip / ||g_i||),  g_i the gradient of sample
 *   i's loss alone;
 * *loss_sum += the samples' losses.  ex must run batches of one; g is scratch
 * of n_theta.  This is the code path of every DP iteration, so changing one
 * sample changes sum by at most clip in L2 norm. */
int sd_dp_clipped_sum(sd_exec *ex, sd_backend *be, size_t nt, const sd_real *theta,
                      const sd_real *theta_bn, const sd_real *x, const sd_real *y, int nb,
                      size_t img, int classes, double clip, sd_real *g, sd_real *sum,
                      double *loss_sum, sd_error *e) SD_WUR;

/* sum += g * min(1, clip / ||g||); *norm gets ||g|| (before clipping). */
int sd_dp_clip_add(sd_backend *be, size_t n, const sd_real *g, double clip, sd_real *sum,
                   double *norm, sd_error *e) SD_WUR;

/* sum += N(0, std^2) per coordinate, drawn for iteration iter from key;
 * host (n floats) and tmp (n, backend memory) are scratch. */
int sd_dp_add_noise(sd_backend *be, size_t n, sd_real *sum, double std, uint64_t key, int64_t iter,
                    float *host, sd_real *tmp, sd_error *e) SD_WUR;

#endif
