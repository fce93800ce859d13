/*
 * sb_error.h - the one status type and code space of every library.
 *
 * Every fallible function returns 0 or a negative code and, given an
 * sb_error, writes a one-line reason into it.  The engine's sd_error and the
 * crypto library's sc_error are this same type, so an error passes between
 * layers (a dataset loader inside a node command, a SQLite failure inside a
 * crypto call) without being copied or re-typed.  Library code never calls
 * exit().
 *
 * The codes form one space with distinct numbers; each library keeps its
 * names (SD_*, SC_*) for them:
 *      0                     ok
 *     -1 .. -19              shared by all, and the engine's own (SD_*)
 *    -20 .. -39              the crypto library's own (SC_*)
 *   -100 .. -199             receive-path refusals (SC_EREFUSE_*)
 *   -200 .. -299             transport (SN_*, net/sn_net.h)
 * sb_status_name() gives each a stable short name ("wrong-recipient") that
 * logs, the audit trail and tests may rely on.
 */
#ifndef SB_ERROR_H
#define SB_ERROR_H

#include <stddef.h>

enum {
    SB_OK = 0,
    SB_EINVAL = -1,  /* bad argument or shape */
    SB_ENOMEM = -2,  /* allocation failed */
    SB_EIO = -3,     /* file or device I/O failed */
    SB_EFORMAT = -5, /* malformed input data, file or message */

    /* engine (distill/) */
    SD_OK = SB_OK,
    SD_EINVAL = SB_EINVAL,
    SD_ENOMEM = SB_ENOMEM,
    SD_EIO = SB_EIO,
    SD_EBACKEND = -4, /* backend (BLAS, CUDA, cuDNN, cuBLAS) failed */
    SD_EFORMAT = SB_EFORMAT,
    SD_EUNSUPPORTED = -6, /* valid request this build cannot do */
    SD_ECANCELED = -7,    /* stopped on request */
    SD_EHASH = -8,        /* integrity check (e.g. theta_0 hash) failed */

    /* crypto (crypto/) */
    SC_OK = SB_OK,
    SC_EINVAL = SB_EINVAL,
    SC_ENOMEM = SB_ENOMEM,
    SC_EIO = SB_EIO,
    SC_EFORMAT = SB_EFORMAT,
    SC_ECRYPTO = -20,   /* a libsodium/OpenSSL/SQLite call failed unexpectedly */
    SC_EEXIST = -21,    /* refusing to overwrite something that exists */
    SC_ENOTFOUND = -22, /* no such key, peer or file */
    SC_EPASS = -23,     /* wrong passphrase or corrupted key file */
    SC_EPERM = -24,     /* file permissions too open */

    /* Receive-path refusals, in the order the checks run (docs/bundle-format.md §5). */
    SC_EREFUSE_SIZE = -100,           /* larger than the size cap */
    SC_EREFUSE_ENVELOPE = -101,       /* envelope does not parse */
    SC_EREFUSE_HEADER = -102,         /* header does not parse or is incomplete */
    SC_EREFUSE_UNKNOWN_SENDER = -103, /* sender is not a known peer */
    SC_EREFUSE_OUTER_SIG = -104,      /* outer sender signature invalid */
    SC_EREFUSE_RECIPIENT = -105,      /* addressed to another node */
    SC_EREFUSE_EXPIRED = -106,        /* past its expiry */
    SC_EREFUSE_FUTURE = -107,         /* created in the future beyond skew */
    SC_EREFUSE_REPLAY_ID = -108,      /* bundle id seen before */
    SC_EREFUSE_REPLAY_SEQ = -109,     /* sequence not above the last accepted */
    SC_EREFUSE_UNSEAL = -110,         /* content key does not unseal */
    SC_EREFUSE_AEAD = -111,           /* body fails authentication */
    SC_EREFUSE_STATEMENT = -112,      /* signed statement does not parse */
    SC_EREFUSE_PAYLOAD_TYPE = -113,   /* unexpected payload type */
    SC_EREFUSE_NODE_SIG = -114,       /* node signature missing or invalid */
    SC_EREFUSE_ADMIN_SIGS = -115,     /* too few valid admin approvals */
    SC_EREFUSE_BUDGET = -116,         /* parsing exceeded the memory budget */
    SC_EREFUSE_PARSE = -117,          /* payload does not parse */
    SC_EREFUSE_UNKNOWN_FIELDS = -118, /* payload has fields this version lacks */
    SC_EREFUSE_MISMATCH = -119,       /* payload disagrees with the header */
    SC_EREFUSE_SEMANTIC = -120        /* shapes, counts, floats or enums invalid */
};

typedef struct sb_error {
    int code;
    char msg[512];
} sb_error;

#if defined(__GNUC__)
#define SB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SB_WUR          __attribute__((warn_unused_result))
#else
#define SB_PRINTF(a, b)
#define SB_WUR
#endif

/* Record code and message in e (e may be NULL); returns code.  A message
 * longer than the buffer is cut. */
int sb_error_set(sb_error *e, int code, const char *fmt, ...) SB_PRINTF(3, 4);
/* Prefix the existing message with context ("loading x: <old msg>"), cut to
 * fit; returns e->code (SB_EINVAL when e is NULL).  The old message is read
 * into a copy first, so any argument may point into e->msg. */
int sb_error_wrap(sb_error *e, const char *fmt, ...) SB_PRINTF(2, 3);
/* A call that failed with code wrote its reason into e, or nothing: set
 * e->code = code, prefix the reason (the status name when there is none)
 * with context, and return code, also when e is NULL. */
int sb_error_wrap_code(sb_error *e, int code, const char *fmt, ...) SB_PRINTF(3, 4);
void sb_error_clear(sb_error *e);
/* Stable short name of a code ("out-of-memory"), never NULL. */
const char *sb_status_name(int code);

#endif
