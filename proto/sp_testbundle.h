/*
 * sp_testbundle.h - builds realistic payloads with random contents of the
 * right shapes, for tests, fuzz seeds and `sldd bundle make-test`, until
 * the distillation engine produces real ones.  Deterministic for a seed.
 */
#ifndef SP_TESTBUNDLE_H
#define SP_TESTBUNDLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sp_test_params {
    const char *sender;
    const char *const *audience;
    size_t n_audience;
    int64_t created_unix, expires_unix;
    uint64_t sequence;
    uint8_t bundle_id[16];
    int encoding;          /* Sldd__V1__ImageEncoding */
    const char *arch;      /* "convnet" */
    int bn;                /* model with batch norm */
    uint32_t depth, width; /* ConvNet depth and width */
    uint32_t channels, height, width_px, classes;
    uint32_t steps, per_step, epochs; /* S, n, E */
    uint64_t seed;                    /* contents (and init seed) */
    const char *verdict;              /* privacy verdict */
} sp_test_params;

/* Sensible defaults: sender "node-a", audience {"node-b"}, created now-ish
 * (caller should set times), convnet depth 3 width 32 with BN, 1x64x64
 * input, 3 classes, S=10 n=3 E=3, float32 images. */
void sp_test_params_default(sp_test_params *p);

/* Serialize a payload for p into a malloc'ed buffer (*out, *len).
 * Returns 0, or -1 on allocation failure or impossible parameters. */
int sp_test_bundle_build(const sp_test_params *p, uint8_t **out, size_t *len);

#endif
