/*
 * sd_testutil.h - helpers shared by the engine's model-level tests: reading
 * the PyTorch reference files (format in scripts/ref/make-reference.py) and small
 * vector utilities.  Header-only so each test executable stays one file.
 */
#ifndef SD_TESTUTIL_H
#define SD_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_real.h"

typedef struct ref_tensor {
    char name[64];
    size_t n;
    float *data;
} ref_tensor;

typedef struct ref_file {
    int count;
    ref_tensor t[32];
} ref_file;

static inline void ref_free(ref_file *r)
{
    for (int i = 0; i < r->count; i++)
        free(r->t[i].data);
    r->count = 0;
}

static inline int ref_load(ref_file *r, const char *path)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    char magic[8];
    uint32_t count;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "SLDDREF1", 8) || fread(&count, 4, 1, f) != 1 ||
        count > 32)
        goto bad;
    for (uint32_t i = 0; i < count; i++) {
        ref_tensor *t = &r->t[i];
        uint32_t len, nd, d;
        if (fread(&len, 4, 1, f) != 1 || len >= sizeof t->name || fread(t->name, 1, len, f) != len)
            goto bad;
        t->name[len] = '\0';
        if (fread(&nd, 4, 1, f) != 1 || nd > 8)
            goto bad;
        t->n = 1;
        for (uint32_t j = 0; j < nd; j++) {
            if (fread(&d, 4, 1, f) != 1)
                goto bad;
            t->n *= d;
        }
        t->data = malloc(t->n * sizeof(float));
        r->count++;
        if (!t->data || fread(t->data, sizeof(float), t->n, f) != t->n)
            goto bad;
    }
    fclose(f);
    return 0;
bad:
    fprintf(stderr, "%s: malformed reference file\n", path);
    fclose(f);
    ref_free(r);
    return -1;
}

static inline const ref_tensor *ref_get(const ref_file *r, const char *name)
{
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->t[i].name, name))
            return &r->t[i];
    fprintf(stderr, "reference tensor %s missing\n", name);
    return NULL;
}

/* max|a-b| / max|b|: a normwise relative error, robust to tiny entries. */
static inline double relerr_vec(const sd_real *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > num)
            num = d;
        if (fabs((double)b[i]) > den)
            den = fabs((double)b[i]);
    }
    return den > 0 ? num / den : num;
}

static inline double dot_vec(const sd_real *a, const sd_real *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

/* deterministic pseudo-random fill in [-scale, scale] */
static inline void fill_rand(sd_real *a, size_t n, uint64_t seed, double scale)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        a[i] = (sd_real)(scale * (2.0 * (double)(s >> 11) / 9007199254740992.0 - 1.0));
    }
}

#endif
