/*
 * sd_real.h - the engine's scalar type.
 *
 * The engine is written once against sd_real.  The production library is
 * built with float; the test library is built a second time from the same
 * sources with -DSD_REAL_DOUBLE so that finite-difference checks run in
 * double precision.  Nothing else may depend on which one is chosen.
 */
#ifndef SD_REAL_H
#define SD_REAL_H

#ifdef SD_REAL_DOUBLE
typedef double sd_real;
#define SD_REAL_NAME "float64"
#else
typedef float sd_real;
#define SD_REAL_NAME "float32"
#endif

#endif
