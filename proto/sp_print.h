/*
 * sp_print.h - human-readable dump of a payload for `sldd bundle inspect`
 * and the approval prompt: every field, array summaries, and the byte size
 * of each part (images, labels, step sizes, BN statistics, ...).
 */
#ifndef SP_PRINT_H
#define SP_PRINT_H

#include <stdint.h>
#include <stdio.h>

#include "sldd.pb-c.h"

/* Full dump; wire_size is the size of the bytes b was parsed from. */
void sp_bundle_print(FILE *f, const Sldd__V1__Bundle *b, size_t wire_size);
/* The short summary shown before an approval. */
void sp_bundle_print_summary(FILE *f, const Sldd__V1__Bundle *b, size_t wire_size);
void sp_print_hex(FILE *f, const uint8_t *p, size_t n);

#endif
