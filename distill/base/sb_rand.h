/*
 * sb_rand.h - the two small helpers that seeded resampling code keeps
 * needing: SplitMix64 (Steele, Lea and Flood 2014), a fast generator whose
 * stream depends only on its seed, so a bootstrap or a canary draw repeats
 * bit for bit on every machine; and a total order on doubles for qsort.
 * Not for anything secret: keys and nonces come from libsodium.
 */
#ifndef SB_RAND_H
#define SB_RAND_H

#include <stdint.h>

/* The next 64 bits of the stream whose state is *s. */
static inline uint64_t sb_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* qsort comparator: ascending doubles (NaN-free input). */
static inline int sb_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
