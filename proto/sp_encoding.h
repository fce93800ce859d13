/*
 * sp_encoding.h - image encodings of the distilled set in a bundle.
 *
 * float32 is exact; float16 halves the size (IEEE binary16, round to nearest
 * even, converted by hand so every node gets the same bits); uint8 with a
 * per-image scale and offset quarters it.  Values are little-endian on the
 * wire whatever the host.  Images are M blocks of D values (D = C*H*W).
 */
#ifndef SP_ENCODING_H
#define SP_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "sldd.pb-c.h"

/* IEEE binary16 <-> binary32.  Round to nearest, ties to even; overflow
 * gives infinity, NaN stays NaN (quiet). */
uint16_t sp_half_from_float(float f);
float sp_half_to_float(uint16_t h);

/* Bytes per value of an encoding (4, 2, 1), 0 for an unknown one. */
size_t sp_encoding_value_size(int encoding);
/* "float32", "float16", "uint8-scaled", or "unknown". */
const char *sp_encoding_name(int encoding);
/* Parse "float32"/"f32", "float16"/"f16", "uint8"/"u8"; -1 if unknown. */
int sp_encoding_parse(const char *s);

/* Encode x (m*d floats, all finite) into out (m*d*value_size bytes).  For
 * UINT8_SCALED, scale[m] and offset[m] receive each image's parameters
 * (value = offset + scale*q); they may be NULL for the other encodings.
 * Returns 0, or -1 for an unknown encoding or a non-finite value. */
int sp_images_encode(int encoding, const float *x, size_t m, size_t d, uint8_t *out, float *scale,
                     float *offset);

/* Decode in (m*d values) into x[m*d].  Returns 0, or -1 for an unknown
 * encoding or a missing scale/offset. */
int sp_images_decode(int encoding, const uint8_t *in, size_t m, size_t d, const float *scale,
                     const float *offset, float *x);

/* Fill t (already initialised) with m images of d values in `encoding`,
 * allocating t->data.data, t->scale, t->offset with malloc.  Free them
 * with sp_image_tensor_clear().  Returns 0 or -1. */
int sp_image_tensor_set(Sldd__V1__ImageTensor *t, int encoding, const float *x, size_t m, size_t d);
void sp_image_tensor_clear(Sldd__V1__ImageTensor *t);
/* Decode a received (validated) tensor into x[m*d].  Returns 0 or -1 when
 * the sizes do not match. */
int sp_image_tensor_decode(const Sldd__V1__ImageTensor *t, size_t m, size_t d, float *x);

#endif
