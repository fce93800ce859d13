/*
 * sg_backend.h - the CUDA backend (gpu/): public entry points.
 *
 * The backend implements the table in distill/engine/sd_backend.h on one CUDA
 * device with cuDNN (convolutions), cuBLAS (GEMM) and kernels of its own for
 * everything else.  distill/ does not know about it: the node calls
 * sg_backend_register() at start-up, after which sd_backend_create("cuda")
 * works.  See docs/gpu.md for the design (determinism, TF32, workspaces).
 */
#ifndef SG_BACKEND_H
#define SG_BACKEND_H

#include <stddef.h>

#include "sd_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Algorithm modes of sg_backend_cuda_create (SLDD_CUDA_DETERMINISTIC takes
 * the same numbers). */
enum {
    /* cuDNN's fastest algorithms by timing, deterministic or not */
    SG_MODE_FAST = 0,
    /* deterministic algorithms only; per convolution shape the fastest of
     * them by timing once (cudnnFind*), then fixed for the backend's life:
     * bit-identical results run to run within a process, and across
     * processes whenever the timing picks the same algorithms (the default) */
    SG_MODE_DETERMINISTIC = 1,
    /* deterministic algorithms chosen by cuDNN's heuristics, never by
     * timing: the same choice, hence the same bits, in every process on the
     * same GPU model and library versions */
    SG_MODE_DETERMINISTIC_HEURISTIC = 2
};

/* Create the CUDA backend on `device` in one of the SG_MODE_* modes above
 * (any other non-zero value means SG_MODE_DETERMINISTIC).  Returns
 * SD_EUNSUPPORTED when there is no usable CUDA device (tests skip on it),
 * SD_EBACKEND for any other CUDA/cuDNN/cuBLAS failure, with the message in
 * err. */
int sg_backend_cuda_create(sd_backend **out, int device, int deterministic, sd_error *err) SD_WUR;

/* Register the "cuda" factory with sd_backend_register().  The factory uses
 * device SLDD_CUDA_DEVICE (default 0) and the mode SLDD_CUDA_DETERMINISTIC
 * (0, 1 or 2 as SG_MODE_*; default 1). */
int sg_backend_register(void);

/* One line describing the backend (device name, compute capability, cuDNN and
 * cuBLAS versions, mode) into buf; be must be a CUDA backend. */
void sg_backend_describe(sd_backend *be, char *buf, size_t len);

/* Versions this library was compiled against, e.g. "CUDA 13.0, cuDNN 9.19.0";
 * needs no device. */
const char *sg_build_info(void);

/* Whether be is a backend created by this library. */
int sg_backend_is_cuda(const sd_backend *be);

#ifdef __cplusplus
}
#endif

#endif
