/*
 * sd_backend_cpu.h - knobs specific to the CPU backend.
 *
 * The CPU backend implements sd_backend.h and needs nothing else for normal
 * use.  This header exists for tests and benchmarks that must run a particular
 * convolution path (to check the paths agree, and to measure them); the
 * automatic choice is documented in cpu/sd_cpu_conv.c and docs/benchmarks.md.
 * The backend itself is engine/cpu/ (sd_cpu_internal.h lists its files).
 */
#ifndef SD_BACKEND_CPU_H
#define SD_BACKEND_CPU_H

#include "sd_backend.h"

typedef enum sd_cpu_conv_path {
    SD_CPU_CONV_AUTO = 0,     /* chosen per shape (measured rule) */
    SD_CPU_CONV_IM2COL,       /* im2col of one sample, one GEMM per sample */
    SD_CPU_CONV_IM2COL_BATCH, /* im2col of several samples, one wide GEMM */
    SD_CPU_CONV_GEMM1X1,      /* 1x1 kernel, stride 1, no padding: GEMM on x itself */
    SD_CPU_CONV_SHIFT,        /* stride 1: one GEMM per kernel tap on a padded copy */
    SD_CPU_CONV_DNNL,         /* oneDNN, its own layouts (float32 builds with oneDNN) */
    SD_CPU_CONV_DIRECT,       /* stride 1, pad < kernel: register-tiled correlation */
    SD_CPU_CONV_PATH_COUNT
} sd_cpu_conv_path;

/* The three passes of a convolution; the automatic choice is per pass. */
typedef enum sd_cpu_conv_pass {
    SD_CPU_CONV_FWD,
    SD_CPU_CONV_BWD_DATA,
    SD_CPU_CONV_BWD_FILTER
} sd_cpu_conv_pass;

/* Force a convolution path for later calls, all three passes (SD_CPU_CONV_AUTO
 * restores the automatic choice).  A forced path that does not apply to a shape falls back
 * to SD_CPU_CONV_IM2COL.  Workspace sizes follow the path, so size workspaces
 * after setting it.  SD_EINVAL when be is not a CPU backend. */
int sd_backend_cpu_set_conv_path(sd_backend *be, sd_cpu_conv_path path);

/* Bound the im2col buffer to elems sd_real values (0: the default, 8M);
 * larger maps are processed in blocks of output rows.  Tests use a tiny bound
 * to exercise the blocking.  Size workspaces after setting it. */
int sd_backend_cpu_set_col_cap(sd_backend *be, size_t elems);

/* The path the backend will use for pass `pass` of d with its current
 * setting. */
sd_cpu_conv_path sd_backend_cpu_conv_path(sd_backend *be, const sd_conv_desc *d,
                                          sd_cpu_conv_pass pass);

/* Whether a path can run shape d at all (SD_CPU_CONV_DNNL: wherever the
 * build has oneDNN, nowhere otherwise). */
int sd_cpu_conv_path_applies(sd_cpu_conv_path path, const sd_conv_desc *d);

const char *sd_cpu_conv_path_name(sd_cpu_conv_path path);

/* Whether the oneDNN path (SD_CPU_CONV_DNNL) can run: the float32 engine
 * built with SLDD_DNNL and oneDNN found (never the float64 one), in a
 * process where oneDNN's run-time code generation is allowed (tried once: a
 * sandbox that denies W^X memory, such as systemd's MemoryDenyWriteExecute,
 * refuses it). */
int sd_backend_cpu_has_dnnl(void);

/* Why the oneDNN path cannot run here (no oneDNN in the build, or the
 * failure of the trial); NULL when it can. */
const char *sd_backend_cpu_dnnl_unusable(void);

/* Limit the `direct` path's kernels to vectors of at most `bytes` bytes
 * (64: AVX-512, 32: AVX2 with FMA, 16: any x86-64; 0 lifts the limit) so
 * that tests can run each kernel the processor supports; returns the width
 * now in use.  Applies to every CPU backend in the process; size workspaces
 * after setting it. */
int sd_backend_cpu_limit_direct(int bytes);

/* The instruction set of the `direct` path's kernels on this processor
 * ("AVX-512", "AVX2 + FMA", ...), within sd_backend_cpu_limit_direct. */
const char *sd_backend_cpu_direct_kernels(void);

/* The OpenBLAS kernel set in use ("SkylakeX", "Haswell", "Prescott", ...). */
const char *sd_backend_cpu_blas_core(void);

/* OpenBLAS 0.3.21 (Debian 12) does not recognise recent CPUs (e.g. family 6
 * model 207) and falls back to its generic SSE3 "Prescott" kernels, about 3x
 * slower for GEMM.  When the kernel set in use is such a fallback although
 * the CPU has AVX-512 (or AVX2 and FMA), this returns the OPENBLAS_CORETYPE
 * value that selects the fast kernels ("SkylakeX" or "Haswell"); otherwise
 * NULL.  OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded, so it has
 * to be in the environment before the program starts (docs/cpu-backend.md). */
const char *sd_backend_cpu_blas_suggest(void);

#endif
