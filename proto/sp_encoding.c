/*
 * sp_encoding.c - float16 and scaled-uint8 image encodings (see sp_encoding.h).
 *
 * The half conversion is written out by hand rather than left to the
 * compiler's _Float16 so that its rounding is pinned and identical on every
 * node and compiler.
 */
#include "sp_encoding.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint16_t sp_half_from_float(float f)
{
    uint32_t x, sign, exp, mant;
    int e;
    memcpy(&x, &f, sizeof x);
    sign = (x >> 16) & 0x8000u;
    exp = (x >> 23) & 0xffu;
    mant = x & 0x7fffffu;
    if (exp == 0xffu) /* inf stays inf; NaN becomes a quiet NaN */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x0200u | (mant >> 13) : 0u));
    e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e >= 1) {
        /* Normal half: keep 10 mantissa bits, round on the other 13.  A
         * carry out of the mantissa correctly bumps the exponent (and turns
         * the largest values into infinity). */
        uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
        uint32_t rest = mant & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
            h++;
        return (uint16_t)h;
    }
    /* Subnormal half (or zero): value in units of 2^-24 is M >> s. */
    {
        uint32_t m24 = mant | 0x800000u, q, rem, halfway;
        int s = 14 - e;
        if (exp == 0 || s > 24)
            return (uint16_t)sign;
        q = m24 >> s;
        rem = m24 & ((1u << s) - 1u);
        halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
}

float sp_half_to_float(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = ((uint32_t)h >> 10) & 0x1fu;
    uint32_t mant = (uint32_t)h & 0x3ffu;
    uint32_t x;
    float f;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    if (exp == 31)
        x = sign | 0x7f800000u | (mant << 13);
    else
        x = sign | ((exp - 15u + 127u) << 23) | (mant << 13);
    memcpy(&f, &x, sizeof f);
    return f;
}

size_t sp_encoding_value_size(int encoding)
{
    switch (encoding) {
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32: return 4;
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16: return 2;
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED: return 1;
    default: return 0;
    }
}

const char *sp_encoding_name(int encoding)
{
    switch (encoding) {
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32: return "float32";
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16: return "float16";
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED: return "uint8-scaled";
    default: return "unknown";
    }
}

int sp_encoding_parse(const char *s)
{
    if (!strcmp(s, "float32") || !strcmp(s, "f32"))
        return SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32;
    if (!strcmp(s, "float16") || !strcmp(s, "f16"))
        return SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16;
    if (!strcmp(s, "uint8") || !strcmp(s, "u8") || !strcmp(s, "uint8-scaled"))
        return SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED;
    return -1;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sp_images_encode(int encoding, const float *x, size_t m, size_t d, uint8_t *out, float *scale,
                     float *offset)
{
    for (size_t i = 0; i < m * d; i++)
        if (!isfinite(x[i]))
            return -1;
    switch (encoding) {
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32:
        for (size_t i = 0; i < m * d; i++) {
            uint32_t v;
            memcpy(&v, &x[i], sizeof v);
            put_le32(out + 4 * i, v);
        }
        return 0;
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16:
        for (size_t i = 0; i < m * d; i++) {
            uint16_t h = sp_half_from_float(x[i]);
            if ((h & 0x7c00u) == 0x7c00u) /* beyond the half range */
                return -1;
            out[2 * i] = (uint8_t)h;
            out[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return 0;
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED:
        if (!scale || !offset)
            return -1;
        for (size_t j = 0; j < m; j++) {
            const float *xi = x + j * d;
            double lo = d ? xi[0] : 0.0, hi = lo, sc;
            for (size_t i = 1; i < d; i++) {
                if (xi[i] < lo)
                    lo = xi[i];
                if (xi[i] > hi)
                    hi = xi[i];
            }
            sc = (hi - lo) / 255.0;
            if (!isfinite((float)sc))
                return -1;
            scale[j] = (float)sc;
            offset[j] = (float)lo;
            for (size_t i = 0; i < d; i++) {
                double q = scale[j] > 0 ? ((double)xi[i] - offset[j]) / scale[j] : 0.0;
                q = floor(q + 0.5);
                out[j * d + i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
        }
        return 0;
    default: return -1;
    }
}

int sp_images_decode(int encoding, const uint8_t *in, size_t m, size_t d, const float *scale,
                     const float *offset, float *x)
{
    switch (encoding) {
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32:
        for (size_t i = 0; i < m * d; i++) {
            uint32_t v = get_le32(in + 4 * i);
            memcpy(&x[i], &v, sizeof v);
        }
        return 0;
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16:
        for (size_t i = 0; i < m * d; i++)
            x[i] = sp_half_to_float((uint16_t)(in[2 * i] | in[2 * i + 1] << 8));
        return 0;
    case SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED:
        if (!scale || !offset)
            return -1;
        for (size_t j = 0; j < m; j++)
            for (size_t i = 0; i < d; i++)
                x[j * d + i] = offset[j] + scale[j] * (float)in[j * d + i];
        return 0;
    default: return -1;
    }
}

int sp_image_tensor_set(Sldd__V1__ImageTensor *t, int encoding, const float *x, size_t m, size_t d)
{
    size_t vs = sp_encoding_value_size(encoding);
    int u8 = encoding == SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED;
    if (!vs || (m && d > SIZE_MAX / m / vs))
        return -1;
    t->encoding = (Sldd__V1__ImageEncoding)encoding;
    t->data.len = m * d * vs;
    t->data.data = malloc(t->data.len ? t->data.len : 1);
    t->n_scale = t->n_offset = u8 ? m : 0;
    t->scale = u8 ? malloc(m ? m * sizeof(float) : 1) : NULL;
    t->offset = u8 ? malloc(m ? m * sizeof(float) : 1) : NULL;
    if (!t->data.data || (u8 && (!t->scale || !t->offset)) ||
        sp_images_encode(encoding, x, m, d, t->data.data, t->scale, t->offset)) {
        sp_image_tensor_clear(t);
        return -1;
    }
    return 0;
}

void sp_image_tensor_clear(Sldd__V1__ImageTensor *t)
{
    if (!t)
        return;
    free(t->data.data);
    free(t->scale);
    free(t->offset);
    t->data.data = NULL;
    t->data.len = 0;
    t->scale = t->offset = NULL;
    t->n_scale = t->n_offset = 0;
}

int sp_image_tensor_decode(const Sldd__V1__ImageTensor *t, size_t m, size_t d, float *x)
{
    size_t vs = sp_encoding_value_size(t->encoding);
    int u8 = t->encoding == SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED;
    if (!vs || (m && d > SIZE_MAX / m / vs) || t->data.len != m * d * vs)
        return -1;
    if (u8 && (t->n_scale != m || t->n_offset != m))
        return -1;
    return sp_images_decode(t->encoding, t->data.data, m, d, t->scale, t->offset, x);
}
