/*
 * sd_init.h - deterministic initial weights theta_0 and their hash (docs/algorithm.md).
 *
 * Every node must rebuild bit-identical theta_0 from (model, seed), so the
 * random numbers come from a documented counter-based generator rather than
 * the C library:
 *   Philox4x32-10 with key (seed low 32 bits, seed high 32 bits) and counter
 *   (index low, index high, stream, 0) gives four 32-bit words w0..w3;
 *   u1 = (w0 + 0.5) / 2^32, u2 = (w1 + 0.5) / 2^32;
 *   z  = sqrt(-2 ln u1) * cos(2 pi u2)     (Box-Muller, in double)
 * and value = (float)(std * z).  `index` is the element's position in theta.
 * Conv and linear weights are Xavier-normal with gain 1
 * (std = sqrt(2 / (fan_in + fan_out)), fan = channels x kernel area), biases
 * 0, BN gamma 1 and beta 0.  The scheme's name is "philox-xavier-normal-v1".
 */
#ifndef SD_INIT_H
#define SD_INIT_H

#include <stdint.h>

#include "sd_model.h"

#define SD_INIT_SCHEME "philox-xavier-normal-v1"

/* Streams keep independent uses of one seed apart. */
enum { SD_STREAM_THETA = 0, SD_STREAM_IMAGES = 1, SD_STREAM_SHUFFLE = 2, SD_STREAM_DROPOUT = 3 };

void sd_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* The standard normal number at (seed, stream, index), as described above. */
double sd_normal(uint64_t seed, uint32_t stream, uint64_t index);
/* A uniform 32-bit word at (seed, stream, index) (word 0 of the block). */
uint32_t sd_uniform_u32(uint64_t seed, uint32_t stream, uint64_t index);

/* Fill theta (host, n_theta values) with the initial weights for seed. */
int sd_init_theta(const sd_model *m, uint64_t seed, sd_real *theta, sd_error *err) SD_WUR;
/* theta_bn start values: mean 0, var 1. */
void sd_init_theta_bn(const sd_model *m, sd_real *theta_bn);
/* SHA-256 of theta as little-endian float32 in parameter order. */
int sd_theta_sha256(const sd_real *theta, size_t n, uint8_t out[32], sd_error *err) SD_WUR;
void sd_hex(const uint8_t *bytes, size_t n, char *out); /* out: 2n+1 chars */

#endif
