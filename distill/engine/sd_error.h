/*
 * sd_error.h - status codes and error messages for the engine.
 *
 * Every fallible function returns an int status (0 on success, a negative
 * SD_E* code on failure) and, where it has one, writes a human-readable
 * message into an sd_error supplied by the caller.  Library code never
 * calls exit().
 */
#ifndef SD_ERROR_H
#define SD_ERROR_H

#include <stddef.h>

enum {
    SD_OK = 0,
    SD_EINVAL = -1,       /* bad argument or shape */
    SD_ENOMEM = -2,       /* allocation failed */
    SD_EIO = -3,          /* file or device I/O failed */
    SD_EBACKEND = -4,     /* backend (BLAS, CUDA, cuDNN, cuBLAS) failed */
    SD_EFORMAT = -5,      /* malformed input data */
    SD_EUNSUPPORTED = -6, /* valid request this build cannot do */
    SD_ECANCELED = -7,    /* stopped on request */
    SD_EHASH = -8         /* integrity check (e.g. theta_0 hash) failed */
};

typedef struct sd_error {
    int code;
    char msg[512];
} sd_error;

#if defined(__GNUC__)
#define SD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SD_WUR __attribute__((warn_unused_result))
#else
#define SD_PRINTF(a, b)
#define SD_WUR
#endif

/* Record code and message in e (e may be NULL); returns code. */
int sd_error_set(sd_error *e, int code, const char *fmt, ...) SD_PRINTF(3, 4);
/* Prefix an existing message with context ("loading x: <old msg>"). */
int sd_error_wrap(sd_error *e, const char *fmt, ...) SD_PRINTF(2, 3);
/* A call that failed with code wrote its reason into e (or nothing): set
 * e->code = code, prefix the reason (the status name when there is none)
 * with context, and return code, also when e is NULL. */
int sd_error_wrap_code(sd_error *e, int code, const char *fmt, ...) SD_PRINTF(3, 4);
void sd_error_clear(sd_error *e);
const char *sd_status_name(int code);

#endif
